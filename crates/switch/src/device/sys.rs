//! Syscall helpers the real backends share: socket creation and options, socket addresses as
//! plain bytes, control-message parsing, and batched I/O with `recvmmsg`/`sendmmsg`, with UDP
//! segmentation offload (`UDP_SEGMENT`) for runs of equal-sized datagrams to one peer.
//!
//! The control messages are written and read by hand rather than through quinn-udp: the
//! batches already build their own `mmsghdr`s, a GSO message here gathers the frames of
//! several buffers with one `iovec` each (quinn-udp wants one contiguous buffer, which would
//! cost a copy of every byte), and one `sendmmsg` carries several GSO messages to different
//! peers (quinn-udp sends one message per call).
//!
//! The batches call libc directly rather than nix's `MultiHeaders`: `msg_namelen` and
//! `msg_controllen` are in-out fields that the kernel shrinks to what it wrote, and nix 0.31
//! does not restore them between calls, so a reused `MultiHeaders` loses control messages after
//! the first datagram that carried none (nix-rust/nix PR #2813). Here every call rebuilds its
//! headers on the stack from buffers the batch owns, and addresses and control messages are
//! parsed from bytes by safe code.

use std::{
    io, mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    ptr,
};

use libc::{c_int, c_uint, socklen_t};

use super::Sent;
use crate::PacketBuf;

/// The most datagrams one `recvmmsg`/`sendmmsg` call moves.
pub(crate) const BATCH: usize = 32;
/// The most `iovec`s one `sendmmsg` call gathers from (over all its messages).
const MAX_IOV: usize = 256;
/// The most datagrams in one UDP GSO message (`UDP_MAX_SEGMENTS`; 128 from Linux 6.9, 64
/// before).
const MAX_GSO_SEGMENTS: usize = 64;
/// The most payload bytes of one UDP GSO message: the UDP length field's limit, and IPv4's
/// total length less its header (65,535 - 20 - 8).
const MAX_GSO_BYTES: usize = 65_507;

/// Socket buffer size every backend asks for (the kernel doubles it): 4 MiB absorbs a burst of
/// thousands of frames while the forwarding thread is busy elsewhere.
const SOCKET_BUFFER: usize = 4 << 20;

/// Room for a socket address of any family (`sockaddr_storage`).
const ADDR_CAP: usize = size_of::<libc::sockaddr_storage>();
/// Room for the control messages of one datagram; `PACKET_AUXDATA` needs `CMSG_SPACE(20)` = 40.
const CONTROL_CAP: usize = 64;

/// `size_of::<T>()` as a `socklen_t` (every socket structure is far below 4 GiB).
fn socklen_of<T>() -> socklen_t {
    socklen(size_of::<T>())
}

/// A length as a `socklen_t`, saturated.
fn socklen(len: usize) -> socklen_t {
    socklen_t::try_from(len).unwrap_or(socklen_t::MAX)
}

/// A socket address held as the bytes the kernel reads and writes (any family), so building and
/// reading one needs no pointer casts.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    bytes: [u8; ADDR_CAP],
    len: usize,
}

impl RawAddr {
    /// No address.
    pub(crate) const EMPTY: Self = Self {
        bytes: [0; ADDR_CAP],
        len: 0,
    };

    fn put(&mut self, offset: usize, value: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(offset..offset + value.len()) {
            dst.copy_from_slice(value);
        }
    }

