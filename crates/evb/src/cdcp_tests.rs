//! CDCP conversations scripted with explicit time.

use super::*;
use crate::MAX_FRAME_LEN;

const BRIDGE_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x5e, 0x01]);

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn bridge(chn_cap: u16, svids: &[u16]) -> Bridge {
    Bridge::new(BridgeConfig {
        local_mac: BRIDGE_MAC,
        chn_cap,
        svids: svids.to_vec(),
    })
}

fn station(chn_cap: u16) -> Station {
    Station::new(StationConfig {
        local_mac: STATION_MAC,
        chn_cap,
    })
}

fn pairs(list: &[(u16, u16)]) -> Vec<Channel> {
    list.iter()
        .map(|&(scid, svid)| Channel { scid, svid })
        .collect()
}

/// An LLDPDU to the nearest non-TPMR bridge address carrying `tlv`.
fn lldpdu(src: MacAddr, ttl: u16, tlvs: &[cdcp::Repr]) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_LEN];
    let len = frame::lldpdu(&mut buf, NEAREST_NON_TPMR_BRIDGE, src, ttl, |writer| {
        tlvs.iter().try_for_each(|tlv| tlv.write(writer))
    })
    .unwrap();
    buf.truncate(len);
    buf
}

fn from_station(chn_cap: u16, channels: &[(u16, u16)]) -> Vec<u8> {
    lldpdu(
        STATION_MAC,
        120,
        &[cdcp::Repr {
            role: Role::Station,
            scomp: true,
            chn_cap,
            channels: pairs(channels),
        }],
    )
}

fn from_bridge(channels: &[(u16, u16)]) -> Vec<u8> {
    lldpdu(
        BRIDGE_MAC,
        120,
        &[cdcp::Repr {
            role: Role::Bridge,
            scomp: true,
            chn_cap: 167,
            channels: pairs(channels),
        }],
    )
}

/// The CDCP TLVs an engine sends at `now` (and the raw frames).
fn sent(engine: &mut impl Engine, now: Instant) -> Vec<(cdcp::Repr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    while let Some(transmit) = engine.poll_transmit(now, &mut buf) {
        let frame = buf[..transmit.len].to_vec();
        let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_addr(), NEAREST_NON_TPMR_BRIDGE);
        let repr = lldp::Repr::parse(&frame[ethernet::HEADER_LEN..]).unwrap();
        let org = repr.org_tlvs().next().unwrap();
        out.push((cdcp::Repr::from_org(&org).unwrap().unwrap(), frame));
    }
    out
}

fn events(engine: &mut impl Engine<Event = Event>) -> Vec<Event> {
    core::iter::from_fn(|| engine.poll_event()).collect()
}

#[test]
fn test_bridge_start_matches_capture_03() {
    let mut bridge = bridge(4, &[100]);
    let out = sent(&mut bridge, at(0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.role, Role::Bridge);
    assert!(out[0].0.channels.is_empty());
    // Granting <2,100> gives exactly the TLV evbsim sent in capture 03.
    bridge.handle_frame(at(1), &from_station(4, &[(2, 0)]));
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelUp { scid: 2, svid: 100 }]
    );
    let out = sent(&mut bridge, at(1));
    let frame = &out[0].1;
    let tlv = [
        0xfe, 0x0e, 0x00, 0x80, 0xc2, 0x0e, 0x08, 0x00, 0x00, 0x04, 0x00, 0x10, 0x01, 0x00, 0x20,
        0x64,
    ];
    assert!(
        frame.windows(tlv.len()).any(|window| window == tlv),
        "{frame:02x?}"
    );
}

#[test]
fn test_bridge_request_granted() {
    let mut bridge = bridge(8, &[100, 101, 102]);
    sent(&mut bridge, at(0));
    bridge.handle_frame(at(2), &from_station(8, &[(2, 0), (3, 0)]));
    assert_eq!(
        events(&mut bridge),
        [
            Event::ChannelUp { scid: 2, svid: 100 },
            Event::ChannelUp { scid: 3, svid: 101 }
        ]
    );
    assert_eq!(
        sent(&mut bridge, at(2))[0].0.channels,
        pairs(&[(2, 100), (3, 101)])
    );
    // The station echoes the grant: nothing changes, nothing is sent before the 30 s timer.
    bridge.handle_frame(at(3), &from_station(8, &[(2, 100), (3, 101)]));
    assert_eq!(events(&mut bridge), []);
    assert!(sent(&mut bridge, at(10)).is_empty());
    assert_eq!(sent(&mut bridge, at(32)).len(), 1);
}

