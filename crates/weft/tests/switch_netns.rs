//! `weft switch` on real namespaces (issue 3 §7): two "hypervisor" namespaces joined by an
//! underlay veth, each running the real `weft switch` binary, each with a VM namespace whose
//! eth0 is a TAP of its switch. Runs as root (CI); skips with a message otherwise.

#[path = "support/netns.rs"]
mod netns;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use netns::{Lab, can_run, wait_for};
use wire::{EtherType, MacAddr};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// One VM: its namespace, port name on the switch, MAC and address.
struct Vm {
    netns: String,
    port: String,
    mac: MacAddr,
    ip: &'static str,
}

/// One host: namespace, control socket, the switch process index.
struct Host {
    netns: String,
    control: PathBuf,
}

/// How the two hosts' switches connect a network.
#[derive(Clone, Copy)]
enum Net {
    Vxlan(u32),
    Nvgre(u32),
    Gre(u32),
    Vlan(u16),
}

impl Net {
    fn segment(self) -> String {
        match self {
            Self::Vxlan(id) => format!("vxlan:{id}"),
            Self::Nvgre(id) => format!("nvgre:{id}"),
            Self::Gre(id) => format!("gre:{id}"),
            Self::Vlan(vid) => format!("vlan:physnet1:{vid}"),
        }
    }
}

fn mac(tenant: u8, n: u8) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, 0, tenant, n])
}

/// Writes one host's TOML: its switches, VM ports, tunnel/uplink ports and records.
fn host_config(
    lab: &Lab,
    host: &str,
    underlay_ip: &str,
    remote_ip: &str,
    nets: &[(Net, &Vm)],
    records: &[(Net, &Vm)],
    uplink: Option<&str>,
) -> PathBuf {
    let mut toml = String::new();
    for (i, (net, vm)) in nets.iter().enumerate() {
        let flood = if matches!(net, Net::Vlan(_)) {
            String::new()
        } else {
            format!("\"{remote_ip}\"")
        };
        writeln!(
            toml,
            "[[switch]]\nname = \"net{i}\"\nlocal_vlan = {}\nsegment = \"{}\"\nflood = [{flood}]\n",
            i + 1,
            net.segment()
        )
        .unwrap();
        writeln!(
            toml,
            "[[port]]\nname = \"{}\"\ntype = \"tap\"\nswitch = \"net{i}\"\nmac = \"{}\"\nips = [\"{}\"]\nnetns = \"{}\"\nnetns_ifname = \"eth0\"\n",
            vm.port, vm.mac, vm.ip, vm.netns
        )
        .unwrap();
    }
    if nets.iter().any(|(n, _)| matches!(n, Net::Vxlan(_))) {
        writeln!(
            toml,
            "[[port]]\nname = \"vxlan0\"\ntype = \"vxlan\"\nlocal_ip = \"{underlay_ip}\"\n"
        )
        .unwrap();
    }
    if nets
        .iter()
        .any(|(n, _)| matches!(n, Net::Nvgre(_) | Net::Gre(_)))
    {
        writeln!(
            toml,
            "[[port]]\nname = \"gre0\"\ntype = \"gre\"\nlocal_ip = \"{underlay_ip}\"\n"
        )
        .unwrap();
    }
    if let Some(uplink) = uplink {
        writeln!(
            toml,
            "[[port]]\nname = \"{uplink}\"\ntype = \"uplink\"\nphysical_network = \"physnet1\"\n"
        )
        .unwrap();
    }
    for (net, vm) in records {
        let i = nets
            .iter()
            .position(|(n, _)| n.segment() == net.segment())
            .expect("record's network is local too");
        writeln!(
            toml,
            "[[record]]\nswitch = \"net{i}\"\nip = \"{}\"\nmac = \"{}\"\nremote = \"{remote_ip}\"\n",
            vm.ip, vm.mac
        )
        .unwrap();
    }
    let path = lab.dir.join(format!("{host}.toml"));
    std::fs::write(&path, toml).expect("config");
    path
}

