//! The EVB data plane end to end (issue 7 part 4, seed 000 figure 12; root, skips otherwise).
//!
//! A ToR namespace runs a `weft switch` whose station-facing port (the veth to the station)
//! has VDP gating and reflective relay on its default S-channel, a server VM on net1, and
//! `weft evb bridge --switch-socket` programming the gating. A hypervisor namespace runs a
//! `weft switch` whose uplink (the other end of the veth) is a VEPA edge relay with three VMs,
//! and `weft evb station`. Checked: A) before association a VM's pings do not pass the bridge
//! (counted `vsi_not_associated`); B) after `associate` through the station's control socket
//! they do; C) a VSI the bridge refuses stays out; and two VMs on the VEPA station reach each
//! other only through the bridge's reflection, which tcpdump sees on the link both ways.
//!
//! A second ToR and hypervisor pair has the station side's S-channels: the hypervisor's uplink
//! is a VEPA relay on its default channel and a VEB relay on S-channel 20, where a VM on VLAN
//! 300 of `evb2` lives; the ToR's station port gets channel 20 at runtime (`set_s_channels`),
//! gated by a VSI programmed over the switch's control socket. The VM reaches the server only
//! once associated, and tcpdump sees its frames leave with S-tag 20 outside C-tag 300.

#[path = "support/evb.rs"]
mod evbsup;
#[path = "support/netns.rs"]
mod netns;

use std::{path::Path, time::Duration};

use evbsup::{control, pcap_frames, vsi_state, wait_until};
use netns::{Lab, can_run, wait_for};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

const SRV_MAC: &str = "fa:16:3e:00:00:01";
const SRV_IP: &str = "10.0.0.1";
const VMS: [(&str, &str, &str); 3] = [
    (
        "fa:16:3e:00:00:11",
        "10.0.0.11",
        "aaaaaaaa-0000-4000-8000-000000000011",
    ),
    (
        "fa:16:3e:00:00:12",
        "10.0.0.12",
        "aaaaaaaa-0000-4000-8000-000000000012",
    ),
    (
        "fa:16:3e:00:00:13",
        "10.0.0.13",
        "aaaaaaaa-0000-4000-8000-000000000013",
    ),
];
/// The VLAN the bridge's policy gives type 5 (the profile's network, net1 on the bridge).
const VLAN: u16 = 100;

/// One request to a switch's control socket; panics unless it succeeded.
fn call(socket: &Path, request: &Value) -> Value {
    let answer = control(socket, request);
    assert_eq!(answer["ok"], json!(true), "{request} -> {answer}");
    answer["result"].clone()
}

fn drops(socket: &Path, reason: &str) -> u64 {
    call(socket, &json!({"op": "counters"}))["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop counter {reason}"))
}

