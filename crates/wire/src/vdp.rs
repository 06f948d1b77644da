//! VDP data units (VSI Discovery and Configuration Protocol, 802.1Qbg-2012 clause 41), the
//! payload of an ECP request with subtype 1: a VSI Manager ID TLV, then VSI TLVs (one per
//! request in practice) and organizationally defined TLVs, optionally an End TLV.
//!
//! The TLV header is LLDP's (7-bit type, 9-bit length), so [`crate::lldp::TlvIter`] reads it.
//! A VSI TLV's type is its mode (pre-associate, pre-associate with resource reservation,
//! associate, de-associate); its value, which [`VsiPacket`] views:
//!
//! ```text
//! status(1) | type id(3) | type version(1) | id format(1) | VSI id(16) | filter format(1)
//!   | entry count(2) | entries (2, 8, 6 or 12 bytes each)
//! ```
//! Layouts and lldpad's structural rules: `shared/evb/PROTOCOL_NOTES.md` section 7.

use core::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use crate::{
    Error, MacAddr, Result,
    lldp::{self, TLV_DATA_MAX, TlvIter, TlvWriter},
};

code_point! {
    /// The type of a VDP TLV (802.1Qbg-2012 Table 41-1).
    pub struct TlvType(u8) {
        /// End of VDPDU (optional; lldpad never sends one).
        END = 0 => "end",
        /// Pre-Associate VSI TLV.
        PRE_ASSOCIATE = 1 => "preassoc",
        /// Pre-Associate with Resource Reservation VSI TLV.
        PRE_ASSOCIATE_RR = 2 => "preassoc-rr",
        /// Associate VSI TLV.
        ASSOCIATE = 3 => "assoc",
        /// De-Associate VSI TLV.
        DEASSOCIATE = 4 => "deassoc",
        /// VSI Manager ID TLV: 16 octets, first in every VDPDU.
        MANAGER_ID = 5 => "mgrid",
        /// Organizationally defined TLV: OUI and data.
        ORGANIZATION_SPECIFIC = 127 => "org",
    }
}

/// What a VSI TLV asks for (its TLV type), in the order a VSI may move through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Reserve nothing yet; let the bridge check the VSI type (type 1).
    PreAssociate,
    /// Pre-associate and reserve the bridge's resources (type 2).
    PreAssociateWithRr,
    /// Let the VSI's traffic in (type 3).
    Associate,
    /// Withdraw the VSI (type 4).
    Deassociate,
}

impl Mode {
    /// Every mode, in order.
    pub const ALL: [Self; 4] = [
        Self::PreAssociate,
        Self::PreAssociateWithRr,
        Self::Associate,
        Self::Deassociate,
    ];

    /// The mode a TLV type stands for, `None` for a type that is not a VSI TLV.
    pub const fn from_tlv_type(kind: TlvType) -> Option<Self> {
        match kind.0 {
            1 => Some(Self::PreAssociate),
            2 => Some(Self::PreAssociateWithRr),
            3 => Some(Self::Associate),
            4 => Some(Self::Deassociate),
            _ => None,
        }
    }

    /// The TLV type that carries this mode.
    pub const fn tlv_type(self) -> TlvType {
        match self {
            Self::PreAssociate => TlvType::PRE_ASSOCIATE,
            Self::PreAssociateWithRr => TlvType::PRE_ASSOCIATE_RR,
            Self::Associate => TlvType::ASSOCIATE,
            Self::Deassociate => TlvType::DEASSOCIATE,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.tlv_type(), f)
    }
}

code_point! {
    /// How the 16-octet VSI ID is to be read (802.1Qbg-2012 Table 41-3).
    pub struct VsiIdFormat(u8) {
        /// An IPv4 address in the last four octets, IPv4-mapped style.
        IPV4 = 1 => "ipv4",
        /// An IPv6 address.
        IPV6 = 2 => "ipv6",
        /// A MAC address in the last six octets.
        MAC = 3 => "mac",
        /// Locally defined.
        LOCAL = 4 => "local",
        /// An RFC 4122 UUID.
        UUID = 5 => "uuid",
    }
}

