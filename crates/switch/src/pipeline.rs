//! The forwarding pipeline: a pure function from (tables, ingress port, frame, time) to a
//! [`Verdict`]. It reads the immutable [`Tables`], updates the worker-owned [`MacTable`], and
//! may rewrite the frame in its buffer (strip a tag or a tunnel header, write an ARP reply). It
//! makes no syscalls, reads no clock and never allocates, with one exception: a DHCP client
//! message the switch answers ([`crate::dhcp`]) is a slow-path punt whose reply the DHCP codec
//! builds on the heap. Deciding that a frame is one costs a few byte compares.
//!
//! A trunk's VM port (one with subports, see [`crate::tables`]) takes untagged frames as its
//! own and frames with one 802.1Q tag N as subport N's: the tag is popped in place and the
//! frame goes on as if it had come from the subport, whose port id the verdict carries (a
//! flood's `from`); replies the switch writes itself (ARP, DHCP) get the tag back. A port
//! without subports pays one load of a per-port flag for this.
//!
//! EVB (802.1Qbg). A bridge's station-facing port takes a frame's 802.1ad S-tag (none: the
//! default channel, SVID 1) to pick the S-channel, then its 802.1Q C-tag (none: VLAN 0) to pick
//! the logical switch from the VSIs associated on that channel; both tags are popped and the
//! frame goes on as the channel's. With VDP gating the (source MAC, C-VLAN) must be an
//! associated VSI's. A channel with reflective relay may get its own frames back (hairpin);
//! every other port never does. On a station, an uplink in VEPA mode takes every frame its
//! VMs send (no local switching), and what comes back from the bridge is delivered locally
//! except to the VM whose MAC sent it. A station's uplink takes a frame's S-tag the same way:
//! none (or SVID 1) is the default channel, the uplink's own edge relay; another SVID is that
//! S-channel's, whose tag is popped and whose frame then goes on as if it had come from an
//! uplink of the channel's physical network (C-tag → VLAN network, none → flat). On either
//! side, frames to the IEEE 802.1 reserved group addresses are the link's own and dropped.

use core::{net::IpAddr, time::Duration};

use wire::{EtherType, IpProtocol, MacAddr, arp, encap, ethernet, ipv4, ipv6, vlan};

