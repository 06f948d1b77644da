//! A one-line, outer-to-inner description of a frame, chaining each layer's `Display`.
//!
//! `eth 02:00:00:00:00:01 > 02:00:00:00:00:02 ipv4 192.0.2.1 > 192.0.2.2 udp 49152 > 4789 len 58
//! vxlan vni 100 | eth fa:16:3e:00:00:01 > ff:ff:ff:ff:ff:ff arp who-has 10.0.5.2 tell 10.0.5.7`
//!
//! `eth 52:54:00:00:5e:01 > 01:80:c2:00:00:00 ecp req vdp seq 1 | vdp mgr evmgr1 | assoc req
//! type 5 v4 uuid aaaaaaaa-0000-4000-8000-000000000001 mac-vid [52:54:00:8e:aa:11 vid 0]`; the
//! EVB and CDCP TLVs of an LLDPDU are decoded in place of their `org OUI/subtype` word.
//!
//! A layer that cannot be parsed ends the line with `[layer: reason]`, after whatever was
//! decoded; nothing here panics, and only DHCP and VDP decoding allocate. This is the base of
//! `weft decode` and `weft trace`.

use core::fmt::{self, Write};

use crate::{
    Error, EtherType, IpProtocol, arp, checksum::PseudoHeader, dhcpv4, ecp, ethernet, gre, icmpv4,
    ipv4, ipv6, lldp, udp, vdp, vlan, vxlan,
};

/// How many tunnels deep the printer follows (a crafted packet could nest them without end).
const MAX_DEPTH: usize = 4;
/// How many VLAN tags the printer shows before giving up on a frame.
const MAX_TAGS: usize = 8;

/// Displays a whole Ethernet frame, outer to inner, on one line.
#[derive(Debug, Clone, Copy)]
pub struct PrettyPrinter<'a> {
    frame: &'a [u8],
    /// `None` for an Ethernet frame, else the EtherType of a packet with no link header.
    network: Option<EtherType>,
    vxlan_port: u16,
}

impl<'a> PrettyPrinter<'a> {
    /// A printer for an Ethernet frame, reading UDP port 4789 as VXLAN.
    pub const fn new(frame: &'a [u8]) -> Self {
        Self {
            frame,
            network: None,
            vxlan_port: vxlan::PORT,
        }
    }

    /// A printer for a packet captured without its Ethernet header (Linux "cooked" captures,
    /// raw IP), given what the header's EtherType would have been.
    pub const fn network(ethertype: EtherType, packet: &'a [u8]) -> Self {
        Self {
            frame: packet,
            network: Some(ethertype),
            vxlan_port: vxlan::PORT,
        }
    }

    /// Reads another UDP destination port as VXLAN too.
    pub const fn with_vxlan_port(mut self, port: u16) -> Self {
        self.vxlan_port = port;
        self
    }
}

impl fmt::Display for PrettyPrinter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut walker = Walker {
            f,
            vxlan_port: self.vxlan_port,
        };
        match self.network {
            None => walker.frame(self.frame, 0),
            Some(ethertype) => {
                write!(walker.f, "{ethertype}:")?;
                walker.ethertype(ethertype, self.frame, 0)
            }
        }
    }
}

struct Walker<'f, 'g> {
    f: &'f mut fmt::Formatter<'g>,
    vxlan_port: u16,
}

impl Walker<'_, '_> {
    fn fail(&mut self, layer: &str, err: Error) -> fmt::Result {
        write!(self.f, " [{layer}: {err}]")
    }

