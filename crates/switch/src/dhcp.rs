//! The DHCP responder (RFC 2131): the switch answers a VM's DHCP client messages itself, from
//! the address its port is configured with, so a tenant network needs no DHCP server process,
//! namespace or broadcast across a tunnel (OVN's native DHCP does the same).
//!
//! Sans-IO and stateless: [`respond`] takes the client's frame and the port's [`Lease`] and
//! returns the reply frame, if any, with an [`Outcome`] to count. There is nothing to
//! remember between messages: the address is the port's, fixed by configuration, so an offer
//! and the request that follows it need no shared state. The pipeline punts a frame here only
//! after [`is_client_message`] (a few byte compares, no allocation) and [`lease`] found it is
//! one of ours; building the reply allocates, as the DHCP codec does, which is fine for a
//! message a VM sends every few minutes.

use core::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use wire::{
    EtherType, IpProtocol, MacAddr,
    dhcpv4::{self, DhcpOption, Message, MessageType, Opcode, OptionCode},
    ethernet, ipv4, udp,
};

/// The lease time when a subnet does not say (a day, as Neutron's `dhcp_lease_duration`).
pub const DEFAULT_LEASE_SECS: u32 = 86_400;
/// The limited broadcast address replies go to when the client cannot take unicast yet.
const BROADCAST_IP: Ipv4Addr = Ipv4Addr::BROADCAST;

/// One DHCP-enabled IPv4 subnet of a logical switch: what the switch tells its VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The subnet; a port whose fixed IPv4 address lies in it is answered.
    pub cidr: Ipv4Net,
    /// The server identifier, and the source of replies.
    pub server_ip: Ipv4Addr,
    /// The source MAC of replies, and the answer to ARP for `server_ip`.
    pub server_mac: MacAddr,
    /// The default gateway (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Host routes (option 121).
    pub routes: Vec<Route>,
    /// The interface MTU (option 26), if set.
    pub mtu: Option<u16>,
    /// The lease time in seconds (option 51); T1 and T2 are 50 % and 87.5 % of it.
    pub lease_secs: u32,
    /// The domain name (option 15), if set.
    pub domain: Option<String>,
}

/// A classless static route (RFC 3442).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination prefix.
    pub destination: Ipv4Net,
    /// The router to it (0.0.0.0: on link).
    pub nexthop: Ipv4Addr,
}

/// What one client message came to; each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A DISCOVER answered with an OFFER.
    Offer,
    /// A REQUEST or INFORM answered with an ACK.
    Ack,
    /// A REQUEST for an address that is not the port's, answered with a NAK.
    Nak,
    /// A RELEASE (nothing to do: the address stays the port's).
    Released,
    /// A DECLINE (the client found the address in use; an operator must look).
    Declined,
    /// A message that needs no answer: a REQUEST for another server, another client's
    /// hardware address, a message type a client does not send.
    Ignored,
    /// Not a well-formed DHCP message; dropped.
    Malformed,
}

impl Outcome {
    /// Every outcome, in declaration order (index = counter slot).
    pub const ALL: &[Self] = &[
        Self::Offer,
        Self::Ack,
        Self::Nak,
        Self::Released,
        Self::Declined,
        Self::Ignored,
        Self::Malformed,
    ];

    /// The counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offers",
            Self::Ack => "acks",
            Self::Nak => "naks",
            Self::Released => "releases",
            Self::Declined => "declines",
            Self::Ignored => "ignored",
            Self::Malformed => "malformed",
        }
    }

    /// The counter slot.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True when [`respond`] made a reply for this outcome.
    pub const fn replies(self) -> bool {
        matches!(self, Self::Offer | Self::Ack | Self::Nak)
    }
}

/// The address a port gets: its fixed IPv4 address inside one of its network's subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The subnet the address lies in.
    pub subnet: &'a Subnet,
    /// The port's address.
    pub ip: Ipv4Addr,
    /// The port's MAC address (the only client hardware address answered).
    pub mac: MacAddr,
}

