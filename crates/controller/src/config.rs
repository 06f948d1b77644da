//! `weft server`'s configuration: where it listens and stores, how it bootstraps the first
//! admin, and the ML2-style type drivers (which segment types exist, their id ranges).
//!
//! ```toml
//! listen = "127.0.0.1:9696"              # networking API (Neutron)
//! public_url = "http://127.0.0.1:9696"   # what catalogs and version documents advertise
//! identity_listen = "127.0.0.1:5000"     # identity API (Keystone)
//! identity_public_url = "http://127.0.0.1:5000"
//! state_dir = "/var/lib/weft"            # SQLite lives here unless database_url is set
//! # database_url = "postgres://weft:secret@127.0.0.1/weft"
//! token_ttl_secs = 3600
//! auth = "keystone"                      # or "noauth": every request is admin
//!
//! [bootstrap]
//! admin_user = "admin"
//! admin_password = "secret"
//! admin_project = "admin"
//! region = "RegionOne"
//!
//! [ml2]
//! tenant_network_types = ["vxlan"]
//! flat_networks = ["physnet0"]
//! network_vlan_ranges = ["physnet1:100:299", "physnet2"]
//! vni_ranges = ["1:16777215"]
//! gre_ranges = ["1:65535"]
//! nvgre_ranges = ["4096:16777214"]
//! physnet_mtu = 1500
//!
//! [vsi]
//! vlan_range = "2:4094"                  # VLANs a bridge port may hand out for VDP's VID 0
//! ```

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address the networking API listens on.
    pub listen: SocketAddr,
    /// The base URL clients reach the networking API at; `None` builds it from each
    /// request's Host header.
    pub public_url: Option<String>,
    /// The address the identity API listens on.
    pub identity_listen: SocketAddr,
    /// The base URL clients reach the identity API at; `None` builds it from each request's
    /// Host header.
    pub identity_public_url: Option<String>,
    /// Directory for the SQLite database (and nothing else today).
    pub state_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `sqlite://<state_dir>/weft.db`.
    pub database_url: Option<String>,
    /// How long an issued token stays valid.
    pub token_ttl_secs: u64,
    /// `keystone` (tokens required) or `noauth` (every request is admin of `fake_project_id`).
    pub auth: AuthMode,
    /// The first admin, created when the store has no users.
    pub bootstrap: Bootstrap,
    /// Type drivers and segment ranges.
    pub ml2: Ml2,
    /// Seconds after its last heartbeat an agent counts as dead (Neutron's `agent_down_time`).
    pub agent_down_time_secs: u64,
    /// The shared agent secret; default `<state_dir>/agent-token`, made on first start.
    pub agent_token_file: Option<PathBuf>,
    /// The VSI type database (docs/vsi.md).
    pub vsi: Vsi,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9696)),
            public_url: None,
            identity_listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            identity_public_url: None,
            state_dir: PathBuf::from("/var/lib/weft"),
            database_url: None,
            token_ttl_secs: 3600,
            auth: AuthMode::Keystone,
            bootstrap: Bootstrap::default(),
            ml2: Ml2::default(),
            agent_down_time_secs: 30,
            agent_token_file: None,
            vsi: Vsi::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError(err.to_string()))?;
        config.ml2.ranges()?;
        config.vsi.vlans()?;
        Ok(config)
    }

    /// The agent secret's file in effect.
    pub fn agent_token_file(&self) -> PathBuf {
        self.agent_token_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("agent-token"))
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.state_dir.join("weft.db").display()
            )
        })
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Keystone tokens (`X-Auth-Token`) on every networking request.
    Keystone,
    /// No authentication: every request acts as admin in project `fake_project_id`, as Neutron
    /// does with `auth_strategy = noauth`.
    Noauth,
}

/// The admin created on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bootstrap {
    /// Admin user name (in domain `Default`).
    pub admin_user: String,
    /// Admin password; `None` generates one and prints it once.
    pub admin_password: Option<String>,
    /// Admin project name.
    pub admin_project: String,
    /// Region id in the service catalog.
    pub region: String,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            admin_user: "admin".into(),
            admin_password: None,
            admin_project: "admin".into(),
            region: "RegionOne".into(),
        }
    }
}

