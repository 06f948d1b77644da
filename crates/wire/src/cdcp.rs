//! The CDCP TLV of LLDP (S-Channel Discovery and Configuration, 802.1Qbg-2012 D.2.14, OUI
//! 00-80-C2 subtype 0x0E): a role, S-component support, a channel capacity and up to 167
//! SCID/SVID pairs, the first always the default S-channel <1,1>.
//!
//! The view covers the information string after the OUI and subtype. Layout
//! (`shared/evb/PROTOCOL_NOTES.md` section 5; the 12+12-bit pair packing is the notes' reading,
//! matched by the TLV evbsim sent in capture 03):
//!
//! ```text
//! R rrr S rrr | rrrrrrrr | rrrr CCCC | CCCCCCCC | {SCID(12) SVID(12)} x N
//! ```

use core::fmt;

use crate::{
    Error, Result,
    lldp::{ORG_INFO_MAX, OrgTlv, Oui, TlvWriter},
};

/// The OUI of the CDCP TLV: IEEE 802.1.
pub const OUI: Oui = Oui::IEEE_802_1;
/// The subtype of the CDCP TLV.
pub const SUBTYPE: u8 = 0x0e;
/// The length of the fixed part of the information string (role, SComp, ChnCap).
pub const HEADER_LEN: usize = field::PAIRS.start;
/// The length of one SCID/SVID pair.
pub const PAIR_LEN: usize = 3;
/// The most pairs one TLV holds, the default <1,1> included: (511 - 4 - 4) / 3.
pub const MAX_PAIRS: usize = (ORG_INFO_MAX - HEADER_LEN) / PAIR_LEN;
/// The SCID of the default S-channel, which always has SVID 1.
pub const DEFAULT_SCID: u16 = 1;
/// The SVID of the default S-channel.
pub const DEFAULT_SVID: u16 = 1;
/// The largest value of a 12-bit SCID, SVID or ChnCap field.
pub const MAX_12_BIT: u16 = 0x0fff;

mod field {
    use crate::{Field, Rest};

    pub(super) const ROLE_SCOMP: usize = 0;
    pub(super) const CHN_CAP: Field = 2..4;
    pub(super) const PAIRS: Rest = 4..;
}

/// Role bit: set by a station, clear from a bridge.
const ROLE_STATION: u8 = 0x80;
/// SComp bit: the sender has an S-VLAN component.
const SCOMP: u8 = 0x08;

/// Who sent a CDCP TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The bridge side of the link (role bit 0).
    Bridge,
    /// The station side of the link (role bit 1).
    Station,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bridge => "bridge",
            Self::Station => "station",
        })
    }
}

/// One S-channel: its ID and the S-VLAN that carries it (0 in a station's request: "assign").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    /// The S-channel ID (12 bits).
    pub scid: u16,
    /// The S-VLAN ID (12 bits); 0 means none assigned yet.
    pub svid: u16,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{},{}>", self.scid, self.svid)
    }
}

view! {
    /// A read/write view of the information string of a CDCP TLV.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed part, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        if self.buffer.as_ref()[field::ROLE_SCOMP] & ROLE_STATION != 0 {
            Role::Station
        } else {
            Role::Bridge
        }
    }

    /// The SComp bit.
    pub fn scomp(&self) -> bool {
        self.buffer.as_ref()[field::ROLE_SCOMP] & SCOMP != 0
    }

    /// ChnCap: the most S-channels the sender supports (12 bits).
    pub fn chn_cap(&self) -> u16 {
        let bytes = &self.buffer.as_ref()[field::CHN_CAP];
        u16::from_be_bytes([bytes[0], bytes[1]]) & MAX_12_BIT
    }

    /// The number of whole pairs after the fixed part.
    pub fn pair_count(&self) -> usize {
        (self.buffer.as_ref().len() - HEADER_LEN) / PAIR_LEN
    }

    /// The `index`th pair, `None` past the last whole one.
    pub fn pair(&self, index: usize) -> Option<Channel> {
        let start = HEADER_LEN + index.checked_mul(PAIR_LEN)?;
        match *self
            .buffer
            .as_ref()
            .get(start..start.checked_add(PAIR_LEN)?)?
        {
            [a, b, c] => Some(Channel {
                scid: (u16::from(a) << 4) | u16::from(b >> 4),
                svid: (u16::from(b & 0x0f) << 8) | u16::from(c),
            }),
            _ => None,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the first four octets: role, SComp and ChnCap (12 bits kept), reserved bits zero.
    pub fn set_header(&mut self, role: Role, scomp: bool, chn_cap: u16) {
        let buf = self.buffer.as_mut();
        buf[field::ROLE_SCOMP] = (if role == Role::Station {
            ROLE_STATION
        } else {
            0
        }) | (if scomp { SCOMP } else { 0 });
        buf[1] = 0;
        buf[field::CHN_CAP].copy_from_slice(&(chn_cap & MAX_12_BIT).to_be_bytes());
    }

    /// Sets the `index`th pair (12 bits of each kept).
    ///
    /// # Panics
    /// If the buffer does not reach the end of that pair.
    pub fn set_pair(&mut self, index: usize, channel: Channel) {
        let start = HEADER_LEN + index * PAIR_LEN;
        let [scid_high, scid_low] = (channel.scid & MAX_12_BIT).to_be_bytes();
        let [svid_high, svid_low] = (channel.svid & MAX_12_BIT).to_be_bytes();
        self.buffer.as_mut()[start..start + PAIR_LEN].copy_from_slice(&[
            (scid_high << 4) | (scid_low >> 4),
            (scid_low << 4) | svid_high,
            svid_low,
        ]);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "cdcp ({err})"),
        }
    }
}