code_point! {
    /// The shape of a VSI TLV's filter entries (802.1Qbg-2012 Table 41-4).
    pub struct FilterFormat(u8) {
        /// A VID word per entry.
        VID = 1 => "vid",
        /// A MAC address and a VID word per entry.
        MAC_VID = 2 => "mac-vid",
        /// A 32-bit group ID and a VID word per entry.
        GROUP_VID = 3 => "group-vid",
        /// A group ID, a MAC address and a VID word per entry.
        GROUP_MAC_VID = 4 => "group-mac-vid",
    }
}

impl FilterFormat {
    /// The length of one entry, `None` for a format this crate does not know.
    pub const fn entry_len(self) -> Option<usize> {
        match self.0 {
            1 => Some(2),
            2 => Some(8),
            3 => Some(6),
            4 => Some(12),
            _ => None,
        }
    }

    /// True for the formats that carry group IDs (usable only when both sides negotiated them).
    pub const fn has_group_ids(self) -> bool {
        self.0 == Self::GROUP_VID.0 || self.0 == Self::GROUP_MAC_VID.0
    }
}

code_point! {
    /// The error code in the low four bits of a response's status (802.1Qbg-2012 Table 41-2).
    pub struct Reason(u8) {
        /// The request succeeded.
        SUCCESS = 0 => "success",
        /// The request was not understood.
        INVALID_FORMAT = 1 => "invalid-format",
        /// The bridge lacks the resources.
        INSUFFICIENT_RESOURCES = 2 => "insufficient-resources",
        /// The bridge could not reach the VSI manager (the VSI type database).
        VSI_MANAGER_UNREACHABLE = 3 => "vsi-manager-unreachable",
        /// Any other failure.
        OTHER_FAILURE = 4 => "other-failure",
        /// A VID, group ID or MAC address is not acceptable.
        INVALID_FILTER = 5 => "invalid-vid-group-mac",
    }
}

/// Status bit 6: the TLV is a response (bridge to station).
const STATUS_RESPONSE: u8 = 0x40;
/// Status bit 5: S-bit in a request (migrating away), Keep in a response.
const STATUS_S_KEEP: u8 = 0x20;
/// Status bit 4: M-bit in a request (migrating here), Hard error in a response.
const STATUS_M_HARD: u8 = 0x10;
/// Status bits 3-0: the error code of a response.
const STATUS_REASON: u8 = 0x0f;

/// The status octet of a VSI TLV: a request (or an unsolicited bridge De-Associate) or a
/// response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Bit 6 clear: a station's request, or a bridge's unsolicited De-Associate.
    Request {
        /// S-bit: the VSI is migrating away from (suspended on) this station.
        migrate_from: bool,
        /// M-bit: the VSI is migrating to this station.
        migrate_to: bool,
    },
    /// Bit 6 set: a bridge's answer to a request.
    Response {
        /// Keep: the request was refused; the VSI keeps its previous state.
        keep: bool,
        /// Hard error: retrying will not help.
        hard_error: bool,
        /// The error code ([`Reason::SUCCESS`] when the request succeeded).
        reason: Reason,
    },
}

impl Status {
    /// A request with no migration hints.
    pub const REQUEST: Self = Self::Request {
        migrate_from: false,
        migrate_to: false,
    };
    /// A successful response.
    pub const SUCCESS: Self = Self::Response {
        keep: false,
        hard_error: false,
        reason: Reason::SUCCESS,
    };

    /// Reads the octet. The reserved bit 7, and the low four bits of a request, are ignored.
    pub const fn from_octet(octet: u8) -> Self {
        if octet & STATUS_RESPONSE == 0 {
            Self::Request {
                migrate_from: octet & STATUS_S_KEEP != 0,
                migrate_to: octet & STATUS_M_HARD != 0,
            }
        } else {
            Self::Response {
                keep: octet & STATUS_S_KEEP != 0,
                hard_error: octet & STATUS_M_HARD != 0,
                reason: Reason(octet & STATUS_REASON),
            }
        }
    }

    /// The octet (a reason keeps its low four bits).
    pub const fn to_octet(self) -> u8 {
        const fn flag(on: bool, bit: u8) -> u8 {
            if on { bit } else { 0 }
        }
        match self {
            Self::Request {
                migrate_from,
                migrate_to,
            } => flag(migrate_from, STATUS_S_KEEP) | flag(migrate_to, STATUS_M_HARD),
            Self::Response {
                keep,
                hard_error,
                reason,
            } => {
                STATUS_RESPONSE
                    | flag(keep, STATUS_S_KEEP)
                    | flag(hard_error, STATUS_M_HARD)
                    | (reason.0 & STATUS_REASON)
            }
        }
    }

