//! Network namespaces, veth pairs and processes inside namespaces, made with `ip` (iproute2)
//! and removed when the [`Lab`] that made them drops, also when the code using it panics.
//!
//! Every name a lab makes starts with [`PREFIX`], then this process's id, then a tag of the
//! caller's (`wb4711w...`), so parallel runs do not collide and leftovers of a run that was
//! killed can be told apart from a live run's ([`remove_stale`]). Interface names are at most
//! 15 bytes (`IFNAMSIZ`), so tags and suffixes stay short.

use std::{
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::{
        fs::PermissionsExt as _,
        net::UnixStream,
        process::{CommandExt as _, ExitStatusExt as _},
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use serde_json::Value;

use crate::{Error, Result, interrupt};

/// The first letters of every namespace and interface a lab makes.
pub const PREFIX: &str = "wb";
/// The longest interface name Linux takes (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;
/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

static SCRATCH: AtomicU32 = AtomicU32::new(0);

/// The prefix of this process's names: [`PREFIX`] and the process id (`wb4711`).
pub fn run_prefix() -> String {
    format!("{PREFIX}{}", std::process::id())
}

/// True when this process runs as root (needed for namespaces).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `program` is found on `PATH`.
pub fn have_program(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A `Command` for `program` whose process starts with no signal blocked.
///
/// A child inherits the signal mask across fork and exec, and [`interrupt::install`] blocks
/// SIGINT, SIGTERM and SIGHUP in this process: without the reset, `iperf3` or `ping` would
/// ignore the SIGTERM that is meant to stop them.
fn new_command(program: &str) -> Command {
    let mut command = Command::new(program);
    // SAFETY: the closure runs in the forked child before exec and only calls sigemptyset(3)
    // and pthread_sigmask(3) on a local set, both async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            let rc =
                libc::pthread_sigmask(libc::SIG_SETMASK, &raw const set, core::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(())
        });
    }
    command
}

/// The command line `args` as one string, for messages.
fn command_line(args: &[&str]) -> String {
    args.join(" ")
}

/// Runs a short command (no namespace of its own, no timeout) and returns its stdout, or an
/// error with its output if it fails.
pub fn run(args: &[&str]) -> Result<String> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| Error::Failed("empty command".into()))?;
    let output = new_command(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| Error::Command {
            command: command_line(args),
            message: err.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command: command_line(args),
            message: format!(
                "{}: {}{}",
                describe(output.status),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr).trim_end()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a short command and says whether it succeeded (its output is thrown away).
pub fn succeeds(args: &[&str]) -> bool {
    let Some((program, rest)) = args.split_first() else {
        return false;
    };
    new_command(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// "exit status 1" or "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The names of all named network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    Ok(run(&["ip", "netns", "list"])?
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The process id a lab name carries: `wb4711w...` -> 4711 (digits, then a letter).
pub fn name_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let tag = rest[digits..].chars().next()?;
    if digits == 0 || !tag.is_ascii_alphabetic() {
        return None;
    }
    rest[..digits].parse().ok()
}

/// The namespaces a lab of process `pid` made that still exist.
pub fn namespaces_of(pid: u32) -> Result<Vec<String>> {
    Ok(list_netns()?
        .into_iter()
        .filter(|name| name_pid(name) == Some(pid))
        .collect())
}

/// Kills (SIGKILL) every process inside namespace `ns`: only ever called on namespaces a lab
/// made, where every process is one the lab started.
pub(crate) fn kill_inside(ns: &str) {
    let Ok(pids) = run(&["ip", "netns", "pids", ns]) else {
        return;
    };
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Removes the namespaces left behind by labs whose process is gone (a run that was killed
/// with SIGKILL cannot clean up), with any process still inside them. Returns their names.
pub fn remove_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list_netns()? {
        let Some(pid) = name_pid(&name) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_inside(&name);
        if succeeds(&["ip", "netns", "delete", &name]) {
            removed.push(name);
        }
    }
    Ok(removed)
}

/// The environment variable that marks every process a `weft lab` data centre starts; its
/// value is the lab's name, so `weft lab down` finds them again without any state file.
pub const MARKER: &str = "WEFT_LAB";

/// A long-lived process started with [`spawn_detached`]: it outlives the process that started
/// it. Dropping this handle neither stops nor waits for it.
#[derive(Debug)]
pub struct Detached {
    child: Child,
}

impl Detached {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has ended (then it is reaped), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Starts `args` detached: in namespace `ns` (with `ip netns exec`, which execs it, so the
/// process id is the command's) or in this one, in a session of its own (no terminal, no
/// signal from a Ctrl-C meant for the starter), with `MARKER=marker` and `env` added to its
/// environment, stdin from /dev/null and stdout and stderr appended to `log`.
pub fn spawn_detached(
    ns: Option<&str>,
    args: &[&str],
    marker: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> Result<Detached> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| Error::Failed("empty command".into()))?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|err| Error::io(format!("cannot open {}", log.display()), err))?;
    let err = out
        .try_clone()
        .map_err(|err| Error::io("cannot duplicate a log descriptor", err))?;
    let mut command = match ns {
        Some(ns) => {
            let mut command = new_command("ip");
            command.args(["netns", "exec", ns, program]);
            command
        }
        None => new_command(program),
    };
    command
        .args(rest)
        .env(MARKER, marker)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let line = match ns {
        Some(ns) => format!("ip netns exec {ns} {}", command_line(args)),
        None => command_line(args),
    };
    let child = command.spawn().map_err(|err| Error::Command {
        command: line,
        message: err.to_string(),
    })?;
    Ok(Detached { child })
}

/// True when process `pid` exists and has not ended (a zombie has ended).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// True when process `pid` carries `MARKER=marker` in its environment: it is one the lab of
/// that name started (and not an unrelated process that reused the id).
pub fn is_marked(pid: u32, marker: &str) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{MARKER}={marker}");
    environ
        .split(|&b| b == 0)
        .any(|var| var == wanted.as_bytes())
}

/// Every live process with `MARKER=marker` in its environment, except this one.
pub fn marked_processes(marker: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && is_marked(pid, marker) && is_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// The process ids inside namespace `ns` (`ip netns pids`); empty if there is no such
/// namespace.
pub fn pids_inside(ns: &str) -> Vec<u32> {
    run(&["ip", "netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops processes that are not this process's children: SIGTERM, up to `grace` for them to
/// go, then SIGKILL for the rest. Returns the ids that were still alive at the start.
pub fn terminate(pids: &[u32], grace: Duration) -> Vec<u32> {
    let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
    let send = |pid: u32, signal: Signal| {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), signal);
        }
    };
    for &pid in &alive {
        send(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while alive.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    for &pid in alive.iter().filter(|&&p| is_alive(p)) {
        send(pid, Signal::SIGKILL);
    }
    // A SIGKILLed process still needs its parent (init, for a detached one) to reap it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    alive
}

/// The names of the links in this (the root) namespace (`ip -o link show`), without the
/// `@peer` part.
pub fn list_links() -> Result<Vec<String>> {
    Ok(run(&["ip", "-o", "link", "show"])?
        .lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_owned())
        })
        .collect())
}

/// True when a link called `name` exists in this namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Turns IPv6 off on link `name` in this namespace before it comes up, so the lab's bridges
/// and veths send no router solicitations or MLD reports. Best effort: without IPv6 there is
/// nothing to turn off.
pub fn disable_ipv6(name: &str) {
    let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
}

/// A process a [`Lab`] started; the index of its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

/// The outcome of a command run to completion with [`Lab::run_in`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// One started process.
struct Started {
    child: Child,
    /// The command line, for messages.
    command: String,
    /// Set once reaped.
    status: Option<ExitStatus>,
}

/// A set of namespaces and of processes inside them, removed on drop.
///
/// Drop stops the processes (SIGTERM, then SIGKILL after a grace period), kills anything else
/// still running inside the namespaces, deletes the namespaces (which deletes every veth,
/// TAP, bridge and vxlan device in them) and the scratch directory.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    procs: Vec<Started>,
    dir: PathBuf,
}

impl core::fmt::Debug for Lab {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("namespaces", &self.namespaces)
            .field("procs", &self.procs.len())
            .field("dir", &self.dir)
            .finish()
    }
}

impl Lab {
    /// A new, empty lab whose names start with [`run_prefix`] then `tag` (a letter, then at
    /// most a few letters or digits), with a fresh scratch directory.
    pub fn new(tag: &str) -> Result<Self> {
        if !tag.starts_with(|c: char| c.is_ascii_alphabetic())
            || !tag.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Error::Failed(format!(
                "lab tag {tag:?}: a letter, then letters or digits"
            )));
        }
        let prefix = format!("{}{tag}", run_prefix());
        let dir = std::env::temp_dir().join(format!(
            "weft-lab-{prefix}-{}",
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)
            .map_err(|err| Error::io(format!("cannot create {}", dir.display()), err))?;
        Ok(Self {
            prefix,
            namespaces: Vec::new(),
            procs: Vec::new(),
            dir,
        })
    }

    /// The prefix of every name this lab makes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The scratch directory (configs, sockets, logs); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespaces made so far.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The prefix followed by `suffix`; an error if that is too long for an interface name.
    pub fn name(&self, suffix: &str) -> Result<String> {
        let name = format!("{}{suffix}", self.prefix);
        if name.len() > IFNAME_MAX {
            return Err(Error::Failed(format!(
                "name {name} is longer than {IFNAME_MAX} bytes"
            )));
        }
        Ok(name)
    }

    /// Creates namespace `<prefix><suffix>` with loopback up and IPv6 off (no router
    /// solicitations or duplicate address detection in the measurements). It has no route
    /// out: only what the caller wires into it.
    pub fn netns(&mut self, suffix: &str) -> Result<String> {
        interrupt::check()?;
        let name = self.name(suffix)?;
        run(&["ip", "netns", "add", &name])?;
        interrupt::register_netns(&name);
        self.namespaces.push(name.clone());
        // Best effort: a kernel without IPv6 has no such keys, which is just as good.
        let _ = self.exec(
            &name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        self.ip(&name, &["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "-n", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a short command inside namespace `ns` (`ip netns exec`), returning its stdout.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a short command inside `ns` and says whether it succeeded.
    pub fn try_exec(&self, ns: &str, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        succeeds(&full)
    }

    /// A veth pair, end `a` in namespace `a_ns` and end `b` in `b_ns`, both with `mtu` and up.
    pub fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str, mtu: u32) -> Result<()> {
        let mtu = mtu.to_string();
        run(&[
            "ip", "link", "add", a, "netns", a_ns, "mtu", &mtu, "type", "veth", "peer", "name", b,
            "netns", b_ns, "mtu", &mtu,
        ])?;
        self.ip(a_ns, &["link", "set", a, "up"])?;
        self.ip(b_ns, &["link", "set", b, "up"])?;
        Ok(())
    }

    /// Adds address `cidr` to `dev` in `ns`.
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) -> Result<()> {
        self.ip(ns, &["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Starts `args` inside namespace `ns` (with `ip netns exec`, which execs it: the process
    /// id is the command's), stdout and stderr to file `log` in the scratch directory.
    ///
    /// It runs in its own process group and gets SIGTERM if the thread that started it exits,
    /// so start long-lived processes from a thread that outlives them (the main thread).
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> Result<ProcId> {
        let out = self.create(log)?;
        let err = out
            .try_clone()
            .map_err(|err| Error::io("cannot duplicate a log descriptor", err))?;
        self.start(ns, args, out, err)
    }

    /// Creates file `name` in the scratch directory.
    fn create(&self, name: &str) -> Result<fs::File> {
        let path = self.dir.join(name);
        fs::File::create(&path)
            .map_err(|err| Error::io(format!("cannot create {}", path.display()), err))
    }

    fn start(&mut self, ns: &str, args: &[&str], out: fs::File, err: fs::File) -> Result<ProcId> {
        interrupt::check()?;
        let mut command = new_command("ip");
        command
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let line = format!("ip netns exec {ns} {}", command_line(args));
        let child = command.spawn().map_err(|err| Error::Command {
            command: line.clone(),
            message: err.to_string(),
        })?;
        interrupt::register_pid(child.id());
        self.procs.push(Started {
            child,
            command: line,
            status: None,
        });
        Ok(ProcId(self.procs.len() - 1))
    }

    /// The process id of a started process.
    pub fn pid(&self, proc: ProcId) -> Option<u32> {
        self.procs.get(proc.0).map(|p| p.child.id())
    }

    /// The command line of a started process.
    pub fn command(&self, proc: ProcId) -> &str {
        self.procs.get(proc.0).map_or("", |p| p.command.as_str())
    }

    /// The exit status if the process has ended (it is reaped then), `None` while it runs.
    pub fn try_wait(&mut self, proc: ProcId) -> Option<ExitStatus> {
        let started = self.procs.get_mut(proc.0)?;
        if started.status.is_none()
            && let Ok(Some(status)) = started.child.try_wait()
        {
            started.status = Some(status);
            interrupt::unregister_pid(started.child.id());
        }
        started.status
    }

    /// Waits at most `timeout` for a process to end; `None` if it still runs. Returns early
    /// with [`Error::Interrupted`] on a signal.
    pub fn wait(&mut self, proc: ProcId, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait(proc) {
                return Ok(Some(status));
            }
            interrupt::check()?;
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops a process: SIGTERM, then SIGKILL if it has not ended after a grace period.
    pub fn stop(&mut self, proc: ProcId) -> Option<ExitStatus> {
        self.signal(proc, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait(proc) {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.signal(proc, Signal::SIGKILL);
        let started = self.procs.get_mut(proc.0)?;
        let status = started.child.wait().ok();
        started.status = status;
        interrupt::unregister_pid(started.child.id());
        status
    }

    /// Sends `signal` to a process that has not been reaped.
    fn signal(&self, proc: ProcId, signal: Signal) {
        if let Some(started) = self.procs.get(proc.0)
            && started.status.is_none()
            && let Ok(pid) = i32::try_from(started.child.id())
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// The contents of log file `name` in the scratch directory (empty if there is none).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Runs `args` inside `ns` to completion, at most `timeout` (then it is killed and this is
    /// an error), and returns its status and output whatever the status.
    pub fn run_in(&mut self, ns: &str, args: &[&str], timeout: Duration) -> Result<Finished> {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        let (out_name, err_name) = (format!("run{n}.out"), format!("run{n}.err"));
        let (out, err) = (self.create(&out_name)?, self.create(&err_name)?);
        let proc = self.start(ns, args, out, err)?;
        let waited = self.wait(proc, timeout);
        let stdout = self.log(&out_name);
        let stderr = self.log(&err_name);
        let _ = fs::remove_file(self.dir.join(&out_name));
        let _ = fs::remove_file(self.dir.join(&err_name));
        match waited {
            Ok(Some(status)) => Ok(Finished {
                status,
                stdout,
                stderr,
            }),
            Ok(None) => {
                self.stop(proc);
                Err(Error::Command {
                    command: self.command(proc).to_owned(),
                    message: format!(
                        "still running after {:.0} s: {}{}",
                        timeout.as_secs_f64(),
                        stdout,
                        stderr.trim_end()
                    ),
                })
            }
            Err(err) => {
                self.stop(proc);
                Err(err)
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.signal(ProcId(i), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        for i in 0..self.procs.len() {
            while self.try_wait(ProcId(i)).is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if self.try_wait(ProcId(i)).is_none() {
                self.signal(ProcId(i), Signal::SIGKILL);
                if let Some(started) = self.procs.get_mut(i) {
                    let _ = started.child.wait();
                    interrupt::unregister_pid(started.child.id());
                }
            }
        }
        // VM namespaces first: their TAPs belong to switches in the host namespaces.
        for ns in self.namespaces.iter().rev() {
            kill_inside(ns);
            // Deleting a namespace deletes the veths, TAPs, bridges and vxlans in it.
            let _ = new_command("ip")
                .args(["netns", "delete", ns])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            interrupt::unregister_netns(ns);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One request to a daemon's JSON-lines control socket (a `weft switch`, `weft evb`, the VLAN
/// multiplexer): the request on a line, the answer on a line. An answer carrying `"error"` (or
/// `"ok": false`) is a failure naming `what`; otherwise the whole answer is returned.
pub fn call_json_line(
    what: &str,
    socket: &Path,
    request: &Value,
    timeout: Duration,
) -> Result<Value> {
    let failed = |err: io::Error| Error::Io {
        context: format!("{what} at {}", socket.display()),
        source: err,
    };
    let mut stream = UnixStream::connect(socket).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(failed)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(failed)?;
    let answer: Value = serde_json::from_str(&line)
        .map_err(|err| Error::Failed(format!("{what}: unreadable answer {line:?}: {err}")))?;
    if answer.get("error").is_some() || answer.get("ok") == Some(&Value::Bool(false)) {
        return Err(Error::Failed(format!(
            "{what} refused {request}: {}",
            answer["error"].as_str().unwrap_or("refused")
        )));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_carry_their_pid() {
        assert_eq!(name_pid("wb4711wh1"), Some(4711));
        assert_eq!(name_pid("wb4711k"), Some(4711));
        assert_eq!(name_pid("wb4711"), None);
        assert_eq!(name_pid("wbx"), None);
        assert_eq!(name_pid("wf4711h1"), None);
        assert_eq!(name_pid("wb47-11"), None);
    }

    #[test]
    fn test_lab_tags_and_names_are_checked() {
        assert!(Lab::new("1x").is_err());
        assert!(Lab::new("a-b").is_err());
        let lab = Lab::new("t").unwrap();
        assert!(lab.prefix().starts_with(&run_prefix()));
        assert!(lab.name("h1").is_ok());
        assert!(lab.name("much-too-long-suffix").is_err());
        let dir = lab.dir().to_path_buf();
        assert!(dir.is_dir());
        drop(lab);
        assert!(!dir.exists());
    }
}
