//! Test vectors made by real peers, never by weft's own encoder: every frame of every pcap in
//! `tests/vectors/` is decoded, its fields are checked against `manifest.json`, and its headers
//! are re-emitted from the parsed `Repr`s byte for byte.
//!
//! How the vectors were made (details and commands in `tests/vectors/MANIFEST.md`):
//! * `kernel_*.pcap`: the Linux kernel. `make_kernel_vectors.sh` (root) builds two network
//!   namespaces joined by a veth underlay, each with a kernel vxlan device (IPv4 underlay VNI 100,
//!   IPv6 underlay VNI 200), pings across and captures the underlay with tcpdump; plus a plain
//!   veth ping, with and without the IPv4 record-route option (`ping -R`).
//! * `scapy_*.pcap`: scapy, from `make_scapy_vectors.py` (NVGRE, GRE key/checksum/sequence,
//!   802.1Q and 802.1ad QinQ, ARP, a DHCP DORA exchange, IPv6/UDP, LLDP, malformed frames).
//! * `manifest.json`: `make_manifest.py`, which dissects every frame with scapy and computes
//!   every checksum verdict itself. That is the independent oracle this test compares against.

use std::{fs, net::IpAddr, path::PathBuf};

use serde_json::Value;
use wire::{
    Error, EtherType, IpProtocol, arp, checksum::PseudoHeader, dhcpv4, ethernet, gre, icmpv4, ipv4,
    ipv6, lldp, udp, vlan, vxlan,
};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// One decoded layer and where its header starts in the frame.
#[derive(Debug)]
struct At<'a> {
    offset: usize,
    layer: Layer<'a>,
}

#[derive(Debug)]
enum Layer<'a> {
    Eth(ethernet::Repr),
    Tag(EtherType, vlan::Repr),
    Arp(arp::Repr),
    Ipv4(ipv4::Repr),
    Ipv6(ipv6::Repr),
    Udp(udp::Repr, u16, PseudoHeader),
    Icmp(icmpv4::Repr<'a>),
    Vxlan(vxlan::Repr),
    Gre(gre::Repr),
    Dhcp(dhcpv4::Repr, usize),
    Lldp(lldp::Repr<'a>),
}

/// Where decoding stopped: the layer name and the reason.
type Failure = (&'static str, Error);

/// Decodes a frame into its layers, outer to inner, the way the switch will.
fn dissect(frame: &[u8]) -> Result<Vec<At<'_>>, (Vec<At<'_>>, Failure)> {
    let mut layers = Vec::new();
    match dissect_frame(frame, 0, &mut layers) {
        Ok(()) => Ok(layers),
        Err(failure) => Err((layers, failure)),
    }
}

fn dissect_frame<'a>(frame: &'a [u8], base: usize, out: &mut Vec<At<'a>>) -> Result<(), Failure> {
    let fail = |layer| move |err| (layer, err);
    let eth = ethernet::Frame::new_checked(frame).map_err(fail("eth"))?;
    let repr = ethernet::Repr::parse(&eth).map_err(fail("eth"))?;
    out.push(At {
        offset: base,
        layer: Layer::Eth(repr),
    });
    let mut ethertype = repr.ethertype;
    let mut offset = ethernet::HEADER_LEN;
    while ethertype.is_vlan_tag() {
        let tag = vlan::Packet::new_checked(&frame[offset..]).map_err(fail("vlan"))?;
        let repr = vlan::Repr::parse(&tag).map_err(fail("vlan"))?;
        out.push(At {
            offset: base + offset,
            layer: Layer::Tag(ethertype, repr),
        });
        ethertype = repr.ethertype;
        offset += vlan::HEADER_LEN;
    }
    let rest = &frame[offset..];
    let base = base + offset;
    match ethertype {
        EtherType::ARP => {
            let packet = arp::Packet::new_checked(rest).map_err(fail("arp"))?;
            out.push(At {
                offset: base,
                layer: Layer::Arp(arp::Repr::parse(&packet).map_err(fail("arp"))?),
            });
        }
        EtherType::IPV4 | EtherType::IPV6 => dissect_ip(rest, base, out)?,
        EtherType::LLDP => {
            out.push(At {
                offset: base,
                layer: Layer::Lldp(lldp::Repr::parse(rest).map_err(fail("lldp"))?),
            });
        }
        other => panic!("no vector should carry EtherType {other}"),
    }
    Ok(())
}

