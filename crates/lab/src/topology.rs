//! `weft lab`'s topology file: what the small data centre is made of, and every name and
//! address derived from it.
//!
//! ```toml
//! name = "weft"                    # prefix of everything the lab makes: 2-6 of [a-z0-9]
//! management = "198.18.0.0/24"     # root bridge with .1 (the controller); hosts .11, .12, ...
//! underlay = "192.0.2.0/24"        # bridge without a root address; tunnel IPs .11, .12, ...
//! tenant_network_type = "vxlan"    # vxlan | gre | nvgre | vlan
//! tunnel_types = ["vxlan"]         # what the agents offer (default: the tenant type's)
//!
//! [[physical_network]]
//! name = "physnet1"
//! vlan_range = "100:199"           # tenant VLANs on it (optional)
//!
//! [[host]]
//! name = "h1"
//! [[host]]
//! name = "h2"
//!
//! [evb]                            # optional: a ToR switch as 802.1Qbg EVB bridge (seed 000)
//! physical_network = "evb"         # the physical network its links are (default "evb")
//! vlan_range = "200:299"           # tenant VLANs on it (default 200:299)
//! relay = "vepa"                   # the hosts' edge relays: vepa (default) | veb
//! svid_range = "100:199"           # S-VLANs the ToR grants by CDCP (default 100:199)
//!
//! [[evb.channel]]                  # optional: another edge relay per host, on an S-channel
//! scid = 2                         # the channel the stations ask CDCP for (2-167)
//! physical_network = "evbveb"      # the physical network its edge relay serves
//! vlan_range = "300:399"           # its tenant VLANs, apart from the others'
//! relay = "veb"                    # veb (default) | vepa
//! ```
//!
//! With `[evb]`, a ToR namespace runs a `weft switch` with one station-facing port per host
//! and a `weft evb bridge` on each that asks the controller (the VSI type database) about
//! every VSI; every host's interface `evb` is its switch's uplink on that physical network
//! and runs a `weft evb station`. With `[[evb.channel]]`s the ToR's bridges run CDCP; each
//! station asks for the channels and, once granted, adds their edge relays to its host's
//! switch (S-tagged on `evb`), and the agents bind ports to their physical networks.
//!
//! Addresses stay inside the ranges set aside for documentation and benchmarks (RFC 5737,
//! RFC 2544), so the lab never claims an address someone could really use.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::netns::IFNAME_MAX;

/// The ranges a lab may put addresses in: 198.18.0.0/15 (RFC 2544) and the three
/// documentation networks (RFC 5737).
pub const ALLOWED_RANGES: [&str; 4] = [
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
];
/// The host part of the first host's management and tunnel address (.11); later hosts count
/// up from it.
const FIRST_HOST: u32 = 11;
/// The host part of the controller's management address (.1).
const CONTROLLER: u32 = 1;

