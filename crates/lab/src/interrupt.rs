//! Ctrl-C, SIGTERM and SIGHUP as an orderly teardown.
//!
//! [`install`] blocks the three signals in the calling thread (so in every thread it starts
//! later) and waits for them on a thread of its own. The first signal sets the flag that
//! [`interrupted`] reads and terminates the processes the lab started, so whatever the main
//! thread waits for returns at once; the main thread then returns an error and the
//! [`Lab`](crate::netns::Lab)s drop, removing their namespaces. If that has not finished
//! [`FORCE_AFTER`] later, or a second signal comes, the handler kills those processes itself,
//! deletes every namespace still registered and exits with status 130.
//!
//! Processes the lab starts run in their own process group (a terminal's Ctrl-C reaches only
//! the lab's own process) and get SIGTERM when it dies (`PR_SET_PDEATHSIG`), so even a
//! SIGKILLed run leaves no daemon behind, only empty namespaces, which
//! [`netns::remove_stale`](crate::netns::remove_stale) removes on the next run.

use std::{
    process::Command,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use nix::{
    sys::signal::{SigSet, Signal, kill},
    unistd::Pid,
};

use crate::{Error, Result};

/// How long the main thread gets to tear down after the first signal.
pub const FORCE_AFTER: Duration = Duration::from_secs(20);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static LIVE: Mutex<Live> = Mutex::new(Live {
    pids: Vec::new(),
    namespaces: Vec::new(),
});

/// What the lab has running and standing, for the forced teardown.
struct Live {
    pids: Vec<u32>,
    namespaces: Vec<String>,
}

fn live() -> MutexGuard<'static, Live> {
    // A panic while holding the lock leaves plain vectors behind: still usable.
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True once SIGINT, SIGTERM or SIGHUP arrived (after [`install`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `Err(Error::Interrupted)` once a signal arrived; for long sequences of steps to check.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that handles them.
///
/// Call it from the main thread before any other thread starts: threads inherit the signal
/// mask, and a thread without it would let the default action (exit, no teardown) happen.
/// Processes started with `std::process::Command` get an empty mask again. Calling it twice
/// does nothing the second time.
pub fn install() -> Result<()> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals
        .thread_block()
        .map_err(|err| Error::io("cannot block SIGINT/SIGTERM/SIGHUP", err.into()))?;
    thread::Builder::new()
        .name("lab-signals".into())
        .spawn(move || handle(signals))
        .map_err(|err| Error::io("cannot start the signal thread", err))?;
    Ok(())
}

fn handle(signals: SigSet) {
    let Ok(first) = signals.wait() else { return };
    INTERRUPTED.store(true, Ordering::SeqCst);
    eprintln!(
        "weft lab: {}: stopping and cleaning up (again to force)",
        first.as_str()
    );
    signal_all(Signal::SIGTERM);
    thread::spawn(|| {
        thread::sleep(FORCE_AFTER);
        eprintln!("weft lab: teardown is taking too long: forcing it");
        force_teardown();
    });
    // The second signal forces it at once.
    let _ = signals.wait();
    force_teardown();
}

fn signal_all(signal: Signal) {
    for &pid in &live().pids {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), signal);
        }
    }
}

/// Kills every registered process, deletes every registered namespace, exits with 130.
fn force_teardown() -> ! {
    signal_all(Signal::SIGKILL);
    let namespaces = live().namespaces.clone();
    for ns in namespaces {
        crate::netns::kill_inside(&ns);
        let _ = Command::new("ip").args(["netns", "delete", &ns]).status();
    }
    std::process::exit(130);
}

/// Remembers a process the lab started (to terminate it on a signal).
pub(crate) fn register_pid(pid: u32) {
    live().pids.push(pid);
}

/// Forgets a process (it was reaped).
pub(crate) fn unregister_pid(pid: u32) {
    live().pids.retain(|&p| p != pid);
}

/// Remembers a namespace the lab created (to delete it on a forced teardown).
pub(crate) fn register_netns(name: &str) {
    live().namespaces.push(name.to_owned());
}

/// Forgets a namespace (it was deleted).
pub(crate) fn unregister_netns(name: &str) {
    live().namespaces.retain(|n| n != name);
}
