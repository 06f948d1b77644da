//! The `virtio_net_hdr` in front of every frame read from or written to a TAP device opened
//! with `IFF_VNET_HDR` (virtio 1.2 §5.1.6 "struct virtio_net_hdr"; Linux
//! `include/uapi/linux/virtio_net.h`): which checksum the frame leaves unfinished and how to
//! segment it. weft uses the 10-byte legacy layout in little-endian order (`TUNSETVNETLE`).

use core::fmt;

use crate::{Error, Result};

mod field {
    use crate::Field;

    pub(super) const FLAGS: usize = 0;
    pub(super) const GSO_TYPE: usize = 1;
    pub(super) const HDR_LEN: Field = 2..4;
    pub(super) const GSO_SIZE: Field = 4..6;
    pub(super) const CSUM_START: Field = 6..8;
    pub(super) const CSUM_OFFSET: Field = 8..10;
}

/// The length of the header.
pub const HEADER_LEN: usize = field::CSUM_OFFSET.end;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the receiver may skip checksum verification.
pub const FLAG_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_ECN`: the TCP stream uses ECN (CWR must go on the first segment only).
pub const GSO_ECN: u8 = 0x80;

code_point! {
    /// `gso_type` without the ECN bit: how a frame is to be segmented.
    pub struct GsoType(u8) {
        /// Not to be segmented.
        NONE = 0 => "none",
        /// TCP over IPv4 (TSO).
        TCPV4 = 1 => "tcpv4",
        /// UDP fragmentation (UFO; deprecated, never enabled by weft).
        UDP = 3 => "udp",
        /// TCP over IPv6 (TSO).
        TCPV6 = 4 => "tcpv6",
        /// UDP segmentation (USO; not enabled by weft).
        UDP_L4 = 5 => "udp_l4",
    }
}

/// Reads a little-endian `u16`.
fn read_le16(buffer: &[u8], field: crate::Field) -> u16 {
    let bytes = &buffer[field];
    u16::from_le_bytes([bytes[0], bytes[1]])
}

view! {
    /// A read/write view of a `virtio_net_hdr`.
    Header
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks that the buffer holds the header; [`Error::Truncated`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The flags byte ([`FLAG_NEEDS_CSUM`], [`FLAG_DATA_VALID`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The `gso_type` byte, ECN bit included.
    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// The length of the headers to replicate in every segment (a hint).
    pub fn hdr_len(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::HDR_LEN)
    }

    /// The payload bytes per segment (the MSS for TCP).
    pub fn gso_size(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::GSO_SIZE)
    }

    /// Where the checksummed data starts, from the start of the frame.
    pub fn csum_start(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::CSUM_START)
    }

    /// Where the checksum goes, from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the `gso_type` byte.
    pub fn set_gso_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = value;
    }

    /// Sets the header length hint.
    pub fn set_hdr_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::HDR_LEN].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the segment payload size.
    pub fn set_gso_size(&mut self, value: u16) {
        self.buffer.as_mut()[field::GSO_SIZE].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets where the checksummed data starts.
    pub fn set_csum_start(&mut self, value: u16) {
        self.buffer.as_mut()[field::CSUM_START].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets where the checksum goes.
    pub fn set_csum_offset(&mut self, value: u16) {
        self.buffer.as_mut()[field::CSUM_OFFSET].copy_from_slice(&value.to_le_bytes());
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Header<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Header::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "vnet ({err})"),
        }
    }
}

/// An unfinished checksum: the one's-complement sum of the frame from `start` to its end goes,
/// complemented, at `start + offset` (the field holds the pseudo-header sum meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Csum {
    /// Where the summed data starts, from the start of the frame.
    pub start: u16,
    /// Where the checksum field is, from `start`.
    pub offset: u16,
}

/// The meaning of a `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The checksum left to compute (`VIRTIO_NET_HDR_F_NEEDS_CSUM`), if any.
    pub needs_csum: Option<Csum>,
    /// The sender vouches for the checksums (`VIRTIO_NET_HDR_F_DATA_VALID`).
    pub data_valid: bool,
    /// How to segment the frame.
    pub gso_type: GsoType,
    /// The ECN bit of `gso_type`.
    pub ecn: bool,
    /// The length of the headers every segment repeats (a hint).
    pub hdr_len: u16,
    /// The payload bytes per segment.
    pub gso_size: u16,
}

impl Repr {
    /// A header that asks for nothing: a finished frame.
    pub const NONE: Self = Self {
        needs_csum: None,
        data_valid: false,
        gso_type: GsoType::NONE,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
    };

