//! Tunnel encapsulation into headroom, and decapsulation, for IPv4 and IPv6 underlays.
//!
//! The switch keeps every frame in a buffer with headroom in front of it. Encapsulating writes
//! the outer headers into that headroom, innermost first, and never copies the inner frame:
//! each `push_*` takes the frame's current start and returns the new one. A backend that hands
//! the frame to a kernel socket stops early (a UDP socket wants only the VXLAN header; a raw
//! IP socket wants the GRE header), an AF_PACKET uplink wants the whole frame from
//! [`encapsulate`]. [`decapsulate`] goes the other way and returns where the inner frame is.

use core::{fmt, net::IpAddr, ops::Range};

use crate::{
    Error, EtherType, IpProtocol, MacAddr, Result, Vni,
    checksum::PseudoHeader,
    ethernet, gre,
    ipv4::{self, Options},
    ipv6, udp, vxlan,
};

/// The most bytes [`encapsulate`] puts in front of a frame: Ethernet, IPv6, UDP and VXLAN.
pub const MAX_OVERHEAD: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN + 8;
/// Headroom a buffer should reserve in front of every frame (overhead plus an 802.1Q tag,
/// rounded up so the inner frame's IP header stays 2-byte aligned after any of them).
pub const HEADROOM: usize = 80;

/// The tunnel header that identifies a tenant network on the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// VXLAN (RFC 7348) over UDP, with the outer source port chosen from the inner flow.
    Vxlan {
        /// The network identifier.
        vni: Vni,
        /// The outer UDP source port ([`vxlan::source_port`]).
        src_port: u16,
    },
    /// NVGRE (RFC 7637): GRE with a 24-bit virtual subnet id and an 8-bit flow id in the key.
    Nvgre {
        /// The virtual subnet id.
        vsid: Vni,
        /// The flow id (entropy, RFC 7637 §3.2).
        flow_id: u8,
    },
    /// GRE with a key (RFC 2890) carrying an Ethernet frame (protocol 0x6558).
    Gre {
        /// The 32-bit key.
        key: u32,
    },
}

impl Tunnel {
    /// The IP protocol of the outer packet.
    pub const fn ip_protocol(&self) -> IpProtocol {
        match self {
            Self::Vxlan { .. } => IpProtocol::UDP,
            Self::Nvgre { .. } | Self::Gre { .. } => IpProtocol::GRE,
        }
    }

    /// What identifies the tunnel on the wire: the IP protocol, and the VNI for VXLAN or the
    /// whole 32-bit key for NVGRE and GRE. A GRE-key tunnel whose header has the NVGRE shape
    /// (RFC 7637 §3.2) decapsulates as [`Tunnel::Nvgre`]; the two compare equal here.
    pub const fn wire_id(&self) -> (IpProtocol, u32) {
        match *self {
            Self::Vxlan { vni, .. } => (IpProtocol::UDP, vni.get()),
            Self::Nvgre { vsid, flow_id } => (IpProtocol::GRE, (vsid.get() << 8) | flow_id as u32),
            Self::Gre { key } => (IpProtocol::GRE, key),
        }
    }

    /// The tunnel header's length (UDP's included for VXLAN).
    pub const fn header_len(&self) -> usize {
        match self {
            Self::Vxlan { .. } => udp::HEADER_LEN + vxlan::HEADER_LEN,
            Self::Nvgre { .. } | Self::Gre { .. } => 8,
        }
    }

    fn gre_repr(&self) -> Option<gre::Repr> {
        match *self {
            Self::Vxlan { .. } => None,
            Self::Nvgre { vsid, flow_id } => Some(gre::Repr::nvgre(vsid, flow_id)),
            Self::Gre { key } => Some(gre::Repr {
                protocol: EtherType::TRANSPARENT_ETHERNET,
                checksum: false,
                key: Some(key),
                sequence: None,
            }),
        }
    }
}

impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vxlan { vni, src_port } => write!(f, "vxlan vni {vni} sport {src_port}"),
            Self::Nvgre { vsid, flow_id } => write!(f, "nvgre vsid {vsid} flow {flow_id}"),
            Self::Gre { key } => write!(f, "gre key {key:#x}"),
        }
    }
}