    fn get<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let bytes = self.bytes.get(..self.len)?.get(offset..offset + N)?;
        bytes.try_into().ok()
    }

    /// The address family, if the kernel wrote one.
    pub(crate) fn family(&self) -> Option<c_int> {
        self.get::<2>(0).map(|b| c_int::from(u16::from_ne_bytes(b)))
    }

    fn set_family(&mut self, family: c_int) {
        let family = libc::sa_family_t::try_from(family).unwrap_or_default();
        self.put(0, &family.to_ne_bytes());
    }

    /// An IPv4 or IPv6 socket address.
    pub(crate) fn from_socket_addr(addr: SocketAddr) -> Self {
        let mut raw = Self::EMPTY;
        match addr {
            SocketAddr::V4(v4) => {
                raw.set_family(libc::AF_INET);
                raw.put(
                    mem::offset_of!(libc::sockaddr_in, sin_port),
                    &v4.port().to_be_bytes(),
                );
                raw.put(
                    mem::offset_of!(libc::sockaddr_in, sin_addr),
                    &v4.ip().octets(),
                );
                raw.len = size_of::<libc::sockaddr_in>();
            }
            SocketAddr::V6(v6) => {
                raw.set_family(libc::AF_INET6);
                raw.put(
                    mem::offset_of!(libc::sockaddr_in6, sin6_port),
                    &v6.port().to_be_bytes(),
                );
                let flowinfo = mem::offset_of!(libc::sockaddr_in6, sin6_flowinfo);
                raw.put(flowinfo, &v6.flowinfo().to_be_bytes());
                raw.put(
                    mem::offset_of!(libc::sockaddr_in6, sin6_addr),
                    &v6.ip().octets(),
                );
                let scope = mem::offset_of!(libc::sockaddr_in6, sin6_scope_id);
                raw.put(scope, &v6.scope_id().to_ne_bytes());
                raw.len = size_of::<libc::sockaddr_in6>();
            }
        }
        raw
    }

    /// The IPv4 or IPv6 socket address the kernel wrote, `None` for any other family or a
    /// short address.
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        match self.family()? {
            libc::AF_INET => {
                let port = self.get::<2>(mem::offset_of!(libc::sockaddr_in, sin_port))?;
                let ip = self.get::<4>(mem::offset_of!(libc::sockaddr_in, sin_addr))?;
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(ip),
                    u16::from_be_bytes(port),
                )))
            }
            libc::AF_INET6 => {
                let port = self.get::<2>(mem::offset_of!(libc::sockaddr_in6, sin6_port))?;
                let flow = self.get::<4>(mem::offset_of!(libc::sockaddr_in6, sin6_flowinfo))?;
                let ip = self.get::<16>(mem::offset_of!(libc::sockaddr_in6, sin6_addr))?;
                let scope = self.get::<4>(mem::offset_of!(libc::sockaddr_in6, sin6_scope_id))?;
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    u16::from_be_bytes(port),
                    u32::from_be_bytes(flow),
                    u32::from_ne_bytes(scope),
                )))
            }
            _ => None,
        }
    }

    /// A link-layer address for binding a packet socket to interface `ifindex`, receiving
    /// `protocol` (an EtherType, or `ETH_P_ALL`).
    pub(crate) fn link(ifindex: u32, protocol: u16) -> Self {
        let mut raw = Self::EMPTY;
        raw.set_family(libc::AF_PACKET);
        raw.put(
            mem::offset_of!(libc::sockaddr_ll, sll_protocol),
            &protocol.to_be_bytes(),
        );
        raw.put(
            mem::offset_of!(libc::sockaddr_ll, sll_ifindex),
            &ifindex.to_ne_bytes(),
        );
        raw.len = size_of::<libc::sockaddr_ll>();
        raw
    }

    /// The packet type (`PACKET_HOST`, `PACKET_OUTGOING`, ...) of a link-layer address.
    pub(crate) fn packet_type(&self) -> Option<u8> {
        if self.family()? != libc::AF_PACKET {
            return None;
        }
        self.get::<1>(mem::offset_of!(libc::sockaddr_ll, sll_pkttype))
            .map(|[t]| t)
    }

    fn name_ptr(&mut self) -> *mut libc::c_void {
        self.bytes.as_mut_ptr().cast()
    }
}

impl core::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawAddr")
            .field("family", &self.family())
            .field("len", &self.len)
            .finish()
    }
}

/// True for the errors that mean "try again later" rather than a failure.
pub(crate) fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAGAIN | libc::EINTR | libc::ENOBUFS)
    ) || err.kind() == io::ErrorKind::WouldBlock
}

