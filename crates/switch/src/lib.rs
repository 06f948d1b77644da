//! weft's virtual switch: the data plane of one host (hypervisor or ToR).
//!
//! The forwarding pipeline ([`pipeline`]) is a pure function over a batch of frames and an
//! immutable table snapshot ([`tables`]) that returns verdicts: forward, flood, tunnel, hairpin,
//! punt or drop with a reason. Tables change by building a new snapshot and swapping it in
//! atomically, so forwarding never takes a lock. Only the backend modules under [`device`] make
//! syscalls.

pub mod buffer;
pub mod daemon;
pub mod device;
pub mod dhcp;
mod index;

pub use buffer::PacketBuf;
pub mod mac;
pub mod pipeline;
pub mod switch;
pub mod tables;
