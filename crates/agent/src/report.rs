//! What the agent tells the controller: its heartbeat (`POST /weft/v1/agents`) and its ports'
//! device status (`POST /weft/v1/devices`), and the bookkeeping that reports each port's state
//! once per change.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::{desired::HostConfig, switch_config::Status};

/// The agent type the controller registers agents under.
pub const AGENT_TYPE: &str = "weft agent";
/// What a physical network served by an S-channel maps to in the reported bridge mappings.
pub const CHANNEL_MAPPING: &str = "(S-channel)";
/// The binary name reported (as Neutron agents report theirs).
pub const AGENT_BINARY: &str = "weft-agent";

/// The heartbeat body: `{"agent": {host, agent_type, binary, start_flag, configurations}}`.
pub fn heartbeat(host: &HostConfig, start_flag: bool, devices: usize) -> Value {
    let mappings: Map<String, Value> = host
        .bridge_mappings
        .iter()
        .map(|(physnet, interface)| (physnet.clone(), json!(interface)))
        .chain(
            host.channel_networks
                .iter()
                .map(|physnet| (physnet.clone(), json!(CHANNEL_MAPPING))),
        )
        .collect();
    let tunnel_types: Vec<&str> = host.tunnel_types.iter().map(|t| t.as_str()).collect();
    json!({"agent": {
        "host": host.host,
        "agent_type": AGENT_TYPE,
        "binary": AGENT_BINARY,
        "start_flag": start_flag,
        "configurations": {
            "bridge_mappings": mappings,
            "tunnel_types": tunnel_types,
            "tunneling_ip": host.tunnel_ip.to_string(),
            "l2_population": true,
            "devices": devices,
        },
    }})
}

/// Ports that went up or down, by port id (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceReport {
    /// Ports whose device is open and working.
    pub up: Vec<String>,
    /// Ports whose device is not (or that the switch does not have).
    pub down: Vec<String>,
}

impl DeviceReport {
    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.up.is_empty() && self.down.is_empty()
    }

    /// The `/weft/v1/devices` body.
    pub fn body(&self, host: &str) -> Value {
        json!({"host": host, "up": self.up, "down": self.down})
    }
}

/// The state of each local port as last reported to the controller.
#[derive(Debug, Clone, Default)]
pub struct DeviceTracker {
    reported: HashMap<String, bool>,
}

impl DeviceTracker {
    /// A tracker that has reported nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to report, given the local ports (TAP name → port id) and the switch's status:
    /// every port whose state differs from what was reported, or every port when `all`. A
    /// local port missing from the status is down.
    pub fn changes(
        &self,
        local: &BTreeMap<String, String>,
        status: &Status,
        all: bool,
    ) -> DeviceReport {
        let up: HashMap<&str, bool> = status
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.up))
            .collect();
        let mut report = DeviceReport::default();
        for (tap, port) in local {
            // A trunk's subport is listed as `<parent tap>.<vlan>`: it is up with the device.
            let device = tap
                .split_once('.')
                .map_or(tap.as_str(), |(device, _)| device);
            let now = up.get(device).copied().unwrap_or(false);
            if all || self.reported.get(port) != Some(&now) {
                if now {
                    report.up.push(port.clone());
                } else {
                    report.down.push(port.clone());
                }
            }
        }
        report.up.sort();
        report.down.sort();
        report
    }

    /// Records that `report` reached the controller, and forgets ports no longer local (so a
    /// port that comes back is reported again).
    pub fn confirm(&mut self, local: &BTreeMap<String, String>, report: &DeviceReport) {
        for port in &report.up {
            self.reported.insert(port.clone(), true);
        }
        for port in &report.down {
            self.reported.insert(port.clone(), false);
        }
        if self.reported.len() > local.len() {
            let live: std::collections::HashSet<&str> =
                local.values().map(String::as_str).collect();
            self.reported.retain(|port, _| live.contains(port.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::switch_config::PortStatus;

    use super::*;

    fn status(ports: &[(&str, bool)]) -> Status {
        Status {
            ports: ports
                .iter()
                .map(|(name, up)| PortStatus {
                    name: (*name).to_owned(),
                    port_type: "tap".into(),
                    up: *up,
                })
                .collect(),
        }
    }

    #[test]
    fn test_reports_each_change_once() {
        let local: BTreeMap<String, String> = [("tapa", "a"), ("tapb", "b")]
            .into_iter()
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .collect();
        let mut tracker = DeviceTracker::new();
        let first = tracker.changes(&local, &status(&[("tapa", true), ("vxlan0", true)]), false);
        assert_eq!(first.up, ["a"]);
        assert_eq!(first.down, ["b"], "missing from the switch is down");
        tracker.confirm(&local, &first);
        assert!(
            tracker
                .changes(&local, &status(&[("tapa", true)]), false)
                .is_empty()
        );
        let flip = tracker.changes(&local, &status(&[("tapa", false), ("tapb", true)]), false);
        assert_eq!(
            (flip.up.as_slice(), flip.down.as_slice()),
            (&["b".to_owned()][..], &["a".to_owned()][..])
        );
        // Not confirmed (the POST failed): reported again next time.
        assert_eq!(
            tracker.changes(&local, &status(&[("tapa", false), ("tapb", true)]), false),
            flip
        );
        // After a resync everything is reported again.
        let all = tracker.changes(&local, &status(&[("tapa", true)]), true);
        assert_eq!((all.up.len(), all.down.len()), (1, 1));
        // A port that goes away is forgotten, so if it returns it is reported.
        let fewer: BTreeMap<String, String> = [("tapa".to_owned(), "a".to_owned())].into();
        tracker.confirm(&fewer, &DeviceReport::default());
        assert_eq!(tracker.reported.len(), 1);
    }
}
