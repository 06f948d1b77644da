//! LLDP data units (IEEE 802.1AB-2016 clause 8): a TLV iterator and writer, and the mandatory
//! TLVs of an LLDPDU with the optional ones kept as raw bytes for later layers (802.1 and
//! 802.1Qbg organizationally specific TLVs such as EVB and CDCP).

use core::fmt;
use core::iter::FusedIterator;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{Error, MacAddr, Result};

/// The Nearest Bridge group address, 01-80-C2-00-00-0E (802.1AB-2016 Table 7-1): not forwarded
/// by any bridge, TPMRs included.
pub const NEAREST_BRIDGE: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]);
/// The Nearest non-TPMR Bridge group address, 01-80-C2-00-00-03 (802.1AB-2016 Table 7-1); CDCP
/// runs on the LLDP agent that uses it.
pub const NEAREST_NON_TPMR_BRIDGE: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x03]);
/// The Nearest Customer Bridge group address, 01-80-C2-00-00-00 (802.1AB-2016 Table 7-1); the
/// EVB TLV runs on the LLDP agent that uses it.
pub const NEAREST_CUSTOMER_BRIDGE: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);

/// The length of a TLV header: 7 bits of type and 9 bits of length (802.1AB-2016 §8.4).
pub const TLV_HEADER_LEN: usize = 2;
/// The largest TLV information string the 9-bit length field holds.
pub const TLV_DATA_MAX: usize = 511;
/// The largest TLV type the 7-bit type field holds.
const TLV_TYPE_MAX: u8 = 127;
/// The length of the OUI and subtype that open an organizationally specific TLV (§8.6).
pub const ORG_HEADER_LEN: usize = 4;
/// The largest information string an organizationally specific TLV holds after its OUI and
/// subtype (802.1AB-2016 §8.6.1.4).
pub const ORG_INFO_MAX: usize = TLV_DATA_MAX - ORG_HEADER_LEN;
/// The longest chassis or port ID, after its subtype (802.1AB-2016 §8.5.2, §8.5.3).
const ID_MAX: usize = 255;

code_point! {
    /// The type of an LLDP TLV (802.1AB-2016 Table 8-1).
    pub struct TlvType(u8) {
        /// End Of LLDPDU (§8.5.1).
        END = 0 => "end",
        /// Chassis ID, mandatory and first (§8.5.2).
        CHASSIS_ID = 1 => "chassis",
        /// Port ID, mandatory and second (§8.5.3).
        PORT_ID = 2 => "port",
        /// Time To Live, mandatory and third (§8.5.4).
        TTL = 3 => "ttl",
        /// Port Description (§8.5.5).
        PORT_DESCRIPTION = 4 => "port-desc",
        /// System Name (§8.5.6).
        SYSTEM_NAME = 5 => "sys-name",
        /// System Description (§8.5.7).
        SYSTEM_DESCRIPTION = 6 => "sys-desc",
        /// System Capabilities (§8.5.8).
        SYSTEM_CAPABILITIES = 7 => "sys-cap",
        /// Management Address (§8.5.9).
        MANAGEMENT_ADDRESS = 8 => "mgmt-addr",
        /// Organizationally Specific: OUI, subtype, information (§8.6).
        ORGANIZATION_SPECIFIC = 127 => "org",
    }
}

code_point! {
    /// What a Chassis ID identifies the chassis by (802.1AB-2016 Table 8-2).
    pub struct ChassisIdSubtype(u8) {
        /// The entPhysicalAlias of a chassis component (RFC 6933).
        CHASSIS_COMPONENT = 1 => "chassis",
        /// The ifAlias of an interface (RFC 2863).
        INTERFACE_ALIAS = 2 => "alias",
        /// The entPhysicalAlias of a port or backplane component.
        PORT_COMPONENT = 3 => "port",
        /// A MAC address (IEEE Std 802).
        MAC_ADDRESS = 4 => "mac",
        /// An IANA address family number followed by a network address.
        NETWORK_ADDRESS = 5 => "netaddr",
        /// The ifName of an interface (RFC 2863).
        INTERFACE_NAME = 6 => "ifname",
        /// A locally assigned alphanumeric string.
        LOCAL = 7 => "local",
    }
}

code_point! {
    /// What a Port ID identifies the port by (802.1AB-2016 Table 8-3).
    pub struct PortIdSubtype(u8) {
        /// The ifAlias of the port (RFC 2863).
        INTERFACE_ALIAS = 1 => "alias",
        /// The entPhysicalAlias of a port component (RFC 6933).
        PORT_COMPONENT = 2 => "port",
        /// A MAC address (IEEE Std 802).
        MAC_ADDRESS = 3 => "mac",
        /// An IANA address family number followed by a network address.
        NETWORK_ADDRESS = 4 => "netaddr",
        /// The ifName of the port (RFC 2863).
        INTERFACE_NAME = 5 => "ifname",
        /// An agent circuit ID (RFC 3046).
        AGENT_CIRCUIT_ID = 6 => "circuit",
        /// A locally assigned alphanumeric string.
        LOCAL = 7 => "local",
    }
}

