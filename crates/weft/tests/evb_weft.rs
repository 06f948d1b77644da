//! weft's EVB station against weft's EVB bridge on a veth pair (issue 7 part 6). lldpad has no
//! CDCP, so CDCP is proven here: the bridge grants S-VLANs from its pool, grants a subset when
//! the pool is short, and removes a channel the station drops (its SVID going to a waiting
//! channel); the CDCP TLVs on the wire, captured with tcpdump, have the byte layout of
//! `shared/evb/PROTOCOL_NOTES.md` section 5. VDP works end to end over the same link, on the
//! default channel and on a granted S-channel (its own EVB TLV exchange, ECP and VDP, its
//! frames S-tagged with the SVID; the VSI ends when the channel does), and against a fake
//! controller answering the decision API of `docs/vsi.md` (in the bridge's namespace; an
//! S-channel asks as bridge port `IF.sSVID`), with the state report after a keep-alive
//! timeout. A station killed and started again with its state file asks for its VSIs again
//! before the bridge's keep-alive timeout, which takes them as keep-alives: nothing ends,
//! nothing is decided again, and a VSI de-associated before the kill stays gone. Root only
//! (CI).

#[path = "support/evb.rs"]
mod evbsup;
#[path = "support/netns.rs"]
mod netns;

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Duration,
};

use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use evbsup::{
    channels, contains, control, events, pcap_frames, status, vsi, vsi_state, vsi_vlan, wait_until,
};
use netns::{Lab, can_run};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const STATION_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x5e, 0x02];
const BRIDGE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0xbe, 0x02];

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Two namespaces joined by a veth pair with fixed MACs: (lab, station ns, station if, bridge
/// ns, bridge if).
fn link() -> (Lab, String, String, String, String) {
    let mut lab = Lab::new();
    let station_ns = lab.netns("st");
    let bridge_ns = lab.netns("br");
    let (st, br) = (lab.name("s"), lab.name("b"));
    lab.veth(&station_ns, &st, &bridge_ns, &br);
    lab.exec(
        &station_ns,
        &["ip", "link", "set", &st, "address", &mac_text(STATION_MAC)],
    );
    lab.exec(
        &bridge_ns,
        &["ip", "link", "set", &br, "address", &mac_text(BRIDGE_MAC)],
    );
    for (ns, dev) in [(&station_ns, &st), (&bridge_ns, &br)] {
        let _ = lab.try_exec(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ],
        );
    }
    (lab, station_ns, st, bridge_ns, br)
}

/// Starts `weft evb ROLE --iface IF --control SOCK ARGS...` in `ns`; waits for the socket.
/// Returns the socket and the process's index in the lab.
fn start(lab: &mut Lab, ns: &str, role: &str, iface: &str, args: &[&str]) -> (PathBuf, usize) {
    start_as(lab, ns, (role, role), iface, args)
}

/// [`start`] with the socket and log named `NAME.sock` and `NAME.log`.
fn start_as(
    lab: &mut Lab,
    ns: &str,
    (role, name): (&str, &str),
    iface: &str,
    args: &[&str],
) -> (PathBuf, usize) {
    let socket = lab.dir.join(format!("{name}.sock"));
    let log = format!("{name}.log");
    let socket_arg = socket.to_str().expect("path").to_owned();
    let mut full = vec![
        WEFT,
        "evb",
        role,
        "--iface",
        iface,
        "--control",
        &socket_arg,
    ];
    full.extend_from_slice(args);
    let index = lab.spawn(ns, &full, &log);
    assert!(
        netns::wait_for(&socket, Duration::from_secs(10)),
        "weft evb {role} did not start: {}",
        lab.log(&log)
    );
    (socket, index)
}

/// A station request over the control socket; panics unless the daemon took it.
fn ask(socket: &Path, request: &Value) {
    let answer = control(socket, request);
    assert_eq!(answer["ok"], true, "{request} -> {answer}");
}

fn vsi_request(op: &str, type_id: u32, vsi_id: &str, vlan: u16) -> Value {
    json!({
        "op": op, "manager_id": "evmgr1", "type_id": type_id, "type_version": 4,
        "vsi_id": vsi_id, "filters": [{"vlan": vlan, "mac_address": "52:54:00:8e:bb:01"}],
    })
}