/// The lease of a port with `mac` and fixed addresses `ips` on a network with `subnets`: the
/// first IPv4 address that lies in one of them. `None` means the switch does not answer that
/// port's DHCP (a tenant may run its own server), and its DHCP frames are forwarded as usual.
pub fn lease<'a>(mac: MacAddr, ips: &[IpAddr], subnets: &'a [Subnet]) -> Option<Lease<'a>> {
    if subnets.is_empty() {
        return None;
    }
    ips.iter().find_map(|ip| {
        let IpAddr::V4(ip) = *ip else { return None };
        let subnet = subnets.iter().find(|s| s.cidr.contains(&ip))?;
        Some(Lease { subnet, ip, mac })
    })
}

/// True when `frame` (an untagged Ethernet frame) is an IPv4 UDP datagram from the DHCP client
/// port to the server port, unfragmented. Reads a few header bytes; allocates nothing.
pub fn is_client_message(frame: &[u8]) -> bool {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EtherType::IPV4 {
        return false;
    }
    let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else {
        return false;
    };
    if ip.protocol() != IpProtocol::UDP || ip.is_fragment() {
        return false;
    }
    ip.payload().get(..4) == Some(&CLIENT_TO_SERVER[..])
}

/// The UDP source and destination ports of a client message, as on the wire.
const CLIENT_TO_SERVER: [u8; 4] = {
    let [c0, c1] = dhcpv4::CLIENT_PORT.to_be_bytes();
    let [s0, s1] = dhcpv4::SERVER_PORT.to_be_bytes();
    [c0, c1, s0, s1]
};

/// What [`respond`] made of a client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// What happened, for the counters.
    pub outcome: Outcome,
    /// The reply frame to send back to the client's port, if there is one.
    pub reply: Option<Vec<u8>>,
}

impl Response {
    fn none(outcome: Outcome) -> Self {
        Self {
            outcome,
            reply: None,
        }
    }
}

/// Answers the DHCP client message in `frame` (which [`is_client_message`] accepted) for a
/// port holding `lease`: DISCOVER → OFFER; REQUEST → ACK for the port's address, NAK for
/// another; INFORM → ACK without an address; RELEASE and DECLINE are counted only.
pub fn respond(frame: &[u8], lease: &Lease<'_>) -> Response {
    let Some(request) = parse(frame) else {
        return Response::none(Outcome::Malformed);
    };
    let message = &request.message;
    if message.opcode() != Opcode::BootRequest || request.client_mac() != Some(lease.mac) {
        return Response::none(Outcome::Ignored);
    }
    let server = lease.subnet.server_ip;
    let reply = match request.message_type() {
        Some(MessageType::Discover) => Reply::Offer,
        Some(MessageType::Request) => {
            if let Some(DhcpOption::ServerIdentifier(chosen)) =
                message.opts().get(OptionCode::ServerIdentifier)
                && *chosen != server
            {
                // The client took another server's offer (RFC 2131 §4.3.2): not for us.
                return Response::none(Outcome::Ignored);
            }
            let requested = match message.opts().get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
                _ => Some(message.ciaddr()).filter(|ip| !ip.is_unspecified()),
            };
            match requested {
                Some(ip) if ip == lease.ip => Reply::Ack,
                Some(_) => Reply::Nak,
                None => return Response::none(Outcome::Malformed),
            }
        }
        Some(MessageType::Inform) => Reply::InformAck,
        Some(MessageType::Release) => return Response::none(Outcome::Released),
        Some(MessageType::Decline) => return Response::none(Outcome::Declined),
        _ => return Response::none(Outcome::Ignored),
    };
    match build(message, lease, reply) {
        Some(frame) => Response {
            outcome: reply.outcome(),
            reply: Some(frame),
        },
        None => Response::none(Outcome::Malformed),
    }
}