/// An organizationally unique identifier, the first field of an organizationally specific TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oui(pub [u8; 3]);

impl Oui {
    /// IEEE 802.1 (00-80-C2): 802.1Q VLAN TLVs and the 802.1Qbg EVB (0x0D) and CDCP (0x0E) TLVs.
    pub const IEEE_802_1: Self = Self([0x00, 0x80, 0xc2]);
    /// IEEE 802.3 (00-12-0F): MAC/PHY, power over Ethernet, link aggregation, frame size TLVs.
    pub const IEEE_802_3: Self = Self([0x00, 0x12, 0x0f]);
}

impl fmt::Display for Oui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a:02x}-{b:02x}-{c:02x}")
    }
}

/// One TLV: its type and its information string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tlv<'a> {
    /// The TLV type.
    pub kind: TlvType,
    /// The information string (at most [`TLV_DATA_MAX`] bytes).
    pub data: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The OUI, subtype and information of an organizationally specific TLV; `None` for other
    /// types, or when the TLV is too short to hold an OUI and subtype.
    pub fn org(&self) -> Option<OrgTlv<'a>> {
        if self.kind != TlvType::ORGANIZATION_SPECIFIC {
            return None;
        }
        let data: &'a [u8] = self.data;
        match data {
            &[a, b, c, subtype, ref info @ ..] => Some(OrgTlv {
                oui: Oui([a, b, c]),
                subtype,
                info,
            }),
            _ => None,
        }
    }

    /// The number of bytes the TLV takes on the wire, header included.
    pub const fn buffer_len(&self) -> usize {
        TLV_HEADER_LEN + self.data.len()
    }
}

impl fmt::Display for Tlv<'_> {
    /// A short word: `name tor1` for a system name, `org 00-80-c2/1` for an organizationally
    /// specific TLV, the type's name for the others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(org) = self.org() {
            return fmt::Display::fmt(&org, f);
        }
        match self.kind {
            TlvType::SYSTEM_NAME => write!(f, "name {}", Text(self.data)),
            kind => fmt::Display::fmt(&kind, f),
        }
    }
}

/// An organizationally specific TLV (type 127, 802.1AB-2016 §8.6), split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgTlv<'a> {
    /// Who defines the TLV.
    pub oui: Oui,
    /// Which of the organization's TLVs this is.
    pub subtype: u8,
    /// The organizationally defined information string (at most [`ORG_INFO_MAX`] bytes).
    pub info: &'a [u8],
}

impl fmt::Display for OrgTlv<'_> {
    /// The 802.1Qbg TLVs (EVB, draft EVB, CDCP) decoded, `org OUI/subtype` for the others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(evb) = crate::evb::Repr::from_org(self) {
            return match evb {
                Ok(evb) => fmt::Display::fmt(&evb, f),
                Err(err) => write!(f, "evb ({err})"),
            };
        }
        if let Some(draft) = crate::evb::DraftRepr::from_org(self) {
            return match draft {
                Ok(draft) => fmt::Display::fmt(&draft, f),
                Err(err) => write!(f, "evb-draft ({err})"),
            };
        }
        if let Some(cdcp) = crate::cdcp::Repr::from_org(self) {
            return match cdcp {
                Ok(cdcp) => fmt::Display::fmt(&cdcp, f),
                Err(err) => write!(f, "cdcp ({err})"),
            };
        }
        write!(f, "org {}/{}", self.oui, self.subtype)
    }
}

/// Reads the TLVs of a byte string one by one, without allocating.
///
/// Yields every TLV up to and including an End Of LLDPDU TLV, then stops (what follows the End
/// TLV is Ethernet padding). Bytes that end cleanly at a TLV boundary also end the iteration.
/// A TLV header or information string that runs past the end yields [`Error::Truncated`] once,
/// then the iteration stops. Never panics, whatever the bytes.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    bytes: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> TlvIter<'a> {
    /// An iterator over the TLVs at the start of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            done: false,
        }
    }

    /// The number of bytes consumed so far: the end of the last TLV yielded (a truncated TLV
    /// is not consumed).
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.offset..).unwrap_or_default()
    }

    /// Stops the iteration and returns `error`.
    fn fail(&mut self, error: Error) -> Option<Result<Tlv<'a>>> {
        self.done = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.rest();
        // 802.1AB-2016 §8.4 (Figure 8-2): type in the upper 7 bits, length in the lower 9.
        let (kind, len) = match *rest {
            [] => {
                self.done = true;
                return None;
            }
            [_] => return self.fail(Error::Truncated),
            [first, second, ..] => (
                TlvType(first >> 1),
                (usize::from(first & 0x01) << 8) | usize::from(second),
            ),
        };
        let Some(data) = rest.get(TLV_HEADER_LEN..TLV_HEADER_LEN + len) else {
            return self.fail(Error::Truncated);
        };
        self.offset += TLV_HEADER_LEN + len;
        if kind == TlvType::END {
            self.done = true;
        }
        Some(Ok(Tlv { kind, data }))
    }
}