    /// Reads a header. Unknown flag bits are ignored, as Linux does; unknown GSO types are
    /// kept for the caller to refuse.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Header<&T>) -> Result<Self> {
        header.check_len()?;
        let flags = header.flags();
        let needs_csum = (flags & FLAG_NEEDS_CSUM != 0).then(|| Csum {
            start: header.csum_start(),
            offset: header.csum_offset(),
        });
        Ok(Self {
            needs_csum,
            data_valid: flags & FLAG_DATA_VALID != 0,
            gso_type: GsoType(header.gso_type() & !GSO_ECN),
            ecn: header.gso_type() & GSO_ECN != 0,
            hdr_len: header.hdr_len(),
            gso_size: header.gso_size(),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        let mut flags = 0;
        if self.needs_csum.is_some() {
            flags |= FLAG_NEEDS_CSUM;
        }
        if self.data_valid {
            flags |= FLAG_DATA_VALID;
        }
        header.set_flags(flags);
        header.set_gso_type(self.gso_type.0 | if self.ecn { GSO_ECN } else { 0 });
        header.set_hdr_len(self.hdr_len);
        header.set_gso_size(self.gso_size);
        let csum = self.needs_csum.unwrap_or(Csum {
            start: 0,
            offset: 0,
        });
        header.set_csum_start(csum.start);
        header.set_csum_offset(csum.offset);
    }

    /// The header as the 10 bytes that go in front of a frame.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        self.emit(&mut Header::new_unchecked(&mut bytes[..]));
        bytes
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vnet gso={}", self.gso_type)?;
        if self.ecn {
            f.write_str("+ecn")?;
        }
        if self.gso_type != GsoType::NONE {
            write!(f, " size={} hdr_len={}", self.gso_size, self.hdr_len)?;
        }
        if let Some(csum) = self.needs_csum {
            write!(f, " csum={}+{}", csum.start, csum.offset)?;
        }
        if self.data_valid {
            f.write_str(" data_valid")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Linux's tun driver writes in front of a TSO frame of an IPv4 TCP stream (MSS
    /// 1448, 20-byte IP header, 32-byte TCP header with timestamps), little-endian.
    const TSO4: [u8; 10] = [
        0x01, // NEEDS_CSUM
        0x01, // TCPV4
        0x42, 0x00, // hdr_len 66
        0xa8, 0x05, // gso_size 1448
        0x22, 0x00, // csum_start 34
        0x10, 0x00, // csum_offset 16
    ];

    fn tso4() -> Repr {
        Repr {
            needs_csum: Some(Csum {
                start: 34,
                offset: 16,
            }),
            data_valid: false,
            gso_type: GsoType::TCPV4,
            ecn: false,
            hdr_len: 66,
            gso_size: 1448,
        }
    }

    #[test]
    fn test_deconstruct() {
        let header = Header::new_checked(&TSO4[..]).unwrap();
        assert_eq!((header.flags(), header.gso_type()), (1, 1));
        assert_eq!((header.hdr_len(), header.gso_size()), (66, 1448));
        assert_eq!((header.csum_start(), header.csum_offset()), (34, 16));
    }

    #[test]
    fn test_parse_and_emit() {
        let repr = Repr::parse(&Header::new_checked(&TSO4[..]).unwrap()).unwrap();
        assert_eq!(repr, tso4());
        assert_eq!(repr.to_bytes(), TSO4);
        assert_eq!(
            repr.to_string(),
            "vnet gso=tcpv4 size=1448 hdr_len=66 csum=34+16"
        );
        assert_eq!(Repr::NONE.to_bytes(), [0; 10]);
        let valid = Repr {
            data_valid: true,
            ..Repr::NONE
        };
        assert_eq!(valid.to_bytes()[0], FLAG_DATA_VALID);
        assert_eq!(valid.to_string(), "vnet gso=none data_valid");
    }

    #[test]
    fn test_ecn_bit_and_unknown_types_round_trip() {
        let mut bytes = TSO4;
        bytes[1] = 0x84;
        bytes[0] = 0x81;
        let repr = Repr::parse(&Header::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!((repr.gso_type, repr.ecn), (GsoType::TCPV6, true));
        // The unknown flag bit 0x80 is dropped, as the kernel ignores it.
        assert_eq!(repr.to_bytes()[1..], bytes[1..]);
        bytes[1] = 0x09;
        let repr = Repr::parse(&Header::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.gso_type, GsoType(9));
        assert_eq!(repr.to_bytes()[1], 9);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Header::new_checked(&TSO4[..9]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Header::new_unchecked(&TSO4[..3]).to_string(),
            "vnet (truncated)"
        );
    }
}