/// The DHCP message in an Ethernet/IPv4/UDP frame.
fn parse(frame: &[u8]) -> Option<dhcpv4::Repr> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let udp = udp::Packet::new_checked(ip.payload()).ok()?;
    dhcpv4::Repr::parse(udp.payload()).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Offer,
    Ack,
    Nak,
    /// An ACK to an INFORM: configuration only, no address and no lease (RFC 2131 §3.4).
    InformAck,
}

impl Reply {
    const fn outcome(self) -> Outcome {
        match self {
            Self::Offer => Outcome::Offer,
            Self::Ack | Self::InformAck => Outcome::Ack,
            Self::Nak => Outcome::Nak,
        }
    }
}

/// The reply frame; `None` only if the codec cannot encode it (it can: every option here is
/// within its size limits, but the codec's error is not ours to unwrap).
fn build(request: &Message, lease: &Lease<'_>, reply: Reply) -> Option<Vec<u8>> {
    let subnet = lease.subnet;
    let ciaddr = request.ciaddr();
    // RFC 2131 table 3: 'ciaddr' is echoed in an ACK (a renewing client has its address),
    // 'yiaddr' is the address offered or bound.
    let (reply_ciaddr, yiaddr) = match reply {
        Reply::Offer => (Ipv4Addr::UNSPECIFIED, lease.ip),
        Reply::Ack => (ciaddr, lease.ip),
        Reply::InformAck => (ciaddr, Ipv4Addr::UNSPECIFIED),
        Reply::Nak => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
    };
    let mut message = Message::new_with_id(
        request.xid(),
        reply_ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        request.giaddr(),
        &lease.mac.0,
    );
    message
        .set_opcode(Opcode::BootReply)
        .set_htype(request.htype())
        .set_flags(request.flags());
    let opts = message.opts_mut();
    opts.insert(DhcpOption::MessageType(match reply {
        Reply::Offer => MessageType::Offer,
        Reply::Ack | Reply::InformAck => MessageType::Ack,
        Reply::Nak => MessageType::Nak,
    }));
    opts.insert(DhcpOption::ServerIdentifier(subnet.server_ip));
    if reply == Reply::Nak {
        opts.insert(DhcpOption::Message(format!(
            "this port's address is {}",
            lease.ip
        )));
    } else {
        if reply != Reply::InformAck {
            let lease_secs = subnet.lease_secs;
            opts.insert(DhcpOption::AddressLeaseTime(lease_secs));
            opts.insert(DhcpOption::Renewal(t1(lease_secs)));
            opts.insert(DhcpOption::Rebinding(t2(lease_secs)));
        }
        opts.insert(DhcpOption::SubnetMask(subnet.cidr.netmask()));
        opts.insert(DhcpOption::BroadcastAddr(subnet.cidr.broadcast()));
        if let Some(router) = subnet.router {
            opts.insert(DhcpOption::Router(vec![router]));
        }
        if !subnet.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServer(subnet.dns.clone()));
        }
        if let Some(domain) = &subnet.domain {
            opts.insert(DhcpOption::DomainName(domain.clone()));
        }
        if let Some(mtu) = subnet.mtu {
            opts.insert(DhcpOption::InterfaceMtu(mtu));
        }
        let routes = classless_routes(subnet);
        if !routes.is_empty() {
            opts.insert(DhcpOption::ClasslessStaticRoute(routes));
        }
    }
    let repr = dhcpv4::Repr { message };
    let mut payload = vec![0; repr.buffer_len().ok()?.max(dhcpv4::BOOTP_MIN_LEN)];
    let len = repr.emit_padded(&mut payload).ok()?;
    payload.truncate(len);
    // RFC 2131 §4.1: a NAK is broadcast; a client with an address (renewing, informing) gets
    // unicast to it; one without gets broadcast if it asked, else unicast to the new address
    // at its hardware address.
    let (dst_mac, dst_ip) = if reply == Reply::Nak {
        (MacAddr::BROADCAST, BROADCAST_IP)
    } else if !ciaddr.is_unspecified() {
        (lease.mac, ciaddr)
    } else if request.flags().broadcast() || yiaddr.is_unspecified() {
        // Also an INFORM that did not say its address: there is nothing to unicast to.
        (MacAddr::BROADCAST, BROADCAST_IP)
    } else {
        (lease.mac, yiaddr)
    };
    Some(wire::build::udp_ipv4(
        subnet.server_mac,
        dst_mac,
        subnet.server_ip,
        dst_ip,
        (dhcpv4::SERVER_PORT, dhcpv4::CLIENT_PORT),
        &payload,
    ))
}

