//! The VDP bridge: one per station-facing port (or S-channel).
//!
//! Per VSI it keeps one state ([`VsiState`]): waiting for the policy's answer (the resource
//! wait, at most T(RWD)), or bound in a mode with the profile the policy gave. A request in the
//! bound mode with the same content is a keep-alive: answered, and the keep-alive deadline
//! moves. A VSI that is not refreshed within the keep-alive timeout is de-associated by the
//! bridge, as is one the operator removes ([`Bridge::deassociate`]).
//!
//! Answers (`PROTOCOL_NOTES.md` 7.5-7.7): success echoes the request with bit 0x40, VIDs the
//! station left 0 filled in from the profile; a refused new VSI gets De-Associate + error code
//! (a Keep answer to a new VSI leaves lldpad hanging); a refused change to a bound VSI gets the
//! request's mode with Keep + error code, and the VSI stays as it was; a De-Associate for an
//! unknown VSI is acknowledged.

use std::collections::{BTreeMap, VecDeque};

use wire::{
    MacAddr,
    vdp::{self, Id16, Mode, Reason, Status, Vsi},
};

use super::{DeassociateCause, VsiKey, check_filters, vdpdu};
use crate::{
    ApiMisuse, Counter, Counters, Engine, Error, Instant, PeerMisbehaved, Timing, Transmit,
    ecp::{self, Ecp},
};

/// What a VDP bridge needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The port's MAC address.
    pub local_mac: MacAddr,
    /// ECP's sequence number before the first (see [`ecp::Config::initial_sequence`]).
    pub initial_sequence: u16,
    /// R, RTE, RWD and RKA (from the EVB TLV negotiation, or defaults).
    pub timing: Timing,
    /// Whether group ID filter formats were negotiated (BGID and SGID).
    pub group_ids: bool,
}

/// What the bridge gives an accepted VSI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Profile {
    /// The VLAN the VSI's traffic uses: filled in wherever the station sent VID 0. `None`
    /// leaves VID 0 as it is (lldpad's own bridge never assigns).
    pub vid: Option<u16>,
}

/// Why and how a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// The error code the station gets.
    pub reason: Reason,
    /// Retrying will not help (the hard-error bit).
    pub hard: bool,
}

impl Refusal {
    /// A soft refusal with `reason`.
    pub const fn new(reason: Reason) -> Self {
        Self {
            reason,
            hard: false,
        }
    }
}

/// A policy's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Let the VSI (pre-)associate with this profile.
    Accept(Profile),
    /// Refuse it.
    Refuse(Refusal),
    /// Answer later through [`Bridge::decide`], within T(RWD); after that the bridge answers
    /// "unable to contact the VSI manager" itself.
    Defer,
}

/// A request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct VsiRequest<'a> {
    /// The VSI Manager ID the station named.
    pub manager_id: &'a Id16,
    /// The VSI TLV: mode, type ID and version, VSI ID, filters, migration hints.
    pub vsi: &'a Vsi,
}

/// Decides whether a VSI may (pre-)associate: later the controller's VSI type database.
pub trait VsiPolicy {
    /// Answers a pre-associate, pre-associate-with-RR or associate request (de-associates
    /// are not asked about).
    fn check(&mut self, request: &VsiRequest<'_>) -> Decision;
}

impl<F: FnMut(&VsiRequest<'_>) -> Decision> VsiPolicy for F {
    fn check(&mut self, request: &VsiRequest<'_>) -> Decision {
        self(request)
    }
}

/// What the bridge tells its driver (and, through it, the controller and the switch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// A VSI is pre-associated: known and checked, its traffic not let in yet.
    PreAssociated {
        /// The VSI.
        key: VsiKey,
        /// The answer sent, filters with any assigned VLAN.
        vsi: Vsi,
        /// What the policy gave it.
        profile: Profile,
        /// The station asked to reserve resources (pre-associate with RR).
        reserved: bool,
    },
    /// A VSI is associated: let its traffic in, with exactly these filters.
    Associated {
        /// The VSI.
        key: VsiKey,
        /// The answer sent, filters with any assigned VLAN.
        vsi: Vsi,
        /// What the policy gave it.
        profile: Profile,
    },
    /// A VSI is gone: stop its traffic.
    Deassociated {
        /// The VSI.
        key: VsiKey,
        /// Why.
        cause: DeassociateCause,
    },
    /// A request was refused.
    Refused {
        /// The VSI.
        key: VsiKey,
        /// The refusal sent.
        refusal: Refusal,
        /// The mode the VSI stays in; `None` when the bridge does not have it.
        kept: Option<Mode>,
    },
}

