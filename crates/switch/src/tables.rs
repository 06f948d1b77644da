//! The switch's configuration as an immutable snapshot: logical switches, ports, lookup records
//! and flood lists, with the indexes the pipeline reads.
//!
//! A change builds a new [`Tables`] from a [`Config`] ([`Tables::build`]), which validates it
//! and fails naming the field, and the switch swaps it in atomically. Readers never lock.
//!
//! **Trunk ports** (VLAN-aware VMs, Neutron trunks). A VM port may have subports
//! ([`PortKind::Subport`]): each is a port of its own in the tables, with its own logical
//! switch, MAC, addresses and port security, reached through its parent's device with an
//! 802.1Q tag. Because a subport has its own [`PortId`], learning, flooding and split horizon
//! treat every (device, VLAN) as a bridge port of its own with no extra code: a frame from
//! subport 1 is never sent back to subport 1, but is delivered to the parent or to subport 2
//! of the same VM when they are on its logical switch, as the seed's trunk bridge does.
//!
//! **EVB, bridge side** (802.1Qbg, seed 000). A station-facing port ([`PortKind::Station`])
//! is only a device: its S-channels ([`PortKind::Channel`]) are the bridge ports, one per
//! S-VLAN (802.1ad tag, TPID 0x88a8; untagged is the default channel, SVID 1), the same idea
//! as a trunk's subports one level out. Which logical switch a channel's frame belongs to is
//! given by the VSIs associated on that channel ([`Vsi`]: MAC, C-VLAN → logical switch), so a
//! channel is a member of exactly the logical switches its VSIs are on, and frames to a VSI
//! leave with its C-VLAN. With `vdp_gating`, a frame whose (source MAC, C-VLAN) is not an
//! associated VSI's is dropped (`vsi_not_associated`): figure 12's "no association, no
//! traffic". With `reflective_relay` a frame may go back out of the channel it came from.
//!
//! **EVB, station side.** An uplink is an edge relay's uplink: in [`RelayMode::Veb`] the VM
//! ports on its networks switch locally (as always), in [`RelayMode::Vepa`] everything a VM
//! sends goes to the bridge and what comes back is delivered locally, never to its sender.
//! The uplink itself is the edge relay of the default S-channel (SVID 1, untagged). Each of
//! its other S-channels ([`PortKind::UplinkChannel`]) is an uplink of its own in the tables:
//! it serves its own physical network with its own relay mode and is reached through the
//! uplink's device with an 802.1ad S-tag, pushed outside any C-tag of a VLAN network. Since
//! learning, VEPA reflection and split horizon all key on the port id, a channel's relay works
//! exactly like the default one and never mixes with it.

use core::{fmt, net::IpAddr};

use hashbrown::{HashMap, HashSet};
use ipnet::IpNet;
use wire::{MacAddr, Vni};

use crate::{dhcp, index::MacIndex};

/// Index of a port in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// Index of a logical switch in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LsId(pub u16);

/// How a logical switch's traffic leaves the host (Neutron's network types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Never leaves the host.
    Local,
    /// Untagged on the uplink of a physical network.
    Flat {
        /// The physical network (Neutron `provider:physical_network`).
        physical_network: String,
    },
    /// 802.1Q-tagged with the segmentation id on the uplink of a physical network.
    Vlan {
        /// The physical network.
        physical_network: String,
        /// The VLAN id, 1-4094.
        vid: u16,
    },
    /// VXLAN with this VNI to remote endpoints.
    Vxlan(Vni),
    /// GRE with this 32-bit key to remote endpoints.
    Gre(u32),
    /// NVGRE with this VSID to remote endpoints.
    Nvgre(Vni),
}

impl Segment {
    /// True for the overlay types, whose traffic goes through tunnels.
    pub const fn is_tunnel(&self) -> bool {
        matches!(self, Self::Vxlan(_) | Self::Gre(_) | Self::Nvgre(_))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Flat { physical_network } => write!(f, "flat:{physical_network}"),
            Self::Vlan {
                physical_network,
                vid,
            } => write!(f, "vlan:{physical_network}:{vid}"),
            Self::Vxlan(vni) => write!(f, "vxlan:{vni}"),
            Self::Gre(key) => write!(f, "gre:{key}"),
            Self::Nvgre(vsid) => write!(f, "nvgre:{vsid}"),
        }
    }
}

