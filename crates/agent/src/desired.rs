//! From the view to the switch configuration: what this host's switch should look like.
//!
//! - a tunnel port per tunnel type: `vxlan0` for vxlan, `gre0` for gre and nvgre;
//! - an uplink per bridge mapping (port named like the interface, serving the physnet);
//! - per network with at least one port bound here: a logical switch named by the network id,
//!   with a host-local VLAN, the local port's bound segment, the other hosts' tunnel endpoints
//!   as `flood` (tunnel segments only) and DHCP for its DHCP-enabled IPv4 subnets; a `tap`
//!   port per local port; a record per (other host's port, fixed IP) on tunnel segments.
//!
//! The configuration is kept as one pre-serialized fragment per network, so a change to one
//! network costs O(that network), and assembling the whole configuration is string
//! concatenation. Everything is sorted (networks and ports by id, records by address), so an
//! unchanged view gives a byte-identical configuration, which lets the runtime skip sending it.
//!
//! Anything the switch would refuse (a multicast MAC, an unparsable address, a segment this
//! host cannot reach, a second record for one address) is left out and reported as a
//! [`Problem`], never sent: the switch refuses a `replace` whole, and one bad port must not
//! stop every other network on the host from being programmed.

use core::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;
use serde_json::Value;
use wire::MacAddr;

use crate::{
    model::{BoundSegment, Port, SUBPORT_OWNER, Subnet},
    switch_config::{self as sc},
    view::{Changes, NetworkEntry, View},
};

/// The MAC the switch answers ARP for a DHCP server address with, on every network of every
/// host: `02` (locally administered, unicast) followed by "weft" in ASCII and `00`. It never
/// leaves the host (the switch answers for it at the VM edge), so one value serves all.
pub const DHCP_SERVER_MAC: MacAddr = MacAddr([0x02, 0x77, 0x65, 0x66, 0x74, 0x00]);
/// The DHCP lease when none is configured: a day.
pub const DEFAULT_DHCP_LEASE_SECS: u32 = 86_400;
/// The name of the VXLAN tunnel port.
pub const VXLAN_PORT: &str = "vxlan0";
/// The name of the GRE/NVGRE tunnel port.
pub const GRE_PORT: &str = "gre0";
/// How many characters of the port id follow `tap` in a TAP's name (Nova's convention).
pub const TAP_ID_CHARS: usize = 11;

/// A tunnel type the host terminates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunnelType {
    /// VXLAN (UDP 4789).
    Vxlan,
    /// GRE with a key.
    Gre,
    /// NVGRE (GRE with a VSID).
    Nvgre,
}

impl TunnelType {
    /// The name Neutron uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Gre => "gre",
            Self::Nvgre => "nvgre",
        }
    }
}

impl fmt::Display for TunnelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tunnel type name that is not vxlan, gre or nvgre.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tunnel type {0:?}; expected vxlan, gre or nvgre")]
pub struct UnknownTunnelType(pub String);

impl FromStr for TunnelType {
    type Err = UnknownTunnelType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "vxlan" => Ok(Self::Vxlan),
            "gre" => Ok(Self::Gre),
            "nvgre" => Ok(Self::Nvgre),
            other => Err(UnknownTunnelType(other.to_owned())),
        }
    }
}

/// What the agent knows about its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The host name ports are bound to.
    pub host: String,
    /// This host's tunnel endpoint address.
    pub tunnel_ip: IpAddr,
    /// The tunnel types it terminates.
    pub tunnel_types: BTreeSet<TunnelType>,
    /// Physical network → interface.
    pub bridge_mappings: BTreeMap<String, String>,
    /// The physical networks whose uplink is a VEPA edge relay (802.1Qbg, seed 000): the
    /// adjacent bridge switches, and reflects, even traffic between this host's VMs.
    pub vepa: BTreeSet<String>,
    /// Physical networks served by an S-channel of an uplink (802.1Qbg multichannel): the
    /// EVB station daemon adds the channel's edge relay to the switch once CDCP grants it
    /// (`set_s_channels`, which `replace` keeps), so the agent binds ports to them but makes
    /// no uplink port for them.
    pub channel_networks: BTreeSet<String>,
    /// The VXLAN port's `source_ports` (per-flow outer UDP source ports, RFC 7348 §5); `None`
    /// leaves the switch's default.
    pub vxlan_source_ports: Option<u16>,
    /// The DHCP lease handed out.
    pub dhcp_lease_secs: u32,
}

/// A segment in the switch's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Host-local only.
    Local,
    /// Untagged on a physical network.
    Flat(String),
    /// Tagged on a physical network.
    Vlan(String, u16),
    /// A VXLAN VNI.
    Vxlan(u32),
    /// A GRE key.
    Gre(u32),
    /// An NVGRE VSID.
    Nvgre(u32),
}

/// The largest VNI or VSID (24 bits).
const MAX_VNI: u64 = (1 << 24) - 1;

impl Segment {
    /// Reads a binding's segment, checking the ranges the switch checks.
    pub fn from_bound(segment: &BoundSegment) -> Result<Self, String> {
        let physnet = || {
            segment
                .physical_network
                .clone()
                .filter(|p| !p.is_empty() && !p.contains(':'))
                .ok_or_else(|| {
                    format!(
                        "{} segment without a physical network",
                        segment.network_type
                    )
                })
        };
        let id = |max: u64| {
            segment
                .segmentation_id
                .filter(|id| *id <= max)
                .ok_or_else(|| {
                    format!(
                        "{} segment with segmentation id {:?} (must be 0-{max})",
                        segment.network_type, segment.segmentation_id
                    )
                })
        };
        Ok(match segment.network_type.as_str() {
            "local" => Self::Local,
            "flat" => Self::Flat(physnet()?),
            "vlan" => {
                let vid = id(4094)?;
                let vid = u16::try_from(vid)
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| format!("vlan segment with VLAN id {vid} (must be 1-4094)"))?;
                Self::Vlan(physnet()?, vid)
            }
            "vxlan" => Self::Vxlan(narrow(id(MAX_VNI)?)),
            "gre" => Self::Gre(narrow(id(u64::from(u32::MAX))?)),
            "nvgre" => Self::Nvgre(narrow(id(MAX_VNI)?)),
            other => return Err(format!("unknown network type {other:?}")),
        })
    }

    /// True for vxlan, gre and nvgre.
    pub const fn is_tunnel(&self) -> bool {
        matches!(self, Self::Vxlan(_) | Self::Gre(_) | Self::Nvgre(_))
    }

    /// Whether `host` can carry this segment; if not, why.
    fn reachable(&self, host: &HostConfig) -> Result<(), String> {
        let tunnel = |kind: TunnelType| {
            if host.tunnel_types.contains(&kind) {
                Ok(())
            } else {
                Err(format!(
                    "bound to {self}, but this agent has no {kind} tunnels"
                ))
            }
        };
        match self {
            Self::Local => Ok(()),
            Self::Flat(physnet) | Self::Vlan(physnet, _) => {
                if host.bridge_mappings.contains_key(physnet)
                    || host.channel_networks.contains(physnet)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "bound to {self}, but this agent has no bridge mapping for {physnet:?}"
                    ))
                }
            }
            Self::Vxlan(_) => tunnel(TunnelType::Vxlan),
            Self::Gre(_) => tunnel(TunnelType::Gre),
            Self::Nvgre(_) => tunnel(TunnelType::Nvgre),
        }
    }
}

