//! ECP (802.1Qbg-2012 clause 43): reliable, in-order delivery of upper-layer PDUs (VDPDUs)
//! between a station and its bridge, one outstanding PDU per direction.
//!
//! Sending: PDUs queue; each gets the next sequence number (0 skipped) and is retransmitted with
//! the same number every T(RTE) until acknowledged, at most R times, then given up on
//! ([`Event::Failed`]). The next queued PDU goes out as soon as the previous one is done.
//!
//! Receiving: every request is acknowledged, with one exception below. A request repeating the
//! last delivered one (same sequence number, same bytes) is a retransmission whose ACK was
//! lost: acknowledged again, not delivered again. A request with the last sequence number but
//! different bytes comes from a peer that restarted and reused its numbers (the lldpad pitfall
//! of `PROTOCOL_NOTES.md` 6.2 and capture 07): delivered. A sequence number up to 2^15 ahead of
//! the last is delivered (gaps are PDUs the peer gave up on). One behind it is out of window: a
//! stray old frame, or a peer that restarted with a lower number. It is dropped without an ACK
//! the first time and delivered when the peer retransmits it, which a restarted peer does and a
//! stray frame does not.
//!
//! Our own first sequence number comes from the driver ([`Config::initial_sequence`]): a random
//! or persisted value keeps a restarted weft from repeating the number a peer saw last.

use std::collections::VecDeque;

use wire::{
    EtherType, MacAddr,
    ecp::{self, Operation, Subtype},
    ethernet, lldp,
};

use crate::{
    ApiMisuse, Counter, Counters, Engine, Instant, PeerIncompatible, PeerMisbehaved, Timing,
    Transmit, frame,
};

/// How far ahead of the last delivered sequence number a request may be (RFC 1982 half space).
const WINDOW: u16 = 0x8000;

/// What an ECP engine needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The port's own MAC address, the source of every frame.
    pub local_mac: MacAddr,
    /// Where requests and acknowledgements go: the Nearest Customer Bridge group address,
    /// as lldpad sends them.
    pub peer: MacAddr,
    /// The upper-layer protocol carried.
    pub subtype: Subtype,
    /// The sequence number "before" the first request: the first one sent is the next (0 is
    /// skipped). Pick it at random, or persist the last one used, so that a restart does not
    /// repeat a number the peer just saw.
    pub initial_sequence: u16,
    /// R and RTE (RWD and RKA are VDP's).
    pub timing: Timing,
}

impl Config {
    /// A VDP carrier from `local_mac` to the Nearest Customer Bridge address.
    pub const fn vdp(local_mac: MacAddr, initial_sequence: u16, timing: Timing) -> Self {
        Self {
            local_mac,
            peer: lldp::NEAREST_CUSTOMER_BRIDGE,
            subtype: Subtype::VDP,
            initial_sequence,
            timing,
        }
    }
}

/// What ECP tells the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new upper-layer PDU arrived (Ethernet padding included).
    Received(Vec<u8>),
    /// The peer acknowledged the PDU sent with this sequence number.
    Delivered(u16),
    /// The PDU sent with this sequence number was not acknowledged after R retransmissions.
    Failed(u16),
}

/// The request in flight.
#[derive(Debug, Clone)]
struct Outstanding {
    sequence: u16,
    payload: Vec<u8>,
    /// Transmissions so far.
    sent: u8,
    /// When to retransmit or give up; `None` while a transmission is due.
    deadline: Option<Instant>,
}

/// The last request delivered upward.
#[derive(Debug, Clone)]
struct Delivered {
    sequence: u16,
    payload: Vec<u8>,
}

/// An ECP endpoint on one port.
#[derive(Debug, Clone)]
pub struct Ecp {
    config: Config,
    last_sequence: u16,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Vec<u8>>,
    last_delivered: Option<Delivered>,
    resync_candidate: Option<u16>,
    acks: VecDeque<u16>,
    events: VecDeque<Event>,
    counters: Counters,
}

/// The sequence number after `sequence`; 0 is never used.
const fn next_sequence(sequence: u16) -> u16 {
    match sequence.wrapping_add(1) {
        0 => 1,
        next => next,
    }
}