/// A non-blocking, close-on-exec socket.
pub(crate) fn socket(domain: c_int, ty: c_int, protocol: c_int) -> io::Result<OwnedFd> {
    let ty = ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes no pointers; the result is checked before it is used.
    let fd = unsafe { libc::socket(domain, ty, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor the kernel just returned and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a socket to an address of any family.
pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &RawAddr) -> io::Result<()> {
    let len = socklen(addr.len.min(ADDR_CAP));
    // SAFETY: the pointer covers `len` initialised bytes of `addr`, which outlives the call; the
    // kernel only reads them.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), addr.bytes.as_ptr().cast(), len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The address a socket is bound to (`getsockname`), for IPv4 and IPv6 sockets.
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let mut addr = RawAddr::EMPTY;
    let mut len = socklen(ADDR_CAP);
    // SAFETY: the kernel writes at most `len` (the capacity of `addr.bytes`) bytes into the
    // address and stores the full length in `len`.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), addr.name_ptr().cast(), &raw mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    addr.len = usize::try_from(len).unwrap_or(0).min(ADDR_CAP);
    addr.socket_addr()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket"))
}

/// Sets a socket option whose value is the plain C value `value`.
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: &T,
) -> io::Result<()> {
    let len = socklen_of::<T>();
    // SAFETY: `value` is a live reference to `size_of::<T>()` bytes that the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_ref(value).cast(),
            len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads an integer socket option.
pub(crate) fn getsockopt_int(fd: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = socklen_of::<c_int>();
    // SAFETY: both pointers are to live locals of the sizes given; the kernel writes at most
    // `len` bytes into `value` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_mut(&mut value).cast(),
            &raw mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(value)
    }
}

/// Asks for [`SOCKET_BUFFER`] bytes of receive and send buffer. `SO_*BUFFORCE` (root or `CAP_NET_ADMIN`) is
/// tried first because plain `SO_RCVBUF` is capped by `net.core.rmem_max` (208 KiB by
/// default); without the capability the capped request is made. The kernel doubles the value
/// for its bookkeeping.
pub(crate) fn set_buffer_sizes(fd: BorrowedFd<'_>) -> io::Result<()> {
    let value = c_int::try_from(SOCKET_BUFFER).unwrap_or(c_int::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt(fd, libc::SOL_SOCKET, force, &value).is_err() {
            setsockopt(fd, libc::SOL_SOCKET, plain, &value)?;
        }
    }
    Ok(())
}

/// The control messages (`cmsghdr` records) of one received datagram.
#[derive(Debug, Clone)]
pub(crate) struct Cmsgs<'a> {
    rest: &'a [u8],
}

/// One control message: level, type and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cmsg<'a> {
    pub(crate) level: c_int,
    pub(crate) kind: c_int,
    pub(crate) data: &'a [u8],
}

impl<'a> Cmsgs<'a> {
    /// Reads the records of a control buffer as the kernel filled it (`msg_controllen` bytes).
    pub(crate) fn new(control: &'a [u8]) -> Self {
        Self { rest: control }
    }
}

/// `CMSG_ALIGN`: control records are aligned to `size_t`.
const fn cmsg_align(len: usize) -> usize {
    let align = size_of::<usize>();
    (len + align - 1) & !(align - 1)
}

impl<'a> Iterator for Cmsgs<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        const LEN: usize = mem::offset_of!(libc::cmsghdr, cmsg_len);
        const LEVEL: usize = mem::offset_of!(libc::cmsghdr, cmsg_level);
        const KIND: usize = mem::offset_of!(libc::cmsghdr, cmsg_type);
        let header = cmsg_align(size_of::<libc::cmsghdr>());
        let rest = self.rest;
        let len_bytes = rest.get(LEN..LEN + size_of::<usize>())?;
        let len = usize::from_ne_bytes(len_bytes.try_into().ok()?);
        let level = c_int::from_ne_bytes(rest.get(LEVEL..LEVEL + 4)?.try_into().ok()?);
        let kind = c_int::from_ne_bytes(rest.get(KIND..KIND + 4)?.try_into().ok()?);
        // A record shorter than its header or longer than the buffer ends the walk.
        let Some(data) = rest.get(header..len) else {
            self.rest = &[];
            return None;
        };
        self.rest = rest.get(cmsg_align(len)..).unwrap_or(&[]);
        Some(Cmsg { level, kind, data })
    }
}

/// A control-message buffer aligned like `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL_CAP]);

