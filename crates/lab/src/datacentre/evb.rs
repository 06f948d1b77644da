//! The lab's EVB fabric (`[evb]` in the topology, issue 7 part 5, seed 000 part three).
//!
//! A ToR namespace runs a `weft switch` whose ports are station-facing ports, one per host
//! (802.1Qbg bridge side: S-channel 1 with VDP gating, and reflective relay when the hosts'
//! relays are VEPA), and one `weft evb bridge` per port that asks the controller, the VSI type
//! database, about every VSI and gates the switch by the answer. Every host's `evb` interface
//! is its switch's uplink on the EVB physical network (a VEPA or VEB edge relay) and runs a
//! `weft evb station`.
//!
//! The lab plays the VMM (as libvirt's 802.1Qbg virtual port does through lldpad): `vm create`
//! associates the VM's VSI through its host's station before the VM's NIC comes up, `vm
//! delete` de-associates it, and `vm migrate` pre-associates on the target, de-associates on
//! the source and associates on the target. The VSI is the Neutron port (its id is the VSI id,
//! its MAC the filter's), so the association, the binding and the port stay one story.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    DAEMON_START, LabDir, Progress, State, add_bridge_link, add_namespace, start_daemon, state,
    wait_for,
};
use crate::{
    Error, Result,
    api::{Cloud, Network, Token},
    netns::{self, run},
    topology::{EVB_UPLINK, HostLink, Topology},
};

/// The VSI manager id the lab names in its requests (seed 000's VMM).
const MANAGER_ID: &str = "weft-lab";
/// The ToR's management address: host part .10 (hosts start at .11).
const TOR_HOST: u32 = 10;
/// How long a VDP request gets to be answered: ECP retries, and the bridge waiting for the
/// controller (up to its resource-wait delay, about 10 s by default).
const VDP_ANSWER: Duration = Duration::from_secs(25);
/// The name the ToR's bridges give themselves in the controller's records.
pub const BRIDGE_NAME: &str = "tor";

/// A VM's VSI: the VSI type it associated with, and its id (the port's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmVsi {
    /// The VSI type id.
    pub type_id: u32,
    /// The VSI type version.
    pub type_version: u8,
    /// The VSI id: the Neutron port's id.
    pub vsi_id: String,
    /// The VLAN the bridge assigned.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// The S-channel (SCID) whose edge relay the VM's network is on: 1, the default channel,
    /// or one of `[[evb.channel]]`.
    #[serde(default = "default_scid")]
    pub scid: u16,
}

const fn default_scid() -> u16 {
    1
}

/// The ToR's switch control socket.
fn tor_switch_socket(lab: &Path) -> PathBuf {
    lab.join("tor").join("switch.sock")
}

/// The control socket of the bridge facing `host`.
fn bridge_socket(lab: &Path, host: &str) -> PathBuf {
    lab.join("tor").join(format!("evb-{host}.sock"))
}

/// The control socket of `host`'s station.
fn station_socket(lab: &Path, host: &str) -> PathBuf {
    lab.join(host).join("evb.sock")
}

/// The state file of `host`'s station: the VSIs it holds, asked for again if it restarts.
fn station_state_file(lab: &Path, host: &str) -> PathBuf {
    lab.join(host).join("evb-station.json")
}

/// The ToR's management address.
fn tor_ip(t: &Topology) -> Result<std::net::Ipv4Addr> {
    t.management.host(TOR_HOST).ok_or_else(|| {
        Error::Failed(format!(
            "management {} has no room for the ToR at .{TOR_HOST}",
            t.management
        ))
    })
}

