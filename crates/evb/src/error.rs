//! Errors sorted by fault, after rustls: the bytes did not parse, the peer broke the protocol,
//! the peer speaks something we cannot work with, or the caller misused the API. Plus the
//! per-reason counters every engine keeps.

use core::fmt;
use std::collections::BTreeMap;

use wire::vdp::Reason;

/// Why an engine refused a frame or a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Error {
    /// The bytes do not parse: a malformed or truncated frame, TLV or PDU.
    InvalidMessage(wire::Error),
    /// Well-formed, but against the protocol.
    PeerMisbehaved(PeerMisbehaved),
    /// Well-formed and legal, but not something this engine works with.
    PeerIncompatible(PeerIncompatible),
    /// The caller asked for something the protocol does not allow; never caused by the network.
    ApiMisuse(ApiMisuse),
}

/// A peer that broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerMisbehaved {
    /// An ECP request repeating the last delivered one (same sequence number and payload):
    /// acknowledged again, not delivered again.
    EcpDuplicate,
    /// An ECP request whose sequence number is behind the last one delivered: dropped unless
    /// the peer repeats it (a restarted peer does).
    EcpOutOfWindow,
    /// An ECP acknowledgement for no outstanding request.
    EcpUnexpectedAck,
    /// A VSI TLV whose status is a response where a request belongs, or the other way round.
    VdpUnexpectedStatus,
    /// A VID that is not 0 or 2-4094, or a MAC address that is zero or a group address.
    VdpInvalidFilter,
    /// A group ID filter format although group IDs were not negotiated.
    VdpGroupIdsNotNegotiated,
    /// A response or De-Associate for a VSI the engine does not have.
    VdpUnknownVsi,
    /// A response whose VSI or filters do not match the request.
    VdpResponseMismatch,
    /// A VDP TLV type that is neither a VSI TLV nor the Manager ID: skipped.
    VdpUnknownTlv,
    /// A CDCP pair with SCID 0, the default SCID 1 again, or an SCID listed twice.
    CdcpInvalidScid,
    /// More CDCP pairs than the channel capacity allows: the extra ones are left out.
    CdcpTooManyChannels,
    /// Two CDCP TLVs in one LLDPDU: the LLDPDU's CDCP content is ignored.
    CdcpDuplicateTlv,
}

impl PeerMisbehaved {
    /// The counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EcpDuplicate => "ecp_duplicate",
            Self::EcpOutOfWindow => "ecp_out_of_window",
            Self::EcpUnexpectedAck => "ecp_unexpected_ack",
            Self::VdpUnexpectedStatus => "vdp_unexpected_status",
            Self::VdpInvalidFilter => "vdp_invalid_filter",
            Self::VdpGroupIdsNotNegotiated => "vdp_group_ids_not_negotiated",
            Self::VdpUnknownVsi => "vdp_unknown_vsi",
            Self::VdpResponseMismatch => "vdp_response_mismatch",
            Self::VdpUnknownTlv => "vdp_unknown_tlv",
            Self::CdcpInvalidScid => "cdcp_invalid_scid",
            Self::CdcpTooManyChannels => "cdcp_too_many_channels",
            Self::CdcpDuplicateTlv => "cdcp_duplicate_tlv",
        }
    }
}

/// A legal peer this engine cannot work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerIncompatible {
    /// An LLDPDU on the EVB agent's address without a (ratified) EVB TLV.
    NoEvbTlv,
    /// The peer sends only the draft 0.2 EVB TLV.
    DraftEvbOnly,
    /// The peer claims our own role (two bridges, two stations) or no EVB at all.
    SameRole,
    /// An ECP subtype other than the engine's (PECSP on a VDP port).
    EcpSubtype,
    /// A reserved ECP operation.
    EcpOperation,
}

impl PeerIncompatible {
    /// The counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoEvbTlv => "no_evb_tlv",
            Self::DraftEvbOnly => "draft_evb_only",
            Self::SameRole => "same_role",
            Self::EcpSubtype => "ecp_subtype",
            Self::EcpOperation => "ecp_operation",
        }
    }
}

