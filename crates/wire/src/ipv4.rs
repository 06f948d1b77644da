//! IPv4 headers (RFC 791), with options kept as opaque bytes.

use core::{fmt, net::Ipv4Addr};

use crate::{Error, Result, checksum, ethernet};

code_point! {
    /// The IPv4 protocol / IPv6 next-header number.
    pub struct IpProtocol(u8) {
        /// IPv6 hop-by-hop options.
        HOP_BY_HOP = 0 => "hop-by-hop",
        /// Internet Control Message Protocol.
        ICMP = 1 => "icmp",
        /// Transmission Control Protocol.
        TCP = 6 => "tcp",
        /// User Datagram Protocol.
        UDP = 17 => "udp",
        /// IPv6 routing header.
        IPV6_ROUTE = 43 => "ipv6-route",
        /// IPv6 fragment header.
        IPV6_FRAG = 44 => "ipv6-frag",
        /// Generic Routing Encapsulation (GRE, NVGRE).
        GRE = 47 => "gre",
        /// ICMP for IPv6.
        ICMPV6 = 58 => "icmpv6",
        /// IPv6 no next header.
        IPV6_NO_NEXT = 59 => "ipv6-nonxt",
        /// IPv6 destination options.
        IPV6_OPTS = 60 => "ipv6-opts",
    }
}

mod field {
    use crate::Field;

    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub(super) const VER_IHL: usize = 0;
    /// DSCP (high six bits) and ECN (low two bits), RFC 2474 §3 and RFC 3168 §5.
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    /// Flags (high three bits) and fragment offset (low 13 bits, in 8-byte units).
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC_ADDR: Field = 12..16;
    pub(super) const DST_ADDR: Field = 16..20;

    /// The options, between the fixed header and the end the IHL states.
    pub(super) const fn options(header_len: usize) -> Field {
        DST_ADDR.end..header_len
    }

    /// The payload, between the end of the header and the end the total length states.
    pub(super) const fn payload(header_len: usize, total_len: usize) -> Field {
        header_len..total_len
    }
}

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// The most option bytes a header holds (IHL is at most 15 words, RFC 791 §3.1).
pub const OPTIONS_MAX: usize = 60 - HEADER_LEN;

/// Don't Fragment flag.
const FLAG_DF: u16 = 0x4000;
/// More Fragments flag.
const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits of the flags/offset word.
const OFFSET_MASK: u16 = 0x1fff;

view! {
    /// A read/write view of an IPv4 packet.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header and the total length it states, so no accessor
    /// can panic.
    ///
    /// [`Error::Truncated`] if the buffer is shorter than a minimal header, than the IHL or
    /// than the total length; [`Error::BadLength`] if the IHL is below 5 words or the total
    /// length is shorter than the header. Bytes after the total length (Ethernet padding) are
    /// allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || total_len < header_len {
            Err(Error::BadLength)
        } else if len < header_len || len < total_len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (the IHL field times four), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point, 0-63.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification, 0-3.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        ethernet::read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        ethernet::read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        // At most 0x1fff * 8 = 65528, which fits.
        (ethernet::read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(ethernet::read_u32(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(ethernet::read_u32(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// True when the header checksum is correct (RFC 791 §3.1: the header and its checksum
    /// sum to zero).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header_bytes()) == 0
    }

    /// True for a fragment: More Fragments set or a non-zero offset (RFC 791 §2.3).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The header bytes the IHL states, clamped to the buffer so a bad IHL cannot panic.
    fn header_bytes(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        bytes.get(..self.header_len()).unwrap_or(bytes)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The option bytes between the fixed header and the end of the header.
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::options(self.header_len())]
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        let range = field::payload(self.header_len(), usize::from(self.total_len()));
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field (the low four bits of `value`).
    pub fn set_version(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes; `value` should be a multiple of 4 from 20 to 60 (the
    /// IHL field keeps the low four bits of `value / 4`).
    pub fn set_header_len(&mut self, value: usize) {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "masked to the 4-bit IHL field"
        )]
        let ihl = ((value / 4) & 0x0f) as u8;
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0xf0) | ihl;
    }

    /// Sets the differentiated services code point (the low six bits of `value`).
    pub fn set_dscp(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0x03) | (value << 2);
    }

    /// Sets the explicit congestion notification (the low two bits of `value`).
    pub fn set_ecn(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0xfc) | (value & 0x03);
    }

    /// Sets the total length field.
    pub fn set_total_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Clears all three flags (reserved, Don't Fragment, More Fragments), keeping the offset.
    pub fn clear_flags(&mut self) {
        self.write_flg_off(|word| word & OFFSET_MASK);
    }

    /// Sets or clears the Don't Fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.write_flg_off(|word| {
            if value {
                word | FLAG_DF
            } else {
                word & !FLAG_DF
            }
        });
    }

    /// Sets or clears the More Fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.write_flg_off(|word| {
            if value {
                word | FLAG_MF
            } else {
                word & !FLAG_MF
            }
        });
    }

    /// Sets the fragment offset in bytes; `value` should be a multiple of 8 (the field holds
    /// `value / 8`).
    pub fn set_frag_offset(&mut self, value: u16) {
        self.write_flg_off(|word| (word & !OFFSET_MASK) | (value / 8));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol of the payload.
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum over the header the IHL states and writes it (set the
    /// header length and options first).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.header_bytes());
        self.set_checksum(sum);
    }

    /// The option bytes, mutably (the IHL must already be set).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let range = field::options(self.header_len());
        &mut self.buffer.as_mut()[range]
    }

    /// The payload, mutably: from the end of the header to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = field::payload(self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[range]
    }

    /// Rewrites the flags/fragment-offset word.
    fn write_flg_off(&mut self, update: impl FnOnce(u16) -> u16) {
        let word = update(ethernet::read_u16(self.buffer.as_ref(), field::FLG_OFF));
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&word.to_be_bytes());
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "ipv4 ({err})"),
        }
    }
}

