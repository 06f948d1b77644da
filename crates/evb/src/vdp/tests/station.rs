//! The VDP station against a scripted bridge.

use wire::vdp::{Reason, Vlan};

use super::*;
use crate::ApiMisuse;

fn station() -> Station {
    Station::new(StationConfig {
        local_mac: STATION_MAC,
        initial_sequence: 0,
        timing: TIMING,
        group_ids: false,
        retries: 1,
    })
}

fn from_bridge(sequence: u16, vsi: Vsi) -> Vec<u8> {
    vdp_frame(BRIDGE_MAC, sequence, vsi)
}

/// The bridge's answer to `request`: same TLV, `status`, VID 0 filled with `vid`.
fn answer(request: &Vsi, mode: Mode, status: Status, vid: u16) -> Vsi {
    let mut answer = request.answer(mode, status);
    answer.filters.for_each_vlan_mut(|vlan| {
        if vlan.vid == 0 {
            vlan.vid = vid;
        }
    });
    answer
}

/// A station with VSI A associated at 0 ms, VID 10 adopted, its ECP idle.
fn associated() -> Station {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    station.handle_frame(at_ms(1), &ecp_frame(BRIDGE_MAC, Operation::ACK, 1, &[]));
    let reply = answer(
        &request(&spec_a(), Mode::Associate),
        Mode::Associate,
        Status::SUCCESS,
        10,
    );
    station.handle_frame(at_ms(3), &from_bridge(1, reply));
    drain(&mut station, at_ms(3));
    events(&mut station);
    station
}

#[test]
fn test_idle_associate_matches_capture_03() {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    let sent = drain(&mut station, at_ms(0));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].bytes,
        unhex(CAPTURE_03_11),
        "lldpad's request, byte for byte"
    );
    assert_eq!(station.vsi(&key_a()).unwrap().1, None, "waiting");
    // The ECP timer, then the response wait.
    assert_eq!(
        station.poll_timeout(),
        Some(at_ms(0) + TIMING.ecp_ack_timeout())
    );
    station.handle_frame(at_ms(1), &ecp_frame(BRIDGE_MAC, Operation::ACK, 1, &[]));
    assert_eq!(station.poll_timeout(), Some(at_ms(0) + RESPONSE_WAIT));
}

#[test]
fn test_waiting_response_adopts_vlan() {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    // The scapy bridge's answer, byte for byte: VID 10.
    station.handle_frame(at_ms(4), &unhex(CAPTURE_03_13));
    let sent = drain(&mut station, at_ms(4));
    assert_eq!((sent[0].operation, sent[0].sequence), (Operation::ACK, 1));
    let adopted = Filters::MacVid(vec![(VM_MAC, Vlan::new(10))]);
    assert_eq!(
        events(&mut station),
        [StationEvent::Associated {
            key: key_a(),
            filters: adopted.clone(),
        }]
    );
    assert_eq!(
        station.vsi(&key_a()),
        Some((&adopted, Some(Mode::Associate)))
    );
    // The keep-alive, T(RKA) later, carries VID 10 (capture 03 frame 30).
    station.handle_frame(at_ms(5), &ecp_frame(BRIDGE_MAC, Operation::ACK, 1, &[]));
    let refresh = at_ms(4) + KEEP_ALIVE;
    assert_eq!(station.poll_timeout(), Some(refresh));
    station.handle_timeout(refresh);
    let sent = drain(&mut station, refresh);
    assert_eq!(sent[0].sequence, 2);
    assert_eq!(sent[0].vsi().mode, Mode::Associate);
    assert_eq!(sent[0].vsi().filters, adopted);
    // Its answer is not news.
    let reply = answer(sent[0].vsi(), Mode::Associate, Status::SUCCESS, 10);
    station.handle_frame(refresh, &from_bridge(2, reply));
    assert_eq!(events(&mut station), []);
}