impl FusedIterator for TlvIter<'_> {}

/// Writes TLVs one after another into a buffer the caller owns, without allocating.
///
/// A write that fails writes nothing, so the buffer always ends at a TLV boundary.
#[derive(Debug)]
pub struct TlvWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> TlvWriter<'a> {
    /// A writer that starts at the beginning of `buf`.
    pub const fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends a TLV.
    ///
    /// Errors: [`Error::Unsupported`] for a type above 127 (it does not fit the 7-bit field),
    /// [`Error::BadLength`] for more than [`TLV_DATA_MAX`] bytes of data, [`Error::NoRoom`] when
    /// the rest of the buffer is too short.
    pub fn write(&mut self, kind: TlvType, data: &[u8]) -> Result<()> {
        self.write_parts(kind, &[data])
    }

    /// Appends an organizationally specific TLV: OUI, subtype, then `info` (at most
    /// [`ORG_INFO_MAX`] bytes).
    pub fn write_org(&mut self, oui: Oui, subtype: u8, info: &[u8]) -> Result<()> {
        self.write_parts(TlvType::ORGANIZATION_SPECIFIC, &[&oui.0, &[subtype], info])
    }

    /// Appends an End Of LLDPDU TLV.
    pub fn write_end(&mut self) -> Result<()> {
        self.write(TlvType::END, &[])
    }

    /// The number of bytes written.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of bytes left in the buffer.
    pub const fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends one TLV whose information string is the concatenation of `parts`.
    fn write_parts(&mut self, kind: TlvType, parts: &[&[u8]]) -> Result<()> {
        self.write_parts_then(kind, parts, 0)
    }

    /// Appends one TLV whose information string is the concatenation of `parts` followed by
    /// `zeros` zero bytes.
    fn write_parts_then(&mut self, kind: TlvType, parts: &[&[u8]], zeros: usize) -> Result<()> {
        if kind.0 > TLV_TYPE_MAX {
            return Err(Error::Unsupported);
        }
        let data_len: usize = parts.iter().map(|part| part.len()).sum::<usize>() + zeros;
        if data_len > TLV_DATA_MAX {
            return Err(Error::BadLength);
        }
        // data_len <= 511, so it fits in u16, and type <= 127 shifted by 9 stays below 2^16.
        let len_field = u16::try_from(data_len).map_err(|_| Error::BadLength)?;
        let header = ((u16::from(kind.0) << 9) | len_field).to_be_bytes();
        let out = self
            .buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..TLV_HEADER_LEN + data_len))
            .ok_or(Error::NoRoom)?;
        out[..TLV_HEADER_LEN].copy_from_slice(&header);
        let mut at = TLV_HEADER_LEN;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out[at..].fill(0);
        self.len += TLV_HEADER_LEN + data_len;
        Ok(())
    }

    /// Appends a TLV header for `len` bytes of data and returns those bytes, zeroed, for the
    /// caller to fill in place.
    ///
    /// Errors as [`TlvWriter::write`]; a refused reservation writes nothing.
    pub(crate) fn reserve(&mut self, kind: TlvType, len: usize) -> Result<&mut [u8]> {
        self.reserve_parts(kind, &[], len)
    }

    /// Appends an organizationally specific TLV header, OUI and subtype, and returns the `len`
    /// bytes of information, zeroed, for the caller to fill in place.
    pub(crate) fn reserve_org(&mut self, oui: Oui, subtype: u8, len: usize) -> Result<&mut [u8]> {
        self.reserve_parts(TlvType::ORGANIZATION_SPECIFIC, &[&oui.0, &[subtype]], len)
    }

    /// Appends a TLV whose data is `parts` followed by `len` zero bytes, and returns those.
    fn reserve_parts(&mut self, kind: TlvType, parts: &[&[u8]], len: usize) -> Result<&mut [u8]> {
        self.write_parts_then(kind, parts, len)?;
        // The TLV just written ends at self.len and its last `len` bytes are the zeroed body.
        Ok(&mut self.buf[self.len - len..self.len])
    }

    /// Appends bytes that already hold whole TLVs.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self
            .buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..bytes.len()))
            .ok_or(Error::NoRoom)?;
        out.copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }
}