/// Everything needed to put a frame on the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    /// The tunnel header.
    pub tunnel: Tunnel,
    /// This endpoint's underlay address (both addresses must be the same family).
    pub src_ip: IpAddr,
    /// The remote endpoint's underlay address.
    pub dst_ip: IpAddr,
    /// Outer TTL / hop limit.
    pub ttl: u8,
    /// Outer DSCP.
    pub dscp: u8,
    /// Outer IPv4 identification (ignored for IPv6).
    pub ident: u16,
    /// Fill the outer UDP checksum over IPv4 too. Over IPv6 it is always filled, since RFC 8200
    /// §8.1 forbids a zero UDP checksum and Linux drops one by default; over IPv4 RFC 7348 §5
    /// says it SHOULD be zero.
    pub udp_checksum_v4: bool,
    /// The outer Ethernet addresses (source, destination); `None` stops at the IP header.
    pub ethernet: Option<(MacAddr, MacAddr)>,
}

/// Checks that `start` leaves `needed` bytes of headroom and `start..end` is inside `buffer`.
fn room(buffer: &[u8], start: usize, end: usize, needed: usize) -> Result<usize> {
    if start > end || end > buffer.len() {
        return Err(Error::Truncated);
    }
    start.checked_sub(needed).ok_or(Error::NoRoom)
}

/// Writes a VXLAN header in front of the frame at `buffer[start..end]`; returns the new start.
pub fn push_vxlan(buffer: &mut [u8], start: usize, end: usize, vni: Vni) -> Result<usize> {
    let new_start = room(buffer, start, end, vxlan::HEADER_LEN)?;
    let repr = vxlan::Repr { vni };
    repr.emit(&mut vxlan::Packet::new_unchecked(
        &mut buffer[new_start..start],
    ));
    Ok(new_start)
}

/// Writes a GRE header in front of `buffer[start..end]`; returns the new start.
pub fn push_gre(buffer: &mut [u8], start: usize, end: usize, repr: &gre::Repr) -> Result<usize> {
    let new_start = room(buffer, start, end, repr.buffer_len())?;
    repr.emit(&mut gre::Packet::new_unchecked(&mut buffer[new_start..end]));
    Ok(new_start)
}

/// Writes the tunnel header (UDP + VXLAN, or GRE) in front of `buffer[start..end]`; returns
/// the new start. The UDP checksum is filled when `checksum` is given.
pub fn push_tunnel(
    buffer: &mut [u8],
    start: usize,
    end: usize,
    tunnel: &Tunnel,
    checksum: Option<&PseudoHeader>,
) -> Result<usize> {
    match (*tunnel, tunnel.gre_repr()) {
        (_, Some(repr)) => push_gre(buffer, start, end, &repr),
        (Tunnel::Vxlan { vni, src_port }, None) => {
            let start = push_vxlan(buffer, start, end, vni)?;
            push_udp(buffer, start, end, src_port, vxlan::PORT, checksum)
        }
        // gre_repr() is Some for every GRE-based tunnel.
        (Tunnel::Nvgre { .. } | Tunnel::Gre { .. }, None) => Err(Error::Unsupported),
    }
}

/// Writes a UDP header in front of `buffer[start..end]`; returns the new start.
pub fn push_udp(
    buffer: &mut [u8],
    start: usize,
    end: usize,
    src_port: u16,
    dst_port: u16,
    checksum: Option<&PseudoHeader>,
) -> Result<usize> {
    let new_start = room(buffer, start, end, udp::HEADER_LEN)?;
    let payload_len = end - start;
    if payload_len > usize::from(u16::MAX) - udp::HEADER_LEN {
        return Err(Error::BadLength);
    }
    let repr = udp::Repr {
        src_port,
        dst_port,
        payload_len,
    };
    repr.emit(
        &mut udp::Packet::new_unchecked(&mut buffer[new_start..end]),
        checksum,
    );
    Ok(new_start)
}

