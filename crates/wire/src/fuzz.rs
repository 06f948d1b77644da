//! Invariant checks over arbitrary bytes, one per parser: the bodies of the fuzz targets.
//!
//! Each check parses the input; when that succeeds it re-emits the `Repr` into a fresh buffer,
//! parses that again and asserts both parses agree (a panic is the finding). The fuzz targets in
//! `fuzz/` call these, and `tests/fuzz_regression.rs` replays every saved input through them
//! under plain `cargo test`, so no nightly toolchain is needed to keep a fixed crash fixed.

use core::{fmt::Write, net::Ipv4Addr};

use crate::{
    Error, arp, cdcp, checksum::PseudoHeader, dhcpv4, ecp, encap, ethernet, evb, gre, gso, icmpv4,
    ipv4, ipv6, lldp, pretty::PrettyPrinter, tcp, udp, vdp, vlan, vnet, vxlan,
};

/// A check: panics if the parser breaks one of its promises on `data`.
pub type Check = fn(&[u8]);

/// Every check, by fuzz target name.
pub const CHECKS: &[(&str, Check)] = &[
    ("ethernet", ethernet),
    ("vlan", vlan),
    ("arp", arp),
    ("ipv4", ipv4),
    ("ipv6", ipv6),
    ("udp", udp),
    ("icmpv4", icmpv4),
    ("vxlan", vxlan),
    ("gre", gre),
    ("lldp", lldp),
    ("evb", evb),
    ("cdcp", cdcp),
    ("ecp", ecp),
    ("vdp", vdp),
    ("dhcpv4", dhcpv4),
    ("decap", decap),
    ("pretty", pretty),
    ("tcp", tcp),
    ("vnet", vnet),
    ("gso", gso),
];

/// A `fmt::Write` that throws the text away (exercises every `Display` without allocating).
struct Sink;

