//! The VDP bridge against a scripted station.

use wire::vdp::{Reason, Vlan};

use super::*;

/// A policy that knows type 5 (VLAN 10) and type 6 (VLAN 100), refuses type 99 for lack of
/// resources and type 95 with a hard error, and defers type 97.
fn policy(request: &VsiRequest<'_>) -> Decision {
    match request.vsi.type_id {
        5 => Decision::Accept(Profile { vid: Some(10) }),
        6 => Decision::Accept(Profile { vid: Some(100) }),
        95 => Decision::Refuse(Refusal {
            reason: Reason::OTHER_FAILURE,
            hard: true,
        }),
        97 => Decision::Defer,
        _ => Decision::Refuse(Refusal::new(Reason::INSUFFICIENT_RESOURCES)),
    }
}

type Policy = fn(&VsiRequest<'_>) -> Decision;

fn bridge() -> Bridge<Policy> {
    Bridge::new(
        BridgeConfig {
            local_mac: BRIDGE_MAC,
            initial_sequence: 0,
            timing: TIMING,
            group_ids: false,
        },
        policy as Policy,
    )
}

fn from_station(sequence: u16, vsi: Vsi) -> Vec<u8> {
    vdp_frame(STATION_MAC, sequence, vsi)
}

/// A bridge with VSI A associated (VID 10) at 0 ms.
fn associated() -> Bridge<Policy> {
    let mut bridge = bridge();
    bridge.handle_frame(
        at_ms(0),
        &from_station(1, request(&spec_a(), Mode::Associate)),
    );
    drain(&mut bridge, at_ms(0));
    events(&mut bridge);
    bridge
}

#[test]
fn test_idle_associate_matches_capture_03() {
    let mut bridge = bridge();
    // lldpad's request, byte for byte.
    bridge.handle_frame(at_ms(0), &unhex(CAPTURE_03_11));
    let sent = drain(&mut bridge, at_ms(0));
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].operation, sent[0].sequence), (Operation::ACK, 1));
    // The answer is the scapy bridge's, byte for byte: VID 0 became 10.
    assert_eq!(sent[1].bytes, unhex(CAPTURE_03_13));
    let answer = sent[1].vsi().clone();
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Associated {
            key: key_a(),
            vsi: answer.clone(),
            profile: Profile { vid: Some(10) },
        }]
    );
    let associations: Vec<Association> = bridge.associations().collect();
    assert_eq!(associations.len(), 1);
    assert_eq!(associations[0].mode, Mode::Associate);
    assert_eq!(associations[0].vsi, answer);
    assert_eq!(
        bridge.poll_timeout(),
        Some(at_ms(0) + TIMING.ecp_ack_timeout())
    );
}

#[test]
fn test_associated_keep_alive_answered() {
    let mut bridge = associated();
    // The station's keep-alive carries the VID it adopted (capture 03 frame 30).
    let mut keep_alive = request(&spec_a(), Mode::Associate);
    keep_alive.filters = Filters::MacVid(vec![(VM_MAC, Vlan::new(10))]);
    let now = at_ms(10_486);
    bridge.handle_frame(now, &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    bridge.handle_frame(now, &from_station(2, keep_alive));
    let sent = drain(&mut bridge, now);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].vsi().status, Status::SUCCESS);
    assert_eq!(
        sent[1].vsi().filters,
        Filters::MacVid(vec![(VM_MAC, Vlan::new(10))])
    );
    assert_eq!(events(&mut bridge), [], "a keep-alive is not news");
    // The deadline moved: nothing happens 17.45 s after the association.
    bridge.handle_frame(now, &ecp_frame(STATION_MAC, Operation::ACK, 2, &[]));
    bridge.handle_timeout(at_ms(0) + RESPONSE_WAIT);
    assert!(drain(&mut bridge, at_ms(17_500)).is_empty());
    assert_eq!(bridge.poll_timeout(), Some(now + RESPONSE_WAIT));
    // A keep-alive with VID 0 (a station that did not adopt) is a keep-alive too.
    bridge.handle_frame(now, &from_station(3, request(&spec_a(), Mode::Associate)));
    assert_eq!(drain(&mut bridge, now)[1].vsi().status, Status::SUCCESS);
    assert_eq!(events(&mut bridge), []);
}

