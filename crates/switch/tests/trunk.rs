//! Trunk ports (VLAN-aware VMs, seed 002): a VM port whose untagged frames are its own and
//! whose frames tagged N are subport N's, each with its own logical switch and port security.
//! The switch is built from a TOML configuration as the daemon reads it, with memory devices
//! the test plays the VMs through; frames are checked with `wire`'s parsers.

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use switch::{
    PacketBuf,
    daemon::SwitchConfig,
    device::{Medium, memory},
    dhcp::Outcome,
    mac::MacTable,
    pipeline::{self, DropReason, Verdict},
    switch::Switch,
    tables::PortId,
};
use wire::{
    EtherType, MacAddr, arp,
    dhcpv4::{self, DhcpOption, Message, MessageType},
    vlan,
};

/// The seed's trunk VM: its parent port on net0 (untagged), subport 1 on net1 and subport 2
/// on net2; plain VMs a (net0), b (net1) and c (net2); net1 answers DHCP.
const CONFIG: &str = r#"
[[switch]]
name = "net0"
local_vlan = 10
segment = "local"

[[switch]]
name = "net1"
local_vlan = 11
segment = "local"
dhcp = [{ cidr = "10.0.5.0/24", server_ip = "10.0.5.2", server_mac = "fa:16:3e:cc:4b:83",
          router = "10.0.5.1" }]

[[switch]]
name = "net2"
local_vlan = 12
segment = "local"

[[port]]
name = "trunk"
type = "memory"
switch = "net0"
mac = "fa:16:3e:90:7a:ca"
ips = ["10.0.4.5"]
subports = [
  { vlan = 1, switch = "net1", mac = "fa:16:3e:cc:b9:27", ips = ["10.0.5.7"] },
  { vlan = 2, switch = "net2", mac = "fa:16:3e:25:d2:c9", ips = ["10.0.6.7"] },
]

[[port]]
name = "a"
type = "memory"
switch = "net0"
mac = "fa:16:3e:00:00:0a"
ips = ["10.0.4.10"]

[[port]]
name = "b"
type = "memory"
switch = "net1"
mac = "fa:16:3e:00:00:0b"
ips = ["10.0.5.11"]

[[port]]
name = "c"
type = "memory"
switch = "net2"
mac = "fa:16:3e:00:00:0c"
ips = ["10.0.6.12"]
"#;

const PARENT: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0x90, 0x7a, 0xca]);
const SUB1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0xcc, 0xb9, 0x27]);
const SUB2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0x25, 0xd2, 0xc9]);
const A: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 0x0b]);
const C: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 0x0c]);
const PARENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 5);
const SUB1_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 5, 7);
const SUB2_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 6, 7);
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 4, 10);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 5, 11);
const C_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 6, 12);
const DHCP_MAC: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0xcc, 0x4b, 0x83]);
const DHCP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 5, 2);

/// A switch with a memory device per port of `config`, and the test's ends of them.
struct Host {
    switch: Switch,
    peers: Vec<(String, memory::MemoryPeer)>,
    now: Duration,
}

impl Host {
    fn new(config: &str) -> Self {
        let config = SwitchConfig::from_toml(config).expect("config");
        let tables = config.tables(1).expect("tables");
        let mut switch = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
        let mut peers = Vec::new();
        for port in &config.ports {
            let (device, peer) = memory::pair(Medium::Ethernet);
            switch.attach(&port.name, Box::new(device));
            peers.push((port.name.clone(), peer));
        }
        Self {
            switch,
            peers,
            now: Duration::ZERO,
        }
    }

    fn peer(&self, name: &str) -> &memory::MemoryPeer {
        &self
            .peers
            .iter()
            .find(|(n, _)| n == name)
            .expect("port exists")
            .1
    }