/// A topology file that cannot be used; `field` names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TopologyError {
    /// The setting at fault (`host[1].name`, `management`), or `file` when the TOML itself
    /// does not parse.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl TopologyError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An IPv4 network: an address and a prefix length, host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The network address.
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// How many addresses it spans.
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address with host part `n`, if that is a host address (not the network's own
    /// address or its broadcast).
    pub fn host(self, n: u32) -> Option<Ipv4Addr> {
        (n > 0 && u64::from(n) + 1 < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// True when `other` lies wholly inside this network.
    pub fn contains_net(self, other: Self) -> bool {
        other.prefix >= self.prefix && u32::from(other.addr) & self.mask() == u32::from(self.addr)
    }

    /// True when the two networks share an address.
    pub fn overlaps(self, other: Self) -> bool {
        self.contains_net(other) || other.contains_net(self)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length (0-32)"))?;
        let net = Self { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(format!("{text} has host bits set"));
        }
        Ok(net)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(net: Ipv4Net) -> Self {
        net.to_string()
    }
}

/// A physical network: a bridge every host has an interface on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalNetwork {
    /// Its name in Neutron (`provider:physical_network`).
    pub name: String,
    /// The VLAN ids tenant networks may get on it, if any.
    pub vlan_range: Option<(u16, u16)>,
}

/// The EVB fabric: a ToR switch as the 802.1Qbg bridge, each host's uplink to it a station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evb {
    /// Its physical network's name in Neutron.
    pub physical_network: String,
    /// The VLAN ids tenant networks may get on it.
    pub vlan_range: (u16, u16),
    /// The hosts' edge relays: `vepa` or `veb`.
    pub relay: String,
    /// The S-VLANs the ToR's bridges grant by CDCP.
    #[serde(default = "default_svids")]
    pub svid_range: (u16, u16),
    /// More edge relays per host, each on an S-channel.
    #[serde(default)]
    pub channels: Vec<EvbChannel>,
}

/// An edge relay on an S-channel of every host's `evb` uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvbChannel {
    /// The S-channel id the stations ask CDCP for.
    pub scid: u16,
    /// The physical network the relay serves.
    pub physical_network: String,
    /// Its tenant VLANs.
    pub vlan_range: (u16, u16),
    /// `veb` or `vepa`.
    pub relay: String,
}

const fn default_svids() -> (u16, u16) {
    (100, 199)
}

impl Evb {
    /// True when the hosts' edge relays are VEPA (everything to the bridge, which reflects).
    pub fn vepa(&self) -> bool {
        self.relay == "vepa"
    }

    /// True when some host edge relay is VEPA (so reflective relay is asked for).
    pub fn any_vepa(&self) -> bool {
        self.vepa() || self.channels.iter().any(|c| c.relay == "vepa")
    }

    /// The S-channel (SCID) whose edge relay serves `physical_network`: 1 for the default
    /// channel's, `None` when the fabric does not serve it.
    pub fn scid_of(&self, physical_network: &str) -> Option<u16> {
        if physical_network == self.physical_network {
            return Some(1);
        }
        self.channels
            .iter()
            .find(|c| c.physical_network == physical_network)
            .map(|c| c.scid)
    }
}

/// A host's interface to the ToR (and the ToR's to the host is the host's name).
pub const EVB_UPLINK: &str = "evb";

/// One hypervisor: a namespace running `weft switch` and `weft agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its name (`--host` of its agent, `binding:host_id` of its ports).
    pub name: String,
}

/// A checked topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The prefix of every namespace, link and process marker the lab makes.
    pub name: String,
    /// The management network (controller and hosts).
    pub management: Ipv4Net,
    /// The underlay network (tunnel endpoints).
    pub underlay: Ipv4Net,
    /// The type tenant networks get.
    pub tenant_network_type: String,
    /// The tunnel types every agent offers.
    pub tunnel_types: Vec<String>,
    /// The physical networks.
    pub physical_networks: Vec<PhysicalNetwork>,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The EVB fabric, if any.
    #[serde(default)]
    pub evb: Option<Evb>,
}

