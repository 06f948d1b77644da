//! Port binding, shaped like ML2's: an ordered list of mechanism drivers is offered the segments
//! still to bind at each level. A driver either binds (setting the VIF type and details), or
//! continues the binding one level down with new segments (how a ToR driver will hand a VXLAN
//! segment's VLAN leg to the hypervisor driver: hierarchical port binding, seed 001), or
//! passes. No driver binding means `binding_failed`, with the reasons kept for the log.

use serde_json::{Map, Value, json};

use crate::{agents::AgentRecord, agents::WEFT_AGENT_TYPE, network::model::SegmentDoc};

/// How deep a binding may go (ML2's limit too).
pub const MAX_BINDING_LEVELS: usize = 10;
/// The VIF type of a port the weft agent plugs: a TAP device (Nova knows it as `tap`).
pub const VIF_TYPE_TAP: &str = "tap";
/// The VIF type of a port no driver could bind.
pub const VIF_TYPE_BINDING_FAILED: &str = "binding_failed";
/// The VIF type of a port with no host.
pub const VIF_TYPE_UNBOUND: &str = "unbound";

/// What a mechanism driver sees at one level.
#[derive(Debug)]
pub struct PortContext<'a> {
    /// The host the port is being bound on.
    pub host: &'a str,
    /// The agents on that host.
    pub agents: &'a [AgentRecord],
    /// The segments this level may bind.
    pub segments: &'a [SegmentDoc],
    /// The level (0 is the network's own segments).
    pub level: usize,
    outcome: Option<Outcome>,
    reasons: Vec<String>,
}

#[derive(Debug)]
enum Outcome {
    Bound {
        segment: SegmentDoc,
        vif_type: String,
        vif_details: Map<String, Value>,
    },
    Continue {
        segment: SegmentDoc,
        next: Vec<SegmentDoc>,
    },
}

impl PortContext<'_> {
    /// Binds the port to `segment`: the last level.
    pub fn set_binding(
        &mut self,
        segment: &SegmentDoc,
        vif_type: &str,
        vif_details: Map<String, Value>,
    ) {
        self.outcome = Some(Outcome::Bound {
            segment: segment.clone(),
            vif_type: vif_type.to_owned(),
            vif_details,
        });
    }

    /// Binds this level to `segment` and asks the drivers to bind one of `next` below it.
    pub fn continue_binding(&mut self, segment: &SegmentDoc, next: Vec<SegmentDoc>) {
        self.outcome = Some(Outcome::Continue {
            segment: segment.clone(),
            next,
        });
    }

    /// Notes why a driver passed (reported when nothing binds).
    pub fn refuse(&mut self, reason: String) {
        self.reasons.push(reason);
    }
}

/// One mechanism driver.
pub trait MechanismDriver: Send + Sync + std::fmt::Debug {
    /// Its name, recorded in the binding levels.
    fn name(&self) -> &'static str;
    /// Binds, continues or passes (leaving the context's outcome unset).
    fn bind_port(&self, ctx: &mut PortContext<'_>);
}

/// The weft hypervisor agent's driver: binds a segment the host's live weft agent reaches.
#[derive(Debug, Default)]
pub struct WeftDriver;

impl MechanismDriver for WeftDriver {
    fn name(&self) -> &'static str {
        "weft"
    }