/// A logical switch: one tenant network on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalSwitch {
    /// The network's name or id (the controller's network UUID).
    pub name: String,
    /// The host-local VLAN id, as br-int's local VLAN in seed 003: it names the network inside
    /// this host and is translated to the segment on the way out and back.
    pub local_vlan: u16,
    /// How traffic leaves the host.
    pub segment: Segment,
    /// Remote tunnel endpoints that get a copy of broadcast and unknown unicast (head-end
    /// replication).
    pub flood: Vec<IpAddr>,
    /// The most MAC addresses learned on this network before learning stops.
    pub mac_limit: usize,
    /// The DHCP-enabled IPv4 subnets the switch answers DHCP for on this network.
    pub dhcp: Vec<dhcp::Subnet>,
}

/// What a port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A VM's NIC on a logical switch.
    Vm(VmPort),
    /// A VLAN of a VM's NIC (a trunk's subport): frames tagged `vlan` on the parent's device
    /// are this port's, untagged inside the switch. No device is ever bound to it directly.
    Subport {
        /// The VM port whose device carries it (a [`PortKind::Vm`], not another subport).
        parent: PortId,
        /// The 802.1Q VLAN id, 1-4094, unique among the parent's subports.
        vlan: u16,
        /// Its own logical switch, MAC, addresses and port security.
        vm: VmPort,
    },
    /// A physical uplink carrying flat and VLAN networks of one physical network.
    Uplink {
        /// The physical network it serves.
        physical_network: String,
        /// How the edge relay of its networks' VM ports switches (802.1Qbg).
        relay: RelayMode,
    },
    /// A bridge's station-facing port: the device that carries its S-channels. Not a bridge
    /// port itself; frames arriving on it are its channels'.
    Station,
    /// An S-channel of a station-facing port: a bridge port of its own, reached through the
    /// parent's device with an 802.1ad S-tag (none for SVID 1, the default channel).
    Channel(Channel),
    /// An S-channel of a station's uplink (not the default one): the uplink of its own edge
    /// relay, reached through the parent uplink's device with an 802.1ad S-tag. No device is
    /// ever bound to it directly.
    UplinkChannel(UplinkChannel),
    /// A tunnel endpoint socket (VXLAN over UDP, or GRE/NVGRE over raw IP).
    Tunnel {
        /// This host's underlay address.
        local_ip: IpAddr,
        /// Which tunnels the socket carries.
        protocol: TunnelProtocol,
    },
}

impl PortKind {
    /// The VM side of a VM port or subport.
    pub const fn vm(&self) -> Option<&VmPort> {
        match self {
            Self::Vm(vm) | Self::Subport { vm, .. } => Some(vm),
            _ => None,
        }
    }
}

/// How an edge relay (a station's virtual switch on one uplink) forwards between its VMs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RelayMode {
    /// Virtual Edge Bridge: local switching between the VM ports.
    #[default]
    Veb,
    /// Virtual Ethernet Port Aggregator: every frame from a VM goes to the bridge, which
    /// reflects what is for a local VM; reflected frames are delivered locally, never to the
    /// VM that sent them.
    Vepa,
}

impl RelayMode {
    /// The configuration's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Veb => "veb",
            Self::Vepa => "vepa",
        }
    }
}

/// An S-channel of a bridge's station-facing port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The [`PortKind::Station`] port whose device carries it.
    pub parent: PortId,
    /// The S-VLAN id, 1-4094; 1 is the default channel, untagged on the wire.
    pub svid: u16,
    /// Reflective relay was negotiated: a frame may leave by the channel it came in on.
    pub reflective_relay: bool,
    /// Only frames from associated VSIs (source MAC and C-VLAN) are accepted.
    pub vdp_gating: bool,
}

