//! weft's EVB daemon runtime: the sans-IO 802.1Qbg engines of `weft-evb` on a real interface.
//!
//! `weft evb bridge` (the ToR side) and `weft evb station` (a hypervisor uplink) run on this
//! crate. It is a crate of its own because it is where the engines meet I/O: it depends on
//! `weft-evb` (the engines, which must stay sans-IO and depend only on `wire`), on `weft-switch`
//! for the `AF_PACKET` socket, and on tokio and hyper for timers, the control socket and the
//! controller's VSI decisions. None of that belongs in `weft-evb`.
//!
//! * [`port`]: the engines of one role joined into one sans-IO [`port::Port`] (frame
//!   dispatch, negotiated timers handed to VDP, and an EVB TLV agent and a VDP engine per
//!   S-channel CDCP grants, its frames S-tagged);
//! * [`runtime`]: the driver of a port on a socket, with its timer, events and status;
//! * [`policy`]: who decides on a VSI: a local TOML file, or the controller;
//! * [`decide`]: the controller's VDP decision API client (`docs/vsi.md`);
//! * [`gating`]: a bridge programming its switch's VDP gating (figure 12);
//! * [`schannels`]: a bridge's station port or a station's uplink programmed with the
//!   S-channels CDCP granted (`set_s_channels`);
//! * [`control`]: the control socket (JSON lines);
//! * [`state`]: a station's VSIs on disk, asked for again after a restart;
//! * [`text`]: VSIs as JSON, in the controller's shapes.

pub mod control;
pub mod decide;
pub mod gating;
pub mod policy;
pub mod port;
pub mod runtime;
pub mod schannels;
pub mod state;
pub mod text;

pub use runtime::{Decider, Options, RuntimeError, run};
