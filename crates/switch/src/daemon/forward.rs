//! The forwarding thread: it owns the [`Switch`] and its devices, waits with epoll until a
//! device has frames or the control thread rings the [`Mailbox`]'s bell, runs the control
//! thread's commands, and calls [`Switch::poll`]. It takes no lock: commands come over a
//! channel and table changes through the shared `ArcSwap`.
//!
//! **Only ready devices are read.** The switch [waits on
//! descriptors](Switch::wait_on_descriptors): a device is read when epoll said its
//! descriptor is readable, and until a read finds it empty. A frame on one of a hypervisor's
//! hundred VM ports costs a read of that port, not of all of them, and an idle switch sleeps
//! in one `epoll_wait` instead of reading every port every few milliseconds. Commands ring a
//! bell in the same epoll set, so the control side is answered at once.
//!
//! **Busy polling** (`busy_poll_us`, off by default). For that long after the last frame it
//! forwarded, the thread keeps polling its devices instead of sleeping in epoll, yielding
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
    os::{fd::OwnedFd, unix::net::UnixDatagram},
    sync::mpsc::{self, Receiver, SendError, Sender, SyncSender, TryRecvError},
    time::{Duration, Instant},
};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use wire::MacAddr;

use crate::{
    device::Device,
    switch::{Counters, DeviceStatus, MAC_AGING, Switch},
    tables::Location,
};

/// How many milliseconds the thread sleeps at most: frames and commands wake it at once,
/// devices without a descriptor (memory ports) are read this often, and MAC aging needs no
/// finer clock. Sleeping longer saves next to nothing and was measured to cost latency: on
/// the virtual machine this was measured on, a ping through two switches took 205-230 µs when
/// they slept up to a second at a time and 150-175 µs with 5 ms (a virtual CPU that idles
/// briefly resumes faster). An idle round is one `epoll_wait` that returns nothing.
const WAIT_MS: u16 = 5;
/// Waits a descriptor sits out after epoll reported an error on it (about a second).
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

/// The control side's end of the forwarding thread's command channel: each command rings a
/// bell the thread waits on with its devices, so it answers at once however long it sleeps.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    commands: Sender<Command>,
    bell: std::sync::Arc<UnixDatagram>,
}

/// The forwarding thread's end of the [`Mailbox`], and the epoll set it sleeps on: the bell
/// and every attached device's descriptor.
pub(crate) struct Inbox {
    commands: Receiver<Command>,
    bell: UnixDatagram,
    epoll: Epoll,
    /// One per device attached to the switch, in the same order.
    waitables: Vec<Waitable>,
    /// The epoll token the next waitable gets; tokens grow, so `waitables` is sorted by them.
    next_token: u64,
    events: Vec<EpollEvent>,
}

/// The bell's epoll token.
const BELL: u64 = u64::MAX;
/// Events taken from epoll per wait; more ready devices are found on the next look.
const EVENTS: usize = 256;

/// A connected mailbox and inbox.
pub(crate) fn mailbox() -> io::Result<(Mailbox, Inbox)> {
    let (ring, hear) = UnixDatagram::pair()?;
    ring.set_nonblocking(true)?;
    hear.set_nonblocking(true)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&hear, EpollEvent::new(EpollFlags::EPOLLIN, BELL))?;
    let (commands, receiver) = mpsc::channel();
    Ok((
        Mailbox {
            commands,
            bell: std::sync::Arc::new(ring),
        },
        Inbox {
            commands: receiver,
            bell: hear,
            epoll,
            waitables: Vec::new(),
            next_token: 0,
            events: vec![EpollEvent::empty(); EVENTS],
        },
    ))
}

impl Mailbox {
    /// Queues `command` and wakes the forwarding thread; fails when it has stopped.
    pub(crate) fn send(&self, command: Command) -> Result<(), SendError<Command>> {
        self.commands.send(command)?;
        // A full socket means the bell is already ringing.
        let _ = self.bell.send(&[1]);
        Ok(())
    }
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

/// An attached device's descriptor, duplicated so the thread can wait on it while the switch
/// owns the device.
struct Waitable {
    name: String,
    token: u64,
    /// None for a device without one (read every [`WAIT_MS`]).
    fd: Option<OwnedFd>,
    /// In the epoll set: not while it sits out an error, nor once it is gone.
    registered: bool,
    /// The device is gone for good: neither waited on nor read.
    gone: bool,
    /// Waits to sit out: epoll reported an error or hang-up, which would wake it at once,
    /// forever, if the condition lasts (the device is still read every round meanwhile).
    skip: u32,
    /// How many times that happened.
    failures: u64,
}

impl Waitable {
    /// Takes its descriptor out of the epoll set, if it is in it.
    fn leave(&mut self, epoll: &Epoll) {
        if let (true, Some(fd)) = (self.registered, &self.fd) {
            let _ = epoll.delete(fd);
        }
        self.registered = false;
    }
}

/// Runs until [`Command::Stop`] or until the control side hangs up, polling without sleeping
/// for `busy_poll` after each frame.
pub(crate) fn run(mut switch: Switch, inbox: &mut Inbox, busy_poll: Duration) {
    let clock = Clock::start();
    switch.wait_on_descriptors();
    let mut errors = 0u64;
    // When the last frame was forwarded; `None` until there was one.
    let mut last_frame: Option<Duration> = None;
    let mut drained = true;
    loop {
        loop {
            match inbox.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Ok(command) => execute(&mut switch, inbox, command, clock.now()),
                Err(TryRecvError::Empty) => break,
            }
        }
        let busy = last_frame.is_some_and(|at| clock.now().saturating_sub(at) < busy_poll);
        if drained && busy {
            // Nothing came in the last round: let the VMs and the other processes of this
            // host run first, then look again.
            std::thread::yield_now();
        }
        // Sleep only when everything was read empty; otherwise just look which other devices
        // became ready meanwhile, so a saturated one cannot starve them.
        let sleep = drained && !busy;
        inbox.wait(&mut switch, sleep);
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
                // Gone for good: waiting on it would wake epoll at once, forever.
                inbox.forget(&name);
                eprintln!("weft switch: port {name}: its device is gone; the port is down");
            }
            if received > 0 {
                last_frame = Some(now);
            }
            // A device stays ready until a read finds it empty (one that holds the rest of a
            // VXLAN socket's GRO train is read again although its descriptor is quiet).
            if received == 0 || !switch.any_ready() {
                drained = received == 0;
                break;
            }
        }
    }
}

