//! `weft decode` end to end: the real binary on real captures, and on damaged files.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn weft(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../wire/tests/vectors")
        .join(name)
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

const FIRST_LINE: &str = "   1  eth 02:00:00:00:01:01 > 02:00:00:00:01:02 ipv4 192.0.2.1 > 192.0.2.2 \
    udp 59038 > 4789 len 50 vxlan vni 100 | eth fa:16:3e:00:05:07 > ff:ff:ff:ff:ff:ff \
    arp who-has 10.0.5.2 tell 10.0.5.7";

#[test]
fn decodes_a_kernel_vxlan_capture_one_line_per_packet() {
    let (code, out, err) = weft(&["decode", path(&vector("kernel_vxlan_ipv4.pcap"))]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0], FIRST_LINE);
    assert!(lines[2].ends_with("| eth fa:16:3e:00:05:07 > fa:16:3e:00:05:02 ipv4 10.0.5.7 > 10.0.5.2 icmp echo request id 7582 seq 1"), "{}", lines[2]);
}

#[test]
fn reads_pcapng_the_same_way() {
    let (code, classic, _) = weft(&["decode", path(&vector("kernel_vxlan_ipv4.pcap"))]);
    assert_eq!(code, 0);
    let (code, ng, err) = weft(&["decode", path(&data("kernel_vxlan_ipv4.pcapng"))]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(ng, classic);
}

#[test]
fn malformed_packets_say_what_was_decoded_and_why_not_the_rest() {
    let (code, out, err) = weft(&["decode", path(&vector("scapy_malformed.pcap"))]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(
        lines[0].ends_with("ipv4 192.0.2.1 > 192.0.2.2 [ipv4: bad checksum]"),
        "{}",
        lines[0]
    );
    assert!(
        lines[3].ends_with("udp 5000 > 6000 [udp: bad checksum]"),
        "{}",
        lines[3]
    );
    assert!(lines[5].ends_with("[vxlan: bad flags]"), "{}", lines[5]);
    assert!(
        lines[6].ends_with("[gre: unsupported version]"),
        "{}",
        lines[6]
    );
    assert!(lines[7].ends_with("[lldp: truncated]"), "{}", lines[7]);
}

#[test]
fn snapped_captures_are_marked() {
    let (code, out, _) = weft(&["decode", path(&data("snapped60.pcap"))]);
    assert_eq!(code, 0);
    let first = out.lines().next().expect("a line");
    // 60 of 92 bytes: the outer IPv4 header is there, the length it states is not.
    assert!(
        first.contains("ipv4 192.0.2.1 > 192.0.2.2 [ipv4: truncated]"),
        "{first}"
    );
    assert!(first.ends_with("[captured 60 of 92 bytes]"), "{first}");
}

#[test]
fn damaged_files_print_what_precedes_the_damage_and_fail() {
    let dir = std::env::temp_dir().join(format!("weft-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whole = std::fs::read(vector("kernel_vxlan_ipv4.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..300]).unwrap();
    let (code, out, err) = weft(&["decode", path(&cut)]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 2);
    assert!(err.contains("ends in the middle of packet 3"), "{err}");

    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let (code, out, err) = weft(&["decode", path(&garbage)]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("not a pcap or pcapng file"), "{err}");

    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = weft(&["decode", path(&empty)]);
    assert_eq!(code, 1);
    assert!(err.contains("is empty"), "{err}");

    // A record header claiming a 4 GiB packet.
    let mut huge = whole[..24].to_vec();
    huge.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    huge.extend_from_slice(&[0xab; 64]);
    let huge_path = dir.join("huge.pcap");
    std::fs::write(&huge_path, &huge).unwrap();
    let (code, _, err) = weft(&["decode", path(&huge_path)]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = weft(&["decode", path(&dir.join("missing.pcap"))]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, err) = weft(&["decode"]);
    assert_eq!(code, 2);
    assert!(err.contains("FILE"), "{err}");
}