/// Makes the ToR's namespace, its management link, and a link to each host (`evb` in the
/// host, the host's name in the ToR). Runs after the hosts' namespaces exist.
pub(super) fn build_tor(
    dir: &LabDir,
    state: &mut State,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let t = state.topology.clone();
    let ns = t.tor_ns();
    add_namespace(dir, state, &ns)?;
    let link = HostLink {
        root: format!("{}-torm", t.name),
        bridge: t.management_bridge(),
        inside: "mgmt".into(),
    };
    add_bridge_link(dir, state, &link, &ns)?;
    let mgmt = format!("{}/{}", tor_ip(&t)?, t.management.prefix());
    run(&["ip", "-n", &ns, "addr", "add", &mgmt, "dev", "mgmt"])?;
    for host in &t.hosts {
        let host_ns = t.host_ns(&host.name);
        run(&[
            "ip", "link", "add", EVB_UPLINK, "netns", &host_ns, "type", "veth", "peer", "name",
            &host.name, "netns", &ns,
        ])?;
        run(&["ip", "-n", &host_ns, "link", "set", EVB_UPLINK, "up"])?;
        run(&["ip", "-n", &ns, "link", "set", &host.name, "up"])?;
    }
    progress.step(format!(
        "ToR: namespace {ns}, management {mgmt}, a link to each host ({EVB_UPLINK} there)"
    ));
    Ok(())
}

/// Starts the ToR's switch and a bridge per host port. Needs the controller's agent secret.
pub(super) fn start_tor(
    dir: &LabDir,
    state: &mut State,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let t = state.topology.clone();
    let Some(evb) = &t.evb else {
        return Ok(());
    };
    let ns = t.tor_ns();
    let tor_dir = dir.path().join("tor");
    fs::create_dir_all(&tor_dir)
        .map_err(|err| Error::io(format!("cannot create {}", tor_dir.display()), err))?;
    // The station-facing ports; logical switches come from the controller's profiles as
    // VSIs associate.
    let mut config = String::from("# Written by `weft lab up`: the ToR, an 802.1Qbg bridge.\n");
    for host in &t.hosts {
        config.push_str(&format!(
            "\n[[port]]\nname = \"{}\"\ntype = \"station\"\nvdp_gating = true\n\
             s_channels = [{{ svid = 1, reflective_relay = {} }}]\n",
            host.name,
            evb.vepa()
        ));
    }
    let config_path = tor_dir.join("switch.toml");
    state::write_atomically(&config_path, config.as_bytes())?;
    let weft = state.weft.to_string_lossy().into_owned();
    let socket = tor_switch_socket(dir.path());
    let (config_arg, socket_arg) = (
        config_path.to_string_lossy().into_owned(),
        socket.to_string_lossy().into_owned(),
    );
    let pid = start_daemon(
        dir,
        state,
        ("tor", None, &ns),
        &[
            &weft,
            "switch",
            "--config",
            &config_arg,
            "--control",
            &socket_arg,
        ],
        &socket,
        tor_dir.join("switch.log"),
    )?;
    progress.step(format!("ToR: weft switch (pid {pid})"));
    let token = dir.path().join("server").join("agent-token");
    let token_arg = token.to_string_lossy().into_owned();
    let written = wait_for(DAEMON_START, || Ok(token.exists()))?;
    if !written {
        return Err(Error::Failed(format!(
            "weft server wrote no agent secret {}",
            token.display()
        )));
    }
    let url = state.network_url.clone();
    let svids = format!("{}-{}", evb.svid_range.0, evb.svid_range.1);
    for host in &t.hosts {
        let control = bridge_socket(dir.path(), &host.name);
        let control_arg = control.to_string_lossy().into_owned();
        let mut args = vec![
            weft.as_str(),
            "evb",
            "bridge",
            "--iface",
            &host.name,
            "--decide",
            &url,
            "--token-file",
            &token_arg,
            "--bridge-name",
            BRIDGE_NAME,
            "--switch-socket",
            &socket_arg,
            "--control",
            &control_arg,
        ];
        if !evb.any_vepa() {
            args.push("--no-reflective-relay");
        }
        if !evb.channels.is_empty() {
            args.extend(["--cdcp-svids", &svids]);
        }
        let pid = start_daemon(
            dir,
            state,
            ("bridge", Some(&host.name), &ns),
            &args,
            &control,
            tor_dir.join(format!("evb-{}.log", host.name)),
        )?;
        progress.step(format!(
            "ToR: weft evb bridge on port {} (pid {pid}), deciding through the controller",
            host.name
        ));
    }
    Ok(())
}

