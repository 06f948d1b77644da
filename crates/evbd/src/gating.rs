//! The bridge's data plane glue (figure 12 of seed 000): a VSI's frames enter the network only
//! once its VDP associate succeeded, and only with the MAC/VLAN pairs it associated. The bridge
//! programs a `weft switch` over its control socket: `associate_vsi` for each (MAC, VLAN)
//! filter of an associated VSI, `deassociate_vsi` when it de-associates (station, bridge or
//! keep-alive timeout, or its S-channel went down). A pre-associated or refused VSI programs
//! nothing, so its traffic stays out (the switch's station port has `vdp_gating`). A VSI is
//! gated on the S-channel it associated on: `PORT.sSVID`, `PORT` the station port named like
//! the interface (`--switch-channel` names the default channel otherwise).
//!
//! Requests go through a thread of their own ([`Programmer`]), in order: the engines' loop
//! never waits on the switch, and an association is never overtaken by its own
//! de-association. Both ops are idempotent in the switch, so a request repeated after a
//! reconnect is harmless. The S-channel requests of [`crate::schannels`] share the thread.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::mpsc::{self, Receiver, Sender},
    thread,
};

use serde_json::{Value, json};
use switch::daemon::{
    Client,
    config::{ChannelSpec, SwitchSpec, VsiSpec},
    control::Request,
};
use wire::{MacAddr, vdp::Filters};

use crate::port::DEFAULT_SVID;

/// Where and how to program gating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchGlue {
    /// The switch's control socket.
    pub socket: PathBuf,
    /// The switch's station port the interface is (named like the interface): S-channel SVID
    /// is `PORT.sSVID` there.
    pub port: String,
    /// The default channel's name in the switch (`PORT.s1` unless overridden).
    pub channel: String,
    /// The logical switch for each VLAN the profiles give (the profile's network).
    pub networks: BTreeMap<u16, String>,
    /// The logical switch for a VLAN `networks` does not name, if any.
    pub default_network: Option<String>,
}

impl SwitchGlue {
    /// The logical switch a VSI's VLAN is on.
    pub fn network(&self, vlan: u16) -> Option<&str> {
        self.networks
            .get(&vlan)
            .or(self.default_network.as_ref())
            .map(String::as_str)
    }

    /// The switch's name for the S-channel on `svid`: [`channel`](Self::channel) for the
    /// default one, `PORT.sSVID` for the others.
    pub fn channel_name(&self, svid: u16) -> String {
        if svid == DEFAULT_SVID {
            self.channel.clone()
        } else {
            ChannelSpec::table_name(&self.port, svid)
        }
    }

    /// The (MAC, VLAN) pairs of filters that gate by MAC (a VID-only or group filter names no
    /// source address the switch could check, so it opens nothing).
    pub fn pairs(filters: &Filters) -> Vec<(MacAddr, u16)> {
        (0..filters.len())
            .filter_map(|index| filters.entry(index))
            .filter_map(|(_, mac, vlan)| mac.map(|mac| (mac, vlan.vid)))
            .collect()
    }
}

/// The thread that programs a switch over its control socket: requests (JSON, as the socket
/// takes them) go out one at a time, in the order given.
#[derive(Debug, Clone)]
pub struct Programmer {
    requests: Sender<Value>,
}

impl Programmer {
    /// Starts the thread that talks to the switch at `socket`.
    pub fn start(socket: PathBuf) -> std::io::Result<Self> {
        let (requests, rx) = mpsc::channel();
        thread::Builder::new()
            .name("weft-evb-switch".into())
            .spawn(move || program(&socket, &rx))?;
        Ok(Self { requests })
    }

    /// Queues a request.
    pub fn send(&self, request: Value) {
        if self.requests.send(request).is_err() {
            tracing::error!("the switch programming thread is gone");
        }
    }
}

/// A running gate programmer.
#[derive(Debug)]
pub struct Gating {
    glue: SwitchGlue,
    programmer: Programmer,
}

