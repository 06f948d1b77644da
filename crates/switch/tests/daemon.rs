//! The daemon end to end, in-process and without root: the real control socket programs a
//! switch whose VM ports are memory pairs (the test plays the VMs) and whose VXLAN port is a
//! real UDP socket on loopback (the test plays the remote host).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use switch::{
    daemon::{Client, ClientError, Daemon, DaemonError, SwitchConfig},
    device::memory::MemoryPeer,
    pipeline::DropReason,
};
use wire::{MacAddr, arp};

const REMOTE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn mac(last: u8) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, 0, 0, last])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn now() -> Instant {
    #[expect(
        clippy::disallowed_methods,
        reason = "test: bounds how long a test waits"
    )]
    Instant::now()
}

/// A directory of its own for each test's socket.
fn scratch(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weft-daemon-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The remote host: a UDP socket on 127.0.0.2, whose port the daemon's VXLAN port also uses.
struct Remote {
    #[expect(clippy::disallowed_types, reason = "test: plays the remote VTEP")]
    socket: std::net::UdpSocket,
    port: u16,
}

impl Remote {
    fn new() -> Self {
        #[expect(clippy::disallowed_types, reason = "test: plays the remote VTEP")]
        let socket = std::net::UdpSocket::bind(SocketAddr::from((REMOTE, 0))).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        Self { socket, port }
    }

    /// The next VXLAN datagram the daemon sent: its VNI and inner frame.
    fn receive(&self) -> (u32, Vec<u8>) {
        let mut buf = [0u8; 2048];
        let (len, from) = self.socket.recv_from(&mut buf).expect("a VXLAN datagram");
        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 1]));
        let (vni, inner) = wire::encap::decapsulate_vxlan(&buf[..len]).expect("VXLAN");
        (vni.get(), buf[inner].to_vec())
    }
}

/// A daemon on a fresh socket, and a client of it.
struct Setup {
    daemon: Daemon,
    client: Client,
    dir: PathBuf,
}

impl Setup {
    fn new(tag: &str, config: SwitchConfig) -> Self {
        let dir = scratch(tag);
        let daemon = Daemon::start(config, dir.join("ctl.sock")).expect("daemon starts");
        let client = Client::connect(daemon.control_path()).expect("connect");
        Self {
            daemon,
            client,
            dir,
        }
    }

    fn ok(&mut self, request: Value) -> Value {
        match self.client.call(&request) {
            Ok(result) => result,
            Err(err) => panic!("{request} was refused: {err}"),
        }
    }

    fn refused(&mut self, request: Value) -> String {
        match self.client.call(&request) {
            Err(ClientError::Refused(message)) => message,
            other => panic!("{request} was not refused: {other:?}"),
        }
    }

    fn list(&mut self) -> Value {
        self.ok(json!({"op": "list"}))
    }

