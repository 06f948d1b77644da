//! The LLDP agent of an EVB port (802.1Qbg-2012 D.2.13): it advertises the EVB TLV to the
//! Nearest Customer Bridge address, reads the peer's, and negotiates reflective relay, group ID
//! support and the ECP/VDP timers, the way lldpad does (`PROTOCOL_NOTES.md` section 3):
//!
//! * a bridge sets RRCAP and BGID from its configuration, RRCTRL when it can do reflective relay
//!   and the station asks for it (RRREQ), and echoes the station's status octet;
//! * a station sets RRREQ and SGID from its configuration, RRSTAT to "unknown" until it hears a
//!   bridge and then to the bridge's RRCTRL, and echoes the bridge's status octet;
//! * both use and advertise the larger of their own and the peer's R, RTE, RWD and RKA, with the
//!   ROL bit set when the peer's RWD or RKA is in use (equal values included).
//!
//! It sends when its TLV changes (at most once a second) and every 30 s, not in reply to every
//! LLDPDU: two lldpads answer each other about once a second (capture 02). It also answers a
//! peer whose TLV does not echo our status octet as it is: that peer has not heard us (it
//! restarted, say), and the 30 s timer would leave it waiting.

use std::collections::VecDeque;

use wire::{
    EtherType, MacAddr, ethernet,
    evb::{self, BridgeStatus, EvbMode, RrStatus, StationStatus},
    lldp::{self, NEAREST_CUSTOMER_BRIDGE},
};

use crate::{
    Counter, Counters, Engine, Instant, PeerIncompatible, Role, Timing, Transmit,
    frame::{self, TTL_SECS, TxSchedule},
};

/// What the agent advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bridge or station.
    pub role: Role,
    /// The port's MAC address: the frames' source, Chassis ID and Port ID.
    pub local_mac: MacAddr,
    /// Our own R, RTE, RWD and RKA.
    pub timing: Timing,
    /// A bridge: it can do reflective relay (RRCAP). A station: it asks for it (RRREQ).
    pub reflective_relay: bool,
    /// A bridge: it supports VSI group IDs (BGID). A station: it wants them (SGID).
    pub group_ids: bool,
}

/// What the two EVB TLVs settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The timers ECP and VDP use from now on.
    pub timing: Timing,
    /// Reflective relay is on for the port (the bridge's RRCTRL).
    pub reflective_relay: bool,
    /// VDP may use the group ID filter formats (BGID and SGID).
    pub group_ids: bool,
}

/// What the agent tells its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The negotiated values changed (or were settled for the first time).
    Negotiated(Negotiated),
    /// The peer's information is gone: its TTL passed or it announced its shutdown. The
    /// negotiated values are back to our own.
    PeerLost,
}

/// The peer's last EVB TLV.
#[derive(Debug, Clone, Copy)]
struct Remote {
    tlv: evb::Repr,
    expires: Instant,
}

/// The LLDP agent of one EVB port.
#[derive(Debug, Clone)]
pub struct Agent {
    config: Config,
    remote: Option<Remote>,
    schedule: TxSchedule,
    local: evb::Repr,
    negotiated: Negotiated,
    shutdown: Shutdown,
    events: VecDeque<Event>,
    counters: Counters,
}

/// Whether the agent is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    Running,
    /// The TTL-0 LLDPDU is still to be sent.
    Announce,
    Done,
}

impl Agent {
    /// An agent that sends its first LLDPDU at the first `poll_transmit`.
    pub fn new(config: Config) -> Self {
        let mut agent = Self {
            config,
            remote: None,
            schedule: TxSchedule::new(),
            local: local_tlv(&config, None),
            negotiated: negotiate(&config, None),
            shutdown: Shutdown::Running,
            events: VecDeque::new(),
            counters: Counters::default(),
        };
        agent.update(false);
        agent
    }

    /// The values in force now.
    pub const fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// The EVB TLV the agent advertises now.
    pub const fn local_tlv(&self) -> evb::Repr {
        self.local
    }