fn ping(lab: &Lab, netns: &str, to: &str) -> bool {
    lab.try_exec(netns, &["ping", "-c", "1", "-W", "1", to])
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

/// Starts a `weft switch` in `ns` and gives it `config`; returns its control socket.
fn switch(lab: &mut Lab, ns: &str, name: &str, config: &Value) -> std::path::PathBuf {
    let socket = lab.dir.join(format!("{name}.sock"));
    let log = format!("{name}.log");
    lab.spawn(
        ns,
        &[WEFT, "switch", "--control", socket.to_str().expect("path")],
        &log,
    );
    assert!(
        wait_for(&socket, Duration::from_secs(10)),
        "{name}: {}",
        lab.log(&log)
    );
    call(&socket, &json!({"op": "replace", "config": config}));
    socket
}

fn associate(station: &Path, vm: (&str, &str, &str), type_id: u32) {
    let (mac, _, vsi_id) = vm;
    let request = json!({
        "op": "associate", "manager_id": "evmgr1", "type_id": type_id, "type_version": 4,
        "vsi_id": vsi_id, "filters": [{"vlan": 0, "mac_address": mac}],
    });
    let answer = control(station, &request);
    assert_eq!(answer["ok"], true, "{request} -> {answer}");
}

/// A ToR and a hypervisor namespace joined by a veth (IPv6 off on both ends), the ToR's
/// `weft switch` with the server (`SRV_MAC`/`SRV_IP`, in a namespace of its own) on local
/// network net1 and the station-facing port (VDP gating, the default S-channel with
/// reflective relay).
struct Fabric {
    tor: String,
    hv: String,
    /// The hypervisor's end of the veth (its uplink) and the ToR's (its station port).
    st_if: String,
    br_if: String,
    /// The ToR switch's control socket.
    bridge_switch: std::path::PathBuf,
}

fn fabric(lab: &mut Lab) -> Fabric {
    let tor = lab.netns("br");
    let hv = lab.netns("hv");
    let srv_ns = lab.netns("sv");
    no_ipv6(lab, &srv_ns);
    let (st_if, br_if) = (lab.name("s"), lab.name("b"));
    lab.veth(&hv, &st_if, &tor, &br_if);
    for (ns, dev) in [(&hv, &st_if), (&tor, &br_if)] {
        let _ = lab.try_exec(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ],
        );
    }
    let srv_tap = lab.name("ts");
    let bridge_switch = switch(
        lab,
        &tor,
        "switch-br",
        &json!({
            "switch": [{"name": "net1", "local_vlan": 1, "segment": "local"}],
            "port": [
                {"name": srv_tap, "type": "tap", "switch": "net1", "mac": SRV_MAC,
                 "ips": [SRV_IP], "netns": srv_ns},
                {"name": br_if, "type": "station", "vdp_gating": true,
                 "s_channels": [{"svid": 1, "reflective_relay": true}]},
            ],
        }),
    );
    address_vm(lab, &srv_ns, SRV_MAC, SRV_IP);
    Fabric {
        tor,
        hv,
        st_if,
        br_if,
        bridge_switch,
    }
}

/// Gives the `eth0` (a switch's TAP) in namespace `ns` its port's MAC and `ip`/24, and brings
/// it up.
fn address_vm(lab: &Lab, ns: &str, mac: &str, ip: &str) {
    lab.exec(ns, &["ip", "link", "set", "eth0", "address", mac]);
    lab.exec(
        ns,
        &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
    );
    lab.exec(ns, &["ip", "link", "set", "eth0", "up"]);
}

/// An 802.1Q C-tag's TPID, and an 802.1ad S-tag's.
const C_TAG: u16 = 0x8100;
const S_TAG: u16 = 0x88a8;

/// ICMP frames in `pcap` from MAC `src` (to `dst`, if given) whose VLAN tags are exactly `tags`
/// (TPID, VID), outermost first.
fn icmp_frames(pcap: &Path, src: &str, dst: Option<&str>, tags: &[(u16, u16)]) -> usize {
    let mac = |text: &str| text.parse::<wire::MacAddr>().expect("a MAC").0;
    let (src, dst) = (mac(src), dst.map(mac));
    let word = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let ip = 14 + 4 * tags.len();
    pcap_frames(pcap)
        .iter()
        .filter(|f| {
            f.len() > ip + 20
                && f[6..12] == src
                && dst.is_none_or(|dst| f[0..6] == dst)
                && tags.iter().enumerate().all(|(k, &(tpid, vid))| {
                    word(f, 12 + 4 * k) == tpid && word(f, 14 + 4 * k) & 0x0fff == vid
                })
                && word(f, ip - 2) == 0x0800
                && f[ip + 9] == 1
        })
        .count()
}

/// ICMP echo frames from `src` to `dst` MAC with an 802.1Q tag `VLAN`.
fn vlan_icmp_frames(pcap: &Path, src: &str, dst: &str) -> usize {
    icmp_frames(pcap, src, Some(dst), &[(C_TAG, VLAN)])
}