#[test]
fn test_associated_keep_alive_timeout() {
    let mut bridge = associated();
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    let deadline = at_ms(0) + RESPONSE_WAIT;
    assert_eq!(bridge.poll_timeout(), Some(deadline));
    bridge.handle_timeout(deadline);
    let sent = drain(&mut bridge, deadline);
    // An unsolicited De-Associate, status 0x00, with the assigned VID (capture 03 frame 58).
    assert_eq!(sent.len(), 1);
    let vsi = sent[0].vsi();
    assert_eq!((vsi.mode, vsi.status), (Mode::Deassociate, Status::REQUEST));
    assert_eq!(vsi.filters, Filters::MacVid(vec![(VM_MAC, Vlan::new(10))]));
    assert_eq!(sent[0].sequence, 2);
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Deassociated {
            key: key_a(),
            cause: DeassociateCause::KeepAliveTimeout,
        }]
    );
    assert_eq!(bridge.counters().get(Counter::VdpKeepAliveTimeout), 1);
    assert_eq!(bridge.associations().count(), 0);
}

#[test]
fn test_idle_associate_refused() {
    let mut bridge = bridge();
    let mut spec = spec_a();
    spec.type_id = 99;
    spec.id = uuid(0x99, 0x99);
    bridge.handle_frame(at_ms(0), &from_station(4, request(&spec, Mode::Associate)));
    let sent = drain(&mut bridge, at_ms(0));
    // A new VSI is refused with De-Associate + error (0x42, capture 03 frame 28), not Keep.
    let vsi = sent[1].vsi();
    assert_eq!(vsi.mode, Mode::Deassociate);
    assert_eq!(vsi.status.to_octet(), 0x42);
    assert_eq!(
        vsi.filters, spec.filters,
        "nothing assigned to a refused VSI"
    );
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Refused {
            key: spec.key(),
            refusal: Refusal::new(Reason::INSUFFICIENT_RESOURCES),
            kept: None,
        }]
    );
    assert_eq!(bridge.associations().count(), 0);
    // Type 95: a hard error (0x54, capture 03 frame 44).
    spec.type_id = 95;
    bridge.handle_frame(at_ms(1), &from_station(5, request(&spec, Mode::Associate)));
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    let sent = drain(&mut bridge, at_ms(1));
    assert_eq!(sent[1].vsi().status.to_octet(), 0x54);
    assert_eq!(bridge.counters().get(Counter::VdpRejected), 2);
}

#[test]
fn test_associated_change_refused_keeps_state() {
    let mut bridge = associated();
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    // The same VSI comes back as a type the policy refuses: it keeps its association.
    let mut changed = request(&spec_a(), Mode::Associate);
    changed.type_id = 99;
    bridge.handle_frame(at_ms(2), &from_station(2, changed));
    let sent = drain(&mut bridge, at_ms(2));
    let vsi = sent[1].vsi();
    assert_eq!(vsi.mode, Mode::Associate);
    assert_eq!(vsi.status.to_octet(), 0x62, "Keep + insufficient resources");
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Refused {
            key: key_a(),
            refusal: Refusal::new(Reason::INSUFFICIENT_RESOURCES),
            kept: Some(Mode::Associate),
        }]
    );
    let association = bridge.associations().next().unwrap();
    assert_eq!(association.vsi.type_id, 5);
}

#[test]
fn test_preassociated_associate_migration() {
    let mut bridge = bridge();
    let spec = VsiSpec {
        type_id: 6,
        type_version: 1,
        id: uuid(0x02, 0xbb),
        filters: Filters::Vid(vec![Vlan::new(0)]),
        migrate_to: true,
        ..spec_a()
    };
    // Capture 03 frame 18: a pre-associate with the M-bit, VID only.
    bridge.handle_frame(
        at_ms(0),
        &from_station(1, request(&spec, Mode::PreAssociate)),
    );
    let sent = drain(&mut bridge, at_ms(0));
    assert_eq!(sent[1].vsi().mode, Mode::PreAssociate);
    assert_eq!(sent[1].vsi().filters, Filters::Vid(vec![Vlan::new(100)]));
    assert!(matches!(
        events(&mut bridge)[..],
        [BridgeEvent::PreAssociated {
            reserved: false,
            ..
        }]
    ));
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    bridge.handle_frame(
        at_ms(2),
        &from_station(2, request(&spec, Mode::PreAssociateWithRr)),
    );
    drain(&mut bridge, at_ms(2));
    assert!(matches!(
        events(&mut bridge)[..],
        [BridgeEvent::PreAssociated { reserved: true, .. }]
    ));
    bridge.handle_frame(at_ms(3), &ecp_frame(STATION_MAC, Operation::ACK, 2, &[]));
    // The migration completes: associate.
    bridge.handle_frame(at_ms(4), &from_station(3, request(&spec, Mode::Associate)));
    let sent = drain(&mut bridge, at_ms(4));
    assert_eq!(sent[1].vsi().mode, Mode::Associate);
    assert!(matches!(
        events(&mut bridge)[..],
        [BridgeEvent::Associated {
            profile: Profile { vid: Some(100) },
            ..
        }]
    ));
}