fn dissect_ip<'a>(bytes: &'a [u8], base: usize, out: &mut Vec<At<'a>>) -> Result<(), Failure> {
    let fail = |layer| move |err| (layer, err);
    let (protocol, payload, pseudo, header_len) = if bytes.first().map(|b| b >> 4) == Some(6) {
        let packet = ipv6::Packet::new_checked(bytes).map_err(fail("ipv6"))?;
        let repr = ipv6::Repr::parse(&packet).map_err(fail("ipv6"))?;
        out.push(At {
            offset: base,
            layer: Layer::Ipv6(repr),
        });
        let pseudo = PseudoHeader::V6 {
            src: repr.src_addr,
            dst: repr.dst_addr,
        };
        (repr.next_header, packet.payload(), pseudo, ipv6::HEADER_LEN)
    } else {
        let packet = ipv4::Packet::new_checked(bytes).map_err(fail("ipv4"))?;
        let repr = ipv4::Repr::parse(&packet).map_err(fail("ipv4"))?;
        out.push(At {
            offset: base,
            layer: Layer::Ipv4(repr),
        });
        let pseudo = PseudoHeader::V4 {
            src: repr.src_addr,
            dst: repr.dst_addr,
        };
        (repr.protocol, packet.payload(), pseudo, packet.header_len())
    };
    let base = base + header_len;
    match protocol {
        IpProtocol::ICMP => {
            let packet = icmpv4::Packet::new_checked(payload).map_err(fail("icmp"))?;
            out.push(At {
                offset: base,
                layer: Layer::Icmp(icmpv4::Repr::parse(&packet).map_err(fail("icmp"))?),
            });
        }
        IpProtocol::UDP => {
            let packet = udp::Packet::new_checked(payload).map_err(fail("udp"))?;
            let repr = udp::Repr::parse(&packet, &pseudo).map_err(fail("udp"))?;
            out.push(At {
                offset: base,
                layer: Layer::Udp(repr, packet.checksum(), pseudo),
            });
            let data = packet.payload();
            let base = base + udp::HEADER_LEN;
            if repr.dst_port == vxlan::PORT {
                let packet = vxlan::Packet::new_checked(data).map_err(fail("vxlan"))?;
                let vx = vxlan::Repr::parse(&packet).map_err(fail("vxlan"))?;
                out.push(At {
                    offset: base,
                    layer: Layer::Vxlan(vx),
                });
                dissect_frame(packet.payload(), base + vxlan::HEADER_LEN, out)?;
            } else if [repr.src_port, repr.dst_port].contains(&dhcpv4::SERVER_PORT) {
                let dhcp = dhcpv4::Repr::parse(data).map_err(fail("dhcp"))?;
                out.push(At {
                    offset: base,
                    layer: Layer::Dhcp(dhcp, data.len()),
                });
            }
        }
        IpProtocol::GRE => {
            let packet = gre::Packet::new_checked(payload).map_err(fail("gre"))?;
            let repr = gre::Repr::parse(&packet).map_err(fail("gre"))?;
            out.push(At {
                offset: base,
                layer: Layer::Gre(repr),
            });
            let inner = packet.payload();
            let base = base + packet.header_len();
            match repr.protocol {
                EtherType::TRANSPARENT_ETHERNET => dissect_frame(inner, base, out)?,
                EtherType::IPV4 | EtherType::IPV6 => dissect_ip(inner, base, out)?,
                other => panic!("no vector should carry GRE protocol {other}"),
            }
        }
        other => panic!("no vector should carry IP protocol {other}"),
    }
    Ok(())
}