impl Ecp {
    /// An idle endpoint.
    pub fn new(config: Config) -> Self {
        Self {
            last_sequence: config.initial_sequence,
            config,
            outstanding: None,
            queue: VecDeque::new(),
            last_delivered: None,
            resync_candidate: None,
            acks: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Changes R and RTE (after the EVB TLV negotiated them); the running timer keeps its
    /// deadline.
    pub fn set_timing(&mut self, timing: Timing) {
        self.config.timing = timing;
    }

    /// The timing in use.
    pub const fn timing(&self) -> Timing {
        self.config.timing
    }

    /// Queues an upper-layer PDU for reliable delivery.
    pub fn send(&mut self, payload: Vec<u8>) -> Result<(), ApiMisuse> {
        if payload.len() > ecp::MAX_PAYLOAD {
            self.counters.error(ApiMisuse::PayloadTooLong);
            return Err(ApiMisuse::PayloadTooLong);
        }
        self.queue.push_back(payload);
        self.start_next();
        Ok(())
    }

    /// The number of PDUs waiting behind the outstanding one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// True when a PDU is in flight.
    pub const fn busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// Puts the next queued PDU in flight, if nothing is.
    fn start_next(&mut self) {
        if self.outstanding.is_some() {
            return;
        }
        if let Some(payload) = self.queue.pop_front() {
            self.last_sequence = next_sequence(self.last_sequence);
            self.outstanding = Some(Outstanding {
                sequence: self.last_sequence,
                payload,
                sent: 0,
                deadline: None,
            });
        }
    }

    fn handle_ack(&mut self, sequence: u16) {
        match &self.outstanding {
            Some(outstanding) if outstanding.sequence == sequence => {
                self.outstanding = None;
                self.events.push_back(Event::Delivered(sequence));
                self.start_next();
            }
            _ => self.counters.error(PeerMisbehaved::EcpUnexpectedAck),
        }
    }

    fn handle_request(&mut self, sequence: u16, payload: &[u8]) {
        let deliver = match &self.last_delivered {
            None => true,
            Some(last) if last.sequence == sequence => {
                if last.payload == payload {
                    self.counters.error(PeerMisbehaved::EcpDuplicate);
                    false
                } else {
                    self.counters.add(Counter::EcpPeerRestart);
                    true
                }
            }
            Some(last) if sequence.wrapping_sub(last.sequence) < WINDOW => true,
            Some(_) => {
                if self.resync_candidate == Some(sequence) {
                    self.counters.add(Counter::EcpResync);
                    true
                } else {
                    // Not acknowledged: a restarted peer retransmits, a stray frame does not.
                    self.counters.error(PeerMisbehaved::EcpOutOfWindow);
                    self.resync_candidate = Some(sequence);
                    return;
                }
            }
        };
        self.acks.push_back(sequence);
        if deliver {
            self.resync_candidate = None;
            self.last_delivered = Some(Delivered {
                sequence,
                payload: payload.to_vec(),
            });
            self.events.push_back(Event::Received(payload.to_vec()));
        }
    }

    /// Writes an ECPDU with `repr`'s header and `payload` into `buf`.
    fn write(&mut self, buf: &mut [u8], repr: ecp::Repr, payload: &[u8]) -> Option<Transmit> {
        let (dst, src) = (self.config.peer, self.config.local_mac);
        let len = ethernet::HEADER_LEN + ecp::HEADER_LEN + payload.len();
        let Some(body) = frame::ethernet(
            buf,
            dst,
            src,
            EtherType::ECP,
            ecp::HEADER_LEN + payload.len(),
        ) else {
            self.counters.add(Counter::TxNoRoom);
            return None;
        };
        let mut packet = ecp::Packet::new_unchecked(body);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(payload);
        self.counters.add(Counter::TxFrames);
        Some(Transmit { len })
    }
}

impl Engine for Ecp {
    type Event = Event;

    fn handle_frame(&mut self, _now: Instant, bytes: &[u8]) {
        self.counters.add(Counter::RxFrames);
        let Ok(eth) = ethernet::Frame::new_checked(bytes) else {
            self.counters.error(wire::Error::Truncated);
            return;
        };
        if eth.ethertype() != EtherType::ECP {
            self.counters.add(Counter::NotForUs);
            return;
        }
        // lldpad does not look at the destination of an ECPDU either.
        let body = &bytes[ethernet::HEADER_LEN..];
        let packet = match ecp::Packet::new_checked(body) {
            Ok(packet) => packet,
            Err(error) => return self.counters.error(error),
        };
        let repr = match ecp::Repr::parse(&packet) {
            Ok(repr) => repr,
            Err(error) => return self.counters.error(error),
        };
        if repr.subtype != self.config.subtype {
            return self.counters.error(PeerIncompatible::EcpSubtype);
        }
        match repr.operation {
            Operation::ACK => self.handle_ack(repr.sequence),
            Operation::REQUEST => self.handle_request(repr.sequence, packet.payload()),
            _ => self.counters.error(PeerIncompatible::EcpOperation),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let max_sends = self.config.timing.max_retries.saturating_add(1);
        let Some(outstanding) = &mut self.outstanding else {
            return;
        };
        match outstanding.deadline {
            Some(deadline) if deadline <= now => {
                if outstanding.sent < max_sends {
                    outstanding.deadline = None;
                    self.counters.add(Counter::EcpRetransmit);
                } else {
                    let sequence = outstanding.sequence;
                    self.outstanding = None;
                    self.counters.add(Counter::EcpTxFailed);
                    self.events.push_back(Event::Failed(sequence));
                    self.start_next();
                }
            }
            _ => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(sequence) = self.acks.pop_front() {
            let repr = ecp::Repr {
                operation: Operation::ACK,
                subtype: self.config.subtype,
                sequence,
            };
            if let Some(transmit) = self.write(buf, repr, &[]) {
                return Some(transmit);
            }
        }
        let ack_timeout = self.config.timing.ecp_ack_timeout();
        let outstanding = self.outstanding.as_mut()?;
        if outstanding.deadline.is_some() {
            return None;
        }
        outstanding.sent = outstanding.sent.saturating_add(1);
        outstanding.deadline = Some(now + ack_timeout);
        let repr = ecp::Repr {
            operation: Operation::REQUEST,
            subtype: self.config.subtype,
            sequence: outstanding.sequence,
        };
        let payload = core::mem::take(&mut outstanding.payload);
        let transmit = self.write(buf, repr, &payload);
        if let Some(outstanding) = &mut self.outstanding {
            outstanding.payload = payload;
        }
        transmit
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.as_ref()?.deadline
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn counters(&self) -> Counters {
        self.counters.clone()
    }
}

#[cfg(test)]
#[path = "ecp_tests.rs"]
mod tests;