impl Control {
    /// Writes one control message (`level`, `kind`, `data`) at the front; returns the length
    /// for `msg_controllen` (`CMSG_SPACE` of the data).
    fn write(&mut self, level: c_int, kind: c_int, data: &[u8]) -> usize {
        let header = cmsg_align(size_of::<libc::cmsghdr>());
        let len = header + data.len();
        let space = cmsg_align(len);
        let bytes = &mut self.0;
        bytes[..space].fill(0);
        let len_at = mem::offset_of!(libc::cmsghdr, cmsg_len);
        bytes[len_at..len_at + size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        let level_at = mem::offset_of!(libc::cmsghdr, cmsg_level);
        bytes[level_at..level_at + 4].copy_from_slice(&level.to_ne_bytes());
        let kind_at = mem::offset_of!(libc::cmsghdr, cmsg_type);
        bytes[kind_at..kind_at + 4].copy_from_slice(&kind.to_ne_bytes());
        bytes[header..len].copy_from_slice(data);
        space
    }
}

/// What `recvmmsg` said about one datagram besides its bytes.
#[derive(Clone, Copy)]
struct Slot {
    addr: RawAddr,
    control: Control,
    control_len: usize,
    flags: c_int,
}

/// State for batched receive: the per-datagram address and control buffers, allocated once.
pub(crate) struct RecvBatch {
    slots: Box<[Slot; BATCH]>,
    with_control: bool,
}

impl core::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("with_control", &self.with_control)
            .finish()
    }
}

impl RecvBatch {
    /// A batch; `with_control` asks for control messages (`PACKET_AUXDATA`).
    pub(crate) fn new(with_control: bool) -> Self {
        let slot = Slot {
            addr: RawAddr::EMPTY,
            control: Control([0; CONTROL_CAP]),
            control_len: 0,
            flags: 0,
        };
        Self {
            slots: Box::new([slot; BATCH]),
            with_control,
        }
    }

    /// Receives up to `bufs.len()` (at most [`BATCH`]) datagrams with one `recvmmsg`, each
    /// into a buffer's receive area; returns how many. `Ok(0)` when nothing waits.
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let n = bufs.len().min(BATCH);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: iovec and mmsghdr are plain C structs of integers and pointers, for which
        // all-zero bytes (null pointers, zero lengths) are valid values.
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (iov, buf) in iovs.iter_mut().zip(bufs.iter_mut()) {
            let area = buf.receive_area();
            *iov = libc::iovec {
                iov_base: area.as_mut_ptr().cast(),
                iov_len: area.len(),
            };
        }
        let iov_base = iovs.as_mut_ptr();
        for (i, (hdr, slot)) in hdrs
            .iter_mut()
            .zip(self.slots.iter_mut())
            .take(n)
            .enumerate()
        {
            let msg = &mut hdr.msg_hdr;
            msg.msg_name = slot.addr.name_ptr();
            msg.msg_namelen = socklen(ADDR_CAP);
            msg.msg_iov = iov_base.wrapping_add(i);
            msg.msg_iovlen = 1;
            if self.with_control {
                msg.msg_control = slot.control.0.as_mut_ptr().cast();
                msg.msg_controllen = CONTROL_CAP;
            }
        }
        let count = c_uint::try_from(n).unwrap_or(0);
        // SAFETY: the first `n` headers point at `n` live iovecs, each covering the receive area
        // of a distinct buffer of `bufs` (borrowed mutably for this call, not otherwise touched
        // until it returns), and at this batch's address and control buffers with their true
        // capacities. The kernel writes only within those lengths.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if is_transient(&err) { Ok(0) } else { Err(err) };
        }
        let received = usize::try_from(rc).unwrap_or(0).min(n);
        for ((hdr, slot), buf) in hdrs
            .iter()
            .zip(self.slots.iter_mut())
            .zip(bufs.iter_mut())
            .take(received)
        {
            buf.set_received(usize::try_from(hdr.msg_len).unwrap_or(0));
            buf.peer = None;
            slot.addr.len = usize::try_from(hdr.msg_hdr.msg_namelen)
                .unwrap_or(0)
                .min(ADDR_CAP);
            slot.control_len = if self.with_control {
                hdr.msg_hdr.msg_controllen.min(CONTROL_CAP)
            } else {
                0
            };
            slot.flags = hdr.msg_hdr.msg_flags;
        }
        Ok(received)
    }

    /// The source address of datagram `i` of the last batch.
    pub(crate) fn addr(&self, i: usize) -> &RawAddr {
        self.slots.get(i).map_or(&RawAddr::EMPTY, |slot| &slot.addr)
    }

    /// The control messages of datagram `i` of the last batch.
    pub(crate) fn cmsgs(&self, i: usize) -> Cmsgs<'_> {
        let control = self
            .slots
            .get(i)
            .and_then(|slot| slot.control.0.get(..slot.control_len));
        Cmsgs::new(control.unwrap_or(&[]))
    }

    /// The segment size of datagram `i` when the kernel coalesced several datagrams of one
    /// sender into it (UDP GRO: every one that long but the last), from its `UDP_GRO` control
    /// message.
    pub(crate) fn gro_size(&self, i: usize) -> Option<usize> {
        self.cmsgs(i)
            .find(|c| c.level == libc::SOL_UDP && c.kind == libc::UDP_GRO)
            .and_then(|c| c.data.get(..4))
            .and_then(|d| <[u8; 4]>::try_from(d).ok())
            .and_then(|d| usize::try_from(c_int::from_ne_bytes(d)).ok())
            .filter(|&size| size > 0)
    }

    /// True when datagram `i` did not fit its buffer (`MSG_TRUNC`) or its control messages did
    /// not fit (`MSG_CTRUNC`).
    pub(crate) fn truncated(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|slot| slot.flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0)
    }
}

