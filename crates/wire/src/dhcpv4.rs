//! DHCPv4 (RFC 2131, options RFC 2132): glue over the `dhcproto` codec.
//!
//! DHCP has some eighty option kinds, each with its own layout; `dhcproto` is the maintained
//! codec for them, so weft does not keep its own. This module gives it the crate's shape: a
//! `Repr` with `parse`/`buffer_len`/`emit`, errors mapped onto [`Error`], a magic-cookie check,
//! and a `Display` for traces. It is slow-path code: encoding allocates.

use core::fmt;

use dhcproto::{Decodable, Decoder, Encodable, Encoder, error::DecodeError};

pub use dhcproto::v4::{DhcpOption, DhcpOptions, Message, MessageType, Opcode, OptionCode};

use crate::{Error, MacAddr, Result};

/// The UDP port servers listen on.
pub const SERVER_PORT: u16 = 67;
/// The UDP port clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// The four bytes that mark the start of DHCP options in a BOOTP message (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The fixed BOOTP part before the options: op .. file (236 bytes) plus the magic cookie.
pub const FIXED_LEN: usize = 240;
/// The size of the `chaddr` field: `hlen` above it is malformed (RFC 2131 §2).
pub const CHADDR_LEN: u8 = 16;
/// The smallest BOOTP message some relays and clients accept (RFC 1542 §2.1); servers pad to it.
pub const BOOTP_MIN_LEN: usize = 300;

/// A parsed DHCPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// The decoded message.
    pub message: Message,
}

impl Repr {
    /// Decodes a UDP payload as a DHCP message.
    ///
    /// Shorter than the fixed part is [`Error::Truncated`]; a missing magic cookie (plain BOOTP)
    /// is [`Error::Unsupported`]; a hardware address length over 16 is [`Error::BadLength`]; an option that runs past the end is [`Error::Truncated`] and one
    /// whose contents do not fit its kind is [`Error::BadLength`].
    pub fn parse(payload: &[u8]) -> Result<Self> {
        if payload.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        if payload[FIXED_LEN - 4..FIXED_LEN] != MAGIC_COOKIE {
            return Err(Error::Unsupported);
        }
        // dhcproto slices chaddr by hlen and panics past 16 (found by the dhcpv4 fuzz target).
        if payload[2] > CHADDR_LEN {
            return Err(Error::BadLength);
        }
        let wire = option_lengths(&payload[FIXED_LEN..])?;
        let message = Message::decode(&mut Decoder::new(payload)).map_err(decode_error)?;
        let repr = Self { message };
        // dhcproto stops quietly at the first option it cannot decode, and reads a fixed-size
        // option of the wrong length as far as it needs: re-encoding must give every option
        // back at the length it had on the wire, or something would be lost.
        let encoded = repr.to_bytes()?;
        let ours = encoded
            .get(FIXED_LEN..)
            .map(option_lengths)
            .ok_or(Error::BadLength)??;
        if ours != wire {
            return Err(Error::BadLength);
        }
        Ok(repr)
    }

    /// The message type (option 53), if the message carries one.
    pub fn message_type(&self) -> Option<MessageType> {
        self.message.opts().msg_type()
    }

    /// The client hardware address, when it is an Ethernet address.
    pub fn client_mac(&self) -> Option<MacAddr> {
        let chaddr = self.message.chaddr();
        (self.message.hlen() == 6 && chaddr.len() >= 6).then(|| MacAddr::from_bytes(chaddr))
    }

    /// The encoded message, unpadded.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(BOOTP_MIN_LEN);
        self.message
            .encode(&mut Encoder::new(&mut bytes))
            .map_err(|_| Error::BadLength)?;
        Ok(bytes)
    }

    /// The number of bytes `emit` writes.
    pub fn buffer_len(&self) -> Result<usize> {
        Ok(self.to_bytes()?.len())
    }

    /// Writes the message into `buffer`; returns its length.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize> {
        let bytes = self.to_bytes()?;
        let out = buffer.get_mut(..bytes.len()).ok_or(Error::NoRoom)?;
        out.copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Writes the message padded with zero (pad option) bytes to [`BOOTP_MIN_LEN`], as servers
    /// send it; returns its length.
    pub fn emit_padded(&self, buffer: &mut [u8]) -> Result<usize> {
        let len = self.emit(buffer)?;
        if len >= BOOTP_MIN_LEN {
            return Ok(len);
        }
        buffer
            .get_mut(len..BOOTP_MIN_LEN)
            .ok_or(Error::NoRoom)?
            .fill(0);
        Ok(BOOTP_MIN_LEN)
    }
}

/// Walks the option area (RFC 2132 §2): code, length, data, until End. Returns the total data
/// length of each option code present (RFC 3396 lets a long option repeat its code).
fn option_lengths(options: &[u8]) -> Result<[u16; 256]> {
    const PAD: u8 = 0;
    const END: u8 = 255;
    let mut lengths = [0u16; 256];
    let mut present = [false; 256];
    let mut rest = options;
    loop {
        match rest {
            [] => return Err(Error::Truncated),
            [END, ..] => break,
            [PAD, tail @ ..] => rest = tail,
            [code, len, tail @ ..] => {
                let data = tail.get(..usize::from(*len)).ok_or(Error::Truncated)?;
                if !length_fits(*code, *len) {
                    return Err(Error::BadLength);
                }
                let slot = usize::from(*code);
                present[slot] = true;
                // At most 64 KiB of options fit in a UDP payload: no overflow in practice.
                lengths[slot] = lengths[slot].saturating_add(u16::from(*len));
                rest = &tail[data.len()..];
            }
            [_] => return Err(Error::Truncated),
        }
    }
    // Tell "present with no data" apart from "absent".
    for (length, present) in lengths.iter_mut().zip(present) {
        if present {
            *length = length.saturating_add(0x8000);
        }
    }
    Ok(lengths)
}

