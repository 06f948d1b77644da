//! `weft bench dataplane` in smoke mode: builds the three variants (weft, kernel, direct) in
//! real namespaces, measures each for about a second, and must print a table with a non-zero
//! figure for every metric and variant, then leave no namespace behind. Runs as root (CI);
//! skips with a message otherwise.

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
/// The whole run takes about 20 s with a debug build; this only catches a hang.
const TIMEOUT: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

/// A table cell as a number: "1.82", "163k", "1.20M", "2.00 [1.90-2.10]" (the median).
fn number(cell: &str) -> Option<f64> {
    let first = cell.split_whitespace().next()?;
    let (digits, scale) = match first.chars().last()? {
        'k' => (&first[..first.len() - 1], 1e3),
        'M' => (&first[..first.len() - 1], 1e6),
        _ => (first, 1.0),
    };
    digits.parse::<f64>().ok().map(|v| v * scale)
}

/// The cells of the table row starting with `label`, split on runs of two or more spaces.
fn row<'a>(table: &'a str, label: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{table}"));
    line[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn test_bench_dataplane_smoke() {
    if !is_root() {
        eprintln!("skipping: weft bench dataplane needs root for network namespaces");
        return;
    }
    assert!(
        Command::new("iperf3")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "iperf3 is missing: `apt-get install iperf3` (bash .ci/run installs it)"
    );
    let started = Instant::now();
    let mut child = Command::new(WEFT)
        .args([
            "bench",
            "dataplane",
            "--repeats",
            "1",
            "--tcp-secs",
            "1",
            "--pps-secs",
            "1",
            "--ping-count",
            "20",
            // A few idle VM ports on each weft switch, so that option is run too.
            "--weft-idle-ports",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weft bench dataplane");
    let pid = child.id();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            // SIGTERM: the bench tears its namespaces down on it.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let _ = child.wait();
            panic!("weft bench dataplane still running after {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().expect("output");
    let table = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{status}\n{log}\n{table}");
    eprintln!("{log}\n{table}");

    // The header row's first cell is empty: it starts with spaces.
    let header = table
        .lines()
        .find(|l| l.starts_with(' ') && l.trim_start().starts_with("weft"))
        .unwrap_or_else(|| panic!("no header in\n{table}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["weft", "kernel", "direct", "weft/kernel"]);
    for label in [
        "TCP throughput, Gbit/s",
        "64 B packets/s received",
        "  offered to VM1's NIC",
        "ping avg, us",
        "ping p99, us",
    ] {
        let cells = row(&table, label);
        assert!(cells.len() >= 3, "{label}: {cells:?}");
        for (variant, cell) in ["weft", "kernel", "direct"].iter().zip(&cells) {
            let value = number(cell).unwrap_or_else(|| panic!("{label} {variant}: {cell:?}"));
            assert!(value > 0.0, "{label} {variant}: {cell:?}\n{table}");
        }
    }
    assert!(table.contains("Goals"), "{table}");
    assert!(
        table.contains("weft switches with 3 idle VM ports each"),
        "{table}"
    );

    // Every namespace the run made carries its pid: `wb<pid>` then a letter.
    let prefix = format!("wb{pid}");
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic()))
        })
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the smoke run took {:?}",
        started.elapsed()
    );
}