#[test]
fn test_bridge_answers_a_restarted_station() {
    let mut port = bridge(8, &[100, 101]);
    port.handle_frame(at(0), &from_station(8, &[(2, 0), (3, 0)]));
    events(&mut port);
    sent(&mut port, at(0));
    port.handle_frame(at(1), &from_station(8, &[(2, 100), (3, 101)]));
    assert!(sent(&mut port, at(5)).is_empty());
    // The station restarted: it asks for its channels again, SVID 0. They stay as granted
    // (no event: their VSIs live on), and the grants go out now, not at the 30 s timer.
    port.handle_frame(at(6), &from_station(8, &[(2, 0), (3, 0)]));
    assert_eq!(events(&mut port), []);
    assert_eq!(
        sent(&mut port, at(6))[0].0.channels,
        pairs(&[(2, 100), (3, 101)])
    );
    // Heard: the echo is quiet again.
    port.handle_frame(at(7), &from_station(8, &[(2, 100), (3, 101)]));
    assert!(sent(&mut port, at(20)).is_empty());
    // A pool too small leaves an SCID at 0 for good; that is no reason to answer.
    let mut short = bridge(8, &[100]);
    short.handle_frame(at(0), &from_station(8, &[(2, 0), (3, 0)]));
    sent(&mut short, at(0));
    short.handle_frame(at(2), &from_station(8, &[(2, 100), (3, 0)]));
    assert!(sent(&mut short, at(10)).is_empty());
}

#[test]
fn test_bridge_partial_grant() {
    let mut bridge = bridge(8, &[100]);
    bridge.handle_frame(at(0), &from_station(8, &[(2, 0), (3, 0)]));
    // One SVID: <2,100> granted, SCID 3 left out (the station reads that as "none yet").
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelUp { scid: 2, svid: 100 }]
    );
    assert_eq!(sent(&mut bridge, at(0))[0].0.channels, pairs(&[(2, 100)]));
    assert_eq!(bridge.counters().get(Counter::CdcpPoolExhausted), 1);
    // The station drops SCID 2: its SVID returns to the pool and goes to SCID 3.
    bridge.handle_frame(at(5), &from_station(8, &[(3, 0)]));
    assert_eq!(
        events(&mut bridge),
        [
            Event::ChannelDown { scid: 2, svid: 100 },
            Event::ChannelUp { scid: 3, svid: 100 }
        ]
    );
    assert_eq!(bridge.channels().get(&3), Some(&100));
}

#[test]
fn test_bridge_station_drops_pair() {
    let mut bridge = bridge(8, &[100, 101]);
    bridge.handle_frame(at(0), &from_station(8, &[(2, 0), (3, 0)]));
    events(&mut bridge);
    bridge.handle_frame(at(5), &from_station(8, &[(2, 100)]));
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelDown { scid: 3, svid: 101 }]
    );
    assert_eq!(sent(&mut bridge, at(5))[0].0.channels, pairs(&[(2, 100)]));
    // Existing channels keep their SVID even when a new one asks for it.
    bridge.handle_frame(at(6), &from_station(8, &[(2, 100), (4, 100)]));
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelUp { scid: 4, svid: 101 }]
    );
}

#[test]
fn test_bridge_station_names_free_svid() {
    // After a bridge restart the station still lists its old grant: it is kept if free.
    let mut bridge = bridge(8, &[100, 101, 102]);
    bridge.handle_frame(at(0), &from_station(8, &[(2, 102), (3, 999)]));
    assert_eq!(
        events(&mut bridge),
        [
            Event::ChannelUp { scid: 2, svid: 102 },
            Event::ChannelUp { scid: 3, svid: 100 }
        ]
    );
}

