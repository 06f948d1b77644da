//! Frames written by weft's encoders, dissected by tshark (Wireshark): an independent parser
//! checks every field we put on the wire, so our encoder is never only checked against itself.
//!
//! CI installs tshark (`.ci/run`). Without it this test fails rather than passes vacuously,
//! unless `WEFT_SKIP_TSHARK=1` is set by someone who knows they are skipping it.

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::Command,
};

use wire::{EtherType, MacAddr, Vni, dhcpv4, encap, ethernet, lldp, vlan, vxlan};

const VM1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
const VM2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]);
const HOST1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const HOST2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Writes frames as a classic pcap (Ethernet link type) for tshark to read.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, frame) in frames.iter().enumerate() {
        let len = u32::try_from(frame.len()).unwrap();
        out.extend_from_slice(&u32::try_from(i).unwrap().to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// An ARP request from VM1 for 10.0.5.2, as a tenant frame.
fn arp_request() -> Vec<u8> {
    wire::build::arp_request(VM1, Ipv4Addr::new(10, 0, 5, 7), Ipv4Addr::new(10, 0, 5, 2))
}

/// An IPv4/UDP datagram from VM1 to VM2 with a real checksum.
fn udp_frame(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(10, 0, 5, 7), Ipv4Addr::new(10, 0, 5, 2));
    wire::build::udp_ipv4(VM1, VM2, src, dst, (src_port, dst_port), payload)
}

fn encapsulated(inner: &[u8], tunnel: encap::Tunnel, v6: bool, udp_checksum_v4: bool) -> Vec<u8> {
    let (src_ip, dst_ip): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(192, 0, 2, 2).into(),
        )
    };
    let spec = encap::Encap {
        tunnel,
        src_ip,
        dst_ip,
        ttl: 64,
        dscp: 0,
        ident: 9,
        udp_checksum_v4,
        ethernet: Some((HOST1, HOST2)),
    };
    let mut buffer = vec![0u8; encap::HEADROOM];
    buffer.extend_from_slice(inner);
    let end = buffer.len();
    let start = encap::encapsulate(&mut buffer, encap::HEADROOM, end, &spec).expect("encapsulate");
    buffer[start..].to_vec()
}

fn lldp_frame() -> Vec<u8> {
    let mut optional = [0u8; 64];
    let mut writer = lldp::TlvWriter::new(&mut optional);
    writer.write(lldp::TlvType::SYSTEM_NAME, b"hv1").unwrap();
    writer
        .write_org(lldp::Oui::IEEE_802_1, 0x01, &[0x00, 0x01])
        .unwrap();
    let len = writer.len();
    let repr = lldp::Repr {
        chassis_id: (lldp::ChassisIdSubtype(4), &HOST1.0),
        port_id: (lldp::PortIdSubtype(5), b"eth0"),
        ttl: 120,
        optional: &optional[..len],
    };
    let mut frame = vec![0u8; 14 + repr.buffer_len()];
    let eth = ethernet::Repr {
        src_addr: HOST1,
        dst_addr: lldp::NEAREST_BRIDGE,
        ethertype: EtherType::LLDP,
    };
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    repr.emit(&mut frame[14..]).unwrap();
    frame
}

fn dhcp_offer() -> Vec<u8> {
    let mut message = dhcpv4::Message::new_with_id(
        0xdead_beef,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 0, 5, 7),
        Ipv4Addr::new(10, 0, 5, 1),
        Ipv4Addr::UNSPECIFIED,
        &VM1.0,
    );
    message.set_opcode(dhcpv4::Opcode::BootReply);
    let opts = message.opts_mut();
    opts.insert(dhcpv4::DhcpOption::MessageType(dhcpv4::MessageType::Offer));
    opts.insert(dhcpv4::DhcpOption::ServerIdentifier(Ipv4Addr::new(
        10, 0, 5, 1,
    )));
    opts.insert(dhcpv4::DhcpOption::InterfaceMtu(1450));
    let repr = dhcpv4::Repr { message };
    let mut payload = vec![0u8; 600];
    let len = repr.emit_padded(&mut payload).unwrap();
    payload.truncate(len);
    udp_frame(dhcpv4::SERVER_PORT, dhcpv4::CLIENT_PORT, &payload)
}