impl Gating {
    /// Starts the thread that talks to the switch.
    pub fn start(glue: SwitchGlue) -> std::io::Result<Self> {
        let programmer = Programmer::start(glue.socket.clone())?;
        Ok(Self { glue, programmer })
    }

    /// The programming thread, for other requests that must stay in order with gating's.
    pub const fn programmer(&self) -> &Programmer {
        &self.programmer
    }

    /// Lets (MAC, VLAN) in on the channel on `svid`, on `network` (the controller's profile)
    /// if given, else on the logical switch the glue names for the VLAN. A profile's network
    /// that the switch does not have yet is added first: a logical switch of that name, local
    /// to the bridge, with the VLAN as its local VLAN.
    pub fn associate(&self, svid: u16, mac: MacAddr, vlan: u16, network: Option<&str>) {
        let network = match network {
            Some(network) => {
                let spec = json!({"name": network, "local_vlan": vlan, "segment": "local"});
                match SwitchSpec::read("switch", &spec) {
                    Ok(spec) => self.send(&Request::AddSwitch(spec)),
                    Err(err) => {
                        tracing::warn!(%mac, vlan, network, "cannot make a logical switch: {err}");
                        return;
                    }
                }
                network
            }
            None => match self.glue.network(vlan) {
                Some(network) => network,
                None => {
                    tracing::warn!(
                        %mac,
                        vlan,
                        "no logical switch for VLAN {vlan}: its traffic stays out"
                    );
                    return;
                }
            },
        };
        self.send(&Request::AssociateVsi(VsiSpec {
            port: self.glue.channel_name(svid),
            mac,
            vlan,
            switch: network.to_owned(),
        }));
    }

    /// Shuts (MAC, VLAN) out of the channel on `svid`.
    pub fn deassociate(&self, svid: u16, mac: MacAddr, vlan: u16) {
        self.send(&Request::DeassociateVsi {
            port: self.glue.channel_name(svid),
            mac,
            vlan: Some(vlan),
        });
    }

    fn send(&self, request: &Request) {
        self.programmer.send(request.to_value());
    }
}

/// The thread: one request at a time, reconnecting once per request if the switch went away.
fn program(socket: &PathBuf, requests: &Receiver<Value>) {
    let mut client: Option<Client> = None;
    for request in requests {
        let mut done = false;
        for _attempt in 0..2 {
            let connected = match client.as_mut() {
                Some(client) => client,
                None => match Client::connect(socket) {
                    Ok(new) => client.insert(new),
                    Err(err) => {
                        tracing::warn!("cannot reach the switch at {}: {err}", socket.display());
                        continue;
                    }
                },
            };
            match connected.call(&request) {
                Ok(result) => {
                    tracing::info!(%request, %result, "switch programmed");
                    done = true;
                    break;
                }
                Err(err) => {
                    tracing::warn!(%request, "switch refused: {err}");
                    // A refusal by the switch will not change on a retry; a broken connection
                    // might: reconnect and try once more.
                    client = None;
                }
            }
        }
        if !done {
            tracing::error!(%request, "the switch was not programmed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_networks_by_vlan_with_a_default() {
        let mut glue = SwitchGlue {
            socket: "/nonexistent".into(),
            port: "eth0".into(),
            channel: "eth0.s1".into(),
            networks: BTreeMap::from([(100, "net1".to_owned())]),
            default_network: None,
        };
        assert_eq!(glue.network(100), Some("net1"));
        assert_eq!(glue.network(200), None);
        glue.default_network = Some("any".into());
        assert_eq!(glue.network(200), Some("any"));
        // The default channel by its (possibly overridden) name, the others by the port's.
        glue.channel = "sw1p1.s1".into();
        assert_eq!(glue.channel_name(1), "sw1p1.s1");
        assert_eq!(glue.channel_name(100), "eth0.s100");
    }
}
