//! The real I/O backends against real kernel devices, each test in network namespaces of its
//! own (`wft-<tag>-<pid>`), removed again by a drop guard even when the test fails.
//!
//! They need root. CI runs them as root; without it (or without `ip`) each test prints why it
//! skips and passes. Only documentation addresses (192.0.2.0/24, 2001:db8::/32) and 10.0.x
//! tenant addresses are used, inside namespaces that have no route out.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::fd::AsFd,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sched::CloneFlags,
};
use switch::{
    PacketBuf,
    device::{
        Device, Medium, Sent, packet::PacketDevice, rawip::GreSocket, tap::TapDevice,
        udp::VxlanSocket,
    },
};
use wire::{EtherType, IpProtocol, MacAddr, Vni, arp, encap, ethernet, gre, icmpv4, ipv4, vxlan};

// ---------------------------------------------------------------------------------------------
// Namespaces and threads

/// Whether these tests can run here; prints the reason when not.
fn can_run(test: &str) -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !root || !ip {
        eprintln!("SKIP {test}: needs root and iproute2 (root: {root}, ip: {ip})");
        return false;
    }
    true
}

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("wft-{tag}-{}", std::process::id());
        // A leftover from a killed run of the same pid would make `add` fail.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NAME args...`, panicking with its stderr on failure.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Runs `cmd args...` inside the namespace.
    fn command(&self, cmd: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, cmd]).args(args);
        command
    }

    fn file(&self) -> File {
        File::open(format!("/run/netns/{}", self.name)).expect("open netns")
    }

    /// Runs `f` on a fresh thread that has entered this namespace, so sockets and devices it
    /// creates belong here; the test's own thread never changes namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = self.file();
        #[expect(
            clippy::disallowed_methods,
            reason = "test: setns only on a dedicated thread"
        )]
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed on drop, so a failing test leaves no `ping` behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Interface names: at most 15 bytes, unique per test and process.
fn ifname(tag: &str) -> String {
    let name = format!("wft{tag}{}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

fn now() -> Instant {
    #[expect(
        clippy::disallowed_methods,
        reason = "test: bounds the time a test may wait"
    )]
    Instant::now()
}

/// Waits (at most 50 ms) for `dev` to become readable.
fn wait_readable(dev: &dyn Device) {
    if let Some(fd) = dev.fd() {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(50u8));
    }
}

/// Receives from `dev` for at most `timeout`, handing every frame to `each`; stops early when
/// `each` returns true. Returns whether it did.
fn receive_until(
    dev: &mut dyn Device,
    timeout: Duration,
    mut each: impl FnMut(&PacketBuf) -> bool,
) -> bool {
    let deadline = now() + timeout;
    let mut bufs = vec![PacketBuf::new(); 32];
    while now() < deadline {
        wait_readable(dev);
        let n = dev.recv(&mut bufs).expect("recv");
        if bufs[..n].iter().any(&mut each) {
            return true;
        }
    }
    false
}

/// Serves `dev` for at most `timeout`: every received frame goes to `answer`, whose replies are
/// sent back on `dev`; stops when `done` says so. Returns whether it did.
fn serve(
    dev: &mut dyn Device,
    timeout: Duration,
    mut answer: impl FnMut(&PacketBuf) -> Option<PacketBuf>,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = now() + timeout;
    let mut bufs = vec![PacketBuf::new(); 32];
    while now() < deadline {
        if done() {
            return true;
        }
        wait_readable(dev);
        let n = dev.recv(&mut bufs).expect("recv");
        let replies: Vec<PacketBuf> = bufs[..n].iter().filter_map(&mut answer).collect();
        if !replies.is_empty() {
            assert_eq!(dev.send(&replies).expect("send"), Sent::all(&replies));
        }
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// A tiny responder: the "other host" of a ping, built with `wire`

const TEST_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0x02]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    Arp,
    Echo,
}

