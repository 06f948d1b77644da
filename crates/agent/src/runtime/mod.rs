//! The agent's I/O: four loops on one shared core, all tasks of the caller's tokio runtime.
//!
//! - **watch**: `GET /weft/v1/watch?host=H&since=REV`, NDJSON lines applied to the view as
//!   they arrive; reconnects with capped, jittered exponential backoff from the last applied
//!   revision (or from 0, asking for a resync, after a malformed event).
//! - **push**: builds the desired configuration and sends it with `replace`. It runs only
//!   after a change and only once the view is synced, so neither an agent restart nor a
//!   controller outage touches the switch before the controller has spoken: the switch keeps
//!   forwarding with its last tables. At most one `replace` is in flight; changes that arrive
//!   meanwhile are folded into the next one, which always carries the latest view.
//! - **heartbeat**: `POST /weft/v1/agents` every report interval (`start_flag` until one is
//!   accepted).
//! - **status**: once a second, and right after a configuration that adds or removes TAPs (at
//!   most once a second), the switch's `status`; changes of this host's ports go to
//!   `POST /weft/v1/devices` (all of them again after a resync).
//!
//! Shutdown stops the loops between operations; a `replace` in flight is finished, never cut,
//! and nothing is removed from the switch.

mod http;
mod switch;

use core::{future::Future, time::Duration};
use std::{
    collections::BTreeMap,
    hash::{BuildHasher as _, Hasher as _},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::{
    sync::{Notify, watch},
    time::{Instant, MissedTickBehavior},
};

use self::{http::Controller, switch::SwitchClient};
pub use self::{
    http::HttpError,
    switch::{MemorySwitch, SharedSwitch, SwitchError},
};
use crate::{
    desired::{Desired, HostConfig},
    event::{Event, EventError},
    report::{self, DeviceTracker},
    switch_config::Status,
    view::View,
};

/// The default interval between heartbeats (Neutron's `report_interval`).
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How often the switch's port status is read.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// The longest watch line accepted (a resync of a very large view is one line).
pub const MAX_LINE: usize = 256 << 20;
/// The longest adaptive spacing between two `replace`s (see
/// [`AgentConfig::push_spacing_factor`]).
pub const MAX_PUSH_SPACING: Duration = Duration::from_secs(10);
/// The least time between two re-sends of an unchanged configuration to a switch that has
/// lost ports (it restarted).
const REPUSH_INTERVAL: Duration = Duration::from_secs(30);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The host.
    pub host: HostConfig,
    /// The controller's base URL (`http://host:port`).
    pub server: String,
    /// The agent secret.
    pub token: String,
    /// The switch's control socket.
    pub switch_socket: PathBuf,
    /// An in-process switch to use instead of the socket (simulated hosts).
    pub memory_switch: Option<SharedSwitch>,
    /// Between heartbeats.
    pub report_interval: Duration,
    /// Between reads of the switch's status.
    pub status_interval: Duration,
    /// The first reconnect delay; it doubles on each failure.
    pub backoff_initial: Duration,
    /// The longest reconnect delay.
    pub backoff_max: Duration,
    /// A watch stream silent for this long is taken as dead (the server sends a bookmark
    /// every 5 s).
    pub watch_idle_timeout: Duration,
    /// How long a controller request (and the start of the watch answer) may take.
    pub request_timeout: Duration,
    /// How long a switch request may take (`replace` opens devices).
    pub switch_timeout: Duration,
    /// The least time between the starts of two `replace`s; changes that arrive sooner are
    /// folded into the next one. The first change after a quiet spell is still sent at once,
    /// so this bounds the work of a burst (a mass boot touches a host's networks many times
    /// a second) without delaying a lone change. Zero by default: a host's own switch keeps
    /// up; thousands of simulated hosts sharing a few cores do not.
    pub min_push_interval: Duration,
    /// Also wait this many times as long as the last configuration's changes waited to be
    /// applied (from their arrival to the switch's answer), up to [`MAX_PUSH_SPACING`]. That
    /// wait is what overload looks like from inside one agent: it is a few milliseconds on
    /// an idle host and grows when the CPU is shared by more work than it can do, so the
    /// spacing adapts to the load without a fixed figure per deployment size. 0: off.
    pub push_spacing_factor: u32,
}

