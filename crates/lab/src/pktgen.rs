//! A packet generator that offers more 64-byte frames than a software switch carries:
//! `weft bench pktgen`, run inside a VM namespace.
//!
//! One `AF_PACKET` raw socket bound to the interface, `PACKET_QDISC_BYPASS` on (frames go
//! straight to the driver's transmit function, no qdisc), and `sendmmsg` handing the kernel
//! [`BATCH`] copies of one prebuilt frame per system call. iperf3's UDP client, one `send` per
//! datagram through the whole UDP/IP stack, tops out near 110,000 packets/s on the 2-core
//! build machine; this does several times that (see `weft bench dataplane`'s direct veth row).
//! When the interface refuses a frame (a TAP whose queue is full), it pauses [`BACKOFF`]
//! before the next batch: the queue stays full, and the generator does not take the CPU the
//! switch under test needs by spinning on refusals.
//!
//! The frame is Ethernet II + IPv4 (header checksum filled in, DF set, TTL 64) + UDP (checksum
//! 0, which IPv4 allows) + zero padding, 64 bytes as handed to the NIC (a virtual link has no
//! FCS).

use std::{
    ffi::CString,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use wire::MacAddr;

use crate::{Error, Result};

/// Frames handed to the kernel per `sendmmsg`.
pub const BATCH: usize = 256;
/// The pause after the interface refused a frame (its queue is full).
pub const BACKOFF: Duration = Duration::from_micros(20);
/// The default frame length: the classic 64-byte minimum frame.
pub const FRAME_LEN: usize = 64;
/// Ethernet + IPv4 + UDP headers.
const HEADERS_LEN: usize = 14 + 20 + 8;
/// `ETH_P_IP`.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// The UDP ports used: a source port of our own and the discard port.
pub const SRC_PORT: u16 = 40_000;
/// See [`SRC_PORT`].
pub const DST_PORT: u16 = 9;

/// What to send, where, for how long.
#[derive(Debug, Clone)]
pub struct Config {
    /// The interface to send on (in the caller's network namespace).
    pub ifname: String,
    /// Source MAC; `None` = the interface's own.
    pub src_mac: Option<MacAddr>,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source IPv4 address.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    pub dst_ip: Ipv4Addr,
    /// Frame length in bytes, Ethernet header included ([`FRAME_LEN`] by default).
    pub frame_len: usize,
    /// How long to send.
    pub duration: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Frames the interface's driver took.
    pub sent: u64,
    /// Frames the driver refused (`ENOBUFS`: e.g. a TAP whose queue is full because the
    /// switch does not read fast enough); offered = sent + refused.
    pub refused: u64,
    /// How long it sent.
    pub elapsed: Duration,
}

impl Stats {
    /// Frames offered per second (taken or refused).
    pub fn offered_pps(&self) -> f64 {
        per_second(self.sent + self.refused, self.elapsed)
    }

    /// Frames taken per second.
    pub fn sent_pps(&self) -> f64 {
        per_second(self.sent, self.elapsed)
    }

    /// One line of `key=value` pairs, what `weft bench pktgen` prints and [`Stats::parse`]
    /// reads back.
    pub fn to_line(&self) -> String {
        format!(
            "pktgen sent={} refused={} secs={:.6} offered_pps={:.0}",
            self.sent,
            self.refused,
            self.elapsed.as_secs_f64(),
            self.offered_pps()
        )
    }

    /// Reads the line [`Stats::to_line`] writes (anywhere in `text`).
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("pktgen "))?;
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Self {
            sent: field("sent")?.parse().ok()?,
            refused: field("refused")?.parse().ok()?,
            elapsed: Duration::try_from_secs_f64(field("secs")?.parse().ok()?).ok()?,
        })
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "packet counts stay far below 2^52"
)]
fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// The RFC 1071 Internet checksum of `bytes` (even length).
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// One Ethernet/IPv4/UDP frame of `len` bytes (at least the 42 bytes of headers), from
/// `src` to `dst`, UDP ports [`SRC_PORT`] -> [`DST_PORT`], zero payload.
pub fn frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    len: usize,
) -> Result<Vec<u8>> {
    let ip_len = len
        .checked_sub(14)
        .filter(|_| len >= HEADERS_LEN)
        .and_then(|l| u16::try_from(l).ok())
        .ok_or_else(|| Error::Failed(format!("frame length {len}: {HEADERS_LEN} to 65549")))?;
    let udp_len = ip_len - 20;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45; // version 4, IHL 5 words
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src_ip.octets());
    ip[16..20].copy_from_slice(&dst_ip.octets());
    let checksum = internet_checksum(ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&SRC_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&DST_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    Ok(f)
}

/// The MAC address of interface `ifname` in this network namespace (from sysfs, which
/// `ip netns exec` mounts for the namespace).
pub fn interface_mac(ifname: &str) -> Result<MacAddr> {
    let path = format!("/sys/class/net/{ifname}/address");
    let text = std::fs::read_to_string(&path)
        .map_err(|err| Error::io(format!("cannot read {path}"), err))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Failed(format!("{path}: not a MAC address: {}", text.trim())))
}

fn last_error(what: &str) -> Error {
    Error::io(what, io::Error::last_os_error())
}

