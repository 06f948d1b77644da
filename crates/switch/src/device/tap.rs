//! A VM port: a TAP device whose netdev is the VM's NIC (or, in the lab, the `eth0` of a
//! namespace standing in for a VM), and whose file descriptor is the switch's end.
//!
//! Created with `ioctl(TUNSETIFF)` on `/dev/net/tun` (`IFF_TAP | IFF_NO_PI`, non-blocking), not
//! through tun-rs: the whole job is one `open` and a few `ioctl`s, and tun-rs would add a crate
//! tree whose address management we do not use. Frames are read and written one per syscall
//! (a character device has no `recvmmsg`). Unlike a packet socket, a TAP fd carries VLAN tags
//! in the frame data, so nothing needs restoring.
//!
//! **Offloads** (on unless made with [`TapDevice::create_without_offloads`]). The TAP is opened
//! with `IFF_VNET_HDR`, little-endian headers (`TUNSETVNETLE`) of 10 bytes, and
//! `TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`, so the VM's stack hands over
//! TCP super-frames of up to 64 KiB with partial checksums instead of segmenting and
//! checksumming each 1.5 KB frame itself. Every read starts with a `virtio_net_hdr`, which
//! becomes the buffer's [`Offload`]; every write gets one:
//!
//! * a frame with an offload (a super-frame from another such TAP) goes with its header;
//! * consecutive in-order TCP segments of one connection (what a tunnel delivers) are merged
//!   into one super-frame ([`wire::gso::Coalescer`], Linux's GRO rules, every checksum verified
//!   first) and written with one `writev`: the VM's stack then takes one 64 KiB packet instead
//!   of 45, which is most of the cost of receiving TCP;
//! * a lone TCP segment whose checksum was verified goes with "data valid";
//! * anything else with an empty header, exactly as without offloads.

use std::{
    fs::OpenOptions,
    io::{self, IoSlice, IoSliceMut},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    sync::atomic::{AtomicU32, Ordering},
};

use nix::sys::socket::{
    self as nixsock, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use wire::{
    gso::{Coalescer, Offload},
    vnet,
};

use super::{Device, Medium, Offloads, Sent, sys};
use crate::PacketBuf;

/// The most segments merged into one super-frame (each is one `iovec` of the `writev`).
const MAX_MERGE: usize = 64;
/// Room for the headers of a merged super-frame: Ethernet, two tags, IPv4 or IPv6 with
/// options, TCP with options.
const MERGED_HEADER_CAP: usize = 256;

/// A TAP device owned by the switch. Closing it (dropping) deletes the netdev.
#[derive(Debug)]
pub struct TapDevice {
    fd: OwnedFd,
    /// The name given at creation, if the kernel cannot be asked.
    created_as: String,
    ifindex: AtomicU32,
    /// Opened with `IFF_VNET_HDR` and offloads.
    vnet: bool,
    /// Frames read whose `virtio_net_hdr` asked for something weft does not do (dropped).
    refused: u64,
    /// Super-frames written that were merged from more than one segment.
    merged: u64,
}

/// An `ifreq` naming `name`, or `InvalidInput` if it is empty, too long or holds a NUL.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes.len() >= libc::IFNAMSIZ
        || bytes.contains(&0)
        || bytes.contains(&b'/')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers and pointers);
    // all-zero bytes are a valid value, and an empty name.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    Ok(req)
}