impl AgentConfig {
    /// A configuration with the default intervals and timeouts.
    pub fn new(host: HostConfig, server: String, token: String, switch_socket: PathBuf) -> Self {
        Self {
            host,
            server,
            token,
            switch_socket,
            memory_switch: None,
            report_interval: DEFAULT_REPORT_INTERVAL,
            status_interval: DEFAULT_STATUS_INTERVAL,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            watch_idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            switch_timeout: Duration::from_secs(30),
            min_push_interval: Duration::ZERO,
            push_spacing_factor: 0,
        }
    }
}

/// Why the agent could not start, or why a loop iteration failed (logged and retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The token is empty.
    #[error("the agent token is empty")]
    EmptyToken,
    /// A controller request failed.
    #[error("controller: {0}")]
    Http(HttpError),
    /// A switch request failed.
    #[error("switch: {0}")]
    Switch(SwitchError),
    /// The watch stream carried an event the view refused.
    #[error("watch: {0}")]
    Event(EventError),
    /// The watch stream was silent too long.
    #[error("watch: nothing for {0:?}")]
    Idle(Duration),
    /// A watch line exceeded [`MAX_LINE`].
    #[error("watch: a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// The switch's status answer had an unexpected shape.
    #[error("switch: status: {0}")]
    BadStatus(serde_json::Error),
}

// The inner errors are part of the message, so they are not also sources (a `{:#}` chain
// would print them twice).
impl From<HttpError> for AgentError {
    fn from(err: HttpError) -> Self {
        Self::Http(err)
    }
}

impl From<SwitchError> for AgentError {
    fn from(err: SwitchError) -> Self {
        Self::Switch(err)
    }
}

impl From<EventError> for AgentError {
    fn from(err: EventError) -> Self {
        Self::Event(err)
    }
}

/// What the loops share.
struct Shared {
    config: AgentConfig,
    controller: Controller,
    core: Mutex<Core>,
    /// Wakes the push loop; a wake-up while it is busy is kept, so bursts coalesce.
    push: Notify,
    /// Wakes the status loop before its next tick: a configuration with new or removed TAPs
    /// was applied, so their state is worth reporting now (a VM waiting for its port to be
    /// ACTIVE, a migration, should not wait out the interval); at most once an interval.
    status_now: Notify,
}

struct Core {
    view: View,
    desired: Desired,
    /// TAP name → port id of the configuration the switch accepted last.
    local_ports: Arc<BTreeMap<String, String>>,
    /// A `replace` has succeeded since start.
    pushed: bool,
    /// Report every port's state on the next status read (after a resync).
    report_all: bool,
    /// Send the configuration even if it is what was sent last (the switch lost it).
    force_push: bool,
    /// When the oldest change not yet in a built configuration arrived.
    dirty_since: Option<Instant>,
    /// Local ports in the desired configuration (the heartbeat's `devices`).
    devices: usize,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        // Poisoned only if a loop panicked while holding it; the view is replaced whole by
        // a resync, so carrying on is safe and better than stopping every loop.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let token = config.token.trim();
    if token.is_empty() {
        return Err(AgentError::EmptyToken);
    }
    let controller = Controller::new(&config.server, token, config.request_timeout)?;
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            view: View::new(),
            desired: Desired::new(config.host.clone()),
            local_ports: Arc::default(),
            pushed: false,
            report_all: true,
            force_push: false,
            dirty_since: None,
            devices: 0,
        }),
        config,
        controller,
        push: Notify::new(),
        status_now: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::info!(
        host = %shared.config.host.host,
        server = %shared.config.server,
        switch = %shared.config.switch_socket.display(),
        "agent starting"
    );
    let loops = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            tokio::join!(
                tokio::spawn(watch_loop(Arc::clone(&shared), stop_rx.clone())),
                tokio::spawn(push_loop(Arc::clone(&shared), stop_rx.clone())),
                tokio::spawn(heartbeat_loop(Arc::clone(&shared), stop_rx.clone())),
                tokio::spawn(status_loop(shared, stop_rx)),
            )
        }
    });
    shutdown.await;
    tracing::info!("agent stopping; the switch keeps its configuration");
    let _ = stop_tx.send(true);
    let _ = loops.await;
    Ok(())
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Capped exponential backoff with jitter, so thousands of agents that lost the same
/// controller do not all come back in the same instant.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Self {
            initial,
            max,
            next: initial,
            seed,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The next delay: uniform in [d/2, d] where d doubles up to the cap.
    fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift64: cheap, and only for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = d / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.seed % span)
    }
}