use crate::{
    PacketBuf,
    buffer::Offload,
    dhcp,
    mac::{Learned, MacTable},
    tables::{
        Location, LsId, Port, PortId, PortKind, RelayMode, Segment, Tables, TunnelKey,
        TunnelProtocol, VmPort,
    },
};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send out of one local port (a VM, or an uplink with the VLAN tag to push, if any).
    Forward {
        /// The port.
        port: PortId,
        /// The 802.1Q VLAN id to tag the frame with on the way out.
        vlan: Option<u16>,
    },
    /// Send to every member of the logical switch but the ingress port and, for frames from a
    /// local VM, to the segment's remote endpoints or uplink as well.
    Flood {
        /// The logical switch.
        ls: LsId,
        /// The port the frame came in on, which it is not sent back to: the subport, for a
        /// tagged frame from a trunk's device (so the parent and the device's other subports
        /// on `ls` do get it).
        from: PortId,
    },
    /// Encapsulate for one remote endpoint of the logical switch's segment.
    Tunnel {
        /// The logical switch (its segment says which tunnel header).
        ls: LsId,
        /// The remote endpoint.
        remote: IpAddr,
    },
    /// The buffer now holds a reply (ARP): send it back out of the ingress port.
    Hairpin,
    /// A DHCP client message the switch answered itself (never forwarded): if the outcome
    /// has a reply ([`Outcome::replies`](dhcp::Outcome::replies)) the buffer holds it, to send
    /// back out of the ingress port; otherwise the message is consumed and counted.
    Dhcp(dhcp::Outcome),
    /// Drop, and count why.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why a frame was dropped. Every reason has a counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $($(#[$doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in declaration order (index = counter slot).
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The counter name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than the headers it claims to carry.
    Truncated => "truncated",
    /// A header with an impossible length, version, checksum or flags.
    Malformed => "malformed",
    /// A header variant weft does not handle (a GRE with routing, a tag stack deeper than two).
    Unsupported => "unsupported",
    /// Arrived on a port the current tables do not have.
    UnknownPort => "unknown_port",
    /// An 802.1Q/802.1ad tag on a VM access port, or inside a tunnel.
    UnexpectedTag => "unexpected_tag",
    /// An 802.1Q tag on a trunk's VM port that none of its subports has.
    UnknownSubport => "unknown_subport",
    /// A VLAN on an uplink that no logical switch uses.
    UnknownVlan => "unknown_vlan",
    /// A VNI / GRE key / VSID no logical switch uses.
    UnknownTunnelId => "unknown_tunnel_id",
    /// A tunnel packet from an underlay address this host was not told about.
    UnknownEndpoint => "unknown_endpoint",
    /// A VM sent with a source MAC that is not its own.
    SpoofedMac => "spoofed_mac",
    /// A VM sent with a source IP that is not its own.
    SpoofedIp => "spoofed_ip",
    /// A VM sent ARP claiming an address that is not its own.
    SpoofedArp => "spoofed_arp",
    /// A port-security VM port sent something other than IPv4, IPv6 or ARP.
    DisallowedEthertype => "disallowed_ethertype",
    /// The destination is where the frame came from.
    Loopback => "loopback",
    /// An S-tag (or, untagged, the default channel) no S-channel of the station port or
    /// uplink has.
    UnknownSChannel => "unknown_s_channel",
    /// VDP gating: the source MAC and C-VLAN are no VSI's associated on the S-channel.
    VsiNotAssociated => "vsi_not_associated",
    /// To an IEEE 802.1 reserved group address (LLDP, ECP/VDP, CDCP): a bridge never relays
    /// those; the EVB daemon on the same interface takes them.
    LinkLocalGroup => "link_local_group",
    /// The frame could not be encapsulated (no headroom, too long for the outer headers).
    EncapFailed => "encap_failed",
    /// A device refused the frame (queue full, send error).
    TxFailed => "tx_failed",
}

impl DropReason {
    /// The drop reason for a header that failed to parse.
    pub const fn from_wire(err: wire::Error) -> Self {
        match err {
            wire::Error::Truncated => Self::Truncated,
            wire::Error::BadLength
            | wire::Error::BadVersion
            | wire::Error::BadChecksum
            | wire::Error::BadFlags => Self::Malformed,
            wire::Error::UnknownTlv | wire::Error::Unsupported | wire::Error::NoRoom => {
                Self::Unsupported
            }
        }
    }
}

impl From<wire::Error> for DropReason {
    fn from(err: wire::Error) -> Self {
        Self::from_wire(err)
    }
}

/// Asks the CPU to start loading the table entries [`process`] will read for a batch of frames
/// from `in_port`, without looking at them: a switch calls it for each batch before processing
/// the first frame, so that the batch's cache misses overlap instead of coming one after
/// another (with 200,000 lookup records, the destination's entry is rarely in cache). Only a
/// VM port's frames are looked at (their destination on the port's logical switch): that is
/// where a frame's fate depends on the big table. A hint: it changes no verdict.
#[inline]
pub fn prefetch(tables: &Tables, in_port: PortId, bufs: &[PacketBuf]) {
    let Some(Port {
        kind: PortKind::Vm(vm),
        ..
    }) = tables.port(in_port)
    else {
        return;
    };
    for buf in bufs {
        if let Some(dst) = buf.frame().first_chunk::<6>() {
            tables.prefetch_location(vm.ls, MacAddr(*dst));
        }
    }
}