/// An S-channel of a station's uplink, with the edge relay attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkChannel {
    /// The [`PortKind::Uplink`] port whose device carries it.
    pub parent: PortId,
    /// The S-VLAN id, 2-4094 (1 is the default channel: the parent uplink itself).
    pub svid: u16,
    /// The physical network its edge relay serves.
    pub physical_network: String,
    /// How that edge relay forwards between its VMs.
    pub relay: RelayMode,
}

/// An associated VSI on a bridge's S-channel: its (MAC, C-VLAN) is on a logical switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vsi {
    /// The [`PortKind::Channel`] port.
    pub port: PortId,
    /// The VSI's MAC address.
    pub mac: MacAddr,
    /// Its C-VLAN, 1-4094, or 0 for untagged.
    pub vlan: u16,
    /// The logical switch (the profile's network).
    pub ls: LsId,
}

/// What a tunnel port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelProtocol {
    /// VXLAN networks (a UDP socket).
    Vxlan,
    /// GRE-key and NVGRE networks (a raw IP socket, protocol 47).
    Gre,
}

/// A VM's NIC and what it may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPort {
    /// The logical switch.
    pub ls: LsId,
    /// Its MAC address.
    pub mac: MacAddr,
    /// Its fixed IP addresses.
    pub ips: Vec<IpAddr>,
    /// Extra (MAC, prefix) pairs it may send from (Neutron `allowed_address_pairs`).
    pub allowed_pairs: Vec<(MacAddr, IpNet)>,
    /// Whether MAC/IP anti-spoofing applies (Neutron `port_security_enabled`).
    pub port_security: bool,
}

/// A port of the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The port's name (a TAP name, an interface, a socket label).
    pub name: String,
    /// What it is.
    pub kind: PortKind,
}

/// A lookup record: tenant address on a logical switch → the underlay address of the host
/// that has it (seed 004's CA/PA record; Neutron's L2 population entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// The logical switch.
    pub ls: LsId,
    /// The tenant (customer) IP address.
    pub ip: IpAddr,
    /// The tenant MAC address.
    pub mac: MacAddr,
    /// The provider (underlay) address of the host.
    pub remote: IpAddr,
}

/// Everything a snapshot is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Logical switches; `LsId(i)` is the i-th.
    pub switches: Vec<LogicalSwitch>,
    /// Ports; `PortId(i)` is the i-th.
    pub ports: Vec<Port>,
    /// Lookup records.
    pub records: Vec<Record>,
    /// VSIs associated on S-channels.
    pub vsis: Vec<Vsi>,
}

/// A configuration that cannot be built, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field holds a value it may not.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where, e.g. `switches[2].local_vlan`.
        field: String,
        /// Why.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What the pipeline knows about a tenant address it can answer ARP for or send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// On a local port.
    Local(PortId),
    /// Behind a remote tunnel endpoint.
    Remote(IpAddr),
    /// Beyond an uplink.
    Uplink(PortId),
}

/// The key a received tunnel header maps to a logical switch by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TunnelKey {
    Vxlan(u32),
    Gre(u32),
    Nvgre(u32),
}