async fn watch_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(shared.config.backoff_initial, shared.config.backoff_max);
    loop {
        let since = shared.core().view.since();
        tracing::debug!(since, "watching");
        let result = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            result = watch_once(&shared, since, &mut backoff) => result,
        };
        match result {
            Ok(()) => tracing::info!("watch: the controller ended the stream; reconnecting"),
            Err(AgentError::Event(err)) => {
                tracing::warn!(%err, "watch: refused an event; resyncing");
            }
            Err(err) => tracing::warn!(%err, "watch: reconnecting"),
        }
        let delay = backoff.delay();
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One watch connection, until it ends or fails. Lines are applied as soon as they are
/// complete; a partial line at a break is dropped (the next stream starts after the last
/// complete one).
async fn watch_once(shared: &Shared, since: u64, backoff: &mut Backoff) -> Result<(), AgentError> {
    let host = &shared.config.host.host;
    let mut body = shared.controller.watch(host, since).await?;
    let idle = shared.config.watch_idle_timeout;
    let mut buffer: Vec<u8> = Vec::new();
    // Where the search for the next newline resumes: bytes before it have none.
    let mut scanned = 0;
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| AgentError::Idle(idle))?;
        let Some(frame) = frame else {
            return Ok(());
        };
        let Ok(data) = frame.map_err(HttpError::from)?.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = buffer[scanned..].iter().position(|b| *b == b'\n') {
            let end = scanned + offset;
            let line = buffer[start..end].trim_ascii();
            if !line.is_empty() {
                events.push(Event::parse(line));
            }
            start = end + 1;
            scanned = start;
        }
        buffer.drain(..start);
        scanned = buffer.len();
        if buffer.len() > MAX_LINE {
            return Err(AgentError::LineTooLong);
        }
        if !events.is_empty() {
            apply(shared, events)?;
            backoff.reset();
        }
    }
}

/// Applies parsed lines in order, stopping at the first bad one (after which the view waits
/// for a resync), and wakes the push loop if anything changed.
fn apply(shared: &Shared, events: Vec<Result<Event, EventError>>) -> Result<(), AgentError> {
    let mut core = shared.core();
    let mut changed = false;
    let mut outcome = Ok(());
    for event in events {
        let applied = event.and_then(|event| {
            let (kind, revision) = (event.type_name(), event.revision);
            let applied = core.view.apply(event)?;
            tracing::debug!(kind, revision, changed = applied.changed, "applied");
            Ok(applied)
        });
        match applied {
            Ok(applied) => {
                changed |= applied.changed;
                if applied.resync {
                    core.report_all = true;
                    tracing::info!(
                        revision = core.view.revision(),
                        networks = core.view.networks().len(),
                        ports = core.view.port_count(),
                        "resync"
                    );
                }
            }
            Err(err) => {
                core.view.invalidate();
                outcome = Err(err.into());
                break;
            }
        }
    }
    if changed && core.dirty_since.is_none() {
        core.dirty_since = Some(Instant::now());
    }
    drop(core);
    if changed {
        shared.push.notify_one();
    }
    outcome
}

