//! CDCP (S-Channel Discovery and Configuration, 802.1Qbg-2012 clause 42): the station asks for
//! S-channels by SCID, the bridge grants each an S-VLAN (SVID) from its pool.
//!
//! Both ends run their own LLDP agent on the Nearest non-TPMR Bridge address, which stops at
//! the S-component (`PROTOCOL_NOTES.md` section 1), and send when their TLV changes (at most
//! once a second) and every 30 s. The procedure (section 5, after the standard's state machine
//! functions as ZTE's TECS implements them; lldpad has no CDCP):
//!
//! * the station lists every SCID it wants after the default <1,1>: with the SVID the bridge
//!   granted, or 0 to ask for one; an SCID it drops asks the bridge to remove that channel;
//! * the bridge keeps at most min(its ChnCap, the station's) channels (the default one
//!   included), keeps the SVID of every channel it already granted, gives each new SCID a free
//!   SVID from its pool (the one the station names, if free) and leaves the SCID out when the
//!   pool is empty: a partial grant. A channel the station no longer lists is removed and its
//!   SVID returns to the pool;
//! * the station takes the SVIDs the bridge lists; an SCID the bridge leaves out has none;
//! * a station listing a granted SCID without its SVID (a restarted station asking again) is
//!   answered at once, though nothing changed: the channel stays, and so do its VSIs.
//!
//! When the peer's LLDP information ages out (or it announces TTL 0) every channel goes down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use wire::{
    EtherType, MacAddr,
    cdcp::{self, Channel, MAX_12_BIT, MAX_PAIRS, Role},
    ethernet,
    lldp::{self, NEAREST_NON_TPMR_BRIDGE},
};

use crate::{
    ApiMisuse, Counter, Counters, Engine, Instant, PeerIncompatible, PeerMisbehaved, Transmit,
    frame::{self, TTL_SECS, TxSchedule},
};

/// What a CDCP engine tells its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// An S-channel is up: frames with this S-tag belong to it.
    ChannelUp {
        /// The S-channel ID.
        scid: u16,
        /// Its S-VLAN.
        svid: u16,
    },
    /// An S-channel is down; the SVID no longer carries it.
    ChannelDown {
        /// The S-channel ID.
        scid: u16,
        /// The S-VLAN it had.
        svid: u16,
    },
    /// The peer's LLDP information is gone (TTL passed or TTL 0): every channel went down.
    PeerLost,
}

/// The LLDP plumbing both ends share: address check, parsing, TTL, transmit schedule.
#[derive(Debug, Clone)]
struct Agent {
    local_mac: MacAddr,
    dst: MacAddr,
    schedule: TxSchedule,
    peer_expires: Option<Instant>,
    counters: Counters,
}

/// What an LLDPDU meant for CDCP.
enum Received {
    /// The peer's CDCP TLV.
    Tlv(cdcp::Repr),
    /// The peer said goodbye (TTL 0).
    Shutdown,
    /// Nothing for CDCP (counted where needed).
    Nothing,
}

impl Agent {
    fn new(local_mac: MacAddr, dst: MacAddr) -> Self {
        Self {
            local_mac,
            dst,
            schedule: TxSchedule::new(),
            peer_expires: None,
            counters: Counters::default(),
        }
    }

