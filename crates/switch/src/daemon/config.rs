//! The daemon's configuration by name: what the TOML file lists, what the control socket adds
//! and removes, and what `list` returns. [`SwitchConfig::tables`] turns it into the
//! index-based [`tables::Config`] (names become [`LsId`]s) and builds the snapshot.
//!
//! Every error names its field: `port[2].mac: ...` while reading a file, `switch "net1".segment:
//! ...` or `port "vm1".switch: ...` once the item has a name, `record.mac: ...` for the body of a
//! control request.
//!
//! ```toml
//! mac_aging_secs = 300            # optional
//! busy_poll_us = 0                # optional: see SwitchConfig::busy_poll_us
//!
//! [[switch]]
//! name = "net1"
//! local_vlan = 1
//! # local | flat:PHYSNET | vlan:PHYSNET:VID | vxlan:VNI | gre:KEY | nvgre:VSID
//! segment = "vxlan:100"
//! flood = ["192.0.2.2"]
//!
//! # optional: the switch answers DHCP for ports whose fixed IPv4 address is in one of these
//! [[switch.dhcp]]
//! cidr = "10.0.0.0/24"
//! server_ip = "10.0.0.1"          # in cidr: the gateway, or the last host address
//! server_mac = "fa:16:3e:ff:00:01"
//! router = "10.0.0.1"             # optional
//! dns = ["10.0.0.2"]              # optional
//! routes = [{ destination = "169.254.169.254/32", nexthop = "10.0.0.3" }]  # optional
//! mtu = 1450                      # optional
//! lease_secs = 86400              # optional (default a day)
//! domain = "example.org"          # optional
//!
//! [[port]]
//! name = "wft-vm1"
//! type = "tap"                    # tap | memory | uplink | vxlan | gre
//! switch = "net1"
//! mac = "fa:16:3e:00:00:01"
//! ips = ["10.0.0.1"]
//!
//! # optional, tap and memory ports: a trunk's subports (VLAN-aware VMs). Frames tagged `vlan`
//! # on the port's device are the subport's: its own switch, MAC, addresses and port security.
//! [[port.subports]]
//! vlan = 1                        # 1-4094, unique per port
//! switch = "net2"
//! mac = "fa:16:3e:00:00:11"
//! ips = ["10.0.5.7"]
//! # allowed_pairs and port_security as for the port itself
//!
//! [[port]]
//! name = "vxlan0"
//! type = "vxlan"
//! local_ip = "192.0.2.1"
//! port = 4789                     # optional: the UDP port bound and sent to (default 4789)
//! # optional: how many UDP source ports (sockets) to send from, 1-256 (default 16); each flow
//! # keeps one, picked by a hash of its inner headers (RFC 7348 §5), so the underlay's ECMP and
//! # the receiver's RSS spread flows. 1 sends everything from `port`.
//! source_ports = 16
//!
//! [[record]]
//! switch = "net1"
//! ip = "10.0.0.2"
//! mac = "fa:16:3e:00:00:02"
//! remote = "192.0.2.2"
//!
//! # 802.1Qbg, station side: an uplink is its edge relay's uplink; `relay` says how the VMs on
//! # its networks switch: "veb" (locally, the default) or "vepa" (everything via the bridge).
//! # That is the default S-channel (SVID 1, untagged). Each of `s_channels` is another edge
//! # relay, attached to S-channel `svid` (2-4094, unique per port): a port of its own named
//! # PORT.sSVID serving its own physical network (one uplink or channel per physical network),
//! # its frames S-tagged (802.1ad) on this interface, outside any C-tag.
//! [[port]]
//! name = "eth2"
//! type = "uplink"
//! physical_network = "evb"
//! relay = "vepa"
//! s_channels = [{ svid = 20, physical_network = "evb2", relay = "veb" }]  # relay optional
//!
//! # 802.1Qbg, bridge side: a station-facing port (AF_PACKET on the interface). Each S-channel
//! # is a bridge port of its own named PORT.sSVID; SVID 1 is the default, untagged, channel.
//! [[port]]
//! name = "eth3"
//! type = "station"
//! vdp_gating = true               # only associated VSIs' frames enter (default false)
//! s_channels = [{ svid = 1, reflective_relay = true }, { svid = 20 }]
//!
//! # A VSI associated on an S-channel: its MAC and C-VLAN (0: untagged) are on `switch`.
//! [[vsi]]
//! port = "eth3.s1"
//! mac = "52:54:00:00:00:01"
//! vlan = 100
//! switch = "net2"
//! ```

use core::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use std::collections::HashMap;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use serde_json::{Map, Value, json};
use wire::{MacAddr, Vni};

use super::fields::{self, Object, invalid};
use crate::{
    dhcp::{self, DEFAULT_LEASE_SECS, Route},
    switch::MAC_AGING,
    tables::{
        self, ConfigError, LogicalSwitch, LsId, Port, PortId, PortKind, Record, RelayMode, Segment,
        Tables, TunnelProtocol, VmPort,
    },
};

/// The most addresses a logical switch learns when its `mac_limit` is not given.
pub const DEFAULT_MAC_LIMIT: usize = 8192;
/// The VXLAN UDP port when a vxlan port's `port` is not given (IANA, RFC 7348 §5).
pub const DEFAULT_VXLAN_PORT: u16 = wire::vxlan::PORT;
/// How many UDP source ports a vxlan port sends from when its `source_ports` is not given.
pub const DEFAULT_VXLAN_SOURCE_PORTS: u16 = 16;
/// The most UDP source ports (sockets) a vxlan port may send from.
pub const MAX_VXLAN_SOURCE_PORTS: u16 = 256;
/// The name a TAP gets inside its VM namespace when `netns_ifname` is not given.
pub const DEFAULT_NETNS_IFNAME: &str = "eth0";
/// The longest `busy_poll_us` accepted: a second.
pub const MAX_BUSY_POLL_US: u64 = 1_000_000;

/// Everything the daemon forwards with, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// Seconds a learned MAC address lives unseen, 1-86400 (default [`MAC_AGING`]).
    pub mac_aging_secs: u64,
    /// Microseconds the forwarding thread keeps polling its devices after the last frame
    /// before it sleeps, 0 to [`MAX_BUSY_POLL_US`] (default 0: sleep as soon as they are
    /// drained). Read at start. While it polls it yields the CPU to anything else that wants
    /// it, but it keeps a core busy: a window longer than the gaps in the traffic means a
    /// core per switch for as long as traffic comes, in exchange for no wake-up per packet
    /// (about half the round-trip time of a sparse ping on a virtual machine).
    pub busy_poll_us: u64,
    /// Logical switches (`[[switch]]`).
    pub switches: Vec<SwitchSpec>,
    /// Ports (`[[port]]`).
    pub ports: Vec<PortSpec>,
    /// Lookup records (`[[record]]`).
    pub records: Vec<RecordSpec>,
    /// VSIs associated on bridge S-channels (`[[vsi]]`).
    pub vsis: Vec<VsiSpec>,
}

/// A logical switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchSpec {
    /// Its name, unique; ports and records refer to it by this.
    pub name: String,
    /// The host-local VLAN id, 1-4094, unique.
    pub local_vlan: u16,
    /// How its traffic leaves the host.
    pub segment: Segment,
    /// Remote tunnel endpoints that get broadcast and unknown unicast.
    pub flood: Vec<IpAddr>,
    /// The most MAC addresses it learns.
    pub mac_limit: usize,
    /// The DHCP-enabled IPv4 subnets whose ports the switch answers DHCP for.
    pub dhcp: Vec<dhcp::Subnet>,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Its name, unique (for tap and uplink ports, the interface name).
    pub name: String,
    /// What it is and what backs it.
    pub kind: PortType,
}

/// A port's type (the file's `type` key) and the fields that type has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortType {
    /// A VM's NIC: a TAP device named like the port, optionally moved into a namespace.
    Tap {
        /// The VM side.
        vm: VmSpec,
        /// The namespace to move the TAP's netdev into, if any.
        netns: Option<NetnsSpec>,
        /// The VLANs the VM sends tagged (a trunk's subports); empty for an access port.
        subports: Vec<SubportSpec>,
    },
    /// A VM's NIC backed by an in-memory queue pair (tests and simulations).
    Memory {
        /// The VM side.
        vm: VmSpec,
        /// The VLANs the VM sends tagged.
        subports: Vec<SubportSpec>,
    },
    /// A physical uplink: an `AF_PACKET` socket on the interface named like the port.
    Uplink {
        /// The physical network it serves (on the default S-channel: untagged).
        physical_network: String,
        /// Its edge relay's mode (802.1Qbg): `veb` (the default) or `vepa`.
        relay: RelayMode,
        /// Its other S-channels, each an edge relay of its own named `PORT.sSVID` (802.1Qbg
        /// station side); empty for a plain uplink.
        channels: Vec<UplinkChannelSpec>,
    },
    /// The VXLAN tunnel endpoint: a UDP socket.
    Vxlan {
        /// This host's underlay address to bind.
        local_ip: IpAddr,
        /// The UDP port bound and sent to.
        port: u16,
        /// How many UDP source ports (sockets) it sends from, picked per flow; 1 is `port`
        /// alone.
        source_ports: u16,
    },
    /// The GRE and NVGRE tunnel endpoint: a raw IP socket.
    Gre {
        /// This host's underlay address to bind.
        local_ip: IpAddr,
    },
    /// A bridge's station-facing port (802.1Qbg): an `AF_PACKET` socket on the interface
    /// named like the port, carrying S-channels.
    Station {
        /// The S-channels, each a bridge port named `PORT.sSVID`.
        channels: Vec<ChannelSpec>,
        /// Only frames of associated VSIs enter the bridge.
        vdp_gating: bool,
    },
}

/// An S-channel of a station-facing port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The S-VLAN id, 1-4094; 1 is the default channel (untagged).
    pub svid: u16,
    /// Reflective relay (hairpin) on this channel.
    pub reflective_relay: bool,
}

