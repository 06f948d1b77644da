//! The forwarding pipeline alone (no device I/O): batches of 32 64-byte frames through
//! `pipeline::process` with 200,000 lookup records and 200,000 learned MAC addresses, reported
//! as frames per second; and tagged frames from a trunk's subport. `cargo bench -p weft-switch
//! --bench pipeline`.

use std::{
    hint::black_box,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switch::{
    PacketBuf,
    device::Medium,
    mac::MacTable,
    pipeline::{self, Verdict},
    switch::encapsulate,
    tables::{
        Config, Location, LogicalSwitch, LsId, Port, PortId, PortKind, Record, Segment, Tables,
        TunnelProtocol, VmPort,
    },
};
use wire::{MacAddr, Vni};

const BATCH: u32 = 32;
const ENTRIES: u32 = 200_000;

fn mac(n: u32) -> MacAddr {
    let [_, a, b, c] = n.to_be_bytes();
    MacAddr([0xfa, 0x16, 0x3e, a, b, c])
}

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
}

fn frame(src: u32, dst: u32) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
        unreachable!()
    };
    // 64 bytes in all: 14 + 20 + 8 headers and 22 bytes of data.
    wire::build::udp_ipv4(mac(src), mac(dst), s, d, (5000, 6000), &[0; 22])
}

fn setup() -> (Tables, MacTable) {
    let remote = |n: u32| IpAddr::V4(Ipv4Addr::from(0xc000_0200 | (n % 200 + 2)));
    let vm = |name: &str, n: u32| Port {
        name: name.into(),
        kind: PortKind::Vm(VmPort {
            ls: LsId(0),
            mac: mac(n),
            ips: vec![ip(n)],
            allowed_pairs: vec![],
            port_security: true,
        }),
    };
    let config = Config {
        switches: vec![LogicalSwitch {
            name: "net".into(),
            local_vlan: 1,
            segment: Segment::Vxlan(Vni::new(100).unwrap()),
            flood: (0..200).map(remote).collect(),
            mac_limit: 1_000_000,
            dhcp: vec![],
        }],
        ports: vec![
            vm("vm1", 1),
            vm("vm2", 2),
            Port {
                name: "tun".into(),
                kind: PortKind::Tunnel {
                    local_ip: "192.0.2.1".parse().unwrap(),
                    protocol: TunnelProtocol::Vxlan,
                },
            },
            // vm1 is a trunk: VLAN 7 is its subport with MAC/IP 3.
            Port {
                name: "vm1.7".into(),
                kind: PortKind::Subport {
                    parent: PortId(0),
                    vlan: 7,
                    vm: VmPort {
                        ls: LsId(0),
                        mac: mac(3),
                        ips: vec![ip(3)],
                        allowed_pairs: vec![],
                        port_security: true,
                    },
                },
            },
        ],
        records: (10..10 + ENTRIES)
            .map(|n| Record {
                ls: LsId(0),
                ip: ip(n),
                mac: mac(n),
                remote: remote(n),
            })
            .collect(),
        vsis: vec![],
    };
    let tables = Tables::build(config, 1).unwrap();
    let mut macs = MacTable::new(Duration::from_secs(3600));
    for n in 0..ENTRIES {
        macs.learn(
            LsId(0),
            mac(0x0080_0000 | n),
            Location::Remote(remote(n)),
            Duration::ZERO,
            usize::MAX,
        );
    }
    (tables, macs)
}

fn batch(frames: impl Fn(u32) -> Vec<u8>) -> Vec<PacketBuf> {
    (0..BATCH)
        .map(|i| PacketBuf::from_frame(&frames(i)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let (tables, mut macs) = setup();
    let now = Duration::from_secs(1);
    let segment = Segment::Vxlan(Vni::new(100).unwrap());
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(u64::from(BATCH)));

    let mut local = batch(|_| frame(1, 2));
    group.bench_function("local switching, batch of 32 x 64 B", |b| {
        b.iter(|| {
            // As the switch does: ask for the batch's table entries, then process.
            pipeline::prefetch(&tables, PortId(0), &local);
            for buf in &mut local {
                let verdict = pipeline::process(&tables, &mut macs, PortId(0), buf, now);
                debug_assert!(matches!(verdict, Verdict::Forward { .. }));
                black_box(verdict);
            }
        })
    });

    // Destinations spread over the 200,000 records (one lookup each).
    let mut remote = batch(|i| frame(1, 10 + i * 6007 % ENTRIES));
    group.bench_function("vxlan encapsulation, batch of 32 x 64 B", |b| {
        b.iter(|| {
            pipeline::prefetch(&tables, PortId(0), &remote);
            for buf in &mut remote {
                let verdict = pipeline::process(&tables, &mut macs, PortId(0), buf, now);
                debug_assert!(matches!(verdict, Verdict::Tunnel { .. }));
                let _ = encapsulate(buf, &segment, Some(Medium::Vxlan));
                black_box(buf.frame());
                // Undo the push for the next round (the inner frame never moved).
                buf.set_start(buf.start() + 8);
            }
        })
    });

    // VXLAN payloads from a known remote for the local VM; sources spread over learned MACs.
    let mut tunnelled: Vec<PacketBuf> = batch(|i| frame(0x0080_0000 | (i * 6007 % ENTRIES), 2));
    for buf in &mut tunnelled {
        encapsulate(buf, &segment, Some(Medium::Vxlan)).unwrap();
        buf.peer = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    }
    group.bench_function("vxlan decapsulation, batch of 32 x 64 B", |b| {
        b.iter(|| {
            for buf in &mut tunnelled {
                let verdict = pipeline::process(&tables, &mut macs, PortId(2), buf, now);
                debug_assert!(matches!(verdict, Verdict::Forward { .. }), "{verdict:?}");
                black_box(verdict);
                buf.set_start(buf.start() - 8);
            }
        })
    });
    // Tagged frames from a trunk's subport to a local VM: the tag is looked up and stripped
    // (and pushed back here for the next round, as egress to a subport would).
    let mut trunked = batch(|_| {
        let mut buf = vec![0; 4];
        buf.extend_from_slice(&frame(3, 2));
        let start = wire::vlan::push_tag(&mut buf, 4, wire::EtherType::VLAN, 7).unwrap();
        buf[start..].to_vec()
    });
    group.bench_function("trunk subport (tag strip), batch of 32 x 68 B", |b| {
        b.iter(|| {
            for buf in &mut trunked {
                let verdict = pipeline::process(&tables, &mut macs, PortId(0), buf, now);
                debug_assert!(matches!(verdict, Verdict::Forward { .. }), "{verdict:?}");
                black_box(verdict);
                let (data, start, _) = buf.raw_mut();
                let start = wire::vlan::push_tag(data, start, wire::EtherType::VLAN, 7).unwrap();
                buf.set_start(start);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