/// The file as written; everything optional, checked into a [`Topology`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    management: Option<String>,
    underlay: Option<String>,
    tenant_network_type: Option<String>,
    tunnel_types: Option<Vec<String>>,
    physical_network: Option<Vec<FilePhysnet>>,
    host: Option<Vec<FileHost>>,
    evb: Option<FileEvb>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvb {
    physical_network: Option<String>,
    vlan_range: Option<String>,
    relay: Option<String>,
    svid_range: Option<String>,
    channel: Option<Vec<FileChannel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChannel {
    scid: u16,
    physical_network: String,
    vlan_range: Option<String>,
    relay: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePhysnet {
    name: String,
    vlan_range: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHost {
    name: String,
}

const TUNNEL_TYPES: [&str; 3] = ["vxlan", "gre", "nvgre"];

impl Default for Topology {
    /// `weft`: two hosts (h1, h2), one physical network (physnet1, VLANs 100-199), VXLAN
    /// tenant networks.
    fn default() -> Self {
        // The default file is empty; an empty file always checks.
        match Self::from_toml("") {
            Ok(topology) => topology,
            Err(err) => unreachable!("the default topology does not check: {err}"),
        }
    }
}

impl Topology {
    /// Reads and checks a topology file; errors name the field.
    pub fn from_toml(text: &str) -> Result<Self, TopologyError> {
        let file: File = toml::from_str(text).map_err(|err| {
            TopologyError::new("file", err.to_string().trim_end().replace('\n', " "))
        })?;
        file.check()
    }

    /// The management bridge in the root namespace.
    pub fn management_bridge(&self) -> String {
        format!("{}-mgmt", self.name)
    }

    /// The underlay bridge.
    pub fn underlay_bridge(&self) -> String {
        format!("{}-ul", self.name)
    }

    /// The bridge of physical network `index`.
    pub fn physnet_bridge(&self, index: usize) -> String {
        format!("{}-pn{}", self.name, index + 1)
    }

    /// Every bridge, management first.
    pub fn bridges(&self) -> Vec<String> {
        let mut bridges = vec![self.management_bridge(), self.underlay_bridge()];
        bridges.extend((0..self.physical_networks.len()).map(|i| self.physnet_bridge(i)));
        bridges
    }

    /// The ToR's namespace (with `[evb]`).
    pub fn tor_ns(&self) -> String {
        format!("{}-tor", self.name)
    }

    /// Host `host`'s namespace.
    pub fn host_ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// The namespace of VM `vm`.
    pub fn vm_ns(&self, vm: &str) -> String {
        format!("{}-vm-{vm}", self.name)
    }

    /// Host `host`'s veths as (root end, bridge, end inside the host): management, underlay,
    /// then one per physical network.
    pub fn host_links(&self, host: &str) -> Vec<HostLink> {
        let mut links = vec![
            HostLink {
                root: format!("{}-{host}m", self.name),
                bridge: self.management_bridge(),
                inside: "mgmt".into(),
            },
            HostLink {
                root: format!("{}-{host}u", self.name),
                bridge: self.underlay_bridge(),
                inside: "underlay".into(),
            },
        ];
        for i in 0..self.physical_networks.len() {
            links.push(HostLink {
                root: format!("{}-{host}p{}", self.name, i + 1),
                bridge: self.physnet_bridge(i),
                inside: physnet_interface(i),
            });
        }
        links
    }

    /// The controller's management address (.1).
    pub fn controller_ip(&self) -> Ipv4Addr {
        // Checked in `File::check`: the management network has room for it.
        self.management
            .host(CONTROLLER)
            .unwrap_or_else(|| self.management.addr())
    }

    /// Host `index`'s management address (.11 + index).
    pub fn host_management_ip(&self, index: usize) -> Ipv4Addr {
        host_ip(self.management, index)
    }

    /// Host `index`'s tunnel address on the underlay (.11 + index).
    pub fn host_tunnel_ip(&self, index: usize) -> Ipv4Addr {
        host_ip(self.underlay, index)
    }

    /// The `--bridge-mapping` values of every agent (`physnet1:pn1`, and `evb:evb` with
    /// `[evb]`).
    pub fn bridge_mappings(&self) -> Vec<String> {
        self.physical_networks
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}:{}", p.name, physnet_interface(i)))
            .chain(
                self.evb
                    .iter()
                    .map(|e| format!("{}:{EVB_UPLINK}", e.physical_network)),
            )
            .collect()
    }

    /// The controller's `[ml2]` section for this topology.
    pub fn ml2_toml(&self) -> String {
        let quoted = |items: Vec<String>| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let evb = self.evb.iter().flat_map(|e| {
            std::iter::once(PhysicalNetwork {
                name: e.physical_network.clone(),
                vlan_range: Some(e.vlan_range),
            })
            .chain(e.channels.iter().map(|c| PhysicalNetwork {
                name: c.physical_network.clone(),
                vlan_range: Some(c.vlan_range),
            }))
        });
        let physnets: Vec<PhysicalNetwork> =
            self.physical_networks.iter().cloned().chain(evb).collect();
        let vlan_ranges = physnets
            .iter()
            .map(|p| match p.vlan_range {
                Some((lo, hi)) => format!("{}:{lo}:{hi}", p.name),
                None => p.name.clone(),
            })
            .collect();
        let flat = physnets.iter().map(|p| p.name.clone()).collect();
        format!(
            "[ml2]\ntenant_network_types = [{}]\nflat_networks = [{}]\n\
             network_vlan_ranges = [{}]\n",
            quoted(vec![self.tenant_network_type.clone()]),
            quoted(flat),
            quoted(vlan_ranges),
        )
    }
}

/// One veth of a host: its end in the root namespace, the bridge that end is in, and its
/// name inside the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    /// The end in the root namespace (in `bridge`).
    pub root: String,
    /// The bridge.
    pub bridge: String,
    /// The end inside the host's namespace.
    pub inside: String,
}

/// The interface of physical network `index` inside a host (`pn1`, `pn2`, ...).
fn physnet_interface(index: usize) -> String {
    format!("pn{}", index + 1)
}

fn host_ip(net: Ipv4Net, index: usize) -> Ipv4Addr {
    let n = u32::try_from(index)
        .ok()
        .and_then(|i| i.checked_add(FIRST_HOST));
    // Checked in `File::check`: every host's address exists.
    n.and_then(|n| net.host(n)).unwrap_or_else(|| net.addr())
}

/// True for 1 to `max` of `[a-z0-9]`.
fn is_short_name(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn parse_net(field: &str, text: &str) -> Result<Ipv4Net, TopologyError> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|message: String| TopologyError::new(field, message))?;
    let allowed = ALLOWED_RANGES
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .any(|range| range.contains_net(net));
    if !allowed {
        return Err(TopologyError::new(
            field,
            format!(
                "{net} is outside the ranges the lab uses ({})",
                ALLOWED_RANGES.join(", ")
            ),
        ));
    }
    if net.prefix() > 29 {
        return Err(TopologyError::new(
            field,
            format!("{net} is too small (at most /29)"),
        ));
    }
    Ok(net)
}

