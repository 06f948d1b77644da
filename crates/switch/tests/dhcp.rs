//! The DHCP responder inside the switch: client frames from memory ports go through the whole
//! pipeline (port security, the punt, egress), built from a TOML configuration as the daemon
//! reads it. The replies are checked with `wire`'s parsers and dissected by tshark, an
//! independent parser (CI installs it; `WEFT_SKIP_TSHARK=1` skips that part knowingly).

use std::{io::Write, net::Ipv4Addr, process::Command, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use switch::{
    daemon::SwitchConfig,
    device::{Medium, memory},
    dhcp::Outcome,
    pipeline::DropReason,
    switch::Switch,
};
use wire::{
    MacAddr, arp,
    dhcpv4::{self, DhcpOption, Message, MessageType},
};

const CONFIG: &str = r#"
[[switch]]
name = "net1"
local_vlan = 1
segment = "local"
dhcp = [{ cidr = "10.0.0.0/24", server_ip = "10.0.0.1", server_mac = "fa:16:3e:ff:00:01",
          router = "10.0.0.1", dns = ["10.0.0.2"], mtu = 1450, lease_secs = 600,
          domain = "tenant.example",
          routes = [{ destination = "169.254.169.254/32", nexthop = "10.0.0.3" }] }]

[[port]]
name = "vm1"
type = "memory"
switch = "net1"
mac = "fa:16:3e:00:00:05"
ips = ["10.0.0.5"]

# Its address is in no DHCP subnet: its DHCP is the tenant's business.
[[port]]
name = "vm2"
type = "memory"
switch = "net1"
mac = "fa:16:3e:00:00:06"
ips = ["10.9.0.6"]
"#;

const VM1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 5]);
const VM2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 6]);
const SERVER_MAC: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0xff, 0, 1]);
const VM1_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

struct Host {
    switch: Switch,
    vm1: memory::MemoryPeer,
    vm2: memory::MemoryPeer,
    now: Duration,
}

impl Host {
    fn new() -> Self {
        let config = SwitchConfig::from_toml(CONFIG).expect("config");
        let tables = config.tables(1).expect("tables");
        let mut switch = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
        let (d1, vm1) = memory::pair(Medium::Ethernet);
        let (d2, vm2) = memory::pair(Medium::Ethernet);
        switch.attach("vm1", Box::new(d1));
        switch.attach("vm2", Box::new(d2));
        Self {
            switch,
            vm1,
            vm2,
            now: Duration::ZERO,
        }
    }

    /// Sends `frame` from `port` and returns what each VM received.
    fn send(&mut self, from: &memory::MemoryPeer, frame: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        from.inject(frame);
        self.now += Duration::from_millis(1);
        while self.switch.poll(self.now) > 0 {}
        let take = |peer: &memory::MemoryPeer| -> Vec<Vec<u8>> {
            peer.drain().into_iter().map(|(f, _)| f).collect()
        };
        (take(&self.vm1), take(&self.vm2))
    }

    fn dhcp(&self, outcome: Outcome) -> u64 {
        self.switch.counters().dhcp(outcome)
    }
}

/// A client message from `mac`, broadcast from 0.0.0.0 unless `ciaddr` is set (then unicast
/// from it to the server).
fn client(mac: MacAddr, kind: MessageType, ciaddr: Ipv4Addr, opts: &[DhcpOption]) -> Vec<u8> {
    let mut message = Message::new_with_id(
        0x1234_5678,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac.0,
    );
    message.opts_mut().insert(DhcpOption::MessageType(kind));
    for opt in opts {
        message.opts_mut().insert(opt.clone());
    }
    let repr = dhcpv4::Repr { message };
    let mut payload = vec![0; 600];
    let len = repr.emit_padded(&mut payload).expect("emit");
    payload.truncate(len);
    let (dst_mac, dst) = if ciaddr.is_unspecified() {
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    } else {
        (SERVER_MAC, SERVER_IP)
    };
    wire::build::udp_ipv4(mac, dst_mac, ciaddr, dst, (68, 67), &payload)
}

fn reply(frame: &[u8]) -> Message {
    let eth = wire::ethernet::Frame::new_checked(frame).expect("ethernet");
    let ip = wire::ipv4::Packet::new_checked(eth.payload()).expect("ipv4");
    let udp = wire::udp::Packet::new_checked(ip.payload()).expect("udp");
    dhcpv4::Repr::parse(udp.payload()).expect("dhcp").message
}

