//! Whole flows of the LLDP-carried protocols between weft's own engines: the EVB TLV
//! negotiation and CDCP grants, partial grants and removals, on a virtual clock.

mod pair;

use core::time::Duration;

use evb::{
    Counter, Engine, Instant, Role, Timing,
    cdcp::{self, Event},
    lldp::{self, Negotiated},
};
use pair::{Pair, Side};
use wire::MacAddr;

const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x5e, 0x01]);

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn agent(role: Role, local_mac: MacAddr, timing: Timing) -> lldp::Agent {
    lldp::Agent::new(lldp::Config {
        role,
        local_mac,
        timing,
        reflective_relay: true,
        group_ids: role == Role::Bridge,
    })
}

#[test]
fn evb_tlv_negotiation_settles_without_ping_pong() {
    let bridge_timing = Timing {
        max_retries: 3,
        rte: 14,
        rwd: 20,
        rka: 20,
    };
    let station_timing = Timing {
        max_retries: 5,
        rte: 8,
        rwd: 18,
        rka: 22,
    };
    let mut pair = Pair::new(
        agent(Role::Bridge, BRIDGE_MAC, bridge_timing),
        agent(Role::Station, STATION_MAC, station_timing),
    );
    pair.run_for(secs(5));
    let agreed = Negotiated {
        timing: Timing {
            max_retries: 5,
            rte: 14,
            rwd: 20,
            rka: 22,
        },
        reflective_relay: true,
        group_ids: false,
    };
    assert_eq!(pair.bridge.negotiated(), agreed);
    assert_eq!(pair.station.negotiated(), agreed);
    // Both sides advertise the same values, so the TLVs agree except for the mode and ROL.
    let (bridge_tlv, station_tlv) = (pair.bridge.local_tlv(), pair.station.local_tlv());
    assert_eq!(bridge_tlv.bridge, station_tlv.bridge);
    assert_eq!(bridge_tlv.station, station_tlv.station);
    assert!(bridge_tlv.bridge.rr_enabled);
    assert!(
        bridge_tlv.rka_remote && station_tlv.rwd_remote,
        "the smaller side uses the remote value"
    );
    // Each side echoes the other's status octet, so the TLVs settle after three updates at
    // most (one a second); after that only the 30 s timer sends.
    assert!(pair.sent_by(Side::Bridge).count() <= 4);
    assert!(pair.sent_by(Side::Station).count() <= 4);
    let before = pair.log.len();
    pair.run_for(secs(300));
    assert_eq!(
        pair.log.len() - before,
        20,
        "one LLDPDU per side every 30 s"
    );
    // The station goes away without a word: after the TTL (120 s) the bridge forgets it.
    pair.set_loss(|from, _, _| from == Side::Station);
    pair.take_events();
    pair.run_for(secs(150));
    let (bridge_events, _) = pair.take_events();
    assert!(matches!(bridge_events[0], (_, lldp::Event::PeerLost)));
    assert!(!pair.bridge.negotiated().reflective_relay);
    assert_eq!(pair.bridge.counters().get(Counter::PeerExpired), 1);
    // It comes back: negotiated again.
    pair.set_loss(|_, _, _| false);
    pair.run_for(secs(40));
    assert_eq!(pair.bridge.negotiated(), agreed);
    // The station shuts down: TTL 0, the bridge forgets it at once.
    pair.station.shutdown();
    pair.take_events();
    pair.run_for(secs(1));
    let (bridge_events, _) = pair.take_events();
    assert!(matches!(bridge_events[..], [(_, lldp::Event::PeerLost), _]));
    assert_eq!(pair.bridge.counters().get(Counter::PeerShutdown), 1);
}

fn cdcp_pair(chn_cap: u16, svids: &[u16]) -> Pair<cdcp::Bridge, cdcp::Station> {
    Pair::new(
        cdcp::Bridge::new(cdcp::BridgeConfig {
            local_mac: BRIDGE_MAC,
            chn_cap,
            svids: svids.to_vec(),
        }),
        cdcp::Station::new(cdcp::StationConfig {
            local_mac: STATION_MAC,
            chn_cap: 16,
        }),
    )
}

