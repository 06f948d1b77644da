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
//! frame, so that ECMP in the underlay and RSS on the receiving host spread flows while each
//! flow keeps one path (and stays in order). The kernel writes the outer UDP header and always
//! sends from the port a socket is bound to, so a socket built with N source ports
//! ([`VxlanSocket::with_source_ports`]) opens N more sockets bound to ephemeral ports of the
//! same local address (port 0: the kernel picks from `ip_local_port_range`, not the RFC's
//! 49152-65535) and sends each frame from socket `wire::vxlan::source_port(inner) % N`. Every
//! frame of one flow, and every segment of one TCP super-frame, leaves from one port; distinct
//! flows spread over up to N ports. A batch is split by socket, keeping the order within each,
//! and each share goes with one `sendmmsg`, its runs as UDP GSO messages as above. With N = 1
//! the bound socket sends, and every datagram leaves from the VXLAN port.
//!
//! Only the bound socket is read. Peers send VXLAN to the VXLAN port (4789), never back to a
//! source port, and an unconnected UDP socket has no ICMP errors reported to it, so nothing a
//! pool socket could receive is wanted; their receive buffers are the kernel's smallest, so a
//! stray datagram to one costs at most that until the socket closes. The cost is descriptors:
//! N + 1 sockets for N > 1.
//!
//! `send` returns how many frames the sockets took, all together, and what they weigh. With a
//! pool those need not be the first frames of the batch (one socket's send buffer may be full
//! while another's is not); the caller counts the rest as dropped, as with one socket.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use super::{
    Device, Medium, Sent,
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

/// One socket of the send pool: bound to an ephemeral port, never read.
#[derive(Debug)]
struct Sender {
    fd: OwnedFd,
    tx: SendBatch,
    port: u16,
}

/// A batch split by send socket, with a stable counting sort: the indices of socket `s`'s
/// frames are `order[starts[s]..starts[s + 1]]`, in batch order. Kept between sends so that
/// splitting allocates nothing once the vectors have grown to the largest batch.
#[derive(Debug, Default)]
struct Split {
    socket_of: Vec<usize>,
    starts: Vec<usize>,
    order: Vec<usize>,
}

impl Split {
    /// Splits a batch whose frame `i` goes to socket `sockets[i]`.
    ///
    /// # Panics
    ///
    /// If a socket is not below `count` (the caller's bug: it picks modulo `count`).
    fn split(&mut self, count: usize, sockets: impl Iterator<Item = usize>) {
        self.socket_of.clear();
        self.socket_of.extend(sockets);
        self.starts.clear();
        self.starts.resize(count + 1, 0);
        for &socket in &self.socket_of {
            self.starts[socket + 1] += 1;
        }
        for s in 0..count {
            self.starts[s + 1] += self.starts[s];
        }
        self.order.clear();
        self.order.resize(self.socket_of.len(), 0);
        // `starts[s]` walks through socket s's slots as its frames come, in batch order, and
        // ends at the next socket's start; the loop below puts it back.
        for (i, &socket) in self.socket_of.iter().enumerate() {
            self.order[self.starts[socket]] = i;
            self.starts[socket] += 1;
        }
        for s in (1..=count).rev() {
            self.starts[s] = self.starts[s - 1];
        }
        self.starts[0] = 0;
    }

    /// The sockets of the split, as many as it was made for.
    fn sockets(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// The indices of socket `socket`'s frames, in batch order.
    fn of(&self, socket: usize) -> &[usize] {
        &self.order[self.starts[socket]..self.starts[socket + 1]]
    }

    /// Hands each socket's share (its index and frames' indices, skipping sockets with none)
    /// to `send`, which returns what of the share the socket took. Returns what was taken
    /// over all; an error only when none was taken and some socket failed (its error: the
    /// last), as [`SendBatch::send`] does for one socket.
    fn send_each(
        &self,
        mut send: impl FnMut(usize, &[usize]) -> io::Result<Sent>,
    ) -> io::Result<Sent> {
        let mut total = Sent::default();
        let mut last_err = None;
        for socket in 0..self.sockets() {
            let share = self.of(socket);
            if share.is_empty() {
                continue;
            }
            match send(socket, share) {
                Ok(taken) => total += taken,
                Err(err) => last_err = Some(err),
            }
        }
        match last_err {
            Some(err) if total.frames == 0 => Err(err),
            _ => Ok(total),
        }
    }
}

/// A UDP socket carrying VXLAN, IPv4 or IPv6, sending from a pool of source ports.
#[derive(Debug)]
pub struct VxlanSocket {
    fd: OwnedFd,
    local: SocketAddr,
    dst_port: u16,
    rx: RecvBatch,
    /// The bound socket's send state, used when the pool is empty (one source port).
    tx: SendBatch,
    /// With more than one source port, the sockets frames are sent from; empty otherwise.
    pool: Vec<Sender>,
    split: Split,
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