/// Starts `weft switch` in a host namespace and waits for its control socket.
fn start_switch(lab: &mut Lab, netns: &str, config: &Path) -> Host {
    let control = lab.dir.join(format!("{netns}.sock"));
    let config = config.to_str().unwrap().to_owned();
    lab.spawn(
        netns,
        &[
            WEFT,
            "switch",
            "--config",
            &config,
            "--control",
            control.to_str().unwrap(),
        ],
        &format!("{netns}.log"),
    );
    assert!(
        wait_for(&control, Duration::from_secs(10)),
        "switch in {netns} did not start: {}",
        lab.log(&format!("{netns}.log"))
    );
    Host {
        netns: netns.to_owned(),
        control,
    }
}

/// Gives a VM's eth0 (the TAP the switch moved in) its MAC and address.
fn bring_up(lab: &Lab, vm: &Vm) {
    let mac = vm.mac.to_string();
    lab.exec(&vm.netns, &["ip", "link", "set", "eth0", "address", &mac]);
    lab.exec(
        &vm.netns,
        &["ip", "addr", "add", &format!("{}/24", vm.ip), "dev", "eth0"],
    );
    lab.exec(&vm.netns, &["ip", "link", "set", "eth0", "up"]);
}

fn ping(lab: &Lab, vm: &Vm, target: &str) -> bool {
    lab.try_exec(
        &vm.netns,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", target],
    )
}