impl ChannelSpec {
    /// The name the channel has in the tables, in `vsi` entries and in `macs`: `PORT.sSVID`.
    pub fn table_name(port: &str, svid: u16) -> String {
        format!("{port}.s{svid}")
    }
}

/// An S-channel of a station's uplink and the edge relay attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkChannelSpec {
    /// The S-VLAN id, 2-4094 (1 is the default channel: the uplink's own physical network).
    pub svid: u16,
    /// The physical network its edge relay serves.
    pub physical_network: String,
    /// That edge relay's mode: `veb` (the default) or `vepa`.
    pub relay: RelayMode,
}

impl UplinkChannelSpec {
    /// The channel as the file writes it.
    pub fn to_value(&self) -> Value {
        json!({
            "svid": self.svid,
            "physical_network": self.physical_network,
            "relay": self.relay.as_str(),
        })
    }
}

impl ChannelSpec {
    /// The channel as the file writes it.
    pub fn to_value(&self) -> Value {
        json!({"svid": self.svid, "reflective_relay": self.reflective_relay})
    }
}

/// A VSI associated on an S-channel (what the bridge's VDP agreed to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsiSpec {
    /// The channel, `PORT.sSVID`.
    pub port: String,
    /// The VSI's MAC address.
    pub mac: MacAddr,
    /// Its C-VLAN, 1-4094, or 0 for untagged.
    pub vlan: u16,
    /// The logical switch its frames are on (the profile's network).
    pub switch: String,
}

impl PortType {
    /// The file's name for the type.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Tap { .. } => "tap",
            Self::Memory { .. } => "memory",
            Self::Uplink { .. } => "uplink",
            Self::Vxlan { .. } => "vxlan",
            Self::Gre { .. } => "gre",
            Self::Station { .. } => "station",
        }
    }

    /// The VM side, for tap and memory ports.
    pub const fn vm(&self) -> Option<&VmSpec> {
        match self {
            Self::Tap { vm, .. } | Self::Memory { vm, .. } => Some(vm),
            _ => None,
        }
    }

    /// The subports of a tap or memory port (none for other types).
    pub fn subports(&self) -> &[SubportSpec] {
        match self {
            Self::Tap { subports, .. } | Self::Memory { subports, .. } => subports,
            _ => &[],
        }
    }

    /// The S-channels of an uplink (none for other types).
    pub fn uplink_channels(&self) -> &[UplinkChannelSpec] {
        match self {
            Self::Uplink { channels, .. } => channels,
            _ => &[],
        }
    }
}

/// A subport of a VM port (Neutron trunk `sub_ports[]`): the VLAN the VM tags its frames
/// with, and the VM side those frames have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubportSpec {
    /// The 802.1Q VLAN id, 1-4094 (Neutron `segmentation_id`).
    pub vlan: u16,
    /// Its logical switch, MAC, addresses and port security.
    pub vm: VmSpec,
}

impl SubportSpec {
    /// The name the subport has in the tables, in `macs` and in errors: `PORT.VLAN`.
    pub fn table_name(port: &str, vlan: u16) -> String {
        format!("{port}.{vlan}")
    }
}

/// What a VM port connects to and may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The logical switch, by name.
    pub switch: String,
    /// The VM's MAC address.
    pub mac: MacAddr,
    /// Its fixed IP addresses.
    pub ips: Vec<IpAddr>,
    /// Extra (MAC, prefix) pairs it may send from.
    pub allowed_pairs: Vec<(MacAddr, IpNet)>,
    /// Whether anti-spoofing applies.
    pub port_security: bool,
}

/// Where a TAP's netdev goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsSpec {
    /// A named network namespace (`/run/netns/NAME`, as `ip netns add` makes).
    pub name: String,
    /// The netdev's name in there.
    pub ifname: String,
}

/// A lookup record: a tenant address on a logical switch, behind a remote tunnel endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// The logical switch, by name (a tunnel network).
    pub switch: String,
    /// The tenant IP.
    pub ip: IpAddr,
    /// The tenant MAC.
    pub mac: MacAddr,
    /// The remote endpoint: the underlay address of the host that has the tenant address.
    pub remote: IpAddr,
}

/// What a record is checked against: the switches, the local VM addresses and the records
/// before it, by key.
struct RecordIndex<'a> {
    switches: HashMap<&'a str, &'a SwitchSpec>,
    local: HashMap<(String, MacAddr), String>,
    ips: HashMap<(&'a str, IpAddr), &'a RecordSpec>,
    macs: HashMap<(&'a str, MacAddr), &'a RecordSpec>,
}

impl<'a> RecordIndex<'a> {
    fn new(config: &'a SwitchConfig) -> Self {
        Self {
            switches: config
                .switches
                .iter()
                .map(|s| (s.name.as_str(), s))
                .collect(),
            local: config
                .vm_sides()
                .map(|(name, vm)| ((vm.switch.clone(), vm.mac), name))
                .collect(),
            ips: HashMap::new(),
            macs: HashMap::new(),
        }
    }

    /// Notes a record that passed.
    fn insert(&mut self, record: &'a RecordSpec) {
        self.ips
            .entry((record.switch.as_str(), record.ip))
            .or_insert(record);
        self.macs
            .entry((record.switch.as_str(), record.mac))
            .or_insert(record);
    }

    /// Checks a record: its switch is a tunnel network, its MAC is no local VM's, its IP has
    /// no record yet and its MAC is behind no other endpoint. `label` names it in errors.
    fn check(&self, record: &RecordSpec, label: impl Fn() -> String) -> Result<(), ConfigError> {
        let Some(switch) = self.switches.get(record.switch.as_str()) else {
            return Err(invalid(
                format!("{}.switch", label()),
                format!("no switch named {:?}", record.switch),
            ));
        };
        if !switch.segment.is_tunnel() {
            return Err(invalid(
                format!("{}.switch", label()),
                format!(
                    "switch {:?} is a {} network; only tunnel networks have records",
                    switch.name, switch.segment
                ),
            ));
        }
        if let Some(name) = self.local.get(&(record.switch.clone(), record.mac)) {
            return Err(invalid(
                format!("{}.mac", label()),
                format!("{} is the address of local port {name:?}", record.mac),
            ));
        }
        if let Some(other) = self.ips.get(&(record.switch.as_str(), record.ip)) {
            return Err(invalid(
                format!("{}.ip", label()),
                format!(
                    "switch {:?} already has a record for {} (mac {}, remote {})",
                    record.switch, other.ip, other.mac, other.remote
                ),
            ));
        }
        if let Some(other) = self.macs.get(&(record.switch.as_str(), record.mac))
            && other.remote != record.remote
        {
            return Err(invalid(
                format!("{}.remote", label()),
                format!(
                    "{} is already behind {} (record for {})",
                    other.mac, other.remote, other.ip
                ),
            ));
        }
        Ok(())
    }
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            mac_aging_secs: MAC_AGING.as_secs(),
            busy_poll_us: 0,
            switches: Vec::new(),
            ports: Vec::new(),
            records: Vec::new(),
            vsis: Vec::new(),
        }
    }
}