/// Ids already checked against a 32-bit maximum.
fn narrow(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Flat(physnet) => write!(f, "flat:{physnet}"),
            Self::Vlan(physnet, vid) => write!(f, "vlan:{physnet}:{vid}"),
            Self::Vxlan(vni) => write!(f, "vxlan:{vni}"),
            Self::Gre(key) => write!(f, "gre:{key}"),
            Self::Nvgre(vsid) => write!(f, "nvgre:{vsid}"),
        }
    }
}

/// Something in the view that could not be put into the switch configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The network it is on.
    pub network: String,
    /// What was left out and why.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network {}: {}", self.network, self.reason)
    }
}

/// Host-local VLAN ids by network. A live network keeps its id for as long as it has a
/// logical switch; a new one gets the lowest free id.
#[derive(Debug, Clone)]
pub struct VlanAllocator {
    by_network: HashMap<String, u16>,
    /// Bit `v` set: VLAN `v` is taken. 0 and 4095 are reserved by 802.1Q and always taken.
    used: [u64; 64],
}

impl Default for VlanAllocator {
    fn default() -> Self {
        let mut used = [0u64; 64];
        used[0] |= 1;
        used[63] |= 1 << 63;
        Self {
            by_network: HashMap::new(),
            used,
        }
    }
}

impl VlanAllocator {
    /// An allocator with every id free.
    pub fn new() -> Self {
        Self::default()
    }

    fn taken(&self, vid: u16) -> bool {
        self.used[usize::from(vid / 64)] & (1 << (vid % 64)) != 0
    }

    fn mark(&mut self, vid: u16, taken: bool) {
        let word = &mut self.used[usize::from(vid / 64)];
        if taken {
            *word |= 1 << (vid % 64);
        } else {
            *word &= !(1 << (vid % 64));
        }
    }

    /// Gives `network` the id `vid` (from a switch's existing configuration). False if the id
    /// is out of range or taken, or the network has one already.
    pub fn reserve(&mut self, network: &str, vid: u16) -> bool {
        if !(1..=4094).contains(&vid) || self.taken(vid) || self.by_network.contains_key(network) {
            return false;
        }
        self.mark(vid, true);
        self.by_network.insert(network.to_owned(), vid);
        true
    }

    /// The id of `network`, if it has one.
    pub fn get(&self, network: &str) -> Option<u16> {
        self.by_network.get(network).copied()
    }

    /// The id of `network`, allocating the lowest free one if it has none; `None` when all
    /// 4094 are taken.
    pub fn assign(&mut self, network: &str) -> Option<u16> {
        if let Some(vid) = self.get(network) {
            return Some(vid);
        }
        let (index, word) = self
            .used
            .iter()
            .enumerate()
            .find(|(_, word)| **word != u64::MAX)?;
        let vid = u16::try_from(index * 64).ok()? + u16::try_from(word.trailing_ones()).ok()?;
        self.mark(vid, true);
        self.by_network.insert(network.to_owned(), vid);
        Some(vid)
    }

    /// Frees the id of `network`.
    pub fn release(&mut self, network: &str) {
        if let Some(vid) = self.by_network.remove(network) {
            self.mark(vid, false);
        }
    }

    /// How many networks have an id.
    pub fn len(&self) -> usize {
        self.by_network.len()
    }

    /// True when no network has an id.
    pub fn is_empty(&self) -> bool {
        self.by_network.is_empty()
    }

    /// Frees the ids of every network for which `keep` is false.
    fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self
            .by_network
            .keys()
            .filter(|n| !keep(n))
            .cloned()
            .collect();
        for network in gone {
            self.release(&network);
        }
    }
}

/// A local port's TAP in a network's fragment.
#[derive(Debug, Clone)]
struct Tap {
    name: String,
    port_id: String,
    /// A trunk parent's subports: (VLAN, port id), reported up and down with the device.
    subports: Vec<(u16, String)>,
    json: String,
}

/// One network's part of the configuration, serialized.
#[derive(Debug, Clone)]
struct Fragment {
    segment: Segment,
    switch: String,
    taps: Vec<Tap>,
    records: Vec<String>,
}

/// The assembled configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The configuration object, as `replace` takes it.
    pub config: String,
    /// TAP name → port id, for every local port in it.
    pub local_ports: BTreeMap<String, String>,
    /// What was left out while assembling (conflicts between networks).
    pub problems: Vec<Problem>,
}

impl Assembled {
    /// The `replace` request line (without its newline).
    pub fn replace_request(&self) -> String {
        let mut line = String::with_capacity(self.config.len() + 32);
        line.push_str(r#"{"op":"replace","config":"#);
        line.push_str(&self.config);
        line.push('}');
        line
    }
}

/// The desired switch configuration, rebuilt network by network as the view changes.
#[derive(Debug, Clone)]
pub struct Desired {
    host: HostConfig,
    mac_aging_secs: Option<u64>,
    busy_poll_us: Option<u64>,
    vlans: VlanAllocator,
    fragments: BTreeMap<String, Fragment>,
    /// The tunnel and uplink ports, serialized: they depend on the host only.
    host_ports: Vec<String>,
}

impl Desired {
    /// The configuration of a host with no networks yet.
    pub fn new(host: HostConfig) -> Self {
        let tunnel_ip = host.tunnel_ip.to_string();
        let mut host_ports = Vec::new();
        if host.tunnel_types.contains(&TunnelType::Vxlan) {
            host_ports.push(to_json(&sc::Port::Vxlan {
                name: VXLAN_PORT.to_owned(),
                local_ip: tunnel_ip.clone(),
                source_ports: host.vxlan_source_ports,
            }));
        }
        if host.tunnel_types.contains(&TunnelType::Gre)
            || host.tunnel_types.contains(&TunnelType::Nvgre)
        {
            host_ports.push(to_json(&sc::Port::Gre {
                name: GRE_PORT.to_owned(),
                local_ip: tunnel_ip,
            }));
        }
        for (physnet, interface) in &host.bridge_mappings {
            host_ports.push(to_json(&sc::Port::Uplink {
                name: interface.clone(),
                physical_network: physnet.clone(),
                relay: host.vepa.contains(physnet).then(|| "vepa".to_owned()),
            }));
        }
        Self {
            host,
            mac_aging_secs: None,
            busy_poll_us: None,
            vlans: VlanAllocator::new(),
            fragments: BTreeMap::new(),
            host_ports,
        }
    }

    /// The host this configuration is for.
    pub const fn host(&self) -> &HostConfig {
        &self.host
    }

    /// The VLAN allocator.
    pub const fn vlans(&self) -> &VlanAllocator {
        &self.vlans
    }