fn ctl(host: &Host, args: &[&str]) -> String {
    let mut full = vec![
        WEFT,
        "switch",
        "ctl",
        "--control",
        host.control.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    netns::run(&full)
}

/// Two hosts with one VM each on network `net`, the underlay on IPv4 or IPv6.
struct Pair {
    lab: Lab,
    hosts: [Host; 2],
    vms: [Vm; 2],
    underlay: [String; 2],
}

fn pair(net: Net, v6: bool, records: bool) -> Pair {
    let mut lab = Lab::new();
    let h1 = lab.netns("h1");
    let h2 = lab.netns("h2");
    let vm1 = Vm {
        netns: lab.netns("v1"),
        port: lab.name("t1"),
        mac: mac(1, 1),
        ip: "10.0.0.1",
    };
    let vm2 = Vm {
        netns: lab.netns("v2"),
        port: lab.name("t2"),
        mac: mac(1, 2),
        ip: "10.0.0.2",
    };
    let (u1, u2) = (lab.name("u1"), lab.name("u2"));
    lab.veth(&h1, &u1, &h2, &u2);
    let (ip1, ip2, cidr) = if v6 {
        ("2001:db8:1::1", "2001:db8:1::2", 64)
    } else {
        ("192.0.2.1", "192.0.2.2", 24)
    };
    lab.addr(&h1, &u1, &format!("{ip1}/{cidr}"));
    lab.addr(&h2, &u2, &format!("{ip2}/{cidr}"));
    let uplinks = if let Net::Vlan(_) = net {
        let (p1, p2) = (lab.name("p1"), lab.name("p2"));
        lab.veth(&h1, &p1, &h2, &p2);
        (Some(p1), Some(p2))
    } else {
        (None, None)
    };
    let rec1: Vec<(Net, &Vm)> = if records { vec![(net, &vm2)] } else { vec![] };
    let rec2: Vec<(Net, &Vm)> = if records { vec![(net, &vm1)] } else { vec![] };
    let c1 = host_config(
        &lab,
        "h1",
        ip1,
        ip2,
        &[(net, &vm1)],
        &rec1,
        uplinks.0.as_deref(),
    );
    let c2 = host_config(
        &lab,
        "h2",
        ip2,
        ip1,
        &[(net, &vm2)],
        &rec2,
        uplinks.1.as_deref(),
    );
    let s1 = start_switch(&mut lab, &h1, &c1);
    let s2 = start_switch(&mut lab, &h2, &c2);
    bring_up(&lab, &vm1);
    bring_up(&lab, &vm2);
    Pair {
        lab,
        hosts: [s1, s2],
        vms: [vm1, vm2],
        underlay: [u1, u2],
    }
}

fn assert_pings(net: Net, v6: bool) {
    let p = pair(net, v6, false);
    assert!(
        ping(&p.lab, &p.vms[0], p.vms[1].ip),
        "VM1 cannot ping VM2 over {}\nh1: {}\nh2: {}\ncounters h1: {}",
        net.segment(),
        p.lab.log(&format!("{}.log", p.hosts[0].netns)),
        p.lab.log(&format!("{}.log", p.hosts[1].netns)),
        ctl(&p.hosts[0], &["counters"])
    );
    assert!(ping(&p.lab, &p.vms[1], p.vms[0].ip), "and back");
}

#[test]
fn vm_pings_vm_over_vxlan() {
    if can_run() {
        assert_pings(Net::Vxlan(100), false);
    }
}

#[test]
fn vm_pings_vm_over_vxlan_on_an_ipv6_underlay() {
    if can_run() {
        assert_pings(Net::Vxlan(100), true);
    }
}

#[test]
fn vm_pings_vm_over_nvgre() {
    if can_run() {
        assert_pings(Net::Nvgre(5001), false);
    }
}

#[test]
fn vm_pings_vm_over_gre() {
    if can_run() {
        assert_pings(Net::Gre(0x1234_5678), false);
    }
}

#[test]
fn vm_pings_vm_over_a_vlan_on_the_uplink() {
    if can_run() {
        assert_pings(Net::Vlan(101), false);
    }
}

/// Reads a classic or pcapng capture and returns its Ethernet frames.
fn frames(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if let Ok((_, capture)) = pcap_parser::pcap::parse_pcap(&bytes) {
        out.extend(capture.blocks.iter().map(|b| b.data.to_vec()));
    }
    out
}

/// Captures on an interface in a namespace while `during` runs.
fn capture(
    lab: &mut Lab,
    netns: &str,
    dev: &str,
    filter: &str,
    name: &str,
    during: impl FnOnce(&Lab),
) -> Vec<Vec<u8>> {
    let path = lab.dir.join(name);
    let p = path.to_str().unwrap().to_owned();
    let tcpdump = lab.spawn(
        netns,
        // -Z root: Debian's tcpdump otherwise drops to user tcpdump before opening the file,
        // and cannot write into this root-owned scratch directory. --immediate-mode: without
        // it packets wait in a TPACKET_V3 ring block that is lost when tcpdump is stopped.
        &[
            "tcpdump",
            "--immediate-mode",
            "-Z",
            "root",
            "-i",
            dev,
            "-U",
            "-n",
            "-w",
            &p,
            filter,
        ],
        &format!("{name}.log"),
    );
    // tcpdump prints "listening on" once its capture is open.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !lab.log(&format!("{name}.log")).contains("listening on")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    during(lab);
    std::thread::sleep(Duration::from_millis(200));
    lab.stop(tcpdump);
    frames(&path)
}

#[test]
fn overlapping_tenants_each_reach_only_their_own_peer() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let h1 = lab.netns("h1");
    let h2 = lab.netns("h2");
    let (u1, u2) = (lab.name("u1"), lab.name("u2"));
    lab.veth(&h1, &u1, &h2, &u2);
    lab.addr(&h1, &u1, "192.0.2.1/24");
    lab.addr(&h2, &u2, "192.0.2.2/24");
    // Both tenants: 10.0.0.1 on host 1, 10.0.0.2 on host 2, VNI 100 and 200.
    let a1 = Vm {
        netns: lab.netns("a1"),
        port: lab.name("ta1"),
        mac: mac(0xa, 1),
        ip: "10.0.0.1",
    };
    let a2 = Vm {
        netns: lab.netns("a2"),
        port: lab.name("ta2"),
        mac: mac(0xa, 2),
        ip: "10.0.0.2",
    };
    let b1 = Vm {
        netns: lab.netns("b1"),
        port: lab.name("tb1"),
        mac: mac(0xb, 1),
        ip: "10.0.0.1",
    };
    let b2 = Vm {
        netns: lab.netns("b2"),
        port: lab.name("tb2"),
        mac: mac(0xb, 2),
        ip: "10.0.0.2",
    };
    let (ta, tb) = (Net::Vxlan(100), Net::Vxlan(200));
    let c1 = host_config(
        &lab,
        "h1",
        "192.0.2.1",
        "192.0.2.2",
        &[(ta, &a1), (tb, &b1)],
        &[],
        None,
    );
    let c2 = host_config(
        &lab,
        "h2",
        "192.0.2.2",
        "192.0.2.1",
        &[(ta, &a2), (tb, &b2)],
        &[],
        None,
    );
    let s1 = start_switch(&mut lab, &h1, &c1);
    let _s2 = start_switch(&mut lab, &h2, &c2);
    for vm in [&a1, &a2, &b1, &b2] {
        bring_up(&lab, vm);
    }
    let b2_ns = b2.netns.clone();
    let seen_by_b2 = capture(&mut lab, &b2_ns, "eth0", "", "b2.pcap", |lab| {
        assert!(
            ping(lab, &a1, a2.ip),
            "tenant A: {}",
            ctl(&s1, &["counters"])
        );
        // Tenant B's own ping shows the capture works (an empty capture proves nothing).
        assert!(ping(lab, &b1, b2.ip), "tenant B");
    });
    let own = seen_by_b2
        .iter()
        .filter(|f| {
            wire::ethernet::Frame::new_checked(&f[..]).is_ok_and(|e| e.src_addr() == b1.mac)
        })
        .count();
    assert!(own >= 3, "tenant B's capture saw {own} of its own frames");
    let tenant_a = [a1.mac, a2.mac];
    for frame in &seen_by_b2 {
        let eth = wire::ethernet::Frame::new_checked(&frame[..]).expect("ethernet");
        assert!(
            !tenant_a.contains(&eth.src_addr()) && !tenant_a.contains(&eth.dst_addr()),
            "tenant B's VM saw a tenant A frame: {}",
            wire::pretty::PrettyPrinter::new(frame)
        );
    }
}

