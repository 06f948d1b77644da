//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers (RFC 768, RFC 8200 §8.1).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::IpProtocol;

/// Adds `data` to a running one's-complement sum of 16-bit big-endian words (not yet folded).
///
/// An odd trailing byte is padded with zero, as RFC 1071 says. The data is summed in the
/// machine's own byte order, four bytes at a time into four 64-bit accumulators (which the
/// compiler turns into vector adds), and the folded result swapped to network order at the
/// end: RFC 1071 §2(A) and §2(B), the sum is independent of byte order and word size.
// Non-generic and called from generic views in other crates: let them inline it.
#[inline]
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    let mut lanes = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, word) in lanes.iter_mut().zip(chunk.chunks_exact(4)) {
            // Each lane takes at most 2^32 - 1 per 16 bytes: no overflow below 2^64 bytes.
            *lane += u64::from(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]));
        }
    }
    let mut acc: u64 = lanes.iter().map(|&lane| u64::from(fold(lane))).sum();
    let mut pairs = chunks.remainder().chunks_exact(2);
    for pair in &mut pairs {
        acc += u64::from(u16::from_ne_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    // Back to network byte order, then add the running sum and fold again.
    let network = u16::from_be(fold(acc));
    u32::from(fold(u64::from(network) + u64::from(sum)))
}

/// Folds a 64-bit one's-complement sum to 16 bits.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 significant bits.
    u16::try_from(acc).unwrap_or(0xffff)
}

/// Folds a running sum to 16 bits and complements it: the value that goes on the wire.
#[inline]
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The fold above leaves at most 16 significant bits.
    #[expect(clippy::cast_possible_truncation, reason = "sum was folded to 16 bits")]
    let folded = sum as u16;
    !folded
}

/// The checksum of `data` alone (IPv4 header, ICMP).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The running sum of the IPv4 pseudo-header for an upper-layer packet of `length` bytes.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum += u32::from(protocol.0);
    sum + (length >> 16) + (length & 0xffff)
}

/// The running sum of the IPv6 pseudo-header for an upper-layer packet of `length` bytes.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, length: u32) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum += u32::from(next_header.0);
    sum + (length >> 16) + (length & 0xffff)
}

/// The addresses of the IP header that carries an upper-layer packet (UDP, TCP, ICMPv6), for
/// the pseudo-header its checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudoHeader {
    /// Carried by IPv4.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// Carried by IPv6.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// The running sum of this pseudo-header for an upper-layer packet of `length` bytes.
    #[inline]
    pub fn sum(&self, protocol: IpProtocol, length: u32) -> u32 {
        match *self {
            Self::V4 { src, dst } => pseudo_header_v4(src, dst, protocol, length),
            Self::V6 { src, dst } => pseudo_header_v6(src, dst, protocol, length),
        }
    }

    /// True for IPv4, where a zero UDP checksum means "none".
    pub const fn is_v4(&self) -> bool {
        matches!(self, Self::V4 { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn wide_sum_matches_the_word_by_word_definition() {
        // Every length 0..64 and both odd and even, against RFC 1071's plain 16-bit loop.
        let data: Vec<u8> = (0..64u32)
            .map(|i| u8::try_from((i * 37 + 11) % 256).unwrap())
            .chain([0xff; 9])
            .collect();
        for len in 0..data.len() {
            let mut plain: u32 = 0x1234;
            for pair in data[..len].chunks(2) {
                let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
                plain += u32::from(word);
            }
            assert_eq!(
                finish(accumulate(0x1234, &data[..len])),
                finish(plain),
                "len {len}"
            );
        }
    }

    /// RFC 1071's definition, word by word.
    fn plain(sum: u32, data: &[u8]) -> u16 {
        let mut acc = u64::from(sum);
        for pair in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !u16::try_from(acc).unwrap()
    }

    #[test]
    fn long_and_unaligned_data_matches_the_definition() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
            .collect();
        for (start, len) in [
            (0, 65_535),
            (1, 65_534),
            (3, 1449),
            (5, 17),
            (7, 31),
            (0, 69_999),
        ] {
            let slice = &data[start..start + len];
            assert_eq!(
                finish(accumulate(0xfffe_ffff, slice)),
                plain(0xfffe_ffff, slice),
                "start {start} len {len}"
            );
        }
        // All ones: every lane carries on every word.
        let ones = vec![0xffu8; 100_001];
        assert_eq!(finish(accumulate(u32::MAX, &ones)), plain(u32::MAX, &ones));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn data_with_its_checksum_sums_to_zero() {
        let mut data = vec![
            0x45, 0x00, 0x00, 0x54, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x01, 0, 0,
        ];
        data.extend_from_slice(&[10, 0, 5, 7, 10, 0, 5, 2]);
        let sum = checksum(&data);
        data[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }
}
