//! The EVB TLV of LLDP (802.1Qbg-2012 D.2.13, OUI 00-80-C2 subtype 0x0D), which negotiates
//! reflective relay and the ECP/VDP timers between a station and its bridge, and the older draft
//! 0.2 EVB TLV (OUI 00-1B-3F subtype 0) that lldpad still speaks.
//!
//! Both views cover the TLV's information string after the OUI and subtype (what
//! [`lldp::OrgTlv::info`](crate::lldp::OrgTlv) holds). Byte layouts: `shared/evb/PROTOCOL_NOTES.md`
//! sections 3 and 4, checked against lldpad captures.

use core::fmt;

use crate::{
    Error, Result,
    lldp::{OrgTlv, Oui, TlvWriter},
};

/// The OUI of the ratified EVB TLV: IEEE 802.1.
pub const OUI: Oui = Oui::IEEE_802_1;
/// The subtype of the ratified EVB TLV.
pub const SUBTYPE: u8 = 0x0d;
/// The OUI of the draft 0.2 EVB TLV (the 802.1Qbg working group's, 00-1B-3F).
pub const DRAFT_OUI: Oui = Oui([0x00, 0x1b, 0x3f]);
/// The subtype of the draft 0.2 EVB TLV.
pub const DRAFT_SUBTYPE: u8 = 0x00;

mod field {
    pub(super) const BRIDGE_STATUS: usize = 0;
    pub(super) const STATION_STATUS: usize = 1;
    pub(super) const R_RTE: usize = 2;
    pub(super) const MODE_RWD: usize = 3;
    pub(super) const RKA: usize = 4;
    pub(super) const END: usize = 5;
}

/// The length of the ratified EVB TLV's information string after OUI and subtype.
pub const INFO_LEN: usize = field::END;

/// Bridge status: the bridge supports VSI group IDs (BGID).
const BGID: u8 = 0x04;
/// Bridge status: the bridge can do reflective relay (RRCAP).
const RRCAP: u8 = 0x02;
/// Bridge status: reflective relay is on for this port (RRCTRL).
const RRCTRL: u8 = 0x01;
/// Station status: the station wants VSI group IDs (SGID).
const SGID: u8 = 0x08;
/// Station status: the station requests reflective relay (RRREQ).
const RRREQ: u8 = 0x04;
/// Station status: the reflective relay status bits (RRSTAT).
const RRSTAT: u8 = 0x03;
/// The "remote value in use" bit in front of RWD and RKA.
const ROL: u8 = 0x20;
/// A 5-bit exponent (RTE, RWD, RKA).
const EXPONENT: u8 = 0x1f;

code_point! {
    /// The role a port's EVB TLV announces (802.1Qbg-2012 D.2.13, two bits).
    pub struct EvbMode(u8) {
        /// EVB not supported.
        NOT_SUPPORTED = 0 => "none",
        /// An EVB bridge.
        BRIDGE = 1 => "bridge",
        /// An EVB station.
        STATION = 2 => "station",
    }
}

code_point! {
    /// The station's view of reflective relay (RRSTAT, two bits).
    pub struct RrStatus(u8) {
        /// Reflective relay is not enabled.
        NOT_ENABLED = 0 => "off",
        /// Reflective relay is enabled.
        ENABLED = 1 => "on",
        /// The station does not know yet (no bridge EVB TLV seen).
        UNKNOWN = 3 => "unknown",
    }
}

/// The bridge status octet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BridgeStatus {
    /// BGID: the bridge supports VSI group IDs.
    pub group_ids: bool,
    /// RRCAP: the bridge can do reflective relay.
    pub rr_capable: bool,
    /// RRCTRL: the bridge has switched reflective relay on for this port.
    pub rr_enabled: bool,
}

impl BridgeStatus {
    /// Reads the octet (the reserved bits are ignored).
    pub const fn from_octet(octet: u8) -> Self {
        Self {
            group_ids: octet & BGID != 0,
            rr_capable: octet & RRCAP != 0,
            rr_enabled: octet & RRCTRL != 0,
        }
    }

    /// The octet, reserved bits zero.
    pub const fn to_octet(self) -> u8 {
        (if self.group_ids { BGID } else { 0 })
            | (if self.rr_capable { RRCAP } else { 0 })
            | (if self.rr_enabled { RRCTRL } else { 0 })
    }
}