    /// The peer's last EVB TLV, if it has one that has not aged out.
    pub fn remote_tlv(&self) -> Option<evb::Repr> {
        self.remote.map(|remote| remote.tlv)
    }

    /// Stops the agent: one last LLDPDU with TTL 0 tells the peer to forget us, then nothing.
    pub fn shutdown(&mut self) {
        if self.shutdown == Shutdown::Running {
            self.shutdown = Shutdown::Announce;
        }
    }

    /// Recomputes our TLV and the negotiated values after the remote TLV changed; announces
    /// the values when they changed or when `found` (a peer appeared).
    fn update(&mut self, found: bool) {
        let remote = self.remote.map(|remote| remote.tlv);
        let local = local_tlv(&self.config, remote.as_ref());
        if local != self.local {
            self.local = local;
            self.schedule.changed();
        }
        let negotiated = negotiate(&self.config, remote.as_ref());
        if negotiated != self.negotiated || found {
            self.negotiated = negotiated;
            self.events.push_back(Event::Negotiated(negotiated));
        }
    }

    fn lose_peer(&mut self, counter: Counter) {
        if self.remote.take().is_some() {
            self.counters.add(counter);
            self.events.push_back(Event::PeerLost);
            self.update(false);
        }
    }

    /// Reads the LLDPDU of a frame already known to be LLDP to our address.
    fn handle_lldpdu(&mut self, now: Instant, lldpdu: &[u8]) {
        let repr = match lldp::Repr::parse(lldpdu) {
            Ok(repr) => repr,
            Err(error) => return self.counters.error(error),
        };
        if repr.ttl == 0 {
            return self.lose_peer(Counter::PeerShutdown);
        }
        let mut found = None;
        let mut draft = false;
        for org in repr.org_tlvs() {
            if let Some(tlv) = evb::Repr::from_org(&org) {
                found = Some(tlv);
                break;
            }
            draft |= evb::DraftRepr::from_org(&org).is_some();
        }
        let tlv = match found {
            Some(Ok(tlv)) => tlv,
            Some(Err(error)) => return self.counters.error(error),
            None if draft => return self.counters.error(PeerIncompatible::DraftEvbOnly),
            None => return self.counters.error(PeerIncompatible::NoEvbTlv),
        };
        let expected = match self.config.role {
            Role::Bridge => EvbMode::STATION,
            Role::Station => EvbMode::BRIDGE,
        };
        if tlv.mode != expected {
            return self.counters.error(PeerIncompatible::SameRole);
        }
        let found = self.remote.is_none();
        self.remote = Some(Remote {
            tlv,
            expires: now + core::time::Duration::from_secs(u64::from(repr.ttl)),
        });
        self.update(found);
        // The peer copies our status octet: one that is not ours (now) means the peer has not
        // heard our TLV, because it restarted or our last one was lost. It hears it again now
        // (a second after the last at most), not at the 30 s timer: a restarted station waits
        // for the exchange before it asks for its VSIs again, and the bridge would time them
        // out first. A peer that has heard us stops this by echoing.
        let echoed = match self.config.role {
            Role::Bridge => tlv.bridge == self.local.bridge,
            Role::Station => tlv.station == self.local.station,
        };
        if !echoed {
            self.schedule.changed();
        }
    }
}

/// The larger of ours and theirs, and whether theirs is the one used (lldpad's ROL: equal
/// values count as remote).
fn larger(local: u8, remote: Option<u8>) -> (u8, bool) {
    match remote {
        Some(remote) if remote >= local => (remote, true),
        _ => (local, false),
    }
}