    /// Reads a frame; `peer_role` is the role a valid peer announces.
    fn receive(&mut self, now: Instant, bytes: &[u8], peer_role: Role) -> Received {
        self.counters.add(Counter::RxFrames);
        let Ok(eth) = ethernet::Frame::new_checked(bytes) else {
            self.counters.error(wire::Error::Truncated);
            return Received::Nothing;
        };
        if eth.ethertype() != EtherType::LLDP || eth.dst_addr() != self.dst {
            self.counters.add(Counter::NotForUs);
            return Received::Nothing;
        }
        let repr = match lldp::Repr::parse(&bytes[ethernet::HEADER_LEN..]) {
            Ok(repr) => repr,
            Err(error) => {
                self.counters.error(error);
                return Received::Nothing;
            }
        };
        if repr.ttl == 0 {
            return Received::Shutdown;
        }
        let mut tlvs = repr.org_tlvs().filter_map(|org| cdcp::Repr::from_org(&org));
        let Some(first) = tlvs.next() else {
            return Received::Nothing;
        };
        if tlvs.next().is_some() {
            self.counters.error(PeerMisbehaved::CdcpDuplicateTlv);
            return Received::Nothing;
        }
        let tlv = match first {
            Ok(tlv) => tlv,
            Err(error) => {
                self.counters.error(error);
                return Received::Nothing;
            }
        };
        if tlv.role != peer_role {
            self.counters.error(PeerIncompatible::SameRole);
            return Received::Nothing;
        }
        self.peer_expires = Some(now + core::time::Duration::from_secs(u64::from(repr.ttl)));
        Received::Tlv(tlv)
    }

    /// True when the peer's information aged out at `now` (it is then forgotten).
    fn peer_expired(&mut self, now: Instant) -> bool {
        if self.peer_expires.is_some_and(|expires| expires <= now) {
            self.peer_expires = None;
            self.counters.add(Counter::PeerExpired);
            return true;
        }
        false
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8], tlv: &cdcp::Repr) -> Option<Transmit> {
        if !self.schedule.due(now) {
            return None;
        }
        self.schedule.sent(now);
        let Some(len) = frame::lldpdu(buf, self.dst, self.local_mac, TTL_SECS, |writer| {
            tlv.write(writer)
        }) else {
            self.counters.add(Counter::TxNoRoom);
            return None;
        };
        self.counters.add(Counter::TxFrames);
        Some(Transmit { len })
    }

    fn poll_timeout(&self) -> Instant {
        let send = self.schedule.deadline();
        self.peer_expires.map_or(send, |expires| expires.min(send))
    }
}

/// What a CDCP bridge needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The port's MAC address.
    pub local_mac: MacAddr,
    /// The most S-channels the port supports, the default one included.
    pub chn_cap: u16,
    /// The S-VLANs the bridge may grant (2-4094; others are ignored).
    pub svids: Vec<u16>,
}

/// The CDCP bridge of one station-facing port.
#[derive(Debug, Clone)]
pub struct Bridge {
    config: BridgeConfig,
    agent: Agent,
    channels: BTreeMap<u16, u16>,
    free: BTreeSet<u16>,
    events: VecDeque<Event>,
}

impl Bridge {
    /// A bridge with no channel but the default one.
    pub fn new(config: BridgeConfig) -> Self {
        let free = config
            .svids
            .iter()
            .copied()
            .filter(|svid| (2..=4094).contains(svid))
            .collect();
        Self {
            agent: Agent::new(config.local_mac, NEAREST_NON_TPMR_BRIDGE),
            config,
            channels: BTreeMap::new(),
            free,
            events: VecDeque::new(),
        }
    }

    /// The channels granted now (SCID to SVID), the default one not included.
    pub const fn channels(&self) -> &BTreeMap<u16, u16> {
        &self.channels
    }

    fn tlv(&self) -> cdcp::Repr {
        cdcp::Repr {
            role: Role::Bridge,
            scomp: true,
            chn_cap: self.config.chn_cap.min(MAX_12_BIT),
            channels: self
                .channels
                .iter()
                .map(|(&scid, &svid)| Channel { scid, svid })
                .collect(),
        }
    }