/// The immutable snapshot the pipeline reads.
#[derive(Debug, Default)]
pub struct Tables {
    generation: u64,
    config: Config,
    /// Local VM ports of each logical switch, for flooding.
    members: Vec<Vec<PortId>>,
    /// The uplink or uplink S-channel serving each physical network.
    uplinks: HashMap<String, PortId>,
    /// Uplink-side VLAN (physical network, VID or None for flat) → logical switch.
    by_vlan: HashMap<(PortId, Option<u16>), LsId>,
    /// Tunnel header → logical switch.
    by_tunnel: HashMap<TunnelKey, LsId>,
    /// (logical switch, MAC) → where that MAC is, from records and VM ports.
    macs: MacIndex<Location>,
    /// (logical switch, allowed-pair MAC) → the one local VM port configured with it (`None`
    /// when several are): who sent a frame a VEPA bridge reflects back.
    pair_macs: HashMap<(LsId, MacAddr), Option<PortId>>,
    /// (logical switch, IP) → MAC, from records and VM ports (the ARP responder's table).
    ips: HashMap<(LsId, IpAddr), MacAddr>,
    /// Every remote endpoint named anywhere: tunnel packets from others are dropped.
    remotes: HashSet<IpAddr>,
    /// The tunnel port of each protocol.
    tunnel_ports: [Option<PortId>; 2],
    /// (parent VM port, VLAN) → subport.
    subports: HashMap<(PortId, u16), PortId>,
    /// Per port: true for a VM port with at least one subport (a tag it has no subport for is
    /// then counted as `unknown_subport`, not as `unexpected_tag`).
    trunks: Vec<bool>,
    /// (station port or uplink, SVID) → channel.
    channels: HashMap<(PortId, u16), PortId>,
    /// (channel, C-VLAN or 0) → logical switch, from the VSIs.
    channel_vlans: HashMap<(PortId, u16), LsId>,
    /// (channel, logical switch) → the C-VLAN its frames leave with (0: untagged).
    channel_tags: HashMap<(PortId, LsId), u16>,
    /// (channel, MAC, C-VLAN) of every associated VSI, for gating.
    vsis: HashSet<(PortId, MacAddr, u16)>,
    /// Per uplink and uplink S-channel: its edge relay's mode.
    relays: Vec<RelayMode>,
}

