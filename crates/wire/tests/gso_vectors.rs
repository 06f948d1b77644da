//! `wire::gso` against the Linux kernel, with the captures in `tests/vectors/gso/` (made by
//! `make_gso_vectors.sh`, root): one TCP stream over IPv4 and one over IPv6, captured where the
//! sender's kernel had cut its super-frames into segments in software (`*_segments.pcap`) and
//! where the receiver's kernel had merged them again with GRO (`*_gro.pcap`).
//!
//! For every merged frame, the segments it was made of must merge, in our coalescer, into
//! exactly the kernel's bytes (lengths, IPv4 checksum, flags, the pseudo-header sum in the TCP
//! checksum field); and our segmenter must cut the kernel's merged frame into exactly the
//! kernel's segments (IPv4 ids, sequence numbers, flags, finished checksums).

use std::{fs, path::PathBuf};

use wire::{
    IpProtocol,
    gso::{self, Coalescer, Gso, GsoKind},
    tcp, vnet,
};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/gso")
}

fn frames(name: &str) -> Vec<Vec<u8>> {
    let bytes = fs::read(vectors().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    let (_, capture) = pcap_parser::pcap::parse_pcap(&bytes).expect("classic pcap");
    capture.blocks.iter().map(|b| b.data.to_vec()).collect()
}

/// A data segment of the client (to port 5201): (sequence number, payload length).
fn client_data(frame: &[u8]) -> Option<(u32, usize)> {
    let layout = gso::layout(frame).ok()?;
    if layout.protocol != IpProtocol::TCP {
        return None;
    }
    let segment = tcp::Packet::new_checked(&frame[layout.l4..layout.end]).ok()?;
    let len = segment.payload().len();
    (segment.dst_port() == 5201 && len > 0).then_some((segment.seq_number(), len))
}

fn check_stream(stream: &str, kind: GsoKind) -> usize {
    let segments: Vec<Vec<u8>> = frames(&format!("{stream}_segments.pcap"))
        .into_iter()
        .filter(|f| client_data(f).is_some())
        .collect();
    let merged: Vec<Vec<u8>> = frames(&format!("{stream}_gro.pcap"))
        .into_iter()
        .filter(|f| client_data(f).is_some())
        .collect();
    let total: usize = segments
        .iter()
        .filter_map(|f| client_data(f))
        .map(|d| d.1)
        .sum();
    assert_eq!(
        total, 60_000,
        "{stream}: the capture holds the whole stream"
    );

    let mut multi = 0;
    for (n, kernel) in merged.iter().enumerate() {
        let (seq, len) = client_data(kernel).unwrap();
        let first = segments
            .iter()
            .position(|f| client_data(f).unwrap().0 == seq)
            .unwrap_or_else(|| panic!("{stream} merged frame {n}: no segment at seq {seq}"));
        let mut last = first;
        let mut covered = client_data(&segments[first]).unwrap().1;
        while covered < len {
            last += 1;
            covered += client_data(&segments[last]).unwrap().1;
        }
        assert_eq!(
            covered, len,
            "{stream} merged frame {n}: segment boundaries"
        );
        let run = &segments[first..=last];
        if run.len() == 1 {
            // GRO leaves a lone segment as it came.
            assert_eq!(kernel, &run[0], "{stream} merged frame {n}");
            continue;
        }
        multi += 1;

        // Our coalescer, fed the kernel's segments, makes the kernel's merged frame.
        let mut coalescer = Coalescer::start(&run[0]).expect("the first segment heads a run");
        for (i, segment) in run.iter().enumerate().skip(1) {
            assert!(
                coalescer.push(&run[0], segment),
                "{stream} merged frame {n}: segment {i} refused"
            );
        }
        let mut ours = vec![0u8; 256];
        let (header_len, repr) = coalescer.write_header(&run[0], &mut ours).unwrap();
        ours.truncate(header_len);
        for segment in run {
            ours.extend_from_slice(coalescer.payload(segment));
        }
        assert_eq!(&ours, kernel, "{stream} merged frame {n}: coalesced bytes");
        let mss = u16::try_from(client_data(&run[0]).unwrap().1).unwrap();
        assert_eq!(repr.gso_size, mss);
        assert_eq!(
            repr.gso_type,
            match kind {
                GsoKind::Tcp4 => vnet::GsoType::TCPV4,
                GsoKind::Tcp6 => vnet::GsoType::TCPV6,
            }
        );

        // Our segmenter, fed the kernel's merged frame, makes the kernel's segments.
        let mut segmenter = gso::segment(kernel, Gso { kind, size: mss }).unwrap();
        assert_eq!(segmenter.count(), run.len());
        let mut out = vec![0u8; 2048];
        for (i, segment) in run.iter().enumerate() {
            let len = segmenter.next_into(&mut out).unwrap().unwrap();
            assert_eq!(
                &out[..len],
                segment.as_slice(),
                "{stream} merged frame {n}: segment {i} of {}",
                run.len()
            );
        }
        assert!(segmenter.next_into(&mut out).is_none());
    }
    multi
}

#[test]
fn kernel_gso_and_gro_over_ipv4_match_ours_byte_for_byte() {
    let merged = check_stream("tcp4", GsoKind::Tcp4);
    assert!(merged >= 3, "only {merged} merged frames in the capture");
}

#[test]
fn kernel_gso_and_gro_over_ipv6_match_ours_byte_for_byte() {
    let merged = check_stream("tcp6", GsoKind::Tcp6);
    assert!(merged >= 3, "only {merged} merged frames in the capture");
}