/// Re-emits every header from its `Repr`, innermost first (so checksums cover re-emitted
/// bytes), over a copy of the frame whose header bytes were first filled with junk.
fn re_emit(frame: &[u8], layers: &[At<'_>]) -> Vec<u8> {
    let mut out = frame.to_vec();
    for at in layers.iter().rev() {
        let buf = &mut out[at.offset..];
        match &at.layer {
            Layer::Eth(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut ethernet::Frame::new_unchecked(buf));
            }
            Layer::Tag(_, repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut vlan::Packet::new_unchecked(buf));
            }
            Layer::Arp(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut arp::Packet::new_unchecked(buf));
            }
            Layer::Ipv4(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut ipv4::Packet::new_unchecked(buf));
            }
            Layer::Ipv6(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut ipv6::Packet::new_unchecked(buf));
            }
            Layer::Udp(repr, checksum, pseudo) => {
                buf[..repr.buffer_len()].fill(0xa5);
                let end = repr.buffer_len() + repr.payload_len;
                let checksum = (*checksum != 0).then_some(pseudo);
                repr.emit(&mut udp::Packet::new_unchecked(&mut buf[..end]), checksum);
            }
            Layer::Icmp(repr) => {
                let copy = *repr;
                // The echo data is borrowed from `frame`, not `out`, so this rewrites it too.
                let len = copy.buffer_len();
                buf[..len].fill(0xa5);
                copy.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..len]));
            }
            Layer::Vxlan(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut vxlan::Packet::new_unchecked(buf));
            }
            Layer::Gre(repr) => {
                buf[..repr.buffer_len()].fill(0xa5);
                repr.emit(&mut gre::Packet::new_unchecked(buf));
            }
            Layer::Dhcp(repr, len) => {
                buf[..*len].fill(0xa5);
                let written = repr
                    .emit(&mut buf[..*len])
                    .expect("DHCP fits where it came from");
                assert_eq!(written, *len, "dhcproto re-encodes to the same length");
            }
            Layer::Lldp(repr) => {
                let len = repr.buffer_len();
                buf[..len].fill(0xa5);
                assert_eq!(repr.emit(buf), Ok(len));
            }
        }
    }
    out
}

fn hex16(value: &Value) -> u16 {
    let text = value.as_str().expect("hex string");
    u16::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex")
}

fn num(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("number expected, got {value}"))
}

fn ip(value: &Value) -> IpAddr {
    value
        .as_str()
        .expect("address string")
        .parse()
        .expect("address")
}