/// The station status octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StationStatus {
    /// SGID: the station wants VSI group IDs.
    pub group_ids: bool,
    /// RRREQ: the station requests reflective relay.
    pub rr_requested: bool,
    /// RRSTAT: whether the station sees reflective relay enabled.
    pub rr_status: RrStatus,
}

impl Default for StationStatus {
    fn default() -> Self {
        Self {
            group_ids: false,
            rr_requested: false,
            rr_status: RrStatus::NOT_ENABLED,
        }
    }
}

impl StationStatus {
    /// Reads the octet (the reserved bits are ignored).
    pub const fn from_octet(octet: u8) -> Self {
        Self {
            group_ids: octet & SGID != 0,
            rr_requested: octet & RRREQ != 0,
            rr_status: RrStatus(octet & RRSTAT),
        }
    }

    /// The octet, reserved bits zero (RRSTAT keeps its low two bits).
    pub const fn to_octet(self) -> u8 {
        (if self.group_ids { SGID } else { 0 })
            | (if self.rr_requested { RRREQ } else { 0 })
            | (self.rr_status.0 & RRSTAT)
    }
}

view! {
    /// A read/write view of the information string of a ratified EVB TLV.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the five octets, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < INFO_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The bridge status octet.
    pub fn bridge_status(&self) -> u8 {
        self.buffer.as_ref()[field::BRIDGE_STATUS]
    }

    /// The station status octet.
    pub fn station_status(&self) -> u8 {
        self.buffer.as_ref()[field::STATION_STATUS]
    }

    /// R: the most ECP retransmissions after the first (three bits).
    pub fn max_retries(&self) -> u8 {
        self.buffer.as_ref()[field::R_RTE] >> 5
    }

    /// RTE: the ECP retransmission exponent.
    pub fn rte(&self) -> u8 {
        self.buffer.as_ref()[field::R_RTE] & EXPONENT
    }

    /// The EVB mode (two bits).
    pub fn mode(&self) -> EvbMode {
        EvbMode(self.buffer.as_ref()[field::MODE_RWD] >> 6)
    }

    /// The ROL bit of RWD: the sender uses the remote RWD.
    pub fn rwd_remote(&self) -> bool {
        self.buffer.as_ref()[field::MODE_RWD] & ROL != 0
    }

    /// RWD: the VDP resource-wait-delay exponent.
    pub fn rwd(&self) -> u8 {
        self.buffer.as_ref()[field::MODE_RWD] & EXPONENT
    }

    /// The ROL bit of RKA: the sender uses the remote RKA.
    pub fn rka_remote(&self) -> bool {
        self.buffer.as_ref()[field::RKA] & ROL != 0
    }

    /// RKA: the VDP keep-alive exponent.
    pub fn rka(&self) -> u8 {
        self.buffer.as_ref()[field::RKA] & EXPONENT
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the bridge status octet.
    pub fn set_bridge_status(&mut self, value: u8) {
        self.buffer.as_mut()[field::BRIDGE_STATUS] = value;
    }

    /// Sets the station status octet.
    pub fn set_station_status(&mut self, value: u8) {
        self.buffer.as_mut()[field::STATION_STATUS] = value;
    }

    /// Sets R and RTE (R keeps its low three bits, RTE its low five).
    pub fn set_r_rte(&mut self, max_retries: u8, rte: u8) {
        self.buffer.as_mut()[field::R_RTE] = ((max_retries & 0x07) << 5) | (rte & EXPONENT);
    }

    /// Sets the mode, the ROL bit and RWD (each keeps its low bits).
    pub fn set_mode_rwd(&mut self, mode: EvbMode, remote: bool, rwd: u8) {
        self.buffer.as_mut()[field::MODE_RWD] =
            ((mode.0 & 0x03) << 6) | (if remote { ROL } else { 0 }) | (rwd & EXPONENT);
    }

    /// Sets the ROL bit and RKA (the two reserved bits become zero).
    pub fn set_rka(&mut self, remote: bool, rka: u8) {
        self.buffer.as_mut()[field::RKA] = (if remote { ROL } else { 0 }) | (rka & EXPONENT);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "evb ({err})"),
        }
    }
}