/// The meaning of an LLDPDU: the three mandatory TLVs, and the optional TLVs as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// The Chassis ID: subtype and ID (1-255 bytes).
    pub chassis_id: (ChassisIdSubtype, &'a [u8]),
    /// The Port ID: subtype and ID (1-255 bytes).
    pub port_id: (PortIdSubtype, &'a [u8]),
    /// Seconds the receiver keeps this information; 0 means "forget it now" (shutdown).
    pub ttl: u16,
    /// The TLVs between the TTL TLV and the End TLV, as they are on the wire.
    pub optional: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads an LLDPDU (the payload of an Ethernet frame with EtherType 0x88cc).
    ///
    /// The structure 802.1AB-2016 §8.2 requires, with the errors weft drops by:
    /// * the first three TLVs are Chassis ID, Port ID and TTL, in that order, and none of them
    ///   appears again ([`Error::UnknownTlv`]);
    /// * Chassis and Port ID hold a subtype and 1-255 bytes of ID (§8.5.2.2, §8.5.3.2), the TTL
    ///   exactly two bytes (§8.5.4) ([`Error::BadLength`]);
    /// * an End Of LLDPDU TLV of length 0 ends the LLDPDU ([`Error::Truncated`] when there is
    ///   none, [`Error::BadLength`] when its length is not 0); what follows it is Ethernet
    ///   padding and is ignored. 802.1AB-2009 §8.2 required the End TLV and the 2016 revision
    ///   made it optional; weft still requires it, and the zero padding of a short frame reads
    ///   as one anyway.
    ///
    /// A TLV that runs past the end of the bytes is [`Error::Truncated`]. Optional TLVs are not
    /// interpreted: unknown and reserved types are kept in [`Repr::optional`].
    pub fn parse(lldpdu: &'a [u8]) -> Result<Self> {
        let mut tlvs = TlvIter::new(lldpdu);
        let (chassis_subtype, chassis_id) = id(mandatory(&mut tlvs, TlvType::CHASSIS_ID)?)?;
        let (port_subtype, port_id) = id(mandatory(&mut tlvs, TlvType::PORT_ID)?)?;
        let &[ttl_high, ttl_low] = mandatory(&mut tlvs, TlvType::TTL)? else {
            return Err(Error::BadLength);
        };
        let start = tlvs.offset();
        let end = loop {
            let before = tlvs.offset();
            let tlv = tlvs.next().ok_or(Error::Truncated)??;
            match tlv.kind {
                TlvType::END if tlv.data.is_empty() => break before,
                TlvType::END => return Err(Error::BadLength),
                TlvType::CHASSIS_ID | TlvType::PORT_ID | TlvType::TTL => {
                    return Err(Error::UnknownTlv);
                }
                _ => {}
            }
        };
        Ok(Self {
            chassis_id: (ChassisIdSubtype(chassis_subtype), chassis_id),
            port_id: (PortIdSubtype(port_subtype), port_id),
            ttl: u16::from_be_bytes([ttl_high, ttl_low]),
            optional: lldpdu.get(start..end).ok_or(Error::Truncated)?,
        })
    }

    /// The optional TLVs, in order (the End TLV excluded).
    pub fn optional_tlvs(&self) -> TlvIter<'a> {
        TlvIter::new(self.optional)
    }

    /// The organizationally specific TLVs among the optional ones (EVB, CDCP, 802.1 VLAN, ...).
    pub fn org_tlvs(&self) -> impl Iterator<Item = OrgTlv<'a>> + use<'a> {
        self.optional_tlvs().filter_map(|tlv| tlv.ok()?.org())
    }

    /// The System Name, if the LLDPDU carries one.
    pub fn system_name(&self) -> Option<&'a [u8]> {
        self.optional_tlvs()
            .filter_map(Result::ok)
            .find(|tlv| tlv.kind == TlvType::SYSTEM_NAME)
            .map(|tlv| tlv.data)
    }

    /// The number of bytes `emit` writes, End TLV included.
    pub const fn buffer_len(&self) -> usize {
        (TLV_HEADER_LEN + 1 + self.chassis_id.1.len())
            + (TLV_HEADER_LEN + 1 + self.port_id.1.len())
            + (TLV_HEADER_LEN + 2)
            + self.optional.len()
            + TLV_HEADER_LEN
    }

    /// Writes the LLDPDU at the start of `buf` and returns the number of bytes written
    /// (`buffer_len()`).
    ///
    /// Refuses, writing nothing, what `parse` would refuse: an ID of 0 or more than 255 bytes
    /// ([`Error::BadLength`]); optional bytes that are not whole TLVs ([`Error::Truncated`]) or
    /// that hold an End, Chassis ID, Port ID or TTL TLV ([`Error::UnknownTlv`]). A buffer
    /// shorter than `buffer_len()` is [`Error::NoRoom`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        self.check()?;
        if buf.len() < self.buffer_len() {
            return Err(Error::NoRoom);
        }
        let mut writer = TlvWriter::new(buf);
        let (chassis_subtype, chassis_id) = self.chassis_id;
        writer.write_parts(TlvType::CHASSIS_ID, &[&[chassis_subtype.0], chassis_id])?;
        let (port_subtype, port_id) = self.port_id;
        writer.write_parts(TlvType::PORT_ID, &[&[port_subtype.0], port_id])?;
        writer.write(TlvType::TTL, &self.ttl.to_be_bytes())?;
        writer.write_raw(self.optional)?;
        writer.write_end()?;
        Ok(writer.len())
    }

    /// Checks that `emit` would write an LLDPDU `parse` accepts.
    fn check(&self) -> Result<()> {
        if !(1..=ID_MAX).contains(&self.chassis_id.1.len())
            || !(1..=ID_MAX).contains(&self.port_id.1.len())
        {
            return Err(Error::BadLength);
        }
        for tlv in self.optional_tlvs() {
            match tlv?.kind {
                TlvType::END | TlvType::CHASSIS_ID | TlvType::PORT_ID | TlvType::TTL => {
                    return Err(Error::UnknownTlv);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (chassis_subtype, chassis_id) = self.chassis_id;
        let chassis_kind = match chassis_subtype {
            ChassisIdSubtype::MAC_ADDRESS => IdKind::Mac,
            ChassisIdSubtype::NETWORK_ADDRESS => IdKind::NetworkAddress,
            _ => IdKind::Text,
        };
        let (port_subtype, port_id) = self.port_id;
        let port_kind = match port_subtype {
            PortIdSubtype::MAC_ADDRESS => IdKind::Mac,
            PortIdSubtype::NETWORK_ADDRESS => IdKind::NetworkAddress,
            PortIdSubtype::AGENT_CIRCUIT_ID => IdKind::Binary,
            _ => IdKind::Text,
        };
        write!(
            f,
            "lldp chassis {chassis_subtype} {} port {port_subtype} {} ttl {}",
            Id(chassis_kind, chassis_id),
            Id(port_kind, port_id),
            self.ttl,
        )?;
        for tlv in self.optional_tlvs() {
            match tlv {
                Ok(tlv) => write!(f, " {tlv}")?,
                Err(err) => write!(f, " ({err})")?,
            }
        }
        Ok(())
    }
}

/// Reads the next TLV, which must be of type `kind`.
fn mandatory<'a>(tlvs: &mut TlvIter<'a>, kind: TlvType) -> Result<&'a [u8]> {
    let tlv = tlvs.next().ok_or(Error::Truncated)??;
    if tlv.kind != kind {
        return Err(Error::UnknownTlv);
    }
    Ok(tlv.data)
}

