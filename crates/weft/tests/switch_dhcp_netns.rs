//! The switch's DHCP responder against real clients (root; skips otherwise): a `weft switch`
//! in a host namespace with two TAPs that the test, playing Nova, moves into two VM
//! namespaces as `eth0`. ISC `dhclient` (with the stock `dhclient-script` and its RFC 3442
//! hook) runs in one, busybox `udhcpc` (with a small script of the test's) in the other. Each
//! must get its port's address, the router, MTU 1450 and the option-121 host route, and keep
//! its address through a renewal: a unicast REQUEST to the server that the switch ACKs.

#[path = "support/netns.rs"]
mod netns;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use netns::{Lab, can_run, wait_for};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const SERVER_IP: &str = "10.0.5.254";
const SERVER_MAC: &str = "fa:16:3e:ff:05:fe";
const ROUTER: &str = "10.0.5.1";
/// The host route option 121 carries (besides the default route via the router).
const HOST_ROUTE: &str = "10.0.9.9";
const HOST_ROUTE_VIA: &str = "10.0.5.3";
const LEASE_SECS: u64 = 6;

/// `/etc/netns/<ns>/`, which `ip netns exec` bind-mounts over `/etc`'s files: the client's
/// script writes the namespace's resolv.conf there, never the host's. Removed on drop.
struct NetnsEtc(PathBuf);