/// What one build gave: the request to send, unless it is what was sent already.
struct Build {
    request: String,
    local_ports: BTreeMap<String, String>,
    /// When the oldest change it carries arrived.
    dirty_since: Option<Instant>,
}

fn build(shared: &Shared, last_sent: Option<&str>) -> Option<Build> {
    let mut core = shared.core();
    if !core.view.is_synced() {
        return None;
    }
    let core = &mut *core;
    let changes = core.view.take_changes();
    let dirty_since = core.dirty_since.take();
    for problem in core.desired.update(&core.view, &changes) {
        tracing::warn!(%problem, "left out of the switch configuration");
    }
    let assembled = core.desired.assemble();
    for problem in &assembled.problems {
        tracing::warn!(%problem, "left out of the switch configuration");
    }
    core.devices = assembled.local_ports.len();
    let request = assembled.replace_request();
    let force = core.force_push;
    core.force_push = false;
    if !force && last_sent == Some(request.as_str()) {
        return None;
    }
    Some(Build {
        request,
        local_ports: assembled.local_ports,
        dirty_since,
    })
}

async fn push_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut switch = SwitchClient::new(
        shared.config.memory_switch.as_ref(),
        &shared.config.switch_socket,
        shared.config.switch_timeout,
    );
    let mut backoff = Backoff::new(shared.config.backoff_initial, shared.config.backoff_max);
    let mut seeded = false;
    let mut last_sent: Option<String> = None;
    let mut last_push: Option<Instant> = None;
    // The least time from the last push to the next (see AgentConfig::push_spacing_factor).
    let mut spacing = shared.config.min_push_interval;
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            () = shared.push.notified() => {}
        }
        if let Some(at) = last_push {
            let wait = spacing.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        // Changes held back by the spacing itself did not wait for the CPU: counting that
        // time would feed the spacing back into itself.
        let resumed = Instant::now();
        if !shared.core().view.is_synced() {
            continue;
        }
        last_push = Some(Instant::now());
        let result = async {
            if !seeded {
                // The switch's current VLAN ids, so a restarted agent renumbers nothing.
                let list = switch.call(r#"{"op":"list"}"#).await?;
                let count = shared.core().desired.seed(&list);
                tracing::info!(vlans = count, "took over the switch's host-local VLAN ids");
                seeded = true;
            }
            let Some(build) = build(&shared, last_sent.as_deref()) else {
                return Ok::<_, AgentError>(());
            };
            let started = Instant::now();
            let result = switch.call(&build.request).await?;
            let changed = result.get("changed").and_then(Value::as_bool);
            tracing::info!(
                bytes = build.request.len(),
                ports = build.local_ports.len(),
                changed = ?changed,
                elapsed_ms = started.elapsed().as_millis(),
                "switch configuration replaced"
            );
            let mut core = shared.core();
            let ports_changed = core.local_ports.keys().ne(build.local_ports.keys());
            core.local_ports = Arc::new(build.local_ports);
            core.pushed = true;
            drop(core);
            if ports_changed {
                shared.status_now.notify_one();
            }
            if let Some(since) = build.dirty_since {
                let since = since.max(resumed);
                let factor = shared.config.push_spacing_factor;
                let adaptive = since.elapsed().saturating_mul(factor).min(MAX_PUSH_SPACING);
                spacing = shared.config.min_push_interval.max(adaptive);
            }
            last_sent = Some(build.request);
            Ok(())
        }
        .await;
        match result {
            Ok(()) => backoff.reset(),
            Err(err) => {
                tracing::warn!(%err, "cannot configure the switch; retrying");
                // A refused configuration is not retried as it was: the next build sends it
                // again whole, with whatever changed meanwhile.
                last_sent = None;
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep(backoff.delay()) => {}
                }
                shared.push.notify_one();
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut start_flag = true;
    let mut interval = tokio::time::interval(shared.config.report_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            _ = interval.tick() => {}
        }
        let devices = shared.core().devices;
        let body = report::heartbeat(&shared.config.host, start_flag, devices);
        let result = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            result = shared.controller.post_json("/weft/v1/agents", &body) => result,
        };
        match result {
            Ok(_) => {
                if start_flag {
                    tracing::info!("registered with the controller");
                    // Agents started together would otherwise beat in step for ever: the next
                    // beat comes after a part of the interval that depends on the host's name.
                    interval.reset_after(spread(
                        &shared.config.host.host,
                        shared.config.report_interval,
                    ));
                }
                start_flag = false;
            }
            Err(err) => tracing::warn!(%err, "heartbeat failed"),
        }
    }
}

