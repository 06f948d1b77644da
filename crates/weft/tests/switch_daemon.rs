//! `weft switch` and `weft switch ctl` as processes, without root: a daemon started from a
//! TOML file (switches, a VXLAN port on loopback, records), listed and changed through the
//! client, then stopped with SIGTERM. The S-channel test needs a packet socket on `lo`
//! (CAP_NET_RAW) and skips without one.

use std::{
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-switch-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A UDP port free on 127.0.0.1 a moment ago.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// The daemon process, killed if a test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    control: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, config: &str) -> Self {
        let file = dir.join("switch.toml");
        std::fs::write(&file, config).expect("write config");
        let control = dir.join("ctl.sock");
        let log = dir.join("switch.log");
        let child = Command::new(WEFT)
            .args([
                "switch",
                "--config",
                path(&file),
                "--control",
                path(&control),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn weft switch");
        let daemon = Self {
            child: Some(child),
            control,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon.control.exists() {
            assert!(Instant::now() < deadline, "no socket: {}", daemon.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `weft switch ctl --control SOCKET args...`: exit code, stdout, stderr.
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(WEFT)
            .args(["switch", "ctl", "--control", path(&self.control)])
            .args(args)
            .output()
            .expect("run weft switch ctl");
        (
            output.status.code().expect("exit code"),
            String::from_utf8(output.stdout).expect("utf-8"),
            String::from_utf8(output.stderr).expect("utf-8"),
        )
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.ctl(args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        out
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("kill");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().expect("exited, not killed");
            }
            assert!(Instant::now() < deadline, "still running: {}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(udp_port: u16) -> String {
    format!(
        r#"
[[switch]]
name = "net1"
local_vlan = 1
segment = "vxlan:100"
flood = ["127.0.0.2"]

[[switch]]
name = "net2"
local_vlan = 2
segment = "local"

[[port]]
name = "vxlan0"
type = "vxlan"
local_ip = "127.0.0.1"
port = {udp_port}

[[record]]
switch = "net1"
ip = "10.0.0.2"
mac = "fa:16:3e:00:00:02"
remote = "127.0.0.2"
"#
    )
}

#[test]
fn runs_from_a_file_answers_its_client_and_stops_on_sigterm() {
    let dir = scratch("run");
    let udp_port = free_udp_port();
    let mut daemon = Daemon::start(&dir, &config(udp_port));

    let list = daemon.ctl_ok(&["list"]);
    for expected in [
        "net1",
        "vxlan:100",
        "127.0.0.2",
        "net2",
        "local",
        "vxlan0",
        "10.0.0.2",
        "fa:16:3e:00:00:02",
    ] {
        assert!(list.contains(expected), "{expected} in\n{list}");
    }
    let json: Value = serde_json::from_str(&daemon.ctl_ok(&["list", "--json"])).expect("JSON");
    assert_eq!(json["switch"][0]["name"], json!("net1"));
    assert_eq!(json["port"][0]["port"], json!(udp_port));
    assert_eq!(
        json["port"][0]["source_ports"],
        json!(16),
        "the default pool"
    );
    assert_eq!(json["record"][0]["remote"], json!("127.0.0.2"));

    // A refused change exits 1 with the daemon's message, and changes nothing.
    let (code, out, err) = daemon.ctl(&[
        "add-switch",
        "net3",
        "--local-vlan",
        "1",
        "--segment",
        "local",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "weft: switch \"net3\".local_vlan: 1 is used by another switch\n"
    );
    let (code, _, err) = daemon.ctl(&[
        "add-port", "vm1", "--type", "memory", "--switch", "net2", "--mac", "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("weft: port.mac: invalid MAC address"),
        "{err}"
    );
    let (code, _, err) = daemon.ctl(&[
        "add-port",
        "vxlan1",
        "--type",
        "vxlan",
        "--local-ip",
        "127.0.0.1",
        "--source-ports",
        "0",
    ]);
    assert_eq!(code, 1);
    assert_eq!(err, "weft: port.source_ports: must be 1-256, got 0\n");
    assert_eq!(daemon.ctl_ok(&["list"]), list);

    // Accepted changes.
    assert_eq!(
        daemon.ctl_ok(&[
            "add-switch",
            "net3",
            "--local-vlan",
            "3",
            "--segment",
            "local"
        ]),
        "ok: generation 2\n"
    );
    daemon.ctl_ok(&[
        "add-port",
        "vm1",
        "--type",
        "memory",
        "--switch",
        "net3",
        "--mac",
        "fa:16:3e:00:00:01",
        "--ip",
        "10.0.0.1",
    ]);
    daemon.ctl_ok(&["set-flood", "--switch", "net1", "127.0.0.3", "127.0.0.4"]);
    daemon.ctl_ok(&["remove-record", "--switch", "net1", "--ip", "10.0.0.2"]);
    let json: Value = serde_json::from_str(&daemon.ctl_ok(&["list", "--json"])).expect("JSON");
    assert_eq!(
        json["switch"][0]["flood"],
        json!(["127.0.0.3", "127.0.0.4"])
    );
    assert_eq!(json["switch"][2]["name"], json!("net3"));
    assert_eq!(json["port"][1]["name"], json!("vm1"));
    assert_eq!(json["record"], json!([]));

    let counters = daemon.ctl_ok(&["counters"]);
    assert!(counters.contains("spoofed_mac"), "{counters}");
    let counters: Value =
        serde_json::from_str(&daemon.ctl_ok(&["counters", "--json"])).expect("JSON");
    assert_eq!(counters["ports"][0]["name"], json!("vxlan0"));
    assert_eq!(counters["drops"]["unknown_endpoint"], json!(0));
    let raw = daemon.ctl_ok(&["request", r#"{"op": "macs"}"#]);
    assert_eq!(raw.trim(), "[]");

    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());
    assert!(!daemon.control.exists(), "the socket file is removed");
    let (code, _, err) = daemon.ctl(&["list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot connect to the control socket"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_file_names_the_field_and_starts_nothing() {
    let dir = scratch("bad");
    let file = dir.join("bad.toml");
    let control = dir.join("ctl.sock");
    std::fs::write(
        &file,
        config(4789).replace("segment = \"local\"", "segment = \"vlan:x\""),
    )
    .expect("write");
    let output = Command::new(WEFT)
        .args([
            "switch",
            "--config",
            path(&file),
            "--control",
            path(&control),
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8(output.stderr).expect("utf-8");
    assert_eq!(
        err,
        format!(
            "weft: {}: switch \"net2\".segment: expected \
             local|flat:PHYSNET|vlan:PHYSNET:VID|vxlan:VNI|gre:KEY|nvgre:VSID, got \"vlan:x\"\n",
            file.display()
        )
    );
    assert!(!control.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_replace_takes_toml_or_json_and_status_lists_the_ports() {
    let dir = scratch("replace");
    let udp_port = free_udp_port();
    let mut daemon = Daemon::start(&dir, "");
    assert_eq!(
        daemon.ctl_ok(&["status", "--json"]).trim(),
        r#"{"ports":[]}"#
    );

    // TOML, as the daemon's file is written; a DHCP subnet on net2 and a memory VM on it.
    let toml = dir.join("next.toml");
    let dhcp = "segment = \"local\"\n\n[[switch.dhcp]]\ncidr = \"10.0.2.0/24\"\n\
                server_ip = \"10.0.2.254\"\nserver_mac = \"fa:16:3e:ff:00:02\"\nmtu = 1450\n";
    let with_vm = config(udp_port).replacen("segment = \"local\"\n", dhcp, 1)
        + "\n[[port]]\nname = \"vm1\"\ntype = \"memory\"\nswitch = \"net2\"\n\
           mac = \"fa:16:3e:00:00:01\"\nips = [\"10.0.2.1\"]\n";
    std::fs::write(&toml, &with_vm).expect("write");
    assert_eq!(
        daemon.ctl_ok(&["replace", path(&toml)]),
        "ok: generation 1\n"
    );
    let list = daemon.ctl_ok(&["list"]);
    assert!(list.contains("10.0.2.0/24 server 10.0.2.254"), "{list}");
    let status: Value = serde_json::from_str(&daemon.ctl_ok(&["status", "--json"])).expect("JSON");
    assert_eq!(
        status,
        json!({"ports": [
            {"name": "vxlan0", "type": "vxlan", "up": true},
            {"name": "vm1", "type": "memory", "up": true},
        ]})
    );
    let table = daemon.ctl_ok(&["status"]);
    assert!(
        table.starts_with("PORT    TYPE    UP   REASON\nvxlan0  vxlan   yes"),
        "{table}"
    );

    // JSON, as `list --json` prints it: the same configuration changes nothing.
    let json_file = dir.join("same.json");
    std::fs::write(&json_file, daemon.ctl_ok(&["list", "--json"])).expect("write");
    assert_eq!(
        daemon.ctl_ok(&["replace", path(&json_file)]),
        "ok: nothing to change (generation 1)\n"
    );
    // A bad one names the field and changes nothing.
    std::fs::write(&toml, with_vm.replace("mtu = 1450", "mtu = 10")).expect("write");
    let (code, _, err) = daemon.ctl(&["replace", path(&toml)]);
    assert_eq!(code, 1);
    // TOML is read (and so checked) by the client: the message names the file too.
    assert_eq!(
        err,
        format!(
            "weft: {}: switch \"net2\".dhcp[0].mtu: must be 68-65535, got 10\n",
            toml.display()
        )
    );
    assert_eq!(daemon.ctl_ok(&["list"]), list);
    let counters = daemon.ctl_ok(&["counters"]);
    assert!(
        counters.contains("DHCP") && counters.contains("offers"),
        "{counters}"
    );
    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_set_s_channels_and_a_toml_replace_leave_the_evb_state_alone() {
    // A station port is an AF_PACKET socket: on `lo`, which needs CAP_NET_RAW.
    if switch::device::packet::PacketDevice::open("lo").is_err() {
        return;
    }
    let dir = scratch("schan");
    let agent = "[[switch]]\nname = \"net1\"\nlocal_vlan = 1\nsegment = \"local\"\n\n\
                 [[port]]\nname = \"lo\"\ntype = \"station\"\nvdp_gating = true\n";
    let mut daemon = Daemon::start(&dir, agent);
    assert_eq!(
        daemon.ctl_ok(&[
            "set-s-channels",
            "lo",
            r#"[{"svid":1,"reflective_relay":true},{"svid":20}]"#
        ]),
        "ok: generation 2\n"
    );
    let vsi = json!({"port": "lo.s20", "mac": "52:54:00:00:0b:01", "vlan": 0, "switch": "net1"});
    daemon.ctl_ok(&[
        "request",
        &json!({"op": "associate_vsi", "vsi": vsi}).to_string(),
    ]);
    let list = daemon.ctl_ok(&["list"]);
    assert!(list.contains("S-channels 1 (rr) 20, VDP gating"), "{list}");

    // The agent's file again, with a switch more: no `s_channels`, no `[[vsi]]`, so both stay.
    let toml = dir.join("agent.toml");
    std::fs::write(
        &toml,
        format!("{agent}\n[[switch]]\nname = \"net2\"\nlocal_vlan = 2\nsegment = \"local\"\n"),
    )
    .expect("write");
    assert_eq!(
        daemon.ctl_ok(&["replace", path(&toml)]),
        "ok: generation 4\n"
    );
    let listed: Value = serde_json::from_str(&daemon.ctl_ok(&["list", "--json"])).expect("JSON");
    assert_eq!(
        listed["port"][0]["s_channels"],
        json!([{"svid": 1, "reflective_relay": true}, {"svid": 20, "reflective_relay": false}])
    );
    assert_eq!(listed["vsi"], json!([vsi]));
    assert_eq!(listed["switch"].as_array().map(Vec::len), Some(2));

    let (code, _, err) = daemon.ctl(&["set-s-channels", "lo", "[{svid: 1}]"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("weft: s_channels: not valid JSON"), "{err}");
    let (code, _, err) = daemon.ctl(&["set-s-channels", "lo", r#"[{"svid": 5000}]"#]);
    assert_eq!(code, 1);
    assert_eq!(err, "weft: s_channels[0].svid: must be 1-4094, got 5000\n");
    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());
    let _ = std::fs::remove_dir_all(&dir);
}