/// An `AF_PACKET` raw socket bound to `ifindex`, that receives nothing (protocol 0) and
/// bypasses the qdisc.
fn open_socket(ifindex: i32) -> Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(last_error("cannot open an AF_PACKET socket (root?)"));
    }
    // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let on: libc::c_int = 1;
    let size = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `on` lives across the call and `size` is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&raw const on).cast(),
            size,
        )
    };
    if rc != 0 {
        return Err(last_error("cannot set PACKET_QDISC_BYPASS"));
    }
    let sndbuf: libc::c_int = 4 << 20;
    // SAFETY: as above. A smaller buffer than asked for only costs speed: not checked.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const sndbuf).cast(),
            size,
        );
    }
    let addr = sockaddr(ifindex, None);
    let addr_len = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(20);
    // SAFETY: `addr` is a valid sockaddr_ll of `addr_len` bytes that outlives the call.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), addr_len) };
    if rc != 0 {
        return Err(last_error("cannot bind the AF_PACKET socket"));
    }
    Ok(fd)
}

/// A `sockaddr_ll` for `ifindex`; with a destination MAC for sending IPv4 frames, without for
/// binding (protocol 0: receive nothing).
fn sockaddr(ifindex: i32, dst: Option<MacAddr>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain integers and arrays; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap_or(17);
    addr.sll_ifindex = ifindex;
    if let Some(mac) = dst {
        addr.sll_protocol = ETHERTYPE_IPV4.to_be();
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac.0);
    }
    addr
}

/// Sends frames as fast as the interface takes them for `config.duration`.
pub fn run(config: &Config) -> Result<Stats> {
    let name = CString::new(config.ifname.as_str())
        .map_err(|_| Error::Failed(format!("interface name {:?}", config.ifname)))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    let ifindex = i32::try_from(ifindex)
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| Error::Failed(format!("no interface {:?} here", config.ifname)))?;
    let src_mac = match config.src_mac {
        Some(mac) => mac,
        None => interface_mac(&config.ifname)?,
    };
    let frame = frame(
        src_mac,
        config.dst_mac,
        config.src_ip,
        config.dst_ip,
        config.frame_len,
    )?;
    let fd = open_socket(ifindex)?;

    // Every message sends the same frame to the same address: one iovec, one sockaddr.
    let mut dest = sockaddr(ifindex, Some(config.dst_mac));
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr().cast_mut().cast(),
        iov_len: frame.len(),
    };
    // SAFETY: mmsghdr is plain integers and pointers; all-zero is a valid value.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { core::mem::zeroed() }).collect();
    for msg in &mut msgs {
        msg.msg_hdr.msg_name = (&raw mut dest).cast();
        msg.msg_hdr.msg_namelen =
            libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(20);
        msg.msg_hdr.msg_iov = &raw mut iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    let batch = libc::c_uint::try_from(BATCH).unwrap_or(1);

    let start = Instant::now();
    let deadline = start + config.duration;
    let (mut sent, mut refused) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // SAFETY: `msgs` holds BATCH initialized headers whose pointers (`dest`, `iov` and
        // through it `frame`) stay valid and unmoved until the call returns; the kernel only
        // reads them (and writes `msg_len`).
        let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), batch, 0) };
        if let Ok(n) = u64::try_from(rc) {
            sent += n;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // The driver dropped the first frame of the batch: it was offered, not taken. Its
            // queue is full, so back off a little instead of spinning on refusals: on a small
            // machine the spinning would take CPU from the switch being measured, and the
            // queue stays full anyway.
            Some(libc::ENOBUFS | libc::EAGAIN) => {
                refused += 1;
                std::thread::sleep(BACKOFF);
            }
            Some(libc::EINTR) => {}
            _ => return Err(Error::io("sendmmsg on the AF_PACKET socket", err)),
        }
    }
    Ok(Stats {
        sent,
        refused,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_frame_is_a_valid_64_byte_ipv4_udp_frame() {
        let src = MacAddr([2, 0, 0, 0, 0, 1]);
        let dst = MacAddr([2, 0, 0, 0, 0, 2]);
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let f = frame(src, dst, a, b, FRAME_LEN).unwrap();
        assert_eq!(f.len(), 64);
        // Read back with weft's own parsers (their checksum code is independent of this file).
        let eth = wire::ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.src_addr(), src);
        assert_eq!(eth.ethertype(), wire::EtherType::IPV4);
        let ip = wire::ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (a, b));
        assert_eq!(ip.total_len(), 50);
        assert_eq!(ip.protocol(), wire::IpProtocol::UDP);
        let udp = wire::udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.payload().len(), 22);
        // A well-known header checksums to zero, including its own checksum field.
        assert_eq!(internet_checksum(&f[14..34]), 0);
    }

    #[test]
    fn test_short_frames_are_refused() {
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        let ip = Ipv4Addr::LOCALHOST;
        assert!(frame(m, m, ip, ip, 41).is_err());
        assert_eq!(frame(m, m, ip, ip, 42).unwrap().len(), 42);
    }

    #[test]
    fn test_stats_line_round_trips() {
        let stats = Stats {
            sent: 1_234_567,
            refused: 89,
            elapsed: Duration::from_millis(5_001),
        };
        let text = format!("warming up\n{}\n", stats.to_line());
        let back = Stats::parse(&text).unwrap();
        assert_eq!(back.sent, stats.sent);
        assert_eq!(back.refused, stats.refused);
        assert!((back.elapsed.as_secs_f64() - 5.001).abs() < 1e-6);
        assert!(Stats::parse("nothing").is_none());
    }
}