impl Tables {
    /// Validates `config` and builds its indexes; `generation` stamps the snapshot so caches
    /// derived from an older one can tell.
    pub fn build(config: Config, generation: u64) -> Result<Self, ConfigError> {
        let mut tables = Self {
            generation,
            ..Self::default()
        };
        let mut local_vlans = HashSet::new();
        let mut names = HashSet::new();
        tables.members = vec![Vec::new(); config.switches.len()];
        tables.trunks = vec![false; config.ports.len()];
        tables.relays = vec![RelayMode::Veb; config.ports.len()];
        if config.switches.len() > usize::from(u16::MAX)
            || config.ports.len() > usize::from(u16::MAX)
        {
            return Err(invalid("switches/ports", "at most 65535 of each"));
        }
        for (i, port) in config.ports.iter().enumerate() {
            let field = |name: &str| format!("ports[{i}].{name}");
            if port.name.is_empty() {
                return Err(invalid(field("name"), "must not be empty"));
            }
            if !names.insert(port.name.clone()) {
                return Err(invalid(
                    field("name"),
                    format!("{:?} is used by another port", port.name),
                ));
            }
            let id = PortId(u16::try_from(i).unwrap_or(u16::MAX));
            if let PortKind::Subport { parent, vlan, .. } = &port.kind {
                let is_vm = config
                    .ports
                    .get(usize::from(parent.0))
                    .is_some_and(|p| matches!(p.kind, PortKind::Vm(_)));
                if !is_vm {
                    return Err(invalid(
                        field("parent"),
                        format!("port {} is not a VM port", parent.0),
                    ));
                }
                if !(1..=4094).contains(vlan) {
                    return Err(invalid(field("vlan"), "must be 1-4094"));
                }
                if tables.subports.insert((*parent, *vlan), id).is_some() {
                    return Err(invalid(
                        field("vlan"),
                        format!("{vlan} is used by another subport of the same port"),
                    ));
                }
                if let Some(trunk) = tables.trunks.get_mut(usize::from(parent.0)) {
                    *trunk = true;
                }
            }
            match &port.kind {
                PortKind::Vm(vm) | PortKind::Subport { vm, .. } => {
                    let members =
                        tables
                            .members
                            .get_mut(usize::from(vm.ls.0))
                            .ok_or_else(|| {
                                invalid(field("ls"), format!("no logical switch {}", vm.ls.0))
                            })?;
                    members.push(id);
                    if !vm.mac.is_unicast() {
                        return Err(invalid(
                            field("mac"),
                            format!("{} is not a unicast address", vm.mac),
                        ));
                    }
                    tables.macs.insert(vm.ls, vm.mac, Location::Local(id));
                    for &(mac, _) in vm.allowed_pairs.iter().filter(|(mac, _)| *mac != vm.mac) {
                        tables
                            .pair_macs
                            .entry((vm.ls, mac))
                            .and_modify(|owner| {
                                if *owner != Some(id) {
                                    *owner = None;
                                }
                            })
                            .or_insert(Some(id));
                    }
                    for ip in &vm.ips {
                        tables.ips.insert((vm.ls, *ip), vm.mac);
                    }
                }
                PortKind::Station => {}
                PortKind::Channel(channel) => {
                    let is_station = config
                        .ports
                        .get(usize::from(channel.parent.0))
                        .is_some_and(|p| matches!(p.kind, PortKind::Station));
                    let parent = (channel.parent, is_station, "a station port");
                    tables.add_channel(i, id, parent, channel.svid, 1)?;
                }
                PortKind::Uplink {
                    physical_network,
                    relay,
                } => tables.add_relay(i, id, physical_network, *relay)?,
                PortKind::UplinkChannel(channel) => {
                    let is_uplink = config
                        .ports
                        .get(usize::from(channel.parent.0))
                        .is_some_and(|p| matches!(p.kind, PortKind::Uplink { .. }));
                    // SVID 1 is the default channel, which is the uplink itself.
                    let parent = (channel.parent, is_uplink, "an uplink");
                    tables.add_channel(i, id, parent, channel.svid, 2)?;
                    tables.add_relay(i, id, &channel.physical_network, channel.relay)?;
                }
                PortKind::Tunnel { protocol, .. } => {
                    let slot = &mut tables.tunnel_ports[*protocol as usize];
                    if slot.replace(id).is_some() {
                        return Err(invalid(
                            field("protocol"),
                            format!("a second {protocol:?} tunnel port"),
                        ));
                    }
                }
            }
        }
        for (i, ls) in config.switches.iter().enumerate() {
            let field = |name: &str| format!("switches[{i}].{name}");
            let id = LsId(u16::try_from(i).unwrap_or(u16::MAX));
            if !(1..=4094).contains(&ls.local_vlan) {
                return Err(invalid(field("local_vlan"), "must be 1-4094"));
            }
            if !local_vlans.insert(ls.local_vlan) {
                return Err(invalid(
                    field("local_vlan"),
                    format!("{} is used by another switch", ls.local_vlan),
                ));
            }
            let uplink = |physical_network: &str| {
                tables
                    .uplinks
                    .get(physical_network)
                    .copied()
                    .ok_or_else(|| {
                        invalid(
                            field("segment"),
                            format!("no uplink serves physical network {physical_network:?}"),
                        )
                    })
            };
            let duplicate = || {
                invalid(
                    field("segment"),
                    format!("{} is used by another switch", ls.segment),
                )
            };
            match &ls.segment {
                Segment::Local => {}
                Segment::Flat { physical_network } => {
                    let port = uplink(physical_network)?;
                    if tables.by_vlan.insert((port, None), id).is_some() {
                        return Err(duplicate());
                    }
                }
                Segment::Vlan {
                    physical_network,
                    vid,
                } => {
                    if !(1..=4094).contains(vid) {
                        return Err(invalid(field("segment"), "a VLAN id must be 1-4094"));
                    }
                    let port = uplink(physical_network)?;
                    if tables.by_vlan.insert((port, Some(*vid)), id).is_some() {
                        return Err(duplicate());
                    }
                }
                Segment::Vxlan(vni) => {
                    if tables
                        .by_tunnel
                        .insert(TunnelKey::Vxlan(vni.get()), id)
                        .is_some()
                    {
                        return Err(duplicate());
                    }
                }
                Segment::Gre(key) => {
                    if tables.by_tunnel.insert(TunnelKey::Gre(*key), id).is_some() {
                        return Err(duplicate());
                    }
                }
                Segment::Nvgre(vsid) => {
                    if tables
                        .by_tunnel
                        .insert(TunnelKey::Nvgre(vsid.get()), id)
                        .is_some()
                    {
                        return Err(duplicate());
                    }
                }
            }
            let protocol = match ls.segment {
                Segment::Vxlan(_) => Some(TunnelProtocol::Vxlan),
                Segment::Gre(_) | Segment::Nvgre(_) => Some(TunnelProtocol::Gre),
                _ => None,
            };
            if let Some(protocol) = protocol
                && tables.tunnel_ports[protocol as usize].is_none()
            {
                return Err(invalid(
                    field("segment"),
                    format!("no {protocol:?} tunnel port"),
                ));
            }
            if !ls.flood.is_empty() && !ls.segment.is_tunnel() {
                return Err(invalid(
                    field("flood"),
                    "only tunnel segments have remote endpoints",
                ));
            }
            tables.remotes.extend(ls.flood.iter().copied());
        }
        for (i, record) in config.records.iter().enumerate() {
            let field = |name: &str| format!("records[{i}].{name}");
            let ls = config
                .switches
                .get(usize::from(record.ls.0))
                .ok_or_else(|| {
                    invalid(field("ls"), format!("no logical switch {}", record.ls.0))
                })?;
            if !ls.segment.is_tunnel() {
                return Err(invalid(
                    field("ls"),
                    format!("{} is not a tunnel network", ls.name),
                ));
            }
            if !record.mac.is_unicast() {
                return Err(invalid(
                    field("mac"),
                    format!("{} is not a unicast address", record.mac),
                ));
            }
            if let Some(Location::Local(_)) = tables.macs.get(record.ls, record.mac) {
                return Err(invalid(
                    field("mac"),
                    format!("{} is a local port's address", record.mac),
                ));
            }
            tables
                .macs
                .insert(record.ls, record.mac, Location::Remote(record.remote));
            tables.ips.insert((record.ls, record.ip), record.mac);
            tables.remotes.insert(record.remote);
        }
        for (i, vsi) in config.vsis.iter().enumerate() {
            tables.add_vsi(&config, i, vsi)?;
        }
        // The DHCP server answers ARP for its address so unicast renewals reach it; a port or
        // record holding the same address (a router's interface on the gateway) wins.
        for (i, ls) in config.switches.iter().enumerate() {
            let id = LsId(u16::try_from(i).unwrap_or(u16::MAX));
            for subnet in &ls.dhcp {
                tables
                    .ips
                    .entry((id, IpAddr::V4(subnet.server_ip)))
                    .or_insert(subnet.server_mac);
            }
        }
        tables.config = config;
        Ok(tables)
    }

