//! The EVB agent against the TLVs lldpad exchanged in captures 02 and 05.

use super::*;
use crate::MAX_FRAME_LEN;

const BRIDGE_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x5e, 0x01]);
/// The captures' settings: R 3, RTE 14, RWD 20, RKA 20.
const TIMING: Timing = Timing {
    max_retries: 3,
    rte: 14,
    rwd: 20,
    rka: 20,
};

fn bridge(reflective_relay: bool, group_ids: bool) -> Agent {
    Agent::new(Config {
        role: Role::Bridge,
        local_mac: BRIDGE_MAC,
        timing: TIMING,
        reflective_relay,
        group_ids,
    })
}

fn station(group_ids: bool) -> Agent {
    Agent::new(Config {
        role: Role::Station,
        local_mac: STATION_MAC,
        timing: TIMING,
        reflective_relay: true,
        group_ids,
    })
}

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// An LLDPDU to the NCB address carrying an EVB TLV with these five info octets.
fn lldpdu_with(src: MacAddr, info: [u8; 5], ttl: u16) -> Vec<u8> {
    let mut buf = vec![0; 128];
    let len = frame::lldpdu(&mut buf, NEAREST_CUSTOMER_BRIDGE, src, ttl, |writer| {
        writer.write_org(evb::OUI, evb::SUBTYPE, &info)
    })
    .unwrap();
    buf.truncate(len);
    buf
}

/// The EVB info octets of every LLDPDU the agent sends at `now`.
fn sent(agent: &mut Agent, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    while let Some(transmit) = agent.poll_transmit(now, &mut buf) {
        let frame = &buf[..transmit.len];
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.dst_addr(), NEAREST_CUSTOMER_BRIDGE);
        let repr = lldp::Repr::parse(&frame[ethernet::HEADER_LEN..]).unwrap();
        let info = repr
            .org_tlvs()
            .find(|org| org.oui == evb::OUI && org.subtype == evb::SUBTYPE)
            .map(|org| org.info.to_vec());
        out.push(info.unwrap_or_else(|| vec![repr.ttl.to_be_bytes()[1]]));
    }
    out
}

fn events(agent: &mut Agent) -> Vec<Event> {
    core::iter::from_fn(|| agent.poll_event()).collect()
}

#[test]
fn test_bridge_start() {
    let mut bridge = bridge(true, false);
    assert_eq!(bridge.poll_timeout(), Some(Instant::ZERO));
    // Capture 02 frame 1: RRCAP, nothing from a station yet.
    assert_eq!(
        sent(&mut bridge, at(0)),
        [vec![0x02, 0x00, 0x6e, 0x54, 0x14]]
    );
    assert_eq!(sent(&mut bridge, at(1)), Vec::<Vec<u8>>::new());
    assert_eq!(bridge.poll_timeout(), Some(at(30)));
    assert_eq!(sent(&mut bridge, at(30)).len(), 1);
    assert_eq!(events(&mut bridge), []);
    assert!(!bridge.negotiated().reflective_relay);
}

#[test]
fn test_station_start() {
    let mut station = station(false);
    // Capture 01: RRREQ with RRSTAT "unknown" until a bridge is heard.
    assert_eq!(
        sent(&mut station, at(0)),
        [vec![0x00, 0x07, 0x6e, 0x94, 0x14]]
    );
}

#[test]
fn test_bridge_station_tlv_received() {
    let mut bridge = bridge(true, false);
    sent(&mut bridge, at(0));
    bridge.handle_frame(
        Instant::from_millis(1_349),
        &lldpdu_with(STATION_MAC, [0x00, 0x07, 0x6e, 0x94, 0x14], 120),
    );
    // Capture 02 frame 3: RRCTRL on, the station's octet echoed, ROL on both exponents.
    assert_eq!(bridge.local_tlv().bridge.to_octet(), 0x03);
    assert_eq!(
        events(&mut bridge),
        [Event::Negotiated(Negotiated {
            timing: TIMING,
            reflective_relay: true,
            group_ids: false,
        })]
    );
    // Sent on change, but not sooner than a second after the last LLDPDU.
    assert_eq!(bridge.poll_timeout(), Some(at(1)));
    assert_eq!(
        sent(&mut bridge, Instant::from_millis(1_350)),
        [vec![0x03, 0x07, 0x6e, 0x74, 0x34]]
    );
    // The same TLV again: the station still shows bridge octet 0, so it has not heard the
    // answer (lost, or the station restarted). It hears it again, a second after the last.
    bridge.handle_frame(
        at(2),
        &lldpdu_with(STATION_MAC, [0x00, 0x07, 0x6e, 0x94, 0x14], 120),
    );
    assert_eq!(events(&mut bridge), []);
    assert_eq!(sent(&mut bridge, at(2)), Vec::<Vec<u8>>::new());
    assert_eq!(
        sent(&mut bridge, at(3)),
        [vec![0x03, 0x07, 0x6e, 0x74, 0x34]]
    );
    // Capture 02 frame 4, the station's answer (echoing 0x03), and then the same again: the
    // first changes the octet the bridge echoes, the repeat changes nothing. No reply, no event.
    let answer = lldpdu_with(STATION_MAC, [0x03, 0x05, 0x6e, 0xb4, 0x34], 120);
    bridge.handle_frame(at(4), &answer);
    assert_eq!(
        sent(&mut bridge, at(4)),
        [vec![0x03, 0x05, 0x6e, 0x74, 0x34]]
    );
    bridge.handle_frame(at(6), &answer);
    assert_eq!(sent(&mut bridge, at(8)), Vec::<Vec<u8>>::new());
    assert_eq!(events(&mut bridge), []);
}

