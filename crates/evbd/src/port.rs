//! One EVB port: the engines of one role joined together, still without I/O.
//!
//! A [`Port`] owns the engines of one interface and looks like one [`Engine`] to the runtime:
//! the CDCP engine (optionally), and for every S-channel an LLDP EVB agent and a VDP engine.
//! It sends each received frame to the engine it is for (LLDP to the Nearest Customer Bridge
//! address to the channel's EVB agent, LLDP to the Nearest non-TPMR Bridge address to CDCP,
//! ECP to the channel's VDP), hands the timers each channel's EVB TLVs negotiate to that
//! channel's VDP (and so to ECP), and merges the engines' output. Keeping this glue sans-IO
//! lets the tests run a bridge port against a station port on a virtual clock.
//!
//! S-channels (802.1Qbg-2012 clause 42, seed 000): CDCP runs untagged on the physical link;
//! every S-channel it brings up is a bridge port of its own, with its own EVB TLV exchange,
//! ECP and VDP. Its frames carry an 802.1ad S-tag (TPID 0x88a8, VID = SVID), except those of
//! the default channel (SCID 1, SVID 1), which are untagged. The port keeps the engines by
//! SVID: the default channel's always, another channel's from CDCP's `ChannelUp` to its
//! `ChannelDown`, which ends the channel's VSIs.

use std::collections::{BTreeMap, VecDeque};

use evb::{
    Counters, Engine, Instant, Role, Timing, Transmit, cdcp, lldp,
    vdp::{self, Association, BridgeEvent, DeassociateCause, StationEvent, VsiKey},
};
use wire::{EtherType, MacAddr, ethernet, lldp as lldp_wire, vlan};

use crate::policy::{Deferred, Policy};

/// The default S-channel's SCID: the untagged channel every port has.
pub const DEFAULT_SCID: u16 = 1;
/// The default S-channel's SVID.
pub const DEFAULT_SVID: u16 = 1;

/// How a port is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The interface's MAC address: the source of every frame.
    pub local_mac: MacAddr,
    /// Our R, RTE, RWD and RKA (each channel's EVB TLV negotiates the larger of ours and the
    /// peer's).
    pub timing: Timing,
    /// A bridge: it can do reflective relay. A station: it asks for it. On every channel.
    pub reflective_relay: bool,
    /// ECP's sequence number before the first on the default channel; pick it at random.
    /// Channel SVID starts at this number plus SVID - 1.
    pub initial_sequence: u16,
    /// CDCP: `None` runs no CDCP (and so no channel but the default one).
    pub cdcp: Option<CdcpConfig>,
}

/// CDCP settings of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcpConfig {
    /// The most S-channels, the default one included.
    pub chn_cap: u16,
    /// A bridge: the S-VLANs it grants. Ignored on a station.
    pub svids: Vec<u16>,
}

/// The VDP engine of a channel.
#[derive(Debug)]
enum Vdp {
    Bridge(vdp::Bridge<Policy>),
    Station(vdp::Station),
}

/// The CDCP engine of a port.
#[derive(Debug)]
enum Cdcp {
    Bridge(cdcp::Bridge),
    Station(cdcp::Station),
}

/// The engines of one S-channel.
#[derive(Debug)]
struct Channel {
    scid: u16,
    lldp: lldp::Agent,
    vdp: Vdp,
}

/// What a port tells its driver. Every event of a channel's engines names the channel by
/// its SVID ([`DEFAULT_SVID`] for the default channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortEvent {
    /// From a channel's EVB TLV agent.
    Evb {
        /// The channel.
        svid: u16,
        /// The event.
        event: lldp::Event,
    },
    /// From a channel's VDP bridge. When the channel goes down, every VSI it had ends with
    /// a `Deassociated` event (cause `Bridge`) before the CDCP `ChannelDown`.
    Bridge {
        /// The channel.
        svid: u16,
        /// The event.
        event: BridgeEvent,
    },
    /// From a channel's VDP station. When the channel goes down, every VSI it had ends with
    /// a `Deassociated` event (cause `ChannelDown`) before the CDCP `ChannelDown`.
    Station {
        /// The channel.
        svid: u16,
        /// The event.
        event: StationEvent,
    },
    /// From CDCP.
    Cdcp(cdcp::Event),
}

/// A command the port does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// A station command on a bridge, or the other way round.
    #[error("this port is not a {0}")]
    WrongRole(&'static str),
    /// A CDCP command on a port without CDCP.
    #[error("this port runs no CDCP")]
    NoCdcp,
    /// A command for an S-channel the port does not have (not granted, or gone).
    #[error("no S-channel with SVID {0}")]
    UnknownChannel(u16),
    /// The engine refused the command.
    #[error("refused: {0}")]
    Refused(evb::ApiMisuse),
}

impl From<evb::ApiMisuse> for RoleError {
    fn from(error: evb::ApiMisuse) -> Self {
        Self::Refused(error)
    }
}

/// The engines of one EVB port.
#[derive(Debug)]
pub struct Port {
    role: Role,
    config: PortConfig,
    /// A bridge: the policy every channel's VDP bridge starts from (a copy of it).
    policy: Option<Policy>,
    /// By SVID; the default channel is always there.
    channels: BTreeMap<u16, Channel>,
    cdcp: Option<Cdcp>,
    events: VecDeque<PortEvent>,
    counters: PortCounters,
}

/// What the port itself counts (each engine counts the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames no engine takes: another protocol or address.
    pub not_for_us: u64,
    /// Frames shorter than an Ethernet header (or than their S-tag).
    pub truncated: u64,
    /// S-tagged frames of an SVID that is no channel of the port: dropped.
    pub unknown_channel: u64,
}

