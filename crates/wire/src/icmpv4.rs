//! ICMP for IPv4 (RFC 792): echo request/reply decoded, other messages kept as raw fields.

use core::fmt;

use crate::{Error, Result, checksum, ethernet};

code_point! {
    /// The type of an ICMP message.
    pub struct Message(u8) {
        /// Echo reply (RFC 792).
        ECHO_REPLY = 0 => "echo reply",
        /// Destination unreachable (RFC 792).
        DEST_UNREACHABLE = 3 => "unreachable",
        /// Redirect (RFC 792).
        REDIRECT = 5 => "redirect",
        /// Echo request (RFC 792).
        ECHO_REQUEST = 8 => "echo request",
        /// Time exceeded (RFC 792).
        TIME_EXCEEDED = 11 => "time exceeded",
        /// Parameter problem (RFC 792).
        PARAM_PROBLEM = 12 => "parameter problem",
    }
}

mod field {
    use crate::{Field, Rest};

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    /// The second word, whose meaning depends on the type.
    pub(super) const REST_OF_HEADER: Field = 4..8;
    pub(super) const ECHO_IDENT: Field = 4..6;
    pub(super) const ECHO_SEQ_NO: Field = 6..8;
    pub(super) const DATA: Rest = 8..;
}

/// The length of an ICMP header (type, code, checksum and the type-specific word).
pub const HEADER_LEN: usize = field::DATA.start;

view! {
    /// A read/write view of an ICMP message.
    ///
    /// The buffer is the whole message: the checksum covers all of it, so pass the IPv4
    /// payload (which ends at the total length), not a frame with padding.
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

    /// The message type.
    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    /// The message code (its meaning depends on the type).
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The identifier of an echo request or reply.
    pub fn echo_ident(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply.
    pub fn echo_seq_no(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::ECHO_SEQ_NO)
    }

    /// The type-specific second word of the header, as bytes.
    pub fn rest_of_header(&self) -> [u8; 4] {
        let mut rest = [0; 4];
        rest.copy_from_slice(&self.buffer.as_ref()[field::REST_OF_HEADER]);
        rest
    }

    /// True when the checksum over the whole buffer is correct (RFC 792).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header, to the end of the buffer.
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.0;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the identifier of an echo request or reply.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the sequence number of an echo request or reply.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_SEQ_NO].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the type-specific second word of the header.
    pub fn set_rest_of_header(&mut self, value: [u8; 4]) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&value);
    }

    /// Computes the checksum over the whole buffer and writes it (write the data first).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// The bytes after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "icmp ({err})"),
        }
    }
}

/// The meaning of an ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// An echo request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// The data to be echoed.
        data: &'a [u8],
    },
    /// An echo reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// The echoed data.
        data: &'a [u8],
    },
    /// Any other message, including an echo with a non-zero code, kept as raw fields.
    ///
    /// An `Other` with the type and code of an echo emits an echo, which parses back as
    /// `EchoRequest` or `EchoReply`.
    Other {
        /// Message type.
        msg_type: Message,
        /// Message code.
        code: u8,
        /// The type-specific second word of the header.
        rest_of_header: [u8; 4],
        /// The bytes after the header (for errors, the offending IP header and 8 bytes).
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message and verifies its checksum over the whole buffer.
    ///
    /// [`Error::BadChecksum`] if the checksum is wrong, [`Error::Truncated`] if the buffer is
    /// shorter than a header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Self> {
        packet.check_len()?;
        if !cfg!(fuzzing) && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data = packet.data();
        // RFC 792: echo messages have code 0; anything else is kept raw.
        Ok(match (packet.msg_type(), packet.msg_code()) {
            (Message::ECHO_REQUEST, 0) => Self::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            (Message::ECHO_REPLY, 0) => Self::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            (msg_type, code) => Self::Other {
                msg_type,
                code,
                rest_of_header: packet.rest_of_header(),
                data,
            },
        })
    }

    /// The data after the header.
    pub const fn data(&self) -> &'a [u8] {
        match *self {
            Self::EchoRequest { data, .. }
            | Self::EchoReply { data, .. }
            | Self::Other { data, .. } => data,
        }
    }

    /// The number of bytes `emit` writes: the header and the data.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the whole message (header, data and checksum) into the first `buffer_len()`
    /// bytes of the packet; the checksum covers only those bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (msg_type, code, rest_of_header) = match *self {
            Self::EchoRequest { ident, seq_no, .. } => {
                (Message::ECHO_REQUEST, 0, echo_word(ident, seq_no))
            }
            Self::EchoReply { ident, seq_no, .. } => {
                (Message::ECHO_REPLY, 0, echo_word(ident, seq_no))
            }
            Self::Other {
                msg_type,
                code,
                rest_of_header,
                ..
            } => (msg_type, code, rest_of_header),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest_of_header);
        packet.set_checksum(0);
        let data = self.data();
        let buffer = packet.buffer.as_mut();
        buffer[field::DATA.start..self.buffer_len()].copy_from_slice(data);
        let sum = checksum::checksum(&buffer[..self.buffer_len()]);
        packet.set_checksum(sum);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EchoRequest { ident, seq_no, .. } => {
                write!(f, "icmp echo request id {ident} seq {seq_no}")
            }
            Self::EchoReply { ident, seq_no, .. } => {
                write!(f, "icmp echo reply id {ident} seq {seq_no}")
            }
            Self::Other { msg_type, code, .. } => write!(f, "icmp type {} code {code}", msg_type.0),
        }
    }
}

