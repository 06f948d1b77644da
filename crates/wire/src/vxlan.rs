//! VXLAN headers (RFC 7348 §5): 8 bytes in front of an inner Ethernet frame, carried in UDP.
//!
//! Also the UDP source port a VTEP picks for a frame ([`source_port`]), a hash of the inner flow.

use core::fmt;
use core::ops::RangeInclusive;

use crate::{Error, IpProtocol, Result, Vni, ethernet};

mod field {
    use crate::{Field, Rest};

    pub(super) const FLAGS: usize = 0;
    pub(super) const RESERVED0: Field = 1..4;
    pub(super) const VNI: Field = 4..7;
    pub(super) const RESERVED1: usize = 7;
    pub(super) const PAYLOAD: Rest = 8..;
}

/// The IANA-assigned UDP destination port for VXLAN (RFC 7348 §5).
pub const PORT: u16 = 4789;
/// The length of a VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// The I flag: the VNI field is valid (RFC 7348 §5, must be set).
pub const FLAG_I: u8 = 0x08;

view! {
    /// A read/write view of a VXLAN header and the inner frame behind it.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds a whole header, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The flags octet (`RRRRIRRR`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// True when the I flag (valid VNI) is set.
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24 reserved bits between the flags and the VNI.
    pub fn reserved0(&self) -> u32 {
        let bytes = &self.buffer.as_ref()[field::RESERVED0];
        u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
    }

    /// The VXLAN network identifier.
    pub fn vni(&self) -> Vni {
        let bytes = &self.buffer.as_ref()[field::VNI];
        Vni::from_low_bits(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }

    /// The reserved octet after the VNI.
    pub fn reserved1(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED1]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The inner Ethernet frame.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags octet.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the 24 reserved bits after the flags (the upper 8 bits of `value` are dropped).
    pub fn set_reserved0(&mut self, value: u32) {
        self.buffer.as_mut()[field::RESERVED0].copy_from_slice(&value.to_be_bytes()[1..]);
    }

    /// Sets the VXLAN network identifier.
    pub fn set_vni(&mut self, value: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&value.get().to_be_bytes()[1..]);
    }

    /// Sets the reserved octet after the VNI.
    pub fn set_reserved1(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED1] = value;
    }

    /// The inner Ethernet frame, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "vxlan ({err})"),
        }
    }
}

/// The meaning of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The VXLAN network identifier.
    pub vni: Vni,
}

impl Repr {
    /// Reads a header.
    ///
    /// The I flag must be set ([`Error::BadFlags`] otherwise). The other flag bits and both
    /// reserved fields are ignored: RFC 7348 §5 says they MUST be ignored on receipt.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.i_flag() {
            return Err(Error::BadFlags);
        }
        Ok(Self { vni: packet.vni() })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first `buffer_len()` bytes of the packet: the I flag alone,
    /// reserved fields zero (RFC 7348 §5: reserved fields MUST be set to zero on transmission).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(FLAG_I);
        packet.set_reserved0(0);
        packet.set_vni(self.vni);
        packet.set_reserved1(0);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vxlan vni {}", self.vni)
    }
}

/// The dynamic/private port range RFC 7348 §5 recommends for the outer UDP source port.
pub const SOURCE_PORT_RANGE: RangeInclusive<u16> = 49152..=65535;

/// The outer UDP source port for an inner frame: a hash of its flow, in 49152..=65535.
///
/// RFC 7348 §5 recommends a hash of fields of the inner packet, in the dynamic/private range
/// 49152-65535, so that ECMP and RSS in the underlay spread flows while each flow stays on one
/// path. See [`source_port_in`] for the fields.
pub fn source_port(inner_frame: &[u8]) -> u16 {
    source_port_in(inner_frame, SOURCE_PORT_RANGE)
}

/// The outer UDP source port for an inner frame: a hash of its flow, mapped into `range`.
///
/// The hash covers the Ethernet addresses and, behind up to two VLAN tags (TPIDs 0x8100 and
/// 0x88a8, which are skipped and not hashed), the EtherType; for IPv4 the addresses and the
/// protocol, and for TCP and UDP the ports unless the packet is a fragment (so every fragment of
/// a datagram takes the same path); for IPv6 the addresses, the next header of the fixed header
/// and, when that is TCP or UDP, the ports. A truncated frame hashes the fields it holds.
///
/// The function is deterministic (the same flow always gets the same port, across processes and
/// hosts), never panics and never allocates. An empty `range` (start above end) gives its start.
pub fn source_port_in(inner_frame: &[u8], range: RangeInclusive<u16>) -> u16 {
    let (start, end) = (*range.start(), *range.end());
    if end < start {
        return start;
    }
    let span = u64::from(end - start) + 1;
    // Multiply-shift maps the 32-bit hash onto the span without a division: each port of the
    // span gets either the floor or the ceiling of 2^32 / span of the hash values.
    let offset = (u64::from(flow_hash(inner_frame)) * span) >> 32;
    // offset < span <= 65536, and start + offset <= end, so both conversions succeed.
    u16::try_from(offset)
        .ok()
        .and_then(|offset| start.checked_add(offset))
        .unwrap_or(start)
}

