//! The 802.1Qbg formats against real lldpad exchanges: every frame of every
//! `tests/vectors/lldpad_*.pcap` (pcapng, copied from `shared/evb/captures/`) is decoded, every
//! LLDP EVB/CDCP TLV and every ECP/VDP PDU in it is re-emitted from its `Repr` byte for byte,
//! and each frame's decoding is compared with the line the capture's author wrote for it with
//! an independent (scapy-based) decoder, kept beside each pcap as `lldpad_*.txt`.
//!
//! What each capture shows: `tests/vectors/MANIFEST.md` and `shared/evb/captures/README.md`.

use std::{fmt::Write, fs, path::PathBuf};

use pcap_parser::{Block, Linktype};
use wire::{EtherType, MacAddr, cdcp, ecp, ethernet, evb, lldp, vdp};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The lldpad captures the manifest lists: file name and number of frames.
fn captures() -> Vec<(String, usize)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(vectors().join("manifest.json")).expect("manifest"))
            .expect("valid JSON");
    manifest["lldpad_captures"]
        .as_array()
        .expect("lldpad_captures")
        .iter()
        .map(|file| {
            let name = file["file"].as_str().expect("file").to_owned();
            let frames = file["frames"].as_u64().expect("frames");
            (name, usize::try_from(frames).expect("a frame count"))
        })
        .collect()
}

/// The Ethernet frames of a pcapng file, in order.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let (_, capture) = pcap_parser::parse_pcapng(bytes).expect("pcapng");
    let mut frames = Vec::new();
    for section in &capture.sections {
        for block in &section.blocks {
            match block {
                Block::InterfaceDescription(interface) => {
                    assert_eq!(interface.linktype, Linktype::ETHERNET);
                }
                Block::EnhancedPacket(packet) => {
                    assert_eq!(packet.caplen, packet.origlen, "no frame is cut short");
                    let len = usize::try_from(packet.caplen).expect("a frame length");
                    frames.push(&packet.data[..len]);
                }
                _ => {}
            }
        }
    }
    frames
}

