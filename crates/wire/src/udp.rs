//! UDP datagrams (RFC 768), with the pseudo-header checksum of RFC 768 and RFC 8200 §8.1.

use core::fmt;

use crate::{
    Error, IpProtocol, Result,
    checksum::{self, PseudoHeader},
    ethernet,
};

mod field {
    use crate::Field;

    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;

    /// The payload, from the end of the header to the length the header states.
    pub(super) const fn payload(length: usize) -> Field {
        CHECKSUM.end..length
    }
}

/// The length of a UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

view! {
    /// A read/write view of a UDP datagram.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header and the length it states, so no accessor can
    /// panic.
    ///
    /// [`Error::Truncated`] if the buffer is shorter than the header or than the length field;
    /// [`Error::BadLength`] if the length field is shorter than the header (this includes the
    /// zero of an IPv6 jumbogram, RFC 2675, which is not supported). Bytes after the length
    /// are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let length = usize::from(self.len());
        if length < HEADER_LEN {
            Err(Error::BadLength)
        } else if len < length {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload, in bytes.
    #[expect(
        clippy::len_without_is_empty,
        reason = "the UDP length field, not a container size"
    )]
    pub fn len(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The checksum field (zero: no checksum was computed).
    pub fn checksum(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True when the checksum over the pseudo-header, header and payload is correct.
    ///
    /// A zero checksum field means "not computed" and verifies only over IPv4 (RFC 768, and
    /// RFC 7348 §5 for VXLAN); over IPv6 it is invalid (RFC 8200 §8.1).
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return pseudo.is_v4();
        }
        checksum::finish(self.checksum_sum(pseudo)) == 0
    }

    /// The running sum of the pseudo-header and the datagram up to its length field.
    ///
    /// The data is clamped to the buffer, so a length field past its end cannot panic.
    fn checksum_sum(&self, pseudo: &PseudoHeader) -> u32 {
        let bytes = self.buffer.as_ref();
        let length = self.len();
        let data = bytes.get(..usize::from(length)).unwrap_or(bytes);
        checksum::accumulate(pseudo.sum(IpProtocol::UDP, u32::from(length)), data)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: from the end of the header to the length field (later bytes excluded).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::payload(usize::from(self.len()))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header, the header and the payload up to the
    /// length field, and writes it (set the length and write the payload first).
    ///
    /// A computed zero is sent as 0xffff, since zero means "no checksum" (RFC 768).
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        self.set_checksum(0);
        let sum = match checksum::finish(self.checksum_sum(pseudo)) {
            0 => 0xffff,
            sum => sum,
        };
        self.set_checksum(sum);
    }

    /// The payload, mutably: from the end of the header to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = field::payload(usize::from(self.len()));
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    // Shows the header without verifying the checksum: that needs the pseudo-header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        match packet.check_len() {
            Ok(()) => {
                let payload_len = usize::from(packet.len()) - HEADER_LEN;
                let repr = Repr {
                    src_port: packet.src_port(),
                    dst_port: packet.dst_port(),
                    payload_len,
                };
                fmt::Display::fmt(&repr, f)
            }
            Err(err) => write!(f, "udp ({err})"),
        }
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload length in bytes (length field minus header).
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header of a datagram carried by the IP header `pseudo` describes, and
    /// verifies its checksum.
    ///
    /// [`Error::BadChecksum`] if the checksum is wrong (see [`Packet::verify_checksum`] for
    /// the zero checksum), and the errors of [`Packet::check_len`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        pseudo: &PseudoHeader,
    ) -> Result<Self> {
        packet.check_len()?;
        if !cfg!(fuzzing) && !packet.verify_checksum(pseudo) {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The number of header bytes `emit` writes (not the payload).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: ports, length `buffer_len() + payload_len` and checksum.
    ///
    /// With `Some(pseudo)` the checksum covers the payload **already in the buffer**: write the
    /// payload first, into a buffer of at least `buffer_len() + payload_len` bytes (a shorter
    /// buffer gives a wrong checksum, not a panic). With `None` the checksum is zero, "not
    /// computed", which is valid only over IPv4 (RFC 768; RFC 8200 §8.1 forbids it over IPv6);
    /// then `buffer_len()` bytes suffice.
    ///
    /// A `payload_len` above 65527 is the caller's bug: the length saturates at 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        pseudo: Option<&PseudoHeader>,
    ) {
        let length = u16::try_from(HEADER_LEN.saturating_add(self.payload_len)).unwrap_or(u16::MAX);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(length);
        match pseudo {
            Some(pseudo) => packet.fill_checksum(pseudo),
            None => packet.set_checksum(0),
        }
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "udp {} > {} len {}",
            self.src_port, self.dst_port, self.payload_len
        )
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    // scapy: raw(IP(src="10.0.5.7", dst="10.0.5.2") / UDP(sport=5000, dport=6000)
    // / Raw(b"\xaa\xbb\xcc\xdd"))[20:]: checksum 0x3f3c.
    static PACKET_BYTES: [u8; 12] = [
        0x13, 0x88, 0x17, 0x70, 0x00, 0x0c, 0x3f, 0x3c, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // The same datagram over IPv6, scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")
    // / UDP(sport=5000, dport=6000) / Raw(b"\xaa\xbb\xcc\xdd"))[40:]: checksum 0x01d0.
    static PACKET_V6_BYTES: [u8; 12] = [
        0x13, 0x88, 0x17, 0x70, 0x00, 0x0c, 0x01, 0xd0, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // Over IPv4 as above, with the two payload bytes chosen so the checksum computes to zero;
    // scapy sends it as 0xffff (RFC 768).
    static ZERO_SUM_BYTES: [u8; 10] = [0x13, 0x88, 0x17, 0x70, 0x00, 0x0a, 0xff, 0xff, 0xb6, 0xd9];

    const PAYLOAD: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    fn pseudo_v4() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 5, 7),
            dst: Ipv4Addr::new(10, 0, 5, 2),
        }
    }

    fn pseudo_v6() -> PseudoHeader {
        PseudoHeader::V6 {
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        }
    }

    fn repr() -> Repr {
        Repr {
            src_port: 5000,
            dst_port: 6000,
            payload_len: 4,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 5000);
        assert_eq!(packet.dst_port(), 6000);
        assert_eq!(packet.len(), 12);
        assert_eq!(packet.checksum(), 0x3f3c);
        assert_eq!(packet.payload(), &PAYLOAD);
        assert!(packet.verify_checksum(&pseudo_v4()));
        assert!(!packet.verify_checksum(&pseudo_v6()));
        let packet = Packet::new_checked(&PACKET_V6_BYTES[..]).unwrap();
        assert!(packet.verify_checksum(&pseudo_v6()));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(5000);
        packet.set_dst_port(6000);
        packet.set_len(12);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        packet.fill_checksum(&pseudo_v4());
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet, &pseudo_v4()).unwrap(), repr());
        let packet = Packet::new_checked(&PACKET_V6_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet, &pseudo_v6()).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let repr = repr();
        assert_eq!(repr.buffer_len(), 8);
        for (pseudo, expected) in [(pseudo_v4(), PACKET_BYTES), (pseudo_v6(), PACKET_V6_BYTES)] {
            let mut bytes = [0xa5; 12];
            bytes[8..].copy_from_slice(&PAYLOAD);
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), Some(&pseudo));
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn test_emit_without_checksum() {
        let mut bytes = [0xa5; 8];
        repr().emit(&mut Packet::new_unchecked(&mut bytes[..]), None);
        assert_eq!(bytes, [0x13, 0x88, 0x17, 0x70, 0x00, 0x0c, 0x00, 0x00]);
        // A short buffer with a pseudo-header does not panic (the checksum is then wrong).
        let mut bytes = [0xa5; 8];
        repr().emit(
            &mut Packet::new_unchecked(&mut bytes[..]),
            Some(&pseudo_v4()),
        );
    }

    #[test]
    fn test_emit_saturates_len() {
        let repr = Repr {
            payload_len: usize::MAX,
            ..repr()
        };
        let mut bytes = [0xa5; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet, Some(&pseudo_v4()));
        assert_eq!(packet.len(), u16::MAX);
    }

    #[test]
    fn test_zero_checksum_sent_as_ffff() {
        let mut bytes = [0xa5; 10];
        bytes[8..].copy_from_slice(&ZERO_SUM_BYTES[8..]);
        let repr = Repr {
            payload_len: 2,
            ..repr()
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut bytes[..]),
            Some(&pseudo_v4()),
        );
        assert_eq!(bytes, ZERO_SUM_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(&pseudo_v4()));
        assert_eq!(Repr::parse(&packet, &pseudo_v4()).unwrap(), repr);
    }

    #[test]
    #[cfg_attr(fuzzing, ignore = "checksums are not verified under cfg(fuzzing)")]
    fn test_zero_checksum() {
        // "No checksum" is accepted over IPv4 (RFC 768) and rejected over IPv6 (RFC 8200 §8.1).
        let mut bytes = PACKET_BYTES;
        bytes[6..8].copy_from_slice(&[0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(&pseudo_v4()));
        assert_eq!(Repr::parse(&packet, &pseudo_v4()).unwrap(), repr());
        assert!(!packet.verify_checksum(&pseudo_v6()));
        assert_eq!(
            Repr::parse(&packet, &pseudo_v6()).unwrap_err(),
            Error::BadChecksum
        );
    }

    #[test]
    #[cfg_attr(fuzzing, ignore = "checksums are not verified under cfg(fuzzing)")]
    fn test_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, &pseudo_v4()).unwrap_err(),
            Error::BadChecksum
        );
        // The pseudo-header is covered: another destination address fails.
        let other = PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 5, 7),
            dst: Ipv4Addr::new(10, 0, 5, 3),
        };
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, &other).unwrap_err(),
            Error::BadChecksum
        );
    }

    #[test]
    fn test_trailing_bytes_are_not_payload() {
        let mut bytes = [0u8; 18];
        bytes[..12].copy_from_slice(&PACKET_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD);
        assert!(packet.verify_checksum(&pseudo_v4()));
        assert_eq!(Repr::parse(&packet, &pseudo_v4()).unwrap(), repr());
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..11]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn test_impossible_length() {
        for length in [0u16, 7] {
            let mut bytes = PACKET_BYTES;
            bytes[4..6].copy_from_slice(&length.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::BadLength
            );
        }
        // Exactly a header is an empty datagram.
        let mut bytes = PACKET_BYTES;
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(
            Packet::new_checked(&bytes[..])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn test_display() {
        assert_eq!(repr().to_string(), "udp 5000 > 6000 len 4");
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "udp 5000 > 6000 len 4");
        let packet = Packet::new_unchecked(&PACKET_BYTES[..5]);
        assert_eq!(packet.to_string(), "udp (truncated)");
    }
}