    /// Takes over what the switch has now (its `list` result): each logical switch's VLAN id,
    /// so networks keep their ids across an agent restart, and the daemon-wide settings, so
    /// `replace` keeps them. Returns how many VLAN ids were taken over.
    pub fn seed(&mut self, list: &Value) -> usize {
        self.mac_aging_secs = list.get("mac_aging_secs").and_then(Value::as_u64);
        self.busy_poll_us = list.get("busy_poll_us").and_then(Value::as_u64);
        let mut seeded = 0;
        for switch in list
            .get("switch")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            let name = switch.get("name").and_then(Value::as_str);
            let vid = switch
                .get("local_vlan")
                .and_then(Value::as_u64)
                .and_then(|v| u16::try_from(v).ok());
            if let (Some(name), Some(vid)) = (name, vid)
                && self.vlans.reserve(name, vid)
            {
                seeded += 1;
            }
        }
        seeded
    }

    /// Brings the configuration up to date with `changes` of `view`, rebuilding only the
    /// networks named there (everything on a resync). Returns what had to be left out.
    pub fn update(&mut self, view: &View, changes: &Changes) -> Vec<Problem> {
        let mut problems = Vec::new();
        if changes.all {
            self.fragments.retain(|id, _| view.network(id).is_some());
            self.vlans.retain(|id| view.network(id).is_some());
            let ids: Vec<&str> = view.networks().keys().map(String::as_str).collect();
            self.refresh(view, ids, &mut problems);
        } else {
            let mut ids: BTreeSet<&str> = changes.networks.iter().map(String::as_str).collect();
            // A trunk parent's device carries its subports, which live on other networks: a
            // change there rebuilds the parent's network too.
            let host = self.host.clone();
            for parent in trunk_parents(view, &host) {
                let touched = parent
                    .trunk_details
                    .iter()
                    .flat_map(|t| &t.sub_ports)
                    .any(|sub| {
                        view.port(&sub.port_id)
                            .is_none_or(|p| changes.networks.contains(&p.network_id))
                    });
                if touched {
                    ids.insert(parent.network_id.as_str());
                }
            }
            self.refresh(view, ids.into_iter().collect(), &mut problems);
        }
        problems
    }

    /// Rebuilds every network of `view`.
    pub fn rebuild(&mut self, view: &View) -> Vec<Problem> {
        self.update(
            view,
            &Changes {
                all: true,
                networks: BTreeSet::new(),
            },
        )
    }

    fn refresh(&mut self, view: &View, ids: Vec<&str>, problems: &mut Vec<Problem>) {
        // Free the ids of networks that lose their switch before giving ids to new ones, so
        // a host with many networks coming and going does not run out.
        let mut wanted = Vec::new();
        for id in ids {
            let planned = view
                .network(id)
                .and_then(|entry| plan(entry, &self.host, problems).map(|s| (entry, s)));
            match planned {
                Some(plan) => wanted.push(plan),
                None => {
                    self.fragments.remove(id);
                    self.vlans.release(id);
                }
            }
        }
        for (entry, segment) in wanted {
            let id = &entry.network.id;
            let Some(vlan) = self.vlans.assign(id) else {
                self.fragments.remove(id);
                problems.push(problem(
                    id,
                    "no free host-local VLAN id (4094 networks here)",
                ));
                continue;
            };
            let fragment = render(view, entry, &self.host, segment, vlan, problems);
            self.fragments.insert(id.clone(), fragment);
        }
    }

    /// How many local ports (TAPs) the configuration has.
    pub fn device_count(&self) -> usize {
        self.fragments.values().map(|f| f.taps.len()).sum()
    }