#[test]
fn test_associated_deassociate() {
    let mut bridge = associated();
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    bridge.handle_frame(
        at_ms(2),
        &from_station(2, request(&spec_a(), Mode::Deassociate)),
    );
    let sent = drain(&mut bridge, at_ms(2));
    assert_eq!(sent[1].vsi().mode, Mode::Deassociate);
    assert_eq!(sent[1].vsi().status, Status::SUCCESS);
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Deassociated {
            key: key_a(),
            cause: DeassociateCause::Station,
        }]
    );
    assert_eq!(
        bridge.poll_timeout(),
        Some(at_ms(2) + TIMING.ecp_ack_timeout())
    );
}

#[test]
fn test_idle_deassociate_unknown_acknowledged() {
    let mut bridge = bridge();
    bridge.handle_frame(
        at_ms(0),
        &from_station(1, request(&spec_a(), Mode::Deassociate)),
    );
    let sent = drain(&mut bridge, at_ms(0));
    assert_eq!(sent[1].vsi().status, Status::SUCCESS);
    assert_eq!(events(&mut bridge), []);
    assert_eq!(
        bridge
            .counters()
            .get(Counter::Misbehaved(PeerMisbehaved::VdpUnknownVsi)),
        1
    );
}

#[test]
fn test_associated_bridge_deassociates() {
    let mut bridge = associated();
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    bridge.deassociate(&key_a()).unwrap();
    let sent = drain(&mut bridge, at_ms(2));
    assert_eq!(sent[0].vsi().mode, Mode::Deassociate);
    assert_eq!(sent[0].vsi().status, Status::REQUEST);
    assert_eq!(
        events(&mut bridge),
        [BridgeEvent::Deassociated {
            key: key_a(),
            cause: DeassociateCause::Bridge,
        }]
    );
    assert_eq!(
        bridge.deassociate(&key_a()),
        Err(crate::ApiMisuse::UnknownVsi)
    );
}

#[test]
fn test_deciding_decided() {
    let mut bridge = bridge();
    let spec = VsiSpec {
        type_id: 97,
        ..spec_a()
    };
    bridge.handle_frame(at_ms(0), &from_station(1, request(&spec, Mode::Associate)));
    // Only the ECP ACK: the answer waits for the policy.
    assert_eq!(drain(&mut bridge, at_ms(0)).len(), 1);
    assert_eq!(
        bridge.poll_timeout(),
        Some(at_ms(0) + TIMING.resource_wait())
    );
    assert_eq!(bridge.associations().count(), 0);
    // The station repeats itself meanwhile: nothing changes.
    bridge.handle_frame(at_ms(5), &from_station(2, request(&spec, Mode::Associate)));
    assert_eq!(drain(&mut bridge, at_ms(5)).len(), 1);
    // Withdrawn before the decision: acknowledged, no event, nothing left to decide.
    let mut withdrawn = self::bridge();
    withdrawn.handle_frame(at_ms(0), &from_station(1, request(&spec, Mode::Associate)));
    withdrawn.handle_frame(
        at_ms(1),
        &from_station(2, request(&spec, Mode::Deassociate)),
    );
    assert_eq!(
        drain(&mut withdrawn, at_ms(1))[2].vsi().status,
        Status::SUCCESS
    );
    assert_eq!(events(&mut withdrawn), []);
    assert_eq!(
        withdrawn.decide(at_ms(2), &spec.key(), Ok(Profile::default())),
        Err(crate::ApiMisuse::NotDeciding)
    );
    bridge
        .decide(at_ms(100), &spec.key(), Ok(Profile { vid: Some(30) }))
        .unwrap();
    let sent = drain(&mut bridge, at_ms(100));
    assert_eq!(
        sent[0].vsi().filters,
        Filters::MacVid(vec![(VM_MAC, Vlan::new(30))])
    );
    assert!(matches!(
        events(&mut bridge)[..],
        [BridgeEvent::Associated { .. }]
    ));
    assert_eq!(
        bridge.decide(at_ms(101), &spec.key(), Ok(Profile::default())),
        Err(crate::ApiMisuse::NotDeciding)
    );
    assert_eq!(
        bridge.decide(at_ms(101), &key_a(), Ok(Profile::default())),
        Err(crate::ApiMisuse::NotDeciding)
    );
}

#[test]
fn test_deciding_resource_wait_timeout() {
    let mut bridge = bridge();
    let spec = VsiSpec {
        type_id: 97,
        ..spec_a()
    };
    bridge.handle_frame(at_ms(0), &from_station(1, request(&spec, Mode::Associate)));
    drain(&mut bridge, at_ms(0));
    let deadline = at_ms(0) + TIMING.resource_wait();
    bridge.handle_timeout(deadline);
    let sent = drain(&mut bridge, deadline);
    // The VSI manager did not answer within T(RWD): De-Associate + 3.
    assert_eq!(sent[0].vsi().mode, Mode::Deassociate);
    assert_eq!(sent[0].vsi().status.to_octet(), 0x43);
    assert_eq!(bridge.counters().get(Counter::VdpResourceTimeout), 1);
    assert!(matches!(
        events(&mut bridge)[..],
        [BridgeEvent::Refused { kept: None, .. }]
    ));
}