/// If `frame` is an ARP request for `ip` or an ICMP echo request to `ip`, the reply frame.
fn respond(frame: &[u8], ip: Ipv4Addr) -> Option<(Answered, Vec<u8>)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let eth_repr = ethernet::Repr::parse(&eth).ok()?;
    match eth_repr.ethertype {
        EtherType::ARP => {
            let request = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).ok()?).ok()?;
            if request.operation != arp::Operation::REQUEST || request.target_protocol_addr != ip {
                return None;
            }
            let reply = arp::Repr {
                operation: arp::Operation::REPLY,
                source_hardware_addr: TEST_MAC,
                source_protocol_addr: ip,
                target_hardware_addr: request.source_hardware_addr,
                target_protocol_addr: request.source_protocol_addr,
            };
            let mut out = vec![0u8; 60];
            let header = ethernet::Repr {
                src_addr: TEST_MAC,
                dst_addr: request.source_hardware_addr,
                ethertype: EtherType::ARP,
            };
            header.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
            reply.emit(&mut arp::Packet::new_unchecked(
                &mut out[ethernet::HEADER_LEN..],
            ));
            Some((Answered::Arp, out))
        }
        EtherType::IPV4 => {
            let packet = ipv4::Packet::new_checked(eth.payload()).ok()?;
            let ip_repr = ipv4::Repr::parse(&packet).ok()?;
            if ip_repr.dst_addr != ip || ip_repr.protocol != IpProtocol::ICMP {
                return None;
            }
            let icmp = icmpv4::Packet::new_checked(packet.payload()).ok()?;
            let icmpv4::Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } = icmpv4::Repr::parse(&icmp).ok()?
            else {
                return None;
            };
            let echo = icmpv4::Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            let ip_reply = ipv4::Repr {
                src_addr: ip,
                dst_addr: ip_repr.src_addr,
                protocol: IpProtocol::ICMP,
                payload_len: echo.buffer_len(),
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 1,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
                options: ipv4::Options::NONE,
            };
            let ip_start = ethernet::HEADER_LEN;
            let icmp_start = ip_start + ip_reply.buffer_len();
            let mut out = vec![0u8; (icmp_start + echo.buffer_len()).max(60)];
            let header = ethernet::Repr {
                src_addr: TEST_MAC,
                dst_addr: eth_repr.src_addr,
                ethertype: EtherType::IPV4,
            };
            header.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
            ip_reply.emit(&mut ipv4::Packet::new_unchecked(&mut out[ip_start..]));
            echo.emit(&mut icmpv4::Packet::new_unchecked(&mut out[icmp_start..]));
            Some((Answered::Echo, out))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// a) TAP

#[test]
fn tap_answers_a_ping_from_a_namespace() {
    if !can_run("tap_answers_a_ping_from_a_namespace") {
        return;
    }
    let host = Netns::new("th");
    let vm = Netns::new("tv");
    // Two links in the VM namespace take the indexes after lo, so the TAP's index (the first
    // after lo in the host namespace) is taken there and the kernel must give it a new one.
    let (va, vb) = (ifname("tva"), ifname("tvb"));
    vm.ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
    let vm_file = vm.file();
    let name = ifname("t");
    let (mut tap, before) = host.run(move || {
        let tap = TapDevice::create(&name).expect("create tap");
        assert_eq!(tap.name(), name);
        let before = tap.ifindex();
        assert!(before > 0);
        // Not a namespace: the kernel refuses, and the refusal comes back as an error.
        let not_netns = File::open("/dev/null").expect("open /dev/null");
        assert!(tap.move_to_netns(not_netns.as_fd(), "eth0").is_err());
        assert!(
            tap.move_to_netns(vm_file.as_fd(), "name-too-long-for-linux")
                .is_err()
        );
        tap.move_to_netns(vm_file.as_fd(), "eth0")
            .expect("move to vm netns");
        (tap, before)
    });
    assert_eq!(tap.name(), "eth0");
    assert_ne!(
        tap.ifindex(),
        before,
        "the index was taken in the VM namespace"
    );
    assert_eq!(tap.medium(), Medium::Ethernet);
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "eth0"]);
    vm.ip(&["link", "set", "eth0", "up"]);
    // The index the device reports is the one it has in the VM namespace.
    let out = vm
        .command("cat", &["/sys/class/net/eth0/ifindex"])
        .output()
        .expect("cat ifindex");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tap.ifindex().to_string()
    );

    let ping = vm
        .command("ping", &["-c1", "-W1", "10.0.0.2"])
        .stdout(Stdio::null())
        .spawn();
    let mut ping = Reaped(ping.expect("spawn ping"));
    let mut answered = Vec::new();
    let mut exit = None;
    let finished = serve(
        &mut tap,
        Duration::from_secs(5),
        |buf| {
            let (kind, reply) = respond(buf.frame(), Ipv4Addr::new(10, 0, 0, 2))?;
            answered.push(kind);
            Some(PacketBuf::from_frame(&reply))
        },
        || {
            exit = exit.or_else(|| ping.0.try_wait().ok().flatten());
            exit.is_some()
        },
    );
    assert!(finished, "ping did not finish");
    assert!(
        answered.contains(&Answered::Arp),
        "no ARP request for 10.0.0.2 seen: {answered:?}"
    );
    assert!(
        answered.contains(&Answered::Echo),
        "no echo request seen: {answered:?}"
    );
    assert!(
        exit.is_some_and(|status| status.success()),
        "ping failed: {exit:?}"
    );
    drop(tap);
}