/// Runs one frame through the pipeline.
///
/// `buf` holds the frame as the ingress port's device delivered it (a tunnel port's buffer
/// starts at the tunnel header and carries the sender in `peer`); on return it holds the frame
/// the verdict applies to.
pub fn process(
    tables: &Tables,
    macs: &mut MacTable,
    in_port: PortId,
    buf: &mut PacketBuf,
    now: Duration,
) -> Verdict {
    let Some(port) = tables.port(in_port) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let result = match &port.kind {
        PortKind::Vm(vm) => from_vm_device(tables, macs, in_port, vm, buf, now),
        // No device is bound to a subport; its frames come tagged through its parent's.
        PortKind::Subport { .. } => Err(DropReason::UnknownPort),
        PortKind::Uplink { .. } => from_uplink(tables, macs, in_port, buf, now),
        PortKind::Station => from_station(tables, macs, in_port, buf, now),
        // No device is bound to a channel; its frames come S-tagged through its station port
        // or uplink.
        PortKind::Channel(_) | PortKind::UplinkChannel(_) => Err(DropReason::UnknownPort),
        PortKind::Tunnel { protocol, .. } => from_tunnel(tables, macs, *protocol, buf, now),
    };
    result.unwrap_or_else(Verdict::Drop)
}

/// A frame from a VM port's device: untagged it is the port's own; on a trunk, tagged N it is
/// subport N's, with the tag stripped here and put back on any reply the switch makes.
fn from_vm_device(
    tables: &Tables,
    macs: &mut MacTable,
    in_port: PortId,
    vm: &VmPort,
    buf: &mut PacketBuf,
    now: Duration,
) -> Result<Verdict, DropReason> {
    // Ports without subports (nearly all) pay one bounds-checked load here.
    if !tables.is_trunk(in_port) || !starts_with_vlan_tag(buf.frame()) {
        return from_vm(tables, macs, in_port, vm, buf, now, None);
    }
    let vid = vlan::Packet::new_checked(&buf.frame()[ethernet::HEADER_LEN..])?.vid();
    let sub = tables
        .subport(in_port, vid)
        .ok_or(DropReason::UnknownSubport)?;
    let Some(PortKind::Subport { vm, .. }) = tables.port(sub).map(|p| &p.kind) else {
        return Err(DropReason::UnknownPort);
    };
    let (data, start, _) = buf.raw_mut();
    let (start, _) = vlan::pop_tag(data, start)?;
    buf.set_start(start);
    from_vm(tables, macs, sub, vm, buf, now, Some(vid))
}

/// True when the frame's EtherType is 802.1Q (0x8100): the one tag a trunk's subports use.
fn starts_with_vlan_tag(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&EtherType::VLAN.0.to_be_bytes()[..])
}

/// Puts a stripped subport tag back on a reply the switch wrote into the buffer (ARP, DHCP),
/// which goes back out of the device it came from.
fn retag(buf: &mut PacketBuf, tag: Option<u16>) -> Result<(), DropReason> {
    if let Some(vid) = tag {
        let (data, start, _) = buf.raw_mut();
        let start = vlan::push_tag(data, start, EtherType::VLAN, vid)?;
        buf.set_start(start);
    }
    Ok(())
}

/// A frame from a VM port or subport `in_port` (untagged by now); `tag` is the subport's VLAN,
/// for replies.
fn from_vm(
    tables: &Tables,
    macs: &mut MacTable,
    in_port: PortId,
    vm: &VmPort,
    buf: &mut PacketBuf,
    now: Duration,
    tag: Option<u16>,
) -> Result<Verdict, DropReason> {
    let frame = buf.frame();
    let eth = ethernet::Frame::new_checked(frame)?;
    let (src, dst, ethertype) = (eth.src_addr(), eth.dst_addr(), eth.ethertype());
    if ethertype.is_vlan_tag() {
        return Err(DropReason::UnexpectedTag);
    }
    if vm.port_security {
        check_sender(vm, src, ethertype, eth.payload())?;
    } else if src.is_multicast() {
        return Err(DropReason::SpoofedMac);
    }
    let ls = vm.ls;
    // The port's own MAC is in the tables already (configured, never learned): only an
    // allowed pair's, or any MAC of a port without port security, costs a lookup here.
    if src != vm.mac {
        learn(tables, macs, ls, src, Location::Local(in_port), now);
    }
    if ethertype == EtherType::ARP && answer_arp(tables, ls, buf) {
        retag(buf, tag)?;
        return Ok(Verdict::Hairpin);
    }
    // The port's own DHCP, if its network has a DHCP subnet holding the port's address; a
    // frame from another MAC behind the port (an allowed pair) is not its client's.
    // Networks without DHCP subnets pay one length check.
    if ethertype == EtherType::IPV4
        && src == vm.mac
        && let Some(subnets) = tables
            .switch(ls)
            .map(|s| s.dhcp.as_slice())
            .filter(|d| !d.is_empty())
        && dhcp::is_client_message(buf.frame())
        && let Some(lease) = dhcp::lease(vm.mac, &vm.ips, subnets)
    {
        let response = dhcp::respond(buf.frame(), &lease);
        if let Some(reply) = response.reply {
            buf.set_frame(&reply);
            buf.peer = None;
            // The request may have come with a partial checksum; the reply is finished.
            buf.offload = Offload::NONE;
            retag(buf, tag)?;
        }
        return Ok(Verdict::Dhcp(response.outcome));
    }
    if let Some(uplink) = vepa_uplink(tables, ls) {
        return Ok(to_vepa_uplink(tables, macs, ls, in_port, uplink, dst, now));
    }
    Ok(unicast_or_flood(tables, macs, ls, in_port, dst, now))
}

