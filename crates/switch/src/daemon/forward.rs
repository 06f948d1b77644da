//! The forwarding thread: it owns the [`Switch`] and its devices, waits with poll(2) until a
//! device has frames or a short timeout passes, runs the control thread's commands, and calls
//! [`Switch::poll`]. It takes no lock: commands come over a channel and table changes through
//! the shared `ArcSwap`.
//!
//! **Busy polling** (`busy_poll_us`, off by default). For that long after the last frame it
//! forwarded, the thread keeps reading its devices instead of sleeping in poll(2), yielding
//! the CPU between rounds to whatever else wants it; a frame that comes in meanwhile is picked
//! up without a wake-up. On a virtual machine a wake-up is expensive (the idle virtual CPU has
//! halted and the hypervisor must resume it), and a sparse ping crosses two of them per
//! direction; a window longer than the gaps between its packets halves its round trip, at the
//! cost of a core kept busy per switch for as long as such traffic lasts. A short window
//! (below the gaps) buys nothing measurable and spinning without yielding starves the VMs and
//! the other switch of a small machine, so neither is done.

use core::net::IpAddr;
use std::{
    io,
    os::fd::{AsFd, OwnedFd},
    sync::mpsc::{Receiver, SyncSender, TryRecvError},
    time::{Duration, Instant},
};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use wire::MacAddr;

use crate::{
    device::Device,
    switch::{Counters, DeviceStatus, MAC_AGING, Switch},
    tables::Location,
};

/// How many milliseconds poll(2) waits for frames before commands are looked at again (and
/// devices without a descriptor, such as memory ports, are read).
const WAIT_MS: u8 = 5;
/// Waits a descriptor sits out after poll(2) reported an error on it (about a second).
const SKIP_AFTER_ERROR: u32 = 200;
/// Batches forwarded in a row before the thread looks at commands again.
const ROUNDS: usize = 64;

/// What the control thread asks of the forwarding thread.
pub(crate) enum Command {
    /// Attach the device of port `name` (before tables naming it are swapped in).
    Attach {
        name: String,
        device: Box<dyn Device>,
        done: SyncSender<()>,
    },
    /// Detach and close the device of port `name` (after tables without it were swapped in).
    Detach { name: String, done: SyncSender<()> },
    /// Send a copy of the counters.
    Counters(SyncSender<Counters>),
    /// Send the learned MAC table, by name.
    Macs(SyncSender<Vec<MacEntry>>),
    /// Send whether each attached device works.
    Status(SyncSender<Vec<DeviceStatus>>),
    /// Stop forwarding and return.
    Stop,
}

/// One learned MAC address, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacEntry {
    /// The logical switch.
    pub switch: String,
    /// The address.
    pub mac: MacAddr,
    /// Where it was seen.
    pub location: MacLocation,
    /// How long ago.
    pub age: Duration,
}

/// Where a learned address was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacLocation {
    /// On a local VM port.
    Port(String),
    /// Beyond an uplink.
    Uplink(String),
    /// Behind a remote tunnel endpoint.
    Remote(IpAddr),
}

/// The driver's clock: time since the forwarding thread started, the switch's `now`.
struct Clock(Instant);

#[expect(
    clippy::disallowed_methods,
    reason = "the daemon's forwarding thread is the driver: the one place the switch reads a clock"
)]
impl Clock {
    fn start() -> Self {
        Self(Instant::now())
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.0)
    }
}

/// A device's descriptor, duplicated so the thread can wait on it while the switch owns the
/// device.
struct Waitable {
    name: String,
    fd: OwnedFd,
    /// Waits to skip: poll(2) reported an error or hang-up, which would wake it at once,
    /// forever, if the condition lasts (the device is still read every round).
    skip: u32,
    /// How many times that happened.
    failures: u64,
}

/// Runs until [`Command::Stop`] or until the control side hangs up, polling without sleeping
/// for `busy_poll` after each frame.
pub(crate) fn run(mut switch: Switch, commands: &Receiver<Command>, busy_poll: Duration) {
    let clock = Clock::start();
    let mut waitables: Vec<Waitable> = Vec::new();
    let mut errors = 0u64;
    // When the last frame was forwarded; `None` until there was one.
    let mut last_frame: Option<Duration> = None;
    let mut drained = true;
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Ok(command) => execute(&mut switch, &mut waitables, command, clock.now()),
                Err(TryRecvError::Empty) => break,
            }
        }
        if drained {
            let busy = last_frame.is_some_and(|at| clock.now().saturating_sub(at) < busy_poll);
            if busy {
                // Nothing came in the last round: let the VMs and the other processes of this
                // host run first, then look again.
                std::thread::yield_now();
            } else {
                wait(&mut waitables);
            }
        }
        // A device may hold frames its descriptor no longer signals (a VXLAN socket's rest of
        // a GRO train): after a round that read anything, look again before sleeping.
        drained = false;
        for _ in 0..ROUNDS {
            let now = clock.now();
            let received = switch.poll(now);
            if let Some((port, err)) = switch.take_error() {
                errors += 1;
                // A device that keeps failing would flood the log: say so at 1, 2, 4, 8...
                if errors.is_power_of_two() {
                    eprintln!("weft switch: port {port}: {err} ({errors} device errors so far)");
                }
            }
            for name in switch.take_failed() {
                // Gone for good: waiting on it would wake poll(2) at once, forever.
                forget(&mut waitables, &name);
                eprintln!("weft switch: port {name}: its device is gone; the port is down");
            }
            if received == 0 {
                drained = true;
                break;
            }
            last_frame = Some(now);
        }
    }
}

