//! ARP packets (RFC 826); only Ethernet hardware and IPv4 protocol addresses have a `Repr`.

use core::{fmt, net::Ipv4Addr};

use crate::{Error, EtherType, MacAddr, Result, ethernet};

code_point! {
    /// The operation of an ARP packet.
    pub struct Operation(u16) {
        /// A request: who has the target protocol address? (RFC 826)
        REQUEST = 1 => "request",
        /// A reply: the sender protocol address is at the sender hardware address (RFC 826).
        REPLY = 2 => "reply",
    }
}

code_point! {
    /// The hardware type of an ARP packet.
    pub struct Hardware(u16) {
        /// Ethernet (10 Mb and up), 48-bit addresses.
        ETHERNET = 1 => "ethernet",
    }
}

mod field {
    use crate::Field;

    pub(super) const HTYPE: Field = 0..2;
    pub(super) const PTYPE: Field = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Field = 6..8;

    /// Sender hardware address, for hardware addresses of `hlen` bytes.
    pub(super) const fn sha(hlen: usize) -> Field {
        OPER.end..OPER.end + hlen
    }

    /// Sender protocol address, for protocol addresses of `plen` bytes.
    pub(super) const fn spa(hlen: usize, plen: usize) -> Field {
        let start = sha(hlen).end;
        start..start + plen
    }

    /// Target hardware address.
    pub(super) const fn tha(hlen: usize, plen: usize) -> Field {
        let start = spa(hlen, plen).end;
        start..start + hlen
    }

    /// Target protocol address.
    pub(super) const fn tpa(hlen: usize, plen: usize) -> Field {
        let start = tha(hlen, plen).end;
        start..start + plen
    }
}

/// The length of the fixed part of an ARP packet, before the addresses.
pub const HEADER_LEN: usize = field::OPER.end;
/// The length of an Ethernet/IPv4 ARP packet (Ethernet padding after it is ignored).
pub const PACKET_LEN: usize = field::tpa(6, 4).end;

