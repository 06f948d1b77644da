//! Programming a `weft switch`'s S-channels from what CDCP grants, through the switch control
//! socket's `set_s_channels` op (`{"op": "set_s_channels", "port": NAME, "s_channels": [...]}`,
//! which replaces a port's S-channels without closing its device):
//!
//! * a bridge programs its switch's station port named like the interface: the default
//!   channel (SVID 1) and every granted SVID, each `{"svid": N, "reflective_relay": bool}`
//!   with reflective relay as the bridge offers it;
//! * a station programs its host switch's uplink named like the interface: every granted
//!   channel whose SCID `--channel-network` names, each `{"svid": N, "physical_network":
//!   NAME, "relay": "veb" | "vepa"}` (the default channel, SVID 1, is never listed on an
//!   uplink).
//!
//! [`SChannels`] follows the CDCP events and gives the whole request to send after each
//! `ChannelUp` and `ChannelDown`; the runtime sends it through the switch programming thread
//! ([`crate::gating::Programmer`]), so requests reach the switch in the order of the events.
//! The request is built as JSON here, not with the switch's request types, so the glue does
//! not depend on their shape.

use core::{fmt, str::FromStr};
use std::{collections::BTreeMap, path::PathBuf};

use evb::cdcp;
use serde_json::{Value, json};

use crate::port::DEFAULT_SVID;

/// How an uplink S-channel relays between the VMs behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Relay {
    /// A virtual Ethernet bridge: the host switch forwards between its VMs itself.
    #[default]
    Veb,
    /// A virtual Ethernet port aggregator: everything goes to the bridge, which reflects.
    Vepa,
}

impl Relay {
    /// The name the switch takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Veb => "veb",
            Self::Vepa => "vepa",
        }
    }
}

impl fmt::Display for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The physical network an uplink S-channel carries, and its relay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelNetwork {
    /// The physical network's name in the host switch.
    pub physical_network: String,
    /// VEB or VEPA.
    pub relay: Relay,
}

/// `--channel-network` text that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not SCID=PHYSNET[:veb|vepa] with an SCID of 2-4095: {reason}")]
pub struct ChannelNetworkError {
    /// The text.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// An S-channel's SCID and the network it carries, as `SCID=PHYSNET[:veb|vepa]` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelNetworkArg {
    /// The S-channel, 2-4095 (the default channel is never an uplink channel).
    pub scid: u16,
    /// What it carries.
    pub network: ChannelNetwork,
}

impl FromStr for ChannelNetworkArg {
    type Err = ChannelNetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ChannelNetworkError {
            text: text.to_owned(),
            reason,
        };
        let (scid, rest) = text.split_once('=').ok_or_else(|| error("no '='"))?;
        let scid: u16 = scid
            .trim()
            .parse()
            .ok()
            .filter(|scid| (2..=4095).contains(scid))
            .ok_or_else(|| error("bad SCID"))?;
        let (name, relay) = match rest.rsplit_once(':') {
            Some((name, "veb")) => (name, Relay::Veb),
            Some((name, "vepa")) => (name, Relay::Vepa),
            Some(_) => return Err(error("the relay is veb or vepa")),
            None => (rest, Relay::Veb),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(error("no physical network"));
        }
        Ok(Self {
            scid,
            network: ChannelNetwork {
                physical_network: name.to_owned(),
                relay,
            },
        })
    }
}

/// A station's host switch: where to program the uplink's S-channels, and what each carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkGlue {
    /// The host switch's control socket.
    pub socket: PathBuf,
    /// The network of each S-channel, by SCID; a granted channel not named here is not
    /// programmed.
    pub networks: BTreeMap<u16, ChannelNetwork>,
}

/// Which switch port the requests are for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    /// A bridge's station port.
    Bridge { reflective_relay: bool },
    /// A station's uplink.
    Uplink {
        networks: BTreeMap<u16, ChannelNetwork>,
    },
}

/// The S-channels CDCP has granted, as a switch port's `set_s_channels` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SChannels {
    port: String,
    side: Side,
    /// SCID to SVID, the default channel not included.
    granted: BTreeMap<u16, u16>,
}

impl SChannels {
    /// A bridge's station port `port`, offering reflective relay or not.
    pub const fn bridge(port: String, reflective_relay: bool) -> Self {
        Self {
            port,
            side: Side::Bridge { reflective_relay },
            granted: BTreeMap::new(),
        }
    }

    /// A station's uplink `port`, with the network of each S-channel by SCID.
    pub const fn uplink(port: String, networks: BTreeMap<u16, ChannelNetwork>) -> Self {
        Self {
            port,
            side: Side::Uplink { networks },
            granted: BTreeMap::new(),
        }
    }

    /// Follows a CDCP event; after `ChannelUp` and `ChannelDown`, returns the request that
    /// makes the switch port's S-channels what is granted now.
    pub fn on_event(&mut self, event: &cdcp::Event) -> Option<Value> {
        match *event {
            cdcp::Event::ChannelUp { scid, svid } => {
                self.granted.insert(scid, svid);
            }
            cdcp::Event::ChannelDown { scid, svid } => {
                if self.granted.get(&scid) == Some(&svid) {
                    self.granted.remove(&scid);
                }
            }
            // Every channel went down first, each with its own event.
            cdcp::Event::PeerLost => return None,
        }
        Some(self.request())
    }