    /// Indexes port `i` as S-channel `svid` (at least `min`) of `parent` = (its id, whether
    /// it is the kind of port that carries such channels, that kind's name).
    fn add_channel(
        &mut self,
        i: usize,
        id: PortId,
        (parent, carries, kind): (PortId, bool, &str),
        svid: u16,
        min: u16,
    ) -> Result<(), ConfigError> {
        let field = |name: &str| format!("ports[{i}].{name}");
        if !carries {
            return Err(invalid(
                field("parent"),
                format!("port {} is not {kind}", parent.0),
            ));
        }
        if !(min..=4094).contains(&svid) {
            return Err(invalid(field("svid"), format!("must be {min}-4094")));
        }
        if self.channels.insert((parent, svid), id).is_some() {
            return Err(invalid(
                field("svid"),
                format!("{svid} is used by another channel of the same port"),
            ));
        }
        Ok(())
    }

    /// Indexes the edge relay of port `i` (an uplink or uplink S-channel): its mode, and the
    /// physical network only it serves.
    fn add_relay(
        &mut self,
        i: usize,
        id: PortId,
        physical_network: &str,
        relay: RelayMode,
    ) -> Result<(), ConfigError> {
        if let Some(slot) = self.relays.get_mut(i) {
            *slot = relay;
        }
        if self
            .uplinks
            .insert(physical_network.to_owned(), id)
            .is_some()
        {
            return Err(invalid(
                format!("ports[{i}].physical_network"),
                format!("{physical_network:?} already has an uplink"),
            ));
        }
        Ok(())
    }