/// What the frames of all captures held, for the totals the test asserts.
#[derive(Debug, Default)]
struct Seen {
    evb: usize,
    evb_draft: usize,
    cdcp: usize,
    ecp_requests: usize,
    ecp_acks: usize,
    vsi_tlvs: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Decodes an LLDPDU, re-emits it and each 802.1Qbg TLV in it, and describes it the way the
/// capture's decoder does.
fn lldp_frame(at: &str, lldpdu: &[u8], seen: &mut Seen) -> String {
    let repr = lldp::Repr::parse(lldpdu).unwrap_or_else(|e| panic!("{at}: lldp {e}"));
    let len = repr.buffer_len();
    let mut out = vec![0xa5; len];
    assert_eq!(repr.emit(&mut out), Ok(len), "{at}");
    assert_eq!(out, lldpdu[..len], "{at}: LLDPDU re-emitted");
    assert!(
        lldpdu[len..].iter().all(|&b| b == 0),
        "{at}: only zero padding follows the End TLV"
    );

    let mut line = format!(
        "LLDP ChassisID sub={} {}; PortID sub={} {}; TTL={}",
        repr.chassis_id.0.0,
        hex(repr.chassis_id.1),
        repr.port_id.0.0,
        hex(repr.port_id.1),
        repr.ttl
    );
    for tlv in repr.optional_tlvs() {
        let tlv = tlv.unwrap_or_else(|e| panic!("{at}: {e}"));
        let org = tlv
            .org()
            .unwrap_or_else(|| panic!("{at}: only org TLVs expected"));
        // Each 802.1Qbg TLV is written again from its Repr: same bytes, header included.
        let mut again = vec![0xa5; tlv.buffer_len()];
        let mut writer = lldp::TlvWriter::new(&mut again);
        if let Some(evb) = evb::Repr::from_org(&org) {
            let evb = evb.unwrap_or_else(|e| panic!("{at}: evb {e}"));
            evb.write(&mut writer).unwrap();
            seen.evb += 1;
            let _ = write!(
                line,
                "; EVB22 bridge_s={:#04x}(BGID={} RRCAP={} RRCTRL={}) station_s={:#04x}(SGID={} \
                 RRREQ={} RRSTAT={}) R={} RTE={} mode={} ROL={} RWD={} ROL={} RKA={}",
                evb.bridge.to_octet(),
                u8::from(evb.bridge.group_ids),
                u8::from(evb.bridge.rr_capable),
                u8::from(evb.bridge.rr_enabled),
                evb.station.to_octet(),
                u8::from(evb.station.group_ids),
                u8::from(evb.station.rr_requested),
                evb.station.rr_status.0,
                evb.max_retries,
                evb.rte,
                evb.mode.0,
                u8::from(evb.rwd_remote),
                evb.rwd,
                u8::from(evb.rka_remote),
                evb.rka
            );
        } else if let Some(draft) = evb::DraftRepr::from_org(&org) {
            draft
                .unwrap_or_else(|e| panic!("{at}: draft evb {e}"))
                .write(&mut writer)
                .unwrap();
            seen.evb_draft += 1;
            let _ = write!(line, "; EVBdraft02 {}", hex(tlv.data));
        } else if let Some(cdcp) = cdcp::Repr::from_org(&org) {
            let cdcp = cdcp.unwrap_or_else(|e| panic!("{at}: cdcp {e}"));
            cdcp.write(&mut writer).unwrap();
            seen.cdcp += 1;
            let role = match cdcp.role {
                cdcp::Role::Bridge => "B(0)",
                cdcp::Role::Station => "S(1)",
            };
            let pairs: Vec<String> = std::iter::once((1, 1))
                .chain(cdcp.channels.iter().map(|c| (c.scid, c.svid)))
                .map(|(scid, svid)| format!("({scid}, {svid})"))
                .collect();
            let _ = write!(
                line,
                "; CDCP role={role} scomp={} chncap={} pairs=[{}]",
                u8::from(cdcp.scomp),
                cdcp.chn_cap,
                pairs.join(", ")
            );
        } else {
            panic!("{at}: unexpected org TLV {org}");
        }
        assert_eq!(writer.len(), tlv.buffer_len(), "{at}");
        let start = tlv.data.as_ptr() as usize - lldpdu.as_ptr() as usize - lldp::TLV_HEADER_LEN;
        assert_eq!(
            again,
            lldpdu[start..start + tlv.buffer_len()],
            "{at}: {org} re-emitted"
        );
    }
    line.push_str("; END");
    line
}

/// The decoder's words for a VSI TLV mode.
fn mode_name(mode: vdp::Mode) -> &'static str {
    match mode {
        vdp::Mode::PreAssociate => "PREASSOC",
        vdp::Mode::PreAssociateWithRr => "PREASSOC-RR",
        vdp::Mode::Associate => "ASSOC",
        vdp::Mode::Deassociate => "DEASSOC",
    }
}

/// The decoder's words for a filter entry (a Python dict).
fn entry(group: Option<u32>, mac: Option<MacAddr>, vlan: vdp::Vlan) -> String {
    let mut out = format!(
        "{{'ps': {}, 'pcp': {}, 'vid': {}",
        u8::from(vlan.ps),
        vlan.pcp,
        vlan.vid
    );
    if let Some(group) = group {
        let _ = write!(out, ", 'gid': {group}");
    }
    if let Some(mac) = mac {
        let _ = write!(out, ", 'mac': '{mac}'");
    }
    out.push('}');
    out
}

