//! IEEE 802.1Q VLAN tags (C-tag, TPID 0x8100) and 802.1ad service tags (S-tag, TPID 0x88a8).
//!
//! A tag is modelled as the header *behind* its TPID, as Wireshark dissects it: the Ethernet
//! header's EtherType (or the previous tag's) is the TPID, and this header is the TCI followed by
//! the EtherType of what comes next. A QinQ frame is `eth(0x88a8) / tag(0x8100) / tag(0x0800)`.

use core::fmt;

use crate::{Error, EtherType, Result, ethernet};

mod field {
    use crate::{Field, Rest};

    pub(super) const TCI: Field = 0..2;
    pub(super) const ETHERTYPE: Field = 2..4;
    pub(super) const PAYLOAD: Rest = 4..;
}

/// The length of a tag header (TCI + EtherType), which is also the bytes a tag adds to a frame.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// The largest VLAN id that names a VLAN (4095 is reserved, 0 means priority-tagged).
pub const VID_MAX: u16 = 4094;
/// How many stacked tags weft accepts on one frame (802.1ad S-tag + 802.1Q C-tag).
pub const MAX_STACK: usize = 2;

view! {
    /// A read/write view of a VLAN tag header (TCI + inner EtherType).
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds a whole tag, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The whole tag control information field.
    pub fn tci(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (802.1p), 0-7.
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[field::TCI.start] >> 5
    }

    /// Drop eligible indicator (DEI; CFI in old 802.1Q).
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[field::TCI.start] & 0x10 != 0
    }

    /// VLAN identifier, 0-4095.
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType of what follows the tag (another TPID for stacked tags).
    pub fn ethertype(&self) -> EtherType {
        EtherType(ethernet::read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the whole tag control information field.
    pub fn set_tci(&mut self, value: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the EtherType of what follows the tag.
    pub fn set_ethertype(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.0.to_be_bytes());
    }

    /// The bytes after the tag, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The meaning of a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point, 0-7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id, 0-4095 (0: priority tag only; 4095: reserved).
    pub vid: u16,
    /// What follows the tag.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads a tag.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vid: packet.vid(),
            ethertype: packet.ethertype(),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// The tag control information these fields make (PCP and VID are masked to their widths).
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// Writes the tag into the first `buffer_len()` bytes of the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_tci(self.tci());
        packet.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vlan {}", self.vid)?;
        if self.pcp != 0 {
            write!(f, " pcp {}", self.pcp)?;
        }
        if self.dei {
            f.write_str(" dei")?;
        }
        Ok(())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "vlan ({err})"),
        }
    }
}

/// One tag of a stack, with the TPID that introduced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// `EtherType::VLAN` (C-tag) or `EtherType::QINQ` (S-tag).
    pub tpid: EtherType,
    /// The tag's fields.
    pub repr: Repr,
}

/// The VLAN tags at the front of an Ethernet frame, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TagStack {
    tags: [Option<Tag>; MAX_STACK],
}

impl TagStack {
    /// Reads the tags of an Ethernet frame (which must hold a whole Ethernet header).
    ///
    /// Returns the stack and the offset of the first byte behind the last tag. More than
    /// [`MAX_STACK`] tags is [`Error::Unsupported`]: weft does not forward such frames.
    pub fn parse(frame: &[u8]) -> Result<(Self, usize)> {
        let eth = ethernet::Frame::new_checked(frame)?;
        let mut stack = Self::default();
        let mut tpid = eth.ethertype();
        let mut offset = ethernet::HEADER_LEN;
        let mut depth = 0;
        while tpid.is_vlan_tag() {
            if depth == MAX_STACK {
                return Err(Error::Unsupported);
            }
            let tag = Packet::new_checked(&frame[offset..])?;
            let repr = Repr::parse(&tag)?;
            stack.tags[depth] = Some(Tag { tpid, repr });
            tpid = repr.ethertype;
            offset += HEADER_LEN;
            depth += 1;
        }
        Ok((stack, offset))
    }

    /// The tags, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter().flatten()
    }

    /// The number of tags.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True for an untagged frame.
    pub fn is_empty(&self) -> bool {
        self.tags[0].is_none()
    }

    /// The outermost tag.
    pub fn outer(&self) -> Option<&Tag> {
        self.tags[0].as_ref()
    }
}

/// Inserts a tag behind the MAC addresses of the frame at `buffer[start..]`, using 4 bytes of
/// headroom in front of it; returns the frame's new start. The frame is not copied, only its
/// 12 address bytes move.
pub fn push_tag(buffer: &mut [u8], start: usize, tpid: EtherType, tci: u16) -> Result<usize> {
    if start < HEADER_LEN {
        return Err(Error::NoRoom);
    }
    if buffer.len() < start + ethernet::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let new_start = start - HEADER_LEN;
    buffer.copy_within(start..start + 12, new_start);
    buffer[new_start + 12..new_start + 14].copy_from_slice(&tpid.0.to_be_bytes());
    buffer[new_start + 14..new_start + 16].copy_from_slice(&tci.to_be_bytes());
    Ok(new_start)
}

