//! Segmentation offload done in software, both ways, for a switch between TAP devices (which
//! hand out and take 64 KiB TCP super-frames with `IFF_VNET_HDR`) and a wire that carries
//! MTU-sized frames:
//!
//! * [`segment`] cuts a TCP super-frame into segments with finished checksums, as Linux's
//!   `tcp_gso_segment` does: the headers repeated, the IPv4 id counting up from the
//!   super-frame's, sequence numbers advancing, FIN and PSH on the last segment only and CWR
//!   on the first only;
//! * [`finish_checksum`] finishes a TCP or UDP checksum the sender left partial;
//! * [`Coalescer`] merges in-order segments of one TCP connection back into one super-frame,
//!   where Linux's GRO (`inet_gro_receive`, `ipv6_gro_receive`, `tcp_gro_receive`) would:
//!   identical headers but for lengths, IPv4 ids, sequence numbers and checksums; data with
//!   the ACK flag only (PSH ends a run); no segment longer than the first, and a shorter one
//!   ends the run. Every merged segment's checksum is verified first, so a super-frame handed
//!   on with a partial checksum never vouches for corrupted data.
//!
//! The super-frame's metadata is an [`Offload`]: what is left to do, without offsets (they are
//! read from the headers, so they stay right when a VLAN tag is pushed or popped).
//! [`Offload::from_vnet`] and [`Offload::to_vnet`] convert from and to the `virtio_net_hdr`
//! of [`crate::vnet`]. Nothing here allocates; the caller owns every buffer.

use core::ops::Range;

use crate::{
    Error, EtherType, IpProtocol, Result,
    checksum::{self, PseudoHeader},
    ipv4, ipv6, tcp, udp, vlan,
    vnet::{self, GsoType},
};

/// The largest IPv4 total length or IPv6 payload length (no jumbograms).
const IP_MAX: usize = 0xffff;

/// Which kind of TCP super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GsoKind {
    /// TCP over IPv4.
    Tcp4,
    /// TCP over IPv6.
    Tcp6,
}

/// A super-frame to be cut into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gso {
    /// TCP over IPv4 or IPv6.
    pub kind: GsoKind,
    /// Payload bytes per segment (the MSS).
    pub size: u16,
}

/// Work a frame's sender left undone, for whoever sends it on to do.
///
/// A super-frame (`gso` set) always has a partial checksum too, as Linux makes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Offload {
    /// The TCP or UDP checksum field holds only the pseudo-header sum: the sum of the segment
    /// from its L4 header to the end of the IP packet is still to be added.
    pub csum_partial: bool,
    /// The frame is a TCP super-frame, to be cut into segments.
    pub gso: Option<Gso>,
}

impl Offload {
    /// Nothing left to do: a finished frame.
    pub const NONE: Self = Self {
        csum_partial: false,
        gso: None,
    };

    /// True when nothing is left to do.
    pub const fn is_none(&self) -> bool {
        !self.csum_partial && self.gso.is_none()
    }

    /// The offload a `virtio_net_hdr` asks for, for the frame behind it.
    ///
    /// A partial checksum of a TCP or UDP packet whose offsets match its headers stays
    /// partial; one at any other offsets is finished here, in `frame`, as the kernel asked.
    /// [`Error::Unsupported`] for a GSO type other than TCP (UFO, USO: weft does not enable
    /// them) and for a super-frame without a partial checksum or whose checksum offsets are
    /// not those of its TCP header; [`Error::BadLength`] for offsets outside the frame.
    pub fn from_vnet(repr: &vnet::Repr, frame: &mut [u8]) -> Result<Self> {
        let gso = match repr.gso_type {
            GsoType::NONE => None,
            GsoType::TCPV4 => Some(GsoKind::Tcp4),
            GsoType::TCPV6 => Some(GsoKind::Tcp6),
            _ => return Err(Error::Unsupported),
        }
        .map(|kind| Gso {
            kind,
            size: repr.gso_size,
        });
        let Some(csum) = repr.needs_csum else {
            return if gso.is_some() {
                Err(Error::Unsupported)
            } else {
                Ok(Self::NONE)
            };
        };
        let matches = layout(frame).is_ok_and(|layout| {
            usize::from(csum.start) == layout.l4
                && Some(usize::from(csum.offset)) == layout.checksum_offset()
        });
        if matches {
            return Ok(Self {
                csum_partial: true,
                gso,
            });
        }
        if gso.is_some() {
            return Err(Error::Unsupported);
        }
        finish_checksum_at(frame, usize::from(csum.start), usize::from(csum.offset))?;
        Ok(Self::NONE)
    }