impl Port {
    /// A bridge port asking `policy` about every VSI, on every channel.
    pub fn bridge(config: &PortConfig, policy: Policy) -> Self {
        let cdcp = config.cdcp.as_ref().map(|cdcp| {
            Cdcp::Bridge(cdcp::Bridge::new(cdcp::BridgeConfig {
                local_mac: config.local_mac,
                chn_cap: cdcp.chn_cap,
                svids: cdcp.svids.clone(),
            }))
        });
        Self::new(Role::Bridge, config, Some(policy), cdcp)
    }

    /// A station port.
    pub fn station(config: &PortConfig) -> Self {
        let cdcp = config.cdcp.as_ref().map(|cdcp| {
            Cdcp::Station(cdcp::Station::new(cdcp::StationConfig {
                local_mac: config.local_mac,
                chn_cap: cdcp.chn_cap,
            }))
        });
        Self::new(Role::Station, config, None, cdcp)
    }

    fn new(role: Role, config: &PortConfig, policy: Option<Policy>, cdcp: Option<Cdcp>) -> Self {
        let mut port = Self {
            role,
            config: config.clone(),
            policy,
            channels: BTreeMap::new(),
            cdcp,
            events: VecDeque::new(),
            counters: PortCounters::default(),
        };
        let default = port.new_channel(DEFAULT_SCID, DEFAULT_SVID);
        port.channels.insert(DEFAULT_SVID, default);
        port
    }

    /// Fresh engines for channel `scid` on `svid`: a bridge's VDP asks a copy of the port's
    /// policy, a station's has no VSI.
    fn new_channel(&self, scid: u16, svid: u16) -> Channel {
        let initial_sequence = self
            .config
            .initial_sequence
            .wrapping_add(svid.wrapping_sub(DEFAULT_SVID));
        let vdp = match &self.policy {
            Some(policy) => Vdp::Bridge(vdp::Bridge::new(
                vdp::BridgeConfig {
                    local_mac: self.config.local_mac,
                    initial_sequence,
                    timing: self.config.timing,
                    group_ids: false,
                },
                policy.clone(),
            )),
            None => Vdp::Station(vdp::Station::new(vdp::StationConfig {
                local_mac: self.config.local_mac,
                initial_sequence,
                timing: self.config.timing,
                group_ids: false,
                // As lldpad: an unanswered request is not repeated, the VSI is dropped.
                retries: 0,
            })),
        };
        let lldp = lldp::Agent::new(lldp::Config {
            role: self.role,
            local_mac: self.config.local_mac,
            timing: self.config.timing,
            reflective_relay: self.config.reflective_relay,
            group_ids: false,
        });
        Channel { scid, lldp, vdp }
    }

