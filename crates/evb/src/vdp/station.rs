//! The VDP station: one per uplink (or S-channel) of a hypervisor.
//!
//! Per VSI it is either waiting for the bridge's answer to a request or keep-alive (at most
//! the station response wait, 1.5 x ((1 + 2R) x T(RTE) + T(RWD))), or bound in a mode and
//! refreshing it every T(RKA). Rules after lldpad (`PROTOCOL_NOTES.md` 7.5, 7.6): a VSI with an
//! exchange in flight takes no new request; its mode may stay or rise (pre-associate <
//! pre-associate with RR < associate) but not fall; de-associate needs a known VSI; migration
//! hints are taken when the VSI is created. An answer must name the same VSI, type, version and
//! filters (a VID the station sent as 0 may come back filled in: the station adopts it, and
//! uses it from then on). A request that gets no answer is sent again up to
//! [`StationConfig::retries`] times, then the VSI is dropped, as lldpad drops it.

use std::collections::{BTreeMap, VecDeque};

use wire::{
    MacAddr,
    vdp::{self, Filters, Id16, Mode, Reason, Status, Vsi, VsiIdFormat},
};

use super::{DeassociateCause, VsiKey, check_filters, vdpdu};
use crate::{
    ApiMisuse, Counter, Counters, Engine, Instant, PeerMisbehaved, Timing, Transmit,
    ecp::{self, Ecp},
};

/// What a VDP station needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationConfig {
    /// The port's MAC address.
    pub local_mac: MacAddr,
    /// ECP's sequence number before the first (see [`ecp::Config::initial_sequence`]).
    pub initial_sequence: u16,
    /// R, RTE, RWD and RKA (from the EVB TLV negotiation, or defaults).
    pub timing: Timing,
    /// Whether group ID filter formats were negotiated (BGID and SGID).
    pub group_ids: bool,
    /// How often a request or keep-alive that got no answer is sent again (lldpad: never).
    pub retries: u8,
}

/// Everything a station says about a VSI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VsiSpec {
    /// The VSI Manager ID (the VSI type database to ask).
    pub manager_id: Id16,
    /// The VSI type ID (24 bits).
    pub type_id: u32,
    /// The VSI type version.
    pub type_version: u8,
    /// How to read `id`.
    pub id_format: VsiIdFormat,
    /// The VSI ID.
    pub id: Id16,
    /// The filters; a VID of 0 asks the bridge to assign one.
    pub filters: Filters,
    /// M-bit: the VSI is migrating to this station.
    pub migrate_to: bool,
    /// S-bit: the VSI is migrating away from (suspended on) this station.
    pub migrate_from: bool,
}

impl VsiSpec {
    /// The VSI's key.
    pub const fn key(&self) -> VsiKey {
        VsiKey {
            id_format: self.id_format,
            id: self.id,
        }
    }

    /// The VSI TLV asking for `mode`.
    fn tlv(&self, mode: Mode) -> Vsi {
        Vsi {
            mode,
            status: Status::Request {
                migrate_from: self.migrate_from,
                migrate_to: self.migrate_to,
            },
            type_id: self.type_id,
            type_version: self.type_version,
            id_format: self.id_format,
            id: self.id,
            filters: self.filters.clone(),
        }
    }

    /// True when `answer` answers this VSI: same manager, type, version and filters, where a
    /// VID we sent as 0 may be anything and, unless we set PS, the PCP may differ.
    fn answered_by(&self, manager_id: &Id16, answer: &Vsi) -> bool {
        if *manager_id != self.manager_id
            || answer.type_id != self.type_id
            || answer.type_version != self.type_version
            || answer.filters.format() != self.filters.format()
            || answer.filters.len() != self.filters.len()
        {
            return false;
        }
        (0..self.filters.len()).all(|index| {
            match (self.filters.entry(index), answer.filters.entry(index)) {
                (Some((group, mac, ours)), Some((their_group, their_mac, theirs))) => {
                    group == their_group
                        && mac == their_mac
                        && (ours.vid == 0 || ours.vid == theirs.vid)
                        && (!ours.ps || (ours.ps == theirs.ps && ours.pcp == theirs.pcp))
                }
                _ => false,
            }
        })
    }