/// The options of an IPv4 header, kept as opaque bytes without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// The option bytes; those from `len` on are always zero, so the derived traits agree
    /// with comparing `as_bytes()`.
    bytes: [u8; OPTIONS_MAX],
    /// How many of `bytes` are options, at most `OPTIONS_MAX`.
    len: u8,
}

impl Options {
    /// No options.
    pub const NONE: Self = Self {
        bytes: [0; OPTIONS_MAX],
        len: 0,
    };

    /// Options from their wire bytes, padding included.
    ///
    /// [`Error::BadLength`] if there are more than [`OPTIONS_MAX`] bytes or their number is not
    /// a multiple of 4 (the IHL counts 32-bit words, RFC 791 §3.1). The option kinds inside are
    /// not checked.
    #[inline]
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > OPTIONS_MAX || !bytes.len().is_multiple_of(4) {
            return Err(Error::BadLength);
        }
        let len = u8::try_from(bytes.len()).map_err(|_| Error::BadLength)?;
        let mut options = Self::NONE;
        options.bytes[..bytes.len()].copy_from_slice(bytes);
        options.len = len;
        Ok(options)
    }

    /// The option bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The number of option bytes.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there are no options.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::NONE
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Options").field(&self.as_bytes()).finish()
    }
}

/// The meaning of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// What the payload is.
    pub protocol: IpProtocol,
    /// The payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Differentiated services code point, 0-63.
    pub dscp: u8,
    /// Explicit congestion notification, 0-3.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options, as opaque bytes.
    pub options: Options,
}

