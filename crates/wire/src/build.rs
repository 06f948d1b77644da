//! Whole frames from a few fields, for tests, benchmarks, traffic generators and simulated
//! guests: built with the crate's own `emit`s, so they are as correct as the formats are (and
//! the formats are checked against tshark, scapy and the kernel).

use core::net::{IpAddr, Ipv4Addr};

use crate::{
    EtherType, IpProtocol, MacAddr, arp, checksum::PseudoHeader, ethernet, ipv4, ipv6, tcp, udp,
};

/// An Ethernet/IPv4/UDP frame with correct IPv4 and UDP checksums (DF set, TTL 64).
pub fn udp_ipv4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let ip_start = ethernet::HEADER_LEN;
    let udp_start = ip_start + ipv4::HEADER_LEN;
    let data_start = udp_start + udp::HEADER_LEN;
    let mut frame = vec![0; data_start + payload.len()];
    ethernet::Repr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::UDP,
        payload_len: udp::HEADER_LEN + payload.len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::NONE,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut frame[ip_start..]));
    frame[data_start..].copy_from_slice(payload);
    udp::Repr {
        src_port: ports.0,
        dst_port: ports.1,
        payload_len: payload.len(),
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut frame[udp_start..]),
        Some(&PseudoHeader::V4 { src, dst }),
    );
    frame
}

/// A broadcast ARP request: who has `target`, tell `src` at `src_mac`.
pub fn arp_request(src_mac: MacAddr, src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0; ethernet::HEADER_LEN + arp::PACKET_LEN];
    ethernet::Repr {
        src_addr: src_mac,
        dst_addr: MacAddr::BROADCAST,
        ethertype: EtherType::ARP,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    arp::Repr {
        operation: arp::Operation::REQUEST,
        source_hardware_addr: src_mac,
        source_protocol_addr: src,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: target,
    }
    .emit(&mut arp::Packet::new_unchecked(
        &mut frame[ethernet::HEADER_LEN..],
    ));
    frame
}

/// The fields of a TCP segment for [`tcp()`].
#[derive(Debug, Clone, Copy)]
pub struct Tcp<'a> {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source; IPv4 or IPv6 (both addresses of one family).
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// Source and destination ports.
    pub ports: (u16, u16),
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags ([`tcp::flags`]).
    pub flags: u8,
    /// The IPv4 id (unused for IPv6).
    pub ident: u16,
    /// The payload.
    pub payload: &'a [u8],
}

/// NOP, NOP, timestamps: the options Linux puts on every segment of an established connection.
const TCP_TIMESTAMPS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78];

impl Tcp<'_> {
    /// A segment from 10.0.0.1:40000 to 10.0.0.2:5201 (or 2001:db8::1 to ::2 for `v6`),
    /// `fa:16:3e:00:00:01` to `:02`, ACK only, ack number 1, id 1.
    pub fn new(v6: bool, seq: u32, payload: &[u8]) -> Tcp<'_> {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                core::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
                core::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
            )
        } else {
            (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            )
        };
        Tcp {
            src_mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]),
            dst_mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]),
            src,
            dst,
            ports: (40000, 5201),
            seq,
            ack: 1,
            flags: tcp::flags::ACK,
            ident: 1,
            payload,
        }
    }
}

/// An Ethernet/IPv4-or-IPv6/TCP frame with finished checksums: IPv4 with DF set and TTL 64,
/// IPv6 with hop limit 64; TCP with the timestamp option and window 502. If the addresses are
/// of different families the source's wins and the destination is the unspecified address.
pub fn tcp(spec: &Tcp<'_>) -> Vec<u8> {
    let v6 = spec.src.is_ipv6();
    let l3 = ethernet::HEADER_LEN;
    let l4 = l3
        + if v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        };
    let header_len = tcp::HEADER_LEN + TCP_TIMESTAMPS.len();
    let tcp_len = header_len + spec.payload.len();
    let mut frame = vec![0; l4 + tcp_len];
    ethernet::Repr {
        src_addr: spec.src_mac,
        dst_addr: spec.dst_mac,
        ethertype: if v6 { EtherType::IPV6 } else { EtherType::IPV4 },
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    let pseudo = match (spec.src, spec.dst) {
        (IpAddr::V6(src), dst) => {
            let dst = match dst {
                IpAddr::V6(dst) => dst,
                IpAddr::V4(_) => core::net::Ipv6Addr::UNSPECIFIED,
            };
            ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::TCP,
                payload_len: tcp_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut ipv6::Packet::new_unchecked(&mut frame[l3..]));
            PseudoHeader::V6 { src, dst }
        }
        (IpAddr::V4(src), dst) => {
            let dst = match dst {
                IpAddr::V4(dst) => dst,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::TCP,
                payload_len: tcp_len,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: spec.ident,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                options: ipv4::Options::NONE,
            }
            .emit(&mut ipv4::Packet::new_unchecked(&mut frame[l3..]));
            PseudoHeader::V4 { src, dst }
        }
    };
    let segment = &mut frame[l4..];
    segment[0..2].copy_from_slice(&spec.ports.0.to_be_bytes());
    segment[2..4].copy_from_slice(&spec.ports.1.to_be_bytes());
    segment[4..8].copy_from_slice(&spec.seq.to_be_bytes());
    segment[8..12].copy_from_slice(&spec.ack.to_be_bytes());
    // Data offset in words; header_len is 32, so this is 0x80.
    segment[12] = u8::try_from(header_len / 4 * 16).unwrap_or(0x50);
    segment[13] = spec.flags;
    segment[14..16].copy_from_slice(&502u16.to_be_bytes());
    segment[tcp::HEADER_LEN..header_len].copy_from_slice(&TCP_TIMESTAMPS);
    segment[header_len..].copy_from_slice(spec.payload);
    tcp::Packet::new_unchecked(segment).fill_checksum(&pseudo);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_parse_with_valid_checksums() {
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let (x, y) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let frame = udp_ipv4(a, b, x, y, (5000, 6000), b"weft");
        let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ipv4::Repr::parse(&ip).unwrap().dst_addr, y);
        let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
        let repr = udp::Repr::parse(&datagram, &PseudoHeader::V4 { src: x, dst: y }).unwrap();
        assert_eq!(
            (repr.src_port, repr.dst_port, datagram.payload()),
            (5000, 6000, &b"weft"[..])
        );
        let request = arp_request(a, x, y);
        let parsed = arp::Repr::parse(&arp::Packet::new_checked(&request[14..]).unwrap()).unwrap();
        assert_eq!(
            (parsed.source_hardware_addr, parsed.target_protocol_addr),
            (a, y)
        );
        for v6 in [false, true] {
            let frame = tcp(&Tcp::new(v6, 7, b"weft"));
            let layout = crate::gso::layout(&frame).unwrap();
            let segment = tcp::Packet::new_checked(&frame[layout.l4..layout.end]).unwrap();
            assert!(segment.verify_checksum(&layout.pseudo));
            assert_eq!(segment.payload(), b"weft");
            assert_eq!((segment.seq_number(), segment.header_len()), (7, 32));
        }
    }
}