#[test]
fn arp_for_a_known_record_never_crosses_the_underlay() {
    if !can_run() {
        return;
    }
    let mut p = pair(Net::Vxlan(100), false, true);
    let (h1, u1) = (p.hosts[0].netns.clone(), p.underlay[0].clone());
    let vm1 = Vm {
        netns: p.vms[0].netns.clone(),
        port: p.vms[0].port.clone(),
        mac: p.vms[0].mac,
        ip: p.vms[0].ip,
    };
    let target = p.vms[1].ip;
    // With tx checksum offload a capture on the sending veth sees partial UDP checksums, which
    // the decapsulation below rightly refuses; have the kernel finish them.
    p.lab.exec(&h1, &["ethtool", "-K", &u1, "tx", "off"]);
    let (h2, u2) = (p.hosts[1].netns.clone(), p.underlay[1].clone());
    p.lab.exec(&h2, &["ethtool", "-K", &u2, "tx", "off"]);
    let underlay = capture(&mut p.lab, &h1, &u1, "", "underlay.pcap", |lab| {
        assert!(ping(lab, &vm1, target));
    });
    let mut icmp = 0;
    for frame in &underlay {
        // Underlay ARP and neighbour discovery are not tunnel traffic.
        let Ok(found) = wire::encap::decapsulate(frame, wire::vxlan::PORT) else {
            continue;
        };
        let inner = wire::ethernet::Frame::new_checked(&frame[found.inner]).expect("inner frame");
        assert_ne!(
            inner.ethertype(),
            EtherType::ARP,
            "ARP crossed the underlay"
        );
        icmp += usize::from(inner.ethertype() == EtherType::IPV4);
    }
    assert!(
        icmp >= 6,
        "the pings themselves crossed ({icmp} frames): {}",
        p.lab.log("underlay.pcap.log")
    );
    // And the VM really has VM2's MAC from the switch's answer.
    let neigh = p.lab.exec(&vm1.netns, &["ip", "neigh", "show", target]);
    assert!(neigh.contains(&p.vms[1].mac.to_string()), "{neigh}");
}