/// A part of `interval` (a quarter to the whole) fixed by `host`: spreads the heartbeats of
/// agents that started at the same time.
fn spread(host: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and builds, unlike the std hasher's random keys.
    let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let quarter = interval / 4;
    let spare = interval.saturating_sub(quarter);
    let millis = u64::try_from(spare.as_millis()).unwrap_or(u64::MAX).max(1);
    quarter + Duration::from_millis(hash % millis)
}

async fn status_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut switch = SwitchClient::new(
        shared.config.memory_switch.as_ref(),
        &shared.config.switch_socket,
        shared.config.switch_timeout,
    );
    let mut tracker = DeviceTracker::new();
    let mut interval = tokio::time::interval(shared.config.status_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_repush: Option<Instant> = None;
    let mut last_early: Option<Instant> = None;
    let status_request = json!({"op": "status"}).to_string();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            _ = interval.tick() => {}
            () = shared.status_now.notified() => {
                // One early read per interval: a port plugged alone (a VM booting, a
                // migration) is reported at once, while a burst (a thousand VMs booting) is
                // read about as often as without early reads, so the controller gets batches.
                if last_early.is_some_and(|at| at.elapsed() < shared.config.status_interval) {
                    continue;
                }
                last_early = Some(Instant::now());
                // The next regular read a whole interval after this one.
                interval.reset();
            }
        }
        let (local, all) = {
            let mut core = shared.core();
            // Before the first replace the switch is not ours to read.
            if !core.pushed {
                continue;
            }
            let all = core.report_all;
            core.report_all = false;
            (Arc::clone(&core.local_ports), all)
        };
        let outcome = async {
            let status = switch.call(&status_request).await?;
            let status: Status = serde_json::from_value(status).map_err(AgentError::BadStatus)?;
            let missing = local
                .keys()
                .filter(|tap| !status.ports.iter().any(|p| &p.name == *tap))
                .count();
            if missing > 0 && last_repush.is_none_or(|t| t.elapsed() >= REPUSH_INTERVAL) {
                tracing::warn!(
                    missing,
                    "the switch lacks ports it was given (restarted?); configuring it again"
                );
                last_repush = Some(Instant::now());
                shared.core().force_push = true;
                shared.push.notify_one();
            }
            let report = tracker.changes(&local, &status, all);
            if report.is_empty() {
                return Ok(());
            }
            let body = report.body(&shared.config.host.host);
            shared
                .controller
                .post_json("/weft/v1/devices", &body)
                .await?;
            tracing::info!(
                up = report.up.len(),
                down = report.down.len(),
                "reported devices"
            );
            tracker.confirm(&local, &report);
            Ok::<_, AgentError>(())
        };
        // A report cut by shutdown is harmless: the next agent reports everything again.
        let outcome = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            outcome = outcome => outcome,
        };
        if let Err(err) = outcome {
            tracing::warn!(%err, "device status not reported; retrying");
            if all {
                shared.core().report_all = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..50)
            .map(|i| spread(&format!("h{i}"), interval))
            .collect();
        assert!(offsets.iter().all(|d| *d >= interval / 4 && *d <= interval));
        let mut distinct = offsets.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 40, "{offsets:?}");
        assert_eq!(spread("h1", interval), spread("h1", interval));
        assert!(spread("h1", Duration::ZERO) <= Duration::from_millis(1));
    }
}