    /// Indexes one VSI: the channel joins its logical switch, its MAC is there.
    fn add_vsi(&mut self, config: &Config, i: usize, vsi: &Vsi) -> Result<(), ConfigError> {
        let field = |name: &str| format!("vsis[{i}].{name}");
        let is_channel = config
            .ports
            .get(usize::from(vsi.port.0))
            .is_some_and(|p| matches!(p.kind, PortKind::Channel(_)));
        if !is_channel {
            return Err(invalid(
                field("port"),
                format!("port {} is not an S-channel", vsi.port.0),
            ));
        }
        if usize::from(vsi.ls.0) >= config.switches.len() {
            return Err(invalid(
                field("ls"),
                format!("no logical switch {}", vsi.ls.0),
            ));
        }
        if vsi.vlan > 4094 {
            return Err(invalid(field("vlan"), "must be 0 (untagged) or 1-4094"));
        }
        if !vsi.mac.is_unicast() {
            return Err(invalid(
                field("mac"),
                format!("{} is not a unicast address", vsi.mac),
            ));
        }
        // One C-VLAN is one network on a channel, and back: the egress tag must be unique.
        match self.channel_vlans.insert((vsi.port, vsi.vlan), vsi.ls) {
            Some(ls) if ls != vsi.ls => {
                return Err(invalid(
                    field("vlan"),
                    format!("VLAN {} of this channel is another network's", vsi.vlan),
                ));
            }
            _ => {}
        }
        match self.channel_tags.insert((vsi.port, vsi.ls), vsi.vlan) {
            Some(vlan) if vlan != vsi.vlan => {
                return Err(invalid(
                    field("vlan"),
                    format!("this channel already carries the network on VLAN {vlan}"),
                ));
            }
            Some(_) => {}
            None => {
                if let Some(members) = self.members.get_mut(usize::from(vsi.ls.0)) {
                    members.push(vsi.port);
                }
            }
        }
        match self.macs.get(vsi.ls, vsi.mac) {
            Some(Location::Local(port)) if port != vsi.port => {
                return Err(invalid(
                    field("mac"),
                    format!("{} is already at another port on this network", vsi.mac),
                ));
            }
            Some(Location::Remote(_) | Location::Uplink(_)) => {
                return Err(invalid(
                    field("mac"),
                    format!("{} is a remote address on this network", vsi.mac),
                ));
            }
            _ => {}
        }
        self.macs.insert(vsi.ls, vsi.mac, Location::Local(vsi.port));
        self.vsis.insert((vsi.port, vsi.mac, vsi.vlan));
        Ok(())
    }