/// True for the protocols whose first four payload bytes are the source and destination ports.
fn has_ports(protocol: u8) -> bool {
    protocol == IpProtocol::TCP.0 || protocol == IpProtocol::UDP.0
}

/// Hashes the flow fields of an Ethernet frame (see [`source_port_in`]).
fn flow_hash(frame: &[u8]) -> u32 {
    let mut hash = FlowHasher::new();
    hash_flow(&mut hash, frame);
    hash.finish()
}

/// Feeds the flow fields into `hash`, stopping at the first field the frame does not hold.
fn hash_flow(hash: &mut FlowHasher, frame: &[u8]) -> Option<()> {
    hash.write(frame.get(..12)?);
    let mut offset = 12;
    let mut ethertype = read_u16_at(frame, offset)?;
    offset += 2;
    for _ in 0..crate::vlan::MAX_STACK {
        if !ethernet::EtherType(ethertype).is_vlan_tag() {
            break;
        }
        ethertype = read_u16_at(frame, offset + 2)?;
        offset += crate::vlan::HEADER_LEN;
    }
    hash.write_u16(ethertype);
    let l3 = frame.get(offset..)?;
    match ethernet::EtherType(ethertype) {
        ethernet::EtherType::IPV4 => hash_ipv4(hash, l3),
        ethernet::EtherType::IPV6 => hash_ipv6(hash, l3),
        _ => Some(()),
    }
}

/// IPv4 (RFC 791 §3.1): addresses, protocol, and the ports of an unfragmented TCP/UDP packet.
fn hash_ipv4(hash: &mut FlowHasher, packet: &[u8]) -> Option<()> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 {
        return Some(());
    }
    let protocol = *packet.get(9)?;
    hash.write(packet.get(12..20)?);
    hash.write_u8(protocol);
    // More-fragments flag or a non-zero fragment offset: only the first fragment has ports.
    let fragment = read_u16_at(packet, 6)? & 0x3fff != 0;
    if !fragment && has_ports(protocol) {
        hash.write(packet.get(header_len..header_len + 4)?);
    }
    Some(())
}

/// IPv6 (RFC 8200 §3): addresses, next header, and the ports when the fixed header is followed
/// directly by TCP or UDP (extension headers are not walked).
fn hash_ipv6(hash: &mut FlowHasher, packet: &[u8]) -> Option<()> {
    if packet.first()? >> 4 != 6 {
        return Some(());
    }
    let next_header = *packet.get(6)?;
    hash.write(packet.get(8..40)?);
    hash.write_u8(next_header);
    if has_ports(next_header) {
        hash.write(packet.get(40..44)?);
    }
    Some(())
}

