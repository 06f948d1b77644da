//! Namespace plumbing for the real-network tests: unique names, `ip` commands, cleanup that
//! runs even when a test panics. Every name starts with `wf` and carries the process id so
//! parallel runs do not collide; addresses are documentation ranges (underlay) and 10.0.x
//! inside namespaces these tests create, with no route out.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// True when the tests can create namespaces (root). CI runs as root; elsewhere they skip.
pub(crate) fn can_run() -> bool {
    let root = nix_uid_is_root();
    if !root {
        eprintln!("skipping: needs root for network namespaces");
    }
    root
}

fn nix_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command and panics with its output if it fails.
pub(crate) fn run(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command and says whether it succeeded.
pub(crate) fn succeeds(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A test's namespaces, links and processes, removed on drop.
pub(crate) struct Lab {
    /// The prefix of every name this lab creates (at most 9 characters).
    pub(crate) prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    /// A scratch directory for configs, sockets and captures.
    pub(crate) dir: PathBuf,
}

impl Lab {
    /// A new, empty lab.
    pub(crate) fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("wf{}{}", std::process::id() % 100_000, n);
        let dir = std::env::temp_dir().join(format!("weft-{prefix}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        }
    }

    /// A name unique to this lab (for interfaces: keep `suffix` short, 15 characters in all).
    pub(crate) fn name(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.prefix);
        assert!(name.len() <= 15, "interface name {name} too long");
        name
    }

    /// Creates a namespace with loopback up and no route out.
    pub(crate) fn netns(&mut self, suffix: &str) -> String {
        let name = self.name(suffix);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        self.exec(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// Deletes one of the lab's namespaces now (what is in it goes with it).
    pub(crate) fn delete_netns(&mut self, name: &str) {
        run(&["ip", "netns", "delete", name]);
        self.namespaces.retain(|ns| ns != name);
    }

    /// Runs a command inside a namespace (panics on failure).
    pub(crate) fn exec(&self, netns: &str, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command inside a namespace and says whether it succeeded.
    pub(crate) fn try_exec(&self, netns: &str, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend_from_slice(args);
        succeeds(&full)
    }

    /// A veth pair with one end in each namespace, both up.
    pub(crate) fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) {
        run(&[
            "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
        ]);
        self.exec(a_ns, &["ip", "link", "set", a, "up"]);
        self.exec(b_ns, &["ip", "link", "set", b, "up"]);
    }

    /// Adds an address to an interface in a namespace (IPv6 without duplicate detection).
    pub(crate) fn addr(&self, netns: &str, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.exec(netns, &["ip", "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.exec(netns, &["ip", "addr", "add", cidr, "dev", dev]);
        }
    }

    /// Starts a process inside a namespace; it is killed when the lab drops.
    pub(crate) fn spawn(&mut self, netns: &str, args: &[&str], log: &str) -> usize {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.len() - 1
    }

    /// The contents of a log file of a spawned process.
    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Sends a signal (`kill -SIGNAL`, e.g. `USR1`) to a spawned process.
    pub(crate) fn signal(&self, index: usize, signal: &str) {
        let pid = self.children[index].id().to_string();
        run(&["kill", &format!("-{signal}"), &pid]);
    }

    /// Sends SIGTERM to a spawned process and waits (at most 5 s) for it to exit.
    pub(crate) fn stop(&mut self, index: usize) -> Option<std::process::ExitStatus> {
        let child = &mut self.children[index];
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            // Deleting a namespace deletes the veths and TAPs that live in it.
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `path` exists (a control socket), at most `timeout`.
pub(crate) fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}