impl NetnsEtc {
    fn new(netns: &str) -> Self {
        let dir = Path::new("/etc/netns").join(netns);
        std::fs::create_dir_all(&dir).expect("/etc/netns/<ns>");
        std::fs::write(dir.join("resolv.conf"), "# weft test\n").expect("resolv.conf");
        Self(dir)
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // And /etc/netns itself if this left it empty (fails harmlessly otherwise).
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// One VM: namespace, TAP (port) name, MAC, the address its port has.
struct Vm {
    netns: String,
    tap: String,
    mac: &'static str,
    ip: &'static str,
    etc: NetnsEtc,
}

fn config(vms: &[&Vm]) -> String {
    let mut toml = format!(
        r#"
[[switch]]
name = "net0"
local_vlan = 1
segment = "local"

[[switch.dhcp]]
cidr = "10.0.5.0/24"
server_ip = "{SERVER_IP}"
server_mac = "{SERVER_MAC}"
router = "{ROUTER}"
dns = ["10.0.5.2"]
mtu = 1450
lease_secs = {LEASE_SECS}
domain = "tenant.example"
routes = [{{ destination = "{HOST_ROUTE}/32", nexthop = "{HOST_ROUTE_VIA}" }}]
"#
    );
    for vm in vms {
        // No netns: the TAP stays in the switch's namespace until the test moves it.
        toml.push_str(&format!(
            "\n[[port]]\nname = \"{}\"\ntype = \"tap\"\nswitch = \"net0\"\nmac = \"{}\"\nips = [\"{}\"]\n",
            vm.tap, vm.mac, vm.ip
        ));
    }
    toml
}

/// `weft switch ctl --json OP` against the daemon's socket, parsed.
fn ctl(control: &Path, op: &str) -> serde_json::Value {
    let out = netns::run(&[
        WEFT,
        "switch",
        "ctl",
        "--json",
        "--control",
        control.to_str().expect("path"),
        op,
    ]);
    serde_json::from_str(&out).expect("JSON")
}

fn dhcp_counter(control: &Path, name: &str) -> u64 {
    ctl(control, "counters")["dhcp"][name]
        .as_u64()
        .expect("a DHCP counter")
}

/// Moves the switch's TAP into the VM's namespace as eth0 with the port's MAC, up, no address
/// (what Nova and libvirt do with a VM's NIC).
fn plug(lab: &Lab, host: &str, vm: &Vm) {
    lab.exec(
        host,
        &[
            "ip", "link", "set", &vm.tap, "netns", &vm.netns, "name", "eth0",
        ],
    );
    lab.exec(&vm.netns, &["ip", "link", "set", "eth0", "address", vm.mac]);
    lab.exec(&vm.netns, &["ip", "link", "set", "eth0", "up"]);
}

/// Waits until `check` holds, at most `timeout`.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// What a real client must have done with the switch's answer.
fn assert_configured(lab: &Lab, vm: &Vm, who: &str, log: &str) {
    let addr = lab.exec(&vm.netns, &["ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addr.contains(&format!("inet {}/24", vm.ip)),
        "{who}: no address: {addr}\n{log}"
    );
    let link = lab.exec(&vm.netns, &["ip", "link", "show", "dev", "eth0"]);
    assert!(link.contains("mtu 1450"), "{who}: MTU not applied: {link}");
    let routes = lab.exec(&vm.netns, &["ip", "-4", "route", "show"]);
    assert!(
        routes.contains(&format!("{HOST_ROUTE} via {HOST_ROUTE_VIA} dev eth0")),
        "{who}: no option-121 host route: {routes}"
    );
    assert!(
        routes.contains(&format!("default via {ROUTER} dev eth0")),
        "{who}: no default route via the router: {routes}"
    );
}

/// The udhcpc event script: applies what it is given and logs each event.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
echo "$1 ip=$ip mask=$mask mtu=$mtu router=$router lease=$lease routes=$staticroutes" >> "$WEFT_EVENTS"
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ;;
bound|renew)
    ip -4 addr replace "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    set -- $staticroutes
    while [ $# -ge 2 ]; do
        ip -4 route replace "$1" via "$2" dev "$interface"
        shift 2
    done
    ;;
esac
exit 0
"#;

#[test]
fn dhclient_and_udhcpc_get_their_ports_address_from_the_switch() {
    if !can_run() {
        return;
    }
    let host_resolv = std::fs::read("/etc/resolv.conf").ok();
    let mut lab = Lab::new();
    let host = lab.netns("h");
    let vm1 = Vm {
        netns: lab.netns("v1"),
        tap: lab.name("t1"),
        mac: "fa:16:3e:00:05:05",
        ip: "10.0.5.5",
        etc: NetnsEtc::new(&lab.name("v1")),
    };
    let vm2 = Vm {
        netns: lab.netns("v2"),
        tap: lab.name("t2"),
        mac: "fa:16:3e:00:05:06",
        ip: "10.0.5.6",
        etc: NetnsEtc::new(&lab.name("v2")),
    };
    let file = lab.dir.join("switch.toml");
    std::fs::write(&file, config(&[&vm1, &vm2])).expect("config");
    let control = lab.dir.join("switch.sock");
    lab.spawn(
        &host,
        &[
            WEFT,
            "switch",
            "--config",
            file.to_str().expect("path"),
            "--control",
            control.to_str().expect("path"),
        ],
        "switch.log",
    );
    assert!(
        wait_for(&control, Duration::from_secs(10)),
        "switch: {}",
        lab.log("switch.log")
    );
    // Answered once the initial configuration is in force (its TAPs exist).
    let status = ctl(&control, "status");
    assert_eq!(status["ports"][1]["up"], true, "{status}");
    plug(&lab, &host, &vm1);
    plug(&lab, &host, &vm2);

    // ISC dhclient with the stock script (MTU, resolv.conf) and its RFC 3442 hook.
    let dir = lab.dir.clone();
    let path = |name: &str| dir.join(name).to_str().expect("path").to_owned();
    std::fs::write(
        dir.join("dhclient.conf"),
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
         request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,\n\
         \tinterface-mtu, rfc3442-classless-static-routes;\n",
    )
    .expect("dhclient.conf");
    lab.spawn(
        &vm1.netns,
        &[
            "dhclient",
            "-4",
            "-d",
            "-v",
            "-cf",
            &path("dhclient.conf"),
            "-pf",
            &path("dhclient.pid"),
            "-lf",
            &path("dhclient.leases"),
            "eth0",
        ],
        "dhclient.log",
    );
    // busybox udhcpc asking for the MTU and option 121, with the test's script.
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).expect("script");
    netns::run(&["chmod", "755", script.to_str().expect("path")]);
    let events = path("udhcpc.events");
    let udhcpc = lab.spawn(
        &vm2.netns,
        &[
            "env",
            &format!("WEFT_EVENTS={events}"),
            "busybox",
            "udhcpc",
            "-f",
            "-i",
            "eth0",
            "-s",
            script.to_str().expect("path"),
            "-t",
            "10",
            "-T",
            "1",
            "-O",
            "mtu",
            "-O",
            "staticroutes",
        ],
        "udhcpc.log",
    );

    let configured = |vm: &Vm| {
        lab.try_exec(
            &vm.netns,
            &[
                "sh",
                "-c",
                &format!("ip -4 addr show dev eth0 | grep -q 'inet {}/'", vm.ip),
            ],
        )
    };
    let timeout = Duration::from_secs(20);
    assert!(
        eventually(timeout, || configured(&vm1)),
        "dhclient got no address\n{}\ncounters: {}",
        lab.log("dhclient.log"),
        ctl(&control, "counters")
    );
    assert!(
        eventually(timeout, || configured(&vm2)),
        "udhcpc got no address\n{}\n{}",
        lab.log("udhcpc.log"),
        std::fs::read_to_string(&events).unwrap_or_default()
    );
    // The scripts run after the address is set: give them a moment for MTU and routes.
    assert!(eventually(Duration::from_secs(5), || {
        lab.exec(&vm1.netns, &["ip", "-4", "route", "show"])
            .contains(HOST_ROUTE)
            && lab
                .exec(&vm2.netns, &["ip", "-4", "route", "show"])
                .contains(HOST_ROUTE)
    }));
    assert_configured(&lab, &vm1, "dhclient", &lab.log("dhclient.log"));
    assert_configured(&lab, &vm2, "udhcpc", &lab.log("udhcpc.log"));
    let resolv = std::fs::read_to_string(vm1.etc.0.join("resolv.conf")).unwrap_or_default();
    assert!(
        resolv.contains("nameserver 10.0.5.2") && resolv.contains("tenant.example"),
        "dhclient-script's resolv.conf for the namespace: {resolv}"
    );
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        host_resolv,
        "the host's resolv.conf was touched"
    );

    // Renewal. dhclient renews by itself at T1 (3 s); busybox udhcpc is told to renew now
    // (SIGUSR1), since some versions renew no sooner than a minute whatever the lease. Both send a unicast REQUEST to the server's
    // address, which needs ARP for it answered by the switch, and get an ACK.
    let acks = dhcp_counter(&control, "acks");
    lab.signal(udhcpc, "USR1");
    let dhclient_renewal = format!("DHCPREQUEST for {} on eth0 to {SERVER_IP}", vm1.ip);
    assert!(
        // Two ACKs alone could be udhcpc's: it may repeat its request.
        eventually(Duration::from_secs(3 * LEASE_SECS), || {
            dhcp_counter(&control, "acks") >= acks + 2
                && std::fs::read_to_string(&events)
                    .unwrap_or_default()
                    .contains("renew ip=10.0.5.6")
                && lab.log("dhclient.log").contains(&dhclient_renewal)
        }),
        "no renewals ACKed: acks {acks} -> {}\ndhclient: {}\nudhcpc: {}",
        dhcp_counter(&control, "acks"),
        lab.log("dhclient.log"),
        std::fs::read_to_string(&events).unwrap_or_default()
    );
    let dhclient_log = lab.log("dhclient.log");
    assert!(
        dhclient_log.contains(&dhclient_renewal),
        "dhclient renewed by unicast to the server: {dhclient_log}"
    );
    for vm in [&vm1, &vm2] {
        let neigh = lab.exec(&vm.netns, &["ip", "neigh", "show", SERVER_IP]);
        assert!(neigh.contains(SERVER_MAC), "ARP for the server: {neigh}");
    }
    // Past the whole lease time the addresses are still there: the renewals held them.
    std::thread::sleep(Duration::from_secs(LEASE_SECS + 1));
    assert!(
        configured(&vm1),
        "dhclient lost its address: {}",
        lab.log("dhclient.log")
    );
    assert!(configured(&vm2), "udhcpc lost its address");
    let counters = ctl(&control, "counters");
    assert_eq!(counters["dhcp"]["naks"], 0, "{counters}");
    assert_eq!(counters["dhcp"]["malformed"], 0, "{counters}");
    assert!(counters["dhcp"]["offers"].as_u64() >= Some(2), "{counters}");
}
