//! The driver: one [`Port`] on one interface, after quinn's connection driver. It reads frames
//! from an `AF_PACKET` socket and hands them to the port, arms one timer from
//! `poll_timeout`, sends what `poll_transmit` writes, acts on `poll_event` (logs, the status
//! table, the controller), asks the controller about deferred requests and answers with
//! `decide`, and runs control-socket requests, all on one task so the engines need no lock.
//!
//! The socket is switch's [`PacketDevice`] (promiscuous, every protocol: the group addresses
//! EVB uses, 01-80-C2-00-00-00 and -03, arrive without joining anything); the port drops what
//! is not LLDP or ECP for it. Clock: microseconds since the daemon started.
//!
//! S-channels: the port runs EVB TLV, ECP and VDP on every channel CDCP grants, so the VSI
//! tables are keyed by (SVID, VSI). A station's control requests name the channel by SCID
//! (`"scid"`, default 1), resolved to the SVID granted. A bridge gates a VSI on its channel
//! (`PORT.sSVID` in the switch) and asks the controller about it as bridge port `IF` (the
//! default channel) or `IF.sSVID`. After each channel change the switch port's S-channels are
//! programmed ([`crate::schannels`]) when a switch socket is given.
//!
//! Restarts: a station with a state file ([`crate::state`]) writes its VSIs and wanted
//! S-channels there whenever they change, before it answers the request that changed them. At
//! start it asks CDCP for the saved channels with the others, and once a saved VSI's channel is
//! up with an EVB peer (the EVB TLV exchange, after the CDCP grant for an S-channel) it asks
//! the bridge for the VSI again, in the mode the VMM asked for, with the filters in force. To
//! the bridge that is the keep-alive the old station would have sent next, so the VSI stays as
//! it was there (no new decision, no gating change) as long as the restart beats the bridge's
//! keep-alive timeout. Until then the VSI is listed as `restoring`.

use core::time::Duration;
use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    path::PathBuf,
};

use evb::{
    Instant, MAX_FRAME_LEN, Role, Timing,
    vdp::{
        Association, BridgeEvent, DeassociateCause, Profile, Refusal, StationEvent, VsiKey, VsiSpec,
    },
};
use serde_json::{Map, Value, json};
use switch::{
    PacketBuf,
    daemon::config::ChannelSpec,
    device::{Device as _, packet::PacketDevice},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use wire::{
    MacAddr,
    vdp::{Id16, Mode, Reason, VsiIdFormat},
};

use crate::{
    control::{self, Command},
    decide::{self, DecideClient, RequestJson},
    gating::{Gating, Programmer, SwitchGlue},
    policy::{LocalPolicy, Policy},
    port::{CdcpConfig, DEFAULT_SCID, DEFAULT_SVID, Port, PortConfig, PortEvent, RoleError},
    schannels::{SChannels, UplinkGlue},
    state::{Saved, SavedVsi, StateError, StateFile},
    text,
};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The interface has no readable MAC address (it does not exist here?).
    #[error("cannot read the MAC address of {iface}: {message}")]
    Mac {
        /// The interface.
        iface: String,
        /// What went wrong.
        message: String,
    },
    /// The packet socket did not open.
    #[error("cannot open a packet socket on {iface}: {source}")]
    Open {
        /// The interface.
        iface: String,
        /// The error.
        source: io::Error,
    },
    /// The control socket did not open.
    #[error("cannot listen on {path}: {source}")]
    Control {
        /// The socket's path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading, sending or waiting failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Who decides on a bridge's VSIs.
#[derive(Debug, Clone)]
pub enum Decider {
    /// A local policy file.
    Local(LocalPolicy),
    /// The controller.
    Remote(Box<DecideClient>),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The interface.
    pub iface: String,
    /// Bridge or station.
    pub role: Role,
    /// Our R, RTE, RWD and RKA.
    pub timing: Timing,
    /// A bridge: offer reflective relay. A station: ask for it.
    pub reflective_relay: bool,
    /// CDCP, if any.
    pub cdcp: Option<CdcpConfig>,
    /// A bridge: who decides (ignored on a station).
    pub decider: Decider,
    /// The control socket, if any.
    pub control: Option<PathBuf>,
    /// A station: the S-channels to ask for at start, by SCID.
    pub channels: Vec<u16>,
    /// A bridge: the switch whose S-channels to gate by association (figure 12) and to
    /// program with the S-channels granted, if any.
    pub switch: Option<SwitchGlue>,
    /// A station: the host switch whose uplink to program with the S-channels granted, if
    /// any (ignored on a bridge).
    pub uplink: Option<UplinkGlue>,
    /// A station: the file that keeps its VSIs and S-channels across a restart
    /// ([`crate::state`]); `None` keeps them in memory only. Ignored on a bridge.
    pub state_file: Option<PathBuf>,
}

/// How many recent events the status keeps.
const EVENT_LOG: usize = 200;
/// How often the switch port's S-channels are set again as CDCP has them.
const S_CHANNELS_REASSERT: Duration = Duration::from_secs(5);
/// Frames read per wake-up.
const BATCH: usize = 16;

/// A monotonic clock in the engines' terms.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    fn now(self) -> Instant {
        let micros = self.start.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        self.start + Duration::from_micros(at.as_micros())
    }
}

/// The packet socket and its descriptor, for `AsyncFd`.
struct Socket {
    device: PacketDevice,
    raw: RawFd,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.raw
    }
}