/// The name in an `ifreq` the kernel filled.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .map(|&c| c.to_ne_bytes()[0])
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `ioctl` with a pointer to an `int`, for the TUN ioctls that read one.
fn ioctl_int(fd: &OwnedFd, request: libc::Ioctl, value: libc::c_int) -> io::Result<()> {
    let mut value = value;
    // SAFETY: the request reads one `int` through the pointer, which points at a live local.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut value) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl TapDevice {
    /// Creates TAP device `name` (at most 15 bytes; a `%d` in it lets the kernel pick a
    /// number) in the caller's network namespace, with offloads (see the module). The netdev
    /// starts down.
    pub fn create(name: &str) -> io::Result<Self> {
        Self::open(name, true)
    }

    /// Creates TAP device `name` without `IFF_VNET_HDR`: the VM's stack segments and
    /// checksums every frame itself, and frames carry no header.
    pub fn create_without_offloads(name: &str) -> io::Result<Self> {
        Self::open(name, false)
    }

    fn open(name: &str, vnet: bool) -> io::Result<Self> {
        let mut req = ifreq(name)?;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if vnet {
            flags |= libc::IFF_VNET_HDR;
        }
        req.ifr_ifru.ifru_flags = libc::c_short::try_from(flags).unwrap_or_default();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let fd = OwnedFd::from(file);
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, and `req` is a live, initialised one.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if vnet {
            // Little-endian whatever the host (the virtio 1.0 layout), and the 10-byte header.
            ioctl_int(&fd, libc::TUNSETVNETLE, 1)?;
            let len = libc::c_int::try_from(vnet::HEADER_LEN).unwrap_or(10);
            ioctl_int(&fd, libc::TUNSETVNETHDRSZ, len)?;
            let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes its argument by value and reads no memory.
            let rc = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(offloads),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let created_as = ifreq_name(&req);
        let ifindex =
            nix::net::if_::if_nametoindex(created_as.as_str()).map_err(io::Error::from)?;
        Ok(Self {
            fd,
            created_as,
            ifindex: AtomicU32::new(ifindex),
            vnet,
            refused: 0,
            merged: 0,
        })
    }

    /// True when the TAP runs with `IFF_VNET_HDR` and offloads.
    pub fn has_offloads(&self) -> bool {
        self.vnet
    }

    /// Frames read whose `virtio_net_hdr` asked for work weft does not do (UDP
    /// segmentation, a checksum at offsets a super-frame's headers do not explain); dropped.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Super-frames written that were merged from more than one TCP segment.
    pub fn merged(&self) -> u64 {
        self.merged
    }

    /// The netdev's current name, as the kernel has it (it changes with
    /// [`move_to_netns`](Self::move_to_netns)).
    pub fn name(&self) -> String {
        let Ok(mut req) = ifreq("x") else {
            return self.created_as.clone();
        };
        // SAFETY: TUNGETIFF writes one `ifreq` into the live, initialised `req`.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNGETIFF, &raw mut req) };
        if rc < 0 {
            self.created_as.clone()
        } else {
            ifreq_name(&req)
        }
    }

    /// The netdev's interface index in the namespace it is in.
    pub fn ifindex(&self) -> u32 {
        self.ifindex.load(Ordering::Relaxed)
    }

    /// Moves the netdev into the network namespace `netns_fd` (an open `/run/netns/NAME` or
    /// `/proc/PID/ns/net`) and renames it `new_name` there, e.g. `eth0`. The switch's fd keeps
    /// working across the move.
    ///
    /// Call it from a thread that is in the namespace the netdev is in now, with the netdev
    /// down (a fresh TAP is). One `RTM_NEWLINK` request carrying `IFLA_NET_NS_FD` and
    /// `IFLA_IFNAME` is sent on a netlink socket opened here, as `ip link set dev X netns N
    /// name eth0` does: no `ip` binary, and a kernel refusal comes back as its errno. The new
    /// interface index is read from the kernel's `RTM_DELLINK` notice (`IFLA_NEW_IFINDEX`);
    /// the kernel keeps the old index when it is free in the target namespace.
    pub fn move_to_netns(&self, netns_fd: BorrowedFd<'_>, new_name: &str) -> io::Result<()> {
        ifreq(new_name)?;
        let ifindex = self.ifindex();
        let sock = nixsock::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(io::Error::from)?;
        let groups = u32::try_from(libc::RTMGRP_LINK).unwrap_or(1);
        nixsock::bind(sock.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(io::Error::from)?;
        // Each netlink answer is waited for at most this long.
        let timeout = nix::sys::time::TimeVal::new(2, 0);
        nixsock::setsockopt(&sock, nixsock::sockopt::ReceiveTimeout, &timeout)
            .map_err(io::Error::from)?;
        let fd_attr = u32::try_from(netns_fd.as_raw_fd()).unwrap_or(u32::MAX);
        let request = netlink::move_request(ifindex, fd_attr, new_name);
        nixsock::send(sock.as_raw_fd(), &request, MsgFlags::empty()).map_err(io::Error::from)?;

        let mut new_ifindex = None;
        let mut buffer = vec![0u8; 32 << 10];
        // Bounded: every read waits at most the receive timeout.
        for _ in 0..64 {
            let len = match nixsock::recv(sock.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Ok(len) => len,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(err.into()),
            };
            for message in netlink::Messages::new(buffer.get(..len).unwrap_or(&[])) {
                match message {
                    netlink::Message::Ack { seq, error } if seq == netlink::SEQ => {
                        if error != 0 {
                            return Err(io::Error::from_raw_os_error(-error));
                        }
                        if let Some(index) = new_ifindex {
                            self.ifindex.store(index, Ordering::Relaxed);
                        }
                        return Ok(());
                    }
                    netlink::Message::LinkGone {
                        ifindex: gone,
                        new_ifindex: Some(index),
                    } if gone == ifindex => {
                        new_ifindex = Some(index);
                    }
                    _ => {}
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no netlink acknowledgement",
        ))
    }
}

/// Just enough rtnetlink to move a link to another namespace.
mod netlink {
    /// Our request's sequence number.
    pub(super) const SEQ: u32 = 1;
    /// `sizeof(struct nlmsghdr)`.
    const NLMSG_HDRLEN: usize = 16;
    /// `sizeof(struct ifinfomsg)`.
    const IFINFOMSG_LEN: usize = 16;
    const RTA_HDRLEN: usize = 4;

    const fn align4(len: usize) -> usize {
        (len + 3) & !3
    }

    fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
        let len = u16::try_from(RTA_HDRLEN + value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
    }

    /// `RTM_NEWLINK` for link `ifindex`: move to the namespace of fd `netns_fd`, named `name`.
    pub(super) fn move_request(ifindex: u32, netns_fd: u32, name: &str) -> Vec<u8> {
        let mut msg = vec![0u8; NLMSG_HDRLEN];
        // ifinfomsg: family, pad, type, index, flags, change.
        msg.extend_from_slice(&[libc::AF_UNSPEC.to_ne_bytes()[0], 0, 0, 0]);
        msg.extend_from_slice(&ifindex.to_ne_bytes());
        msg.extend_from_slice(&[0; 8]);
        attr(&mut msg, libc::IFLA_NET_NS_FD, &netns_fd.to_ne_bytes());
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        attr(&mut msg, libc::IFLA_IFNAME, &name);
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_ACK).unwrap_or(5);
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        msg[8..12].copy_from_slice(&SEQ.to_ne_bytes());
        msg
    }

    /// What we care about in the kernel's answers.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Message {
        /// `NLMSG_ERROR`: an acknowledgement (`error` 0) or a refusal (`-errno`).
        Ack { seq: u32, error: i32 },
        /// `RTM_DELLINK`: a link left this namespace (or was deleted).
        LinkGone {
            ifindex: u32,
            new_ifindex: Option<u32>,
        },
        /// Anything else.
        Other,
    }

    /// The messages of one netlink datagram.
    pub(super) struct Messages<'a> {
        rest: &'a [u8],
    }

    impl<'a> Messages<'a> {
        pub(super) fn new(datagram: &'a [u8]) -> Self {
            Self { rest: datagram }
        }
    }

    fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(
            bytes.get(offset..offset + 4)?.try_into().ok()?,
        ))
    }

    fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(
            bytes.get(offset..offset + 2)?.try_into().ok()?,
        ))
    }

    fn link_gone(body: &[u8]) -> Option<Message> {
        let ifindex = u32_at(body, 4)?;
        let mut attrs = body.get(IFINFOMSG_LEN..)?;
        let mut new_ifindex = None;
        while let (Some(len), Some(kind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
            let len = usize::from(len);
            if len < RTA_HDRLEN {
                break;
            }
            if kind == libc::IFLA_NEW_IFINDEX {
                new_ifindex = u32_at(attrs, RTA_HDRLEN);
            }
            attrs = attrs.get(align4(len)..).unwrap_or(&[]);
        }
        Some(Message::LinkGone {
            ifindex,
            new_ifindex,
        })
    }

    impl Iterator for Messages<'_> {
        type Item = Message;

        fn next(&mut self) -> Option<Message> {
            let len = usize::try_from(u32_at(self.rest, 0)?).ok()?;
            let kind = u16_at(self.rest, 4)?;
            let seq = u32_at(self.rest, 8)?;
            let Some(body) = self.rest.get(NLMSG_HDRLEN..len) else {
                self.rest = &[];
                return None;
            };
            self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
            let message = match libc::c_int::from(kind) {
                libc::NLMSG_ERROR => {
                    let error = u32_at(body, 0)
                        .map_or(-libc::EPROTO, |e| i32::from_ne_bytes(e.to_ne_bytes()));
                    Message::Ack { seq, error }
                }
                _ if kind == libc::RTM_DELLINK => link_gone(body).unwrap_or(Message::Other),
                _ => Message::Other,
            };
            Some(message)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn request_is_well_formed() {
            let msg = move_request(7, 5, "eth0");
            assert_eq!(msg.len(), 16 + 16 + 8 + 12);
            assert_eq!(u32_at(&msg, 0), Some(52));
            assert_eq!(u32_at(&msg, 16 + 4), Some(7));
            assert_eq!(&msg[16 + 16 + 8 + 4..][..5], b"eth0\0");
        }

        #[test]
        fn answers_parse_and_garbage_ends_the_walk() {
            let mut ack = vec![0u8; 36];
            ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
            ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
            ack[8..12].copy_from_slice(&SEQ.to_ne_bytes());
            ack[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
            let mut gone = move_request(7, 0, "x");
            gone[4..6].copy_from_slice(&libc::RTM_DELLINK.to_ne_bytes());
            let mut datagram = gone.clone();
            // Append IFLA_NEW_IFINDEX = 9 to the DELLINK and fix its length.
            attr(&mut datagram, libc::IFLA_NEW_IFINDEX, &9u32.to_ne_bytes());
            let len = u32::try_from(datagram.len()).unwrap();
            datagram[0..4].copy_from_slice(&len.to_ne_bytes());
            datagram.extend_from_slice(&ack);
            let messages: Vec<_> = Messages::new(&datagram).collect();
            assert_eq!(
                messages,
                vec![
                    Message::LinkGone {
                        ifindex: 7,
                        new_ifindex: Some(9)
                    },
                    Message::Ack {
                        seq: SEQ,
                        error: -17
                    }
                ]
            );
            assert_eq!(Messages::new(&[0xff; 20]).count(), 0);
            assert_eq!(Messages::new(&[0; 20]).count(), 0);
            assert_eq!(Messages::new(&[1, 2, 3]).count(), 0);
        }
    }
}

impl TapDevice {
    /// Reads one frame with its `virtio_net_hdr`; `Ok(None)` for a frame refused.
    fn read_vnet(&mut self, buf: &mut PacketBuf) -> io::Result<Option<()>> {
        let mut header = [0u8; vnet::HEADER_LEN];
        let len = {
            let mut iov = [
                IoSliceMut::new(&mut header),
                IoSliceMut::new(buf.receive_area()),
            ];
            nix::sys::uio::readv(&self.fd, &mut iov).map_err(io::Error::from)?
        };
        let Some(len) = len.checked_sub(vnet::HEADER_LEN) else {
            self.refused += 1;
            return Ok(None);
        };
        buf.set_received(len);
        buf.peer = None;
        let offload = vnet::Repr::parse(&vnet::Header::new_unchecked(&header[..]))
            .and_then(|repr| Offload::from_vnet(&repr, buf.frame_mut()));
        match offload {
            Ok(offload) => {
                buf.offload = offload;
                Ok(Some(()))
            }
            Err(_) => {
                self.refused += 1;
                Ok(None)
            }
        }
    }

    /// Writes the frames of `bufs` from the front, merging a run of TCP segments into one
    /// super-frame; returns how many buffers that write consumed.
    fn write_vnet(&mut self, bufs: &[PacketBuf]) -> io::Result<usize> {
        let first = &bufs[0];
        if !first.offload.is_none() {
            let repr = first
                .offload
                .to_vnet(first.frame())
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            let header = repr.to_bytes();
            let iov = [IoSlice::new(&header), IoSlice::new(first.frame())];
            nix::sys::uio::writev(&self.fd, &iov).map_err(io::Error::from)?;
            return Ok(1);
        }
        let Some(mut run) = Coalescer::start(first.frame()) else {
            let header = vnet::Repr::NONE.to_bytes();
            let iov = [IoSlice::new(&header), IoSlice::new(first.frame())];
            nix::sys::uio::writev(&self.fd, &iov).map_err(io::Error::from)?;
            return Ok(1);
        };
        let mut end = 1;
        while end < bufs.len()
            && run.len() < MAX_MERGE
            && bufs[end].offload.is_none()
            && run.push(first.frame(), bufs[end].frame())
        {
            end += 1;
        }
        if run.len() == 1 {
            // Verified by `start`: the VM need not check it again.
            let header = vnet::Repr {
                data_valid: true,
                ..vnet::Repr::NONE
            }
            .to_bytes();
            let iov = [IoSlice::new(&header), IoSlice::new(first.frame())];
            nix::sys::uio::writev(&self.fd, &iov).map_err(io::Error::from)?;
            return Ok(1);
        }
        let mut headers = [0u8; MERGED_HEADER_CAP];
        let (len, repr) = run
            .write_header(first.frame(), &mut headers)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        let vnet_header = repr.to_bytes();
        let mut iov = [IoSlice::new(&[]); MAX_MERGE + 2];
        iov[0] = IoSlice::new(&vnet_header);
        iov[1] = IoSlice::new(&headers[..len]);
        for (slot, buf) in iov[2..].iter_mut().zip(&bufs[..end]) {
            *slot = IoSlice::new(run.payload(buf.frame()));
        }
        nix::sys::uio::writev(&self.fd, &iov[..end + 2]).map_err(io::Error::from)?;
        self.merged += 1;
        Ok(end)
    }
}

impl Device for TapDevice {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < bufs.len() {
            let buf = &mut bufs[filled];
            let read = if self.vnet {
                self.read_vnet(buf).map(|got| got.map(|()| buf.len()))
            } else {
                nix::unistd::read(&self.fd, buf.receive_area())
                    .map(|len| {
                        buf.set_received(len);
                        buf.peer = None;
                        Some(len)
                    })
                    .map_err(io::Error::from)
            };
            match read {
                Ok(Some(0)) => break,
                Ok(Some(_)) => filled += 1,
                // Refused: read the next one into the same buffer.
                Ok(None) => {}
                Err(err) => {
                    if filled > 0 || sys::is_transient(&err) {
                        break;
                    }
                    return Err(err);
                }
            }
        }
        Ok(filled)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        let mut taken = Sent::default();
        let mut next = 0;
        let mut last_err = None;
        while next < bufs.len() {
            let written = if self.vnet {
                self.write_vnet(&bufs[next..])
            } else {
                nix::unistd::write(&self.fd, bufs[next].frame())
                    .map(|_| 1)
                    .map_err(io::Error::from)
            };
            match written {
                Ok(n) => {
                    taken += Sent::first(&bufs[next..], n);
                    next += n;
                }
                Err(err) => {
                    if sys::is_transient(&err) {
                        break;
                    }
                    // The kernel refused this frame (too short, link down: EIO): skip it.
                    last_err = Some(err);
                    next += 1;
                }
            }
        }
        match last_err {
            Some(err) if taken.frames == 0 => Err(err),
            _ => Ok(taken),
        }
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    /// A TAP whose netdev was unregistered (deleted, or its namespace destroyed) is detached
    /// from its file: reads fail with `EBADFD` from then on and poll(2) reports `POLLERR`.
    /// `EIO`, `ENODEV` and `ENXIO` mean the same on the read side.
    fn is_gone(&self, err: &io::Error) -> bool {
        matches!(
            err.raw_os_error(),
            Some(libc::EBADFD | libc::EIO | libc::ENODEV | libc::ENXIO)
        )
    }

    fn offloads(&self) -> Offloads {
        if self.vnet {
            Offloads::ALL
        } else {
            Offloads::NONE
        }
    }
}
