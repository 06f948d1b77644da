//! The switch's configuration in the JSON shape its control socket takes (`replace`) and gives
//! (`list`): `{"switch": [...], "port": [...], "record": [...]}`, as `weft switch`'s
//! configuration file writes it.
//!
//! The agent writes these with serde rather than linking the switch crate, so it stays a
//! small client of a line protocol (and the switch can change its internals freely). Fields
//! the agent leaves to the switch's defaults (`mac_limit`, the VXLAN UDP port, a TAP's
//! namespace) are not written; optional ones are omitted when empty.

use serde::{Deserialize, Serialize};

/// A whole configuration (what `replace` sends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The switch's MAC aging time, carried over from its `list` so `replace` keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_aging_secs: Option<u64>,
    /// The switch's busy-poll window, carried over likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_poll_us: Option<u64>,
    /// Logical switches, one per network with a local port.
    #[serde(default)]
    pub switch: Vec<LogicalSwitch>,
    /// Tunnel, uplink and VM ports.
    #[serde(default)]
    pub port: Vec<Port>,
    /// Where remote tenant addresses are.
    #[serde(default)]
    pub record: Vec<Record>,
}

/// A logical switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalSwitch {
    /// The network id.
    pub name: String,
    /// The host-local VLAN id, 1-4094.
    pub local_vlan: u16,
    /// `local`, `flat:PHYSNET`, `vlan:PHYSNET:VID`, `vxlan:VNI`, `gre:KEY` or `nvgre:VSID`.
    pub segment: String,
    /// Remote tunnel endpoints that get broadcast and unknown unicast.
    #[serde(default)]
    pub flood: Vec<String>,
    /// The DHCPv4 service the switch runs for the network's subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dhcp: Vec<Dhcp>,
}

/// DHCPv4 for one subnet, answered by the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// The subnet's prefix.
    pub cidr: String,
    /// The server's address: the gateway, or the subnet's last host address.
    pub server_ip: String,
    /// The MAC the switch answers ARP for `server_ip` with.
    pub server_mac: String,
    /// The default router (the gateway), if the subnet has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Classless static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The interface MTU handed out.
    pub mtu: u32,
    /// The lease time.
    pub lease_secs: u32,
    /// The DNS domain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A static route handed out by DHCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub destination: String,
    /// Next hop.
    pub nexthop: String,
}

/// A port, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Port {
    /// A VM's NIC on a TAP device.
    Tap {
        /// The interface name (`tap` + the first 11 characters of the port id).
        name: String,
        /// The logical switch (network id).
        switch: String,
        /// The VM's MAC.
        mac: String,
        /// Its fixed IPs.
        #[serde(default)]
        ips: Vec<String>,
        /// Extra (MAC, prefix) pairs it may send from.
        #[serde(default)]
        allowed_pairs: Vec<AllowedPair>,
        /// Whether anti-spoofing applies.
        #[serde(default = "yes")]
        port_security: bool,
        /// A trunk parent's subports: VLANs the VM sends tagged, each its own VM side.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        subports: Vec<Subport>,
    },
    /// A physical uplink.
    Uplink {
        /// The interface name.
        name: String,
        /// The physical network it serves.
        physical_network: String,
        /// Its edge relay (802.1Qbg): `vepa` sends everything, VM to VM too, to the adjacent
        /// bridge; absent is the switch's default, `veb` (local switching).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<String>,
    },
    /// The VXLAN tunnel endpoint.
    Vxlan {
        /// The port name (`vxlan0`).
        name: String,
        /// This host's tunnel address.
        local_ip: String,
        /// How many UDP source ports flows are spread over; absent is the switch's default
        /// (16), 1 sends everything from the VXLAN port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_ports: Option<u16>,
    },
    /// The GRE/NVGRE tunnel endpoint.
    Gre {
        /// The port name (`gre0`).
        name: String,
        /// This host's tunnel address.
        local_ip: String,
    },
}

const fn yes() -> bool {
    true
}

impl Port {
    /// The port's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Tap { name, .. }
            | Self::Uplink { name, .. }
            | Self::Vxlan { name, .. }
            | Self::Gre { name, .. } => name,
        }
    }
}

/// A trunk subport on a VM port: frames tagged `vlan` belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subport {
    /// The 802.1Q VLAN id on the VM's wire.
    pub vlan: u16,
    /// The subport's logical switch (network id).
    pub switch: String,
    /// The subport's MAC.
    pub mac: String,
    /// Its fixed IPs.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Extra (MAC, prefix) pairs it may send from.
    #[serde(default)]
    pub allowed_pairs: Vec<AllowedPair>,
    /// Whether anti-spoofing applies.
    #[serde(default = "yes")]
    pub port_security: bool,
}

/// An allowed address pair of a VM port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedPair {
    /// The MAC.
    pub mac: String,
    /// The prefix.
    pub ip: String,
}

/// A remote tenant address behind a tunnel endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The logical switch (network id).
    pub switch: String,
    /// The tenant IP.
    pub ip: String,
    /// The tenant MAC.
    pub mac: String,
    /// The other host's tunnel address.
    pub remote: String,
}

/// One port of the switch's `status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    /// The port's name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type", default)]
    pub port_type: String,
    /// Whether its device is open and working.
    pub up: bool,
}

/// The switch's `status` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Every port.
    pub ports: Vec<PortStatus>,
}
