//! Packet buffers with headroom, so encapsulation writes outer headers without copying a frame.

use core::net::IpAddr;

pub use wire::gso::Offload;

/// Bytes reserved in front of every frame: outer Ethernet + IPv6 + UDP + VXLAN and two tags,
/// rounded up to a cache line.
pub const HEADROOM: usize = 128;
/// The largest frame a buffer holds: a TCP super-frame of a TAP with offloads (an IP packet of
/// up to 64 KiB behind Ethernet and two VLAN tags), rounded up to a cache line. Frames on the
/// wire are at most a 9000-byte jumbo MTU plus headers.
pub const MAX_FRAME: usize = 65_536 + 128;
/// The largest frame on a wire: a 9000-byte jumbo MTU plus Ethernet and two VLAN tags. Anything
/// longer that a device without offloads hands over is a coalesced frame it should not have
/// (GRO on an uplink) and is dropped.
pub const MAX_WIRE_FRAME: usize = 9216;

/// One frame in a buffer that has [`HEADROOM`] bytes free in front of it.
///
/// The frame is `data[start..end]`. Buffers are allocated once, up front, and reused: the fast
/// path never allocates.
#[derive(Clone)]
pub struct PacketBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
    /// The underlay address a tunnel packet came from, or is going to.
    pub peer: Option<IpAddr>,
    /// What the frame's sender left undone (a partial checksum, TCP segmentation): set only by
    /// devices that take offloads (a TAP with `IFF_VNET_HDR`), finished by the switch before
    /// the frame goes to a device that does not (see [`Device::offloads`]).
    ///
    /// [`Device::offloads`]: crate::device::Device::offloads
    pub offload: Offload,
}

impl PacketBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            data: vec![0; HEADROOM + MAX_FRAME].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
            peer: None,
            offload: Offload::NONE,
        }
    }

    /// A buffer holding a copy of `frame` (tests and slow paths; `frame` is cut at
    /// [`MAX_FRAME`]).
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut buf = Self::new();
        buf.set_frame(frame);
        buf
    }

    /// The frame.
    pub fn frame(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The frame, mutably.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// The frame's length.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the buffer holds no frame.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Empties the buffer and restores the full headroom.
    pub fn clear(&mut self) {
        self.start = HEADROOM;
        self.end = HEADROOM;
        self.peer = None;
        self.offload = Offload::NONE;
    }

    /// The space a receive call fills: everything after the headroom.
    pub fn receive_area(&mut self) -> &mut [u8] {
        &mut self.data[HEADROOM..]
    }

    /// Marks the first `len` bytes of [`receive_area`](Self::receive_area) as the frame, a
    /// finished one (no offload).
    pub fn set_received(&mut self, len: usize) {
        self.start = HEADROOM;
        self.end = HEADROOM + len.min(MAX_FRAME);
        self.offload = Offload::NONE;
    }

    /// Replaces the frame with a copy of `frame` (cut at [`MAX_FRAME`]), a finished one.
    pub fn set_frame(&mut self, frame: &[u8]) {
        let len = frame.len().min(MAX_FRAME);
        self.data[HEADROOM..HEADROOM + len].copy_from_slice(&frame[..len]);
        self.set_received(len);
    }

    /// The whole buffer with the frame's bounds, for in-place header pushes (`wire::encap`,
    /// `wire::vlan::push_tag`) that return a new start.
    pub fn raw_mut(&mut self) -> (&mut [u8], usize, usize) {
        (&mut self.data, self.start, self.end)
    }

    /// Moves the frame's start (after pushing or stripping headers in place).
    ///
    /// `start` is clamped to the frame's end.
    pub fn set_start(&mut self, start: usize) {
        self.start = start.min(self.end);
    }

    /// Moves the frame's end (after trimming padding).
    pub fn set_end(&mut self, end: usize) {
        self.end = end.clamp(self.start, self.data.len());
    }

    /// Where the frame starts in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Where the frame ends in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("peer", &self.peer)
            .field("offload", &self.offload)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_headroom() {
        let mut buf = PacketBuf::from_frame(&[1, 2, 3]);
        assert_eq!(buf.frame(), &[1, 2, 3]);
        let (data, start, end) = buf.raw_mut();
        assert_eq!((start, end), (HEADROOM, HEADROOM + 3));
        data[start - 2..start].copy_from_slice(&[9, 9]);
        buf.set_start(HEADROOM - 2);
        assert_eq!(buf.frame(), &[9, 9, 1, 2, 3]);
        buf.clear();
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_frames_are_cut_not_panicked_on() {
        let big = vec![7u8; MAX_FRAME + 100];
        assert_eq!(PacketBuf::from_frame(&big).len(), MAX_FRAME);
    }
}
