//! IPv6 fixed headers (RFC 8200 §3); extension headers are payload to this module.

use core::{fmt, net::Ipv6Addr};

use crate::{Error, IpProtocol, Result, ethernet};

mod field {
    use crate::Field;

    /// Version (4 bits), traffic class (8 bits) and flow label (20 bits).
    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Field = 8..24;
    pub(super) const DST_ADDR: Field = 24..40;

    /// The payload, behind the fixed header, as long as the payload length field states.
    pub(super) const fn payload(payload_len: usize) -> Field {
        DST_ADDR.end..DST_ADDR.end + payload_len
    }
}

/// The length of the IPv6 fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The flow label bits of the first word.
const FLOW_MASK: u32 = 0x000f_ffff;
/// The traffic class bits of the first word.
const TRAFFIC_CLASS_MASK: u32 = 0x0ff0_0000;
/// Where the traffic class starts in the first word.
const TRAFFIC_CLASS_SHIFT: u32 = 20;

view! {
    /// A read/write view of an IPv6 packet (fixed header and payload).
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed header and the payload length it states, so no
    /// accessor can panic; [`Error::Truncated`] otherwise.
    ///
    /// Bytes after the payload (Ethernet padding) are allowed and ignored. A payload length of
    /// zero is an empty payload: jumbograms (RFC 2675) are not supported.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < field::payload(usize::from(self.payload_len())).end {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// The traffic class (DSCP in the high six bits, ECN in the low two; RFC 8200 §7).
    pub fn traffic_class(&self) -> u8 {
        let word = ethernet::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        let [class, ..] = (word << 4).to_be_bytes();
        class
    }

    /// The 20-bit flow label (RFC 8200 §6).
    pub fn flow_label(&self) -> u32 {
        ethernet::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & FLOW_MASK
    }

    /// The payload length field: the bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The type of the header after the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        read_addr(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_addr(self.buffer.as_ref(), field::DST_ADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: the payload length bytes after the fixed header (padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::payload(usize::from(self.payload_len()))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field (the low four bits of `value`).
    pub fn set_version(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_TC_FLOW.start];
        *byte = (*byte & 0x0f) | (value << 4);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        let class = u32::from(value) << TRAFFIC_CLASS_SHIFT;
        self.write_first_word(|word| (word & !TRAFFIC_CLASS_MASK) | class);
    }

    /// Sets the flow label (the low 20 bits of `value`).
    pub fn set_flow_label(&mut self, value: u32) {
        self.write_first_word(|word| (word & !FLOW_MASK) | (value & FLOW_MASK));
    }

    /// Sets the payload length field.
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the type of the header after the fixed header.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.0;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload, mutably: the payload length bytes after the fixed header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = field::payload(usize::from(self.payload_len()));
        &mut self.buffer.as_mut()[range]
    }

    /// Rewrites the version/traffic class/flow label word.
    fn write_first_word(&mut self, update: impl FnOnce(u32) -> u32) {
        let word = update(ethernet::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW));
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "ipv6 ({err})"),
        }
    }
}

/// The meaning of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The type of the header after the fixed header.
    pub next_header: IpProtocol,
    /// The payload length in bytes, extension headers included.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label, 20 bits.
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header of a packet.
    ///
    /// [`Error::BadVersion`] if the version is not 6, and the errors of [`Packet::check_len`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        packet.check_len()?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The number of bytes `emit` writes: the fixed header (not the payload).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header into the first `buffer_len()` bytes of the packet; the payload
    /// is not touched.
    ///
    /// A `payload_len` above 65535 is the caller's bug: the field saturates at 65535 rather
    /// than panic. `flow_label` is masked to 20 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipv6 {} > {}", self.src_addr, self.dst_addr)
    }
}

/// Reads an address from a sixteen-byte field.
fn read_addr(buffer: &[u8], field: crate::Field) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&buffer[field]);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    // scapy: IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb8, fl=0x12345, nh=17, hlim=64)
    // / Raw(b"\xaa\xbb\xcc\xdd"): traffic class 0xb8 (EF), flow label 0x12345.
    static PACKET_BYTES: [u8; 44] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    const PAYLOAD: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];
    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn repr() -> Repr {
        Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: IpProtocol::UDP,
            payload_len: 4,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 4);
        assert_eq!(packet.next_header(), IpProtocol::UDP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert_eq!(packet.payload(), &PAYLOAD);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 44];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_traffic_class(0xb8);
        packet.set_flow_label(0x12345);
        packet.set_payload_len(4);
        packet.set_next_header(IpProtocol::UDP);
        packet.set_hop_limit(64);
        packet.set_src_addr(SRC);
        packet.set_dst_addr(DST);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_setters_keep_neighbours() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_traffic_class(0xff);
        assert_eq!((packet.version(), packet.flow_label()), (6, 0x12345));
        packet.set_flow_label(0xffff_ffff);
        assert_eq!(
            (
                packet.version(),
                packet.traffic_class(),
                packet.flow_label()
            ),
            (6, 0xff, 0xfffff)
        );
        packet.set_traffic_class(0);
        packet.set_flow_label(0);
        assert_eq!(
            (
                packet.version(),
                packet.traffic_class(),
                packet.flow_label()
            ),
            (6, 0, 0)
        );
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let repr = repr();
        assert_eq!(repr.buffer_len(), 40);
        let mut bytes = [0xa5; 44];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        assert_eq!(bytes, PACKET_BYTES);

        // Exactly buffer_len() bytes is enough.
        let mut header = [0xa5; 40];
        repr.emit(&mut Packet::new_unchecked(&mut header[..]));
        assert_eq!(header, PACKET_BYTES[..40]);
    }

    #[test]
    fn test_emit_saturates_payload_len() {
        let repr = Repr {
            payload_len: 70_000,
            ..repr()
        };
        let mut bytes = [0xa5; 40];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        assert_eq!(packet.payload_len(), u16::MAX);
    }

    #[test]
    fn test_padding_is_not_payload() {
        let mut bytes = [0u8; 64];
        bytes[..44].copy_from_slice(&PACKET_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD);
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn test_empty_payload() {
        // Payload length 0 (no jumbogram support): an empty payload, even with bytes behind.
        let mut bytes = PACKET_BYTES;
        bytes[4..6].copy_from_slice(&[0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.payload().is_empty());
        assert_eq!(Repr::parse(&packet).unwrap().payload_len, 0);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..43]).unwrap_err(),
            Error::Truncated
        );
        let mut bytes = PACKET_BYTES;
        bytes[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        let packet = Packet::new_unchecked(&PACKET_BYTES[..20]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x4b;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::BadVersion);
    }

    #[test]
    fn test_display() {
        assert_eq!(repr().to_string(), "ipv6 2001:db8::1 > 2001:db8::2");
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "ipv6 2001:db8::1 > 2001:db8::2");
        let packet = Packet::new_unchecked(&PACKET_BYTES[..41]);
        assert_eq!(packet.to_string(), "ipv6 (truncated)");
    }
}
