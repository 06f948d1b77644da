//! The bridge's data plane glue (figure 12 of seed 000): a VSI's frames enter the network only
//! once its VDP associate succeeded, and only with the MAC/VLAN pairs it associated. The bridge
//! programs a `weft switch` over its control socket: `associate_vsi` for each (MAC, VLAN)
//! filter of an associated VSI, `deassociate_vsi` when it de-associates (station, bridge or
//! keep-alive timeout). A pre-associated or refused VSI programs nothing, so its traffic stays
//! out (the switch's station port has `vdp_gating`).
//!
//! Requests go through a thread of their own, in order: the engines' loop never waits on the
//! switch, and an association is never overtaken by its own de-association. Both ops are
//! idempotent in the switch, so a request repeated after a reconnect is harmless.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::mpsc::{self, Receiver, Sender},
    thread,
};

use serde_json::json;
use switch::daemon::{
    Client,
    config::{SwitchSpec, VsiSpec},
    control::Request,
};
use wire::{MacAddr, vdp::Filters};

/// Where and how to program gating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchGlue {
    /// The switch's control socket.
    pub socket: PathBuf,
    /// The S-channel the VSIs are on, in the switch's names (`PORT.sSVID`).
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

    /// The (MAC, VLAN) pairs of filters that gate by MAC (a VID-only or group filter names no
    /// source address the switch could check, so it opens nothing).
    pub fn pairs(filters: &Filters) -> Vec<(MacAddr, u16)> {
        (0..filters.len())
            .filter_map(|index| filters.entry(index))
            .filter_map(|(_, mac, vlan)| mac.map(|mac| (mac, vlan.vid)))
            .collect()
    }
}

/// A running gate programmer.
#[derive(Debug)]
pub struct Gating {
    glue: SwitchGlue,
    requests: Sender<Request>,
}

impl Gating {
    /// Starts the thread that talks to the switch.
    pub fn start(glue: SwitchGlue) -> std::io::Result<Self> {
        let (requests, rx) = mpsc::channel();
        let socket = glue.socket.clone();
        thread::Builder::new()
            .name("weft-evb-gating".into())
            .spawn(move || program(&socket, &rx))?;
        Ok(Self { glue, requests })
    }

    /// Lets (MAC, VLAN) in on the channel, on `network` (the controller's profile) if given,
    /// else on the logical switch the glue names for the VLAN. A profile's network that the
    /// switch does not have yet is added first: a logical switch of that name, local to the
    /// bridge, with the VLAN as its local VLAN.
    pub fn associate(&self, mac: MacAddr, vlan: u16, network: Option<&str>) {
        let network = match network {
            Some(network) => {
                let spec = json!({"name": network, "local_vlan": vlan, "segment": "local"});
                match SwitchSpec::read("switch", &spec) {
                    Ok(spec) => self.send(Request::AddSwitch(spec)),
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
        self.send(Request::AssociateVsi(VsiSpec {
            port: self.glue.channel.clone(),
            mac,
            vlan,
            switch: network.to_owned(),
        }));
    }

    /// Shuts (MAC, VLAN) out.
    pub fn deassociate(&self, mac: MacAddr, vlan: u16) {
        self.send(Request::DeassociateVsi {
            port: self.glue.channel.clone(),
            mac,
            vlan: Some(vlan),
        });
    }

    fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::error!("the switch programming thread is gone");
        }
    }
}

/// The thread: one request at a time, reconnecting once per request if the switch went away.
fn program(socket: &PathBuf, requests: &Receiver<Request>) {
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
            match connected.request(&request) {
                Ok(result) => {
                    tracing::info!(request = %request.to_value(), %result, "switch programmed");
                    done = true;
                    break;
                }
                Err(err) => {
                    tracing::warn!(request = %request.to_value(), "switch refused: {err}");
                    // A refusal by the switch will not change on a retry; a broken connection
                    // might: reconnect and try once more.
                    client = None;
                }
            }
        }
        if !done {
            tracing::error!(request = %request.to_value(), "the switch was not programmed");
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
            channel: "eth0.s1".into(),
            networks: BTreeMap::from([(100, "net1".to_owned())]),
            default_network: None,
        };
        assert_eq!(glue.network(100), Some("net1"));
        assert_eq!(glue.network(200), None);
        glue.default_network = Some("any".into());
        assert_eq!(glue.network(200), Some("any"));
    }
}
