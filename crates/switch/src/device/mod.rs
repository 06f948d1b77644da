//! Port backends behind one trait: the only code in the switch that makes syscalls.
//!
//! A [`Device`] moves batches of [`PacketBuf`]s. What a buffer holds depends on the device's
//! [`Medium`]: a whole Ethernet frame (TAP, AF_PACKET, memory), or a tunnel payload whose outer
//! IP and UDP headers the kernel owns (a VXLAN UDP socket, a raw GRE socket), with the remote
//! endpoint in [`PacketBuf::peer`]. [`capture::Capture`] wraps any device and writes what
//! passes to a pcap file.
//!
//! **Offloads.** A device may hand out frames whose sender left work undone
//! ([`PacketBuf::offload`]: a partial checksum, a TCP super-frame of up to 64 KiB), and may take
//! such frames ([`Device::offloads`]); only a TAP with `IFF_VNET_HDR` does either. The switch
//! finishes what the sending device does not take: it cuts super-frames into segments and
//! finishes checksums ([`wire::gso`]).

pub mod capture;
pub mod memory;
pub mod packet;
pub mod rawip;
pub mod tap;
pub mod udp;

mod sys;

use std::{io, os::fd::BorrowedFd};

use crate::PacketBuf;

/// What the buffers of a device hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Whole Ethernet frames.
    Ethernet,
    /// A VXLAN header and the inner frame (UDP payload); `peer` is the remote endpoint.
    Vxlan,
    /// A GRE header and the inner frame (IP payload); `peer` is the remote endpoint.
    Gre,
}

/// The unfinished work ([`Offload`](crate::buffer::Offload)) a device takes in the frames it
/// sends; the switch finishes the rest before handing them over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Offloads {
    /// Frames whose TCP or UDP checksum is partial.
    pub csum: bool,
    /// TCP super-frames (whose checksum is always partial too).
    pub tso: bool,
}

impl Offloads {
    /// Finished frames only.
    pub const NONE: Self = Self {
        csum: false,
        tso: false,
    };
    /// Partial checksums and TCP super-frames.
    pub const ALL: Self = Self {
        csum: true,
        tso: true,
    };
}

/// What one [`Device::send`] took: how many frames, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Frames the kernel took.
    pub frames: usize,
    /// Their lengths, added up.
    pub bytes: u64,
}

impl Sent {
    /// The first `frames` frames of `bufs` (all of them if it has fewer).
    pub fn first(bufs: &[PacketBuf], frames: usize) -> Self {
        let taken = &bufs[..frames.min(bufs.len())];
        Self {
            frames: taken.len(),
            bytes: taken.iter().map(|buf| buf.len() as u64).sum(),
        }
    }

    /// Every frame of `bufs`.
    pub fn all(bufs: &[PacketBuf]) -> Self {
        Self::first(bufs, bufs.len())
    }
}

impl core::ops::AddAssign for Sent {
    fn add_assign(&mut self, more: Self) {
        self.frames += more.frames;
        self.bytes += more.bytes;
    }
}

/// A port backend.
///
/// Both calls are non-blocking: `recv` returns `Ok(0)` when nothing is waiting, and the driver
/// waits on [`fd`](Device::fd) for readability.
pub trait Device: Send {
    /// Fills up to `bufs.len()` buffers with received frames; returns how many.
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize>;

    /// Sends the frames in `bufs` (to each buffer's `peer` for tunnel media); returns how many
    /// the kernel took and what they weigh. Frames not taken are the caller's to count as
    /// dropped.
    ///
    /// The frames taken need not be the first ones: a device may skip a frame the kernel
    /// refuses and send those behind it, or send from several sockets (a VXLAN socket with a
    /// pool of source ports, one of whose sockets may be full while the others are not).
    /// Hence the bytes: only the device knows which frames went.
    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent>;

    /// What the buffers hold.
    fn medium(&self) -> Medium;

    /// The descriptor that becomes readable when frames wait, if the device has one.
    fn fd(&self) -> Option<BorrowedFd<'_>>;

    /// The unfinished work the device takes in frames given to [`send`](Device::send); asked
    /// once, when the device is attached. None by default.
    fn offloads(&self) -> Offloads {
        Offloads::NONE
    }

    /// True when `err`, returned by [`recv`](Device::recv), means the device is gone for good
    /// (a TAP whose netdev was destroyed), so reading it again is pointless. False by
    /// default: a socket's errors (an ICMP error queued on a UDP socket) clear when read.
    fn is_gone(&self, err: &io::Error) -> bool {
        let _ = err;
        false
    }
}