view! {
    /// A read/write view of an ARP packet with any address lengths.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed part and the four addresses its lengths state,
    /// so no accessor can panic; [`Error::Truncated`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.tpa().end {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The hardware type.
    pub fn hardware_type(&self) -> Hardware {
        Hardware(ethernet::read_u16(self.buffer.as_ref(), field::HTYPE))
    }

    /// The protocol type (an EtherType).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(ethernet::read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// The length of a hardware address, in bytes.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The length of a protocol address, in bytes.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        Operation(ethernet::read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// The sender hardware address, `hardware_len()` bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha()]
    }

    /// The sender protocol address, `protocol_len()` bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa()]
    }

    /// The target hardware address, `hardware_len()` bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha()]
    }

    /// The target protocol address, `protocol_len()` bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tpa()]
    }

    /// The address lengths as offsets.
    fn lens(&self) -> (usize, usize) {
        (
            usize::from(self.hardware_len()),
            usize::from(self.protocol_len()),
        )
    }

    /// Where the sender hardware address is.
    fn sha(&self) -> crate::Field {
        field::sha(usize::from(self.hardware_len()))
    }

    /// Where the sender protocol address is.
    fn spa(&self) -> crate::Field {
        let (hlen, plen) = self.lens();
        field::spa(hlen, plen)
    }

    /// Where the target hardware address is.
    fn tha(&self) -> crate::Field {
        let (hlen, plen) = self.lens();
        field::tha(hlen, plen)
    }

    /// Where the target protocol address is.
    fn tpa(&self) -> crate::Field {
        let (hlen, plen) = self.lens();
        field::tpa(hlen, plen)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: Hardware) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the length of a hardware address (set it before the addresses).
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the length of a protocol address (set it before the addresses).
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: Operation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the sender hardware address.
    ///
    /// # Panics
    /// If `value` is not `hardware_len()` bytes long.
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        let range = self.sha();
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets the sender protocol address.
    ///
    /// # Panics
    /// If `value` is not `protocol_len()` bytes long.
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        let range = self.spa();
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets the target hardware address.
    ///
    /// # Panics
    /// If `value` is not `hardware_len()` bytes long.
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        let range = self.tha();
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets the target protocol address.
    ///
    /// # Panics
    /// If `value` is not `protocol_len()` bytes long.
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        let range = self.tpa();
        self.buffer.as_mut()[range].copy_from_slice(value);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "arp ({err})"),
        }
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The operation (any value is kept, not only request and reply).
    pub operation: Operation,
    /// Sender hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads an Ethernet/IPv4 ARP packet.
    ///
    /// [`Error::Unsupported`] for any other hardware type, protocol type or address lengths,
    /// and the errors of [`Packet::check_len`]. Bytes after the addresses are ignored.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.hardware_type() != Hardware::ETHERNET
            || packet.protocol_type() != EtherType::IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let bytes = packet.buffer.as_ref();
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: MacAddr::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: Ipv4Addr::from(ethernet::read_u32(bytes, field::spa(6, 4))),
            target_hardware_addr: MacAddr::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: Ipv4Addr::from(ethernet::read_u32(bytes, field::tpa(6, 4))),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// True for a gratuitous ARP: the sender announces its own address (sender and target
    /// protocol addresses are equal, RFC 5227 §3).
    pub fn is_gratuitous(&self) -> bool {
        self.source_protocol_addr == self.target_protocol_addr
    }

    /// Writes the packet into the first `buffer_len()` bytes of the buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(Hardware::ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sha, spa) = (self.source_hardware_addr, self.source_protocol_addr);
        let (tha, tpa) = (self.target_hardware_addr, self.target_protocol_addr);
        match self.operation {
            Operation::REQUEST if self.is_gratuitous() => write!(f, "arp announce {spa}"),
            Operation::REQUEST => write!(f, "arp who-has {tpa} tell {spa}"),
            Operation::REPLY => write!(f, "arp {spa} is-at {sha}"),
            op => write!(f, "arp op {} {spa} ({sha}) > {tpa} ({tha})", op.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // scapy: ARP(op=1, hwsrc="fa:16:3e:00:00:01", psrc="10.99.0.1",
    // hwdst="00:00:00:00:00:00", pdst="10.99.0.2").
    static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, 0x0a,
        0x63, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x63, 0x00, 0x02,
    ];

    // scapy: ARP(op=2, hwsrc="fa:16:3e:00:00:01", psrc="10.99.0.2",
    // hwdst="fa:16:3e:00:00:02", pdst="10.99.0.1").
    static REPLY_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, 0x0a,
        0x63, 0x00, 0x02, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, 0x0a, 0x63, 0x00, 0x01,
    ];

    // By hand from RFC 826's layout: a request with 8-byte hardware and 2-byte protocol
    // addresses (hardware type 0x1234, protocol type 0xabcd), 8 + 2 * (8 + 2) = 28 bytes.
    static ODD_LENGTHS_BYTES: [u8; 28] = [
        0x12, 0x34, 0xab, 0xcd, 0x08, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xa1, 0xa2, 11, 12,
        13, 14, 15, 16, 17, 18, 0xb1, 0xb2,
    ];

    const VM1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
    const VM2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]);

    fn request() -> Repr {
        Repr {
            operation: Operation::REQUEST,
            source_hardware_addr: VM1,
            source_protocol_addr: Ipv4Addr::new(10, 99, 0, 1),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 99, 0, 2),
        }
    }

    fn reply() -> Repr {
        Repr {
            operation: Operation::REPLY,
            source_hardware_addr: VM1,
            source_protocol_addr: Ipv4Addr::new(10, 99, 0, 2),
            target_hardware_addr: VM2,
            target_protocol_addr: Ipv4Addr::new(10, 99, 0, 1),
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), Hardware::ETHERNET);
        assert_eq!(packet.protocol_type(), EtherType::IPV4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), Operation::REQUEST);
        assert_eq!(packet.source_hardware_addr(), &VM1.0);
        assert_eq!(packet.source_protocol_addr(), &[10, 99, 0, 1]);
        assert_eq!(packet.target_hardware_addr(), &[0; 6]);
        assert_eq!(packet.target_protocol_addr(), &[10, 99, 0, 2]);
    }

    #[test]
    fn test_deconstruct_other_lengths() {
        let packet = Packet::new_checked(&ODD_LENGTHS_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), Hardware(0x1234));
        assert_eq!(packet.protocol_type(), EtherType(0xabcd));
        assert_eq!(packet.source_hardware_addr(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(packet.source_protocol_addr(), &[0xa1, 0xa2]);
        assert_eq!(
            packet.target_hardware_addr(),
            &[11, 12, 13, 14, 15, 16, 17, 18]
        );
        assert_eq!(packet.target_protocol_addr(), &[0xb1, 0xb2]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 28];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(Hardware::ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(Operation::REQUEST);
        packet.set_source_hardware_addr(&VM1.0);
        packet.set_source_protocol_addr(&[10, 99, 0, 1]);
        packet.set_target_hardware_addr(&[0; 6]);
        packet.set_target_protocol_addr(&[10, 99, 0, 2]);
        assert_eq!(bytes, REQUEST_BYTES);

        let mut bytes = [0xa5; 28];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(Hardware(0x1234));
        packet.set_protocol_type(EtherType(0xabcd));
        packet.set_hardware_len(8);
        packet.set_protocol_len(2);
        packet.set_operation(Operation::REQUEST);
        packet.set_source_hardware_addr(&[1, 2, 3, 4, 5, 6, 7, 8]);
        packet.set_source_protocol_addr(&[0xa1, 0xa2]);
        packet.set_target_hardware_addr(&[11, 12, 13, 14, 15, 16, 17, 18]);
        packet.set_target_protocol_addr(&[0xb1, 0xb2]);
        assert_eq!(bytes, ODD_LENGTHS_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), request());
        let packet = Packet::new_checked(&REPLY_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), reply());
    }

    #[test]
    fn test_emit() {
        for (repr, expected) in [(request(), REQUEST_BYTES), (reply(), REPLY_BYTES)] {
            assert_eq!(repr.buffer_len(), PACKET_LEN);
            let mut bytes = [0xa5; 28];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn test_padding_is_ignored() {
        // The request in a minimum-size Ethernet frame: 46 bytes of payload, 18 of padding.
        let mut bytes = [0u8; 46];
        bytes[..28].copy_from_slice(&REQUEST_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), request());
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&REQUEST_BYTES[..27]).unwrap_err(),
            Error::Truncated
        );
        // Address lengths of 255 need 8 + 2 * 510 bytes.
        let mut bytes = REQUEST_BYTES;
        bytes[4..6].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        let packet = Packet::new_unchecked(&REQUEST_BYTES[..20]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_unsupported() {
        let patches: [(usize, &[u8]); 4] = [
            (0, &[0x00, 0x06]),
            (2, &[0x86, 0xdd]),
            (4, &[0x05]),
            (5, &[0x03]),
        ];
        for (offset, patch) in patches {
            let mut bytes = [0u8; 60];
            bytes[..28].copy_from_slice(&REQUEST_BYTES);
            bytes[offset..offset + patch.len()].copy_from_slice(patch);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                Repr::parse(&packet).unwrap_err(),
                Error::Unsupported,
                "{offset}"
            );
        }
    }

    #[test]
    fn test_other_operation_round_trips() {
        // RARP request (RFC 903) in an ARP-shaped packet.
        let repr = Repr {
            operation: Operation(3),
            ..request()
        };
        let mut bytes = [0xa5; 28];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
        assert_eq!(
            repr.to_string(),
            "arp op 3 10.99.0.1 (fa:16:3e:00:00:01) > 10.99.0.2 (00:00:00:00:00:00)"
        );
    }

    #[test]
    fn test_display() {
        assert_eq!(
            request().to_string(),
            "arp who-has 10.99.0.2 tell 10.99.0.1"
        );
        let packet = Packet::new_checked(&REPLY_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "arp 10.99.0.2 is-at fa:16:3e:00:00:01");
        let announce = Repr {
            target_protocol_addr: Ipv4Addr::new(10, 99, 0, 1),
            ..request()
        };
        assert!(announce.is_gratuitous());
        assert!(!request().is_gratuitous());
        assert_eq!(announce.to_string(), "arp announce 10.99.0.1");
        let packet = Packet::new_checked(&ODD_LENGTHS_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "arp (unsupported)");
        assert_eq!(Operation::REPLY.to_string(), "reply");
    }
}
