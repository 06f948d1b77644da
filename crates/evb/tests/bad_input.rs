//! Bad input never panics an engine: frames from real conversations between weft's engines,
//! corrupted (bytes flipped, cut short, grown) thousands of times over, go into every engine of
//! both roles. Each must count every frame, keep answering `poll_*`, and keep working: after
//! the storm a clean conversation still succeeds.

mod pair;

use core::time::Duration;

use evb::{
    Counter, Engine, Instant, MAX_FRAME_LEN, Role, Timing, cdcp, lldp,
    vdp::{self, Decision, Profile, VsiRequest, VsiSpec},
};
use pair::Pair;
use wire::{
    MacAddr,
    vdp::{Filters, Id16, Vlan, VsiIdFormat},
};

const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x5e, 0x01]);

type Policy = fn(&VsiRequest<'_>) -> Decision;

fn accept(request: &VsiRequest<'_>) -> Decision {
    if request.vsi.type_id == 97 {
        Decision::Defer
    } else {
        Decision::Accept(Profile { vid: Some(10) })
    }
}

fn vdp_bridge() -> vdp::Bridge<Policy> {
    vdp::Bridge::new(
        vdp::BridgeConfig {
            local_mac: BRIDGE_MAC,
            initial_sequence: 0,
            timing: Timing::default(),
            group_ids: true,
        },
        accept as Policy,
    )
}

fn vdp_station() -> vdp::Station {
    vdp::Station::new(vdp::StationConfig {
        local_mac: STATION_MAC,
        initial_sequence: 0,
        timing: Timing::default(),
        group_ids: true,
        retries: 1,
    })
}

fn vm(n: u8, type_id: u32, filters: Filters) -> VsiSpec {
    VsiSpec {
        manager_id: Id16::from_name("weft").unwrap(),
        type_id,
        type_version: 1,
        id_format: VsiIdFormat::UUID,
        id: Id16([n; 16]),
        filters,
        migrate_to: n.is_multiple_of(2),
        migrate_from: false,
    }
}

fn agent(role: Role, local_mac: MacAddr) -> lldp::Agent {
    lldp::Agent::new(lldp::Config {
        role,
        local_mac,
        timing: Timing::default(),
        reflective_relay: true,
        group_ids: true,
    })
}

fn cdcp_bridge() -> cdcp::Bridge {
    cdcp::Bridge::new(cdcp::BridgeConfig {
        local_mac: BRIDGE_MAC,
        chn_cap: 167,
        svids: (2..50).collect(),
    })
}

fn cdcp_station() -> cdcp::Station {
    cdcp::Station::new(cdcp::StationConfig {
        local_mac: STATION_MAC,
        chn_cap: 167,
    })
}

/// Valid frames of every kind: a VDP conversation with all four filter formats, an EVB TLV
/// negotiation and a CDCP exchange.
fn corpus() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut vdp = Pair::new(vdp_bridge(), vdp_station());
    let mac = |n| MacAddr([0x52, 0x54, 0, 0, 0, n]);
    let specs = [
        vm(1, 5, Filters::Vid(vec![Vlan::new(0), Vlan::new(7)])),
        vm(2, 5, Filters::MacVid(vec![(mac(2), Vlan::new(0))])),
        vm(3, 5, Filters::GroupVid(vec![(88, Vlan::new(40))])),
        vm(
            4,
            97,
            Filters::GroupMacVid(vec![(77, mac(4), Vlan::new(0)); 3]),
        ),
    ];
    for spec in specs.iter().cloned() {
        vdp.station.pre_associate(vdp.now, spec, true).unwrap();
    }
    vdp.run_for(Duration::from_secs(1));
    for spec in specs.iter().take(2).cloned() {
        vdp.station.associate(vdp.now, spec).unwrap();
    }
    vdp.run_for(Duration::from_secs(30));
    vdp.station.deassociate(vdp.now, &specs[0].key()).unwrap();
    vdp.run_for(Duration::from_secs(1));
    frames.extend(vdp.log.into_iter().map(|record| record.frame));
    let mut evb = Pair::new(
        agent(Role::Bridge, BRIDGE_MAC),
        agent(Role::Station, STATION_MAC),
    );
    evb.run_for(Duration::from_secs(5));
    frames.extend(evb.log.into_iter().map(|record| record.frame));
    let mut channels = Pair::new(cdcp_bridge(), cdcp_station());
    channels.station.set_channels(&[2, 3, 4, 5]).unwrap();
    channels.run_for(Duration::from_secs(5));
    frames.extend(channels.log.into_iter().map(|record| record.frame));
    frames
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound.max(1)).unwrap()).unwrap()
    }
}