/// Decodes an ECPDU and its VDPDU, re-emits both, and describes them the way the decoder does.
fn ecp_frame(at: &str, ecpdu: &[u8], seen: &mut Seen) -> String {
    let packet = ecp::Packet::new_checked(ecpdu).unwrap_or_else(|e| panic!("{at}: ecp {e}"));
    let repr = ecp::Repr::parse(&packet).unwrap_or_else(|e| panic!("{at}: ecp {e}"));
    let mut header = [0xa5; ecp::HEADER_LEN];
    repr.emit(&mut ecp::Packet::new_unchecked(&mut header[..]));
    assert_eq!(
        header,
        ecpdu[..ecp::HEADER_LEN],
        "{at}: ECP header re-emitted"
    );
    assert_eq!(repr.subtype, ecp::Subtype::VDP, "{at}");
    let op = match repr.operation {
        ecp::Operation::REQUEST => "REQ",
        ecp::Operation::ACK => "ACK",
        other => panic!("{at}: operation {other}"),
    };
    let mut line = format!(
        "ECP ver=1 op={op} sub={} seq={}",
        repr.subtype.0, repr.sequence
    );
    if repr.operation == ecp::Operation::ACK {
        assert!(packet.payload().is_empty(), "{at}: lldpad's ACKs are bare");
        seen.ecp_acks += 1;
        return line;
    }
    seen.ecp_requests += 1;
    let payload = packet.payload();
    let vdpdu = vdp::Repr::parse(payload).unwrap_or_else(|e| panic!("{at}: vdp {e}"));
    let len = vdpdu.buffer_len();
    let mut out = vec![0xa5; len];
    assert_eq!(vdpdu.emit(&mut out), Ok(len), "{at}");
    assert_eq!(out, payload[..len], "{at}: VDPDU re-emitted");
    assert_eq!(len, payload.len(), "{at}: veth frames carry no padding");

    let _ = write!(line, " VDP: MGRID={}", vdpdu.manager_id);
    for tlv in &vdpdu.tlvs {
        let vdp::Tlv::Vsi(vsi) = tlv else {
            panic!("{at}: only VSI TLVs expected");
        };
        seen.vsi_tlvs += 1;
        let octet = vsi.status.to_octet();
        let status = match vsi.status {
            vdp::Status::Request {
                migrate_from,
                migrate_to,
            } => format!(
                "REQ(M={} S={})",
                u8::from(migrate_to),
                u8::from(migrate_from)
            ),
            vdp::Status::Response {
                keep,
                hard_error,
                reason,
            } => format!(
                "RESP(err={} keep={} hard={})",
                reason.0,
                u8::from(keep),
                u8::from(hard_error)
            ),
        };
        let entries: Vec<String> = (0..vsi.filters.len())
            .map(|i| {
                let (group, mac, vlan) = vsi.filters.entry(i).expect("entry");
                entry(group, mac, vlan)
            })
            .collect();
        let _ = write!(
            line,
            " | {} status={octet:#04x} {status} typeid={} ver={} idfmt={} vsiid={} fif={} n={} [{}]",
            mode_name(vsi.mode),
            vsi.type_id,
            vsi.type_version,
            vsi.id_format.0,
            hex(&vsi.id.0),
            vsi.filters.format().0,
            vsi.filters.len(),
            entries.join(", ")
        );
    }
    if vdpdu.end {
        line.push_str(" | END");
    }
    line
}

/// The decoder's line without its frame number and time: `src->dst len=N ...`.
fn strip_number_and_time(line: &str) -> &str {
    let rest = line.trim_start();
    let (_, rest) = rest.split_once(' ').expect("frame number");
    let (_, rest) = rest.trim_start().split_once(' ').expect("time");
    rest
}