/// Compares one of our layers with the manifest's view of it.
fn compare(ours: &Layer<'_>, theirs: &Value, at: &str) {
    let proto = theirs["proto"].as_str().expect("proto");
    let ctx = |field: &str| format!("{at}: {proto}.{field}");
    match ours {
        Layer::Eth(repr) => {
            assert_eq!(proto, "eth", "{at}");
            assert_eq!(repr.src_addr.to_string(), theirs["src"], "{}", ctx("src"));
            assert_eq!(repr.dst_addr.to_string(), theirs["dst"], "{}", ctx("dst"));
            assert_eq!(repr.ethertype.0, hex16(&theirs["type"]), "{}", ctx("type"));
        }
        Layer::Tag(tpid, repr) => {
            assert!(proto == "dot1q" || proto == "dot1ad", "{at}: {proto}");
            assert_eq!(tpid.0, hex16(&theirs["tpid"]), "{}", ctx("tpid"));
            assert_eq!(u64::from(repr.pcp), num(&theirs["pcp"]), "{}", ctx("pcp"));
            assert_eq!(u64::from(repr.dei), num(&theirs["dei"]), "{}", ctx("dei"));
            assert_eq!(u64::from(repr.vid), num(&theirs["vid"]), "{}", ctx("vid"));
            assert_eq!(repr.ethertype.0, hex16(&theirs["type"]), "{}", ctx("type"));
        }
        Layer::Arp(repr) => {
            assert_eq!(proto, "arp", "{at}");
            assert_eq!(
                u64::from(repr.operation.0),
                num(&theirs["op"]),
                "{}",
                ctx("op")
            );
            assert_eq!(
                repr.source_hardware_addr.to_string(),
                theirs["sha"],
                "{}",
                ctx("sha")
            );
            assert_eq!(
                repr.target_hardware_addr.to_string(),
                theirs["tha"],
                "{}",
                ctx("tha")
            );
            assert_eq!(
                IpAddr::from(repr.source_protocol_addr),
                ip(&theirs["spa"]),
                "{}",
                ctx("spa")
            );
            assert_eq!(
                IpAddr::from(repr.target_protocol_addr),
                ip(&theirs["tpa"]),
                "{}",
                ctx("tpa")
            );
            assert_eq!(
                Value::from(repr.is_gratuitous()),
                theirs["gratuitous"],
                "{}",
                ctx("gratuitous")
            );
        }
        Layer::Ipv4(repr) => {
            assert_eq!(proto, "ipv4", "{at}");
            assert_eq!(
                IpAddr::from(repr.src_addr),
                ip(&theirs["src"]),
                "{}",
                ctx("src")
            );
            assert_eq!(
                IpAddr::from(repr.dst_addr),
                ip(&theirs["dst"]),
                "{}",
                ctx("dst")
            );
            assert_eq!(
                u64::from(repr.protocol.0),
                num(&theirs["protocol"]),
                "{}",
                ctx("protocol")
            );
            assert_eq!(u64::from(repr.ttl), num(&theirs["ttl"]), "{}", ctx("ttl"));
            assert_eq!(u64::from(repr.ident), num(&theirs["id"]), "{}", ctx("id"));
            assert_eq!(
                u64::from(repr.dont_frag),
                num(&theirs["df"]),
                "{}",
                ctx("df")
            );
            assert_eq!(
                u64::from(repr.more_frags),
                num(&theirs["mf"]),
                "{}",
                ctx("mf")
            );
            let header = repr.buffer_len() as u64;
            assert_eq!(header / 4, num(&theirs["ihl"]), "{}", ctx("ihl"));
            assert_eq!(
                header + repr.payload_len as u64,
                num(&theirs["total_length"]),
                "{}",
                ctx("total_length")
            );
            assert_eq!(
                u64::from(repr.dscp << 2 | repr.ecn),
                u64::from(hex16(&theirs["tos"])),
                "{}",
                ctx("tos")
            );
            assert_eq!(theirs["checksum_ok"], true, "{}", ctx("checksum_ok"));
        }
        Layer::Ipv6(repr) => {
            assert_eq!(proto, "ipv6", "{at}");
            assert_eq!(
                IpAddr::from(repr.src_addr),
                ip(&theirs["src"]),
                "{}",
                ctx("src")
            );
            assert_eq!(
                IpAddr::from(repr.dst_addr),
                ip(&theirs["dst"]),
                "{}",
                ctx("dst")
            );
            assert_eq!(
                u64::from(repr.next_header.0),
                num(&theirs["next_header"]),
                "{}",
                ctx("next_header")
            );
            assert_eq!(
                u64::from(repr.hop_limit),
                num(&theirs["hop_limit"]),
                "{}",
                ctx("hop_limit")
            );
            assert_eq!(
                repr.payload_len as u64,
                num(&theirs["payload_length"]),
                "{}",
                ctx("payload_length")
            );
        }
        Layer::Udp(repr, checksum, _) => {
            assert_eq!(proto, "udp", "{at}");
            assert_eq!(
                u64::from(repr.src_port),
                num(&theirs["sport"]),
                "{}",
                ctx("sport")
            );
            assert_eq!(
                u64::from(repr.dst_port),
                num(&theirs["dport"]),
                "{}",
                ctx("dport")
            );
            assert_eq!(
                repr.payload_len as u64 + 8,
                num(&theirs["length"]),
                "{}",
                ctx("length")
            );
            assert_eq!(*checksum, hex16(&theirs["checksum"]), "{}", ctx("checksum"));
            assert_eq!(theirs["checksum_ok"], true, "{}", ctx("checksum_ok"));
        }
        Layer::Icmp(repr) => {
            assert_eq!(proto, "icmp", "{at}");
            let (kind, ident, seq_no, data) = match *repr {
                icmpv4::Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => (8, ident, seq_no, data),
                icmpv4::Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                } => (0, ident, seq_no, data),
                icmpv4::Repr::Other { .. } => panic!("{at}: vectors carry only echo"),
            };
            assert_eq!(kind, num(&theirs["type"]), "{}", ctx("type"));
            assert_eq!(u64::from(ident), num(&theirs["id"]), "{}", ctx("id"));
            assert_eq!(u64::from(seq_no), num(&theirs["seq"]), "{}", ctx("seq"));
            assert_eq!(
                data.len() as u64,
                num(&theirs["payload_length"]),
                "{}",
                ctx("payload_length")
            );
        }
        Layer::Vxlan(repr) => {
            assert_eq!(proto, "vxlan", "{at}");
            assert_eq!(
                u64::from(repr.vni.get()),
                num(&theirs["vni"]),
                "{}",
                ctx("vni")
            );
        }
        Layer::Gre(repr) => {
            assert_eq!(proto, "gre", "{at}");
            assert_eq!(
                repr.protocol.0,
                hex16(&theirs["protocol"]),
                "{}",
                ctx("protocol")
            );
            assert_eq!(u64::from(repr.checksum), num(&theirs["c"]), "{}", ctx("c"));
            assert_eq!(
                u64::from(repr.key.is_some()),
                num(&theirs["k"]),
                "{}",
                ctx("k")
            );
            assert_eq!(
                u64::from(repr.sequence.is_some()),
                num(&theirs["s"]),
                "{}",
                ctx("s")
            );
            if repr.checksum {
                assert_eq!(theirs["checksum_ok"], true, "{}", ctx("checksum_ok"));
            }
            assert_eq!(
                repr.buffer_len() as u64,
                num(&theirs["header_length"]),
                "{}",
                ctx("header_length")
            );
            if let Some(key) = repr.key {
                assert_eq!(u64::from(key), num(&theirs["key"]), "{}", ctx("key"));
            }
            if let Some(seq) = repr.sequence {
                assert_eq!(u64::from(seq), num(&theirs["seq"]), "{}", ctx("seq"));
            }
            // The manifest names VSID/flow id only where the vector was meant as NVGRE; a plain
            // GRE-key frame of the same shape reads as NVGRE here (the wire cannot tell them apart).
            if let (Some(nvgre), Some(vsid)) = (repr.as_nvgre(), theirs.get("nvgre_vsid")) {
                assert_eq!(u64::from(nvgre.vsid.get()), num(vsid), "{}", ctx("vsid"));
                assert_eq!(
                    u64::from(nvgre.flow_id),
                    num(&theirs["nvgre_flowid"]),
                    "{}",
                    ctx("flowid")
                );
            }
        }
        Layer::Dhcp(repr, _) => {
            assert_eq!(proto, "dhcp", "{at}");
            let msg = &repr.message;
            assert_eq!(
                format!("{:#010x}", msg.xid()),
                theirs["xid"],
                "{}",
                ctx("xid")
            );
            assert_eq!(
                IpAddr::from(msg.yiaddr()),
                ip(&theirs["yiaddr"]),
                "{}",
                ctx("yiaddr")
            );
            assert_eq!(
                repr.client_mac().map(|m| m.to_string()),
                theirs["chaddr"].as_str().map(str::to_owned)
            );
            let kind = repr.message_type().map(|k| u64::from(u8::from(k)));
            assert_eq!(
                kind,
                theirs["message_type"].as_u64(),
                "{}",
                ctx("message_type")
            );
            let mut codes: Vec<u64> = msg
                .opts()
                .iter()
                .map(|(code, _)| u64::from(u8::from(*code)))
                .collect();
            codes.push(255);
            let theirs_codes: Vec<u64> = theirs["option_codes"]
                .as_array()
                .expect("codes")
                .iter()
                .map(num)
                .collect();
            assert_eq!(codes, theirs_codes, "{}", ctx("option_codes"));
        }
        Layer::Lldp(repr) => {
            assert_eq!(proto, "lldp", "{at}");
            let tlvs = theirs["tlvs"].as_array().expect("tlvs");
            assert_eq!(
                u64::from(repr.chassis_id.0.0),
                num(&tlvs[0]["subtype"]),
                "{}",
                ctx("chassis subtype")
            );
            assert_eq!(
                u64::from(repr.port_id.0.0),
                num(&tlvs[1]["subtype"]),
                "{}",
                ctx("port subtype")
            );
            assert_eq!(
                String::from_utf8_lossy(repr.port_id.1),
                tlvs[1]["value"].as_str().expect("port")
            );
            assert_eq!(
                u64::from(repr.ttl),
                num(&tlvs[2]["value"]),
                "{}",
                ctx("ttl")
            );
            let optional: Vec<_> = repr
                .optional_tlvs()
                .map(|t| t.expect("whole TLV"))
                .collect();
            // Theirs lists chassis, port, TTL, the optional TLVs and End.
            assert_eq!(optional.len() + 4, tlvs.len(), "{}", ctx("tlv count"));
            for (ours, theirs) in optional.iter().zip(&tlvs[3..]) {
                assert_eq!(
                    u64::from(ours.kind.0),
                    num(&theirs["type"]),
                    "{}",
                    ctx("tlv type")
                );
                assert_eq!(
                    ours.data.len() as u64,
                    num(&theirs["length"]),
                    "{}",
                    ctx("tlv length")
                );
                if let Some(org) = ours.org() {
                    assert_eq!(
                        u64::from(org.subtype),
                        num(&theirs["subtype"]),
                        "{}",
                        ctx("org subtype")
                    );
                }
            }
        }
    }
}

