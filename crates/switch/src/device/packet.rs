//! An uplink on an existing interface through an `AF_PACKET` socket.
//!
//! The kernel moves the outer VLAN tag of every received frame into metadata before packet
//! sockets see it (`skb_vlan_untag` in the receive path, and VLAN RX offload on NICs), so a
//! trunk frame arrives 4 bytes short. This backend enables `PACKET_AUXDATA` and puts the tag
//! back (802.1Q or 802.1ad, as the kernel reports) in the buffer's headroom, so the pipeline
//! sees the frame as it was on the wire. Frames the host itself sends out of the interface
//! (`PACKET_OUTGOING`, including this socket's own) are not delivered.
//!
//! Receive and send are batched with `recvmmsg`/`sendmmsg`.
//!
//! Offloads are off here: with GRO/LRO enabled on the interface a packet socket can see
//! coalesced frames larger than [`MAX_WIRE_FRAME`]; those are
//! dropped and counted in [`PacketDevice::truncated`]. Turn GRO off on uplinks (`ethtool -K dev
//! gro off`) until a `PACKET_VNET_HDR` path exists.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use wire::{EtherType, vlan};

use super::{
    Device, Medium, Sent,
    sys::{self, RecvBatch, SendBatch},
};
use crate::{PacketBuf, buffer::MAX_WIRE_FRAME};

/// An `AF_PACKET` raw socket bound to one interface, in promiscuous mode.
#[derive(Debug)]
pub struct PacketDevice {
    fd: OwnedFd,
    ifindex: u32,
    name: String,
    rx: RecvBatch,
    tx: SendBatch,
    truncated: u64,
    malformed: u64,
}

impl PacketDevice {
    /// Opens a packet socket on interface `name` (in the caller's network namespace), receiving
    /// every protocol, with the interface in promiscuous mode for as long as the socket lives.
    pub fn open(name: &str) -> io::Result<Self> {
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
        // Protocol 0 receives nothing until bind, so no frame of another interface is queued.
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        let on: libc::c_int = 1;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, &on)?;
        // Since Linux 4.20; older kernels still deliver outgoing frames, which `recv` skips.
        let _ = sys::setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &on,
        );
        sys::set_buffer_sizes(fd.as_fd())?;
        let eth_p_all = u16::try_from(libc::ETH_P_ALL).unwrap_or(3);
        sys::bind(fd.as_fd(), &sys::RawAddr::link(ifindex, eth_p_all))?;
        let mreq = libc::packet_mreq {
            mr_ifindex: libc::c_int::try_from(ifindex).unwrap_or(0),
            mr_type: u16::try_from(libc::PACKET_MR_PROMISC).unwrap_or(1),
            mr_alen: 0,
            mr_address: [0; 8],
        };
        sys::setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
        )?;
        Ok(Self {
            fd,
            ifindex,
            name: name.to_owned(),
            rx: RecvBatch::new(true),
            tx: SendBatch::new(),
            truncated: 0,
            malformed: 0,
        })
    }

    /// The interface name given to [`open`](Self::open).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Frames dropped because they were longer than
    /// [`MAX_WIRE_FRAME`] (GRO/LRO super-frames) or did not fit
    /// a buffer.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Frames dropped because their stripped VLAN tag could not be put back (shorter than an
    /// Ethernet header).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

/// The VLAN tag the kernel took off a frame, from a `PACKET_AUXDATA` control message.
fn stripped_tag(aux: &[u8]) -> Option<(EtherType, u16)> {
    fn field<const N: usize>(aux: &[u8], offset: usize) -> Option<[u8; N]> {
        aux.get(offset..offset + N)?.try_into().ok()
    }
    let status = u32::from_ne_bytes(field(
        aux,
        core::mem::offset_of!(libc::tpacket_auxdata, tp_status),
    )?);
    if status & libc::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tci = u16::from_ne_bytes(field(
        aux,
        core::mem::offset_of!(libc::tpacket_auxdata, tp_vlan_tci),
    )?);
    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
        let tpid = field(
            aux,
            core::mem::offset_of!(libc::tpacket_auxdata, tp_vlan_tpid),
        )?;
        EtherType(u16::from_ne_bytes(tpid))
    } else {
        EtherType::VLAN
    };
    Some((tpid, tci))
}

