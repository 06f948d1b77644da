//! The switch end to end over in-memory devices: two hosts joined by a simulated underlay.
//! Frames are built and checked with `wire`'s parsers; the real-device tests are in
//! `backends.rs` and the namespace tests drive the `weft switch` binary.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use switch::{
    buffer::Offload,
    device::{Medium, Offloads, Sent, memory},
    pipeline::DropReason,
    switch::Switch,
    tables::{
        Channel, Config, LogicalSwitch, LsId, Port, PortId, PortKind, Record, RelayMode, Segment,
        Tables, TunnelProtocol, VmPort,
    },
};
use wire::{
    EtherType, MacAddr, Vni, arp,
    build::{self, Tcp},
    gso::{self, Gso, GsoKind},
    tcp, vlan, vxlan,
};

const UNDERLAY_A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const UNDERLAY_B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn mac(last: u8) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, 0, 0, last])
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn vm(name: &str, ls: u16, mac: MacAddr, ip: IpAddr) -> Port {
    Port {
        name: name.into(),
        kind: PortKind::Vm(VmPort {
            ls: LsId(ls),
            mac,
            ips: vec![ip],
            allowed_pairs: vec![],
            port_security: true,
        }),
    }
}

fn ls(name: &str, local_vlan: u16, segment: Segment, flood: Vec<IpAddr>) -> LogicalSwitch {
    LogicalSwitch {
        name: name.into(),
        local_vlan,
        segment,
        flood,
        mac_limit: 1000,
        dhcp: vec![],
    }
}

/// One host: a switch with memory devices, and the test's ends of them.
struct Host {
    switch: Switch,
    peers: Vec<(String, memory::MemoryPeer)>,
    now: Duration,
}

impl Host {
    fn new(config: Config) -> Self {
        Self::with_offloads(config, &[])
    }

    /// A host whose ports named in `offloading` take offloads (as a TAP with
    /// `IFF_VNET_HDR` does).
    fn with_offloads(config: Config, offloading: &[&str]) -> Self {
        let tables = Tables::build(config.clone(), 1).expect("valid config");
        let mut switch = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
        let mut peers = Vec::new();
        for port in &config.ports {
            if let PortKind::Subport { .. } = port.kind {
                // Reached through its parent's device; it has none of its own.
                continue;
            }
            let medium = match port.kind {
                PortKind::Tunnel {
                    protocol: TunnelProtocol::Vxlan,
                    ..
                } => Medium::Vxlan,
                PortKind::Tunnel {
                    protocol: TunnelProtocol::Gre,
                    ..
                } => Medium::Gre,
                _ => Medium::Ethernet,
            };
            let offloads = if offloading.contains(&port.name.as_str()) {
                Offloads::ALL
            } else {
                Offloads::NONE
            };
            let (device, peer) = memory::pair_with_offloads(medium, offloads);
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

    fn send(&mut self, port: &str, frame: &[u8]) {
        self.peer(port).inject(frame);
        self.poll();
    }

    fn poll(&mut self) {
        self.now += Duration::from_millis(1);
        while self.switch.poll(self.now) > 0 {}
    }

    fn take(&self, port: &str) -> Vec<Vec<u8>> {
        self.peer(port)
            .drain()
            .into_iter()
            .map(|(frame, _)| frame)
            .collect()
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.switch.counters().dropped(reason)
    }
}

/// Moves everything each host's tunnel port sent to the other host, as the underlay would.
fn carry(a: &mut Host, b: &mut Host, tunnel: &str) -> usize {
    let mut moved = 0;
    for (frame, peer) in a.peer(tunnel).drain() {
        assert_eq!(peer, Some(UNDERLAY_B), "A sends to B");
        b.peer(tunnel).inject_from(&frame, Some(UNDERLAY_A));
        moved += 1;
    }
    for (frame, peer) in b.peer(tunnel).drain() {
        assert_eq!(peer, Some(UNDERLAY_A), "B sends to A");
        a.peer(tunnel).inject_from(&frame, Some(UNDERLAY_B));
        moved += 1;
    }
    a.poll();
    b.poll();
    moved
}

fn arp_request(src_mac: MacAddr, src_ip: IpAddr, target: IpAddr) -> Vec<u8> {
    build::arp_request(src_mac, v4(src_ip), v4(target))
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => panic!("these tests use IPv4 tenants"),
    }
}

fn udp_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: IpAddr,
    dst: IpAddr,
    payload: &[u8],
) -> Vec<u8> {
    build::udp_ipv4(src_mac, dst_mac, v4(src), v4(dst), (5000, 6000), payload)
}

/// Two hosts, two tenants with the same subnet (10.0.0.0/24, same IPs) on VNI 100 and 200,
/// plus a second VM of tenant 1 on host A; host A knows where tenant 1's VM2 is (a record).
fn two_hosts(segment_1: Segment, segment_2: Segment, protocol: TunnelProtocol) -> (Host, Host) {
    let tunnel = |local_ip| Port {
        name: "tun".into(),
        kind: PortKind::Tunnel { local_ip, protocol },
    };
    let a = Config {
        switches: vec![
            ls("tenant1", 1, segment_1.clone(), vec![UNDERLAY_B]),
            ls("tenant2", 2, segment_2.clone(), vec![UNDERLAY_B]),
        ],
        ports: vec![
            vm("vm1", 0, mac(1), ip(1)),
            vm("vm5", 0, mac(5), ip(5)),
            vm("t2vm1", 1, mac(0x21), ip(1)),
            tunnel(UNDERLAY_A),
        ],
        records: vec![Record {
            ls: LsId(0),
            ip: ip(2),
            mac: mac(2),
            remote: UNDERLAY_B,
        }],
        vsis: vec![],
    };
    let b = Config {
        switches: vec![
            ls("tenant1", 7, segment_1, vec![UNDERLAY_A]),
            ls("tenant2", 8, segment_2, vec![UNDERLAY_A]),
        ],
        ports: vec![
            vm("vm2", 0, mac(2), ip(2)),
            vm("t2vm2", 1, mac(0x22), ip(2)),
            tunnel(UNDERLAY_B),
        ],
        records: vec![],
        vsis: vec![],
    };
    (Host::new(a), Host::new(b))
}