/// The meaning of a CDCP TLV.
///
/// The default S-channel <1,1> is implied: `parse` requires it first and leaves it out of
/// `channels`, `emit` always writes it first. ChnCap, SCIDs and SVIDs are 12 bits wide; `emit`
/// keeps only those bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Who sent the TLV.
    pub role: Role,
    /// The sender has an S-VLAN component.
    pub scomp: bool,
    /// The most S-channels the sender supports, the default one included.
    pub chn_cap: u16,
    /// The S-channels after the default one, in wire order (at most `MAX_PAIRS - 1`).
    pub channels: Vec<Channel>,
}

impl Repr {
    /// Reads the information string.
    ///
    /// Refuses pair bytes that are not a whole number of pairs, and more than [`MAX_PAIRS`]
    /// pairs, which no TLV can hold ([`Error::BadLength`]); a TLV with no pair at all
    /// ([`Error::Truncated`]); and one whose first pair is not the default <1,1>
    /// ([`Error::Unsupported`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        let pairs_len = packet.buffer.as_ref().len() - HEADER_LEN;
        if !pairs_len.is_multiple_of(PAIR_LEN) || packet.pair_count() > MAX_PAIRS {
            return Err(Error::BadLength);
        }
        let default = packet.pair(0).ok_or(Error::Truncated)?;
        if default
            != (Channel {
                scid: DEFAULT_SCID,
                svid: DEFAULT_SVID,
            })
        {
            return Err(Error::Unsupported);
        }
        let channels = (1..packet.pair_count())
            .filter_map(|i| packet.pair(i))
            .collect();
        Ok(Self {
            role: packet.role(),
            scomp: packet.scomp(),
            chn_cap: packet.chn_cap(),
            channels,
        })
    }

    /// The CDCP TLV among an LLDPDU's organizationally specific TLVs: `None` when `org` is some
    /// other TLV, else the result of parsing it.
    pub fn from_org(org: &OrgTlv<'_>) -> Option<Result<Self>> {
        (org.oui == OUI && org.subtype == SUBTYPE)
            .then(|| Self::parse(&Packet::new_unchecked(org.info)))
    }

    /// The number of bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + (1 + self.channels.len()) * PAIR_LEN
    }

    /// Writes the information string into the first `buffer_len()` bytes of the packet.
    ///
    /// Refuses, writing nothing, more than `MAX_PAIRS - 1` channels after the default one
    /// ([`Error::BadLength`]: the TLV's 9-bit length cannot hold them) and a buffer shorter
    /// than `buffer_len()` ([`Error::NoRoom`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.channels.len() >= MAX_PAIRS {
            return Err(Error::BadLength);
        }
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::NoRoom);
        }
        packet.set_header(self.role, self.scomp, self.chn_cap);
        let default = Channel {
            scid: DEFAULT_SCID,
            svid: DEFAULT_SVID,
        };
        for (index, channel) in core::iter::once(&default).chain(&self.channels).enumerate() {
            packet.set_pair(index, *channel);
        }
        Ok(())
    }

    /// Appends the whole TLV (header, OUI, subtype, information) to an LLDPDU being written.
    pub fn write(&self, writer: &mut TlvWriter<'_>) -> Result<()> {
        if self.channels.len() >= MAX_PAIRS {
            return Err(Error::BadLength);
        }
        let info = writer.reserve_org(OUI, SUBTYPE, self.buffer_len())?;
        self.emit(&mut Packet::new_unchecked(info))
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cdcp {}{} chncap {} <1,1>",
            self.role,
            if self.scomp { " scomp" } else { "" },
            self.chn_cap
        )?;
        for channel in &self.channels {
            write!(f, " {channel}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lldp::TlvIter;

    // evbsim's bridge TLV in capture 03 frame 1: bridge, SComp, ChnCap 4, <1,1> <2,100>.
    static INFO: [u8; 10] = [0x08, 0x00, 0x00, 0x04, 0x00, 0x10, 0x01, 0x00, 0x20, 0x64];

    fn repr() -> Repr {
        Repr {
            role: Role::Bridge,
            scomp: true,
            chn_cap: 4,
            channels: vec![Channel { scid: 2, svid: 100 }],
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&INFO[..]).unwrap();
        assert_eq!(packet.role(), Role::Bridge);
        assert!(packet.scomp());
        assert_eq!(packet.chn_cap(), 4);
        assert_eq!(packet.pair_count(), 2);
        assert_eq!(packet.pair(0), Some(Channel { scid: 1, svid: 1 }));
        assert_eq!(packet.pair(1), Some(Channel { scid: 2, svid: 100 }));
        assert_eq!(packet.pair(2), None);
        assert_eq!(packet.pair(usize::MAX), None);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 10];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_header(Role::Bridge, true, 4);
        packet.set_pair(0, Channel { scid: 1, svid: 1 });
        packet.set_pair(1, Channel { scid: 2, svid: 100 });
        assert_eq!(bytes, INFO);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&INFO[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(repr()));
        assert_eq!(
            packet.to_string(),
            "cdcp bridge scomp chncap 4 <1,1> <2,100>"
        );
    }

    #[test]
    fn test_emit() {
        let repr = repr();
        assert_eq!(repr.buffer_len(), 10);
        let mut bytes = [0xa5; 11];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes[..10], INFO);
        assert_eq!(bytes[10], 0xa5);
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..9])),
            Err(Error::NoRoom)
        );
    }

    #[test]
    fn test_station_request_and_12_bit_fields() {
        let repr = Repr {
            role: Role::Station,
            scomp: false,
            chn_cap: 0x0abc,
            channels: vec![
                Channel {
                    scid: 0x0fff,
                    svid: 0,
                },
                Channel {
                    scid: 3,
                    svid: 0x0fed,
                },
            ],
        };
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(
            bytes,
            [
                0x80, 0x00, 0x0a, 0xbc, 0x00, 0x10, 0x01, 0xff, 0xf0, 0x00, 0x00, 0x3f, 0xed
            ]
        );
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Ok(repr));
    }

    #[test]
    fn test_write_into_lldpdu() {
        let mut bytes = [0xa5; 16];
        let mut writer = TlvWriter::new(&mut bytes);
        repr().write(&mut writer).unwrap();
        assert_eq!(writer.len(), 16);
        assert_eq!(
            bytes,
            [
                0xfe, 0x0e, 0x00, 0x80, 0xc2, 0x0e, 0x08, 0x00, 0x00, 0x04, 0x00, 0x10, 0x01, 0x00,
                0x20, 0x64
            ]
        );
        let org = TlvIter::new(&bytes).next().unwrap().unwrap().org().unwrap();
        assert_eq!(Repr::from_org(&org), Some(Ok(repr())));
        assert_eq!(org.to_string(), repr().to_string());
    }

    #[test]
    fn test_167_pairs_fit_168_do_not() {
        let mut repr = repr();
        repr.channels = (2..2 + 166).map(|scid| Channel { scid, svid: 0 }).collect();
        assert_eq!(MAX_PAIRS, 167);
        let mut bytes = [0u8; 600];
        let mut writer = TlvWriter::new(&mut bytes);
        repr.write(&mut writer).unwrap();
        assert_eq!(writer.len(), 2 + 4 + 4 + 167 * 3);
        let org = TlvIter::new(writer.written())
            .next()
            .unwrap()
            .unwrap()
            .org()
            .unwrap();
        assert_eq!(Repr::from_org(&org), Some(Ok(repr.clone())));
        repr.channels.push(Channel { scid: 200, svid: 0 });
        let mut writer = TlvWriter::new(&mut bytes);
        assert_eq!(repr.write(&mut writer), Err(Error::BadLength));
        assert!(writer.is_empty());
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut [0u8; 600][..])),
            Err(Error::BadLength)
        );
        // 168 pairs handed to the view directly (no TLV length to stop them) are refused too:
        // what parses must emit (found by `cargo fuzz run -s none cdcp`).
        let mut info = vec![0u8; HEADER_LEN + 168 * PAIR_LEN];
        info[HEADER_LEN..HEADER_LEN + PAIR_LEN].copy_from_slice(&[0x00, 0x10, 0x01]);
        let packet = Packet::new_checked(&info[..]).unwrap();
        assert_eq!(packet.pair_count(), 168);
        assert_eq!(Repr::parse(&packet), Err(Error::BadLength));
        let packet = Packet::new_checked(&info[..info.len() - PAIR_LEN]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap().channels.len(), 166);
    }

    #[test]
    fn test_refused() {
        assert_eq!(
            Packet::new_checked(&INFO[..3]).unwrap_err(),
            Error::Truncated
        );
        // No pair at all.
        let packet = Packet::new_checked(&INFO[..4]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Truncated));
        // A torn pair.
        for len in [5, 6, 8, 9] {
            let packet = Packet::new_checked(&INFO[..len]).unwrap();
            assert_eq!(Repr::parse(&packet), Err(Error::BadLength), "{len}");
        }
        // The default channel is not first.
        let mut bytes = INFO;
        bytes.swap(4, 7);
        bytes.swap(5, 8);
        bytes.swap(6, 9);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
        assert_eq!(packet.to_string(), "cdcp (unsupported)");
    }
}