// ---------------------------------------------------------------------------------------------
// b) AF_PACKET

/// A frame from `02:00:5e:00:0b:01` to `02:00:5e:00:0b:02` with `tags` (TPID, TCI) behind the
/// addresses, EtherType 0x88b5 (local experimental) and a numbered payload.
fn test_frame(tags: &[(u16, u16)], seq: u8) -> Vec<u8> {
    let mut frame = vec![
        0x02, 0x00, 0x5e, 0x00, 0x0b, 0x02, 0x02, 0x00, 0x5e, 0x00, 0x0b, 0x01,
    ];
    for &(tpid, tci) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&0x88b5u16.to_be_bytes());
    frame.extend((0..50u8).map(|i| i.wrapping_mul(7) ^ seq));
    frame
}

#[test]
fn packet_socket_keeps_vlan_tags_byte_for_byte() {
    if !can_run("packet_socket_keeps_vlan_tags_byte_for_byte") {
        return;
    }
    let ns = Netns::new("pk");
    let (a, b) = (ifname("pa"), ifname("pb"));
    ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ns.ip(&["link", "set", &a, "up"]);
    ns.ip(&["link", "set", &b, "up"]);
    let (a2, b2) = (a.clone(), b.clone());
    let (mut tx, mut rx) = ns.run(move || {
        (
            PacketDevice::open(&a2).expect("open a"),
            PacketDevice::open(&b2).expect("open b"),
        )
    });
    assert_eq!((tx.name(), rx.name()), (a.as_str(), b.as_str()));
    assert_eq!(rx.medium(), Medium::Ethernet);

    let frames = [
        test_frame(&[], 1),
        // 802.1Q, PCP 5, VID 100.
        test_frame(&[(0x8100, 0xa064)], 2),
        // 802.1ad S-tag VID 200 (DEI set) over 802.1Q C-tag VID 100.
        test_frame(&[(0x88a8, 0x10c8), (0x8100, 0x0064)], 3),
        // Priority-tagged: VID 0, PCP 3.
        test_frame(&[(0x8100, 0x6000)], 4),
    ];
    let bufs: Vec<PacketBuf> = frames.iter().map(|f| PacketBuf::from_frame(f)).collect();
    assert_eq!(tx.send(&bufs).expect("send"), Sent::all(&bufs));

    let mut seen = Vec::new();
    receive_until(&mut rx, Duration::from_secs(3), |buf| {
        if buf.frame().get(6..12) == Some(&frames[0][6..12]) {
            seen.push(buf.frame().to_vec());
        }
        seen.len() == frames.len()
    });
    assert_eq!(seen.len(), frames.len(), "frames received: {seen:02x?}");
    for (got, sent) in seen.iter().zip(&frames) {
        assert_eq!(got, sent, "frame changed on the way");
    }
    assert_eq!(rx.truncated() + rx.malformed(), 0);

    // The sender does not see its own frames (PACKET_OUTGOING is ignored).
    let echoed = receive_until(&mut tx, Duration::from_millis(200), |buf| {
        buf.frame().get(6..12) == Some(&frames[0][6..12])
    });
    assert!(!echoed, "the sending socket received its own frame");
}

// ---------------------------------------------------------------------------------------------
// c) VXLAN over UDP

/// A VXLAN payload (header with `vni`, then a test frame numbered `seq`).
fn vxlan_payload(vni: u32, seq: u8) -> PacketBuf {
    let mut buf = PacketBuf::from_frame(&test_frame(&[], seq));
    let (data, start, end) = buf.raw_mut();
    let vni = Vni::new(vni).expect("vni");
    let start = encap::push_vxlan(data, start, end, vni).expect("push vxlan");
    buf.set_start(start);
    buf
}