    /// The `virtio_net_hdr` that hands this offload on with `frame`.
    ///
    /// [`Error::Unsupported`] if the frame is not a TCP or UDP packet the offload can apply
    /// to, and the errors of [`layout`].
    pub fn to_vnet(&self, frame: &[u8]) -> Result<vnet::Repr> {
        if self.is_none() {
            return Ok(vnet::Repr::NONE);
        }
        let layout = layout(frame)?;
        let offset = layout.checksum_offset().ok_or(Error::Unsupported)?;
        let mut repr = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: to_u16(layout.l4)?,
                offset: to_u16(offset)?,
            }),
            ..vnet::Repr::NONE
        };
        if let Some(gso) = self.gso {
            if layout.protocol != IpProtocol::TCP || layout.kind() != gso.kind {
                return Err(Error::Unsupported);
            }
            repr.gso_type = match gso.kind {
                GsoKind::Tcp4 => GsoType::TCPV4,
                GsoKind::Tcp6 => GsoType::TCPV6,
            };
            repr.gso_size = gso.size;
            repr.hdr_len = to_u16(layout.l4 + layout.l4_header_len)?;
        }
        Ok(repr)
    }
}

fn to_u16(value: usize) -> Result<u16> {
    u16::try_from(value).map_err(|_| Error::BadLength)
}

/// Where the headers of an Ethernet/IP/TCP-or-UDP frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Where the IP header starts (behind Ethernet and up to two VLAN tags).
    pub l3: usize,
    /// Where the TCP or UDP header starts.
    pub l4: usize,
    /// The length of the TCP header (options included) or UDP header.
    pub l4_header_len: usize,
    /// Where the IP packet ends (Ethernet padding may follow).
    pub end: usize,
    /// TCP or UDP.
    pub protocol: IpProtocol,
    /// The addresses for the L4 checksum.
    pub pseudo: PseudoHeader,
}

impl Layout {
    /// Where the checksum field is in the L4 header: TCP or UDP; `None` otherwise.
    pub fn checksum_offset(&self) -> Option<usize> {
        match self.protocol {
            IpProtocol::TCP => Some(tcp::CHECKSUM_OFFSET),
            IpProtocol::UDP => Some(udp::HEADER_LEN - 2),
            _ => None,
        }
    }

    fn kind(&self) -> GsoKind {
        if self.pseudo.is_v4() {
            GsoKind::Tcp4
        } else {
            GsoKind::Tcp6
        }
    }

    /// The L4 segment: header and payload.
    fn l4_range(&self) -> Range<usize> {
        self.l4..self.end
    }
}

/// Finds the headers of an Ethernet frame (up to two VLAN tags) carrying IPv4 (options
/// allowed, no fragment) or IPv6 (no extension headers) and then TCP or UDP.
///
/// [`Error::Unsupported`] for anything else, and the errors of the views for bad lengths.
pub fn layout(frame: &[u8]) -> Result<Layout> {
    let (_, l3) = vlan::TagStack::parse(frame)?;
    let ethertype = EtherType(u16::from_be_bytes([frame[l3 - 2], frame[l3 - 1]]));
    let ip = &frame[l3..];
    let (l4, end, protocol, pseudo) = match ethertype {
        EtherType::IPV4 => {
            let packet = ipv4::Packet::new_checked(ip)?;
            if packet.version() != 4 {
                return Err(Error::BadVersion);
            }
            if packet.is_fragment() {
                return Err(Error::Unsupported);
            }
            let pseudo = PseudoHeader::V4 {
                src: packet.src_addr(),
                dst: packet.dst_addr(),
            };
            let end = l3 + usize::from(packet.total_len());
            (l3 + packet.header_len(), end, packet.protocol(), pseudo)
        }
        EtherType::IPV6 => {
            let packet = ipv6::Packet::new_checked(ip)?;
            if packet.version() != 6 {
                return Err(Error::BadVersion);
            }
            let pseudo = PseudoHeader::V6 {
                src: packet.src_addr(),
                dst: packet.dst_addr(),
            };
            let l4 = l3 + ipv6::HEADER_LEN;
            (
                l4,
                l4 + usize::from(packet.payload_len()),
                packet.next_header(),
                pseudo,
            )
        }
        _ => return Err(Error::Unsupported),
    };
    let segment = &frame[l4..end];
    let l4_header_len = match protocol {
        IpProtocol::TCP => tcp::Packet::new_checked(segment)?.header_len(),
        IpProtocol::UDP if segment.len() >= udp::HEADER_LEN => udp::HEADER_LEN,
        IpProtocol::UDP => return Err(Error::Truncated),
        _ => return Err(Error::Unsupported),
    };
    Ok(Layout {
        l3,
        l4,
        l4_header_len,
        end,
        protocol,
        pseudo,
    })
}