/// What the parser must say about each deliberately broken frame of `scapy_malformed.pcap`.
const MALFORMED: [Failure; 8] = [
    ("ipv4", Error::BadChecksum),
    ("ipv4", Error::BadLength),
    ("ipv4", Error::Truncated),
    ("udp", Error::BadChecksum),
    ("ipv4", Error::Truncated),
    ("vxlan", Error::BadFlags),
    ("gre", Error::BadVersion),
    ("lldp", Error::Truncated),
];

#[test]
fn every_vector_decodes_matches_the_manifest_and_re_emits_byte_for_byte() {
    let manifest: Value =
        serde_json::from_slice(&fs::read(vectors().join("manifest.json")).expect("manifest.json"))
            .expect("valid JSON");
    let files = manifest["files"].as_array().expect("files");
    let mut frames_checked = 0;
    let mut pcaps_seen: Vec<String> = Vec::new();
    for file in files {
        let name = file["file"].as_str().expect("file name");
        pcaps_seen.push(name.to_owned());
        let bytes = fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, capture) = pcap_parser::pcap::parse_pcap(&bytes).expect("classic pcap");
        assert_eq!(
            capture.header.network,
            pcap_parser::Linktype::ETHERNET,
            "{name}"
        );
        let expected = file["frames"].as_array().expect("frames");
        assert_eq!(capture.blocks.len(), expected.len(), "{name}: frame count");
        for (index, (block, theirs)) in capture.blocks.iter().zip(expected).enumerate() {
            let at = format!("{name}#{index}");
            let frame = block.data;
            assert_eq!(frame.len() as u64, num(&theirs["len"]), "{at}: length");
            // The pretty-printer must get through every frame, broken or not.
            assert!(
                !wire::pretty::PrettyPrinter::new(frame)
                    .to_string()
                    .is_empty()
            );
            if theirs.get("malformed").is_some() {
                let (_, failure) = dissect(frame).expect_err(&format!("{at} is malformed"));
                assert_eq!(failure, MALFORMED[index], "{at}: {}", theirs["malformed"]);
                frames_checked += 1;
                continue;
            }
            let layers = dissect(frame).unwrap_or_else(|(_, f)| panic!("{at}: {f:?}"));
            let decodable: Vec<&Value> = theirs["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .filter(|l| {
                    !matches!(
                        l["proto"].as_str(),
                        Some("eth_padding" | "payload" | "undecoded")
                    )
                })
                .collect();
            assert_eq!(
                layers.len(),
                decodable.len(),
                "{at}: layer count {layers:?}"
            );
            for (ours, theirs) in layers.iter().zip(decodable) {
                compare(&ours.layer, theirs, &at);
            }
            assert_eq!(
                re_emit(frame, &layers),
                frame,
                "{at}: re-emitted bytes differ"
            );
            frames_checked += 1;
        }
    }
    // The lldpad captures (pcapng) are listed in the manifest too; tests/evb_vectors.rs reads them.
    for file in manifest["lldpad_captures"]
        .as_array()
        .expect("lldpad_captures")
    {
        pcaps_seen.push(file["file"].as_str().expect("file name").to_owned());
    }
    // Every pcap in the folder is covered by the manifest (a new vector cannot be forgotten).
    let mut on_disk: Vec<String> = fs::read_dir(vectors())
        .expect("vectors dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap"))
        .collect();
    on_disk.sort();
    pcaps_seen.sort();
    assert_eq!(on_disk, pcaps_seen);
    assert!(frames_checked >= 55, "only {frames_checked} frames checked");
}

