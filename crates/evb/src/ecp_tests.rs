//! ECP conversations scripted with explicit time.

use core::time::Duration;

use super::*;
use crate::MAX_FRAME_LEN;

const LOCAL: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0xbe, 0x01]);
const PEER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x5e, 0x01]);
/// R 3, RTE 14: ACK timer 163.84 ms, as in the captures.
const TIMING: Timing = Timing {
    max_retries: 3,
    rte: 14,
    rwd: 20,
    rka: 20,
};
const ACK_TIMEOUT: Duration = Duration::from_micros(163_840);

fn ecp() -> Ecp {
    Ecp::new(Config::vdp(LOCAL, 0, TIMING))
}

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// An ECPDU from the peer.
fn from_peer(operation: Operation, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0; ethernet::HEADER_LEN + ecp::HEADER_LEN + payload.len()];
    let body = frame::ethernet(
        &mut frame,
        lldp::NEAREST_CUSTOMER_BRIDGE,
        PEER,
        EtherType::ECP,
        ecp::HEADER_LEN + payload.len(),
    )
    .unwrap();
    let mut packet = ecp::Packet::new_unchecked(body);
    ecp::Repr {
        operation,
        subtype: Subtype::VDP,
        sequence,
    }
    .emit(&mut packet);
    packet.payload_mut().copy_from_slice(payload);
    frame
}

/// Everything the engine sends at `now`, as (operation, sequence, payload).
fn sent(ecp: &mut Ecp, now: Instant) -> Vec<(Operation, u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    while let Some(transmit) = ecp.poll_transmit(now, &mut buf) {
        let frame = &buf[..transmit.len];
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.dst_addr(), lldp::NEAREST_CUSTOMER_BRIDGE);
        assert_eq!(eth.src_addr(), LOCAL);
        assert_eq!(eth.ethertype(), EtherType::ECP);
        let packet = ecp::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
        let repr = ecp::Repr::parse(&packet).unwrap();
        out.push((repr.operation, repr.sequence, packet.payload().to_vec()));
    }
    out
}

fn events(ecp: &mut Ecp) -> Vec<Event> {
    core::iter::from_fn(|| ecp.poll_event()).collect()
}

fn req(sequence: u16, payload: &[u8]) -> (Operation, u16, Vec<u8>) {
    (Operation::REQUEST, sequence, payload.to_vec())
}

fn ack(sequence: u16) -> (Operation, u16, Vec<u8>) {
    (Operation::ACK, sequence, Vec::new())
}

#[test]
fn test_idle_send() {
    let mut ecp = ecp();
    assert_eq!(ecp.poll_timeout(), None);
    ecp.send(b"vdpdu".to_vec()).unwrap();
    let mut buf = [0u8; 64];
    let transmit = ecp.poll_transmit(at(0), &mut buf).unwrap();
    // lldpad's first request (capture 03:11): to 01-80-c2-00-00-00, 10 01 00 01.
    assert_eq!(
        buf[..transmit.len],
        [
            0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x00, 0xbe, 0x01, 0x89, 0x40,
            0x10, 0x01, 0x00, 0x01, b'v', b'd', b'p', b'd', b'u'
        ]
    );
    assert_eq!(ecp.poll_timeout(), Some(at(0) + ACK_TIMEOUT));
    assert!(ecp.busy());
}

#[test]
fn test_wait_ack_ack() {
    let mut ecp = ecp();
    ecp.send(b"one".to_vec()).unwrap();
    ecp.send(b"two".to_vec()).unwrap();
    assert_eq!(ecp.queued(), 1);
    assert_eq!(sent(&mut ecp, at(0)), [req(1, b"one")]);
    // One outstanding PDU: "two" waits.
    assert_eq!(sent(&mut ecp, at(10)), []);
    ecp.handle_frame(at(20), &from_peer(Operation::ACK, 1, &[]));
    assert_eq!(events(&mut ecp), [Event::Delivered(1)]);
    // The next one goes out at once, not at the next timer tick as lldpad's does.
    assert_eq!(sent(&mut ecp, at(20)), [req(2, b"two")]);
    ecp.handle_frame(at(21), &from_peer(Operation::ACK, 2, &[]));
    assert_eq!(events(&mut ecp), [Event::Delivered(2)]);
    assert!(!ecp.busy());
    assert_eq!(ecp.poll_timeout(), None);
}