/// Starts host `index`'s EVB station on its `evb` uplink.
pub(super) fn start_station(dir: &LabDir, state: &mut State, index: usize) -> Result<u32> {
    let t = state.topology.clone();
    let Some(evb) = &t.evb else {
        return Ok(0);
    };
    let host = &t.hosts[index].name;
    let weft = state.weft.to_string_lossy().into_owned();
    let control = station_socket(dir.path(), host);
    let control_arg = control.to_string_lossy().into_owned();
    let state_file = station_state_file(dir.path(), host)
        .to_string_lossy()
        .into_owned();
    let switch = dir.path().join(host).join("switch.sock");
    let switch_arg = switch.to_string_lossy().into_owned();
    let channel_args: Vec<String> = evb
        .channels
        .iter()
        .map(|c| format!("{}={}:{}", c.scid, c.physical_network, c.relay))
        .collect();
    let mut args = vec![
        weft.as_str(),
        "evb",
        "station",
        "--iface",
        EVB_UPLINK,
        "--control",
        &control_arg,
        // A restarted station asks for its VSIs again before the bridge times them out.
        "--state-file",
        &state_file,
    ];
    if !evb.any_vepa() {
        args.push("--no-reflective-relay");
    }
    if !channel_args.is_empty() {
        // Once CDCP grants a channel, the station adds its edge relay to the host's switch.
        args.extend(["--switch-socket", &switch_arg]);
        for channel in &channel_args {
            args.extend(["--channel-network", channel]);
        }
    }
    start_daemon(
        dir,
        state,
        ("station", Some(host), &t.host_ns(host)),
        &args,
        &control,
        dir.path().join(host).join("evb.log"),
    )
}

/// How long CDCP gets to grant the hosts' S-channels and their stations to set them up.
const CHANNELS_UP: Duration = Duration::from_secs(60);

/// Waits until every host's station holds every S-channel of `[[evb.channel]]` and has put
/// its edge relay on the host switch's uplink.
pub(super) fn wait_channels(
    dir: &LabDir,
    state: &State,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let t = &state.topology;
    let Some(evb) = t.evb.as_ref().filter(|e| !e.channels.is_empty()) else {
        return Ok(());
    };
    for host in &t.hosts {
        let station = station_socket(dir.path(), &host.name);
        let switch = dir.path().join(&host.name).join("switch.sock");
        let mut granted: Vec<(u16, u16)> = Vec::new();
        let ready = wait_for(CHANNELS_UP, || {
            let status = status(&station)?;
            granted = status["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    let scid = u16::try_from(c["scid"].as_u64()?).ok()?;
                    let svid = u16::try_from(c["svid"].as_u64()?).ok()?;
                    (svid != 0 && scid != 1).then_some((scid, svid))
                })
                .collect();
            if !evb
                .channels
                .iter()
                .all(|c| granted.iter().any(|(scid, _)| *scid == c.scid))
            {
                return Ok(false);
            }
            // The uplink's S-channels as the switch has them.
            let list = call(&switch, &json!({"op": "list"}))?;
            let uplink = list["result"]["port"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == EVB_UPLINK)
                .cloned()
                .unwrap_or_default();
            Ok(granted.iter().all(|(_, svid)| {
                uplink["s_channels"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|c| c["svid"] == *svid))
            }))
        })?;
        if !ready {
            return Err(Error::Failed(format!(
                "host {}: S-channels not granted and set up within {} s (granted {granted:?}){}",
                host.name,
                CHANNELS_UP.as_secs(),
                state::log_tail(&dir.path().join(&host.name).join("evb.log"), 10)
            )));
        }
        let text: Vec<String> = granted
            .iter()
            .filter_map(|(scid, svid)| {
                let channel = evb.channels.iter().find(|c| c.scid == *scid)?;
                Some(format!(
                    "S-channel {scid} on S-VLAN {svid} ({}, {})",
                    channel.physical_network, channel.relay
                ))
            })
            .collect();
        progress.step(format!(
            "host {}: CDCP granted {}",
            host.name,
            text.join(", ")
        ));
    }
    Ok(())
}