    /// True for a response.
    pub const fn is_response(self) -> bool {
        matches!(self, Self::Response { .. })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Request {
                migrate_from,
                migrate_to,
            } => {
                f.write_str("req")?;
                if migrate_to {
                    f.write_str(" M")?;
                }
                if migrate_from {
                    f.write_str(" S")?;
                }
                Ok(())
            }
            Self::Response {
                keep,
                hard_error,
                reason,
            } => {
                write!(f, "resp {reason}")?;
                if keep {
                    f.write_str(" keep")?;
                }
                if hard_error {
                    f.write_str(" hard")?;
                }
                Ok(())
            }
        }
    }
}

/// A filter entry's VID word: PS (bit 15), PCP (bits 14-12), VID (bits 11-0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vlan {
    /// PS: the PCP is significant (a bridge must not change it).
    pub ps: bool,
    /// Priority code point (three bits).
    pub pcp: u8,
    /// VLAN ID (twelve bits); 0 in a request asks the bridge to assign one.
    pub vid: u16,
}

impl Vlan {
    /// A VID word with PS and PCP clear.
    pub const fn new(vid: u16) -> Self {
        Self {
            ps: false,
            pcp: 0,
            vid,
        }
    }

    /// Reads a VID word.
    pub const fn from_word(word: u16) -> Self {
        Self {
            ps: word & 0x8000 != 0,
            pcp: (word.to_be_bytes()[0] >> 4) & 0x07,
            vid: word & 0x0fff,
        }
    }

    /// The VID word (PCP keeps three bits, VID twelve).
    pub const fn to_word(self) -> u16 {
        (if self.ps { 0x8000 } else { 0 })
            | (((self.pcp & 0x07) as u16) << 12)
            | (self.vid & 0x0fff)
    }
}

impl fmt::Display for Vlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vid {}", self.vid)?;
        if self.pcp != 0 || self.ps {
            write!(f, " pcp {}{}", self.pcp, if self.ps { " ps" } else { "" })?;
        }
        Ok(())
    }
}

/// The filter entries of a VSI TLV, in one of the four formats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filters {
    /// VID only (format 1).
    Vid(Vec<Vlan>),
    /// MAC address and VID (format 2).
    MacVid(Vec<(MacAddr, Vlan)>),
    /// Group ID and VID (format 3).
    GroupVid(Vec<(u32, Vlan)>),
    /// Group ID, MAC address and VID (format 4).
    GroupMacVid(Vec<(u32, MacAddr, Vlan)>),
}

impl Filters {
    /// The filter info format.
    pub const fn format(&self) -> FilterFormat {
        match self {
            Self::Vid(_) => FilterFormat::VID,
            Self::MacVid(_) => FilterFormat::MAC_VID,
            Self::GroupVid(_) => FilterFormat::GROUP_VID,
            Self::GroupMacVid(_) => FilterFormat::GROUP_MAC_VID,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        match self {
            Self::Vid(entries) => entries.len(),
            Self::MacVid(entries) => entries.len(),
            Self::GroupVid(entries) => entries.len(),
            Self::GroupMacVid(entries) => entries.len(),
        }
    }

    /// True when there is no entry (a VSI TLV needs at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `index`th entry as (group ID, MAC address, VID word), with what the format lacks
    /// as `None`.
    pub fn entry(&self, index: usize) -> Option<(Option<u32>, Option<MacAddr>, Vlan)> {
        match self {
            Self::Vid(entries) => entries.get(index).map(|&vlan| (None, None, vlan)),
            Self::MacVid(entries) => entries
                .get(index)
                .map(|&(mac, vlan)| (None, Some(mac), vlan)),
            Self::GroupVid(entries) => entries
                .get(index)
                .map(|&(group, vlan)| (Some(group), None, vlan)),
            Self::GroupMacVid(entries) => entries
                .get(index)
                .map(|&(group, mac, vlan)| (Some(group), Some(mac), vlan)),
        }
    }

    /// The VID words, in order.
    pub fn vlans(&self) -> impl Iterator<Item = Vlan> + '_ {
        (0..self.len()).filter_map(|index| self.entry(index).map(|(_, _, vlan)| vlan))
    }