/// The second header word of an echo: identifier, then sequence number.
fn echo_word(ident: u16, seq_no: u16) -> [u8; 4] {
    let [a, b] = ident.to_be_bytes();
    let [c, d] = seq_no.to_be_bytes();
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    // scapy: ICMP(type=8, id=1, seq=2) / b"weft": checksum 0x1a23.
    static ECHO_REQUEST_BYTES: [u8; 12] = [
        0x08, 0x00, 0x1a, 0x23, 0x00, 0x01, 0x00, 0x02, 0x77, 0x65, 0x66, 0x74,
    ];

    // scapy: ICMP(type=0, id=1, seq=2) / b"weft": checksum 0x2223.
    static ECHO_REPLY_BYTES: [u8; 12] = [
        0x00, 0x00, 0x22, 0x23, 0x00, 0x01, 0x00, 0x02, 0x77, 0x65, 0x66, 0x74,
    ];

    // scapy: ICMP(type=3, code=1, unused=0) / b"\x45\x00\x00\x1c": host unreachable, quoting
    // the start of an IPv4 header.
    static UNREACHABLE_BYTES: [u8; 12] = [
        0x03, 0x01, 0xb7, 0xe2, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x1c,
    ];

    const DATA: &[u8] = b"weft";

    fn echo_request() -> Repr<'static> {
        Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
            data: DATA,
        }
    }

    fn unreachable() -> Repr<'static> {
        Repr::Other {
            msg_type: Message::DEST_UNREACHABLE,
            code: 1,
            rest_of_header: [0; 4],
            data: &UNREACHABLE_BYTES[8..],
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&ECHO_REQUEST_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x1a23);
        assert_eq!(packet.echo_ident(), 1);
        assert_eq!(packet.echo_seq_no(), 2);
        assert_eq!(packet.rest_of_header(), [0, 1, 0, 2]);
        assert_eq!(packet.data(), DATA);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Message::ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(1);
        packet.set_echo_seq_no(2);
        packet.data_mut().copy_from_slice(DATA);
        packet.fill_checksum();
        assert_eq!(bytes, ECHO_REQUEST_BYTES);

        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Message::DEST_UNREACHABLE);
        packet.set_msg_code(1);
        packet.set_rest_of_header([0; 4]);
        packet.data_mut().copy_from_slice(&UNREACHABLE_BYTES[8..]);
        packet.fill_checksum();
        assert_eq!(bytes, UNREACHABLE_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&ECHO_REQUEST_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), echo_request());
        let packet = Packet::new_checked(&ECHO_REPLY_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr::EchoReply {
                ident: 1,
                seq_no: 2,
                data: DATA
            }
        );
        let packet = Packet::new_checked(&UNREACHABLE_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), unreachable());
    }

    #[test]
    fn test_parse_echo_with_code() {
        // An echo request with code 1 is not an echo: it is kept raw.
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Message::ECHO_REQUEST);
        packet.set_msg_code(1);
        packet.set_rest_of_header([0, 1, 0, 2]);
        packet.data_mut().copy_from_slice(DATA);
        packet.fill_checksum();
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        let expected = Repr::Other {
            msg_type: Message::ECHO_REQUEST,
            code: 1,
            rest_of_header: [0, 1, 0, 2],
            data: DATA,
        };
        assert_eq!(repr, expected);
    }

    #[test]
    fn test_emit() {
        let cases = [
            (echo_request(), ECHO_REQUEST_BYTES),
            (
                Repr::EchoReply {
                    ident: 1,
                    seq_no: 2,
                    data: DATA,
                },
                ECHO_REPLY_BYTES,
            ),
            (unreachable(), UNREACHABLE_BYTES),
        ];
        for (repr, expected) in cases {
            assert_eq!(repr.buffer_len(), 12);
            let mut bytes = [0xa5; 12];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn test_emit_into_larger_buffer() {
        // The checksum covers buffer_len() bytes, not what follows in the buffer.
        let mut bytes = [0xa5; 20];
        echo_request().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..12], ECHO_REQUEST_BYTES);
        assert_eq!(bytes[12..], [0xa5; 8]);
    }

    #[test]
    fn test_empty_data() {
        let repr = Repr::EchoReply {
            ident: 7,
            seq_no: 9,
            data: &[],
        };
        let mut bytes = [0xa5; 8];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            Packet::new_checked(&ECHO_REQUEST_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        let packet = Packet::new_unchecked(&ECHO_REQUEST_BYTES[..7]);
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Truncated);
    }

    #[test]
    #[cfg_attr(fuzzing, ignore = "checksums are not verified under cfg(fuzzing)")]
    fn test_bad_checksum() {
        // The data is covered too.
        let mut bytes = ECHO_REQUEST_BYTES;
        bytes[11] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Repr::parse(&packet).unwrap_err(), Error::BadChecksum);
    }

    #[test]
    fn test_display() {
        assert_eq!(echo_request().to_string(), "icmp echo request id 1 seq 2");
        let packet = Packet::new_checked(&ECHO_REPLY_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "icmp echo reply id 1 seq 2");
        assert_eq!(unreachable().to_string(), "icmp type 3 code 1");
        let packet = Packet::new_unchecked(&ECHO_REPLY_BYTES[..4]);
        assert_eq!(packet.to_string(), "icmp (truncated)");
        assert_eq!(Message::TIME_EXCEEDED.to_string(), "time exceeded");
        assert_eq!(Message(42).to_string(), "0x2a");
    }
}
