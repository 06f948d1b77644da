//! Link-layer addresses.

use core::{fmt, str::FromStr};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address, ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// The all-zero address (ARP's "unknown" target hardware address).
    pub const ZERO: Self = Self([0; 6]);

    /// Reads an address from the first six bytes of `bytes`.
    ///
    /// # Panics
    /// If `bytes` is shorter than six bytes.
    // Non-generic and called from generic views in other crates: let them inline it.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut octets = [0; 6];
        octets.copy_from_slice(&bytes[..6]);
        Self(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the I/G bit is set (group address, broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (unicast) address.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// True when the U/L bit says the address is locally administered.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

/// A string that is not six hex octets separated by `:` or `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address: expected six hex octets like fa:16:3e:00:00:01")]
pub struct ParseMacError;

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.is_empty() || part.len() > 2 {
                return Err(ParseMacError);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(Self(octets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let mac: MacAddr = "fa:16:3e:0a:bc:01".parse().unwrap();
        assert_eq!(mac.0, [0xfa, 0x16, 0x3e, 0x0a, 0xbc, 0x01]);
        assert_eq!(mac.to_string(), "fa:16:3e:0a:bc:01");
        assert_eq!("FA-16-3E-0A-BC-01".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn parse_rejects_bad_strings() {
        for bad in [
            "",
            "fa:16:3e:0a:bc",
            "fa:16:3e:0a:bc:01:02",
            "fa:16:3e:0a:bc:zz",
            "fa::3e:0a:bc:01",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacError), "{bad}");
        }
    }

    #[test]
    fn address_kinds() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_multicast());
        assert!(MacAddr([0xfa, 0x16, 0x3e, 1, 2, 3]).is_unicast());
        assert!(MacAddr([0xfa, 0x16, 0x3e, 1, 2, 3]).is_local());
    }
}