/// A request the runtime sent to the controller, and its answer.
#[derive(Debug)]
struct Decided {
    /// The channel the request came on.
    svid: u16,
    key: VsiKey,
    result: Result<Profile, Refusal>,
    /// The profile's network, as the controller named it.
    network: Option<String>,
}

/// Reads an interface's MAC address from sysfs.
fn interface_mac(iface: &str) -> Result<MacAddr, RuntimeError> {
    let error = |message: String| RuntimeError::Mac {
        iface: iface.to_owned(),
        message,
    };
    if iface.contains('/') || iface.is_empty() {
        return Err(error("not an interface name".into()));
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .map_err(|err| error(err.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| error(format!("{:?} is not a MAC address", text.trim())))
}

/// A random 16-bit number (ECP's first sequence number); the time if entropy fails.
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes = nanos.to_le_bytes()[..2].try_into().unwrap_or([1, 0]);
    }
    u16::from_le_bytes(bytes)
}

/// Runs the port until `shutdown` completes; then the EVB agent says goodbye (TTL 0).
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
    let local_mac = interface_mac(&options.iface)?;
    let config = PortConfig {
        local_mac,
        timing: options.timing,
        reflective_relay: options.reflective_relay,
        initial_sequence: random_u16(),
        cdcp: options.cdcp.clone(),
    };
    let port = match options.role {
        Role::Bridge => {
            let policy = match &options.decider {
                Decider::Local(local) => Policy::Local(local.clone()),
                Decider::Remote(_) => Policy::remote(),
            };
            Port::bridge(&config, policy)
        }
        Role::Station => Port::station(&config),
    };
    let device = PacketDevice::open(&options.iface).map_err(|source| RuntimeError::Open {
        iface: options.iface.clone(),
        source,
    })?;
    let raw = device
        .fd()
        .map(|fd| fd.as_fd().as_raw_fd())
        .ok_or_else(|| RuntimeError::Open {
            iface: options.iface.clone(),
            source: io::Error::other("the device has no descriptor"),
        })?;
    // SAFETY: `raw` is the descriptor `device` owns; the device moves into the `AsyncFd` with
    // it, so the descriptor stays open and the same until the `AsyncFd` drops.
    let mut socket = unsafe {
        AsyncFd::register_with_interest(Socket { device, raw }, tokio::io::Interest::READABLE)
    }
    .map_err(|err| RuntimeError::Io {
        context: "cannot watch the packet socket",
        source: err.into(),
    })?;
    let (command_tx, commands) = mpsc::channel(16);
    if let Some(path) = &options.control {
        control::listen(path, command_tx).map_err(|source| RuntimeError::Control {
            path: path.clone(),
            source,
        })?;
    } else {
        drop(command_tx);
    }
    let gating = match (&options.switch, options.role) {
        (Some(glue), Role::Bridge) => Some(
            Gating::start(glue.clone())
                .map_err(io_error("cannot start the switch programming thread"))?,
        ),
        _ => None,
    };
    let s_channels = match (&gating, &options.uplink, options.role) {
        (Some(gating), _, Role::Bridge) => Some((
            gating.programmer().clone(),
            SChannels::bridge(options.iface.clone(), options.reflective_relay),
        )),
        (_, Some(uplink), Role::Station) => Some((
            Programmer::start(uplink.socket.clone())
                .map_err(io_error("cannot start the switch programming thread"))?,
            SChannels::uplink(options.iface.clone(), uplink.networks.clone()),
        )),
        _ => None,
    };
    let (state, saved) = load_state(&options);
    let (decided_tx, decided) = mpsc::channel(64);
    let mut driver = Driver {
        clock: Clock {
            start: tokio::time::Instant::now(),
        },
        options,
        local_mac,
        port,
        decided_tx,
        events: VecDeque::new(),
        bound: BTreeMap::new(),
        station_vsis: BTreeMap::new(),
        restoring: BTreeMap::new(),
        wanted_channels: Vec::new(),
        state,
        written: None,
        state_failing: false,
        gating,
        s_channels,
        scids: BTreeMap::from([(DEFAULT_SVID, DEFAULT_SCID)]),
        gated: BTreeMap::new(),
        networks: BTreeMap::new(),
        tx_errors: 0,
    };
    tracing::info!(
        iface = %driver.options.iface,
        mac = %local_mac,
        role = role_name(driver.options.role),
        "EVB port up"
    );
    if driver.options.role == Role::Station {
        // The saved channels too, before CDCP says anything: a channel left out of the first
        // TLV is released by the bridge, with its VSIs.
        let mut channels = driver.options.channels.clone();
        for &scid in &saved.channels {
            if !channels.contains(&scid) {
                channels.push(scid);
            }
        }
        if !channels.is_empty() {
            match driver.port.set_channels(&channels) {
                Ok(()) => driver.wanted_channels = channels,
                Err(err) => tracing::warn!("cannot ask for S-channels {channels:?}: {err}"),
            }
        }
        driver.hold_saved(saved);
    }
    driver.run(&mut socket, commands, decided, shutdown).await
}