fn vxlan_batch_between(ns: &Netns, a: IpAddr, b: IpAddr) {
    let (mut tx, mut rx) = ns.run(move || {
        let tx = VxlanSocket::bind(SocketAddr::new(a, 4789)).expect("bind a");
        let rx = VxlanSocket::bind(SocketAddr::new(b, 4789)).expect("bind b");
        (tx, rx)
    });
    assert_eq!(rx.medium(), Medium::Vxlan);
    assert_eq!(
        (tx.local_addr(), tx.dst_port()),
        (SocketAddr::new(a, 4789), 4789)
    );
    // 4 MiB asked for; the kernel reports double.
    assert!(rx.recv_buffer_size().expect("rcvbuf") >= 4 << 20);

    let batch: Vec<PacketBuf> = (0..32u8)
        .map(|seq| {
            let mut buf = vxlan_payload(5000 + u32::from(seq), seq);
            buf.peer = Some(b);
            buf
        })
        .collect();
    assert_eq!(tx.send(&batch).expect("send"), Sent::all(&batch));

    let mut got = Vec::new();
    receive_until(&mut rx, Duration::from_secs(3), |buf| {
        got.push((buf.frame().to_vec(), buf.peer));
        got.len() == batch.len()
    });
    assert_eq!(got.len(), 32, "datagrams received");
    for (sent, (payload, peer)) in batch.iter().zip(&got) {
        assert_eq!(payload.as_slice(), sent.frame());
        assert_eq!(*peer, Some(a));
    }

    // A frame without a peer, or of the other family, is refused, not sent somewhere.
    let mut stray = vxlan_payload(1, 0);
    assert!(tx.send(std::slice::from_ref(&stray)).is_err());
    stray.peer = Some(if a.is_ipv4() {
        "2001:db8::9".parse().unwrap()
    } else {
        "192.0.2.9".parse().unwrap()
    });
    assert!(tx.send(std::slice::from_ref(&stray)).is_err());
}