    fn bind_port(&self, ctx: &mut PortContext<'_>) {
        let Some(agent) = ctx
            .agents
            .iter()
            .find(|a| a.agent_type == WEFT_AGENT_TYPE)
            .cloned()
        else {
            ctx.refuse(format!("no weft agent on host {}", ctx.host));
            return;
        };
        if !agent.alive {
            ctx.refuse(format!("the weft agent on {} is not alive", ctx.host));
            return;
        }
        if !agent.admin_state_up {
            ctx.refuse(format!("the weft agent on {} is disabled", ctx.host));
            return;
        }
        let segments = ctx.segments.to_vec();
        for segment in &segments {
            let reachable = match segment.network_type.as_str() {
                "local" => true,
                "flat" | "vlan" => segment
                    .physical_network
                    .as_deref()
                    .is_some_and(|p| agent.maps_physnet(p)),
                tunnel => agent.has_tunnel_type(tunnel) && agent.tunneling_ip().is_some(),
            };
            if !reachable {
                ctx.refuse(format!(
                    "host {} cannot reach segment {}",
                    ctx.host,
                    describe(segment)
                ));
                continue;
            }
            let mut details = Map::new();
            details.insert("port_filter".into(), Value::Bool(true));
            details.insert("connectivity".into(), "l2".into());
            if let Some(ip) = agent.tunneling_ip() {
                details.insert("tunnel_ip".into(), ip.into());
            }
            ctx.set_binding(segment, VIF_TYPE_TAP, details);
            return;
        }
    }
}

fn describe(segment: &SegmentDoc) -> String {
    let mut out = segment.network_type.clone();
    if let Some(p) = &segment.physical_network {
        out.push(':');
        out.push_str(p);
    }
    if let Some(id) = segment.segmentation_id {
        out.push(':');
        out.push_str(&id.to_string());
    }
    out
}

/// The result of a binding attempt, ready for the port's admin attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// `tap`, or `binding_failed`.
    pub vif_type: String,
    /// The bottom driver's details plus `bound_drivers` and `bound_segment`.
    pub vif_details: Map<String, Value>,
    /// Why it failed (empty when bound).
    pub reasons: Vec<String>,
}

/// Runs the drivers over the network's segments, level by level.
pub fn bind(
    drivers: &[Box<dyn MechanismDriver>],
    host: &str,
    agents: &[AgentRecord],
    segments: &[SegmentDoc],
) -> Binding {
    let mut level_segments = segments.to_vec();
    let mut bound_drivers = Map::new();
    let mut levels = Vec::new();
    let mut reasons = Vec::new();
    for level in 0..MAX_BINDING_LEVELS {
        let mut outcome = None;
        for driver in drivers {
            let mut ctx = PortContext {
                host,
                agents,
                segments: &level_segments,
                level,
                outcome: None,
                reasons: Vec::new(),
            };
            driver.bind_port(&mut ctx);
            reasons.append(&mut ctx.reasons);
            if let Some(found) = ctx.outcome {
                bound_drivers.insert(level.to_string(), driver.name().into());
                let segment = match &found {
                    Outcome::Bound { segment, .. } | Outcome::Continue { segment, .. } => segment,
                };
                levels.push(json!({"level": level, "driver": driver.name(),
                                   "segment": segment_json(segment)}));
                outcome = Some(found);
                break;
            }
        }
        match outcome {
            Some(Outcome::Bound {
                segment,
                vif_type,
                mut vif_details,
            }) => {
                vif_details.insert("bound_drivers".into(), Value::Object(bound_drivers));
                vif_details.insert("bound_segment".into(), segment_json(&segment));
                vif_details.insert("bound_levels".into(), Value::Array(levels));
                return Binding {
                    vif_type,
                    vif_details,
                    reasons: Vec::new(),
                };
            }
            Some(Outcome::Continue { next, .. }) if !next.is_empty() => level_segments = next,
            Some(Outcome::Continue { .. }) => {
                reasons.push(format!("level {level} continued with no segments"));
                break;
            }
            None => break,
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("no mechanism driver could bind on host {host}"));
    }
    Binding {
        vif_type: VIF_TYPE_BINDING_FAILED.into(),
        vif_details: Map::new(),
        reasons,
    }
}

/// A segment as the watch carries it.
pub fn segment_json(segment: &SegmentDoc) -> Value {
    json!({
        "network_type": segment.network_type,
        "physical_network": segment.physical_network,
        "segmentation_id": segment.segmentation_id,
    })
}