#[test]
fn test_idle_invalid_filters_refused() {
    let mut bridge = bridge();
    let mut spec = spec_a();
    spec.filters = Filters::MacVid(vec![(VM_MAC, Vlan::new(4095))]);
    bridge.handle_frame(at_ms(0), &from_station(1, request(&spec, Mode::Associate)));
    let sent = drain(&mut bridge, at_ms(0));
    assert_eq!(
        sent[1].vsi().status.to_octet(),
        0x45,
        "De-Associate + invalid VID"
    );
    bridge.handle_frame(at_ms(1), &ecp_frame(STATION_MAC, Operation::ACK, 1, &[]));
    // Group IDs without BGID and SGID.
    spec.filters = Filters::GroupVid(vec![(88, Vlan::new(40))]);
    bridge.handle_frame(at_ms(2), &from_station(2, request(&spec, Mode::Associate)));
    let sent = drain(&mut bridge, at_ms(2));
    assert_eq!(
        sent[1].vsi().status.to_octet(),
        0x41,
        "De-Associate + invalid format"
    );
    // ... which are fine once negotiated.
    bridge.set_group_ids(true);
    bridge.handle_frame(at_ms(3), &ecp_frame(STATION_MAC, Operation::ACK, 2, &[]));
    bridge.handle_frame(at_ms(4), &from_station(3, request(&spec, Mode::Associate)));
    assert_eq!(
        drain(&mut bridge, at_ms(4))[1].vsi().status,
        Status::SUCCESS
    );
    let counters = bridge.counters();
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpInvalidFilter)),
        1
    );
    assert_eq!(
        counters.get(Counter::Misbehaved(
            PeerMisbehaved::VdpGroupIdsNotNegotiated
        )),
        1
    );
}

#[test]
fn test_idle_bad_vdpdus_counted() {
    let mut bridge = bridge();
    let good = vdpdu(manager(), request(&spec_a(), Mode::Associate)).unwrap();
    let mut sequence = 0;
    let mut feed = |bridge: &mut Bridge<Policy>, payload: &[u8]| {
        sequence += 1;
        bridge.handle_frame(
            at_ms(0),
            &ecp_frame(STATION_MAC, Operation::REQUEST, sequence, payload),
        );
    };
    // No Manager ID first.
    feed(&mut bridge, &good[18..]);
    // Two entries announced, one present.
    let mut bad = good.clone();
    bad[18 + 2 + 24] = 2;
    feed(&mut bridge, &bad);
    // An unknown filter format.
    let mut bad = good.clone();
    bad[18 + 2 + 22] = 9;
    feed(&mut bridge, &bad);
    // A VSI TLV cut short.
    feed(&mut bridge, &good[..good.len() - 3]);
    // A response where a request belongs.
    let mut bad = good.clone();
    bad[18 + 2] = 0x40;
    feed(&mut bridge, &bad);
    // Every request is acknowledged by ECP, none answered by VDP.
    let sent = drain(&mut bridge, at_ms(0));
    assert!(sent.iter().all(|sent| sent.operation == Operation::ACK));
    assert_eq!(sent.len(), 5);
    assert_eq!(events(&mut bridge), []);
    // An unknown TLV type (here an org TLV) after the VSI TLV is skipped, the VSI served.
    let mut with_org = good.clone();
    with_org.extend_from_slice(&[0xfe, 0x04, 0x00, 0x00, 0x0c, 0xf1]);
    feed(&mut bridge, &with_org);
    let sent = drain(&mut bridge, at_ms(0));
    assert_eq!(sent[1].vsi().status, Status::SUCCESS);
    let counters = bridge.counters();
    assert_eq!(counters.get(Counter::Invalid(wire::Error::UnknownTlv)), 1);
    assert_eq!(counters.get(Counter::Invalid(wire::Error::BadLength)), 1);
    assert_eq!(counters.get(Counter::Invalid(wire::Error::Unsupported)), 1);
    assert_eq!(counters.get(Counter::Invalid(wire::Error::Truncated)), 1);
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpUnexpectedStatus)),
        1
    );
    assert_eq!(
        counters.get(Counter::Misbehaved(PeerMisbehaved::VdpUnknownTlv)),
        1
    );
    assert_eq!(counters.get(Counter::RxFrames), 6);
}