fn parse_vlan_range(field: &str, text: &str) -> Result<(u16, u16), TopologyError> {
    let bad = || {
        TopologyError::new(
            field,
            format!("expected MIN:MAX within 1:4094, got {text:?}"),
        )
    };
    let (lo, hi) = text.split_once(':').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi || hi > 4094 {
        return Err(bad());
    }
    Ok((lo, hi))
}

impl File {
    fn check(self) -> Result<Topology, TopologyError> {
        let name = self.name.unwrap_or_else(|| "weft".into());
        if !(2..=6).contains(&name.len()) || !is_short_name(&name, 6) {
            return Err(TopologyError::new(
                "name",
                format!("{name:?}: 2 to 6 characters of a-z and 0-9"),
            ));
        }
        let management = parse_net(
            "management",
            self.management.as_deref().unwrap_or("198.18.0.0/24"),
        )?;
        let underlay = parse_net(
            "underlay",
            self.underlay.as_deref().unwrap_or("192.0.2.0/24"),
        )?;
        if management.overlaps(underlay) {
            return Err(TopologyError::new(
                "underlay",
                format!("{underlay} overlaps the management network {management}"),
            ));
        }
        let tenant_network_type = self.tenant_network_type.unwrap_or_else(|| "vxlan".into());
        if !TUNNEL_TYPES.contains(&tenant_network_type.as_str()) && tenant_network_type != "vlan" {
            return Err(TopologyError::new(
                "tenant_network_type",
                format!("{tenant_network_type:?}: one of vxlan, gre, nvgre, vlan"),
            ));
        }
        let tunnel_types = match self.tunnel_types {
            Some(types) => types,
            None if tenant_network_type == "vlan" => vec!["vxlan".into()],
            None => vec![tenant_network_type.clone()],
        };
        for (i, ty) in tunnel_types.iter().enumerate() {
            if !TUNNEL_TYPES.contains(&ty.as_str()) {
                return Err(TopologyError::new(
                    format!("tunnel_types[{i}]"),
                    format!("{ty:?}: one of vxlan, gre, nvgre"),
                ));
            }
        }
        if TUNNEL_TYPES.contains(&tenant_network_type.as_str())
            && !tunnel_types.contains(&tenant_network_type)
        {
            return Err(TopologyError::new(
                "tunnel_types",
                format!("must include the tenant network type {tenant_network_type:?}"),
            ));
        }

        let physnets = self.physical_network.unwrap_or_else(|| {
            vec![FilePhysnet {
                name: "physnet1".into(),
                vlan_range: Some("100:199".into()),
            }]
        });
        let mut physical_networks = Vec::new();
        for (i, p) in physnets.into_iter().enumerate() {
            let field = format!("physical_network[{i}]");
            let valid = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(TopologyError::new(
                    format!("{field}.name"),
                    format!("{:?}: 1 to 64 of letters, digits, '-' and '_'", p.name),
                ));
            }
            if physical_networks
                .iter()
                .any(|q: &PhysicalNetwork| q.name == p.name)
            {
                return Err(TopologyError::new(
                    format!("{field}.name"),
                    format!("{:?} appears twice", p.name),
                ));
            }
            let vlan_range = match &p.vlan_range {
                Some(text) => Some(parse_vlan_range(&format!("{field}.vlan_range"), text)?),
                None => None,
            };
            physical_networks.push(PhysicalNetwork {
                name: p.name,
                vlan_range,
            });
        }
        if tenant_network_type == "vlan"
            && !physical_networks.iter().any(|p| p.vlan_range.is_some())
        {
            return Err(TopologyError::new(
                "tenant_network_type",
                "vlan needs a physical_network with a vlan_range",
            ));
        }