/// T1, the renewal time: half the lease (RFC 2131 §4.4.5). An infinite lease stays infinite.
fn t1(lease_secs: u32) -> u32 {
    if lease_secs == u32::MAX {
        return u32::MAX;
    }
    lease_secs / 2
}

/// T2, the rebinding time: seven eighths of the lease (RFC 2131 §4.4.5).
fn t2(lease_secs: u32) -> u32 {
    if lease_secs == u32::MAX {
        return u32::MAX;
    }
    u32::try_from(u64::from(lease_secs) * 7 / 8).unwrap_or(u32::MAX)
}

/// Option 121's routes: the subnet's, and the default route via the router, because a client
/// that gets option 121 ignores option 3 (RFC 3442 §3). No routes, no option: the router then
/// comes from option 3 alone.
fn classless_routes(subnet: &Subnet) -> Vec<(Ipv4Net, Ipv4Addr)> {
    if subnet.routes.is_empty() {
        return Vec::new();
    }
    let mut routes: Vec<(Ipv4Net, Ipv4Addr)> = subnet
        .routes
        .iter()
        .map(|r| (r.destination.trunc(), r.nexthop))
        .collect();
    let has_default = routes.iter().any(|(dest, _)| dest.prefix_len() == 0);
    if let Some(router) = subnet.router
        && !has_default
    {
        routes.push((Ipv4Net::default(), router));
    }
    routes
}

#[cfg(test)]
mod tests {
    use wire::dhcpv4::DhcpOptions;

    use super::*;