/// Splits a Chassis or Port ID TLV into its subtype and its 1-255 bytes of ID.
fn id(data: &[u8]) -> Result<(u8, &[u8])> {
    match data {
        [subtype, id @ ..] if (1..=ID_MAX).contains(&id.len()) => Ok((*subtype, id)),
        _ => Err(Error::BadLength),
    }
}

/// How to show an ID.
#[derive(Clone, Copy)]
enum IdKind {
    /// A MAC address when it has six bytes.
    Mac,
    /// An IANA address family number (1 IPv4, 2 IPv6) and an address (802.1AB-2016 §8.5.2.3).
    NetworkAddress,
    /// Text when it is printable UTF-8.
    Text,
    /// Always hex.
    Binary,
}

/// An ID shown the way its subtype suggests, falling back to hex.
struct Id<'a>(IdKind, &'a [u8]);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (IdKind::Mac, bytes) if bytes.len() == 6 => {
                fmt::Display::fmt(&MacAddr::from_bytes(bytes), f)
            }
            (IdKind::NetworkAddress, &[1, a, b, c, d]) => {
                fmt::Display::fmt(&Ipv4Addr::new(a, b, c, d), f)
            }
            (IdKind::NetworkAddress, [2, rest @ ..]) if rest.len() == 16 => {
                let mut octets = [0; 16];
                octets.copy_from_slice(rest);
                fmt::Display::fmt(&Ipv6Addr::from(octets), f)
            }
            (IdKind::Text, bytes) => fmt::Display::fmt(&Text(bytes), f),
            (_, bytes) => fmt::Display::fmt(&Hex(bytes), f),
        }
    }
}

/// Bytes shown as text when they are non-empty printable UTF-8, else as hex.
struct Text<'a>(&'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
                f.write_str(text)
            }
            _ => fmt::Display::fmt(&Hex(self.0), f),
        }
    }
}

