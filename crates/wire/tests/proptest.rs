//! Property tests: every `Repr` survives emit → parse, and no parser panics on any bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use wire::{
    EtherType, IpProtocol, MacAddr, Vni, arp, cdcp, checksum::PseudoHeader, dhcpv4, ecp, encap,
    ethernet, evb, gre, icmpv4, ipv4, ipv6, lldp, udp, vdp, vlan, vxlan,
};

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn vni() -> impl Strategy<Value = Vni> {
    (0..=Vni::MAX).prop_map(Vni::from_low_bits)
}

fn ipv4_options() -> impl Strategy<Value = ipv4::Options> {
    (0usize..=10).prop_flat_map(|words| {
        proptest::collection::vec(any::<u8>(), words * 4)
            .prop_map(|bytes| ipv4::Options::new(&bytes).expect("multiple of 4, at most 40"))
    })
}

fn pseudo_header() -> impl Strategy<Value = PseudoHeader> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| PseudoHeader::V4 {
            src: s.into(),
            dst: d.into()
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| PseudoHeader::V6 {
            src: s.into(),
            dst: d.into()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ethernet_round_trip(src_addr in mac(), dst_addr in mac(), ethertype in any::<u16>()) {
        let repr = ethernet::Repr { src_addr, dst_addr, ethertype: EtherType(ethertype) };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        let frame = ethernet::Frame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ethernet::Repr::parse(&frame), Ok(repr));
    }

    #[test]
    fn vlan_round_trip(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096, ethertype in any::<u16>()) {
        let repr = vlan::Repr { pcp, dei, vid, ethertype: EtherType(ethertype) };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut vlan::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(vlan::Repr::parse(&vlan::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn vlan_push_pop(frame in proptest::collection::vec(any::<u8>(), 14..100), tci in any::<u16>(), qinq in any::<bool>()) {
        let tpid = if qinq { EtherType::QINQ } else { EtherType::VLAN };
        let mut buf = vec![0; 4];
        buf.extend_from_slice(&frame);
        let start = vlan::push_tag(&mut buf, 4, tpid, tci).unwrap();
        let (start, tag) = vlan::pop_tag(&mut buf, start).unwrap();
        prop_assert_eq!(start, 4);
        prop_assert_eq!(tag.tpid, tpid);
        prop_assert_eq!(tag.repr.tci(), tci);
        prop_assert_eq!(&buf[4..], &frame[..]);
    }

    #[test]
    fn arp_round_trip(op in 1u16..=2, sha in mac(), spa in any::<[u8; 4]>(), tha in mac(), tpa in any::<[u8; 4]>()) {
        let repr = arp::Repr {
            operation: arp::Operation(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa.into(),
            target_hardware_addr: tha,
            target_protocol_addr: tpa.into(),
        };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_round_trip(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), protocol in any::<u8>(),
        payload_len in 0usize..1400, ttl in any::<u8>(), dscp in 0u8..64, ecn in 0u8..4,
        ident in any::<u16>(), dont_frag in any::<bool>(), more_frags in any::<bool>(),
        frag_offset in (0u16..8192).prop_map(|o| o * 8), options in ipv4_options(),
    ) {
        let repr = ipv4::Repr {
            src_addr: src.into(), dst_addr: dst.into(), protocol: IpProtocol(protocol),
            payload_len, ttl, dscp, ecn, ident, dont_frag, more_frags, frag_offset, options,
        };
        let mut buf = vec![0xa5; repr.buffer_len() + payload_len];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
        let packet = ipv4::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(packet.options(), options.as_bytes());
        prop_assert_eq!(ipv4::Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(repr.is_fragment(), more_frags || frag_offset != 0);
    }

    #[test]
    fn ipv6_round_trip(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), next_header in any::<u8>(),
        payload_len in 0usize..1400, hop_limit in any::<u8>(), traffic_class in any::<u8>(),
        flow_label in 0u32..(1 << 20),
    ) {
        let repr = ipv6::Repr {
            src_addr: src.into(), dst_addr: dst.into(), next_header: IpProtocol(next_header),
            payload_len, hop_limit, traffic_class, flow_label,
        };
        let mut buf = vec![0xa5; repr.buffer_len() + payload_len];
        repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn udp_round_trip(
        src_port in any::<u16>(), dst_port in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..600), pseudo in pseudo_header(),
    ) {
        let repr = udp::Repr { src_port, dst_port, payload_len: payload.len() };
        let mut buf = vec![0xa5; repr.buffer_len() + payload.len()];
        buf[udp::HEADER_LEN..].copy_from_slice(&payload);
        repr.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), Some(&pseudo));
        let packet = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum(&pseudo));
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert_eq!(udp::Repr::parse(&packet, &pseudo), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn udp_corruption_is_caught(
        payload in proptest::collection::vec(any::<u8>(), 1..200), pseudo in pseudo_header(),
        at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let repr = udp::Repr { src_port: 1, dst_port: 2, payload_len: payload.len() };
        let mut buf = vec![0; udp::HEADER_LEN + payload.len()];
        buf[udp::HEADER_LEN..].copy_from_slice(&payload);
        repr.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), Some(&pseudo));
        let i = udp::HEADER_LEN + at.index(payload.len());
        buf[i] ^= flip;
        // A single corrupted byte always changes the one's-complement sum.
        let packet = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(udp::Repr::parse(&packet, &pseudo), Err(wire::Error::BadChecksum));
    }

    #[test]
    fn icmpv4_round_trip(ident in any::<u16>(), seq_no in any::<u16>(), reply in any::<bool>(),
                         data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let repr = if reply {
            icmpv4::Repr::EchoReply { ident, seq_no, data: &data }
        } else {
            icmpv4::Repr::EchoRequest { ident, seq_no, data: &data }
        };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn vxlan_round_trip(vni in vni()) {
        let repr = vxlan::Repr { vni };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut vxlan::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn vxlan_source_port_is_a_function_of_the_flow(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
        let port = vxlan::source_port(&frame);
        prop_assert!(port >= 49152);
        prop_assert_eq!(port, vxlan::source_port(&frame.clone()));
    }

    #[test]
    fn gre_round_trip(
        protocol in any::<u16>(), checksum in any::<bool>(), key in any::<Option<u32>>(),
        sequence in any::<Option<u32>>(), payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let repr = gre::Repr { protocol: EtherType(protocol), checksum, key, sequence };
        let mut buf = vec![0xa5; repr.buffer_len()];
        buf.extend_from_slice(&payload);
        repr.emit(&mut gre::Packet::new_unchecked(&mut buf[..]));
        let packet = gre::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(gre::Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn nvgre_round_trip(vsid in vni(), flow_id in any::<u8>()) {
        let repr = gre::Repr::nvgre(vsid, flow_id);
        prop_assert_eq!(repr.as_nvgre(), Some(gre::Nvgre { vsid, flow_id }));
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut gre::Packet::new_unchecked(&mut buf[..]));
        let parsed = gre::Repr::parse(&gre::Packet::new_checked(&buf[..]).unwrap()).unwrap();
        prop_assert_eq!(parsed.as_nvgre(), Some(gre::Nvgre { vsid, flow_id }));
    }

    #[test]
    fn lldp_round_trip(
        chassis in proptest::collection::vec(any::<u8>(), 1..=255), chassis_subtype in 1u8..=7,
        port in proptest::collection::vec(any::<u8>(), 1..=255), port_subtype in 1u8..=7,
        ttl in any::<u16>(),
        optional in proptest::collection::vec((4u8..=8, proptest::collection::vec(any::<u8>(), 0..64)), 0..6),
        org in proptest::collection::vec((any::<[u8; 3]>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..4),
    ) {
        let mut optional_bytes = vec![0; 2000];
        let mut writer = lldp::TlvWriter::new(&mut optional_bytes);
        for (kind, data) in &optional {
            writer.write(lldp::TlvType(*kind), data).unwrap();
        }
        for (oui, subtype, info) in &org {
            writer.write_org(lldp::Oui(*oui), *subtype, info).unwrap();
        }
        let len = writer.len();
        let repr = lldp::Repr {
            chassis_id: (lldp::ChassisIdSubtype(chassis_subtype), &chassis),
            port_id: (lldp::PortIdSubtype(port_subtype), &port),
            ttl,
            optional: &optional_bytes[..len],
        };
        let mut buf = vec![0xa5; repr.buffer_len()];
        prop_assert_eq!(repr.emit(&mut buf), Ok(buf.len()));
        let parsed = lldp::Repr::parse(&buf).unwrap();
        prop_assert_eq!(parsed, repr);
        prop_assert_eq!(parsed.optional_tlvs().count(), optional.len() + org.len());
        prop_assert_eq!(parsed.org_tlvs().count(), org.len());
    }

    #[test]
    fn dhcpv4_round_trip(xid in any::<u32>(), chaddr in any::<[u8; 6]>(), yiaddr in any::<[u8; 4]>(),
                         kind in 1u8..=8, mtu in 68u16..9000, lease in any::<u32>(),
                         dns in proptest::collection::vec(any::<[u8; 4]>(), 1..4)) {
        let mut message = dhcpv4::Message::new_with_id(
            xid, Ipv4Addr::UNSPECIFIED, yiaddr.into(), Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &chaddr,
        );
        let opts = message.opts_mut();
        opts.insert(dhcpv4::DhcpOption::MessageType(dhcpv4::MessageType::from(kind)));
        opts.insert(dhcpv4::DhcpOption::InterfaceMtu(mtu));
        opts.insert(dhcpv4::DhcpOption::AddressLeaseTime(lease));
        opts.insert(dhcpv4::DhcpOption::DomainNameServer(dns.into_iter().map(Ipv4Addr::from).collect()));
        let repr = dhcpv4::Repr { message };
        let mut buf = vec![0xa5; dhcpv4::BOOTP_MIN_LEN + 200];
        let len = repr.emit_padded(&mut buf).unwrap();
        prop_assert_eq!(dhcpv4::Repr::parse(&buf[..len]), Ok(repr));
    }

    #[test]
    fn encap_decap_round_trip(
        inner in proptest::collection::vec(any::<u8>(), 14..400),
        kind in 0u8..3, id in any::<u32>(), v6 in any::<bool>(), with_eth in any::<bool>(),
        udp_checksum_v4 in any::<bool>(), ttl in 1u8..=255,
    ) {
        let tunnel = match kind {
            0 => encap::Tunnel::Vxlan { vni: Vni::from_low_bits(id), src_port: vxlan::source_port(&inner) },
            1 => encap::Tunnel::Nvgre { vsid: Vni::from_low_bits(id >> 8), flow_id: (id & 0xff) as u8 },
            _ => encap::Tunnel::Gre { key: id },
        };
        let (src_ip, dst_ip): (IpAddr, IpAddr) = if v6 {
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into())
        } else {
            (Ipv4Addr::new(192, 0, 2, 1).into(), Ipv4Addr::new(192, 0, 2, 2).into())
        };
        let spec = encap::Encap {
            tunnel, src_ip, dst_ip, ttl, dscp: 0, ident: 7, udp_checksum_v4,
            ethernet: with_eth.then_some((MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]))),
        };
        let mut buf = vec![0u8; encap::HEADROOM];
        buf.extend_from_slice(&inner);
        let end = buf.len();
        let start = encap::encapsulate(&mut buf, encap::HEADROOM, end, &spec).unwrap();
        prop_assert!(encap::HEADROOM - start <= encap::MAX_OVERHEAD);
        let found = if with_eth {
            encap::decapsulate(&buf[start..], vxlan::PORT).unwrap()
        } else {
            encap::decapsulate_ip(&buf[start..], vxlan::PORT).unwrap()
        };
        prop_assert_eq!(&buf[start..][found.inner.clone()], &inner[..]);
        prop_assert_eq!(found.src_ip, src_ip);
        prop_assert_eq!(found.dst_ip, dst_ip);
        prop_assert_eq!(found.tunnel.wire_id(), tunnel.wire_id());
    }
}

fn vdp_vlan() -> impl Strategy<Value = vdp::Vlan> {
    (any::<bool>(), 0u8..8, 0u16..4096).prop_map(|(ps, pcp, vid)| vdp::Vlan { ps, pcp, vid })
}

/// Filter entries of any format, few enough that the VSI TLV fits its 9-bit length.
fn vdp_filters() -> impl Strategy<Value = vdp::Filters> {
    prop_oneof![
        proptest::collection::vec(vdp_vlan(), 1..=243).prop_map(vdp::Filters::Vid),
        proptest::collection::vec((mac(), vdp_vlan()), 1..=60).prop_map(vdp::Filters::MacVid),
        proptest::collection::vec((any::<u32>(), vdp_vlan()), 1..=81)
            .prop_map(vdp::Filters::GroupVid),
        proptest::collection::vec((any::<u32>(), mac(), vdp_vlan()), 1..=40)
            .prop_map(vdp::Filters::GroupMacVid),
    ]
}

fn vdp_status() -> impl Strategy<Value = vdp::Status> {
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(migrate_from, migrate_to)| {
            vdp::Status::Request {
                migrate_from,
                migrate_to,
            }
        }),
        (any::<bool>(), any::<bool>(), 0u8..16).prop_map(|(keep, hard_error, reason)| {
            vdp::Status::Response {
                keep,
                hard_error,
                reason: vdp::Reason(reason),
            }
        }),
    ]
}