/// State for batched send: the per-message destination addresses and control buffers,
/// allocated once.
pub(crate) struct SendBatch {
    addrs: Box<[RawAddr; BATCH]>,
    controls: Box<[Control; BATCH]>,
    /// Runs of equal-sized datagrams to one peer go as one UDP GSO message.
    gso: bool,
    /// GSO messages the kernel refused, whose datagrams were then sent one by one.
    gso_refused: u64,
}

impl core::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendBatch")
            .field("gso", &self.gso)
            .field("gso_refused", &self.gso_refused)
            .finish_non_exhaustive()
    }
}

/// Where one frame of a send batch goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Where the socket is bound or connected (a packet socket bound to an interface).
    Bound,
    /// This address.
    To(SocketAddr),
}

/// The frames of one send: a whole slice of buffers, or those of it at the indices `picks`
/// lists (one socket's share of a batch split between several), in that order.
#[derive(Clone, Copy)]
struct Frames<'a> {
    bufs: &'a [PacketBuf],
    picks: Option<&'a [usize]>,
}

impl<'a> Frames<'a> {
    fn len(&self) -> usize {
        self.picks.map_or(self.bufs.len(), <[usize]>::len)
    }

    /// Frame `i` of the send.
    ///
    /// # Panics
    ///
    /// If `i` is out of range, or a pick is not an index of `bufs` (the caller's bug: picks are
    /// made from the same batch).
    fn get(&self, i: usize) -> &'a PacketBuf {
        match self.picks {
            None => &self.bufs[i],
            Some(picks) => &self.bufs[picks[i]],
        }
    }
}

/// One message of a `sendmmsg` call: which frames, and the GSO segment size if more than one.
#[derive(Clone, Copy, Default)]
struct Message {
    first: usize,
    count: usize,
    segment: usize,
}

impl SendBatch {
    /// A batch that sends one datagram per message.
    pub(crate) fn new() -> Self {
        Self {
            addrs: Box::new([RawAddr::EMPTY; BATCH]),
            controls: Box::new([Control([0; CONTROL_CAP]); BATCH]),
            gso: false,
            gso_refused: 0,
        }
    }

    /// A batch for a UDP socket: consecutive datagrams to one peer, all as long as the first
    /// but the last (which may be shorter), go as one message with `UDP_SEGMENT`, and the
    /// kernel carries them as one packet through its stack (split on the wire, or by the NIC).
    pub(crate) fn with_udp_gso() -> Self {
        Self {
            gso: true,
            ..Self::new()
        }
    }

    /// True while runs are sent as UDP GSO messages (it is turned off for good when the kernel
    /// refuses one with `EIO`: the outgoing device cannot checksum UDP).
    pub(crate) fn gso(&self) -> bool {
        self.gso
    }

    /// GSO messages the kernel refused (their datagrams were then sent one by one).
    pub(crate) fn gso_refused(&self) -> u64 {
        self.gso_refused
    }

