//! The host's view of the controller: the networks it has a bound port on, with their subnets
//! and all their ports, kept current by applying watch events.
//!
//! Applying an event costs O(objects it carries) plus index look-ups; it never walks the whole
//! view (except a resync, which replaces it). The view records which networks changed in a
//! way that matters to forwarding, so [`crate::desired::Desired`] rebuilds only those.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{
    event::{Event, EventError, EventKind, Object, ObjectKind},
    model::{Network, Port, Subnet},
};

/// One network in the view with its subnets and ports, each by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    /// The network.
    pub network: Network,
    /// Its subnets.
    pub subnets: BTreeMap<String, Subnet>,
    /// Its ports, this host's and others'.
    pub ports: BTreeMap<String, Port>,
}

impl NetworkEntry {
    fn new(network: Network) -> Self {
        Self {
            network,
            subnets: BTreeMap::new(),
            ports: BTreeMap::new(),
        }
    }
}

/// What changed since the last [`View::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything may have changed (a resync).
    pub all: bool,
    /// Networks that were added, changed or removed.
    pub networks: BTreeSet<String>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.all && self.networks.is_empty()
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The view changed in a way that may change the switch configuration.
    pub changed: bool,
    /// The event was a resync.
    pub resync: bool,
}

/// The host's view of the controller state.
#[derive(Debug, Clone, Default)]
pub struct View {
    revision: u64,
    synced: bool,
    networks: BTreeMap<String, NetworkEntry>,
    subnet_network: HashMap<String, String>,
    port_network: HashMap<String, String>,
    changes: Changes,
}

impl View {
    /// An empty view that waits for its first resync.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last event applied (0 before the first resync).
    pub const fn revision(&self) -> u64 {
        self.revision
    }

    /// True once a resync has been applied and no error has happened since: the view then
    /// mirrors the controller and may be pushed to the switch.
    pub const fn is_synced(&self) -> bool {
        self.synced
    }

    /// The `since=` to watch from: the last revision, or 0 (ask for a resync) when not synced.
    pub const fn since(&self) -> u64 {
        if self.synced { self.revision } else { 0 }
    }

    /// Marks the view as needing a resync (after a malformed event). Its content stays as it
    /// was until the resync replaces it.
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// The networks in the view, by id.
    pub const fn networks(&self) -> &BTreeMap<String, NetworkEntry> {
        &self.networks
    }

    /// The network `id`, if it is in the view.
    pub fn network(&self, id: &str) -> Option<&NetworkEntry> {
        self.networks.get(id)
    }

    /// The port `id`, if it is in the view.
    pub fn port(&self, id: &str) -> Option<&Port> {
        let network = self.port_network.get(id)?;
        self.networks.get(network)?.ports.get(id)
    }

    /// How many ports the view holds.
    pub fn port_count(&self) -> usize {
        self.port_network.len()
    }