/// One request to an EVB daemon's (or a switch's) control socket; its whole answer.
fn call(socket: &Path, request: &Value) -> Result<Value> {
    netns::call_json_line("control socket", socket, request, Duration::from_secs(10))
}

/// The station's status.
fn status(socket: &Path) -> Result<Value> {
    Ok(call(socket, &json!({"op": "status"}))?["status"].take())
}

/// The station's entry for `vsi_id`, if it has one.
fn station_vsi(status: &Value, vsi_id: &str) -> Option<Value> {
    status["vsis"]
        .as_array()?
        .iter()
        .find(|v| v["vsi_id"] == vsi_id)
        .cloned()
}

/// The station's events about `vsi_id`.
fn events_of(status: &Value, vsi_id: &str) -> Vec<Value> {
    status["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["vsi_id"] == vsi_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// What a VDP request ended in, as the station saw it.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    /// How long from the request to the answer.
    pub took: Duration,
    /// The VLAN the bridge gave the VSI (a pre-association or association).
    pub vlan: Option<u16>,
}

/// Asks `host`'s station for `mode` (`preassociate`, `associate`) of the VM's VSI with its
/// MAC, VID 0 (the bridge assigns the VLAN), and waits until the station is in that state; a
/// refusal or a time-out is an error naming the bridge's reason.
pub(super) fn request(
    lab: &Path,
    host: &str,
    mode: &str,
    vsi: &VmVsi,
    mac: &str,
    migrate_to: bool,
) -> Result<Outcome> {
    let want = match mode {
        "preassociate" => "preassociated",
        "preassociate_rr" => "preassociated_rr",
        "associate" => "associated",
        other => return Err(Error::Failed(format!("no VDP request {other:?}"))),
    };
    let socket = station_socket(lab, host);
    // Only what happens after this request counts (the event log is a bounded ring).
    let since = events_of(&status(&socket)?, &vsi.vsi_id)
        .iter()
        .filter_map(|e| e["at"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    let started = Instant::now();
    call(
        &socket,
        &json!({"op": mode, "manager_id": MANAGER_ID, "type_id": vsi.type_id,
                "type_version": vsi.type_version, "vsi_id": vsi.vsi_id, "scid": vsi.scid,
                "filters": [{"vlan": 0, "mac_address": mac}], "migrate_to": migrate_to}),
    )?;
    let mut reached = None;
    let done = wait_for(VDP_ANSWER, || {
        let now = status(&socket)?;
        if let Some(entry) = station_vsi(&now, &vsi.vsi_id)
            && entry["state"] == want
        {
            reached = Some(entry);
            return Ok(true);
        }
        let events = events_of(&now, &vsi.vsi_id);
        let ended = events.iter().find(|e| {
            e["at"].as_f64().is_some_and(|at| at > since)
                && (e["event"] == "refused" && e["kept"].is_null() || e["event"] == "timed_out")
        });
        if let Some(end) = ended {
            return Err(Error::Failed(format!(
                "the bridge refused {mode} of VSI {} (type {} version {}): {}",
                vsi.vsi_id,
                vsi.type_id,
                vsi.type_version,
                end["reason_name"]
                    .as_str()
                    .unwrap_or("no answer (timed out)")
            )));
        }
        Ok(false)
    })?;
    if !done {
        return Err(Error::Failed(format!(
            "VSI {} not {mode} on {host} within {} s",
            vsi.vsi_id,
            VDP_ANSWER.as_secs()
        )));
    }
    let vlan = reached
        .as_ref()
        .and_then(|entry| entry["filters"][0]["vlan"].as_u64())
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| *v != 0);
    Ok(Outcome {
        took: started.elapsed(),
        vlan,
    })
}

/// De-associates the VM's VSI through `host`'s station and waits until the station has let
/// it go (the bridge answered, or the station gave up after its retries).
pub(super) fn deassociate(lab: &Path, host: &str, vsi: &VmVsi) -> Result<Duration> {
    let socket = station_socket(lab, host);
    let started = Instant::now();
    if station_vsi(&status(&socket)?, &vsi.vsi_id).is_none() {
        return Ok(Duration::ZERO);
    }
    call(&socket, &json!({"op": "deassociate", "vsi_id": vsi.vsi_id}))?;
    let gone = wait_for(VDP_ANSWER, || {
        Ok(station_vsi(&status(&socket)?, &vsi.vsi_id).is_none())
    })?;
    if !gone {
        return Err(Error::Failed(format!(
            "VSI {} still on {host}'s station {} s after its De-Associate",
            vsi.vsi_id,
            VDP_ANSWER.as_secs()
        )));
    }
    Ok(started.elapsed())
}

/// The VSI type a VM on `network` associates with: `asked` (a type's name or id, or
/// `TYPE_ID[:VERSION]`, which need not exist: the bridge then refuses it), else the one type
/// whose profile is the network. `None` when the network is not on the EVB fabric.
pub(super) fn vsi_type(
    state: &State,
    cloud: &Cloud,
    admin: &Token,
    network: &Network,
    asked: Option<&str>,
) -> Result<Option<(u32, u8)>> {
    let on_fabric = state.topology.evb.as_ref().is_some_and(|e| {
        network
            .physical_network
            .as_deref()
            .and_then(|p| e.scid_of(p))
            .is_some()
    });
    if !on_fabric {
        if let Some(asked) = asked {
            return Err(Error::Failed(format!(
                "--vsi-type {asked}: network {} is not on the lab's EVB fabric",
                network.name
            )));
        }
        return Ok(None);
    }
    let listed = cloud.request(admin, Method::GET, "/v2.0/vsi-types", None)?;
    let types: Vec<(String, String, u32, u8, String)> = listed["vsi_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["id"].as_str()?.to_owned(),
                t["name"].as_str().unwrap_or_default().to_owned(),
                u32::try_from(t["type_id"].as_u64()?).ok()?,
                u8::try_from(t["type_version"].as_u64()?).ok()?,
                t["network_id"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    if let Some(asked) = asked {
        if let Some((_, _, id, version, _)) = types
            .iter()
            .find(|(id, name, ..)| id == asked || name == asked)
        {
            return Ok(Some((*id, *version)));
        }
        let (id, version) = asked.split_once(':').unwrap_or((asked, "1"));
        let id: u32 = id.parse().map_err(|_| {
            Error::Failed(format!(
                "--vsi-type {asked:?}: no VSI type of that name or id, and not TYPE_ID[:VERSION]"
            ))
        })?;
        let version: u8 = version
            .parse()
            .map_err(|_| Error::Failed(format!("--vsi-type {asked:?}: version is 0-255")))?;
        return Ok(Some((id, version)));
    }
    let mut ours = types.iter().filter(|t| t.4 == network.id);
    match (ours.next(), ours.next()) {
        (Some((_, _, id, version, _)), None) => Ok(Some((*id, *version))),
        (None, _) => Err(Error::Failed(format!(
            "network {} is on the EVB fabric but no VSI type names it: `weft vsi type create \
             --network {} ...` first, or give --vsi-type",
            network.name, network.id
        ))),
        (Some(_), Some(_)) => Err(Error::Failed(format!(
            "several VSI types name network {}: give --vsi-type",
            network.name
        ))),
    }
}