    /// Takes the VIDs (and, where we did not set PS, the PCPs) the bridge answered with.
    fn adopt(&mut self, answer: &Filters) {
        let theirs: Vec<vdp::Vlan> = answer.vlans().collect();
        let mut index = 0;
        self.filters.for_each_vlan_mut(|ours| {
            if let Some(their) = theirs.get(index) {
                if ours.vid == 0 {
                    ours.vid = their.vid;
                }
                if !ours.ps {
                    ours.pcp = their.pcp;
                }
            }
            index += 1;
        });
    }
}

/// What the station tells its driver (and, through it, the hypervisor's switch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationEvent {
    /// The bridge pre-associated the VSI.
    PreAssociated {
        /// The VSI.
        key: VsiKey,
        /// The filters in force, with any VLAN the bridge assigned.
        filters: Filters,
        /// Resources are reserved (pre-associate with RR).
        reserved: bool,
    },
    /// The bridge associated the VSI: its traffic may flow, with these filters.
    Associated {
        /// The VSI.
        key: VsiKey,
        /// The filters in force, with any VLAN the bridge assigned.
        filters: Filters,
    },
    /// The VSI is gone.
    Deassociated {
        /// The VSI.
        key: VsiKey,
        /// Who ended it.
        cause: DeassociateCause,
    },
    /// The bridge refused a request.
    Refused {
        /// The VSI.
        key: VsiKey,
        /// The bridge's error code.
        reason: Reason,
        /// The bridge set the hard-error bit.
        hard: bool,
        /// The mode the VSI stays in (the bridge set Keep); `None` when the VSI is gone.
        kept: Option<Mode>,
    },
    /// The bridge did not answer a request or keep-alive, retries included: the VSI is gone.
    TimedOut {
        /// The VSI.
        key: VsiKey,
    },
}

/// Where a VSI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A request (or keep-alive, when `previous` is `mode`) is out; the answer is due by
    /// `deadline`.
    Waiting {
        mode: Mode,
        previous: Option<Mode>,
        deadline: Instant,
        retries_left: u8,
    },
    /// Bound in `mode`; refreshed at `refresh`.
    Bound { mode: Mode, refresh: Instant },
}

#[derive(Debug, Clone)]
struct StationVsi {
    spec: VsiSpec,
    state: State,
}

/// The VDP station of one port.
#[derive(Debug)]
pub struct Station {
    config: StationConfig,
    ecp: Ecp,
    vsis: BTreeMap<VsiKey, StationVsi>,
    events: VecDeque<StationEvent>,
    counters: Counters,
}

