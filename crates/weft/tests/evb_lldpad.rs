//! Interoperability with lldpad (issue 7 part 6): the real `lldpad` as the 802.1Qbg station in
//! one namespace, `weft evb bridge --policy` in another, joined by a veth pair. vdptool's
//! associate, pre-associate, pre-associate-rr and de-associate succeed and show in weft's
//! status; an unknown VSI type and a VLAN the type does not allow are refused and vdptool prints
//! the bridge's error; a VID 0 request gets the VLAN weft assigns and lldpad adopts it; lldpad's
//! keep-alives keep a VSI associated for several periods; killing lldpad makes the bridge
//! de-associate it after the keep-alive timeout.
//!
//! lldpad runs as `shared/evb/LLDPAD_INTEROP.md` says: its own config file in the test's scratch
//! directory, no pid file (`-p`), and a private /dev/shm in a mount namespace of its own (its
//! state segment `/lldpad.state` is not isolated by the network namespace); its control socket
//! is abstract, so it belongs to the test's namespace. Tests that start lldpad take
//! [`LLDPAD`], so they run one at a time. Root only (CI); skipped elsewhere, and skipped when
//! lldpad is not installed unless `CI` is set (then that is a failure: `.ci/run` installs it).

#[path = "support/evb.rs"]
mod evbsup;
#[path = "support/netns.rs"]
mod netns;

use std::{
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use evbsup::{events, status, vsi, vsi_state, wait_until};
use netns::{Lab, can_run};
use serde_json::Value;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
/// Held by every test that starts lldpad.
static LLDPAD: Mutex<()> = Mutex::new(());

const STATION_MAC: &str = "52:54:00:00:5e:01";
const BRIDGE_MAC: &str = "52:54:00:00:be:01";
/// lldpad's keep-alive period at RKA 20 (PROTOCOL_NOTES.md 7.8).
const KEEP_ALIVE: Duration = Duration::from_micros(10_485_760);
/// The bridge's keep-alive timeout at R 3, RTE 14, RKA 20.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_micros(17_448_960);

/// True when lldpad and vdptool are installed; in CI their absence fails the test.
fn have_lldpad() -> bool {
    let found = ["lldpad", "vdptool"].iter().all(|program| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "lldpad/vdptool missing in CI (.ci/run installs lldpad)"
        );
        eprintln!("skipping: lldpad is not installed (apt-get install lldpad)");
    }
    found
}

/// The station's config: the NCB agent on, the 2012 EVB TLV as a station asking for
/// reflective relay, R 3, RTE 14, RWD 20, RKA 20 (LLDPAD_INTEROP.md section 3).
fn station_conf(iface: &str) -> String {
    format!(
        r#"dcbx : {{ version = "1.0"; dcbx_version = 2; }};
nearest_customer_bridge :
{{
  {iface} :
  {{
    adminStatus = 3;
    tlvid0080c20d :
    {{
      enableTx = true;
      evbmode = "station";
      evbrrreq = true;
      evbgpid = false;
      ecpretries = 3;
      ecprte = 14;
      vdprwd = 20;
      vdprka = 20;
    }};
  }};
}};
"#
    )
}

/// Runs vdptool in `ns` and returns its stdout and stderr together.
/// The association of VSI `uuid` in `weft vsi assoc list -f json`'s answer (null if none).
fn association(list: &Value, uuid: &str) -> Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|a| a["VSI ID"] == uuid)
        .cloned()
        .unwrap_or(Value::Null)
}