/// The same request on S-channel `scid`.
fn on_channel(mut request: Value, scid: u16) -> Value {
    request["scid"] = json!(scid);
    request
}

/// True once S-channel `scid` of a daemon's status has an EVB peer of its own.
fn channel_has_peer(socket: &Path, scid: u16) -> bool {
    status(socket)["channels"].as_array().is_some_and(|list| {
        list.iter()
            .any(|c| c["scid"] == scid && c["evb"]["peer"] == true)
    })
}

/// The S-tag of a captured frame: (VID, the EtherType behind the tag).
fn s_tag(frame: &[u8]) -> Option<(u16, [u8; 2])> {
    (frame.len() >= 18 && frame[12..14] == [0x88, 0xa8]).then(|| {
        (
            u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff,
            [frame[16], frame[17]],
        )
    })
}

/// The CDCP TLV the notes lay out: `FE LL | 00 80 C2 | 0E | role/SComp | reserved | ChnCap |
/// <SCID,SVID> x N` with the default <1,1> first, 12 + 12 bits per pair. Built by hand from
/// the notes, not by weft's encoder.
fn cdcp_tlv(station: bool, chn_cap: u16, pairs: &[(u16, u16)]) -> Vec<u8> {
    let info_len = 8 + 3 * (pairs.len() + 1);
    let header = (127u16 << 9) | u16::try_from(info_len).expect("short");
    let mut tlv = header.to_be_bytes().to_vec();
    tlv.extend_from_slice(&[0x00, 0x80, 0xc2, 0x0e]);
    // Role in bit 7 (1 = station), SComp in bit 3, then 15 reserved bits and 12 of ChnCap.
    tlv.push(if station { 0x88 } else { 0x08 });
    tlv.push(0);
    tlv.extend_from_slice(&(chn_cap & 0x0fff).to_be_bytes());
    for &(scid, svid) in std::iter::once(&(1, 1)).chain(pairs) {
        tlv.push(u8::try_from(scid >> 4).expect("12 bits"));
        tlv.push(u8::try_from(((scid & 0xf) << 4) | (svid >> 8)).expect("12 bits"));
        tlv.push(u8::try_from(svid & 0xff).expect("byte"));
    }
    tlv
}