impl SwitchConfig {
    /// Reads a TOML configuration file's text and checks its cross references.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_value(&Self::value_from_toml(text)?)
    }

    /// A TOML configuration file's text as the JSON value tree [`from_value`](Self::from_value)
    /// reads, as written: a `replace` needs to know which keys the file leaves out.
    pub fn value_from_toml(text: &str) -> Result<Value, ConfigError> {
        toml::from_str(text).map_err(|err| {
            let message = err.to_string();
            invalid("config", message.trim_end())
        })
    }

    /// Reads a configuration in the file's shape (from TOML or JSON) and checks its cross
    /// references.
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        let config = Self::read_fields(value)?;
        config.check()?;
        Ok(config)
    }

    /// Reads a configuration in the file's shape, each field on its own, without checking
    /// what refers to what ([`check`](Self::check) does; a `replace` checks once it has merged
    /// what it keeps).
    pub fn read_fields(value: &Value) -> Result<Self, ConfigError> {
        let mut top = Object::new("", value)?;
        // A day is already longer than any sane aging time; zero would forget every address
        // at once and turn every unicast into a flood.
        let mac_aging_secs = top
            .optional("mac_aging_secs", fields::integer_in(1..=86_400, " seconds"))?
            .unwrap_or(MAC_AGING.as_secs());
        let busy_poll_us = top
            .optional(
                "busy_poll_us",
                fields::integer_in(0..=MAX_BUSY_POLL_US, " microseconds"),
            )?
            .unwrap_or(0);
        let switches = top
            .optional("switch", |f, v| fields::list(f, v, SwitchSpec::read))?
            .unwrap_or_default();
        let ports = top
            .optional("port", |f, v| fields::list(f, v, PortSpec::read))?
            .unwrap_or_default();
        let records = top
            .optional("record", |f, v| fields::list(f, v, RecordSpec::read))?
            .unwrap_or_default();
        let vsis = top
            .optional("vsi", |f, v| fields::list(f, v, VsiSpec::read))?
            .unwrap_or_default();
        top.finish()?;
        Ok(Self {
            mac_aging_secs,
            busy_poll_us,
            switches,
            ports,
            records,
            vsis,
        })
    }

    /// The configuration in the file's shape, as JSON.
    pub fn to_value(&self) -> Value {
        let mut value = json!({
            "mac_aging_secs": self.mac_aging_secs,
            "busy_poll_us": self.busy_poll_us,
            "switch": self.switches.iter().map(SwitchSpec::to_value).collect::<Vec<_>>(),
            "port": self.ports.iter().map(PortSpec::to_value).collect::<Vec<_>>(),
            "record": self.records.iter().map(RecordSpec::to_value).collect::<Vec<_>>(),
        });
        // Only a bridge has VSIs; every other listing stays as it was.
        if !self.vsis.is_empty()
            && let Value::Object(map) = &mut value
        {
            let vsis = self.vsis.iter().map(VsiSpec::to_value).collect();
            map.insert("vsi".into(), Value::Array(vsis));
        }
        value
    }

    /// The logical switch named `name`.
    pub fn switch(&self, name: &str) -> Option<&SwitchSpec> {
        self.switches.iter().find(|s| s.name == name)
    }

    /// The port named `name`.
    pub fn port(&self, name: &str) -> Option<&PortSpec> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Checks what refers to what by name: unique names, ports and records on switches that
    /// exist, records that agree with each other and with the ports.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (i, switch) in self.switches.iter().enumerate() {
            if self.switches[..i].iter().any(|s| s.name == switch.name) {
                return Err(invalid(
                    format!("switch[{i}].name"),
                    format!("{:?} is the name of another switch", switch.name),
                ));
            }
        }
        for (i, port) in self.ports.iter().enumerate() {
            if self.ports[..i].iter().any(|p| p.name == port.name) {
                return Err(invalid(
                    format!("port[{i}].name"),
                    format!("{:?} is the name of another port", port.name),
                ));
            }
            if let Some(vm) = port.kind.vm()
                && self.switch(&vm.switch).is_none()
            {
                return Err(invalid(
                    format!("port {:?}.switch", port.name),
                    format!("no switch named {:?}", vm.switch),
                ));
            }
            self.check_subports(port)?;
        }
        self.check_physical_networks()?;
        // One index for all records: an agent's config has a record per remote port, and a
        // scan per record made checking it quadratic.
        let mut index = RecordIndex::new(self);
        for (i, record) in self.records.iter().enumerate() {
            index.check(record, || format!("record[{i}]"))?;
            index.insert(record);
        }
        for (i, vsi) in self.vsis.iter().enumerate() {
            self.check_vsi(vsi, &format!("vsi[{i}]"))?;
        }
        Ok(())
    }

    /// Checks that each physical network has one edge relay: one uplink, or one S-channel of
    /// an uplink, serves it in the whole configuration.
    fn check_physical_networks(&self) -> Result<(), ConfigError> {
        let mut served: HashMap<&str, String> = HashMap::new();
        for port in &self.ports {
            let PortType::Uplink {
                physical_network, ..
            } = &port.kind
            else {
                continue;
            };
            let own = (
                format!("port {:?}.physical_network", port.name),
                physical_network,
                format!("uplink {:?}", port.name),
            );
            let channels = port
                .kind
                .uplink_channels()
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    (
                        format!("port {:?}.s_channels[{j}].physical_network", port.name),
                        &c.physical_network,
                        format!(
                            "S-channel {:?}",
                            ChannelSpec::table_name(&port.name, c.svid)
                        ),
                    )
                });
            for (field, network, server) in std::iter::once(own).chain(channels) {
                if let Some(other) = served.insert(network, server) {
                    return Err(invalid(
                        field,
                        format!("{network:?} is already served by {other}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every S-channel's table name, with its station port and channel.
    pub fn channels(&self) -> impl Iterator<Item = (String, &PortSpec, &ChannelSpec)> {
        self.ports.iter().flat_map(|port| {
            let channels = match &port.kind {
                PortType::Station { channels, .. } => channels.as_slice(),
                _ => &[],
            };
            channels
                .iter()
                .map(move |c| (ChannelSpec::table_name(&port.name, c.svid), port, c))
        })
    }

    /// Checks one VSI, called `label` in errors: an S-channel and a switch that exist.
    pub(crate) fn check_vsi(&self, vsi: &VsiSpec, label: &str) -> Result<(), ConfigError> {
        if !self.channels().any(|(name, _, _)| name == vsi.port) {
            return Err(invalid(
                format!("{label}.port"),
                format!(
                    "no S-channel named {:?} (a station port's PORT.sSVID)",
                    vsi.port
                ),
            ));
        }
        if self.switch(&vsi.switch).is_none() {
            return Err(invalid(
                format!("{label}.switch"),
                format!("no switch named {:?}", vsi.switch),
            ));
        }
        Ok(())
    }

    /// Checks a port's subports: switches that exist, VLANs unique on the port, and names in
    /// the tables (`PORT.VLAN`) no other port has.
    fn check_subports(&self, port: &PortSpec) -> Result<(), ConfigError> {
        let subports = port.kind.subports();
        for (j, sub) in subports.iter().enumerate() {
            let field = |key: &str| format!("port {:?}.subports[{j}].{key}", port.name);
            if self.switch(&sub.vm.switch).is_none() {
                return Err(invalid(
                    field("switch"),
                    format!("no switch named {:?}", sub.vm.switch),
                ));
            }
            if subports[..j].iter().any(|other| other.vlan == sub.vlan) {
                return Err(invalid(
                    field("vlan"),
                    format!("{} is used by another subport of this port", sub.vlan),
                ));
            }
            let name = SubportSpec::table_name(&port.name, sub.vlan);
            if self.port(&name).is_some() {
                return Err(invalid(
                    field("vlan"),
                    format!("the subport would be named {name:?}, which is another port's name"),
                ));
            }
        }
        // S-channels of either side: a station port's (bridge ports) or an uplink's (relays).
        let svids: Vec<u16> = match &port.kind {
            PortType::Station { channels, .. } => channels.iter().map(|c| c.svid).collect(),
            kind => kind.uplink_channels().iter().map(|c| c.svid).collect(),
        };
        for (j, &svid) in svids.iter().enumerate() {
            let field = format!("port {:?}.s_channels[{j}].svid", port.name);
            if svids[..j].contains(&svid) {
                return Err(invalid(
                    field,
                    format!("{svid} is used by another S-channel of this port"),
                ));
            }
            let name = ChannelSpec::table_name(&port.name, svid);
            if self.port(&name).is_some() {
                return Err(invalid(
                    field,
                    format!("the channel would be named {name:?}, another port's name"),
                ));
            }
        }
        Ok(())
    }

    /// Every VM side by name: each VM port's (under the port's name) and each subport's
    /// (under `PORT.VLAN`).
    pub fn vm_sides(&self) -> impl Iterator<Item = (String, &VmSpec)> {
        self.ports.iter().flat_map(|port| {
            let own = port.kind.vm().map(|vm| (port.name.clone(), vm));
            let subs = port
                .kind
                .subports()
                .iter()
                .map(|sub| (SubportSpec::table_name(&port.name, sub.vlan), &sub.vm));
            own.into_iter().chain(subs)
        })
    }

    /// The port and subport index of the `index`-th subport in table order (the tables list
    /// every subport after every port).
    fn subport_at(&self, index: usize) -> Option<(&PortSpec, usize)> {
        self.ports
            .iter()
            .flat_map(|port| (0..port.kind.subports().len()).map(move |j| (port, j)))
            .nth(index)
    }

    /// The port and channel index of the `index`-th S-channel in table order (the tables list
    /// every bridge and uplink S-channel after every subport, in the order of their ports).
    fn channel_at(&self, index: usize) -> Option<(&PortSpec, usize)> {
        self.ports
            .iter()
            .flat_map(|port| {
                let count = match &port.kind {
                    PortType::Station { channels, .. } => channels.len(),
                    other => other.uplink_channels().len(),
                };
                (0..count).map(move |j| (port, j))
            })
            .nth(index)
    }

    /// Checks one record, called `label` in errors, against the switches, the ports and the
    /// records `others`.
    pub(crate) fn check_record(
        &self,
        record: &RecordSpec,
        label: &str,
        others: &[RecordSpec],
    ) -> Result<(), ConfigError> {
        let mut index = RecordIndex::new(self);
        for other in others {
            index.insert(other);
        }
        index.check(record, || label.to_owned())
    }

    /// The index-based configuration the switch's [`Tables`] are built from.
    pub fn to_config(&self) -> Result<tables::Config, ConfigError> {
        self.check()?;
        let subports: usize = self.ports.iter().map(|p| p.kind.subports().len()).sum();
        if self.switches.len() > usize::from(u16::MAX)
            || self.ports.len() + subports > usize::from(u16::MAX)
        {
            return Err(invalid(
                "switch/port",
                "at most 65535 of each (a subport counts as a port)",
            ));
        }
        let ls = |name: &str| {
            self.switches
                .iter()
                .position(|s| s.name == name)
                .and_then(|i| u16::try_from(i).ok())
                .map(LsId)
        };
        let switches = self
            .switches
            .iter()
            .map(|s| LogicalSwitch {
                name: s.name.clone(),
                local_vlan: s.local_vlan,
                segment: s.segment.clone(),
                flood: s.flood.clone(),
                mac_limit: s.mac_limit,
                dhcp: s.dhcp.clone(),
            })
            .collect();
        let vm_port = |vm: &VmSpec, field: String| {
            let Some(id) = ls(&vm.switch) else {
                return Err(invalid(field, format!("no switch named {:?}", vm.switch)));
            };
            Ok(VmPort {
                ls: id,
                mac: vm.mac,
                ips: vm.ips.clone(),
                allowed_pairs: vm.allowed_pairs.clone(),
                port_security: vm.port_security,
            })
        };
        let mut ports = Vec::with_capacity(self.ports.len() + subports);
        // Subports come after every port, so a port's id is its place in the file, as before;
        // S-channels after every subport, so a subport's id is as before too.
        let mut trunk_ports = Vec::new();
        let mut channel_ports = Vec::new();
        for (i, port) in self.ports.iter().enumerate() {
            let kind = match &port.kind {
                PortType::Tap { vm, .. } | PortType::Memory { vm, .. } => {
                    let parent = PortId(u16::try_from(i).unwrap_or(u16::MAX));
                    for (j, sub) in port.kind.subports().iter().enumerate() {
                        let field = format!("port {:?}.subports[{j}].switch", port.name);
                        trunk_ports.push(Port {
                            name: SubportSpec::table_name(&port.name, sub.vlan),
                            kind: PortKind::Subport {
                                parent,
                                vlan: sub.vlan,
                                vm: vm_port(&sub.vm, field)?,
                            },
                        });
                    }
                    PortKind::Vm(vm_port(vm, format!("port {:?}.switch", port.name))?)
                }
                PortType::Uplink {
                    physical_network,
                    relay,
                    channels,
                } => {
                    let parent = PortId(u16::try_from(i).unwrap_or(u16::MAX));
                    for channel in channels {
                        channel_ports.push(Port {
                            name: ChannelSpec::table_name(&port.name, channel.svid),
                            kind: PortKind::UplinkChannel(tables::UplinkChannel {
                                parent,
                                svid: channel.svid,
                                physical_network: channel.physical_network.clone(),
                                relay: channel.relay,
                            }),
                        });
                    }
                    PortKind::Uplink {
                        physical_network: physical_network.clone(),
                        relay: *relay,
                    }
                }
                PortType::Station {
                    channels,
                    vdp_gating,
                } => {
                    let parent = PortId(u16::try_from(i).unwrap_or(u16::MAX));
                    for channel in channels {
                        channel_ports.push(Port {
                            name: ChannelSpec::table_name(&port.name, channel.svid),
                            kind: PortKind::Channel(tables::Channel {
                                parent,
                                svid: channel.svid,
                                reflective_relay: channel.reflective_relay,
                                vdp_gating: *vdp_gating,
                            }),
                        });
                    }
                    PortKind::Station
                }
                PortType::Vxlan { local_ip, .. } => PortKind::Tunnel {
                    local_ip: *local_ip,
                    protocol: TunnelProtocol::Vxlan,
                },
                PortType::Gre { local_ip } => PortKind::Tunnel {
                    local_ip: *local_ip,
                    protocol: TunnelProtocol::Gre,
                },
            };
            ports.push(Port {
                name: port.name.clone(),
                kind,
            });
        }
        ports.extend(trunk_ports);
        ports.extend(channel_ports);
        let mut records = Vec::with_capacity(self.records.len());
        for (i, record) in self.records.iter().enumerate() {
            let Some(id) = ls(&record.switch) else {
                return Err(invalid(
                    format!("record[{i}].switch"),
                    format!("no switch named {:?}", record.switch),
                ));
            };
            records.push(Record {
                ls: id,
                ip: record.ip,
                mac: record.mac,
                remote: record.remote,
            });
        }
        let mut vsis = Vec::with_capacity(self.vsis.len());
        for (i, vsi) in self.vsis.iter().enumerate() {
            let port = ports
                .iter()
                .position(|p| p.name == vsi.port && matches!(p.kind, PortKind::Channel(_)))
                .and_then(|i| u16::try_from(i).ok())
                .map(PortId)
                .ok_or_else(|| {
                    invalid(
                        format!("vsi[{i}].port"),
                        format!("no S-channel named {:?}", vsi.port),
                    )
                })?;
            let Some(id) = ls(&vsi.switch) else {
                return Err(invalid(
                    format!("vsi[{i}].switch"),
                    format!("no switch named {:?}", vsi.switch),
                ));
            };
            vsis.push(tables::Vsi {
                port,
                mac: vsi.mac,
                vlan: vsi.vlan,
                ls: id,
            });
        }
        Ok(tables::Config {
            switches,
            ports,
            records,
            vsis,
        })
    }

    /// Checks everything and builds the snapshot, stamped `generation`; errors name fields
    /// by switch and port name.
    pub fn tables(&self, generation: u64) -> Result<Tables, ConfigError> {
        let config = self.to_config()?;
        Tables::build(config, generation).map_err(|err| self.rename_error(err))
    }

    /// Turns a [`Tables::build`] error's `ports[3].ls` into `port "vm1".switch`.
    fn rename_error(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { field, reason } = err;
        let renamed = (|| {
            let (item, key) = field.split_once('.')?;
            let (list, index) = item.strip_suffix(']')?.split_once('[')?;
            let index: usize = index.parse().ok()?;
            let (label, key) = match list {
                "switches" => (format!("switch {:?}", self.switches.get(index)?.name), key),
                "ports" => {
                    let key = match key {
                        "ls" => "switch",
                        "protocol" => "type",
                        other => other,
                    };
                    let subports: usize = self.ports.iter().map(|p| p.kind.subports().len()).sum();
                    match self.ports.get(index) {
                        Some(port) => (format!("port {:?}", port.name), key),
                        None => match self.subport_at(index - self.ports.len()) {
                            Some((port, j)) => (format!("port {:?}.subports[{j}]", port.name), key),
                            None => {
                                let at = index - self.ports.len() - subports;
                                let (port, j) = self.channel_at(at)?;
                                (format!("port {:?}.s_channels[{j}]", port.name), key)
                            }
                        },
                    }
                }
                "records" => {
                    let key = if key == "ls" { "switch" } else { key };
                    (format!("record[{index}]"), key)
                }
                "vsis" => {
                    let key = if key == "ls" { "switch" } else { key };
                    (format!("vsi[{index}]"), key)
                }
                _ => return None,
            };
            Some(format!("{label}.{key}"))
        })();
        invalid(renamed.unwrap_or(field), reason)
    }
}

impl SwitchSpec {
    /// Reads a switch found at `path` (errors then name it `switch "NAME"`).
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        let mut object = Object::new(path, value)?;
        let name = object.required("name", fields::name)?;
        object.rename(format!("switch {name:?}"));
        let local_vlan = object.required("local_vlan", fields::integer_in(1..=4094u16, ""))?;
        let segment = object.required("segment", read_segment)?;
        let flood = object
            .optional("flood", |f, v| fields::list(f, v, fields::ip))?
            .unwrap_or_default();
        let mac_limit = object
            .optional("mac_limit", fields::integer::<u32>)?
            .map_or(DEFAULT_MAC_LIMIT, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let dhcp = object
            .optional("dhcp", |f, v| fields::list(f, v, read_dhcp_subnet))?
            .unwrap_or_default();
        for (i, subnet) in dhcp.iter().enumerate() {
            if let Some(other) = dhcp[..i]
                .iter()
                .find(|o| o.cidr.contains(&subnet.cidr) || subnet.cidr.contains(&o.cidr))
            {
                return Err(invalid(
                    format!("{}[{i}].cidr", object.field("dhcp")),
                    format!("{} overlaps {}", subnet.cidr, other.cidr),
                ));
            }
        }
        object.finish()?;
        Ok(Self {
            name,
            local_vlan,
            segment,
            flood,
            mac_limit,
            dhcp,
        })
    }

    /// The switch as the file writes it.
    pub fn to_value(&self) -> Value {
        json!({
            "name": self.name,
            "local_vlan": self.local_vlan,
            "segment": self.segment.to_string(),
            "flood": self.flood.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "mac_limit": self.mac_limit,
            "dhcp": self.dhcp.iter().map(dhcp_subnet_to_value).collect::<Vec<_>>(),
        })
    }
}

/// Reads one DHCP subnet of a switch.
fn read_dhcp_subnet(field: &str, value: &Value) -> Result<dhcp::Subnet, ConfigError> {
    let mut object = Object::new(field, value)?;
    let cidr = object.required("cidr", ipv4_prefix)?;
    let in_subnet = |field: &str, ip: Ipv4Addr| {
        if cidr.contains(&ip) {
            Ok(ip)
        } else {
            Err(invalid(field, format!("{ip} is not in {cidr}")))
        }
    };
    let server_ip = object.required("server_ip", |f, v| in_subnet(f, ipv4(f, v)?))?;
    let server_mac = object.required("server_mac", fields::unicast_mac)?;
    let router = object.optional("router", ipv4)?;
    let dns = object
        .optional("dns", |f, v| fields::list(f, v, ipv4))?
        .unwrap_or_default();
    let routes = object
        .optional("routes", |f, v| {
            fields::list(f, v, |field, value| {
                let mut route = Object::new(field, value)?;
                let destination = route.required("destination", ipv4_prefix)?;
                let nexthop = route.required("nexthop", ipv4)?;
                route.finish()?;
                Ok(Route {
                    destination,
                    nexthop,
                })
            })
        })?
        .unwrap_or_default();
    // RFC 2132 §5.1: 68 is the smallest MTU an IPv4 host must take.
    let mtu = object.optional("mtu", fields::integer_in(68..=u16::MAX, ""))?;
    let lease_secs = object
        .optional("lease_secs", fields::integer_in(1..=u32::MAX, " seconds"))?
        .unwrap_or(DEFAULT_LEASE_SECS);
    let domain = object.optional("domain", |field, value| {
        let domain = fields::name(field, value)?;
        // Option 15 is at most 255 bytes of a DNS name.
        if domain.len() > 255 || !domain.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                field,
                format!("{domain:?} is not a domain name (ASCII, at most 255 bytes)"),
            ));
        }
        Ok(domain)
    })?;
    object.finish()?;
    Ok(dhcp::Subnet {
        cidr,
        server_ip,
        server_mac,
        router,
        dns,
        routes,
        mtu,
        lease_secs,
        domain,
    })
}

fn dhcp_subnet_to_value(subnet: &dhcp::Subnet) -> Value {
    let mut map = Map::new();
    map.insert("cidr".into(), json!(subnet.cidr.to_string()));
    map.insert("server_ip".into(), json!(subnet.server_ip.to_string()));
    map.insert("server_mac".into(), json!(subnet.server_mac.to_string()));
    if let Some(router) = subnet.router {
        map.insert("router".into(), json!(router.to_string()));
    }
    map.insert(
        "dns".into(),
        json!(
            subnet
                .dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    );
    map.insert(
        "routes".into(),
        Value::Array(
            subnet
                .routes
                .iter()
                .map(|r| {
                    json!({"destination": r.destination.to_string(), "nexthop": r.nexthop.to_string()})
                })
                .collect(),
        ),
    );
    if let Some(mtu) = subnet.mtu {
        map.insert("mtu".into(), json!(mtu));
    }
    map.insert("lease_secs".into(), json!(subnet.lease_secs));
    if let Some(domain) = &subnet.domain {
        map.insert("domain".into(), json!(domain));
    }
    Value::Object(map)
}

/// An IPv4 address.
fn ipv4(field: &str, value: &Value) -> Result<Ipv4Addr, ConfigError> {
    match fields::ip(field, value)? {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(ip) => Err(invalid(
            field,
            format!("{ip} is an IPv6 address; DHCPv4 needs IPv4"),
        )),
    }
}

/// An IPv4 prefix like `10.0.0.0/24`.
fn ipv4_prefix(field: &str, value: &Value) -> Result<Ipv4Net, ConfigError> {
    match fields::prefix(field, value)? {
        IpNet::V4(net) => Ok(net),
        IpNet::V6(net) => Err(invalid(
            field,
            format!("{net} is an IPv6 prefix; DHCPv4 needs IPv4"),
        )),
    }
}

const SEGMENTS: &str = "local|flat:PHYSNET|vlan:PHYSNET:VID|vxlan:VNI|gre:KEY|nvgre:VSID";

fn read_segment(field: &str, value: &Value) -> Result<Segment, ConfigError> {
    let text = fields::string(field, value)?;
    let parts: Vec<&str> = text.split(':').collect();
    let number = |what: &str, max: u32, text: &str| -> Result<u32, ConfigError> {
        text.parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| invalid(field, format!("{what} must be 0-{max}, got {text:?}")))
    };
    match parts.as_slice() {
        ["local"] => Ok(Segment::Local),
        ["flat", net] if !net.is_empty() => Ok(Segment::Flat {
            physical_network: (*net).to_owned(),
        }),
        ["vlan", net, vid] if !net.is_empty() => {
            let vid = vid
                .parse::<u16>()
                .ok()
                .filter(|v| (1..=4094).contains(v))
                .ok_or_else(|| invalid(field, format!("a VLAN id must be 1-4094, got {vid:?}")))?;
            Ok(Segment::Vlan {
                physical_network: (*net).to_owned(),
                vid,
            })
        }
        ["vxlan", vni] => Ok(Segment::Vxlan(Vni::from_low_bits(number(
            "a VNI",
            Vni::MAX,
            vni,
        )?))),
        ["gre", key] => Ok(Segment::Gre(number("a GRE key", u32::MAX, key)?)),
        ["nvgre", vsid] => Ok(Segment::Nvgre(Vni::from_low_bits(number(
            "a VSID",
            Vni::MAX,
            vsid,
        )?))),
        _ => Err(invalid(field, format!("expected {SEGMENTS}, got {text:?}"))),
    }
}

impl PortSpec {
    /// True when `other` is backed by the same device: the same name, type and device fields
    /// (a TAP's namespace, an uplink's physical network, a tunnel's local address and port).
    /// Such a port keeps its open device across a change; only its VM side (logical switch,
    /// MAC, addresses, port security) may differ.
    pub fn same_device(&self, other: &Self) -> bool {
        self.name == other.name
            && match (&self.kind, &other.kind) {
                (PortType::Tap { netns: a, .. }, PortType::Tap { netns: b, .. }) => a == b,
                (PortType::Memory { .. }, PortType::Memory { .. }) => true,
                (
                    PortType::Uplink {
                        physical_network: a,
                        ..
                    },
                    PortType::Uplink {
                        physical_network: b,
                        ..
                    },
                ) => a == b,
                (
                    PortType::Vxlan {
                        local_ip: a,
                        port: pa,
                        source_ports: sa,
                    },
                    PortType::Vxlan {
                        local_ip: b,
                        port: pb,
                        source_ports: sb,
                    },
                ) => a == b && pa == pb && sa == sb,
                (PortType::Gre { local_ip: a }, PortType::Gre { local_ip: b }) => a == b,
                // Channels and gating are the bridge ports' business; the socket stays.
                (PortType::Station { .. }, PortType::Station { .. }) => true,
                _ => false,
            }
    }

    /// True when `new`'s device cannot be opened while this port's is: anything named like a
    /// TAP (the kernel allows one netdev of a name), or a VXLAN socket on the same address and UDP
    /// port (a VXLAN port whose `source_ports` changed). Such a port is closed first.
    pub fn blocks(&self, new: &Self) -> bool {
        match (&self.kind, &new.kind) {
            (PortType::Tap { .. }, _) => self.name == new.name,
            (
                PortType::Vxlan {
                    local_ip: a,
                    port: pa,
                    ..
                },
                PortType::Vxlan {
                    local_ip: b,
                    port: pb,
                    ..
                },
            ) => a == b && pa == pb,
            _ => false,
        }
    }

    /// Reads a port found at `path`.
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        let mut object = Object::new(path, value)?;
        let name = object.required("name", fields::name)?;
        let kind = object.required("type", fields::string)?;
        let kind = match kind {
            "tap" => {
                interface_name(&object.field("name"), &name)?;
                let vm = read_vm(&mut object)?;
                let netns = object.optional("netns", read_netns)?;
                let ifname = object.optional("netns_ifname", |field, value| {
                    let ifname = fields::string(field, value)?;
                    interface_name(field, ifname)?;
                    Ok(ifname.to_owned())
                })?;
                let netns = match (netns, ifname) {
                    (Some(name), ifname) => Some(NetnsSpec {
                        name,
                        ifname: ifname.unwrap_or_else(|| DEFAULT_NETNS_IFNAME.to_owned()),
                    }),
                    (None, Some(_)) => {
                        return Err(invalid(
                            object.field("netns_ifname"),
                            "only means something with netns",
                        ));
                    }
                    (None, None) => None,
                };
                let subports = read_subports(&mut object)?;
                PortType::Tap {
                    vm,
                    netns,
                    subports,
                }
            }
            "memory" => PortType::Memory {
                vm: read_vm(&mut object)?,
                subports: read_subports(&mut object)?,
            },
            "uplink" => {
                interface_name(&object.field("name"), &name)?;
                PortType::Uplink {
                    physical_network: object.required("physical_network", fields::name)?,
                    relay: object.optional("relay", read_relay)?.unwrap_or_default(),
                    channels: object
                        .optional("s_channels", |f, v| {
                            fields::list(f, v, UplinkChannelSpec::read)
                        })?
                        .unwrap_or_default(),
                }
            }
            "station" => {
                interface_name(&object.field("name"), &name)?;
                PortType::Station {
                    channels: object
                        .optional("s_channels", |f, v| fields::list(f, v, read_channel))?
                        .unwrap_or_else(|| {
                            vec![ChannelSpec {
                                svid: 1,
                                reflective_relay: false,
                            }]
                        }),
                    vdp_gating: object
                        .optional("vdp_gating", fields::boolean)?
                        .unwrap_or(false),
                }
            }
            "vxlan" => PortType::Vxlan {
                local_ip: object.required("local_ip", fields::ip)?,
                port: object
                    .optional("port", fields::integer_in(1..=u16::MAX, ""))?
                    .unwrap_or(DEFAULT_VXLAN_PORT),
                source_ports: object
                    .optional(
                        "source_ports",
                        fields::integer_in(1..=MAX_VXLAN_SOURCE_PORTS, ""),
                    )?
                    .unwrap_or(DEFAULT_VXLAN_SOURCE_PORTS),
            },
            "gre" => PortType::Gre {
                local_ip: object.required("local_ip", fields::ip)?,
            },
            other => {
                return Err(invalid(
                    object.field("type"),
                    format!("expected tap, memory, uplink, vxlan, gre or station, got {other:?}"),
                ));
            }
        };
        object.finish()?;
        Ok(Self { name, kind })
    }

    /// The port as the file writes it.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("name".into(), json!(self.name));
        map.insert("type".into(), json!(self.kind.as_str()));
        match &self.kind {
            PortType::Tap {
                vm,
                netns,
                subports,
            } => {
                vm_to_value(vm, &mut map);
                if let Some(netns) = netns {
                    map.insert("netns".into(), json!(netns.name));
                    map.insert("netns_ifname".into(), json!(netns.ifname));
                }
                subports_to_value(subports, &mut map);
            }
            PortType::Memory { vm, subports } => {
                vm_to_value(vm, &mut map);
                subports_to_value(subports, &mut map);
            }
            PortType::Uplink {
                physical_network,
                relay,
                channels,
            } => {
                map.insert("physical_network".into(), json!(physical_network));
                // VEB is what every uplink did before edge relays had a mode.
                if *relay != RelayMode::Veb {
                    map.insert("relay".into(), json!(relay.as_str()));
                }
                // Likewise a plain uplink lists no `s_channels`, as before they existed.
                if !channels.is_empty() {
                    let channels = channels.iter().map(UplinkChannelSpec::to_value).collect();
                    map.insert("s_channels".into(), Value::Array(channels));
                }
            }
            PortType::Station {
                channels,
                vdp_gating,
            } => {
                let channels = channels.iter().map(ChannelSpec::to_value).collect();
                map.insert("s_channels".into(), Value::Array(channels));
                map.insert("vdp_gating".into(), json!(vdp_gating));
            }
            PortType::Vxlan {
                local_ip,
                port,
                source_ports,
            } => {
                map.insert("local_ip".into(), json!(local_ip.to_string()));
                map.insert("port".into(), json!(port));
                map.insert("source_ports".into(), json!(source_ports));
            }
            PortType::Gre { local_ip } => {
                map.insert("local_ip".into(), json!(local_ip.to_string()));
            }
        }
        Value::Object(map)
    }
}