/// A big-endian `u16` at `offset`, `None` past the end.
fn read_u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    match bytes.get(offset..)? {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// A small, fast, deterministic hash over flow fields.
///
/// Fields are absorbed eight bytes at a time (a multiply-rotate step, as FxHash does), and the
/// MurmurHash3 finaliser then spreads every input bit over the whole word, so any slice of the
/// result is usable. Not meant to resist chosen inputs: it only picks an entropy port.
struct FlowHasher(u64);

impl FlowHasher {
    const SEED: u64 = 0xcbf2_9ce4_8422_2325;
    const K: u64 = 0x517c_c1b7_2722_0a95;

    const fn new() -> Self {
        Self(Self::SEED)
    }

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // Tag the tail with its length so "ab" and "ab\0" differ.
            word[7] ^= u8::try_from(rest.len()).unwrap_or(0) << 4;
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte) | 0x100);
    }

    fn write_u16(&mut self, value: u16) {
        self.mix(u64::from(value) | 0x1_0000);
    }

    fn finish(&self) -> u32 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        // Fold the two halves so every bit of the 64-bit state counts.
        let [a, b, c, d, e, f, g, h] = x.to_be_bytes();
        u32::from_be_bytes([a, b, c, d]) ^ u32::from_be_bytes([e, f, g, h])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    // VNI 100 (0x000064) followed by the first four bytes of an inner frame.
    static PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Repr {
        Repr {
            vni: Vni::new(100).unwrap(),
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags(), FLAG_I);
        assert!(packet.i_flag());
        assert_eq!(packet.reserved0(), 0);
        assert_eq!(packet.vni().get(), 100);
        assert_eq!(packet.reserved1(), 0);
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_flags(FLAG_I);
        packet.set_reserved0(0);
        packet.set_vni(Vni::new(100).unwrap());
        packet.set_reserved1(0);
        packet
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
        assert_eq!(packet.to_string(), "vxlan vni 100");
    }

    #[test]
    fn test_emit() {
        let mut bytes = [0xa5; 12];
        let repr = repr();
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..repr.buffer_len()], PACKET_BYTES[..HEADER_LEN]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert!(
            Packet::new_checked(&PACKET_BYTES[..8])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn test_i_flag_clear() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x00;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::BadFlags));
        assert_eq!(packet.to_string(), "vxlan (bad flags)");
    }

    #[test]
    fn test_reserved_ignored() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.reserved0(), 0x00ff_ffff);
        assert_eq!(packet.reserved1(), 0xff);
        assert_eq!(Repr::parse(&packet).unwrap().vni.get(), Vni::MAX);
    }

    #[test]
    fn test_set_reserved0_drops_upper_bits() {
        let mut bytes = [0u8; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_reserved0(0xab12_3456);
        assert_eq!(packet.reserved0(), 0x0012_3456);
        assert_eq!(bytes, [0, 0x12, 0x34, 0x56, 0, 0, 0, 0]);
    }

    /// An untagged Ethernet/IPv4/TCP frame between two fixed hosts with the given ports.
    fn tcp_frame(src_port: u16, dst_port: u16) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        frame.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        frame.extend_from_slice(&src_port.to_be_bytes());
        frame.extend_from_slice(&dst_port.to_be_bytes());
        frame.extend_from_slice(&[0; 16]);
        frame
    }

    /// An Ethernet/IPv6/UDP frame with the given ports.
    fn udp6_frame(src_port: u16, dst_port: u16) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd];
        frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        frame.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        frame.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        frame.extend_from_slice(&src_port.to_be_bytes());
        frame.extend_from_slice(&dst_port.to_be_bytes());
        frame.extend_from_slice(&[0, 8, 0, 0]);
        frame
    }

    #[test]
    fn test_source_port_deterministic_and_in_range() {
        let frame = tcp_frame(40000, 80);
        let port = source_port(&frame);
        assert!(SOURCE_PORT_RANGE.contains(&port));
        assert_eq!(port, source_port(&frame));
        assert_eq!(port, source_port(&frame.clone()));
        // The payload behind the ports is not part of the flow.
        let mut other_payload = frame.clone();
        *other_payload.last_mut().unwrap() = 0xff;
        assert_eq!(port, source_port(&other_payload));
    }

    #[test]
    fn test_source_port_spreads_flows() {
        let v4: HashSet<u16> = (0..1000)
            .map(|i| source_port(&tcp_frame(30000 + i, 443)))
            .collect();
        assert!(
            v4.len() > 900,
            "1000 TCP flows gave only {} ports",
            v4.len()
        );
        assert!(v4.iter().all(|port| SOURCE_PORT_RANGE.contains(port)));
        let v6: HashSet<u16> = (0..1000)
            .map(|i| source_port(&udp6_frame(53, 1024 + i)))
            .collect();
        assert!(
            v6.len() > 900,
            "1000 UDP/IPv6 flows gave only {} ports",
            v6.len()
        );
        // Both halves of the range are used.
        assert!(v4.iter().any(|&port| port < 57344) && v4.iter().any(|&port| port >= 57344));
    }

    #[test]
    fn test_source_port_small_range() {
        let ports: HashSet<u16> = (0..200)
            .map(|i| source_port_in(&tcp_frame(i, 80), 10..=13))
            .collect();
        assert_eq!(ports, HashSet::from([10, 11, 12, 13]));
        assert_eq!(source_port_in(&tcp_frame(1, 2), 7..=7), 7);
        #[expect(clippy::reversed_empty_ranges, reason = "an empty range on purpose")]
        let empty = 9..=5;
        assert_eq!(source_port_in(&tcp_frame(1, 2), empty), 9);
        // The whole u16 range (a span of 65536) maps without overflow.
        let ports: HashSet<u16> = (0..100)
            .map(|i| source_port_in(&tcp_frame(i, 80), 0..=u16::MAX))
            .collect();
        assert!(ports.len() > 90);
    }

    #[test]
    fn test_source_port_skips_vlan_tags() {
        let tagged = |src_port: u16| {
            let mut frame = tcp_frame(src_port, 80);
            frame.splice(12..12, [0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 200]);
            frame
        };
        let ports: HashSet<u16> = (0..100).map(|i| source_port(&tagged(i))).collect();
        assert!(ports.len() > 90, "ports behind QinQ tags were not hashed");
    }

    #[test]
    fn test_source_port_ipv4_fragments_share_a_port() {
        // Fragments carry no ports past the first, so ports must not be hashed for any of them.
        let fragment = |src_port: u16, offset: u16| {
            let mut frame = tcp_frame(src_port, 80);
            frame[20..22].copy_from_slice(&(0x2000 | offset).to_be_bytes());
            frame
        };
        assert_eq!(source_port(&fragment(1, 0)), source_port(&fragment(2, 185)));
        assert_ne!(source_port(&tcp_frame(1, 80)), source_port(&fragment(1, 0)));
    }

    #[test]
    fn test_source_port_never_panics() {
        for frame in [tcp_frame(1, 2), udp6_frame(3, 4)] {
            for len in 0..=frame.len() {
                let port = source_port(&frame[..len]);
                assert!(SOURCE_PORT_RANGE.contains(&port));
            }
        }
        // Odd headers: IHL below 5, IHL past the end, a wrong IP version, endless VLAN tags.
        let mut frame = tcp_frame(1, 2);
        for first in [0x40, 0x4f, 0x65, 0xff] {
            frame[14] = first;
            source_port(&frame);
        }
        source_port(&[0x81, 0x00].repeat(40));
        source_port(&[0xff; 3]);
    }
}