    fn frame(&mut self, bytes: &[u8], depth: usize) -> fmt::Result {
        let eth = match ethernet::Frame::new_checked(bytes) {
            Ok(eth) => eth,
            Err(err) => return write!(self.f, "[eth: {err}, {} bytes]", bytes.len()),
        };
        let repr = ethernet::Repr {
            src_addr: eth.src_addr(),
            dst_addr: eth.dst_addr(),
            ethertype: eth.ethertype(),
        };
        write!(self.f, "{repr}")?;
        let mut ethertype = eth.ethertype();
        let mut rest = eth.payload();
        let mut tags = 0;
        while ethertype.is_vlan_tag() {
            if tags == MAX_TAGS {
                return self.fail("vlan", Error::Unsupported);
            }
            let tag = match vlan::Packet::new_checked(rest)
                .and_then(|t| Ok((vlan::Repr::parse(&t)?, t)))
            {
                Ok(tag) => tag,
                Err(err) => return self.fail("vlan", err),
            };
            if ethertype == EtherType::QINQ {
                write!(self.f, " s-{}", tag.0)?;
            } else {
                write!(self.f, " {}", tag.0)?;
            }
            ethertype = tag.0.ethertype;
            rest = tag.1.payload();
            tags += 1;
        }
        self.ethertype(ethertype, rest, depth)
    }

    fn ethertype(&mut self, ethertype: EtherType, rest: &[u8], depth: usize) -> fmt::Result {
        match ethertype {
            EtherType::IPV4 | EtherType::IPV6 => self.ip(rest, depth),
            EtherType::ARP => {
                match arp::Packet::new_checked(rest).and_then(|p| arp::Repr::parse(&p)) {
                    Ok(repr) => write!(self.f, " {repr}"),
                    Err(err) => self.fail("arp", err),
                }
            }
            EtherType::LLDP => match lldp::Repr::parse(rest) {
                Ok(repr) => write!(self.f, " {repr}"),
                Err(err) => self.fail("lldp", err),
            },
            EtherType::ECP => self.ecp(rest),
            other => write!(self.f, " ethertype {other} len {}", rest.len()),
        }
    }

    fn ecp(&mut self, bytes: &[u8]) -> fmt::Result {
        let packet =
            match ecp::Packet::new_checked(bytes).and_then(|p| Ok((ecp::Repr::parse(&p)?, p))) {
                Ok(packet) => packet,
                Err(err) => return self.fail("ecp", err),
            };
        let (repr, packet) = packet;
        write!(self.f, " {repr}")?;
        if repr.operation != ecp::Operation::REQUEST || repr.subtype != ecp::Subtype::VDP {
            return Ok(());
        }
        match vdp::Repr::parse(packet.payload()) {
            Ok(vdpdu) => write!(self.f, " | {vdpdu}"),
            Err(err) => self.fail("vdp", err),
        }
    }

    fn ip(&mut self, bytes: &[u8], depth: usize) -> fmt::Result {
        let (protocol, payload, pseudo) = match bytes.first().map(|b| b >> 4) {
            Some(4) => {
                let packet = match ipv4::Packet::new_checked(bytes) {
                    Ok(packet) => packet,
                    Err(err) => {
                        // A snapped capture still has the fixed header: show who talked.
                        if bytes.len() >= ipv4::HEADER_LEN {
                            let fixed = ipv4::Packet::new_unchecked(&bytes[..ipv4::HEADER_LEN]);
                            write!(self.f, " ipv4 {} > {}", fixed.src_addr(), fixed.dst_addr())?;
                        }
                        return self.fail("ipv4", err);
                    }
                };
                let repr = match ipv4::Repr::parse(&packet) {
                    Ok(repr) => repr,
                    Err(err) => {
                        write!(
                            self.f,
                            " ipv4 {} > {}",
                            packet.src_addr(),
                            packet.dst_addr()
                        )?;
                        return self.fail("ipv4", err);
                    }
                };
                write!(self.f, " {repr}")?;
                if repr.frag_offset != 0 {
                    return self.f.write_str(" [fragment: payload not decoded]");
                }
                (
                    repr.protocol,
                    packet.payload(),
                    PseudoHeader::V4 {
                        src: repr.src_addr,
                        dst: repr.dst_addr,
                    },
                )
            }
            Some(6) => {
                let packet = match ipv6::Packet::new_checked(bytes)
                    .and_then(|p| Ok((ipv6::Repr::parse(&p)?, p)))
                {
                    Ok(packet) => packet,
                    Err(err) => return self.fail("ipv6", err),
                };
                let (repr, packet) = packet;
                write!(self.f, " {repr}")?;
                (
                    repr.next_header,
                    packet.payload(),
                    PseudoHeader::V6 {
                        src: repr.src_addr,
                        dst: repr.dst_addr,
                    },
                )
            }
            Some(_) => return self.fail("ip", Error::BadVersion),
            None => return self.fail("ip", Error::Truncated),
        };
        match protocol {
            IpProtocol::ICMP => {
                match icmpv4::Packet::new_checked(payload).and_then(|p| icmpv4::Repr::parse(&p)) {
                    Ok(repr) => write!(self.f, " {repr}"),
                    Err(err) => self.fail("icmp", err),
                }
            }
            IpProtocol::UDP => self.udp(payload, &pseudo, depth),
            IpProtocol::GRE => self.gre(payload, depth),
            other => write!(self.f, " {other} len {}", payload.len()),
        }
    }