        let hosts = self.host.unwrap_or_else(|| {
            ["h1", "h2"]
                .map(|name| FileHost { name: name.into() })
                .into()
        });
        if hosts.is_empty() {
            return Err(TopologyError::new("host", "at least one host"));
        }
        let evb = match self.evb {
            Some(file) => Some(check_evb(file, &physical_networks)?),
            None => None,
        };
        let topology = Topology {
            name,
            management,
            underlay,
            tenant_network_type,
            tunnel_types,
            physical_networks,
            hosts: Vec::new(),
            evb,
        };
        let mut checked: Vec<Host> = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let field = format!("host[{i}].name");
            // "vm" would make the host's namespace look like a VM's to a sweep.
            if !is_short_name(&host.name, 6) || host.name == "vm" {
                return Err(TopologyError::new(
                    field,
                    format!(
                        "{:?}: 1 to 6 characters of a-z and 0-9, not \"vm\"",
                        host.name
                    ),
                ));
            }
            if topology.evb.is_some() && host.name == "tor" {
                return Err(TopologyError::new(
                    field,
                    "\"tor\" is the ToR's namespace with [evb]: name the host otherwise",
                ));
            }
            if checked.iter().any(|h| h.name == host.name) {
                return Err(TopologyError::new(
                    field,
                    format!("{:?} appears twice", host.name),
                ));
            }
            for link in topology.host_links(&host.name) {
                if link.root.len() > IFNAME_MAX {
                    return Err(TopologyError::new(
                        field,
                        format!(
                            "interface name {} is longer than {IFNAME_MAX} bytes: shorten the \
                             host or lab name",
                            link.root
                        ),
                    ));
                }
            }
            let n = u32::try_from(i)
                .unwrap_or(u32::MAX)
                .saturating_add(FIRST_HOST);
            for (net_field, net) in [("management", management), ("underlay", underlay)] {
                if net.host(n).is_none() {
                    return Err(TopologyError::new(
                        net_field,
                        format!("{net} has no room for host {} at .{n}", i + 1),
                    ));
                }
            }
            checked.push(Host { name: host.name });
        }
        for (i, bridge) in topology.bridges().iter().enumerate() {
            if bridge.len() > IFNAME_MAX {
                return Err(TopologyError::new(
                    format!("physical_network[{}]", i.saturating_sub(2)),
                    format!("bridge name {bridge} is longer than {IFNAME_MAX} bytes"),
                ));
            }
        }
        Ok(Topology {
            hosts: checked,
            ..topology
        })
    }
}