/// Bytes shown as `0x` and lowercase hex digits.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Chassis MAC 02:00:00:00:00:01, port ifname "eth0", TTL 120, system name "tor1", the
    // 802.1 Port VLAN ID TLV (OUI 00-80-C2, subtype 1) with PVID 1, End.
    static LLDPDU: [u8; 36] = [
        0x02, 0x07, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // Chassis ID, subtype 4
        0x04, 0x05, 0x05, b'e', b't', b'h', b'0', // Port ID, subtype 5
        0x06, 0x02, 0x00, 0x78, // TTL 120
        0x0a, 0x04, b't', b'o', b'r', b'1', // System Name
        0xfe, 0x06, 0x00, 0x80, 0xc2, 0x01, 0x00, 0x01, // Port VLAN ID 1
        0x00, 0x00, // End
    ];
    /// Where the optional TLVs start and end in `LLDPDU`.
    const OPTIONAL: core::ops::Range<usize> = 20..34;

    fn repr() -> Repr<'static> {
        Repr {
            chassis_id: (ChassisIdSubtype::MAC_ADDRESS, &[0x02, 0, 0, 0, 0, 0x01]),
            port_id: (PortIdSubtype::INTERFACE_NAME, b"eth0"),
            ttl: 120,
            optional: &LLDPDU[OPTIONAL],
        }
    }

    #[test]
    fn test_deconstruct() {
        let mut tlvs = TlvIter::new(&LLDPDU);
        let kinds: Vec<_> = tlvs.by_ref().map(|tlv| tlv.unwrap().kind).collect();
        assert_eq!(
            kinds,
            [
                TlvType::CHASSIS_ID,
                TlvType::PORT_ID,
                TlvType::TTL,
                TlvType::SYSTEM_NAME,
                TlvType::ORGANIZATION_SPECIFIC,
                TlvType::END
            ]
        );
        assert_eq!(tlvs.offset(), LLDPDU.len());
        assert!(tlvs.rest().is_empty());

        let org = TlvIter::new(&LLDPDU).nth(4).unwrap().unwrap();
        assert_eq!(org.data, &[0x00, 0x80, 0xc2, 0x01, 0x00, 0x01]);
        assert_eq!(org.buffer_len(), 8);
        let org = org.org().unwrap();
        assert_eq!(
            (org.oui, org.subtype, org.info),
            (Oui::IEEE_802_1, 1, &[0x00, 0x01][..])
        );
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 40];
        let mut writer = TlvWriter::new(&mut bytes);
        assert!(writer.is_empty());
        writer
            .write(TlvType::CHASSIS_ID, &[0x04, 0x02, 0, 0, 0, 0, 0x01])
            .unwrap();
        writer.write(TlvType::PORT_ID, b"\x05eth0").unwrap();
        writer.write(TlvType::TTL, &120u16.to_be_bytes()).unwrap();
        writer.write(TlvType::SYSTEM_NAME, b"tor1").unwrap();
        writer.write_org(Oui::IEEE_802_1, 1, &[0x00, 0x01]).unwrap();
        writer.write_end().unwrap();
        assert_eq!((writer.len(), writer.remaining()), (36, 4));
        assert_eq!(writer.written(), &LLDPDU);
        assert_eq!(bytes[..36], LLDPDU);
        assert_eq!(bytes[36..], [0xa5; 4]);
    }

    #[test]
    fn test_parse() {
        let parsed = Repr::parse(&LLDPDU).unwrap();
        assert_eq!(parsed, repr());
        assert_eq!(parsed.system_name(), Some(&b"tor1"[..]));
        let orgs: Vec<_> = parsed.org_tlvs().collect();
        assert_eq!(
            orgs,
            [OrgTlv {
                oui: Oui::IEEE_802_1,
                subtype: 1,
                info: &[0x00, 0x01]
            }]
        );
        assert_eq!(
            parsed.to_string(),
            "lldp chassis mac 02:00:00:00:00:01 port ifname eth0 ttl 120 name tor1 org 00-80-c2/1"
        );
    }

    #[test]
    fn test_parse_ignores_padding() {
        let mut frame = LLDPDU.to_vec();
        frame.extend_from_slice(&[0; 10]);
        assert_eq!(Repr::parse(&frame).unwrap(), repr());
        // Junk after the End TLV, even a TLV that would be truncated, is not looked at.
        frame.truncate(LLDPDU.len());
        frame.extend_from_slice(&[0x02, 0xff, 0x01]);
        assert_eq!(Repr::parse(&frame).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let repr = repr();
        assert_eq!(repr.buffer_len(), LLDPDU.len());
        let mut bytes = [0xa5; 40];
        assert_eq!(repr.emit(&mut bytes), Ok(36));
        assert_eq!(bytes[..36], LLDPDU);
        assert_eq!(bytes[36..], [0xa5; 4]);
        assert_eq!(Repr::parse(&bytes[..36]).unwrap(), repr);
    }

    #[test]
    fn test_emit_refuses() {
        let mut bytes = [0xa5; 40];
        assert_eq!(repr().emit(&mut bytes[..35]), Err(Error::NoRoom));
        let empty_id = Repr {
            port_id: (PortIdSubtype::LOCAL, &[]),
            ..repr()
        };
        assert_eq!(empty_id.emit(&mut bytes), Err(Error::BadLength));
        let long_id = Repr {
            chassis_id: (ChassisIdSubtype::LOCAL, &[b'x'; 256]),
            ..repr()
        };
        assert_eq!(long_id.emit(&mut [0; 300]), Err(Error::BadLength));
        let with_end = Repr {
            optional: &[0x00, 0x00],
            ..repr()
        };
        assert_eq!(with_end.emit(&mut bytes), Err(Error::UnknownTlv));
        let with_ttl = Repr {
            optional: &[0x06, 0x02, 0x00, 0x01],
            ..repr()
        };
        assert_eq!(with_ttl.emit(&mut bytes), Err(Error::UnknownTlv));
        let torn = Repr {
            optional: &[0x0a, 0x04, b't'],
            ..repr()
        };
        assert_eq!(torn.emit(&mut bytes), Err(Error::Truncated));
        assert_eq!(bytes, [0xa5; 40], "a refused emit writes nothing");
    }

    #[test]
    fn test_truncated_tlv_in_the_middle() {
        // The System Name TLV says 4 bytes, but only 2 follow.
        let bytes = &LLDPDU[..24];
        assert_eq!(Repr::parse(bytes), Err(Error::Truncated));
        let mut tlvs = TlvIter::new(bytes);
        assert_eq!(tlvs.by_ref().take(3).filter(Result::is_ok).count(), 3);
        assert_eq!(tlvs.offset(), 20);
        assert_eq!(tlvs.next(), Some(Err(Error::Truncated)));
        assert_eq!(tlvs.offset(), 20, "a truncated TLV is not consumed");
        assert_eq!(tlvs.next(), None);
        assert_eq!(tlvs.next(), None);
        // A lone header byte is a truncated header.
        let mut tlvs = TlvIter::new(&LLDPDU[..21]);
        assert_eq!(tlvs.nth(3), Some(Err(Error::Truncated)));
        assert_eq!(tlvs.next(), None);
        // In the mandatory TLVs.
        for len in [0, 1, 5, 9, 12, 17, 19] {
            assert_eq!(Repr::parse(&LLDPDU[..len]), Err(Error::Truncated), "{len}");
        }
    }

    #[test]
    fn test_missing_end() {
        assert_eq!(Repr::parse(&LLDPDU[..34]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&LLDPDU[..20]), Err(Error::Truncated));
        // The iterator itself ends cleanly at a TLV boundary.
        assert_eq!(TlvIter::new(&LLDPDU[..34]).filter(Result::is_ok).count(), 5);
    }

    #[test]
    fn test_end_with_length() {
        let mut bytes = LLDPDU.to_vec();
        bytes[35] = 0x01;
        bytes.push(0x00);
        assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
    }

    #[test]
    fn test_wrong_order() {
        // Port ID before Chassis ID.
        let mut bytes = LLDPDU[9..16].to_vec();
        bytes.extend_from_slice(&LLDPDU[..9]);
        bytes.extend_from_slice(&LLDPDU[16..]);
        assert_eq!(Repr::parse(&bytes), Err(Error::UnknownTlv));
        // An optional TLV before the TTL.
        let mut bytes = LLDPDU[..16].to_vec();
        bytes.extend_from_slice(&LLDPDU[20..26]);
        bytes.extend_from_slice(&LLDPDU[16..20]);
        bytes.extend_from_slice(&LLDPDU[26..]);
        assert_eq!(Repr::parse(&bytes), Err(Error::UnknownTlv));
        // A second TTL among the optional TLVs.
        let mut bytes = LLDPDU[..34].to_vec();
        bytes.extend_from_slice(&LLDPDU[16..20]);
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(Repr::parse(&bytes), Err(Error::UnknownTlv));
        // An End TLV first.
        assert_eq!(Repr::parse(&[0; 60]), Err(Error::UnknownTlv));
    }

    #[test]
    fn test_bad_lengths() {
        // TTL of three bytes.
        let mut bytes = LLDPDU[..16].to_vec();
        bytes.extend_from_slice(&[0x06, 0x03, 0x00, 0x00, 0x78, 0x00, 0x00]);
        assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
        // Chassis ID with a subtype and no ID.
        let mut bytes = vec![0x02, 0x01, 0x07];
        bytes.extend_from_slice(&LLDPDU[9..]);
        assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
        // Chassis ID with 256 bytes of ID.
        let mut bytes = vec![0x03, 0x01, 0x07];
        bytes.extend_from_slice(&[b'x'; 256]);
        bytes.extend_from_slice(&LLDPDU[9..]);
        assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
        // ... and 255 is fine.
        let mut bytes = vec![0x03, 0x00, 0x07];
        bytes.extend_from_slice(&[b'x'; 255]);
        bytes.extend_from_slice(&LLDPDU[9..]);
        let repr = Repr::parse(&bytes).unwrap();
        assert_eq!(repr.chassis_id.1.len(), 255);
        let mut out = vec![0xa5; repr.buffer_len()];
        assert_eq!(repr.emit(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }

    #[test]
    fn test_writer_no_room() {
        let mut bytes = [0xa5; 5];
        let mut writer = TlvWriter::new(&mut bytes);
        assert_eq!(
            writer.write(TlvType::SYSTEM_NAME, b"tor1"),
            Err(Error::NoRoom)
        );
        assert_eq!(
            writer.write_org(Oui::IEEE_802_3, 1, &[]),
            Err(Error::NoRoom)
        );
        assert!(writer.is_empty());
        writer.write(TlvType::TTL, &[0, 1]).unwrap();
        assert_eq!(writer.write_end(), Err(Error::NoRoom));
        assert_eq!(writer.len(), 4);
        assert_eq!(bytes, [0x06, 0x02, 0x00, 0x01, 0xa5]);
        assert_eq!(TlvWriter::new(&mut []).write_end(), Err(Error::NoRoom));
    }

    #[test]
    fn test_tlv_max_len() {
        let data = [0x5a; TLV_DATA_MAX + 1];
        let mut bytes = [0xa5; 2 * (TLV_HEADER_LEN + TLV_DATA_MAX)];
        let mut writer = TlvWriter::new(&mut bytes);
        assert_eq!(
            writer.write(TlvType::SYSTEM_DESCRIPTION, &data),
            Err(Error::BadLength)
        );
        assert_eq!(
            writer.write_org(Oui::IEEE_802_1, 0x0e, &data[..ORG_INFO_MAX + 1]),
            Err(Error::BadLength)
        );
        assert!(writer.is_empty());
        writer
            .write(TlvType::SYSTEM_DESCRIPTION, &data[..TLV_DATA_MAX])
            .unwrap();
        writer
            .write_org(Oui::IEEE_802_1, 0x0e, &data[..ORG_INFO_MAX])
            .unwrap();
        assert_eq!(writer.remaining(), 0);
        assert_eq!(bytes[..2], [0x0d, 0xff]);
        assert_eq!(bytes[513..520], [0xff, 0xff, 0x00, 0x80, 0xc2, 0x0e, 0x5a]);

        let tlvs: Vec<_> = TlvIter::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(tlvs.len(), 2);
        assert_eq!(
            (tlvs[0].kind, tlvs[0].data.len()),
            (TlvType::SYSTEM_DESCRIPTION, 511)
        );
        let org = tlvs[1].org().unwrap();
        assert_eq!(
            (org.oui, org.subtype, org.info.len()),
            (Oui::IEEE_802_1, 0x0e, ORG_INFO_MAX)
        );
    }

    #[test]
    fn test_writer_type_too_big() {
        let mut bytes = [0xa5; 8];
        let mut writer = TlvWriter::new(&mut bytes);
        assert_eq!(writer.write(TlvType(128), &[]), Err(Error::Unsupported));
        writer.write(TlvType(127), &[]).unwrap();
        assert_eq!(bytes[..3], [0xfe, 0x00, 0xa5]);
    }

    #[test]
    fn test_org_too_short() {
        let tlv = Tlv {
            kind: TlvType::ORGANIZATION_SPECIFIC,
            data: &[0x00, 0x80, 0xc2],
        };
        assert_eq!(tlv.org(), None);
        assert_eq!(tlv.to_string(), "org");
        assert_eq!(
            Tlv {
                kind: TlvType::SYSTEM_NAME,
                data: &[0x00, 0x80, 0xc2, 1]
            }
            .org(),
            None
        );
    }

    #[test]
    fn test_display() {
        assert_eq!(Oui::IEEE_802_3.to_string(), "00-12-0f");
        assert_eq!(TlvType(9).to_string(), "0x9");
        let optional = [0x10, 0x00, 0x0a, 0x02, 0xff, 0x00, 0x12, 0x00];
        let repr = Repr {
            chassis_id: (ChassisIdSubtype::NETWORK_ADDRESS, &[1, 192, 0, 2, 1]),
            port_id: (PortIdSubtype::LOCAL, &[0x00, 0x01]),
            ttl: 0,
            optional: &optional,
        };
        assert_eq!(
            repr.to_string(),
            "lldp chassis netaddr 192.0.2.1 port local 0x0001 ttl 0 mgmt-addr name 0xff00 0x9"
        );
        let repr = Repr {
            chassis_id: (ChassisIdSubtype::MAC_ADDRESS, b"abc"),
            port_id: (PortIdSubtype(0x42), b"x"),
            optional: &[0x0a, 0x05],
            ..repr
        };
        assert_eq!(
            repr.to_string(),
            "lldp chassis mac 0x616263 port 0x42 x ttl 0 (truncated)"
        );
    }

    #[test]
    fn test_iter_never_panics() {
        let mut bytes = [0u8; 600];
        for seed in 0..64u32 {
            for (i, byte) in bytes.iter_mut().enumerate() {
                let x = (u32::try_from(i).unwrap() ^ seed).wrapping_mul(0x9e37_79b9);
                *byte = x.to_be_bytes()[0];
            }
            for len in [0, 1, 2, 3, 100, 600] {
                let _ = TlvIter::new(&bytes[..len]).count();
                if let Ok(repr) = Repr::parse(&bytes[..len]) {
                    let _ = repr.to_string();
                }
            }
        }
    }
}