impl Write for Sink {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

fn show(value: &dyn core::fmt::Display) {
    // Writing to Sink cannot fail; only a panic inside Display would be a finding.
    let _ = write!(Sink, "{value}");
}

/// Ethernet header: parse, emit, reparse.
pub fn ethernet(data: &[u8]) {
    let Ok(frame) = ethernet::Frame::new_checked(data) else {
        return;
    };
    let Ok(repr) = ethernet::Repr::parse(&frame) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
    assert_eq!(out[..], data[..ethernet::HEADER_LEN]);
    assert_eq!(
        ethernet::Repr::parse(&ethernet::Frame::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// VLAN tag stacks and single tags.
pub fn vlan(data: &[u8]) {
    if let Ok((stack, offset)) = vlan::TagStack::parse(data) {
        assert!(offset <= data.len());
        assert_eq!(
            offset,
            ethernet::HEADER_LEN + stack.len() * vlan::HEADER_LEN
        );
    }
    let Ok(tag) = vlan::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = vlan::Repr::parse(&tag) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut vlan::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out[..], data[..vlan::HEADER_LEN]);
}

/// ARP (Ethernet/IPv4).
pub fn arp(data: &[u8]) {
    let Ok(packet) = arp::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = arp::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out[..], data[..arp::PACKET_LEN]);
    assert_eq!(
        arp::Repr::parse(&arp::Packet::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// IPv4 header with options; the payload is carried over unchanged.
pub fn ipv4(data: &[u8]) {
    let Ok(packet) = ipv4::Packet::new_checked(data) else {
        return;
    };
    let _ = packet.verify_checksum();
    let Ok(repr) = ipv4::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let header_len = repr.buffer_len();
    assert_eq!(header_len, packet.header_len());
    let mut out = vec![0; header_len + repr.payload_len];
    out[header_len..].copy_from_slice(packet.payload());
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
    let again = ipv4::Packet::new_checked(&out[..]).map(|p| ipv4::Repr::parse(&p));
    assert_eq!(again, Ok(Ok(repr)));
}

/// IPv6 fixed header.
pub fn ipv6(data: &[u8]) {
    let Ok(packet) = ipv6::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = ipv6::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
    let again = ipv6::Packet::new_checked(&out[..]).map(|p| ipv6::Repr::parse(&p));
    assert_eq!(again, Ok(Ok(repr)));
}

/// UDP over a fixed IPv4 pseudo-header; a re-emitted datagram must verify.
pub fn udp(data: &[u8]) {
    let pseudo = PseudoHeader::V4 {
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::new(192, 0, 2, 2),
    };
    let Ok(packet) = udp::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = udp::Repr::parse(&packet, &pseudo) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len() + repr.payload_len];
    out[udp::HEADER_LEN..].copy_from_slice(packet.payload());
    repr.emit(&mut udp::Packet::new_unchecked(&mut out[..]), Some(&pseudo));
    let again = udp::Packet::new_unchecked(&out[..]);
    assert!(again.verify_checksum(&pseudo));
    assert_eq!(udp::Repr::parse(&again, &pseudo), Ok(repr));
}

/// ICMPv4 (echo and others).
pub fn icmpv4(data: &[u8]) {
    let Ok(packet) = icmpv4::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = icmpv4::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        icmpv4::Repr::parse(&icmpv4::Packet::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// VXLAN header, and the source-port hash over the same bytes taken as an inner frame.
pub fn vxlan(data: &[u8]) {
    let port = vxlan::source_port(data);
    assert!(port >= 49152);
    let Ok(packet) = vxlan::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = vxlan::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut vxlan::Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        vxlan::Repr::parse(&vxlan::Packet::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// GRE / NVGRE.
pub fn gre(data: &[u8]) {
    let Ok(packet) = gre::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = gre::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let header_len = repr.buffer_len();
    assert_eq!(header_len, packet.header_len());
    let mut out = vec![0; header_len];
    out.extend_from_slice(packet.payload());
    repr.emit(&mut gre::Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        gre::Repr::parse(&gre::Packet::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// LLDPDU: TLV iteration, parse, emit, reparse.
pub fn lldp(data: &[u8]) {
    let mut consumed = 0;
    for tlv in lldp::TlvIter::new(data) {
        let Ok(tlv) = tlv else { break };
        consumed += lldp::TLV_HEADER_LEN + tlv.data.len();
        let _ = tlv.org();
    }
    assert!(consumed <= data.len());
    let Ok(repr) = lldp::Repr::parse(data) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    let written = repr.emit(&mut out).expect("emit into buffer_len() bytes");
    assert_eq!(written, out.len());
    assert_eq!(lldp::Repr::parse(&out), Ok(repr));
}

/// EVB TLV information, read both as the ratified and as the draft 0.2 layout.
pub fn evb(data: &[u8]) {
    if let Ok(repr) = evb::Packet::new_checked(data).and_then(|p| evb::Repr::parse(&p)) {
        show(&repr);
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut evb::Packet::new_unchecked(&mut out[..]));
        assert_eq!(
            evb::Repr::parse(&evb::Packet::new_unchecked(&out[..])),
            Ok(repr)
        );
        // Only reserved bits may differ from the input.
        for (ours, theirs, reserved) in [(out[0], data[0], 0xf8), (out[1], data[1], 0xf0)] {
            assert_eq!(ours & !reserved, theirs & !reserved);
        }
        assert_eq!(out[2..4], data[2..4]);
        assert_eq!(out[4], data[4] & 0x3f);
    }
    if let Ok(repr) = evb::DraftPacket::new_checked(data).and_then(|p| evb::DraftRepr::parse(&p)) {
        show(&repr);
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut evb::DraftPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, data, "every draft bit round-trips");
    }
}

/// CDCP TLV information: parse, emit, reparse, and the TLV writer's 167-pair limit.
pub fn cdcp(data: &[u8]) {
    let Ok(repr) = cdcp::Packet::new_checked(data).and_then(|p| cdcp::Repr::parse(&p)) else {
        return;
    };
    show(&repr);
    assert!(repr.channels.len() < cdcp::MAX_PAIRS);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut cdcp::Packet::new_unchecked(&mut out[..]))
        .expect("emit into buffer_len() bytes");
    assert_eq!(out.len(), data.len());
    assert_eq!(
        cdcp::Repr::parse(&cdcp::Packet::new_unchecked(&out[..])).as_ref(),
        Ok(&repr)
    );
    let mut tlv = vec![0; 2 + lldp::ORG_HEADER_LEN + out.len()];
    match repr.write(&mut lldp::TlvWriter::new(&mut tlv)) {
        Ok(()) => assert_eq!(tlv[2 + lldp::ORG_HEADER_LEN..], out[..]),
        // Pairs that fit a buffer but not the 9-bit TLV length.
        Err(err) => assert_eq!(err, Error::BadLength),
    }
}

/// ECP header, and the VDPDU of a request.
pub fn ecp(data: &[u8]) {
    let Ok(packet) = ecp::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = ecp::Repr::parse(&packet) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut ecp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out[..], data[..ecp::HEADER_LEN]);
    if repr.operation == ecp::Operation::REQUEST && repr.subtype == ecp::Subtype::VDP {
        vdp(packet.payload());
    }
}

/// VDPDU: parse, emit, reparse; the emitted bytes are the input's up to where parsing stopped.
pub fn vdp(data: &[u8]) {
    let Ok(repr) = vdp::Repr::parse(data) else {
        return;
    };
    show(&repr);
    let mut out = vec![0; repr.buffer_len()];
    let written = repr.emit(&mut out).expect("emit into buffer_len() bytes");
    assert_eq!(written, out.len());
    assert!(written <= data.len());
    assert_eq!(vdp::Repr::parse(&out).as_ref(), Ok(&repr));
    // Reserved status bits are not kept; everything else is the input, byte for byte.
    let mut tlvs = lldp::TlvIter::new(&out);
    let mut theirs = lldp::TlvIter::new(data);
    while let (Some(Ok(ours)), Some(Ok(their))) = (tlvs.next(), theirs.next()) {
        assert_eq!(ours.kind, their.kind);
        assert_eq!(ours.data.len(), their.data.len());
        if vdp::Mode::from_tlv_type(vdp::TlvType(ours.kind.0)).is_some() {
            assert_eq!(ours.data[1..], their.data[1..]);
        } else {
            assert_eq!(ours.data, their.data);
        }
    }
}

/// DHCPv4 through dhcproto.
pub fn dhcpv4(data: &[u8]) {
    let Ok(repr) = dhcpv4::Repr::parse(data) else {
        return;
    };
    show(&repr);
    // Some well-formed inputs hold options dhcproto cannot write back (it refuses over-long
    // values it would have to split); that is an error, not a finding.
    let Ok(bytes) = repr.to_bytes() else { return };
    assert_eq!(dhcpv4::Repr::parse(&bytes), Ok(repr));
}

/// Decapsulation of a whole frame; what it finds must re-encapsulate to a decapsulable frame.
pub fn decap(data: &[u8]) {
    let Ok(found) = encap::decapsulate(data, vxlan::PORT) else {
        return;
    };
    assert!(found.inner.start <= found.inner.end && found.inner.end <= data.len());
    let inner = &data[found.inner.clone()];
    let mut buffer = vec![0; encap::HEADROOM + inner.len()];
    buffer[encap::HEADROOM..].copy_from_slice(inner);
    let spec = encap::Encap {
        tunnel: found.tunnel,
        src_ip: found.src_ip,
        dst_ip: found.dst_ip,
        ttl: 64,
        dscp: 0,
        ident: 0,
        udp_checksum_v4: true,
        ethernet: Some((
            crate::MacAddr([2, 0, 0, 0, 0, 1]),
            crate::MacAddr([2, 0, 0, 0, 0, 2]),
        )),
    };
    let end = buffer.len();
    match encap::encapsulate(&mut buffer, encap::HEADROOM, end, &spec) {
        Ok(start) => {
            let again = encap::decapsulate(&buffer[start..], vxlan::PORT).expect("re-decapsulate");
            assert_eq!(&buffer[start..][again.inner], inner);
            assert_eq!(again.tunnel.wire_id(), found.tunnel.wire_id());
        }
        // An inner frame so large the outer length fields cannot hold it.
        Err(err) => assert_eq!(err, Error::BadLength),
    }
}

/// The pretty-printer over arbitrary bytes taken as an Ethernet frame.
pub fn pretty(data: &[u8]) {
    show(&PrettyPrinter::new(data));
}

/// TCP header: every accessor; a filled checksum verifies.
pub fn tcp(data: &[u8]) {
    let Ok(packet) = tcp::Packet::new_checked(data) else {
        return;
    };
    show(&packet);
    let _ = (packet.src_port(), packet.dst_port(), packet.seq_number());
    let _ = (packet.ack_number(), packet.flags(), packet.window_len());
    let _ = (packet.checksum(), packet.urgent_at());
    let view = tcp::Packet::new_unchecked(data);
    assert_eq!(view.options().len() + tcp::HEADER_LEN, packet.header_len());
    assert_eq!(view.payload().len() + packet.header_len(), data.len());
    let pseudo = PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
    };
    let mut out = data.to_vec();
    let mut packet = tcp::Packet::new_unchecked(&mut out[..]);
    packet.fill_checksum(&pseudo);
    assert!(packet.verify_checksum(&pseudo));
}

/// `virtio_net_hdr`: parse, emit, reparse.
pub fn vnet(data: &[u8]) {
    let Ok(header) = vnet::Header::new_checked(data) else {
        return;
    };
    show(&header);
    let Ok(repr) = vnet::Repr::parse(&header) else {
        return;
    };
    show(&repr);
    let out = repr.to_bytes();
    // The GSO fields round-trip; unknown flag bits and checksum offsets without
    // NEEDS_CSUM are ignored, as the kernel does.
    assert_eq!(out[1..6], data[1..6]);
    assert_eq!(
        vnet::Repr::parse(&vnet::Header::new_unchecked(&out[..])),
        Ok(repr)
    );
}

/// Segmentation and coalescing over arbitrary frames (the first ten bytes are a
/// `virtio_net_hdr`): every segment cut is a well-formed TCP segment whose checksum verifies,
/// and whatever merges back holds the original payload in order.
pub fn gso(data: &[u8]) {
    let (head, rest) = data.split_at(data.len().min(vnet::HEADER_LEN));
    let mut frame = rest.to_vec();
    let mut size = 536;
    if let Ok(header) = vnet::Header::new_checked(head)
        && let Ok(repr) = vnet::Repr::parse(&header)
    {
        let _ = gso::Offload::from_vnet(&repr, &mut frame);
        size = repr.gso_size.max(1);
    }
    if let Ok(offload) = gso::layout(&frame).map(|_| gso::Offload {
        csum_partial: true,
        gso: None,
    }) {
        let _ = offload.to_vnet(&frame);
    }
    let _ = gso::finish_checksum(&mut frame.clone());
    for kind in [gso::GsoKind::Tcp4, gso::GsoKind::Tcp6] {
        let Ok(mut segmenter) = gso::segment(&frame, gso::Gso { kind, size }) else {
            continue;
        };
        let count = segmenter.count();
        if count > 512 {
            continue;
        }
        let mut out = vec![0u8; segmenter.segment_len()];
        let mut segments = Vec::new();
        while let Some(len) = segmenter.next_into(&mut out) {
            let Ok(len) = len else {
                panic!("a segment did not fit segment_len()");
            };
            let segment = out[..len].to_vec();
            let layout = gso::layout(&segment).expect("a segment has the super-frame's headers");
            let packet = tcp::Packet::new_checked(&segment[layout.l4..layout.end])
                .expect("a segment's TCP header");
            assert!(packet.verify_checksum(&layout.pseudo));
            segments.push(segment);
        }
        assert_eq!(segments.len(), count);
        let Some(mut run) = gso::Coalescer::start(&segments[0]) else {
            continue;
        };
        let mut merged = run.payload(&segments[0]).to_vec();
        for segment in &segments[1..] {
            if !run.push(&segments[0], segment) {
                break;
            }
            merged.extend_from_slice(run.payload(segment));
        }
        let layout = gso::layout(&frame).expect("it was cut");
        let original = &frame[layout.l4 + layout.l4_header_len..layout.end];
        assert_eq!(&original[..merged.len()], &merged[..]);
        let mut header = vec![0u8; layout.l4 + layout.l4_header_len];
        assert!(run.write_header(&segments[0], &mut header).is_ok());
    }
}