fn vxlan_hosts() -> (Host, Host) {
    let vni = |n| Vni::new(n).unwrap();
    two_hosts(
        Segment::Vxlan(vni(100)),
        Segment::Vxlan(vni(200)),
        TunnelProtocol::Vxlan,
    )
}

#[test]
fn arp_for_a_known_record_is_answered_locally_and_never_flooded() {
    let (mut a, _b) = vxlan_hosts();
    a.send("vm1", &arp_request(mac(1), ip(1), ip(2)));
    let replies = a.take("vm1");
    assert_eq!(replies.len(), 1);
    let reply = arp::Repr::parse(&arp::Packet::new_checked(&replies[0][14..]).unwrap()).unwrap();
    assert_eq!(reply.operation, arp::Operation::REPLY);
    assert_eq!(
        (
            reply.source_hardware_addr,
            IpAddr::from(reply.source_protocol_addr)
        ),
        (mac(2), ip(2))
    );
    assert_eq!(reply.target_hardware_addr, mac(1));
    assert!(a.take("tun").is_empty(), "nothing crossed the underlay");
    assert!(a.take("vm5").is_empty(), "nothing flooded locally");
    // The switch also answers for local VM ports' addresses.
    a.send("vm1", &arp_request(mac(1), ip(1), ip(5)));
    assert_eq!(a.take("vm1").len(), 1);
    assert!(a.take("vm5").is_empty());
}

#[test]
fn unknown_arp_floods_within_the_logical_switch_only() {
    let (mut a, mut b) = vxlan_hosts();
    a.send("vm1", &arp_request(mac(1), ip(1), ip(77)));
    assert_eq!(a.take("vm5").len(), 1, "local member of the same network");
    assert!(a.take("t2vm1").is_empty(), "never the other tenant");
    assert_eq!(
        carry(&mut a, &mut b, "tun"),
        1,
        "one copy per remote endpoint"
    );
    assert_eq!(b.take("vm2").len(), 1);
    assert!(b.take("t2vm2").is_empty());
}

#[test]
fn unicast_crosses_the_underlay_in_vxlan_and_arrives_unchanged() {
    let (mut a, mut b) = vxlan_hosts();
    let frame = udp_frame(mac(1), mac(2), ip(1), ip(2), b"hello vm2");
    a.send("vm1", &frame);
    let sent = a.peer("tun").drain();
    assert_eq!(sent.len(), 1);
    let (vxlan_payload, peer) = &sent[0];
    assert_eq!(*peer, Some(UNDERLAY_B));
    let header =
        vxlan::Repr::parse(&vxlan::Packet::new_checked(&vxlan_payload[..]).unwrap()).unwrap();
    assert_eq!(header.vni.get(), 100);
    assert_eq!(&vxlan_payload[8..], &frame[..]);
    b.peer("tun").inject_from(vxlan_payload, Some(UNDERLAY_A));
    b.poll();
    assert_eq!(b.take("vm2"), vec![frame.clone()]);
    // VM2 answers; host B learned VM1 behind A from the tunnel and sends straight there.
    let answer = udp_frame(mac(2), mac(1), ip(2), ip(1), b"hello vm1");
    b.send("vm2", &answer);
    assert_eq!(carry(&mut a, &mut b, "tun"), 1);
    assert_eq!(a.take("vm1"), vec![answer]);
    assert!(a.take("vm5").is_empty());
}

#[test]
fn local_switching_learns_and_stops_flooding() {
    let (mut a, _b) = vxlan_hosts();
    // vm5 is a configured port, so vm1 reaches it directly; an unknown MAC floods.
    let to_vm5 = udp_frame(mac(1), mac(5), ip(1), ip(5), b"x");
    a.send("vm1", &to_vm5);
    assert_eq!(a.take("vm5"), vec![to_vm5]);
    assert!(a.take("tun").is_empty());
    let unknown = udp_frame(mac(1), mac(0x99), ip(1), ip(9), b"y");
    a.send("vm1", &unknown);
    assert_eq!(a.take("vm5").len(), 1);
    assert_eq!(a.take("tun").len(), 1);
}

#[test]
fn overlapping_tenants_stay_apart() {
    let (mut a, mut b) = vxlan_hosts();
    // Both tenants use 10.0.0.1 -> 10.0.0.2.
    let t2 = udp_frame(mac(0x21), MacAddr::BROADCAST, ip(1), ip(2), b"tenant2");
    a.send("t2vm1", &t2);
    assert!(a.take("vm1").is_empty() && a.take("vm5").is_empty());
    let sent = a.peer("tun").drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        vxlan::Packet::new_checked(&sent[0].0[..])
            .unwrap()
            .vni()
            .get(),
        200
    );
    b.peer("tun").inject_from(&sent[0].0, Some(UNDERLAY_A));
    b.poll();
    assert_eq!(b.take("t2vm2"), vec![t2]);
    assert!(b.take("vm2").is_empty(), "tenant 1 never sees tenant 2");
}