fn tshark(frames: &[Vec<u8>], fields: &[&str]) -> Option<Vec<Vec<String>>> {
    // One directory per call: the tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weft-tshark-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frames.pcap");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&pcap(frames))
        .unwrap();
    let mut command = Command::new("tshark");
    command.args(["-n", "-r"]).arg(&path);
    // Verify every checksum; read UDP 4789 as VXLAN (Wireshark does by default, say it anyway).
    command.args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
    ]);
    command.args([
        "-d",
        "udp.port==4789,vxlan",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if std::env::var_os("WEFT_SKIP_TSHARK").is_some() => {
            eprintln!("skipping: tshark not runnable ({err}) and WEFT_SKIP_TSHARK is set");
            return None;
        }
        Err(err) => panic!("tshark is needed for this test (apt-get install tshark): {err}"),
    };
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    Some(
        text.lines()
            .map(|line| line.split('|').map(str::to_owned).collect())
            .collect(),
    )
}

#[test]
fn tshark_dissects_what_weft_writes() {
    let vni = Vni::new(100).unwrap();
    let arp = arp_request();
    let data = udp_frame(40000, 7000, b"weft");
    let mut tagged = vec![0u8; 8];
    tagged.extend_from_slice(&data);
    let start = vlan::push_tag(&mut tagged, 8, EtherType::VLAN, 200 | (1 << 12)).unwrap();
    let start = vlan::push_tag(&mut tagged, start, EtherType::QINQ, 100 | (3 << 13)).unwrap();
    let qinq = tagged[start..].to_vec();

    let frames = vec![
        encapsulated(
            &arp,
            encap::Tunnel::Vxlan {
                vni,
                src_port: vxlan::source_port(&arp),
            },
            false,
            false,
        ),
        encapsulated(
            &data,
            encap::Tunnel::Vxlan {
                vni,
                src_port: vxlan::source_port(&data),
            },
            false,
            true,
        ),
        encapsulated(
            &data,
            encap::Tunnel::Vxlan {
                vni,
                src_port: 50000,
            },
            true,
            false,
        ),
        encapsulated(
            &data,
            encap::Tunnel::Nvgre {
                vsid: Vni::new(5001).unwrap(),
                flow_id: 7,
            },
            false,
            false,
        ),
        encapsulated(
            &arp,
            encap::Tunnel::Nvgre {
                vsid: Vni::new(5001).unwrap(),
                flow_id: 7,
            },
            true,
            false,
        ),
        encapsulated(&data, encap::Tunnel::Gre { key: 0x1234_5678 }, false, false),
        qinq,
        lldp_frame(),
        dhcp_offer(),
    ];
    let fields = [
        "eth.src",
        "ieee8021ad.id",
        "vlan.id",
        "vlan.dei",
        "vlan.priority",
        "ip.src",
        "ip.dst",
        "ip.checksum.status",
        "ipv6.dst",
        "udp.dstport",
        "udp.checksum.status",
        "vxlan.vni",
        "gre.key",
        "arp.dst.proto_ipv4",
        "lldp.chassis.id.mac",
        "lldp.port.id",
        "lldp.time_to_live",
        "dhcp.option.dhcp",
        "dhcp.hw.mac_addr",
        "dhcp.option.interface_mtu",
        "_ws.malformed",
        "_ws.expert.severity",
    ];
    let Some(rows) = tshark(&frames, &fields) else {
        return;
    };
    assert_eq!(rows.len(), frames.len());
    let col =
        |row: &[String], name: &str| row[fields.iter().position(|f| *f == name).unwrap()].clone();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            col(row, "_ws.malformed"),
            "",
            "frame {i} malformed per tshark: {row:?}"
        );
        assert_eq!(
            col(row, "_ws.expert.severity"),
            "",
            "frame {i} has expert info: {row:?}"
        );
        // Checksum status 1 is "good"; every IPv4 header must be good.
        let ip_status = col(row, "ip.checksum.status");
        assert!(
            ip_status.split(',').all(|s| s.is_empty() || s == "1"),
            "frame {i}: {row:?}"
        );
    }
    // VXLAN over IPv4 with a zero UDP checksum (RFC 7348 SHOULD): tshark status 3, "not present".
    assert_eq!(col(&rows[0], "vxlan.vni"), "100");
    assert_eq!(
        col(&rows[0], "eth.src"),
        "02:00:00:00:00:01,fa:16:3e:00:00:01"
    );
    assert_eq!(col(&rows[0], "udp.dstport"), "4789");
    assert_eq!(col(&rows[0], "arp.dst.proto_ipv4"), "10.0.5.2");
    assert_eq!(col(&rows[0], "udp.checksum.status"), "3");
    // VXLAN over IPv4 with the outer checksum filled; the inner UDP checksum is good too.
    assert_eq!(col(&rows[1], "udp.checksum.status"), "1,1");
    assert_eq!(col(&rows[1], "ip.dst"), "192.0.2.2,10.0.5.2");
    // VXLAN over IPv6: the UDP checksum is mandatory and must verify.
    assert_eq!(col(&rows[2], "ipv6.dst"), "2001:db8::2");
    assert_eq!(col(&rows[2], "vxlan.vni"), "100");
    assert_eq!(col(&rows[2], "udp.checksum.status"), "1,1");
    // NVGRE: key = VSID << 8 | flow id.
    assert_eq!(
        col(&rows[3], "gre.key"),
        format!("{:#010x}", (5001 << 8) | 7)
    );
    assert_eq!(col(&rows[3], "ip.dst"), "192.0.2.2,10.0.5.2");
    assert_eq!(col(&rows[4], "ipv6.dst"), "2001:db8::2");
    assert_eq!(col(&rows[4], "arp.dst.proto_ipv4"), "10.0.5.2");
    assert_eq!(col(&rows[5], "gre.key"), "0x12345678");
    // QinQ: S-tag 100 PCP 3, C-tag 200 DEI.
    assert_eq!(col(&rows[6], "ieee8021ad.id"), "100");
    assert_eq!(col(&rows[6], "vlan.id"), "200");
    assert_eq!(col(&rows[6], "vlan.dei"), "1");
    assert_eq!(col(&rows[6], "udp.checksum.status"), "1");
    // LLDP.
    assert_eq!(col(&rows[7], "lldp.chassis.id.mac"), "02:00:00:00:00:01");
    assert_eq!(col(&rows[7], "lldp.port.id"), "eth0");
    assert_eq!(col(&rows[7], "lldp.time_to_live"), "120");
    // DHCP offer (message type 2) for VM1 with MTU 1450.
    assert_eq!(col(&rows[8], "dhcp.option.dhcp"), "2");
    assert_eq!(col(&rows[8], "dhcp.hw.mac_addr"), "fa:16:3e:00:00:01");
    assert_eq!(col(&rows[8], "dhcp.option.interface_mtu"), "1450");
}

