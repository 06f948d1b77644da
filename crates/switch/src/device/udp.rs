//! The VXLAN underlay: a UDP socket whose datagrams are VXLAN header + inner frame.
//!
//! The kernel owns the outer IP and UDP headers: `recv` yields the UDP payload with the
//! sender's IP in [`PacketBuf::peer`], and `send` sends each buffer's frame to its `peer` on
//! the destination port given at construction. Both are batched with `recvmmsg`/`sendmmsg`.
//!
//! **Segmentation offload.** On send, consecutive datagrams to one peer of equal length (the
//! segments of a TCP super-frame, or a burst of small frames) go as one UDP GSO message
//! (`UDP_SEGMENT`), so the kernel's stack handles one 64 KiB packet instead of 45; if the
//! kernel refuses with `EIO` (the route's device cannot checksum UDP) the socket falls back to
//! single datagrams for good. On receive, `UDP_GRO` lets the kernel hand over such a train as
//! one buffer (with its segment size); `recv` cuts it into one [`PacketBuf`] per datagram,
//! handing out the last datagram of each train, and every lone one, without a copy (the
//! buffer it landed in is swapped with the caller's).
//!
//! **Source port.** RFC 7348 §5 recommends a UDP source port derived from a hash of the inner
//! frame (`wire::vxlan::source_port`), so that ECMP in the underlay spreads flows. A plain UDP
//! socket always sends from the port it is bound to, so every flow of this socket shares one
//! source port and one ECMP path. Per-flow ports would need one of: a pool of sockets bound to
//! a port range (picked by the hash), a raw socket with `IP_HDRINCL` writing the outer headers
//! itself (`wire::encap` already builds them), or AF_XDP. Not done yet.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use super::{
    Device, Medium,
    sys::{self, RecvBatch, SendBatch},
};
use crate::PacketBuf;

/// What is left to hand out of one buffer `recvmmsg` filled.
#[derive(Debug, Clone, Copy, Default)]
struct Landed {
    /// Where the next datagram starts in the buffer's frame.
    offset: usize,
    /// The length of each datagram (all but the last of a GRO train are this long).
    segment: usize,
    peer: Option<IpAddr>,
}

/// A UDP socket carrying VXLAN, IPv4 or IPv6.
#[derive(Debug)]
pub struct VxlanSocket {
    fd: OwnedFd,
    local: SocketAddr,
    dst_port: u16,
    rx: RecvBatch,
    tx: SendBatch,
    truncated: u64,
    /// `UDP_GRO` is on.
    gro: bool,
    /// The buffers `recvmmsg` fills, and what is left in each.
    landing: Vec<PacketBuf>,
    landed: [Landed; sys::BATCH],
    /// The first landing buffer with datagrams left, and how many buffers the last call filled.
    head: usize,
    filled: usize,
}

impl VxlanSocket {
    /// Binds to `local` (underlay address and VXLAN port) and sends to the IANA VXLAN port
    /// 4789.
    pub fn bind(local: SocketAddr) -> io::Result<Self> {
        Self::new(local, wire::vxlan::PORT)
    }

    /// Binds to `local` and sends to UDP port `dst_port` of each peer.
    ///
    /// Port 0 in `local` binds an ephemeral port; [`local_addr`](Self::local_addr) tells which.
    pub fn new(local: SocketAddr, dst_port: u16) -> io::Result<Self> {
        let domain = if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = sys::socket(domain, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
        if local.is_ipv6() {
            let on: libc::c_int = 1;
            sys::setsockopt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &on)?;
        }
        sys::set_buffer_sizes(fd.as_fd())?;
        sys::bind(fd.as_fd(), &sys::RawAddr::from_socket_addr(local))?;
        let local = sys::local_addr(fd.as_fd())?;
        // Kernels before 5.0 have no UDP GRO: then every datagram simply comes alone.
        let on: libc::c_int = 1;
        let gro = sys::setsockopt(fd.as_fd(), libc::SOL_UDP, libc::UDP_GRO, &on).is_ok();
        Ok(Self {
            fd,
            local,
            dst_port,
            rx: RecvBatch::new(gro),
            tx: SendBatch::with_udp_gso(),
            truncated: 0,
            gro,
            landing: (0..sys::BATCH).map(|_| PacketBuf::new()).collect(),
            landed: [Landed::default(); sys::BATCH],
            head: 0,
            filled: 0,
        })
    }

    /// True when the kernel may hand over trains of datagrams (`UDP_GRO`).
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// True while runs of datagrams are sent as UDP GSO messages.
    pub fn gso(&self) -> bool {
        self.tx.gso()
    }

    /// GSO messages the kernel refused (their datagrams were then sent one by one).
    pub fn gso_refused(&self) -> u64 {
        self.tx.gso_refused()
    }

    /// Moves datagrams left in the landing buffers into `bufs`; returns how many.
    fn hand_out(&mut self, bufs: &mut [PacketBuf]) -> usize {
        let mut out = 0;
        while out < bufs.len() && self.head < self.filled {
            let landed = &mut self.landed[self.head];
            let landing = &mut self.landing[self.head];
            let rest = landing.len().saturating_sub(landed.offset);
            if rest == 0 {
                self.head += 1;
                continue;
            }
            if rest <= landed.segment {
                // The last (or only) datagram: hand over the whole buffer, starting there.
                landing.set_start(landing.start() + landed.offset);
                core::mem::swap(&mut bufs[out], landing);
                self.head += 1;
            } else {
                let end = landed.offset + landed.segment;
                bufs[out].set_frame(&landing.frame()[landed.offset..end]);
                landed.offset = end;
            }
            bufs[out].peer = landed.peer;
            out += 1;
        }
        out
    }

    /// The bound address and port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The UDP port datagrams are sent to.
    pub fn dst_port(&self) -> u16 {
        self.dst_port
    }

    /// The receive buffer the kernel granted, in bytes (twice what was asked, by convention).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let size = sys::getsockopt_int(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        Ok(usize::try_from(size).unwrap_or(0))
    }

    /// Datagrams dropped because they did not fit a buffer.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }
}

impl Device for VxlanSocket {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut out = self.hand_out(bufs);
        if out == bufs.len() {
            return Ok(out);
        }
        let got = self.rx.recv(self.fd.as_fd(), &mut self.landing)?;
        for i in 0..got {
            let len = self.landing[i].len();
            let peer = self
                .rx
                .addr(i)
                .socket_addr()
                .map(|addr| addr.ip().to_canonical());
            self.landed[i] = Landed {
                // A truncated datagram is skipped whole.
                offset: if self.rx.truncated(i) { len } else { 0 },
                segment: self.rx.gro_size(i).unwrap_or(len).max(1),
                peer,
            };
            if self.rx.truncated(i) {
                self.truncated += 1;
            }
        }
        (self.head, self.filled) = (0, got);
        out += self.hand_out(&mut bufs[out..]);
        Ok(out)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<usize> {
        let (local, port) = (self.local.ip(), self.dst_port);
        self.tx.send(self.fd.as_fd(), bufs, |buf| {
            let peer: IpAddr = sys::peer_for(local, buf.peer)?;
            Ok(sys::Dest::To(SocketAddr::new(peer, port)))
        })
    }

    fn medium(&self) -> Medium {
        Medium::Vxlan
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}
