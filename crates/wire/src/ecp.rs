//! ECP data units (Edge Control Protocol, 802.1Qbg-2012 clause 43, EtherType 0x8940): a 4-byte
//! header (version, operation, subtype, sequence number) in front of an upper-layer PDU, which
//! for subtype 1 is a VDPDU ([`crate::vdp`]).
//!
//! ```text
//! VVVV OO SSSSSSSSSS | sequence (16 bits) | ULPDU ...
//! ```
//! A request is `10 01 ss ss` followed by the VDPDU, its acknowledgement `14 01 ss ss` with no
//! payload (`shared/evb/PROTOCOL_NOTES.md` section 6).

use core::fmt;

use crate::{Error, Field, Result};

mod field {
    use crate::{Field, Rest};

    pub(super) const VERSION_OP_SUBTYPE: Field = 0..2;
    pub(super) const SEQUENCE: Field = 2..4;
    pub(super) const PAYLOAD: Rest = 4..;
}

/// The length of an ECP header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// The only ECP version there is.
pub const VERSION: u8 = 1;
/// The largest upper-layer PDU in one ECPDU: a 1500-byte Ethernet payload less the ECP header
/// and room for a VDP End TLV, as lldpad sizes it.
pub const MAX_PAYLOAD: usize = 1500 - HEADER_LEN - 2;

code_point! {
    /// What an ECPDU is (802.1Qbg-2012 43.3.2, two bits).
    pub struct Operation(u8) {
        /// An ECPDU carrying an upper-layer PDU.
        REQUEST = 0 => "req",
        /// The acknowledgement of a request, with the request's sequence number.
        ACK = 1 => "ack",
    }
}

code_point! {
    /// Which upper-layer protocol an ECPDU carries (ten bits).
    pub struct Subtype(u16) {
        /// VSI Discovery and Configuration Protocol.
        VDP = 1 => "vdp",
        /// Port Extender Control and Status Protocol (802.1BR).
        PECSP = 2 => "pecsp",
    }
}

view! {
    /// A read/write view of an ECPDU.
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

    fn word(&self, range: Field) -> u16 {
        let bytes = &self.buffer.as_ref()[range];
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    /// The version (four bits).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_OP_SUBTYPE.start] >> 4
    }

    /// The operation (two bits).
    pub fn operation(&self) -> Operation {
        Operation((self.buffer.as_ref()[field::VERSION_OP_SUBTYPE.start] >> 2) & 0x03)
    }

    /// The subtype (ten bits).
    pub fn subtype(&self) -> Subtype {
        Subtype(self.word(field::VERSION_OP_SUBTYPE) & 0x03ff)
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        self.word(field::SEQUENCE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The upper-layer PDU (empty in an acknowledgement; Ethernet padding included).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version, operation and subtype (4, 2 and 10 bits of each kept).
    pub fn set_header(&mut self, version: u8, operation: Operation, subtype: Subtype) {
        let word = (u16::from(version & 0x0f) << 12)
            | (u16::from(operation.0 & 0x03) << 10)
            | (subtype.0 & 0x03ff);
        self.buffer.as_mut()[field::VERSION_OP_SUBTYPE].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the sequence number.
    pub fn set_sequence(&mut self, value: u16) {
        self.buffer.as_mut()[field::SEQUENCE].copy_from_slice(&value.to_be_bytes());
    }

    /// The upper-layer PDU, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "ecp ({err})"),
        }
    }
}

/// The meaning of an ECP header.
///
/// The operation is two bits wide and the subtype ten: `emit` keeps only those bits. Reserved
/// operations and unknown subtypes parse (a protocol engine decides what to do with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Request or acknowledgement.
    pub operation: Operation,
    /// The upper-layer protocol.
    pub subtype: Subtype,
    /// The sequence number: a retransmission repeats it, a new request takes the next one.
    pub sequence: u16,
}

impl Repr {
    /// Reads a header; the version must be 1 ([`Error::BadVersion`] otherwise).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::BadVersion);
        }
        Ok(Self {
            operation: packet.operation(),
            subtype: packet.subtype(),
            sequence: packet.sequence(),
        })
    }

    /// The acknowledgement of this request: the same subtype and sequence number.
    pub const fn ack(&self) -> Self {
        Self {
            operation: Operation::ACK,
            subtype: self.subtype,
            sequence: self.sequence,
        }
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (version 1) into the first four bytes of the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_header(VERSION, self.operation, self.subtype);
        packet.set_sequence(self.sequence);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ecp {} {} seq {}",
            self.operation, self.subtype, self.sequence
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A VDP request with sequence number 1 and the first bytes of its VDPDU (capture 03:11),
    // and the acknowledgement (capture 03:12).
    static REQUEST: [u8; 6] = [0x10, 0x01, 0x00, 0x01, 0x0a, 0x10];
    static ACK: [u8; 4] = [0x14, 0x01, 0x00, 0x01];

    fn repr() -> Repr {
        Repr {
            operation: Operation::REQUEST,
            subtype: Subtype::VDP,
            sequence: 1,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.version(), 1);
        assert_eq!(packet.operation(), Operation::REQUEST);
        assert_eq!(packet.subtype(), Subtype::VDP);
        assert_eq!(packet.sequence(), 1);
        assert_eq!(packet.payload(), &[0x0a, 0x10]);
        let ack = Packet::new_checked(&ACK[..]).unwrap();
        assert_eq!(ack.operation(), Operation::ACK);
        assert!(ack.payload().is_empty());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 6];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_header(1, Operation::REQUEST, Subtype::VDP);
        packet.set_sequence(1);
        packet.payload_mut().copy_from_slice(&[0x0a, 0x10]);
        assert_eq!(bytes, REQUEST);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(repr()));
        assert_eq!(packet.to_string(), "ecp req vdp seq 1");
        let ack = Packet::new_checked(&ACK[..]).unwrap();
        assert_eq!(Repr::parse(&ack), Ok(repr().ack()));
        assert_eq!(ack.to_string(), "ecp ack vdp seq 1");
    }

    #[test]
    fn test_emit() {
        let mut bytes = [0xa5; 5];
        let repr = repr().ack();
        assert_eq!(repr.buffer_len(), 4);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..4], ACK);
        assert_eq!(bytes[4], 0xa5);
    }

    #[test]
    fn test_truncated_and_bad_version() {
        assert_eq!(
            Packet::new_checked(&ACK[..3]).unwrap_err(),
            Error::Truncated
        );
        let bytes = [0x24, 0x01, 0x00, 0x01];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::BadVersion));
        assert_eq!(packet.to_string(), "ecp (unsupported version)");
    }

    #[test]
    fn test_reserved_values_round_trip() {
        let bytes = [0x1b, 0xff, 0xff, 0xff];
        let repr = Repr::parse(&Packet::new_unchecked(&bytes[..])).unwrap();
        assert_eq!(repr.operation, Operation(2));
        assert_eq!(repr.subtype, Subtype(0x3ff));
        assert_eq!(repr.sequence, 0xffff);
        let mut out = [0u8; 4];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
        assert_eq!(repr.to_string(), "ecp 0x2 0x3ff seq 65535");
    }
}