/// Checks `[evb]` against the other physical networks.
fn check_evb(file: FileEvb, physnets: &[PhysicalNetwork]) -> Result<Evb, TopologyError> {
    let physical_network = file.physical_network.unwrap_or_else(|| "evb".into());
    if !physnet_name_ok(&physical_network) {
        return Err(TopologyError::new(
            "evb.physical_network",
            format!("{physical_network:?}: 1 to 64 of letters, digits, '-' and '_'"),
        ));
    }
    if physnets.iter().any(|p| p.name == physical_network) {
        return Err(TopologyError::new(
            "evb.physical_network",
            format!("{physical_network:?} is also a [[physical_network]]"),
        ));
    }
    let vlan_range = parse_vlan_range(
        "evb.vlan_range",
        file.vlan_range.as_deref().unwrap_or("200:299"),
    )?;
    let relay = check_relay("evb.relay", file.relay, "vepa")?;
    let svid_range = parse_vlan_range(
        "evb.svid_range",
        file.svid_range.as_deref().unwrap_or("100:199"),
    )?;
    let mut channels: Vec<EvbChannel> = Vec::new();
    for (i, channel) in file.channel.unwrap_or_default().into_iter().enumerate() {
        let field = |name: &str| format!("evb.channel[{i}].{name}");
        if !(2..=167).contains(&channel.scid) || channels.iter().any(|c| c.scid == channel.scid) {
            return Err(TopologyError::new(
                field("scid"),
                format!("{}: 2-167, once", channel.scid),
            ));
        }
        let name = channel.physical_network;
        let taken = physnets.iter().any(|p| p.name == name)
            || name == physical_network
            || channels.iter().any(|c| c.physical_network == name);
        if !physnet_name_ok(&name) || taken {
            return Err(TopologyError::new(
                field("physical_network"),
                format!("{name:?}: 1 to 64 of letters, digits, '-' and '_', and not used yet"),
            ));
        }
        let range = parse_vlan_range(
            &field("vlan_range"),
            channel.vlan_range.as_deref().unwrap_or("300:399"),
        )?;
        // The ToR keeps a logical switch per network, by VLAN: ranges must not meet.
        let overlaps = |other: (u16, u16)| range.0 <= other.1 && other.0 <= range.1;
        if overlaps(vlan_range) || channels.iter().any(|c| overlaps(c.vlan_range)) {
            return Err(TopologyError::new(
                field("vlan_range"),
                "overlaps another EVB physical network's",
            ));
        }
        channels.push(EvbChannel {
            scid: channel.scid,
            physical_network: name,
            vlan_range: range,
            relay: check_relay(&field("relay"), channel.relay, "veb")?,
        });
    }
    let needed = u32::try_from(channels.len()).unwrap_or(u32::MAX);
    if u32::from(svid_range.1 - svid_range.0) + 1 < needed {
        return Err(TopologyError::new(
            "evb.svid_range",
            "fewer S-VLANs than channels",
        ));
    }
    Ok(Evb {
        physical_network,
        vlan_range,
        relay,
        svid_range,
        channels,
    })
}

/// `vepa` or `veb` (`default` when not given).
fn check_relay(field: &str, relay: Option<String>, default: &str) -> Result<String, TopologyError> {
    let relay = relay.unwrap_or_else(|| default.into());
    if relay == "vepa" || relay == "veb" {
        Ok(relay)
    } else {
        Err(TopologyError::new(field, format!("{relay:?}: vepa or veb")))
    }
}