    fn udp(&mut self, bytes: &[u8], pseudo: &PseudoHeader, depth: usize) -> fmt::Result {
        let datagram = match udp::Packet::new_checked(bytes) {
            Ok(datagram) => datagram,
            Err(err) => return self.fail("udp", err),
        };
        let repr = match udp::Repr::parse(&datagram, pseudo) {
            Ok(repr) => repr,
            Err(err) => {
                write!(
                    self.f,
                    " udp {} > {}",
                    datagram.src_port(),
                    datagram.dst_port()
                )?;
                return self.fail("udp", err);
            }
        };
        write!(self.f, " {repr}")?;
        let payload = datagram.payload();
        if repr.dst_port == self.vxlan_port {
            let packet = match vxlan::Packet::new_checked(payload)
                .and_then(|p| Ok((vxlan::Repr::parse(&p)?, p)))
            {
                Ok(packet) => packet,
                Err(err) => return self.fail("vxlan", err),
            };
            write!(self.f, " {}", packet.0)?;
            return self.inner(packet.1.payload(), depth);
        }
        let ports = [repr.src_port, repr.dst_port];
        if ports.contains(&dhcpv4::SERVER_PORT) && ports.contains(&dhcpv4::CLIENT_PORT) {
            return match dhcpv4::Repr::parse(payload) {
                Ok(repr) => write!(self.f, " {repr}"),
                Err(err) => self.fail("dhcp", err),
            };
        }
        Ok(())
    }

    fn gre(&mut self, bytes: &[u8], depth: usize) -> fmt::Result {
        let packet =
            match gre::Packet::new_checked(bytes).and_then(|p| Ok((gre::Repr::parse(&p)?, p))) {
                Ok(packet) => packet,
                Err(err) => return self.fail("gre", err),
            };
        let (repr, packet) = packet;
        write!(self.f, " {repr}")?;
        match repr.protocol {
            EtherType::TRANSPARENT_ETHERNET => self.inner(packet.payload(), depth),
            EtherType::IPV4 | EtherType::IPV6 if depth < MAX_DEPTH => {
                self.f.write_str(" |")?;
                self.ip(packet.payload(), depth + 1)
            }
            _ => Ok(()),
        }
    }

    fn inner(&mut self, frame: &[u8], depth: usize) -> fmt::Result {
        if depth >= MAX_DEPTH {
            return self.f.write_str(" | [tunnels nested too deep]");
        }
        self.f.write_str(" | ")?;
        self.frame(frame, depth + 1)
    }
}

/// Writes the description of `frame` into `out` (a convenience for callers with a `String`).
pub fn describe(out: &mut impl Write, frame: &[u8]) -> fmt::Result {
    write!(out, "{}", PrettyPrinter::new(frame))
}