/// Finishes the partial TCP or UDP checksum of `frame` (see [`Offload::csum_partial`]).
pub fn finish_checksum(frame: &mut [u8]) -> Result<()> {
    let layout = layout(frame)?;
    let offset = layout.checksum_offset().ok_or(Error::Unsupported)?;
    let mut sum = checksum::finish(checksum::accumulate(0, &frame[layout.l4_range()]));
    if layout.protocol == IpProtocol::UDP && sum == 0 {
        // Zero means "no checksum" in UDP (RFC 768).
        sum = 0xffff;
    }
    let at = layout.l4 + offset;
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Turns the finished TCP or UDP checksum of `frame` into a partial one: the pseudo-header sum
/// alone, what a sender that offloads its checksums leaves (the inverse of
/// [`finish_checksum`]; for tests and simulated guests).
pub fn partial_checksum(frame: &mut [u8]) -> Result<()> {
    let layout = layout(frame)?;
    let offset = layout.checksum_offset().ok_or(Error::Unsupported)?;
    let len = u32::try_from(layout.end - layout.l4).map_err(|_| Error::BadLength)?;
    let partial = !checksum::finish(layout.pseudo.sum(layout.protocol, len));
    let at = layout.l4 + offset;
    frame[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    Ok(())
}

/// Finishes a partial checksum at offsets the frame's headers do not explain: the sum from
/// `start` to the end of the frame goes at `start + offset`, as a NIC would do it.
fn finish_checksum_at(frame: &mut [u8], start: usize, offset: usize) -> Result<()> {
    let at = start.checked_add(offset).ok_or(Error::BadLength)?;
    if at + 2 > frame.len() {
        return Err(Error::BadLength);
    }
    let sum = checksum::finish(checksum::accumulate(0, &frame[start..]));
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Cuts a TCP super-frame into segments; see [`segment`].
#[derive(Debug, Clone)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    layout: Layout,
    /// The length of the headers every segment repeats.
    hdr_len: usize,
    mss: usize,
    /// Where the next segment's payload starts in `frame`.
    next: usize,
    /// Segments written so far.
    index: u16,
    done: bool,
}

/// Prepares to cut `frame`, a TCP super-frame over IPv4 or IPv6 (as [`Gso::kind`] says),
/// into segments of at most [`Gso::size`] payload bytes.
///
/// [`Error::Unsupported`] if the frame is not TCP of that IP version, [`Error::BadLength`]
/// for a zero segment size, and the errors of [`layout`].
pub fn segment(frame: &[u8], gso: Gso) -> Result<Segmenter<'_>> {
    let layout = layout(frame)?;
    if layout.protocol != IpProtocol::TCP || layout.kind() != gso.kind {
        return Err(Error::Unsupported);
    }
    if gso.size == 0 {
        return Err(Error::BadLength);
    }
    let hdr_len = layout.l4 + layout.l4_header_len;
    Ok(Segmenter {
        frame,
        layout,
        hdr_len,
        mss: usize::from(gso.size),
        next: hdr_len,
        index: 0,
        done: false,
    })
}

impl Segmenter<'_> {
    /// How many segments the super-frame makes (at least one).
    pub fn count(&self) -> usize {
        (self.layout.end - self.hdr_len).div_ceil(self.mss).max(1)
    }

    /// The length of the longest segment: every one but the last has exactly this length.
    pub fn segment_len(&self) -> usize {
        self.hdr_len + self.mss.min(self.layout.end - self.hdr_len)
    }

    /// Writes the next segment into the front of `out` and returns its length; `None` when
    /// every segment was written.
    ///
    /// [`Error::NoRoom`] if `out` is shorter than the segment (nothing is consumed then).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize>> {
        if self.done {
            return None;
        }
        let end = self.layout.end;
        let payload = self.mss.min(end - self.next);
        let len = self.hdr_len + payload;
        let Some(out) = out.get_mut(..len) else {
            return Some(Err(Error::NoRoom));
        };
        let (first, last) = (self.index == 0, self.next + payload >= end);
        let (hdr_len, l3, l4) = (self.hdr_len, self.layout.l3, self.layout.l4);
        out[..hdr_len].copy_from_slice(&self.frame[..hdr_len]);
        out[hdr_len..].copy_from_slice(&self.frame[self.next..self.next + payload]);

        if self.layout.pseudo.is_v4() {
            let mut ip = ipv4::Packet::new_unchecked(&mut out[l3..]);
            // Fits: a segment is never longer than the super-frame, whose length did fit.
            ip.set_total_len(u16::try_from(len - l3).unwrap_or(u16::MAX));
            // Linux's TSO counts the id up per segment (tcp_gso_segment, inet_gso_segment).
            ip.set_ident(ip.ident().wrapping_add(self.index));
            ip.fill_checksum();
        } else {
            let mut ip = ipv6::Packet::new_unchecked(&mut out[l3..]);
            ip.set_payload_len(u16::try_from(len - l4).unwrap_or(u16::MAX));
        }
        let mut segment = tcp::Packet::new_unchecked(&mut out[l4..]);
        let offset = u32::try_from(self.next - hdr_len).unwrap_or(0);
        segment.set_seq_number(segment.seq_number().wrapping_add(offset));
        let mut flags = segment.flags();
        if !first {
            flags &= !tcp::flags::CWR;
        }
        if !last {
            flags &= !(tcp::flags::FIN | tcp::flags::PSH);
        }
        segment.set_flags(flags);
        segment.fill_checksum(&self.layout.pseudo);

        self.next += payload;
        self.index = self.index.wrapping_add(1);
        self.done = last;
        Some(Ok(len))
    }
}