    fn peer(&self, port: &str) -> MemoryPeer {
        self.daemon.memory_peer(port).expect("a memory port")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn vm_port(name: &str, last: u8) -> Value {
    json!({
        "name": name,
        "type": "memory",
        "switch": "net1",
        "mac": mac(last).to_string(),
        "ips": [ip(last).to_string()],
    })
}

/// The daemon of the first test, built only through the socket: a VXLAN port, net1 on VNI 100,
/// VMs 1 and 2 on memory ports, and a record for VM 3 behind the remote host.
fn programmed(tag: &str) -> (Setup, Remote) {
    let remote = Remote::new();
    let mut setup = Setup::new(tag, SwitchConfig::default());
    // A VXLAN network needs its tunnel port first; the error says so and changes nothing.
    let net1 = json!({"name": "net1", "local_vlan": 1, "segment": "vxlan:100", "flood": [REMOTE.to_string()]});
    assert_eq!(
        setup.refused(json!({"op": "add_switch", "switch": net1})),
        r#"switch "net1".segment: no Vxlan tunnel port"#
    );
    setup.ok(json!({"op": "add_port", "port": {
        "name": "vxlan0", "type": "vxlan", "local_ip": "127.0.0.1", "port": remote.port,
    }}));
    setup.ok(json!({"op": "add_switch", "switch": net1}));
    setup.ok(json!({"op": "add_port", "port": vm_port("vm1", 1)}));
    setup.ok(json!({"op": "add_port", "port": vm_port("vm2", 2)}));
    setup.ok(json!({"op": "add_record", "record": {
        "switch": "net1", "ip": ip(3).to_string(), "mac": mac(3).to_string(), "remote": REMOTE.to_string(),
    }}));
    (setup, remote)
}

fn arp_request(src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    wire::build::arp_request(src_mac, src_ip, target)
}

fn udp_frame(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    wire::build::udp_ipv4(src_mac, dst_mac, src, dst, (5000, 6000), b"weft")
}

/// The frames `peer` receives within a few seconds (at least one).
fn receive(peer: &MemoryPeer) -> Vec<Vec<u8>> {
    let deadline = now() + Duration::from_secs(5);
    loop {
        let frames: Vec<Vec<u8>> = peer.drain().into_iter().map(|(f, _)| f).collect();
        if !frames.is_empty() || now() > deadline {
            return frames;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Asks through `peer` who has `target` and returns the answer's sender MAC.
fn who_has(peer: &MemoryPeer, own: u8, target: Ipv4Addr) -> MacAddr {
    peer.inject(&arp_request(mac(own), ip(own), target));
    let frames = receive(peer);
    assert_eq!(frames.len(), 1, "one ARP reply");
    let reply = arp::Repr::parse(&arp::Packet::new_checked(&frames[0][14..]).expect("ARP"))
        .expect("ARP reply");
    assert_eq!(reply.operation, arp::Operation::REPLY);
    assert_eq!(reply.source_protocol_addr, target);
    assert_eq!(reply.target_hardware_addr, mac(own));
    reply.source_hardware_addr
}

#[test]
fn the_control_socket_programs_the_data_path() {
    let (setup, remote) = programmed("program");
    let vm1 = setup.peer("vm1");
    let vm2 = setup.peer("vm2");
    // The ARP responder knows the record added over the socket, and the other VM port.
    assert_eq!(who_has(&vm1, 1, ip(3)), mac(3));
    assert_eq!(who_has(&vm1, 1, ip(2)), mac(2));
    // Unicast to a local VM goes to its port.
    let to_vm2 = udp_frame(mac(1), mac(2), ip(1), ip(2));
    vm1.inject(&to_vm2);
    assert_eq!(receive(&vm2), vec![to_vm2]);
    // Unicast to the record's MAC is tunnelled to the remote host on VNI 100.
    let to_vm3 = udp_frame(mac(1), mac(3), ip(1), ip(3));
    vm1.inject(&to_vm3);
    assert_eq!(remote.receive(), (100, to_vm3));
}

#[test]
fn a_bad_request_names_the_field_and_changes_nothing() {
    let (mut setup, _remote) = programmed("bad");
    let before = setup.list();
    let mut bad_mac = vm_port("vm9", 9);
    bad_mac["mac"] = json!("fa:16:3e:00:09");
    let mut unknown_switch = vm_port("vm9", 9);
    unknown_switch["switch"] = json!("nope");
    let mut extra_field = vm_port("vm9", 9);
    extra_field["colour"] = json!("red");
    let cases = [
        (
            json!({"op": "add_port", "port": bad_mac}),
            "port.mac: invalid MAC address",
        ),
        (
            json!({"op": "add_port", "port": unknown_switch}),
            r#"port "vm9".switch: no switch named "nope""#,
        ),
        (
            json!({"op": "add_port", "port": extra_field}),
            "port.colour: unknown field; expected one of name, type, switch, mac, ips, \
             allowed_pairs, port_security",
        ),
        (
            json!({"op": "add_port", "port": vm_port("vm1", 7)}),
            r#"port.name: a different port named "vm1" exists; remove it first"#,
        ),
        (
            json!({"op": "add_switch", "switch": {"name": "net2", "local_vlan": 1, "segment": "vxlan:200"}}),
            r#"switch "net2".local_vlan: 1 is used by another switch"#,
        ),
        (
            json!({"op": "add_switch", "switch": {"name": "net2", "local_vlan": 2, "segment": "vxlan:100"}}),
            r#"switch "net2".segment: vxlan:100 is used by another switch"#,
        ),
        (
            json!({"op": "add_switch", "switch": {"name": "net2", "local_vlan": "two", "segment": "local"}}),
            r#"switch "net2".local_vlan: expected an integer 0-65535, got the string "two""#,
        ),
        (
            json!({"op": "add_record", "record": {"switch": "net1", "ip": "10.0.0.1", "mac": mac(1).to_string(), "remote": "127.0.0.2"}}),
            r#"record.mac: fa:16:3e:00:00:01 is the address of local port "vm1""#,
        ),
        (
            json!({"op": "add_record", "record": {"switch": "net1", "ip": "10.0.0.3", "mac": mac(4).to_string(), "remote": "127.0.0.2"}}),
            r#"record.ip: switch "net1" already has a record for 10.0.0.3"#,
        ),
        (
            json!({"op": "remove_switch", "name": "net1"}),
            r#"name: switch "net1" still has port "vm1"; remove that first"#,
        ),
        (
            json!({"op": "remove_port", "name": "vm9"}),
            r#"name: no port named "vm9""#,
        ),
        (
            json!({"op": "remove_port", "name": "vxlan0"}),
            r#"switch "net1".segment: no Vxlan tunnel port"#,
        ),
        (
            json!({"op": "remove_record", "switch": "net1", "ip": "10.0.0.9"}),
            r#"ip: switch "net1" has no record for 10.0.0.9"#,
        ),
        (
            json!({"op": "set_flood", "switch": "net1", "flood": ["127.0.0.2", "nope"]}),
            r#"flood[1]: invalid IP address "nope""#,
        ),
        (
            json!({"op": "frobnicate"}),
            r#"op: unknown operation "frobnicate"; expected one of add_switch, remove_switch"#,
        ),
        (json!({"switch": "net1"}), "op: missing"),
        (json!(["list"]), "request: expected an object"),
        (
            json!({"op": "list", "verbose": true}),
            "verbose: unknown field; expected one of op",
        ),
    ];
    for (request, expected) in cases {
        let error = setup.refused(request.clone());
        assert!(
            error.starts_with(expected),
            "{request}\n  expected {expected:?}\n       got {error:?}"
        );
        assert_eq!(setup.list(), before, "{request} changed something");
    }
    // Not JSON at all: the same error shape, on the same connection, which stays usable.
    let response = setup
        .client
        .call_raw("{\"op\": \"list\"")
        .expect("a response");
    assert_eq!(response["ok"], json!(false));
    let error = response["error"].as_str().expect("an error message");
    assert!(error.starts_with("request: not valid JSON: "), "{error}");
    assert_eq!(setup.list(), before);
    // The data path still runs on the old tables.
    assert_eq!(who_has(&setup.peer("vm1"), 1, ip(3)), mac(3));
}

#[test]
fn adding_the_same_thing_again_changes_nothing() {
    let (mut setup, _remote) = programmed("again");
    let before = setup.list();
    let result = setup.ok(json!({"op": "add_port", "port": vm_port("vm1", 1)}));
    assert_eq!(result["changed"], json!(false));
    let result = setup.ok(json!({"op": "set_flood", "switch": "net1", "flood": ["127.0.0.2"]}));
    assert_eq!(result["changed"], json!(false));
    assert_eq!(setup.list(), before);
}

#[test]
fn counters_count_per_port_and_drops_by_reason() {
    let (mut setup, _remote) = programmed("counters");
    let (vm1, vm2) = (setup.peer("vm1"), setup.peer("vm2"));
    let frame = udp_frame(mac(1), mac(2), ip(1), ip(2));
    vm1.inject(&frame);
    assert_eq!(receive(&vm2).len(), 1);
    // VM 1 claims VM 2's MAC: port security drops it.
    vm1.inject(&udp_frame(mac(2), mac(1), ip(1), ip(2)));
    // An ARP reply proves the spoofed frame before it was handled.
    who_has(&vm1, 1, ip(2));

    let counters = setup.ok(json!({"op": "counters"}));
    let port = |name: &str| {
        counters["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == json!(name))
            .cloned()
            .unwrap_or_else(|| panic!("port {name} in {counters}"))
    };
    let len = u64::try_from(frame.len()).expect("length");
    assert_eq!(port("vm1")["rx_packets"], json!(3), "{counters}");
    assert_eq!(port("vm1")["tx_packets"], json!(1), "the ARP reply");
    assert_eq!(port("vm2")["tx_packets"], json!(1));
    assert_eq!(port("vm2")["tx_bytes"], json!(len));
    assert_eq!(port("vm2")["rx_packets"], json!(0));
    assert_eq!(port("vxlan0")["tx_packets"], json!(0));
    let drops = counters["drops"].as_object().expect("drops");
    assert_eq!(
        drops.len(),
        DropReason::ALL.len(),
        "every reason, zeros too"
    );
    for reason in DropReason::ALL {
        let expected = u64::from(*reason == DropReason::SpoofedMac);
        assert_eq!(
            drops[reason.as_str()],
            json!(expected),
            "{}",
            reason.as_str()
        );
    }
}

#[test]
fn learned_macs_are_listed_by_name() {
    let (mut setup, _remote) = programmed("macs");
    let mut open = vm_port("vm4", 4);
    open["port_security"] = json!(false);
    setup.ok(json!({"op": "add_port", "port": open}));
    let vm4 = setup.peer("vm4");
    let stranger = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
    vm4.inject(&udp_frame(stranger, mac(1), ip(4), ip(1)));
    assert_eq!(receive(&setup.peer("vm1")).len(), 1);
    let macs = setup.ok(json!({"op": "macs"}));
    let entries = macs.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{macs}");
    assert_eq!(entries[0]["switch"], json!("net1"));
    assert_eq!(entries[0]["mac"], json!(stranger.to_string()));
    assert_eq!(entries[0]["location"], json!("port"));
    assert_eq!(entries[0]["port"], json!("vm4"));
    assert!(entries[0]["age_ms"].is_u64());
}

#[test]
fn a_removed_port_gets_no_more_traffic() {
    let (mut setup, remote) = programmed("remove");
    let (vm1, vm2) = (setup.peer("vm1"), setup.peer("vm2"));
    let to_vm2 = udp_frame(mac(1), mac(2), ip(1), ip(2));
    vm1.inject(&to_vm2);
    assert_eq!(receive(&vm2).len(), 1);

    setup.ok(json!({"op": "remove_port", "name": "vm2"}));
    assert!(setup.daemon.memory_peer("vm2").is_none());
    vm1.inject(&to_vm2);
    // VM 2's MAC is unknown now, so the frame floods: to the remote host, not to VM 2.
    let (vni, inner) = remote.receive();
    assert_eq!((vni, inner), (100, to_vm2));
    // Its address is forgotten by the ARP responder (the request floods too), and the port is
    // gone from the counters.
    vm1.inject(&arp_request(mac(1), ip(1), ip(2)));
    let (_, flooded) = remote.receive();
    assert_eq!(flooded, arp_request(mac(1), ip(1), ip(2)));
    assert!(vm2.drain().is_empty(), "nothing reached the removed port");
    let counters = setup.ok(json!({"op": "counters"}));
    let names: Vec<&Value> = counters["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("vxlan0"), &json!("vm1")]);

    // Records and switches come and go the same way.
    setup.ok(json!({"op": "remove_record", "switch": "net1", "mac": mac(3).to_string()}));
    setup.ok(json!({"op": "remove_port", "name": "vm1"}));
    setup.ok(json!({"op": "remove_switch", "name": "net1"}));
    setup.ok(json!({"op": "remove_port", "name": "vxlan0"}));
    let empty = SwitchConfig::default().to_value();
    assert_eq!(setup.list(), empty);
}

#[test]
fn the_socket_serves_many_clients() {
    let (mut setup, _remote) = programmed("clients");
    let expected = setup.list();
    let path = setup.daemon.control_path().to_path_buf();
    // A client that connects and says nothing holds no one up.
    let idle = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    for _ in 0..200 {
        let mut client = Client::connect(&path).expect("connect");
        assert_eq!(client.call(&json!({"op": "list"})).expect("list"), expected);
    }
    // Several at once, each with several requests on one connection.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            #[expect(clippy::disallowed_methods, reason = "test: concurrent clients")]
            std::thread::spawn(move || {
                let mut client = Client::connect(&path).expect("connect");
                for _ in 0..20 {
                    client.call(&json!({"op": "counters"})).expect("counters");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread");
    }
    drop(idle);
    // A client that hangs up mid-request does no harm either.
    {
        use std::io::Write;
        let mut rude = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        rude.write_all(b"{\"op\": \"li").expect("write");
    }
    assert_eq!(setup.list(), expected);
    // Forwarding never stopped.
    assert_eq!(who_has(&setup.peer("vm1"), 1, ip(3)), mac(3));
}

#[test]
fn starts_from_a_config_file_and_cleans_up() {
    let config = SwitchConfig::from_toml(
        r#"
        [[switch]]
        name = "net1"
        local_vlan = 10
        segment = "local"

        [[port]]
        name = "a"
        type = "memory"
        switch = "net1"
        mac = "fa:16:3e:00:00:01"
        ips = ["10.0.0.1"]

        [[port]]
        name = "b"
        type = "memory"
        switch = "net1"
        mac = "fa:16:3e:00:00:02"
        ips = ["10.0.0.2"]
        "#,
    )
    .expect("config");
    let dir = scratch("file");
    let path = dir.join("ctl.sock");
    let daemon = Daemon::start(config.clone(), &path).expect("daemon starts");
    let mut client = Client::connect(&path).expect("connect");
    let list = client.call(&json!({"op": "list"})).expect("list");
    assert_eq!(
        SwitchConfig::from_value(&list).expect("list is a config"),
        config
    );
    let a = daemon.memory_peer("a").expect("a memory port");
    assert_eq!(who_has(&a, 1, ip(2)), mac(2));

    // A second daemon on the same socket is refused; the first keeps it.
    match Daemon::start(SwitchConfig::default(), &path) {
        Err(DaemonError::InUse { .. }) => {}
        other => panic!("a second daemon started: {other:?}"),
    }
    assert!(client.call(&json!({"op": "list"})).is_ok());

    daemon.shutdown();
    assert!(!path.exists(), "the socket file is removed");
    assert!(
        client.call(&json!({"op": "list"})).is_err(),
        "and no one answers"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_or_a_failing_device_stops_the_start() {
    let dir = scratch("badstart");
    let path = dir.join("ctl.sock");
    // A stale socket file (no one listening) is replaced...
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    // ...but a configuration the switch refuses leaves nothing behind.
    let config = SwitchConfig::from_toml(
        "[[switch]]\nname = \"a\"\nlocal_vlan = 1\nsegment = \"vxlan:1\"\n",
    )
    .expect("readable");
    let error = Daemon::start(config, &path).expect_err("refused");
    assert_eq!(
        error.to_string(),
        r#"switch "a".segment: no Vxlan tunnel port"#
    );
    assert!(!path.exists());
    // A device that cannot be opened names its port.
    let config = SwitchConfig::from_toml(
        "[[port]]\nname = \"v\"\ntype = \"vxlan\"\nlocal_ip = \"192.0.2.123\"\nport = 4789\n",
    )
    .expect("readable");
    let error = Daemon::start(config, &path).expect_err("refused");
    assert!(
        error
            .to_string()
            .starts_with(r#"port "v": cannot bind UDP 192.0.2.123:4789"#),
        "{error}"
    );
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_busy_polling_switch_forwards_and_stops_the_same() {
    // busy_poll_us keeps the forwarding thread polling (and yielding) after each frame rather
    // than sleeping: forwarding, answering, the control socket and stopping work the same.
    let config = SwitchConfig::from_toml(
        "busy_poll_us = 20000\n\
         [[switch]]\nname = \"net1\"\nlocal_vlan = 1\nsegment = \"local\"\n",
    )
    .expect("config");
    assert_eq!(config.busy_poll_us, 20_000);
    let mut setup = Setup::new("busy", config);
    setup.ok(json!({"op": "add_port", "port": vm_port("vm1", 1)}));
    setup.ok(json!({"op": "add_port", "port": vm_port("vm2", 2)}));
    assert_eq!(setup.list()["busy_poll_us"], 20_000);
    let (vm1, vm2) = (setup.peer("vm1"), setup.peer("vm2"));
    for _ in 0..3 {
        let frame = udp_frame(mac(1), mac(2), ip(1), ip(2));
        vm1.inject(&frame);
        assert_eq!(receive(&vm2), vec![frame]);
        assert_eq!(who_has(&vm2, 2, ip(1)), mac(1));
    }
    // Dropping the daemon stops the forwarding thread, busy or not.
    let started = now();
    drop(setup);
    assert!(now() - started < Duration::from_secs(5), "stops promptly");
}

/// What `list` shows for port `name`, to edit into a `replace`.
fn port_in<'a>(config: &'a mut Value, name: &str) -> &'a mut Value {
    config["port"]
        .as_array_mut()
        .expect("ports")
        .iter_mut()
        .find(|p| p["name"] == json!(name))
        .expect("the port")
}

#[test]
fn replace_keeps_unchanged_devices_and_what_was_learned() {
    let (mut setup, _remote) = programmed("replace");
    // Learn an address behind a port without port security.
    let mut open = vm_port("vm4", 4);
    open["port_security"] = json!(false);
    setup.ok(json!({"op": "add_port", "port": open}));
    let stranger = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
    setup
        .peer("vm4")
        .inject(&udp_frame(stranger, mac(1), ip(4), ip(1)));
    assert_eq!(receive(&setup.peer("vm1")).len(), 1);
    let learned = setup.ok(json!({"op": "macs"}));
    assert_eq!(learned.as_array().map(Vec::len), Some(1), "{learned}");

    // The same configuration again: nothing changes, not even the generation.
    let config = setup.list();
    let before = setup.ok(json!({"op": "replace", "config": config.clone()}));
    assert_eq!(before["changed"], json!(false));
    let again = setup.ok(json!({"op": "replace", "config": config.clone()}));
    assert_eq!(again, before);

    // VM 1 gets a second address, VM 2 goes, a local network with VM 5 comes.
    let (vm1, vm2) = (setup.peer("vm1"), setup.peer("vm2"));
    let mut next = config;
    port_in(&mut next, "vm1")["ips"] = json!([ip(1).to_string(), ip(11).to_string()]);
    next["port"]
        .as_array_mut()
        .expect("ports")
        .retain(|p| p["name"] != json!("vm2"));
    next["switch"]
        .as_array_mut()
        .expect("switches")
        .push(json!({"name": "net2", "local_vlan": 2, "segment": "local"}));
    let mut vm5 = vm_port("vm5", 5);
    vm5["switch"] = json!("net2");
    next["port"].as_array_mut().expect("ports").push(vm5);
    let result = setup.ok(json!({"op": "replace", "config": next.clone()}));
    assert_eq!(result["changed"], json!(true));
    assert!(result["generation"].as_u64() > before["generation"].as_u64());
    assert_eq!(
        setup.list(),
        SwitchConfig::from_value(&next).unwrap().to_value()
    );

    // VM 1 kept its device (the peer taken before still works) and has its new address.
    assert_eq!(who_has(&setup.peer("vm4"), 4, ip(11)), mac(1));
    assert_eq!(who_has(&vm1, 1, ip(4)), mac(4));
    // VM 2's device is closed; VM 5 is there.
    assert!(setup.daemon.memory_peer("vm2").is_none());
    vm1.inject(&udp_frame(mac(1), mac(2), ip(1), ip(2)));
    assert!(vm2.drain().is_empty());
    assert!(setup.daemon.memory_peer("vm5").is_some());
    // net1 kept its name and segment, so what it learned stays.
    assert_eq!(
        learned_without_age(&setup.ok(json!({"op": "macs"}))),
        learned_without_age(&learned)
    );
    let status = setup.ok(json!({"op": "status"}));
    let expected: Vec<Value> = ["vxlan0", "vm1", "vm4", "vm5"]
        .iter()
        .map(|name| {
            let kind = if *name == "vxlan0" { "vxlan" } else { "memory" };
            json!({"name": name, "type": kind, "up": true})
        })
        .collect();
    assert_eq!(status, json!({"ports": expected}));
}

/// `macs` as it would read now: the same entries, ages left out (they moved on).
fn learned_without_age(learned: &Value) -> Value {
    let mut learned = learned.clone();
    for entry in learned.as_array_mut().expect("a list") {
        entry["age_ms"] = Value::Null;
    }
    learned
}

#[test]
fn replace_reopens_a_changed_device() {
    let (mut setup, remote) = programmed("reopen");
    let other = Remote::new();
    let mut next = setup.list();
    // The tunnel port moves to another UDP port: a new socket; the remote host there gets
    // the tunnel traffic from now on. With one source port it sends from the port it is bound
    // to, which shows the new socket sent.
    port_in(&mut next, "vxlan0")["port"] = json!(other.port);
    port_in(&mut next, "vxlan0")["source_ports"] = json!(1);
    setup.ok(json!({"op": "replace", "config": next}));
    let vm1 = setup.peer("vm1");
    let to_vm3 = udp_frame(mac(1), mac(3), ip(1), ip(3));
    vm1.inject(&to_vm3);
    let mut buf = [0u8; 2048];
    let (len, from) = other.socket.recv_from(&mut buf).expect("a VXLAN datagram");
    assert_eq!(from.port(), other.port, "sent from the new socket's port");
    let (vni, inner) = wire::encap::decapsulate_vxlan(&buf[..len]).expect("VXLAN");
    assert_eq!((vni.get(), &buf[inner]), (100, &to_vm3[..]));
    remote
        .socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    assert!(
        remote.socket.recv_from(&mut buf).is_err(),
        "the old port is quiet"
    );
}

#[test]
fn each_flow_leaves_the_vxlan_port_from_one_source_port() {
    let (mut setup, remote) = programmed("sport");
    let vm1 = setup.peer("vm1");
    // Eight flows from VM 1 to VM 3 behind the remote host, told apart by their UDP ports.
    let flow = |n: u16, seq: u8| {
        wire::build::udp_ipv4(mac(1), mac(3), ip(1), ip(3), (5000 + n, 6000), &[seq; 8])
    };
    // The pool socket each flow leaves from, as the VXLAN socket picks it.
    let pick = |n: u16, pool: u16| wire::vxlan::source_port(&flow(n, 0)) % pool;
    assert!(
        (0..8).any(|n| pick(n, 4) != pick(0, 4)),
        "the flows hash to more than one of four sockets"
    );
    let mut send_and_receive = |pool: u16| {
        let mut next = setup.list();
        port_in(&mut next, "vxlan0")["source_ports"] = json!(pool);
        // The same address and port with another pool: the old socket is closed first.
        setup.ok(json!({"op": "replace", "config": next}));
        for seq in 0..3 {
            for n in 0..8 {
                vm1.inject(&flow(n, seq));
            }
        }
        let mut ports: HashMap<u16, u16> = HashMap::new();
        let mut buf = [0u8; 2048];
        for _ in 0..24 {
            let (len, from) = remote.socket.recv_from(&mut buf).expect("a VXLAN datagram");
            let (_, inner) = wire::encap::decapsulate_vxlan(&buf[..len]).expect("VXLAN");
            let n = wire::udp::Packet::new_checked(&buf[inner][34..])
                .expect("UDP")
                .src_port()
                - 5000;
            let port = *ports.entry(n).or_insert_with(|| from.port());
            assert_eq!(from.port(), port, "flow {n} keeps its source port");
        }
        assert_eq!(ports.len(), 8, "every flow arrived");
        // Flows the hash puts on one socket share its port; the others' differ.
        for (a, port_a) in &ports {
            for (b, port_b) in &ports {
                assert_eq!(pick(*a, pool) == pick(*b, pool), port_a == port_b);
            }
        }
        ports
    };
    let spread = send_and_receive(4);
    assert!(
        spread.values().all(|&port| port != remote.port),
        "a pool sends from ports of its own"
    );
    let single = send_and_receive(1);
    assert!(single.values().all(|&port| port == remote.port));
}

#[test]
fn a_bad_replace_names_the_field_and_changes_nothing() {
    let (mut setup, _remote) = programmed("badreplace");
    let before = setup.list();
    let dhcp = |subnet: Value| {
        let mut config = before.clone();
        config["switch"][0]["dhcp"] = json!([subnet]);
        json!({"op": "replace", "config": config})
    };
    let good = json!({"cidr": "10.0.0.0/24", "server_ip": "10.0.0.254", "server_mac": "fa:16:3e:ff:00:01"});
    let with = |key: &str, value: Value| {
        let mut subnet = good.clone();
        subnet[key] = value;
        subnet
    };
    let mut orphan = before.clone();
    port_in(&mut orphan, "vm1")["switch"] = json!("nope");
    let cases = [
        (
            dhcp(with("server_ip", json!("10.1.0.1"))),
            r#"switch "net1".dhcp[0].server_ip: 10.1.0.1 is not in 10.0.0.0/24"#,
        ),
        (
            dhcp(with("cidr", json!("2001:db8::/64"))),
            r#"switch "net1".dhcp[0].cidr: 2001:db8::/64 is an IPv6 prefix"#,
        ),
        (
            dhcp(with("mtu", json!(20))),
            r#"switch "net1".dhcp[0].mtu: must be 68-65535, got 20"#,
        ),
        (
            dhcp(with("routes", json!([{"destination": "10.5.0.0/16"}]))),
            r#"switch "net1".dhcp[0].routes[0].nexthop: missing"#,
        ),
        (
            dhcp(with("lease_secs", json!(0))),
            r#"switch "net1".dhcp[0].lease_secs: must be 1-4294967295 seconds"#,
        ),
        (
            dhcp(with("server_mac", json!("01:00:5e:00:00:01"))),
            r#"switch "net1".dhcp[0].server_mac: 01:00:5e:00:00:01 is a multicast address"#,
        ),
        (
            dhcp(with("colour", json!("red"))),
            r#"switch "net1".dhcp[0].colour: unknown field"#,
        ),
        (
            json!({"op": "replace", "config": orphan}),
            r#"port "vm1".switch: no switch named "nope""#,
        ),
        (json!({"op": "replace"}), "config: missing"),
        (
            json!({"op": "replace", "config": []}),
            "config: expected a table of fields, got a list",
        ),
    ];
    for (request, expected) in cases {
        let error = setup.refused(request.clone());
        assert!(
            error.starts_with(expected),
            "{request}\n  expected {expected:?}\n       got {error:?}"
        );
        assert_eq!(setup.list(), before, "{request} changed something");
    }
    // Two subnets that overlap.
    let mut config = before.clone();
    config["switch"][0]["dhcp"] = json!([good.clone(), with("cidr", json!("10.0.0.128/25"))]);
    let mut second = with("cidr", json!("10.0.0.128/25"));
    second["server_ip"] = json!("10.0.0.129");
    config["switch"][0]["dhcp"] = json!([good, second]);
    assert_eq!(
        setup.refused(json!({"op": "replace", "config": config})),
        r#"switch "net1".dhcp[1].cidr: 10.0.0.128/25 overlaps 10.0.0.0/24"#
    );
}

/// A trunk (memory port `trunk` on net0 with subport 1 on net1) and a plain VM on each of
/// net0, net1 and net2, all local networks.
fn trunk_config(subports: &[(u16, &str, u8)]) -> Value {
    let switches: Vec<Value> = (0..3)
        .map(|i| json!({"name": format!("net{i}"), "local_vlan": 10 + i, "segment": "local"}))
        .collect();
    let plain = |name: &str, switch: &str, last: u8| {
        json!({"name": name, "type": "memory", "switch": switch,
               "mac": mac(last).to_string(), "ips": [ip(last).to_string()]})
    };
    let mut trunk = plain("trunk", "net0", 1);
    trunk["subports"] = subports
        .iter()
        .map(|(vlan, switch, last)| {
            json!({"vlan": vlan, "switch": switch, "mac": mac(*last).to_string(),
                   "ips": [ip(*last).to_string()]})
        })
        .collect();
    json!({
        "switch": switches,
        "port": [trunk, plain("a", "net0", 10), plain("b", "net1", 11), plain("c", "net2", 12)],
    })
}

fn tagged(vid: u16, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 4];
    buf.extend_from_slice(frame);
    let start = wire::vlan::push_tag(&mut buf, 4, wire::EtherType::VLAN, vid).expect("push");
    buf[start..].to_vec()
}

/// Waits until `peer` has received `n` frames (or a few seconds passed); returns them.
fn receive_n(peer: &MemoryPeer, n: usize) -> Vec<Vec<u8>> {
    let deadline = now() + Duration::from_secs(5);
    let mut frames = Vec::new();
    while frames.len() < n && now() < deadline {
        frames.extend(peer.drain().into_iter().map(|(f, _)| f));
        std::thread::sleep(Duration::from_millis(2));
    }
    frames
}

#[test]
fn replace_adds_and_removes_subports_without_a_gap_on_the_others() {
    let mut setup = Setup::new("trunk", SwitchConfig::default());
    setup.ok(json!({"op": "replace", "config": trunk_config(&[(1, "net1", 21)])}));
    let listed = setup.list();
    assert_eq!(listed["port"][0]["subports"][0]["vlan"], json!(1));
    let (trunk, a, b, c) = (
        setup.peer("trunk"),
        setup.peer("a"),
        setup.peer("b"),
        setup.peer("c"),
    );
    // Steady traffic on the parent (untagged, to a) and on subport 1 (tagged 1, to b) from
    // another thread while subport 2 comes and goes.
    const FRAMES: usize = 400;
    let sender = {
        let trunk = trunk.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "test: traffic while the control side changes the port"
        )]
        std::thread::spawn(move || {
            for _ in 0..FRAMES {
                trunk.inject(&udp_frame(mac(1), mac(10), ip(1), ip(10)));
                trunk.inject(&tagged(1, &udp_frame(mac(21), mac(11), ip(21), ip(11))));
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let with_two = trunk_config(&[(1, "net1", 21), (2, "net2", 22)]);
    let result = setup.ok(json!({"op": "replace", "config": with_two}));
    assert_eq!(result["changed"], json!(true));
    // Subport 2 works at once, through the same device: tagged 2 reaches c, c's answer
    // comes back tagged 2.
    let to_c = udp_frame(mac(22), mac(12), ip(22), ip(12));
    trunk.inject(&tagged(2, &to_c));
    assert_eq!(receive(&c), vec![to_c]);
    let from_c = udp_frame(mac(12), mac(22), ip(12), ip(22));
    c.inject(&from_c);
    let back: Vec<Vec<u8>> = receive(&trunk);
    assert_eq!(back, vec![tagged(2, &from_c)]);
    // And goes again: VLAN 2 is now nobody's.
    setup.ok(json!({"op": "replace", "config": trunk_config(&[(1, "net1", 21)])}));
    trunk.inject(&tagged(2, &udp_frame(mac(22), mac(12), ip(22), ip(12))));
    sender.join().expect("sender");
    let to_a = receive_n(&a, FRAMES);
    let to_b = receive_n(&b, FRAMES);
    assert_eq!((to_a.len(), to_b.len()), (FRAMES, FRAMES), "nothing lost");
    assert_eq!(to_b[0], udp_frame(mac(21), mac(11), ip(21), ip(11)));
    let deadline = now() + Duration::from_secs(5);
    let counters = loop {
        let counters = setup.ok(json!({"op": "counters"}));
        if counters["drops"]["unknown_subport"] == json!(1) || now() > deadline {
            break counters;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(counters["drops"]["unknown_subport"], json!(1), "{counters}");
    assert!(c.drain().is_empty());
    // The device was never reopened: the peer taken at the start is still the port's.
    trunk.inject(&udp_frame(mac(1), mac(10), ip(1), ip(10)));
    assert_eq!(receive(&a).len(), 1);
    let status = setup.ok(json!({"op": "status"}));
    assert_eq!(
        status["ports"][0],
        json!({"name": "trunk", "type": "memory", "up": true})
    );
    // Learned and listed by the subport's name.
    let mut open = trunk_config(&[(1, "net1", 21)]);
    open["port"][0]["subports"][0]["port_security"] = json!(false);
    setup.ok(json!({"op": "replace", "config": open}));
    let stranger = MacAddr([0x02, 0, 0, 0, 0, 0x77]);
    trunk.inject(&tagged(1, &udp_frame(stranger, mac(11), ip(21), ip(11))));
    assert_eq!(receive(&b).len(), 1);
    let macs = setup.ok(json!({"op": "macs"}));
    assert_eq!(macs[0]["port"], json!("trunk.1"), "{macs}");
    assert_eq!(macs[0]["switch"], json!("net1"));
}

#[test]
fn vsis_are_associated_and_deassociated_idempotently() {
    // A station port is an AF_PACKET socket: on `lo`, which needs CAP_NET_RAW.
    if switch::device::packet::PacketDevice::open("lo").is_err() {
        return;
    }
    let mut setup = Setup::new("vsi", SwitchConfig::default());
    setup.ok(json!({"op": "add_switch",
                    "switch": {"name": "net1", "local_vlan": 1, "segment": "local"}}));
    setup.ok(
        json!({"op": "add_port", "port": {"name": "lo", "type": "station",
                    "vdp_gating": true, "s_channels": [{"svid": 1, "reflective_relay": true}]}}),
    );
    let vsi = json!({"port": "lo.s1", "mac": "52:54:00:00:00:01", "vlan": 100, "switch": "net1"});
    let first = setup.ok(json!({"op": "associate_vsi", "vsi": vsi}));
    assert_eq!(first["changed"], json!(true));
    let again = setup.ok(json!({"op": "associate_vsi", "vsi": vsi}));
    assert_eq!(again["changed"], json!(false));
    assert_eq!(setup.list()["vsi"], json!([vsi]));
    // A VSI on a port that is not an S-channel, or on a switch that does not exist.
    let message = setup.refused(json!({"op": "associate_vsi", "vsi": {"port": "lo",
        "mac": "52:54:00:00:00:02", "vlan": 100, "switch": "net1"}}));
    assert!(message.starts_with("vsi.port: "), "{message}");
    let message = setup.refused(json!({"op": "associate_vsi", "vsi": {"port": "lo.s1",
        "mac": "52:54:00:00:00:02", "vlan": 100, "switch": "net9"}}));
    assert!(message.starts_with("vsi.switch: "), "{message}");
    let gone = json!({"op": "deassociate_vsi", "port": "lo.s1", "mac": "52:54:00:00:00:01",
                      "vlan": 100});
    assert_eq!(setup.ok(gone.clone())["changed"], json!(true));
    assert_eq!(setup.ok(gone)["changed"], json!(false));
    assert!(setup.list().get("vsi").is_none());

    // Migration: the VSI associates on another channel before the old one de-associates; the
    // MAC moves, and the old channel's late De-Associate changes nothing.
    setup.ok(json!({"op": "replace", "config": {
        "switch": [{"name": "net1", "local_vlan": 1, "segment": "local"}],
        "port": [{"name": "lo", "type": "station", "vdp_gating": true,
                  "s_channels": [{"svid": 1}, {"svid": 2}]}]}}));
    setup.ok(json!({"op": "associate_vsi", "vsi": vsi}));
    let moved = json!({"port": "lo.s2", "mac": "52:54:00:00:00:01", "vlan": 100,
                       "switch": "net1"});
    assert_eq!(
        setup.ok(json!({"op": "associate_vsi", "vsi": moved}))["changed"],
        json!(true)
    );
    assert_eq!(setup.list()["vsi"], json!([moved]));
    let late = json!({"op": "deassociate_vsi", "port": "lo.s1", "mac": "52:54:00:00:00:01"});
    assert_eq!(setup.ok(late)["changed"], json!(false));
    assert_eq!(setup.list()["vsi"], json!([moved]));
}

/// The `tx_packets` of port `name` in the daemon's counters.
fn tx_packets(setup: &mut Setup, name: &str) -> u64 {
    let counters = setup.ok(json!({"op": "counters"}));
    counters["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == json!(name))
        .and_then(|p| p["tx_packets"].as_u64())
        .unwrap_or_else(|| panic!("port {name} in {counters}"))
}

/// Waits (a few seconds at most) until port `name` has sent a frame; returns how many it has.
fn sent_by(setup: &mut Setup, name: &str) -> u64 {
    let deadline = now() + Duration::from_secs(5);
    loop {
        let sent = tx_packets(setup, name);
        if sent > 0 || now() > deadline {
            assert!(sent > 0, "{name} sent nothing");
            return sent;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True when port `name` is listed up in `status`.
fn is_up(setup: &mut Setup, name: &str) -> bool {
    let status = setup.ok(json!({"op": "status"}));
    status["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .any(|p| p["name"] == json!(name) && p["up"] == json!(true))
}

/// A VSI MAC of these tests (apart from the other tests' on `lo`).
fn vsi_mac(last: u8) -> String {
    format!("52:54:00:00:0a:{last:02x}")
}

fn set_s_channels(port: &str, list: Value) -> Value {
    json!({"op": "set_s_channels", "port": port, "s_channels": list})
}

fn local_switch(name: &str, local_vlan: u16) -> Value {
    json!({"name": name, "local_vlan": local_vlan, "segment": "local"})
}

/// A bridge: net1 with memory port `srv`, and station port `lo` (gated) with `channels`, if
/// given.
fn bridge_config(switches: &[&str], channels: Option<Value>, vsis: Option<Value>) -> Value {
    let mut srv = vm_port("srv", 1);
    srv["port_security"] = json!(false);
    let mut station = json!({"name": "lo", "type": "station", "vdp_gating": true});
    if let Some(channels) = channels {
        station["s_channels"] = channels;
    }
    let switches: Vec<Value> = switches
        .iter()
        .zip(1..)
        .map(|(name, vlan)| local_switch(name, vlan))
        .collect();
    let mut config = json!({"switch": switches, "port": [srv, station]});
    if let Some(vsis) = vsis {
        config["vsi"] = vsis;
    }
    config
}

#[test]
fn set_s_channels_changes_a_station_ports_channels_and_keeps_its_device() {
    // A station port is an AF_PACKET socket: on `lo`, which needs CAP_NET_RAW.
    if switch::device::packet::PacketDevice::open("lo").is_err() {
        return;
    }
    let mut setup = Setup::new("schan-bridge", SwitchConfig::default());
    let one = json!([{"svid": 1, "reflective_relay": false}]);
    setup.ok(json!({"op": "replace",
                    "config": bridge_config(&["net1"], Some(one.clone()), None)}));
    let on_s1 = json!({"port": "lo.s1", "mac": vsi_mac(1), "vlan": 100, "switch": "net1"});
    setup.ok(json!({"op": "associate_vsi", "vsi": on_s1}));
    // Traffic to the VSI leaves by `lo` (and comes back in there, where gating drops it).
    let to_vsi = udp_frame(mac(1), vsi_mac(1).parse().expect("MAC"), ip(1), ip(2));
    setup.peer("srv").inject(&to_vsi);
    let sent = sent_by(&mut setup, "lo");

    let two = json!([{"svid": 1, "reflective_relay": false},
                     {"svid": 20, "reflective_relay": true}]);
    let first = setup.ok(set_s_channels("lo", two.clone()));
    assert_eq!(first["changed"], json!(true));
    let again = setup.ok(set_s_channels("lo", two.clone()));
    assert_eq!(
        again,
        json!({"changed": false, "generation": first["generation"]}),
        "the same list changes nothing"
    );
    assert_eq!(setup.list()["port"][1]["s_channels"], two);
    let on_s20 = json!({"port": "lo.s20", "mac": vsi_mac(2), "vlan": 0, "switch": "net1"});
    setup.ok(json!({"op": "associate_vsi", "vsi": on_s20}));
    // Back to channel 1 alone: channel 20's VSI goes with it, channel 1's stays.
    let result = setup.ok(set_s_channels("lo", one.clone()));
    assert_eq!(result["changed"], json!(true));
    let list = setup.list();
    assert_eq!(list["vsi"], json!([on_s1]));
    assert_eq!(list["port"][1]["s_channels"], one);
    // The device was never reopened: its counters go on from where they were.
    assert!(tx_packets(&mut setup, "lo") >= sent);
    assert!(is_up(&mut setup, "lo"));

    // Errors name the field and change nothing.
    let cases = [
        (
            set_s_channels("srv", one.clone()),
            r#"port: port "srv" is a memory port; only station and uplink ports have S-channels"#,
        ),
        (
            set_s_channels("nope", one.clone()),
            r#"port: no port named "nope""#,
        ),
        (
            set_s_channels("lo", json!([{"svid": 1}, {"svid": 1}])),
            r#"port "lo".s_channels[1].svid: 1 is used by another S-channel of this port"#,
        ),
        (
            set_s_channels("lo", json!([{"svid": 0}])),
            "s_channels[0].svid: must be 1-4094, got 0",
        ),
        (
            set_s_channels("lo", json!([{"svid": 1, "colour": "red"}])),
            "s_channels[0].colour: unknown field; expected one of svid, reflective_relay",
        ),
        (
            set_s_channels("lo", json!([{"svid": 20, "physical_network": "evb"}])),
            r#"s_channels[0].physical_network: unknown field; port "lo" is a station port"#,
        ),
        (
            json!({"op": "set_s_channels", "port": "lo"}),
            "s_channels: missing",
        ),
        (
            set_s_channels("lo", json!({"svid": 1})),
            "s_channels: expected a list, got a table",
        ),
    ];
    for (request, expected) in cases {
        let message = setup.refused(request);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}\n     got {message:?}"
        );
    }
    assert_eq!(setup.list(), list);
}

#[test]
fn set_s_channels_changes_an_uplinks_edge_relays_and_keeps_its_device() {
    // An uplink is an AF_PACKET socket: on `lo`, which needs CAP_NET_RAW.
    if switch::device::packet::PacketDevice::open("lo").is_err() {
        return;
    }
    let mut setup = Setup::new("schan-station", SwitchConfig::default());
    let mut vm1 = vm_port("vm1", 1);
    vm1["switch"] = json!("a");
    setup.ok(json!({"op": "replace", "config": {
        "switch": [{"name": "a", "local_vlan": 1, "segment": "vlan:evb:100"}],
        "port": [vm1, {"name": "lo", "type": "uplink", "physical_network": "evb",
                       "relay": "vepa"}],
    }}));
    let channel20 = json!([{"svid": 20, "physical_network": "evb2", "relay": "veb"}]);
    let first = setup.ok(set_s_channels("lo", channel20.clone()));
    assert_eq!(first["changed"], json!(true));
    assert_eq!(
        setup.ok(set_s_channels("lo", channel20.clone())),
        json!({"changed": false, "generation": first["generation"]})
    );
    // A network of evb2 now has an uplink: channel 20, out of `lo` S-tagged.
    setup.ok(json!({"op": "add_switch",
                    "switch": {"name": "b", "local_vlan": 2, "segment": "vlan:evb2:300"}}));
    let mut vm2 = vm_port("vm2", 2);
    vm2["switch"] = json!("b");
    vm2["port_security"] = json!(false);
    setup.ok(json!({"op": "add_port", "port": vm2}));
    setup
        .peer("vm2")
        .inject(&udp_frame(mac(2), mac(9), ip(2), ip(9)));
    let sent = sent_by(&mut setup, "lo");
    let list = setup.list();
    assert_eq!(list["port"][1]["s_channels"], channel20);

    let cases = [
        (
            set_s_channels("lo", json!([])),
            r#"switch "b".segment: no uplink serves physical network "evb2""#,
        ),
        (
            set_s_channels("lo", json!([{"svid": 1, "physical_network": "evb2"}])),
            "s_channels[0].svid: 1 is the default S-channel",
        ),
        (
            set_s_channels("lo", json!([{"svid": 20, "physical_network": "evb"}])),
            r#"port "lo".s_channels[0].physical_network: "evb" is already served by uplink "lo""#,
        ),
        (
            set_s_channels("lo", json!([{"svid": 20}])),
            r#"s_channels[0].physical_network: missing; port "lo" is an uplink"#,
        ),
        (
            set_s_channels(
                "lo",
                json!([{"svid": 20, "physical_network": "evb2", "relay": "vepb"}]),
            ),
            r#"s_channels[0].relay: expected veb or vepa, got "vepb""#,
        ),
    ];
    for (request, expected) in cases {
        let message = setup.refused(request);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}\n     got {message:?}"
        );
    }
    assert_eq!(setup.list(), list);

    // evb2 moves to channel 30, a VEPA relay now: the device stays.
    let channel30 = json!([{"svid": 30, "physical_network": "evb2", "relay": "vepa"}]);
    assert_eq!(
        setup.ok(set_s_channels("lo", channel30.clone()))["changed"],
        json!(true)
    );
    assert!(tx_packets(&mut setup, "lo") >= sent);
    assert!(is_up(&mut setup, "lo"));

    // `replace` without the uplink's `s_channels` keeps them (network b still has its
    // uplink): nothing to change.
    let mut config = setup.list();
    port_in(&mut config, "lo")
        .as_object_mut()
        .expect("a port")
        .remove("s_channels");
    let kept = setup.ok(json!({"op": "replace", "config": config.clone()}));
    assert_eq!(kept["changed"], json!(false));
    assert_eq!(setup.list()["port"][1]["s_channels"], channel30);
    // A kept channel whose physical network the new configuration serves otherwise goes,
    // without an error: here `lo` itself serves evb2 now (a new device), and evb goes.
    let moved = json!({
        "switch": [{"name": "b", "local_vlan": 2, "segment": "vlan:evb2:300"}],
        "port": [port_in(&mut config, "vm2").clone(),
                 {"name": "lo", "type": "uplink", "physical_network": "evb2"}],
    });
    assert_eq!(
        setup.ok(json!({"op": "replace", "config": moved}))["changed"],
        json!(true)
    );
    let list = setup.list();
    assert!(list["port"][1].get("s_channels").is_none(), "{list}");
}

#[test]
fn replace_keeps_the_vsis_and_s_channels_it_does_not_list() {
    // A station port is an AF_PACKET socket: on `lo`, which needs CAP_NET_RAW.
    if switch::device::packet::PacketDevice::open("lo").is_err() {
        return;
    }
    let mut setup = Setup::new("schan-replace", SwitchConfig::default());
    // The agent's part: switches and ports; the EVB daemon's: channels and VSIs.
    setup.ok(json!({"op": "replace", "config": bridge_config(&["net1", "net2"], None, None)}));
    let channels = json!([{"svid": 1, "reflective_relay": true},
                          {"svid": 20, "reflective_relay": false}]);
    setup.ok(set_s_channels("lo", channels.clone()));
    let on_s1 = json!({"port": "lo.s1", "mac": vsi_mac(3), "vlan": 100, "switch": "net1"});
    let on_s20 = json!({"port": "lo.s20", "mac": vsi_mac(4), "vlan": 0, "switch": "net2"});
    for vsi in [&on_s1, &on_s20] {
        setup.ok(json!({"op": "associate_vsi", "vsi": vsi}));
    }
    let to_vsi = udp_frame(mac(1), vsi_mac(3).parse().expect("MAC"), ip(1), ip(2));
    setup.peer("srv").inject(&to_vsi);
    let sent = sent_by(&mut setup, "lo");

    // The agent adds a switch: its configuration has no `vsi` and no `s_channels`.
    let agent = bridge_config(&["net1", "net2", "net3"], None, None);
    let result = setup.ok(json!({"op": "replace", "config": agent.clone()}));
    assert_eq!(result["changed"], json!(true));
    let list = setup.list();
    assert_eq!(list["port"][1]["s_channels"], channels);
    assert_eq!(list["vsi"], json!([on_s1, on_s20]));
    assert_eq!(list["switch"].as_array().map(Vec::len), Some(3));
    let again = setup.ok(json!({"op": "replace", "config": agent}));
    assert_eq!(again["changed"], json!(false));
    // A switch gone takes its VSIs with it, and that is no error.
    setup.ok(json!({"op": "replace", "config": bridge_config(&["net1", "net3"], None, None)}));
    let list = setup.list();
    assert_eq!(list["vsi"], json!([on_s1]));
    assert_eq!(list["port"][1]["s_channels"], channels);
    // A VSI listed on a channel the request leaves to the daemon is fine.
    let listed = json!({"port": "lo.s20", "mac": vsi_mac(5), "vlan": 7, "switch": "net3"});
    setup.ok(json!({"op": "replace", "config":
        bridge_config(&["net1", "net3"], None, Some(json!([listed])))}));
    let list = setup.list();
    assert_eq!(list["vsi"], json!([listed]));
    assert_eq!(list["port"][1]["s_channels"], channels);
    // Listed, even empty, they replace.
    let only_one = json!([{"svid": 1, "reflective_relay": false}]);
    setup.ok(json!({"op": "replace", "config":
        bridge_config(&["net1"], Some(only_one.clone()), Some(json!([])))}));
    let list = setup.list();
    assert!(list.get("vsi").is_none(), "{list}");
    assert_eq!(list["port"][1]["s_channels"], only_one);
    // All along the station port kept its device.
    assert!(tx_packets(&mut setup, "lo") >= sent);
    assert!(is_up(&mut setup, "lo"));
    // A kept VSI whose channel is gone with its port goes too.
    setup.ok(set_s_channels("lo", channels.clone()));
    setup.ok(json!({"op": "associate_vsi", "vsi": on_s1}));
    let mut srv = vm_port("srv", 1);
    srv["port_security"] = json!(false);
    setup.ok(json!({"op": "replace", "config":
        {"switch": [local_switch("net1", 1)], "port": [srv]}}));
    let list = setup.list();
    assert!(list.get("vsi").is_none(), "{list}");
    assert_eq!(list["port"].as_array().map(Vec::len), Some(1));
}

/// The inner frame `inner` of VNI `vni` as a VXLAN payload.
fn vxlan_payload(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut buf = switch::PacketBuf::from_frame(inner);
    let (data, start, end) = buf.raw_mut();
    let vni = wire::Vni::new(vni).expect("a VNI");
    let start = wire::encap::push_vxlan(data, start, end, vni).expect("room for the header");
    buf.set_start(start);
    buf.frame().to_vec()
}

#[test]
fn a_tunnel_port_is_read_however_ports_came_and_went_before_it() {
    // The forwarding thread reads a device when epoll says its descriptor is ready, and finds
    // it by its place among the attached devices, which a removal before it shifts. Memory
    // ports have no descriptor and are read every round; a VXLAN socket is read only when
    // epoll names it. The port before it must have a descriptor too: a raw GRE socket, which
    // needs root (CI is root).
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP a_tunnel_port_is_read_however_ports_came_and_went_before_it: needs root");
        return;
    }
    let remote = Remote::new();
    let mut setup = Setup::new("ready", SwitchConfig::default());
    setup.ok(json!({"op": "add_port", "port": {"name": "early", "type": "gre", "local_ip": "127.0.0.1"}}));
    setup.ok(json!({"op": "add_port", "port": {
        "name": "vxlan0", "type": "vxlan", "local_ip": "127.0.0.1", "port": remote.port,
    }}));
    let net1 = json!({"name": "net1", "local_vlan": 1, "segment": "vxlan:100", "flood": [REMOTE.to_string()]});
    setup.ok(json!({"op": "add_switch", "switch": net1}));
    setup.ok(json!({"op": "add_port", "port": vm_port("vm2", 2)}));
    let vm2 = setup.peer("vm2");
    let daemon = SocketAddr::from(([127, 0, 0, 1], remote.port));
    for round in 0..4u8 {
        let frame = udp_frame(mac(3), mac(2), ip(3), ip(2 + round));
        remote
            .socket
            .send_to(&vxlan_payload(100, &frame), daemon)
            .expect("send");
        assert_eq!(receive(&vm2), [frame], "round {round}");
        // Shift the VXLAN port's place: remove the port before it, add one after it and
        // remove that one again.
        let change = match round {
            0 => json!({"op": "remove_port", "name": "early"}),
            1 => json!({"op": "add_port", "port": vm_port("vm5", 5)}),
            2 => json!({"op": "remove_port", "name": "vm5"}),
            _ => break,
        };
        setup.ok(change);
    }
}