#[test]
fn test_wait_ack_timeout_retransmits_then_fails() {
    // Capture 01: four transmissions of seq 1, 164 ms apart, then ECP gives up.
    let mut ecp = ecp();
    ecp.send(b"assoc".to_vec()).unwrap();
    let mut now = at(0);
    for _ in 0..4 {
        assert_eq!(sent(&mut ecp, now), [req(1, b"assoc")]);
        let deadline = ecp.poll_timeout().unwrap();
        assert_eq!(deadline, now + ACK_TIMEOUT);
        ecp.handle_timeout(deadline - Duration::from_micros(1));
        assert_eq!(sent(&mut ecp, now), [], "not before the deadline");
        now = deadline;
        ecp.handle_timeout(now);
    }
    assert_eq!(events(&mut ecp), [Event::Failed(1)]);
    assert_eq!(sent(&mut ecp, now), []);
    assert_eq!(ecp.counters().get(Counter::EcpRetransmit), 3);
    assert_eq!(ecp.counters().get(Counter::EcpTxFailed), 1);
    // The next PDU takes the next number.
    ecp.send(b"next".to_vec()).unwrap();
    assert_eq!(sent(&mut ecp, now), [req(2, b"next")]);
}

#[test]
fn test_wait_ack_unexpected_ack() {
    let mut ecp = ecp();
    ecp.send(b"x".to_vec()).unwrap();
    sent(&mut ecp, at(0));
    ecp.handle_frame(at(1), &from_peer(Operation::ACK, 7, &[]));
    assert_eq!(events(&mut ecp), []);
    assert!(ecp.busy());
    assert_eq!(
        ecp.counters()
            .get(Counter::Misbehaved(PeerMisbehaved::EcpUnexpectedAck)),
        1
    );
    // An ACK when nothing is outstanding is just as unexpected.
    ecp.handle_frame(at(2), &from_peer(Operation::ACK, 1, &[]));
    ecp.handle_frame(at(3), &from_peer(Operation::ACK, 1, &[]));
    assert_eq!(events(&mut ecp), [Event::Delivered(1)]);
    assert_eq!(
        ecp.counters()
            .get(Counter::Misbehaved(PeerMisbehaved::EcpUnexpectedAck)),
        2
    );
}

#[test]
fn test_idle_request_acked_and_delivered() {
    let mut ecp = ecp();
    ecp.handle_frame(at(0), &from_peer(Operation::REQUEST, 1, b"vdp"));
    assert_eq!(events(&mut ecp), [Event::Received(b"vdp".to_vec())]);
    let mut buf = [0u8; 64];
    let transmit = ecp.poll_transmit(at(0), &mut buf).unwrap();
    // An 18-byte ACK, as lldpad's (capture 03:12).
    assert_eq!(
        buf[..transmit.len],
        [
            0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x00, 0xbe, 0x01, 0x89, 0x40,
            0x14, 0x01, 0x00, 0x01
        ]
    );
    assert_eq!(ecp.poll_transmit(at(0), &mut buf), None);
    // The first request after start is new whatever its number.
    let mut fresh = Ecp::new(Config::vdp(LOCAL, 0, TIMING));
    fresh.handle_frame(at(0), &from_peer(Operation::REQUEST, 40_000, b"x"));
    assert_eq!(events(&mut fresh), [Event::Received(b"x".to_vec())]);
}

#[test]
fn test_received_duplicate() {
    let mut ecp = ecp();
    ecp.handle_frame(at(0), &from_peer(Operation::REQUEST, 5, b"vdp"));
    assert_eq!(sent(&mut ecp, at(0)), [ack(5)]);
    // Our ACK was lost: the peer retransmits. ACK again, do not deliver again.
    ecp.handle_frame(at(164), &from_peer(Operation::REQUEST, 5, b"vdp"));
    assert_eq!(sent(&mut ecp, at(164)), [ack(5)]);
    assert_eq!(events(&mut ecp), [Event::Received(b"vdp".to_vec())]);
    assert_eq!(
        ecp.counters()
            .get(Counter::Misbehaved(PeerMisbehaved::EcpDuplicate)),
        1
    );
}

#[test]
fn test_received_peer_restart_reuses_sequence() {
    // Capture 07: the peer restarts and sends its first PDU with the number we saw last. lldpad
    // drops it as a duplicate; its bytes differ, so weft delivers it.
    let mut ecp = ecp();
    ecp.handle_frame(at(0), &from_peer(Operation::REQUEST, 1, b"assoc X"));
    ecp.handle_frame(at(2000), &from_peer(Operation::REQUEST, 1, b"assoc Y"));
    assert_eq!(sent(&mut ecp, at(2000)), [ack(1), ack(1)]);
    assert_eq!(
        events(&mut ecp),
        [
            Event::Received(b"assoc X".to_vec()),
            Event::Received(b"assoc Y".to_vec())
        ]
    );
    assert_eq!(ecp.counters().get(Counter::EcpPeerRestart), 1);
}

#[test]
fn test_received_gap_in_window() {
    let mut ecp = ecp();
    ecp.handle_frame(at(0), &from_peer(Operation::REQUEST, 0xfffe, b"a"));
    // 0xffff was given up on by the peer; after it comes 1 (0 is skipped).
    ecp.handle_frame(at(1), &from_peer(Operation::REQUEST, 1, b"b"));
    assert_eq!(sent(&mut ecp, at(1)), [ack(0xfffe), ack(1)]);
    assert_eq!(events(&mut ecp).len(), 2);
}

