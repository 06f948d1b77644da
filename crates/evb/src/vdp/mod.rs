//! VDP (VSI Discovery and Configuration Protocol, 802.1Qbg-2012 clause 41) over ECP: the
//! bridge ([`Bridge`]), which decides through a [`VsiPolicy`] whether each VSI may
//! (pre-)associate, supervises keep-alives and assigns VLANs, and the station ([`Station`]),
//! which asks, refreshes and acts on the answers.
//!
//! Both follow what lldpad needs to interoperate (`PROTOCOL_NOTES.md` sections 7.5-7.8): the
//! Manager ID TLV first, one VSI TLV per VDPDU, answers that echo the request with bit 0x40 set,
//! a VID the bridge may fill in where the station sent 0, a refusal of a new VSI as
//! De-Associate plus error code, and a VDP answer to every keep-alive.

mod bridge;
mod station;

use core::fmt;

use wire::{
    MacAddr,
    vdp::{self, Filters, Id16, Vsi, VsiIdFormat},
};

pub use bridge::{
    Association, Bridge, BridgeConfig, BridgeEvent, Decision, Profile, Refusal, VsiPolicy,
    VsiRequest,
};
pub use station::{Station, StationConfig, StationEvent, VsiSpec};

use crate::PeerMisbehaved;

/// What identifies a VSI: its ID and the format that ID is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VsiKey {
    /// How to read `id`.
    pub id_format: VsiIdFormat,
    /// The VSI ID.
    pub id: Id16,
}

impl VsiKey {
    /// The key of a VSI TLV.
    pub const fn of(vsi: &Vsi) -> Self {
        Self {
            id_format: vsi.id_format,
            id: vsi.id,
        }
    }
}

impl fmt::Display for VsiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id_format, self.id.display(self.id_format))
    }
}

/// Why a VSI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeassociateCause {
    /// The station asked.
    Station,
    /// The bridge said so, unsolicited (its operator, or its policy).
    Bridge,
    /// The bridge heard no keep-alive for the keep-alive timeout.
    KeepAliveTimeout,
    /// Not a VDP exchange: the S-channel the VSI was on went down (CDCP), and its VDP engine
    /// with it. The engines never give this cause; the driver that runs one engine per
    /// S-channel does.
    ChannelDown,
}

/// Checks filters the way lldpad's station does before it sends them (`filter_ok`,
/// `check_vid`, `is_valid_mac`): at least one entry and few enough for one TLV, every VID 0
/// ("assign one") or 2-4094, every MAC address individual and non-zero, group IDs only when
/// both sides negotiated them.
pub(crate) fn check_filters(filters: &Filters, group_ids: bool) -> Result<(), PeerMisbehaved> {
    if filters.format().has_group_ids() && !group_ids {
        return Err(PeerMisbehaved::VdpGroupIdsNotNegotiated);
    }
    let entry_len = filters.format().entry_len().unwrap_or(usize::MAX);
    let fits = vdp::VSI_HEADER_LEN.saturating_add(filters.len().saturating_mul(entry_len))
        <= wire::lldp::TLV_DATA_MAX;
    let vid_ok = |vid: u16| vid == 0 || (2..=4094).contains(&vid);
    let mac_ok = |mac: MacAddr| mac != MacAddr::ZERO && mac.is_unicast();
    if filters.is_empty()
        || !fits
        || !filters.vlans().all(|vlan| vid_ok(vlan.vid))
        || !filters.macs().all(mac_ok)
    {
        return Err(PeerMisbehaved::VdpInvalidFilter);
    }
    Ok(())
}

/// The VDPDU carrying one VSI TLV: the Manager ID, the TLV, no End TLV (as lldpad sends).
///
/// Fails only for a TLV `check_filters` (or `vdp::Repr::parse`) would have refused.
pub(crate) fn vdpdu(manager_id: Id16, vsi: Vsi) -> wire::Result<Vec<u8>> {
    let repr = vdp::Repr {
        manager_id,
        tlvs: vec![vdp::Tlv::Vsi(vsi)],
        end: false,
    };
    let mut bytes = vec![0; repr.buffer_len()];
    let len = repr.emit(&mut bytes)?;
    bytes.truncate(len);
    Ok(bytes)
}

#[cfg(test)]
mod tests;