#[test]
fn cdcp_and_vdp_between_weft_station_and_bridge() {
    if !can_run() {
        return;
    }
    let (mut lab, station_ns, st, bridge_ns, br) = link();
    // Capture everything from the start: CDCP (LLDP to the Nearest non-TPMR Bridge address)
    // and the S-channel's tagged frames (a filter on the EtherType would miss those: the
    // kernel has the tag off before the filter runs).
    let pcap = lab.dir.join("evb.pcap");
    let capture = lab.spawn(
        &bridge_ns,
        &[
            "tcpdump",
            "-i",
            &br,
            "-U",
            "-w",
            pcap.to_str().expect("path"),
        ],
        "tcpdump.log",
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .log("tcpdump.log")
            .contains("listening on")),
        "tcpdump: {}",
        lab.log("tcpdump.log")
    );
    let policy = lab.dir.join("policy.toml");
    std::fs::write(&policy, "[[vsi_type]]\ntype_id = 5\nvlan = 10\n").expect("policy");
    // Two S-VLANs for three wanted channels: a partial grant.
    let (bridge, _) = start(
        &mut lab,
        &bridge_ns,
        "bridge",
        &br,
        &[
            "--policy",
            policy.to_str().expect("path"),
            "--cdcp-svids",
            "100-101",
            "--chn-cap",
            "4",
        ],
    );
    let (station, _) = start(
        &mut lab,
        &station_ns,
        "station",
        &st,
        &["--channels", "2,3,4", "--chn-cap", "8"],
    );

    let granted = vec![(2, 100), (3, 101)];
    assert!(
        wait_until(Duration::from_secs(10), || channels(&bridge) == granted
            && channels(&station) == granted),
        "bridge {:?} station {:?}",
        channels(&bridge),
        channels(&station)
    );
    // The station drops channel 3: the bridge removes it, and its SVID goes to channel 4.
    ask(&station, &json!({"op": "channels", "scids": [2, 4]}));
    let regranted = vec![(2, 100), (4, 101)];
    assert!(
        wait_until(Duration::from_secs(10), || channels(&bridge) == regranted
            && channels(&station) == regranted),
        "bridge {:?} station {:?}",
        channels(&bridge),
        channels(&station)
    );
    let down = events(&bridge, "channel_down", None);
    assert!(
        down.iter().any(|e| e["scid"] == 3 && e["svid"] == 101),
        "{down:?}"
    );

    // VDP end to end on the same link.
    let vm = "bbbbbbbb-0000-4000-8000-000000000001";
    ask(&station, &vsi_request("preassociate", 5, vm, 0));
    assert!(wait_until(Duration::from_secs(5), || vsi_state(
        &station, vm
    )
    .as_deref()
        == Some("preassociated")));
    ask(&station, &vsi_request("associate", 5, vm, 0));
    assert!(
        wait_until(Duration::from_secs(5), || vsi_state(&station, vm)
            .as_deref()
            == Some("associated")),
        "{}",
        status(&station)
    );
    assert_eq!(vsi_vlan(&station, vm), Some(10));
    assert_eq!(vsi_state(&bridge, vm).as_deref(), Some("associated"));
    assert_eq!(vsi_vlan(&bridge, vm), Some(10));
    let unknown = "bbbbbbbb-0000-4000-8000-000000000002";
    ask(&station, &vsi_request("associate", 99, unknown, 0));
    assert!(wait_until(Duration::from_secs(5), || !events(
        &station,
        "refused",
        Some(unknown)
    )
    .is_empty()));
    assert_eq!(events(&station, "refused", Some(unknown))[0]["reason"], 4);
    assert_eq!(vsi_state(&station, unknown), None);
    ask(&station, &json!({"op": "deassociate", "vsi_id": vm}));
    assert!(wait_until(Duration::from_secs(5), || vsi_state(
        &station, vm
    )
    .is_none()
        && vsi_state(&bridge, vm).is_none()));
    assert_eq!(
        events(&bridge, "deassociated", Some(vm))[0]["cause"],
        "station"
    );

    // VDP on S-channel SCID 2 (SVID 100), a bridge port of its own: its own EVB TLV
    // exchange first, then a VSI associated on it.
    assert!(
        wait_until(Duration::from_secs(10), || channel_has_peer(&station, 2)
            && channel_has_peer(&bridge, 2)),
        "{}",
        status(&station)["channels"]
    );
    let s_vm = "bbbbbbbb-0000-4000-8000-000000000003";
    ask(
        &station,
        &on_channel(vsi_request("associate", 5, s_vm, 0), 2),
    );
    assert!(
        wait_until(Duration::from_secs(5), || vsi_state(&station, s_vm)
            .as_deref()
            == Some("associated")),
        "{}",
        status(&station)
    );
    for side in [&station, &bridge] {
        let seen = vsi(&status(side), s_vm).expect("the VSI is listed");
        assert_eq!((&seen["scid"], &seen["svid"]), (&json!(2), &json!(100)));
        assert_eq!(seen["state"], "associated");
        assert_eq!(seen["filters"][0]["vlan"], 10);
    }
    let associated = events(&bridge, "associated", Some(s_vm));
    assert_eq!(associated[0]["svid"], 100, "{associated:?}");
    // A channel that is not granted takes no request.
    let refused = control(
        &station,
        &on_channel(
            vsi_request("associate", 5, "bbbbbbbb-0000-4000-8000-000000000004", 0),
            3,
        ),
    );
    assert_eq!(refused["error"], "S-channel SCID 3 is not granted");
    // The station lets channel 2 go: its VSI ends on both sides.
    ask(&station, &json!({"op": "channels", "scids": [4]}));
    assert!(
        wait_until(Duration::from_secs(10), || vsi_state(&station, s_vm)
            .is_none()
            && vsi_state(&bridge, s_vm).is_none()),
        "{}",
        status(&bridge)
    );
    let ended = events(&bridge, "deassociated", Some(s_vm));
    assert_eq!(
        (&ended[0]["svid"], &ended[0]["cause"]),
        (&json!(100), &json!("bridge"))
    );
    let gone = events(&station, "deassociated", Some(s_vm));
    assert_eq!(gone[0]["cause"], "channel down");

    // The TLVs on the wire (tcpdump writes each frame as it comes).
    let from = |frames: &[Vec<u8>], mac: [u8; 6]| -> Vec<Vec<u8>> {
        frames
            .iter()
            .filter(|f| {
                f.len() > 14
                    && f[6..12] == mac
                    && f[..6] == [0x01, 0x80, 0xc2, 0x00, 0x00, 0x03]
                    && f[12..14] == [0x88, 0xcc]
            })
            .cloned()
            .collect()
    };
    let wants = cdcp_tlv(true, 8, &[(2, 0), (3, 0), (4, 0)]);
    let grants = [
        cdcp_tlv(false, 4, &[(2, 100), (3, 101)]),
        cdcp_tlv(false, 4, &[(2, 100), (4, 101)]),
    ];
    let captured = wait_until(Duration::from_secs(10), || {
        let bridge_frames = from(&pcap_frames(&pcap), BRIDGE_MAC);
        grants
            .iter()
            .all(|grant| bridge_frames.iter().any(|f| contains(f, grant)))
    });
    lab.stop(capture);
    let frames = pcap_frames(&pcap);
    // The S-channel's LLDP and ECP went S-tagged with its SVID, both ways (the other
    // channels, SVID 101, had their LLDP tagged too).
    for mac in [STATION_MAC, BRIDGE_MAC] {
        let tags: Vec<_> = frames
            .iter()
            .filter(|f| f.len() > 14 && f[6..12] == mac)
            .filter_map(|f| s_tag(f))
            .collect();
        for inner in [[0x88, 0xcc], [0x89, 0x40]] {
            assert!(tags.contains(&(100, inner)), "{mac:02x?}: {tags:?}");
        }
        assert!(
            tags.iter().all(|&(vid, _)| vid == 100 || vid == 101),
            "{tags:?}"
        );
    }
    let (bridge_frames, station_frames) = (from(&frames, BRIDGE_MAC), from(&frames, STATION_MAC));
    assert!(
        captured,
        "no bridge TLVs {grants:02x?} in {bridge_frames:02x?}"
    );
    assert!(
        station_frames.first().is_some_and(|f| contains(f, &wants)),
        "the station's first CDCP TLV is not {wants:02x?}: {station_frames:02x?}"
    );
    // The notes' example: a bridge, SComp, ChnCap 4, pairs <1,1> <2,100>.
    assert_eq!(
        cdcp_tlv(false, 4, &[(2, 100)]),
        [
            0xfe, 0x0e, 0x00, 0x80, 0xc2, 0x0e, 0x08, 0x00, 0x00, 0x04, 0x00, 0x10, 0x01, 0x00,
            0x20, 0x64
        ]
    );
}

