//! GRE headers (RFC 2784) with the key and sequence number extensions (RFC 2890), and the NVGRE
//! use of the key (RFC 7637 §3.2): a 24-bit virtual subnet id and an 8-bit flow id.

use core::fmt;

use crate::{Error, EtherType, Result, Vni, checksum, ethernet};

mod field {
    use crate::{Field, Rest};

    pub(super) const FLAGS: Field = 0..2;
    pub(super) const PROTOCOL: Field = 2..4;
    pub(super) const CHECKSUM: Field = 4..6;
    pub(super) const RESERVED1: Field = 6..8;

    /// The key follows the checksum word when that is present (RFC 2890 §2).
    pub(super) const fn key(checksum: bool) -> Field {
        let start = 4 + 4 * checksum as usize;
        start..start + 4
    }

    /// The sequence number follows the checksum word and the key, each when present.
    pub(super) const fn sequence(checksum: bool, key: bool) -> Field {
        let start = 4 + 4 * checksum as usize + 4 * key as usize;
        start..start + 4
    }

    pub(super) const fn payload(header_len: usize) -> Rest {
        header_len..
    }
}

/// The length of a GRE header without optional fields.
pub const HEADER_LEN_MIN: usize = field::PROTOCOL.end;

/// C: the checksum and reserved1 fields are present (RFC 2784 §2.2).
const FLAG_C: u16 = 0x8000;
/// K: the key field is present (RFC 2890 §2).
const FLAG_K: u16 = 0x2000;
/// S: the sequence number field is present (RFC 2890 §2).
const FLAG_S: u16 = 0x1000;
/// Reserved bits whose presence means a GRE variant weft does not implement (RFC 2784 §2.3):
/// bit 1 (routing), bit 4 (strict source route), bit 5 (top recursion-control bit).
const MUST_DISCARD: u16 = 0x4000 | 0x0800 | 0x0400;
/// Bits 0-12 of the first word: the flags and the reserved bits around them.
const FLAGS_MASK: u16 = 0xfff8;
/// Bits 13-15 of the first word, the low bits of its second byte: the version.
const VERSION_MASK: u8 = 0x07;