    /// The MAC addresses, in order (none for the formats without them).
    pub fn macs(&self) -> impl Iterator<Item = MacAddr> + '_ {
        (0..self.len()).filter_map(|index| self.entry(index)?.1)
    }

    /// Calls `f` on every VID word, in order, to change it in place.
    pub fn for_each_vlan_mut(&mut self, mut f: impl FnMut(&mut Vlan)) {
        match self {
            Self::Vid(entries) => entries.iter_mut().for_each(f),
            Self::MacVid(entries) => entries.iter_mut().for_each(|(_, vlan)| f(vlan)),
            Self::GroupVid(entries) => entries.iter_mut().for_each(|(_, vlan)| f(vlan)),
            Self::GroupMacVid(entries) => entries.iter_mut().for_each(|(_, _, vlan)| f(vlan)),
        }
    }

    /// Reads `count` entries of `format` from `bytes`, which must hold exactly that many.
    fn parse(format: FilterFormat, count: usize, bytes: &[u8]) -> Result<Self> {
        let entry_len = format.entry_len().ok_or(Error::Unsupported)?;
        if count == 0 || bytes.len() != count * entry_len {
            return Err(Error::BadLength);
        }
        let entries = bytes.chunks_exact(entry_len);
        let word = |b: &[u8]| Vlan::from_word(u16::from_be_bytes([b[0], b[1]]));
        let group = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Ok(match format {
            FilterFormat::VID => Self::Vid(entries.map(word).collect()),
            FilterFormat::MAC_VID => Self::MacVid(
                entries
                    .map(|e| (MacAddr::from_bytes(e), word(&e[6..])))
                    .collect(),
            ),
            FilterFormat::GROUP_VID => {
                Self::GroupVid(entries.map(|e| (group(e), word(&e[4..]))).collect())
            }
            _ => Self::GroupMacVid(
                entries
                    .map(|e| (group(e), MacAddr::from_bytes(&e[4..]), word(&e[10..])))
                    .collect(),
            ),
        })
    }

    /// The number of bytes the entries take.
    fn buffer_len(&self) -> usize {
        // Every known format has an entry length.
        self.len() * self.format().entry_len().unwrap_or(0)
    }

    /// Writes the entries into `out`, which is `buffer_len()` bytes long.
    fn emit(&self, out: &mut [u8]) {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        for index in 0..self.len() {
            if let Some((group, mac, vlan)) = self.entry(index) {
                if let Some(group) = group {
                    put(&group.to_be_bytes());
                }
                if let Some(mac) = mac {
                    put(&mac.0);
                }
                put(&vlan.to_word().to_be_bytes());
            }
        }
    }
}

impl fmt::Display for Filters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [", self.format())?;
        for index in 0..self.len() {
            let Some((group, mac, vlan)) = self.entry(index) else {
                break;
            };
            if index > 0 {
                f.write_str(", ")?;
            }
            if let Some(group) = group {
                write!(f, "group {group} ")?;
            }
            if let Some(mac) = mac {
                write!(f, "{mac} ")?;
            }
            write!(f, "{vlan}")?;
        }
        f.write_str("]")
    }
}

/// A 16-octet identifier: a VSI Manager ID or a VSI ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id16(pub [u8; 16]);

impl Id16 {
    /// An ID from a short name: its bytes left-aligned, zero-padded (vdptool's `mgrid2=`
    /// form); `None` when the name is longer than 16 bytes.
    pub fn from_name(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        let mut id = [0; 16];
        id.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self(id))
    }

    /// An ID that holds a MAC address in its last six octets.
    pub fn from_mac(mac: MacAddr) -> Self {
        let mut id = [0; 16];
        id[10..].copy_from_slice(&mac.0);
        Self(id)
    }

    /// The ID shown the way `format` reads it.
    pub const fn display(&self, format: VsiIdFormat) -> impl fmt::Display + '_ {
        IdDisplay(*self, format)
    }
}