#[test]
fn test_waiting_timeout_retries_then_gives_up() {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    station.handle_frame(at_ms(1), &ecp_frame(BRIDGE_MAC, Operation::ACK, 1, &[]));
    // No VDP answer (capture 04, type 97): the request goes again once (retries: 1).
    let first = at_ms(0) + RESPONSE_WAIT;
    station.handle_timeout(first);
    let sent = drain(&mut station, first);
    assert_eq!((sent[0].sequence, sent[0].vsi().mode), (2, Mode::Associate));
    station.handle_frame(first, &ecp_frame(BRIDGE_MAC, Operation::ACK, 2, &[]));
    let second = first + RESPONSE_WAIT;
    assert_eq!(station.poll_timeout(), Some(second));
    station.handle_timeout(second);
    assert_eq!(
        events(&mut station),
        [StationEvent::TimedOut { key: key_a() }]
    );
    assert_eq!(station.vsi(&key_a()), None);
    assert_eq!(station.poll_timeout(), None);
    let counters = station.counters();
    assert_eq!(counters.get(Counter::VdpRetry), 1);
    assert_eq!(counters.get(Counter::VdpResponseTimeout), 1);
}

#[test]
fn test_waiting_refused() {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    // De-Associate + insufficient resources (capture 03 frame 28).
    let status = Status::from_octet(0x42);
    let reply = answer(
        &request(&spec_a(), Mode::Associate),
        Mode::Deassociate,
        status,
        0,
    );
    station.handle_frame(at_ms(2), &from_bridge(1, reply));
    assert_eq!(
        events(&mut station),
        [StationEvent::Refused {
            key: key_a(),
            reason: Reason::INSUFFICIENT_RESOURCES,
            hard: false,
            kept: None,
        }]
    );
    assert_eq!(station.vsi(&key_a()), None);
}

#[test]
fn test_waiting_keep_on_new_vsi_ends_it() {
    // Keep + error to a new VSI (capture 03 frame 36) left lldpad's client unanswered; weft
    // tells its driver the VSI was refused.
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    let reply = answer(
        &request(&spec_a(), Mode::Associate),
        Mode::Associate,
        Status::from_octet(0x63),
        0,
    );
    station.handle_frame(at_ms(2), &from_bridge(1, reply));
    assert!(matches!(
        events(&mut station)[..],
        [StationEvent::Refused { kept: None, .. }]
    ));
    assert_eq!(station.vsi(&key_a()), None);
}

#[test]
fn test_preassociated_associate_refused_keeps_preassociation() {
    let mut station = station();
    station.pre_associate(at_ms(0), spec_a(), false).unwrap();
    drain(&mut station, at_ms(0));
    station.handle_frame(at_ms(1), &ecp_frame(BRIDGE_MAC, Operation::ACK, 1, &[]));
    let pre = request(&spec_a(), Mode::PreAssociate);
    station.handle_frame(
        at_ms(2),
        &from_bridge(1, answer(&pre, Mode::PreAssociate, Status::SUCCESS, 10)),
    );
    assert!(matches!(
        events(&mut station)[..],
        [StationEvent::PreAssociated {
            reserved: false,
            ..
        }]
    ));
    drain(&mut station, at_ms(2));
    // Associate, refused with Keep: still pre-associated.
    station.associate(at_ms(3), spec_a()).unwrap();
    let sent = drain(&mut station, at_ms(3));
    assert_eq!(sent[0].vsi().mode, Mode::Associate);
    assert_eq!(
        sent[0].vsi().filters,
        Filters::MacVid(vec![(VM_MAC, Vlan::new(10))]),
        "the adopted VID, not the 0 of the spec"
    );
    let status = Status::from_octet(0x62);
    station.handle_frame(
        at_ms(4),
        &from_bridge(2, sent[0].vsi().answer(Mode::Associate, status)),
    );
    assert!(matches!(
        events(&mut station)[..],
        [StationEvent::Refused {
            kept: Some(Mode::PreAssociate),
            ..
        }]
    ));
    assert_eq!(station.vsi(&key_a()).unwrap().1, Some(Mode::PreAssociate));
}

#[test]
fn test_associated_bridge_deassociates() {
    let mut station = associated();
    // Unsolicited, status 0x00, with the assigned VID (capture 03 frame 58).
    let mut unsolicited = request(&spec_a(), Mode::Deassociate);
    unsolicited.filters = Filters::MacVid(vec![(VM_MAC, Vlan::new(10))]);
    station.handle_frame(at_ms(10), &from_bridge(2, unsolicited));
    assert_eq!(
        events(&mut station),
        [StationEvent::Deassociated {
            key: key_a(),
            cause: DeassociateCause::Bridge,
        }]
    );
    assert_eq!(station.poll_timeout(), None);
}