/// A physical network's name as Neutron takes it here: 1 to 64 of letters, digits, `-`, `_`.
fn physnet_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True for a VM name `weft lab vm` takes: 1 to 32 of `[a-z0-9-]`, starting with a letter or
/// digit.
pub fn valid_vm_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> TopologyError {
        Topology::from_toml(text).unwrap_err()
    }

    #[test]
    fn test_default_topology() {
        let t = Topology::default();
        assert_eq!(t.name, "weft");
        assert_eq!(t.management.to_string(), "198.18.0.0/24");
        assert_eq!(t.underlay.to_string(), "192.0.2.0/24");
        assert_eq!(t.hosts.len(), 2);
        assert_eq!(t.controller_ip(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(t.host_management_ip(1), Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(t.host_tunnel_ip(0), Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(t.bridge_mappings(), ["physnet1:pn1"]);
        assert_eq!(t.tunnel_types, ["vxlan"]);
        assert_eq!(t.host_ns("h1"), "weft-h1");
        assert_eq!(t.vm_ns("a"), "weft-vm-a");
        assert_eq!(t.bridges(), ["weft-mgmt", "weft-ul", "weft-pn1"]);
        let links = t.host_links("h2");
        assert_eq!(links[0].root, "weft-h2m");
        assert_eq!(links[2].inside, "pn1");
        let ml2 = t.ml2_toml();
        assert!(
            ml2.contains("network_vlan_ranges = [\"physnet1:100:199\"]"),
            "{ml2}"
        );
        assert!(ml2.contains("tenant_network_types = [\"vxlan\"]"), "{ml2}");
    }

    #[test]
    fn test_errors_name_the_field() {
        assert_eq!(error("name = \"W\"").field, "name");
        assert_eq!(error("name = \"toolong\"").field, "name");
        assert_eq!(error("management = \"10.0.0.0/24\"").field, "management");
        assert_eq!(error("management = \"198.18.0.1/24\"").field, "management");
        assert_eq!(error("underlay = \"198.18.0.0/16\"").field, "underlay");
        assert_eq!(
            error("tenant_network_type = \"geneve\"").field,
            "tenant_network_type"
        );
        assert_eq!(
            error("tunnel_types = [\"vxlan\", \"x\"]").field,
            "tunnel_types[1]"
        );
        assert_eq!(
            error("[[host]]\nname = \"h1\"\n[[host]]\nname = \"H2\"").field,
            "host[1].name"
        );
        assert_eq!(
            error("[[host]]\nname = \"h1\"\n[[host]]\nname = \"h1\"").field,
            "host[1].name"
        );
        assert_eq!(
            error("[[physical_network]]\nname = \"p\"\nvlan_range = \"5:1\"").field,
            "physical_network[0].vlan_range"
        );
        assert_eq!(error("colour = 1").field, "file");
        // abcdef-ghijklp1 is 15 bytes and fits; the tenth physical network's p10 does not.
        assert!(Topology::from_toml("name = \"abcdef\"\n[[host]]\nname = \"ghijkl\"").is_ok());
        let physnets: String = (1..=10)
            .map(|i| format!("[[physical_network]]\nname = \"p{i}\"\n"))
            .collect();
        let err = error(&format!(
            "name = \"abcdef\"\n{physnets}[[host]]\nname = \"ghijkl\""
        ));
        assert_eq!(err.field, "host[0].name");
        assert!(err.message.contains("15 bytes"), "{err}");
        let err = error(
            "management = \"198.18.0.0/28\"\n[[host]]\nname = \"a\"\n[[host]]\nname = \"b\"\n[[host]]\nname = \"c\"\n[[host]]\nname = \"d\"\n[[host]]\nname = \"e\"",
        );
        assert_eq!(err.field, "management", "{err}");
    }

    #[test]
    fn test_a_full_file() {
        let t = Topology::from_toml(
            "name = \"lab2\"\nmanagement = \"198.19.7.0/24\"\nunderlay = \"203.0.113.0/24\"\n\
             tenant_network_type = \"vlan\"\n\
             [[physical_network]]\nname = \"physnet1\"\nvlan_range = \"100:199\"\n\
             [[physical_network]]\nname = \"ext\"\n\
             [[host]]\nname = \"a\"\n",
        )
        .unwrap();
        assert_eq!(t.controller_ip(), Ipv4Addr::new(198, 19, 7, 1));
        assert_eq!(t.tunnel_types, ["vxlan"]);
        assert_eq!(t.bridge_mappings(), ["physnet1:pn1", "ext:pn2"]);
        assert!(t.ml2_toml().contains("\"physnet1:100:199\", \"ext\""));
    }

    #[test]
    fn test_an_evb_fabric() {
        let t = Topology::from_toml("[evb]\n").unwrap();
        let evb = t.evb.clone().unwrap();
        assert_eq!(
            (evb.physical_network.as_str(), evb.vlan_range, evb.vepa()),
            ("evb", (200, 299), true)
        );
        assert_eq!(t.bridge_mappings(), ["physnet1:pn1", "evb:evb"]);
        assert!(
            t.ml2_toml()
                .contains("\"physnet1:100:199\", \"evb:200:299\"")
        );
        assert_eq!(t.tor_ns(), "weft-tor");
        assert_eq!(error("[evb]\nrelay = \"hub\"").field, "evb.relay");
        assert_eq!(
            error("[evb]\nphysical_network = \"physnet1\"").field,
            "evb.physical_network"
        );
        assert_eq!(error("[evb]\nvlan_range = \"0:5\"").field, "evb.vlan_range");
        assert_eq!(
            error("[evb]\n[[host]]\nname = \"tor\"").field,
            "host[0].name"
        );
        assert!(Topology::default().evb.is_none());
        assert!(evb.channels.is_empty());
        assert_eq!(evb.svid_range, (100, 199));
        let t = Topology::from_toml(
            "[evb]\n[[evb.channel]]\nscid = 2\nphysical_network = \"evbveb\"\n",
        )
        .unwrap();
        let evb = t.evb.unwrap();
        assert_eq!(
            evb.channels,
            [EvbChannel {
                scid: 2,
                physical_network: "evbveb".into(),
                vlan_range: (300, 399),
                relay: "veb".into()
            }]
        );
        assert_eq!(
            (evb.scid_of("evb"), evb.scid_of("evbveb")),
            (Some(1), Some(2))
        );
        assert_eq!(evb.scid_of("physnet1"), None);
        let channel = |body: &str| error(&format!("[evb]\n[[evb.channel]]\n{body}"));
        assert_eq!(
            channel("scid = 1\nphysical_network = \"x\"").field,
            "evb.channel[0].scid"
        );
        assert_eq!(
            channel("scid = 2\nphysical_network = \"evb\"").field,
            "evb.channel[0].physical_network"
        );
        assert_eq!(
            channel("scid = 2\nphysical_network = \"x\"\nvlan_range = \"250:350\"").field,
            "evb.channel[0].vlan_range"
        );
        assert_eq!(
            channel("scid = 2\nphysical_network = \"x\"\nrelay = \"hub\"").field,
            "evb.channel[0].relay"
        );
    }

    #[test]
    fn test_networks() {
        let net: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        assert!(net.contains_net("198.19.3.0/24".parse().unwrap()));
        assert!(!net.contains_net("198.20.0.0/24".parse().unwrap()));
        let small: Ipv4Net = "192.0.2.0/30".parse().unwrap();
        assert_eq!(small.host(2), Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(small.host(3), None);
        assert_eq!(small.host(0), None);
        assert!("192.0.2.0/33".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn test_vm_names() {
        assert!(valid_vm_name("vm1"));
        assert!(valid_vm_name("web-2"));
        assert!(!valid_vm_name("-x"));
        assert!(!valid_vm_name("A"));
        assert!(!valid_vm_name(""));
    }
}
