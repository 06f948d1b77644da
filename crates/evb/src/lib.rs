//! weft's 802.1Qbg (Edge Virtual Bridging) protocol engines: the LLDP agent that exchanges the
//! EVB TLV and negotiates reflective relay ([`lldp::Agent`]), ECP ([`ecp::Ecp`]), VDP for the
//! bridge ([`vdp::Bridge`]) and the station ([`vdp::Station`]), and CDCP for both
//! ([`cdcp::Bridge`], [`cdcp::Station`]).
//!
//! # The contract: no I/O inside
//!
//! Every engine is deterministic. It opens no socket, reads no clock, starts no thread and draws
//! no random number; the driver (weft's agent, a test, the simulator) passes everything in. Each
//! engine serves one port (or one S-channel) and has the same shape ([`Engine`]), after
//! quinn-proto:
//!
//! * **inputs** — [`Engine::handle_frame`] with every Ethernet frame received on the port that
//!   the engine may care about (it ignores, and counts, the others), [`Engine::handle_timeout`]
//!   when the deadline from `poll_timeout` has passed, and commands such as
//!   [`vdp::Station::associate`] or [`cdcp::Station::set_channels`];
//! * **outputs** — after any input, call [`Engine::poll_transmit`] until it returns `None` and
//!   send each frame (whole Ethernet frames, unpadded: the NIC or driver pads to 60 bytes), call
//!   [`Engine::poll_event`] until `None` and act on each event, then arm one timer for
//!   [`Engine::poll_timeout`].
//!
//! Time is an [`Instant`]: microseconds from any epoch the driver picks. 802.1Qbg timers are
//! 10 us x 2^exponent, so milliseconds would be too coarse for small exponents.
//!
//! Bad input never panics: a frame that does not parse, or that breaks the protocol, is dropped
//! or answered the way `shared/evb/PROTOCOL_NOTES.md` says a peer must answer, and counted by
//! reason ([`Counters`], [`Counter`]). Errors are sorted by fault ([`Error`]), and one function
//! maps each to its counter ([`Error::counter`]) and one to its VDP answer
//! ([`Error::vdp_reason`]).

pub mod cdcp;
pub mod ecp;
mod error;
mod frame;
pub mod lldp;
mod time;
mod timing;
pub mod vdp;

pub use error::{ApiMisuse, Counter, Counters, Error, PeerIncompatible, PeerMisbehaved};
pub use frame::{MAX_FRAME_LEN, Transmit};
pub use time::Instant;
pub use timing::Timing;

/// Which end of the link an engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The EVB bridge (the ToR switch port).
    Bridge,
    /// The EVB station (the hypervisor's uplink or S-channel).
    Station,
}

/// The sans-IO shape every engine shares, so one driver (or one test harness) runs them all.
pub trait Engine {
    /// What the engine tells its driver.
    type Event;

    /// Takes a frame received on the engine's port (a whole Ethernet frame, tags removed).
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);

    /// Runs the timers that are due at `now`. Call when the `poll_timeout` deadline has passed.
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next frame to send into `buf` and says how long it is; `None` when there is
    /// nothing to send. `buf` should hold [`MAX_FRAME_LEN`] bytes: a frame that does not fit is
    /// dropped and counted ([`Counter::TxNoRoom`]).
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next time `handle_timeout` must be called, `None` when no timer runs.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the driver, `None` when there is none.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// A snapshot of the engine's counters (an engine that runs ECP underneath includes
    /// ECP's).
    fn counters(&self) -> Counters;
}