    /// Sends `frame` from port `from`; returns what every port received, by name.
    fn send(&mut self, from: &str, frame: &[u8]) -> Received {
        self.peer(from).inject(frame);
        self.now += Duration::from_millis(1);
        while self.switch.poll(self.now) > 0 {}
        Received(
            self.peers
                .iter()
                .map(|(name, peer)| {
                    let frames = peer.drain().into_iter().map(|(f, _)| f).collect();
                    (name.clone(), frames)
                })
                .collect(),
        )
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.switch.counters().dropped(reason)
    }
}

/// What each port received.
#[derive(Debug)]
struct Received(Vec<(String, Vec<Vec<u8>>)>);

impl Received {
    fn at(&self, port: &str) -> &[Vec<u8>] {
        self.0
            .iter()
            .find(|(n, _)| n == port)
            .map_or(&[], |(_, f)| f.as_slice())
    }

    /// The ports that received anything.
    fn ports(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, f)| !f.is_empty())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

fn udp(src: MacAddr, dst: MacAddr, from: Ipv4Addr, to: Ipv4Addr) -> Vec<u8> {
    wire::build::udp_ipv4(src, dst, from, to, (5000, 6000), b"trunk")
}

/// `frame` with an 802.1Q (or other `tpid`) tag `vid` pushed.
fn tagged_with(tpid: EtherType, vid: u16, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 4];
    buf.extend_from_slice(frame);
    let start = vlan::push_tag(&mut buf, 4, tpid, vid).expect("push");
    buf[start..].to_vec()
}

fn tagged(vid: u16, frame: &[u8]) -> Vec<u8> {
    tagged_with(EtherType::VLAN, vid, frame)
}

/// The VLAN id of a frame with exactly one 802.1Q tag, and the frame without it; `None` for
/// an untagged frame.
fn untag(frame: &[u8]) -> Option<(u16, Vec<u8>)> {
    let (stack, offset) = vlan::TagStack::parse(frame).expect("tags");
    let tag = stack.outer()?;
    assert_eq!(
        (stack.len(), tag.tpid),
        (1, EtherType::VLAN),
        "one 802.1Q tag"
    );
    let mut inner = frame[..12].to_vec();
    inner.extend_from_slice(&frame[offset - 2..]);
    Some((tag.repr.vid, inner))
}

#[test]
fn untagged_frames_are_the_parents_and_tagged_ones_the_subports() {
    let mut host = Host::new(CONFIG);
    // Untagged: the parent's network.
    let to_a = udp(PARENT, A, PARENT_IP, A_IP);
    let got = host.send("trunk", &to_a);
    assert_eq!(got.at("a"), std::slice::from_ref(&to_a));
    assert_eq!(got.ports(), ["a"]);
    // Tagged 1: stripped, on net1 to b; tagged 2: on net2 to c.
    let to_b = udp(SUB1, B, SUB1_IP, B_IP);
    let got = host.send("trunk", &tagged(1, &to_b));
    assert_eq!(got.at("b"), [to_b]);
    assert_eq!(got.ports(), ["b"]);
    let to_c = udp(SUB2, C, SUB2_IP, C_IP);
    assert_eq!(host.send("trunk", &tagged(2, &to_c)).at("c"), [to_c]);
    // And back: b's answer reaches the trunk tagged 1, c's tagged 2, a's untagged.
    let from_b = udp(B, SUB1, B_IP, SUB1_IP);
    let got = host.send("b", &from_b);
    assert_eq!(got.at("trunk"), [tagged(1, &from_b)]);
    let from_c = udp(C, SUB2, C_IP, SUB2_IP);
    assert_eq!(host.send("c", &from_c).at("trunk"), [tagged(2, &from_c)]);
    let from_a = udp(A, PARENT, A_IP, PARENT_IP);
    assert_eq!(host.send("a", &from_a).at("trunk"), [from_a]);
    // Networks stay apart: a frame on net1 for a's MAC (on net0) floods net1 only.
    let got = host.send("trunk", &tagged(1, &udp(SUB1, A, SUB1_IP, A_IP)));
    assert_eq!(got.ports(), ["b"]);
    assert!(host.switch.counters().drops.iter().all(|&n| n == 0));
}

