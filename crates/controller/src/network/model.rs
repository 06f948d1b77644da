//! The stored representation of networks, subnets and ports, in Neutron's shapes. Each resource
//! is two JSON objects: the part every reader sees ([`NetworkDoc`], ...) and the admin-only
//! attributes ([`NetworkAdmin`], ...). Lists splice the two stored texts instead of rebuilding
//! objects, which is what makes a 1,000-port page cheap.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A network as everyone who can see it sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkDoc {
    /// UUID.
    pub id: String,
    /// Name (not unique).
    pub name: String,
    /// Owner (same as `project_id`).
    pub tenant_id: String,
    /// Owner.
    pub project_id: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// MTU of the network's segments.
    pub mtu: u32,
    /// ACTIVE (weft's networks need no agent to become active).
    pub status: String,
    /// Ids of the network's subnets.
    pub subnets: Vec<String>,
    /// Visible to every project.
    pub shared: bool,
    /// `router:external`.
    #[serde(rename = "router:external")]
    pub external: bool,
    /// Default for its ports' `port_security_enabled`.
    pub port_security_enabled: bool,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// One segment of a network, as `segments` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentDoc {
    /// `local`, `flat`, `vlan`, `vxlan`, `gre` or `nvgre`.
    #[serde(rename = "provider:network_type")]
    pub network_type: String,
    /// The physical network (flat and vlan).
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    /// VLAN id, VNI, GRE key or VSID.
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<u32>,
}

/// The admin-only attributes of a network: the provider attributes of a one-segment network,
/// or `segments` for a multi-segment one (Neutron's multi-provider extension).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum NetworkAdmin {
    /// Several segments.
    Multi {
        /// The segments, in order.
        segments: Vec<SegmentDoc>,
    },
    /// One segment, flattened into `provider:*`.
    Single(SegmentDoc),
}

impl NetworkAdmin {
    /// Builds the admin part from the segment list.
    pub fn from_segments(mut segments: Vec<SegmentDoc>) -> Self {
        if segments.len() == 1 {
            Self::Single(segments.remove(0))
        } else {
            Self::Multi { segments }
        }
    }

    /// The segments, whatever the shape.
    pub fn segments(&self) -> Vec<SegmentDoc> {
        match self {
            Self::Multi { segments } => segments.clone(),
            Self::Single(segment) => vec![segment.clone()],
        }
    }
}

/// An allocation pool of a subnet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PoolDoc {
    /// First address.
    pub start: String,
    /// Last address.
    pub end: String,
}

/// A static route a subnet hands to its ports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteDoc {
    /// Destination CIDR.
    pub destination: String,
    /// Next hop.
    pub nexthop: String,
}

/// A subnet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubnetDoc {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owner.
    pub tenant_id: String,
    /// Owner.
    pub project_id: String,
    /// The network it belongs to.
    pub network_id: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// DHCP on or off.
    pub enable_dhcp: bool,
    /// Gateway address, if any.
    pub gateway_ip: Option<String>,
    /// The prefix.
    pub cidr: String,
    /// Ranges fixed IPs come from.
    pub allocation_pools: Vec<PoolDoc>,
    /// Routes DHCP hands out.
    pub host_routes: Vec<RouteDoc>,
    /// DNS servers DHCP hands out.
    pub dns_nameservers: Vec<String>,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// A fixed IP of a port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FixedIpDoc {
    /// The subnet it belongs to.
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// An allowed address pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressPairDoc {
    /// IP or CIDR.
    pub ip_address: String,
    /// MAC (defaults to the port's).
    pub mac_address: String,
}

/// A port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortDoc {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// The network.
    pub network_id: String,
    /// Owner.
    pub tenant_id: String,
    /// Owner.
    pub project_id: String,
    /// `fa:16:3e:xx:xx:xx` unless given.
    pub mac_address: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// DOWN until an agent reports it up.
    pub status: String,
    /// What uses it (a VM id).
    pub device_id: String,
    /// Who uses it (`compute:nova`, `network:dhcp`, ...).
    pub device_owner: String,
    /// Addresses.
    pub fixed_ips: Vec<FixedIpDoc>,
    /// Extra addresses port security lets through.
    pub allowed_address_pairs: Vec<AddressPairDoc>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// Port security on or off.
    pub port_security_enabled: bool,
    /// `normal`, `direct`, ...
    #[serde(rename = "binding:vnic_type")]
    pub vnic_type: String,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
    /// A trunk parent's trunk and subports (`trunk-details`); absent on other ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk_details: Option<Value>,
}

/// The admin-only binding attributes of a port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortAdmin {
    /// Host the port is bound to ('' when unbound).
    #[serde(rename = "binding:host_id")]
    pub host_id: String,
    /// Free-form binding data from the compute service.
    #[serde(rename = "binding:profile")]
    pub profile: Map<String, Value>,
    /// `unbound`, `binding_failed`, or the mechanism's VIF type.
    #[serde(rename = "binding:vif_type")]
    pub vif_type: String,
    /// Mechanism-specific details.
    #[serde(rename = "binding:vif_details")]
    pub vif_details: Map<String, Value>,
}

impl Default for PortAdmin {
    fn default() -> Self {
        Self {
            host_id: String::new(),
            profile: Map::new(),
            vif_type: "unbound".into(),
            vif_details: Map::new(),
        }
    }
}

/// A security group (only the project's `default` group exists today).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupDoc {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owner.
    pub tenant_id: String,
    /// Owner.
    pub project_id: String,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// Joins a stored public body and admin body into one JSON object text, without parsing.
pub fn splice(body: &str, admin_body: &str, admin: bool) -> String {
    let mut out = String::with_capacity(body.len() + admin_body.len());
    splice_into(&mut out, body, admin_body, admin);
    out
}

/// [`splice`] appending to `out`.
pub fn splice_into(out: &mut String, body: &str, admin_body: &str, admin: bool) {
    let extra = admin_body.trim();
    if !admin || extra.len() <= 2 {
        out.push_str(body);
        return;
    }
    // Both are serde_json output of JSON objects: `{...}`.
    out.push_str(body.trim_end().strip_suffix('}').unwrap_or(body));
    out.push(',');
    out.push_str(extra.strip_prefix('{').unwrap_or(extra));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_joins_objects() {
        assert_eq!(splice(r#"{"a":1}"#, r#"{"b":2}"#, true), r#"{"a":1,"b":2}"#);
        assert_eq!(splice(r#"{"a":1}"#, r#"{"b":2}"#, false), r#"{"a":1}"#);
        assert_eq!(splice(r#"{"a":1}"#, "{}", true), r#"{"a":1}"#);
        let joined: Value =
            serde_json::from_str(&splice(r#"{"a":1}"#, r#"{"b":2}"#, true)).unwrap();
        assert_eq!(joined["b"], 2);
    }

    #[test]
    fn single_segment_flattens() {
        let seg = SegmentDoc {
            network_type: "vxlan".into(),
            physical_network: None,
            segmentation_id: Some(5),
        };
        let admin = NetworkAdmin::from_segments(vec![seg.clone()]);
        let text = serde_json::to_string(&admin).unwrap();
        assert_eq!(
            text,
            r#"{"provider:network_type":"vxlan","provider:physical_network":null,"provider:segmentation_id":5}"#
        );
        let back: NetworkAdmin = serde_json::from_str(&text).unwrap();
        assert_eq!(back.segments(), vec![seg]);
    }
}