/// A TCP segment as the coalescer compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    layout: Layout,
    /// Headers' length: Ethernet to the end of the TCP options.
    hdr_len: usize,
    payload: usize,
    seq: u32,
    flags: u8,
    /// The IPv4 id (0 for IPv6).
    ident: u16,
}

impl Seg {
    fn parse(frame: &[u8]) -> Option<Self> {
        let layout = layout(frame).ok()?;
        if layout.protocol != IpProtocol::TCP {
            return None;
        }
        let segment = tcp::Packet::new_unchecked(&frame[layout.l4_range()]);
        let hdr_len = layout.l4 + layout.l4_header_len;
        let ident = if layout.pseudo.is_v4() {
            ipv4::Packet::new_unchecked(&frame[layout.l3..]).ident()
        } else {
            0
        };
        Some(Self {
            layout,
            hdr_len,
            payload: layout.end - hdr_len,
            seq: segment.seq_number(),
            flags: segment.flags(),
            ident,
        })
    }

    /// The IPv4 header checksum (the merged header gets a new one) and the TCP checksum.
    fn checksum_ok(&self, frame: &[u8]) -> bool {
        let ip_ok = !self.layout.pseudo.is_v4()
            || ipv4::Packet::new_unchecked(&frame[self.layout.l3..]).verify_checksum();
        ip_ok
            && tcp::Packet::new_unchecked(&frame[self.layout.l4_range()])
                .verify_checksum(&self.layout.pseudo)
    }

    /// The IP header length plus TCP header and `payload` bytes: what the IPv4 total length
    /// or, minus the fixed header, the IPv6 payload length would say.
    fn ip_len(&self, payload: usize) -> usize {
        self.hdr_len - self.layout.l3 + payload
    }

    fn ip_len_limit(&self) -> usize {
        if self.layout.pseudo.is_v4() {
            IP_MAX
        } else {
            IP_MAX + ipv6::HEADER_LEN
        }
    }
}

/// Flags that keep a segment out of any run: Linux flushes on them (`tcp_gro_receive`).
const UNMERGEABLE: u8 =
    tcp::flags::SYN | tcp::flags::FIN | tcp::flags::RST | tcp::flags::URG | tcp::flags::CWR;

/// Merges in-order TCP segments of one connection into one super-frame (GRO in software).
///
/// Start a run with [`start`](Self::start) on a segment, offer the segments that follow with
/// [`push`](Self::push) until it refuses one, then write the merged headers with
/// [`write_header`](Self::write_header) and send them followed by every segment's
/// [`payload`](Self::payload), with the `virtio_net_hdr` it returns.
#[derive(Debug, Clone)]
pub struct Coalescer {
    first: Seg,
    last: Seg,
    count: usize,
    payload: usize,
    /// PSH seen (the run is closed).
    psh: bool,
    closed: bool,
}

impl Coalescer {
    /// Starts a run at `frame` if it is a TCP segment that may head one: it carries data,
    /// has ACK and no flag but PSH or ECE besides, IPv4 has no options, and its checksum
    /// verifies. `None` otherwise: send it as it is.
    pub fn start(frame: &[u8]) -> Option<Self> {
        let seg = Seg::parse(frame)?;
        let plain = seg.flags & UNMERGEABLE == 0 && seg.flags & tcp::flags::ACK != 0;
        let no_options =
            seg.layout.l4 - seg.layout.l3 == ipv4::HEADER_LEN || !seg.layout.pseudo.is_v4();
        if seg.payload == 0 || !plain || !no_options || !seg.checksum_ok(frame) {
            return None;
        }
        let psh = seg.flags & tcp::flags::PSH != 0;
        Some(Self {
            first: seg,
            last: seg,
            count: 1,
            payload: seg.payload,
            psh,
            closed: psh,
        })
    }