    const VM: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
    const SERVER_MAC: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0xff, 0, 1]);
    const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn subnet() -> Subnet {
        Subnet {
            cidr: "10.0.0.0/24".parse().unwrap(),
            server_ip: SERVER_IP,
            server_mac: SERVER_MAC,
            router: Some(SERVER_IP),
            dns: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(192, 0, 2, 53)],
            routes: vec![Route {
                destination: "169.254.169.254/32".parse().unwrap(),
                nexthop: Ipv4Addr::new(10, 0, 0, 3),
            }],
            mtu: Some(1450),
            lease_secs: 600,
            domain: Some("tenant.example".into()),
        }
    }

    fn client_frame(message: Message, src_ip: Ipv4Addr, dst: (MacAddr, Ipv4Addr)) -> Vec<u8> {
        let repr = dhcpv4::Repr { message };
        let mut payload = vec![0; 600];
        let len = repr.emit_padded(&mut payload).unwrap();
        payload.truncate(len);
        wire::build::udp_ipv4(VM, dst.0, src_ip, dst.1, (68, 67), &payload)
    }

    fn message(kind: MessageType, ciaddr: Ipv4Addr, opts: &[DhcpOption]) -> Message {
        let mut message = Message::new_with_id(
            0x0bad_cafe,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &VM.0,
        );
        message.opts_mut().insert(DhcpOption::MessageType(kind));
        for opt in opts {
            message.opts_mut().insert(opt.clone());
        }
        message
    }

    fn broadcast(kind: MessageType, opts: &[DhcpOption]) -> Vec<u8> {
        client_frame(
            message(kind, Ipv4Addr::UNSPECIFIED, opts),
            Ipv4Addr::UNSPECIFIED,
            (MacAddr::BROADCAST, BROADCAST_IP),
        )
    }

    fn answer(frame: &[u8]) -> Response {
        let subnet = subnet();
        let lease = lease(VM, &[IpAddr::V4(VM_IP)], core::slice::from_ref(&subnet)).unwrap();
        respond(frame, &lease)
    }

    /// The reply's Ethernet destination, IPv4 source and destination, and DHCP message, each
    /// parsed by `wire`'s own parsers from the frame.
    fn decode(frame: &[u8]) -> (MacAddr, Ipv4Addr, Ipv4Addr, Message) {
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.src_addr(), SERVER_MAC);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let udp = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
        assert!(udp.verify_checksum(&wire::checksum::PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr()
        }));
        assert!(udp.payload().len() >= dhcpv4::BOOTP_MIN_LEN);
        let repr = dhcpv4::Repr::parse(udp.payload()).unwrap();
        (eth.dst_addr(), ip.src_addr(), ip.dst_addr(), repr.message)
    }

    fn opt(opts: &DhcpOptions, code: OptionCode) -> Option<DhcpOption> {
        opts.get(code).cloned()
    }

    #[test]
    fn test_discover_gets_an_offer_with_every_option() {
        let response = answer(&broadcast(MessageType::Discover, &[]));
        assert_eq!(response.outcome, Outcome::Offer);
        let (dst_mac, src_ip, dst_ip, reply) = decode(&response.reply.unwrap());
        // No broadcast flag: unicast to the offered address at the client's MAC.
        assert_eq!((dst_mac, src_ip, dst_ip), (VM, SERVER_IP, VM_IP));
        assert_eq!(reply.opcode(), Opcode::BootReply);
        assert_eq!(reply.xid(), 0x0bad_cafe);
        assert_eq!(reply.yiaddr(), VM_IP);
        assert_eq!(reply.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(&reply.chaddr()[..6], &VM.0);
        let opts = reply.opts();
        assert_eq!(opts.msg_type(), Some(MessageType::Offer));
        let expected = [
            DhcpOption::ServerIdentifier(SERVER_IP),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 0, 0, 255)),
            DhcpOption::Router(vec![SERVER_IP]),
            DhcpOption::DomainNameServer(subnet().dns),
            DhcpOption::DomainName("tenant.example".into()),
            DhcpOption::InterfaceMtu(1450),
            DhcpOption::AddressLeaseTime(600),
            DhcpOption::Renewal(300),
            DhcpOption::Rebinding(525),
            DhcpOption::ClasslessStaticRoute(vec![
                (
                    "169.254.169.254/32".parse().unwrap(),
                    Ipv4Addr::new(10, 0, 0, 3),
                ),
                ("0.0.0.0/0".parse().unwrap(), SERVER_IP),
            ]),
        ];
        for option in expected {
            assert_eq!(
                opt(opts, OptionCode::from(&option)),
                Some(option.clone()),
                "{option:?}"
            );
        }
    }

    #[test]
    fn test_broadcast_flag_gets_a_broadcast_reply() {
        let mut message = message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
        message.set_flags(message.flags().set_broadcast());
        let frame = client_frame(
            message,
            Ipv4Addr::UNSPECIFIED,
            (MacAddr::BROADCAST, BROADCAST_IP),
        );
        let (dst_mac, _, dst_ip, reply) = decode(&answer(&frame).reply.unwrap());
        assert_eq!((dst_mac, dst_ip), (MacAddr::BROADCAST, BROADCAST_IP));
        assert!(reply.flags().broadcast(), "the flag is echoed");
    }

    #[test]
    fn test_request_for_the_ports_address_is_acked() {
        // SELECTING: option 50 and the server identifier.
        let selecting = broadcast(
            MessageType::Request,
            &[
                DhcpOption::RequestedIpAddress(VM_IP),
                DhcpOption::ServerIdentifier(SERVER_IP),
            ],
        );
        let response = answer(&selecting);
        assert_eq!(response.outcome, Outcome::Ack);
        let (_, _, dst_ip, reply) = decode(&response.reply.unwrap());
        assert_eq!(dst_ip, VM_IP);
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(reply.yiaddr(), VM_IP);
        assert_eq!(
            opt(reply.opts(), OptionCode::AddressLeaseTime),
            Some(DhcpOption::AddressLeaseTime(600))
        );
        // INIT-REBOOT: option 50, no server identifier.
        let reboot = broadcast(
            MessageType::Request,
            &[DhcpOption::RequestedIpAddress(VM_IP)],
        );
        assert_eq!(answer(&reboot).outcome, Outcome::Ack);
        // RENEWING: unicast from the address, ciaddr set, no option 50; the ACK goes to ciaddr.
        let renewing = client_frame(
            message(MessageType::Request, VM_IP, &[]),
            VM_IP,
            (SERVER_MAC, SERVER_IP),
        );
        let response = answer(&renewing);
        assert_eq!(response.outcome, Outcome::Ack);
        let (dst_mac, _, dst_ip, reply) = decode(&response.reply.unwrap());
        assert_eq!((dst_mac, dst_ip), (VM, VM_IP));
        assert_eq!((reply.ciaddr(), reply.yiaddr()), (VM_IP, VM_IP));
        // REBINDING: the same, broadcast.
        let rebinding = client_frame(
            message(MessageType::Request, VM_IP, &[]),
            VM_IP,
            (MacAddr::BROADCAST, BROADCAST_IP),
        );
        assert_eq!(answer(&rebinding).outcome, Outcome::Ack);
    }

    #[test]
    fn test_request_for_another_address_is_naked() {
        for frame in [
            broadcast(
                MessageType::Request,
                &[DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 99))],
            ),
            client_frame(
                message(MessageType::Request, Ipv4Addr::new(10, 0, 0, 99), &[]),
                Ipv4Addr::new(10, 0, 0, 99),
                (SERVER_MAC, SERVER_IP),
            ),
        ] {
            let response = answer(&frame);
            assert_eq!(response.outcome, Outcome::Nak);
            let (dst_mac, _, dst_ip, reply) = decode(&response.reply.unwrap());
            assert_eq!((dst_mac, dst_ip), (MacAddr::BROADCAST, BROADCAST_IP));
            assert_eq!(reply.opts().msg_type(), Some(MessageType::Nak));
            assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
            assert_eq!(
                opt(reply.opts(), OptionCode::ServerIdentifier),
                Some(DhcpOption::ServerIdentifier(SERVER_IP))
            );
            // A NAK carries no configuration.
            assert_eq!(opt(reply.opts(), OptionCode::AddressLeaseTime), None);
            assert_eq!(opt(reply.opts(), OptionCode::Router), None);
        }
    }

    #[test]
    fn test_request_for_another_server_and_for_nothing() {
        let other = broadcast(
            MessageType::Request,
            &[
                DhcpOption::RequestedIpAddress(VM_IP),
                DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 254)),
            ],
        );
        assert_eq!(answer(&other), Response::none(Outcome::Ignored));
        // Neither option 50 nor ciaddr: a REQUEST that names no address.
        let nothing = broadcast(MessageType::Request, &[]);
        assert_eq!(answer(&nothing), Response::none(Outcome::Malformed));
    }

    #[test]
    fn test_inform_gets_configuration_without_an_address() {
        let inform = client_frame(
            message(MessageType::Inform, VM_IP, &[]),
            VM_IP,
            (MacAddr::BROADCAST, BROADCAST_IP),
        );
        let response = answer(&inform);
        assert_eq!(response.outcome, Outcome::Ack);
        let (_, _, dst_ip, reply) = decode(&response.reply.unwrap());
        assert_eq!(dst_ip, VM_IP);
        assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.ciaddr(), VM_IP);
        // RFC 2131 §4.3.5: no lease time in the answer to an INFORM.
        for code in [
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ] {
            assert_eq!(opt(reply.opts(), code), None, "{code:?}");
        }
        assert_eq!(
            opt(reply.opts(), OptionCode::InterfaceMtu),
            Some(DhcpOption::InterfaceMtu(1450))
        );
        // An INFORM without its address in ciaddr gets the answer broadcast, not sent to
        // 0.0.0.0.
        let bare = broadcast(MessageType::Inform, &[]);
        let (dst_mac, _, dst_ip, _) = decode(&answer(&bare).reply.unwrap());
        assert_eq!((dst_mac, dst_ip), (MacAddr::BROADCAST, BROADCAST_IP));
    }

    #[test]
    fn test_release_decline_and_server_messages_get_no_answer() {
        let release = client_frame(
            message(MessageType::Release, VM_IP, &[]),
            VM_IP,
            (SERVER_MAC, SERVER_IP),
        );
        assert_eq!(answer(&release), Response::none(Outcome::Released));
        let decline = broadcast(
            MessageType::Decline,
            &[DhcpOption::RequestedIpAddress(VM_IP)],
        );
        assert_eq!(answer(&decline), Response::none(Outcome::Declined));
        let offer = broadcast(MessageType::Offer, &[]);
        assert_eq!(answer(&offer), Response::none(Outcome::Ignored));
        // Another client's hardware address (a nested VM behind this port, say).
        let mut foreign = message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
        foreign.set_chaddr(&[2, 0, 0, 0, 0, 9]);
        let frame = client_frame(
            foreign,
            Ipv4Addr::UNSPECIFIED,
            (MacAddr::BROADCAST, BROADCAST_IP),
        );
        assert_eq!(answer(&frame), Response::none(Outcome::Ignored));
        // A BOOTREPLY sent by a client.
        let mut reply = message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
        reply.set_opcode(Opcode::BootReply);
        let frame = client_frame(
            reply,
            Ipv4Addr::UNSPECIFIED,
            (MacAddr::BROADCAST, BROADCAST_IP),
        );
        assert_eq!(answer(&frame), Response::none(Outcome::Ignored));
    }

    #[test]
    fn test_malformed_messages_are_dropped_and_never_panic() {
        let good = broadcast(MessageType::Discover, &[]);
        let udp_payload = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
        // Every truncation of a good frame: the IPv4 or UDP length then runs past the end.
        for len in 0..good.len() {
            assert_eq!(
                answer(&good[..len]),
                Response::none(Outcome::Malformed),
                "{len}"
            );
        }
        // No magic cookie (plain BOOTP), a hardware length over 16, an option cut short:
        // the UDP payload rewritten in place, UDP checksum zeroed (none, for IPv4).
        type Breaker = fn(&mut Vec<u8>, usize);
        let cases: [(&str, Breaker); 3] = [
            ("no cookie", |f, at| f[at + 236] = 0),
            ("hlen 17", |f, at| f[at + 2] = 17),
            ("option runs past the end", |f, at| {
                f.truncate(at + 240);
                f.extend_from_slice(&[53, 1, 1, 26, 9, 5]);
            }),
        ];
        for (what, break_it) in cases {
            let mut frame = good.clone();
            break_it(&mut frame, udp_payload);
            let udp_len = u16::try_from(frame.len() - udp_payload + 8).unwrap();
            let ip_len = udp_len + 20;
            frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
            ipv4::Packet::new_unchecked(&mut frame[14..34]).fill_checksum();
            frame[38..40].copy_from_slice(&udp_len.to_be_bytes());
            frame[40..42].fill(0);
            assert!(is_client_message(&frame), "{what}");
            assert_eq!(answer(&frame), Response::none(Outcome::Malformed), "{what}");
        }
        // Random bytes after a valid UDP header never panic.
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut frame = good.clone();
            for byte in &mut frame[udp_payload..] {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if state.is_multiple_of(7) {
                    *byte = state.to_be_bytes()[0];
                }
            }
            let _ = answer(&frame);
        }
    }

    #[test]
    fn test_is_client_message_and_lease() {
        assert!(is_client_message(&broadcast(MessageType::Discover, &[])));
        let server_to_client =
            wire::build::udp_ipv4(SERVER_MAC, VM, SERVER_IP, VM_IP, (67, 68), &[0; 300]);
        assert!(!is_client_message(&server_to_client));
        let dns = wire::build::udp_ipv4(VM, SERVER_MAC, VM_IP, SERVER_IP, (68, 53), &[0; 30]);
        assert!(!is_client_message(&dns));
        assert!(!is_client_message(&[0; 20]));
        let subnets = [subnet()];
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        let outside = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(lease(VM, &[v6, outside], &subnets), None);
        assert_eq!(
            lease(VM, &[v6, outside, IpAddr::V4(VM_IP)], &subnets).map(|l| l.ip),
            Some(VM_IP)
        );
        assert_eq!(lease(VM, &[IpAddr::V4(VM_IP)], &[]), None);
    }

    /// RFC 3442 §2's encoding, byte by byte: each route is the prefix length, only the
    /// significant octets of the destination, then the router.
    #[test]
    fn test_classless_static_routes_encode_as_rfc_3442() {
        let mut subnet = subnet();
        subnet.routes = vec![
            Route {
                destination: "10.17.0.0/16".parse().unwrap(),
                nexthop: Ipv4Addr::new(10, 0, 0, 3),
            },
            Route {
                // Host bits set in the configuration: only the prefix goes on the wire.
                destination: "10.27.129.7/17".parse().unwrap(),
                nexthop: Ipv4Addr::new(10, 0, 0, 4),
            },
            Route {
                destination: "192.0.2.9/32".parse().unwrap(),
                nexthop: Ipv4Addr::UNSPECIFIED,
            },
        ];
        let lease = Lease {
            subnet: &subnet,
            ip: VM_IP,
            mac: VM,
        };
        let response = respond(&broadcast(MessageType::Discover, &[]), &lease);
        let frame = response.reply.unwrap();
        let options = &frame[ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + 240..];
        let at = find_option(options, 121).expect("option 121");
        let expected: &[u8] = &[
            16, 10, 17, 10, 0, 0, 3, // 10.17.0.0/16 via 10.0.0.3
            17, 10, 27, 128, 10, 0, 0, 4, // 10.27.128.0/17 via 10.0.0.4
            32, 192, 0, 2, 9, 0, 0, 0, 0, // 192.0.2.9/32 on link
            0, 10, 0, 0, 1, // the default route via the router
        ];
        assert_eq!(at, expected);
        // Without routes, no option 121 (and the router comes from option 3).
        subnet.routes.clear();
        let lease = Lease {
            subnet: &subnet,
            ip: VM_IP,
            mac: VM,
        };
        let frame = respond(&broadcast(MessageType::Discover, &[]), &lease)
            .reply
            .unwrap();
        let options = &frame[ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + 240..];
        assert_eq!(find_option(options, 121), None);
        assert_eq!(find_option(options, 3), Some(&[10, 0, 0, 1][..]));
    }

    /// The data of option `code` in an option area, by walking it by hand.
    fn find_option(mut options: &[u8], code: u8) -> Option<&[u8]> {
        loop {
            match options {
                [] | [255, ..] => return None,
                [0, rest @ ..] => options = rest,
                [c, len, rest @ ..] => {
                    let data = rest.get(..usize::from(*len))?;
                    if *c == code {
                        return Some(data);
                    }
                    options = &rest[data.len()..];
                }
                [_] => return None,
            }
        }
    }

    #[test]
    fn test_lease_times() {
        assert_eq!((t1(5), t2(5)), (2, 4));
        assert_eq!((t1(86_400), t2(86_400)), (43_200, 75_600));
        assert_eq!((t1(u32::MAX), t2(u32::MAX)), (u32::MAX, u32::MAX));
    }
}