/// Writes an IPv4 or IPv6 header in front of `buffer[start..end]`; returns the new start.
pub fn push_ip(
    buffer: &mut [u8],
    start: usize,
    end: usize,
    encap: &Encap,
    protocol: IpProtocol,
) -> Result<usize> {
    let payload_len = end.checked_sub(start).ok_or(Error::Truncated)?;
    match (encap.src_ip, encap.dst_ip) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => {
            let new_start = room(buffer, start, end, ipv4::HEADER_LEN)?;
            if payload_len > usize::from(u16::MAX) - ipv4::HEADER_LEN {
                return Err(Error::BadLength);
            }
            let repr = ipv4::Repr {
                src_addr,
                dst_addr,
                protocol,
                payload_len,
                ttl: encap.ttl,
                dscp: encap.dscp,
                ecn: 0,
                ident: encap.ident,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
                options: Options::NONE,
            };
            repr.emit(&mut ipv4::Packet::new_unchecked(
                &mut buffer[new_start..start],
            ));
            Ok(new_start)
        }
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => {
            let new_start = room(buffer, start, end, ipv6::HEADER_LEN)?;
            if payload_len > usize::from(u16::MAX) {
                return Err(Error::BadLength);
            }
            let repr = ipv6::Repr {
                src_addr,
                dst_addr,
                next_header: protocol,
                payload_len,
                hop_limit: encap.ttl,
                traffic_class: encap.dscp << 2,
                flow_label: 0,
            };
            repr.emit(&mut ipv6::Packet::new_unchecked(
                &mut buffer[new_start..start],
            ));
            Ok(new_start)
        }
        _ => Err(Error::Unsupported),
    }
}

/// Writes an Ethernet header in front of `buffer[start..]`; returns the new start.
pub fn push_ethernet(
    buffer: &mut [u8],
    start: usize,
    src_addr: MacAddr,
    dst_addr: MacAddr,
    ethertype: EtherType,
) -> Result<usize> {
    let new_start = room(buffer, start, buffer.len(), ethernet::HEADER_LEN)?;
    let repr = ethernet::Repr {
        src_addr,
        dst_addr,
        ethertype,
    };
    repr.emit(&mut ethernet::Frame::new_unchecked(
        &mut buffer[new_start..start],
    ));
    Ok(new_start)
}

/// Encapsulates the frame at `buffer[start..end]` as `encap` says, writing every outer header
/// into the headroom before `start`; returns the start of the outer packet (an Ethernet frame
/// when `encap.ethernet` is set, else an IP packet). The inner frame is not moved.
pub fn encapsulate(buffer: &mut [u8], start: usize, end: usize, encap: &Encap) -> Result<usize> {
    let pseudo = match (encap.src_ip, encap.dst_ip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => PseudoHeader::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => PseudoHeader::V6 { src, dst },
        _ => return Err(Error::Unsupported),
    };
    let checksum = (!pseudo.is_v4() || encap.udp_checksum_v4).then_some(&pseudo);
    let start = push_tunnel(buffer, start, end, &encap.tunnel, checksum)?;
    let start = push_ip(buffer, start, end, encap, encap.tunnel.ip_protocol())?;
    match encap.ethernet {
        None => Ok(start),
        Some((src, dst)) => {
            let ethertype = if pseudo.is_v4() {
                EtherType::IPV4
            } else {
                EtherType::IPV6
            };
            push_ethernet(buffer, start, src, dst, ethertype)
        }
    }
}

/// What [`decapsulate`] found around an inner frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decapsulated {
    /// The sending endpoint's underlay address.
    pub src_ip: IpAddr,
    /// The receiving endpoint's underlay address.
    pub dst_ip: IpAddr,
    /// The tunnel header (for VXLAN, with the sender's UDP source port).
    pub tunnel: Tunnel,
    /// Where the inner Ethernet frame is in the buffer given to [`decapsulate`].
    pub inner: Range<usize>,
}

/// Finds the inner frame of a tunnelled Ethernet frame (untagged underlay), checking every
/// outer header on the way: checksums, lengths, the VXLAN I flag, GRE version and flags.
///
/// `vxlan_port` is the UDP destination port VXLAN is expected on ([`vxlan::PORT`]). A packet
/// that is no tunnel weft speaks (another UDP port, GRE carrying IP, an IPv4 fragment) is
/// [`Error::Unsupported`].
pub fn decapsulate(frame: &[u8], vxlan_port: u16) -> Result<Decapsulated> {
    let eth = ethernet::Frame::new_checked(frame)?;
    match eth.ethertype() {
        EtherType::IPV4 | EtherType::IPV6 => {
            let mut found = decapsulate_ip(eth.payload(), vxlan_port)?;
            found.inner = shift(found.inner, ethernet::HEADER_LEN);
            Ok(found)
        }
        _ => Err(Error::Unsupported),
    }
}