/// A segment type weft can give a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// Never leaves the host.
    Local,
    /// Untagged on a physical network.
    Flat,
    /// 802.1Q-tagged on a physical network.
    Vlan,
    /// VXLAN overlay.
    Vxlan,
    /// GRE overlay (key = segmentation id).
    Gre,
    /// NVGRE overlay (VSID = segmentation id).
    Nvgre,
}

impl NetworkType {
    /// All types, in the order tenant allocation considers them.
    pub const ALL: [Self; 6] = [
        Self::Local,
        Self::Flat,
        Self::Vlan,
        Self::Vxlan,
        Self::Gre,
        Self::Nvgre,
    ];

    /// The `provider:network_type` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Flat => "flat",
            Self::Vlan => "vlan",
            Self::Vxlan => "vxlan",
            Self::Gre => "gre",
            Self::Nvgre => "nvgre",
        }
    }

    /// Parses a `provider:network_type` string.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The valid segmentation ids of this type (`None`: the type has no id).
    pub const fn id_space(self) -> Option<(u32, u32)> {
        match self {
            Self::Local | Self::Flat => None,
            Self::Vlan => Some((1, 4094)),
            Self::Vxlan | Self::Gre => Some((1, (1 << 24) - 1)),
            // RFC 7637 §3.2: VSIDs 0-0xFFF and 0xFFFFFF are reserved.
            Self::Nvgre => Some((0x1000, 0xff_fffe)),
        }
    }

    /// Bytes of encapsulation this type adds over an IPv4 underlay (Neutron's figures).
    pub const fn overhead(self) -> u32 {
        match self {
            Self::Local | Self::Flat | Self::Vlan => 0,
            // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
            Self::Vxlan => 50,
            // outer IPv4 20 + GRE with key 8 + inner Ethernet 14.
            Self::Gre | Self::Nvgre => 42,
        }
    }
}

/// ML2 type-driver settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ml2 {
    /// Types tenant networks get, first with a free id wins.
    pub tenant_network_types: Vec<NetworkType>,
    /// Physical networks that may carry a flat network (`*` allows any).
    pub flat_networks: Vec<String>,
    /// `physnet` (provider only) or `physnet:min:max` (also for tenants).
    pub network_vlan_ranges: Vec<String>,
    /// `min:max` VNIs for tenant VXLAN networks.
    pub vni_ranges: Vec<String>,
    /// `min:max` keys for tenant GRE networks.
    pub gre_ranges: Vec<String>,
    /// `min:max` VSIDs for tenant NVGRE networks.
    pub nvgre_ranges: Vec<String>,
    /// MTU of the physical networks and the underlay.
    pub physnet_mtu: u32,
}

impl Default for Ml2 {
    fn default() -> Self {
        Self {
            tenant_network_types: vec![NetworkType::Vxlan],
            flat_networks: vec!["*".into()],
            network_vlan_ranges: vec!["physnet1:100:299".into()],
            vni_ranges: vec!["1:16777215".into()],
            gre_ranges: vec!["1:65535".into()],
            nvgre_ranges: vec!["4096:65535".into()],
            physnet_mtu: 1500,
        }
    }
}

/// [`Ml2`] parsed: every range checked against its type's id space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// Physical networks known for VLAN, with their tenant ranges (maybe none).
    pub vlan: Vec<(String, Vec<(u32, u32)>)>,
    /// Tenant VNI ranges.
    pub vxlan: Vec<(u32, u32)>,
    /// Tenant GRE key ranges.
    pub gre: Vec<(u32, u32)>,
    /// Tenant NVGRE VSID ranges.
    pub nvgre: Vec<(u32, u32)>,
}