/// The mechanism drivers, in order.
pub fn default_drivers() -> Vec<Box<dyn MechanismDriver>> {
    vec![Box::new(WeftDriver)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(config: Value, alive: bool) -> AgentRecord {
        AgentRecord {
            id: "a".into(),
            host: "h1".into(),
            agent_type: WEFT_AGENT_TYPE.into(),
            admin_state_up: true,
            alive,
            configurations: config.as_object().cloned().unwrap_or_default(),
        }
    }

    fn seg(kind: &str, physnet: Option<&str>, id: Option<u32>) -> SegmentDoc {
        SegmentDoc {
            network_type: kind.into(),
            physical_network: physnet.map(Into::into),
            segmentation_id: id,
        }
    }

    #[test]
    fn binds_the_first_reachable_segment() {
        let agents = [agent(
            json!({"tunnel_types": ["vxlan"], "tunneling_ip": "192.0.2.11",
                   "bridge_mappings": {"physnet1": "pn1"}}),
            true,
        )];
        let drivers = default_drivers();
        let b = bind(
            &drivers,
            "h1",
            &agents,
            &[
                seg("vlan", Some("physnet9"), Some(5)),
                seg("vxlan", None, Some(7)),
            ],
        );
        assert_eq!(b.vif_type, VIF_TYPE_TAP);
        assert_eq!(b.vif_details["bound_segment"]["segmentation_id"], 7);
        assert_eq!(b.vif_details["tunnel_ip"], "192.0.2.11");
        assert_eq!(b.vif_details["bound_drivers"]["0"], "weft");
        let b = bind(
            &drivers,
            "h1",
            &agents,
            &[seg("vlan", Some("physnet1"), Some(5))],
        );
        assert_eq!(
            b.vif_details["bound_segment"]["physical_network"],
            "physnet1"
        );
    }

    #[test]
    fn fails_with_reasons() {
        let drivers = default_drivers();
        let b = bind(&drivers, "h1", &[], &[seg("vxlan", None, Some(7))]);
        assert_eq!(b.vif_type, VIF_TYPE_BINDING_FAILED);
        assert!(b.reasons[0].contains("no weft agent"), "{:?}", b.reasons);
        let dead = [agent(
            json!({"tunnel_types": ["vxlan"], "tunneling_ip": "192.0.2.1"}),
            false,
        )];
        let b = bind(&drivers, "h1", &dead, &[seg("vxlan", None, Some(7))]);
        assert!(b.reasons[0].contains("not alive"), "{:?}", b.reasons);
        let gre_only = [agent(
            json!({"tunnel_types": ["gre"], "tunneling_ip": "192.0.2.1"}),
            true,
        )];
        let b = bind(&drivers, "h1", &gre_only, &[seg("vxlan", None, Some(7))]);
        assert_eq!(b.vif_type, VIF_TYPE_BINDING_FAILED);
        assert!(b.reasons[0].contains("cannot reach"), "{:?}", b.reasons);
    }

    #[derive(Debug)]
    struct Tor;
    impl MechanismDriver for Tor {
        fn name(&self) -> &'static str {
            "tor"
        }
        fn bind_port(&self, ctx: &mut PortContext<'_>) {
            if ctx.level == 0
                && let Some(s) = ctx.segments.iter().find(|s| s.network_type == "vxlan")
            {
                let s = s.clone();
                ctx.continue_binding(&s, vec![seg("vlan", Some("physnet1"), Some(100))]);
            }
        }
    }

    #[test]
    fn a_second_level_binds_below_the_first() {
        let drivers: Vec<Box<dyn MechanismDriver>> = vec![Box::new(Tor), Box::new(WeftDriver)];
        let agents = [agent(json!({"bridge_mappings": {"physnet1": "pn1"}}), true)];
        let b = bind(&drivers, "h1", &agents, &[seg("vxlan", None, Some(7))]);
        assert_eq!(b.vif_type, VIF_TYPE_TAP);
        assert_eq!(
            b.vif_details["bound_drivers"],
            json!({"0": "tor", "1": "weft"})
        );
        assert_eq!(b.vif_details["bound_segment"]["segmentation_id"], 100);
        assert_eq!(
            b.vif_details["bound_levels"][0]["segment"]["network_type"],
            "vxlan"
        );
    }
}