/// A station's state file and what it saved (nothing without one, or on a bridge). A file
/// that does not read is reported and set aside ([`StateFile::load`]); the station starts
/// with nothing then, and without a file at all when the bad one could not be moved.
fn load_state(options: &Options) -> (Option<StateFile>, Saved) {
    let (Some(path), Role::Station) = (&options.state_file, options.role) else {
        return (None, Saved::default());
    };
    let mut file = StateFile::new(path.clone());
    match file.load() {
        Ok(saved) => {
            if !saved.vsis.is_empty() {
                tracing::info!(
                    path = %path.display(),
                    "{} VSI(s) to ask the bridge for again",
                    saved.vsis.len()
                );
            }
            (Some(file), saved)
        }
        Err(err @ StateError::Unreadable { .. }) => {
            tracing::error!("{err}");
            let kept = matches!(file.save(&Saved::default()), Err(StateError::Kept { .. }));
            (if kept { None } else { Some(file) }, Saved::default())
        }
        Err(err) => {
            tracing::error!("{err}");
            (None, Saved::default())
        }
    }
}

/// A VSI's (MAC, VLAN) pairs let into the switch, and the network they are on (the
/// controller's profile's; `None`: the one `--switch-network` names for the VLAN).
type Gated = (Vec<(MacAddr, u16)>, Option<String>);

/// A VSI on an S-channel: the channel's SVID and the VSI.
type ChannelVsi = (u16, VsiKey);

/// A saved VSI not asked for again yet: its channel's SCID (its SVID may not be known) and
/// the VSI.
type SavedAt = (u16, VsiKey);

/// A station's VSI as the VMM asked for it.
#[derive(Debug, Clone)]
struct Held {
    /// The VSI of its first request (the engine keeps the VLANs the bridge assigned).
    spec: VsiSpec,
    /// The mode asked for last, or the one a refusal left it in.
    mode: Mode,
    /// A De-Associate is out: no longer saved, so a restart does not bring it back.
    leaving: bool,
}

/// The loop's state.
struct Driver {
    clock: Clock,
    options: Options,
    local_mac: MacAddr,
    port: Port,
    decided_tx: mpsc::Sender<Decided>,
    /// Recent events, newest last, for the status.
    events: VecDeque<Value>,
    /// A bridge's bound VSIs, kept to tell the controller about their end.
    bound: BTreeMap<ChannelVsi, Association>,
    /// A station's VSIs as requested (the engine keeps the assigned VLANs).
    station_vsis: BTreeMap<ChannelVsi, Held>,
    /// A station's saved VSIs waiting for their channel and its EVB peer, to be asked for
    /// again.
    restoring: BTreeMap<SavedAt, SavedVsi>,
    /// A station: the S-channels asked for, by SCID.
    wanted_channels: Vec<u16>,
    /// A station's state file, if it keeps one.
    state: Option<StateFile>,
    /// What the state file was last written with (`None` before the first write): it is
    /// written again whenever [`saved`](Driver::saved) differs.
    written: Option<Saved>,
    /// The last write failed (logged once until one works).
    state_failing: bool,
    /// A bridge's switch gating, if it programs one.
    gating: Option<Gating>,
    /// The switch port to program with the S-channels granted, and the thread that does.
    s_channels: Option<(Programmer, SChannels)>,
    /// The SCID of each channel's SVID, as the CDCP events so far tell (the port's own view
    /// is ahead of the events still to handle).
    scids: BTreeMap<u16, u16>,
    /// The (MAC, VLAN) pairs let into the switch, per associated VSI, and their network.
    gated: BTreeMap<ChannelVsi, Gated>,
    /// The network the controller's profile gave each VSI it accepted.
    networks: BTreeMap<ChannelVsi, String>,
    tx_errors: u64,
}