/// Runs one command.
fn execute(switch: &mut Switch, inbox: &mut Inbox, command: Command, now: Duration) {
    match command {
        Command::Attach { name, device, done } => {
            let fd = match device.fd().map(|fd| fd.try_clone_to_owned()) {
                Some(Ok(fd)) => Some(fd),
                Some(Err(err)) => {
                    // Read every WAIT_MS, like a device without a descriptor.
                    eprintln!("weft switch: port {name:?}: cannot wait on its descriptor: {err}");
                    None
                }
                None => None,
            };
            // The switch appends the device too: both lists stay in the same order.
            inbox.attach(&name, fd);
            switch.attach(&name, device);
            let _ = done.send(());
        }
        Command::Detach { name, done } => {
            // Both drop the first device of that name.
            inbox.detach(&name);
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

impl Inbox {
    /// Adds a waitable for a newly attached device (`fd` None: it has no descriptor).
    fn attach(&mut self, name: &str, fd: Option<OwnedFd>) {
        let token = self.next_token;
        self.next_token += 1;
        let registered = fd.as_ref().is_some_and(|fd| {
            let added = self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token));
            if let Err(err) = added {
                eprintln!("weft switch: port {name:?}: cannot wait on its descriptor: {err}");
            }
            added.is_ok()
        });
        self.waitables.push(Waitable {
            name: name.to_owned(),
            token,
            // One that epoll refused is read every round, like one without.
            fd: fd.filter(|_| registered),
            registered,
            gone: false,
            skip: 0,
            failures: 0,
        });
    }

    /// Drops the waitable of the first device named `name`.
    fn detach(&mut self, name: &str) {
        if let Some(index) = self.waitables.iter().position(|w| w.name == name) {
            self.waitables.remove(index).leave(&self.epoll);
        }
    }

    /// Stops waiting on the first device named `name` that is not gone yet: it is now (the
    /// switch no longer reads it either).
    fn forget(&mut self, name: &str) {
        let gone = self
            .waitables
            .iter_mut()
            .find(|w| w.name == name && !w.gone);
        if let Some(waitable) = gone {
            waitable.leave(&self.epoll);
            (waitable.gone, waitable.fd) = (true, None);
        }
    }

    /// Tells the switch which devices are ready: sleeps in epoll until a descriptor or the
    /// bell is readable when `sleep` (at most [`WAIT_MS`]), else only looks.
    ///
    /// Every attached device is waited on, also one whose port the tables do not have (yet):
    /// the switch drains those too.
    fn wait(&mut self, switch: &mut Switch, sleep: bool) {
        for (i, waitable) in self.waitables.iter_mut().enumerate() {
            if waitable.gone || waitable.registered {
                continue;
            }
            // No descriptor, or one sitting out an error: read it every round.
            switch.ready(i);
            if let Some(fd) = &waitable.fd {
                waitable.skip = waitable.skip.saturating_sub(1);
                if waitable.skip == 0 {
                    let event = EpollEvent::new(EpollFlags::EPOLLIN, waitable.token);
                    waitable.registered = self.epoll.add(fd, event).is_ok();
                }
            }
        }
        let timeout = if sleep { WAIT_MS } else { 0 };
        let ready = match self
            .epoll
            .wait(&mut self.events, EpollTimeout::from(timeout))
        {
            Ok(ready) => ready,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(err) => {
                eprintln!("weft switch: epoll: {}", io::Error::from(err));
                // Read everything rather than nothing.
                for i in 0..self.waitables.len() {
                    switch.ready(i);
                }
                return;
            }
        };
        let failed = EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP;
        for event in &self.events[..ready] {
            if event.data() == BELL {
                // The commands are taken from the channel; silence the bell.
                let mut chimes = [0u8; 64];
                while self.bell.recv(&mut chimes).is_ok() {}
                continue;
            }
            let Ok(i) = self
                .waitables
                .binary_search_by_key(&event.data(), |w| w.token)
            else {
                continue;
            };
            // Readable, or an error the read will pick up.
            switch.ready(i);
            if !event.events().intersects(failed) {
                continue;
            }
            let waitable = &mut self.waitables[i];
            // A pending socket error clears when the switch reads it; a device that is gone
            // keeps reporting, and is then only read every round, not waited on, for a while.
            waitable.leave(&self.epoll);
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