#[test]
fn the_switch_answers_its_ports_dhcp_and_nobody_else_sees_it() {
    let mut host = Host::new();
    let vm1 = host.vm1.clone();
    let vm2 = host.vm2.clone();
    let (to_vm1, to_vm2) = host.send(
        &vm1,
        &client(VM1, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]),
    );
    assert!(to_vm2.is_empty(), "the DISCOVER was not flooded");
    assert_eq!(to_vm1.len(), 1);
    let offer = reply(&to_vm1[0]);
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), VM1_IP);
    let request = client(
        VM1,
        MessageType::Request,
        Ipv4Addr::UNSPECIFIED,
        &[
            DhcpOption::RequestedIpAddress(VM1_IP),
            DhcpOption::ServerIdentifier(SERVER_IP),
        ],
    );
    let (to_vm1, to_vm2) = host.send(&vm1, &request);
    assert!(to_vm2.is_empty());
    assert_eq!(reply(&to_vm1[0]).opts().msg_type(), Some(MessageType::Ack));
    // A renewal goes unicast to the server's MAC, which the switch gives out for its ARP.
    let (to_vm1, _) = host.send(&vm1, &wire::build::arp_request(VM1, VM1_IP, SERVER_IP));
    let arp_reply = arp::Repr::parse(&arp::Packet::new_checked(&to_vm1[0][14..]).expect("arp"))
        .expect("ARP reply");
    assert_eq!(arp_reply.source_hardware_addr, SERVER_MAC);
    let (to_vm1, to_vm2) = host.send(&vm1, &client(VM1, MessageType::Request, VM1_IP, &[]));
    assert!(to_vm2.is_empty());
    assert_eq!(reply(&to_vm1[0]).opts().msg_type(), Some(MessageType::Ack));
    // Another address: NAK.
    let wrong = client(
        VM1,
        MessageType::Request,
        Ipv4Addr::UNSPECIFIED,
        &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 77))],
    );
    let (to_vm1, _) = host.send(&vm1, &wrong);
    assert_eq!(reply(&to_vm1[0]).opts().msg_type(), Some(MessageType::Nak));
    // RELEASE: counted, consumed, no answer.
    let (to_vm1, to_vm2) = host.send(&vm1, &client(VM1, MessageType::Release, VM1_IP, &[]));
    assert!(to_vm1.is_empty() && to_vm2.is_empty());
    assert_eq!(
        [
            Outcome::Offer,
            Outcome::Ack,
            Outcome::Nak,
            Outcome::Released
        ]
        .map(|o| host.dhcp(o)),
        [1, 2, 1, 1]
    );

    // VM 2's address is in no DHCP subnet: its DISCOVER floods like any broadcast.
    let discover = client(VM2, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
    let (to_vm1, to_vm2) = host.send(&vm2, &discover);
    assert_eq!(to_vm1, vec![discover]);
    assert!(to_vm2.is_empty());
    assert_eq!(host.dhcp(Outcome::Offer), 1);
}

#[test]
fn port_security_still_checks_a_dhcp_clients_mac() {
    let mut host = Host::new();
    let vm1 = host.vm1.clone();
    let stranger = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 0x99]);
    let (to_vm1, to_vm2) = host.send(
        &vm1,
        &client(stranger, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]),
    );
    assert!(to_vm1.is_empty() && to_vm2.is_empty());
    assert_eq!(host.switch.counters().dropped(DropReason::SpoofedMac), 1);
    assert_eq!(host.dhcp(Outcome::Offer), 0);
    // A malformed DHCP message (cut inside its options) is dropped and counted.
    let mut cut = client(VM1, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
    cut.truncate(14 + 20 + 8 + 240 + 2);
    let udp_len = u16::try_from(cut.len() - 34).unwrap();
    cut[16..18].copy_from_slice(&(udp_len + 20).to_be_bytes());
    wire::ipv4::Packet::new_unchecked(&mut cut[14..34]).fill_checksum();
    cut[38..40].copy_from_slice(&udp_len.to_be_bytes());
    cut[40..42].fill(0);
    let (to_vm1, to_vm2) = host.send(&vm1, &cut);
    assert!(to_vm1.is_empty() && to_vm2.is_empty());
    assert_eq!(host.dhcp(Outcome::Malformed), 1);
    assert_eq!(host.switch.counters().dropped(DropReason::Malformed), 1);
}