impl fmt::Display for Id16 {
    /// Printable ASCII padded with zeros as text (a name), anything else in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        let (text, padding) = self.0.split_at(end);
        if !text.is_empty()
            && text.iter().all(|b| b.is_ascii_graphic())
            && padding.iter().all(|&b| b == 0)
        {
            // All bytes are ASCII, so this cannot fail.
            return f.write_str(core::str::from_utf8(text).unwrap_or_default());
        }
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A VSI ID shown according to its format.
struct IdDisplay(Id16, VsiIdFormat);

impl fmt::Display for IdDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &(self.0).0;
        match self.1 {
            VsiIdFormat::IPV4 => {
                let [.., a, b, c, d] = *bytes;
                write!(f, "{}", Ipv4Addr::new(a, b, c, d))
            }
            VsiIdFormat::IPV6 => write!(f, "{}", Ipv6Addr::from(*bytes)),
            VsiIdFormat::MAC => write!(f, "{}", MacAddr::from_bytes(&bytes[10..])),
            VsiIdFormat::UUID => {
                for (index, byte) in bytes.iter().enumerate() {
                    if matches!(index, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            _ => {
                for byte in bytes {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

mod field {
    use crate::{Field, Rest};

    pub(super) const STATUS: usize = 0;
    pub(super) const TYPE_ID: Field = 1..4;
    pub(super) const TYPE_VERSION: usize = 4;
    pub(super) const ID_FORMAT: usize = 5;
    pub(super) const ID: Field = 6..22;
    pub(super) const FILTER_FORMAT: usize = 22;
    pub(super) const ENTRY_COUNT: Field = 23..25;
    pub(super) const ENTRIES: Rest = 25..;
}

/// The length of a VSI TLV value before its filter entries.
pub const VSI_HEADER_LEN: usize = field::ENTRIES.start;
/// The length of the VSI Manager ID TLV's value.
pub const MANAGER_ID_LEN: usize = 16;
/// The largest VSI type ID (24 bits).
pub const MAX_TYPE_ID: u32 = 0x00ff_ffff;

view! {
    /// A read/write view of the value of a VSI TLV (after the 2-byte TLV header).
    VsiPacket
}

impl<T: AsRef<[u8]>> VsiPacket<T> {
    /// Checks that the buffer holds the fixed fields, so no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VSI_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The status octet.
    pub fn status(&self) -> u8 {
        self.buffer.as_ref()[field::STATUS]
    }

    /// The VSI type ID (24 bits).
    pub fn type_id(&self) -> u32 {
        let bytes = &self.buffer.as_ref()[field::TYPE_ID];
        u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
    }

    /// The VSI type version.
    pub fn type_version(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE_VERSION]
    }

    /// The VSI ID format.
    pub fn id_format(&self) -> VsiIdFormat {
        VsiIdFormat(self.buffer.as_ref()[field::ID_FORMAT])
    }

    /// The VSI ID.
    pub fn id(&self) -> Id16 {
        let mut id = [0; 16];
        id.copy_from_slice(&self.buffer.as_ref()[field::ID]);
        Id16(id)
    }

    /// The filter info format.
    pub fn filter_format(&self) -> FilterFormat {
        FilterFormat(self.buffer.as_ref()[field::FILTER_FORMAT])
    }

    /// The number of filter entries the TLV says it holds.
    pub fn entry_count(&self) -> u16 {
        let bytes = &self.buffer.as_ref()[field::ENTRY_COUNT];
        u16::from_be_bytes([bytes[0], bytes[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VsiPacket<&'a T> {
    /// The filter entries' bytes.
    pub fn entries(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::ENTRIES]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VsiPacket<T> {
    /// Sets the status octet.
    pub fn set_status(&mut self, value: u8) {
        self.buffer.as_mut()[field::STATUS] = value;
    }

    /// Sets the VSI type ID (the upper 8 bits of `value` are dropped).
    pub fn set_type_id(&mut self, value: u32) {
        self.buffer.as_mut()[field::TYPE_ID].copy_from_slice(&value.to_be_bytes()[1..]);
    }

    /// Sets the VSI type version.
    pub fn set_type_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE_VERSION] = value;
    }

    /// Sets the VSI ID format.
    pub fn set_id_format(&mut self, value: VsiIdFormat) {
        self.buffer.as_mut()[field::ID_FORMAT] = value.0;
    }

    /// Sets the VSI ID.
    pub fn set_id(&mut self, value: Id16) {
        self.buffer.as_mut()[field::ID].copy_from_slice(&value.0);
    }

    /// Sets the filter info format.
    pub fn set_filter_format(&mut self, value: FilterFormat) {
        self.buffer.as_mut()[field::FILTER_FORMAT] = value.0;
    }

    /// Sets the entry count.
    pub fn set_entry_count(&mut self, value: u16) {
        self.buffer.as_mut()[field::ENTRY_COUNT].copy_from_slice(&value.to_be_bytes());
    }

    /// The filter entries' bytes, mutably.
    pub fn entries_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::ENTRIES]
    }
}

/// The meaning of a VSI TLV (types 1-4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vsi {
    /// What is asked or answered (the TLV type).
    pub mode: Mode,
    /// Request or response, with its bits.
    pub status: Status,
    /// The VSI type ID (24 bits; `emit` keeps those).
    pub type_id: u32,
    /// The VSI type version.
    pub type_version: u8,
    /// How to read `id`.
    pub id_format: VsiIdFormat,
    /// The VSI ID.
    pub id: Id16,
    /// The filter entries (at least one).
    pub filters: Filters,
}

impl Vsi {
    /// Reads a VSI TLV's value, given its mode (the TLV type).
    ///
    /// As lldpad (`ptlv_2_vsi22`), the length must be exactly 25 + N x entry length with N > 0
    /// ([`Error::BadLength`]); an unknown filter format is [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(mode: Mode, packet: &VsiPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        let filters = Filters::parse(
            packet.filter_format(),
            usize::from(packet.entry_count()),
            packet.entries(),
        )?;
        Ok(Self {
            mode,
            status: Status::from_octet(packet.status()),
            type_id: packet.type_id(),
            type_version: packet.type_version(),
            id_format: packet.id_format(),
            id: packet.id(),
            filters,
        })
    }

    /// The number of bytes `emit` writes (the TLV's value, without its 2-byte header).
    pub fn buffer_len(&self) -> usize {
        VSI_HEADER_LEN + self.filters.buffer_len()
    }

    /// Writes the TLV's value into the first `buffer_len()` bytes of the packet.
    ///
    /// Refuses, writing nothing, a TLV with no filter entry or one too long for the 9-bit TLV
    /// length ([`Error::BadLength`]), and a buffer shorter than `buffer_len()`
    /// ([`Error::NoRoom`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VsiPacket<T>) -> Result<()> {
        let len = self.buffer_len();
        let count = u16::try_from(self.filters.len()).map_err(|_| Error::BadLength)?;
        if count == 0 || len > TLV_DATA_MAX {
            return Err(Error::BadLength);
        }
        if packet.buffer.as_ref().len() < len {
            return Err(Error::NoRoom);
        }
        packet.set_status(self.status.to_octet());
        packet.set_type_id(self.type_id);
        packet.set_type_version(self.type_version);
        packet.set_id_format(self.id_format);
        packet.set_id(self.id);
        packet.set_filter_format(self.filters.format());
        packet.set_entry_count(count);
        self.filters
            .emit(&mut packet.entries_mut()[..len - VSI_HEADER_LEN]);
        Ok(())
    }

    /// The same TLV answered: status set to `status`, everything else echoed.
    pub fn answer(&self, mode: Mode, status: Status) -> Self {
        Self {
            mode,
            status,
            ..self.clone()
        }
    }
}

impl fmt::Display for Vsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} type {} v{} {} {} {}",
            self.mode,
            self.status,
            self.type_id,
            self.type_version,
            self.id_format,
            self.id.display(self.id_format),
            self.filters,
        )
    }
}