impl Driver {
    async fn run(
        &mut self,
        socket: &mut AsyncFd<Socket>,
        mut commands: mpsc::Receiver<Command>,
        mut decided: mpsc::Receiver<Decided>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        let mut usr1 =
            signal(SignalKind::user_defined1()).map_err(io_error("cannot watch SIGUSR1"))?;
        let mut bufs: Vec<PacketBuf> = (0..BATCH).map(|_| PacketBuf::new()).collect();
        let mut commands_open = true;
        let mut last_fired: Option<Instant> = None;
        let mut reassert = tokio::time::interval(S_CHANNELS_REASSERT);
        reassert.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            self.flush(&mut socket.get_mut().device);
            let now = self.clock.now();
            // A deadline that handle_timeout left in the past would spin: wait a little.
            let deadline = self.port.poll_timeout().map(|at| match last_fired {
                Some(fired) if at <= fired => now + Duration::from_millis(1),
                _ => at,
            });
            let sleep = tokio::time::sleep_until(deadline.map_or_else(
                || self.clock.to_tokio(now) + Duration::from_secs(3600),
                |at| self.clock.to_tokio(at),
            ));
            tokio::select! {
                () = &mut shutdown => break,
                ready = socket.readable_mut() => {
                    let mut guard = ready.map_err(io_error("waiting for frames"))?;
                    let got = guard
                        .get_inner_mut()
                        .device
                        .recv(&mut bufs)
                        .map_err(io_error("reading frames"))?;
                    if got == 0 {
                        guard.clear_ready();
                    }
                    let now = self.clock.now();
                    for buf in &bufs[..got] {
                        self.port.handle_frame(now, buf.frame());
                    }
                    last_fired = None;
                }
                () = sleep => {
                    let now = self.clock.now();
                    self.port.handle_timeout(now);
                    last_fired = deadline.filter(|&at| at <= now);
                }
                command = commands.recv(), if commands_open => match command {
                    Some(command) => {
                        let mut answer = self.command(&command.request);
                        // Saved before the VMM hears that the request was taken.
                        if let Some(error) = self.persist()
                            && answer.get("ok") == Some(&Value::Bool(true))
                        {
                            answer["warning"] = json!(error);
                        }
                        let _ = command.reply.send(answer);
                        last_fired = None;
                    }
                    None => commands_open = false,
                },
                Some(decision) = decided.recv() => {
                    self.decided(decision);
                    last_fired = None;
                }
                _ = reassert.tick(), if self.s_channels.is_some() => {
                    if let Some((programmer, s_channels)) = &self.s_channels
                        && let Some(request) = s_channels.reassert()
                    {
                        programmer.send(request);
                    }
                }
                _ = usr1.recv() => {
                    tracing::info!(status = %self.status(), "status");
                }
            }
        }
        tracing::info!(iface = %self.options.iface, "stopping");
        self.port.shutdown();
        self.flush(&mut socket.get_mut().device);
        Ok(())
    }

    /// Sends what the engines want sent, handles their events, passes deferred requests on.
    fn flush(&mut self, device: &mut PacketDevice) {
        let now = self.clock.now();
        let mut buf = [0u8; MAX_FRAME_LEN];
        loop {
            while let Some(transmit) = self.port.poll_transmit(now, &mut buf) {
                let frame = PacketBuf::from_frame(&buf[..transmit.len]);
                match device.send(core::slice::from_ref(&frame)) {
                    Ok(sent) if sent.frames == 1 => {}
                    Ok(_) => self.tx_errors += 1,
                    Err(err) => {
                        self.tx_errors += 1;
                        tracing::warn!("cannot send a frame: {err}");
                    }
                }
            }
            // An event can leave frames to send (a channel that came up has its first LLDPDU).
            let mut handled = false;
            while let Some(event) = self.port.poll_event() {
                self.event(now, event);
                handled = true;
            }
            // After the events: a channel's negotiation is logged before what it lets through.
            handled |= self.restore(now);
            if !handled {
                break;
            }
        }
        for (svid, request) in self.port.take_deferred() {
            self.ask(svid, &request.manager_id, &request.vsi);
        }
        self.persist();
    }

    /// Takes what a station saved before its restart: the VSIs to ask for again, on the
    /// channels it asks for (a VSI on another channel could never be restored).
    fn hold_saved(&mut self, saved: Saved) {
        for vsi in saved.vsis {
            if vsi.scid != DEFAULT_SCID && !self.wanted_channels.contains(&vsi.scid) {
                tracing::warn!(
                    vsi = %vsi.spec.key(),
                    "saved on S-channel SCID {}, which is not asked for: dropped",
                    vsi.scid
                );
                continue;
            }
            self.restoring.insert((vsi.scid, vsi.spec.key()), vsi);
        }
    }

    /// Asks the bridge again for each saved VSI whose channel is up with an EVB peer; true
    /// when it asked for any (there are frames to send and events to handle then).
    fn restore(&mut self, now: Instant) -> bool {
        let ready: Vec<(SavedAt, u16)> = self
            .restoring
            .keys()
            .filter_map(|&(scid, key)| {
                let svid = self.port.svid_of(scid)?;
                let evb = self.port.evb(svid)?;
                evb.remote_tlv().is_some().then_some(((scid, key), svid))
            })
            .collect();
        let asked = !ready.is_empty();
        for (at, svid) in ready {
            let Some(saved) = self.restoring.remove(&at) else {
                continue;
            };
            let key = at.1;
            let mut entry = match self.port.request(now, svid, saved.mode, saved.reissue()) {
                Ok(()) => {
                    self.station_vsis.insert(
                        (svid, key),
                        Held {
                            spec: saved.spec,
                            mode: saved.mode,
                            leaving: false,
                        },
                    );
                    obj(json!({
                        "event": "restored",
                        "vsi_id": vsi_id(&key),
                        "mode": text::mode_name(saved.mode),
                    }))
                }
                Err(err) => {
                    tracing::warn!(vsi = %key, "cannot ask for the saved VSI again: {err}");
                    obj(json!({
                        "event": "not_restored",
                        "vsi_id": vsi_id(&key),
                        "error": err.to_string(),
                    }))
                }
            };
            self.add_channel(&mut entry, svid);
            self.log_event(now, entry);
        }
        asked
    }

    /// A station's VSIs and channels as the state file keeps them.
    fn saved(&self) -> Saved {
        let mut vsis: Vec<SavedVsi> = self
            .station_vsis
            .iter()
            .filter(|(_, held)| !held.leaving)
            .filter_map(|(&(svid, key), held)| {
                let scid = self.port.scid_of(svid)?;
                let (filters, _) = self.port.station_vsi(svid, &key)?;
                Some(SavedVsi {
                    scid,
                    mode: held.mode,
                    spec: held.spec.clone(),
                    bound_filters: (*filters != held.spec.filters).then(|| filters.clone()),
                })
            })
            .collect();
        vsis.extend(self.restoring.values().cloned());
        Saved {
            channels: self.wanted_channels.clone(),
            vsis,
        }
    }

    /// Writes the state file if what it should hold changed; the error, if that failed
    /// (logged once until a write works again; the next call tries again).
    fn persist(&mut self) -> Option<String> {
        let file = self.state.as_ref()?;
        let saved = self.saved();
        if self.written.as_ref() == Some(&saved) {
            return None;
        }
        match file.save(&saved) {
            Ok(()) => {
                self.written = Some(saved);
                if self.state_failing {
                    self.state_failing = false;
                    tracing::info!(path = %file.path().display(), "state file written again");
                }
                None
            }
            Err(err) => {
                if !self.state_failing {
                    self.state_failing = true;
                    tracing::error!("{err}");
                }
                Some(err.to_string())
            }
        }
    }

    /// The controller's client for the bridge port channel `svid` is: `IF` for the default
    /// channel, `IF.sSVID` for the others. `None` with a local policy.
    fn client(&self, svid: u16) -> Option<DecideClient> {
        let Decider::Remote(client) = &self.options.decider else {
            return None;
        };
        Some(if svid == DEFAULT_SVID {
            (**client).clone()
        } else {
            client.with_port(&ChannelSpec::table_name(&self.options.iface, svid))
        })
    }

    /// The SCID of the channel on `svid` (0 once it is gone and unknown).
    fn scid(&self, svid: u16) -> u16 {
        self.scids.get(&svid).copied().unwrap_or(0)
    }

    /// Asks the controller about a request deferred on channel `svid`, in a task of its own.
    fn ask(&self, svid: u16, manager_id: &Id16, vsi: &wire::vdp::Vsi) {
        let Some(client) = self.client(svid) else {
            return;
        };
        let request = RequestJson::new(manager_id, vsi);
        let vsi = vsi.clone();
        let key = VsiKey::of(&vsi);
        let tx = self.decided_tx.clone();
        tokio::spawn(async move {
            let (result, network) = match client.decide(&request).await {
                Ok(answer) => {
                    if let Some(reason) = &answer.reason {
                        tracing::info!(vsi = %key, "controller: {} ({reason})", answer.decision);
                    }
                    (
                        decide::decision_of(&vsi, &answer),
                        answer.network().map(str::to_owned),
                    )
                }
                Err(err) => {
                    tracing::warn!(vsi = %key, "no decision from the controller: {err}");
                    (Err(Refusal::new(Reason::VSI_MANAGER_UNREACHABLE)), None)
                }
            };
            let _ = tx
                .send(Decided {
                    svid,
                    key,
                    result,
                    network,
                })
                .await;
        });
    }

    /// Tells the controller, in a task of its own, about a VSI the bridge ended or the station
    /// withdrew.
    fn report_end(&self, svid: u16, association: &Association, cause: DeassociateCause) {
        let Some(client) = self.client(svid) else {
            return;
        };
        let vsi_id = text::vsi_id_text(association.key.id_format, &association.key.id);
        let request = RequestJson::new(
            &association.manager_id,
            &association
                .vsi
                .answer(Mode::Deassociate, wire::vdp::Status::REQUEST),
        );
        tokio::spawn(async move {
            let result = match cause {
                // The station asked: the decision API records a De-Associate (always accepted).
                DeassociateCause::Station => client.decide(&request).await.map(drop),
                DeassociateCause::KeepAliveTimeout => {
                    client
                        .report_state(&vsi_id, "deassociated", "keep-alive timeout")
                        .await
                }
                DeassociateCause::Bridge => {
                    client
                        .report_state(&vsi_id, "deassociated", "de-associated by the bridge")
                        .await
                }
                DeassociateCause::ChannelDown => {
                    client
                        .report_state(&vsi_id, "deassociated", "S-channel down")
                        .await
                }
            };
            if let Err(err) = result {
                tracing::warn!(vsi = vsi_id, "cannot report the de-association: {err}");
            }
        });
    }

    fn decided(&mut self, decision: Decided) {
        let now = self.clock.now();
        let accepted = decision.result.is_ok();
        let at = (decision.svid, decision.key);
        match &decision.network {
            Some(network) if accepted => {
                self.networks.insert(at, network.clone());
            }
            _ => {}
        }
        if let Err(err) = self
            .port
            .decide(now, decision.svid, &decision.key, decision.result)
        {
            // Too late: the bridge already refused (reason 3) after T(RWD), or the channel
            // went down meanwhile.
            tracing::warn!(vsi = %decision.key, svid = decision.svid, "decision not applied: {err}");
            let reason = match err {
                RoleError::UnknownChannel(_) => "S-channel down",
                _ => "decision arrived too late",
            };
            if accepted && let Some(client) = self.client(decision.svid) {
                let vsi_id = text::vsi_id_text(decision.key.id_format, &decision.key.id);
                tokio::spawn(async move {
                    let _ = client.report_state(&vsi_id, "deassociated", reason).await;
                });
            }
        }
    }

    fn log_event(&mut self, now: Instant, mut entry: Map<String, Value>) {
        entry.insert(
            "at".into(),
            json!(Duration::from_micros(now.as_micros()).as_secs_f64()),
        );
        let entry = Value::Object(entry);
        tracing::info!(event = %entry, "evb");
        if self.events.len() == EVENT_LOG {
            self.events.pop_front();
        }
        self.events.push_back(entry);
    }

    fn event(&mut self, now: Instant, event: PortEvent) {
        let entry = match event {
            PortEvent::Evb { svid, event } => {
                let mut entry = match event {
                    evb::lldp::Event::Negotiated(negotiated) => obj(json!({
                        "event": "negotiated",
                        "timing": timing_json(negotiated.timing),
                        "reflective_relay": negotiated.reflective_relay,
                    })),
                    evb::lldp::Event::PeerLost => obj(json!({"event": "peer_lost"})),
                };
                self.add_channel(&mut entry, svid);
                entry
            }
            PortEvent::Bridge { svid, event } => {
                let mut entry = self.bridge_event(svid, event);
                self.add_channel(&mut entry, svid);
                entry
            }
            PortEvent::Station { svid, event } => {
                let mut entry = self.station_event(svid, event);
                self.add_channel(&mut entry, svid);
                entry
            }
            PortEvent::Cdcp(event) => self.cdcp_event(event),
        };
        self.log_event(now, entry);
    }

    /// Names the channel of an event: `scid` and `svid`.
    fn add_channel(&self, entry: &mut Map<String, Value>, svid: u16) {
        entry.insert("scid".into(), json!(self.scid(svid)));
        entry.insert("svid".into(), json!(svid));
    }

    /// Follows the channels, and programs the switch port with them if there is one.
    fn cdcp_event(&mut self, event: evb::cdcp::Event) -> Map<String, Value> {
        if let Some((programmer, s_channels)) = &mut self.s_channels
            && let Some(request) = s_channels.on_event(&event)
        {
            programmer.send(request);
        }
        match event {
            evb::cdcp::Event::ChannelUp { scid, svid } => {
                self.scids.insert(svid, scid);
                obj(json!({"event": "channel_up", "scid": scid, "svid": svid}))
            }
            evb::cdcp::Event::ChannelDown { scid, svid } => {
                if self.scids.get(&svid) == Some(&scid) {
                    self.scids.remove(&svid);
                }
                obj(json!({"event": "channel_down", "scid": scid, "svid": svid}))
            }
            evb::cdcp::Event::PeerLost => obj(json!({"event": "cdcp_peer_lost"})),
        }
    }

    fn bridge_event(&mut self, svid: u16, event: BridgeEvent) -> Map<String, Value> {
        match event {
            BridgeEvent::PreAssociated { key, vsi, .. }
            | BridgeEvent::Associated { key, vsi, .. } => {
                // Only an association opens the gate; a pre-association (or a step back to
                // one) has no traffic yet.
                let pairs = if vsi.mode == Mode::Associate {
                    SwitchGlue::pairs(&vsi.filters)
                } else {
                    Vec::new()
                };
                self.gate(svid, key, pairs);
                if let Some(association) = self
                    .port
                    .associations(svid)
                    .into_iter()
                    .find(|a| a.key == key)
                {
                    self.bound.insert((svid, key), association);
                }
                obj(json!({
                    "event": text::state_name(vsi.mode),
                    "vsi_id": vsi_id(&key),
                    "type_id": vsi.type_id,
                    "type_version": vsi.type_version,
                    "filters": text::filters_to_json(&vsi.filters),
                }))
            }
            BridgeEvent::Deassociated { key, cause } => {
                self.gate(svid, key, Vec::new());
                self.networks.remove(&(svid, key));
                if let Some(association) = self.bound.remove(&(svid, key)) {
                    self.report_end(svid, &association, cause);
                }
                obj(json!({
                    "event": "deassociated",
                    "vsi_id": vsi_id(&key),
                    "cause": cause_name(cause),
                }))
            }
            BridgeEvent::Refused { key, refusal, kept } => obj(json!({
                "event": "refused",
                "vsi_id": vsi_id(&key),
                "reason": refusal.reason.0,
                "reason_name": refusal.reason.name(),
                "kept": kept.map(text::state_name),
            })),
        }
    }

    /// Makes `pairs` the gated (MAC, VLAN)s in the switch of a VSI on channel `svid`: what it
    /// no longer has is shut out first, then what it has is let in (again: the switch takes
    /// repeats). The logical switch is the network the controller's profile named, if it
    /// named one.
    fn gate(&mut self, svid: u16, key: VsiKey, pairs: Vec<(MacAddr, u16)>) {
        let Some(gating) = &self.gating else {
            return;
        };
        let network = self.networks.get(&(svid, key)).cloned();
        let (old, old_network) = self.gated.remove(&(svid, key)).unwrap_or_default();
        let moved = old_network != network;
        for &(mac, vlan) in old.iter().filter(|pair| moved || !pairs.contains(pair)) {
            gating.deassociate(svid, mac, vlan);
        }
        for &(mac, vlan) in &pairs {
            gating.associate(svid, mac, vlan, network.as_deref());
        }
        if !pairs.is_empty() {
            self.gated.insert((svid, key), (pairs, network));
        }
    }

    fn station_event(&mut self, svid: u16, event: StationEvent) -> Map<String, Value> {
        match event {
            StationEvent::PreAssociated {
                key,
                filters,
                reserved,
            } => obj(json!({
                "event": if reserved { "preassociated_rr" } else { "preassociated" },
                "vsi_id": vsi_id(&key),
                "filters": text::filters_to_json(&filters),
            })),
            StationEvent::Associated { key, filters } => obj(json!({
                "event": "associated",
                "vsi_id": vsi_id(&key),
                "filters": text::filters_to_json(&filters),
            })),
            StationEvent::Deassociated { key, cause } => {
                self.station_vsis.remove(&(svid, key));
                obj(json!({
                    "event": "deassociated",
                    "vsi_id": vsi_id(&key),
                    "cause": cause_name(cause),
                }))
            }
            StationEvent::Refused {
                key,
                reason,
                hard,
                kept,
            } => {
                match kept {
                    None => {
                        self.station_vsis.remove(&(svid, key));
                    }
                    // Asked again after a restart, the refused mode would be refused again
                    // and the VSI dropped; the one it stays in is taken as it is.
                    Some(mode) => {
                        if let Some(held) = self.station_vsis.get_mut(&(svid, key)) {
                            held.mode = mode;
                        }
                    }
                }
                obj(json!({
                    "event": "refused",
                    "vsi_id": vsi_id(&key),
                    "reason": reason.0,
                    "reason_name": reason.name(),
                    "hard": hard,
                    "kept": kept.map(text::state_name),
                }))
            }
            StationEvent::TimedOut { key } => {
                self.station_vsis.remove(&(svid, key));
                obj(json!({"event": "timed_out", "vsi_id": vsi_id(&key)}))
            }
        }
    }

    /// Runs one control request.
    fn command(&mut self, request: &Value) -> Value {
        match self.try_command(request) {
            Ok(answer) => answer,
            Err(message) => json!({"error": message}),
        }
    }

    fn try_command(&mut self, request: &Value) -> Result<Value, String> {
        let op = request
            .get("op")
            .and_then(Value::as_str)
            .ok_or("a request needs \"op\"")?;
        let now = self.clock.now();
        match op {
            "status" => Ok(json!({"ok": true, "status": self.status()})),
            "deassociate" => {
                let key = VsiKey {
                    id_format: VsiIdFormat::UUID,
                    id: text::vsi_id_from_text(text::str_field(request, "vsi_id")?)
                        .map_err(|e| e.to_string())?,
                };
                let scid = scid_field(request)?;
                if self.forget_restoring(scid, &key) {
                    return Ok(json!({"ok": true, "note": "not asked for again since the \
                        restart: forgotten, the bridge ends it at its keep-alive timeout"}));
                }
                // Without an SCID: the channel that has the VSI (the default one if none).
                let svid = match scid {
                    Some(scid) => self.granted_svid(scid)?,
                    None => self.port.vsi_channel(&key).unwrap_or(DEFAULT_SVID),
                };
                self.port
                    .deassociate(now, svid, &key)
                    .map_err(|e| e.to_string())?;
                if let Some(held) = self.station_vsis.get_mut(&(svid, key)) {
                    held.leaving = true;
                }
                Ok(json!({"ok": true}))
            }
            "channels" => {
                let scids: Vec<u16> = request
                    .get("scids")
                    .and_then(Value::as_array)
                    .ok_or("\"scids\": a list of numbers")?
                    .iter()
                    .map(|v| v.as_u64().and_then(|n| u16::try_from(n).ok()))
                    .collect::<Option<_>>()
                    .ok_or("\"scids\": a list of numbers")?;
                self.port.set_channels(&scids).map_err(|e| e.to_string())?;
                // Saved VSIs of a channel no longer wanted go, as its held ones do.
                self.restoring
                    .retain(|&(scid, _), _| scid == DEFAULT_SCID || scids.contains(&scid));
                self.wanted_channels = scids;
                Ok(json!({"ok": true}))
            }
            other => {
                let mode = text::mode_from_name(other)
                    .filter(|&mode| mode != Mode::Deassociate)
                    .ok_or_else(|| format!("unknown op {other:?}"))?;
                let spec = text::vsi_spec(request)?;
                let scid = scid_field(request)?.unwrap_or(DEFAULT_SCID);
                let svid = self.granted_svid(scid)?;
                let key = spec.key();
                self.port
                    .request(now, svid, mode, spec.clone())
                    .map_err(|e| e.to_string())?;
                // The VMM's request takes the place of a saved one not asked for yet.
                self.forget_restoring(Some(scid), &key);
                self.station_vsis
                    .entry((svid, key))
                    .and_modify(|held| held.mode = mode)
                    .or_insert(Held {
                        spec,
                        mode,
                        leaving: false,
                    });
                Ok(json!({"ok": true}))
            }
        }
    }

    /// Forgets a saved VSI not asked for again yet, on channel `scid` (any channel when
    /// `None`); true when there was one.
    fn forget_restoring(&mut self, scid: Option<u16>, key: &VsiKey) -> bool {
        let before = self.restoring.len();
        self.restoring
            .retain(|&(on, saved), _| saved != *key || scid.is_some_and(|scid| scid != on));
        self.restoring.len() != before
    }

    /// The SVID of S-channel `scid`, if the port has it up.
    fn granted_svid(&self, scid: u16) -> Result<u16, String> {
        self.port
            .svid_of(scid)
            .ok_or_else(|| format!("S-channel SCID {scid} is not granted"))
    }

    /// The status: negotiated values, VSIs, channels, counters, recent events. The top-level
    /// `evb` and `counters` are the default channel's (and the port's); each entry of
    /// `channels` has its own channel's.
    fn status(&self) -> Value {
        let mut vsis: Vec<Value> = Vec::new();
        for svid in self.port.svids() {
            let scid = self.port.scid_of(svid).unwrap_or(0);
            match self.port.role() {
                Role::Bridge => vsis.extend(self.port.associations(svid).iter().map(|a| {
                    json!({
                        "vsi_id": vsi_id(&a.key),
                        "id_format": a.key.id_format.0,
                        "scid": scid,
                        "svid": svid,
                        "state": text::state_name(a.mode),
                        "manager_id": text::manager_id_text(&a.manager_id),
                        "type_id": a.vsi.type_id,
                        "type_version": a.vsi.type_version,
                        "filters": text::filters_to_json(&a.vsi.filters),
                    })
                })),
                Role::Station => vsis.extend(
                    self.station_vsis
                        .iter()
                        .filter(|((on, _), _)| *on == svid)
                        .filter_map(|((_, key), held)| {
                            let (filters, mode) = self.port.station_vsi(svid, key)?;
                            let spec = &held.spec;
                            Some(json!({
                                "vsi_id": vsi_id(key),
                                "id_format": key.id_format.0,
                                "scid": scid,
                                "svid": svid,
                                "state": mode.map_or("pending", text::state_name),
                                "manager_id": text::manager_id_text(&spec.manager_id),
                                "type_id": spec.type_id,
                                "type_version": spec.type_version,
                                "filters": text::filters_to_json(filters),
                            }))
                        }),
                ),
            }
        }
        // Saved VSIs not asked for again yet: their channel may not be up.
        vsis.extend(self.restoring.values().map(|saved| {
            let key = saved.spec.key();
            json!({
                "vsi_id": vsi_id(&key),
                "id_format": key.id_format.0,
                "scid": saved.scid,
                "svid": self.port.svid_of(saved.scid),
                "state": "restoring",
                "mode": text::mode_name(saved.mode),
                "manager_id": text::manager_id_text(&saved.spec.manager_id),
                "type_id": saved.spec.type_id,
                "type_version": saved.spec.type_version,
                "filters": text::filters_to_json(&saved.reissue().filters),
            })
        }));
        let channels = self.port.channels().map(|channels| {
            channels
                .iter()
                .map(|(&scid, &svid)| {
                    let mut entry = json!({"scid": scid, "svid": svid});
                    // The channel's own EVB TLV exchange, once its engines run.
                    if self.port.scid_of(svid) == Some(scid) {
                        entry["evb"] = self.evb_json(svid);
                        entry["counters"] = counters_json(self.port.engine_counters(svid));
                    }
                    entry
                })
                .collect::<Vec<_>>()
        });
        let mut engines = self.port.engine_counters(DEFAULT_SVID);
        engines.extend(self.port.cdcp_counters().map(|cdcp| ("cdcp", cdcp)));
        let mut counters = counters_json(engines);
        let own = self.port.counters();
        counters["port"] = json!({
            "rx_frames": own.rx_frames,
            "not_for_us": own.not_for_us,
            "truncated": own.truncated,
            "unknown_channel": own.unknown_channel,
            "tx_errors": self.tx_errors,
        });
        let mut status = json!({
            "role": role_name(self.options.role),
            "iface": self.options.iface,
            "mac": self.local_mac.to_string(),
            "evb": self.evb_json(DEFAULT_SVID),
            "vsis": vsis,
            "channels": channels,
            "counters": counters,
            "events": self.events,
        });
        if let Some(file) = &self.state {
            status["state_file"] = json!({
                "path": file.path().display().to_string(),
                "saved": self.written.as_ref() == Some(&self.saved()),
            });
        }
        status
    }

    /// A channel's EVB TLV exchange: whether a peer is there, both TLVs, what they settled.
    fn evb_json(&self, svid: u16) -> Value {
        let Some(evb) = self.port.evb(svid) else {
            return Value::Null;
        };
        let negotiated = evb.negotiated();
        json!({
            "peer": evb.remote_tlv().is_some(),
            "local_tlv": evb.local_tlv().to_string(),
            "remote_tlv": evb.remote_tlv().map(|tlv| tlv.to_string()),
            "timing": timing_json(negotiated.timing),
            "reflective_relay": negotiated.reflective_relay,
        })
    }
}

