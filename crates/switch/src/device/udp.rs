//! The VXLAN underlay: a UDP socket whose datagrams are VXLAN header + inner frame.
//!
//! The kernel owns the outer IP and UDP headers: `recv` yields the UDP payload with the
//! sender's IP in [`PacketBuf::peer`], and `send` sends each buffer's frame to its `peer` on
//! the destination port given at construction. Both are batched with `recvmmsg`/`sendmmsg`.
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

/// A UDP socket carrying VXLAN, IPv4 or IPv6.
#[derive(Debug)]
pub struct VxlanSocket {
    fd: OwnedFd,
    local: SocketAddr,
    dst_port: u16,
    rx: RecvBatch,
    tx: SendBatch,
    truncated: u64,
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
        Ok(Self {
            fd,
            local,
            dst_port,
            rx: RecvBatch::new(false),
            tx: SendBatch::new(),
            truncated: 0,
        })
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
        let got = self.rx.recv(self.fd.as_fd(), bufs)?;
        let mut kept = 0;
        for i in 0..got {
            if self.rx.truncated(i) {
                self.truncated += 1;
                continue;
            }
            let peer = self
                .rx
                .addr(i)
                .socket_addr()
                .map(|addr| addr.ip().to_canonical());
            bufs[i].peer = peer;
            bufs.swap(kept, i);
            kept += 1;
        }
        Ok(kept)
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