    /// Sends each buffer's frame to the destination `dest` names for it, with as few
    /// `sendmmsg` calls as possible; returns how many frames the kernel took and their bytes
    /// (not always the first frames: a refused frame is skipped).
    ///
    /// A frame `dest` has no destination for, or that the kernel refuses (unreachable, too
    /// big, ...), is skipped and the rest still go; a full socket buffer stops the batch.
    /// When not one frame was taken, the last refusal is returned as the error. A GSO message
    /// the kernel refuses is sent again as single datagrams.
    pub(crate) fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: &[PacketBuf],
        dest: impl FnMut(&PacketBuf) -> io::Result<Dest>,
    ) -> io::Result<Sent> {
        self.send_frames(fd, Frames { bufs, picks: None }, dest)
    }

    /// As [`send`](Self::send), for the frames of `bufs` at the indices `picks` lists, in
    /// that order; returns how many of those the kernel took and their bytes.
    ///
    /// # Panics
    ///
    /// If a pick is not an index of `bufs`.
    pub(crate) fn send_picked(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: &[PacketBuf],
        picks: &[usize],
        dest: impl FnMut(&PacketBuf) -> io::Result<Dest>,
    ) -> io::Result<Sent> {
        let picks = Some(picks);
        self.send_frames(fd, Frames { bufs, picks }, dest)
    }

    fn send_frames(
        &mut self,
        fd: BorrowedFd<'_>,
        frames: Frames<'_>,
        mut dest: impl FnMut(&PacketBuf) -> io::Result<Dest>,
    ) -> io::Result<Sent> {
        let mut taken = Sent::default();
        let mut last_err = None;
        let mut next = 0;
        // Frames before this index go one per message (their GSO message was refused).
        let mut single_until = 0;
        while next < frames.len() {
            let mut messages = [Message::default(); BATCH];
            let mut dests = [Dest::Bound; BATCH];
            let mut n = 0;
            let mut iov_used = 0;
            let mut scan = next;
            while n < BATCH && scan < frames.len() && iov_used < MAX_IOV {
                let to = match dest(frames.get(scan)) {
                    Ok(to) => to,
                    Err(err) => {
                        last_err = Some(err);
                        scan += 1;
                        if n == 0 {
                            next = scan;
                        }
                        continue;
                    }
                };
                let segment = frames.get(scan).len();
                let mut count = 1;
                if self.gso && scan >= single_until {
                    let limit = MAX_GSO_SEGMENTS.min(MAX_IOV - iov_used);
                    let mut bytes = segment;
                    while count < limit && scan + count < frames.len() {
                        let len = frames.get(scan + count).len();
                        if len > segment
                            || bytes + len > MAX_GSO_BYTES
                            || dest(frames.get(scan + count)).ok() != Some(to)
                        {
                            break;
                        }
                        count += 1;
                        bytes += len;
                        if len < segment {
                            break;
                        }
                    }
                }
                messages[n] = Message {
                    first: scan,
                    count,
                    segment,
                };
                dests[n] = to;
                n += 1;
                iov_used += count;
                scan += count;
            }
            if n == 0 {
                break;
            }
            let sent = self.send_messages(fd, frames, &messages[..n], &dests[..n]);
            match sent {
                Ok(0) => break,
                Ok(sent) => {
                    for message in &messages[..sent] {
                        taken.frames += message.count;
                        taken.bytes += (message.first..message.first + message.count)
                            .map(|i| frames.get(i).len() as u64)
                            .sum::<u64>();
                    }
                    // On a short count the next call starts at the first message not sent;
                    // if the kernel refuses it, that call reports why.
                    next = messages
                        .get(sent)
                        .filter(|_| sent < n)
                        .map_or(scan, |m| m.first);
                }
                Err(err) if is_transient(&err) => break,
                Err(err) => {
                    let first = messages[0];
                    if first.count > 1 {
                        // Refused as a GSO message: send its frames one by one, and if the
                        // device cannot checksum for GSO at all (EIO), stop trying.
                        self.gso_refused += 1;
                        if err.raw_os_error() == Some(libc::EIO) {
                            self.gso = false;
                        }
                        single_until = first.first + first.count;
                    } else {
                        // The first frame of the batch was refused: drop it, go on behind it.
                        last_err = Some(err);
                        next = first.first + 1;
                    }
                }
            }
        }
        match last_err {
            Some(err) if taken.frames == 0 => Err(err),
            _ => Ok(taken),
        }
    }

    /// One `sendmmsg` of `messages`; the number of messages sent.
    fn send_messages(
        &mut self,
        fd: BorrowedFd<'_>,
        frames: Frames<'_>,
        messages: &[Message],
        dests: &[Dest],
    ) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes are valid.
        let mut iovs: [libc::iovec; MAX_IOV] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut iov_at = 0;
        for (i, (message, to)) in messages.iter().zip(dests).enumerate().take(BATCH) {
            let iov_start = iov_at;
            for i in message.first..message.first + message.count {
                let frame = frames.get(i).frame();
                iovs[iov_at] = libc::iovec {
                    iov_base: frame.as_ptr().cast_mut().cast(),
                    iov_len: frame.len(),
                };
                iov_at += 1;
            }
            let msg = &mut hdrs[i].msg_hdr;
            if let Dest::To(addr) = to {
                self.addrs[i] = RawAddr::from_socket_addr(*addr);
                msg.msg_namelen = socklen(self.addrs[i].len);
                msg.msg_name = self.addrs[i].name_ptr();
            }
            msg.msg_iov = iovs.as_mut_ptr().wrapping_add(iov_start);
            msg.msg_iovlen = message.count;
            if message.count > 1 {
                // Fits: two or more segments share MAX_GSO_BYTES, under 64 KiB.
                let size = u16::try_from(message.segment).unwrap_or(u16::MAX);
                let control = &mut self.controls[i];
                let len = control.write(libc::SOL_UDP, libc::UDP_SEGMENT, &size.to_ne_bytes());
                msg.msg_control = control.0.as_mut_ptr().cast();
                msg.msg_controllen = len;
            }
        }
        let count = c_uint::try_from(messages.len().min(BATCH)).unwrap_or(0);
        // SAFETY: the first `count` headers point at live iovecs (each within `iovs`, over
        // frames of `frames`, borrowed for this call; the kernel only reads them despite the
        // `*mut` type), at initialised addresses of this batch with their lengths or at no
        // address, and at control buffers of this batch with the lengths written into them.
        let rc =
            unsafe { libc::sendmmsg(fd.as_raw_fd(), hdrs.as_mut_ptr(), count, libc::MSG_DONTWAIT) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(rc).unwrap_or(0).min(messages.len()))
    }
}