/// The EVB TLV a port with `config` advertises after hearing `remote`.
fn local_tlv(config: &Config, remote: Option<&evb::Repr>) -> evb::Repr {
    let (max_retries, _) = larger(config.timing.max_retries, remote.map(|r| r.max_retries));
    let (rte, _) = larger(config.timing.rte, remote.map(|r| r.rte));
    let (rwd, rwd_remote) = larger(config.timing.rwd, remote.map(|r| r.rwd));
    let (rka, rka_remote) = larger(config.timing.rka, remote.map(|r| r.rka));
    let (bridge, station, mode) = match config.role {
        Role::Bridge => (
            BridgeStatus {
                group_ids: config.group_ids,
                rr_capable: config.reflective_relay,
                rr_enabled: config.reflective_relay
                    && remote.is_some_and(|r| r.station.rr_requested),
            },
            remote.map(|r| r.station).unwrap_or_default(),
            EvbMode::BRIDGE,
        ),
        Role::Station => (
            remote.map(|r| r.bridge).unwrap_or_default(),
            StationStatus {
                group_ids: config.group_ids,
                rr_requested: config.reflective_relay,
                rr_status: match remote {
                    None => RrStatus::UNKNOWN,
                    Some(r) if r.bridge.rr_enabled => RrStatus::ENABLED,
                    Some(_) => RrStatus::NOT_ENABLED,
                },
            },
            EvbMode::STATION,
        ),
    };
    evb::Repr {
        bridge,
        station,
        max_retries,
        rte,
        mode,
        rwd_remote,
        rwd,
        rka_remote,
        rka,
    }
}

/// What a port with `config` uses after hearing `remote`.
fn negotiate(config: &Config, remote: Option<&evb::Repr>) -> Negotiated {
    let tlv = local_tlv(config, remote);
    let timing = Timing {
        max_retries: tlv.max_retries,
        rte: tlv.rte,
        rwd: tlv.rwd,
        rka: tlv.rka,
    };
    let Some(remote) = remote else {
        return Negotiated {
            timing,
            reflective_relay: false,
            group_ids: false,
        };
    };
    let (reflective_relay, group_ids) = match config.role {
        Role::Bridge => (
            tlv.bridge.rr_enabled,
            config.group_ids && remote.station.group_ids,
        ),
        Role::Station => (
            remote.bridge.rr_enabled,
            config.group_ids && remote.bridge.group_ids,
        ),
    };
    Negotiated {
        timing,
        reflective_relay,
        group_ids,
    }
}

impl Engine for Agent {
    type Event = Event;

    fn handle_frame(&mut self, now: Instant, bytes: &[u8]) {
        self.counters.add(Counter::RxFrames);
        let Ok(eth) = ethernet::Frame::new_checked(bytes) else {
            return self.counters.error(wire::Error::Truncated);
        };
        if eth.ethertype() != EtherType::LLDP || eth.dst_addr() != NEAREST_CUSTOMER_BRIDGE {
            return self.counters.add(Counter::NotForUs);
        }
        if self.shutdown != Shutdown::Running {
            return;
        }
        self.handle_lldpdu(now, &bytes[ethernet::HEADER_LEN..]);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.remote.is_some_and(|remote| remote.expires <= now) {
            self.lose_peer(Counter::PeerExpired);
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let (ttl, tlv) = match self.shutdown {
            Shutdown::Done => return None,
            Shutdown::Announce => {
                self.shutdown = Shutdown::Done;
                (0, None)
            }
            Shutdown::Running if self.schedule.due(now) => {
                self.schedule.sent(now);
                (TTL_SECS, Some(self.local))
            }
            Shutdown::Running => return None,
        };
        let src = self.config.local_mac;
        let written = frame::lldpdu(buf, NEAREST_CUSTOMER_BRIDGE, src, ttl, |writer| {
            tlv.map_or(Ok(()), |tlv| tlv.write(writer))
        });
        let Some(len) = written else {
            self.counters.add(Counter::TxNoRoom);
            return None;
        };
        self.counters.add(Counter::TxFrames);
        Some(Transmit { len })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.remote.map(|remote| remote.expires);
        let send = match self.shutdown {
            Shutdown::Running => Some(self.schedule.deadline()),
            Shutdown::Announce => Some(Instant::ZERO),
            Shutdown::Done => None,
        };
        match (expiry, send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        self.counters.clone()
    }
}

#[cfg(test)]
#[path = "lldp_tests.rs"]
mod tests;
