//! An in-memory device for tests and simulations: frames go in and come out of queues the test
//! holds the other end of. A pair made with [`pair_with_offloads`] plays a TAP with offloads:
//! the test injects super-frames and partial checksums, and the switch may hand it the same.

use std::{
    collections::VecDeque,
    io,
    net::IpAddr,
    os::fd::BorrowedFd,
    sync::{Arc, Mutex, PoisonError},
};

use super::{Device, Medium, Offloads, Sent};
use crate::{PacketBuf, buffer::Offload};

/// A queued frame: bytes, tunnel peer, offload.
type Queued = (Vec<u8>, Option<IpAddr>, Offload);
type Queue = Arc<Mutex<VecDeque<Queued>>>;

/// The switch's end of an in-memory port.
#[derive(Debug)]
pub struct MemoryDevice {
    medium: Medium,
    offloads: Offloads,
    to_switch: Queue,
    from_switch: Queue,
}

/// The test's end of an in-memory port.
#[derive(Debug, Clone)]
pub struct MemoryPeer {
    to_switch: Queue,
    from_switch: Queue,
}

/// A connected device and peer; the device takes finished frames only.
pub fn pair(medium: Medium) -> (MemoryDevice, MemoryPeer) {
    pair_with_offloads(medium, Offloads::NONE)
}

/// A connected device and peer whose device takes `offloads` unfinished.
pub fn pair_with_offloads(medium: Medium, offloads: Offloads) -> (MemoryDevice, MemoryPeer) {
    let to_switch = Queue::default();
    let from_switch = Queue::default();
    let peer = MemoryPeer {
        to_switch: to_switch.clone(),
        from_switch: from_switch.clone(),
    };
    (
        MemoryDevice {
            medium,
            offloads,
            to_switch,
            from_switch,
        },
        peer,
    )
}

impl MemoryPeer {
    /// Queues a frame for the switch to receive.
    pub fn inject(&self, frame: &[u8]) {
        self.inject_from(frame, None);
    }

    /// Queues a tunnel payload from underlay address `peer`.
    pub fn inject_from(&self, frame: &[u8], peer: Option<IpAddr>) {
        lock(&self.to_switch).push_back((frame.to_vec(), peer, Offload::NONE));
    }

    /// Queues a frame with unfinished work, as a TAP with offloads hands them out.
    pub fn inject_offloaded(&self, frame: &[u8], offload: Offload) {
        lock(&self.to_switch).push_back((frame.to_vec(), None, offload));
    }

    /// Takes every frame the switch sent, oldest first.
    pub fn drain(&self) -> Vec<(Vec<u8>, Option<IpAddr>)> {
        lock(&self.from_switch)
            .drain(..)
            .map(|(frame, peer, _)| (frame, peer))
            .collect()
    }

    /// Takes every frame the switch sent, oldest first, with what it left unfinished.
    pub fn drain_offloaded(&self) -> Vec<(Vec<u8>, Offload)> {
        lock(&self.from_switch)
            .drain(..)
            .map(|(frame, _, offload)| (frame, offload))
            .collect()
    }
}

fn lock(queue: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
    // A test that panicked while holding the lock leaves the queue usable for its report.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Device for MemoryDevice {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut queue = lock(&self.to_switch);
        let mut filled = 0;
        for buf in bufs.iter_mut() {
            let Some((frame, peer, offload)) = queue.pop_front() else {
                break;
            };
            buf.set_frame(&frame);
            buf.peer = peer;
            buf.offload = offload;
            filled += 1;
        }
        Ok(filled)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        let mut queue = lock(&self.from_switch);
        for buf in bufs {
            queue.push_back((buf.frame().to_vec(), buf.peer, buf.offload));
        }
        Ok(Sent::all(bufs))
    }

    fn medium(&self) -> Medium {
        self.medium
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_both_ways() {
        let (mut device, peer) = pair(Medium::Ethernet);
        peer.inject(&[1, 2, 3]);
        peer.inject(&[4]);
        let mut bufs = vec![PacketBuf::new(); 4];
        assert_eq!(device.recv(&mut bufs).unwrap(), 2);
        assert_eq!(
            (bufs[0].frame(), bufs[1].frame()),
            (&[1, 2, 3][..], &[4][..])
        );
        assert_eq!(device.recv(&mut bufs).unwrap(), 0);
        assert_eq!(
            device.send(&bufs[..1]).unwrap(),
            Sent {
                frames: 1,
                bytes: 3
            }
        );
        assert_eq!(peer.drain(), vec![(vec![1, 2, 3], None)]);
    }
}