fn vdptool(ns: &str, iface: &str, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", ns, "vdptool", "-i", iface])
        .args(args)
        .output()
        .expect("vdptool");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `vdptool -T -W` request for `mode` (assoc, preassoc, preassoc-rr, deassoc).
fn request(ns: &str, iface: &str, mode: &str, type_id: u32, uuid: &str, filter: &str) -> String {
    let args = [
        "-T".to_owned(),
        "-W".to_owned(),
        "-V".to_owned(),
        mode.to_owned(),
        "-c".to_owned(),
        format!("mode={mode}"),
        "-c".to_owned(),
        "mgrid2=evmgr1".to_owned(),
        "-c".to_owned(),
        format!("typeid={type_id}"),
        "-c".to_owned(),
        "typeidver=4".to_owned(),
        "-c".to_owned(),
        format!("uuid={uuid}"),
        "-c".to_owned(),
        "hints=none".to_owned(),
        "-c".to_owned(),
        format!("filter={filter}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vdptool(ns, iface, &args)
}

/// Asserts that vdptool printed the bridge's answer in `mode` with `filter` and no error.
fn assert_answer(out: &str, mode: &str, filter: &str) {
    assert!(
        out.contains("Response from VDP")
            && out.contains(&format!("mode = {mode}\n"))
            && out.contains(&format!("filter = {filter}"))
            && !out.contains("Error"),
        "expected {mode} {filter}, vdptool said:\n{out}"
    );
}

/// True while lldpad lists VSI `uuid` among those in `mode` (`vdptool -t`), with status 0.
fn lldpad_lists(ns: &str, iface: &str, mode: &str, uuid: &str, filter: &str) -> bool {
    let out = vdptool(
        ns,
        iface,
        &["-t", "-V", mode, "-c", &format!("uuid={uuid}")],
    );
    out.contains(&format!("uuid = {uuid}"))
        && out.contains(&format!("filter = {filter}"))
        && out.contains("hints = 0\n")
}

#[test]
fn lldpad_station_against_weft_bridge() {
    if !can_run() || !have_lldpad() {
        return;
    }
    let _serial = LLDPAD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let mut lab = Lab::new();
    let station_ns = lab.netns("st");
    let bridge_ns = lab.netns("br");
    let (st, br) = (lab.name("s"), lab.name("b"));
    lab.veth(&station_ns, &st, &bridge_ns, &br);
    lab.exec(
        &station_ns,
        &["ip", "link", "set", &st, "address", STATION_MAC],
    );
    lab.exec(
        &bridge_ns,
        &["ip", "link", "set", &br, "address", BRIDGE_MAC],
    );
    for (ns, dev) in [(&station_ns, &st), (&bridge_ns, &br)] {
        // No IPv6 noise on the link.
        let _ = lab.try_exec(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ],
        );
    }

    // The controller (seed 000's NMS) in the bridge's namespace: VSI type 5 version 4 maps to
    // network `vsinet` with VLAN 10; the bridge asks it about every VSI.
    let state_dir = lab.dir.join("server");
    let state_arg = state_dir.to_str().expect("path").to_owned();
    lab.spawn(
        &bridge_ns,
        &[
            WEFT,
            "server",
            "--noauth",
            "--listen",
            "127.0.0.1:9696",
            "--identity-listen",
            "127.0.0.1:5000",
            "--state-dir",
            &state_arg,
        ],
        "server.log",
    );
    let token_file = state_dir.join("agent-token");
    assert!(
        netns::wait_for(&token_file, Duration::from_secs(20)),
        "weft server did not start: {}",
        lab.log("server.log")
    );
    let ns = bridge_ns.clone();
    // `weft vsi ... -f json` against the controller, from inside its namespace.
    let api = move |args: &[&str]| -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, WEFT, "vsi"])
            .args(args)
            .args(["--url", "http://127.0.0.1:9696", "-f", "json"])
            .output()
            .expect("weft vsi");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let network = lab.exec(
        &bridge_ns,
        &[
            "python3",
            "-c",
            "import json,urllib.request as u;print(json.load(u.urlopen(u.Request(\
             'http://127.0.0.1:9696/v2.0/networks',data=b'{\"network\":{\"name\":\"vsinet\"}}',\
             headers={'Content-Type':'application/json'})))['network']['id'])",
        ],
    );
    assert_eq!(network.trim().len(), 36, "{network}");
    let vsi_type = api(&[
        "type",
        "create",
        "--type-id",
        "5",
        "--type-version",
        "4",
        "--network",
        "vsinet",
        "--vlan",
        "10",
        "--name",
        "web",
    ]);
    assert_eq!(vsi_type["type_id"], 5, "{vsi_type}");
    let socket = lab.dir.join("bridge.sock");
    let socket_arg = socket.to_str().expect("path");
    let token_arg = token_file.to_str().expect("path");
    // The bridge first, so lldpad hears its EVB TLV from the start.
    lab.spawn(
        &bridge_ns,
        &[
            WEFT,
            "evb",
            "bridge",
            "--iface",
            &br,
            "--decide",
            "http://127.0.0.1:9696",
            "--token-file",
            token_arg,
            "--bridge-name",
            "tor1",
            "--control",
            socket_arg,
        ],
        "bridge.log",
    );
    assert!(
        netns::wait_for(&socket, Duration::from_secs(10)),
        "bridge did not start: {}",
        lab.log("bridge.log")
    );

    let conf = lab.dir.join("station.conf");
    std::fs::write(&conf, station_conf(&st)).expect("station config");
    let lldpad = lab.spawn(
        &station_ns,
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            r#"mount -t tmpfs weftshm /dev/shm && exec stdbuf -oL -eL lldpad -p -V 7 -f "$0""#,
            conf.to_str().expect("path"),
        ],
        "station.log",
    );
    // VDP takes requests once lldpad has sent an EVB TLV with VDP running.
    let ready = format!("data_from_evb:{st} ");
    assert!(
        wait_until(Duration::from_secs(90), || {
            lab.log("station.log")
                .lines()
                .any(|l| l.contains(&ready) && l.contains(" evb:1"))
        }),
        "lldpad's VDP never came up:\n{}",
        lab.log("station.log")
    );
    let ready_after = started.elapsed();
    // lldpad took weft's EVB TLV, and weft lldpad's.
    assert!(
        wait_until(Duration::from_secs(10), || {
            lab.log("station.log")
                .contains(&format!("evb22_rchange:{st} agent 2 received tlv"))
                && status(&socket)["evb"]["peer"] == true
        }),
        "no EVB TLV exchange:\n{}",
        lab.log("station.log")
    );
    let evb = status(&socket)["evb"].clone();
    assert_eq!(evb["reflective_relay"], true, "{evb}");
    assert_eq!(evb["timing"]["rte"], 14, "{evb}");

    // Associate with VID 0: weft assigns VLAN 10 and lldpad adopts it.
    let keep = "aaaaaaaa-0000-4000-8000-000000000001";
    let out = request(&station_ns, &st, "assoc", 5, keep, "0-52:54:00:8e:aa:11");
    let associated_at = Instant::now();
    assert_answer(&out, "assoc", "10-52:54:00:8e:aa:11");
    let seen = vsi(&status(&socket), keep).expect("weft has the VSI");
    assert_eq!(seen["state"], "associated", "{seen}");
    assert_eq!(seen["filters"][0]["vlan"], 10, "{seen}");
    assert_eq!(seen["filters"][0]["mac_address"], "52:54:00:8e:aa:11");
    assert_eq!(seen["manager_id"], "evmgr1");
    assert!(lldpad_lists(
        &station_ns,
        &st,
        "assoc",
        keep,
        "10-52:54:00:8e:aa:11"
    ));
    // ...and the controller's API shows the association.
    let assoc = association(&api(&["assoc", "list"]), keep);
    assert_eq!(assoc["State"], "associated", "{assoc}");
    assert_eq!(assoc["Bridge"], "tor1", "{assoc}");
    assert_eq!(assoc["Port"], br.as_str(), "{assoc}");
    assert_eq!(assoc["Filters"][0]["vlan"], 10, "{assoc}");
    assert_eq!(assoc["Filters"][0]["mac_address"], "52:54:00:8e:aa:11");

    // Pre-associate, pre-associate with RR, associate, de-associate another VSI.
    let moving = "aaaaaaaa-0000-4000-8000-000000000002";
    let out = request(
        &station_ns,
        &st,
        "preassoc",
        5,
        moving,
        "0-52:54:00:8e:aa:12",
    );
    assert_answer(&out, "preassoc", "10-52:54:00:8e:aa:12");
    assert_eq!(vsi_state(&socket, moving).as_deref(), Some("preassociated"));
    // From here on the VSI's filter carries the VID weft assigned (LLDPAD_INTEROP.md item 8).
    let out = request(
        &station_ns,
        &st,
        "preassoc-rr",
        5,
        moving,
        "10-52:54:00:8e:aa:12",
    );
    assert_answer(&out, "preassoc-rr", "10-52:54:00:8e:aa:12");
    assert_eq!(
        vsi_state(&socket, moving).as_deref(),
        Some("preassociated_rr")
    );
    assert_eq!(
        association(&api(&["assoc", "list"]), moving)["State"],
        "preassociated_rr"
    );
    assert!(lldpad_lists(
        &station_ns,
        &st,
        "preassoc-rr",
        moving,
        "10-52:54:00:8e:aa:12"
    ));
    let out = request(&station_ns, &st, "assoc", 5, moving, "10-52:54:00:8e:aa:12");
    assert_answer(&out, "assoc", "10-52:54:00:8e:aa:12");
    assert_eq!(vsi_state(&socket, moving).as_deref(), Some("associated"));
    let out = request(
        &station_ns,
        &st,
        "deassoc",
        5,
        moving,
        "10-52:54:00:8e:aa:12",
    );
    assert_answer(&out, "deassoc", "10-52:54:00:8e:aa:12");
    assert_eq!(vsi_state(&socket, moving), None);
    let ended = events(&socket, "deassociated", Some(moving));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["cause"], "station");
    assert_eq!(
        association(&api(&["assoc", "list"]), moving)["State"],
        "deassociated"
    );
    assert!(!lldpad_lists(
        &station_ns,
        &st,
        "assoc",
        moving,
        "10-52:54:00:8e:aa:12"
    ));

    // An unknown VSI type: De-Associate + "other failure", which vdptool prints.
    let unknown = "aaaaaaaa-0000-4000-8000-000000000003";
    let out = request(
        &station_ns,
        &st,
        "assoc",
        99,
        unknown,
        "0-52:54:00:8e:aa:13",
    );
    assert!(
        out.contains("mode = deassoc") && out.contains("Error returned by Bridge: Other Failures"),
        "vdptool said:\n{out}"
    );
    assert_eq!(vsi_state(&socket, unknown), None);
    let refused = events(&socket, "refused", Some(unknown));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["reason"], 4);
    // A VLAN the type does not allow: "invalid VID, group or MAC" (code 5).
    let wrong_vlan = "aaaaaaaa-0000-4000-8000-000000000004";
    let out = request(
        &station_ns,
        &st,
        "assoc",
        5,
        wrong_vlan,
        "11-52:54:00:8e:aa:14",
    );
    assert!(
        out.contains("mode = deassoc") && out.contains("Error returned by Bridge"),
        "vdptool said:\n{out}"
    );
    assert_eq!(events(&socket, "refused", Some(wrong_vlan))[0]["reason"], 5);

    // Keep-alives: the first VSI stays associated on both sides for 3.5 keep-alive periods,
    // well past the bridge's keep-alive timeout.
    let hold = KEEP_ALIVE.mul_f64(3.5);
    let stayed = wait_until(hold, || {
        vsi_state(&socket, keep).as_deref() != Some("associated")
    });
    assert!(!stayed, "the VSI left before {hold:?}: {}", status(&socket));
    assert!(associated_at.elapsed() > KEEP_ALIVE_TIMEOUT + KEEP_ALIVE);
    assert!(lldpad_lists(
        &station_ns,
        &st,
        "assoc",
        keep,
        "10-52:54:00:8e:aa:11"
    ));
    // lldpad sent keep-alives (the same Associate again, each a request and the ACK of our
    // answer): 7 requests and at least 3 keep-alives make 20 frames or more.
    let vdp = &status(&socket)["counters"]["vdp"];
    assert!(
        vdp["rx_frames"].as_u64().unwrap_or(0) >= 2 * (7 + 3),
        "too few frames from lldpad: {vdp}"
    );
    assert!(
        !lab.log("station.log").contains("vdp22st_handle_ackto"),
        "lldpad timed out waiting for weft"
    );

    // lldpad dies: no more keep-alives, the bridge de-associates the VSI on its own.
    lab.signal(lldpad, "KILL");
    let killed = Instant::now();
    assert!(
        wait_until(KEEP_ALIVE_TIMEOUT + Duration::from_secs(5), || {
            vsi_state(&socket, keep).is_none()
        }),
        "the VSI outlived lldpad: {}",
        status(&socket)
    );
    let after = killed.elapsed();
    // The timeout runs from lldpad's last keep-alive, at most one period before the kill.
    assert!(
        after >= KEEP_ALIVE_TIMEOUT - KEEP_ALIVE - Duration::from_secs(1),
        "de-associated too early: {after:?}"
    );
    let ended = events(&socket, "deassociated", Some(keep));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["cause"], "keep-alive timeout");
    // The bridge told the controller.
    assert!(
        wait_until(Duration::from_secs(5), || {
            association(&api(&["assoc", "list"]), keep)["State"] == "deassociated"
        }),
        "the controller still has the VSI: {}",
        api(&["assoc", "list"])
    );
    // The unknown type never made an association.
    assert!(association(&api(&["assoc", "list"]), unknown).is_null());
    eprintln!(
        "lldpad ready after {ready_after:?}; bridge de-associated {after:?} after the kill; \
         {:?} in all",
        started.elapsed()
    );
}