/// What the fake controller saw: (path, Authorization header, body).
type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

const SECRET: &str = "weft-test-secret";

/// A fake controller answering `POST /weft/v1/vdp/decide` and `/state` on 127.0.0.1 inside
/// namespace `ns` (a thread of its own enters it: `setns` affects only the calling thread).
/// Type 100 is accepted with VLAN 20; any other type is refused for want of resources.
fn fake_controller(ns: &str) -> (String, Seen) {
    async fn decide(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock()
            .expect("lock")
            .push(("decide".into(), auth.clone(), body.clone()));
        if auth.as_deref() != Some(&format!("Bearer {SECRET}")) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "secret"})));
        }
        let request = &body["request"];
        let answer = if request["mode"] == "deassociate" || request["type_id"] == 100 {
            let mut filters = request["filters"].clone();
            for filter in filters.as_array_mut().into_iter().flatten() {
                if filter["vlan"] == 0 {
                    filter["vlan"] = json!(20);
                }
            }
            json!({"decision": "accept", "filters": filters, "association": {}})
        } else {
            json!({"decision": "reject", "error": "insufficient_resources", "reason": "no VLAN"})
        };
        (StatusCode::OK, Json(answer))
    }
    async fn state(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock()
            .expect("lock")
            .push(("state".into(), auth, body));
        Json(json!({}))
    }
    let seen = Seen::default();
    let app = Router::new()
        .route("/weft/v1/vdp/decide", post(decide))
        .route("/weft/v1/vdp/state", post(state))
        .with_state(Arc::clone(&seen));
    let (tx, rx) = mpsc::channel();
    let path = format!("/var/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            tx.send(url).expect("send");
            let _ = axum::serve(listener, app).await;
        });
    });
    let url = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("fake controller");
    (url, seen)
}