#[test]
fn nvgre_and_gre_key_networks_carry_frames_too() {
    for (seg1, seg2) in [
        (
            Segment::Nvgre(Vni::new(5001).unwrap()),
            Segment::Nvgre(Vni::new(5002).unwrap()),
        ),
        (Segment::Gre(0x1234_5678), Segment::Gre(0x1234_5679)),
    ] {
        let (mut a, mut b) = two_hosts(seg1.clone(), seg2, TunnelProtocol::Gre);
        let frame = udp_frame(mac(1), mac(2), ip(1), ip(2), b"over gre");
        a.send("vm1", &frame);
        let sent = a.peer("tun").drain();
        assert_eq!(sent.len(), 1, "{seg1}");
        let repr = wire::gre::Repr::parse(&wire::gre::Packet::new_checked(&sent[0].0[..]).unwrap())
            .unwrap();
        match seg1 {
            Segment::Nvgre(vsid) => assert_eq!(repr.as_nvgre().map(|n| n.vsid), Some(vsid)),
            Segment::Gre(key) => assert_eq!(repr.key, Some(key)),
            _ => unreachable!(),
        }
        b.peer("tun").inject_from(&sent[0].0, Some(UNDERLAY_A));
        b.poll();
        assert_eq!(b.take("vm2"), vec![frame], "{seg1}");
        assert!(b.take("t2vm2").is_empty());
    }
}

#[test]
fn spoofing_vm_gets_nothing_through() {
    let (mut a, _b) = vxlan_hosts();
    a.send(
        "vm1",
        &udp_frame(mac(9), mac(5), ip(1), ip(5), b"wrong mac"),
    );
    a.send("vm1", &udp_frame(mac(1), mac(5), ip(9), ip(5), b"wrong ip"));
    // Gratuitous ARP claiming VM5's address.
    let mut garp = arp_request(mac(1), ip(5), ip(5));
    a.send("vm1", &garp);
    // ARP whose sender MAC differs from the frame's source.
    garp = arp_request(mac(1), ip(1), ip(77));
    garp[22..28].copy_from_slice(&mac(5).0);
    a.send("vm1", &garp);
    assert!(a.take("vm5").is_empty() && a.take("tun").is_empty() && a.take("vm1").is_empty());
    assert_eq!(a.dropped(DropReason::SpoofedMac), 1);
    assert_eq!(a.dropped(DropReason::SpoofedIp), 1);
    assert_eq!(a.dropped(DropReason::SpoofedArp), 2);
}

#[test]
fn allowed_address_pairs_extend_what_a_port_may_send() {
    let mut config = Config {
        switches: vec![ls("net", 1, Segment::Local, vec![])],
        ports: vec![vm("vm1", 0, mac(1), ip(1)), vm("vm2", 0, mac(2), ip(2))],
        records: vec![],
        vsis: vec![],
    };
    if let PortKind::Vm(port) = &mut config.ports[0].kind {
        port.allowed_pairs
            .push((mac(1), "10.0.0.100/32".parse().unwrap()));
    }
    let mut host = Host::new(config);
    host.send("vm1", &udp_frame(mac(1), mac(2), ip(100), ip(2), b"vip"));
    assert_eq!(host.take("vm2").len(), 1);
    host.send(
        "vm1",
        &udp_frame(mac(1), mac(2), ip(101), ip(2), b"not a vip"),
    );
    assert!(host.take("vm2").is_empty());
}

#[test]
fn bad_tunnel_input_is_dropped_by_reason() {
    let (mut a, mut b) = vxlan_hosts();
    let frame = udp_frame(mac(1), mac(2), ip(1), ip(2), b"x");
    a.send("vm1", &frame);
    let good = a.peer("tun").drain().remove(0).0;
    // From an underlay address nobody told B about.
    b.peer("tun")
        .inject_from(&good, Some("192.0.2.99".parse().unwrap()));
    // A VNI no network uses.
    let mut wrong_vni = good.clone();
    wrong_vni[4..7].copy_from_slice(&[0, 0x03, 0xe7]);
    b.peer("tun").inject_from(&wrong_vni, Some(UNDERLAY_A));
    // The I flag clear.
    let mut no_i = good.clone();
    no_i[0] = 0;
    b.peer("tun").inject_from(&no_i, Some(UNDERLAY_A));
    // Cut in the middle of the inner Ethernet header.
    b.peer("tun").inject_from(&good[..15], Some(UNDERLAY_A));
    // Inner frame with a VLAN tag.
    let mut tagged = good[..8].to_vec();
    let mut inner = vec![0; 4];
    inner.extend_from_slice(&frame);
    let start = vlan::push_tag(&mut inner, 4, EtherType::VLAN, 5).unwrap();
    tagged.extend_from_slice(&inner[start..]);
    b.peer("tun").inject_from(&tagged, Some(UNDERLAY_A));
    b.poll();
    assert!(b.take("vm2").is_empty() && b.take("t2vm2").is_empty());
    assert_eq!(b.dropped(DropReason::UnknownEndpoint), 1);
    assert_eq!(b.dropped(DropReason::UnknownTunnelId), 1);
    assert_eq!(b.dropped(DropReason::Malformed), 1);
    assert_eq!(b.dropped(DropReason::Truncated), 1);
    assert_eq!(b.dropped(DropReason::UnexpectedTag), 1);
    // And the good one still goes through.
    b.peer("tun").inject_from(&good, Some(UNDERLAY_A));
    b.poll();
    assert_eq!(b.take("vm2"), vec![frame]);
}