    /// The snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration the snapshot was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A port.
    #[inline]
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.config.ports.get(usize::from(id.0))
    }

    /// A logical switch.
    #[inline]
    pub fn switch(&self, id: LsId) -> Option<&LogicalSwitch> {
        self.config.switches.get(usize::from(id.0))
    }

    /// The local VM ports of a logical switch.
    #[inline]
    pub fn members(&self, id: LsId) -> &[PortId] {
        self.members
            .get(usize::from(id.0))
            .map_or(&[], Vec::as_slice)
    }

    /// The uplink of a physical network: an uplink port, or an uplink's S-channel.
    #[inline]
    pub fn uplink(&self, physical_network: &str) -> Option<PortId> {
        self.uplinks.get(physical_network).copied()
    }

    /// Where a MAC is, by configuration (VM ports and records).
    #[inline]
    pub fn location(&self, ls: LsId, mac: MacAddr) -> Option<Location> {
        self.macs.get(ls, mac)
    }

    /// Starts loading what [`location`](Self::location) of `mac` on `ls` reads, for a lookup
    /// a little later (a hint, see [`pipeline::prefetch`](crate::pipeline::prefetch)).
    #[inline]
    pub fn prefetch_location(&self, ls: LsId, mac: MacAddr) {
        self.macs.prefetch(ls, mac);
    }

    /// The local VM port that sends with `mac` on `ls`: the port whose MAC it is, else the
    /// one port with it among its allowed address pairs (a VEPA relay uses this to know its
    /// own VMs' frames when the bridge reflects them).
    #[inline]
    pub fn local_sender(&self, ls: LsId, mac: MacAddr) -> Option<PortId> {
        match self.location(ls, mac) {
            Some(Location::Local(port)) => Some(port),
            Some(_) => None,
            None => self.pair_macs.get(&(ls, mac)).copied().flatten(),
        }
    }

    /// The MAC a tenant IP has on a logical switch, by configuration.
    #[inline]
    pub fn mac_of(&self, ls: LsId, ip: IpAddr) -> Option<MacAddr> {
        self.ips.get(&(ls, ip)).copied()
    }

    /// The logical switch a frame from an uplink belongs to.
    #[inline]
    pub fn switch_for_vlan(&self, uplink: PortId, vid: Option<u16>) -> Option<LsId> {
        self.by_vlan.get(&(uplink, vid)).copied()
    }

    #[inline]
    pub(crate) fn switch_for_tunnel(&self, key: TunnelKey) -> Option<LsId> {
        self.by_tunnel.get(&key).copied()
    }

    /// The tunnel port that carries a logical switch's segment.
    #[inline]
    pub fn tunnel_port(&self, protocol: TunnelProtocol) -> Option<PortId> {
        self.tunnel_ports[protocol as usize]
    }

    /// The subport of VM port `parent` for frames tagged `vlan`.
    #[inline]
    pub fn subport(&self, parent: PortId, vlan: u16) -> Option<PortId> {
        self.subports.get(&(parent, vlan)).copied()
    }

    /// True when VM port `port` has subports (it is a trunk's parent).
    #[inline]
    pub fn is_trunk(&self, port: PortId) -> bool {
        self.trunks
            .get(usize::from(port.0))
            .copied()
            .unwrap_or(false)
    }

    /// The S-channel of station port `station` for S-VLAN `svid`, or of uplink `station`
    /// (whose default channel, SVID 1, is the uplink itself and not listed here).
    #[inline]
    pub fn channel(&self, station: PortId, svid: u16) -> Option<PortId> {
        self.channels.get(&(station, svid)).copied()
    }

    /// The logical switch of frames with C-VLAN `vlan` (0: untagged) on channel `port`.
    #[inline]
    pub fn channel_switch(&self, port: PortId, vlan: u16) -> Option<LsId> {
        self.channel_vlans.get(&(port, vlan)).copied()
    }

    /// The C-VLAN to tag `ls`'s frames with on the way out of `port`: a channel's, if it is
    /// one that carries `ls` tagged; `None` for every other port.
    #[inline]
    pub fn egress_vlan(&self, port: PortId, ls: LsId) -> Option<u16> {
        self.channel_tags
            .get(&(port, ls))
            .copied()
            .filter(|&vlan| vlan != 0)
    }

    /// True when a VSI with this MAC and C-VLAN is associated on channel `port`.
    #[inline]
    pub fn is_associated(&self, port: PortId, mac: MacAddr, vlan: u16) -> bool {
        self.vsis.contains(&(port, mac, vlan))
    }

    /// True when `port` is a channel with reflective relay (it may hairpin).
    #[inline]
    pub fn reflects(&self, port: PortId) -> bool {
        matches!(
            self.port(port).map(|p| &p.kind),
            Some(PortKind::Channel(Channel {
                reflective_relay: true,
                ..
            }))
        )
    }

    /// The edge relay mode of uplink or uplink S-channel `port` (VEB for anything else).
    #[inline]
    pub fn relay(&self, port: PortId) -> RelayMode {
        self.relays
            .get(usize::from(port.0))
            .copied()
            .unwrap_or_default()
    }

    /// True when `ip` is a remote endpoint this host was told about.
    #[inline]
    pub fn is_known_remote(&self, ip: IpAddr) -> bool {
        self.remotes.contains(&ip)
    }
}