#[test]
fn a_tag_no_subport_has_and_spoofing_on_a_subport_are_dropped_by_reason() {
    let mut host = Host::new(CONFIG);
    // VLAN 3 belongs to no subport.
    let got = host.send("trunk", &tagged(3, &udp(SUB1, B, SUB1_IP, B_IP)));
    assert!(got.ports().is_empty());
    assert_eq!(host.dropped(DropReason::UnknownSubport), 1);
    // Each subport has its own port security: the parent's MAC or address on VLAN 1, or
    // subport 2's, is spoofing there.
    for (mac, ip, reason) in [
        (PARENT, SUB1_IP, DropReason::SpoofedMac),
        (SUB2, SUB1_IP, DropReason::SpoofedMac),
        (SUB1, PARENT_IP, DropReason::SpoofedIp),
        (SUB1, SUB2_IP, DropReason::SpoofedIp),
    ] {
        let before = host.dropped(reason);
        let got = host.send("trunk", &tagged(1, &udp(mac, B, ip, B_IP)));
        assert!(got.ports().is_empty(), "{mac} {ip}: {got:?}");
        assert_eq!(host.dropped(reason), before + 1, "{mac} {ip}");
    }
    // ... and untagged, a subport's MAC is spoofing on the parent.
    host.send("trunk", &udp(SUB1, A, SUB1_IP, A_IP));
    assert_eq!(host.dropped(DropReason::SpoofedMac), 3);
    let arp = wire::build::arp_request(SUB1, PARENT_IP, A_IP);
    host.send("trunk", &tagged(1, &arp));
    assert_eq!(host.dropped(DropReason::SpoofedArp), 1);
    // A tag on a port without subports, an 802.1ad tag or two tags on a trunk: unexpected.
    host.send("a", &tagged(1, &udp(A, PARENT, A_IP, PARENT_IP)));
    let ad = tagged_with(EtherType::QINQ, 1, &udp(SUB1, B, SUB1_IP, B_IP));
    host.send("trunk", &ad);
    host.send(
        "trunk",
        &tagged(1, &tagged(1, &udp(SUB1, B, SUB1_IP, B_IP))),
    );
    assert_eq!(host.dropped(DropReason::UnexpectedTag), 3);
    assert_eq!(host.dropped(DropReason::UnknownSubport), 1);
}

/// Subports 1 and 2 and the parent all on net0, with b there too: each VLAN of the trunk is a
/// bridge port of its own.
const SHARED: &str = r#"
[[switch]]
name = "net0"
local_vlan = 10
segment = "local"

[[port]]
name = "trunk"
type = "memory"
switch = "net0"
mac = "fa:16:3e:90:7a:ca"
ips = ["10.0.4.5"]
subports = [
  { vlan = 1, switch = "net0", mac = "fa:16:3e:cc:b9:27", ips = ["10.0.4.7"], port_security = false },
  { vlan = 2, switch = "net0", mac = "fa:16:3e:25:d2:c9", ips = ["10.0.4.8"] },
]

[[port]]
name = "b"
type = "memory"
switch = "net0"
mac = "fa:16:3e:00:00:0b"
ips = ["10.0.4.11"]
"#;