    /// Grants what the station's TLV asks for, within capacity and pool.
    fn apply(&mut self, request: &cdcp::Repr) {
        let cap = [self.config.chn_cap, request.chn_cap, cap_u16(MAX_PAIRS)]
            .into_iter()
            .min()
            .unwrap_or(1)
            .max(1);
        let room = usize::from(cap - 1);
        let mut seen = BTreeSet::new();
        let mut wanted = Vec::new();
        for channel in &request.channels {
            if channel.scid <= cdcp::DEFAULT_SCID || !seen.insert(channel.scid) {
                self.agent.counters.error(PeerMisbehaved::CdcpInvalidScid);
                continue;
            }
            wanted.push(*channel);
        }
        if wanted.len() > room {
            self.agent
                .counters
                .error(PeerMisbehaved::CdcpTooManyChannels);
            wanted.truncate(room);
        }
        // Channels already granted keep their SVID; the others are released first, so their
        // SVIDs can go to new channels.
        let mut granted: BTreeMap<u16, u16> = wanted
            .iter()
            .filter_map(|channel| Some((channel.scid, *self.channels.get(&channel.scid)?)))
            .collect();
        let released: Vec<(u16, u16)> = self
            .channels
            .iter()
            .filter(|(scid, _)| !granted.contains_key(scid))
            .map(|(&scid, &svid)| (scid, svid))
            .collect();
        for (scid, svid) in released {
            self.free.insert(svid);
            self.events.push_back(Event::ChannelDown { scid, svid });
        }
        for channel in wanted {
            if granted.contains_key(&channel.scid) {
                continue;
            }
            let svid = if channel.svid != 0 && self.free.remove(&channel.svid) {
                channel.svid
            } else if let Some(svid) = self.free.pop_first() {
                svid
            } else {
                self.agent.counters.add(Counter::CdcpPoolExhausted);
                continue;
            };
            granted.insert(channel.scid, svid);
            self.events.push_back(Event::ChannelUp {
                scid: channel.scid,
                svid,
            });
        }
        // A station that lists a channel without the SVID granted to it (0: "please assign")
        // lost its grants: it restarted, and the channel, its VSIs included, lives on here.
        // Unchanged grants would wait for the 30 s timer, longer than a VDP keep-alive
        // timeout, so it hears them now (at most once a second, and only in answer to it).
        let unheard = request.channels.iter().any(|channel| {
            granted
                .get(&channel.scid)
                .is_some_and(|&svid| svid != channel.svid)
        });
        if granted != self.channels || unheard {
            self.channels = granted;
            self.agent.schedule.changed();
        }
    }

    fn lose_peer(&mut self) {
        for (scid, svid) in core::mem::take(&mut self.channels) {
            self.free.insert(svid);
            self.events.push_back(Event::ChannelDown { scid, svid });
        }
        self.events.push_back(Event::PeerLost);
        self.agent.schedule.changed();
    }
}

/// A count that fits in `u16` (`MAX_PAIRS` is 167).
fn cap_u16(count: usize) -> u16 {
    u16::try_from(count).unwrap_or(u16::MAX)
}

impl Engine for Bridge {
    type Event = Event;

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        match self.agent.receive(now, frame, Role::Station) {
            Received::Tlv(tlv) => self.apply(&tlv),
            Received::Shutdown => {
                self.agent.counters.add(Counter::PeerShutdown);
                self.agent.peer_expires = None;
                self.lose_peer();
            }
            Received::Nothing => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.agent.peer_expired(now) {
            self.lose_peer();
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let tlv = self.tlv();
        self.agent.transmit(now, buf, &tlv)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.agent.poll_timeout())
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        self.agent.counters.clone()
    }
}

/// What a CDCP station needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationConfig {
    /// The uplink's MAC address.
    pub local_mac: MacAddr,
    /// The most S-channels the station supports, the default one included (at most 167 count).
    pub chn_cap: u16,
}

/// The CDCP station of one uplink.
#[derive(Debug, Clone)]
pub struct Station {
    config: StationConfig,
    agent: Agent,
    wanted: Vec<u16>,
    granted: BTreeMap<u16, u16>,
    events: VecDeque<Event>,
}