/// Writes frames as a classic pcap (Ethernet) for tshark.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for frame in frames {
        let len = u32::try_from(frame.len()).unwrap();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// tshark's reading of the OFFER and ACK the switch sent: every field an independent
/// dissector sees, checksums verified.
#[test]
fn tshark_dissects_the_switchs_replies() {
    let mut host = Host::new();
    let vm1 = host.vm1.clone();
    let (offer, _) = host.send(
        &vm1,
        &client(VM1, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]),
    );
    let (ack, _) = host.send(&vm1, &client(VM1, MessageType::Request, VM1_IP, &[]));
    let frames = vec![offer[0].clone(), ack[0].clone()];
    let dir = std::env::temp_dir().join(format!("weft-dhcp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("replies.pcap");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&pcap(&frames))
        .unwrap();
    let fields = [
        "eth.src",
        "eth.dst",
        "ip.src",
        "ip.dst",
        "ip.checksum.status",
        "udp.srcport",
        "udp.dstport",
        "udp.checksum.status",
        "dhcp.option.dhcp",
        "dhcp.ip.your",
        "dhcp.ip.client",
        "dhcp.option.dhcp_server_id",
        "dhcp.option.subnet_mask",
        "dhcp.option.router",
        "dhcp.option.domain_name_server",
        "dhcp.option.ip_address_lease_time",
        "dhcp.option.renewal_time_value",
        "dhcp.option.rebinding_time_value",
        "dhcp.option.interface_mtu",
        "dhcp.option.broadcast_address",
        "dhcp.option.domain_name",
        "dhcp.option.classless_static_route",
        "_ws.expert",
    ];
    let mut command = Command::new("tshark");
    command.args(["-n", "-r"]).arg(&path).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if std::env::var_os("WEFT_SKIP_TSHARK").is_some() => {
            eprintln!("skipping: tshark not runnable ({err}) and WEFT_SKIP_TSHARK is set");
            return;
        }
        Err(err) => panic!("tshark is needed for this test (apt-get install tshark): {err}"),
    };
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let field = |row: &[&str], name: &str| {
        let i = fields.iter().position(|f| *f == name).unwrap();
        row[i].to_owned()
    };
    for (row, kind, dst_ip, ciaddr) in [
        (&rows[0], "2", "10.0.0.5", "0.0.0.0"),
        (&rows[1], "5", "10.0.0.5", "10.0.0.5"),
    ] {
        let expect = [
            ("eth.src", "fa:16:3e:ff:00:01"),
            ("eth.dst", "fa:16:3e:00:00:05"),
            ("ip.src", "10.0.0.1"),
            ("ip.dst", dst_ip),
            // 1: good (tshark verified it).
            ("ip.checksum.status", "1"),
            ("udp.srcport", "67"),
            ("udp.dstport", "68"),
            ("udp.checksum.status", "1"),
            ("dhcp.option.dhcp", kind),
            ("dhcp.ip.your", "10.0.0.5"),
            ("dhcp.ip.client", ciaddr),
            ("dhcp.option.dhcp_server_id", "10.0.0.1"),
            ("dhcp.option.subnet_mask", "255.255.255.0"),
            ("dhcp.option.router", "10.0.0.1"),
            ("dhcp.option.domain_name_server", "10.0.0.2"),
            ("dhcp.option.ip_address_lease_time", "600"),
            ("dhcp.option.renewal_time_value", "300"),
            ("dhcp.option.rebinding_time_value", "525"),
            ("dhcp.option.interface_mtu", "1450"),
            ("dhcp.option.broadcast_address", "10.0.0.255"),
            ("dhcp.option.domain_name", "tenant.example"),
            // Wireshark splits option 121 into its routes (RFC 3442: width, significant
            // octets, router): 169.254.169.254/32 via 10.0.0.3, the default via 10.0.0.1.
            (
                "dhcp.option.classless_static_route",
                "20a9fea9fe0a000003,000a000001",
            ),
            // No malformed-packet or other expert warning.
            ("_ws.expert", ""),
        ];
        for (name, value) in expect {
            assert_eq!(field(row, name), value, "{name} in {text}");
        }
    }
}