/// False for an option length dhcproto would trip over: it `debug_assert!`s these lengths on
/// untrusted input and computes `len - 3` (FQDN) and `len - 1` (BLQ status), so a debug build
/// would panic. Found by the `pretty` and `dhcpv4` fuzz targets; the sizes are those of RFC 4039
/// (80), RFC 4702 (81), RFC 4578 (94) and RFC 6926 (151-155).
fn length_fits(code: u8, len: u8) -> bool {
    match code {
        80 => len == 0,
        81 => len >= 3,
        94 => len == 3,
        151 => len >= 1,
        152..=155 => len == 4,
        _ => true,
    }
}

/// Maps a `dhcproto` decoding failure onto the crate's drop reasons.
fn decode_error(err: DecodeError) -> Error {
    match err {
        DecodeError::NotEnoughBytes => Error::Truncated,
        _ => Error::BadLength,
    }
}

/// The lower-case name of a message type, as traces print it.
pub fn message_type_name(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Discover => "discover",
        MessageType::Offer => "offer",
        MessageType::Request => "request",
        MessageType::Decline => "decline",
        MessageType::Ack => "ack",
        MessageType::Nak => "nak",
        MessageType::Release => "release",
        MessageType::Inform => "inform",
        _ => "other",
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = &self.message;
        match self.message_type() {
            Some(kind) => write!(f, "dhcp {}", message_type_name(kind))?,
            None => f.write_str("bootp")?,
        }
        write!(f, " xid {:#010x}", msg.xid())?;
        if let Some(mac) = self.client_mac() {
            write!(f, " chaddr {mac}")?;
        }
        if !msg.yiaddr().is_unspecified() {
            write!(f, " yiaddr {}", msg.yiaddr())?;
        }
        if let Some(DhcpOption::RequestedIpAddress(addr)) =
            msg.opts().get(OptionCode::RequestedIpAddress)
        {
            write!(f, " requested {addr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    fn discover() -> Repr {
        let mut message = Message::new_with_id(
            0x1234_5678,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33],
        );
        message
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        message.opts_mut().insert(DhcpOption::InterfaceMtu(1450));
        Repr { message }
    }

    #[test]
    fn test_emit_parse() {
        let repr = discover();
        let mut buffer = [0xa5; 400];
        let len = repr.emit(&mut buffer).unwrap();
        assert_eq!(len, repr.buffer_len().unwrap());
        assert_eq!(buffer[FIXED_LEN - 4..FIXED_LEN], MAGIC_COOKIE);
        let parsed = Repr::parse(&buffer[..len]).unwrap();
        assert_eq!(parsed, repr);
        assert_eq!(parsed.message_type(), Some(MessageType::Discover));
        assert_eq!(
            parsed.client_mac(),
            Some(MacAddr([0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33]))
        );
        assert_eq!(
            parsed.to_string(),
            "dhcp discover xid 0x12345678 chaddr fa:16:3e:11:22:33"
        );
    }

    #[test]
    fn test_padded() {
        let mut buffer = [0xa5; 400];
        assert_eq!(discover().emit_padded(&mut buffer).unwrap(), BOOTP_MIN_LEN);
        // Padding after the End option is legal (RFC 2131 §4.1) and decodes to the same message.
        assert_eq!(Repr::parse(&buffer[..BOOTP_MIN_LEN]).unwrap(), discover());
    }

    #[test]
    fn test_truncated_and_not_dhcp() {
        let bytes = discover().to_bytes().unwrap();
        assert_eq!(Repr::parse(&bytes[..239]), Err(Error::Truncated));
        // A client FQDN (option 81) needs three bytes of flags and codes before the name.
        let mut fqdn = bytes[..FIXED_LEN].to_vec();
        fqdn.extend_from_slice(&[53, 1, 1, 81, 2, 0, 0, 255]);
        assert_eq!(Repr::parse(&fqdn), Err(Error::BadLength));
        let mut long_hlen = bytes.clone();
        long_hlen[2] = CHADDR_LEN + 1;
        assert_eq!(Repr::parse(&long_hlen), Err(Error::BadLength));
        let mut bootp = bytes.clone();
        bootp[236] = 0;
        assert_eq!(Repr::parse(&bootp), Err(Error::Unsupported));
        // An option whose length runs past the end of the message.
        let mut cut = bytes[..FIXED_LEN].to_vec();
        cut.extend_from_slice(&[53, 1, 1, 26, 2, 0x05]);
        assert_eq!(Repr::parse(&cut), Err(Error::Truncated));
        // No End option.
        let mut open = bytes[..FIXED_LEN].to_vec();
        open.extend_from_slice(&[53, 1, 1]);
        assert_eq!(Repr::parse(&open), Err(Error::Truncated));
        // An interface MTU (option 26) must be two bytes; three is not an MTU.
        let mut odd = bytes[..FIXED_LEN].to_vec();
        odd.extend_from_slice(&[53, 1, 1, 26, 3, 5, 0xaa, 0, 255]);
        assert_eq!(Repr::parse(&odd), Err(Error::BadLength));
    }

    #[test]
    fn test_no_room() {
        let mut small = [0; 100];
        assert_eq!(discover().emit(&mut small), Err(Error::NoRoom));
    }
}