#[test]
fn vxlan_sockets_exchange_a_batch_over_ipv4_and_ipv6() {
    if !can_run("vxlan_sockets_exchange_a_batch_over_ipv4_and_ipv6") {
        return;
    }
    let ns = Netns::new("vx");
    for addr in ["192.0.2.1/32", "192.0.2.2/32"] {
        ns.ip(&["addr", "add", addr, "dev", "lo"]);
    }
    for addr in ["2001:db8::1/128", "2001:db8::2/128"] {
        ns.ip(&["-6", "addr", "add", addr, "dev", "lo", "nodad"]);
    }
    vxlan_batch_between(
        &ns,
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
    );
    vxlan_batch_between(
        &ns,
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
}

#[test]
fn vxlan_socket_interoperates_with_a_kernel_vxlan_device() {
    if !can_run("vxlan_socket_interoperates_with_a_kernel_vxlan_device") {
        return;
    }
    // The switch's underlay namespace and a "remote host" whose kernel terminates VXLAN.
    let sw = Netns::new("ks");
    let remote = Netns::new("kr");
    let (a, b) = (ifname("ka"), ifname("kb"));
    sw.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    sw.ip(&["link", "set", &b, "netns", &remote.name]);
    sw.ip(&["addr", "add", "192.0.2.1/24", "dev", &a]);
    sw.ip(&["link", "set", &a, "up"]);
    remote.ip(&["addr", "add", "192.0.2.2/24", "dev", &b]);
    remote.ip(&["link", "set", &b, "up"]);
    let vx = ifname("kv");
    remote.ip(&[
        "link",
        "add",
        &vx,
        "type",
        "vxlan",
        "id",
        "100",
        "dstport",
        "4789",
        "remote",
        "192.0.2.1",
        "local",
        "192.0.2.2",
        "dev",
        &b,
    ]);
    remote.ip(&["addr", "add", "10.0.9.1/24", "dev", &vx]);
    remote.ip(&["link", "set", &vx, "up"]);
    let mut socket = sw.run(|| VxlanSocket::bind("192.0.2.1:4789".parse().unwrap()).expect("bind"));

    let ping = remote
        .command("ping", &["-c1", "-W1", "10.0.9.2"])
        .stdout(Stdio::null())
        .spawn();
    let mut ping = Reaped(ping.expect("spawn ping"));
    let remote_ip: IpAddr = "192.0.2.2".parse().unwrap();
    let mut answered = Vec::new();
    let mut exit = None;
    let finished = serve(
        &mut socket,
        Duration::from_secs(5),
        |buf| {
            assert_eq!(buf.peer, Some(remote_ip));
            let packet = vxlan::Packet::new_checked(buf.frame()).expect("vxlan header");
            let repr = vxlan::Repr::parse(&packet).expect("vxlan flags");
            assert_eq!(repr.vni.get(), 100);
            let inner = packet.payload();
            if let Ok(eth) = ethernet::Frame::new_checked(inner)
                && eth.ethertype() == EtherType::ARP
            {
                let arp = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).expect("arp"));
                assert!(arp.is_ok(), "ARP did not parse: {arp:?}");
            }
            let (kind, reply) = respond(inner, Ipv4Addr::new(10, 0, 9, 2))?;
            answered.push(kind);
            let mut out = PacketBuf::from_frame(&reply);
            let (data, start, end) = out.raw_mut();
            let start = encap::push_vxlan(data, start, end, repr.vni).expect("push vxlan");
            out.set_start(start);
            out.peer = Some(remote_ip);
            Some(out)
        },
        || {
            exit = exit.or_else(|| ping.0.try_wait().ok().flatten());
            exit.is_some()
        },
    );
    assert!(finished, "ping did not finish");
    assert!(
        answered.contains(&Answered::Arp),
        "no VXLAN-encapsulated ARP: {answered:?}"
    );
    assert!(
        answered.contains(&Answered::Echo),
        "no VXLAN-encapsulated echo: {answered:?}"
    );
    assert!(
        exit.is_some_and(|status| status.success()),
        "ping over VXLAN failed: {exit:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// d) GRE over raw IP

fn gre_between(ns: &Netns, a: IpAddr, b: IpAddr) {
    let (mut tx, mut rx) = ns.run(move || {
        (
            GreSocket::bind(a).expect("bind a"),
            GreSocket::bind(b).expect("bind b"),
        )
    });
    assert_eq!(rx.medium(), Medium::Gre);
    assert_eq!(tx.local_addr(), a);
    let vsid = Vni::new(0x00_1234).expect("vsid");
    let batch: Vec<PacketBuf> = (0..4u8)
        .map(|seq| {
            let mut buf = PacketBuf::from_frame(&test_frame(&[(0x8100, 0x0064)], seq));
            let (data, start, end) = buf.raw_mut();
            let start =
                encap::push_gre(data, start, end, &gre::Repr::nvgre(vsid, seq)).expect("push gre");
            buf.set_start(start);
            buf.peer = Some(b);
            buf
        })
        .collect();
    assert_eq!(tx.send(&batch).expect("send"), Sent::all(&batch));
    let mut got = Vec::new();
    receive_until(&mut rx, Duration::from_secs(3), |buf| {
        got.push((buf.frame().to_vec(), buf.peer));
        got.len() == batch.len()
    });
    assert_eq!(got.len(), batch.len(), "GRE packets received");
    for (seq, (sent, (payload, peer))) in batch.iter().zip(&got).enumerate() {
        assert_eq!(
            payload.as_slice(),
            sent.frame(),
            "GRE header and inner frame, intact"
        );
        assert_eq!(*peer, Some(a));
        let (tunnel, inner) = encap::decapsulate_gre(payload).expect("gre parses");
        let flow_id = u8::try_from(seq).unwrap();
        assert_eq!(tunnel, encap::Tunnel::Nvgre { vsid, flow_id });
        assert_eq!(
            &payload[inner],
            test_frame(&[(0x8100, 0x0064)], flow_id).as_slice()
        );
    }
    assert_eq!(rx.malformed() + rx.truncated(), 0);
}

#[test]
fn gre_sockets_exchange_nvgre_over_ipv4_and_ipv6() {
    if !can_run("gre_sockets_exchange_nvgre_over_ipv4_and_ipv6") {
        return;
    }
    let ns = Netns::new("gr");
    for addr in ["192.0.2.1/32", "192.0.2.2/32"] {
        ns.ip(&["addr", "add", addr, "dev", "lo"]);
    }
    for addr in ["2001:db8::1/128", "2001:db8::2/128"] {
        ns.ip(&["-6", "addr", "add", addr, "dev", "lo", "nodad"]);
    }
    gre_between(
        &ns,
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
    );
    gre_between(
        &ns,
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
}

// ---------------------------------------------------------------------------------------------
// e) Offloads: TCP super-frames from a TAP, UDP GSO/GRO on the underlay

/// Runs `script` with python3 inside `ns`, with `args`; its stdout is captured.
fn python(ns: &Netns, script: &str, args: &[&str]) -> Reaped {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let child = ns
        .command("python3", &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    Reaped(child)
}

/// A TCP server on port 5201 that reads until the peer closes and prints how many bytes and
/// their SHA-256.
const TCP_SINK: &str = "
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201))
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest())
";