/// The uplink of `ls`'s physical network when its edge relay is in VEPA mode.
fn vepa_uplink(tables: &Tables, ls: LsId) -> Option<PortId> {
    let (Segment::Flat { physical_network }
    | Segment::Vlan {
        physical_network, ..
    }) = &tables.switch(ls)?.segment
    else {
        return None;
    };
    let uplink = tables.uplink(physical_network)?;
    (tables.relay(uplink) == RelayMode::Vepa).then_some(uplink)
}

/// VEPA: a VM's frame goes to the bridge whatever its destination, even a VM on this relay
/// (the bridge reflects it back); a broadcast goes to the bridge alone, and what the bridge
/// floods back reaches the other VMs.
fn to_vepa_uplink(
    tables: &Tables,
    macs: &MacTable,
    ls: LsId,
    in_port: PortId,
    uplink: PortId,
    dst: MacAddr,
    now: Duration,
) -> Verdict {
    let location = tables
        .location(ls, dst)
        .or_else(|| macs.lookup(ls, dst, now));
    match location {
        Some(Location::Local(port)) if port == in_port => Verdict::Drop(DropReason::Loopback),
        _ => Verdict::Forward {
            port: uplink,
            vlan: uplink_vlan(tables, ls),
        },
    }
}

/// Port security (Neutron's anti-spoofing): the source MAC must be the port's or an allowed
/// pair's, and IPv4/IPv6/ARP senders one of the addresses that MAC may use.
fn check_sender(
    vm: &VmPort,
    src: MacAddr,
    ethertype: EtherType,
    payload: &[u8],
) -> Result<(), DropReason> {
    let own_mac = src == vm.mac;
    if !own_mac && !vm.allowed_pairs.iter().any(|(mac, _)| *mac == src) {
        return Err(DropReason::SpoofedMac);
    }
    let may_use = |ip: IpAddr| {
        (own_mac && vm.ips.contains(&ip))
            || vm
                .allowed_pairs
                .iter()
                .any(|(mac, net)| *mac == src && net.contains(&ip))
    };
    match ethertype {
        EtherType::IPV4 => {
            let packet = ipv4::Packet::new_checked(payload)?;
            let ip = packet.src_addr();
            // A DHCP client has no address yet: 0.0.0.0:68 to 255.255.255.255:67 (RFC 2131 §4.1).
            let dhcp = ip.is_unspecified()
                && packet.protocol() == IpProtocol::UDP
                && is_dhcp_request(packet.payload());
            if dhcp || may_use(ip.into()) {
                Ok(())
            } else {
                Err(DropReason::SpoofedIp)
            }
        }
        EtherType::IPV6 => {
            let packet = ipv6::Packet::new_checked(payload)?;
            let ip = packet.src_addr();
            // Duplicate address detection sends from ::, and link-local addresses are the
            // host's own business (Neutron allows them too).
            let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
            if ip.is_unspecified() || link_local || may_use(ip.into()) {
                Ok(())
            } else {
                Err(DropReason::SpoofedIp)
            }
        }
        EtherType::ARP => {
            let packet = arp::Packet::new_checked(payload)?;
            let repr = arp::Repr::parse(&packet)?;
            let probe = repr.source_protocol_addr.is_unspecified();
            if repr.source_hardware_addr != src
                || !(probe || may_use(repr.source_protocol_addr.into()))
            {
                return Err(DropReason::SpoofedArp);
            }
            Ok(())
        }
        _ => Err(DropReason::DisallowedEthertype),
    }
}