#[test]
fn figure_12_gating_and_vepa_reflection_through_weft_switches() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let Fabric {
        tor,
        hv,
        st_if,
        br_if,
        bridge_switch,
    } = fabric(&mut lab);
    let vm_ns: Vec<String> = (1..=3).map(|i| lab.netns(&format!("v{i}"))).collect();
    for ns in &vm_ns {
        no_ipv6(&lab, ns);
    }

    // The hypervisor: three VMs on net1, whose VLAN 100 leaves by the VEPA uplink.
    let taps: Vec<String> = (1..=3).map(|i| lab.name(&format!("t{i}"))).collect();
    let mut ports: Vec<Value> = VMS
        .iter()
        .zip(&taps)
        .zip(&vm_ns)
        .map(|(((mac, ip, _), tap), ns)| {
            json!({"name": tap, "type": "tap", "switch": "net1", "mac": mac, "ips": [ip],
                   "netns": ns})
        })
        .collect();
    ports.push(
        json!({"name": st_if, "type": "uplink", "physical_network": "evb",
                      "relay": "vepa"}),
    );
    let _station_switch = switch(
        &mut lab,
        &hv,
        "switch-hv",
        &json!({
            "switch": [{"name": "net1", "local_vlan": 1, "segment": format!("vlan:evb:{VLAN}")}],
            "port": ports,
        }),
    );
    for ((mac, ip, _), ns) in VMS.iter().zip(&vm_ns) {
        address_vm(&lab, ns, mac, ip);
    }

    // The EVB daemons: the bridge programs the ToR switch's gating.
    let policy = lab.dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!("[[vsi_type]]\ntype_id = 5\nvlan = {VLAN}\n"),
    )
    .expect("policy");
    let bridge = lab.dir.join("bridge.sock");
    lab.spawn(
        &tor,
        &[
            WEFT,
            "evb",
            "bridge",
            "--iface",
            &br_if,
            "--control",
            bridge.to_str().expect("path"),
            "--policy",
            policy.to_str().expect("path"),
            "--switch-socket",
            bridge_switch.to_str().expect("path"),
            "--switch-network",
            &format!("{VLAN}=net1"),
        ],
        "bridge.log",
    );
    let station = lab.dir.join("station.sock");
    lab.spawn(
        &hv,
        &[
            WEFT,
            "evb",
            "station",
            "--iface",
            &st_if,
            "--control",
            station.to_str().expect("path"),
        ],
        "station.log",
    );
    for socket in [&bridge, &station] {
        assert!(
            wait_for(socket, Duration::from_secs(10)),
            "bridge: {}\nstation: {}",
            lab.log("bridge.log"),
            lab.log("station.log")
        );
    }

    // A: no association, no traffic.
    assert!(!ping(&lab, &vm_ns[0], SRV_IP), "passed before association");
    assert!(
        drops(&bridge_switch, "vsi_not_associated") > 0,
        "bridge {}\nstation {}",
        call(&bridge_switch, &json!({"op": "counters"})),
        call(&_station_switch, &json!({"op": "counters"}))
    );

    // B: associated (the profile gives VLAN 100 on net1): traffic flows.
    associate(&station, VMS[0], 5);
    assert!(
        wait_until(Duration::from_secs(10), || vsi_state(&station, VMS[0].2)
            .as_deref()
            == Some("associated")),
        "station: {}\nbridge: {}",
        lab.log("station.log"),
        lab.log("bridge.log")
    );
    assert!(
        wait_until(Duration::from_secs(15), || ping(&lab, &vm_ns[0], SRV_IP)),
        "no ping after association; bridge: {}\nswitch: {}",
        lab.log("bridge.log"),
        lab.log("switch-br.log")
    );
    let listed = call(&bridge_switch, &json!({"op": "list"}));
    assert_eq!(
        listed["vsi"],
        json!([{"port": format!("{br_if}.s1"), "mac": VMS[0].0, "vlan": VLAN, "switch": "net1"}])
    );

    // C: refused (type 99 is not in the policy): no traffic.
    associate(&station, VMS[2], 99);
    let before = drops(&bridge_switch, "vsi_not_associated");
    assert!(
        !ping(&lab, &vm_ns[2], SRV_IP),
        "a refused VSI's ping passed"
    );
    assert!(drops(&bridge_switch, "vsi_not_associated") > before);
    assert_eq!(vsi_state(&station, VMS[2].2), None);

    // VEPA: vm1 and vm2 on the same station reach each other only by the bridge's reflective
    // relay. Captured on the bridge's end of the link, in and out.
    let (pcap_in, pcap_out) = (lab.dir.join("in.pcap"), lab.dir.join("out.pcap"));
    for (pcap, direction, log) in [(&pcap_in, "in", "in.log"), (&pcap_out, "out", "out.log")] {
        lab.spawn(
            &tor,
            &[
                "tcpdump",
                "-i",
                &br_if,
                "-U",
                "-Q",
                direction,
                "-w",
                pcap.to_str().expect("path"),
                "icmp or (vlan and icmp)",
            ],
            log,
        );
        assert!(
            wait_until(Duration::from_secs(10), || lab
                .log(log)
                .contains("listening on")),
            "tcpdump: {}",
            lab.log(log)
        );
    }
    associate(&station, VMS[1], 5);
    assert!(
        wait_until(Duration::from_secs(15), || ping(&lab, &vm_ns[0], VMS[1].1)),
        "vm1 cannot reach vm2 through the bridge: {}",
        lab.log("switch-br.log")
    );
    let (vm1, vm2) = (VMS[0].0, VMS[1].0);
    assert!(
        wait_until(Duration::from_secs(5), || {
            vlan_icmp_frames(&pcap_in, vm1, vm2) > 0 && vlan_icmp_frames(&pcap_out, vm1, vm2) > 0
        }),
        "vm1 -> vm2 seen from the station {} times, reflected {} times",
        vlan_icmp_frames(&pcap_in, vm1, vm2),
        vlan_icmp_frames(&pcap_out, vm1, vm2)
    );
    assert!(
        vlan_icmp_frames(&pcap_out, vm2, vm1) > 0,
        "the reply is reflected too"
    );

    // De-association shuts the VSI out again.
    let answer = control(&station, &json!({"op": "deassociate", "vsi_id": VMS[0].2}));
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(
        wait_until(Duration::from_secs(10), || call(
            &bridge_switch,
            &json!({"op": "list"})
        )["vsi"]
            .as_array()
            .is_none_or(|list| list.iter().all(|v| v["mac"] != VMS[0].0))),
        "still gated in: {}",
        lab.log("bridge.log")
    );
    assert!(
        !ping(&lab, &vm_ns[0], SRV_IP),
        "passed after de-association"
    );
}

