//! `weft decode`: one line per captured packet, outer to inner, via `wire::pretty`.

use std::{fs::File, io::Write, path::Path};

use anyhow::{Context, Result, bail};
use pcap_parser::{
    Block, Linktype, PcapBlockOwned, PcapError, create_reader,
    data::{PacketData, get_packetdata},
};
use wire::{EtherType, pretty::PrettyPrinter};

/// The reader's buffer; it grows to fit a block larger than this.
const BUFFER_LEN: usize = 1 << 16;
/// Refuse to grow the buffer past this: no sane capture has a larger block.
const BUFFER_MAX: usize = 1 << 26;

/// Reads `path` and writes one line per packet to `out`.
///
/// A malformed packet prints what was decoded and why the rest was not; a damaged file prints
/// every packet before the damage and then fails with the reason.
pub(crate) fn run(path: &Path, vxlan_port: Option<u16>, out: &mut impl Write) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = match create_reader(BUFFER_LEN, file) {
        Ok(reader) => reader,
        Err(PcapError::Eof) => bail!("{} is empty", path.display()),
        Err(err) => bail!("{} is not a pcap or pcapng file ({err:?})", path.display()),
    };
    let mut capacity = BUFFER_LEN;
    // Link types: one for classic pcap, one per interface for pcapng.
    let mut linktypes: Vec<Linktype> = Vec::new();
    let mut index = 0usize;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => linktypes = vec![header.network],
                    PcapBlockOwned::Legacy(packet) => {
                        index += 1;
                        let linktype = linktypes.first().copied().unwrap_or(Linktype::ETHERNET);
                        let line = describe(packet.data, linktype, packet.caplen, vxlan_port);
                        print_line(out, index, &line, packet.caplen, packet.origlen)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => linktypes.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        linktypes.push(idb.linktype);
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        index += 1;
                        let linktype = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|id| linktypes.get(id).copied())
                            .unwrap_or(Linktype::ETHERNET);
                        let line = describe(epb.data, linktype, epb.caplen, vxlan_port);
                        print_line(out, index, &line, epb.caplen, epb.origlen)?;
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        index += 1;
                        let linktype = linktypes.first().copied().unwrap_or(Linktype::ETHERNET);
                        let len = u32::try_from(spb.data.len()).unwrap_or(u32::MAX);
                        let caplen = len.min(spb.origlen);
                        let line = describe(spb.data, linktype, caplen, vxlan_port);
                        print_line(out, index, &line, caplen, spb.origlen)?;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    bail!("{}: read error after packet {index}", path.display());
                }
            }
            Err(PcapError::BufferTooSmall) => {
                capacity *= 2;
                if capacity > BUFFER_MAX || !reader.grow(capacity) {
                    bail!(
                        "{}: a block after packet {index} is too large",
                        path.display()
                    );
                }
            }
            Err(PcapError::UnexpectedEof) => {
                bail!(
                    "{}: the file ends in the middle of packet {}",
                    path.display(),
                    index + 1
                )
            }
            Err(err) => bail!("{}: damaged after packet {index} ({err:?})", path.display()),
        }
    }
    out.flush()?;
    Ok(())
}

/// Describes one captured packet of the given link type.
fn describe(data: &[u8], linktype: Linktype, caplen: u32, vxlan_port: Option<u16>) -> String {
    let caplen = usize::try_from(caplen)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let printer = match get_packetdata(data, linktype, caplen) {
        Some(PacketData::L2(frame)) => PrettyPrinter::new(frame),
        Some(PacketData::L3(ethertype, packet)) => {
            PrettyPrinter::network(EtherType(ethertype), packet)
        }
        Some(PacketData::L4(..) | PacketData::Unsupported(..)) | None => {
            return format!("[link type {} not decoded, {caplen} bytes]", linktype.0);
        }
    };
    let printer = match vxlan_port {
        Some(port) => printer.with_vxlan_port(port),
        None => printer,
    };
    printer.to_string()
}

fn print_line(
    out: &mut impl Write,
    index: usize,
    line: &str,
    caplen: u32,
    origlen: u32,
) -> Result<()> {
    write!(out, "{index:>4}  {line}")?;
    if caplen < origlen {
        write!(out, " [captured {caplen} of {origlen} bytes]")?;
    }
    writeln!(out)?;
    Ok(())
}