#[test]
fn test_station_bridge_tlv_received() {
    let mut station = station(false);
    sent(&mut station, at(0));
    station.handle_frame(
        at(2),
        &lldpdu_with(BRIDGE_MAC, [0x03, 0x07, 0x6e, 0x74, 0x34], 120),
    );
    // Capture 02 frame 4: the bridge's octet echoed, RRSTAT "enabled".
    assert_eq!(
        sent(&mut station, at(2)),
        [vec![0x03, 0x05, 0x6e, 0xb4, 0x34]]
    );
    assert_eq!(
        events(&mut station),
        [Event::Negotiated(Negotiated {
            timing: TIMING,
            reflective_relay: true,
            group_ids: false,
        })]
    );
    // A bridge that turns RRCTRL off (capture 07 frame 18): RRSTAT "not enabled".
    station.handle_frame(
        at(4),
        &lldpdu_with(BRIDGE_MAC, [0x02, 0x00, 0x6e, 0x54, 0x14], 120),
    );
    assert_eq!(
        sent(&mut station, at(4)),
        [vec![0x02, 0x04, 0x6e, 0xb4, 0x34]]
    );
    assert!(!station.negotiated().reflective_relay);
}

#[test]
fn test_station_group_ids_without_reflective_relay() {
    // Capture 05: bridge with BGID and without RRCAP.
    let mut station = station(true);
    station.handle_frame(
        at(0),
        &lldpdu_with(BRIDGE_MAC, [0x04, 0x00, 0x6e, 0x54, 0x14], 120),
    );
    assert_eq!(
        sent(&mut station, at(0)),
        [vec![0x04, 0x0c, 0x6e, 0xb4, 0x34]]
    );
    let negotiated = station.negotiated();
    assert!(negotiated.group_ids);
    assert!(!negotiated.reflective_relay);
    let mut bridge = bridge(false, true);
    bridge.handle_frame(
        at(0),
        &lldpdu_with(STATION_MAC, [0x04, 0x0c, 0x6e, 0xb4, 0x34], 120),
    );
    assert_eq!(
        sent(&mut bridge, at(0)),
        [vec![0x04, 0x0c, 0x6e, 0x74, 0x34]]
    );
    assert!(bridge.negotiated().group_ids);
}

#[test]
fn test_negotiated_larger_values() {
    let mut bridge = bridge(false, false);
    // The station wants more retries, a longer ACK timer and a shorter keep-alive.
    bridge.handle_frame(
        at(0),
        &lldpdu_with(STATION_MAC, [0x00, 0x00, 0xaf, 0x94, 0x10], 120),
    );
    let negotiated = bridge.negotiated();
    assert_eq!(
        negotiated.timing,
        Timing {
            max_retries: 5,
            rte: 15,
            rwd: 20,
            rka: 20,
        }
    );
    let tlv = bridge.local_tlv();
    assert!(tlv.rwd_remote, "equal values count as the remote's");
    assert!(!tlv.rka_remote, "our RKA 20 beats their 16");
}