/// A TLV of a VDPDU after the Manager ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tlv {
    /// A VSI TLV (types 1-4).
    Vsi(Vsi),
    /// Any other TLV (organizationally defined, or a type this crate does not know), kept as
    /// it was so it can be skipped or echoed.
    Other {
        /// The TLV type (never 0-5: those have their own meaning).
        kind: TlvType,
        /// The TLV's value.
        data: Vec<u8>,
    },
}

/// The meaning of a VDPDU (the payload of an ECP request with subtype VDP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The VSI Manager ID, from the first TLV.
    pub manager_id: Id16,
    /// The TLVs after it, in order.
    pub tlvs: Vec<Tlv>,
    /// Whether an End TLV closes the VDPDU (lldpad accepts one, never sends one).
    pub end: bool,
}

impl Repr {
    /// Reads a VDPDU.
    ///
    /// lldpad's structural rules (`vdp22_ecp22in`), each refusing the whole VDPDU: the first
    /// TLV must be the Manager ID ([`Error::UnknownTlv`]) with 16 octets ([`Error::BadLength`]),
    /// and no second one may follow ([`Error::UnknownTlv`]); no TLV may run past the end
    /// ([`Error::Truncated`]); a VSI TLV's length must match its entry count
    /// ([`Error::BadLength`]) and its filter format be known ([`Error::Unsupported`]). An End
    /// TLV (length 0, else [`Error::BadLength`]) stops the VDPDU: what follows it, such as
    /// Ethernet padding, is not read. Other TLV types are kept as [`Tlv::Other`].
    pub fn parse(vdpdu: &[u8]) -> Result<Self> {
        let mut tlvs = TlvIter::new(vdpdu);
        let first = tlvs.next().ok_or(Error::Truncated)??;
        if TlvType(first.kind.0) != TlvType::MANAGER_ID {
            return Err(Error::UnknownTlv);
        }
        let manager_id = Id16(first.data.try_into().map_err(|_| Error::BadLength)?);
        let mut out = Vec::new();
        let mut end = false;
        for tlv in tlvs {
            let tlv = tlv?;
            let kind = TlvType(tlv.kind.0);
            if let Some(mode) = Mode::from_tlv_type(kind) {
                out.push(Tlv::Vsi(Vsi::parse(
                    mode,
                    &VsiPacket::new_unchecked(tlv.data),
                )?));
                continue;
            }
            match kind {
                TlvType::END if tlv.data.is_empty() => {
                    end = true;
                    break;
                }
                TlvType::END => return Err(Error::BadLength),
                TlvType::MANAGER_ID => return Err(Error::UnknownTlv),
                _ => out.push(Tlv::Other {
                    kind,
                    data: tlv.data.to_vec(),
                }),
            }
        }
        Ok(Self {
            manager_id,
            tlvs: out,
            end,
        })
    }