impl Station {
    /// A station that wants no channel but the default one.
    pub fn new(config: StationConfig) -> Self {
        Self {
            agent: Agent::new(config.local_mac, NEAREST_NON_TPMR_BRIDGE),
            config,
            wanted: Vec::new(),
            granted: BTreeMap::new(),
            events: VecDeque::new(),
        }
    }

    /// The channels granted now (SCID to SVID), the default one not included.
    pub const fn channels(&self) -> &BTreeMap<u16, u16> {
        &self.granted
    }

    /// Sets the S-channels the station wants besides the default one, by SCID (2-4095, each
    /// once). Channels no longer wanted go down at once and are dropped from the TLV, which
    /// asks the bridge to remove them.
    pub fn set_channels(&mut self, scids: &[u16]) -> Result<(), ApiMisuse> {
        let cap = usize::from(self.config.chn_cap.max(1)).min(MAX_PAIRS);
        if scids.len() > cap - 1 {
            return Err(ApiMisuse::TooManyChannels);
        }
        let mut seen = BTreeSet::new();
        if scids
            .iter()
            .any(|&scid| scid <= cdcp::DEFAULT_SCID || scid > MAX_12_BIT || !seen.insert(scid))
        {
            return Err(ApiMisuse::InvalidScid);
        }
        let dropped: Vec<(u16, u16)> = self
            .granted
            .iter()
            .filter(|(scid, _)| !seen.contains(*scid))
            .map(|(&scid, &svid)| (scid, svid))
            .collect();
        for (scid, svid) in dropped {
            self.granted.remove(&scid);
            self.events.push_back(Event::ChannelDown { scid, svid });
        }
        if self.wanted != scids {
            self.wanted = scids.to_vec();
            self.agent.schedule.changed();
        }
        Ok(())
    }

    fn tlv(&self) -> cdcp::Repr {
        cdcp::Repr {
            role: Role::Station,
            scomp: true,
            chn_cap: self.config.chn_cap.min(MAX_12_BIT),
            channels: self
                .wanted
                .iter()
                .map(|&scid| Channel {
                    scid,
                    svid: self.granted.get(&scid).copied().unwrap_or(0),
                })
                .collect(),
        }
    }

    /// Takes the SVIDs the bridge granted to the SCIDs we want.
    fn apply(&mut self, answer: &cdcp::Repr) {
        let mut changed = false;
        for &scid in &self.wanted {
            let theirs = answer
                .channels
                .iter()
                .find(|channel| channel.scid == scid)
                .map_or(0, |channel| channel.svid);
            let ours = self.granted.get(&scid).copied();
            if ours == Some(theirs) || (ours.is_none() && theirs == 0) {
                continue;
            }
            changed = true;
            if let Some(svid) = ours {
                self.granted.remove(&scid);
                self.events.push_back(Event::ChannelDown { scid, svid });
            }
            if theirs != 0 {
                self.granted.insert(scid, theirs);
                self.events
                    .push_back(Event::ChannelUp { scid, svid: theirs });
            }
        }
        if changed {
            self.agent.schedule.changed();
        }
    }

    fn lose_peer(&mut self) {
        for (scid, svid) in core::mem::take(&mut self.granted) {
            self.events.push_back(Event::ChannelDown { scid, svid });
        }
        self.events.push_back(Event::PeerLost);
        self.agent.schedule.changed();
    }
}

impl Engine for Station {
    type Event = Event;

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        match self.agent.receive(now, frame, Role::Bridge) {
            Received::Tlv(tlv) => self.apply(&tlv),
            Received::Shutdown => {
                self.agent.counters.add(Counter::PeerShutdown);
                self.agent.peer_expires = None;
                self.lose_peer();
            }
            Received::Nothing => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.agent.peer_expired(now) {
            self.lose_peer();
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let tlv = self.tlv();
        self.agent.transmit(now, buf, &tlv)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.agent.poll_timeout())
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        self.agent.counters.clone()
    }
}

#[cfg(test)]
#[path = "cdcp_tests.rs"]
mod tests;