/// A TCP client that sends `argv[2]` bytes (a pattern no shifted copy of itself matches) to
/// `argv[1]`:5201 and prints how many and their SHA-256.
const TCP_SOURCE: &str = "
import hashlib, socket, sys, time
n = int(sys.argv[2])
data = bytes((i * 7 + i // 251 + i // 65521) % 256 for i in range(n))
for _ in range(100):
    try:
        s = socket.create_connection((sys.argv[1], 5201), timeout=20)
        break
    except OSError:
        time.sleep(0.05)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(n, hashlib.sha256(data).hexdigest())
";

fn output_of(child: Reaped) -> String {
    let mut child = child;
    let out = std::mem::replace(
        &mut child.0,
        Command::new("true").spawn().expect("spawn true"),
    )
    .wait_with_output()
    .expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn tap_offloads_carry_tcp_through_software_segmentation_and_merging() {
    if !can_run("tap_offloads_carry_tcp_through_software_segmentation_and_merging") {
        return;
    }
    // Two "VMs", each with a TAP of ours as NIC; this test is the wire between them. What VM
    // A's stack hands over as 64 KiB super-frames is cut into 1.5 KB segments with
    // wire::gso, and B's TAP merges them again before B's stack sees them.
    let a = Netns::new("oa");
    let b = Netns::new("ob");
    let (na, nb) = (ifname("oa"), ifname("ob"));
    let mut tap_a = a.run(move || TapDevice::create(&na).expect("create tap a"));
    let mut tap_b = b.run(move || TapDevice::create(&nb).expect("create tap b"));
    assert!(tap_a.has_offloads() && tap_b.has_offloads());
    assert_eq!(tap_a.offloads(), switch::device::Offloads::ALL);
    a.ip(&["addr", "add", "10.0.8.1/24", "dev", &tap_a.name()]);
    b.ip(&["addr", "add", "10.0.8.2/24", "dev", &tap_b.name()]);
    a.ip(&["link", "set", &tap_a.name(), "up"]);
    b.ip(&["link", "set", &tap_b.name(), "up"]);

    const BYTES: usize = 4 << 20;
    let sink = python(&b, TCP_SINK, &["10.0.8.2"]);
    let source = python(&a, TCP_SOURCE, &["10.0.8.2", &BYTES.to_string()]);
    let (mut super_frames, mut partial) = (0usize, 0usize);
    let mut source = Some(source);
    let mut sink = Some(sink);
    let deadline = now() + Duration::from_secs(30);
    let mut bufs = vec![PacketBuf::new(); 32];
    let mut out: Vec<PacketBuf> = Vec::new();
    let mut scratch = PacketBuf::new();
    while now() < deadline {
        let done = sink
            .as_mut()
            .is_some_and(|s| s.0.try_wait().ok().flatten().is_some());
        if done {
            break;
        }
        {
            let fa = tap_a.fd().expect("fd");
            let fb = tap_b.fd().expect("fd");
            let mut fds = [
                PollFd::new(fa, PollFlags::POLLIN),
                PollFd::new(fb, PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::from(20u8));
        }
        // A to B, cutting every super-frame.
        let n = tap_a.recv(&mut bufs).expect("recv a");
        out.clear();
        for buf in &bufs[..n] {
            match buf.offload.gso {
                Some(gso) => {
                    super_frames += 1;
                    let mut segmenter = wire::gso::segment(buf.frame(), gso).expect("cut");
                    while let Some(len) = segmenter.next_into(scratch.receive_area()) {
                        scratch.set_received(len.expect("room"));
                        out.push(scratch.clone());
                    }
                }
                None => {
                    partial += usize::from(buf.offload.csum_partial);
                    out.push(buf.clone());
                }
            }
        }
        if !out.is_empty() {
            tap_b.send(&out).expect("send b");
        }
        // B to A (ACKs), as they come.
        let n = tap_b.recv(&mut bufs).expect("recv b");
        if n > 0 {
            tap_a.send(&bufs[..n]).expect("send a");
        }
    }
    let got = output_of(sink.take().expect("sink"));
    let sent = output_of(source.take().expect("source"));
    assert_eq!(got, sent, "bytes and SHA-256 received vs sent");
    assert!(got.starts_with(&BYTES.to_string()), "{got}");
    assert!(super_frames > 0, "VM A's stack handed over no super-frame");
    assert!(
        tap_b.merged() > 0,
        "B's TAP merged no segments ({super_frames} super-frames, {partial} partial checksums)"
    );
    assert_eq!(tap_a.refused() + tap_b.refused(), 0);
}

/// Two namespaces tagged `tag_a` and `tag_b` joined by a veth underlay, 192.0.2.1/24 in the
/// first and 192.0.2.2/24 in the second, both ends up.
fn underlay_pair(tag_a: &str, tag_b: &str) -> (Netns, Netns) {
    let a = Netns::new(tag_a);
    let b = Netns::new(tag_b);
    let (va, vb) = (ifname(tag_a), ifname(tag_b));
    a.ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
    a.ip(&["link", "set", &vb, "netns", &b.name]);
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", &va]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", &vb]);
    a.ip(&["link", "set", &va, "up"]);
    b.ip(&["link", "set", &vb, "up"]);
    (a, b)
}

#[test]
fn vxlan_sockets_send_trains_as_gso_and_fall_back_without_checksum_offload() {
    if !can_run("vxlan_sockets_send_trains_as_gso_and_fall_back_without_checksum_offload") {
        return;
    }
    let (a, b) = underlay_pair("ga", "gb");
    let va = ifname("ga");
    let (ip_a, ip_b): (IpAddr, IpAddr) =
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let mut tx = a.run(move || VxlanSocket::bind(SocketAddr::new(ip_a, 4789)).expect("bind a"));
    let mut rx = b.run(move || VxlanSocket::bind(SocketAddr::new(ip_b, 4789)).expect("bind b"));
    assert!(tx.gso() && rx.gro());

    // Segment-like runs (45 of 1,000 bytes, then a short one), a run broken by a longer
    // datagram, and small frames: every datagram must arrive, in order, intact.
    let sizes: Vec<usize> = std::iter::repeat_n(1000, 45)
        .chain([300, 100, 100, 100, 200, 200, 64])
        .chain(std::iter::repeat_n(64, 40))
        .collect();
    let batch: Vec<PacketBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut frame = test_frame(&[], u8::try_from(i % 256).unwrap());
            frame.resize(len, u8::try_from(i % 251).unwrap());
            let mut buf = PacketBuf::from_frame(&frame);
            let (data, start, end) = buf.raw_mut();
            let start = encap::push_vxlan(data, start, end, Vni::new(7).unwrap()).unwrap();
            buf.set_start(start);
            buf.peer = Some(ip_b);
            buf
        })
        .collect();
    let exchange = |tx: &mut VxlanSocket, rx: &mut VxlanSocket| {
        let mut sent = 0;
        for _ in 0..100 {
            sent += tx.send(&batch[sent..]).expect("send").frames;
            if sent == batch.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sent, batch.len());
        let mut got = Vec::new();
        receive_until(rx, Duration::from_secs(3), |buf| {
            assert_eq!(buf.peer, Some(ip_a));
            got.push(buf.frame().to_vec());
            got.len() == batch.len()
        });
        assert_eq!(got.len(), batch.len(), "datagrams received");
        for (i, (sent, got)) in batch.iter().zip(&got).enumerate() {
            assert_eq!(sent.frame(), got.as_slice(), "datagram {i}");
        }
    };
    exchange(&mut tx, &mut rx);
    assert!(tx.gso(), "GSO still on");
    assert_eq!(tx.gso_refused(), 0);

    // An underlay MTU below the datagrams: the kernel refuses the GSO message (EINVAL), the
    // socket sends the same datagrams one by one (the kernel fragments them), and keeps GSO
    // for later messages.
    a.ip(&["link", "set", &va, "mtu", "1000"]);
    exchange(&mut tx, &mut rx);
    assert!(tx.gso_refused() >= 1, "the GSO message was refused");
    assert!(tx.gso(), "GSO stays on after EINVAL");
    a.ip(&["link", "set", &va, "mtu", "1500"]);
    // Without transmit checksum offload: Linux before 6.10 refuses GSO then (EIO) and the
    // socket turns it off for good; later kernels checksum in software. Either way every
    // datagram arrives.
    a.command("ethtool", &["-K", &va, "tx", "off"])
        .stdout(Stdio::null())
        .status()
        .expect("ethtool");
    exchange(&mut tx, &mut rx);
    exchange(&mut tx, &mut rx);
}