/// The IP address of a tunnel peer in the family of a socket bound to `local`, or an
/// `InvalidInput` error for a frame without one (IPv4-mapped IPv6 addresses count as IPv4).
pub(crate) fn peer_for(local: IpAddr, peer: Option<IpAddr>) -> io::Result<IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "tunnel frame without a peer address",
        )
    })?;
    if peer.is_ipv4() == local.is_ipv4() {
        Ok(peer)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "peer address of the other IP family",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip_through_bytes() {
        for addr in ["192.0.2.1:4789", "[2001:db8::1]:4789"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(RawAddr::from_socket_addr(addr).socket_addr(), Some(addr));
        }
        assert_eq!(RawAddr::EMPTY.socket_addr(), None);
        assert_eq!(RawAddr::link(3, 3).packet_type(), Some(0));
        assert_eq!(RawAddr::link(3, 3).socket_addr(), None);
    }

    #[test]
    fn control_messages_are_walked_without_trusting_lengths() {
        let header = cmsg_align(size_of::<libc::cmsghdr>());
        let mut control = vec![0u8; 64];
        let len = header + 4;
        control[..size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        control[mem::offset_of!(libc::cmsghdr, cmsg_level)..][..4]
            .copy_from_slice(&libc::SOL_PACKET.to_ne_bytes());
        control[mem::offset_of!(libc::cmsghdr, cmsg_type)..][..4]
            .copy_from_slice(&libc::PACKET_AUXDATA.to_ne_bytes());
        control[header..header + 4].copy_from_slice(&[1, 2, 3, 4]);
        let first = cmsg_align(len);
        let cmsgs: Vec<_> = Cmsgs::new(&control[..first]).collect();
        assert_eq!(cmsgs.len(), 1);
        assert_eq!(
            (cmsgs[0].level, cmsgs[0].kind),
            (libc::SOL_PACKET, libc::PACKET_AUXDATA)
        );
        assert_eq!(cmsgs[0].data, &[1, 2, 3, 4]);
        // A record claiming more than the buffer, or less than its header, ends the walk.
        control[..size_of::<usize>()].copy_from_slice(&1000usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&control).count(), 0);
        control[..size_of::<usize>()].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&control).count(), 0);
        assert_eq!(Cmsgs::new(&control[..5]).count(), 0);
    }

    #[test]
    fn peers_must_match_the_socket_family() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert_eq!(
            peer_for(v4, Some(mapped)).unwrap(),
            "192.0.2.2".parse::<IpAddr>().unwrap()
        );
        assert!(peer_for(v4, Some(v6)).is_err());
        assert!(peer_for(v6, None).is_err());
    }
}