impl Repr {
    /// Reads the header of a packet and verifies its checksum.
    ///
    /// [`Error::BadVersion`] if the version is not 4, [`Error::BadChecksum`] if the header
    /// checksum is wrong, and the errors of [`Packet::check_len`]. The reserved flag is
    /// ignored (and not kept).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        // Look at the version before the IHL, so an IPv6 packet reads as BadVersion.
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        packet.check_len()?;
        if !cfg!(fuzzing) && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options: Options::new(packet.options())?,
        })
    }

    /// The number of bytes `emit` writes: the header with its options (not the payload).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// True for a fragment: More Fragments set or a non-zero offset.
    pub const fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// Writes the header, options and checksum into the first `buffer_len()` bytes of the
    /// packet; the payload is not touched (the checksum covers only the header).
    ///
    /// The total length is `buffer_len() + payload_len`, saturated at 65535: a larger
    /// `payload_len` is the caller's bug and yields a wrong length, not a panic. `dscp`,
    /// `ecn` are masked to their widths and `frag_offset` is rounded down to a multiple of 8.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        // Built in a local array and copied once: this runs per packet on the encapsulation
        // path, and a dozen bounds-checked read-modify-write setters cost more than the header.
        let options = self.options.as_bytes();
        let header_len = HEADER_LEN + options.len();
        let total_len = u16::try_from(header_len.saturating_add(self.payload_len));
        let flags =
            if self.dont_frag { FLAG_DF } else { 0 } | if self.more_frags { FLAG_MF } else { 0 };
        let mut header = [0u8; HEADER_LEN];
        // Options are at most 40 bytes (whole words), so the IHL fits its 4 bits.
        header[field::VER_IHL] = 0x40 | u8::try_from(header_len / 4).unwrap_or(0x0f);
        header[field::DSCP_ECN] = (self.dscp << 2) | (self.ecn & 0x03);
        header[field::LENGTH].copy_from_slice(&total_len.unwrap_or(u16::MAX).to_be_bytes());
        header[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flg_off = flags | ((self.frag_offset / 8) & OFFSET_MASK);
        header[field::FLG_OFF].copy_from_slice(&flg_off.to_be_bytes());
        header[field::TTL] = self.ttl;
        header[field::PROTOCOL] = self.protocol.0;
        header[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        header[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        let sum = checksum::accumulate(checksum::accumulate(0, &header), options);
        header[field::CHECKSUM].copy_from_slice(&checksum::finish(sum).to_be_bytes());
        let buffer = packet.buffer.as_mut();
        buffer[..HEADER_LEN].copy_from_slice(&header);
        buffer[HEADER_LEN..header_len].copy_from_slice(options);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipv4 {} > {}", self.src_addr, self.dst_addr)?;
        if self.is_fragment() {
            write!(f, " frag off {}", self.frag_offset)?;
            if self.more_frags {
                f.write_str(" mf")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // scapy: IP(src="10.0.5.7", dst="10.0.5.2", id=0xabcd, flags="DF", ttl=64, tos=0xb9,
    // proto=17) / Raw(b"\xaa\xbb\xcc\xdd"): DSCP 46 (EF), ECN 1, checksum 0x7046.
    static PACKET_BYTES: [u8; 24] = [
        0x45, 0xb9, 0x00, 0x18, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x11, 0x70, 0x46, 0x0a, 0x00, 0x05,
        0x07, 0x0a, 0x00, 0x05, 0x02, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // scapy: IP(src="10.0.5.7", dst="10.0.5.2", id=0x1234, ttl=1, proto=2,
    // options=[IPOption_Router_Alert()]) / Raw(b"\xaa\xbb\xcc\xdd"): IHL 6, RFC 2113 option.
    static OPTIONS_BYTES: [u8; 28] = [
        0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x01, 0x02, 0xf4, 0x9f, 0x0a, 0x00, 0x05,
        0x07, 0x0a, 0x00, 0x05, 0x02, 0x94, 0x04, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // scapy: IP(src="10.0.5.7", dst="10.0.5.2", id=7, flags="MF", frag=185, ttl=64, proto=17)
    // / Raw(b"\xaa\xbb\xcc\xdd"): a middle fragment at byte offset 1480.
    static FRAGMENT_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x00, 0x07, 0x20, 0xb9, 0x40, 0x11, 0x3c, 0x0d, 0x0a, 0x00, 0x05,
        0x07, 0x0a, 0x00, 0x05, 0x02, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    const PAYLOAD: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 0, 5, 7),
            dst_addr: Ipv4Addr::new(10, 0, 5, 2),
            protocol: IpProtocol::UDP,
            payload_len: 4,
            ttl: 64,
            dscp: 46,
            ecn: 1,
            ident: 0xabcd,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: Options::NONE,
        }
    }

    fn options_repr() -> Repr {
        Repr {
            protocol: IpProtocol(2),
            ttl: 1,
            dscp: 0,
            ecn: 0,
            ident: 0x1234,
            dont_frag: false,
            options: Options::new(&[0x94, 0x04, 0x00, 0x00]).unwrap(),
            ..repr()
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!((packet.dscp(), packet.ecn()), (46, 1));
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0xabcd);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::UDP);
        assert_eq!(packet.checksum(), 0x7046);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 0, 5, 7));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 0, 5, 2));
        assert!(packet.verify_checksum());
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &PAYLOAD);
    }

    #[test]
    fn test_deconstruct_options_and_fragment() {
        let packet = Packet::new_checked(&OPTIONS_BYTES[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload(), &PAYLOAD);
        assert!(packet.verify_checksum());

        let packet = Packet::new_checked(&FRAGMENT_BYTES[..]).unwrap();
        assert!(packet.more_frags() && !packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 24];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(46);
        packet.set_ecn(1);
        packet.set_total_len(24);
        packet.set_ident(0xabcd);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::UDP);
        packet.set_src_addr(Ipv4Addr::new(10, 0, 5, 7));
        packet.set_dst_addr(Ipv4Addr::new(10, 0, 5, 2));
        packet.fill_checksum();
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_construct_fragment() {
        let mut bytes = FRAGMENT_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(false);
        packet.set_frag_offset(8);
        packet.set_dont_frag(true);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 8);
        packet.set_more_frags(true);
        packet.set_dont_frag(false);
        packet.set_frag_offset(1480);
        assert_eq!(bytes, FRAGMENT_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
        let packet = Packet::new_checked(&OPTIONS_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), options_repr());
        let packet = Packet::new_checked(&FRAGMENT_BYTES[..]).unwrap();
        let fragment = Repr::parse(&packet).unwrap();
        assert!(fragment.is_fragment());
        assert_eq!((fragment.more_frags, fragment.frag_offset), (true, 1480));
    }

    #[test]
    fn test_emit() {
        let repr = repr();
        assert_eq!(repr.buffer_len(), 20);
        let mut bytes = [0xa5; 24];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        assert_eq!(bytes, PACKET_BYTES);

        // Exactly buffer_len() bytes is enough for the header.
        let mut header = [0xa5; 20];
        repr.emit(&mut Packet::new_unchecked(&mut header[..]));
        assert_eq!(header, PACKET_BYTES[..20]);
    }

    #[test]
    fn test_emit_options() {
        let repr = options_repr();
        assert_eq!(repr.buffer_len(), 24);
        let mut bytes = [0xa5; 28];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes[24..].copy_from_slice(&PAYLOAD);
        assert_eq!(bytes, OPTIONS_BYTES);
        let parsed = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(parsed, repr);
    }

    #[test]
    fn test_emit_saturates_total_len() {
        let repr = Repr {
            payload_len: usize::MAX,
            ..repr()
        };
        let mut bytes = [0xa5; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        assert_eq!(packet.total_len(), u16::MAX);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_padding_is_not_payload() {
        // The packet inside a minimum-size Ethernet frame: 46 bytes, 22 of them padding.
        let mut bytes = [0u8; 46];
        bytes[..24].copy_from_slice(&PACKET_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD);
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..19]).unwrap_err(),
            Error::Truncated
        );
        // Whole header, but not the total length.
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..23]).unwrap_err(),
            Error::Truncated
        );
        // Whole fixed header, but not the options the IHL states.
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x4f;
        bytes[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        let packet = Packet::new_unchecked(&PACKET_BYTES[..10]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_impossible_lengths() {
        // IHL below 5 words.
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadLength
        );
        bytes[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadLength
        );
        // Total length shorter than the header.
        let mut bytes = PACKET_BYTES;
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadLength
        );
        // Total length shorter than header plus options.
        let mut bytes = OPTIONS_BYTES;
        bytes[2..4].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadLength
        );
        // Exactly the header is a valid empty payload.
        let mut bytes = PACKET_BYTES;
        bytes[2..4].copy_from_slice(&20u16.to_be_bytes());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::BadVersion);
        // An IPv6 header (IHL nibble 0) is a version error, not a length error.
        bytes[0] = 0x60;
        let packet = Packet::new_unchecked(&bytes[..]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::BadVersion);
    }

    #[test]
    #[cfg_attr(fuzzing, ignore = "checksums are not verified under cfg(fuzzing)")]
    fn test_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::BadChecksum);
        // The payload is not covered by the header checksum.
        let mut bytes = PACKET_BYTES;
        bytes[23] ^= 0xff;
        assert!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).is_ok());
    }

    #[test]
    fn test_options() {
        assert_eq!(Options::new(&[]).unwrap(), Options::NONE);
        assert_eq!(Options::default(), Options::NONE);
        assert!(Options::NONE.is_empty());
        assert_eq!(Options::new(&[1, 1, 1]).unwrap_err(), Error::BadLength);
        assert_eq!(Options::new(&[1; 44]).unwrap_err(), Error::BadLength);
        let full = Options::new(&[1; OPTIONS_MAX]).unwrap();
        assert_eq!(full.as_bytes(), &[1; OPTIONS_MAX]);
        assert_eq!(full.len(), 40);
        assert_eq!(
            format!("{:?}", Options::new(&[1, 0, 0, 0]).unwrap()),
            "Options([1, 0, 0, 0])"
        );
    }

    #[test]
    fn test_display() {
        assert_eq!(repr().to_string(), "ipv4 10.0.5.7 > 10.0.5.2");
        let packet = Packet::new_checked(&FRAGMENT_BYTES[..]).unwrap();
        assert_eq!(
            packet.to_string(),
            "ipv4 10.0.5.7 > 10.0.5.2 frag off 1480 mf"
        );
        let last = Repr {
            frag_offset: 2960,
            ..repr()
        };
        assert_eq!(last.to_string(), "ipv4 10.0.5.7 > 10.0.5.2 frag off 2960");
        let first = Repr {
            more_frags: true,
            ..repr()
        };
        assert_eq!(first.to_string(), "ipv4 10.0.5.7 > 10.0.5.2 frag off 0 mf");
        let packet = Packet::new_unchecked(&PACKET_BYTES[..10]);
        assert_eq!(packet.to_string(), "ipv4 (truncated)");
    }

    #[test]
    fn unknown_protocol_round_trips() {
        assert_eq!(IpProtocol(17), IpProtocol::UDP);
        assert_eq!(IpProtocol(200).to_string(), "0xc8");
        assert_eq!(IpProtocol::GRE.to_string(), "gre");
    }
}