/// A command the protocol does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiMisuse {
    /// An ECP payload longer than [`wire::ecp::MAX_PAYLOAD`].
    PayloadTooLong,
    /// A request for a VSI whose previous exchange is still in flight.
    VsiBusy,
    /// A command for a VSI the engine does not have.
    UnknownVsi,
    /// A request that lowers a VSI's mode (associate to pre-associate), which lldpad refuses.
    ModeDowngrade,
    /// No filter entry, a VID other than 0 or 2-4094, or a zero or group MAC address.
    InvalidFilter,
    /// A group ID filter format although group IDs were not negotiated.
    GroupIdsNotNegotiated,
    /// A decision for a VSI whose policy answer is not pending.
    NotDeciding,
    /// More S-channels than the channel capacity (or 167 pairs) allows.
    TooManyChannels,
    /// An SCID of 0 or 1 (the default channel), above 4095, or listed twice.
    InvalidScid,
}

impl Error {
    /// The counter this error increments.
    pub const fn counter(self) -> Counter {
        match self {
            Self::InvalidMessage(error) => Counter::Invalid(error),
            Self::PeerMisbehaved(error) => Counter::Misbehaved(error),
            Self::PeerIncompatible(error) => Counter::Incompatible(error),
            Self::ApiMisuse(_) => Counter::ApiMisuse,
        }
    }