/// Engines' counters as `{engine: {counter: count}}`.
fn counters_json(engines: Vec<(&'static str, evb::Counters)>) -> Value {
    let mut all = Map::new();
    for (engine, values) in engines {
        let values: Map<String, Value> = values
            .iter()
            .map(|(counter, count)| (counter.as_str().to_owned(), json!(count)))
            .collect();
        all.insert(engine.into(), Value::Object(values));
    }
    Value::Object(all)
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn vsi_id(key: &VsiKey) -> String {
    text::vsi_id_text(key.id_format, &key.id)
}

const fn role_name(role: Role) -> &'static str {
    match role {
        Role::Bridge => "bridge",
        Role::Station => "station",
    }
}

const fn cause_name(cause: DeassociateCause) -> &'static str {
    match cause {
        DeassociateCause::Station => "station",
        DeassociateCause::Bridge => "bridge",
        DeassociateCause::KeepAliveTimeout => "keep-alive timeout",
        DeassociateCause::ChannelDown => "channel down",
    }
}

fn timing_json(timing: Timing) -> Value {
    json!({"r": timing.max_retries, "rte": timing.rte, "rwd": timing.rwd, "rka": timing.rka})
}

/// The optional `"scid"` of a request.
fn scid_field(request: &Value) -> Result<Option<u16>, String> {
    match request.get("scid") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n >= DEFAULT_SCID)
            .map(Some)
            .ok_or_else(|| "\"scid\": an S-channel ID, 1-4095".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_scid_is_optional_and_checked() {
        assert_eq!(scid_field(&json!({"op": "associate"})), Ok(None));
        assert_eq!(scid_field(&json!({"scid": null})), Ok(None));
        assert_eq!(scid_field(&json!({"scid": 2})), Ok(Some(2)));
        for bad in [json!(0), json!(-1), json!("2"), json!(65_536)] {
            assert!(scid_field(&json!({"scid": bad})).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_interface_names_are_checked() {
        assert!(interface_mac("../etc").is_err());
        assert!(interface_mac("").is_err());
        assert!(interface_mac("no-such-interface-x").is_err());
    }
}