    /// The whole configuration, serialized.
    pub fn assemble(&self) -> Assembled {
        let size: usize = self
            .fragments
            .values()
            .map(|f| {
                f.switch.len()
                    + f.taps.iter().map(|t| t.json.len() + 1).sum::<usize>()
                    + f.records.iter().map(|r| r.len() + 1).sum::<usize>()
            })
            .sum();
        let mut config = String::with_capacity(size + 256);
        let mut problems = Vec::new();
        config.push('{');
        if let Some(secs) = self.mac_aging_secs {
            config.push_str(&format!(r#""mac_aging_secs":{secs},"#));
        }
        if let Some(us) = self.busy_poll_us {
            config.push_str(&format!(r#""busy_poll_us":{us},"#));
        }
        // Two networks on one segment cannot both have a switch (the switch refuses it);
        // it happens only while a stale view catches up, and the first by id wins.
        let mut segments = HashSet::new();
        let mut included = Vec::with_capacity(self.fragments.len());
        for (id, fragment) in &self.fragments {
            if segments.insert(&fragment.segment) {
                included.push((id, fragment));
            } else {
                problems.push(problem(
                    id,
                    &format!("segment {} is another network's", fragment.segment),
                ));
            }
        }
        config.push_str(r#""switch":["#);
        join(&mut config, included.iter().map(|(_, f)| f.switch.as_str()));
        config.push_str(r#"],"port":["#);
        let mut local_ports = BTreeMap::new();
        let mut taps = Vec::new();
        for (id, fragment) in &included {
            for tap in &fragment.taps {
                if let Some(other) = local_ports.get(&tap.name) {
                    problems.push(problem(
                        id,
                        &format!(
                            "port {}: TAP name {} is port {other}'s",
                            tap.port_id, tap.name
                        ),
                    ));
                    continue;
                }
                local_ports.insert(tap.name.clone(), tap.port_id.clone());
                for (vlan, port) in &tap.subports {
                    local_ports.insert(format!("{}.{vlan}", tap.name), port.clone());
                }
                taps.push(tap.json.as_str());
            }
        }
        join(
            &mut config,
            self.host_ports.iter().map(String::as_str).chain(taps),
        );
        config.push_str(r#"],"record":["#);
        join(
            &mut config,
            included
                .iter()
                .flat_map(|(_, f)| f.records.iter().map(String::as_str)),
        );
        config.push_str("]}");
        Assembled {
            config,
            local_ports,
            problems,
        }
    }
}

fn join<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
}

fn problem(network: &str, reason: &str) -> Problem {
    Problem {
        network: network.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Serializes one of the plain configuration structs. These have only strings, numbers,
/// booleans and lists, for which serde_json cannot fail; "null" would make the switch refuse
/// the configuration rather than silently drop the item.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The ports of `entry` bound to this host, by id.
fn local_ports<'a>(
    entry: &'a NetworkEntry,
    host: &'a HostConfig,
) -> impl Iterator<Item = &'a Port> {
    entry
        .ports
        .values()
        .filter(|p| p.bound_host() == Some(host.host.as_str()))
}

/// The local ports that are trunk parents.
fn trunk_parents<'a>(view: &'a View, host: &'a HostConfig) -> impl Iterator<Item = &'a Port> {
    view.networks()
        .values()
        .flat_map(move |entry| local_ports(entry, host))
        .filter(|p| {
            p.trunk_details
                .as_ref()
                .is_some_and(|t| !t.sub_ports.is_empty())
        })
}

/// The segment of the network's logical switch: that of its first local port (by id), when
/// this host can reach it. `None` when the network needs no switch here.
fn plan(entry: &NetworkEntry, host: &HostConfig, problems: &mut Vec<Problem>) -> Option<Segment> {
    let id = &entry.network.id;
    let first = local_ports(entry, host).next()?;
    let segment = first
        .binding
        .as_ref()
        .and_then(|b| b.segment.as_ref())
        .ok_or_else(|| format!("port {} is bound here without a segment", first.id))
        .and_then(|s| Segment::from_bound(s).map_err(|e| format!("port {}: {e}", first.id)))
        .and_then(|s| s.reachable(host).map(|()| s));
    match segment {
        Ok(segment) => Some(segment),
        Err(reason) => {
            problems.push(problem(id, &reason));
            None
        }
    }
}

/// A trunk parent's subports that are in the view and bound here, as the switch takes them;
/// with (VLAN, port id) for device reports. A subport whose network has no switch here yet
/// (its join has not arrived) is left out until it has.
fn trunk_subports(
    view: &View,
    host: &HostConfig,
    parent: &Port,
    problems: &mut Vec<Problem>,
) -> (Vec<sc::Subport>, Vec<(u16, String)>) {
    let mut out = Vec::new();
    let mut ids = Vec::new();
    let Some(details) = &parent.trunk_details else {
        return (out, ids);
    };
    for sub in &details.sub_ports {
        let Some(port) = view.port(&sub.port_id) else {
            continue;
        };
        if port.bound_host() != Some(host.host.as_str()) {
            continue;
        }
        if !(1..=4094).contains(&sub.segmentation_id)
            || out
                .iter()
                .any(|s: &sc::Subport| s.vlan == sub.segmentation_id)
        {
            problems.push(problem(
                &parent.network_id,
                &format!(
                    "port {}: subport VLAN {} left out",
                    parent.id, sub.segmentation_id
                ),
            ));
            continue;
        }
        let Some(mac) = parse_mac(&port.mac_address) else {
            problems.push(problem(
                &port.network_id,
                &format!(
                    "subport {}: {:?} is not a unicast MAC",
                    port.id, port.mac_address
                ),
            ));
            continue;
        };
        let ips = port
            .fixed_ips
            .iter()
            .filter_map(|f| f.ip_address.parse::<IpAddr>().ok())
            .map(|ip| ip.to_string())
            .collect();
        let allowed_pairs = port
            .allowed_address_pairs
            .iter()
            .filter_map(|pair| {
                let pair_mac = match pair.mac_address.as_deref() {
                    Some(text) if !text.is_empty() => parse_mac(text)?,
                    _ => mac,
                };
                Some(sc::AllowedPair {
                    mac: pair_mac.to_string(),
                    ip: parse_prefix(&pair.ip_address)?.to_string(),
                })
            })
            .collect();
        out.push(sc::Subport {
            vlan: sub.segmentation_id,
            switch: port.network_id.clone(),
            mac: mac.to_string(),
            ips,
            allowed_pairs,
            port_security: port.port_security_enabled,
        });
        ids.push((sub.segmentation_id, port.id.clone()));
    }
    (out, ids)
}

/// The TAP name of a port: `tap` + the first 11 characters of its id.
pub fn tap_name(port_id: &str) -> String {
    let mut name = String::from("tap");
    name.extend(port_id.chars().take(TAP_ID_CHARS));
    name
}

/// True for a name Linux accepts for an interface (what the switch checks).
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

fn parse_mac(text: &str) -> Option<MacAddr> {
    text.parse::<MacAddr>().ok().filter(MacAddr::is_unicast)
}

/// An allowed-address-pair address: a prefix, or an address meaning its host prefix.
fn parse_prefix(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn render(
    view: &View,
    entry: &NetworkEntry,
    host: &HostConfig,
    segment: Segment,
    vlan: u16,
    problems: &mut Vec<Problem>,
) -> Fragment {
    let id = &entry.network.id;
    let mut taps = Vec::new();
    let mut local_macs = HashSet::new();
    for port in local_ports(entry, host) {
        if port.device_owner == SUBPORT_OWNER {
            // It has no device of its own: its frames come tagged through its parent's.
            if let Ok(mac) = port.mac_address.parse::<MacAddr>() {
                local_macs.insert(mac);
            }
            continue;
        }
        let name = tap_name(&port.id);
        if !valid_interface_name(&name) {
            problems.push(problem(
                id,
                &format!("port {}: {name:?} is not an interface name", port.id),
            ));
            continue;
        }
        let Some(mac) = parse_mac(&port.mac_address) else {
            problems.push(problem(
                id,
                &format!(
                    "port {}: {:?} is not a unicast MAC",
                    port.id, port.mac_address
                ),
            ));
            continue;
        };
        local_macs.insert(mac);
        let mut ips = Vec::with_capacity(port.fixed_ips.len());
        for fixed in &port.fixed_ips {
            match fixed.ip_address.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip.to_string()),
                Err(_) => problems.push(problem(
                    id,
                    &format!("port {}: fixed IP {:?} left out", port.id, fixed.ip_address),
                )),
            }
        }
        let mut allowed_pairs = Vec::with_capacity(port.allowed_address_pairs.len());
        for pair in &port.allowed_address_pairs {
            let pair_mac = match pair.mac_address.as_deref() {
                Some(text) if !text.is_empty() => parse_mac(text),
                _ => Some(mac),
            };
            match (pair_mac, parse_prefix(&pair.ip_address)) {
                (Some(mac), Some(ip)) => allowed_pairs.push(sc::AllowedPair {
                    mac: mac.to_string(),
                    ip: ip.to_string(),
                }),
                _ => problems.push(problem(
                    id,
                    &format!(
                        "port {}: allowed address pair {:?}/{:?} left out",
                        port.id, pair.ip_address, pair.mac_address
                    ),
                )),
            }
        }
        let (subports, sub_ids) = trunk_subports(view, host, port, problems);
        let json = to_json(&sc::Port::Tap {
            name: name.clone(),
            switch: id.clone(),
            mac: mac.to_string(),
            ips,
            allowed_pairs,
            port_security: port.port_security_enabled,
            subports,
        });
        taps.push(Tap {
            name,
            port_id: port.id.clone(),
            subports: sub_ids,
            json,
        });
    }

    let mut flood = BTreeSet::new();
    let mut records: BTreeMap<IpAddr, (MacAddr, IpAddr)> = BTreeMap::new();
    let mut remote_of_mac: HashMap<MacAddr, IpAddr> = HashMap::new();
    if segment.is_tunnel() {
        for port in entry.ports.values() {
            let Some(binding) = &port.binding else {
                continue;
            };
            if binding.host == host.host {
                continue;
            }
            // Only ports on this very segment are reachable through the tunnel: a port of a
            // multi-segment network bound to a VLAN segment elsewhere is not.
            let same = binding
                .segment
                .as_ref()
                .and_then(|s| Segment::from_bound(s).ok())
                .is_some_and(|s| s == segment);
            let remote = binding
                .tunnel_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .filter(|ip| *ip != host.tunnel_ip && !ip.is_unspecified());
            let (true, Some(remote)) = (same, remote) else {
                continue;
            };
            flood.insert(remote);
            let Some(mac) = parse_mac(&port.mac_address).filter(|m| !local_macs.contains(m)) else {
                problems.push(problem(
                    id,
                    &format!(
                        "remote port {}: MAC {:?} left out",
                        port.id, port.mac_address
                    ),
                ));
                continue;
            };
            if let Some(other) = remote_of_mac.get(&mac)
                && *other != remote
            {
                problems.push(problem(
                    id,
                    &format!("remote port {}: {mac} is already behind {other}", port.id),
                ));
                continue;
            }
            remote_of_mac.insert(mac, remote);
            for fixed in &port.fixed_ips {
                let Ok(ip) = fixed.ip_address.parse::<IpAddr>() else {
                    continue;
                };
                if records.contains_key(&ip) {
                    problems.push(problem(
                        id,
                        &format!("remote port {}: a second record for {ip}", port.id),
                    ));
                    continue;
                }
                records.insert(ip, (mac, remote));
            }
        }
    }
    let records = records
        .into_iter()
        .map(|(ip, (mac, remote))| {
            to_json(&sc::Record {
                switch: id.clone(),
                ip: ip.to_string(),
                mac: mac.to_string(),
                remote: remote.to_string(),
            })
        })
        .collect();

    let dhcp = entry
        .subnets
        .values()
        .filter(|s| s.enable_dhcp && s.ip_version == 4)
        .filter_map(|s| dhcp(s, entry.network.mtu, host.dhcp_lease_secs, problems))
        .collect();
    let switch = to_json(&sc::LogicalSwitch {
        name: id.clone(),
        local_vlan: vlan,
        segment: segment.to_string(),
        flood: flood.iter().map(ToString::to_string).collect(),
        dhcp,
    });
    Fragment {
        segment,
        switch,
        taps,
        records,
    }
}

/// The DHCP service for an IPv4 subnet.
fn dhcp(
    subnet: &Subnet,
    mtu: u32,
    lease_secs: u32,
    problems: &mut Vec<Problem>,
) -> Option<sc::Dhcp> {
    let Ok(cidr) = subnet.cidr.parse::<Ipv4Net>() else {
        problems.push(problem(
            &subnet.network_id,
            &format!(
                "subnet {}: cidr {:?} is not IPv4; no DHCP",
                subnet.id, subnet.cidr
            ),
        ));
        return None;
    };
    let cidr = cidr.trunc();
    let gateway = subnet
        .gateway_ip
        .as_deref()
        .and_then(|g| g.parse::<Ipv4Addr>().ok());
    let server_ip = gateway.unwrap_or_else(|| last_host(cidr));
    let dns = subnet
        .dns_nameservers
        .iter()
        .filter_map(|d| d.parse::<Ipv4Addr>().ok())
        .map(|d| d.to_string())
        .collect();
    let mut routes = Vec::with_capacity(subnet.host_routes.len());
    for route in &subnet.host_routes {
        match (
            route.destination.parse::<Ipv4Net>(),
            route.nexthop.parse::<Ipv4Addr>(),
        ) {
            (Ok(destination), Ok(nexthop)) => routes.push(sc::Route {
                destination: destination.trunc().to_string(),
                nexthop: nexthop.to_string(),
            }),
            _ => problems.push(problem(
                &subnet.network_id,
                &format!(
                    "subnet {}: host route {} via {} left out",
                    subnet.id, route.destination, route.nexthop
                ),
            )),
        }
    }
    Some(sc::Dhcp {
        cidr: cidr.to_string(),
        server_ip: server_ip.to_string(),
        server_mac: DHCP_SERVER_MAC.to_string(),
        router: gateway.map(|g| g.to_string()),
        dns,
        routes,
        mtu,
        lease_secs,
        domain: None,
    })
}

/// The last host address of a prefix: the one before broadcast, or for /31 and /32 (no
/// broadcast address) the last address.
pub fn last_host(cidr: Ipv4Net) -> Ipv4Addr {
    let broadcast = cidr.broadcast();
    if cidr.prefix_len() >= 31 {
        broadcast
    } else {
        Ipv4Addr::from(u32::from(broadcast) - 1)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        switch_config::{self as sc, Config},
        view::tests::{line, network, port, subnet},
    };

    const VX: (&str, Option<&str>, Option<u64>) = ("vxlan", None, Some(100));
    const VLAN: (&str, Option<&str>, Option<u64>) = ("vlan", Some("physnet1"), Some(200));
    const VX300: (&str, Option<&str>, Option<u64>) = ("vxlan", None, Some(300));

    fn host() -> HostConfig {
        HostConfig {
            host: "h1".into(),
            tunnel_ip: "192.0.2.1".parse().unwrap(),
            tunnel_types: [TunnelType::Vxlan, TunnelType::Nvgre].into(),
            bridge_mappings: [("physnet1".to_owned(), "pn1".to_owned())].into(),
            vepa: Default::default(),
            channel_networks: Default::default(),
            vxlan_source_ports: None,
            dhcp_lease_secs: 600,
        }
    }

    fn config(desired: &Desired) -> Config {
        serde_json::from_str(&desired.assemble().config).unwrap()
    }

    fn apply(view: &mut View, desired: &mut Desired, event: &Value) -> Vec<Problem> {
        view.apply_line(&line(event)).unwrap();
        let changes = view.take_changes();
        desired.update(view, &changes)
    }

    fn resync() -> Value {
        let mut with_routes = subnet("s1", "n1", "10.0.0.0/24", Some("10.0.0.1"));
        with_routes["dns_nameservers"] = json!(["192.0.2.53", "2001:db8::53"]);
        with_routes["host_routes"] =
            json!([{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}]);
        let mut v6 = subnet("s3", "n1", "fd00::/64", None);
        v6["ip_version"] = json!(6);
        let mut no_dhcp = subnet("s4", "n1", "10.4.0.0/24", None);
        no_dhcp["enable_dhcp"] = json!(false);
        let mut local = port(
            "p1",
            "n1",
            "FA:16:3E:00:00:01",
            &["10.0.0.5", "10.1.0.5"],
            "h1",
            "192.0.2.1",
            VX,
        );
        local["allowed_address_pairs"] = json!([
            {"ip_address": "10.0.0.100", "mac_address": "fa:16:3e:00:00:01"},
            {"ip_address": "10.0.1.0/24", "mac_address": "fa:16:3e:00:00:99"}
        ]);
        json!({
            "type": "resync", "revision": 10,
            "networks": [network("n1", 1450), network("n2", 1500), network("n3", 1500)],
            "subnets": [with_routes, subnet("s2", "n1", "10.1.0.0/24", None), v6, no_dhcp],
            "ports": [
                local,
                port("p2", "n1", "fa:16:3e:00:00:02", &["10.0.0.6"], "h2", "192.0.2.2", VX),
                port("p3", "n1", "fa:16:3e:00:00:03", &["10.0.0.7", "fd00::7"], "h3", "192.0.2.3", VX),
                port("p4", "n1", "fa:16:3e:00:00:04", &["10.0.0.8"], "", "", VX),
                port("p5", "n2", "fa:16:3e:00:00:05", &["10.2.0.5"], "h1", "192.0.2.1", VLAN),
                port("p6", "n2", "fa:16:3e:00:00:06", &["10.2.0.6"], "h2", "192.0.2.2", VLAN),
                port("p7", "n3", "fa:16:3e:00:00:07", &["10.3.0.7"], "h2", "192.0.2.2", VX),
            ],
        })
    }

    fn synced() -> (View, Desired) {
        let mut view = View::new();
        let mut desired = Desired::new(host());
        assert_eq!(apply(&mut view, &mut desired, &resync()), []);
        (view, desired)
    }

    /// A trunk: parent p1 on n1 (h1) with subports p5 (n2, VLAN 5) and p8 (n3, VLAN 8).
    #[test]
    fn a_trunk_parent_carries_its_subports_on_one_device() {
        let mut parent = port(
            "p1",
            "n1",
            "fa:16:3e:00:00:01",
            &["10.0.0.5"],
            "h1",
            "192.0.2.1",
            VX,
        );
        parent["trunk_details"] = json!({"trunk_id": "t1", "sub_ports": [
            {"port_id": "p5", "segmentation_type": "vlan", "segmentation_id": 5, "mac_address": "fa:16:3e:00:00:05"}]});
        let mut sub = port(
            "p5",
            "n2",
            "fa:16:3e:00:00:05",
            &["10.2.0.5"],
            "h1",
            "192.0.2.1",
            VLAN,
        );
        sub["device_owner"] = json!("trunk:subport");
        let mut view = View::new();
        let mut desired = Desired::new(host());
        let problems = apply(
            &mut view,
            &mut desired,
            &json!({"type": "resync", "revision": 3,
                    "networks": [network("n1", 1450), network("n2", 1500)],
                    "subnets": [], "ports": [parent, sub]}),
        );
        assert_eq!(problems, []);
        let c = config(&desired);
        let taps: Vec<&sc::Port> = c
            .port
            .iter()
            .filter(|p| matches!(p, sc::Port::Tap { .. }))
            .collect();
        assert_eq!(taps.len(), 1, "the subport has no TAP of its own: {taps:?}");
        let sc::Port::Tap { name, subports, .. } = taps[0] else {
            unreachable!()
        };
        assert_eq!(name, "tapp1");
        assert_eq!(subports.len(), 1);
        assert_eq!((subports[0].vlan, subports[0].switch.as_str()), (5, "n2"));
        assert_eq!(subports[0].ips, ["10.2.0.5"]);
        assert_eq!(c.switch.len(), 2, "the subport's network has its switch");
        let local = desired.assemble().local_ports;
        assert_eq!(local.get("tapp1.5").map(String::as_str), Some("p5"));

        // A second subport arrives live: its network joins, and the parent's device gets it.
        let mut parent = port(
            "p1",
            "n1",
            "fa:16:3e:00:00:01",
            &["10.0.0.5"],
            "h1",
            "192.0.2.1",
            VX,
        );
        parent["trunk_details"] = json!({"trunk_id": "t1", "sub_ports": [
            {"port_id": "p5", "segmentation_id": 5}, {"port_id": "p8", "segmentation_id": 8}]});
        let mut sub8 = port(
            "p8",
            "n3",
            "fa:16:3e:00:00:08",
            &["10.3.0.8"],
            "h1",
            "192.0.2.1",
            VX300,
        );
        sub8["device_owner"] = json!("trunk:subport");
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "join", "revision": 4,
            "network": network("n3", 1450), "subnets": [], "ports": [sub8]}),
        );
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "put", "revision": 5, "kind": "port", "object": parent}),
        );
        let c = config(&desired);
        let Some(sc::Port::Tap { subports, .. }) = c.port.iter().find(|p| p.name() == "tapp1")
        else {
            panic!("no parent TAP")
        };
        let vlans: Vec<u16> = subports.iter().map(|s| s.vlan).collect();
        assert_eq!(vlans, [5, 8]);
        // The subport's address changes on its own network: the parent's device follows.
        let mut sub8 = port(
            "p8",
            "n3",
            "fa:16:3e:00:00:08",
            &["10.3.0.9"],
            "h1",
            "192.0.2.1",
            VX300,
        );
        sub8["device_owner"] = json!("trunk:subport");
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "put", "revision": 6, "kind": "port", "object": sub8}),
        );
        let c = config(&desired);
        let Some(sc::Port::Tap { subports, .. }) = c.port.iter().find(|p| p.name() == "tapp1")
        else {
            panic!("no parent TAP")
        };
        assert_eq!(subports[1].ips, ["10.3.0.9"]);
        assert_eq!(desired.assemble().problems, []);
        assert_eq!(config(&desired).switch.len(), 3);
    }

    fn record(switch: &str, ip: &str, mac: &str, remote: &str) -> sc::Record {
        sc::Record {
            switch: switch.into(),
            ip: ip.into(),
            mac: mac.into(),
            remote: remote.into(),
        }
    }

    #[test]
    fn test_the_whole_configuration() {
        let (_, desired) = synced();
        let expected = Config {
            mac_aging_secs: None,
            busy_poll_us: None,
            switch: vec![
                sc::LogicalSwitch {
                    name: "n1".into(),
                    local_vlan: 1,
                    segment: "vxlan:100".into(),
                    flood: vec!["192.0.2.2".into(), "192.0.2.3".into()],
                    dhcp: vec![
                        sc::Dhcp {
                            cidr: "10.0.0.0/24".into(),
                            server_ip: "10.0.0.1".into(),
                            server_mac: "02:77:65:66:74:00".into(),
                            router: Some("10.0.0.1".into()),
                            dns: vec!["192.0.2.53".into()],
                            routes: vec![sc::Route {
                                destination: "10.9.0.0/16".into(),
                                nexthop: "10.0.0.254".into(),
                            }],
                            mtu: 1450,
                            lease_secs: 600,
                            domain: None,
                        },
                        sc::Dhcp {
                            cidr: "10.1.0.0/24".into(),
                            server_ip: "10.1.0.254".into(),
                            server_mac: "02:77:65:66:74:00".into(),
                            router: None,
                            dns: vec![],
                            routes: vec![],
                            mtu: 1450,
                            lease_secs: 600,
                            domain: None,
                        },
                    ],
                },
                sc::LogicalSwitch {
                    name: "n2".into(),
                    local_vlan: 2,
                    segment: "vlan:physnet1:200".into(),
                    flood: vec![],
                    dhcp: vec![],
                },
            ],
            port: vec![
                sc::Port::Vxlan {
                    name: "vxlan0".into(),
                    local_ip: "192.0.2.1".into(),
                    source_ports: None,
                },
                sc::Port::Gre {
                    name: "gre0".into(),
                    local_ip: "192.0.2.1".into(),
                },
                sc::Port::Uplink {
                    name: "pn1".into(),
                    physical_network: "physnet1".into(),
                    relay: None,
                },
                sc::Port::Tap {
                    name: "tapp1".into(),
                    switch: "n1".into(),
                    mac: "fa:16:3e:00:00:01".into(),
                    ips: vec!["10.0.0.5".into(), "10.1.0.5".into()],
                    allowed_pairs: vec![
                        sc::AllowedPair {
                            mac: "fa:16:3e:00:00:01".into(),
                            ip: "10.0.0.100/32".into(),
                        },
                        sc::AllowedPair {
                            mac: "fa:16:3e:00:00:99".into(),
                            ip: "10.0.1.0/24".into(),
                        },
                    ],
                    port_security: true,
                    subports: vec![],
                },
                sc::Port::Tap {
                    name: "tapp5".into(),
                    switch: "n2".into(),
                    mac: "fa:16:3e:00:00:05".into(),
                    ips: vec!["10.2.0.5".into()],
                    allowed_pairs: vec![],
                    port_security: true,
                    subports: vec![],
                },
            ],
            record: vec![
                record("n1", "10.0.0.6", "fa:16:3e:00:00:02", "192.0.2.2"),
                record("n1", "10.0.0.7", "fa:16:3e:00:00:03", "192.0.2.3"),
                record("n1", "fd00::7", "fa:16:3e:00:00:03", "192.0.2.3"),
            ],
        };
        assert_eq!(config(&desired), expected);
        assert_eq!(desired.device_count(), 2);
        let assembled = desired.assemble();
        assert_eq!(
            assembled.local_ports,
            BTreeMap::from([
                ("tapp1".to_owned(), "p1".to_owned()),
                ("tapp5".to_owned(), "p5".to_owned())
            ])
        );
        let request: Value = serde_json::from_str(&assembled.replace_request()).unwrap();
        assert_eq!(request["op"], "replace");
        assert_eq!(request["config"]["switch"][0]["name"], "n1");
    }

    #[test]
    fn test_tap_names_follow_nova() {
        assert_eq!(
            tap_name("3f2a0c1e-9b7d-4c55-8e21-0a1b2c3d4e5f"),
            "tap3f2a0c1e-9b"
        );
        assert_eq!(tap_name("3f2a0c1e-9b7d-4c55").len(), 14);
    }

    #[test]
    fn test_a_remote_port_moving_moves_its_record() {
        let (mut view, mut desired) = synced();
        let moved = json!({"type": "put", "revision": 11, "kind": "port",
            "object": port("p2", "n1", "fa:16:3e:00:00:02", &["10.0.0.6"], "h4", "192.0.2.4", VX)});
        assert_eq!(apply(&mut view, &mut desired, &moved), []);
        let config = config(&desired);
        assert_eq!(
            config.record[0],
            record("n1", "10.0.0.6", "fa:16:3e:00:00:02", "192.0.2.4")
        );
        assert_eq!(config.switch[0].flood, ["192.0.2.3", "192.0.2.4"]);
        // Unbinding it drops its record and, as h3 has nothing else there, its flood entry.
        let unbound = json!({"type": "put", "revision": 12, "kind": "port",
            "object": port("p2", "n1", "fa:16:3e:00:00:02", &["10.0.0.6"], "", "", VX)});
        apply(&mut view, &mut desired, &unbound);
        let config = self::config(&desired);
        assert!(config.record.iter().all(|r| r.ip != "10.0.0.6"));
        assert_eq!(config.switch[0].flood, ["192.0.2.3"]);
    }

    #[test]
    fn test_a_network_leaving_takes_everything_of_it() {
        let (mut view, mut desired) = synced();
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "leave", "revision": 11, "network_id": "n1"}),
        );
        let config = config(&desired);
        assert_eq!(
            config
                .switch
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["n2"]
        );
        assert!(config.record.is_empty());
        assert!(config.port.iter().all(|p| p.name() != "tapp1"));
        assert_eq!(desired.vlans().get("n1"), None);
        // The last local port going away (before any leave) does the same.
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "delete", "revision": 12, "kind": "port", "id": "p5"}),
        );
        assert!(self::config(&desired).switch.is_empty());
        assert_eq!(desired.device_count(), 0);
        assert!(desired.vlans().is_empty());
    }

    #[test]
    fn test_vlan_ids_stay_put() {
        let (mut view, mut desired) = synced();
        assert_eq!(
            (desired.vlans().get("n1"), desired.vlans().get("n2")),
            (Some(1), Some(2))
        );
        // n1 goes; a new network takes the free id, n2 keeps its own.
        apply(
            &mut view,
            &mut desired,
            &json!({"type": "leave", "revision": 11, "network_id": "n1"}),
        );
        let join = json!({"type": "join", "revision": 12, "network": network("n0", 1500),
            "ports": [port("p9", "n0", "fa:16:3e:00:00:09", &[], "h1", "192.0.2.1", ("vxlan", None, Some(5)))]});
        apply(&mut view, &mut desired, &join);
        assert_eq!(
            (desired.vlans().get("n0"), desired.vlans().get("n2")),
            (Some(1), Some(2))
        );
        // A local port arriving on n3, which sorts after both, gets the next id.
        let put = json!({"type": "put", "revision": 13, "kind": "port",
            "object": port("p8", "n3", "fa:16:3e:00:00:08", &[], "h1", "192.0.2.1", VX)});
        apply(&mut view, &mut desired, &put);
        assert_eq!(desired.vlans().get("n3"), Some(3));
        // A resync renumbers nothing that stays (n3 loses its local port, n0 is gone).
        let mut again = resync();
        again["revision"] = json!(20);
        apply(&mut view, &mut desired, &again);
        assert_eq!(desired.vlans().get("n2"), Some(2));
        assert_eq!(desired.vlans().get("n3"), None);
        assert_eq!(desired.vlans().get("n1"), Some(1));
    }

    #[test]
    fn test_an_agent_restart_takes_over_the_switch_ids() {
        let (view, desired) = synced();
        let list: Value = serde_json::from_str(&desired.assemble().config).unwrap();
        // A restarted agent whose switch had n2 on 7, n1 on 3, and a stale switch on 1.
        let mut list = list;
        list["switch"][0]["local_vlan"] = json!(3);
        list["switch"][1]["local_vlan"] = json!(7);
        list["switch"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "gone", "local_vlan": 1, "segment": "local"}));
        list["mac_aging_secs"] = json!(120);
        let mut restarted = Desired::new(host());
        assert_eq!(restarted.seed(&list), 3);
        restarted.rebuild(&view);
        let config = config(&restarted);
        assert_eq!(
            (config.switch[0].local_vlan, config.switch[1].local_vlan),
            (3, 7)
        );
        assert_eq!(config.mac_aging_secs, Some(120));
        assert_eq!(
            restarted.vlans().len(),
            2,
            "the stale switch's id is free again"
        );
    }

    #[test]
    fn test_output_is_deterministic_and_incremental_matches_a_rebuild() {
        let (mut view, mut desired) = synced();
        let events = [
            json!({"type": "put", "revision": 11, "kind": "port",
                "object": port("p10", "n1", "fa:16:3e:00:00:10", &["10.0.0.10"], "h5", "192.0.2.5", VX)}),
            json!({"type": "put", "revision": 12, "kind": "subnet",
                "object": subnet("s9", "n2", "10.2.0.0/24", Some("10.2.0.1"))}),
            json!({"type": "delete", "revision": 13, "kind": "port", "id": "p3"}),
            json!({"type": "put", "revision": 14, "kind": "network", "object": network("n1", 1400)}),
            json!({"type": "bookmark", "revision": 14}),
        ];
        for event in &events {
            apply(&mut view, &mut desired, event);
            let incremental = desired.assemble().config;
            assert_eq!(
                desired.assemble().config,
                incremental,
                "same view, same bytes"
            );
            let mut fresh = Desired::new(host());
            fresh.seed(&serde_json::from_str(&incremental).unwrap());
            fresh.rebuild(&view);
            assert_eq!(fresh.assemble().config, incremental, "after {event}");
        }
        let config = config(&desired);
        assert_eq!(config.switch[0].dhcp[0].mtu, 1400);
        assert_eq!(config.switch[1].dhcp.len(), 1);
        assert!(config.record.iter().all(|r| r.mac != "fa:16:3e:00:00:03"));
    }

    #[test]
    fn test_what_the_switch_would_refuse_is_left_out() {
        let mut view = View::new();
        let mut desired = Desired::new(host());
        let gre = ("gre", None, Some(7));
        let flat2 = ("flat", Some("physnet2"), None);
        let event = json!({
            "type": "resync", "revision": 1,
            "networks": [network("a", 1500), network("b", 1500), network("c", 1500), network("d", 1500)],
            "subnets": [],
            "ports": [
                // No gre tunnels here (only vxlan and nvgre): a's switch is left out.
                port("pa", "a", "fa:16:3e:00:00:0a", &[], "h1", "192.0.2.1", gre),
                // No mapping for physnet2.
                port("pb", "b", "fa:16:3e:00:00:0b", &[], "h1", "192.0.2.1", flat2),
                // A multicast MAC locally, a bad address, and two remotes claiming one IP.
                port("pc1", "c", "01:00:5e:00:00:01", &[], "h1", "192.0.2.1", VX),
                port("pc2", "c", "fa:16:3e:00:00:c2", &["10.0.0.2", "10.0.0.x"], "h1", "192.0.2.1", VX),
                port("pc3", "c", "fa:16:3e:00:00:c3", &["10.0.0.3"], "h2", "192.0.2.2", VX),
                port("pc4", "c", "fa:16:3e:00:00:c4", &["10.0.0.3"], "h3", "192.0.2.3", VX),
                // d on the same VNI as c: only one of them can have it.
                port("pd", "d", "fa:16:3e:00:00:0d", &[], "h1", "192.0.2.1", VX),
            ],
        });
        let problems = apply(&mut view, &mut desired, &event);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expected = [
            "network a: bound to gre:7, but this agent has no gre tunnels",
            "network b: bound to flat:physnet2, but this agent has no bridge mapping for \"physnet2\"",
            "network c: port pc1: \"01:00:5e:00:00:01\" is not a unicast MAC",
            "network c: port pc2: fixed IP \"10.0.0.x\" left out",
            "network c: remote port pc4: a second record for 10.0.0.3",
        ];
        assert_eq!(text, expected);
        let assembled = desired.assemble();
        assert_eq!(
            assembled
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["network d: segment vxlan:100 is another network's"]
        );
        let config: Config = serde_json::from_str(&assembled.config).unwrap();
        assert_eq!(config.switch.len(), 1);
        assert_eq!(
            config.record,
            [record("c", "10.0.0.3", "fa:16:3e:00:00:c3", "192.0.2.2")]
        );
        assert_eq!(assembled.local_ports.len(), 1);
    }

    #[test]
    fn test_a_network_on_an_s_channel_binds_without_an_uplink() {
        let mut host = host();
        host.channel_networks.insert("evb2".into());
        let mut view = View::new();
        let mut desired = Desired::new(host.clone());
        let on_channel = ("vlan", Some("evb2"), Some(300));
        let event = json!({
            "type": "resync", "revision": 1,
            "networks": [network("a", 1500)],
            "subnets": [],
            "ports": [port("pa", "a", "fa:16:3e:00:00:0a", &[], "h1", "192.0.2.1", on_channel)],
        });
        assert!(apply(&mut view, &mut desired, &event).is_empty());
        let assembled = desired.assemble();
        assert!(assembled.problems.is_empty(), "{:?}", assembled.problems);
        let config: Config = serde_json::from_str(&assembled.config).unwrap();
        assert_eq!(config.switch.len(), 1);
        // The station daemon adds the channel's relay; the agent makes no uplink for it.
        let uplinks: Vec<&sc::Port> = config
            .port
            .iter()
            .filter(|p| matches!(p, sc::Port::Uplink { .. }))
            .collect();
        assert_eq!(uplinks.len(), 1, "{uplinks:?}");
        let beat = crate::report::heartbeat(&host, false, 1);
        assert_eq!(
            beat["agent"]["configurations"]["bridge_mappings"]["evb2"],
            crate::report::CHANNEL_MAPPING
        );
    }

    #[test]
    fn test_segments_and_last_hosts() {
        let seg = |t: &str, p: Option<&str>, id: Option<u64>| {
            Segment::from_bound(&BoundSegment {
                network_type: t.into(),
                physical_network: p.map(Into::into),
                segmentation_id: id,
            })
            .map(|s| s.to_string())
        };
        assert_eq!(seg("vlan", Some("p"), Some(4094)).unwrap(), "vlan:p:4094");
        assert!(seg("vlan", Some("p"), Some(4095)).is_err());
        assert!(seg("vlan", Some("p"), Some(0)).is_err());
        assert!(seg("vlan", None, Some(5)).is_err());
        assert_eq!(
            seg("vxlan", None, Some(16_777_215)).unwrap(),
            "vxlan:16777215"
        );
        assert!(seg("vxlan", None, Some(16_777_216)).is_err());
        assert_eq!(
            seg("gre", None, Some(4_294_967_295)).unwrap(),
            "gre:4294967295"
        );
        assert_eq!(seg("nvgre", None, Some(9)).unwrap(), "nvgre:9");
        assert_eq!(seg("flat", Some("p"), None).unwrap(), "flat:p");
        assert_eq!(seg("local", None, None).unwrap(), "local");
        assert!(seg("geneve", None, Some(1)).is_err());
        let last = |c: &str| last_host(c.parse().unwrap()).to_string();
        assert_eq!(last("10.0.0.0/24"), "10.0.0.254");
        assert_eq!(last("10.0.0.0/30"), "10.0.0.2");
        assert_eq!(last("10.0.0.0/31"), "10.0.0.1");
        assert_eq!(last("10.0.0.9/32"), "10.0.0.9");
    }

    #[test]
    fn test_the_allocator_runs_out_cleanly() {
        let mut vlans = VlanAllocator::new();
        for i in 1..=4094u16 {
            assert_eq!(vlans.assign(&format!("n{i}")), Some(i));
        }
        assert_eq!(vlans.assign("more"), None);
        vlans.release("n77");
        assert_eq!(vlans.assign("more"), Some(77));
        assert!(!vlans.reserve("other", 4095));
        assert!(!vlans.reserve("other", 5));
    }
}