#[test]
fn flooding_and_learning_treat_each_vlan_of_a_trunk_as_its_own_port() {
    let mut host = Host::new(SHARED);
    let sub1_ip = Ipv4Addr::new(10, 0, 4, 7);
    let sub2_ip = Ipv4Addr::new(10, 0, 4, 8);
    // A broadcast from subport 1 goes to b, to the parent (untagged) and to subport 2
    // (tagged 2), never back to subport 1.
    let broadcast = udp(SUB1, MacAddr::BROADCAST, sub1_ip, Ipv4Addr::BROADCAST);
    let got = host.send("trunk", &tagged(1, &broadcast));
    assert_eq!(got.at("b"), std::slice::from_ref(&broadcast));
    let mut back: Vec<Option<u16>> = got
        .at("trunk")
        .iter()
        .map(|f| {
            untag(f).map(|(vid, inner)| {
                assert_eq!(inner, broadcast);
                vid
            })
        })
        .collect();
    back.sort_unstable();
    assert_eq!(back, [None, Some(2)]);
    // One from the parent goes to both subports, tagged, and not back untagged.
    let broadcast = udp(PARENT, MacAddr::BROADCAST, PARENT_IP, Ipv4Addr::BROADCAST);
    let got = host.send("trunk", &broadcast);
    let mut back: Vec<Option<u16>> = got
        .at("trunk")
        .iter()
        .map(|f| untag(f).map(|t| t.0))
        .collect();
    back.sort_unstable();
    assert_eq!(back, [Some(1), Some(2)]);
    // Unicast from subport 1 to subport 2 hairpins through the device, retagged.
    let to_sub2 = udp(SUB1, SUB2, sub1_ip, sub2_ip);
    let got = host.send("trunk", &tagged(1, &to_sub2));
    assert_eq!(got.at("trunk"), [tagged(2, &to_sub2)]);
    assert_eq!(got.ports(), ["trunk"]);
    // Subport 1 has no port security: a MAC behind it is learned there, on its VLAN...
    let behind = MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    host.send(
        "trunk",
        &tagged(1, &udp(behind, B, sub1_ip, Ipv4Addr::new(10, 0, 4, 11))),
    );
    let to_behind = udp(B, behind, Ipv4Addr::new(10, 0, 4, 11), sub1_ip);
    let got = host.send("b", &to_behind);
    assert_eq!(got.at("trunk"), [tagged(1, &to_behind)]);
    // ...so a frame from there to it is a loopback, not a flood.
    let got = host.send("trunk", &tagged(1, &udp(SUB1, behind, sub1_ip, sub1_ip)));
    assert!(got.ports().is_empty());
    assert_eq!(host.dropped(DropReason::Loopback), 1);
    let macs: Vec<String> = host
        .switch
        .macs()
        .entries(Duration::ZERO)
        .map(|(_, mac, location, _)| format!("{mac} {location:?}"))
        .collect();
    // The trunk is port 0, b port 1, subports 1 and 2 are ports 2 and 3.
    assert_eq!(macs, [format!("{behind} Local(PortId(2))")]);
}

fn client(mac: MacAddr, kind: MessageType, opts: &[DhcpOption]) -> Vec<u8> {
    let mut message = Message::new_with_id(
        0x0bad_cafe,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac.0,
    );
    message.opts_mut().insert(DhcpOption::MessageType(kind));
    for opt in opts {
        message.opts_mut().insert(opt.clone());
    }
    let mut payload = vec![0; 600];
    let len = dhcpv4::Repr { message }
        .emit_padded(&mut payload)
        .expect("emit");
    payload.truncate(len);
    wire::build::udp_ipv4(
        mac,
        MacAddr::BROADCAST,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        (68, 67),
        &payload,
    )
}

fn dhcp_reply(frame: &[u8]) -> Message {
    let eth = wire::ethernet::Frame::new_checked(frame).expect("ethernet");
    let ip = wire::ipv4::Packet::new_checked(eth.payload()).expect("ipv4");
    let udp = wire::udp::Packet::new_checked(ip.payload()).expect("udp");
    dhcpv4::Repr::parse(udp.payload()).expect("dhcp").message
}