/// Puts the tag the kernel stripped back in front of the frame's EtherType.
fn restore_tag(buf: &mut PacketBuf, tpid: EtherType, tci: u16) -> wire::Result<()> {
    let (data, start, end) = buf.raw_mut();
    let new_start = vlan::push_tag(&mut data[..end], start, tpid, tci)?;
    buf.set_start(new_start);
    Ok(())
}

impl Device for PacketDevice {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut kept = 0;
        // Outgoing or broken frames free their slot, so refill while the socket has more, a
        // bounded number of times (a flood of dropped frames must not hold the caller here).
        for _ in 0..4 {
            if kept == bufs.len() {
                break;
            }
            let want = bufs.len() - kept;
            let got = self.rx.recv(self.fd.as_fd(), &mut bufs[kept..])?;
            if got == 0 {
                break;
            }
            let mut dropped = 0;
            for i in 0..got {
                let slot = kept + i;
                let keep = if self.rx.truncated(i) || bufs[slot].len() > MAX_WIRE_FRAME {
                    self.truncated += 1;
                    false
                } else if self.rx.addr(i).packet_type() == Some(libc::PACKET_OUTGOING) {
                    false
                } else {
                    let tag = self
                        .rx
                        .cmsgs(i)
                        .find(|c| c.level == libc::SOL_PACKET && c.kind == libc::PACKET_AUXDATA)
                        .and_then(|c| stripped_tag(c.data));
                    match tag {
                        Some((tpid, tci)) if restore_tag(&mut bufs[slot], tpid, tci).is_err() => {
                            self.malformed += 1;
                            false
                        }
                        _ => true,
                    }
                };
                if keep {
                    // Compact: move the frame down over the slots of dropped ones.
                    bufs.swap(slot - dropped, slot);
                } else {
                    dropped += 1;
                }
            }
            kept += got - dropped;
            if got < want.min(sys::BATCH) {
                break;
            }
        }
        Ok(kept)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        self.tx
            .send(self.fd.as_fd(), bufs, |_| Ok(sys::Dest::Bound))
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auxdata(status: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut aux = vec![0u8; size_of::<libc::tpacket_auxdata>()];
        let put = |aux: &mut Vec<u8>, offset: usize, bytes: &[u8]| {
            aux[offset..offset + bytes.len()].copy_from_slice(bytes);
        };
        put(
            &mut aux,
            core::mem::offset_of!(libc::tpacket_auxdata, tp_status),
            &status.to_ne_bytes(),
        );
        put(
            &mut aux,
            core::mem::offset_of!(libc::tpacket_auxdata, tp_vlan_tci),
            &tci.to_ne_bytes(),
        );
        put(
            &mut aux,
            core::mem::offset_of!(libc::tpacket_auxdata, tp_vlan_tpid),
            &tpid.to_ne_bytes(),
        );
        aux
    }

    #[test]
    fn auxdata_gives_the_stripped_tag() {
        let both = libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID;
        assert_eq!(
            stripped_tag(&auxdata(both, 0xa064, 0x88a8)),
            Some((EtherType::QINQ, 0xa064))
        );
        // No TPID from an old kernel: 802.1Q.
        let tag = stripped_tag(&auxdata(libc::TP_STATUS_VLAN_VALID, 100, 0));
        assert_eq!(tag, Some((EtherType::VLAN, 100)));
        // Priority-tagged (VID 0) frames still had a tag.
        assert_eq!(
            stripped_tag(&auxdata(both, 0, 0x8100)),
            Some((EtherType::VLAN, 0))
        );
        assert_eq!(stripped_tag(&auxdata(0, 100, 0x8100)), None);
        assert_eq!(stripped_tag(&[0xff; 3]), None);
    }

    #[test]
    fn restored_tag_sits_behind_the_addresses() {
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut buf = PacketBuf::from_frame(&frame);
        restore_tag(&mut buf, EtherType::VLAN, 0x0064).unwrap();
        assert_eq!(buf.len(), 64);
        assert_eq!(&buf.frame()[..12], &frame[..12]);
        assert_eq!(&buf.frame()[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        let mut short = PacketBuf::from_frame(&[1, 2, 3]);
        assert!(restore_tag(&mut short, EtherType::VLAN, 1).is_err());
    }
}