#[test]
fn a_spoofing_vm_gets_nothing_through() {
    if !can_run() {
        return;
    }
    let p = pair(Net::Vxlan(100), false, false);
    assert!(ping(&p.lab, &p.vms[0], p.vms[1].ip), "baseline");
    // Another MAC on VM1's NIC.
    p.lab.exec(
        &p.vms[0].netns,
        &["ip", "link", "set", "eth0", "address", "fa:16:3e:66:66:66"],
    );
    p.lab
        .exec(&p.vms[0].netns, &["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(
        !ping(&p.lab, &p.vms[0], p.vms[1].ip),
        "spoofed MAC got through"
    );
    // Its own MAC back, another IP.
    p.lab.exec(
        &p.vms[0].netns,
        &[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            &p.vms[0].mac.to_string(),
        ],
    );
    p.lab
        .exec(&p.vms[0].netns, &["ip", "addr", "flush", "dev", "eth0"]);
    p.lab.exec(
        &p.vms[0].netns,
        &["ip", "addr", "add", "10.0.0.9/24", "dev", "eth0"],
    );
    // A static neighbour, so VM1 sends IP packets from the spoofed address (ARP from it is
    // refused too, which would stop it before any IP packet left).
    let vm2_mac = p.vms[1].mac.to_string();
    let vm2_ip = p.vms[1].ip;
    p.lab.exec(
        &p.vms[0].netns,
        &[
            "ip", "neigh", "replace", vm2_ip, "lladdr", &vm2_mac, "dev", "eth0",
        ],
    );
    assert!(
        !ping(&p.lab, &p.vms[0], p.vms[1].ip),
        "spoofed IP got through"
    );
    let counters = ctl(&p.hosts[0], &["counters", "--json"]);
    for reason in ["spoofed_mac", "spoofed_ip"] {
        let value: serde_json::Value = serde_json::from_str(&counters).expect("counters JSON");
        let count = find_number(&value, reason).unwrap_or(0);
        assert!(count > 0, "{reason} not counted: {counters}");
    }
}

/// Finds the first number stored under `key` anywhere in a JSON document.
fn find_number(value: &serde_json::Value, key: &str) -> Option<u64> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .or_else(|| map.values().find_map(|v| find_number(v, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_number(v, key)),
        _ => None,
    }
}

#[test]
fn weft_and_the_linux_kernel_vxlan_talk_both_ways() {
    if !can_run() {
        return;
    }
    for static_records in [false, true] {
        let mut lab = Lab::new();
        // Three hosts on one underlay segment: a bridge in its own namespace.
        let wire_ns = lab.netns("ul");
        lab.exec(&wire_ns, &["ip", "link", "add", "br0", "type", "bridge"]);
        lab.exec(&wire_ns, &["ip", "link", "set", "br0", "up"]);
        let h1 = lab.netns("h1");
        let h3 = lab.netns("h3");
        for (host, n, ip) in [(&h1, "1", "192.0.2.1/24"), (&h3, "3", "192.0.2.3/24")] {
            let (inside, port) = (lab.name(&format!("u{n}")), lab.name(&format!("b{n}")));
            lab.veth(host, &inside, &wire_ns, &port);
            lab.exec(&wire_ns, &["ip", "link", "set", &port, "master", "br0"]);
            lab.addr(host, &inside, ip);
        }
        // Host 3: the kernel's vxlan device bridged to a VM namespace.
        let vm3 = lab.netns("v3");
        let (vx, br, veth_host, veth_vm) = (
            lab.name("vx"),
            lab.name("br"),
            lab.name("k3"),
            lab.name("e3"),
        );
        let learning = if static_records {
            "nolearning"
        } else {
            "learning"
        };
        lab.exec(
            &h3,
            &[
                "ip",
                "link",
                "add",
                &vx,
                "type",
                "vxlan",
                "id",
                "100",
                "dstport",
                "4789",
                "local",
                "192.0.2.3",
                learning,
            ],
        );
        lab.exec(&h3, &["ip", "link", "add", &br, "type", "bridge"]);
        lab.exec(&h3, &["ip", "link", "set", &vx, "master", &br]);
        lab.exec(&h3, &["ip", "link", "set", &vx, "up"]);
        lab.exec(&h3, &["ip", "link", "set", &br, "up"]);
        lab.veth(&h3, &veth_host, &vm3, &veth_vm);
        lab.exec(&h3, &["ip", "link", "set", &veth_host, "master", &br]);
        let vm3_mac = "fa:16:3e:00:03:03";
        lab.exec(&vm3, &["ip", "link", "set", &veth_vm, "address", vm3_mac]);
        lab.addr(&vm3, &veth_vm, "10.0.0.3/24");
        // The kernel floods to weft's endpoint.
        lab.exec(
            &h3,
            &[
                "bridge",
                "fdb",
                "append",
                "00:00:00:00:00:00",
                "dev",
                &vx,
                "dst",
                "192.0.2.1",
            ],
        );
        let vm1 = Vm {
            netns: lab.netns("v1"),
            port: lab.name("t1"),
            mac: mac(1, 1),
            ip: "10.0.0.1",
        };
        let vm3_as_record = Vm {
            netns: vm3.clone(),
            port: String::new(),
            mac: vm3_mac.parse().unwrap(),
            ip: "10.0.0.3",
        };
        let records: Vec<(Net, &Vm)> = if static_records {
            vec![(Net::Vxlan(100), &vm3_as_record)]
        } else {
            vec![]
        };
        let c1 = host_config(
            &lab,
            "h1",
            "192.0.2.1",
            "192.0.2.3",
            &[(Net::Vxlan(100), &vm1)],
            &records,
            None,
        );
        let s1 = start_switch(&mut lab, &h1, &c1);
        bring_up(&lab, &vm1);
        if static_records {
            lab.exec(
                &h3,
                &[
                    "bridge",
                    "fdb",
                    "append",
                    &vm1.mac.to_string(),
                    "dev",
                    &vx,
                    "dst",
                    "192.0.2.1",
                ],
            );
        }
        assert!(
            ping(&lab, &vm1, "10.0.0.3"),
            "weft -> kernel (static: {static_records}): {}",
            ctl(&s1, &["counters"])
        );
        assert!(
            lab.try_exec(
                &vm3,
                &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1"]
            ),
            "kernel -> weft (static: {static_records})"
        );
    }
}

/// A TCP server on port 5201 of `argv[1]` that reads until the peer closes, then prints how
/// many bytes it got and their SHA-256.
const TCP_SINK: &str = "
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201))
s.listen(1)
s.settimeout(30)
c, _ = s.accept()
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
print('got', n, h.hexdigest(), flush=True)
";