/// Runs one command.
fn execute(switch: &mut Switch, waitables: &mut Vec<Waitable>, command: Command, now: Duration) {
    match command {
        Command::Attach { name, device, done } => {
            match device.fd().map(|fd| fd.try_clone_to_owned()) {
                Some(Ok(fd)) => waitables.push(Waitable {
                    name: name.clone(),
                    fd,
                    skip: 0,
                    failures: 0,
                }),
                Some(Err(err)) => {
                    // Still read every round, like a device without a descriptor.
                    eprintln!("weft switch: port {name:?}: cannot wait on its descriptor: {err}");
                }
                None => {}
            }
            switch.attach(&name, device);
            let _ = done.send(());
        }
        Command::Detach { name, done } => {
            forget(waitables, &name);
            drop(switch.detach(&name));
            let _ = done.send(());
        }
        Command::Status(reply) => {
            let _ = reply.send(switch.device_status());
        }
        Command::Counters(reply) => {
            let _ = reply.send(switch.counters());
        }
        Command::Macs(reply) => {
            let _ = reply.send(mac_entries(switch, now));
        }
        Command::Stop => {}
    }
}

/// Stops waiting on the first device named `name` (the switch detaches the first one too,
/// while a port's old and new devices are both attached).
fn forget(waitables: &mut Vec<Waitable>, name: &str) {
    if let Some(index) = waitables.iter().position(|w| w.name == name) {
        waitables.remove(index);
    }
}

/// Waits until a device's descriptor is readable or [`WAIT_MS`] pass.
///
/// Every attached device is waited on, also one whose port the tables do not have (yet): the
/// switch drains those too.
fn wait(waitables: &mut [Waitable]) {
    let mut waiting = Vec::with_capacity(waitables.len());
    for (i, waitable) in waitables.iter_mut().enumerate() {
        if waitable.skip == 0 {
            waiting.push(i);
        } else {
            waitable.skip -= 1;
        }
    }
    let mut fds: Vec<PollFd<'_>> = waiting
        .iter()
        .filter_map(|&i| waitables.get(i))
        .map(|w| PollFd::new(w.fd.as_fd(), PollFlags::POLLIN))
        .collect();
    match poll(&mut fds, PollTimeout::from(WAIT_MS)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(err) => {
            eprintln!("weft switch: poll: {}", io::Error::from(err));
            return;
        }
    }
    let failed = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
    let failing: Vec<usize> = fds
        .iter()
        .zip(&waiting)
        .filter(|(fd, _)| fd.revents().is_some_and(|r| r.intersects(failed)))
        .map(|(_, &i)| i)
        .collect();
    drop(fds);
    for i in failing {
        if let Some(waitable) = waitables.get_mut(i) {
            // A pending socket error clears when the switch reads it; a device that is gone
            // keeps reporting, and is then only read every round, not waited on.
            waitable.skip = SKIP_AFTER_ERROR;
            waitable.failures += 1;
            if waitable.failures.is_power_of_two() {
                eprintln!(
                    "weft switch: port {:?}: its device reports an error or hang-up ({} times)",
                    waitable.name, waitable.failures
                );
            }
        }
    }
}

fn mac_entries(switch: &Switch, now: Duration) -> Vec<MacEntry> {
    let tables = switch.tables().load();
    let port_name = |id| tables.port(id).map(|p| p.name.clone());
    let mut entries: Vec<MacEntry> = switch
        .macs()
        .entries(now)
        .filter(|(.., age)| *age <= MAC_AGING)
        .filter_map(|(ls, mac, location, age)| {
            let location = match location {
                Location::Local(port) => MacLocation::Port(port_name(port)?),
                Location::Uplink(port) => MacLocation::Uplink(port_name(port)?),
                Location::Remote(ip) => MacLocation::Remote(ip),
            };
            Some(MacEntry {
                switch: tables.switch(ls)?.name.clone(),
                mac,
                location,
                age,
            })
        })
        .collect();
    entries.sort_by(|a, b| (&a.switch, a.mac.0).cmp(&(&b.switch, b.mac.0)));
    entries
}