#[test]
fn test_associated_deassociate() {
    let mut station = associated();
    station.deassociate(at_ms(10), &key_a()).unwrap();
    let sent = drain(&mut station, at_ms(10));
    assert_eq!(sent[0].vsi().mode, Mode::Deassociate);
    let reply = sent[0].vsi().answer(Mode::Deassociate, Status::SUCCESS);
    station.handle_frame(at_ms(11), &from_bridge(2, reply));
    assert_eq!(
        events(&mut station),
        [StationEvent::Deassociated {
            key: key_a(),
            cause: DeassociateCause::Station,
        }]
    );
}

#[test]
fn test_waiting_mismatched_answers_ignored() {
    let mut station = station();
    station.associate(at_ms(0), spec_a()).unwrap();
    drain(&mut station, at_ms(0));
    let mut wrong = answer(
        &request(&spec_a(), Mode::Associate),
        Mode::Associate,
        Status::SUCCESS,
        10,
    );
    wrong.filters = Filters::MacVid(vec![(MacAddr([0x52, 0x54, 0, 0, 0, 0x99]), Vlan::new(10))]);
    station.handle_frame(at_ms(1), &from_bridge(1, wrong));
    let mut other_type =
        request(&spec_a(), Mode::Associate).answer(Mode::Associate, Status::SUCCESS);
    other_type.type_version = 9;
    station.handle_frame(at_ms(2), &from_bridge(2, other_type));
    let mut unknown = request(&spec_a(), Mode::Associate).answer(Mode::Associate, Status::SUCCESS);
    unknown.id = uuid(0x77, 0x77);
    station.handle_frame(at_ms(3), &from_bridge(3, unknown));
    // A request where an answer belongs.
    station.handle_frame(
        at_ms(4),
        &from_bridge(4, request(&spec_a(), Mode::Associate)),
    );
    assert_eq!(events(&mut station), []);
    assert_eq!(station.vsi(&key_a()).unwrap().1, None, "still waiting");
    let counters = station.counters();
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpResponseMismatch)),
        2
    );
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpUnknownVsi)),
        1
    );
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpUnexpectedStatus)),
        1
    );
}

#[test]
fn test_idle_api_rules() {
    let mut station = station();
    assert_eq!(
        station.deassociate(at_ms(0), &key_a()),
        Err(ApiMisuse::UnknownVsi)
    );
    for vid in [1, 4095] {
        let spec = VsiSpec {
            filters: Filters::MacVid(vec![(VM_MAC, Vlan::new(vid))]),
            ..spec_a()
        };
        assert_eq!(
            station.associate(at_ms(0), spec),
            Err(ApiMisuse::InvalidFilter)
        );
    }
    let spec = VsiSpec {
        filters: Filters::MacVid(vec![(MacAddr([0x33, 0x33, 0, 0, 0, 1]), Vlan::new(0))]),
        ..spec_a()
    };
    assert_eq!(
        station.associate(at_ms(0), spec),
        Err(ApiMisuse::InvalidFilter)
    );
    let spec = VsiSpec {
        filters: Filters::GroupVid(vec![(88, Vlan::new(40))]),
        ..spec_a()
    };
    assert_eq!(
        station.associate(at_ms(0), spec.clone()),
        Err(ApiMisuse::GroupIdsNotNegotiated)
    );
    station.set_group_ids(true);
    station.associate(at_ms(0), spec).unwrap();
    // An exchange in flight: busy.
    assert_eq!(
        station.associate(at_ms(1), spec_a()),
        Err(ApiMisuse::VsiBusy)
    );
    // Associated: may not fall back to pre-associate.
    let mut station = associated();
    assert_eq!(
        station.pre_associate(at_ms(10), spec_a(), true),
        Err(ApiMisuse::ModeDowngrade)
    );
    station.set_timing(Timing::default());
    assert_eq!(drain(&mut station, at_ms(10)).len(), 0);
}