#[test]
fn pretty_printer_lines_for_real_frames() {
    let bytes = fs::read(vectors().join("kernel_vxlan_ipv4.pcap")).expect("pcap");
    let (_, capture) = pcap_parser::pcap::parse_pcap(&bytes).expect("classic pcap");
    let line = wire::pretty::PrettyPrinter::new(capture.blocks[0].data).to_string();
    assert!(
        line.starts_with(
            "eth 02:00:00:00:01:01 > 02:00:00:00:01:02 ipv4 192.0.2.1 > 192.0.2.2 udp "
        ),
        "{line}"
    );
    assert!(
        line.ends_with(
            "vxlan vni 100 | eth fa:16:3e:00:05:07 > ff:ff:ff:ff:ff:ff arp who-has 10.0.5.2 tell 10.0.5.7"
        ),
        "{line}"
    );
    let bytes = fs::read(vectors().join("scapy_qinq.pcap")).expect("pcap");
    let (_, capture) = pcap_parser::pcap::parse_pcap(&bytes).expect("classic pcap");
    let line = wire::pretty::PrettyPrinter::new(capture.blocks[0].data).to_string();
    assert!(
        line.contains(" vlan 1 ipv4 10.0.5.7 > 10.0.5.2 icmp echo request"),
        "{line}"
    );
}