/// Like [`decapsulate`], for a buffer that starts at the outer IP header (a raw IP socket).
pub fn decapsulate_ip(packet: &[u8], vxlan_port: u16) -> Result<Decapsulated> {
    let (src_ip, dst_ip, protocol, offset, payload, pseudo) = match packet.first() {
        Some(byte) if byte >> 4 == 4 => {
            let ip = ipv4::Packet::new_checked(packet)?;
            let repr = ipv4::Repr::parse(&ip)?;
            if repr.is_fragment() {
                return Err(Error::Unsupported);
            }
            let pseudo = PseudoHeader::V4 {
                src: repr.src_addr,
                dst: repr.dst_addr,
            };
            let offset = ip.header_len();
            (
                repr.src_addr.into(),
                repr.dst_addr.into(),
                repr.protocol,
                offset,
                ip.payload(),
                pseudo,
            )
        }
        Some(byte) if byte >> 4 == 6 => {
            let ip = ipv6::Packet::new_checked(packet)?;
            let repr = ipv6::Repr::parse(&ip)?;
            let pseudo = PseudoHeader::V6 {
                src: repr.src_addr,
                dst: repr.dst_addr,
            };
            let offset = ipv6::HEADER_LEN;
            (
                repr.src_addr.into(),
                repr.dst_addr.into(),
                repr.next_header,
                offset,
                ip.payload(),
                pseudo,
            )
        }
        Some(_) => return Err(Error::BadVersion),
        None => return Err(Error::Truncated),
    };
    let (tunnel, inner) = match protocol {
        IpProtocol::UDP => {
            let datagram = udp::Packet::new_checked(payload)?;
            let repr = udp::Repr::parse(&datagram, &pseudo)?;
            if repr.dst_port != vxlan_port {
                return Err(Error::Unsupported);
            }
            let (vni, inner) = decapsulate_vxlan(datagram.payload())?;
            (
                Tunnel::Vxlan {
                    vni,
                    src_port: repr.src_port,
                },
                shift(inner, udp::HEADER_LEN),
            )
        }
        IpProtocol::GRE => decapsulate_gre(payload)?,
        _ => return Err(Error::Unsupported),
    };
    Ok(Decapsulated {
        src_ip,
        dst_ip,
        tunnel,
        inner: shift(inner, offset),
    })
}

/// Reads the VXLAN header of a UDP payload (what a UDP socket receives); returns the VNI and
/// where the inner frame is in `payload`.
pub fn decapsulate_vxlan(payload: &[u8]) -> Result<(Vni, Range<usize>)> {
    let packet = vxlan::Packet::new_checked(payload)?;
    let repr = vxlan::Repr::parse(&packet)?;
    ethernet::Frame::new_checked(packet.payload())?;
    Ok((repr.vni, vxlan::HEADER_LEN..payload.len()))
}

/// Reads a GRE header carrying an Ethernet frame; returns the tunnel (NVGRE when the key has
/// the RFC 7637 shape and the flags allow it, else GRE-key) and where the inner frame is.
pub fn decapsulate_gre(payload: &[u8]) -> Result<(Tunnel, Range<usize>)> {
    let packet = gre::Packet::new_checked(payload)?;
    let repr = gre::Repr::parse(&packet)?;
    if repr.protocol != EtherType::TRANSPARENT_ETHERNET {
        return Err(Error::Unsupported);
    }
    let tunnel = match (repr.as_nvgre(), repr.key) {
        (Some(nvgre), _) => Tunnel::Nvgre {
            vsid: nvgre.vsid,
            flow_id: nvgre.flow_id,
        },
        (None, Some(key)) => Tunnel::Gre { key },
        // Keyless GRE names no tenant network.
        (None, None) => return Err(Error::Unsupported),
    };
    ethernet::Frame::new_checked(packet.payload())?;
    Ok((tunnel, packet.header_len()..payload.len()))
}

fn shift(range: Range<usize>, by: usize) -> Range<usize> {
    range.start + by..range.end + by
}