fn events(events: &[(Instant, Event)]) -> Vec<Event> {
    events.iter().map(|(_, event)| *event).collect()
}

#[test]
fn cdcp_grant() {
    let mut pair = cdcp_pair(8, &[100, 101, 102, 103]);
    pair.run_for(secs(1));
    pair.station.set_channels(&[2, 3, 4]).unwrap();
    pair.run_for(secs(3));
    let (bridge_events, station_events) = pair.take_events();
    let granted = [
        Event::ChannelUp { scid: 2, svid: 100 },
        Event::ChannelUp { scid: 3, svid: 101 },
        Event::ChannelUp { scid: 4, svid: 102 },
    ];
    assert_eq!(events(&bridge_events), granted);
    assert_eq!(events(&station_events), granted);
    assert_eq!(pair.bridge.channels(), pair.station.channels());
    // The station stops wanting SCID 3: both sides take it down, the SVID is free again.
    pair.station.set_channels(&[2, 4]).unwrap();
    pair.run_for(secs(3));
    let (bridge_events, station_events) = pair.take_events();
    let removed = [Event::ChannelDown { scid: 3, svid: 101 }];
    assert_eq!(events(&bridge_events), removed);
    assert_eq!(events(&station_events), removed);
    pair.station.set_channels(&[2, 4, 9]).unwrap();
    pair.run_for(secs(3));
    assert_eq!(pair.station.channels().get(&9), Some(&101));
    // Quiet afterwards: one LLDPDU per side every 30 s.
    let before = pair.log.len();
    pair.run_for(secs(300));
    assert_eq!(pair.log.len() - before, 20);
    assert_eq!(pair.bridge.channels(), pair.station.channels());
}

#[test]
fn cdcp_partial_grant() {
    // Two SVIDs for three wanted channels: the bridge grants what it can.
    let mut pair = cdcp_pair(8, &[200, 201]);
    pair.station.set_channels(&[2, 3, 4]).unwrap();
    pair.run_for(secs(3));
    let (_, station_events) = pair.take_events();
    assert_eq!(
        events(&station_events),
        [
            Event::ChannelUp { scid: 2, svid: 200 },
            Event::ChannelUp { scid: 3, svid: 201 }
        ]
    );
    assert!(
        !pair.station.channels().contains_key(&4),
        "SCID 4 has no SVID"
    );
    assert!(pair.bridge.counters().get(Counter::CdcpPoolExhausted) >= 1);
    // SCID 2 is dropped: its SVID goes to SCID 4, which was still asking.
    pair.station.set_channels(&[3, 4]).unwrap();
    pair.run_for(secs(3));
    let (bridge_events, station_events) = pair.take_events();
    assert_eq!(
        events(&bridge_events),
        [
            Event::ChannelDown { scid: 2, svid: 200 },
            Event::ChannelUp { scid: 4, svid: 200 }
        ]
    );
    assert_eq!(
        events(&station_events),
        [
            Event::ChannelDown { scid: 2, svid: 200 },
            Event::ChannelUp { scid: 4, svid: 200 }
        ]
    );
    // A bridge with capacity 2 (the default channel and one more) grants one channel.
    let mut small = cdcp_pair(2, &[300, 301]);
    small.station.set_channels(&[5, 6]).unwrap();
    small.run_for(secs(3));
    assert_eq!(small.station.channels().len(), 1);
    assert_eq!(small.station.channels().get(&5), Some(&300));
}

#[test]
fn cdcp_survives_loss() {
    let mut pair = cdcp_pair(8, &[100, 101, 102]);
    pair.latency = Duration::from_millis(3);
    pair.set_loss_rate(300, 42);
    pair.station.set_channels(&[2, 3, 4]).unwrap();
    // Lost LLDPDUs are repeated every 30 s at the latest.
    pair.run_for(secs(300));
    assert_eq!(pair.station.channels().len(), 3);
    assert_eq!(pair.bridge.channels(), pair.station.channels());
}