/// `frame` with a few random changes.
fn mutate(rng: &mut Rng, frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(5) {
            // Keep the Ethernet header so the frame reaches the protocol code.
            0 | 1 if out.len() > 14 => {
                let at = 14 + rng.below(out.len() - 14);
                out[at] ^= u8::try_from(rng.below(255) + 1).unwrap();
            }
            2 => out.truncate(rng.below(out.len() + 1)),
            3 => out.extend((0..rng.below(40)).map(|_| rng.next().to_be_bytes()[0])),
            _ if out.len() > 16 => {
                // Overwrite a length-looking pair of bytes.
                let at = 14 + rng.below(out.len() - 15);
                out[at..at + 2].copy_from_slice(&rng.next().to_be_bytes()[..2]);
            }
            _ => {}
        }
    }
    out
}

/// Feeds `frames` into `engine` with a moving clock, draining it as a driver would.
fn storm<E: Engine>(engine: &mut E, frames: &[Vec<u8>]) {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let mut now = Instant::ZERO;
    for (index, frame) in frames.iter().enumerate() {
        now = now + Duration::from_millis(7);
        engine.handle_frame(now, frame);
        if index % 16 == 0 {
            let deadline = engine.poll_timeout().unwrap_or(now);
            engine.handle_timeout(deadline.max(now));
        }
        while engine.poll_transmit(now, &mut buf).is_some() {}
        while engine.poll_event().is_some() {}
    }
    let counters = engine.counters();
    assert_eq!(counters.get(Counter::RxFrames), frames.len() as u64);
    assert!(counters.iter().count() > 2, "{counters}");
}

#[test]
fn corrupted_frames_never_panic_and_are_counted() {
    let corpus = corpus();
    assert!(corpus.len() > 40, "{}", corpus.len());
    let mut rng = Rng(0x0bad_1dea);
    let frames: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            let original = &corpus[rng.below(corpus.len())];
            if rng.below(8) == 0 {
                original.clone()
            } else {
                mutate(&mut rng, original)
            }
        })
        .collect();

    let mut bridge = vdp_bridge();
    storm(&mut bridge, &frames);
    let mut station = vdp_station();
    storm(&mut station, &frames);
    let mut lldp_bridge = agent(Role::Bridge, BRIDGE_MAC);
    storm(&mut lldp_bridge, &frames);
    let mut lldp_station = agent(Role::Station, STATION_MAC);
    storm(&mut lldp_station, &frames);
    let mut channels_bridge = cdcp_bridge();
    storm(&mut channels_bridge, &frames);
    let mut channels_station = cdcp_station();
    storm(&mut channels_station, &frames);

    // The bridge refused malformed VDPDUs by reason.
    let counters = bridge.counters();
    for reason in [wire::Error::Truncated, wire::Error::BadLength] {
        assert!(counters.get(Counter::Invalid(reason)) > 0, "{counters}");
    }
    // Still working: a clean conversation with a fresh station succeeds on the same bridge.
    let mut pair = Pair::new(bridge, vdp_station());
    pair.now = Instant::from_secs(1_000);
    let spec = vm(
        9,
        5,
        Filters::MacVid(vec![(MacAddr([0x52, 0x54, 0, 0, 0, 9]), Vlan::new(0))]),
    );
    let key = spec.key();
    pair.station.associate(pair.now, spec).unwrap();
    pair.run_for(Duration::from_secs(2));
    assert!(pair.bridge.associations().any(|a| a.key == key));
}
