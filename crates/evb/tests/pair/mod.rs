//! A two-party harness after quinn-proto's `Pair`: a bridge engine and a station engine joined
//! by a virtual link, on a virtual clock that jumps to the next thing that happens (a frame
//! arriving, a timer running out). Knobs: one-way latency, and a loss function that sees every
//! frame and may drop it (a fixed rule, or a seeded pseudo-random rate).

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use core::time::Duration;

use evb::{Engine, Instant, MAX_FRAME_LEN};

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The bridge engine.
    Bridge,
    /// The station engine.
    Station,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::Bridge => Self::Station,
            Self::Station => Self::Bridge,
        }
    }
}

/// A frame that went on the link.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// When it was sent.
    pub(crate) at: Instant,
    /// Who sent it.
    pub(crate) from: Side,
    /// The frame.
    pub(crate) frame: Vec<u8>,
    /// The loss function dropped it.
    pub(crate) dropped: bool,
}

/// The bridge's and the station's events, each with the time it happened.
pub(crate) type Events<B, S> = (Vec<(Instant, B)>, Vec<(Instant, S)>);

/// Decides whether a frame is lost: sees the sender, the time and the frame.
pub(crate) type Loss = Box<dyn FnMut(Side, Instant, &[u8]) -> bool>;

/// A bridge and a station on a virtual link and clock.
pub(crate) struct Pair<B: Engine, S: Engine> {
    pub(crate) bridge: B,
    pub(crate) station: S,
    pub(crate) now: Instant,
    pub(crate) latency: Duration,
    loss: Loss,
    in_flight: Vec<(Instant, Side, Vec<u8>)>,
    pub(crate) bridge_events: Vec<(Instant, B::Event)>,
    pub(crate) station_events: Vec<(Instant, S::Event)>,
    pub(crate) log: Vec<Record>,
}

impl<B: Engine, S: Engine> Pair<B, S> {
    /// A pair at time 0 with a 1 ms link that loses nothing.
    pub(crate) fn new(bridge: B, station: S) -> Self {
        Self {
            bridge,
            station,
            now: Instant::ZERO,
            latency: Duration::from_millis(1),
            loss: Box::new(|_, _, _| false),
            in_flight: Vec::new(),
            bridge_events: Vec::new(),
            station_events: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Drops the frames `loss` says to.
    pub(crate) fn set_loss(&mut self, loss: impl FnMut(Side, Instant, &[u8]) -> bool + 'static) {
        self.loss = Box::new(loss);
    }

    /// Drops each frame with probability `per_mille` / 1000, from a seeded xorshift generator
    /// (the same seed gives the same losses).
    pub(crate) fn set_loss_rate(&mut self, per_mille: u32, seed: u64) {
        let mut state = seed | 1;
        self.set_loss(move |_, _, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 1000 < u64::from(per_mille)
        });
    }

    /// Takes every frame both engines want to send now onto the link, and their events.
    fn drain(&mut self) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        loop {
            let mut sent = false;
            while let Some(transmit) = self.bridge.poll_transmit(self.now, &mut buf) {
                self.put(Side::Bridge, &buf[..transmit.len]);
                sent = true;
            }
            while let Some(transmit) = self.station.poll_transmit(self.now, &mut buf) {
                self.put(Side::Station, &buf[..transmit.len]);
                sent = true;
            }
            while let Some(event) = self.bridge.poll_event() {
                self.bridge_events.push((self.now, event));
            }
            while let Some(event) = self.station.poll_event() {
                self.station_events.push((self.now, event));
            }
            if !sent {
                break;
            }
        }
    }

    fn put(&mut self, from: Side, frame: &[u8]) {
        let dropped = (self.loss)(from, self.now, frame);
        self.log.push(Record {
            at: self.now,
            from,
            frame: frame.to_vec(),
            dropped,
        });
        if !dropped {
            self.in_flight
                .push((self.now + self.latency, from.other(), frame.to_vec()));
        }
    }

    /// Delivers the frames due now and runs the timers due now; true if anything was due.
    fn step(&mut self) -> bool {
        let mut busy = false;
        while let Some(index) = self.in_flight.iter().position(|(at, _, _)| *at <= self.now) {
            let (_, to, frame) = self.in_flight.remove(index);
            match to {
                Side::Bridge => self.bridge.handle_frame(self.now, &frame),
                Side::Station => self.station.handle_frame(self.now, &frame),
            }
            self.drain();
            busy = true;
        }
        if self.bridge.poll_timeout().is_some_and(|t| t <= self.now) {
            self.bridge.handle_timeout(self.now);
            busy = true;
        }
        if self.station.poll_timeout().is_some_and(|t| t <= self.now) {
            self.station.handle_timeout(self.now);
            busy = true;
        }
        self.drain();
        busy
    }

    /// Runs until `end`, jumping from one wake-up to the next.
    pub(crate) fn run_until(&mut self, end: Instant) {
        self.drain();
        loop {
            let mut rounds = 0;
            while self.step() {
                rounds += 1;
                // An engine whose deadline stays in the past after handle_timeout would spin.
                assert!(rounds < 10_000, "livelock at {}", self.now);
                if self.next_wakeup().is_none_or(|t| t > self.now) {
                    break;
                }
            }
            match self.next_wakeup() {
                Some(next) if next <= end => self.now = next.max(self.now),
                _ => {
                    self.now = end;
                    self.step();
                    return;
                }
            }
        }
    }

    /// Runs for `duration` from now.
    pub(crate) fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        self.run_until(end);
    }

    /// The earliest frame arrival or timer.
    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.in_flight.iter().map(|(at, _, _)| *at).min(),
            self.bridge.poll_timeout(),
            self.station.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The frames `from` sent, dropped ones included.
    pub(crate) fn sent_by(&self, from: Side) -> impl Iterator<Item = &Record> {
        self.log.iter().filter(move |record| record.from == from)
    }

    /// Takes the events gathered so far.
    pub(crate) fn take_events(&mut self) -> Events<B::Event, S::Event> {
        (
            core::mem::take(&mut self.bridge_events),
            core::mem::take(&mut self.station_events),
        )
    }
}
