//! weft's packet and protocol formats.
//!
//! Every format lives in its own module and follows one pattern (after smoltcp's `wire`):
//!
//! * `Packet<T: AsRef<[u8]>>` (or `Frame`, `Header`) is a zero-copy view over a buffer. Build it
//!   with `new_checked` for untrusted input: that calls `check_len`, and **once `check_len` has
//!   passed, no accessor panics**, whatever the bytes say. `new_unchecked` is for buffers the
//!   caller has sized itself (emitting). Getters need `T: AsRef<[u8]>`, setters
//!   `T: AsMut<[u8]>` too; payload accessors on `Packet<&'a T>` return borrows that outlive the view.
//! * `Repr` is the owned, validated meaning of a header: `Repr::parse(&packet)` checks what the
//!   format requires (versions, checksums, flags), `Repr::buffer_len()` says how many bytes
//!   `Repr::emit` writes, and **`emit` never panics on a buffer of at least `buffer_len()` bytes**.
//!   `emit` followed by `parse` gives back the same `Repr`.
//! * Code points from the wire (EtherType, IP protocol, LLDP TLV type, ...) are newtypes with
//!   associated constants, so an unknown value round-trips exactly and a known value always
//!   compares equal to its constant.
//! * Every failure is a [`Error`]: a small `Copy` enum whose variants are the reasons a switch
//!   counts drops by ([`Error::as_str`]).
//!
//! Checksums are verified on parse except under `cfg(fuzzing)`, so a fuzzer reaches the layers
//! behind them.

#[macro_use]
mod macros;

mod addr;
pub mod arp;
pub mod build;
pub mod cdcp;
pub mod checksum;
pub mod dhcpv4;
pub mod ecp;
pub mod encap;
mod error;
pub mod ethernet;
pub mod evb;
pub mod fuzz;
pub mod gre;
pub mod gso;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
pub mod lldp;
pub mod pretty;
pub mod tcp;
pub mod udp;
pub mod vdp;
pub mod vlan;
pub mod vnet;
pub mod vxlan;

pub use addr::{MacAddr, ParseMacError};
pub use error::Error;
pub use ethernet::EtherType;
pub use ipv4::IpProtocol;

/// A 24-bit virtual network identifier: a VXLAN VNI (RFC 7348) or an NVGRE VSID (RFC 7637).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// The largest value 24 bits hold.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI from a number, `None` if it does not fit in 24 bits.
    pub const fn new(value: u32) -> Option<Self> {
        if value <= Self::MAX {
            Some(Self(value))
        } else {
            None
        }
    }

    /// A VNI from the low 24 bits of `value` (the upper 8 are dropped).
    pub const fn from_low_bits(value: u32) -> Self {
        Self(value & Self::MAX)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl core::fmt::Display for Vni {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The result of parsing or emitting a wire format.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range of a fixed field inside a header.
pub(crate) type Field = core::ops::Range<usize>;
/// The bytes from an offset to the end of a buffer.
pub(crate) type Rest = core::ops::RangeFrom<usize>;