view! {
    /// A read/write view of a GRE header and its payload.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed header and every optional field the flags
    /// announce, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN_MIN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The first 16-bit word: flags, reserved bits and version.
    fn flags_word(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// C (bit 0): the checksum and reserved1 fields are present.
    pub fn checksum_present(&self) -> bool {
        self.flags_word() & FLAG_C != 0
    }

    /// K (bit 2): the key field is present.
    pub fn key_present(&self) -> bool {
        self.flags_word() & FLAG_K != 0
    }

    /// S (bit 3): the sequence number field is present.
    pub fn seq_present(&self) -> bool {
        self.flags_word() & FLAG_S != 0
    }

    /// The reserved bits of the first word ([`Repr::parse`] says which of them weft refuses).
    ///
    /// These are bits 0-12 of the word with C, K and S masked off, left in their places (bit
    /// *n* of the RFC 2784 figure is `0x8000 >> n`): the RFC 1701 routing (bit 1, `0x4000`),
    /// strict source route (bit 4, `0x0800`), recursion control (bits 5-7, `0x0700`) and flags
    /// (bits 8-12, `0x00f8`).
    pub fn reserved0(&self) -> u16 {
        self.flags_word() & FLAGS_MASK & !(FLAG_C | FLAG_K | FLAG_S)
    }

    /// The version (bits 13-15); 0 for GRE, 1 for the enhanced GRE of PPTP.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS.start + 1] & VERSION_MASK
    }

    /// The EtherType of the payload (`EtherType::TRANSPARENT_ETHERNET` for NVGRE).
    pub fn protocol(&self) -> EtherType {
        EtherType(ethernet::read_u16(self.buffer.as_ref(), field::PROTOCOL))
    }

    /// The length of the header with the optional fields its flags announce.
    pub fn header_len(&self) -> usize {
        let optional = usize::from(self.checksum_present())
            + usize::from(self.key_present())
            + usize::from(self.seq_present());
        HEADER_LEN_MIN + 4 * optional
    }

    /// The checksum field, when present.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| ethernet::read_u16(self.buffer.as_ref(), field::CHECKSUM))
    }

    /// The reserved1 field after the checksum, when present.
    pub fn reserved1(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| ethernet::read_u16(self.buffer.as_ref(), field::RESERVED1))
    }

    /// The key, when present.
    pub fn key(&self) -> Option<u32> {
        let range = field::key(self.checksum_present());
        self.key_present()
            .then(|| ethernet::read_u32(self.buffer.as_ref(), range))
    }

    /// The sequence number, when present.
    pub fn sequence(&self) -> Option<u32> {
        let range = field::sequence(self.checksum_present(), self.key_present());
        self.seq_present()
            .then(|| ethernet::read_u32(self.buffer.as_ref(), range))
    }

    /// True when there is no checksum, or when the checksum matches the header and payload.
    ///
    /// RFC 2784 §2.5: the checksum is the Internet checksum of the GRE header and payload with
    /// the checksum field taken as zero; the whole buffer is taken to be header and payload.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        let header_len = self.header_len();
        &self.buffer.as_ref()[field::payload(header_len)]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the C, K and S flags, clearing the reserved bits and the version.
    ///
    /// Call this before the other setters: the optional fields move with the flags.
    pub fn set_flags(&mut self, checksum: bool, key: bool, seq: bool) {
        let mut word = 0;
        if checksum {
            word |= FLAG_C;
        }
        if key {
            word |= FLAG_K;
        }
        if seq {
            word |= FLAG_S;
        }
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the version (only its low three bits are kept).
    pub fn set_version(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::FLAGS.start + 1];
        *byte = (*byte & !VERSION_MASK) | (value & VERSION_MASK);
    }

    /// Sets the EtherType of the payload.
    pub fn set_protocol(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the checksum field (which is always at offset 4; set C first).
    pub fn set_checksum_field(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the reserved1 field after the checksum (always at offset 6; set C first).
    pub fn set_reserved1(&mut self, value: u16) {
        self.buffer.as_mut()[field::RESERVED1].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the key, at the offset the current C flag gives it (set the flags first).
    pub fn set_key(&mut self, value: u32) {
        let range = field::key(self.checksum_present());
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the sequence number, at the offset the current C and K flags give it (set the flags
    /// first).
    pub fn set_sequence(&mut self, value: u32) {
        let range = field::sequence(self.checksum_present(), self.key_present());
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes and writes the checksum over the whole buffer (header and payload), when C is
    /// set; does nothing otherwise.
    pub fn fill_checksum(&mut self) {
        if !self.checksum_present() {
            return;
        }
        self.set_checksum_field(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum_field(sum);
    }

    /// The bytes after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[field::payload(header_len)]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "gre ({err})"),
        }
    }
}

/// The meaning of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The EtherType of the payload.
    pub protocol: EtherType,
    /// True when the header carries a checksum over header and payload.
    pub checksum: bool,
    /// The key (RFC 2890), if present.
    pub key: Option<u32>,
    /// The sequence number (RFC 2890), if present.
    pub sequence: Option<u32>,
}

impl Repr {
    /// Reads a header.
    ///
    /// Errors: [`Error::BadVersion`] for a version other than 0 (RFC 2784 §2.3.1; checked before
    /// the length, so a PPTP header is reported as such); [`Error::BadFlags`] for any bit of
    /// bits 1, 4 or 5 set; [`Error::BadChecksum`] when a checksum is present and wrong
    /// (not checked under `cfg(fuzzing)`). The reserved1 field behind the checksum is ignored.
    ///
    /// RFC 2784 §2.3: a receiver that does not implement RFC 1701 (routing, strict source route,
    /// recursion) MUST discard a packet with any of bits 1-5 set; bits 2 and 3 are K and S of
    /// RFC 2890, so bits 1, 4 and 5 remain. Bits 6-12 "MUST be ignored on receipt", so they are,
    /// and `emit` writes them as zero.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        if packet.buffer.as_ref().len() < HEADER_LEN_MIN {
            return Err(Error::Truncated);
        }
        if packet.version() != 0 {
            return Err(Error::BadVersion);
        }
        if packet.reserved0() & MUST_DISCARD != 0 {
            return Err(Error::BadFlags);
        }
        packet.check_len()?;
        if !cfg!(fuzzing) && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            protocol: packet.protocol(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// The NVGRE header for a virtual subnet and flow (RFC 7637 §3.2): K set, C and S clear,
    /// protocol Transparent Ethernet Bridging, key = VSID << 8 | flow id.
    pub const fn nvgre(vsid: Vni, flow_id: u8) -> Self {
        Self {
            protocol: EtherType::TRANSPARENT_ETHERNET,
            checksum: false,
            key: Some(vsid.get() << 8 | flow_id as u32),
            sequence: None,
        }
    }

    /// The NVGRE fields, when this header is NVGRE (RFC 7637 §3.2: K set, C and S clear,
    /// protocol 0x6558).
    pub fn as_nvgre(&self) -> Option<Nvgre> {
        if self.checksum
            || self.sequence.is_some()
            || self.protocol != EtherType::TRANSPARENT_ETHERNET
        {
            return None;
        }
        let key = self.key?;
        let [_, _, _, flow_id] = key.to_be_bytes();
        Some(Nvgre {
            vsid: Vni::from_low_bits(key >> 8),
            flow_id,
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN_MIN
            + 4 * (self.checksum as usize)
            + 4 * (self.key.is_some() as usize)
            + 4 * (self.sequence.is_some() as usize)
    }

    /// Writes the header into the first `buffer_len()` bytes of the packet.
    ///
    /// When `checksum` is set, the checksum covers the packet's whole buffer, so **write the
    /// payload first** and make the buffer end where the payload ends.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(self.checksum, self.key.is_some(), self.sequence.is_some());
        packet.set_protocol(self.protocol);
        if self.checksum {
            packet.set_reserved1(0);
        }
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sequence) = self.sequence {
            packet.set_sequence(sequence);
        }
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(nvgre) = self.as_nvgre() {
            return fmt::Display::fmt(&nvgre, f);
        }
        write!(f, "gre proto {}", self.protocol)?;
        if let Some(key) = self.key {
            write!(f, " key {key:#x}")?;
        }
        if let Some(sequence) = self.sequence {
            write!(f, " seq {sequence}")?;
        }
        if self.checksum {
            f.write_str(" csum")?;
        }
        Ok(())
    }
}

/// The fields NVGRE puts in the GRE key (RFC 7637 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nvgre {
    /// The virtual subnet id (VSID), the upper 24 bits of the key.
    pub vsid: Vni,
    /// The flow id, the lower 8 bits of the key (per-flow entropy for ECMP, RFC 7637 §3.2).
    pub flow_id: u8,
}

impl Nvgre {
    /// The largest VSID RFC 7637 §3.2 reserves (0-0xfff are "reserved for future use").
    pub const VSID_RESERVED_MAX: u32 = 0x0fff;

    /// The GRE header that carries these fields.
    pub const fn repr(&self) -> Repr {
        Repr::nvgre(self.vsid, self.flow_id)
    }
}

impl fmt::Display for Nvgre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nvgre vsid {} flow {}", self.vsid, self.flow_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // C, K and S set, protocol TEB, checksum 0x0a5c, key 0x12345678, sequence 5, then a
    // four-byte payload.
    static PACKET_BYTES: [u8; 20] = [
        0xb0, 0x00, 0x65, 0x58, 0x0a, 0x5c, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00,
        0x05, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // NVGRE VSID 5001 (0x001389), flow id 7, then a four-byte payload.
    static NVGRE_BYTES: [u8; 12] = [
        0x20, 0x00, 0x65, 0x58, 0x00, 0x13, 0x89, 0x07, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Repr {
        Repr {
            protocol: EtherType::TRANSPARENT_ETHERNET,
            checksum: true,
            key: Some(0x1234_5678),
            sequence: Some(5),
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert!(packet.checksum_present() && packet.key_present() && packet.seq_present());
        assert_eq!(packet.reserved0(), 0);
        assert_eq!(packet.version(), 0);
        assert_eq!(packet.protocol(), EtherType::TRANSPARENT_ETHERNET);
        assert_eq!(packet.header_len(), 16);
        assert_eq!(packet.checksum(), Some(0x0a5c));
        assert_eq!(packet.reserved1(), Some(0));
        assert_eq!(packet.key(), Some(0x1234_5678));
        assert_eq!(packet.sequence(), Some(5));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_deconstruct_optional_offsets() {
        // K and S without C: the key moves to offset 4, the sequence to offset 8.
        let bytes = [0x30, 0x00, 0x08, 0x00, 0, 0, 0, 9, 0, 0, 0, 3, 0x45];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (packet.checksum(), packet.key(), packet.sequence()),
            (None, Some(9), Some(3))
        );
        assert_eq!(packet.payload(), &[0x45]);
        // S alone: the sequence is at offset 4.
        let bytes = [0x10, 0x00, 0x08, 0x00, 0, 0, 0, 3];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (packet.header_len(), packet.key(), packet.sequence()),
            (8, None, Some(3))
        );
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_flags(true, true, true);
        packet.set_version(0);
        packet.set_protocol(EtherType::TRANSPARENT_ETHERNET);
        packet.set_reserved1(0);
        packet.set_key(0x1234_5678);
        packet.set_sequence(5);
        packet
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        packet.fill_checksum();
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        let parsed = Repr::parse(&packet).unwrap();
        assert_eq!(parsed, repr());
        assert_eq!(parsed.as_nvgre(), None);
        assert_eq!(
            packet.to_string(),
            "gre proto teb key 0x12345678 seq 5 csum"
        );
    }

    #[test]
    fn test_emit() {
        let mut bytes = [0xa5; 20];
        bytes[16..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let repr = repr();
        assert_eq!(repr.buffer_len(), 16);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_emit_exact_buffer() {
        for checksum in [false, true] {
            for key in [None, Some(1)] {
                for sequence in [None, Some(2)] {
                    let repr = Repr {
                        protocol: EtherType::IPV4,
                        checksum,
                        key,
                        sequence,
                    };
                    let mut bytes = vec![0xa5; repr.buffer_len()];
                    repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
                    let packet = Packet::new_checked(&bytes[..]).unwrap();
                    assert_eq!(Repr::parse(&packet), Ok(repr));
                    assert!(packet.payload().is_empty());
                }
            }
        }
    }

    #[test]
    fn test_nvgre() {
        let packet = Packet::new_checked(&NVGRE_BYTES[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        let nvgre = Nvgre {
            vsid: Vni::new(5001).unwrap(),
            flow_id: 7,
        };
        assert_eq!(repr, Repr::nvgre(nvgre.vsid, 7));
        assert_eq!(repr.as_nvgre(), Some(nvgre));
        assert_eq!(nvgre.repr(), repr);
        assert_eq!(repr.to_string(), "nvgre vsid 5001 flow 7");

        let mut bytes = [0xa5; 12];
        bytes[8..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, NVGRE_BYTES);

        let max = Repr::nvgre(Vni::new(Vni::MAX).unwrap(), 0xff);
        assert_eq!(max.key, Some(u32::MAX));
        assert_eq!(max.as_nvgre().unwrap().vsid.get(), Vni::MAX);
    }

    #[test]
    fn test_not_nvgre() {
        let nvgre = Repr::nvgre(Vni::new(5001).unwrap(), 7);
        let not = [
            Repr {
                checksum: true,
                ..nvgre
            },
            Repr {
                sequence: Some(1),
                ..nvgre
            },
            Repr {
                protocol: EtherType::IPV4,
                ..nvgre
            },
            Repr { key: None, ..nvgre },
        ];
        for repr in not {
            assert_eq!(repr.as_nvgre(), None, "{repr:?}");
        }
        assert_eq!(not[3].to_string(), "gre proto teb");
    }

    #[test]
    fn test_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[19] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Repr::parse(&packet), Err(Error::BadChecksum));
    }

    #[test]
    fn test_bad_version() {
        // Enhanced GRE (PPTP, RFC 2637): version 1, K set, and an acknowledgement flag.
        let bytes = [0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x00, 0x01];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 1);
        assert_eq!(Repr::parse(&packet), Err(Error::BadVersion));
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..4])),
            Err(Error::BadVersion)
        );
    }

    #[test]
    fn test_reserved_bits() {
        for (word, bit) in [(0x4000u16, 1), (0x0800, 4), (0x0400, 5)] {
            let mut bytes = NVGRE_BYTES;
            bytes[..2].copy_from_slice(&(0x2000 | word).to_be_bytes());
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(packet.reserved0(), word, "bit {bit}");
            assert_eq!(Repr::parse(&packet), Err(Error::BadFlags), "bit {bit}");
        }
        // Bits 6-12 are ignored on receipt (RFC 2784 §2.3) and cleared on emit.
        for (word, bit) in [(0x0200u16, 6), (0x0100, 7), (0x0008, 12)] {
            let mut bytes = NVGRE_BYTES;
            bytes[..2].copy_from_slice(&(0x2000 | word).to_be_bytes());
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let repr = Repr::parse(&packet).unwrap();
            assert_eq!(
                repr.as_nvgre().map(|n| n.flow_id),
                Some(NVGRE_BYTES[7]),
                "bit {bit}"
            );
            let mut out = NVGRE_BYTES;
            repr.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, NVGRE_BYTES, "bit {bit}");
        }
        let mut bytes = [0xff, 0xff, 0, 0];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_flags(false, false, false);
        assert_eq!((packet.reserved0(), packet.version()), (0, 0));
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..3]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..15]).unwrap_err(),
            Error::Truncated
        );
        assert!(Packet::new_checked(&PACKET_BYTES[..16]).is_ok());
        assert_eq!(
            Packet::new_checked(&NVGRE_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&NVGRE_BYTES[..7])),
            Err(Error::Truncated)
        );
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&NVGRE_BYTES[..2])),
            Err(Error::Truncated)
        );
        assert_eq!(
            Packet::new_unchecked(&NVGRE_BYTES[..7]).to_string(),
            "gre (truncated)"
        );
    }

    #[test]
    fn test_accessors_never_panic() {
        // Every first word, with just enough bytes for the header it announces.
        for word in 0..=u16::MAX {
            let mut bytes = [0u8; 16];
            bytes[..2].copy_from_slice(&word.to_be_bytes());
            let packet = Packet::new_unchecked(&bytes[..]);
            let len = packet.header_len();
            let packet = Packet::new_checked(&bytes[..len]).unwrap();
            let _ = (
                packet.checksum(),
                packet.key(),
                packet.sequence(),
                packet.payload(),
            );
            let _ = (
                packet.verify_checksum(),
                Repr::parse(&packet),
                packet.to_string(),
            );
        }
    }
}