/// Reads an edge relay's mode.
fn read_relay(field: &str, value: &Value) -> Result<RelayMode, ConfigError> {
    match fields::string(field, value)? {
        "veb" => Ok(RelayMode::Veb),
        "vepa" => Ok(RelayMode::Vepa),
        other => Err(invalid(
            field,
            format!("expected veb or vepa, got {other:?}"),
        )),
    }
}

impl UplinkChannelSpec {
    /// Reads one S-channel of an uplink found at `path`.
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        let mut object = Object::new(path, value)?;
        let svid = object.required("svid", |field, value| {
            if value.as_u64() == Some(1) {
                return Err(invalid(
                    field,
                    "1 is the default S-channel, which is the uplink's own physical_network \
                     and relay; a listed channel must be 2-4094",
                ));
            }
            fields::integer_in(2..=4094u16, "")(field, value)
        })?;
        let physical_network = object.required("physical_network", fields::name)?;
        let relay = object.optional("relay", read_relay)?.unwrap_or_default();
        object.finish()?;
        Ok(Self {
            svid,
            physical_network,
            relay,
        })
    }
}

impl ChannelSpec {
    /// Reads one S-channel of a station port found at `path`.
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        read_channel(path, value)
    }
}

/// Reads one S-channel of a station port.
fn read_channel(field: &str, value: &Value) -> Result<ChannelSpec, ConfigError> {
    let mut object = Object::new(field, value)?;
    let svid = object.required("svid", fields::integer_in(1..=4094u16, ""))?;
    let reflective_relay = object
        .optional("reflective_relay", fields::boolean)?
        .unwrap_or(false);
    object.finish()?;
    Ok(ChannelSpec {
        svid,
        reflective_relay,
    })
}