/// A TCP client that sends `argv[2]` bytes (a pattern no shifted copy of itself matches) to
/// `argv[1]`:5201, then prints how many and their SHA-256.
const TCP_SOURCE: &str = "
import hashlib, socket, sys, time
n = int(sys.argv[2])
data = bytes((i * 7 + i // 251 + i // 65521) % 256 for i in range(n))
for _ in range(100):
    try:
        s = socket.create_connection((sys.argv[1], 5201), timeout=30)
        break
    except OSError:
        time.sleep(0.05)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print('got', n, hashlib.sha256(data).hexdigest())
";

/// Sends `bytes` over TCP from VM `from` to VM `to` and checks that exactly those bytes
/// arrived (count and SHA-256 of what was sent and what was received).
fn tcp_transfer(p: &mut Pair, from: usize, to: usize, bytes: usize) {
    let log = format!("sink-{from}-{to}.log");
    let (to_ns, to_ip) = (p.vms[to].netns.clone(), p.vms[to].ip);
    p.lab
        .spawn(&to_ns, &["python3", "-c", TCP_SINK, to_ip], &log);
    let sent = p.lab.exec(
        &p.vms[from].netns,
        &["python3", "-c", TCP_SOURCE, to_ip, &bytes.to_string()],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !p.lab.log(&log).contains("got") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        p.lab.log(&log).trim(),
        sent.trim(),
        "VM{} -> VM{}: bytes and SHA-256 received vs sent\ncounters h1: {}\ncounters h2: {}",
        from + 1,
        to + 1,
        ctl(&p.hosts[0], &["counters"]),
        ctl(&p.hosts[1], &["counters"])
    );
    assert!(sent.starts_with(&format!("got {bytes} ")), "{sent}");
}

/// TCP between the VMs of two weft switches over VXLAN, with the TAPs' offloads on: each
/// VM's stack hands its switch 64 KiB super-frames, the switch cuts them into segments for
/// the tunnel (sent as UDP GSO trains), and the far switch merges them again for its VM.
/// Several MB each way, compared byte for byte by SHA-256.
fn assert_tcp_intact(v6: bool) {
    let mut p = pair(Net::Vxlan(100), v6, true);
    for vm in &p.vms {
        let features = p.lab.exec(&vm.netns, &["ethtool", "-k", "eth0"]);
        assert!(
            features.contains("tcp-segmentation-offload: on"),
            "the VM's NIC has no TSO: {features}"
        );
    }
    tcp_transfer(&mut p, 0, 1, 4 << 20);
    tcp_transfer(&mut p, 1, 0, 3 << 20);
    let counters = ctl(&p.hosts[0], &["counters", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&counters).expect("counters JSON");
    for reason in ["malformed", "truncated", "unsupported", "encap_failed"] {
        assert_eq!(find_number(&value, reason), Some(0), "{reason}: {counters}");
    }
}

#[test]
fn tcp_crosses_two_switches_over_vxlan_intact_with_offloads() {
    if can_run() {
        assert_tcp_intact(false);
    }
}

#[test]
fn tcp_crosses_two_switches_over_vxlan_on_an_ipv6_underlay_intact_with_offloads() {
    if can_run() {
        assert_tcp_intact(true);
    }
}

/// `weft switch ctl --json status` as (port, up, reason) triples.
fn status(host: &Host) -> Vec<(String, bool, String)> {
    let out = ctl(host, &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    value["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["up"].as_bool().unwrap_or(false),
                p["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// One switch started empty and programmed by `replace` alone, as an agent does, with three
/// TAPs left in its namespace (no netns) that the test moves into VM namespaces and renames
/// `eth0` (as Nova and libvirt do). Traffic flows between them; a replace that changes only a
/// port's VM side keeps its device; deleting a VM's namespace destroys its TAP's netdev, and
/// `status` says that port is down while the others keep forwarding.
#[test]
fn taps_moved_by_someone_else_forward_and_report_down_when_destroyed() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let h = lab.netns("h");
    let vms: Vec<Vm> = (1..=3u8)
        .map(|n| Vm {
            netns: lab.netns(&format!("v{n}")),
            port: lab.name(&format!("t{n}")),
            mac: mac(7, n),
            ip: ["10.0.7.1", "10.0.7.2", "10.0.7.3"][usize::from(n - 1)],
        })
        .collect();
    // No --config: the switch starts empty.
    let control = lab.dir.join("h.sock");
    lab.spawn(
        &h,
        &[WEFT, "switch", "--control", control.to_str().unwrap()],
        "h.log",
    );
    assert!(
        wait_for(&control, Duration::from_secs(10)),
        "{}",
        lab.log("h.log")
    );
    let host = Host {
        netns: h.clone(),
        control,
    };
    let dir = lab.dir.clone();
    let write_config = |name: &str, extra_ip: Option<&str>, vms: &[&Vm]| {
        let mut toml =
            String::from("[[switch]]\nname = \"net0\"\nlocal_vlan = 1\nsegment = \"local\"\n");
        for vm in vms {
            let mut ips = format!("\"{}\"", vm.ip);
            if let Some(extra) = extra_ip.filter(|_| vm.ip == "10.0.7.1") {
                write!(ips, ", \"{extra}\"").unwrap();
            }
            writeln!(
                toml,
                "[[port]]\nname = \"{}\"\ntype = \"tap\"\nswitch = \"net0\"\nmac = \"{}\"\nips = [{ips}]\n",
                vm.port, vm.mac
            )
            .unwrap();
        }
        let path = dir.join(name);
        std::fs::write(&path, toml).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let all: Vec<&Vm> = vms.iter().collect();
    let first = write_config("one.toml", None, &all);
    assert!(ctl(&host, &["replace", &first]).contains("ok: generation 1"));
    for vm in &vms {
        lab.exec(
            &h,
            &[
                "ip", "link", "set", &vm.port, "netns", &vm.netns, "name", "eth0",
            ],
        );
        bring_up(&lab, vm);
    }
    assert!(
        ping(&lab, &vms[0], vms[1].ip),
        "{}",
        ctl(&host, &["counters"])
    );
    assert!(
        ping(&lab, &vms[1], vms[2].ip),
        "{}",
        ctl(&host, &["counters"])
    );
    assert!(ctl(&host, &["replace", &first]).contains("nothing to change"));

    // VM 1's port gets a second address: its VM side changes, its device stays (a reopened
    // TAP would be a new netdev in the switch's namespace, and VM 1's eth0 would be gone).
    let second = write_config("two.toml", Some("10.0.7.11"), &all);
    assert!(ctl(&host, &["replace", &second]).contains("ok: generation 2"));
    lab.exec(&vms[0].netns, &["ip", "link", "show", "eth0"]);
    lab.addr(&vms[0].netns, "eth0", "10.0.7.11/24");
    assert!(
        ping(&lab, &vms[1], "10.0.7.11"),
        "port security took the new address: {}",
        ctl(&host, &["counters"])
    );
    assert!(
        status(&host).iter().all(|(_, up, _)| *up),
        "{:?}",
        status(&host)
    );

    // VM 3's namespace goes, and its netdev with it.
    lab.delete_netns(&vms[2].netns);
    let gone = &vms[2].port;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ports = status(&host);
    while ports.iter().any(|(name, up, _)| name == gone && *up) {
        assert!(
            std::time::Instant::now() < deadline,
            "port {gone} still up: {ports:?}\n{}",
            lab.log("h.log")
        );
        std::thread::sleep(Duration::from_millis(100));
        ports = status(&host);
    }
    let (_, _, reason) = ports.iter().find(|(name, ..)| name == gone).unwrap();
    assert!(reason.contains("device failed"), "{ports:?}");
    assert!(
        ports
            .iter()
            .filter(|(name, ..)| name != gone)
            .all(|(_, up, _)| *up),
        "{ports:?}"
    );
    assert!(ping(&lab, &vms[0], vms[1].ip), "the others keep forwarding");
    // Counted once, and not read again (no busy loop on a dead descriptor).
    let errors = |counters: &str| {
        let value: serde_json::Value = serde_json::from_str(counters).unwrap();
        value["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == gone.as_str())
            .map(|p| p["rx_errors"].as_u64().unwrap_or(0))
    };
    let before = errors(&ctl(&host, &["counters", "--json"]));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(errors(&ctl(&host, &["counters", "--json"])), before);
    assert_eq!(before, Some(1));
    // The agent drops the port: it is gone from status.
    let third = write_config("three.toml", Some("10.0.7.11"), &all[..2]);
    assert!(ctl(&host, &["replace", &third]).contains("ok: generation 3"));
    let names: Vec<String> = status(&host).into_iter().map(|(name, ..)| name).collect();
    assert_eq!(names, [vms[0].port.clone(), vms[1].port.clone()]);
    assert!(ping(&lab, &vms[1], vms[0].ip));

    // A changed device: VM 2's port now asks the switch itself to put it in VM 2's namespace
    // as eth0. The old TAP (VM 2's eth0 now) must be closed before the new one can take that
    // name there.
    let mut fourth = std::fs::read_to_string(&third).unwrap();
    let port2 = format!("name = \"{}\"\n", vms[1].port);
    fourth = fourth.replacen(
        &port2,
        &format!(
            "{port2}netns = \"{}\"\nnetns_ifname = \"eth0\"\n",
            vms[1].netns
        ),
        1,
    );
    let fourth_path = dir.join("four.toml");
    std::fs::write(&fourth_path, fourth).unwrap();
    assert!(
        ctl(&host, &["replace", fourth_path.to_str().unwrap()]).contains("ok: generation 4"),
        "{}",
        lab.log("h.log")
    );
    bring_up(&lab, &vms[1]);
    assert!(
        status(&host).iter().all(|(_, up, _)| *up),
        "{:?}",
        status(&host)
    );
    assert!(
        ping(&lab, &vms[0], vms[1].ip),
        "{}",
        ctl(&host, &["counters"])
    );
}