    /// Takes the record of what changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        core::mem::take(&mut self.changes)
    }

    /// Parses and applies one line.
    pub fn apply_line(&mut self, line: &[u8]) -> Result<Applied, EventError> {
        self.apply(Event::parse(line)?)
    }

    /// Applies one event. On error the view is unchanged.
    pub fn apply(&mut self, event: Event) -> Result<Applied, EventError> {
        let resync = matches!(event.kind, EventKind::Resync { .. });
        if !resync {
            if !self.synced {
                return Err(EventError::NotSynced(event.type_name()));
            }
            let repeat_ok = matches!(event.kind, EventKind::Bookmark);
            if event.revision < self.revision || (event.revision == self.revision && !repeat_ok) {
                return Err(EventError::Backwards {
                    last: self.revision,
                    got: event.revision,
                });
            }
        }
        let changed = match event.kind {
            EventKind::Resync {
                networks,
                subnets,
                ports,
            } => {
                self.resync(networks, subnets, ports)?;
                true
            }
            EventKind::Join {
                network,
                subnets,
                ports,
            } => self.join(network, subnets, ports)?,
            EventKind::Leave { network_id } => self.remove_network(&network_id),
            EventKind::Put(object) => self.put(object)?,
            EventKind::Delete { kind, id } => self.delete(kind, &id),
            EventKind::Bookmark => false,
        };
        self.revision = event.revision;
        Ok(Applied { changed, resync })
    }

    fn resync(
        &mut self,
        networks: Vec<Network>,
        subnets: Vec<Subnet>,
        ports: Vec<Port>,
    ) -> Result<(), EventError> {
        let mut next: BTreeMap<String, NetworkEntry> = networks
            .into_iter()
            .map(|n| (n.id.clone(), NetworkEntry::new(n)))
            .collect();
        let mut subnet_network = HashMap::with_capacity(subnets.len());
        for subnet in subnets {
            let entry = entry_for(&mut next, "subnet", &subnet.id, &subnet.network_id)?;
            subnet_network.insert(subnet.id.clone(), subnet.network_id.clone());
            entry.subnets.insert(subnet.id.clone(), subnet);
        }
        let mut port_network = HashMap::with_capacity(ports.len());
        for port in ports {
            let entry = entry_for(&mut next, "port", &port.id, &port.network_id)?;
            port_network.insert(port.id.clone(), port.network_id.clone());
            entry.ports.insert(port.id.clone(), port);
        }
        self.networks = next;
        self.subnet_network = subnet_network;
        self.port_network = port_network;
        self.synced = true;
        self.changes = Changes {
            all: true,
            networks: BTreeSet::new(),
        };
        Ok(())
    }

    fn join(
        &mut self,
        network: Network,
        subnets: Vec<Subnet>,
        ports: Vec<Port>,
    ) -> Result<bool, EventError> {
        let id = network.id.clone();
        // Check before touching anything: an error leaves the view as it was.
        for subnet in &subnets {
            if subnet.network_id != id {
                return Err(unknown_network("subnet", &subnet.id, &subnet.network_id));
            }
        }
        for port in &ports {
            if port.network_id != id {
                return Err(unknown_network("port", &port.id, &port.network_id));
            }
        }
        let mut entry = NetworkEntry::new(network);
        for subnet in subnets {
            entry.subnets.insert(subnet.id.clone(), subnet);
        }
        for port in ports {
            entry.ports.insert(port.id.clone(), port);
        }
        if self.networks.get(&id) == Some(&entry) {
            return Ok(false);
        }
        self.remove_network(&id);
        for subnet in entry.subnets.keys() {
            self.move_subnet_index(subnet, &id);
        }
        for port in entry.ports.keys() {
            self.move_port_index(port, &id);
        }
        self.networks.insert(id.clone(), entry);
        self.changes.networks.insert(id);
        Ok(true)
    }

    /// Points a subnet's index at `network`, first taking it out of any other network.
    fn move_subnet_index(&mut self, subnet: &str, network: &str) {
        if let Some(old) = self
            .subnet_network
            .insert(subnet.to_owned(), network.to_owned())
            && old != network
            && let Some(entry) = self.networks.get_mut(&old)
            && entry.subnets.remove(subnet).is_some()
        {
            self.changes.networks.insert(old);
        }
    }

    /// Points a port's index at `network`, first taking it out of any other network.
    fn move_port_index(&mut self, port: &str, network: &str) {
        if let Some(old) = self
            .port_network
            .insert(port.to_owned(), network.to_owned())
            && old != network
            && let Some(entry) = self.networks.get_mut(&old)
            && entry.ports.remove(port).is_some()
        {
            self.changes.networks.insert(old);
        }
    }

    fn remove_network(&mut self, id: &str) -> bool {
        let Some(entry) = self.networks.remove(id) else {
            return false;
        };
        for subnet in entry.subnets.keys() {
            self.subnet_network.remove(subnet);
        }
        for port in entry.ports.keys() {
            self.port_network.remove(port);
        }
        self.changes.networks.insert(id.to_owned());
        true
    }

    fn put(&mut self, object: Object) -> Result<bool, EventError> {
        match object {
            Object::Network(network) => {
                let id = network.id.clone();
                match self.networks.get_mut(&id) {
                    Some(entry) if entry.network == network => return Ok(false),
                    Some(entry) => entry.network = network,
                    None => {
                        self.networks.insert(id.clone(), NetworkEntry::new(network));
                    }
                }
                self.changes.networks.insert(id);
                Ok(true)
            }
            Object::Subnet(subnet) => {
                let network_id = subnet.network_id.clone();
                let Some(entry) = self.networks.get(&network_id) else {
                    return Err(unknown_network("subnet", &subnet.id, &network_id));
                };
                if entry.subnets.get(&subnet.id) == Some(&subnet) {
                    return Ok(false);
                }
                self.move_subnet_index(&subnet.id, &network_id);
                if let Some(entry) = self.networks.get_mut(&network_id) {
                    entry.subnets.insert(subnet.id.clone(), subnet);
                }
                self.changes.networks.insert(network_id);
                Ok(true)
            }
            Object::Port(port) => {
                let network_id = port.network_id.clone();
                let Some(entry) = self.networks.get(&network_id) else {
                    return Err(unknown_network("port", &port.id, &network_id));
                };
                // Status flips and revision bumps arrive as puts too; they change nothing
                // the agent keeps, so they cost no rebuild.
                if entry.ports.get(&port.id) == Some(&*port) {
                    return Ok(false);
                }
                self.move_port_index(&port.id, &network_id);
                if let Some(entry) = self.networks.get_mut(&network_id) {
                    entry.ports.insert(port.id.clone(), *port);
                }
                self.changes.networks.insert(network_id);
                Ok(true)
            }
        }
    }

    fn delete(&mut self, kind: ObjectKind, id: &str) -> bool {
        // Deleting what is not there is not an error: the controller may send a delete for
        // an object this host never saw in the same revision that took it out of the view.
        match kind {
            ObjectKind::Network => self.remove_network(id),
            ObjectKind::Subnet => {
                let Some(network) = self.subnet_network.remove(id) else {
                    return false;
                };
                if let Some(entry) = self.networks.get_mut(&network) {
                    entry.subnets.remove(id);
                }
                self.changes.networks.insert(network);
                true
            }
            ObjectKind::Port => {
                let Some(network) = self.port_network.remove(id) else {
                    return false;
                };
                if let Some(entry) = self.networks.get_mut(&network) {
                    entry.ports.remove(id);
                }
                self.changes.networks.insert(network);
                true
            }
        }
    }
}