#[test]
fn tshark_verifies_the_segments_weft_cuts_from_kernel_super_frames() {
    // The super-frames the Linux kernel's GRO made of a TCP stream (tests/vectors/gso), cut
    // again by wire::gso: every segment's IPv4 and TCP checksum must verify in tshark.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/gso");
    let mut segments = Vec::new();
    for (name, kind) in [
        ("tcp4_gro.pcap", wire::gso::GsoKind::Tcp4),
        ("tcp6_gro.pcap", wire::gso::GsoKind::Tcp6),
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (_, capture) = pcap_parser::pcap::parse_pcap(&bytes).unwrap();
        for block in &capture.blocks {
            let gso = wire::gso::Gso { kind, size: 1000 };
            let Ok(mut segmenter) = wire::gso::segment(block.data, gso) else {
                continue;
            };
            let mut out = vec![0u8; 2048];
            while let Some(len) = segmenter.next_into(&mut out) {
                segments.push(out[..len.unwrap()].to_vec());
            }
        }
    }
    assert!(segments.len() > 100, "{} segments", segments.len());
    let fields = [
        "ip.checksum.status",
        "tcp.checksum.status",
        "tcp.len",
        "_ws.malformed",
    ];
    let Some(rows) = tshark(&segments, &fields) else {
        return;
    };
    assert_eq!(rows.len(), segments.len());
    for (i, row) in rows.iter().enumerate() {
        let v4 = !row[0].is_empty();
        assert!(!v4 || row[0] == "1", "segment {i}: IPv4 checksum {row:?}");
        assert_eq!(row[1], "1", "segment {i}: TCP checksum {row:?}");
        assert!(
            row[2].parse::<usize>().unwrap() <= 1000,
            "segment {i}: {row:?}"
        );
        assert!(row[3].is_empty(), "segment {i} malformed: {row:?}");
    }
}
