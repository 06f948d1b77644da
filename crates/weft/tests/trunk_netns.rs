//! VLAN-aware VMs end to end (seed 002; root, skips otherwise): a real `weft switch`, started
//! empty and programmed with `replace` as an agent would, with a trunk VM and plain VMs on the
//! parent's and the subports' networks.
//!
//! The test plays Nova for the plain VMs (their TAP becomes `eth0`) and the lab for the trunk
//! VM: its TAP stays in the VM's namespace as `wire0`, the NIC's wire, and `weft lab vm-mux`
//! gives the VM `eth0` and VLAN interfaces `eth0.N` whose frames cross the wire 802.1Q-tagged
//! (this kernel has no 8021q). Checked: untagged ping on the parent network; ping through
//! `eth0.1` to subport 1's network, seen on the wire by tcpdump as `802.1Q` `vlan 1` frames
//! like the seed's capture; DHCP on `eth0.1` answered by the switch with the subport's
//! address; an unknown tag and a spoofed MAC dropped and counted; a subport added and removed
//! live while pings on the parent and on subport 1 lose nothing.

#[path = "support/netns.rs"]
mod netns;

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use netns::{Lab, can_run, wait_for};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

const PARENT_MAC: &str = "fa:16:3e:90:7a:ca";
const PARENT_IP: &str = "10.0.4.5";
const SUB1_MAC: &str = "fa:16:3e:cc:b9:27";
const SUB1_IP: &str = "10.0.5.7";
const SUB2_MAC: &str = "fa:16:3e:25:d2:c9";
const SUB2_IP: &str = "10.0.6.7";
const DHCP_SERVER: &str = "10.0.5.2";
const DHCP_MAC: &str = "fa:16:3e:cc:4b:83";

/// A plain VM: its namespace, TAP, MAC and address.
struct Plain {
    netns: String,
    tap: String,
    mac: &'static str,
    ip: &'static str,
    switch: &'static str,
}

/// One JSON request on a Unix socket (the switch's control socket or the multiplexer's).
fn call(socket: &Path, request: &Value) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    writeln!(stream, "{request}").expect("send");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("answer");
    let answer: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(answer["ok"], json!(true), "{request} -> {answer}");
    answer["result"].clone()
}

/// The switch configuration the agent would send: net0 (the parent's), net1 (subport 1's,
/// with DHCP), net2; the trunk's TAP with `subports`, and each plain VM's TAP.
fn config(trunk_tap: &str, subports: &[(u16, &str, &str, &str)], plain: &[&Plain]) -> Value {
    let subports: Vec<Value> = subports
        .iter()
        .map(|(vlan, switch, mac, ip)| {
            json!({"vlan": vlan, "switch": switch, "mac": mac, "ips": [ip]})
        })
        .collect();
    let mut ports = vec![json!({
        "name": trunk_tap, "type": "tap", "switch": "net0", "mac": PARENT_MAC,
        "ips": [PARENT_IP], "subports": subports,
    })];
    ports.extend(plain.iter().map(|vm| {
        json!({"name": vm.tap, "type": "tap", "switch": vm.switch, "mac": vm.mac, "ips": [vm.ip]})
    }));
    json!({
        "switch": [
            {"name": "net0", "local_vlan": 100, "segment": "local"},
            {"name": "net1", "local_vlan": 101, "segment": "local",
             "dhcp": [{"cidr": "10.0.5.0/24", "server_ip": DHCP_SERVER, "server_mac": DHCP_MAC,
                       "lease_secs": 600}]},
            {"name": "net2", "local_vlan": 102, "segment": "local"},
        ],
        "port": ports,
    })
}

fn replace(control: &Path, config: &Value) -> Value {
    call(control, &json!({"op": "replace", "config": config}))
}

fn drops(control: &Path, reason: &str) -> u64 {
    call(control, &json!({"op": "counters"}))["drops"][reason]
        .as_u64()
        .expect("a drop counter")
}

/// Waits until `check` holds, at most `timeout`.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