impl Ml2 {
    /// Parses and checks every range; errors name the setting.
    pub fn ranges(&self) -> Result<Ranges, ConfigError> {
        let mut ranges = Ranges::default();
        for (index, entry) in self.network_vlan_ranges.iter().enumerate() {
            let field = format!("ml2.network_vlan_ranges[{index}]");
            let mut parts = entry.splitn(2, ':');
            let physnet = parts.next().unwrap_or_default().trim();
            if physnet.is_empty() {
                return Err(ConfigError(format!(
                    "{field}: empty physical network in {entry:?}"
                )));
            }
            let range = match parts.next() {
                Some(rest) => Some(parse_range(&field, rest, NetworkType::Vlan)?),
                None => None,
            };
            match ranges.vlan.iter_mut().find(|(name, _)| name == physnet) {
                Some((_, list)) => list.extend(range),
                None => ranges
                    .vlan
                    .push((physnet.to_owned(), range.into_iter().collect())),
            }
        }
        for (list, out, ty, name) in [
            (
                &self.vni_ranges,
                &mut ranges.vxlan,
                NetworkType::Vxlan,
                "vni_ranges",
            ),
            (
                &self.gre_ranges,
                &mut ranges.gre,
                NetworkType::Gre,
                "gre_ranges",
            ),
            (
                &self.nvgre_ranges,
                &mut ranges.nvgre,
                NetworkType::Nvgre,
                "nvgre_ranges",
            ),
        ] {
            for (index, entry) in list.iter().enumerate() {
                out.push(parse_range(&format!("ml2.{name}[{index}]"), entry, ty)?);
            }
        }
        if self.physnet_mtu < 576 {
            return Err(ConfigError(
                "ml2.physnet_mtu: below the IPv4 minimum of 576".into(),
            ));
        }
        Ok(ranges)
    }
}

fn parse_range(field: &str, text: &str, ty: NetworkType) -> Result<(u32, u32), ConfigError> {
    let bad = || ConfigError(format!("{field}: expected MIN:MAX, got {text:?}"));
    let (min, max) = text.split_once(':').ok_or_else(bad)?;
    let min: u32 = min.trim().parse().map_err(|_| bad())?;
    let max: u32 = max.trim().parse().map_err(|_| bad())?;
    let (lo, hi) = ty.id_space().unwrap_or((0, 0));
    if min > max || min < lo || max > hi {
        return Err(ConfigError(format!(
            "{field}: {min}:{max} is not within {lo}:{hi} for {}",
            ty.as_str()
        )));
    }
    Ok((min, max))
}

/// VDP settings of the VSI type database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vsi {
    /// `MIN:MAX`: the VLANs a bridge port hands out when a station asks for VID 0 and the
    /// VSI type names no VLAN of its own (VLANs are local to a bridge port).
    pub vlan_range: String,
}

impl Default for Vsi {
    fn default() -> Self {
        Self {
            vlan_range: "2:4094".into(),
        }
    }
}

impl Vsi {
    /// The VLAN pool, checked: within 2..=4094 (VDP refuses VIDs 1 and 4095).
    pub fn vlans(&self) -> Result<(u16, u16), ConfigError> {
        let (min, max) = parse_range("vsi.vlan_range", &self.vlan_range, NetworkType::Vlan)?;
        let narrow = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let (min, max) = (narrow(min), narrow(max));
        if min < 2 {
            return Err(ConfigError(format!(
                "vsi.vlan_range: {min}:{max} includes VLAN 1, which VDP stations refuse"
            )));
        }
        Ok((min, max))
    }
}

/// A configuration file or setting that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let ranges = Config::default().ml2.ranges().unwrap();
        assert_eq!(ranges.vlan, vec![("physnet1".to_owned(), vec![(100, 299)])]);
        assert_eq!(ranges.vxlan, vec![(1, 16_777_215)]);
    }

    #[test]
    fn bad_range_names_field() {
        let err = Config::from_toml("[ml2]\nvni_ranges = [\"5:1\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("ml2.vni_ranges[0]"), "{err}");
        let err = Config::from_toml("[ml2]\nnetwork_vlan_ranges = [\"p:0:10\"]\n").unwrap_err();
        assert!(err.to_string().contains("network_vlan_ranges[0]"), "{err}");
        let err = Config::from_toml("[vsi]\nvlan_range = \"1:10\"\n").unwrap_err();
        assert!(err.to_string().contains("vsi.vlan_range"), "{err}");
        assert_eq!(Config::default().vsi.vlans().unwrap(), (2, 4094));
        let err = Config::from_toml("listen_on = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
    }
}