/// The meaning of a ratified EVB TLV.
///
/// R is three bits wide, RTE, RWD and RKA five: `emit` keeps only those low bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The bridge status (what the bridge sets; a station echoes the last one it received).
    pub bridge: BridgeStatus,
    /// The station status (what the station sets; a bridge echoes the last one it received).
    pub station: StationStatus,
    /// R: the most ECP retransmissions after the first.
    pub max_retries: u8,
    /// RTE: ECP waits 10 us x 2^RTE for an acknowledgement.
    pub rte: u8,
    /// Whether the sender is a bridge or a station.
    pub mode: EvbMode,
    /// ROL for RWD: the sender uses the value its peer advertised.
    pub rwd_remote: bool,
    /// RWD: a bridge answers a VDP request within 10 us x 2^RWD.
    pub rwd: u8,
    /// ROL for RKA: the sender uses the value its peer advertised.
    pub rka_remote: bool,
    /// RKA: a station refreshes each VSI every 10 us x 2^RKA.
    pub rka: u8,
}

impl Repr {
    /// Reads the information string; it must be exactly five octets ([`Error::BadLength`]
    /// otherwise, [`Error::Truncated`] when shorter). Reserved bits are ignored.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.buffer.as_ref().len() != INFO_LEN {
            return Err(Error::BadLength);
        }
        Ok(Self {
            bridge: BridgeStatus::from_octet(packet.bridge_status()),
            station: StationStatus::from_octet(packet.station_status()),
            max_retries: packet.max_retries(),
            rte: packet.rte(),
            mode: packet.mode(),
            rwd_remote: packet.rwd_remote(),
            rwd: packet.rwd(),
            rka_remote: packet.rka_remote(),
            rka: packet.rka(),
        })
    }

    /// The EVB TLV among an LLDPDU's organizationally specific TLVs: `None` when `org` is some
    /// other TLV, else the result of parsing it.
    pub fn from_org(org: &OrgTlv<'_>) -> Option<Result<Self>> {
        (org.oui == OUI && org.subtype == SUBTYPE)
            .then(|| Self::parse(&Packet::new_unchecked(org.info)))
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        INFO_LEN
    }

    /// Writes the information string into the first five bytes of the packet, reserved bits
    /// zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_bridge_status(self.bridge.to_octet());
        packet.set_station_status(self.station.to_octet());
        packet.set_r_rte(self.max_retries, self.rte);
        packet.set_mode_rwd(self.mode, self.rwd_remote, self.rwd);
        packet.set_rka(self.rka_remote, self.rka);
    }

    /// Appends the whole TLV (header, OUI, subtype, information) to an LLDPDU being written.
    pub fn write(&self, writer: &mut TlvWriter<'_>) -> Result<()> {
        let info = writer.reserve_org(OUI, SUBTYPE, INFO_LEN)?;
        self.emit(&mut Packet::new_unchecked(info));
        Ok(())
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, name: &'static str| if on { name } else { "" };
        let rol = |on: bool| if on { "*" } else { "" };
        write!(
            f,
            "evb {} bridge[{}{}{}] station[{}{}rr-{}] r {} rte {} rwd {}{} rka {}{}",
            self.mode,
            flag(self.bridge.group_ids, "bgid "),
            flag(self.bridge.rr_capable, "rrcap "),
            flag(self.bridge.rr_enabled, "rrctrl "),
            flag(self.station.group_ids, "sgid "),
            flag(self.station.rr_requested, "rrreq "),
            self.station.rr_status,
            self.max_retries,
            self.rte,
            self.rwd,
            rol(self.rwd_remote),
            self.rka,
            rol(self.rka_remote),
        )
    }
}

mod draft_field {
    use crate::Field;

    pub(super) const SUPPORTED_MODE: usize = 0;
    pub(super) const SUPPORTED_CAPS: usize = 1;
    pub(super) const CONFIGURED_MODE: usize = 2;
    pub(super) const CONFIGURED_CAPS: usize = 3;
    pub(super) const SUPPORTED_VSIS: Field = 4..6;
    pub(super) const CONFIGURED_VSIS: Field = 6..8;
    pub(super) const RTE: usize = 8;
    pub(super) const END: usize = 9;
}

/// The length of the draft 0.2 EVB TLV's information string after OUI and subtype.
pub const DRAFT_INFO_LEN: usize = draft_field::END;

/// Draft 0.2 forwarding mode bit: standard 802.1Q bridging.
pub const DRAFT_MODE_STANDARD: u8 = 0x80;
/// Draft 0.2 forwarding mode bit: reflective relay.
pub const DRAFT_MODE_REFLECTIVE_RELAY: u8 = 0x40;
/// Draft 0.2 capability bit: RTE.
pub const DRAFT_CAP_RTE: u8 = 0x04;
/// Draft 0.2 capability bit: ECP.
pub const DRAFT_CAP_ECP: u8 = 0x02;
/// Draft 0.2 capability bit: VDP.
pub const DRAFT_CAP_VDP: u8 = 0x01;