#[test]
fn test_received_out_of_window_then_repeated() {
    let mut ecp = ecp();
    ecp.handle_frame(at(0), &from_peer(Operation::REQUEST, 500, b"old"));
    sent(&mut ecp, at(0));
    events(&mut ecp);
    // A restarted peer starting again at 1: behind 500. Dropped, not acknowledged.
    ecp.handle_frame(at(10), &from_peer(Operation::REQUEST, 1, b"new"));
    assert_eq!(sent(&mut ecp, at(10)), []);
    assert_eq!(events(&mut ecp), []);
    assert_eq!(
        ecp.counters()
            .get(Counter::Misbehaved(PeerMisbehaved::EcpOutOfWindow)),
        1
    );
    // Its retransmission one ACK timer later is taken: the peer really restarted.
    ecp.handle_frame(at(174), &from_peer(Operation::REQUEST, 1, b"new"));
    assert_eq!(sent(&mut ecp, at(174)), [ack(1)]);
    assert_eq!(events(&mut ecp), [Event::Received(b"new".to_vec())]);
    assert_eq!(ecp.counters().get(Counter::EcpResync), 1);
    // A stray old frame that is never repeated stays dropped.
    ecp.handle_frame(at(200), &from_peer(Operation::REQUEST, 0xff00, b"stray"));
    ecp.handle_frame(at(201), &from_peer(Operation::REQUEST, 2, b"next"));
    assert_eq!(sent(&mut ecp, at(201)), [ack(2)]);
    assert_eq!(events(&mut ecp), [Event::Received(b"next".to_vec())]);
}

#[test]
fn test_idle_bad_frames_counted() {
    let mut ecp = ecp();
    // Version 2.
    let mut frame = from_peer(Operation::REQUEST, 1, b"x");
    frame[14] = 0x20;
    ecp.handle_frame(at(0), &frame);
    // Truncated header.
    ecp.handle_frame(at(0), &from_peer(Operation::ACK, 1, &[])[..16]);
    // PECSP on a VDP port.
    let mut frame = from_peer(Operation::REQUEST, 1, b"x");
    frame[15] = 0x02;
    ecp.handle_frame(at(0), &frame);
    // A reserved operation.
    let mut frame = from_peer(Operation::REQUEST, 1, b"x");
    frame[14] = 0x18;
    ecp.handle_frame(at(0), &frame);
    // Not ECP at all, and a runt.
    let mut frame = from_peer(Operation::REQUEST, 1, b"x");
    frame[12..14].copy_from_slice(&[0x88, 0xcc]);
    ecp.handle_frame(at(0), &frame);
    ecp.handle_frame(at(0), &[0; 5]);
    assert_eq!(sent(&mut ecp, at(0)), []);
    assert_eq!(events(&mut ecp), []);
    let counters = ecp.counters();
    assert_eq!(counters.get(Counter::Invalid(wire::Error::BadVersion)), 1);
    assert_eq!(counters.get(Counter::Invalid(wire::Error::Truncated)), 2);
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::EcpSubtype)),
        1
    );
    assert_eq!(
        counters.get(Counter::Incompatible(PeerIncompatible::EcpOperation)),
        1
    );
    assert_eq!(counters.get(Counter::NotForUs), 1);
    assert_eq!(counters.get(Counter::RxFrames), 6);
}

#[test]
fn test_sequence_skips_zero() {
    let mut ecp = Ecp::new(Config::vdp(LOCAL, 0xfffe, TIMING));
    for (payload, sequence) in [(b"a", 0xffff), (b"b", 1)] {
        ecp.send(payload.to_vec()).unwrap();
        assert_eq!(sent(&mut ecp, at(0)), [req(sequence, payload)]);
        ecp.handle_frame(at(0), &from_peer(Operation::ACK, sequence, &[]));
    }
}

#[test]
fn test_idle_send_refused_or_no_room() {
    let mut ecp = ecp();
    assert_eq!(
        ecp.send(vec![0; ecp::MAX_PAYLOAD + 1]),
        Err(ApiMisuse::PayloadTooLong)
    );
    assert!(!ecp.busy());
    ecp.send(vec![0; ecp::MAX_PAYLOAD]).unwrap();
    let mut small = [0u8; 100];
    assert_eq!(ecp.poll_transmit(at(0), &mut small), None);
    assert_eq!(ecp.counters().get(Counter::TxNoRoom), 1);
    assert_eq!(ecp.counters().get(Counter::ApiMisuse), 1);
    // Counted as a transmission that was lost: it is retransmitted on the timer.
    ecp.handle_timeout(at(0) + ACK_TIMEOUT);
    let mut buf = [0u8; MAX_FRAME_LEN];
    assert_eq!(
        ecp.poll_transmit(at(200), &mut buf).map(|t| t.len),
        Some(MAX_FRAME_LEN - 2)
    );
    ecp.set_timing(Timing::default());
    assert_eq!(ecp.timing(), Timing::default());
}