    /// The number of segments in the run.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True for a run of no segment (never: a run starts with one).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when the run takes no more segments.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Adds `frame` to the run if it continues it (`first` is the run's first frame) and its
    /// checksum verifies; returns false, and leaves the run as it was, otherwise.
    pub fn push(&mut self, first: &[u8], frame: &[u8]) -> bool {
        if self.closed {
            return false;
        }
        let Some(seg) = Seg::parse(frame) else {
            return false;
        };
        let (f, l3, l4, hdr_len) = (
            &self.first,
            self.first.layout.l3,
            self.first.layout.l4,
            self.first.hdr_len,
        );
        let same_place = seg.layout.l3 == l3 && seg.layout.l4 == l4 && seg.hdr_len == hdr_len;
        if !same_place
            || seg.payload == 0
            || seg.payload > f.payload
            || seg.flags & !tcp::flags::PSH != f.flags & !tcp::flags::PSH
            || seg.seq
                != self
                    .last
                    .seq
                    .wrapping_add(u32::try_from(self.last.payload).unwrap_or(0))
            || f.ip_len(self.payload + seg.payload) > f.ip_len_limit()
        {
            return false;
        }
        // Ethernet and tags; then IP fields that must match; then TCP ports, ack, data
        // offset and window, and the options (timestamps included, as Linux requires).
        let (a, b) = (first, frame);
        let same = |range: Range<usize>| a.get(range.clone()) == b.get(range);
        let ip_same = if f.layout.pseudo.is_v4() {
            // Version/IHL, TOS; DF; TTL, protocol (checksum skipped); addresses.
            let df = |x: &[u8]| x[l3 + 6] & 0x40;
            let id_ok = df(a) != 0 || seg.ident == self.last.ident.wrapping_add(1);
            same(l3..l3 + 2)
                && df(a) == df(b)
                && same(l3 + 8..l3 + 10)
                && same(l3 + 12..l4)
                && id_ok
        } else {
            // Version/class/flow label; next header and hop limit; addresses.
            same(l3..l3 + 4) && same(l3 + 6..l4)
        };
        if !same(0..l3)
            || !ip_same
            || !same(l4..l4 + 4)
            || !same(l4 + 8..l4 + 13)
            || !same(l4 + 14..l4 + 16)
            || !same(l4 + tcp::HEADER_LEN..hdr_len)
            || !seg.checksum_ok(frame)
        {
            return false;
        }
        self.count += 1;
        self.payload += seg.payload;
        self.last = seg;
        if seg.flags & tcp::flags::PSH != 0 {
            self.psh = true;
            self.closed = true;
        }
        if seg.payload < f.payload {
            self.closed = true;
        }
        true
    }

    /// The payload of a frame of this run (the bytes behind its headers, up to the end of
    /// its IP packet).
    pub fn payload<'f>(&self, frame: &'f [u8]) -> &'f [u8] {
        let end = match self.first.layout.pseudo {
            PseudoHeader::V4 { .. } => {
                let l3 = self.first.layout.l3;
                frame
                    .get(l3 + 2..l3 + 4)
                    .map_or(0, |b| l3 + usize::from(u16::from_be_bytes([b[0], b[1]])))
            }
            PseudoHeader::V6 { .. } => {
                let l4 = self.first.layout.l4;
                let l3 = self.first.layout.l3;
                frame
                    .get(l3 + 4..l3 + 6)
                    .map_or(0, |b| l4 + usize::from(u16::from_be_bytes([b[0], b[1]])))
            }
        };
        frame.get(self.first.hdr_len..end).unwrap_or(&[])
    }

    /// Writes the merged super-frame's headers, from the run's first frame `first`, into the
    /// front of `out`: IP length and IPv4 checksum for the whole run, PSH if a segment had it,
    /// and in the TCP checksum field the pseudo-header sum (a partial checksum). Returns their
    /// length and the `virtio_net_hdr` to send with them.
    ///
    /// [`Error::NoRoom`] if `out` is too short for the headers.
    pub fn write_header(&self, first: &[u8], out: &mut [u8]) -> Result<(usize, vnet::Repr)> {
        let f = &self.first;
        let (l3, l4, hdr_len) = (f.layout.l3, f.layout.l4, f.hdr_len);
        let out = out.get_mut(..hdr_len).ok_or(Error::NoRoom)?;
        let header = first.get(..hdr_len).ok_or(Error::Truncated)?;
        out.copy_from_slice(header);
        let tcp_len = hdr_len - l4 + self.payload;
        let kind = if f.layout.pseudo.is_v4() {
            let mut ip = ipv4::Packet::new_unchecked(&mut out[l3..]);
            ip.set_total_len(to_u16(f.ip_len(self.payload))?);
            ip.fill_checksum();
            GsoType::TCPV4
        } else {
            let mut ip = ipv6::Packet::new_unchecked(&mut out[l3..]);
            ip.set_payload_len(to_u16(tcp_len)?);
            GsoType::TCPV6
        };
        let mut segment = tcp::Packet::new_unchecked(&mut out[l4..]);
        if self.psh {
            segment.set_flags(segment.flags() | tcp::flags::PSH);
        }
        let tcp_len = u32::try_from(tcp_len).map_err(|_| Error::BadLength)?;
        // The folded pseudo-header sum, not complemented: what a partial checksum holds.
        segment.set_checksum(!checksum::finish(
            f.layout.pseudo.sum(IpProtocol::TCP, tcp_len),
        ));
        let repr = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: to_u16(l4)?,
                offset: to_u16(tcp::CHECKSUM_OFFSET)?,
            }),
            data_valid: false,
            gso_type: kind,
            ecn: false,
            hdr_len: to_u16(hdr_len)?,
            gso_size: to_u16(f.payload)?,
        };
        Ok((hdr_len, repr))
    }
}

