//! TCP headers (RFC 9293 §3.1), as far as a switch touches them: ports, sequence and
//! acknowledgement numbers, flags, window and checksum, for cutting a TSO super-frame into
//! segments and merging segments back ([`crate::gso`]). weft terminates no TCP connection, so
//! there is a view but no `Repr`; options are kept as the bytes they are.

use core::fmt;

use crate::{
    Error, IpProtocol, Result,
    checksum::{self, PseudoHeader},
    ethernet,
};

mod field {
    use crate::Field;

    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const SEQ_NUM: Field = 4..8;
    pub(super) const ACK_NUM: Field = 8..12;
    /// Data offset (4 bits), reserved (3 bits) and the NS bit of RFC 3540 (historic).
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Field = 14..16;
    pub(super) const CHECKSUM: Field = 16..18;
    pub(super) const URGENT: Field = 18..20;
}

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Where the checksum field starts in the header (`virtio_net_hdr.csum_offset` for TCP).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// The control bits of the flags byte (RFC 9293 §3.1, RFC 3168 §6.1 for ECE and CWR).
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is significant.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

view! {
    /// A read/write view of a TCP segment: header, options and payload.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header and the options the data offset states, so no
    /// accessor can panic.
    ///
    /// [`Error::Truncated`] if the buffer is shorter than either; [`Error::BadLength`] if the
    /// data offset is below five words. Everything after the options is payload: the IP
    /// header says where the segment ends, so the caller passes exactly the segment.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            Err(Error::BadLength)
        } else if len < header_len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The sequence number.
    pub fn seq_number(&self) -> u32 {
        ethernet::read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// The acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        ethernet::read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// The header length in bytes (the data offset times four), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The flags byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The receive window.
    pub fn window_len(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        ethernet::read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// True when the checksum over the pseudo-header and the whole buffer (header, options,
    /// payload) is correct.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        checksum::finish(self.checksum_sum(pseudo)) == 0
    }

    /// The running sum of the pseudo-header and the whole buffer.
    fn checksum_sum(&self, pseudo: &PseudoHeader) -> u32 {
        let bytes = self.buffer.as_ref();
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        checksum::accumulate(pseudo.sum(IpProtocol::TCP, len), bytes)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options: between the fixed header and the payload.
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: everything after the options.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and writes it (write
    /// the payload first).
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        self.set_checksum(0);
        let sum = checksum::finish(self.checksum_sum(pseudo));
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    // Shows the header without verifying the checksum: that needs the pseudo-header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packet = Packet::new_unchecked(self.buffer.as_ref());
        if let Err(err) = packet.check_len() {
            return write!(f, "tcp ({err})");
        }
        write!(
            f,
            "tcp {} > {} seq={} ack={} flags=",
            packet.src_port(),
            packet.dst_port(),
            packet.seq_number(),
            packet.ack_number()
        )?;
        let names = [
            (flags::SYN, 'S'),
            (flags::FIN, 'F'),
            (flags::RST, 'R'),
            (flags::PSH, 'P'),
            (flags::ACK, '.'),
            (flags::URG, 'U'),
            (flags::ECE, 'E'),
            (flags::CWR, 'W'),
        ];
        for (bit, name) in names {
            if packet.flags() & bit != 0 {
                write!(f, "{name}")?;
            }
        }
        write!(
            f,
            " win={} len={}",
            packet.window_len(),
            packet.payload().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    /// A SYN from 10.0.0.1:40000 to 10.0.0.2:5201 with an MSS option, as Linux sends it
    /// (checksum computed by hand below from the pseudo-header).
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x14, 0x51, // ports
        0x00, 0x00, 0x10, 0x00, // seq 4096
        0x00, 0x00, 0x00, 0x00, // ack 0
        0x60, 0x02, 0xfa, 0xf0, // data offset 6 words, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    fn pseudo() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (40000, 5201));
        assert_eq!((packet.seq_number(), packet.ack_number()), (4096, 0));
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), flags::SYN);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &[2, 4, 5, 0xb4]);
        assert!(packet.payload().is_empty());
        assert_eq!(
            packet.to_string(),
            "tcp 40000 > 5201 seq=4096 ack=0 flags=S win=64240 len=0"
        );
    }

    #[test]
    fn test_checksum_fill_and_verify() {
        let mut bytes = SYN.to_vec();
        bytes.extend_from_slice(b"data");
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(&pseudo());
        assert!(packet.verify_checksum(&pseudo()));
        // Against RFC 1071 summed by hand: pseudo-header, then the segment word by word.
        let mut sum: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 28;
        let mut zeroed = bytes.clone();
        zeroed[16..18].copy_from_slice(&[0, 0]);
        for pair in zeroed.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        assert_eq!(
            Packet::new_unchecked(&bytes[..]).checksum(),
            checksum::finish(sum)
        );
        bytes[26] ^= 1;
        assert!(!Packet::new_unchecked(&bytes[..]).verify_checksum(&pseudo()));
    }

    #[test]
    fn test_setters() {
        let mut bytes = SYN;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_seq_number(0xdead_beef);
        packet.set_flags(flags::ACK | flags::PSH);
        packet.set_checksum(0x1234);
        assert_eq!(packet.seq_number(), 0xdead_beef);
        assert_eq!(packet.flags(), 0x18);
        assert_eq!(packet.checksum(), 0x1234);
    }

    #[test]
    fn test_truncated_and_impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        // The data offset claims 6 words, the buffer has 5.
        assert_eq!(
            Packet::new_checked(&SYN[..20]).unwrap_err(),
            Error::Truncated
        );
        let mut short = SYN;
        short[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::BadLength
        );
        assert_eq!(
            Packet::new_unchecked(&short[..]).to_string(),
            "tcp (bad length field)"
        );
    }
}
