//! VDP conversations scripted with explicit time: the bridge and the station each against a
//! scripted peer, with lldpad's bytes from capture 03 where there are some.

use core::time::Duration;

use wire::{
    EtherType,
    ecp::{self as wire_ecp, Operation},
    ethernet,
    lldp::NEAREST_CUSTOMER_BRIDGE,
    vdp::{Mode, Status, Vlan, VsiIdFormat},
};

use super::*;
use crate::{Counter, Engine, Instant, MAX_FRAME_LEN, PeerMisbehaved, Timing, frame};

mod bridge;
mod station;

const BRIDGE_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0xbe, 0x01]);
const STATION_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x5e, 0x01]);
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x8e, 0xaa, 0x11]);
/// The captures' settings: ECP ACK timer 163.84 ms, keep-alive 10.49 s, station response wait
/// and bridge keep-alive timeout 17.45 s.
const TIMING: Timing = Timing {
    max_retries: 3,
    rte: 14,
    rwd: 20,
    rka: 20,
};
const RESPONSE_WAIT: Duration = Duration::from_micros(17_448_960);
const KEEP_ALIVE: Duration = Duration::from_micros(10_485_760);

/// lldpad's first Associate request in capture 03 (frame 11), the whole frame.
const CAPTURE_03_11: &str = "0180c2000000525400005e018940100100010a1065766d67723100000000000000\
     0000000621000000050405aaaaaaaa0000400080000000000000010200015254008eaa110000";
/// The scapy bridge's answer (frame 13): status 0x40, VID 10.
const CAPTURE_03_13: &str = "0180c200000052540000be018940100100010a1065766d67723100000000000000\
     0000000621400000050405aaaaaaaa0000400080000000000000010200015254008eaa11000a";

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn at_ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn manager() -> Id16 {
    Id16::from_name("evmgr1").unwrap()
}

fn uuid(last: u8, fill: u8) -> Id16 {
    let mut id = [0; 16];
    id[..4].fill(fill);
    id[6] = 0x40;
    id[8] = 0x80;
    id[15] = last;
    Id16(id)
}

/// VSI A of capture 03: type 5 v4, one MAC/VID entry with VID 0.
fn spec_a() -> VsiSpec {
    VsiSpec {
        manager_id: manager(),
        type_id: 5,
        type_version: 4,
        id_format: VsiIdFormat::UUID,
        id: uuid(0x01, 0xaa),
        filters: Filters::MacVid(vec![(VM_MAC, Vlan::new(0))]),
        migrate_to: false,
        migrate_from: false,
    }
}

fn key_a() -> VsiKey {
    spec_a().key()
}

/// The station's request TLV for `spec` in `mode`.
fn request(spec: &VsiSpec, mode: Mode) -> Vsi {
    Vsi {
        mode,
        status: Status::Request {
            migrate_from: spec.migrate_from,
            migrate_to: spec.migrate_to,
        },
        type_id: spec.type_id,
        type_version: spec.type_version,
        id_format: spec.id_format,
        id: spec.id,
        filters: spec.filters.clone(),
    }
}

/// An ECPDU from `src` with `payload`.
fn ecp_frame(src: MacAddr, operation: Operation, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; ethernet::HEADER_LEN + wire_ecp::HEADER_LEN + payload.len()];
    let body = frame::ethernet(
        &mut out,
        NEAREST_CUSTOMER_BRIDGE,
        src,
        EtherType::ECP,
        wire_ecp::HEADER_LEN + payload.len(),
    )
    .unwrap();
    let mut packet = wire_ecp::Packet::new_unchecked(body);
    wire_ecp::Repr {
        operation,
        subtype: wire_ecp::Subtype::VDP,
        sequence,
    }
    .emit(&mut packet);
    packet.payload_mut().copy_from_slice(payload);
    out
}

/// An ECP request from `src` carrying one VSI TLV.
fn vdp_frame(src: MacAddr, sequence: u16, vsi: Vsi) -> Vec<u8> {
    ecp_frame(
        src,
        Operation::REQUEST,
        sequence,
        &vdpdu(manager(), vsi).unwrap(),
    )
}

/// One frame an engine sent.
#[derive(Debug)]
struct Sent {
    bytes: Vec<u8>,
    operation: Operation,
    sequence: u16,
    vsi: Option<Vsi>,
}

impl Sent {
    fn vsi(&self) -> &Vsi {
        self.vsi.as_ref().expect("a VSI TLV")
    }
}

fn drain(engine: &mut impl Engine, now: Instant) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    while let Some(transmit) = engine.poll_transmit(now, &mut buf) {
        let bytes = buf[..transmit.len].to_vec();
        let packet = wire_ecp::Packet::new_checked(&bytes[ethernet::HEADER_LEN..]).unwrap();
        let repr = wire_ecp::Repr::parse(&packet).unwrap();
        let vsi = (repr.operation == Operation::REQUEST).then(|| {
            let vdpdu = vdp::Repr::parse(packet.payload()).unwrap();
            assert_eq!(vdpdu.manager_id, manager());
            assert_eq!(vdpdu.tlvs.len(), 1);
            vdpdu.vsis().next().unwrap().clone()
        });
        out.push(Sent {
            operation: repr.operation,
            sequence: repr.sequence,
            vsi,
            bytes,
        });
    }
    out
}

fn events<E: Engine>(engine: &mut E) -> Vec<E::Event> {
    core::iter::from_fn(|| engine.poll_event()).collect()
}

#[test]
fn test_check_filters() {
    let ok = |filters: Filters, group_ids| check_filters(&filters, group_ids);
    assert_eq!(
        ok(
            Filters::Vid(vec![Vlan::new(0), Vlan::new(2), Vlan::new(4094)]),
            false
        ),
        Ok(())
    );
    for vid in [1, 4095] {
        assert_eq!(
            ok(Filters::Vid(vec![Vlan::new(vid)]), false),
            Err(PeerMisbehaved::VdpInvalidFilter),
            "{vid}"
        );
    }
    for mac in [
        MacAddr::ZERO,
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
    ] {
        assert_eq!(
            ok(Filters::MacVid(vec![(mac, Vlan::new(0))]), false),
            Err(PeerMisbehaved::VdpInvalidFilter)
        );
    }
    assert_eq!(
        ok(Filters::Vid(vec![]), false),
        Err(PeerMisbehaved::VdpInvalidFilter)
    );
    let group = Filters::GroupVid(vec![(7, Vlan::new(0))]);
    assert_eq!(
        ok(group.clone(), false),
        Err(PeerMisbehaved::VdpGroupIdsNotNegotiated)
    );
    assert_eq!(ok(group, true), Ok(()));
    let too_many = Filters::GroupMacVid(vec![(7, VM_MAC, Vlan::new(0)); 41]);
    assert_eq!(ok(too_many, true), Err(PeerMisbehaved::VdpInvalidFilter));
    assert_eq!(
        key_a().to_string(),
        "uuid aaaaaaaa-0000-4000-8000-000000000001"
    );
}