#[test]
fn test_bridge_capacity_limits() {
    // Bridge capacity 3 (default + 2), station capacity 8: two channels at most.
    let mut bridge = bridge(3, &[100, 101, 102]);
    bridge.handle_frame(at(0), &from_station(8, &[(2, 0), (3, 0), (4, 0)]));
    assert_eq!(bridge.channels().len(), 2);
    assert!(!bridge.channels().contains_key(&4));
    // Station capacity 2: one channel.
    let mut small = self::bridge(8, &[100, 101]);
    small.handle_frame(at(0), &from_station(2, &[(2, 0), (3, 0)]));
    assert_eq!(small.channels().len(), 1);
    assert_eq!(
        bridge
            .counters()
            .get(Counter::Misbehaved(PeerMisbehaved::CdcpTooManyChannels)),
        1
    );
}

#[test]
fn test_bridge_bad_input_counted() {
    let mut bridge = bridge(8, &[100, 101]);
    // SCID 0, the default SCID again, and SCID 2 twice.
    bridge.handle_frame(at(0), &from_station(8, &[(0, 0), (1, 1), (2, 0), (2, 0)]));
    assert_eq!(bridge.channels().len(), 1);
    assert_eq!(
        bridge
            .counters()
            .get(Counter::Misbehaved(PeerMisbehaved::CdcpInvalidScid)),
        3
    );
    let tlv = |role| cdcp::Repr {
        role,
        scomp: true,
        chn_cap: 8,
        channels: pairs(&[(5, 0)]),
    };
    // Two CDCP TLVs in one LLDPDU, and a bridge talking to a bridge.
    bridge.handle_frame(
        at(1),
        &lldpdu(STATION_MAC, 120, &[tlv(Role::Station), tlv(Role::Station)]),
    );
    bridge.handle_frame(at(1), &lldpdu(STATION_MAC, 120, &[tlv(Role::Bridge)]));
    // A TLV whose first pair is not <1,1>, and one with a torn pair.
    let mut buf = vec![0; 128];
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_NON_TPMR_BRIDGE,
        STATION_MAC,
        120,
        |writer| {
            writer.write_org(cdcp::OUI, cdcp::SUBTYPE, &[0x80, 0, 0, 8, 0x00, 0x50, 0x00])?;
            Ok(())
        },
    )
    .unwrap();
    bridge.handle_frame(at(1), &buf[..len]);
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_NON_TPMR_BRIDGE,
        STATION_MAC,
        120,
        |writer| {
            writer.write_org(
                cdcp::OUI,
                cdcp::SUBTYPE,
                &[0x80, 0, 0, 8, 0x00, 0x10, 0x01, 0x00],
            )
        },
    )
    .unwrap();
    bridge.handle_frame(at(1), &buf[..len]);
    // The right TLV to the Nearest Customer Bridge address is not for CDCP.
    let mut wrong = from_station(8, &[(5, 0)]);
    wrong[5] = 0x00;
    bridge.handle_frame(at(1), &wrong);
    assert!(!bridge.channels().contains_key(&5));
    let counters = bridge.counters();
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::CdcpDuplicateTlv)),
        1
    );
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::SameRole)),
        1
    );
    assert_eq!(counters.get(Counter::Invalid(wire::Error::Unsupported)), 1);
    assert_eq!(counters.get(Counter::Invalid(wire::Error::BadLength)), 1);
    assert_eq!(counters.get(Counter::NotForUs), 1);
}

#[test]
fn test_bridge_peer_expires() {
    let mut bridge = bridge(8, &[100]);
    bridge.handle_frame(at(0), &from_station(8, &[(2, 0)]));
    events(&mut bridge);
    sent(&mut bridge, at(0));
    sent(&mut bridge, at(30));
    sent(&mut bridge, at(60));
    sent(&mut bridge, at(90));
    assert_eq!(bridge.poll_timeout(), Some(at(120)));
    bridge.handle_timeout(at(120));
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelDown { scid: 2, svid: 100 }, Event::PeerLost]
    );
    assert_eq!(bridge.counters().get(Counter::PeerExpired), 1);
    // The SVID is free again.
    bridge.handle_frame(at(121), &from_station(8, &[(7, 0)]));
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelUp { scid: 7, svid: 100 }]
    );
    // A TTL-0 LLDPDU takes everything down at once.
    let mut buf = vec![0; 64];
    let len = frame::lldpdu(
        &mut buf,
        NEAREST_NON_TPMR_BRIDGE,
        STATION_MAC,
        0,
        |_| Ok(()),
    )
    .unwrap();
    bridge.handle_frame(at(122), &buf[..len]);
    assert_eq!(
        events(&mut bridge),
        [Event::ChannelDown { scid: 7, svid: 100 }, Event::PeerLost]
    );
}