/// The header a frame is written with when it goes alone to a receiver that takes
/// `virtio_net_hdr`s: "data valid" when it is a TCP segment whose checksum was verified here
/// (see [`Coalescer::start`]), so the receiver need not verify it again.
pub fn single_vnet(verified: bool) -> vnet::Repr {
    vnet::Repr {
        data_valid: verified,
        ..vnet::Repr::NONE
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;
    use crate::{MacAddr, ethernet};

    const MSS: u16 = 1448;

    /// An Ethernet/IPv4-or-6/TCP frame with `payload`, TCP checksum finished, IPv4 id `ident`.
    fn tcp_frame(v6: bool, seq: u32, flags: u8, ident: u16, payload: &[u8]) -> Vec<u8> {
        crate::build::tcp(&crate::build::Tcp {
            flags,
            ident,
            ..crate::build::Tcp::new(v6, seq, payload)
        })
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
            .collect()
    }

    /// A super-frame as a TAP hands it out: TCP checksum holding the pseudo-header sum.
    fn super_frame(v6: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = tcp_frame(v6, 1_000_000, flags, 0x4000, payload);
        partial_checksum(&mut frame).unwrap();
        frame
    }

    fn gso(v6: bool) -> Gso {
        Gso {
            kind: if v6 { GsoKind::Tcp6 } else { GsoKind::Tcp4 },
            size: MSS,
        }
    }

    fn cut(frame: &[u8], gso: Gso) -> Vec<Vec<u8>> {
        let mut segmenter = segment(frame, gso).unwrap();
        let count = segmenter.count();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 9000];
        while let Some(len) = segmenter.next_into(&mut buf) {
            out.push(buf[..len.unwrap()].to_vec());
        }
        assert_eq!(out.len(), count);
        out
    }

    #[test]
    fn test_segments_equal_frames_built_directly() {
        for v6 in [false, true] {
            let payload = data(10_000);
            let frame = super_frame(v6, tcp::flags::ACK | tcp::flags::PSH, &payload);
            let segments = cut(&frame, gso(v6));
            assert_eq!(segments.len(), 7);
            for (i, segment) in segments.iter().enumerate() {
                let start = i * usize::from(MSS);
                let end = (start + usize::from(MSS)).min(payload.len());
                let last = i == segments.len() - 1;
                let flags = if last {
                    tcp::flags::ACK | tcp::flags::PSH
                } else {
                    tcp::flags::ACK
                };
                let seq = 1_000_000 + u32::try_from(start).unwrap();
                let ident = 0x4000 + u16::try_from(i).unwrap();
                let expected = tcp_frame(v6, seq, flags, ident, &payload[start..end]);
                assert_eq!(segment, &expected, "segment {i} (v6 {v6})");
            }
        }
    }

    #[test]
    fn test_segment_flags_fin_and_cwr() {
        let flags = tcp::flags::ACK | tcp::flags::FIN | tcp::flags::CWR;
        let frame = super_frame(false, flags, &data(3000));
        let segments = cut(&frame, gso(false));
        let flags_of = |s: &Vec<u8>| s[ethernet::HEADER_LEN + ipv4::HEADER_LEN + 13];
        assert_eq!(flags_of(&segments[0]), tcp::flags::ACK | tcp::flags::CWR);
        assert_eq!(flags_of(&segments[1]), tcp::flags::ACK);
        assert_eq!(flags_of(&segments[2]), tcp::flags::ACK | tcp::flags::FIN);
    }

    #[test]
    fn test_segment_small_and_empty_payloads() {
        // Shorter than one MSS: one segment, checksum finished.
        let frame = super_frame(false, tcp::flags::ACK, &data(100));
        let segments = cut(&frame, gso(false));
        assert_eq!(
            segments,
            vec![tcp_frame(false, 1_000_000, 0x10, 0x4000, &data(100))]
        );
        // No payload at all: the headers alone.
        let frame = super_frame(false, tcp::flags::ACK, &[]);
        assert_eq!(cut(&frame, gso(false)).len(), 1);
        // Exactly two MSS: two full segments.
        let frame = super_frame(true, tcp::flags::ACK, &data(2 * usize::from(MSS)));
        let mut segmenter = segment(&frame, gso(true)).unwrap();
        assert_eq!(segmenter.count(), 2);
        assert_eq!(segmenter.segment_len(), 14 + 40 + 32 + 1448);
        let mut small = [0u8; 100];
        assert_eq!(segmenter.next_into(&mut small), Some(Err(Error::NoRoom)));
    }

    #[test]
    fn test_segment_refuses_what_it_cannot_cut() {
        let frame = super_frame(false, tcp::flags::ACK, &data(3000));
        assert_eq!(segment(&frame, gso(true)).unwrap_err(), Error::Unsupported);
        let zero = Gso {
            kind: GsoKind::Tcp4,
            size: 0,
        };
        assert_eq!(segment(&frame, zero).unwrap_err(), Error::BadLength);
        assert_eq!(
            segment(&frame[..40], gso(false)).unwrap_err(),
            Error::Truncated
        );
        let udp = crate::build::udp_ipv4(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            (1, 2),
            b"x",
        );
        assert_eq!(segment(&udp, gso(false)).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn test_finish_checksum_tcp_and_udp() {
        let frame = tcp_frame(false, 7, tcp::flags::ACK, 1, &data(333));
        let mut partial = super_frame(false, tcp::flags::ACK, &data(333));
        // super_frame uses seq 1_000_000 and id 0x4000; rebuild the expected frame alike.
        finish_checksum(&mut partial).unwrap();
        let expected = tcp_frame(false, 1_000_000, tcp::flags::ACK, 0x4000, &data(333));
        assert_eq!(partial, expected);
        assert!(finish_checksum(&mut frame.clone()).is_ok());

        let udp = crate::build::udp_ipv4(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            (1234, 5678),
            &data(99),
        );
        let mut partial = udp.clone();
        partial_checksum(&mut partial).unwrap();
        assert_ne!(partial, udp);
        finish_checksum(&mut partial).unwrap();
        assert_eq!(partial, udp);
    }

    #[test]
    fn test_offload_from_and_to_vnet() {
        let mut frame = super_frame(false, tcp::flags::ACK, &data(5000));
        let l4 = u16::try_from(ethernet::HEADER_LEN + ipv4::HEADER_LEN).unwrap();
        let repr = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: l4,
                offset: 16,
            }),
            data_valid: false,
            gso_type: GsoType::TCPV4,
            ecn: false,
            hdr_len: l4 + 32,
            gso_size: MSS,
        };
        let offload = Offload::from_vnet(&repr, &mut frame).unwrap();
        assert_eq!(
            offload,
            Offload {
                csum_partial: true,
                gso: Some(gso(false))
            }
        );
        assert_eq!(offload.to_vnet(&frame).unwrap(), repr);
        assert_eq!(Offload::NONE.to_vnet(&frame).unwrap(), vnet::Repr::NONE);

        // A super-frame whose checksum offsets are not its TCP header's is refused.
        let wrong = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: l4 + 2,
                offset: 16,
            }),
            ..repr
        };
        assert_eq!(
            Offload::from_vnet(&wrong, &mut frame).unwrap_err(),
            Error::Unsupported
        );
        // So is a super-frame without a partial checksum, and UDP segmentation.
        let no_csum = vnet::Repr {
            needs_csum: None,
            ..repr
        };
        assert!(Offload::from_vnet(&no_csum, &mut frame).is_err());
        let uso = vnet::Repr {
            gso_type: GsoType::UDP_L4,
            ..repr
        };
        assert!(Offload::from_vnet(&uso, &mut frame).is_err());

        // A partial checksum at offsets the headers do not explain is finished at once.
        let mut odd = vec![0u8; 64];
        odd[20] = 0x12;
        let at = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: 16,
                offset: 2,
            }),
            ..vnet::Repr::NONE
        };
        assert_eq!(Offload::from_vnet(&at, &mut odd).unwrap(), Offload::NONE);
        assert_eq!(&odd[18..20], &(!0x1200u16).to_be_bytes());
        let outside = vnet::Repr {
            needs_csum: Some(vnet::Csum {
                start: 63,
                offset: 2,
            }),
            ..vnet::Repr::NONE
        };
        assert_eq!(
            Offload::from_vnet(&outside, &mut odd).unwrap_err(),
            Error::BadLength
        );
    }

    /// Runs `frames` through a coalescer the way a TAP sender does; returns the merged
    /// frames (headers + payloads) and the number of segments in each.
    fn coalesce(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, usize, Option<vnet::Repr>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            let Some(mut run) = Coalescer::start(&frames[i]) else {
                out.push((frames[i].clone(), 1, None));
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < frames.len() && run.push(&frames[i], &frames[j]) {
                j += 1;
            }
            let mut header = vec![0u8; 256];
            let (len, repr) = run.write_header(&frames[i], &mut header).unwrap();
            let mut merged = header[..len].to_vec();
            for frame in &frames[i..j] {
                merged.extend_from_slice(run.payload(frame));
            }
            out.push((merged, run.len(), Some(repr)));
            i = j;
        }
        out
    }

    #[test]
    fn test_segment_then_coalesce_gives_the_super_frame_back() {
        for v6 in [false, true] {
            for flags in [tcp::flags::ACK, tcp::flags::ACK | tcp::flags::PSH] {
                let frame = super_frame(v6, flags, &data(20_000));
                let segments = cut(&frame, gso(v6));
                let merged = coalesce(&segments);
                assert_eq!(merged.len(), 1, "v6 {v6} flags {flags:#x}");
                let (merged, count, repr) = &merged[0];
                assert_eq!(*count, segments.len());
                assert_eq!(merged, &frame, "v6 {v6}");
                let repr = repr.unwrap();
                let offload = Offload::from_vnet(&repr, &mut merged.clone()).unwrap();
                assert_eq!(offload.gso, Some(gso(v6)));
            }
        }
    }

    #[test]
    fn test_coalescing_stops_where_linux_gro_would() {
        let seg = |seq: u32, flags: u8, ident: u16, len: usize| {
            tcp_frame(false, seq, flags, ident, &data(len))
        };
        let ack = tcp::flags::ACK;
        let m = usize::from(MSS);
        let m32 = u32::from(MSS);
        // A gap in the sequence numbers.
        let gap = [seg(0, ack, 1, m), seg(m32 + 1, ack, 2, m)];
        assert_eq!(coalesce(&gap).len(), 2);
        // A longer segment after a shorter first one.
        let longer = [seg(0, ack, 1, 100), seg(100, ack, 2, m)];
        assert_eq!(coalesce(&longer).len(), 2);
        // A short segment closes the run; PSH closes it after itself.
        let short = [
            seg(0, ack, 1, m),
            seg(m32, ack, 2, 10),
            seg(m32 + 10, ack, 3, 10),
        ];
        let merged = coalesce(&short);
        assert_eq!((merged.len(), merged[0].1), (2, 2));
        let psh = [
            seg(0, ack, 1, m),
            seg(m32, ack | tcp::flags::PSH, 2, m),
            seg(2 * m32, ack, 3, m),
        ];
        assert_eq!(coalesce(&psh)[0].1, 2);
        // SYN, FIN, RST, URG and CWR never merge; a pure ACK neither.
        for flag in [
            tcp::flags::SYN,
            tcp::flags::FIN,
            tcp::flags::RST,
            tcp::flags::URG,
            tcp::flags::CWR,
        ] {
            let frames = [seg(0, ack | flag, 1, m), seg(m32, ack | flag, 2, m)];
            assert!(coalesce(&frames).iter().all(|(_, n, _)| *n == 1));
        }
        assert!(Coalescer::start(&seg(0, ack, 1, 0)).is_none());
        // A different window or timestamp, or an IPv4 id that does not count up by one with
        // DF clear, keeps segments apart.
        let mut window = seg(m32, ack, 2, m);
        window[14 + 20 + 15] ^= 1;
        tcp_checksum(&mut window);
        assert_eq!(coalesce(&[seg(0, ack, 1, m), window]).len(), 2);
        let mut stamp = seg(m32, ack, 2, m);
        stamp[14 + 20 + 29] ^= 1;
        tcp_checksum(&mut stamp);
        assert_eq!(coalesce(&[seg(0, ack, 1, m), stamp]).len(), 2);
        let no_df = |seq: u32, ident: u16| {
            let mut f = seg(seq, ack, ident, m);
            f[14 + 6] = 0;
            ip_checksum(&mut f);
            f
        };
        assert_eq!(coalesce(&[no_df(0, 1), no_df(m32, 3)]).len(), 2);
        assert_eq!(coalesce(&[no_df(0, 1), no_df(m32, 2)]).len(), 1);
        // With DF set the id may be anything (Linux's atomic datagrams).
        assert_eq!(coalesce(&[seg(0, ack, 1, m), seg(m32, ack, 9, m)]).len(), 1);
        // Another connection.
        let mut other = seg(m32, ack, 2, m);
        other[14 + 20 + 1] ^= 1;
        tcp_checksum(&mut other);
        assert_eq!(coalesce(&[seg(0, ack, 1, m), other]).len(), 2);
    }

    fn tcp_checksum(frame: &mut [u8]) {
        let layout = layout(frame).unwrap();
        tcp::Packet::new_unchecked(&mut frame[layout.l4..layout.end]).fill_checksum(&layout.pseudo);
    }

    fn ip_checksum(frame: &mut [u8]) {
        ipv4::Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    }

    #[test]
    fn test_corrupted_segments_are_never_merged() {
        let ack = tcp::flags::ACK;
        let m = usize::from(MSS);
        let m32 = u32::from(MSS);
        let mut bad = tcp_frame(false, m32, ack, 2, &data(m));
        bad[100] ^= 0x40;
        let frames = [
            tcp_frame(false, 0, ack, 1, &data(m)),
            bad.clone(),
            tcp_frame(false, 2 * m32, ack, 3, &data(m)),
        ];
        let merged = coalesce(&frames);
        assert!(merged.iter().all(|(_, n, _)| *n == 1));
        assert_eq!(merged[1].0, bad);
        assert!(Coalescer::start(&bad).is_none());
    }

    #[test]
    fn test_coalescing_respects_the_ip_length_limit() {
        let ack = tcp::flags::ACK;
        let m = usize::from(MSS);
        let frames: Vec<Vec<u8>> = (0..60u16)
            .map(|i| tcp_frame(false, u32::from(i) * u32::from(MSS), ack, i, &data(m)))
            .collect();
        let merged = coalesce(&frames);
        // 52 bytes of IP and TCP headers + 45 x 1448 = 65,212: 45 fit, 46 do not.
        assert_eq!(merged[0].1, 45);
        assert!(merged[0].0.len() - 14 <= 0xffff);
        assert_eq!(merged[1].1, 15);
    }
}