    /// Bridge or station.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The SVIDs of the channels the port runs engines for, the default one first.
    pub fn svids(&self) -> impl Iterator<Item = u16> + '_ {
        self.channels.keys().copied()
    }

    /// The SVID of channel `scid`, if it is up ([`DEFAULT_SVID`] for [`DEFAULT_SCID`]).
    pub fn svid_of(&self, scid: u16) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, channel)| channel.scid == scid)
            .map(|(&svid, _)| svid)
    }

    /// The SCID of the channel on `svid`, if it is up.
    pub fn scid_of(&self, svid: u16) -> Option<u16> {
        self.channels.get(&svid).map(|channel| channel.scid)
    }

    /// A channel's EVB agent (negotiated values, the peer's TLV); `None` for an unknown SVID.
    pub fn evb(&self, svid: u16) -> Option<&lldp::Agent> {
        self.channels.get(&svid).map(|channel| &channel.lldp)
    }

    /// A bridge's bound VSIs on a channel; empty on a station or for an unknown SVID.
    pub fn associations(&self, svid: u16) -> Vec<Association> {
        match self.channels.get(&svid).map(|channel| &channel.vdp) {
            Some(Vdp::Bridge(bridge)) => bridge.associations().collect(),
            Some(Vdp::Station(_)) | None => Vec::new(),
        }
    }

    /// A station's view of a VSI on a channel: its filters and the mode it is bound in (`None`
    /// while an exchange is in flight). `None` on a bridge, or for an unknown channel or VSI.
    pub fn station_vsi(
        &self,
        svid: u16,
        key: &VsiKey,
    ) -> Option<(&wire::vdp::Filters, Option<wire::vdp::Mode>)> {
        match &self.channels.get(&svid)?.vdp {
            Vdp::Station(station) => station.vsi(key),
            Vdp::Bridge(_) => None,
        }
    }

    /// The first channel (by SVID, so the default one first) whose VDP engine has the VSI:
    /// bound, in flight, or (a bridge) awaiting a decision.
    pub fn vsi_channel(&self, key: &VsiKey) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, channel)| match &channel.vdp {
                Vdp::Bridge(bridge) => bridge.vsi_keys().any(|k| k == *key),
                Vdp::Station(station) => station.vsi(key).is_some(),
            })
            .map(|(&svid, _)| svid)
    }

    /// The S-channels CDCP has up now (SCID to SVID), the default one not included; `None`
    /// without CDCP.
    pub fn channels(&self) -> Option<&BTreeMap<u16, u16>> {
        match self.cdcp.as_ref()? {
            Cdcp::Bridge(bridge) => Some(bridge.channels()),
            Cdcp::Station(station) => Some(station.channels()),
        }
    }

    /// The port's own counters.
    pub const fn counters(&self) -> PortCounters {
        self.counters
    }

    /// The counters of a channel's engines, by engine name (`evb`, `vdp`); empty for an
    /// unknown SVID.
    pub fn engine_counters(&self, svid: u16) -> Vec<(&'static str, Counters)> {
        let Some(channel) = self.channels.get(&svid) else {
            return Vec::new();
        };
        let vdp = match &channel.vdp {
            Vdp::Bridge(bridge) => bridge.counters(),
            Vdp::Station(station) => station.counters(),
        };
        vec![("evb", channel.lldp.counters()), ("vdp", vdp)]
    }

    /// The CDCP engine's counters; `None` without CDCP.
    pub fn cdcp_counters(&self) -> Option<Counters> {
        match self.cdcp.as_ref()? {
            Cdcp::Bridge(bridge) => Some(bridge.counters()),
            Cdcp::Station(station) => Some(station.counters()),
        }
    }

    /// A bridge: takes the requests its policy deferred on every channel (for the
    /// controller), with the channel's SVID. Empty on a station.
    pub fn take_deferred(&mut self) -> Vec<(u16, Deferred)> {
        let mut all = Vec::new();
        for (&svid, channel) in &mut self.channels {
            if let Vdp::Bridge(bridge) = &mut channel.vdp {
                all.extend(
                    bridge
                        .policy_mut()
                        .take_deferred()
                        .into_iter()
                        .map(|deferred| (svid, deferred)),
                );
            }
        }
        all
    }

    /// A bridge: the policy's late answer to a request deferred on channel `svid`.
    pub fn decide(
        &mut self,
        now: Instant,
        svid: u16,
        key: &VsiKey,
        decision: Result<vdp::Profile, vdp::Refusal>,
    ) -> Result<(), RoleError> {
        let Vdp::Bridge(bridge) = self.vdp_mut(svid)? else {
            return Err(RoleError::WrongRole("bridge"));
        };
        bridge.decide(now, key, decision)?;
        self.drain();
        Ok(())
    }

    /// A bridge: de-associates a VSI of channel `svid` on its own. A station: asks the bridge
    /// to de-associate it.
    pub fn deassociate(&mut self, now: Instant, svid: u16, key: &VsiKey) -> Result<(), RoleError> {
        match self.vdp_mut(svid)? {
            Vdp::Bridge(bridge) => bridge.deassociate(key)?,
            Vdp::Station(station) => station.deassociate(now, key)?,
        }
        self.drain();
        Ok(())
    }

    /// A station: asks the bridge of channel `svid` to put a VSI in `mode` (not De-Associate:
    /// see [`deassociate`](Self::deassociate)).
    pub fn request(
        &mut self,
        now: Instant,
        svid: u16,
        mode: wire::vdp::Mode,
        spec: vdp::VsiSpec,
    ) -> Result<(), RoleError> {
        let Vdp::Station(station) = self.vdp_mut(svid)? else {
            return Err(RoleError::WrongRole("station"));
        };
        match mode {
            wire::vdp::Mode::PreAssociate => station.pre_associate(now, spec, false)?,
            wire::vdp::Mode::PreAssociateWithRr => station.pre_associate(now, spec, true)?,
            wire::vdp::Mode::Associate => station.associate(now, spec)?,
            wire::vdp::Mode::Deassociate => station.deassociate(now, &spec.key())?,
        }
        self.drain();
        Ok(())
    }

    /// A station: the S-channels it wants besides the default one. A channel no longer
    /// wanted goes down at once, with its VSIs.
    pub fn set_channels(&mut self, scids: &[u16]) -> Result<(), RoleError> {
        match &mut self.cdcp {
            Some(Cdcp::Station(station)) => station.set_channels(scids)?,
            Some(Cdcp::Bridge(_)) => return Err(RoleError::WrongRole("station")),
            None => return Err(RoleError::NoCdcp),
        }
        self.drain();
        Ok(())
    }

    /// Stops: every channel's EVB agent says goodbye (TTL 0) at the next `poll_transmit`.
    /// (The CDCP engines have no goodbye; the peer's channels age out with the TTL.)
    pub fn shutdown(&mut self) {
        for channel in self.channels.values_mut() {
            channel.lldp.shutdown();
        }
    }

    fn vdp_mut(&mut self, svid: u16) -> Result<&mut Vdp, RoleError> {
        self.channels
            .get_mut(&svid)
            .map(|channel| &mut channel.vdp)
            .ok_or(RoleError::UnknownChannel(svid))
    }

    /// Moves the engines' events into the port's queue, hands negotiated timers to each
    /// channel's VDP, and opens and closes channels as CDCP says.
    fn drain(&mut self) {
        for (&svid, channel) in &mut self.channels {
            channel.drain(svid, &mut self.events);
        }
        let mut cdcp_events = Vec::new();
        match &mut self.cdcp {
            Some(Cdcp::Bridge(bridge)) => {
                cdcp_events.extend(core::iter::from_fn(|| bridge.poll_event()));
            }
            Some(Cdcp::Station(station)) => {
                cdcp_events.extend(core::iter::from_fn(|| station.poll_event()));
            }
            None => {}
        }
        for event in cdcp_events {
            match event {
                cdcp::Event::ChannelUp { scid, svid } => {
                    // An SVID the port already runs (the peer reused it at once): start over.
                    self.close(svid);
                    if svid != DEFAULT_SVID {
                        let channel = self.new_channel(scid, svid);
                        self.channels.insert(svid, channel);
                    }
                }
                cdcp::Event::ChannelDown { scid, svid } => {
                    if self.scid_of(svid) == Some(scid) {
                        self.close(svid);
                    }
                }
                cdcp::Event::PeerLost => {}
            }
            self.events.push_back(PortEvent::Cdcp(event));
        }
    }

    /// Removes the engines of channel `svid` (never the default one) and ends its VSIs: a
    /// bridge de-associates each (the De-Associates are not sent: the channel is gone), a
    /// station reports each gone.
    fn close(&mut self, svid: u16) {
        if svid == DEFAULT_SVID {
            return;
        }
        let Some(mut channel) = self.channels.remove(&svid) else {
            return;
        };
        // What the channel had to say before it ends.
        channel.drain(svid, &mut self.events);
        match &mut channel.vdp {
            Vdp::Bridge(bridge) => {
                let keys: Vec<VsiKey> = bridge.vsi_keys().collect();
                for key in keys {
                    // The key was just listed, so the bridge has it.
                    let _ = bridge.deassociate(&key);
                }
            }
            Vdp::Station(station) => {
                let keys: Vec<VsiKey> = station.vsi_keys().collect();
                for key in keys {
                    self.events.push_back(PortEvent::Station {
                        svid,
                        event: StationEvent::Deassociated {
                            key,
                            cause: DeassociateCause::ChannelDown,
                        },
                    });
                }
            }
        }
        channel.drain(svid, &mut self.events);
    }

    fn cdcp_engine(&mut self) -> Option<&mut dyn ErasedEngine> {
        match self.cdcp.as_mut()? {
            Cdcp::Bridge(bridge) => Some(bridge),
            Cdcp::Station(station) => Some(station),
        }
    }
}