fn no_ipv6(lab: &Lab, netns: &str) {
    lab.exec(
        netns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
}

fn ping(lab: &Lab, netns: &str, iface: &str, to: &str) -> bool {
    lab.try_exec(
        netns,
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", iface, to],
    )
}

/// The one line of ping's summary with the loss, once ping has finished.
fn ping_summary(lab: &Lab, log: &str) -> Option<String> {
    lab.log(log)
        .lines()
        .find(|l| l.contains("packet loss"))
        .map(str::to_owned)
}

#[test]
fn a_trunk_vm_talks_untagged_and_tagged_and_subports_come_and_go_live() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.netns("h");
    let trunk_ns = lab.netns("vt");
    let trunk_tap = lab.name("tt");
    let parent_peer = Plain {
        netns: lab.netns("v0"),
        tap: lab.name("t0"),
        mac: "fa:16:3e:00:04:0a",
        ip: "10.0.4.10",
        switch: "net0",
    };
    let sub1_peer = Plain {
        netns: lab.netns("v1"),
        tap: lab.name("t1"),
        mac: "fa:16:3e:00:05:0b",
        ip: "10.0.5.11",
        switch: "net1",
    };
    let sub2_peer = Plain {
        netns: lab.netns("v2"),
        tap: lab.name("t2"),
        mac: "fa:16:3e:00:06:0c",
        ip: "10.0.6.12",
        switch: "net2",
    };
    let plain = [&parent_peer, &sub1_peer, &sub2_peer];
    for ns in [
        &trunk_ns,
        &parent_peer.netns,
        &sub1_peer.netns,
        &sub2_peer.netns,
    ] {
        no_ipv6(&lab, ns);
    }

    // The switch starts empty and is programmed through its control socket.
    let control = lab.dir.join("switch.sock");
    lab.spawn(
        &host,
        &[WEFT, "switch", "--control", control.to_str().expect("path")],
        "switch.log",
    );
    assert!(
        wait_for(&control, Duration::from_secs(10)),
        "switch: {}",
        lab.log("switch.log")
    );
    let one_subport = config(&trunk_tap, &[(1, "net1", SUB1_MAC, SUB1_IP)], &plain);
    replace(&control, &one_subport);
    let listed = call(&control, &json!({"op": "list"}));
    assert_eq!(
        listed["port"][0]["subports"][0],
        json!({"vlan": 1, "switch": "net1", "mac": SUB1_MAC, "ips": [SUB1_IP],
               "allowed_pairs": [], "port_security": true})
    );

    // Nova for the plain VMs: the TAP becomes eth0, with the port's MAC and address.
    for vm in plain {
        lab.exec(
            &host,
            &[
                "ip", "link", "set", &vm.tap, "netns", &vm.netns, "name", "eth0",
            ],
        );
        lab.exec(
            &vm.netns,
            &["ip", "link", "set", "eth0", "address", vm.mac, "up"],
        );
        lab.addr(&vm.netns, "eth0", &format!("{}/24", vm.ip));
    }
    // The lab for the trunk VM: the TAP is the NIC's wire; the multiplexer makes eth0.
    lab.exec(
        &host,
        &[
            "ip", "link", "set", &trunk_tap, "netns", &trunk_ns, "name", "wire0",
        ],
    );
    lab.exec(
        &trunk_ns,
        &[
            "sysctl",
            "-qw",
            "net.ipv4.conf.wire0.arp_ignore=8",
            "net.ipv4.conf.wire0.rp_filter=1",
        ],
    );
    let mux = lab.dir.join("mux.sock");
    lab.spawn(
        &trunk_ns,
        &[
            WEFT,
            "lab",
            "vm-mux",
            "--wire",
            "wire0",
            "--link",
            "eth0",
            "--mac",
            PARENT_MAC,
            "--socket",
            mux.to_str().expect("path"),
        ],
        "mux.log",
    );
    assert!(
        wait_for(&mux, Duration::from_secs(10)),
        "mux: {}",
        lab.log("mux.log")
    );
    lab.addr(&trunk_ns, "eth0", &format!("{PARENT_IP}/24"));

    // 1. Untagged: the parent's network.
    assert!(
        ping(&lab, &trunk_ns, "eth0", parent_peer.ip),
        "untagged ping on net0\nmux: {}\nswitch: {}",
        lab.log("mux.log"),
        call(&control, &json!({"op": "counters"}))
    );

    // 2. Seed step 7: eth0.1 with subport 1's MAC. Step 8: DHCP on it, answered by the
    // switch with subport 1's address.
    call(
        &mux,
        &json!({"op": "add", "name": "eth0.1", "vlan": 1, "mac": SUB1_MAC}),
    );
    let links = lab.exec(&trunk_ns, &["ip", "link", "show", "eth0.1"]);
    assert!(links.contains(SUB1_MAC) && links.contains("UP"), "{links}");
    let script = lab.dir.join("dhcp.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase $reason in\n  PREINIT) ip link set dev \"$interface\" up ;;\n  \
         BOUND|RENEW|REBIND|REBOOT) ip -4 addr flush dev \"$interface\"; \
         ip -4 addr add \"$new_ip_address/24\" dev \"$interface\" ;;\nesac\nexit 0\n",
    )
    .expect("script");
    netns::run(&["chmod", "755", script.to_str().expect("path")]);
    let dir = lab.dir.clone();
    let file = |name: &str| dir.join(name).to_str().expect("path").to_owned();
    let dhclient = lab.spawn(
        &trunk_ns,
        &[
            "dhclient",
            "-d",
            "-4",
            "-v",
            "-sf",
            script.to_str().expect("path"),
            "-pf",
            &file("dhclient.pid"),
            "-lf",
            &file("dhclient.leases"),
            "eth0.1",
        ],
        "dhclient.log",
    );
    let leased = eventually(Duration::from_secs(30), || {
        lab.exec(&trunk_ns, &["ip", "-4", "addr", "show", "dev", "eth0.1"])
            .contains(&format!("inet {SUB1_IP}/24"))
    });
    assert!(
        leased,
        "DHCP on eth0.1
{}
{}",
        lab.log("dhclient.log"),
        call(&control, &json!({"op": "counters"}))
    );
    let counters = call(&control, &json!({"op": "counters"}));
    assert!(counters["dhcp"]["acks"].as_u64() >= Some(1), "{counters}");
    assert!(
        lab.log("dhclient.log")
            .contains(&format!("DHCPACK of {SUB1_IP} from {DHCP_SERVER}")),
        "{}",
        lab.log("dhclient.log")
    );
    lab.stop(dhclient);

    // 3. Seed step 9: ping through eth0.1; the wire shows 802.1Q vlan 1 frames.
    let capture = file("wire0.pcap");
    let tcpdump = lab.spawn(
        &trunk_ns,
        &[
            "tcpdump",
            "--immediate-mode",
            "-U",
            "-n",
            "-i",
            "wire0",
            "-w",
            &capture,
        ],
        "tcpdump.log",
    );
    assert!(
        eventually(Duration::from_secs(5), || lab
            .log("tcpdump.log")
            .contains("listening")),
        "tcpdump: {}",
        lab.log("tcpdump.log")
    );
    assert!(
        ping(&lab, &trunk_ns, "eth0.1", sub1_peer.ip),
        "tagged ping on net1\nmux: {}\ncounters: {}",
        lab.log("mux.log"),
        call(&control, &json!({"op": "counters"}))
    );
    lab.stop(tcpdump);
    let seen = netns::run(&["tcpdump", "-e", "-n", "-r", &capture]);
    eprintln!("wire0, as tcpdump -e shows it:\n{seen}");
    let request = format!("{SUB1_IP} > {}: ICMP echo request", sub1_peer.ip);
    let reply = format!("{} > {SUB1_IP}: ICMP echo reply", sub1_peer.ip);
    for (what, needle) in [("request", &request), ("reply", &reply)] {
        assert!(
            seen.lines().any(|l| l.contains("ethertype 802.1Q (0x8100)")
                && l.contains("vlan 1,")
                && l.contains(needle.as_str())),
            "no tagged echo {what} on the wire:\n{seen}\ntcpdump: {}",
            lab.log("tcpdump.log")
        );
    }
    assert!(
        seen.lines().any(
            |l| l.starts_with(&format!("{SUB1_MAC} > {}", sub1_peer.mac))
                || l.contains(&format!(" {SUB1_MAC} > {}", sub1_peer.mac))
        ),
        "frames from subport 1's MAC:\n{seen}"
    );

    // 4. A tag no subport has: dropped and counted.
    let unknown = drops(&control, "unknown_subport");
    call(
        &mux,
        &json!({"op": "add", "name": "eth0.9", "vlan": 9, "mac": "fa:16:3e:00:09:07"}),
    );
    lab.addr(&trunk_ns, "eth0.9", "10.0.9.7/24");
    assert!(!ping(&lab, &trunk_ns, "eth0.9", "10.0.9.1"));
    assert!(drops(&control, "unknown_subport") > unknown);
    call(&mux, &json!({"op": "del", "name": "eth0.9"}));
    assert!(!lab.try_exec(&trunk_ns, &["ip", "link", "show", "eth0.9"]));

    // 5. A spoofed MAC on eth0.1: dropped and counted; subport 1 works again with its own.
    let spoofed = drops(&control, "spoofed_mac");
    lab.exec(
        &trunk_ns,
        &[
            "ip",
            "link",
            "set",
            "eth0.1",
            "address",
            "fa:16:3e:de:ad:01",
        ],
    );
    assert!(!ping(&lab, &trunk_ns, "eth0.1", sub1_peer.ip));
    assert!(drops(&control, "spoofed_mac") > spoofed);
    lab.exec(
        &trunk_ns,
        &["ip", "link", "set", "eth0.1", "address", SUB1_MAC],
    );
    lab.exec(&sub1_peer.netns, &["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(ping(&lab, &trunk_ns, "eth0.1", sub1_peer.ip));

    // 6. Subport 2 added and removed live while the parent and subport 1 keep pinging.
    let steady = |lab: &mut Lab, iface: &str, to: &str, log: &str| {
        lab.spawn(
            &trunk_ns,
            &[
                "ping", "-c", "100", "-i", "0.05", "-W", "1", "-I", iface, to,
            ],
            log,
        );
    };
    steady(&mut lab, "eth0", parent_peer.ip, "ping-parent.log");
    steady(&mut lab, "eth0.1", sub1_peer.ip, "ping-sub1.log");
    std::thread::sleep(Duration::from_millis(500));
    let two_subports = config(
        &trunk_tap,
        &[
            (1, "net1", SUB1_MAC, SUB1_IP),
            (2, "net2", SUB2_MAC, SUB2_IP),
        ],
        &plain,
    );
    assert_eq!(replace(&control, &two_subports)["changed"], json!(true));
    call(
        &mux,
        &json!({"op": "add", "name": "eth0.2", "vlan": 2, "mac": SUB2_MAC}),
    );
    lab.addr(&trunk_ns, "eth0.2", &format!("{SUB2_IP}/24"));
    assert!(
        ping(&lab, &trunk_ns, "eth0.2", sub2_peer.ip),
        "subport 2, added live"
    );
    let unknown = drops(&control, "unknown_subport");
    replace(&control, &one_subport);
    assert!(
        !ping(&lab, &trunk_ns, "eth0.2", sub2_peer.ip),
        "subport 2 is gone"
    );
    assert!(drops(&control, "unknown_subport") > unknown);
    for log in ["ping-parent.log", "ping-sub1.log"] {
        assert!(
            eventually(Duration::from_secs(15), || ping_summary(&lab, log)
                .is_some()),
            "{log} did not finish: {}",
            lab.log(log)
        );
        let summary = ping_summary(&lab, log).unwrap_or_default();
        assert!(
            summary.contains("100 packets transmitted, 100 received, 0% packet loss"),
            "{log}: {summary}"
        );
    }
    // The trunk's TAP was never reopened: the switch still has it up, and so does the VM.
    let status = call(&control, &json!({"op": "status"}));
    assert_eq!(status["ports"][0]["up"], json!(true), "{status}");
}