#[test]
fn vlan_networks_tag_on_the_uplink_and_local_networks_stay_home() {
    let config = Config {
        switches: vec![
            ls(
                "vlan101",
                1,
                Segment::Vlan {
                    physical_network: "physnet1".into(),
                    vid: 101,
                },
                vec![],
            ),
            ls(
                "flat",
                2,
                Segment::Flat {
                    physical_network: "physnet1".into(),
                },
                vec![],
            ),
            ls("local", 3, Segment::Local, vec![]),
        ],
        ports: vec![
            vm("vm1", 0, mac(1), ip(1)),
            vm("vm2", 1, mac(2), ip(2)),
            vm("vm3", 2, mac(3), ip(3)),
            vm("vm4", 2, mac(4), ip(4)),
            Port {
                name: "eth1".into(),
                kind: PortKind::Uplink {
                    physical_network: "physnet1".into(),
                    relay: RelayMode::Veb,
                },
            },
        ],
        records: vec![],
        vsis: vec![],
    };
    let mut host = Host::new(config);
    let broadcast = udp_frame(mac(1), MacAddr::BROADCAST, ip(1), ip(255), b"hi");
    host.send("vm1", &broadcast);
    let out = host.take("eth1");
    assert_eq!(out.len(), 1);
    let (stack, offset) = vlan::TagStack::parse(&out[0]).unwrap();
    assert_eq!(
        stack.outer().map(|t| (t.tpid, t.repr.vid)),
        Some((EtherType::VLAN, 101))
    );
    assert_eq!(&out[0][offset..], &broadcast[14..]);
    // Back from the physical network, tagged 101: untagged to vm1 only.
    let reply = udp_frame(mac(0x50), mac(1), ip(50), ip(1), b"from outside");
    let mut tagged = vec![0; 4];
    tagged.extend_from_slice(&reply);
    let start = vlan::push_tag(&mut tagged, 4, EtherType::VLAN, 101).unwrap();
    host.send("eth1", &tagged[start..]);
    assert_eq!(host.take("vm1"), vec![reply.clone()]);
    assert!(host.take("vm2").is_empty());
    // Untagged from the physical network belongs to the flat network.
    let flat = udp_frame(mac(0x50), MacAddr::BROADCAST, ip(50), ip(255), b"flat");
    host.send("eth1", &flat);
    assert_eq!(host.take("vm2"), vec![flat]);
    assert!(host.take("vm1").is_empty());
    // A VLAN nobody uses.
    let mut other = vec![0; 4];
    other.extend_from_slice(&reply);
    let start = vlan::push_tag(&mut other, 4, EtherType::VLAN, 999).unwrap();
    host.send("eth1", &other[start..]);
    assert_eq!(host.dropped(DropReason::UnknownVlan), 1);
    // The local network: vm3's broadcast reaches vm4 and nothing else.
    host.send(
        "vm3",
        &udp_frame(mac(3), MacAddr::BROADCAST, ip(3), ip(255), b"local"),
    );
    assert_eq!(host.take("vm4").len(), 1);
    assert!(host.take("eth1").is_empty());
    // VM ports refuse tagged frames.
    host.send("vm1", &tagged[..]);
    assert!(host.dropped(DropReason::UnexpectedTag) >= 1);
}

#[test]
fn malformed_frames_from_vms_are_counted_not_forwarded() {
    let (mut a, _b) = vxlan_hosts();
    a.send("vm1", &[0u8; 10]);
    assert_eq!(a.dropped(DropReason::Truncated), 1);
    // An IPv4 header cut short is refused by port security's parse.
    let cut = udp_frame(mac(1), mac(5), ip(1), ip(5), b"x");
    a.send("vm1", &cut[..30]);
    assert_eq!(a.dropped(DropReason::Truncated), 2);
    // The switch is a layer-2 device: a wrong inner IPv4 checksum is the receiver's business,
    // as on any switch; it forwards it untouched.
    let mut bad_checksum = udp_frame(mac(1), mac(5), ip(1), ip(5), b"x");
    bad_checksum[24] ^= 0xff;
    a.send("vm1", &bad_checksum);
    assert_eq!(a.take("vm5"), vec![bad_checksum]);
}

