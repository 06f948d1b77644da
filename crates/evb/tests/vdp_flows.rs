//! Whole VDP flows between weft's bridge and station engines on a virtual clock: associate,
//! migrate (pre-associate, then associate), reject, keep-alive timeout, ECP loss and retries,
//! peer restarts.

mod pair;

use core::time::Duration;
use std::{cell::RefCell, collections::BTreeMap, rc::Rc};

use evb::{
    Counter, Engine, Instant, PeerMisbehaved, Timing,
    vdp::{
        Bridge, BridgeConfig, BridgeEvent, DeassociateCause, Decision, Profile, Refusal, Station,
        StationConfig, StationEvent, VsiKey, VsiRequest, VsiSpec,
    },
};
use pair::{Pair, Side};
use wire::{
    MacAddr,
    vdp::{Filters, Id16, Mode, Reason, Vlan, VsiIdFormat},
};

const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x5e, 0x01]);
/// The lldpad captures' settings: keep-alive 10.49 s, response wait 17.45 s.
const TIMING: Timing = Timing {
    max_retries: 3,
    rte: 14,
    rwd: 20,
    rka: 20,
};

/// The VSI type database: (type ID, version) to the VLAN its VSIs get.
type TypeDb = Rc<RefCell<BTreeMap<(u32, u8), u16>>>;

type Policy = Box<dyn FnMut(&VsiRequest<'_>) -> Decision>;

fn type_db() -> TypeDb {
    Rc::new(RefCell::new(BTreeMap::from([((5, 1), 10), ((6, 1), 100)])))
}

/// The policy a bridge agent will get from the controller: known types get their VLAN,
/// unknown ones a hard refusal.
fn policy(db: &TypeDb) -> Policy {
    let db = Rc::clone(db);
    Box::new(move |request: &VsiRequest<'_>| {
        let key = (request.vsi.type_id, request.vsi.type_version);
        match db.borrow().get(&key) {
            Some(&vid) => Decision::Accept(Profile { vid: Some(vid) }),
            None => Decision::Refuse(Refusal {
                reason: Reason::OTHER_FAILURE,
                hard: true,
            }),
        }
    })
}

fn bridge(db: &TypeDb, initial_sequence: u16) -> Bridge<Policy> {
    Bridge::new(
        BridgeConfig {
            local_mac: BRIDGE_MAC,
            initial_sequence,
            timing: TIMING,
            group_ids: false,
        },
        policy(db),
    )
}

fn station(initial_sequence: u16) -> Station {
    Station::new(StationConfig {
        local_mac: STATION_MAC,
        initial_sequence,
        timing: TIMING,
        group_ids: false,
        retries: 1,
    })
}

fn pair(db: &TypeDb) -> Pair<Bridge<Policy>, Station> {
    Pair::new(bridge(db, 0), station(0))
}