fn vdp_vsi() -> impl Strategy<Value = vdp::Vsi> {
    (
        prop::sample::select(vdp::Mode::ALL.to_vec()),
        vdp_status(),
        0u32..=vdp::MAX_TYPE_ID,
        any::<u8>(),
        any::<u8>(),
        any::<[u8; 16]>(),
        vdp_filters(),
    )
        .prop_map(
            |(mode, status, type_id, type_version, id_format, id, filters)| vdp::Vsi {
                mode,
                status,
                type_id,
                type_version,
                id_format: vdp::VsiIdFormat(id_format),
                id: vdp::Id16(id),
                filters,
            },
        )
}

fn vdp_tlv() -> impl Strategy<Value = vdp::Tlv> {
    prop_oneof![
        3 => vdp_vsi().prop_map(vdp::Tlv::Vsi),
        1 => (6u8..=127, proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(kind, data)| vdp::Tlv::Other { kind: vdp::TlvType(kind), data }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn evb_round_trip(
        bridge in any::<(bool, bool, bool)>(), station in any::<(bool, bool)>(),
        rr_status in 0u8..4, max_retries in 0u8..8, rte in 0u8..32, mode in 0u8..4,
        rwd_remote in any::<bool>(), rwd in 0u8..32, rka_remote in any::<bool>(), rka in 0u8..32,
    ) {
        let repr = evb::Repr {
            bridge: evb::BridgeStatus { group_ids: bridge.0, rr_capable: bridge.1, rr_enabled: bridge.2 },
            station: evb::StationStatus {
                group_ids: station.0, rr_requested: station.1, rr_status: evb::RrStatus(rr_status),
            },
            max_retries, rte, mode: evb::EvbMode(mode), rwd_remote, rwd, rka_remote, rka,
        };
        let mut buf = vec![0u8; 32];
        let mut writer = lldp::TlvWriter::new(&mut buf);
        repr.write(&mut writer).unwrap();
        let len = writer.len();
        let tlv = lldp::TlvIter::new(&buf[..len]).next().unwrap().unwrap();
        prop_assert_eq!(evb::Repr::from_org(&tlv.org().unwrap()), Some(Ok(repr)));
    }

    #[test]
    fn evb_draft_round_trip(bytes in any::<[u8; 9]>()) {
        let repr = evb::DraftRepr::parse(&evb::DraftPacket::new_checked(&bytes[..]).unwrap()).unwrap();
        let mut buf = [0xa5; 9];
        repr.emit(&mut evb::DraftPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(buf, bytes);
    }

    #[test]
    fn cdcp_round_trip(
        station in any::<bool>(), scomp in any::<bool>(), chn_cap in 0u16..4096,
        channels in proptest::collection::vec((0u16..4096, 0u16..4096), 0..cdcp::MAX_PAIRS),
    ) {
        let repr = cdcp::Repr {
            role: if station { cdcp::Role::Station } else { cdcp::Role::Bridge },
            scomp, chn_cap,
            channels: channels.into_iter().map(|(scid, svid)| cdcp::Channel { scid, svid }).collect(),
        };
        let mut buf = vec![0xa5; 600];
        let mut writer = lldp::TlvWriter::new(&mut buf);
        repr.write(&mut writer).unwrap();
        let len = writer.len();
        prop_assert_eq!(len, 2 + 4 + repr.buffer_len());
        let tlv = lldp::TlvIter::new(&buf[..len]).next().unwrap().unwrap();
        prop_assert_eq!(cdcp::Repr::from_org(&tlv.org().unwrap()), Some(Ok(repr)));
    }

    #[test]
    fn cdcp_more_than_167_pairs_is_refused(extra in 1usize..50) {
        let repr = cdcp::Repr {
            role: cdcp::Role::Station, scomp: false, chn_cap: 4095,
            channels: vec![cdcp::Channel { scid: 2, svid: 0 }; cdcp::MAX_PAIRS - 1 + extra],
        };
        let mut buf = vec![0xa5; 1000];
        let mut writer = lldp::TlvWriter::new(&mut buf);
        prop_assert_eq!(repr.write(&mut writer), Err(wire::Error::BadLength));
        prop_assert!(writer.is_empty());
    }

    #[test]
    fn ecp_round_trip(operation in 0u8..4, subtype in 0u16..1024, sequence in any::<u16>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let repr = ecp::Repr { operation: ecp::Operation(operation), subtype: ecp::Subtype(subtype), sequence };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut ecp::Packet::new_unchecked(&mut buf[..]));
        buf.extend_from_slice(&payload);
        let packet = ecp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ecp::Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn vdp_round_trip(manager in any::<[u8; 16]>(), tlvs in proptest::collection::vec(vdp_tlv(), 0..4),
                      end in any::<bool>()) {
        let repr = vdp::Repr { manager_id: vdp::Id16(manager), tlvs, end };
        let mut buf = vec![0xa5; repr.buffer_len() + 3];
        let len = repr.emit(&mut buf).unwrap();
        prop_assert_eq!(len, repr.buffer_len());
        prop_assert_eq!(buf[len..].to_vec(), vec![0xa5; 3]);
        prop_assert_eq!(vdp::Repr::parse(&buf[..len]), Ok(repr));
    }

    #[test]
    fn vdp_and_ecp_survive_corruption(
        manager in any::<[u8; 16]>(), tlvs in proptest::collection::vec(vdp_tlv(), 1..3),
        at in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<prop::sample::Index>(),
    ) {
        // A valid VDPDU with one byte changed and cut short somewhere: the checks the fuzz
        // targets run must hold (no panic, emit/parse agree) whatever the parser decides.
        let repr = vdp::Repr { manager_id: vdp::Id16(manager), tlvs, end: false };
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        let i = at.index(buf.len());
        buf[i] ^= flip;
        let end = cut.index(buf.len() + 1);
        wire::fuzz::vdp(&buf[..end]);
        let mut ecpdu = vec![0x10, 0x01, 0x00, 0x07];
        ecpdu.extend_from_slice(&buf);
        wire::fuzz::ecp(&ecpdu);
        wire::fuzz::pretty(&[&[1, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0x89, 0x40][..], &ecpdu].concat());
    }
}

// Arbitrary bytes through every parser: the same checks the fuzz targets run.
proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        for (_, check) in wire::fuzz::CHECKS {
            check(&data);
        }
    }

    #[test]
    fn no_parser_panics_on_plausible_frames(
        eth in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x88cc, 0x8940]),
        ip_proto in prop::sample::select(vec![1u8, 6, 17, 47]),
        mut rest in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // Random bytes rarely get past the first header; give the deeper layers a chance by
        // starting with a plausible Ethernet + IP header shape.
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&eth.to_be_bytes());
        if eth == 0x0800 && rest.len() >= 20 {
            rest[0] = 0x45;
            rest[9] = ip_proto;
        }
        frame.extend_from_slice(&rest);
        for (_, check) in wire::fuzz::CHECKS {
            check(&frame);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A TCP super-frame of any size, cut at any MSS: every segment verifies, the payloads
    /// concatenate to the original, and the coalescer merges them back into the super-frame.
    #[test]
    fn gso_segments_coalesce_back_into_the_super_frame(
        v6 in any::<bool>(),
        len in 0usize..65_000,
        mss in 1u16..9_000,
        seq in any::<u32>(),
        psh in any::<bool>(),
    ) {
        use wire::{build, gso, tcp};
        let payload: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let flags = tcp::flags::ACK | if psh { tcp::flags::PSH } else { 0 };
        let mut frame = build::tcp(&build::Tcp { flags, ..build::Tcp::new(v6, seq, &payload) });
        gso::partial_checksum(&mut frame).unwrap();
        let kind = if v6 { gso::GsoKind::Tcp6 } else { gso::GsoKind::Tcp4 };
        let mut segmenter = gso::segment(&frame, gso::Gso { kind, size: mss }).unwrap();
        prop_assume!(segmenter.count() <= 2_000);
        let mut out = vec![0u8; segmenter.segment_len()];
        let mut segments = Vec::new();
        while let Some(n) = segmenter.next_into(&mut out) {
            segments.push(out[..n.unwrap()].to_vec());
        }
        let mut joined = Vec::new();
        for segment in &segments {
            let layout = gso::layout(segment).unwrap();
            let packet = tcp::Packet::new_checked(&segment[layout.l4..layout.end]).unwrap();
            prop_assert!(packet.verify_checksum(&layout.pseudo));
            joined.extend_from_slice(packet.payload());
        }
        prop_assert_eq!(&joined, &payload);
        let Some(mut run) = gso::Coalescer::start(&segments[0]) else {
            prop_assert!(len == 0);
            return Ok(());
        };
        for segment in &segments[1..] {
            prop_assert!(run.push(&segments[0], segment));
        }
        let mut merged = vec![0u8; 256];
        let (header_len, _) = run.write_header(&segments[0], &mut merged).unwrap();
        merged.truncate(header_len);
        for segment in &segments {
            merged.extend_from_slice(run.payload(segment));
        }
        prop_assert_eq!(merged, frame);
    }
}