/// A UDP socket playing the remote VTEP: it sees each datagram's outer source port.
#[expect(clippy::disallowed_types, reason = "test: plays the remote VTEP")]
type PlainUdp = std::net::UdpSocket;

/// Sends three datagrams of each of eight inner UDP flows (told apart by their source ports)
/// from `tx` to `rx`, and checks that each flow's datagrams all leave from the one source port
/// `wire::vxlan::source_port` of its inner frame picks among `tx`'s ports.
fn flows_keep_their_source_ports(tx: &mut VxlanSocket, rx: &PlainUdp) -> Vec<u16> {
    let to = rx.local_addr().expect("rx address");
    let ports = tx.source_ports();
    let inner = |flow: u16, seq: u8| {
        wire::build::udp_ipv4(
            MacAddr([2, 0, 0x5e, 0, 0x0b, 1]),
            MacAddr([2, 0, 0x5e, 0, 0x0b, 2]),
            Ipv4Addr::new(10, 0, 7, 1),
            Ipv4Addr::new(10, 0, 7, 2),
            (40_000 + flow, 9),
            &[seq; 16],
        )
    };
    let pick = |flow: u16| ports[usize::from(vxlan::source_port(&inner(flow, 0))) % ports.len()];
    let batch: Vec<PacketBuf> = (0..3u8)
        .flat_map(|seq| (0..8u16).map(move |flow| (flow, seq)))
        .map(|(flow, seq)| {
            let mut buf = PacketBuf::from_frame(&inner(flow, seq));
            let (data, start, end) = buf.raw_mut();
            let start = encap::push_vxlan(data, start, end, Vni::new(7).unwrap()).unwrap();
            buf.set_start(start);
            buf.peer = Some(to.ip());
            buf
        })
        .collect();
    assert_eq!(tx.send(&batch).expect("send"), Sent::all(&batch));

    rx.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut seen: Vec<Option<u16>> = vec![None; 8];
    let mut data = [0u8; 256];
    for _ in 0..batch.len() {
        let (len, from) = rx.recv_from(&mut data).expect("a datagram");
        assert_eq!(from.ip(), tx.local_addr().ip());
        let (vni, range) = encap::decapsulate_vxlan(&data[..len]).expect("VXLAN");
        assert_eq!(vni.get(), 7);
        let frame = &data[range];
        let flow = usize::from(u16::from_be_bytes([frame[34], frame[35]]) - 40_000);
        let port = *seen[flow].get_or_insert_with(|| from.port());
        assert_eq!(
            from.port(),
            port,
            "every datagram of flow {flow} from one port"
        );
        assert_eq!(
            port,
            pick(u16::try_from(flow).unwrap()),
            "flow {flow}'s pick"
        );
    }
    seen.into_iter()
        .map(|port| port.expect("every flow"))
        .collect()
}