    /// Binds to `local` and sends to UDP port `dst_port` of each peer, from the bound port.
    ///
    /// Port 0 in `local` binds an ephemeral port; [`local_addr`](Self::local_addr) tells which.
    pub fn new(local: SocketAddr, dst_port: u16) -> io::Result<Self> {
        Self::with_source_ports(local, dst_port, 1)
    }

    /// Binds to `local` and sends to UDP port `dst_port` of each peer, from `source_ports`
    /// ports picked per flow (see the module documentation): with more than one, that many
    /// more sockets are bound to ephemeral ports of `local`'s address; 0 counts as 1.
    pub fn with_source_ports(
        local: SocketAddr,
        dst_port: u16,
        source_ports: usize,
    ) -> io::Result<Self> {
        let fd = udp_socket(local)?;
        let local = sys::local_addr(fd.as_fd())?;
        // Kernels before 5.0 have no UDP GRO: then every datagram simply comes alone.
        let on: libc::c_int = 1;
        let gro = sys::setsockopt(fd.as_fd(), libc::SOL_UDP, libc::UDP_GRO, &on).is_ok();
        let pool = if source_ports > 1 {
            (0..source_ports)
                .map(|_| {
                    let fd = udp_socket(SocketAddr::new(local.ip(), 0))?;
                    // Never read: a stray datagram to it may hold no more than the kernel's
                    // smallest receive buffer.
                    let small: libc::c_int = 0;
                    sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &small)?;
                    let port = sys::local_addr(fd.as_fd())?.port();
                    Ok(Sender {
                        fd,
                        tx: SendBatch::with_udp_gso(),
                        port,
                    })
                })
                .collect::<io::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            fd,
            local,
            dst_port,
            rx: RecvBatch::new(gro),
            tx: SendBatch::with_udp_gso(),
            pool,
            split: Split::default(),
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

    /// True while runs of datagrams are sent as UDP GSO messages (from every socket of the
    /// pool).
    pub fn gso(&self) -> bool {
        if self.pool.is_empty() {
            self.tx.gso()
        } else {
            self.pool.iter().all(|sender| sender.tx.gso())
        }
    }

    /// GSO messages the kernel refused (their datagrams were then sent one by one).
    pub fn gso_refused(&self) -> u64 {
        let pool: u64 = self.pool.iter().map(|sender| sender.tx.gso_refused()).sum();
        self.tx.gso_refused() + pool
    }

    /// The UDP source ports datagrams leave from: a frame whose inner frame hashes to
    /// `wire::vxlan::source_port(inner)` leaves from the one at that modulo their number.
    /// Just the bound port without a pool.
    pub fn source_ports(&self) -> Vec<u16> {
        if self.pool.is_empty() {
            vec![self.local.port()]
        } else {
            self.pool.iter().map(|sender| sender.port).collect()
        }
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

/// A non-blocking UDP socket bound to `local`, with the socket buffers every backend asks for
/// (and IPv6 only, for an IPv6 address).
fn udp_socket(local: SocketAddr) -> io::Result<OwnedFd> {
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
    Ok(fd)
}

/// The pool socket (of `count`) a frame leaves from: its inner frame's RFC 7348 source port
/// modulo `count`. The buffer holds the 8-byte VXLAN header, then the inner frame.
fn pool_index(buf: &PacketBuf, count: usize) -> usize {
    let inner = buf
        .frame()
        .get(wire::vxlan::HEADER_LEN..)
        .unwrap_or_default();
    usize::from(wire::vxlan::source_port(inner)) % count.max(1)
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

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        let (local, port) = (self.local.ip(), self.dst_port);
        let dest = |buf: &PacketBuf| {
            let peer: IpAddr = sys::peer_for(local, buf.peer)?;
            Ok(sys::Dest::To(SocketAddr::new(peer, port)))
        };
        if self.pool.is_empty() {
            return self.tx.send(self.fd.as_fd(), bufs, dest);
        }
        let count = self.pool.len();
        self.split
            .split(count, bufs.iter().map(|buf| pool_index(buf, count)));
        let pool = &mut self.pool;
        self.split.send_each(|socket, picks| {
            let sender = &mut pool[socket];
            sender.tx.send_picked(sender.fd.as_fd(), bufs, picks, dest)
        })
    }

    fn medium(&self) -> Medium {
        Medium::Vxlan
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, time::Duration};

    use wire::{MacAddr, Vni, encap, vxlan};

    use super::*;

    /// A VXLAN payload whose inner frame is a UDP datagram between fixed hosts, from
    /// `src_port`, carrying `seq`.
    fn vxlan_udp(src_port: u16, seq: u8, peer: IpAddr) -> PacketBuf {
        let inner = wire::build::udp_ipv4(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            (src_port, 7000),
            &[seq; 20],
        );
        let mut buf = PacketBuf::from_frame(&inner);
        let (data, start, end) = buf.raw_mut();
        let start = encap::push_vxlan(data, start, end, Vni::new(42).unwrap()).unwrap();
        buf.set_start(start);
        buf.peer = Some(peer);
        buf
    }

    #[test]
    fn test_split_keeps_each_sockets_frames_in_batch_order() {
        let mut split = Split::default();
        split.split(3, [2, 0, 2, 1, 0, 2].into_iter());
        assert_eq!(split.sockets(), 3);
        assert_eq!(split.of(0), &[1, 4]);
        assert_eq!(split.of(1), &[3]);
        assert_eq!(split.of(2), &[0, 2, 5]);
        // Reused for a smaller batch and pool: nothing of the last one is left.
        split.split(2, [1, 1].into_iter());
        assert_eq!(split.sockets(), 2);
        assert_eq!(split.of(0), &[] as &[usize]);
        assert_eq!(split.of(1), &[0, 1]);
        split.split(4, core::iter::empty());
        assert!((0..4).all(|s| split.of(s).is_empty()));
    }

    fn sent(frames: usize, bytes: u64) -> Sent {
        Sent { frames, bytes }
    }

    #[test]
    fn test_send_each_counts_what_every_socket_took() {
        let mut split = Split::default();
        split.split(4, [0, 1, 2, 0, 1, 2, 1].into_iter());
        // Socket 0 takes both of its frames, socket 1 one of three (its buffer filled up),
        // socket 2 refuses its frames, socket 3 has none and is not asked.
        let mut asked = Vec::new();
        let taken = split.send_each(|socket, picks| {
            asked.push((socket, picks.to_vec()));
            match socket {
                0 => Ok(sent(2, 200)),
                1 => Ok(sent(1, 70)),
                _ => Err(io::Error::from_raw_os_error(libc::ENETUNREACH)),
            }
        });
        assert_eq!(taken.unwrap(), sent(3, 270));
        assert_eq!(
            asked,
            [(0, vec![0, 3]), (1, vec![1, 4, 6]), (2, vec![2, 5])]
        );
        // Nothing taken: the refusal is the answer; nothing taken and nothing refused (every
        // buffer full) is zero, to be tried again later.
        let refused = split.send_each(|socket, _| {
            if socket == 1 {
                Err(io::Error::from_raw_os_error(libc::EMSGSIZE))
            } else {
                Ok(Sent::default())
            }
        });
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EMSGSIZE));
        let none = split.send_each(|_, _| Ok(Sent::default()));
        assert_eq!(none.unwrap(), Sent::default());
    }

