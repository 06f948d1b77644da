//! `lab::netns::Lab` on real namespaces: what it makes works, and everything is gone after it
//! drops, also when the code using it panics. Runs as root (CI); skips with a message
//! otherwise.

use std::{panic, path::Path, time::Duration};

use lab::netns::{self, Lab};

fn can_run() -> bool {
    let root = netns::is_root();
    if !root {
        eprintln!("skipping: needs root for network namespaces");
    }
    root
}

#[test]
fn test_lab_wires_namespaces_and_cleans_up_after_a_panic() {
    if !can_run() {
        return;
    }
    let mut seen = None;
    let result = panic::catch_unwind(panic::AssertUnwindSafe(|| {
        let mut lab = Lab::new("n").unwrap();
        let a = lab.netns("a").unwrap();
        let b = lab.netns("b").unwrap();
        let (ea, eb) = (lab.name("ea").unwrap(), lab.name("eb").unwrap());
        lab.veth(&a, &ea, &b, &eb, 1500).unwrap();
        lab.addr(&a, &ea, "198.18.9.1/24").unwrap();
        lab.addr(&b, &eb, "198.18.9.2/24").unwrap();
        assert!(lab.try_exec(&a, &["ping", "-c", "1", "-W", "2", "198.18.9.2"]));
        let finished = lab
            .run_in(&b, &["cat", "/proc/net/dev"], Duration::from_secs(5))
            .unwrap();
        assert!(finished.status.success());
        assert!(finished.stdout.contains(&eb), "{}", finished.stdout);
        let sleeper = lab.spawn(&a, &["sleep", "60"], "sleep.log").unwrap();
        let pid = lab.pid(sleeper).unwrap();
        seen = Some((lab.namespaces().to_vec(), pid, lab.dir().to_path_buf()));
        panic!("on purpose");
    }));
    assert!(result.is_err());
    let (namespaces, pid, dir) = seen.unwrap();
    let left = netns::list_netns().unwrap();
    for ns in &namespaces {
        assert!(!left.contains(ns), "{ns} left behind");
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the process in the lab still runs"
    );
    assert!(!dir.exists(), "scratch directory left behind");
}

#[test]
fn test_run_in_kills_a_command_that_overstays() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("o").unwrap();
    let ns = lab.netns("x").unwrap();
    let err = lab
        .run_in(&ns, &["sleep", "30"], Duration::from_millis(300))
        .unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
}