/// A bound VSI as the driver can list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The VSI.
    pub key: VsiKey,
    /// The VSI Manager ID.
    pub manager_id: Id16,
    /// Pre-associated (with or without RR) or associated.
    pub mode: Mode,
    /// The last answer sent.
    pub vsi: Vsi,
    /// What the policy gave it.
    pub profile: Profile,
}

/// A VSI in a mode, with the profile the policy gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    manager_id: Id16,
    mode: Mode,
    /// The filters as the station first sent them (VIDs possibly 0).
    requested: vdp::Filters,
    /// The answer sent (VIDs assigned).
    answer: Vsi,
    profile: Profile,
    keep_alive_deadline: Instant,
}

/// The state of one VSI.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VsiState {
    /// The policy deferred: waiting for [`Bridge::decide`] until `deadline` (T(RWD)).
    Deciding {
        manager_id: Id16,
        request: Vsi,
        previous: Option<Bound>,
        deadline: Instant,
    },
    /// Pre-associated or associated.
    Bound(Bound),
}

/// The VDP bridge of one port.
#[derive(Debug)]
pub struct Bridge<P: VsiPolicy> {
    config: BridgeConfig,
    ecp: Ecp,
    policy: P,
    vsis: BTreeMap<VsiKey, VsiState>,
    events: VecDeque<BridgeEvent>,
    counters: Counters,
}

impl<P: VsiPolicy> Bridge<P> {
    /// A bridge with no VSI, asking `policy`.
    pub fn new(config: BridgeConfig, policy: P) -> Self {
        Self {
            ecp: Ecp::new(ecp::Config::vdp(
                config.local_mac,
                config.initial_sequence,
                config.timing,
            )),
            config,
            policy,
            vsis: BTreeMap::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Uses new timers (after the EVB TLV negotiation); running deadlines keep their time.
    pub fn set_timing(&mut self, timing: Timing) {
        self.config.timing = timing;
        self.ecp.set_timing(timing);
    }

    /// Allows or forbids the group ID filter formats (after the EVB TLV negotiation).
    pub fn set_group_ids(&mut self, group_ids: bool) {
        self.config.group_ids = group_ids;
    }

    /// The policy, to change it.
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The VSIs pre-associated or associated now (those awaiting a deferred decision are not).
    pub fn associations(&self) -> impl Iterator<Item = Association> + '_ {
        self.vsis.iter().filter_map(|(key, state)| match state {
            VsiState::Bound(bound) => Some(Association {
                key: *key,
                manager_id: bound.manager_id,
                mode: bound.mode,
                vsi: bound.answer.clone(),
                profile: bound.profile,
            }),
            VsiState::Deciding { .. } => None,
        })
    }

    /// Every VSI the bridge has: bound, or awaiting a deferred decision.
    pub fn vsi_keys(&self) -> impl Iterator<Item = VsiKey> + '_ {
        self.vsis.keys().copied()
    }

    /// The policy's late answer to a request it deferred.
    pub fn decide(
        &mut self,
        now: Instant,
        key: &VsiKey,
        decision: Result<Profile, Refusal>,
    ) -> Result<(), ApiMisuse> {
        let (manager_id, request, previous) = match self.vsis.remove(key) {
            Some(VsiState::Deciding {
                manager_id,
                request,
                previous,
                ..
            }) => (manager_id, request, previous),
            Some(bound) => {
                self.vsis.insert(*key, bound);
                return Err(ApiMisuse::NotDeciding);
            }
            None => return Err(ApiMisuse::NotDeciding),
        };
        match decision {
            Ok(profile) => self.bind(now, manager_id, &request, profile),
            Err(refusal) => self.refuse(now, manager_id, &request, refusal, previous),
        }
        Ok(())
    }

    /// De-associates a VSI from the bridge side (the operator, or the controller, removed it):
    /// an unsolicited De-Associate goes to the station.
    pub fn deassociate(&mut self, key: &VsiKey) -> Result<(), ApiMisuse> {
        let state = self.vsis.remove(key).ok_or(ApiMisuse::UnknownVsi)?;
        self.end(key, state, DeassociateCause::Bridge);
        Ok(())
    }