#[test]
fn every_lldpad_frame_decodes_re_emits_and_matches_the_independent_decoder() {
    let mut seen = Seen::default();
    let mut total = 0;
    let captures = captures();
    assert_eq!(captures.len(), 7);
    for (name, count) in &captures {
        let stem = name.strip_suffix(".pcap").expect("a .pcap name");
        let bytes = fs::read(vectors().join(name)).expect("pcap");
        let oracle = fs::read_to_string(vectors().join(format!("{stem}.txt"))).expect("txt");
        let oracle: Vec<&str> = oracle.lines().collect();
        let captured = frames(&bytes);
        assert_eq!(
            captured.len(),
            *count,
            "{stem}: frame count in the manifest"
        );
        assert_eq!(
            captured.len(),
            oracle.len(),
            "{stem}: frame count in the decoded text"
        );
        for (index, (frame, theirs)) in captured.iter().zip(&oracle).enumerate() {
            let at = format!("{stem}#{}", index + 1);
            let eth = ethernet::Frame::new_checked(*frame).expect("ethernet");
            let repr = ethernet::Repr::parse(&eth).expect("ethernet");
            let payload = &frame[ethernet::HEADER_LEN..];
            let body = match repr.ethertype {
                EtherType::LLDP => lldp_frame(&at, payload, &mut seen),
                EtherType::ECP => ecp_frame(&at, payload, &mut seen),
                other => panic!("{at}: EtherType {other}"),
            };
            let ours = format!(
                "{}->{} len={} {body}",
                repr.src_addr,
                repr.dst_addr,
                frame.len()
            );
            assert_eq!(ours, strip_number_and_time(theirs), "{at}");
            // Every frame goes through the pretty-printer without a parse failure.
            let pretty = wire::pretty::PrettyPrinter::new(frame).to_string();
            for failure in ["[eth:", "[lldp:", "[ecp:", "[vdp:", "evb (", "cdcp ("] {
                assert!(!pretty.contains(failure), "{at}: {pretty}");
            }
            total += 1;
        }
    }
    // Totals from the decoded text files, so a frame cannot silently go unchecked.
    assert_eq!(total, 339);
    assert_eq!(seen.evb, 75);
    assert_eq!(seen.evb_draft, 7);
    assert_eq!(seen.cdcp, 9);
    assert_eq!(seen.ecp_requests, 125);
    assert_eq!(seen.ecp_acks, 121);
    assert_eq!(seen.vsi_tlvs, 125);
}

#[test]
fn pretty_printer_lines_for_lldpad_frames() {
    let bytes = fs::read(vectors().join("lldpad_03-lldpad-station-vs-scapy-bridge.pcap")).unwrap();
    let captured = frames(&bytes);
    let line = |index: usize| wire::pretty::PrettyPrinter::new(captured[index - 1]).to_string();
    assert_eq!(
        line(1),
        "eth 52:54:00:00:be:01 > 01:80:c2:00:00:00 lldp chassis mac 52:54:00:00:be:01 port ifname \
         evbr ttl 120 evb bridge bridge[rrcap ] station[rr-off] r 3 rte 14 rwd 20 rka 20 cdcp \
         bridge scomp chncap 4 <1,1> <2,100>"
    );
    assert_eq!(
        line(13),
        "eth 52:54:00:00:be:01 > 01:80:c2:00:00:00 ecp req vdp seq 1 | vdp mgr evmgr1 | assoc \
         resp success type 5 v4 uuid aaaaaaaa-0000-4000-8000-000000000001 mac-vid \
         [52:54:00:8e:aa:11 vid 10]"
    );
    assert_eq!(
        line(14),
        "eth 52:54:00:00:5e:01 > 01:80:c2:00:00:00 ecp ack vdp seq 1"
    );
    assert_eq!(
        line(28),
        "eth 52:54:00:00:be:01 > 01:80:c2:00:00:00 ecp req vdp seq 4 | vdp mgr evmgr1 | deassoc \
         resp insufficient-resources type 99 v1 uuid 99999999-0000-4000-8000-000000000099 \
         mac-vid [52:54:00:8e:aa:99 vid 0]"
    );
    let bytes = fs::read(vectors().join("lldpad_06-draft02-evb-tlv.pcap")).unwrap();
    let captured = frames(&bytes);
    let line = wire::pretty::PrettyPrinter::new(captured[1]).to_string();
    assert!(
        line.ends_with("evb-draft mode 0xc0/0x40 caps 0x07/0x07 vsis 1000/0 rte 15"),
        "{line}"
    );
}