    /// The request to repeat now and then (the switch takes a repeat as a no-op): one that
    /// failed, because the port was not there yet (the agent had not configured the uplink
    /// when CDCP granted the channel) or the switch restarted, then reaches it. `None` for a
    /// station's uplink with nothing granted, which is no S-channel of anyone's making.
    pub fn reassert(&self) -> Option<Value> {
        match self.side {
            Side::Uplink { .. } if self.granted.is_empty() => None,
            _ => Some(self.request()),
        }
    }

    /// The `set_s_channels` request for what is granted now, channels in SVID order.
    pub fn request(&self) -> Value {
        let mut by_svid: Vec<(u16, u16)> = self
            .granted
            .iter()
            .map(|(&scid, &svid)| (svid, scid))
            .collect();
        by_svid.sort_unstable();
        let s_channels: Vec<Value> = match &self.side {
            Side::Bridge { reflective_relay } => core::iter::once(DEFAULT_SVID)
                .chain(by_svid.iter().map(|&(svid, _)| svid))
                .map(|svid| json!({"svid": svid, "reflective_relay": reflective_relay}))
                .collect(),
            Side::Uplink { networks } => by_svid
                .iter()
                .filter_map(|(svid, scid)| {
                    let network = networks.get(scid)?;
                    Some(json!({
                        "svid": svid,
                        "physical_network": network.physical_network,
                        "relay": network.relay.as_str(),
                    }))
                })
                .collect(),
        };
        json!({"op": "set_s_channels", "port": self.port, "s_channels": s_channels})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(scid: u16, svid: u16) -> cdcp::Event {
        cdcp::Event::ChannelUp { scid, svid }
    }

    fn down(scid: u16, svid: u16) -> cdcp::Event {
        cdcp::Event::ChannelDown { scid, svid }
    }

    #[test]
    fn test_bridge_requests_follow_the_grants() {
        let mut glue = SChannels::bridge("eth1".into(), true);
        let requests: Vec<Option<Value>> = [
            up(3, 101),
            up(2, 100),
            down(3, 101),
            up(4, 101),
            // A stale down (the SCID has another SVID now) changes nothing.
            down(2, 555),
            down(2, 100),
            down(4, 101),
            cdcp::Event::PeerLost,
        ]
        .iter()
        .map(|event| glue.on_event(event))
        .collect();
        let request = |svids: &[u16]| {
            let entries: Vec<Value> = svids
                .iter()
                .map(|svid| json!({"svid": svid, "reflective_relay": true}))
                .collect();
            Some(json!({"op": "set_s_channels", "port": "eth1", "s_channels": entries}))
        };
        assert_eq!(
            requests,
            [
                request(&[1, 101]),
                request(&[1, 100, 101]),
                request(&[1, 100]),
                request(&[1, 100, 101]),
                request(&[1, 100, 101]),
                request(&[1, 101]),
                request(&[1]),
                None,
            ]
        );
        let plain = SChannels::bridge("p".into(), false);
        assert_eq!(
            plain.request(),
            json!({"op": "set_s_channels", "port": "p",
                   "s_channels": [{"svid": 1, "reflective_relay": false}]})
        );
    }

    #[test]
    fn test_uplink_requests_list_the_named_channels() {
        let networks = BTreeMap::from([
            (
                2,
                ChannelNetwork {
                    physical_network: "tenant".into(),
                    relay: Relay::Veb,
                },
            ),
            (
                4,
                ChannelNetwork {
                    physical_network: "storage".into(),
                    relay: Relay::Vepa,
                },
            ),
        ]);
        let mut glue = SChannels::uplink("ens3".into(), networks);
        // Nothing granted yet: nothing to repeat on an uplink.
        assert_eq!(glue.reassert(), None);
        let requests: Vec<Value> = [up(2, 200), up(3, 150), up(4, 100), down(2, 200)]
            .iter()
            .filter_map(|event| glue.on_event(event))
            .collect();
        let tenant = json!({"svid": 200, "physical_network": "tenant", "relay": "veb"});
        let storage = json!({"svid": 100, "physical_network": "storage", "relay": "vepa"});
        let request = |entries: Vec<&Value>| json!({"op": "set_s_channels", "port": "ens3", "s_channels": entries});
        assert_eq!(
            requests,
            [
                request(vec![&tenant]),
                // SCID 3 has no network: not programmed, the request is the same.
                request(vec![&tenant]),
                // In SVID order.
                request(vec![&storage, &tenant]),
                request(vec![&storage]),
            ]
        );
        assert_eq!(glue.reassert(), Some(request(vec![&storage])));
    }

    #[test]
    fn test_channel_network_arguments() {
        let parse = |text: &str| text.parse::<ChannelNetworkArg>();
        assert_eq!(
            parse("2=physnet1").unwrap(),
            ChannelNetworkArg {
                scid: 2,
                network: ChannelNetwork {
                    physical_network: "physnet1".into(),
                    relay: Relay::Veb
                }
            }
        );
        let vepa = parse("4095=storage:vepa").unwrap();
        assert_eq!((vepa.scid, vepa.network.relay), (4095, Relay::Vepa));
        assert_eq!(parse("3=a:veb").unwrap().network.relay, Relay::Veb);
        for bad in [
            "",
            "2",
            "1=net",
            "4096=net",
            "x=net",
            "2=",
            "2=net:vbe",
            "2=:vepa",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Relay::Vepa.to_string(), "vepa");
    }
}
