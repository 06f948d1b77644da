//! Parse and encapsulation throughput of the wire crate, per frame.
//!
//! `cargo bench -p weft-wire`; criterion reports elements/s, i.e. frames per second.

use std::{
    hint::black_box,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wire::{MacAddr, Vni, checksum::PseudoHeader, encap, ethernet, ipv4, udp, vxlan};

const VM1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
const VM2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]);

/// A 64-byte tenant frame: Ethernet + IPv4 + UDP + 22 bytes of data.
fn inner_frame() -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(10, 0, 5, 7), Ipv4Addr::new(10, 0, 5, 2));
    wire::build::udp_ipv4(VM1, VM2, src, dst, (5000, 6000), &[0; 64 - 14 - 20 - 8])
}

fn spec(tunnel: encap::Tunnel, v6: bool) -> encap::Encap {
    let (src_ip, dst_ip): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(192, 0, 2, 2).into(),
        )
    };
    encap::Encap {
        tunnel,
        src_ip,
        dst_ip,
        ttl: 64,
        dscp: 0,
        ident: 0,
        udp_checksum_v4: false,
        ethernet: Some((MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]))),
    }
}

fn buffer_with(inner: &[u8]) -> Vec<u8> {
    let mut buffer = vec![0u8; encap::HEADROOM];
    buffer.extend_from_slice(inner);
    buffer
}

/// Parses every header of a VXLAN frame as the switch's receive path does: outer Ethernet,
/// IPv4 (checksum verified), UDP, VXLAN, then the inner Ethernet, IPv4 and UDP headers.
fn parse_all(frame: &[u8]) -> Option<(Vni, udp::Repr)> {
    let found = encap::decapsulate(frame, vxlan::PORT).ok()?;
    let Some(encap::Tunnel::Vxlan { vni, .. }) = Some(found.tunnel) else {
        return None;
    };
    let inner = ethernet::Frame::new_checked(&frame[found.inner]).ok()?;
    let ip = ipv4::Packet::new_checked(inner.payload()).ok()?;
    let ip_repr = ipv4::Repr::parse(&ip).ok()?;
    let datagram = udp::Packet::new_checked(ip.payload()).ok()?;
    let pseudo = PseudoHeader::V4 {
        src: ip_repr.src_addr,
        dst: ip_repr.dst_addr,
    };
    Some((vni, udp::Repr::parse(&datagram, &pseudo).ok()?))
}

fn bench(c: &mut Criterion) {
    let inner = inner_frame();
    let vni = Vni::new(100).expect("fits");

    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));

    let mut buffer = buffer_with(&inner);
    let end = buffer.len();
    let vxlan4 = spec(
        encap::Tunnel::Vxlan {
            vni,
            src_port: vxlan::source_port(&inner),
        },
        false,
    );
    let start = encap::encapsulate(&mut buffer, encap::HEADROOM, end, &vxlan4).expect("encap");
    let encapsulated = buffer[start..].to_vec();
    assert!(parse_all(&encapsulated).is_some());
    group.bench_function("parse vxlan/ipv4 + inner 64B frame", |b| {
        b.iter(|| parse_all(black_box(&encapsulated)))
    });

    group.bench_function("encap vxlan/ipv4 64B (incl. source-port hash)", |b| {
        let mut buffer = buffer_with(&inner);
        let end = buffer.len();
        b.iter(|| {
            let frame = &buffer[encap::HEADROOM..end];
            let tunnel = encap::Tunnel::Vxlan {
                vni,
                src_port: vxlan::source_port(frame),
            };
            let spec = encap::Encap { tunnel, ..vxlan4 };
            encap::encapsulate(black_box(&mut buffer), encap::HEADROOM, end, &spec)
        })
    });

    let vxlan6 = spec(
        encap::Tunnel::Vxlan {
            vni,
            src_port: 50000,
        },
        true,
    );
    group.bench_function("encap vxlan/ipv6 64B (UDP checksum)", |b| {
        let mut buffer = buffer_with(&inner);
        let end = buffer.len();
        b.iter(|| encap::encapsulate(black_box(&mut buffer), encap::HEADROOM, end, &vxlan6))
    });

    let nvgre = spec(
        encap::Tunnel::Nvgre {
            vsid: vni,
            flow_id: 7,
        },
        false,
    );
    group.bench_function("encap nvgre/ipv4 64B", |b| {
        let mut buffer = buffer_with(&inner);
        let end = buffer.len();
        b.iter(|| encap::encapsulate(black_box(&mut buffer), encap::HEADROOM, end, &nvgre))
    });

    group.bench_function("vxlan source port hash 64B", |b| {
        b.iter(|| vxlan::source_port(black_box(&inner)))
    });
    group.finish();
}

/// Software TSO and GRO over one 64 KiB TCP super-frame (45 segments of 1448 bytes), as the
/// switch does them between a TAP with offloads and a tunnel; reported in bytes/s.
fn bench_gso(c: &mut Criterion) {
    let payload: Vec<u8> = (0..45 * 1448usize)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let mut frame = wire::build::tcp(&wire::build::Tcp::new(false, 1, &payload));
    wire::gso::partial_checksum(&mut frame).unwrap();
    let gso = wire::gso::Gso {
        kind: wire::gso::GsoKind::Tcp4,
        size: 1448,
    };
    let mut segments = Vec::new();
    let mut out = vec![0u8; 2048];
    let mut segmenter = wire::gso::segment(&frame, gso).unwrap();
    while let Some(len) = segmenter.next_into(&mut out) {
        segments.push(out[..len.unwrap()].to_vec());
    }
    let mut group = c.benchmark_group("gso");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("checksum 64 KiB", |b| {
        b.iter(|| wire::checksum::accumulate(0, black_box(&payload)))
    });
    group.bench_function("segment a 64 KiB super-frame", |b| {
        b.iter(|| {
            let mut segmenter = wire::gso::segment(black_box(&frame), gso).unwrap();
            while let Some(len) = segmenter.next_into(&mut out) {
                black_box(len.unwrap());
            }
        })
    });
    group.bench_function("coalesce 45 segments", |b| {
        b.iter(|| {
            let mut run = wire::gso::Coalescer::start(black_box(&segments[0])).unwrap();
            for segment in &segments[1..] {
                assert!(run.push(&segments[0], segment));
            }
            let mut header = [0u8; 128];
            black_box(run.write_header(&segments[0], &mut header).unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_gso);
criterion_main!(benches);