/// The VM behind S-channel 20 of the hypervisor's uplink: its MAC and address.
const CHANNEL_VM: (&str, &str) = ("fa:16:3e:00:00:21", "10.0.0.21");
/// The S-VLAN of that channel, and the C-VLAN of the VM's network (`vlan:evb2:300`).
const SVID: u16 = 20;
const CVLAN: u16 = 300;

/// The station side's S-channels: the hypervisor's uplink carries the default channel (a VEPA
/// relay for `evb`) and S-channel 20 (a VEB relay for `evb2`); a VM on `vlan:evb2:300` reaches
/// the server on the ToR through channel 20, which the ToR's station port gets at runtime
/// (`set_s_channels`) and gates with a VSI programmed straight over the control socket.
#[test]
fn a_vm_behind_an_uplink_s_channel_reaches_the_bridge_s_tagged() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    // The ToR's station port has only the default channel yet.
    let Fabric {
        tor: _,
        hv,
        st_if,
        br_if,
        bridge_switch,
    } = fabric(&mut lab);
    let vm_ns = lab.netns("v1");
    no_ipv6(&lab, &vm_ns);

    // The hypervisor: the uplink's default channel is a VEPA relay for evb (VLAN 100 there),
    // channel 20 a VEB relay for evb2, where the VM's network is VLAN 300.
    let (vm_mac, vm_ip) = CHANNEL_VM;
    let vm_tap = lab.name("t1");
    let station_switch = switch(
        &mut lab,
        &hv,
        "switch-hv",
        &json!({
            "switch": [
                {"name": "evbnet", "local_vlan": 1, "segment": format!("vlan:evb:{VLAN}")},
                {"name": "net20", "local_vlan": 2, "segment": format!("vlan:evb2:{CVLAN}")},
            ],
            "port": [
                {"name": vm_tap, "type": "tap", "switch": "net20", "mac": vm_mac,
                 "ips": [vm_ip], "netns": vm_ns},
                {"name": st_if, "type": "uplink", "physical_network": "evb", "relay": "vepa",
                 "s_channels": [{"svid": SVID, "physical_network": "evb2", "relay": "veb"}]},
            ],
        }),
    );
    address_vm(&lab, &vm_ns, vm_mac, vm_ip);

    // CDCP's part, by hand: channel 20 on the ToR's live station port.
    let channels = json!([{"svid": 1, "reflective_relay": true},
                          {"svid": SVID, "reflective_relay": false}]);
    let result = call(
        &bridge_switch,
        &json!({"op": "set_s_channels", "port": br_if, "s_channels": channels}),
    );
    assert_eq!(result["changed"], json!(true), "{result}");
    let status = call(&bridge_switch, &json!({"op": "status"}));
    assert!(
        status["ports"].as_array().is_some_and(|ports| ports
            .iter()
            .any(|p| p["name"] == json!(br_if) && p["up"] == json!(true))),
        "{status}"
    );

    // Everything the VM sends or gets, on the hypervisor's end of the link.
    let pcap = lab.dir.join("channel.pcap");
    lab.spawn(
        &hv,
        &[
            "tcpdump",
            "--immediate-mode",
            "-Z",
            "root",
            "-i",
            &st_if,
            "-U",
            "-n",
            "-w",
            pcap.to_str().expect("path"),
            &format!("ether host {vm_mac}"),
        ],
        "channel.log",
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .log("channel.log")
            .contains("listening on")),
        "tcpdump: {}",
        lab.log("channel.log")
    );

    // No association, no traffic: the ToR's channel 20 gates the VM out.
    assert!(!ping(&lab, &vm_ns, SRV_IP), "passed before association");
    assert!(
        drops(&bridge_switch, "vsi_not_associated") > 0,
        "bridge {}\nstation {}",
        call(&bridge_switch, &json!({"op": "counters"})),
        call(&station_switch, &json!({"op": "counters"}))
    );

    // Associated on channel 20 with C-VLAN 300 (what VDP would program): traffic flows.
    let vsi = json!({"port": format!("{br_if}.s{SVID}"), "mac": vm_mac, "vlan": CVLAN,
                     "switch": "net1"});
    call(&bridge_switch, &json!({"op": "associate_vsi", "vsi": vsi}));
    assert!(
        wait_until(Duration::from_secs(15), || ping(&lab, &vm_ns, SRV_IP)),
        "no ping after association; bridge {}\nstation {}\n{}",
        call(&bridge_switch, &json!({"op": "counters"})),
        call(&station_switch, &json!({"op": "counters"})),
        lab.log("switch-br.log")
    );
    // On the wire the VM's frames carry S-tag 20 outside C-tag 300.
    assert!(
        wait_until(Duration::from_secs(5), || icmp_frames(
            &pcap,
            vm_mac,
            None,
            &[(S_TAG, SVID), (C_TAG, CVLAN)]
        ) > 0),
        "no ICMP from the VM with S-tag {SVID} and C-tag {CVLAN} in {} frames",
        pcap_frames(&pcap).len()
    );
    assert_eq!(drops(&station_switch, "unknown_s_channel"), 0);
}
