//! The controller's objects as the watch carries them (Neutron admin shapes plus `weft:binding`),
//! reduced to the fields the agent acts on.
//!
//! Unknown fields are ignored, so the controller may add attributes freely. Because only
//! forwarding-relevant fields are kept, two versions of an object that differ only in
//! `status`, `revision_number`, `updated_at`, names or tags compare equal, and the view can
//! tell that such a change needs no new switch configuration.
//!
//! Addresses stay strings here: a bad address in one port must not make the whole event (and
//! with it every other object) unreadable. [`crate::desired`] parses them and skips what is bad.

use serde::Deserialize;

/// The MTU assumed when a network does not say (Neutron's default for Ethernet).
pub const DEFAULT_MTU: u32 = 1500;

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

fn default_true() -> bool {
    true
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Network {
    /// UUID; also the name of its logical switch.
    pub id: String,
    /// The largest IP packet its segments carry.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

/// A host route of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub destination: String,
    /// Next hop.
    pub nexthop: String,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    /// UUID.
    pub id: String,
    /// The network it belongs to.
    pub network_id: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Whether the switch answers DHCP for it.
    #[serde(default)]
    pub enable_dhcp: bool,
    /// The gateway, if any.
    #[serde(default)]
    pub gateway_ip: Option<String>,
    /// The prefix.
    pub cidr: String,
    /// Routes DHCP hands out.
    #[serde(default)]
    pub host_routes: Vec<Route>,
    /// DNS servers DHCP hands out.
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
}

/// A fixed IP of a port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FixedIp {
    /// The subnet the address is from.
    #[serde(default)]
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// An allowed address pair of a port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddressPair {
    /// An address or a prefix.
    pub ip_address: String,
    /// The MAC it may be sent from (the controller fills in the port's when not given).
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Port {
    /// UUID; its first 11 characters name the TAP (`tap` + 11, as Nova does).
    pub id: String,
    /// The network.
    pub network_id: String,
    /// The VM's MAC.
    pub mac_address: String,
    /// Its addresses.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// Extra (MAC, prefix) pairs it may send from.
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Whether anti-spoofing applies.
    #[serde(default = "default_true")]
    pub port_security_enabled: bool,
    /// Where and how it is bound; `None` when unbound.
    #[serde(rename = "weft:binding", default)]
    pub binding: Option<Binding>,
    /// Who uses it: `trunk:subport` for a trunk's subport, which rides its parent's device.
    #[serde(default)]
    pub device_owner: String,
    /// A trunk parent's subports (Neutron's `trunk-details`).
    #[serde(default)]
    pub trunk_details: Option<TrunkDetails>,
}

/// The `device_owner` of a trunk's subport.
pub const SUBPORT_OWNER: &str = "trunk:subport";

/// A trunk parent's trunk and subports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrunkDetails {
    /// The trunk.
    pub trunk_id: String,
    /// Its subports.
    #[serde(default)]
    pub sub_ports: Vec<TrunkSubport>,
}

/// One subport of a trunk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrunkSubport {
    /// The subport's port.
    pub port_id: String,
    /// The VLAN id the VM tags its frames with.
    pub segmentation_id: u16,
}

/// A port's binding as the controller's binder made it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Binding {
    /// The host it is bound to.
    pub host: String,
    /// The segment it is bound to (the last binding level's).
    #[serde(default)]
    pub segment: Option<BoundSegment>,
    /// The host's tunnel endpoint at bind time.
    #[serde(default)]
    pub tunnel_ip: Option<String>,
}

/// A network segment, as bindings carry it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BoundSegment {
    /// `local`, `flat`, `vlan`, `vxlan`, `gre` or `nvgre`.
    pub network_type: String,
    /// The physical network (flat and vlan).
    #[serde(default)]
    pub physical_network: Option<String>,
    /// VLAN id, VNI, GRE key or VSID.
    #[serde(default)]
    pub segmentation_id: Option<u64>,
}

impl Port {
    /// The host this port is bound to, if it is bound.
    pub fn bound_host(&self) -> Option<&str> {
        self.binding.as_ref().map(|b| b.host.as_str())
    }
}