    /// The VSI TLVs, in order.
    pub fn vsis(&self) -> impl Iterator<Item = &Vsi> {
        self.tlvs.iter().filter_map(|tlv| match tlv {
            Tlv::Vsi(vsi) => Some(vsi),
            Tlv::Other { .. } => None,
        })
    }

    /// The number of bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let tlvs: usize = self
            .tlvs
            .iter()
            .map(|tlv| {
                lldp::TLV_HEADER_LEN
                    + match tlv {
                        Tlv::Vsi(vsi) => vsi.buffer_len(),
                        Tlv::Other { data, .. } => data.len(),
                    }
            })
            .sum();
        lldp::TLV_HEADER_LEN
            + MANAGER_ID_LEN
            + tlvs
            + if self.end { lldp::TLV_HEADER_LEN } else { 0 }
    }

    /// Writes the VDPDU at the start of `buf` and returns the number of bytes written
    /// (`buffer_len()`).
    ///
    /// Refuses what `parse` would refuse or read differently: an [`Tlv::Other`] of type 0-5
    /// ([`Error::UnknownTlv`]) or above 127 ([`Error::Unsupported`]), a VSI TLV with no entry
    /// or any TLV longer than 511 bytes ([`Error::BadLength`]); a buffer shorter than
    /// `buffer_len()` is [`Error::NoRoom`]. A refused emit may leave part of `buf` written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < self.buffer_len() {
            return Err(Error::NoRoom);
        }
        let mut writer = TlvWriter::new(buf);
        writer.write(lldp::TlvType(TlvType::MANAGER_ID.0), &self.manager_id.0)?;
        for tlv in &self.tlvs {
            match tlv {
                Tlv::Vsi(vsi) => {
                    let len = vsi.buffer_len();
                    if len > TLV_DATA_MAX || vsi.filters.is_empty() {
                        return Err(Error::BadLength);
                    }
                    let value = writer.reserve(lldp::TlvType(vsi.mode.tlv_type().0), len)?;
                    vsi.emit(&mut VsiPacket::new_unchecked(value))?;
                }
                Tlv::Other { kind, data } => {
                    if kind.0 <= TlvType::MANAGER_ID.0 {
                        return Err(Error::UnknownTlv);
                    }
                    writer.write(lldp::TlvType(kind.0), data)?;
                }
            }
        }
        if self.end {
            writer.write_end()?;
        }
        Ok(writer.len())
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vdp mgr {}", self.manager_id)?;
        for tlv in &self.tlvs {
            match tlv {
                Tlv::Vsi(vsi) => write!(f, " | {vsi}")?,
                Tlv::Other { kind, data } => write!(f, " | {kind} len {}", data.len())?,
            }
        }
        if self.end {
            f.write_str(" | end")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "vdp_tests.rs"]
mod tests;