impl Channel {
    /// Moves the channel's events into `events`, tagged with `svid`, and hands the timers its
    /// EVB TLVs negotiate to its VDP.
    fn drain(&mut self, svid: u16, events: &mut VecDeque<PortEvent>) {
        while let Some(event) = self.lldp.poll_event() {
            let timing = match event {
                lldp::Event::Negotiated(negotiated) => negotiated.timing,
                // The peer is gone: back to our own timers.
                lldp::Event::PeerLost => self.lldp.negotiated().timing,
            };
            match &mut self.vdp {
                Vdp::Bridge(bridge) => bridge.set_timing(timing),
                Vdp::Station(station) => station.set_timing(timing),
            }
            events.push_back(PortEvent::Evb { svid, event });
        }
        match &mut self.vdp {
            Vdp::Bridge(bridge) => {
                while let Some(event) = bridge.poll_event() {
                    events.push_back(PortEvent::Bridge { svid, event });
                }
            }
            Vdp::Station(station) => {
                while let Some(event) = station.poll_event() {
                    events.push_back(PortEvent::Station { svid, event });
                }
            }
        }
    }

    fn vdp_engine(&mut self) -> &mut dyn ErasedEngine {
        match &mut self.vdp {
            Vdp::Bridge(bridge) => bridge,
            Vdp::Station(station) => station,
        }
    }

    fn vdp_deadline(&self) -> Option<Instant> {
        match &self.vdp {
            Vdp::Bridge(bridge) => bridge.poll_timeout(),
            Vdp::Station(station) => station.poll_timeout(),
        }
    }
}

/// The parts of [`Engine`] the port forwards to its VDP and CDCP engines, object safe (their
/// event types differ), so one match picks the engine and one call drives it.
trait ErasedEngine {
    fn frame(&mut self, now: Instant, frame: &[u8]);
    fn timeout(&mut self, now: Instant);
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    fn deadline(&self) -> Option<Instant>;
}

impl<E: Engine> ErasedEngine for E {
    fn frame(&mut self, now: Instant, frame: &[u8]) {
        self.handle_frame(now, frame);
    }

    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.poll_transmit(now, buf)
    }

    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