    /// Sends an unsolicited De-Associate for a VSI already removed from the table.
    fn end(&mut self, key: &VsiKey, state: VsiState, cause: DeassociateCause) {
        let (manager_id, vsi) = match state {
            VsiState::Bound(bound) => (bound.manager_id, bound.answer),
            VsiState::Deciding {
                manager_id,
                request,
                previous,
                ..
            } => (manager_id, previous.map_or(request, |bound| bound.answer)),
        };
        self.send(manager_id, vsi.answer(Mode::Deassociate, Status::REQUEST));
        self.events
            .push_back(BridgeEvent::Deassociated { key: *key, cause });
    }

    fn send(&mut self, manager_id: Id16, vsi: Vsi) {
        match vdpdu(manager_id, vsi) {
            // A VDPDU is far below ECP's limit; `send` cannot refuse it.
            Ok(bytes) => {
                let _ = self.ecp.send(bytes);
            }
            Err(error) => self.counters.error(error),
        }
    }

    /// Reads a VDPDU delivered by ECP.
    fn handle_vdpdu(&mut self, now: Instant, payload: &[u8]) {
        let repr = match vdp::Repr::parse(payload) {
            Ok(repr) => repr,
            Err(error) => return self.counters.error(error),
        };
        for tlv in repr.tlvs {
            match tlv {
                vdp::Tlv::Vsi(vsi) => self.handle_request(now, repr.manager_id, vsi),
                // Org TLVs (Cisco's, say) and unknown types are skipped, as lldpad does.
                vdp::Tlv::Other { .. } => self.counters.error(PeerMisbehaved::VdpUnknownTlv),
            }
        }
    }

    fn handle_request(&mut self, now: Instant, manager_id: Id16, vsi: Vsi) {
        if vsi.status.is_response() {
            return self.counters.error(PeerMisbehaved::VdpUnexpectedStatus);
        }
        let key = VsiKey::of(&vsi);
        if vsi.mode == Mode::Deassociate {
            return self.station_deassociates(key, manager_id, &vsi);
        }
        let previous = match self.vsis.remove(&key) {
            // Still deciding: the answer will come; a repeated request changes nothing.
            Some(deciding @ VsiState::Deciding { .. }) => {
                self.vsis.insert(key, deciding);
                return;
            }
            Some(VsiState::Bound(mut bound)) => {
                if bound.mode == vsi.mode
                    && bound.manager_id == manager_id
                    && bound.answer.type_id == vsi.type_id
                    && bound.answer.type_version == vsi.type_version
                    && (vsi.filters == bound.answer.filters || vsi.filters == bound.requested)
                {
                    // A keep-alive: answer it, lldpad drops a VSI whose keep-alive goes
                    // unanswered.
                    bound.keep_alive_deadline =
                        now + self.config.timing.bridge_keep_alive_timeout();
                    let answer = bound.answer.clone();
                    self.vsis.insert(key, VsiState::Bound(bound));
                    return self.send(manager_id, answer);
                }
                Some(bound)
            }
            None => None,
        };
        if let Err(error) = check_filters(&vsi.filters, self.config.group_ids) {
            self.counters.error(error);
            let reason = Error::from(error)
                .vdp_reason()
                .unwrap_or(Reason::INVALID_FORMAT);
            return self.refuse(now, manager_id, &vsi, Refusal::new(reason), previous);
        }
        let decision = self.policy.check(&VsiRequest {
            manager_id: &manager_id,
            vsi: &vsi,
        });
        match decision {
            Decision::Accept(profile) => self.bind(now, manager_id, &vsi, profile),
            Decision::Refuse(refusal) => self.refuse(now, manager_id, &vsi, refusal, previous),
            Decision::Defer => {
                let deadline = now + self.config.timing.resource_wait();
                self.vsis.insert(
                    key,
                    VsiState::Deciding {
                        manager_id,
                        request: vsi,
                        previous,
                        deadline,
                    },
                );
            }
        }
    }

    fn station_deassociates(&mut self, key: VsiKey, manager_id: Id16, vsi: &Vsi) {
        match self.vsis.remove(&key) {
            Some(VsiState::Bound(_)) => self.events.push_back(BridgeEvent::Deassociated {
                key,
                cause: DeassociateCause::Station,
            }),
            // Withdrawn before the policy answered: the driver never heard of it as bound.
            Some(VsiState::Deciding { .. }) => {}
            // lldpad's bridge acknowledges a De-Associate for a VSI it does not have.
            None => self.counters.error(PeerMisbehaved::VdpUnknownVsi),
        }
        self.send(manager_id, vsi.answer(Mode::Deassociate, Status::SUCCESS));
    }