view! {
    /// A read/write view of the information string of a draft 0.2 EVB TLV.
    DraftPacket
}

impl<T: AsRef<[u8]>> DraftPacket<T> {
    /// Checks that the buffer holds the nine octets, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < DRAFT_INFO_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The supported forwarding modes (bit flags).
    pub fn supported_mode(&self) -> u8 {
        self.buffer.as_ref()[draft_field::SUPPORTED_MODE]
    }

    /// The supported capabilities (bit flags).
    pub fn supported_caps(&self) -> u8 {
        self.buffer.as_ref()[draft_field::SUPPORTED_CAPS]
    }

    /// The configured forwarding mode (bit flags).
    pub fn configured_mode(&self) -> u8 {
        self.buffer.as_ref()[draft_field::CONFIGURED_MODE]
    }

    /// The configured capabilities (bit flags).
    pub fn configured_caps(&self) -> u8 {
        self.buffer.as_ref()[draft_field::CONFIGURED_CAPS]
    }

    /// The number of VSIs supported.
    pub fn supported_vsis(&self) -> u16 {
        let bytes = &self.buffer.as_ref()[draft_field::SUPPORTED_VSIS];
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    /// The number of VSIs configured.
    pub fn configured_vsis(&self) -> u16 {
        let bytes = &self.buffer.as_ref()[draft_field::CONFIGURED_VSIS];
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    /// The retransmission exponent.
    pub fn rte(&self) -> u8 {
        self.buffer.as_ref()[draft_field::RTE]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DraftPacket<T> {
    /// Sets the four mode and capability octets.
    pub fn set_modes(&mut self, supported: (u8, u8), configured: (u8, u8)) {
        let buf = self.buffer.as_mut();
        buf[draft_field::SUPPORTED_MODE] = supported.0;
        buf[draft_field::SUPPORTED_CAPS] = supported.1;
        buf[draft_field::CONFIGURED_MODE] = configured.0;
        buf[draft_field::CONFIGURED_CAPS] = configured.1;
    }

    /// Sets the numbers of VSIs supported and configured.
    pub fn set_vsis(&mut self, supported: u16, configured: u16) {
        let buf = self.buffer.as_mut();
        buf[draft_field::SUPPORTED_VSIS].copy_from_slice(&supported.to_be_bytes());
        buf[draft_field::CONFIGURED_VSIS].copy_from_slice(&configured.to_be_bytes());
    }

    /// Sets the retransmission exponent.
    pub fn set_rte(&mut self, value: u8) {
        self.buffer.as_mut()[draft_field::RTE] = value;
    }
}

impl<T: AsRef<[u8]>> fmt::Display for DraftPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DraftRepr::parse(&DraftPacket::new_unchecked(self.buffer.as_ref())) {
            Ok(repr) => fmt::Display::fmt(&repr, f),
            Err(err) => write!(f, "evb-draft ({err})"),
        }
    }
}

/// The meaning of a draft 0.2 EVB TLV. Every bit is kept, so any value round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DraftRepr {
    /// Supported forwarding modes ([`DRAFT_MODE_STANDARD`], [`DRAFT_MODE_REFLECTIVE_RELAY`]).
    pub supported_mode: u8,
    /// Supported capabilities ([`DRAFT_CAP_RTE`], [`DRAFT_CAP_ECP`], [`DRAFT_CAP_VDP`]).
    pub supported_caps: u8,
    /// Configured forwarding mode.
    pub configured_mode: u8,
    /// Configured capabilities.
    pub configured_caps: u8,
    /// Number of VSIs supported.
    pub supported_vsis: u16,
    /// Number of VSIs configured.
    pub configured_vsis: u16,
    /// Retransmission exponent.
    pub rte: u8,
}

impl DraftRepr {
    /// Reads the information string; it must be exactly nine octets.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DraftPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.buffer.as_ref().len() != DRAFT_INFO_LEN {
            return Err(Error::BadLength);
        }
        Ok(Self {
            supported_mode: packet.supported_mode(),
            supported_caps: packet.supported_caps(),
            configured_mode: packet.configured_mode(),
            configured_caps: packet.configured_caps(),
            supported_vsis: packet.supported_vsis(),
            configured_vsis: packet.configured_vsis(),
            rte: packet.rte(),
        })
    }

    /// The draft EVB TLV among an LLDPDU's organizationally specific TLVs: `None` when `org`
    /// is some other TLV, else the result of parsing it.
    pub fn from_org(org: &OrgTlv<'_>) -> Option<Result<Self>> {
        (org.oui == DRAFT_OUI && org.subtype == DRAFT_SUBTYPE)
            .then(|| Self::parse(&DraftPacket::new_unchecked(org.info)))
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        DRAFT_INFO_LEN
    }

    /// Writes the information string into the first nine bytes of the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut DraftPacket<T>) {
        packet.set_modes(
            (self.supported_mode, self.supported_caps),
            (self.configured_mode, self.configured_caps),
        );
        packet.set_vsis(self.supported_vsis, self.configured_vsis);
        packet.set_rte(self.rte);
    }

    /// Appends the whole TLV to an LLDPDU being written.
    pub fn write(&self, writer: &mut TlvWriter<'_>) -> Result<()> {
        let info = writer.reserve_org(DRAFT_OUI, DRAFT_SUBTYPE, DRAFT_INFO_LEN)?;
        self.emit(&mut DraftPacket::new_unchecked(info));
        Ok(())
    }
}