#[test]
fn arp_and_dhcp_answers_to_a_subport_go_back_tagged() {
    let mut host = Host::new(CONFIG);
    // ARP through VLAN 1 for b: answered by the switch, tagged 1, with b's MAC.
    let got = host.send(
        "trunk",
        &tagged(1, &wire::build::arp_request(SUB1, SUB1_IP, B_IP)),
    );
    assert_eq!(got.ports(), ["trunk"]);
    let (vid, reply) = untag(&got.at("trunk")[0]).expect("tagged");
    assert_eq!(vid, 1);
    let arp = arp::Repr::parse(&arp::Packet::new_checked(&reply[14..]).expect("arp")).expect("arp");
    assert_eq!(
        (arp.source_hardware_addr, arp.source_protocol_addr),
        (B, B_IP)
    );
    // The same question untagged is about net0, where nobody has that address: it floods.
    let got = host.send("trunk", &wire::build::arp_request(PARENT, PARENT_IP, B_IP));
    assert_eq!(got.ports(), ["a"]);
    // DHCP through VLAN 1: the switch's responder on net1 offers subport 1's own address.
    let got = host.send(
        "trunk",
        &tagged(1, &client(SUB1, MessageType::Discover, &[])),
    );
    assert_eq!(got.ports(), ["trunk"], "answered, never flooded");
    let (vid, offer) = untag(&got.at("trunk")[0]).expect("tagged");
    assert_eq!(vid, 1);
    assert_eq!(&offer[..6], &SUB1.0);
    assert_eq!(&offer[6..12], &DHCP_MAC.0);
    let offer = dhcp_reply(&offer);
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), SUB1_IP);
    let request = client(
        SUB1,
        MessageType::Request,
        &[
            DhcpOption::RequestedIpAddress(SUB1_IP),
            DhcpOption::ServerIdentifier(DHCP_IP),
        ],
    );
    let got = host.send("trunk", &tagged(1, &request));
    let (_, ack) = untag(&got.at("trunk")[0]).expect("tagged");
    assert_eq!(dhcp_reply(&ack).opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(host.switch.counters().dhcp(Outcome::Ack), 1);
    // net2 has no DHCP: subport 2's DISCOVER floods net2 like any broadcast.
    let discover = client(SUB2, MessageType::Discover, &[]);
    let got = host.send("trunk", &tagged(2, &discover));
    assert_eq!(got.at("c"), [discover]);
    assert_eq!(host.switch.counters().dhcp(Outcome::Offer), 1);
}

#[test]
fn the_pipeline_decides_a_tagged_frame_without_a_device() {
    // The verdict alone, as the switch driver would get it: the trunk is port 0, subport 1 is
    // port 4 (subports follow every port).
    let config = SwitchConfig::from_toml(CONFIG).expect("config");
    let tables = config.tables(1).expect("tables");
    let mut macs = MacTable::new(Duration::from_secs(300));
    let now = Duration::ZERO;
    let sub1 = PortId(4);
    assert_eq!(tables.port(sub1).map(|p| p.name.as_str()), Some("trunk.1"));
    assert_eq!(tables.subport(PortId(0), 1), Some(sub1));
    assert!(tables.is_trunk(PortId(0)) && !tables.is_trunk(PortId(1)));
    let mut buf = PacketBuf::from_frame(&tagged(1, &udp(SUB1, B, SUB1_IP, B_IP)));
    let verdict = pipeline::process(&tables, &mut macs, PortId(0), &mut buf, now);
    assert_eq!(
        verdict,
        Verdict::Forward {
            port: PortId(2),
            vlan: None
        }
    );
    assert_eq!(buf.frame(), udp(SUB1, B, SUB1_IP, B_IP), "the tag is gone");
    let mut buf = PacketBuf::from_frame(&tagged(1, &udp(SUB1, MacAddr::BROADCAST, SUB1_IP, B_IP)));
    let verdict = pipeline::process(&tables, &mut macs, PortId(0), &mut buf, now);
    let net1 = tables
        .port(PortId(2))
        .and_then(|p| p.kind.vm())
        .map(|vm| vm.ls);
    assert_eq!(
        Some(verdict),
        net1.map(|ls| Verdict::Flood { ls, from: sub1 })
    );
    // No device is bound to a subport: a frame "from" it is from nowhere.
    let mut buf = PacketBuf::from_frame(&udp(SUB1, B, SUB1_IP, B_IP));
    let verdict = pipeline::process(&tables, &mut macs, sub1, &mut buf, now);
    assert_eq!(verdict, Verdict::Drop(DropReason::UnknownPort));
}
