//! Ethernet II frames (IEEE 802.3 clause 3.2.6 with an EtherType, not a length).

use core::fmt;

use crate::{Error, Field, MacAddr, Result};

code_point! {
    /// The EtherType of a frame or of the header behind a VLAN tag.
    pub struct EtherType(u16) {
        /// Internet Protocol version 4.
        IPV4 = 0x0800 => "ipv4",
        /// Address Resolution Protocol.
        ARP = 0x0806 => "arp",
        /// IEEE 802.1Q customer VLAN tag (C-tag).
        VLAN = 0x8100 => "vlan",
        /// Internet Protocol version 6.
        IPV6 = 0x86dd => "ipv6",
        /// IEEE 802.1AB Link Layer Discovery Protocol.
        LLDP = 0x88cc => "lldp",
        /// IEEE 802.1ad service VLAN tag (S-tag).
        QINQ = 0x88a8 => "qinq",
        /// IEEE 802.1Qbg Edge Control Protocol.
        ECP = 0x8940 => "ecp",
        /// Transparent Ethernet Bridging: an Ethernet frame carried by GRE/NVGRE.
        TRANSPARENT_ETHERNET = 0x6558 => "teb",
    }
}

impl EtherType {
    /// True for the TPIDs that start a VLAN tag (802.1Q C-tag, 802.1ad S-tag).
    pub const fn is_vlan_tag(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

mod field {
    use crate::{Field, Rest};

    pub(super) const DESTINATION: Field = 0..6;
    pub(super) const SOURCE: Field = 6..12;
    pub(super) const ETHERTYPE: Field = 12..14;
    pub(super) const PAYLOAD: Rest = 14..;
}

/// The length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

view! {
    /// A read/write view of an Ethernet II frame.
    Frame
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks that the buffer holds a whole header, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The length of the header.
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// The destination address.
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The source address.
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The EtherType.
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.0.to_be_bytes());
    }

    /// The bytes after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Frame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Frame::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "eth ({err})"),
        }
    }
}

/// The meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// What the payload is.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first `buffer_len()` bytes of the frame.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "eth {} > {}", self.src_addr, self.dst_addr)
    }
}

/// Reads a big-endian `u16` from a two-byte field.
// Non-generic and called from generic views in other crates: let them inline it.
#[inline]
pub(crate) fn read_u16(buffer: &[u8], field: Field) -> u16 {
    let bytes = &buffer[field];
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// Reads a big-endian `u32` from a four-byte field.
#[inline]
pub(crate) fn read_u32(buffer: &[u8], field: Field) -> u32 {
    let bytes = &buffer[field];
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    // A broadcast ARP frame's header followed by four payload bytes.
    static FRAME_BYTES: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01, 0x08, 0x06, 0xaa,
        0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: MacAddr([0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01]),
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::ARP,
        }
    }

    #[test]
    fn test_deconstruct() {
        let frame = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(
            frame.src_addr(),
            MacAddr([0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01])
        );
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(frame.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 18];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(MacAddr([0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01]));
        frame.set_ethertype(EtherType::ARP);
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, FRAME_BYTES);
    }

    #[test]
    fn test_parse() {
        let frame = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&frame).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let mut bytes = [0xa5; 18];
        let repr = repr();
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..repr.buffer_len()], FRAME_BYTES[..HEADER_LEN]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Frame::new_checked(&FRAME_BYTES[..13]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn unknown_ethertype_round_trips() {
        assert_eq!(EtherType(0x0800), EtherType::IPV4);
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert_eq!(u16::from(EtherType::from(0x1234)), 0x1234);
        assert_eq!(EtherType::QINQ.to_string(), "qinq");
    }
}