impl fmt::Display for DraftRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "evb-draft mode {:#04x}/{:#04x} caps {:#04x}/{:#04x} vsis {}/{} rte {}",
            self.supported_mode,
            self.configured_mode,
            self.supported_caps,
            self.configured_caps,
            self.supported_vsis,
            self.configured_vsis,
            self.rte,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lldp::TlvIter;

    // lldpad as bridge answering lldpad as station (capture 02 frame 3): RRCAP|RRCTRL, the
    // station's 07 echoed, R 3 RTE 14, bridge mode with ROL RWD 20, ROL RKA 20.
    static BRIDGE_ANSWER: [u8; 5] = [0x03, 0x07, 0x6e, 0x74, 0x34];
    // The station's first TLV (capture 01): RRREQ, RRSTAT unknown, station mode.
    static STATION_FIRST: [u8; 5] = [0x00, 0x07, 0x6e, 0x94, 0x14];
    // The draft 0.2 station TLV after a bridge TLV (capture 06 frame 3).
    static DRAFT: [u8; 9] = [0x40, 0x07, 0x40, 0x07, 0x0c, 0xdf, 0x00, 0x00, 0x0f];

    fn bridge_answer() -> Repr {
        Repr {
            bridge: BridgeStatus {
                group_ids: false,
                rr_capable: true,
                rr_enabled: true,
            },
            station: StationStatus {
                group_ids: false,
                rr_requested: true,
                rr_status: RrStatus::UNKNOWN,
            },
            max_retries: 3,
            rte: 14,
            mode: EvbMode::BRIDGE,
            rwd_remote: true,
            rwd: 20,
            rka_remote: true,
            rka: 20,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&BRIDGE_ANSWER[..]).unwrap();
        assert_eq!(packet.bridge_status(), 0x03);
        assert_eq!(packet.station_status(), 0x07);
        assert_eq!((packet.max_retries(), packet.rte()), (3, 14));
        assert_eq!(packet.mode(), EvbMode::BRIDGE);
        assert_eq!((packet.rwd_remote(), packet.rwd()), (true, 20));
        assert_eq!((packet.rka_remote(), packet.rka()), (true, 20));
        let station = Packet::new_checked(&STATION_FIRST[..]).unwrap();
        assert_eq!(station.mode(), EvbMode::STATION);
        assert!(!station.rwd_remote());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 5];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_bridge_status(0x03);
        packet.set_station_status(0x07);
        packet.set_r_rte(3, 14);
        packet.set_mode_rwd(EvbMode::BRIDGE, true, 20);
        packet.set_rka(true, 20);
        assert_eq!(bytes, BRIDGE_ANSWER);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&BRIDGE_ANSWER[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(bridge_answer()));
        assert_eq!(
            packet.to_string(),
            "evb bridge bridge[rrcap rrctrl ] station[rrreq rr-unknown] r 3 rte 14 rwd 20* rka 20*"
        );
    }

    #[test]
    fn test_emit() {
        let mut bytes = [0xa5; 6];
        let repr = bridge_answer();
        assert_eq!(repr.buffer_len(), 5);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..5], BRIDGE_ANSWER);
        assert_eq!(bytes[5], 0xa5);
    }

    #[test]
    fn test_write_into_lldpdu() {
        let mut bytes = [0xa5; 12];
        let mut writer = TlvWriter::new(&mut bytes);
        bridge_answer().write(&mut writer).unwrap();
        assert_eq!(writer.len(), 11);
        assert_eq!(
            bytes[..11],
            [
                0xfe, 0x09, 0x00, 0x80, 0xc2, 0x0d, 0x03, 0x07, 0x6e, 0x74, 0x34
            ]
        );
        let tlv = TlvIter::new(&bytes[..11]).next().unwrap().unwrap();
        let org = tlv.org().unwrap();
        assert_eq!(Repr::from_org(&org), Some(Ok(bridge_answer())));
        assert_eq!(DraftRepr::from_org(&org), None);
        assert_eq!(org.to_string(), bridge_answer().to_string());
        let mut small = [0u8; 10];
        assert_eq!(
            bridge_answer().write(&mut TlvWriter::new(&mut small)),
            Err(Error::NoRoom)
        );
    }

    #[test]
    fn test_truncated_and_too_long() {
        assert_eq!(
            Packet::new_checked(&BRIDGE_ANSWER[..4]).unwrap_err(),
            Error::Truncated
        );
        let long = [0x03, 0x07, 0x6e, 0x74, 0x34, 0x00];
        let packet = Packet::new_checked(&long[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::BadLength));
        assert_eq!(packet.to_string(), "evb (bad length field)");
        let org = OrgTlv {
            oui: OUI,
            subtype: SUBTYPE,
            info: &long[..3],
        };
        assert_eq!(Repr::from_org(&org), Some(Err(Error::Truncated)));
    }

    #[test]
    fn test_reserved_bits_ignored_and_masked() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff];
        let repr = Repr::parse(&Packet::new_unchecked(&bytes[..])).unwrap();
        assert_eq!(repr.station.rr_status, RrStatus(3));
        assert_eq!(repr.mode, EvbMode(3));
        assert_eq!(repr.max_retries, 7);
        let mut out = [0u8; 5];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, [0x07, 0x0f, 0xff, 0xff, 0x3f]);
        let wide = Repr {
            max_retries: 0xff,
            rte: 0xff,
            ..repr
        };
        wide.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[2], 0xff);
    }

    #[test]
    fn test_draft_round_trip() {
        let packet = DraftPacket::new_checked(&DRAFT[..]).unwrap();
        let repr = DraftRepr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            DraftRepr {
                supported_mode: DRAFT_MODE_REFLECTIVE_RELAY,
                supported_caps: DRAFT_CAP_RTE | DRAFT_CAP_ECP | DRAFT_CAP_VDP,
                configured_mode: DRAFT_MODE_REFLECTIVE_RELAY,
                configured_caps: 0x07,
                supported_vsis: 3295,
                configured_vsis: 0,
                rte: 15,
            }
        );
        assert_eq!(
            repr.to_string(),
            "evb-draft mode 0x40/0x40 caps 0x07/0x07 vsis 3295/0 rte 15"
        );
        let mut out = [0xa5; 15];
        let mut writer = TlvWriter::new(&mut out);
        repr.write(&mut writer).unwrap();
        assert_eq!(out[..4], [0xfe, 0x0d, 0x00, 0x1b]);
        assert_eq!(out[4..6], [0x3f, 0x00]);
        assert_eq!(out[6..], DRAFT);
        assert_eq!(
            DraftPacket::new_checked(&DRAFT[..8]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            DraftPacket::new_unchecked(&DRAFT[..]).to_string(),
            repr.to_string()
        );
        assert_eq!(
            DraftPacket::new_unchecked(&[0u8; 10][..]).to_string(),
            "evb-draft (bad length field)"
        );
        let long = [0u8; 10];
        assert_eq!(
            DraftRepr::parse(&DraftPacket::new_unchecked(&long[..])),
            Err(Error::BadLength)
        );
        let mut bytes = [0xa5; 9];
        let mut packet = DraftPacket::new_unchecked(&mut bytes[..]);
        packet.set_modes((0x40, 0x07), (0x40, 0x07));
        packet.set_vsis(3295, 0);
        packet.set_rte(15);
        assert_eq!(bytes, DRAFT);
    }
}