/// A VM's VSI: `n` picks the ID and MAC, VID 0 asks the bridge for one.
fn vm(n: u8, type_id: u32) -> VsiSpec {
    let mut id = [0; 16];
    id[0] = 0xa0;
    id[15] = n;
    VsiSpec {
        manager_id: Id16::from_name("weft").unwrap(),
        type_id,
        type_version: 1,
        id_format: VsiIdFormat::UUID,
        id: Id16(id),
        filters: Filters::MacVid(vec![(MacAddr([0xfa, 0x16, 0x3e, 0, 0, n]), Vlan::new(0))]),
        migrate_to: false,
        migrate_from: false,
    }
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn vid_of(filters: &Filters) -> u16 {
    filters.vlans().next().unwrap().vid
}

fn associated<P: evb::vdp::VsiPolicy>(bridge: &Bridge<P>, key: &VsiKey) -> bool {
    bridge
        .associations()
        .any(|association| association.key == *key && association.mode == Mode::Associate)
}

#[test]
fn associate_keep_alive_deassociate() {
    let db = type_db();
    let mut pair = pair(&db);
    let spec = vm(1, 5);
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(secs(1));
    let (bridge_events, station_events) = pair.take_events();
    assert!(matches!(
        &bridge_events[..],
        [(
            _,
            BridgeEvent::Associated {
                profile: Profile { vid: Some(10) },
                ..
            }
        )]
    ));
    let [(at, StationEvent::Associated { key: got, filters })] = &station_events[..] else {
        panic!("{station_events:?}");
    };
    assert_eq!(
        (*got, vid_of(filters)),
        (key, 10),
        "the station adopted VLAN 10"
    );
    // Request, ACK, answer, ACK: one round trip plus the ACK's, 1 ms each way.
    assert_eq!(*at, Instant::from_millis(2));
    // Ten minutes of keep-alives keep the VSI associated on both sides.
    pair.run_for(secs(600));
    assert_eq!(pair.take_events(), (vec![], vec![]));
    assert!(associated(&pair.bridge, &key));
    let keep_alives = pair.sent_by(Side::Station).count();
    // 600 s / 10.49 s = 57 keep-alives plus the request, each a VDPDU and an ACK.
    assert_eq!(keep_alives, 2 * (1 + 57));
    pair.station.deassociate(pair.now, &key).unwrap();
    pair.run_for(secs(1));
    let (bridge_events, station_events) = pair.take_events();
    assert!(matches!(
        &bridge_events[..],
        [(
            _,
            BridgeEvent::Deassociated {
                cause: DeassociateCause::Station,
                ..
            }
        )]
    ));
    assert!(matches!(
        &station_events[..],
        [(
            _,
            StationEvent::Deassociated {
                cause: DeassociateCause::Station,
                ..
            }
        )]
    ));
    assert_eq!(pair.bridge.associations().count(), 0);
    assert_eq!(pair.station.poll_timeout(), None, "nothing left to refresh");
}

#[test]
fn migration_pre_associate_then_associate() {
    // Seed 000 part three: the target host pre-associates the VM's VSI, the source host
    // de-associates it, the target associates it. Two bridge ports, one VSI type database.
    let db = type_db();
    let mut source = Pair::new(bridge(&db, 0), station(0));
    let mut target = Pair::new(bridge(&db, 0x1234), station(0x4321));
    let spec = vm(7, 6);
    let key = spec.key();
    source.station.associate(source.now, spec.clone()).unwrap();
    source.run_for(secs(30));
    target.run_for(secs(30));
    assert!(associated(&source.bridge, &key));
    source.take_events();

    // 1. The target pre-associates with resource reservation, hinting "migrating here".
    let incoming = VsiSpec {
        migrate_to: true,
        ..spec.clone()
    };
    target
        .station
        .pre_associate(target.now, incoming, true)
        .unwrap();
    target.run_for(secs(2));
    source.run_for(secs(2));
    let (bridge_events, station_events) = target.take_events();
    assert!(matches!(
        &bridge_events[..],
        [(_, BridgeEvent::PreAssociated { reserved: true, vsi, .. })] if vid_of(&vsi.filters) == 100
    ));
    assert!(matches!(
        &station_events[..],
        [(_, StationEvent::PreAssociated { .. })]
    ));
    assert!(
        !associated(&target.bridge, &key),
        "pre-associated: no traffic yet"
    );

    // 2. The source de-associates; 3. the target associates at once.
    source.station.deassociate(source.now, &key).unwrap();
    source.run_for(Duration::from_millis(10));
    let stopped = source
        .station_events
        .iter()
        .find_map(|(at, event)| matches!(event, StationEvent::Deassociated { .. }).then_some(*at))
        .expect("source de-associated");
    target.run_until(source.now);
    target.station.associate(target.now, spec).unwrap();
    target.run_for(secs(1));
    let started = target
        .station_events
        .iter()
        .find_map(|(at, event)| matches!(event, StationEvent::Associated { .. }).then_some(*at))
        .expect("target associated");
    assert!(associated(&target.bridge, &key));
    assert_eq!(source.bridge.associations().count(), 0);
    // The migration hint stays what the VSI was created with.
    let request = target
        .sent_by(Side::Station)
        .filter(|record| record.frame.len() > 18)
        .last()
        .unwrap();
    assert_eq!(
        request.frame[18 + 18 + 2],
        0x10,
        "M-bit kept on the associate"
    );
    // Traffic stopped from the source's de-associate to the target's associate.
    let gap = started - stopped;
    assert!(
        gap <= Duration::from_millis(20),
        "traffic stopped for {gap:?}"
    );
}

#[test]
fn reject_unknown_vsi_type() {
    let db = type_db();
    let mut pair = pair(&db);
    let spec = vm(2, 999);
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(secs(60));
    let (bridge_events, station_events) = pair.take_events();
    assert_eq!(
        bridge_events.iter().map(|(_, e)| e).collect::<Vec<_>>(),
        [&BridgeEvent::Refused {
            key,
            refusal: Refusal {
                reason: Reason::OTHER_FAILURE,
                hard: true
            },
            kept: None,
        }]
    );
    assert_eq!(
        station_events.iter().map(|(_, e)| e).collect::<Vec<_>>(),
        [&StationEvent::Refused {
            key,
            reason: Reason::OTHER_FAILURE,
            hard: true,
            kept: None,
        }]
    );
    assert_eq!(pair.bridge.associations().count(), 0);
    assert_eq!(pair.station.vsi(&key), None);
    // Once the type is in the database, the same VSI associates.
    db.borrow_mut().insert((999, 1), 42);
    pair.station.associate(pair.now, vm(2, 999)).unwrap();
    pair.run_for(secs(1));
    assert!(associated(&pair.bridge, &key));
}

#[test]
fn keep_alive_timeout_deassociates_a_silent_vsi() {
    let db = type_db();
    let mut pair = pair(&db);
    let spec = vm(3, 5);
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(secs(5));
    pair.take_events();
    // The station's host goes quiet: nothing it sends arrives any more.
    let silent_from = pair.now;
    pair.set_loss(move |from, at, _| from == Side::Station && at >= silent_from);
    pair.run_for(secs(60));
    let (bridge_events, station_events) = pair.take_events();
    let [(at, BridgeEvent::Deassociated { key: got, cause })] = &bridge_events[..] else {
        panic!("{bridge_events:?}");
    };
    assert_eq!((*got, *cause), (key, DeassociateCause::KeepAliveTimeout));
    // The last refresh the bridge heard was the request at 1 ms; 17.45 s later it ends.
    assert_eq!(*at, Instant::from_micros(1_000 + 17_448_960));
    assert_eq!(pair.bridge.counters().get(Counter::VdpKeepAliveTimeout), 1);
    // The station heard the bridge's unsolicited De-Associate (the link only loses the
    // station's frames) and dropped the VSI too.
    assert!(matches!(
        &station_events[..],
        [(
            _,
            StationEvent::Deassociated {
                cause: DeassociateCause::Bridge,
                ..
            }
        )]
    ));
}

#[test]
fn ecp_loss_is_recovered_by_retransmission() {
    let db = type_db();
    let mut pair = pair(&db);
    pair.latency = Duration::from_millis(5);
    // The first two copies of the station's request are lost, and the bridge's first ACK.
    let mut station_requests = 0;
    let mut bridge_acks = 0;
    pair.set_loss(move |from, _, frame| {
        let ack = frame.len() == 18;
        match (from, ack) {
            (Side::Station, false) => {
                station_requests += 1;
                station_requests <= 2
            }
            (Side::Bridge, true) => {
                bridge_acks += 1;
                bridge_acks == 1
            }
            _ => false,
        }
    });
    let spec = vm(4, 5);
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(secs(2));
    assert!(associated(&pair.bridge, &key));
    let (_, station_events) = pair.take_events();
    let [(at, StationEvent::Associated { .. })] = &station_events[..] else {
        panic!("{station_events:?}");
    };
    // Two lost copies: the third transmission, two ACK timers (163.84 ms) after the first,
    // arrives; its ACK is lost, so a fourth copy follows; the answer came with the third.
    assert_eq!(*at, Instant::from_micros(2 * 163_840 + 10_000));
    let station = pair.station.counters();
    let bridge = pair.bridge.counters();
    assert_eq!(station.get(Counter::EcpRetransmit), 3);
    assert_eq!(
        bridge.get(Counter::Misbehaved(PeerMisbehaved::EcpDuplicate)),
        1,
        "the fourth copy is acknowledged, not delivered twice"
    );
    assert_eq!(bridge.get(Counter::VdpRejected), 0);
}

#[test]
fn random_loss_keeps_every_vsi_associated() {
    let db = type_db();
    let mut pair = pair(&db);
    pair.latency = Duration::from_millis(2);
    pair.set_loss_rate(100, 0x5eed);
    let keys: Vec<VsiKey> = (10..15).map(|n| vm(n, 5).key()).collect();
    for n in 10..15 {
        pair.station.associate(pair.now, vm(n, 5)).unwrap();
    }
    pair.run_for(secs(600));
    for key in &keys {
        assert!(associated(&pair.bridge, key), "{key}");
        assert_eq!(pair.station.vsi(key).map(|(f, _)| vid_of(f)), Some(10));
    }
    let (bridge_events, _) = pair.take_events();
    assert!(
        !bridge_events
            .iter()
            .any(|(_, e)| matches!(e, BridgeEvent::Deassociated { .. })),
        "{bridge_events:?}"
    );
    let lost = pair.log.iter().filter(|record| record.dropped).count();
    assert!(lost > 100, "only {lost} frames lost");
    assert!(pair.station.counters().get(Counter::EcpRetransmit) > 0);
}

#[test]
fn bridge_restart_reusing_sequence_numbers() {
    // Capture 07: a bridge restarts and numbers its PDUs from 1 again. lldpad drops the new
    // bridge's first answer as a duplicate; weft's station takes it after one retransmission
    // (out of window) or at once when the bytes differ from the last PDU.
    let db = type_db();
    let mut pair = pair(&db);
    let spec = vm(5, 5);
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(secs(25));
    pair.take_events();
    // Restart: same initial sequence number, no memory of the VSI.
    pair.bridge = bridge(&db, 0);
    pair.run_for(secs(60));
    let (bridge_events, station_events) = pair.take_events();
    // The next keep-alive re-creates the association on the new bridge.
    assert!(matches!(
        &bridge_events[..],
        [(_, BridgeEvent::Associated { .. })]
    ));
    assert_eq!(station_events, [], "the station never lost the VSI");
    assert!(associated(&pair.bridge, &key));
    assert_eq!(pair.station.counters().get(Counter::EcpResync), 1);
    assert_eq!(pair.station.counters().get(Counter::VdpResponseTimeout), 0);

    // A restart with a fresh initial number (what the agent does) needs no resync at all.
    pair.bridge = bridge(&db, 0x7000);
    pair.run_for(secs(60));
    assert!(associated(&pair.bridge, &key));
    assert_eq!(pair.station.counters().get(Counter::EcpResync), 1);
    assert_eq!(pair.station.counters().get(Counter::VdpResponseTimeout), 0);
}

#[test]
fn station_restart_is_heard() {
    let db = type_db();
    let mut pair = pair(&db);
    pair.station.associate(pair.now, vm(6, 5)).unwrap();
    pair.run_for(secs(25));
    pair.take_events();
    // The hypervisor agent restarts: a new station numbers from 1 and associates its VM again.
    pair.station = station(0);
    pair.station.associate(pair.now, vm(6, 5)).unwrap();
    pair.run_for(secs(5));
    let (bridge_events, station_events) = pair.take_events();
    assert!(matches!(
        &station_events[..],
        [(_, StationEvent::Associated { filters, .. })] if vid_of(filters) == 10
    ));
    // For the bridge it is a keep-alive of a VSI it already has: no event.
    assert_eq!(bridge_events, []);
    assert_eq!(pair.bridge.counters().get(Counter::EcpResync), 1);
}
