//! One EVB port: the engines of one role joined together, still without I/O.
//!
//! A [`Port`] owns the LLDP EVB agent, the VDP engine and (optionally) the CDCP engine of one
//! interface and looks like one [`Engine`] to the runtime. It sends each received frame to the
//! engine it is for (LLDP to the Nearest Customer Bridge address to the EVB agent, LLDP to the
//! Nearest non-TPMR Bridge address to CDCP, ECP to VDP), hands the timers the EVB TLVs negotiate
//! to VDP (and so to ECP), and merges the engines' output. Keeping this glue sans-IO lets the
//! tests run a bridge port against a station port on a virtual clock.

use std::collections::VecDeque;

use evb::{
    Counters, Engine, Instant, Role, Timing, Transmit, cdcp, lldp,
    vdp::{self, Association, BridgeEvent, StationEvent, VsiKey},
};
use wire::{EtherType, MacAddr, ethernet, lldp as lldp_wire};

use crate::policy::Policy;

/// How a port is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The interface's MAC address: the source of every frame.
    pub local_mac: MacAddr,
    /// Our R, RTE, RWD and RKA (the EVB TLV negotiates the larger of ours and the peer's).
    pub timing: Timing,
    /// A bridge: it can do reflective relay. A station: it asks for it.
    pub reflective_relay: bool,
    /// ECP's sequence number before the first; pick it at random.
    pub initial_sequence: u16,
    /// CDCP: `None` runs no CDCP.
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

/// The VDP engine of a port.
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

/// What a port tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortEvent {
    /// From the EVB TLV agent.
    Evb(lldp::Event),
    /// From the VDP bridge.
    Bridge(BridgeEvent),
    /// From the VDP station.
    Station(StationEvent),
    /// From CDCP.
    Cdcp(cdcp::Event),
}

/// A command the port's role does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// A station command on a bridge, or the other way round.
    #[error("this port is not a {0}")]
    WrongRole(&'static str),
    /// A CDCP command on a port without CDCP.
    #[error("this port runs no CDCP")]
    NoCdcp,
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
    lldp: lldp::Agent,
    vdp: Vdp,
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
    /// Frames shorter than an Ethernet header.
    pub truncated: u64,
}

impl Port {
    /// A bridge port asking `policy` about every VSI.
    pub fn bridge(config: &PortConfig, policy: Policy) -> Self {
        let vdp = vdp::Bridge::new(
            vdp::BridgeConfig {
                local_mac: config.local_mac,
                initial_sequence: config.initial_sequence,
                timing: config.timing,
                group_ids: false,
            },
            policy,
        );
        let cdcp = config.cdcp.as_ref().map(|cdcp| {
            Cdcp::Bridge(cdcp::Bridge::new(cdcp::BridgeConfig {
                local_mac: config.local_mac,
                chn_cap: cdcp.chn_cap,
                svids: cdcp.svids.clone(),
            }))
        });
        Self::new(Role::Bridge, config, Vdp::Bridge(vdp), cdcp)
    }

    /// A station port.
    pub fn station(config: &PortConfig) -> Self {
        let vdp = vdp::Station::new(vdp::StationConfig {
            local_mac: config.local_mac,
            initial_sequence: config.initial_sequence,
            timing: config.timing,
            group_ids: false,
            // As lldpad: an unanswered request is not repeated, the VSI is dropped.
            retries: 0,
        });
        let cdcp = config.cdcp.as_ref().map(|cdcp| {
            Cdcp::Station(cdcp::Station::new(cdcp::StationConfig {
                local_mac: config.local_mac,
                chn_cap: cdcp.chn_cap,
            }))
        });
        Self::new(Role::Station, config, Vdp::Station(vdp), cdcp)
    }

    fn new(role: Role, config: &PortConfig, vdp: Vdp, cdcp: Option<Cdcp>) -> Self {
        let lldp = lldp::Agent::new(lldp::Config {
            role,
            local_mac: config.local_mac,
            timing: config.timing,
            reflective_relay: config.reflective_relay,
            group_ids: false,
        });
        Self {
            role,
            lldp,
            vdp,
            cdcp,
            events: VecDeque::new(),
            counters: PortCounters::default(),
        }
    }