impl Station {
    /// A station with no VSI.
    pub fn new(config: StationConfig) -> Self {
        Self {
            ecp: Ecp::new(ecp::Config::vdp(
                config.local_mac,
                config.initial_sequence,
                config.timing,
            )),
            config,
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

    /// Asks the bridge to pre-associate a VSI (with resource reservation when `reserve`).
    pub fn pre_associate(
        &mut self,
        now: Instant,
        spec: VsiSpec,
        reserve: bool,
    ) -> Result<(), ApiMisuse> {
        let mode = if reserve {
            Mode::PreAssociateWithRr
        } else {
            Mode::PreAssociate
        };
        self.request(now, mode, spec)
    }

    /// Asks the bridge to associate a VSI. For a VSI the station already has, only the mode
    /// changes: its filters (with any VLAN the bridge assigned) and hints stay.
    pub fn associate(&mut self, now: Instant, spec: VsiSpec) -> Result<(), ApiMisuse> {
        self.request(now, Mode::Associate, spec)
    }

    /// Asks the bridge to de-associate a VSI.
    pub fn deassociate(&mut self, now: Instant, key: &VsiKey) -> Result<(), ApiMisuse> {
        let spec = self
            .vsis
            .get(key)
            .map(|vsi| vsi.spec.clone())
            .ok_or(ApiMisuse::UnknownVsi)?;
        self.request(now, Mode::Deassociate, spec)
    }

    /// The filters of a VSI (with any VLAN the bridge assigned) and the mode it is bound in,
    /// `None` for the mode while an exchange is in flight.
    pub fn vsi(&self, key: &VsiKey) -> Option<(&Filters, Option<Mode>)> {
        self.vsis.get(key).map(|vsi| {
            let mode = match vsi.state {
                State::Bound { mode, .. } => Some(mode),
                State::Waiting { .. } => None,
            };
            (&vsi.spec.filters, mode)
        })
    }

    /// Every VSI the station has, bound or with an exchange in flight.
    pub fn vsi_keys(&self) -> impl Iterator<Item = VsiKey> + '_ {
        self.vsis.keys().copied()
    }

    fn request(&mut self, now: Instant, mode: Mode, spec: VsiSpec) -> Result<(), ApiMisuse> {
        let key = spec.key();
        let (spec, previous) = match self.vsis.get(&key) {
            None if mode == Mode::Deassociate => return Err(ApiMisuse::UnknownVsi),
            None => {
                check_filters(&spec.filters, self.config.group_ids).map_err(
                    |error| match error {
                        PeerMisbehaved::VdpGroupIdsNotNegotiated => {
                            ApiMisuse::GroupIdsNotNegotiated
                        }
                        _ => ApiMisuse::InvalidFilter,
                    },
                )?;
                (spec, None)
            }
            Some(StationVsi {
                state: State::Waiting { .. },
                ..
            }) => return Err(ApiMisuse::VsiBusy),
            Some(StationVsi {
                spec,
                state: State::Bound { mode: bound, .. },
            }) => {
                if mode < *bound {
                    return Err(ApiMisuse::ModeDowngrade);
                }
                (spec.clone(), Some(*bound))
            }
        };
        self.start(now, key, spec, mode, previous, self.config.retries);
        Ok(())
    }

    /// Sends the TLV for `mode` and waits for the answer.
    fn start(
        &mut self,
        now: Instant,
        key: VsiKey,
        spec: VsiSpec,
        mode: Mode,
        previous: Option<Mode>,
        retries_left: u8,
    ) {
        self.send(&spec, mode);
        let deadline = now + self.config.timing.station_response_wait();
        self.vsis.insert(
            key,
            StationVsi {
                spec,
                state: State::Waiting {
                    mode,
                    previous,
                    deadline,
                    retries_left,
                },
            },
        );
    }

    fn send(&mut self, spec: &VsiSpec, mode: Mode) {
        match vdpdu(spec.manager_id, spec.tlv(mode)) {
            // A VDPDU is far below ECP's limit; `send` cannot refuse it.
            Ok(bytes) => {
                let _ = self.ecp.send(bytes);
            }
            Err(error) => self.counters.error(error),
        }
    }

    fn handle_vdpdu(&mut self, now: Instant, payload: &[u8]) {
        let repr = match vdp::Repr::parse(payload) {
            Ok(repr) => repr,
            Err(error) => return self.counters.error(error),
        };
        for tlv in repr.tlvs {
            match tlv {
                vdp::Tlv::Vsi(vsi) => self.handle_answer(now, &repr.manager_id, &vsi),
                vdp::Tlv::Other { .. } => self.counters.error(PeerMisbehaved::VdpUnknownTlv),
            }
        }
    }

    fn handle_answer(&mut self, now: Instant, manager_id: &Id16, answer: &Vsi) {
        let key = VsiKey::of(answer);
        let Some(vsi) = self.vsis.get_mut(&key) else {
            return self.counters.error(PeerMisbehaved::VdpUnknownVsi);
        };
        if !vsi.spec.answered_by(manager_id, answer) {
            return self.counters.error(PeerMisbehaved::VdpResponseMismatch);
        }
        let (keep, hard, reason) = match answer.status {
            Status::Request { .. } if answer.mode == Mode::Deassociate => {
                // The bridge de-associated the VSI on its own (keep-alive timeout, operator).
                self.vsis.remove(&key);
                self.events.push_back(StationEvent::Deassociated {
                    key,
                    cause: DeassociateCause::Bridge,
                });
                return;
            }
            Status::Request { .. } => {
                return self.counters.error(PeerMisbehaved::VdpUnexpectedStatus);
            }
            Status::Response {
                keep,
                hard_error,
                reason,
            } => (keep, hard_error, reason),
        };
        let State::Waiting { mode, previous, .. } = vsi.state else {
            // A late or repeated answer.
            return self.counters.error(PeerMisbehaved::VdpUnexpectedStatus);
        };
        if reason != Reason::SUCCESS {
            // lldpad ignores Keep and Hard when the code is 0; so does this.
            self.counters.add(Counter::VdpRejected);
            let kept = previous.filter(|_| keep && mode != Mode::Deassociate);
            match kept {
                Some(mode) => {
                    vsi.state = State::Bound {
                        mode,
                        refresh: now + self.config.timing.keep_alive(),
                    };
                }
                None => {
                    self.vsis.remove(&key);
                }
            }
            self.events.push_back(StationEvent::Refused {
                key,
                reason,
                hard,
                kept,
            });
            return;
        }
        vsi.spec.adopt(&answer.filters);
        if answer.mode == Mode::Deassociate {
            self.vsis.remove(&key);
            let cause = if mode == Mode::Deassociate {
                DeassociateCause::Station
            } else {
                DeassociateCause::Bridge
            };
            self.events
                .push_back(StationEvent::Deassociated { key, cause });
            return;
        }
        vsi.state = State::Bound {
            mode: answer.mode,
            refresh: now + self.config.timing.keep_alive(),
        };
        if previous == Some(answer.mode) {
            // A keep-alive answered: nothing new to tell.
            return;
        }
        let filters = vsi.spec.filters.clone();
        self.events.push_back(match answer.mode {
            Mode::Associate => StationEvent::Associated { key, filters },
            mode => StationEvent::PreAssociated {
                key,
                filters,
                reserved: mode == Mode::PreAssociateWithRr,
            },
        });
    }

    fn drain_ecp(&mut self, now: Instant) {
        while let Some(event) = self.ecp.poll_event() {
            match event {
                ecp::Event::Received(payload) => self.handle_vdpdu(now, &payload),
                // As lldpad: a request ECP gave up on is left to the response timer.
                ecp::Event::Delivered(_) | ecp::Event::Failed(_) => {}
            }
        }
    }
}

impl Engine for Station {
    type Event = StationEvent;

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.ecp.handle_frame(now, frame);
        self.drain_ecp(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ecp.handle_timeout(now);
        self.drain_ecp(now);
        let due: Vec<(VsiKey, State)> = self
            .vsis
            .iter()
            .filter(|(_, vsi)| match vsi.state {
                State::Waiting { deadline, .. } => deadline <= now,
                State::Bound { refresh, .. } => refresh <= now,
            })
            .map(|(key, vsi)| (*key, vsi.state))
            .collect();
        for (key, state) in due {
            let Some(vsi) = self.vsis.get(&key) else {
                continue;
            };
            let spec = vsi.spec.clone();
            match state {
                State::Waiting {
                    retries_left: 0, ..
                } => {
                    self.counters.add(Counter::VdpResponseTimeout);
                    self.vsis.remove(&key);
                    self.events.push_back(StationEvent::TimedOut { key });
                }
                State::Waiting {
                    mode,
                    previous,
                    retries_left,
                    ..
                } => {
                    self.counters.add(Counter::VdpRetry);
                    self.start(now, key, spec, mode, previous, retries_left - 1);
                }
                State::Bound { mode, .. } => {
                    // The keep-alive: the same TLV again, assigned VIDs and hints included.
                    self.start(now, key, spec, mode, Some(mode), self.config.retries);
                }
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.ecp.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let vsis = self
            .vsis
            .values()
            .map(|vsi| match vsi.state {
                State::Waiting { deadline, .. } => deadline,
                State::Bound { refresh, .. } => refresh,
            })
            .min();
        match (self.ecp.poll_timeout(), vsis) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<StationEvent> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        let mut counters = self.counters.clone();
        counters.merge(&self.ecp.counters());
        counters
    }
}
