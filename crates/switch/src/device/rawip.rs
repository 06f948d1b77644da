//! The GRE/NVGRE underlay: a raw IP socket for protocol 47.
//!
//! Buffers hold the GRE header and the inner frame; the kernel writes the outer IP header on
//! send. On receive an IPv4 raw socket delivers the whole IP packet, so its header is parsed
//! and skipped (in place: the frame's start moves, nothing is copied) and its source address
//! becomes [`PacketBuf::peer`]; an IPv6 raw socket delivers only the payload, and the peer is
//! the address `recvmmsg` reports. Batched with `recvmmsg`/`sendmmsg`.
//!
//! No GRE kernel module is involved: raw sockets get protocol 47 packets whether or not one is
//! loaded (and with none loaded, the kernel answers nothing itself).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    ops::Range,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use wire::{IpProtocol, ipv4};

use super::{
    Device, Medium, Sent,
    sys::{self, RecvBatch, SendBatch},
};
use crate::PacketBuf;

/// A raw IPv4 or IPv6 socket for GRE (IP protocol 47), bound to a local underlay address.
#[derive(Debug)]
pub struct GreSocket {
    fd: OwnedFd,
    local: IpAddr,
    rx: RecvBatch,
    tx: SendBatch,
    malformed: u64,
    truncated: u64,
}

impl GreSocket {
    /// Opens a raw GRE socket bound to `local` (which must be an address of this host in the
    /// caller's network namespace; only packets to it are received).
    pub fn bind(local: IpAddr) -> io::Result<Self> {
        let domain = if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = sys::socket(domain, libc::SOCK_RAW, libc::IPPROTO_GRE)?;
        sys::set_buffer_sizes(fd.as_fd())?;
        sys::bind(
            fd.as_fd(),
            &sys::RawAddr::from_socket_addr(SocketAddr::new(local, 0)),
        )?;
        Ok(Self {
            fd,
            local,
            rx: RecvBatch::new(false),
            tx: SendBatch::new(),
            malformed: 0,
            truncated: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> IpAddr {
        self.local
    }

    /// IPv4 packets dropped because their IP header did not parse (bad version, lengths or
    /// checksum, or not GRE).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Packets dropped because they did not fit a buffer.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }
}

/// The source address and the payload's range of an IPv4 packet as an IPv4 raw socket
/// delivers it; `None` if it is not a well-formed, unfragmented GRE packet.
fn strip_ipv4(packet: &[u8]) -> Option<(IpAddr, Range<usize>)> {
    let view = ipv4::Packet::new_checked(packet).ok()?;
    let repr = ipv4::Repr::parse(&view).ok()?;
    if repr.protocol != IpProtocol::GRE || repr.is_fragment() {
        return None;
    }
    let start = view.header_len();
    Some((IpAddr::V4(repr.src_addr), start..start + repr.payload_len))
}

impl Device for GreSocket {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let got = self.rx.recv(self.fd.as_fd(), bufs)?;
        let mut kept = 0;
        for i in 0..got {
            if self.rx.truncated(i) {
                self.truncated += 1;
                continue;
            }
            let buf = &mut bufs[i];
            if self.local.is_ipv4() {
                let Some((src, payload)) = strip_ipv4(buf.frame()) else {
                    self.malformed += 1;
                    continue;
                };
                let start = buf.start();
                buf.set_end(start + payload.end);
                buf.set_start(start + payload.start);
                buf.peer = Some(src);
            } else {
                buf.peer = self
                    .rx
                    .addr(i)
                    .socket_addr()
                    .map(|addr| addr.ip().to_canonical());
            }
            bufs.swap(kept, i);
            kept += 1;
        }
        Ok(kept)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        let local = self.local;
        self.tx.send(self.fd.as_fd(), bufs, |buf| {
            let peer = sys::peer_for(local, buf.peer)?;
            Ok(sys::Dest::To(SocketAddr::new(peer, 0)))
        })
    }

    fn medium(&self) -> Medium {
        Medium::Gre
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    fn ipv4_gre(payload: &[u8]) -> Vec<u8> {
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 2),
            protocol: IpProtocol::GRE,
            payload_len: payload.len(),
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 7,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: ipv4::Options::NONE,
        };
        let mut packet = vec![0u8; repr.buffer_len() + payload.len()];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut packet[..]));
        packet[repr.buffer_len()..].copy_from_slice(payload);
        packet
    }

    #[test]
    fn ipv4_header_is_stripped_and_malformed_is_refused() {
        let packet = ipv4_gre(&[0x20, 0, 0x65, 0x58, 1, 2, 3, 4]);
        let (src, range) = strip_ipv4(&packet).unwrap();
        assert_eq!(src, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(&packet[range], &[0x20, 0, 0x65, 0x58, 1, 2, 3, 4]);
        assert_eq!(strip_ipv4(&packet[..10]), None);
        let mut bad_sum = packet.clone();
        bad_sum[10] ^= 0xff;
        assert_eq!(strip_ipv4(&bad_sum), None);
        let mut not_gre = packet.clone();
        not_gre[9] = 17;
        assert_eq!(strip_ipv4(&not_gre), None);
        assert_eq!(strip_ipv4(&[]), None);
        assert_eq!(strip_ipv4(&[0x60; 40]), None);
    }
}