fn read_vm(object: &mut Object<'_>) -> Result<VmSpec, ConfigError> {
    let switch = object.required("switch", fields::name)?;
    let mac = object.required("mac", fields::unicast_mac)?;
    let ips = object
        .optional("ips", |f, v| fields::list(f, v, fields::ip))?
        .unwrap_or_default();
    let allowed_pairs = object
        .optional("allowed_pairs", |f, v| {
            fields::list(f, v, |field, value| {
                let mut pair = Object::new(field, value)?;
                let mac = pair.required("mac", fields::unicast_mac)?;
                let ip = pair.required("ip", fields::prefix)?;
                pair.finish()?;
                Ok((mac, ip))
            })
        })?
        .unwrap_or_default();
    let port_security = object
        .optional("port_security", fields::boolean)?
        .unwrap_or(true);
    Ok(VmSpec {
        switch,
        mac,
        ips,
        allowed_pairs,
        port_security,
    })
}

/// Reads a VM port's optional `subports`: each a VM side (as the port's own fields) with a
/// `vlan`.
fn read_subports(object: &mut Object<'_>) -> Result<Vec<SubportSpec>, ConfigError> {
    Ok(object
        .optional("subports", |f, v| {
            fields::list(f, v, |field, value| {
                let mut sub = Object::new(field, value)?;
                let vlan = sub.required("vlan", fields::integer_in(1..=4094u16, ""))?;
                let vm = read_vm(&mut sub)?;
                sub.finish()?;
                Ok(SubportSpec { vlan, vm })
            })
        })?
        .unwrap_or_default())
}

