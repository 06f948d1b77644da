//! Whole frames from a few fields, for tests, benchmarks, traffic generators and simulated
//! guests: built with the crate's own `emit`s, so they are as correct as the formats are (and
//! the formats are checked against tshark, scapy and the kernel).

use core::net::Ipv4Addr;

use crate::{EtherType, IpProtocol, MacAddr, arp, checksum::PseudoHeader, ethernet, ipv4, udp};

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
    }
}