#[test]
fn vxlan_socket_sends_each_flow_from_one_port_of_its_pool() {
    if !can_run("vxlan_socket_sends_each_flow_from_one_port_of_its_pool") {
        return;
    }
    let (a, b) = underlay_pair("pa", "pb");
    let rx = b.run(|| PlainUdp::bind("192.0.2.2:4789").expect("bind the remote"));
    for pool in [4, 1] {
        let mut tx = a.run(move || {
            VxlanSocket::with_source_ports("192.0.2.1:4789".parse().unwrap(), 4789, pool)
                .expect("bind the pool")
        });
        let ports = flows_keep_their_source_ports(&mut tx, &rx);
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        if pool == 1 {
            assert_eq!(distinct.into_iter().collect::<Vec<_>>(), [4789]);
        } else {
            assert!(distinct.len() >= 2, "eight flows on one port: {ports:?}");
            assert!(
                !distinct.contains(&4789),
                "the pool sends from ports of its own"
            );
        }
    }
    // IPv6: the pool's sockets are IPv6-only and bound to the same address (loopback here).
    a.run(|| {
        let rx = PlainUdp::bind("[::1]:0").expect("bind the remote");
        let port = rx.local_addr().expect("address").port();
        let mut tx = VxlanSocket::with_source_ports("[::1]:0".parse().unwrap(), port, 4)
            .expect("bind the pool");
        let ports = flows_keep_their_source_ports(&mut tx, &rx);
        assert!(ports.iter().any(|&p| p != ports[0]), "one port: {ports:?}");
    });
}

#[test]
fn a_tap_skips_a_frame_the_kernel_refuses_and_says_what_it_sent() {
    if !can_run("a_tap_skips_a_frame_the_kernel_refuses_and_says_what_it_sent") {
        return;
    }
    let host = Netns::new("ts");
    let name = ifname("ts");
    let mut tap = host.run(move || TapDevice::create(&name).expect("create tap"));
    host.ip(&["link", "set", &tap.name(), "up"]);
    // A frame shorter than an Ethernet header is refused (EINVAL); the frames around it go.
    let mut long = test_frame(&[], 1);
    long.resize(300, 1);
    let bufs = [
        PacketBuf::from_frame(&long),
        PacketBuf::from_frame(&[0xaa; 5]),
        PacketBuf::from_frame(&test_frame(&[], 2)),
    ];
    assert_eq!(
        tap.send(&bufs).expect("send"),
        Sent {
            frames: 2,
            bytes: (bufs[0].len() + bufs[2].len()) as u64
        },
        "the refused frame is not counted, the one after it is"
    );
}