#[test]
fn test_station_request_and_grant() {
    let mut station = station(8);
    station.set_channels(&[2, 3]).unwrap();
    let out = sent(&mut station, at(0));
    assert_eq!(out[0].0.role, Role::Station);
    assert_eq!(out[0].0.channels, pairs(&[(2, 0), (3, 0)]));
    // The bridge grants SCID 2 only.
    station.handle_frame(at(1), &from_bridge(&[(2, 100)]));
    assert_eq!(
        events(&mut station),
        [Event::ChannelUp { scid: 2, svid: 100 }]
    );
    assert_eq!(
        sent(&mut station, at(1))[0].0.channels,
        pairs(&[(2, 100), (3, 0)])
    );
    // Later SCID 3 too.
    station.handle_frame(at(5), &from_bridge(&[(2, 100), (3, 101)]));
    assert_eq!(
        events(&mut station),
        [Event::ChannelUp { scid: 3, svid: 101 }]
    );
    assert_eq!(station.channels().len(), 2);
    // The bridge withdraws SCID 2.
    station.handle_frame(at(9), &from_bridge(&[(3, 101)]));
    assert_eq!(
        events(&mut station),
        [Event::ChannelDown { scid: 2, svid: 100 }]
    );
}

#[test]
fn test_station_drops_channel() {
    let mut station = station(8);
    station.set_channels(&[2, 3]).unwrap();
    station.handle_frame(at(1), &from_bridge(&[(2, 100), (3, 101)]));
    events(&mut station);
    sent(&mut station, at(1));
    station.set_channels(&[3]).unwrap();
    assert_eq!(
        events(&mut station),
        [Event::ChannelDown { scid: 2, svid: 100 }]
    );
    assert_eq!(sent(&mut station, at(2))[0].0.channels, pairs(&[(3, 101)]));
    // Unchanged: nothing new to send.
    station.set_channels(&[3]).unwrap();
    assert!(sent(&mut station, at(4)).is_empty());
}

#[test]
fn test_cdcp_request_more_than_167() {
    // 166 channels and the default one fill a TLV; the 168th pair cannot be asked for.
    let mut station = station(4095);
    let scids: Vec<u16> = (2..2 + 167).collect();
    assert_eq!(
        station.set_channels(&scids),
        Err(ApiMisuse::TooManyChannels)
    );
    station.set_channels(&scids[..166]).unwrap();
    assert_eq!(sent(&mut station, at(0))[0].0.channels.len(), 166);
    // A capacity of 4 allows 3 besides the default.
    let mut small = self::station(4);
    assert_eq!(
        small.set_channels(&[2, 3, 4, 5]),
        Err(ApiMisuse::TooManyChannels)
    );
    small.set_channels(&[2, 3, 4]).unwrap();
    for bad in [&[0][..], &[1], &[4096], &[2, 2]] {
        assert_eq!(
            small.set_channels(bad),
            Err(ApiMisuse::InvalidScid),
            "{bad:?}"
        );
    }
    // A bridge offered 166 channels by a station with a capacity above 167 grants what fits
    // its pool and capacity.
    let mut bridge = bridge(4095, &(2..=300).collect::<Vec<u16>>());
    let request: Vec<(u16, u16)> = scids[..166].iter().map(|&scid| (scid, 0)).collect();
    bridge.handle_frame(at(0), &from_station(4095, &request));
    assert_eq!(bridge.channels().len(), 166);
}

#[test]
fn test_station_peer_lost() {
    let mut station = station(8);
    station.set_channels(&[2]).unwrap();
    station.handle_frame(at(0), &from_bridge(&[(2, 100)]));
    events(&mut station);
    station.handle_timeout(at(120));
    assert_eq!(
        events(&mut station),
        [Event::ChannelDown { scid: 2, svid: 100 }, Event::PeerLost]
    );
    assert_eq!(sent(&mut station, at(120))[0].0.channels, pairs(&[(2, 0)]));
    // A station TLV is not a bridge's.
    station.handle_frame(at(121), &from_station(8, &[(2, 5)]));
    assert!(station.channels().is_empty());
}