    /// Accepts a request: assigns VIDs, answers, records the VSI.
    fn bind(&mut self, now: Instant, manager_id: Id16, request: &Vsi, profile: Profile) {
        let mut answer = request.answer(request.mode, Status::SUCCESS);
        if let Some(vid) = profile.vid {
            answer.filters.for_each_vlan_mut(|vlan| {
                if vlan.vid == 0 {
                    vlan.vid = vid;
                }
            });
        }
        let key = VsiKey::of(request);
        self.send(manager_id, answer.clone());
        self.events.push_back(match request.mode {
            Mode::Associate => BridgeEvent::Associated {
                key,
                vsi: answer.clone(),
                profile,
            },
            mode => BridgeEvent::PreAssociated {
                key,
                vsi: answer.clone(),
                profile,
                reserved: mode == Mode::PreAssociateWithRr,
            },
        });
        self.vsis.insert(
            key,
            VsiState::Bound(Bound {
                manager_id,
                mode: request.mode,
                requested: request.filters.clone(),
                answer,
                profile,
                keep_alive_deadline: now + self.config.timing.bridge_keep_alive_timeout(),
            }),
        );
    }

    /// Refuses a request; a bound VSI stays as it was (Keep), a new one is told De-Associate.
    fn refuse(
        &mut self,
        now: Instant,
        manager_id: Id16,
        request: &Vsi,
        refusal: Refusal,
        previous: Option<Bound>,
    ) {
        self.counters.add(Counter::VdpRejected);
        let key = VsiKey::of(request);
        let status = |keep| Status::Response {
            keep,
            hard_error: refusal.hard,
            reason: refusal.reason,
        };
        let kept = match previous {
            Some(mut bound) => {
                self.send(manager_id, request.answer(request.mode, status(true)));
                let mode = bound.mode;
                bound.keep_alive_deadline = now + self.config.timing.bridge_keep_alive_timeout();
                self.vsis.insert(key, VsiState::Bound(bound));
                Some(mode)
            }
            None => {
                self.send(manager_id, request.answer(Mode::Deassociate, status(false)));
                None
            }
        };
        self.events
            .push_back(BridgeEvent::Refused { key, refusal, kept });
    }

    fn drain_ecp(&mut self, now: Instant) {
        while let Some(event) = self.ecp.poll_event() {
            match event {
                ecp::Event::Received(payload) => self.handle_vdpdu(now, &payload),
                // A lost answer: the station asks again or times out; nothing to do here.
                ecp::Event::Delivered(_) | ecp::Event::Failed(_) => {}
            }
        }
    }

    /// The earliest VSI deadline.
    fn next_vsi_deadline(&self) -> Option<Instant> {
        self.vsis
            .values()
            .map(|state| match state {
                VsiState::Deciding { deadline, .. } => *deadline,
                VsiState::Bound(bound) => bound.keep_alive_deadline,
            })
            .min()
    }
}

impl<P: VsiPolicy> Engine for Bridge<P> {
    type Event = BridgeEvent;

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.ecp.handle_frame(now, frame);
        self.drain_ecp(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ecp.handle_timeout(now);
        self.drain_ecp(now);
        let due: Vec<VsiKey> = self
            .vsis
            .iter()
            .filter(|(_, state)| match state {
                VsiState::Deciding { deadline, .. } => *deadline <= now,
                VsiState::Bound(bound) => bound.keep_alive_deadline <= now,
            })
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            match self.vsis.remove(&key) {
                Some(VsiState::Deciding {
                    manager_id,
                    request,
                    previous,
                    ..
                }) => {
                    // The VSI manager did not answer within T(RWD).
                    self.counters.add(Counter::VdpResourceTimeout);
                    let refusal = Refusal::new(Reason::VSI_MANAGER_UNREACHABLE);
                    self.refuse(now, manager_id, &request, refusal, previous);
                }
                Some(state @ VsiState::Bound(_)) => {
                    self.counters.add(Counter::VdpKeepAliveTimeout);
                    self.end(&key, state, DeassociateCause::KeepAliveTimeout);
                }
                None => {}
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.ecp.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.ecp.poll_timeout(), self.next_vsi_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<BridgeEvent> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        let mut counters = self.counters.clone();
        counters.merge(&self.ecp.counters());
        counters
    }
}