    /// Bridge or station.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The EVB agent (negotiated values, the peer's TLV).
    pub const fn evb(&self) -> &lldp::Agent {
        &self.lldp
    }

    /// A bridge's bound VSIs; empty on a station.
    pub fn associations(&self) -> Vec<Association> {
        match &self.vdp {
            Vdp::Bridge(bridge) => bridge.associations().collect(),
            Vdp::Station(_) => Vec::new(),
        }
    }

    /// A station's view of a VSI: its filters and the mode it is bound in (`None` while an
    /// exchange is in flight). `None` on a bridge or for an unknown VSI.
    pub fn station_vsi(
        &self,
        key: &VsiKey,
    ) -> Option<(&wire::vdp::Filters, Option<wire::vdp::Mode>)> {
        match &self.vdp {
            Vdp::Station(station) => station.vsi(key),
            Vdp::Bridge(_) => None,
        }
    }

    /// The S-channels up now (SCID to SVID), the default one not included; `None` without CDCP.
    pub fn channels(&self) -> Option<&std::collections::BTreeMap<u16, u16>> {
        match self.cdcp.as_ref()? {
            Cdcp::Bridge(bridge) => Some(bridge.channels()),
            Cdcp::Station(station) => Some(station.channels()),
        }
    }

    /// The port's own counters.
    pub const fn counters(&self) -> PortCounters {
        self.counters
    }

    /// The counters of each engine, by engine name.
    pub fn engine_counters(&self) -> Vec<(&'static str, Counters)> {
        let mut all = vec![("evb", self.lldp.counters())];
        all.push(match &self.vdp {
            Vdp::Bridge(bridge) => ("vdp", bridge.counters()),
            Vdp::Station(station) => ("vdp", station.counters()),
        });
        match &self.cdcp {
            Some(Cdcp::Bridge(bridge)) => all.push(("cdcp", bridge.counters())),
            Some(Cdcp::Station(station)) => all.push(("cdcp", station.counters())),
            None => {}
        }
        all
    }

    /// A bridge's policy, to take the requests it deferred.
    pub fn policy_mut(&mut self) -> Option<&mut Policy> {
        match &mut self.vdp {
            Vdp::Bridge(bridge) => Some(bridge.policy_mut()),
            Vdp::Station(_) => None,
        }
    }

    /// A bridge: the policy's late answer to a deferred request.
    pub fn decide(
        &mut self,
        now: Instant,
        key: &VsiKey,
        decision: Result<vdp::Profile, vdp::Refusal>,
    ) -> Result<(), RoleError> {
        let Vdp::Bridge(bridge) = &mut self.vdp else {
            return Err(RoleError::WrongRole("bridge"));
        };
        bridge.decide(now, key, decision)?;
        self.drain();
        Ok(())
    }

    /// A bridge: de-associates a VSI on its own. A station: asks the bridge to de-associate it.
    pub fn deassociate(&mut self, now: Instant, key: &VsiKey) -> Result<(), RoleError> {
        match &mut self.vdp {
            Vdp::Bridge(bridge) => bridge.deassociate(key)?,
            Vdp::Station(station) => station.deassociate(now, key)?,
        }
        self.drain();
        Ok(())
    }