fn is_dhcp_request(udp: &[u8]) -> bool {
    udp.len() >= 4 && udp[..4] == [0, 68, 0, 67]
}

/// Answers an ARP request for an address the tables know (seed 004 scenario 4; Neutron's ARP
/// responder) by rewriting the buffer into the reply. Returns false to let the request flood.
fn answer_arp(tables: &Tables, ls: LsId, buf: &mut PacketBuf) -> bool {
    let Ok(request) = arp::Packet::new_checked(&buf.frame()[ethernet::HEADER_LEN..])
        .and_then(|p| arp::Repr::parse(&p))
    else {
        return false;
    };
    if request.operation != arp::Operation::REQUEST
        || request.source_protocol_addr == request.target_protocol_addr
    {
        return false;
    }
    let Some(mac) = tables.mac_of(ls, request.target_protocol_addr.into()) else {
        return false;
    };
    let reply = arp::Repr {
        operation: arp::Operation::REPLY,
        source_hardware_addr: mac,
        source_protocol_addr: request.target_protocol_addr,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    let eth = ethernet::Repr {
        src_addr: mac,
        dst_addr: request.source_hardware_addr,
        ethertype: EtherType::ARP,
    };
    let len = ethernet::HEADER_LEN + arp::PACKET_LEN;
    let start = buf.start();
    buf.set_end(start + len);
    let frame = buf.frame_mut();
    if frame.len() < len {
        return false;
    }
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    reply.emit(&mut arp::Packet::new_unchecked(
        &mut frame[ethernet::HEADER_LEN..],
    ));
    true
}

fn learn(
    tables: &Tables,
    macs: &mut MacTable,
    ls: LsId,
    src: MacAddr,
    at: Location,
    now: Duration,
) {
    if src.is_multicast() || tables.location(ls, src).is_some() {
        // Configured addresses (VM ports, records) are authoritative; never learn over them.
        return;
    }
    let limit = tables.switch(ls).map_or(0, |s| s.mac_limit);
    if let Learned::Full = macs.learn(ls, src, at, now, limit) {
        // Nothing to do: unknown unicast to it keeps flooding, which is the safe failure.
    }
}

fn unicast_or_flood(
    tables: &Tables,
    macs: &MacTable,
    ls: LsId,
    in_port: PortId,
    dst: MacAddr,
    now: Duration,
) -> Verdict {
    if dst.is_multicast() {
        return Verdict::Flood { ls, from: in_port };
    }
    let location = tables
        .location(ls, dst)
        .or_else(|| macs.lookup(ls, dst, now));
    match location {
        // Reflective relay: the one case a bridge sends a frame back where it came from.
        Some(Location::Local(port)) if port == in_port && tables.reflects(port) => {
            Verdict::Forward {
                port,
                vlan: tables.egress_vlan(port, ls),
            }
        }
        Some(Location::Local(port)) | Some(Location::Uplink(port)) if port == in_port => {
            Verdict::Drop(DropReason::Loopback)
        }
        Some(Location::Local(port)) => Verdict::Forward {
            port,
            vlan: tables.egress_vlan(port, ls),
        },
        Some(Location::Uplink(port)) => Verdict::Forward {
            port,
            vlan: uplink_vlan(tables, ls),
        },
        Some(Location::Remote(remote)) => Verdict::Tunnel { ls, remote },
        None => Verdict::Flood { ls, from: in_port },
    }
}

fn uplink_vlan(tables: &Tables, ls: LsId) -> Option<u16> {
    match tables.switch(ls).map(|s| &s.segment) {
        Some(Segment::Vlan { vid, .. }) => Some(*vid),
        _ => None,
    }
}

/// True for the IEEE 802.1 reserved group addresses 01-80-C2-00-00-00 to -0F (802.1Q table
/// 8-1): no bridge or edge relay forwards them; LLDP, ECP and CDCP are the link's own.
fn is_link_local_group(dst: MacAddr) -> bool {
    dst.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && dst.0[5] <= 0x0f
}

/// The VIDs of an 802.1Q link's tags as EVB uses them: an outer S-tag (802.1ad), then a
/// C-tag, each optional; anything else is a stack we do not take.
fn s_and_c_tags(stack: &vlan::TagStack) -> Result<(Option<u16>, Option<u16>), DropReason> {
    let mut tags = stack.iter().peekable();
    let svid = tags
        .next_if(|tag| tag.tpid == EtherType::QINQ)
        .map(|tag| tag.repr.vid);
    let cvid = tags
        .next_if(|tag| tag.tpid == EtherType::VLAN)
        .map(|tag| tag.repr.vid);
    if tags.next().is_some() {
        return Err(DropReason::UnexpectedTag);
    }
    Ok((svid, cvid))
}

/// Pops the frame's `count` outermost tags.
fn pop_tags(buf: &mut PacketBuf, count: usize) -> Result<(), DropReason> {
    for _ in 0..count {
        let (data, start, _) = buf.raw_mut();
        let (start, _) = vlan::pop_tag(data, start)?;
        buf.set_start(start);
    }
    Ok(())
}

/// A frame from an uplink's device: S-tag → the edge relay's uplink (none, or SVID 1: the
/// uplink itself; another SVID: that S-channel), C-tag → the VLAN network of its physical
/// network (none: the flat one), both popped.
fn from_uplink(
    tables: &Tables,
    macs: &mut MacTable,
    device_port: PortId,
    buf: &mut PacketBuf,
    now: Duration,
) -> Result<Verdict, DropReason> {
    let (stack, _) = vlan::TagStack::parse(buf.frame())?;
    if is_link_local_group(ethernet::Frame::new_checked(buf.frame())?.dst_addr()) {
        return Err(DropReason::LinkLocalGroup);
    }
    let (svid, vid) = s_and_c_tags(&stack)?;
    let in_port = match svid {
        // CDCP: SCID 1 / SVID 1 is the default channel, which travels without an S-tag.
        None | Some(1) => device_port,
        Some(svid) => tables
            .channel(device_port, svid)
            .ok_or(DropReason::UnknownSChannel)?,
    };
    let ls = tables
        .switch_for_vlan(in_port, vid)
        .ok_or(DropReason::UnknownVlan)?;
    pop_tags(
        buf,
        usize::from(svid.is_some()) + usize::from(vid.is_some()),
    )?;
    let eth = ethernet::Frame::new_checked(buf.frame())?;
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    if tables.relay(in_port) == RelayMode::Vepa
        && let Some(sender) = tables.local_sender(ls, src)
    {
        // A frame the bridge reflected: it goes to local VMs by destination, never back to
        // the VM that sent it. A flood names the sender as `from`, which excludes it; the
        // switch copies to the uplink only what came from a VM's device, so nothing goes back
        // to the bridge either.
        return Ok(match unicast_or_flood(tables, macs, ls, sender, dst, now) {
            Verdict::Forward { port, vlan: None } => Verdict::Forward { port, vlan: None },
            Verdict::Flood { ls, from } => Verdict::Flood { ls, from },
            Verdict::Drop(reason) => Verdict::Drop(reason),
            _ => Verdict::Drop(DropReason::Loopback),
        });
    }
    learn(tables, macs, ls, src, Location::Uplink(in_port), now);
    Ok(
        match unicast_or_flood(tables, macs, ls, in_port, dst, now) {
            // What came from the physical network goes back only to local ports.
            Verdict::Tunnel { .. } => Verdict::Drop(DropReason::Loopback),
            verdict => verdict,
        },
    )
}

/// A frame from a bridge's station-facing port: S-tag → S-channel, C-tag → logical switch (by
/// the channel's VSIs), both popped; then it is the channel's, like a VM port's frame.
fn from_station(
    tables: &Tables,
    macs: &mut MacTable,
    in_port: PortId,
    buf: &mut PacketBuf,
    now: Duration,
) -> Result<Verdict, DropReason> {
    let (stack, _) = vlan::TagStack::parse(buf.frame())?;
    let eth = ethernet::Frame::new_checked(buf.frame())?;
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    if is_link_local_group(dst) {
        return Err(DropReason::LinkLocalGroup);
    }
    let (svid, cvid) = s_and_c_tags(&stack)?;
    // CDCP: SCID 1 / SVID 1 is the default channel, which travels without an S-tag.
    let channel_port = tables
        .channel(in_port, svid.unwrap_or(1))
        .ok_or(DropReason::UnknownSChannel)?;
    let Some(PortKind::Channel(channel)) = tables.port(channel_port).map(|p| &p.kind) else {
        return Err(DropReason::UnknownSChannel);
    };
    let cvlan = cvid.unwrap_or(0);
    let ls = tables.channel_switch(channel_port, cvlan);
    if channel.vdp_gating && (ls.is_none() || !tables.is_associated(channel_port, src, cvlan)) {
        return Err(DropReason::VsiNotAssociated);
    }
    let ls = ls.ok_or(DropReason::UnknownVlan)?;
    if src.is_multicast() {
        return Err(DropReason::SpoofedMac);
    }
    pop_tags(
        buf,
        usize::from(svid.is_some()) + usize::from(cvid.is_some()),
    )?;
    learn(tables, macs, ls, src, Location::Local(channel_port), now);
    Ok(unicast_or_flood(tables, macs, ls, channel_port, dst, now))
}

fn from_tunnel(
    tables: &Tables,
    macs: &mut MacTable,
    protocol: TunnelProtocol,
    buf: &mut PacketBuf,
    now: Duration,
) -> Result<Verdict, DropReason> {
    let remote = buf.peer.ok_or(DropReason::UnknownEndpoint)?;
    if !tables.is_known_remote(remote) {
        return Err(DropReason::UnknownEndpoint);
    }
    let (ls, inner) = match protocol {
        TunnelProtocol::Vxlan => {
            let (vni, inner) = encap::decapsulate_vxlan(buf.frame())?;
            (tables.switch_for_tunnel(TunnelKey::Vxlan(vni.get())), inner)
        }
        TunnelProtocol::Gre => {
            let (tunnel, inner) = encap::decapsulate_gre(buf.frame())?;
            let ls = match tunnel {
                // An NVGRE-shaped header may also be a GRE-key network's (the wire cannot tell).
                encap::Tunnel::Nvgre { vsid, .. } => tables
                    .switch_for_tunnel(TunnelKey::Nvgre(vsid.get()))
                    .or_else(|| tables.switch_for_tunnel(TunnelKey::Gre(tunnel.wire_id().1))),
                encap::Tunnel::Gre { key } => tables.switch_for_tunnel(TunnelKey::Gre(key)),
                encap::Tunnel::Vxlan { .. } => None,
            };
            (ls, inner)
        }
    };
    let ls = ls.ok_or(DropReason::UnknownTunnelId)?;
    let start = buf.start();
    buf.set_end(start + inner.end);
    buf.set_start(start + inner.start);
    let eth = ethernet::Frame::new_checked(buf.frame())?;
    if eth.ethertype().is_vlan_tag() {
        return Err(DropReason::UnexpectedTag);
    }
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    learn(tables, macs, ls, src, Location::Remote(remote), now);
    Ok(
        match unicast_or_flood(tables, macs, ls, PortId(u16::MAX), dst, now) {
            // Split horizon: what came from the underlay never goes back into it.
            Verdict::Tunnel { .. } | Verdict::Forward { vlan: Some(_), .. } => {
                Verdict::Drop(DropReason::Loopback)
            }
            verdict => verdict,
        },
    )
}