/// Every drop reason has a counter and some scenario that produces it (Firecracker's
/// `test_unused_metrics` idea): adding a reason without a way to reach it fails here.
#[test]
fn every_drop_reason_is_produced_and_counted() {
    let (mut a, mut b) = vxlan_hosts();
    // Truncated, Malformed, UnexpectedTag, UnknownTunnelId, UnknownEndpoint: from the underlay.
    a.send("vm1", &udp_frame(mac(1), mac(2), ip(1), ip(2), b"x"));
    let good = a.peer("tun").drain().remove(0).0;
    b.peer("tun").inject_from(&good[..12], Some(UNDERLAY_A));
    let mut no_i = good.clone();
    no_i[0] = 0;
    b.peer("tun").inject_from(&no_i, Some(UNDERLAY_A));
    let mut wrong_vni = good.clone();
    wrong_vni[6] ^= 0x55;
    b.peer("tun").inject_from(&wrong_vni, Some(UNDERLAY_A));
    b.peer("tun")
        .inject_from(&good, Some("198.51.100.9".parse().unwrap()));
    let mut tagged = good[..8].to_vec();
    let mut inner = vec![0; 4];
    inner.extend_from_slice(&good[8..]);
    let start = vlan::push_tag(&mut inner, 4, EtherType::VLAN, 5).unwrap();
    tagged.extend_from_slice(&inner[start..]);
    b.peer("tun").inject_from(&tagged, Some(UNDERLAY_A));
    b.poll();
    // Spoofing and disallowed ethertypes from a VM.
    a.send("vm1", &udp_frame(mac(9), mac(5), ip(1), ip(5), b"x"));
    a.send("vm1", &udp_frame(mac(1), mac(5), ip(9), ip(5), b"x"));
    a.send("vm1", &arp_request(mac(1), ip(5), ip(5)));
    let mut lldp = udp_frame(mac(1), mac(5), ip(1), ip(5), b"x");
    lldp[12..14].copy_from_slice(&EtherType::LLDP.0.to_be_bytes());
    a.send("vm1", &lldp);
    // Loopback: a VM sending to itself.
    a.send("vm1", &udp_frame(mac(1), mac(1), ip(1), ip(1), b"me"));
    // UnknownPort: a device with no port in the tables.
    let (device, stray) = memory::pair(Medium::Ethernet);
    a.switch.attach("stray", Box::new(device));
    stray.inject(&[0; 60]);
    a.poll();
    // TxFailed: the tunnel port's device is gone.
    let _ = a.switch.detach("tun");
    a.send("vm1", &udp_frame(mac(1), mac(2), ip(1), ip(2), b"x"));
    // EncapFailed: the tunnel port's device speaks whole Ethernet frames, not VXLAN payloads.
    let (device, _peer) = memory::pair(Medium::Ethernet);
    a.switch.attach("tun", Box::new(device));
    a.send("vm1", &udp_frame(mac(1), mac(2), ip(1), ip(2), b"x"));
    // UnknownVlan and Unsupported (three tags) on an uplink.
    let mut host = Host::new(Config {
        switches: vec![ls(
            "vlan",
            1,
            Segment::Vlan {
                physical_network: "p".into(),
                vid: 10,
            },
            vec![],
        )],
        ports: vec![
            vm("vm", 0, mac(1), ip(1)),
            Port {
                name: "up".into(),
                kind: PortKind::Uplink {
                    physical_network: "p".into(),
                    relay: RelayMode::Veb,
                },
            },
            Port {
                name: "vm.5".into(),
                kind: PortKind::Subport {
                    parent: PortId(0),
                    vlan: 5,
                    vm: VmPort {
                        ls: LsId(0),
                        mac: mac(2),
                        ips: vec![ip(2)],
                        allowed_pairs: vec![],
                        port_security: true,
                    },
                },
            },
            Port {
                name: "st".into(),
                kind: PortKind::Station,
            },
            Port {
                name: "st.s1".into(),
                kind: PortKind::Channel(Channel {
                    parent: PortId(3),
                    svid: 1,
                    reflective_relay: false,
                    vdp_gating: true,
                }),
            },
        ],
        records: vec![],
        vsis: vec![],
    });
    // VsiNotAssociated, UnknownSChannel and LinkLocalGroup on a gated station port.
    host.send("st", &udp_frame(mac(7), mac(1), ip(7), ip(1), b"x"));
    let mut frame = vec![0; 4];
    frame.extend_from_slice(&udp_frame(mac(7), mac(1), ip(7), ip(1), b"x"));
    let start = vlan::push_tag(&mut frame, 4, EtherType::QINQ, 30).unwrap();
    host.send("st", &frame[start..]);
    let lldp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    host.send("st", &udp_frame(mac(7), lldp, ip(7), ip(1), b"x"));
    // UnknownSubport: the trunk "vm" has a subport on VLAN 5, not 6.
    let mut frame = vec![0; 4];
    frame.extend_from_slice(&udp_frame(mac(2), mac(7), ip(2), ip(7), b"x"));
    let start = vlan::push_tag(&mut frame, 4, EtherType::VLAN, 6).unwrap();
    host.send("vm", &frame[start..]);
    let mut frame = vec![0; 12];
    frame.extend_from_slice(&udp_frame(mac(7), mac(1), ip(7), ip(1), b"x"));
    let mut start = vlan::push_tag(&mut frame, 12, EtherType::VLAN, 11).unwrap();
    host.send("up", &frame[start..]);
    for vid in [12, 13] {
        start = vlan::push_tag(&mut frame, start, EtherType::VLAN, vid).unwrap();
    }
    host.send("up", &frame[start..]);

    let mut missing = Vec::new();
    for &reason in DropReason::ALL {
        let seen = a.dropped(reason) + b.dropped(reason) + host.dropped(reason);
        if seen == 0 {
            missing.push(reason.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "drop reasons never produced: {missing:?}"
    );
}

/// A device whose every call fails, as a yanked NIC does.
struct Broken;

impl switch::device::Device for Broken {
    fn recv(&mut self, _: &mut [switch::PacketBuf]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(libc_enodev()))
    }
    fn send(&mut self, _: &[switch::PacketBuf]) -> std::io::Result<Sent> {
        Err(std::io::Error::from_raw_os_error(libc_enodev()))
    }
    fn medium(&self) -> Medium {
        Medium::Ethernet
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// ENODEV, "no such device".
fn libc_enodev() -> i32 {
    19
}

#[test]
fn a_failing_device_does_not_stop_the_others() {
    let config = Config {
        switches: vec![ls("net", 1, Segment::Local, vec![])],
        ports: vec![
            vm("dead", 0, mac(9), ip(9)),
            vm("vm1", 0, mac(1), ip(1)),
            vm("vm2", 0, mac(2), ip(2)),
        ],
        records: vec![],
        vsis: vec![],
    };
    let tables = Tables::build(config, 1).unwrap();
    let mut sw = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
    sw.attach("dead", Box::new(Broken));
    let (d1, p1) = memory::pair(Medium::Ethernet);
    let (d2, p2) = memory::pair(Medium::Ethernet);
    sw.attach("vm1", Box::new(d1));
    sw.attach("vm2", Box::new(d2));
    let frame = udp_frame(mac(1), mac(2), ip(1), ip(2), b"still here");
    p1.inject(&frame);
    assert_eq!(sw.poll(Duration::from_millis(1)), 1);
    assert_eq!(
        p2.drain().len(),
        1,
        "vm2 got its frame although the first device failed"
    );
    let (port, err) = sw.take_error().expect("the failure is reported");
    assert_eq!((port.as_str(), err.raw_os_error()), ("dead", Some(19)));
    assert_eq!(sw.counters().ports["dead"].rx_errors, 1);
    // A broadcast also goes to the broken port: its send fails, is counted, and vm2 still gets it.
    p1.inject(&udp_frame(
        mac(1),
        MacAddr::BROADCAST,
        ip(1),
        ip(255),
        b"all",
    ));
    sw.poll(Duration::from_millis(2));
    assert_eq!(p2.drain().len(), 1);
    assert_eq!(sw.counters().ports["dead"].tx_errors, 1);
    assert!(sw.counters().dropped(DropReason::TxFailed) >= 1);
}

/// A device that takes only the last frame of each batch (as a VXLAN socket pool does when
/// the socket of the first frames is full) and says what that frame weighs.
struct TakesTheLast;

impl switch::device::Device for TakesTheLast {
    fn recv(&mut self, _: &mut [switch::PacketBuf]) -> std::io::Result<usize> {
        Ok(0)
    }
    fn send(&mut self, bufs: &[switch::PacketBuf]) -> std::io::Result<Sent> {
        Ok(Sent::all(&bufs[bufs.len().saturating_sub(1)..]))
    }
    fn medium(&self) -> Medium {
        Medium::Ethernet
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

#[test]
fn the_counters_count_the_frames_a_device_took_even_when_not_the_first() {
    let config = Config {
        switches: vec![ls("net", 1, Segment::Local, vec![])],
        ports: vec![vm("vm1", 0, mac(1), ip(1)), vm("vm2", 0, mac(2), ip(2))],
        records: vec![],
        vsis: vec![],
    };
    let tables = Tables::build(config, 1).unwrap();
    let mut sw = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
    let (d1, p1) = memory::pair(Medium::Ethernet);
    sw.attach("vm1", Box::new(d1));
    sw.attach("vm2", Box::new(TakesTheLast));
    let long = udp_frame(mac(1), mac(2), ip(1), ip(2), &[7; 300]);
    let short = udp_frame(mac(1), mac(2), ip(1), ip(2), b"short");
    p1.inject(&long);
    p1.inject(&short);
    assert_eq!(sw.poll(Duration::from_millis(1)), 2);
    let counters = sw.counters();
    let vm2 = &counters.ports["vm2"];
    assert_eq!(
        (vm2.tx_packets, vm2.tx_bytes),
        (1, short.len() as u64),
        "the short frame went, not the long one"
    );
    assert_eq!(counters.dropped(DropReason::TxFailed), 1);
}

// ---------------------------------------------------------------------------------------------
// Offloads: TCP super-frames and partial checksums from a TAP with IFF_VNET_HDR.

/// A payload that shows misplaced or repeated bytes.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 13 + i / 256) % 256).unwrap())
        .collect()
}

/// A TCP segment of tenant 1 from VM1 to VM `to` (its MAC and IP), finished.
fn tcp_segment(to: u8, seq: u32, ident: u16, data: &[u8]) -> Vec<u8> {
    build::tcp(&Tcp {
        src_mac: mac(1),
        dst_mac: mac(to),
        src: ip(1),
        dst: ip(to),
        ident,
        ..Tcp::new(false, seq, data)
    })
}

/// A super-frame from VM1 to VM `to` as a TAP with TSO hands it out: partial checksum, MSS 1448.
fn super_frame(to: u8, data: &[u8]) -> (Vec<u8>, Offload) {
    let mut frame = tcp_segment(to, 5000, 100, data);
    gso::partial_checksum(&mut frame).unwrap();
    let offload = Offload {
        csum_partial: true,
        gso: Some(Gso {
            kind: GsoKind::Tcp4,
            size: 1448,
        }),
    };
    (frame, offload)
}

/// The segments Linux's TSO would put on the wire for `super_frame(to, data)`.
fn expected_segments(to: u8, data: &[u8]) -> Vec<Vec<u8>> {
    data.chunks(1448)
        .enumerate()
        .map(|(i, chunk)| {
            let offset = u32::try_from(i * 1448).unwrap();
            tcp_segment(to, 5000 + offset, 100 + u16::try_from(i).unwrap(), chunk)
        })
        .collect()
}

#[test]
fn tcp_super_frames_cross_the_tunnel_as_segments() {
    let (mut a, mut b) = vxlan_hosts();
    let data = payload(10_000);
    let (frame, offload) = super_frame(2, &data);
    a.peer("vm1").inject_offloaded(&frame, offload);
    a.poll();
    let sent = a.peer("tun").drain();
    let expected = expected_segments(2, &data);
    assert_eq!(sent.len(), expected.len(), "one datagram per segment");
    for ((datagram, peer), segment) in sent.iter().zip(&expected) {
        assert_eq!(*peer, Some(UNDERLAY_B));
        let header =
            vxlan::Repr::parse(&vxlan::Packet::new_checked(&datagram[..]).unwrap()).unwrap();
        assert_eq!(header.vni.get(), 100);
        assert_eq!(&datagram[8..], &segment[..]);
    }
    // The super-frame counts once where it came in; its segments where they went out.
    let counters = a.switch.counters();
    assert_eq!(counters.ports["vm1"].rx_packets, 1);
    assert_eq!(counters.ports["tun"].tx_packets, 7);
    for (datagram, _) in &sent {
        b.peer("tun").inject_from(datagram, Some(UNDERLAY_A));
    }
    b.poll();
    assert_eq!(
        b.take("vm2"),
        expected,
        "VM2 (no offloads) gets every segment"
    );
}

#[test]
fn super_frames_go_whole_to_ports_that_take_them_and_cut_to_ports_that_do_not() {
    let config = || Config {
        switches: vec![ls("net", 1, Segment::Local, vec![])],
        ports: vec![vm("vm1", 0, mac(1), ip(1)), vm("vm5", 0, mac(5), ip(5))],
        records: vec![],
        vsis: vec![],
    };
    let data = payload(40_000);
    let (frame, offload) = super_frame(5, &data);

    let mut offloading = Host::with_offloads(config(), &["vm1", "vm5"]);
    offloading.peer("vm1").inject_offloaded(&frame, offload);
    offloading.poll();
    assert_eq!(
        offloading.peer("vm5").drain_offloaded(),
        vec![(frame.clone(), offload)],
        "untouched, offload and all"
    );

    let mut plain = Host::with_offloads(config(), &["vm1"]);
    plain.peer("vm1").inject_offloaded(&frame, offload);
    plain.poll();
    let got = plain.peer("vm5").drain_offloaded();
    assert!(got.iter().all(|(_, o)| o.is_none()), "finished frames only");
    let got: Vec<Vec<u8>> = got.into_iter().map(|(f, _)| f).collect();
    assert_eq!(got, expected_segments(5, &data));
}

#[test]
fn partial_checksums_are_finished_where_a_device_cannot() {
    let (mut a, _b) = vxlan_hosts();
    let finished = udp_frame(mac(1), mac(2), ip(1), ip(2), &payload(999));
    let mut partial = finished.clone();
    gso::partial_checksum(&mut partial).unwrap();
    let offload = Offload {
        csum_partial: true,
        gso: None,
    };
    a.peer("vm1").inject_offloaded(&partial, offload);
    a.poll();
    let sent = a.peer("tun").drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0].0[8..], &finished[..]);
    // A TCP segment too, to a local port without offloads.
    let segment = tcp_segment(5, 1, 1, b"partial");
    let mut partial = segment.clone();
    gso::partial_checksum(&mut partial).unwrap();
    a.peer("vm1").inject_offloaded(&partial, offload);
    a.poll();
    assert_eq!(a.take("vm5"), vec![segment]);
}

#[test]
fn port_security_judges_a_super_frame_once_and_bad_ones_are_dropped() {
    let (mut a, _b) = vxlan_hosts();
    // From an address VM1 does not own: dropped whole, counted once.
    let data = payload(10_000);
    let mut spoofed = build::tcp(&Tcp {
        src_mac: mac(1),
        dst_mac: mac(2),
        src: ip(9),
        dst: ip(2),
        ..Tcp::new(false, 1, &data)
    });
    gso::partial_checksum(&mut spoofed).unwrap();
    let (_, offload) = super_frame(2, &data);
    a.peer("vm1").inject_offloaded(&spoofed, offload);
    a.poll();
    assert!(a.peer("tun").drain().is_empty());
    assert_eq!(a.dropped(DropReason::SpoofedIp), 1);
    // A super-frame the segmenter cannot cut (IPv4 headers, IPv6 segmentation asked for).
    let (frame, mut offload) = super_frame(2, &data);
    offload.gso = Some(Gso {
        kind: GsoKind::Tcp6,
        size: 1448,
    });
    a.peer("vm1").inject_offloaded(&frame, offload);
    a.poll();
    assert!(a.peer("tun").drain().is_empty());
    assert_eq!(a.dropped(DropReason::Unsupported), 1);
    // Segments keep every flag right: PSH only on the last one.
    let (mut frame, offload) = super_frame(2, &data);
    frame[14 + 20 + 13] |= tcp::flags::PSH;
    a.peer("vm1").inject_offloaded(&frame, offload);
    a.poll();
    let sent = a.peer("tun").drain();
    let flags: Vec<u8> = sent.iter().map(|(d, _)| d[8 + 14 + 20 + 13]).collect();
    assert_eq!(flags.last(), Some(&(tcp::flags::ACK | tcp::flags::PSH)));
    assert!(
        flags[..flags.len() - 1]
            .iter()
            .all(|&f| f == tcp::flags::ACK)
    );
}

#[test]
fn many_super_frames_in_one_batch_do_not_run_the_buffer_pool_dry() {
    // 32 super-frames of 45 segments each: 1,440 segments from one receive batch, far more
    // than the switch's spare buffers; the tunnel's queue is sent as the pool runs low.
    let (mut a, _b) = vxlan_hosts();
    let data = payload(45 * 1448);
    let (frame, offload) = super_frame(2, &data);
    for _ in 0..32 {
        a.peer("vm1").inject_offloaded(&frame, offload);
    }
    a.poll();
    let sent = a.peer("tun").drain();
    assert_eq!(sent.len(), 32 * 45);
    assert_eq!(a.dropped(DropReason::TxFailed), 0);
    let expected = expected_segments(2, &data);
    for (i, (datagram, _)) in sent.iter().enumerate() {
        assert_eq!(&datagram[8..], &expected[i % 45][..], "datagram {i}");
    }
}

#[test]
fn super_frames_to_a_vlan_uplink_are_cut_behind_the_tag() {
    let config = Config {
        switches: vec![ls(
            "vlan101",
            1,
            Segment::Vlan {
                physical_network: "physnet1".into(),
                vid: 101,
            },
            vec![],
        )],
        ports: vec![
            vm("vm1", 0, mac(1), ip(1)),
            Port {
                name: "eth1".into(),
                kind: PortKind::Uplink {
                    physical_network: "physnet1".into(),
                    relay: RelayMode::Veb,
                },
            },
        ],
        records: vec![],
        vsis: vec![],
    };
    let mut host = Host::new(config);
    // The switch learns 0x50 behind the uplink, on VLAN 101.
    let hello = udp_frame(mac(0x50), mac(1), ip(0x50), ip(1), b"hello");
    let mut tagged = vec![0; 4];
    tagged.extend_from_slice(&hello);
    let start = vlan::push_tag(&mut tagged, 4, EtherType::VLAN, 101).unwrap();
    host.send("eth1", &tagged[start..]);
    assert_eq!(host.take("vm1"), vec![hello]);
    // A super-frame to it leaves the uplink as tagged segments.
    let data = payload(5000);
    let (frame, offload) = super_frame(0x50, &data);
    host.peer("vm1").inject_offloaded(&frame, offload);
    host.poll();
    let out = host.take("eth1");
    let expected = expected_segments(0x50, &data);
    assert_eq!(out.len(), expected.len());
    for (got, want) in out.iter().zip(&expected) {
        let (stack, offset) = vlan::TagStack::parse(got).unwrap();
        assert_eq!(stack.outer().map(|t| t.repr.vid), Some(101));
        assert_eq!(&got[..12], &want[..12]);
        assert_eq!(&got[offset..], &want[14..]);
    }
}

/// A device whose netdev is gone: every read fails as a TAP's does then (`EBADFD`).
struct Gone {
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl switch::device::Device for Gone {
    fn recv(&mut self, _bufs: &mut [switch::PacketBuf]) -> std::io::Result<usize> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(std::io::Error::from_raw_os_error(libc_ebadfd()))
    }

    fn send(&mut self, _bufs: &[switch::PacketBuf]) -> std::io::Result<Sent> {
        Err(std::io::Error::from_raw_os_error(libc_ebadfd()))
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    fn is_gone(&self, _err: &std::io::Error) -> bool {
        true
    }
}

/// `EBADFD` on Linux (77), without a libc dependency in the tests.
const fn libc_ebadfd() -> i32 {
    77
}

#[test]
fn a_device_that_is_gone_is_marked_failed_and_left_alone() {
    let mut host = Host::new(Config {
        switches: vec![ls("net", 1, Segment::Local, vec![])],
        ports: vec![
            vm("vm1", 0, mac(1), ip(1)),
            vm("vm2", 0, mac(2), ip(2)),
            vm("vm3", 0, mac(3), ip(3)),
        ],
        records: vec![],
        vsis: vec![],
    });
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _ = host.switch.detach("vm3");
    host.switch.attach(
        "vm3",
        Box::new(Gone {
            reads: Arc::clone(&reads),
        }),
    );
    for _ in 0..50 {
        host.poll();
    }
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "read once, then left alone"
    );
    assert_eq!(host.switch.take_failed(), vec!["vm3".to_owned()]);
    assert!(host.switch.take_failed().is_empty(), "reported once");
    let status = host.switch.device_status();
    let vm3 = status.iter().find(|d| d.name == "vm3").expect("vm3");
    assert!(vm3.failure.is_some(), "{status:?}");
    assert!(
        status
            .iter()
            .filter(|d| d.name != "vm3")
            .all(|d| d.failure.is_none())
    );
    assert_eq!(host.switch.counters().ports["vm3"].rx_errors, 1);
    // The others carry on; a frame for the failed port is dropped, not sent.
    let frame = udp_frame(mac(1), mac(2), ip(1), ip(2), b"on");
    host.send("vm1", &frame);
    assert_eq!(host.take("vm2"), vec![frame]);
    host.send("vm1", &udp_frame(mac(1), mac(3), ip(1), ip(3), b"gone"));
    assert_eq!(host.dropped(DropReason::TxFailed), 1);
    assert_eq!(host.switch.counters().ports["vm3"].tx_errors, 0);
}