    #[test]
    fn test_each_flow_leaves_from_the_pool_socket_its_hash_picks() {
        #[expect(clippy::disallowed_types, reason = "test: plays the remote VTEP")]
        let remote = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind the remote");
        remote
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let remote_addr = remote.local_addr().expect("remote address");
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        for pool in [1, 4] {
            let mut socket = VxlanSocket::with_source_ports(local, remote_addr.port(), pool)
                .expect("bind the pool");
            let ports = socket.source_ports();
            assert_eq!(ports.len(), pool);
            if pool == 1 {
                assert_eq!(ports, [socket.local_addr().port()]);
            } else {
                assert!(!ports.contains(&socket.local_addr().port()));
            }
            // Eight flows (inner source ports), three datagrams each, interleaved.
            let batch: Vec<PacketBuf> = (0..3u8)
                .flat_map(|seq| {
                    (5000..5008).map(move |port| vxlan_udp(port, seq, remote_addr.ip()))
                })
                .collect();
            let expected = |buf: &PacketBuf| {
                let hash = vxlan::source_port(&buf.frame()[vxlan::HEADER_LEN..]);
                ports[usize::from(hash) % pool]
            };
            assert_eq!(socket.send(&batch).expect("send"), Sent::all(&batch));
            let mut got = Vec::new();
            let mut data = [0u8; 256];
            while got.len() < batch.len() {
                let (len, from) = remote.recv_from(&mut data).expect("a datagram");
                got.push((data[..len].to_vec(), from));
            }
            for sent in &batch {
                let (_, from) = got
                    .iter()
                    .find(|(payload, _)| payload.as_slice() == sent.frame())
                    .expect("every datagram arrives");
                assert_eq!(from.port(), expected(sent), "the flow's port");
            }
            let used: std::collections::HashSet<u16> = batch.iter().map(expected).collect();
            assert_eq!(
                used.len() > 1,
                pool > 1,
                "flows spread over ports: {used:?}"
            );
        }
    }
}