#[test]
fn test_peer_ttl_expires() {
    let mut station = station(false);
    station.handle_frame(
        at(0),
        &lldpdu_with(BRIDGE_MAC, [0x03, 0x07, 0x6e, 0x74, 0x34], 120),
    );
    events(&mut station);
    sent(&mut station, at(0));
    station.handle_timeout(at(119));
    assert_eq!(events(&mut station), []);
    assert_eq!(station.poll_timeout(), Some(at(30)));
    sent(&mut station, at(30));
    sent(&mut station, at(60));
    sent(&mut station, at(90));
    assert_eq!(station.poll_timeout(), Some(at(120)));
    station.handle_timeout(at(120));
    assert_eq!(
        events(&mut station),
        [
            Event::PeerLost,
            Event::Negotiated(Negotiated {
                timing: TIMING,
                reflective_relay: false,
                group_ids: false,
            })
        ]
    );
    assert_eq!(station.counters().get(Counter::PeerExpired), 1);
    assert_eq!(station.remote_tlv(), None);
    assert_eq!(
        sent(&mut station, at(121)),
        [vec![0x00, 0x07, 0x6e, 0x94, 0x14]]
    );
}

#[test]
fn test_peer_shutdown_ttl_zero() {
    let mut bridge = bridge(true, false);
    bridge.handle_frame(
        at(0),
        &lldpdu_with(STATION_MAC, [0x00, 0x07, 0x6e, 0x94, 0x14], 120),
    );
    events(&mut bridge);
    // lldpad's shutdown LLDPDU has no EVB TLV (capture 01 frame 8).
    let mut buf = vec![0; 64];
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_CUSTOMER_BRIDGE,
        STATION_MAC,
        0,
        |_| Ok(()),
    )
    .unwrap();
    bridge.handle_frame(at(5), &buf[..len]);
    assert_eq!(events(&mut bridge)[0], Event::PeerLost);
    assert_eq!(bridge.counters().get(Counter::PeerShutdown), 1);
    assert_eq!(bridge.local_tlv().bridge.to_octet(), 0x02);
}

#[test]
fn test_bridge_shutdown() {
    let mut bridge = bridge(true, false);
    sent(&mut bridge, at(0));
    bridge.shutdown();
    assert_eq!(
        sent(&mut bridge, at(1)),
        [vec![0]],
        "one TTL-0 LLDPDU without EVB TLV"
    );
    assert_eq!(sent(&mut bridge, at(40)), Vec::<Vec<u8>>::new());
    assert_eq!(bridge.poll_timeout(), None);
    bridge.handle_frame(
        at(41),
        &lldpdu_with(STATION_MAC, [0x00, 0x07, 0x6e, 0x94, 0x14], 120),
    );
    assert_eq!(events(&mut bridge), []);
}

#[test]
fn test_bad_lldpdus_counted() {
    let mut bridge = bridge(true, false);
    // A station claiming to be a bridge.
    bridge.handle_frame(
        at(0),
        &lldpdu_with(STATION_MAC, [0x02, 0x00, 0x6e, 0x54, 0x14], 120),
    );
    // An EVB TLV one octet too long.
    let mut buf = vec![0; 128];
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_CUSTOMER_BRIDGE,
        STATION_MAC,
        120,
        |writer| writer.write_org(evb::OUI, evb::SUBTYPE, &[0, 7, 0x6e, 0x94, 0x14, 0]),
    )
    .unwrap();
    bridge.handle_frame(at(0), &buf[..len]);
    // Only the draft TLV.
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_CUSTOMER_BRIDGE,
        STATION_MAC,
        120,
        |writer| {
            writer.write_org(
                evb::DRAFT_OUI,
                evb::DRAFT_SUBTYPE,
                &[0x40, 7, 0x40, 0, 0, 0, 0, 0, 15],
            )
        },
    )
    .unwrap();
    bridge.handle_frame(at(0), &buf[..len]);
    // No EVB TLV at all, and a torn LLDPDU.
    let len = frame::lldpdu(&mut buf, NEAREST_CUSTOMER_BRIDGE, STATION_MAC, 120, |_| {
        Ok(())
    })
    .unwrap();
    bridge.handle_frame(at(0), &buf[..len]);
    bridge.handle_frame(at(0), &buf[..len - 3]);
    // The right TLV to the wrong address (the nearest bridge).
    let mut wrong = lldpdu_with(STATION_MAC, [0x00, 0x07, 0x6e, 0x94, 0x14], 120);
    wrong[5] = 0x0e;
    bridge.handle_frame(at(0), &wrong);
    assert_eq!(events(&mut bridge), []);
    assert_eq!(bridge.remote_tlv(), None);
    let counters = bridge.counters();
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::SameRole)),
        1
    );
    assert_eq!(counters.get(Counter::Invalid(wire::Error::BadLength)), 1);
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::DraftEvbOnly)),
        1
    );
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::NoEvbTlv)),
        1
    );
    assert_eq!(counters.get(Counter::Invalid(wire::Error::Truncated)), 1);
    assert_eq!(counters.get(Counter::NotForUs), 1);
}