/// Starts a bridge on `iface` (bridge `tor1`, CDCP S-VLAN 100, `timers`) that asks the
/// controller at `url` with the agents' secret; returns its control socket.
fn start_deciding_bridge(
    lab: &mut Lab,
    ns: &str,
    iface: &str,
    url: &str,
    timers: &[&str],
) -> PathBuf {
    let token = lab.dir.join("token");
    std::fs::write(&token, format!("{SECRET}\n")).expect("token");
    let mut args = vec![
        "--decide",
        url,
        "--token-file",
        token.to_str().expect("path"),
        "--bridge-name",
        "tor1",
        "--cdcp-svids",
        "100",
    ];
    args.extend_from_slice(timers);
    start(lab, ns, "bridge", iface, &args).0
}

#[test]
fn vdp_decisions_from_the_controller() {
    if !can_run() {
        return;
    }
    let (mut lab, station_ns, st, bridge_ns, br) = link();
    lab.exec(&bridge_ns, &["ip", "link", "set", "lo", "up"]);
    let (url, seen) = fake_controller(&bridge_ns);
    // Short keep-alives (RKA 16: 0.66 s; the bridge's timeout about 1 s) keep the test quick.
    let timers = ["--rte", "10", "--rka", "16"];
    let bridge = start_deciding_bridge(&mut lab, &bridge_ns, &br, &url, &timers);
    let mut station_args = vec!["--channels", "2"];
    station_args.extend_from_slice(&timers);
    let (station, station_proc) = start(&mut lab, &station_ns, "station", &st, &station_args);

    // Accepted: the controller's VLAN reaches the station.
    let vm = "cccccccc-0000-4000-8000-000000000001";
    ask(&station, &vsi_request("associate", 100, vm, 0));
    assert!(
        wait_until(Duration::from_secs(10), || vsi_state(&station, vm)
            .as_deref()
            == Some("associated")),
        "{}\n{}",
        status(&station),
        lab.log("bridge.log")
    );
    assert_eq!(vsi_vlan(&station, vm), Some(20));
    let on_bridge = vsi(&status(&bridge), vm).expect("bridge has it");
    assert_eq!(on_bridge["filters"][0]["vlan"], 20);
    {
        let seen = seen.lock().expect("lock");
        let (path, auth, body) = &seen[0];
        assert_eq!(path, "decide");
        assert_eq!(auth.as_deref(), Some("Bearer weft-test-secret"));
        assert_eq!(body["bridge"], "tor1");
        assert_eq!(body["port"], br.as_str());
        assert_eq!(
            body["request"],
            json!({"mode": "associate", "type_id": 100, "type_version": 4, "id_format": 5,
                   "vsi_id": vm, "manager_id": "evmgr1",
                   "filters": [{"vlan": 0, "mac_address": "52:54:00:8e:bb:01", "group_id": null}]})
        );
    }
    // Keep-alives are answered by the bridge without asking the controller again.
    let asked = seen.lock().expect("lock").len();
    thread::sleep(Duration::from_secs(3));
    assert_eq!(vsi_state(&station, vm).as_deref(), Some("associated"));
    assert_eq!(seen.lock().expect("lock").len(), asked);

    // Refused: the controller's error code reaches the station.
    let other = "cccccccc-0000-4000-8000-000000000002";
    ask(&station, &vsi_request("associate", 7, other, 0));
    assert!(wait_until(Duration::from_secs(10), || !events(
        &station,
        "refused",
        Some(other)
    )
    .is_empty()));
    assert_eq!(events(&station, "refused", Some(other))[0]["reason"], 2);

    // The station de-associates: the controller records it through the decision API.
    ask(&station, &json!({"op": "deassociate", "vsi_id": vm}));
    let recorded = |seen: &Seen, path: &str, check: &dyn Fn(&Value) -> bool| {
        seen.lock()
            .expect("lock")
            .iter()
            .any(|(p, _, body)| p == path && check(body))
    };
    assert!(wait_until(Duration::from_secs(10), || recorded(
        &seen,
        "decide",
        &|body| body["request"]["mode"] == "deassociate" && body["request"]["vsi_id"] == vm
    )));
    assert!(vsi_state(&bridge, vm).is_none());

    // On S-channel SCID 2 (SVID 100) the bridge asks as bridge port IF.s100.
    let s_vm = "cccccccc-0000-4000-8000-000000000004";
    assert!(wait_until(Duration::from_secs(10), || channel_has_peer(
        &station, 2
    )));
    ask(
        &station,
        &on_channel(vsi_request("associate", 100, s_vm, 0), 2),
    );
    assert!(
        wait_until(Duration::from_secs(10), || vsi_state(&station, s_vm)
            .as_deref()
            == Some("associated")),
        "{}\n{}",
        status(&station),
        lab.log("bridge.log")
    );
    let channel_port = format!("{br}.s100");
    assert!(recorded(&seen, "decide", &|body| {
        body["port"] == channel_port.as_str() && body["request"]["vsi_id"] == s_vm
    }));
    assert_eq!(
        vsi(&status(&bridge), s_vm).expect("on the bridge")["svid"],
        100
    );

    // The station dies: the bridge de-associates on the keep-alive timeout and says so, on
    // each channel as the bridge port it is.
    let last = "cccccccc-0000-4000-8000-000000000003";
    ask(&station, &vsi_request("associate", 100, last, 0));
    assert!(wait_until(Duration::from_secs(10), || vsi_state(
        &bridge, last
    )
    .as_deref()
        == Some("associated")));
    lab.signal(station_proc, "KILL");
    assert!(
        wait_until(Duration::from_secs(10), || recorded(
            &seen,
            "state",
            &|body| {
                *body
                    == json!({"bridge": "tor1", "port": br.as_str(), "vsi_id": last,
                          "state": "deassociated", "reason": "keep-alive timeout"})
            }
        )),
        "{:?}\n{}",
        seen.lock().expect("lock"),
        lab.log("bridge.log")
    );
    assert!(vsi_state(&bridge, last).is_none());
    assert!(wait_until(Duration::from_secs(10), || recorded(
        &seen,
        "state",
        &|body| body["port"] == channel_port.as_str() && body["vsi_id"] == s_vm
    )));
}