/// Removes the outermost tag of the frame at `buffer[start..]`; returns the frame's new start
/// and the tag. The frame is not copied, only its 12 address bytes move.
pub fn pop_tag(buffer: &mut [u8], start: usize) -> Result<(usize, Tag)> {
    let frame = buffer.get(start..).ok_or(Error::Truncated)?;
    let eth = ethernet::Frame::new_checked(frame)?;
    let tpid = eth.ethertype();
    if !tpid.is_vlan_tag() {
        return Err(Error::Unsupported);
    }
    let repr = Repr::parse(&Packet::new_checked(&frame[ethernet::HEADER_LEN..])?)?;
    let new_start = start + HEADER_LEN;
    buffer.copy_within(start..start + 12, new_start);
    Ok((new_start, Tag { tpid, repr }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MacAddr;

    // 802.1ad S-tag 100 (PCP 3) + 802.1Q C-tag 200 (DEI) + IPv4, behind a 14-byte header.
    static QINQ: [u8; 24] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xa8, 0x60, 0x64, 0x81, 0x00, 0x10,
        0xc8, 0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn test_deconstruct() {
        let tag = Packet::new_checked(&QINQ[14..]).unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (3, false, 100));
        assert_eq!(tag.ethertype(), EtherType::VLAN);
        let inner = Packet::new_checked(tag.payload()).unwrap();
        assert_eq!((inner.pcp(), inner.dei(), inner.vid()), (0, true, 200));
        assert_eq!(inner.ethertype(), EtherType::IPV4);
        assert_eq!(inner.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 8];
        let mut tag = Packet::new_unchecked(&mut bytes[..]);
        tag.set_tci(0x6064);
        tag.set_ethertype(EtherType::VLAN);
        tag.payload_mut().copy_from_slice(&[0x10, 0xc8, 0x08, 0x00]);
        assert_eq!(bytes, QINQ[14..22]);
    }

    #[test]
    fn test_parse_emit() {
        let repr = Repr::parse(&Packet::new_checked(&QINQ[18..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr {
                pcp: 0,
                dei: true,
                vid: 200,
                ethertype: EtherType::IPV4
            }
        );
        let mut bytes = [0xa5; 4];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, QINQ[18..22]);
        assert_eq!(repr.to_string(), "vlan 200 dei");
    }

    #[test]
    fn test_stack() {
        let (stack, offset) = TagStack::parse(&QINQ).unwrap();
        assert_eq!(offset, 22);
        assert_eq!(stack.len(), 2);
        let tags: Vec<_> = stack.iter().map(|t| (t.tpid, t.repr.vid)).collect();
        assert_eq!(tags, [(EtherType::QINQ, 100), (EtherType::VLAN, 200)]);
    }

    #[test]
    fn test_stack_too_deep() {
        let mut frame = QINQ.to_vec();
        frame[20..22].copy_from_slice(&[0x81, 0x00]);
        frame.extend_from_slice(&[0, 1, 0x08, 0x00]);
        assert_eq!(TagStack::parse(&frame).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(TagStack::parse(&QINQ[..20]).unwrap_err(), Error::Truncated);
        assert_eq!(
            Packet::new_checked(&QINQ[..3]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn test_push_pop() {
        let mut buffer = [0u8; 4 + 18];
        buffer[4..10].copy_from_slice(&[0xff; 6]);
        buffer[10..16].copy_from_slice(&[0xfa, 0x16, 0x3e, 0, 0, 1]);
        buffer[16..18].copy_from_slice(&[0x08, 0x06]);
        let original = buffer[4..].to_vec();
        let start = push_tag(&mut buffer, 4, EtherType::VLAN, 5).unwrap();
        assert_eq!(start, 0);
        let eth = ethernet::Frame::new_checked(&buffer[..]).unwrap();
        assert_eq!(eth.src_addr(), MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]));
        assert_eq!(eth.ethertype(), EtherType::VLAN);
        let (start, tag) = pop_tag(&mut buffer, 0).unwrap();
        assert_eq!(
            (start, tag.repr.vid, tag.repr.ethertype),
            (4, 5, EtherType::ARP)
        );
        assert_eq!(buffer[4..], original[..]);
        assert_eq!(
            push_tag(&mut buffer, 3, EtherType::VLAN, 5),
            Err(Error::NoRoom)
        );
    }
}