    /// The error code a VDP bridge answers a request with when this error refuses it; `None`
    /// for errors that are not answered (the VDPDU is dropped, as lldpad's bridge drops it).
    pub const fn vdp_reason(self) -> Option<Reason> {
        match self {
            Self::PeerMisbehaved(PeerMisbehaved::VdpInvalidFilter) => Some(Reason::INVALID_FILTER),
            Self::PeerMisbehaved(PeerMisbehaved::VdpGroupIdsNotNegotiated) => {
                Some(Reason::INVALID_FORMAT)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMessage(error) => write!(f, "invalid message: {error}"),
            Self::PeerMisbehaved(error) => write!(f, "peer misbehaved: {}", error.as_str()),
            Self::PeerIncompatible(error) => write!(f, "peer incompatible: {}", error.as_str()),
            Self::ApiMisuse(error) => write!(f, "API misuse: {error:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wire::Error> for Error {
    fn from(error: wire::Error) -> Self {
        Self::InvalidMessage(error)
    }
}

impl From<PeerMisbehaved> for Error {
    fn from(error: PeerMisbehaved) -> Self {
        Self::PeerMisbehaved(error)
    }
}

impl From<PeerIncompatible> for Error {
    fn from(error: PeerIncompatible) -> Self {
        Self::PeerIncompatible(error)
    }
}

impl From<ApiMisuse> for Error {
    fn from(error: ApiMisuse) -> Self {
        Self::ApiMisuse(error)
    }
}

impl fmt::Display for ApiMisuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for ApiMisuse {}

/// Something an engine counts: every reason it refused input, and the protocol events an
/// operator wants to see (retransmissions, timeouts, rejections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Frames handed to `handle_frame`.
    RxFrames,
    /// Frames returned by `poll_transmit`.
    TxFrames,
    /// Frames for another protocol or address, ignored.
    NotForUs,
    /// Frames dropped because the `poll_transmit` buffer was too small.
    TxNoRoom,
    /// Refused because the bytes do not parse.
    Invalid(wire::Error),
    /// Refused because the peer broke the protocol.
    Misbehaved(PeerMisbehaved),
    /// Refused because the peer is incompatible.
    Incompatible(PeerIncompatible),
    /// Commands refused as API misuse.
    ApiMisuse,
    /// ECP requests sent again after the acknowledgement timer ran out.
    EcpRetransmit,
    /// ECP requests given up after R retransmissions.
    EcpTxFailed,
    /// Out-of-window ECP requests accepted because the peer repeated them (a restart).
    EcpResync,
    /// ECP requests with the last sequence number but new content, taken as a peer restart.
    EcpPeerRestart,
    /// The peer's LLDP information aged out (its TTL passed).
    PeerExpired,
    /// The peer sent an LLDPDU with TTL 0 (it is shutting down).
    PeerShutdown,
    /// VDP requests the policy refused.
    VdpRejected,
    /// VDP requests the policy did not decide on within the resource-wait delay.
    VdpResourceTimeout,
    /// VSIs a bridge de-associated because the station stopped refreshing them.
    VdpKeepAliveTimeout,
    /// VDP requests a station gave up on after waiting for the answer.
    VdpResponseTimeout,
    /// VDP requests a station sent again after waiting for the answer.
    VdpRetry,
    /// CDCP channels a bridge could not grant because its SVID pool was empty.
    CdcpPoolExhausted,
}

impl Counter {
    /// A short, stable, snake_case name, used as a counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RxFrames => "rx_frames",
            Self::TxFrames => "tx_frames",
            Self::NotForUs => "not_for_us",
            Self::TxNoRoom => "tx_no_room",
            Self::Invalid(error) => match error {
                wire::Error::Truncated => "invalid_truncated",
                wire::Error::BadLength => "invalid_bad_length",
                wire::Error::BadVersion => "invalid_bad_version",
                wire::Error::BadChecksum => "invalid_bad_checksum",
                wire::Error::BadFlags => "invalid_bad_flags",
                wire::Error::UnknownTlv => "invalid_unknown_tlv",
                wire::Error::Unsupported => "invalid_unsupported",
                wire::Error::NoRoom => "invalid_no_room",
            },
            Self::Misbehaved(error) => error.as_str(),
            Self::Incompatible(error) => error.as_str(),
            Self::ApiMisuse => "api_misuse",
            Self::EcpRetransmit => "ecp_retransmit",
            Self::EcpTxFailed => "ecp_tx_failed",
            Self::EcpResync => "ecp_resync",
            Self::EcpPeerRestart => "ecp_peer_restart",
            Self::PeerExpired => "peer_expired",
            Self::PeerShutdown => "peer_shutdown",
            Self::VdpRejected => "vdp_rejected",
            Self::VdpResourceTimeout => "vdp_resource_timeout",
            Self::VdpKeepAliveTimeout => "vdp_keep_alive_timeout",
            Self::VdpResponseTimeout => "vdp_response_timeout",
            Self::VdpRetry => "vdp_retry",
            Self::CdcpPoolExhausted => "cdcp_pool_exhausted",
        }
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine's counters: how often each [`Counter`] happened (absent ones are zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(BTreeMap<Counter, u64>);

impl Counters {
    /// How often `counter` happened.
    pub fn get(&self, counter: Counter) -> u64 {
        self.0.get(&counter).copied().unwrap_or(0)
    }

    /// The counters that happened at least once, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        self.0.iter().map(|(&counter, &count)| (counter, count))
    }

    /// Adds one to `counter`.
    pub(crate) fn add(&mut self, counter: Counter) {
        let count = self.0.entry(counter).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Counts an error.
    pub(crate) fn error(&mut self, error: impl Into<Error>) {
        self.add(error.into().counter());
    }

    /// Adds every counter of `other` to these.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (counter, count) in other.iter() {
            let mine = self.0.entry(counter).or_insert(0);
            *mine = mine.saturating_add(count);
        }
    }
}

impl fmt::Display for Counters {
    /// `name=count` pairs separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (counter, count)) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{counter}={count}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_counters_and_mapping() {
        let mut counters = Counters::default();
        counters.error(wire::Error::Truncated);
        counters.error(PeerMisbehaved::EcpDuplicate);
        counters.error(PeerMisbehaved::EcpDuplicate);
        counters.add(Counter::EcpRetransmit);
        assert_eq!(counters.get(Counter::Invalid(wire::Error::Truncated)), 1);
        assert_eq!(
            counters.get(Counter::Misbehaved(PeerMisbehaved::EcpDuplicate)),
            2
        );
        assert_eq!(counters.get(Counter::TxFrames), 0);
        assert_eq!(
            counters.to_string(),
            "invalid_truncated=1 ecp_duplicate=2 ecp_retransmit=1"
        );
        let mut total = Counters::default();
        total.merge(&counters);
        total.merge(&counters);
        assert_eq!(total.get(Counter::EcpRetransmit), 2);
        assert_eq!(
            Error::from(PeerMisbehaved::VdpInvalidFilter).vdp_reason(),
            Some(Reason::INVALID_FILTER)
        );
        assert_eq!(Error::from(wire::Error::BadLength).vdp_reason(), None);
        assert_eq!(
            Error::from(ApiMisuse::VsiBusy).counter(),
            Counter::ApiMisuse
        );
        assert_eq!(
            Error::from(PeerIncompatible::SameRole).to_string(),
            "peer incompatible: same_role"
        );
        for error in wire::Error::ALL {
            assert_eq!(
                Counter::Invalid(error).as_str(),
                format!("invalid_{}", error.as_str())
            );
        }
    }
}