/// The VSI ids a state file holds.
fn saved_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let saved: Value = serde_json::from_str(&text).unwrap_or_default();
    saved["vsis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|vsi| Some(vsi["vsi_id"].as_str()?.to_owned()))
        .collect()
}

#[test]
fn station_restart_keeps_its_vsis() {
    if !can_run() {
        return;
    }
    let (mut lab, station_ns, st, bridge_ns, br) = link();
    let (url, seen) = fake_controller(&bridge_ns);
    // Keep-alives every 2.6 s (RKA 18); the bridge ends a VSI it hears nothing from for
    // 1.5 x (7 T(RTE) + T(RKA)) = 4 s, at worst 1.4 s after the station's last keep-alive:
    // the restart has to beat that.
    let timers = ["--rte", "10", "--rka", "18"];
    let bridge = start_deciding_bridge(&mut lab, &bridge_ns, &br, &url, &timers);
    let state = lab.dir.join("station-state.json");
    let mut station_args = vec![
        "--channels",
        "2",
        "--state-file",
        state.to_str().expect("path"),
    ];
    station_args.extend_from_slice(&timers);
    let (station, station_proc) = start(&mut lab, &station_ns, "station", &st, &station_args);
    assert!(wait_until(Duration::from_secs(10), || channel_has_peer(
        &station, 2
    )));

    // On the default channel, on S-channel SCID 2, one de-associated before the kill, and
    // one the controller refuses (type 7).
    let kept = "dddddddd-0000-4000-8000-000000000001";
    let on_s = "dddddddd-0000-4000-8000-000000000002";
    let gone = "dddddddd-0000-4000-8000-000000000003";
    let refused = "dddddddd-0000-4000-8000-000000000004";
    let request = |op: &str, type_id: u32, vsi_id: &str, mac: u8| {
        let mut request = vsi_request(op, type_id, vsi_id, 0);
        request["filters"][0]["mac_address"] = json!(format!("52:54:00:8e:dd:{mac:02x}"));
        request
    };
    ask(&station, &request("associate", 100, kept, 1));
    ask(&station, &on_channel(request("associate", 100, on_s, 2), 2));
    ask(&station, &request("associate", 100, gone, 3));
    ask(&station, &request("associate", 7, refused, 4));
    assert!(
        wait_until(Duration::from_secs(10), || [kept, on_s, gone]
            .iter()
            .all(|id| vsi_state(&bridge, id).as_deref() == Some("associated"))
            && !events(&station, "refused", Some(refused)).is_empty()),
        "{}\n{}",
        status(&station),
        lab.log("bridge.log")
    );
    ask(&station, &json!({"op": "deassociate", "vsi_id": gone}));
    assert!(wait_until(Duration::from_secs(10), || vsi_state(
        &bridge, gone
    )
    .is_none()));
    // The state file holds what the station holds: the requests as the VMM made them, and
    // the VLAN the controller gave.
    assert_eq!(saved_ids(&state), [kept, on_s]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("JSON");
    assert_eq!(saved["channels"], json!([2]));
    let first = &saved["vsis"][0];
    assert_eq!(
        (&first["op"], &first["scid"], &saved["vsis"][1]["scid"]),
        (&json!("associate"), &json!(1), &json!(2))
    );
    assert_eq!(first["filters"][0]["vlan"], 0);
    assert_eq!(first["bound_filters"][0]["vlan"], 20);
    let heard_before = seen.lock().expect("lock").len();

    // SIGKILL: no goodbye, no last word. Started again at once with the same state file.
    lab.signal(station_proc, "KILL");
    let killed = std::time::Instant::now();
    std::fs::remove_file(&station).expect("the dead station's socket");
    let (station, station_proc) = start_as(
        &mut lab,
        &station_ns,
        ("station", "station2"),
        &st,
        &station_args,
    );
    assert!(
        wait_until(Duration::from_secs(10), || [kept, on_s]
            .iter()
            .all(|id| vsi_state(&station, id).as_deref() == Some("associated"))),
        "{}\n{}\n{}",
        status(&station),
        status(&bridge),
        lab.log("station2.log")
    );
    for id in [kept, on_s] {
        let restored = events(&station, "restored", Some(id));
        assert_eq!(restored.len(), 1, "{id}: {restored:?}");
        assert_eq!(restored[0]["mode"], "associate");
    }
    assert_eq!(vsi(&status(&station), on_s).expect("listed")["svid"], 100);
    for id in [gone, refused] {
        assert!(vsi_state(&station, id).is_none(), "{id} came back");
        assert!(events(&station, "restored", Some(id)).is_empty());
    }
    // Well past the bridge's keep-alive timeout, counted from the kill.
    thread::sleep(Duration::from_secs(9).saturating_sub(killed.elapsed()));
    for id in [kept, on_s] {
        assert_eq!(
            vsi_state(&bridge, id).as_deref(),
            Some("associated"),
            "{id}: {}",
            lab.log("bridge.log")
        );
        assert_eq!(vsi_state(&station, id).as_deref(), Some("associated"));
        // Associated once, never ended: the switch's gate and the controller's record were
        // never touched again.
        assert_eq!(events(&bridge, "associated", Some(id)).len(), 1, "{id}");
        assert!(events(&bridge, "deassociated", Some(id)).is_empty(), "{id}");
    }
    assert!(vsi_state(&bridge, gone).is_none());
    assert_eq!(events(&bridge, "associated", Some(gone)).len(), 1);
    // The controller heard nothing since the kill: no decision asked, no state reported.
    let heard: Vec<_> = seen.lock().expect("lock")[heard_before..].to_vec();
    assert!(heard.is_empty(), "{heard:?}");
    assert_eq!(saved_ids(&state), [kept, on_s]);

    // A state file that does not read: set aside, and the station starts with nothing.
    assert!(lab.stop(station_proc).is_some());
    std::fs::write(&state, "{\"version\": 1, \"vsis\": [{\"op\": \"assoc").expect("garbage");
    let _ = std::fs::remove_file(&station);
    let (station, _) = start_as(
        &mut lab,
        &station_ns,
        ("station", "station3"),
        &st,
        &station_args,
    );
    assert_eq!(status(&station)["vsis"], json!([]));
    let log = lab.log("station3.log");
    assert!(log.contains("cannot use the state file"), "{log}");
    let bad = lab.dir.join("station-state.json.bad");
    assert!(std::fs::read_to_string(bad).is_ok_and(|text| text.contains("assoc")));
}