fn entry_for<'a>(
    networks: &'a mut BTreeMap<String, NetworkEntry>,
    kind: &'static str,
    id: &str,
    network_id: &str,
) -> Result<&'a mut NetworkEntry, EventError> {
    networks
        .get_mut(network_id)
        .ok_or_else(|| unknown_network(kind, id, network_id))
}

fn unknown_network(kind: &'static str, id: &str, network_id: &str) -> EventError {
    EventError::UnknownNetwork {
        kind,
        id: id.to_owned(),
        network_id: network_id.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A network line object in the controller's admin shape.
    pub(crate) fn network(id: &str, mtu: u32) -> Value {
        json!({"id": id, "name": format!("net-{id}"), "tenant_id": "t", "project_id": "t",
               "admin_state_up": true, "mtu": mtu, "status": "ACTIVE", "subnets": [],
               "shared": false, "router:external": false, "port_security_enabled": true,
               "description": "", "tags": [], "created_at": "2026-01-01T00:00:00Z",
               "updated_at": "2026-01-01T00:00:00Z", "revision_number": 1,
               "provider:network_type": "vxlan", "provider:physical_network": null,
               "provider:segmentation_id": 100})
    }

    /// A subnet object in the controller's shape.
    pub(crate) fn subnet(id: &str, network: &str, cidr: &str, gateway: Option<&str>) -> Value {
        json!({"id": id, "name": "", "tenant_id": "t", "project_id": "t", "network_id": network,
               "ip_version": 4, "enable_dhcp": true, "gateway_ip": gateway, "cidr": cidr,
               "allocation_pools": [], "host_routes": [], "dns_nameservers": [],
               "description": "", "tags": [], "created_at": "", "updated_at": "",
               "revision_number": 1})
    }

    /// A port object in the controller's admin shape, bound to `host` (tunnel `tunnel_ip`) on
    /// `segment` (`("vxlan", None, 100)`), or unbound when `host` is empty.
    pub(crate) fn port(
        id: &str,
        network: &str,
        mac: &str,
        ips: &[&str],
        host: &str,
        tunnel_ip: &str,
        segment: (&str, Option<&str>, Option<u64>),
    ) -> Value {
        let fixed: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"subnet_id": "s", "ip_address": ip}))
            .collect();
        let binding = if host.is_empty() {
            Value::Null
        } else {
            let segment = json!({"network_type": segment.0, "physical_network": segment.1,
                                 "segmentation_id": segment.2});
            json!({"host": host, "vif_type": "tap", "segment": segment, "tunnel_ip": tunnel_ip,
                   "levels": [{"driver": "weft", "segment": segment}]})
        };
        json!({"id": id, "name": "", "network_id": network, "tenant_id": "t", "project_id": "t",
               "mac_address": mac, "admin_state_up": true, "status": "DOWN", "device_id": "vm",
               "device_owner": "compute:nova", "fixed_ips": fixed, "allowed_address_pairs": [],
               "security_groups": [], "port_security_enabled": true,
               "binding:vnic_type": "normal", "description": "", "tags": [],
               "created_at": "", "updated_at": "", "revision_number": 1,
               "binding:host_id": host, "binding:profile": {}, "binding:vif_type": "tap",
               "binding:vif_details": {}, "weft:binding": binding})
    }

    pub(crate) fn line(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    const VX: (&str, Option<&str>, Option<u64>) = ("vxlan", None, Some(100));

    fn resynced() -> View {
        let mut view = View::new();
        let applied = view
            .apply_line(&line(&json!({
                "type": "resync", "revision": 10,
                "networks": [network("n1", 1450), network("n2", 1500)],
                "subnets": [subnet("s1", "n1", "10.0.0.0/24", Some("10.0.0.1"))],
                "ports": [
                    port("p1", "n1", "fa:16:3e:00:00:01", &["10.0.0.5"], "h1", "192.0.2.1", VX),
                    port("p2", "n1", "fa:16:3e:00:00:02", &["10.0.0.6"], "h2", "192.0.2.2", VX),
                    port("p3", "n2", "fa:16:3e:00:00:03", &[], "h1", "192.0.2.1", VX),
                ],
            })))
            .unwrap();
        assert_eq!(
            applied,
            Applied {
                changed: true,
                resync: true
            }
        );
        view
    }

    #[test]
    fn test_resync_then_puts() {
        let mut view = resynced();
        assert!(view.is_synced());
        assert_eq!((view.revision(), view.since()), (10, 10));
        assert_eq!(view.port_count(), 3);
        assert!(view.take_changes().all);
        let put = json!({"type": "put", "revision": 11, "kind": "port",
                         "object": port("p4", "n1", "fa:16:3e:00:00:04", &["10.0.0.7"], "h3", "192.0.2.3", VX)});
        assert!(view.apply_line(&line(&put)).unwrap().changed);
        assert_eq!(view.network("n1").unwrap().ports.len(), 3);
        let changes = view.take_changes();
        assert!(!changes.all);
        assert_eq!(changes.networks, BTreeSet::from(["n1".to_owned()]));
        // The same port again with only its status changed: nothing to rebuild.
        let mut object = port(
            "p4",
            "n1",
            "fa:16:3e:00:00:04",
            &["10.0.0.7"],
            "h3",
            "192.0.2.3",
            VX,
        );
        object["status"] = json!("ACTIVE");
        object["revision_number"] = json!(2);
        let again = json!({"type": "put", "revision": 12, "kind": "port", "object": object});
        assert!(!view.apply_line(&line(&again)).unwrap().changed);
        assert!(view.take_changes().is_empty());
        assert_eq!(view.revision(), 12);
        // A subnet put and delete.
        let put = json!({"type": "put", "revision": 13, "kind": "subnet",
                         "object": subnet("s2", "n2", "10.1.0.0/24", None)});
        view.apply_line(&line(&put)).unwrap();
        assert_eq!(view.network("n2").unwrap().subnets.len(), 1);
        let delete = json!({"type": "delete", "revision": 14, "kind": "subnet", "id": "s2"});
        assert!(view.apply_line(&line(&delete)).unwrap().changed);
        assert!(view.network("n2").unwrap().subnets.is_empty());
        // Deleting what is gone changes nothing and is no error.
        let delete = json!({"type": "delete", "revision": 15, "kind": "port", "id": "nope"});
        assert!(!view.apply_line(&line(&delete)).unwrap().changed);
        // A second resync replaces everything.
        let resync = json!({"type": "resync", "revision": 3, "networks": [network("n9", 1500)],
                            "subnets": [], "ports": []});
        view.apply_line(&line(&resync)).unwrap();
        assert_eq!(view.networks().len(), 1);
        assert_eq!((view.port_count(), view.revision()), (0, 3));
        assert!(view.port("p1").is_none());
    }

    #[test]
    fn test_join_and_leave() {
        let mut view = resynced();
        view.take_changes();
        let join = json!({"type": "join", "revision": 11, "network": network("n3", 9000),
                          "subnets": [subnet("s3", "n3", "10.3.0.0/24", None)],
                          "ports": [port("p5", "n3", "fa:16:3e:00:00:05", &[], "h1", "192.0.2.1", VX)]});
        assert!(view.apply_line(&line(&join)).unwrap().changed);
        assert_eq!(view.network("n3").unwrap().network.mtu, 9000);
        assert!(view.port("p5").is_some());
        let leave = json!({"type": "leave", "revision": 12, "network_id": "n1"});
        assert!(view.apply_line(&line(&leave)).unwrap().changed);
        assert!(view.network("n1").is_none());
        assert!(view.port("p1").is_none() && view.port("p2").is_none());
        assert_eq!(view.port_count(), 2);
        // Subnets left with it: a put of one on n1 is now refused.
        let put = json!({"type": "put", "revision": 13, "kind": "subnet",
                         "object": subnet("s1", "n1", "10.0.0.0/24", None)});
        assert!(matches!(
            view.apply_line(&line(&put)),
            Err(EventError::UnknownNetwork { kind: "subnet", .. })
        ));
        let changes = view.take_changes();
        assert_eq!(
            changes.networks,
            BTreeSet::from(["n1".to_owned(), "n3".to_owned()])
        );
        // A network delete drops its subnets and ports like a leave.
        let delete = json!({"type": "delete", "revision": 14, "kind": "network", "id": "n3"});
        assert!(view.apply_line(&line(&delete)).unwrap().changed);
        assert!(view.port("p5").is_none());
        assert_eq!(view.port_count(), 1);
    }

    #[test]
    fn test_a_port_put_moves_it_between_hosts() {
        let mut view = resynced();
        let moved = json!({"type": "put", "revision": 11, "kind": "port",
                           "object": port("p2", "n1", "fa:16:3e:00:00:02", &["10.0.0.6"], "h3", "192.0.2.3", VX)});
        view.apply_line(&line(&moved)).unwrap();
        let binding = view.port("p2").unwrap().binding.as_ref().unwrap();
        assert_eq!(binding.host, "h3");
        assert_eq!(binding.tunnel_ip.as_deref(), Some("192.0.2.3"));
        assert_eq!(view.network("n1").unwrap().ports.len(), 2);
    }

    #[test]
    fn test_malformed_or_out_of_order_events_leave_the_view_alone() {
        let mut fresh = View::new();
        let put =
            json!({"type": "put", "revision": 1, "kind": "network", "object": network("n", 1500)});
        assert!(matches!(
            fresh.apply_line(&line(&put)),
            Err(EventError::NotSynced("put"))
        ));
        assert_eq!(fresh.since(), 0);

        let mut view = resynced();
        let before = view.networks().clone();
        let bad: Vec<Vec<u8>> = vec![
            b"{\"type\":\"put\",\"revision\":11,\"kind\":\"port\"".to_vec(),
            line(&json!({"type": "put", "revision": 11, "kind": "port",
                         "object": port("p9", "nx", "fa:16:3e:00:00:09", &[], "h1", "192.0.2.1", VX)})),
            line(
                &json!({"type": "put", "revision": 9, "kind": "network", "object": network("n1", 1)}),
            ),
            line(
                &json!({"type": "put", "revision": 10, "kind": "network", "object": network("n1", 1)}),
            ),
            line(
                &json!({"type": "join", "revision": 11, "network": network("n4", 1500),
                         "ports": [port("p8", "n1", "fa:16:3e:00:00:08", &[], "h1", "192.0.2.1", VX)]}),
            ),
            line(&json!({"type": "resync", "revision": 11, "networks": [],
                         "subnets": [subnet("s9", "n1", "10.9.0.0/24", None)], "ports": []})),
        ];
        for line in bad {
            assert!(
                view.apply_line(&line).is_err(),
                "{}",
                String::from_utf8_lossy(&line)
            );
            assert_eq!(view.networks(), &before);
            assert_eq!(view.revision(), 10);
        }
        // A bookmark may repeat the last revision.
        let bookmark = json!({"type": "bookmark", "revision": 10});
        assert!(!view.apply_line(&line(&bookmark)).unwrap().changed);
        view.invalidate();
        assert_eq!(view.since(), 0);
        assert_eq!(view.networks(), &before);
    }
}
