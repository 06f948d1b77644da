//! `weft bench scale` at a small size: 20 simulated hosts, 400 ports. It must converge, apply
//! every update, and report its figures as JSON. Timing is never asserted (the machine may be
//! busy); a generous timeout only catches a hang.

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn test_bench_scale_smoke() {
    let started = Instant::now();
    let mut child = Command::new(WEFT)
        .args([
            "bench",
            "scale",
            "--hosts",
            "20",
            "--ports",
            "400",
            "--updates",
            "20",
            "--clients",
            "4",
            "--timeout",
            "240",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weft bench scale");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weft bench scale still running after {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{status}\n{log}\n{stdout}");
    eprintln!("{log}\n{stdout}");
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"));
    assert_eq!(report["hosts"], 20);
    assert_eq!(report["ports"], 400);
    assert_eq!(report["networks"], 20);
    assert_eq!(report["hosts_converged"], 20);
    assert!(report["converged_seconds"].as_f64().is_some(), "{report:#}");
    assert_eq!(report["configs_refused"], 0);
    assert_eq!(report["update_to_applied"]["count"], 20, "{report:#}");
    assert_eq!(report["update_timeouts"], 0);
    assert!(
        report["port_create_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );
}