    /// A station: asks the bridge to put a VSI in `mode` (not De-Associate: see
    /// [`deassociate`](Self::deassociate)).
    pub fn request(
        &mut self,
        now: Instant,
        mode: wire::vdp::Mode,
        spec: vdp::VsiSpec,
    ) -> Result<(), RoleError> {
        let Vdp::Station(station) = &mut self.vdp else {
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

    /// A station: the S-channels it wants besides the default one.
    pub fn set_channels(&mut self, scids: &[u16]) -> Result<(), RoleError> {
        match &mut self.cdcp {
            Some(Cdcp::Station(station)) => station.set_channels(scids)?,
            Some(Cdcp::Bridge(_)) => return Err(RoleError::WrongRole("station")),
            None => return Err(RoleError::NoCdcp),
        }
        self.drain();
        Ok(())
    }

    /// Stops: the EVB agent says goodbye (TTL 0) at the next `poll_transmit`. (The CDCP
    /// engines have no goodbye; the peer's channels age out with the TTL.)
    pub fn shutdown(&mut self) {
        self.lldp.shutdown();
    }

    /// Moves the engines' events into the port's queue and hands negotiated timers to VDP.
    fn drain(&mut self) {
        while let Some(event) = self.lldp.poll_event() {
            if let lldp::Event::Negotiated(negotiated) = event {
                self.set_timing(negotiated.timing);
            } else {
                // The peer is gone: back to our own timers.
                let own = self.lldp.negotiated().timing;
                self.set_timing(own);
            }
            self.events.push_back(PortEvent::Evb(event));
        }
        match &mut self.vdp {
            Vdp::Bridge(bridge) => {
                while let Some(event) = bridge.poll_event() {
                    self.events.push_back(PortEvent::Bridge(event));
                }
            }
            Vdp::Station(station) => {
                while let Some(event) = station.poll_event() {
                    self.events.push_back(PortEvent::Station(event));
                }
            }
        }
        match &mut self.cdcp {
            Some(Cdcp::Bridge(bridge)) => {
                while let Some(event) = bridge.poll_event() {
                    self.events.push_back(PortEvent::Cdcp(event));
                }
            }
            Some(Cdcp::Station(station)) => {
                while let Some(event) = station.poll_event() {
                    self.events.push_back(PortEvent::Cdcp(event));
                }
            }
            None => {}
        }
    }

    fn set_timing(&mut self, timing: Timing) {
        match &mut self.vdp {
            Vdp::Bridge(bridge) => bridge.set_timing(timing),
            Vdp::Station(station) => station.set_timing(timing),
        }
    }

    fn vdp_engine(&mut self) -> &mut dyn ErasedEngine {
        match &mut self.vdp {
            Vdp::Bridge(bridge) => bridge,
            Vdp::Station(station) => station,
        }
    }

    fn cdcp_engine(&mut self) -> Option<&mut dyn ErasedEngine> {
        match self.cdcp.as_mut()? {
            Cdcp::Bridge(bridge) => Some(bridge),
            Cdcp::Station(station) => Some(station),
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

/// The same shape as [`Engine`] (without `counters`: see [`Port::counters`] and
/// [`Port::engine_counters`]).
impl Port {
    /// Takes a frame received on the interface.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.counters.rx_frames += 1;
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            self.counters.truncated += 1;
            return;
        };
        match (eth.ethertype(), eth.dst_addr()) {
            (EtherType::LLDP, lldp_wire::NEAREST_CUSTOMER_BRIDGE) => {
                self.lldp.handle_frame(now, frame);
            }
            (EtherType::LLDP, lldp_wire::NEAREST_NON_TPMR_BRIDGE) => match self.cdcp_engine() {
                Some(cdcp) => cdcp.frame(now, frame),
                None => self.counters.not_for_us += 1,
            },
            (EtherType::ECP, _) => self.vdp_engine().frame(now, frame),
            _ => self.counters.not_for_us += 1,
        }
        self.drain();
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.lldp.poll_timeout().is_some_and(|t| t <= now) {
            self.lldp.handle_timeout(now);
            // New timers first, so VDP's deadlines below use them.
            self.drain();
        }
        let vdp = self.vdp_engine();
        if vdp.deadline().is_some_and(|t| t <= now) {
            vdp.timeout(now);
        }
        if let Some(cdcp) = self.cdcp_engine()
            && cdcp.deadline().is_some_and(|t| t <= now)
        {
            cdcp.timeout(now);
        }
        self.drain();
    }

    /// Writes the next frame to send into `buf` (of [`evb::MAX_FRAME_LEN`] bytes).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(transmit) = self.lldp.poll_transmit(now, buf) {
            return Some(transmit);
        }
        if let Some(transmit) = self.cdcp_engine().and_then(|cdcp| cdcp.transmit(now, buf)) {
            return Some(transmit);
        }
        self.vdp_engine().transmit(now, buf)
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let vdp = match &self.vdp {
            Vdp::Bridge(bridge) => bridge.poll_timeout(),
            Vdp::Station(station) => station.poll_timeout(),
        };
        let cdcp = match &self.cdcp {
            Some(Cdcp::Bridge(bridge)) => bridge.poll_timeout(),
            Some(Cdcp::Station(station)) => station.poll_timeout(),
            None => None,
        };
        [self.lldp.poll_timeout(), vdp, cdcp]
            .into_iter()
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
    /// that jumps to the next deadline; returns every event with its side.
    struct Link {
        bridge: Port,
        station: Port,
        now: Instant,
        events: Vec<(Role, PortEvent)>,
    }

    impl Link {
        fn exchange(&mut self) {
            let mut buf = [0u8; MAX_FRAME_LEN];
            loop {
                let mut moved = false;
                while let Some(t) = self.bridge.poll_transmit(self.now, &mut buf) {
                    self.station.handle_frame(self.now, &buf[..t.len]);
                    moved = true;
                }
                while let Some(t) = self.station.poll_transmit(self.now, &mut buf) {
                    self.bridge.handle_frame(self.now, &buf[..t.len]);
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
    }

    #[test]
    fn test_ports_negotiate_grant_and_associate() {
        let policy = LocalPolicy::from_toml("[[vsi_type]]\ntype_id = 5\nvlan = 10\n").unwrap();
        let mut link = Link {
            bridge: Port::bridge(&config(1, vec![100]), Policy::Local(policy)),
            station: Port::station(&config(2, Vec::new())),
            now: Instant::ZERO,
            events: Vec::new(),
        };
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
        let one = std::collections::BTreeMap::from([(2, 100)]);
        assert_eq!(link.bridge.channels(), Some(&one));
        assert_eq!(link.station.channels(), Some(&one));
        assert!(link.bridge.evb().remote_tlv().is_some());
        assert!(link.station.evb().negotiated().reflective_relay);

        let spec = VsiSpec {
            manager_id: Id16::from_name("evmgr1").unwrap(),
            type_id: 5,
            type_version: 1,
            id_format: VsiIdFormat::UUID,
            id: Id16([7; 16]),
            filters: Filters::MacVid(vec![(MacAddr([0x52, 0x54, 0, 0, 0, 9]), Vlan::new(0))]),
            migrate_to: false,
            migrate_from: false,
        };
        let key = spec.key();
        link.station
            .request(link.now, Mode::Associate, spec)
            .unwrap();
        // Several keep-alive periods: the VSI stays, with the VLAN the bridge gave it.
        link.run_for(Duration::from_secs(60));
        let (filters, mode) = link.station.station_vsi(&key).unwrap();
        assert_eq!(mode, Some(Mode::Associate));
        assert_eq!(filters.vlans().next().map(|v| v.vid), Some(10));
        assert_eq!(link.bridge.associations().len(), 1);
        assert!(link.events.iter().any(|(role, e)| *role == Role::Station
            && matches!(e, PortEvent::Station(StationEvent::Associated { .. }))));
        assert_eq!(
            link.bridge
                .request(link.now, Mode::Associate, spec_of(&key)),
            Err(RoleError::WrongRole("station"))
        );
        assert_eq!(
            link.station
                .decide(link.now, &key, Ok(vdp::Profile::default())),
            Err(RoleError::WrongRole("bridge"))
        );

        link.station.deassociate(link.now, &key).unwrap();
        link.run_for(Duration::from_secs(1));
        assert!(link.bridge.associations().is_empty());
        assert!(link.events.iter().any(|(role, e)| *role == Role::Bridge
            && *e
                == PortEvent::Bridge(BridgeEvent::Deassociated {
                    key,
                    cause: DeassociateCause::Station
                })));
        // Every frame the station sent was for one of the bridge's engines.
        assert_eq!(link.bridge.counters().not_for_us, 1);
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