/// The same shape as [`Engine`] (without `counters`: see [`Port::counters`],
/// [`Port::engine_counters`] and [`Port::cdcp_counters`]).
impl Port {
    /// Takes a frame received on the interface: untagged for the default channel (and CDCP),
    /// with an S-tag for the channel of that SVID (the tag is taken off first).
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.counters.rx_frames += 1;
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            self.counters.truncated += 1;
            return;
        };
        if eth.ethertype() == EtherType::QINQ {
            let Ok(tag) = vlan::Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
                self.counters.truncated += 1;
                return;
            };
            let svid = tag.vid();
            if !self.channels.contains_key(&svid) {
                self.counters.unknown_channel += 1;
                return;
            }
            // The frame as the channel sees it: the MAC addresses, then what the tag carried.
            let mut inner = Vec::with_capacity(frame.len() - vlan::HEADER_LEN);
            inner.extend_from_slice(&frame[..12]);
            inner.extend_from_slice(&frame[ethernet::HEADER_LEN + 2..]);
            self.dispatch(now, svid, &inner, false);
        } else {
            self.dispatch(now, DEFAULT_SVID, frame, true);
        }
        self.drain();
    }

    /// Hands a frame of channel `svid` (tag removed) to its engine; CDCP only `untagged`.
    fn dispatch(&mut self, now: Instant, svid: u16, frame: &[u8], untagged: bool) {
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            self.counters.truncated += 1;
            return;
        };
        let (ethertype, dst) = (eth.ethertype(), eth.dst_addr());
        if untagged && (ethertype, dst) == (EtherType::LLDP, lldp_wire::NEAREST_NON_TPMR_BRIDGE) {
            match self.cdcp_engine() {
                Some(cdcp) => cdcp.frame(now, frame),
                None => self.counters.not_for_us += 1,
            }
            return;
        }
        let Some(channel) = self.channels.get_mut(&svid) else {
            self.counters.unknown_channel += 1;
            return;
        };
        match (ethertype, dst) {
            (EtherType::LLDP, lldp_wire::NEAREST_CUSTOMER_BRIDGE) => {
                channel.lldp.handle_frame(now, frame);
            }
            (EtherType::ECP, _) => channel.vdp_engine().frame(now, frame),
            _ => self.counters.not_for_us += 1,
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (&svid, channel) in &mut self.channels {
            if channel.lldp.poll_timeout().is_some_and(|t| t <= now) {
                channel.lldp.handle_timeout(now);
                // New timers first, so VDP's deadlines below use them.
                channel.drain(svid, &mut self.events);
            }
            let vdp = channel.vdp_engine();
            if vdp.deadline().is_some_and(|t| t <= now) {
                vdp.timeout(now);
            }
        }
        if let Some(cdcp) = self.cdcp_engine()
            && cdcp.deadline().is_some_and(|t| t <= now)
        {
            cdcp.timeout(now);
        }
        self.drain();
    }

    /// Writes the next frame to send into `buf` (of [`evb::MAX_FRAME_LEN`] bytes). A frame of
    /// a channel other than the default one gets its S-tag behind the MAC addresses: its
    /// engines write into `buf` less the tag's 4 bytes, so the tagged frame still fits.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        // The default channel and CDCP first, in the order of a port without S-channels.
        if let Some(default) = self.channels.get_mut(&DEFAULT_SVID)
            && let Some(transmit) = default.lldp.poll_transmit(now, buf)
        {
            return Some(transmit);
        }
        if let Some(transmit) = self.cdcp_engine().and_then(|cdcp| cdcp.transmit(now, buf)) {
            return Some(transmit);
        }
        if let Some(default) = self.channels.get_mut(&DEFAULT_SVID)
            && let Some(transmit) = default.vdp_engine().transmit(now, buf)
        {
            return Some(transmit);
        }
        if buf.len() < ethernet::HEADER_LEN + vlan::HEADER_LEN {
            return None;
        }
        for (&svid, channel) in self.channels.range_mut(DEFAULT_SVID + 1..) {
            let inner = &mut buf[vlan::HEADER_LEN..];
            let sent = match channel.lldp.poll_transmit(now, inner) {
                Some(transmit) => Some(transmit),
                None => channel.vdp_engine().transmit(now, inner),
            };
            if let Some(transmit) = sent {
                // 802.1ad: the MAC addresses, the S-tag (TPID 0x88a8, PCP 0, VID = SVID), then
                // the frame's own EtherType and payload, which stay where the engine wrote them.
                buf.copy_within(vlan::HEADER_LEN..vlan::HEADER_LEN + 12, 0);
                buf[12..14].copy_from_slice(&EtherType::QINQ.0.to_be_bytes());
                buf[14..16].copy_from_slice(&svid.to_be_bytes());
                return Some(Transmit {
                    len: transmit.len + vlan::HEADER_LEN,
                });
            }
        }
        None
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let cdcp = match &self.cdcp {
            Some(Cdcp::Bridge(bridge)) => bridge.poll_timeout(),
            Some(Cdcp::Station(station)) => station.poll_timeout(),
            None => None,
        };
        self.channels
            .values()
            .flat_map(|channel| [channel.lldp.poll_timeout(), channel.vdp_deadline()])
            .chain([cdcp])
            .flatten()
            .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PortEvent> {
        self.drain();
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use evb::{
        MAX_FRAME_LEN,
        vdp::{DeassociateCause, VsiSpec},
    };
    use wire::vdp::{Filters, Id16, Mode, Vlan, VsiIdFormat};

    use super::*;
    use crate::policy::LocalPolicy;

    const TIMING: Timing = Timing {
        max_retries: 3,
        rte: 14,
        rwd: 20,
        rka: 20,
    };

    fn config(mac: u8, svids: Vec<u16>) -> PortConfig {
        PortConfig {
            local_mac: MacAddr([0x02, 0, 0, 0, 0, mac]),
            timing: TIMING,
            reflective_relay: true,
            initial_sequence: u16::from(mac) * 1000,
            cdcp: Some(CdcpConfig { chn_cap: 4, svids }),
        }
    }

    /// A bridge port and a station port on a lossless link with no delay, on a virtual clock
    /// that jumps to the next deadline; keeps every event with its side, and every frame on
    /// the wire with its sender.
    struct Link {
        bridge: Port,
        station: Port,
        now: Instant,
        events: Vec<(Role, PortEvent)>,
        wire: Vec<(Role, Vec<u8>)>,
    }

    impl Link {
        fn new(bridge: Port, station: Port) -> Self {
            Self {
                bridge,
                station,
                now: Instant::ZERO,
                events: Vec::new(),
                wire: Vec::new(),
            }
        }

        fn exchange(&mut self) {
            let mut buf = [0u8; MAX_FRAME_LEN];
            loop {
                let mut moved = false;
                while let Some(t) = self.bridge.poll_transmit(self.now, &mut buf) {
                    self.station.handle_frame(self.now, &buf[..t.len]);
                    self.wire.push((Role::Bridge, buf[..t.len].to_vec()));
                    moved = true;
                }
                while let Some(t) = self.station.poll_transmit(self.now, &mut buf) {
                    self.bridge.handle_frame(self.now, &buf[..t.len]);
                    self.wire.push((Role::Station, buf[..t.len].to_vec()));
                    moved = true;
                }
                while let Some(e) = self.bridge.poll_event() {
                    self.events.push((Role::Bridge, e));
                }
                while let Some(e) = self.station.poll_event() {
                    self.events.push((Role::Station, e));
                }
                if !moved {
                    return;
                }
            }
        }

        fn run_for(&mut self, duration: Duration) {
            let end = self.now + duration;
            loop {
                self.exchange();
                let next = [self.bridge.poll_timeout(), self.station.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(at) if at <= end => {
                        self.now = at.max(self.now);
                        self.bridge.handle_timeout(self.now);
                        self.station.handle_timeout(self.now);
                    }
                    _ => {
                        self.now = end;
                        self.exchange();
                        return;
                    }
                }
            }
        }

        fn saw(&self, role: Role, event: &PortEvent) -> bool {
            self.events.iter().any(|(r, e)| *r == role && e == event)
        }
    }

    fn policy() -> Policy {
        Policy::Local(LocalPolicy::from_toml("[[vsi_type]]\ntype_id = 5\nvlan = 10\n").unwrap())
    }

    fn spec(id: u8, mac: u8) -> VsiSpec {
        VsiSpec {
            manager_id: Id16::from_name("evmgr1").unwrap(),
            type_id: 5,
            type_version: 1,
            id_format: VsiIdFormat::UUID,
            id: Id16([id; 16]),
            filters: Filters::MacVid(vec![(MacAddr([0x52, 0x54, 0, 0, 0, mac]), Vlan::new(0))]),
            migrate_to: false,
            migrate_from: false,
        }
    }

    #[test]
    fn test_ports_negotiate_grant_and_associate() {
        let mut link = Link::new(
            Port::bridge(&config(1, vec![100]), policy()),
            Port::station(&config(2, Vec::new())),
        );
        // Frames of another protocol are counted, not taken.
        let mut arp = [0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        link.bridge.handle_frame(Instant::ZERO, &arp);
        link.bridge.handle_frame(Instant::ZERO, &arp[..5]);
        assert_eq!(link.bridge.counters().not_for_us, 1);
        assert_eq!(link.bridge.counters().truncated, 1);
        link.station.set_channels(&[2, 3]).unwrap();
        link.run_for(Duration::from_secs(5));
        // One SVID for two channels: a partial grant, seen on both sides.
        let one = BTreeMap::from([(2, 100)]);
        assert_eq!(link.bridge.channels(), Some(&one));
        assert_eq!(link.station.channels(), Some(&one));
        assert!(link.bridge.evb(1).unwrap().remote_tlv().is_some());
        assert!(link.station.evb(1).unwrap().negotiated().reflective_relay);

        let spec = spec(7, 9);
        let key = spec.key();
        link.station
            .request(link.now, 1, Mode::Associate, spec)
            .unwrap();
        // Several keep-alive periods: the VSI stays, with the VLAN the bridge gave it.
        link.run_for(Duration::from_secs(60));
        let (filters, mode) = link.station.station_vsi(1, &key).unwrap();
        assert_eq!(mode, Some(Mode::Associate));
        assert_eq!(filters.vlans().next().map(|v| v.vid), Some(10));
        assert_eq!(link.bridge.associations(1).len(), 1);
        assert!(link.events.iter().any(|(role, e)| *role == Role::Station
            && matches!(
                e,
                PortEvent::Station {
                    svid: 1,
                    event: StationEvent::Associated { .. }
                }
            )));
        assert_eq!(
            link.bridge
                .request(link.now, 1, Mode::Associate, spec_of(&key)),
            Err(RoleError::WrongRole("station"))
        );
        assert_eq!(
            link.station
                .decide(link.now, 1, &key, Ok(vdp::Profile::default())),
            Err(RoleError::WrongRole("bridge"))
        );
        assert_eq!(
            link.station
                .request(link.now, 7, Mode::Associate, spec_of(&key)),
            Err(RoleError::UnknownChannel(7))
        );

        link.station.deassociate(link.now, 1, &key).unwrap();
        link.run_for(Duration::from_secs(1));
        assert!(link.bridge.associations(1).is_empty());
        assert!(link.saw(
            Role::Bridge,
            &PortEvent::Bridge {
                svid: 1,
                event: BridgeEvent::Deassociated {
                    key,
                    cause: DeassociateCause::Station
                }
            }
        ));
        // Every frame the station sent was for one of the bridge's engines.
        assert_eq!(link.bridge.counters().not_for_us, 1);
        assert_eq!(link.bridge.counters().unknown_channel, 0);
    }

    /// The S-tag of a frame on the wire: its VID, and the EtherType behind it.
    fn s_tag(frame: &[u8]) -> Option<(u16, [u8; 2])> {
        (frame[12..14] == [0x88, 0xa8]).then(|| {
            let vid = u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff;
            (vid, [frame[16], frame[17]])
        })
    }

    /// True when `frame` is an ECP frame carrying the VSI ID `id`.
    fn ecp_of(frame: &[u8], id: &Id16) -> bool {
        let ecp = frame[12..14] == [0x89, 0x40] || frame.get(16..18) == Some(&[0x89, 0x40]);
        ecp && frame.windows(16).any(|w| w == id.0)
    }

    #[test]
    fn test_vdp_on_a_granted_s_channel() {
        let mut link = Link::new(
            Port::bridge(&config(1, vec![100, 101]), policy()),
            Port::station(&config(2, Vec::new())),
        );
        link.station.set_channels(&[2]).unwrap();
        link.run_for(Duration::from_secs(5));
        // CDCP granted SCID 2 an SVID; both ends run the channel's engines, and the EVB TLV
        // exchange on it settled.
        assert_eq!(link.station.svid_of(2), Some(100));
        assert_eq!(link.bridge.svid_of(2), Some(100));
        assert_eq!(link.station.scid_of(100), Some(2));
        assert_eq!(link.bridge.svids().collect::<Vec<_>>(), [1, 100]);
        assert!(link.bridge.evb(100).unwrap().remote_tlv().is_some());
        assert!(link.station.evb(100).unwrap().remote_tlv().is_some());
        assert!(link.saw(
            Role::Station,
            &PortEvent::Cdcp(cdcp::Event::ChannelUp { scid: 2, svid: 100 })
        ));
        // The channel's LLDP went tagged; the default channel's and CDCP's untagged.
        assert!(
            link.wire
                .iter()
                .any(|(role, f)| *role == Role::Station && s_tag(f) == Some((100, [0x88, 0xcc])))
        );
        assert!(
            link.wire
                .iter()
                .any(|(role, f)| *role == Role::Bridge && f[12..14] == [0x88, 0xcc])
        );

        // One VSI on the S-channel, one on the default channel, at the same time.
        let (on_channel, on_default) = (spec(0xa1, 1), spec(0xd1, 2));
        let (key_channel, key_default) = (on_channel.key(), on_default.key());
        link.station
            .request(link.now, 100, Mode::Associate, on_channel)
            .unwrap();
        link.station
            .request(link.now, 1, Mode::Associate, on_default)
            .unwrap();
        // Past a few keep-alives (10.5 s each).
        link.run_for(Duration::from_secs(30));
        for (svid, key) in [(100, key_channel), (1, key_default)] {
            let (filters, mode) = link.station.station_vsi(svid, &key).unwrap();
            assert_eq!(mode, Some(Mode::Associate), "SVID {svid}");
            assert_eq!(filters.vlans().next().map(|v| v.vid), Some(10));
            let bound = link.bridge.associations(svid);
            assert_eq!(bound.len(), 1, "SVID {svid}");
            assert_eq!(bound[0].key, key);
            assert_eq!(link.bridge.vsi_channel(&key), Some(svid));
            assert_eq!(link.station.vsi_channel(&key), Some(svid));
        }
        assert!(link.events.iter().any(|(role, e)| *role == Role::Bridge
            && matches!(e, PortEvent::Bridge {
                svid: 100,
                event: BridgeEvent::Associated { key, .. }
            } if *key == key_channel)));
        assert!(link.events.iter().any(|(role, e)| *role == Role::Station
            && matches!(e, PortEvent::Station {
                svid: 100,
                event: StationEvent::Associated { key, .. }
            } if *key == key_channel)));
        // On the wire: every ECP frame of the channel's VSI, both ways, carries the S-tag
        // with the SVID; every one of the default channel's VSI is untagged.
        for role in [Role::Station, Role::Bridge] {
            let tagged: Vec<_> = link
                .wire
                .iter()
                .filter(|(r, f)| *r == role && ecp_of(f, &key_channel.id))
                .map(|(_, f)| s_tag(f))
                .collect();
            // The request and two keep-alives, or their answers.
            assert!(tagged.len() >= 3, "{role:?}: {tagged:?}");
            assert!(
                tagged.iter().all(|tag| *tag == Some((100, [0x89, 0x40]))),
                "{role:?}: {tagged:?}"
            );
            let untagged = link
                .wire
                .iter()
                .filter(|(r, f)| *r == role && ecp_of(f, &key_default.id))
                .inspect(|(_, f)| assert_eq!(s_tag(f), None))
                .count();
            assert!(untagged >= 3, "{role:?}");
        }

        // A frame of an SVID that is no channel is counted and dropped.
        let before = link.bridge.counters();
        let mut stray = link
            .wire
            .iter()
            .find(|(r, f)| *r == Role::Station && s_tag(f).is_some())
            .map(|(_, f)| f.clone())
            .unwrap();
        stray[14..16].copy_from_slice(&101u16.to_be_bytes());
        link.bridge.handle_frame(link.now, &stray);
        // An S-tag cut short.
        link.bridge.handle_frame(link.now, &stray[..16]);
        let after = link.bridge.counters();
        assert_eq!(after.unknown_channel, before.unknown_channel + 1);
        assert_eq!(after.truncated, before.truncated + 1);
        assert_eq!(after.not_for_us, before.not_for_us);
        assert_eq!(link.bridge.svids().collect::<Vec<_>>(), [1, 100]);

        // The station lets the channel go: its VSI goes at once on the station, and on the
        // bridge once CDCP tells it; the default channel's VSI stays.
        let sent = link.wire.len();
        link.station.set_channels(&[]).unwrap();
        link.run_for(Duration::from_secs(5));
        assert!(link.saw(
            Role::Station,
            &PortEvent::Station {
                svid: 100,
                event: StationEvent::Deassociated {
                    key: key_channel,
                    cause: DeassociateCause::ChannelDown
                }
            }
        ));
        assert!(link.saw(
            Role::Bridge,
            &PortEvent::Bridge {
                svid: 100,
                event: BridgeEvent::Deassociated {
                    key: key_channel,
                    cause: DeassociateCause::Bridge
                }
            }
        ));
        // The VSIs ended before the channel did.
        let position = |role: Role, wanted: &dyn Fn(&PortEvent) -> bool| {
            link.events
                .iter()
                .position(|(r, e)| *r == role && wanted(e))
                .unwrap()
        };
        assert!(
            position(Role::Bridge, &|e| matches!(
                e,
                PortEvent::Bridge {
                    svid: 100,
                    event: BridgeEvent::Deassociated { .. }
                }
            )) < position(Role::Bridge, &|e| matches!(
                e,
                PortEvent::Cdcp(cdcp::Event::ChannelDown { svid: 100, .. })
            ))
        );
        for port in [&link.bridge, &link.station] {
            assert_eq!(port.svids().collect::<Vec<_>>(), [1]);
            assert_eq!(port.svid_of(2), None);
            assert!(port.evb(100).is_none());
        }
        assert!(link.bridge.associations(100).is_empty());
        assert_eq!(link.station.station_vsi(100, &key_channel), None);
        assert_eq!(
            link.station.deassociate(link.now, 100, &key_channel),
            Err(RoleError::UnknownChannel(100))
        );
        // Nothing more on the channel: the bridge's De-Associate went with it.
        assert!(link.wire[sent..].iter().all(|(_, f)| s_tag(f).is_none()));
        // The default channel's VSI is still there after more keep-alives.
        link.run_for(Duration::from_secs(30));
        assert_eq!(
            link.station.station_vsi(1, &key_default).map(|(_, m)| m),
            Some(Some(Mode::Associate))
        );
        assert_eq!(link.bridge.associations(1).len(), 1);
        // Frames for the channel now are strays.
        let before = link.bridge.counters().unknown_channel;
        stray[14..16].copy_from_slice(&100u16.to_be_bytes());
        link.bridge.handle_frame(link.now, &stray);
        assert_eq!(link.bridge.counters().unknown_channel, before + 1);
    }

    /// Runs `port` alone (whatever it sends is lost) until `end`; returns its events.
    fn alone(port: &mut Port, mut now: Instant, end: Instant) -> Vec<PortEvent> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let mut events = Vec::new();
        loop {
            while port.poll_transmit(now, &mut buf).is_some() {}
            events.extend(core::iter::from_fn(|| port.poll_event()));
            match port.poll_timeout() {
                Some(at) if at <= end => {
                    now = at.max(now);
                    port.handle_timeout(now);
                }
                _ => return events,
            }
        }
    }

    #[test]
    fn test_peer_lost_ends_channel_vsis() {
        // Keep-alives (RKA 24: 168 s) slower than CDCP's TTL (120 s), so the VSI ends with its
        // channel, not for want of keep-alives.
        let slow = |mac, svids| PortConfig {
            timing: Timing { rka: 24, ..TIMING },
            ..config(mac, svids)
        };
        let mut link = Link::new(
            Port::bridge(&slow(1, vec![100]), policy()),
            Port::station(&slow(2, Vec::new())),
        );
        link.station.set_channels(&[2]).unwrap();
        link.run_for(Duration::from_secs(5));
        let vsi = spec(0xb1, 3);
        let key = vsi.key();
        link.station
            .request(link.now, 100, Mode::PreAssociate, vsi)
            .unwrap();
        link.run_for(Duration::from_secs(2));
        assert_eq!(link.bridge.associations(100).len(), 1);
        // The link breaks: each side's CDCP peer ages out (TTL 120 s), the channel goes down,
        // and its VSI with it.
        let end = link.now + Duration::from_secs(130);
        let bridge_events = alone(&mut link.bridge, link.now, end);
        let station_events = alone(&mut link.station, link.now, end);
        let ended = PortEvent::Bridge {
            svid: 100,
            event: BridgeEvent::Deassociated {
                key,
                cause: DeassociateCause::Bridge,
            },
        };
        assert!(bridge_events.contains(&ended), "{bridge_events:?}");
        assert!(bridge_events.contains(&PortEvent::Cdcp(cdcp::Event::PeerLost)));
        let gone = PortEvent::Station {
            svid: 100,
            event: StationEvent::Deassociated {
                key,
                cause: DeassociateCause::ChannelDown,
            },
        };
        assert!(station_events.contains(&gone), "{station_events:?}");
        for port in [&link.bridge, &link.station] {
            assert_eq!(port.svids().collect::<Vec<_>>(), [1]);
        }
    }

    #[test]
    fn test_restarted_station_asks_again_as_a_keep_alive() {
        let mut link = Link::new(
            Port::bridge(&config(1, vec![100]), policy()),
            Port::station(&config(2, Vec::new())),
        );
        link.station.set_channels(&[2]).unwrap();
        link.run_for(Duration::from_secs(5));
        // One VSI associated at once on the default channel, one pre-associated and then
        // associated on S-channel SCID 2 (SVID 100); both ask for VID 0, the bridge gives 10.
        let direct = spec(0xc1, 1);
        let stepped = spec(0xc2, 2);
        link.station
            .request(link.now, 1, Mode::Associate, direct.clone())
            .unwrap();
        link.station
            .request(link.now, 100, Mode::PreAssociate, stepped.clone())
            .unwrap();
        link.run_for(Duration::from_secs(2));
        link.station
            .request(link.now, 100, Mode::Associate, stepped.clone())
            .unwrap();
        link.run_for(Duration::from_secs(30));
        let in_force = link
            .station
            .station_vsi(100, &stepped.key())
            .unwrap()
            .0
            .clone();
        assert_eq!(in_force.vlans().next().map(|v| v.vid), Some(10));
        let held = (link.bridge.associations(1), link.bridge.associations(100));
        assert_eq!((held.0.len(), held.1.len()), (1, 1));

        // The station dies without a word and comes back knowing nothing, its ECP sequence
        // numbers elsewhere; it asks CDCP for its channel again.
        link.station = Port::station(&PortConfig {
            initial_sequence: 4321,
            ..config(2, Vec::new())
        });
        link.station.set_channels(&[2]).unwrap();
        link.events.clear();
        let restart = link.now;
        let ready = |port: &Port| {
            port.svid_of(2) == Some(100)
                && [1, 100]
                    .iter()
                    .all(|&svid| port.evb(svid).is_some_and(|evb| evb.remote_tlv().is_some()))
        };
        while !ready(&link.station) {
            link.run_for(Duration::from_millis(100));
            // The bridge answers the CDCP request at once rather than at its 30 s timer.
            assert!(
                link.now - restart < Duration::from_secs(3),
                "{:?}",
                link.events
            );
        }
        // Asked again in the mode the VMM asked for: the first as the VMM asked it (VID 0,
        // which the bridge has as the request), the second with the filters in force (its
        // associate carried VID 10, so VID 0 would be a new request to the bridge).
        link.station
            .request(link.now, 1, Mode::Associate, direct)
            .unwrap();
        let stepped_key = stepped.key();
        link.station
            .request(
                link.now,
                100,
                Mode::Associate,
                VsiSpec {
                    filters: in_force,
                    ..stepped
                },
            )
            .unwrap();
        // Three of the bridge's keep-alive timeouts (about 17 s each).
        link.run_for(Duration::from_secs(60));
        // The bridge took both as keep-alives: nothing ended, nothing new, no channel change.
        assert_eq!(
            (link.bridge.associations(1), link.bridge.associations(100)),
            held
        );
        let bridge_events: Vec<&PortEvent> = link
            .events
            .iter()
            .filter(|(role, e)| *role == Role::Bridge && !matches!(e, PortEvent::Evb { .. }))
            .map(|(_, e)| e)
            .collect();
        assert!(bridge_events.is_empty(), "{bridge_events:?}");
        assert_eq!(
            link.station.station_vsi(100, &stepped_key).map(|(_, m)| m),
            Some(Some(Mode::Associate))
        );
        let associated = link
            .events
            .iter()
            .filter(|(role, e)| {
                *role == Role::Station
                    && matches!(
                        e,
                        PortEvent::Station {
                            event: StationEvent::Associated { .. },
                            ..
                        }
                    )
            })
            .count();
        assert_eq!(associated, 2);
    }

    fn spec_of(key: &VsiKey) -> VsiSpec {
        VsiSpec {
            manager_id: Id16::default(),
            type_id: 5,
            type_version: 1,
            id_format: key.id_format,
            id: key.id,
            filters: Filters::Vid(vec![Vlan::new(0)]),
            migrate_to: false,
            migrate_from: false,
        }
    }
}