/// Writes `subports` into a port's map; an access port (none) gets no key, so its listing is
/// what it was before trunks existed.
fn subports_to_value(subports: &[SubportSpec], map: &mut Map<String, Value>) {
    if subports.is_empty() {
        return;
    }
    let list = subports
        .iter()
        .map(|sub| {
            let mut entry = Map::new();
            entry.insert("vlan".into(), json!(sub.vlan));
            vm_to_value(&sub.vm, &mut entry);
            Value::Object(entry)
        })
        .collect();
    map.insert("subports".into(), Value::Array(list));
}

fn vm_to_value(vm: &VmSpec, map: &mut Map<String, Value>) {
    map.insert("switch".into(), json!(vm.switch));
    map.insert("mac".into(), json!(vm.mac.to_string()));
    map.insert(
        "ips".into(),
        json!(vm.ips.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    map.insert(
        "allowed_pairs".into(),
        Value::Array(
            vm.allowed_pairs
                .iter()
                .map(|(mac, ip)| json!({"mac": mac.to_string(), "ip": ip.to_string()}))
                .collect(),
        ),
    );
    map.insert("port_security".into(), json!(vm.port_security));
}

/// A Linux interface name: 1-15 bytes, none of them `/`, `:`, NUL or white space, and not `.`
/// or `..` (the kernel's `dev_valid_name`).
fn interface_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad {
        return Err(invalid(
            field,
            format!("{name:?} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)"),
        ));
    }
    Ok(())
}

fn read_netns(field: &str, value: &Value) -> Result<String, ConfigError> {
    let name = fields::name(field, value)?;
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(invalid(
            field,
            format!("{name:?} is not a namespace name (a file name in /run/netns)"),
        ));
    }
    Ok(name)
}

impl RecordSpec {
    /// Reads a record found at `path`.
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        let mut object = Object::new(path, value)?;
        let record = Self {
            switch: object.required("switch", fields::name)?,
            ip: object.required("ip", fields::ip)?,
            mac: object.required("mac", fields::unicast_mac)?,
            remote: object.required("remote", fields::ip)?,
        };
        object.finish()?;
        Ok(record)
    }

    /// The record as the file writes it.
    pub fn to_value(&self) -> Value {
        json!({
            "switch": self.switch,
            "ip": self.ip.to_string(),
            "mac": self.mac.to_string(),
            "remote": self.remote.to_string(),
        })
    }
}

impl VsiSpec {
    /// Reads a VSI found at `path`.
    pub fn read(path: &str, value: &Value) -> Result<Self, ConfigError> {
        let mut object = Object::new(path, value)?;
        let vsi = Self {
            port: object.required("port", fields::name)?,
            mac: object.required("mac", fields::unicast_mac)?,
            vlan: object
                .optional("vlan", fields::integer_in(0..=4094u16, ""))?
                .unwrap_or(0),
            switch: object.required("switch", fields::name)?,
        };
        object.finish()?;
        Ok(vsi)
    }

    /// The VSI as the file writes it.
    pub fn to_value(&self) -> Value {
        json!({
            "port": self.port,
            "mac": self.mac.to_string(),
            "vlan": self.vlan,
            "switch": self.switch,
        })
    }

    /// True when `other` is the same VSI filter (channel, MAC, C-VLAN), whatever its switch.
    pub fn same_filter(&self, other: &Self) -> bool {
        self.port == other.port && self.mac == other.mac && self.vlan == other.vlan
    }
}

/// serde through the JSON value tree, so a serde user gets the same field-naming errors.
macro_rules! serde_via_value {
    ($type:ty, $read:expr, $path:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.to_value().serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                $read($path, &value).map_err(D::Error::custom)
            }
        }
    };
}

serde_via_value!(SwitchConfig, read_config, "");
serde_via_value!(SwitchSpec, SwitchSpec::read, "switch");
serde_via_value!(PortSpec, PortSpec::read, "port");
serde_via_value!(RecordSpec, RecordSpec::read, "record");

fn read_config(_path: &str, value: &Value) -> Result<SwitchConfig, ConfigError> {
    SwitchConfig::from_value(value)
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SwitchConfig {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_toml(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
mac_aging_secs = 300
busy_poll_us = 50

[[switch]]
name = "net1"
local_vlan = 1
segment = "vxlan:100"
flood = ["192.0.2.2"]
mac_limit = 100
dhcp = [{ cidr = "10.0.0.0/24", server_ip = "10.0.0.254", server_mac = "fa:16:3e:ff:00:01",
          router = "10.0.0.254", dns = ["10.0.0.2"], mtu = 1450, lease_secs = 600,
          domain = "example.org", routes = [{ destination = "10.5.0.0/16", nexthop = "10.0.0.3" }] }]

[[switch]]
name = "net2"
local_vlan = 2
segment = "vlan:physnet1:200"

[[port]]
name = "wft-vm1"
type = "tap"
switch = "net1"
mac = "fa:16:3e:00:00:01"
ips = ["10.0.0.1"]
allowed_pairs = [{ mac = "fa:16:3e:00:00:01", ip = "10.0.0.100/32" }]
port_security = true
netns = "vm1"

[[port]]
name = "eth1"
type = "uplink"
physical_network = "physnet1"

[[port]]
name = "vxlan0"
type = "vxlan"
local_ip = "192.0.2.1"
port = 4789

[[port]]
name = "vm2"
type = "memory"
switch = "net2"
mac = "fa:16:3e:00:00:03"

[[record]]
switch = "net1"
ip = "10.0.0.2"
mac = "fa:16:3e:00:00:02"
remote = "192.0.2.2"
"#;

    fn error(text: &str) -> String {
        SwitchConfig::from_toml(text)
            .and_then(|config| config.tables(1).map(|_| config))
            .expect_err("refused")
            .to_string()
    }

    /// EXAMPLE with `from` replaced by `to` (which must be there).
    fn example_with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn test_example_reads_and_builds() {
        let config = SwitchConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!((config.mac_aging_secs, config.busy_poll_us), (300, 50));
        assert_eq!(config.switches.len(), 2);
        assert_eq!(
            config.switches[0].segment,
            Segment::Vxlan(Vni::from_low_bits(100))
        );
        assert_eq!(config.switches[1].mac_limit, DEFAULT_MAC_LIMIT);
        let dhcp = &config.switches[0].dhcp[0];
        assert_eq!(
            (dhcp.mtu, dhcp.lease_secs, dhcp.routes.len()),
            (Some(1450), 600, 1)
        );
        assert!(config.switches[1].dhcp.is_empty());
        let PortType::Tap { vm, netns, .. } = &config.ports[0].kind else {
            panic!("a tap port")
        };
        assert_eq!(vm.allowed_pairs.len(), 1);
        assert_eq!(
            netns.as_ref().map(|n| n.ifname.as_str()),
            Some(DEFAULT_NETNS_IFNAME)
        );
        let tables = config.tables(7).unwrap();
        assert_eq!(tables.generation(), 7);
        // Names became indexes: the memory port is on the second switch.
        let PortKind::Vm(vm2) = &tables.config().ports[3].kind else {
            panic!("a VM port")
        };
        assert_eq!(vm2.ls, LsId(1));
        assert_eq!(tables.config().records[0].ls, LsId(0));
    }

    #[test]
    fn test_round_trips_through_json() {
        let config = SwitchConfig::from_toml(EXAMPLE).unwrap();
        let again = SwitchConfig::from_value(&config.to_value()).unwrap();
        assert_eq!(again, config);
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<SwitchConfig>(&text).unwrap(), config);
    }

    #[test]
    fn test_vxlan_source_ports_read_list_and_reopen() {
        let source_ports = |config: &SwitchConfig| match config.ports[2].kind {
            PortType::Vxlan { source_ports, .. } => source_ports,
            _ => panic!("a vxlan port"),
        };
        // Not given: the default, which `list` shows.
        let config = SwitchConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(source_ports(&config), DEFAULT_VXLAN_SOURCE_PORTS);
        assert_eq!(
            config.to_value()["port"][2]["source_ports"],
            json!(DEFAULT_VXLAN_SOURCE_PORTS)
        );
        // Given: read, listed and read back (JSON and serde) the same.
        let four = SwitchConfig::from_toml(&example_with(
            "port = 4789
",
            "port = 4789
source_ports = 4
",
        ))
        .unwrap();
        assert_eq!(source_ports(&four), 4);
        let value = four.to_value();
        assert_eq!(
            value["port"][2],
            json!({"name": "vxlan0", "type": "vxlan", "local_ip": "192.0.2.1", "port": 4789,
                   "source_ports": 4})
        );
        assert_eq!(SwitchConfig::from_value(&value).unwrap(), four);
        let text = serde_json::to_string(&four).unwrap();
        assert_eq!(serde_json::from_str::<SwitchConfig>(&text).unwrap(), four);
        // Another count is another device, which the old one's address and port block.
        let (old, new) = (&config.ports[2], &four.ports[2]);
        assert!(!old.same_device(new));
        assert!(old.blocks(new));
        let mut elsewhere = new.clone();
        if let PortType::Vxlan { port, .. } = &mut elsewhere.kind {
            *port = 4790;
        }
        assert!(!old.blocks(&elsewhere));
        // A TAP blocks whatever comes under its name, and nothing else.
        assert!(config.ports[0].blocks(&config.ports[0]));
        assert!(!config.ports[0].blocks(old));
        for (bad, expected) in [
            ("0", "port[2].source_ports: must be 1-256, got 0"),
            ("257", "port[2].source_ports: must be 1-256, got 257"),
            (
                "\"many\"",
                "port[2].source_ports: expected an integer 0-65535, got the string \"many\"",
            ),
        ] {
            let text = example_with(
                "port = 4789\n",
                &format!("port = 4789\nsource_ports = {bad}\n"),
            );
            assert_eq!(error(&text), expected);
        }
    }

    #[test]
    fn test_empty_file_is_an_empty_config() {
        assert_eq!(
            SwitchConfig::from_toml("").unwrap(),
            SwitchConfig::default()
        );
    }

    #[test]
    fn test_errors_name_the_field() {
        let cases = [
            (
                example_with(r#"mac = "fa:16:3e:00:00:03""#, r#"mac = "fa:16:3e:00:03""#),
                "port[3].mac: invalid MAC address",
            ),
            (
                example_with(r#"segment = "vxlan:100""#, r#"segment = "vxlan""#),
                r#"switch "net1".segment: expected local|flat:PHYSNET|vlan:PHYSNET:VID|vxlan:VNI|gre:KEY|nvgre:VSID, got "vxlan""#,
            ),
            (
                example_with(r#"segment = "vxlan:100""#, r#"segment = "vxlan:16777216""#),
                r#"switch "net1".segment: a VNI must be 0-16777215, got "16777216""#,
            ),
            (
                example_with(
                    "[[record]]\nswitch = \"net1\"",
                    "[[record]]\nswitch = \"x\"",
                ),
                r#"record[0].switch: no switch named "x""#,
            ),
            (
                example_with("local_vlan = 2", "local_vlan = 1"),
                r#"switch "net2".local_vlan: 1 is used by another switch"#,
            ),
            (
                example_with("local_vlan = 2", "local_vlan = \"2\""),
                r#"switch "net2".local_vlan: expected an integer 0-65535, got the string "2""#,
            ),
            (
                example_with("local_vlan = 2", "local_vlan = 4095"),
                r#"switch "net2".local_vlan: must be 1-4094, got 4095"#,
            ),
            (
                example_with("mac_limit = 100", "mac_limit = 100\ncolour = \"red\""),
                r#"switch "net1".colour: unknown field; expected one of name, local_vlan, segment, flood, mac_limit, dhcp"#,
            ),
            (
                example_with("port = 4789", "port = 4789\nmac = \"fa:16:3e:00:00:09\""),
                "port[2].mac: unknown field; expected one of name, type, local_ip, port",
            ),
            (
                example_with("type = \"uplink\"", "type = \"bridge\""),
                r#"port[1].type: expected tap, memory, uplink, vxlan, gre or station, got "bridge""#,
            ),
            (
                example_with("switch = \"net2\"", "switch = \"net9\""),
                r#"port "vm2".switch: no switch named "net9""#,
            ),
            (
                example_with("name = \"vm2\"", "name = \"eth1\""),
                r#"port[3].name: "eth1" is the name of another port"#,
            ),
            (
                example_with("name = \"net2\"", "name = \"net1\""),
                r#"switch[1].name: "net1" is the name of another switch"#,
            ),
            (
                example_with(
                    "physical_network = \"physnet1\"",
                    "physical_network = \"physnet9\"",
                ),
                r#"switch "net2".segment: no uplink serves physical network "physnet1""#,
            ),
            (
                example_with("type = \"vxlan\"", "type = \"gre\"").replace("port = 4789\n", ""),
                r#"switch "net1".segment: no Vxlan tunnel port"#,
            ),
            (
                example_with("mac = \"fa:16:3e:00:00:02\"", "mac = \"fa:16:3e:00:00:01\""),
                r#"record[0].mac: fa:16:3e:00:00:01 is the address of local port "wft-vm1""#,
            ),
            (
                example_with("ips = [\"10.0.0.1\"]", "ips = [\"10.0.0.1\", \"10.0.0.x\"]"),
                r#"port[0].ips[1]: invalid IP address "10.0.0.x""#,
            ),
            (
                example_with("ip = \"10.0.0.100/32\"", "ip = \"10.0.0.100/33\""),
                r#"port[0].allowed_pairs[0].ip: invalid IP prefix "10.0.0.100/33""#,
            ),
            (
                example_with("name = \"wft-vm1\"", "name = \"a-very-long-tap-name\""),
                r#"port[0].name: "a-very-long-tap-name" is not a valid interface name"#,
            ),
            (
                example_with("nexthop = \"10.0.0.3\"", "nexthop = \"fd00::3\""),
                r#"switch "net1".dhcp[0].routes[0].nexthop: fd00::3 is an IPv6 address"#,
            ),
            (
                example_with("domain = \"example.org\"", "domain = \"\""),
                r#"switch "net1".dhcp[0].domain: must not be empty"#,
            ),
            (
                example_with("mac_aging_secs = 300", "mac_aging_secs = 0"),
                "mac_aging_secs: must be 1-86400 seconds, got 0",
            ),
            (
                example_with("mtu = 1450", "mtu = 67"),
                r#"switch "net1".dhcp[0].mtu: must be 68-65535, got 67"#,
            ),
            (
                example_with("lease_secs = 600", "lease_secs = 0"),
                r#"switch "net1".dhcp[0].lease_secs: must be 1-4294967295 seconds, got 0"#,
            ),
            (
                example_with("port = 4789", "port = 0"),
                "port[2].port: must be 1-65535, got 0",
            ),
            (
                example_with("port = 4789", "port = 65536"),
                "port[2].port: expected an integer 0-65535, got 65536",
            ),
            (
                example_with("[[record]]", "[[recrod]]"),
                "recrod: unknown field; expected one of mac_aging_secs, busy_poll_us, switch, port, record",
            ),
            (
                example_with("busy_poll_us = 50", "busy_poll_us = 1000001"),
                "busy_poll_us: must be 0-1000000 microseconds, got 1000001",
            ),
            (
                example_with(
                    "segment = \"vlan:physnet1:200\"",
                    "segment = \"local\"\nflood = [\"192.0.2.9\"]",
                ),
                r#"switch "net2".flood: only tunnel segments have remote endpoints"#,
            ),
            (
                "[[switch]]\nname = \"a\"\nlocal_vlan = 1\n[[record]]\nswitch = \"a\"\n".to_owned(),
                r#"switch "a".segment: missing"#,
            ),
            (
                example_with("ip = \"10.0.0.2\"\n", ""),
                "record[0].ip: missing",
            ),
            (
                "[[switch]\n".to_owned(),
                "config: TOML parse error at line 1",
            ),
        ];
        for (text, expected) in cases {
            let got = error(&text);
            assert!(
                got.starts_with(expected),
                "expected {expected:?}\n     got {got:?}"
            );
        }
    }

    const TRUNK: &str = r#"
[[switch]]
name = "net0"
local_vlan = 1
segment = "local"

[[switch]]
name = "net1"
local_vlan = 2
segment = "local"

[[port]]
name = "tapb7d4c968-af"
type = "tap"
switch = "net0"
mac = "fa:16:3e:90:7a:ca"
ips = ["10.0.4.5"]

[[port.subports]]
vlan = 1
switch = "net1"
mac = "fa:16:3e:cc:b9:27"
ips = ["10.0.5.7"]

[[port.subports]]
vlan = 2
switch = "net1"
mac = "fa:16:3e:25:d2:c9"
port_security = false
"#;

    #[test]
    fn test_subports_read_list_and_build() {
        let config = SwitchConfig::from_toml(TRUNK).unwrap();
        let subports = config.ports[0].kind.subports();
        assert_eq!(subports.len(), 2);
        assert_eq!(
            (subports[0].vlan, subports[0].vm.switch.as_str()),
            (1, "net1")
        );
        assert!(!subports[1].vm.port_security);
        // `list` shows them in the file's shape, and that reads back the same.
        let value = config.to_value();
        assert_eq!(
            value["port"][0]["subports"][0],
            json!({"vlan": 1, "switch": "net1", "mac": "fa:16:3e:cc:b9:27",
                   "ips": ["10.0.5.7"], "allowed_pairs": [], "port_security": true})
        );
        assert_eq!(SwitchConfig::from_value(&value).unwrap(), config);
        // An access port lists no `subports` key at all.
        let access = SwitchConfig::from_toml(EXAMPLE).unwrap().to_value();
        assert!(access["port"][0].get("subports").is_none());
        // In the tables each subport is a port of its own after every port, named PORT.VLAN.
        let tables = config.tables(1).unwrap();
        let names: Vec<&str> = tables
            .config()
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["tapb7d4c968-af", "tapb7d4c968-af.1", "tapb7d4c968-af.2"]
        );
        assert_eq!(tables.subport(PortId(0), 2), Some(PortId(2)));
        // Subports are the VM side: the device is the same with or without them.
        let mut bare = config.ports[0].clone();
        if let PortType::Tap { subports, .. } = &mut bare.kind {
            subports.clear();
        }
        assert!(bare.same_device(&config.ports[0]));
    }

    #[test]
    fn test_subport_errors_name_the_field() {
        let with = |from: &str, to: &str| {
            assert!(TRUNK.contains(from), "{from}");
            TRUNK.replacen(from, to, 1)
        };
        let cases = [
            (
                with("\nvlan = 1", "\nvlan = 0"),
                "port[0].subports[0].vlan: must be 1-4094, got 0",
            ),
            (
                with("\nvlan = 2", "\nvlan = 4095"),
                "port[0].subports[1].vlan: must be 1-4094, got 4095",
            ),
            (
                with("\nvlan = 2", "\nvlan = 1"),
                r#"port "tapb7d4c968-af".subports[1].vlan: 1 is used by another subport of this port"#,
            ),
            (
                with(
                    "switch = \"net1\"\nmac = \"fa:16:3e:cc",
                    "switch = \"net9\"\nmac = \"fa:16:3e:cc",
                ),
                r#"port "tapb7d4c968-af".subports[0].switch: no switch named "net9""#,
            ),
            (
                with("mac = \"fa:16:3e:cc:b9:27\"", "mac = \"ff:ff:ff:ff:ff:ff\""),
                "port[0].subports[0].mac: ",
            ),
            (
                with("\nvlan = 1\n", "\n"),
                "port[0].subports[0].vlan: missing",
            ),
            (
                with("port_security = false", "port_security = false\ncolour = 1"),
                "port[0].subports[1].colour: unknown field; expected one of vlan, switch, mac, ips, allowed_pairs, port_security",
            ),
            (
                format!(
                    "{TRUNK}\n[[port]]\nname = \"tapb7d4c968-af.1\"\ntype = \"memory\"\nswitch = \"net0\"\nmac = \"fa:16:3e:00:00:01\"\n"
                ),
                r#"port "tapb7d4c968-af".subports[0].vlan: the subport would be named "tapb7d4c968-af.1", which is another port's name"#,
            ),
        ];
        for (text, expected) in cases {
            let got = error(&text);
            assert!(
                got.starts_with(expected),
                "expected {expected:?}\n     got {got:?}"
            );
        }
        let not_a_list = json!({"switch": [{"name": "n", "local_vlan": 1, "segment": "local"}],
            "port": [{"name": "m", "type": "memory", "switch": "n", "mac": "fa:16:3e:00:00:01",
                      "subports": 3}]});
        let got = SwitchConfig::from_value(&not_a_list)
            .unwrap_err()
            .to_string();
        assert!(got.starts_with("port[0].subports: "), "{got}");
    }

    #[test]
    fn test_records_must_agree() {
        let base = "[[switch]]\nname = \"a\"\nlocal_vlan = 1\nsegment = \"gre:5\"\n\
                    [[port]]\nname = \"g\"\ntype = \"gre\"\nlocal_ip = \"192.0.2.1\"\n";
        let record = |ip: &str, mac: &str, remote: &str| {
            format!(
                "[[record]]\nswitch = \"a\"\nip = \"{ip}\"\nmac = \"{mac}\"\nremote = \"{remote}\"\n"
            )
        };
        let two_ips_one_vm = format!(
            "{base}{}{}",
            record("10.0.0.2", "02:00:00:00:00:02", "192.0.2.2"),
            record("fd00::2", "02:00:00:00:00:02", "192.0.2.2")
        );
        assert!(SwitchConfig::from_toml(&two_ips_one_vm).is_ok());
        let same_ip = format!(
            "{base}{}{}",
            record("10.0.0.2", "02:00:00:00:00:02", "192.0.2.2"),
            record("10.0.0.2", "02:00:00:00:00:03", "192.0.2.2")
        );
        assert_eq!(
            error(&same_ip),
            r#"record[1].ip: switch "a" already has a record for 10.0.0.2 (mac 02:00:00:00:00:02, remote 192.0.2.2)"#
        );
        let mac_in_two_places = format!(
            "{base}{}{}",
            record("10.0.0.2", "02:00:00:00:00:02", "192.0.2.2"),
            record("10.0.0.3", "02:00:00:00:00:02", "192.0.2.3")
        );
        assert_eq!(
            error(&mac_in_two_places),
            "record[1].remote: 02:00:00:00:00:02 is already behind 192.0.2.2 (record for 10.0.0.2)"
        );
    }

    /// A station's uplink: the default channel a VEPA relay for `evb`, channel 20 a VEB relay
    /// for `evb2` carrying VLAN 300.
    const STATION: &str = r#"
[[switch]]
name = "net20"
local_vlan = 1
segment = "vlan:evb2:300"

[[port]]
name = "vm1"
type = "memory"
switch = "net20"
mac = "fa:16:3e:00:00:01"

[[port]]
name = "eth2"
type = "uplink"
physical_network = "evb"
relay = "vepa"
s_channels = [{ svid = 20, physical_network = "evb2", relay = "veb" }]
"#;

    #[test]
    fn test_uplink_channels_read_list_and_build() {
        let config = SwitchConfig::from_toml(STATION).unwrap();
        let channels = config.ports[1].kind.uplink_channels();
        assert_eq!(
            channels,
            [UplinkChannelSpec {
                svid: 20,
                physical_network: "evb2".into(),
                relay: RelayMode::Veb,
            }]
        );
        // Listed in the file's shape, which reads back the same; a plain uplink lists none.
        let value = config.to_value();
        assert_eq!(
            value["port"][1]["s_channels"],
            json!([{"svid": 20, "physical_network": "evb2", "relay": "veb"}])
        );
        assert_eq!(SwitchConfig::from_value(&value).unwrap(), config);
        let plain = SwitchConfig::from_toml(EXAMPLE).unwrap().to_value();
        assert!(plain["port"][1].get("s_channels").is_none());
        // The channel is a port of its own after every port, PORT.sSVID, serving evb2.
        let tables = config.tables(1).unwrap();
        let names: Vec<&str> = tables
            .config()
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["vm1", "eth2", "eth2.s20"]);
        assert_eq!(tables.uplink("evb"), Some(PortId(1)));
        assert_eq!(tables.uplink("evb2"), Some(PortId(2)));
        assert_eq!(tables.channel(PortId(1), 20), Some(PortId(2)));
        assert_eq!(tables.relay(PortId(1)), RelayMode::Vepa);
        assert_eq!(tables.relay(PortId(2)), RelayMode::Veb);
        assert_eq!(tables.switch_for_vlan(PortId(2), Some(300)), Some(LsId(0)));
        // Channels are not the device.
        let mut bare = config.ports[1].clone();
        if let PortType::Uplink { channels, .. } = &mut bare.kind {
            channels.clear();
        }
        assert!(bare.same_device(&config.ports[1]));
    }

    #[test]
    fn test_uplink_channel_errors_name_the_field() {
        let with = |to: &str| {
            let from = r#"s_channels = [{ svid = 20, physical_network = "evb2", relay = "veb" }]"#;
            assert!(STATION.contains(from));
            STATION.replacen(from, &format!("s_channels = [{to}]"), 1)
        };
        let second_uplink = format!(
            "{STATION}\n[[port]]\nname = \"eth3\"\ntype = \"uplink\"\nphysical_network = \"evb2\"\n"
        );
        let cases = [
            (
                with(r#"{ svid = 1, physical_network = "evb2" }"#),
                "port[1].s_channels[0].svid: 1 is the default S-channel",
            ),
            (
                with(r#"{ svid = 4095, physical_network = "evb2" }"#),
                "port[1].s_channels[0].svid: must be 2-4094, got 4095",
            ),
            (
                with(
                    r#"{ svid = 20, physical_network = "evb2" }, { svid = 20, physical_network = "evb3" }"#,
                ),
                r#"port "eth2".s_channels[1].svid: 20 is used by another S-channel of this port"#,
            ),
            (
                with(r#"{ svid = 20, physical_network = "evb" }"#),
                r#"port "eth2".s_channels[0].physical_network: "evb" is already served by uplink "eth2""#,
            ),
            (
                with(
                    r#"{ svid = 20, physical_network = "evb2" }, { svid = 30, physical_network = "evb2" }"#,
                ),
                r#"port "eth2".s_channels[1].physical_network: "evb2" is already served by S-channel "eth2.s20""#,
            ),
            (
                second_uplink,
                r#"port "eth3".physical_network: "evb2" is already served by S-channel "eth2.s20""#,
            ),
            (
                with(r#"{ svid = 20, physical_network = "evb2", relay = "vepb" }"#),
                r#"port[1].s_channels[0].relay: expected veb or vepa, got "vepb""#,
            ),
            (
                with(r#"{ svid = 20 }"#),
                "port[1].s_channels[0].physical_network: missing",
            ),
            (
                with(r#"{ svid = 20, physical_network = "evb2", reflective_relay = true }"#),
                "port[1].s_channels[0].reflective_relay: unknown field; expected one of svid, \
                 physical_network, relay",
            ),
            (
                format!(
                    "{STATION}\n[[port]]\nname = \"eth2.s20\"\ntype = \"memory\"\nswitch = \"net20\"\nmac = \"fa:16:3e:00:00:02\"\n"
                ),
                r#"port "eth2".s_channels[0].svid: the channel would be named "eth2.s20", another port's name"#,
            ),
            (
                STATION.replace(
                    r#"physical_network = "evb2""#,
                    r#"physical_network = "evb3""#,
                ),
                r#"switch "net20".segment: no uplink serves physical network "evb2""#,
            ),
        ];
        for (text, expected) in cases {
            let got = error(&text);
            assert!(
                got.starts_with(expected),
                "expected {expected:?}\n     got {got:?}"
            );
        }
    }
}
