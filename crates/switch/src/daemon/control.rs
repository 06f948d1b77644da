//! The control protocol: one JSON request per line on a Unix stream socket, one JSON response
//! per line.
//!
//! Requests are objects with an `op`:
//!
//! | op | fields | result |
//! |---|---|---|
//! | `add_switch` | `switch`: a switch as in the file | `{changed, generation}` |
//! | `remove_switch` | `name` | `{changed, generation}` |
//! | `add_port` | `port`: a port as in the file | `{changed, generation}` |
//! | `remove_port` | `name` | `{changed, generation}` |
//! | `add_record` | `record`: a record as in the file | `{changed, generation}` |
//! | `remove_record` | `switch`, and `mac` or `ip` or both | `{changed, generation}` |
//! | `set_flood` | `switch`, `flood`: list of IPs | `{changed, generation}` |
//! | `replace` | `config`: the whole configuration in the shape `list` returns | `{changed, generation}` |
//! | `associate_vsi` | `vsi`: a VSI as in the file (`port`, `mac`, `vlan`, `switch`) | `{changed, generation}` |
//! | `deassociate_vsi` | `port`, `mac`, and optionally `vlan` (otherwise every VLAN) | `{changed, generation}` |
//! | `set_s_channels` | `port`, `s_channels`: the port's whole list as in the file (a station port's `{svid, reflective_relay}`, an uplink's `{svid, physical_network, relay}`) | `{changed, generation}` |
//! | `list` | | the whole configuration in the file's shape |
//! | `status` | | `{ports: [{name, type, up, reason?}]}` |
//! | `counters` | | `{ports: [{name, rx_/tx_packets, rx_/tx_bytes, rx_/tx_errors}], drops: {reason: n}, dhcp: {offers, acks, naks, releases, declines, ignored, malformed}}` |
//! | `macs` | | `[{switch, mac, location: port/uplink/remote, and that key's value, age_ms}]` |
//!
//! Responses are `{"ok":true,"result":...}` or `{"ok":false,"error":"field: reason"}`.
//!
//! A change builds the whole new configuration and its [`Tables`]; if that fails, nothing
//! changed. Otherwise new ports' devices are opened and handed to the forwarding thread, the
//! tables are swapped in, and removed ports' devices are closed, in that order, so no frame is
//! ever sent to a port without a device. Adding what is already there, identically, changes
//! nothing and succeeds (an agent that restarts can replay its state); adding something
//! different under a name in use fails.
//!
//! `replace` is how an agent programs the switch: it sends everything it wants and the switch
//! works out the difference by port name. A port whose device is unchanged
//! ([`PortSpec::same_device`]: same name, type and device fields) keeps its open device and
//! only takes its new VM side with the swapped tables, so its traffic never stops (a trunk's
//! subports are VM side: adding or removing one keeps the device, and the traffic on the
//! parent and the other subports goes on); a port that
//! is new or whose device changed is opened, one that is gone is closed. A TAP whose device
//! changed is closed before its new one is created (the kernel allows one netdev of a name),
//! and so is a VXLAN port reopened on the same address and UDP port (with another
//! `source_ports`), so they alone see a short gap. What was learned on logical switches whose
//! name and segment stay is kept.
//!
//! An agent and EVB daemons may share one switch: the agent owns the configuration through
//! `replace`, the EVB daemons own the VSIs (`associate_vsi`) and S-channels
//! (`set_s_channels`). So `replace` keeps what it does not list: the current VSIs when the new
//! configuration has no `vsi` key at all, and a port's current S-channels when the new
//! configuration has the port (same name and type, station or uplink) without an
//! `s_channels` key. A kept entry that no longer fits (its channel, port or switch is gone,
//! its physical network is served by another uplink now, it clashes with what the request
//! lists) is dropped, never an error. An empty list (`"vsi": []`, `"s_channels": []`) is a
//! list: it replaces. S-channels are not the device, so a port that keeps its device keeps it
//! whatever happens to its channels.
//!
//! `set_s_channels` replaces the S-channels of an existing station port (bridge ports, each
//! with its reflective relay) or uplink (each an edge relay serving a physical network) with
//! the list given, as CDCP agreed them; the port keeps its open device. The VSIs of a bridge
//! channel that goes go with it. The same list again changes nothing and succeeds.
//!
//! `associate_vsi` and `deassociate_vsi` are how an EVB bridge daemon gates its S-channels
//! (802.1Qbg VDP): associating a VSI that is already there unchanged, or de-associating one
//! that is not there, changes nothing and succeeds, so the daemon can repeat itself after a
//! restart or a lost answer. Associating the same (channel, MAC, VLAN) on another switch moves
//! it (a new profile); associating its MAC on another channel of the same switch moves it there
//! (a migrated VSI), so the old channel's late De-Associate finds nothing.
//!
//! `status`: `up` is true while the port's device is open and working; `reason` says why not
//! (no device, or the device failed: a TAP whose netdev was destroyed, for instance when the
//! namespace it was moved into is deleted). A failed port stays configured, and down, until a
//! `replace` or `remove_port` drops or reopens it.

use core::{net::IpAddr, time::Duration};
use std::{
    collections::HashMap,
    io::{self, BufRead, BufReader, Read, Write},
    os::{fd::AsFd, unix::net::UnixStream},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, SyncSender},
    },
    thread::JoinHandle,
};

use arc_swap::ArcSwap;
use serde_json::{Map, Value, json};
use wire::MacAddr;

use super::{
    config::{
        ChannelSpec, PortSpec, PortType, RecordSpec, SwitchConfig, SwitchSpec, UplinkChannelSpec,
        VsiSpec,
    },
    devices,
    fields::{self, Object, invalid},
    forward::{Command, MacEntry, MacLocation, Mailbox},
};
use crate::{
    device::memory::MemoryPeer,
    dhcp,
    pipeline::DropReason,
    switch::DeviceStatus,
    tables::{ConfigError, Tables},
};

/// The longest request line accepted: a `replace` carries a host's whole configuration (an
/// agent with 10,000 ports on one network sends about 0.8 MB).
pub const MAX_REQUEST: usize = 64 << 20;
/// The most clients connected at once; more are answered with an error and closed.
pub const MAX_CLIENTS: usize = 64;
/// How long the forwarding thread may take to answer a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a connected client's thread looks up from reading to see if the daemon stops.
const CLIENT_TICK: Duration = Duration::from_millis(100);
/// How long a response may wait on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The operations, as `op` spells them.
pub const OPS: &[&str] = &[
    "add_switch",
    "remove_switch",
    "add_port",
    "remove_port",
    "add_record",
    "remove_record",
    "set_flood",
    "replace",
    "associate_vsi",
    "deassociate_vsi",
    "set_s_channels",
    "list",
    "status",
    "counters",
    "macs",
];

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add a logical switch.
    AddSwitch(SwitchSpec),
    /// Remove a logical switch that no port or record uses.
    RemoveSwitch {
        /// Its name.
        name: String,
    },
    /// Add a port, opening its device.
    AddPort(PortSpec),
    /// Remove a port, closing its device.
    RemovePort {
        /// Its name.
        name: String,
    },
    /// Add a lookup record.
    AddRecord(RecordSpec),
    /// Remove the records of a switch that match `mac` and `ip` (at least one given).
    RemoveRecord {
        /// The logical switch.
        switch: String,
        /// Only records for this MAC.
        mac: Option<MacAddr>,
        /// Only the record for this IP.
        ip: Option<IpAddr>,
    },
    /// Replace a switch's flood list.
    SetFlood {
        /// The logical switch.
        switch: String,
        /// The remote endpoints.
        flood: Vec<IpAddr>,
    },
    /// Replace the whole configuration, keeping the EVB daemons' state it does not list.
    Replace {
        /// The new configuration.
        config: SwitchConfig,
        /// What the request left out, which the switch keeps from its current configuration.
        unlisted: Unlisted,
    },
    /// Associate a VSI on an S-channel (its frames may enter, on its switch).
    AssociateVsi(VsiSpec),
    /// De-associate the VSIs of a channel with this MAC (and VLAN, if given).
    DeassociateVsi {
        /// The S-channel, `PORT.sSVID`.
        port: String,
        /// The VSI's MAC.
        mac: MacAddr,
        /// Only this C-VLAN.
        vlan: Option<u16>,
    },
    /// Replace the S-channels of a station port or an uplink, keeping its device.
    SetSChannels {
        /// The port.
        port: String,
        /// Its new S-channels, the whole list.
        channels: SChannels,
    },
    /// The whole configuration.
    List,
    /// Whether each port's device is open and working.
    Status,
    /// Per-port packet and byte counts, and drops by reason.
    Counters,
    /// The learned MAC addresses.
    Macs,
}

/// The S-channels `set_s_channels` gives a port, of the kind its type has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SChannels {
    /// A station-facing port's: bridge ports (802.1Qbg bridge side).
    Bridge(Vec<ChannelSpec>),
    /// An uplink's: edge relays, each serving a physical network (802.1Qbg station side).
    Uplink(Vec<UplinkChannelSpec>),
}

impl SChannels {
    /// Reads the list at `field`: an uplink's if any entry has a `physical_network` or a
    /// `relay`, else a station port's (an empty list is either: no channels).
    fn read(field: &str, value: &Value) -> Result<Self, ConfigError> {
        let uplink = value.as_array().is_some_and(|items| {
            items
                .iter()
                .any(|item| item.get("physical_network").is_some() || item.get("relay").is_some())
        });
        if uplink {
            fields::list(field, value, UplinkChannelSpec::read).map(Self::Uplink)
        } else {
            fields::list(field, value, ChannelSpec::read).map(Self::Bridge)
        }
    }

    /// The list as the file writes it.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Bridge(channels) => channels.iter().map(ChannelSpec::to_value).collect(),
            Self::Uplink(channels) => channels.iter().map(UplinkChannelSpec::to_value).collect(),
        }
    }
}

/// What a `replace` request leaves out: the EVB daemons' state, which the switch keeps (see
/// the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unlisted {
    /// The request has no `vsi` list: the current VSIs stay, those that still fit.
    pub vsis: bool,
    /// Station and uplink ports the request lists without `s_channels`: each that is there
    /// already, with the same type, keeps its current S-channels.
    pub s_channels: Vec<String>,
}

impl Unlisted {
    /// What the configuration `value`, in the file's shape, leaves out.
    pub fn of(value: &Value) -> Self {
        let absent = |object: &Value, key: &str| object.get(key).is_none_or(Value::is_null);
        let s_channels = value
            .get("port")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .filter(|port| {
                        matches!(
                            port.get("type").and_then(Value::as_str),
                            Some("station" | "uplink")
                        ) && absent(port, "s_channels")
                    })
                    .filter_map(|port| port.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            vsis: absent(value, "vsi"),
            s_channels,
        }
    }

    /// `config` in the file's shape, leaving out what this says is left out, and listing
    /// every other part (an empty `vsi` list too).
    fn shape(&self, config: &SwitchConfig) -> Value {
        let mut value = config.to_value();
        let Value::Object(map) = &mut value else {
            return value;
        };
        if self.vsis && config.vsis.is_empty() {
            map.remove("vsi");
        } else {
            map.entry("vsi").or_insert_with(|| json!([]));
        }
        if let Some(Value::Array(ports)) = map.get_mut("port") {
            for port in ports {
                let unlisted = port
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| self.s_channels.iter().any(|n| n == name));
                if unlisted && let Value::Object(port) = port {
                    port.remove("s_channels");
                }
            }
        }
        value
    }
}

impl Request {
    /// Reads one request line.
    pub fn parse(line: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(line)
            .map_err(|err| invalid("request", format!("not valid JSON: {err}")))?;
        Self::from_value(&value)
    }

    /// Reads a request from its JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        if !value.is_object() {
            return Err(invalid(
                "request",
                format!(
                    "expected an object like {{\"op\": \"list\"}}, got {}",
                    fields::describe(value)
                ),
            ));
        }
        let mut object = Object::new("", value)?;
        let op = object.required("op", fields::string)?;
        let request = match op {
            "add_switch" => Self::AddSwitch(object.required("switch", SwitchSpec::read)?),
            "remove_switch" => Self::RemoveSwitch {
                name: object.required("name", fields::name)?,
            },
            "add_port" => Self::AddPort(object.required("port", PortSpec::read)?),
            "remove_port" => Self::RemovePort {
                name: object.required("name", fields::name)?,
            },
            "add_record" => Self::AddRecord(object.required("record", RecordSpec::read)?),
            // Checked once merged with what it keeps: its VSIs may be on kept channels.
            "replace" => object.required("config", |_, value| {
                Ok(Self::Replace {
                    config: SwitchConfig::read_fields(value)?,
                    unlisted: Unlisted::of(value),
                })
            })?,
            "status" => Self::Status,
            "associate_vsi" => Self::AssociateVsi(object.required("vsi", VsiSpec::read)?),
            "deassociate_vsi" => Self::DeassociateVsi {
                port: object.required("port", fields::name)?,
                mac: object.required("mac", fields::unicast_mac)?,
                vlan: object.optional("vlan", fields::integer::<u16>)?,
            },
            "remove_record" => {
                let switch = object.required("switch", fields::name)?;
                let mac = object.optional("mac", fields::mac)?;
                let ip = object.optional("ip", fields::ip)?;
                if mac.is_none() && ip.is_none() {
                    return Err(invalid("mac", "give the record's mac or ip (or both)"));
                }
                Self::RemoveRecord { switch, mac, ip }
            }
            "set_s_channels" => Self::SetSChannels {
                port: object.required("port", fields::name)?,
                channels: object.required("s_channels", SChannels::read)?,
            },
            "set_flood" => Self::SetFlood {
                switch: object.required("switch", fields::name)?,
                flood: object.required("flood", |f, v| fields::list(f, v, fields::ip))?,
            },
            "list" => Self::List,
            "counters" => Self::Counters,
            "macs" => Self::Macs,
            other => {
                return Err(invalid(
                    "op",
                    format!(
                        "unknown operation {other:?}; expected one of {}",
                        OPS.join(", ")
                    ),
                ));
            }
        };
        object.finish()?;
        Ok(request)
    }

    /// The request as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Self::AddSwitch(switch) => json!({"op": "add_switch", "switch": switch.to_value()}),
            Self::RemoveSwitch { name } => json!({"op": "remove_switch", "name": name}),
            Self::AddPort(port) => json!({"op": "add_port", "port": port.to_value()}),
            Self::RemovePort { name } => json!({"op": "remove_port", "name": name}),
            Self::AddRecord(record) => json!({"op": "add_record", "record": record.to_value()}),
            Self::RemoveRecord { switch, mac, ip } => {
                let mut map = Map::new();
                map.insert("op".into(), json!("remove_record"));
                map.insert("switch".into(), json!(switch));
                if let Some(mac) = mac {
                    map.insert("mac".into(), json!(mac.to_string()));
                }
                if let Some(ip) = ip {
                    map.insert("ip".into(), json!(ip.to_string()));
                }
                Value::Object(map)
            }
            Self::SetFlood { switch, flood } => json!({
                "op": "set_flood",
                "switch": switch,
                "flood": flood.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            Self::Replace { config, unlisted } => {
                json!({"op": "replace", "config": unlisted.shape(config)})
            }
            Self::SetSChannels { port, channels } => json!({
                "op": "set_s_channels",
                "port": port,
                "s_channels": channels.to_value(),
            }),
            Self::AssociateVsi(vsi) => json!({"op": "associate_vsi", "vsi": vsi.to_value()}),
            Self::DeassociateVsi { port, mac, vlan } => {
                let mut map = Map::new();
                map.insert("op".into(), json!("deassociate_vsi"));
                map.insert("port".into(), json!(port));
                map.insert("mac".into(), json!(mac.to_string()));
                if let Some(vlan) = vlan {
                    map.insert("vlan".into(), json!(vlan));
                }
                Value::Object(map)
            }
            Self::List => json!({"op": "list"}),
            Self::Status => json!({"op": "status"}),
            Self::Counters => json!({"op": "counters"}),
            Self::Macs => json!({"op": "macs"}),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request, or the configuration it would make, is invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A port's device could not be opened.
    #[error("port {port:?}: {source}")]
    Device {
        /// The port.
        port: String,
        /// What failed.
        source: io::Error,
    },
    /// The forwarding thread does not answer (it stopped).
    #[error("forwarding: the forwarding thread is not running")]
    Stopped,
}

/// The response line for a result.
pub fn response(result: &Result<Value, ControlError>) -> Value {
    match result {
        Ok(value) => json!({"ok": true, "result": value}),
        Err(err) => json!({"ok": false, "error": err.to_string()}),
    }
}

struct State {
    config: SwitchConfig,
    generation: u64,
}

/// The control side of the daemon: the configuration by name, and the one lock that
/// serializes changes to it (never taken by the forwarding thread).
pub(crate) struct Control {
    state: Mutex<State>,
    tables: Arc<ArcSwap<Tables>>,
    forward: Mailbox,
    peers: Mutex<HashMap<String, MemoryPeer>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only if another client's request panicked; a change replaces the state whole
    // at its end, so what is there is still one consistent configuration.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Control {
    /// Control over an empty configuration whose tables (generation 0) are in `tables`.
    pub(crate) fn new(tables: Arc<ArcSwap<Tables>>, forward: Mailbox) -> Self {
        Self {
            state: Mutex::new(State {
                config: SwitchConfig::default(),
                generation: tables.load().generation(),
            }),
            tables,
            forward,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The current configuration.
    pub(crate) fn config(&self) -> SwitchConfig {
        lock(&self.state).config.clone()
    }

    /// The far end of memory port `name`.
    pub(crate) fn memory_peer(&self, name: &str) -> Option<MemoryPeer> {
        lock(&self.peers).get(name).cloned()
    }

    /// Replaces the whole configuration with `config` (at start, and the `replace` op),
    /// keeping what `unlisted` says it leaves out where that still fits.
    pub(crate) fn replace(
        &self,
        mut config: SwitchConfig,
        unlisted: &Unlisted,
    ) -> Result<Value, ControlError> {
        let mut state = lock(&self.state);
        let kept_vsis = keep_unlisted(&state.config, &mut config, unlisted);
        let changed = state.config != config;
        if changed {
            let generation = state.generation + 1;
            // A kept VSI the tables refuse (its MAC is a port's on the new configuration,
            // say) goes; the request's own errors are the request's.
            let tables = loop {
                match config.tables(generation) {
                    Ok(tables) => break tables,
                    Err(err) => {
                        match vsi_named(&err).filter(|&i| kept_vsis && i < config.vsis.len()) {
                            Some(index) => {
                                config.vsis.remove(index);
                            }
                            None => return Err(err.into()),
                        }
                    }
                }
            };
            self.apply_built(&mut state, config, tables)?;
        }
        Ok(json!({"changed": changed, "generation": state.generation}))
    }

    /// Answers one request line.
    pub(crate) fn handle_line(&self, line: &str) -> Value {
        let result = Request::parse(line)
            .map_err(ControlError::from)
            .and_then(|request| self.execute(request));
        response(&result)
    }

    /// Executes a request.
    pub(crate) fn execute(&self, request: Request) -> Result<Value, ControlError> {
        match request {
            Request::List => Ok(lock(&self.state).config.to_value()),
            Request::Replace { config, unlisted } => self.replace(config, &unlisted),
            Request::SetSChannels { port, channels } => {
                self.mutate(|config| set_s_channels(config, &port, channels))
            }
            Request::Status => self.status(),
            Request::Counters => self.counters(),
            Request::Macs => self.macs(),
            Request::AddSwitch(switch) => self.mutate(|config| {
                if let Some(existing) = config.switch(&switch.name) {
                    return same_or_taken(existing == &switch, "switch", &switch.name);
                }
                config.switches.push(switch);
                Ok(true)
            }),
            Request::RemoveSwitch { name } => self.mutate(|config| {
                let Some(index) = config.switches.iter().position(|s| s.name == name) else {
                    return Err(invalid("name", format!("no switch named {name:?}")));
                };
                // A subport on it counts too (it is named `PORT.VLAN` here).
                let port = config.vm_sides().find(|(_, vm)| vm.switch == name);
                if let Some((port, _)) = port {
                    return Err(invalid(
                        "name",
                        format!("switch {name:?} still has port {port:?}; remove that first"),
                    ));
                }
                let records = config.records.iter().filter(|r| r.switch == name).count();
                if records > 0 {
                    return Err(invalid(
                        "name",
                        format!("switch {name:?} still has {records} records; remove them first"),
                    ));
                }
                config.switches.remove(index);
                Ok(true)
            }),
            Request::AddPort(port) => self.mutate(|config| {
                if let Some(existing) = config.port(&port.name) {
                    return same_or_taken(existing == &port, "port", &port.name);
                }
                config.ports.push(port);
                Ok(true)
            }),
            Request::RemovePort { name } => self.mutate(|config| {
                let Some(index) = config.ports.iter().position(|p| p.name == name) else {
                    return Err(invalid("name", format!("no port named {name:?}")));
                };
                config.ports.remove(index);
                Ok(true)
            }),
            Request::AddRecord(record) => self.mutate(|config| {
                if config.records.contains(&record) {
                    return Ok(false);
                }
                config.check_record(&record, "record", &config.records)?;
                config.records.push(record);
                Ok(true)
            }),
            Request::RemoveRecord { switch, mac, ip } => self.mutate(|config| {
                if config.switch(&switch).is_none() {
                    return Err(invalid("switch", format!("no switch named {switch:?}")));
                }
                let before = config.records.len();
                config.records.retain(|r| {
                    !(r.switch == switch
                        && mac.is_none_or(|mac| r.mac == mac)
                        && ip.is_none_or(|ip| r.ip == ip))
                });
                if config.records.len() == before {
                    let (field, what) = match (mac, ip) {
                        (Some(mac), Some(ip)) => ("mac", format!("{mac} at {ip}")),
                        (Some(mac), None) => ("mac", mac.to_string()),
                        (None, Some(ip)) => ("ip", ip.to_string()),
                        (None, None) => ("mac", "anything".to_owned()),
                    };
                    return Err(invalid(
                        field,
                        format!("switch {switch:?} has no record for {what}"),
                    ));
                }
                Ok(true)
            }),
            Request::AssociateVsi(vsi) => self.mutate(|config| {
                config.check_vsi(&vsi, "vsi")?;
                // A VSI that migrated (seed 000 part three): its MAC on this logical switch
                // is where it associated last. The old channel's De-Associate may come later
                // (another bridge port's daemon), and then finds nothing to remove.
                let before = config.vsis.len();
                config.vsis.retain(|v| {
                    !(v.port != vsi.port && v.mac == vsi.mac && v.switch == vsi.switch)
                });
                let moved = config.vsis.len() != before;
                match config.vsis.iter_mut().find(|v| v.same_filter(&vsi)) {
                    Some(existing) if *existing == vsi => Ok(moved),
                    Some(existing) => {
                        *existing = vsi;
                        Ok(true)
                    }
                    None => {
                        config.vsis.push(vsi);
                        Ok(true)
                    }
                }
            }),
            Request::DeassociateVsi { port, mac, vlan } => self.mutate(|config| {
                let before = config.vsis.len();
                config.vsis.retain(|v| {
                    !(v.port == port && v.mac == mac && vlan.is_none_or(|vlan| v.vlan == vlan))
                });
                Ok(config.vsis.len() != before)
            }),
            Request::SetFlood { switch, flood } => self.mutate(|config| {
                let Some(spec) = config.switches.iter_mut().find(|s| s.name == switch) else {
                    return Err(invalid("switch", format!("no switch named {switch:?}")));
                };
                if spec.flood == flood {
                    return Ok(false);
                }
                spec.flood = flood;
                Ok(true)
            }),
        }
    }

    /// Applies `edit` to a copy of the configuration and, if it changed something, makes the
    /// copy current; any error leaves everything as it was.
    fn mutate(
        &self,
        edit: impl FnOnce(&mut SwitchConfig) -> Result<bool, ConfigError>,
    ) -> Result<Value, ControlError> {
        let mut state = lock(&self.state);
        let mut next = state.config.clone();
        let changed = edit(&mut next)?;
        if changed {
            self.apply(&mut state, next)?;
        }
        Ok(json!({"changed": changed, "generation": state.generation}))
    }

    fn apply(&self, state: &mut State, next: SwitchConfig) -> Result<(), ControlError> {
        let tables = next.tables(state.generation + 1)?;
        self.apply_built(state, next, tables)
    }

    /// Makes `next`, whose `tables` are built (stamped the next generation), current.
    fn apply_built(
        &self,
        state: &mut State,
        next: SwitchConfig,
        tables: Tables,
    ) -> Result<(), ControlError> {
        let generation = tables.generation();
        let current = &state.config;
        // A port keeps its device when the other side has one of its name on the same device.
        let kept = |port: &PortSpec, other: &SwitchConfig| {
            other.port(&port.name).is_some_and(|o| o.same_device(port))
        };
        let removed: Vec<&PortSpec> = current.ports.iter().filter(|p| !kept(p, &next)).collect();
        let fresh: Vec<&PortSpec> = next.ports.iter().filter(|p| !kept(p, current)).collect();
        // A TAP being reopened: its netdev's name is taken until the old file is closed; so is
        // a VXLAN socket's address and port.
        let (early, late): (Vec<&PortSpec>, Vec<&PortSpec>) = removed
            .into_iter()
            .partition(|old| fresh.iter().any(|new| old.blocks(new)));
        for port in early {
            self.close(&port.name);
        }
        let mut opened = Vec::new();
        for port in fresh {
            let device = devices::open(port).map_err(|source| ControlError::Device {
                port: port.name.clone(),
                source,
            })?;
            opened.push((port.name.clone(), device));
        }
        // A port that changed gets its new device attached before the old one is detached;
        // the switch reads the first device of a name.
        let mut attached: Vec<String> = Vec::new();
        let mut peers = Vec::new();
        for (name, opened) in opened {
            let sent = self.call(|done| Command::Attach {
                name: name.clone(),
                device: opened.device,
                done,
            });
            if let Err(err) = sent {
                for name in attached {
                    let _ = self.detach(name);
                }
                return Err(err);
            }
            attached.push(name.clone());
            if let Some(peer) = opened.peer {
                peers.push((name, peer));
            }
        }
        self.tables.store(Arc::new(tables));
        for port in late {
            self.close(&port.name);
        }
        lock(&self.peers).extend(peers);
        state.config = next;
        state.generation = generation;
        Ok(())
    }

    /// Detaches and closes the device of port `name`, and forgets its memory peer.
    fn close(&self, name: &str) {
        lock(&self.peers).remove(name);
        if let Err(err) = self.detach(name.to_owned()) {
            eprintln!("weft switch: port {name:?}: cannot close its device: {err}");
        }
    }

    fn detach(&self, name: String) -> Result<(), ControlError> {
        self.call(|done| Command::Detach { name, done })
    }

    /// Sends a command to the forwarding thread and waits for its answer.
    fn call<T>(&self, command: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, ControlError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.forward
            .send(command(reply))
            .map_err(|_| ControlError::Stopped)?;
        answer
            .recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| ControlError::Stopped)
    }

    fn counters(&self) -> Result<Value, ControlError> {
        let counters = self.call(Command::Counters)?;
        let names: Vec<String> = lock(&self.state)
            .config
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let ports: Vec<Value> = names
            .iter()
            .map(|name| {
                let c = counters.ports.get(name).copied().unwrap_or_default();
                json!({
                    "name": name,
                    "rx_packets": c.rx_packets,
                    "rx_bytes": c.rx_bytes,
                    "tx_packets": c.tx_packets,
                    "tx_bytes": c.tx_bytes,
                    "rx_errors": c.rx_errors,
                    "tx_errors": c.tx_errors,
                })
            })
            .collect();
        let drops: Map<String, Value> = DropReason::ALL
            .iter()
            .map(|&reason| (reason.as_str().to_owned(), json!(counters.dropped(reason))))
            .collect();
        let dhcp: Map<String, Value> = dhcp::Outcome::ALL
            .iter()
            .map(|&outcome| (outcome.as_str().to_owned(), json!(counters.dhcp(outcome))))
            .collect();
        Ok(json!({"ports": ports, "drops": drops, "dhcp": dhcp}))
    }

    fn status(&self) -> Result<Value, ControlError> {
        let devices: Vec<DeviceStatus> = self.call(Command::Status)?;
        let state = lock(&self.state);
        let ports: Vec<Value> = state
            .config
            .ports
            .iter()
            .map(|port| {
                let device = devices.iter().find(|d| d.name == port.name);
                let mut map = Map::new();
                map.insert("name".into(), json!(port.name));
                map.insert("type".into(), json!(port.kind.as_str()));
                let reason = match device {
                    None => Some("no device".to_owned()),
                    Some(device) => device
                        .failure
                        .as_ref()
                        .map(|why| format!("device failed: {why}")),
                };
                map.insert("up".into(), json!(reason.is_none()));
                if let Some(reason) = reason {
                    map.insert("reason".into(), json!(reason));
                }
                Value::Object(map)
            })
            .collect();
        Ok(json!({"ports": ports}))
    }

    fn macs(&self) -> Result<Value, ControlError> {
        let entries: Vec<MacEntry> = self.call(Command::Macs)?;
        Ok(Value::Array(
            entries
                .into_iter()
                .map(|entry| {
                    let mut map = Map::new();
                    map.insert("switch".into(), json!(entry.switch));
                    map.insert("mac".into(), json!(entry.mac.to_string()));
                    let (key, value) = match entry.location {
                        MacLocation::Port(name) => ("port", name),
                        MacLocation::Uplink(name) => ("uplink", name),
                        MacLocation::Remote(ip) => ("remote", ip.to_string()),
                    };
                    map.insert("location".into(), json!(key));
                    map.insert(key.into(), json!(value));
                    let age_ms = u64::try_from(entry.age.as_millis()).unwrap_or(u64::MAX);
                    map.insert("age_ms".into(), json!(age_ms));
                    Value::Object(map)
                })
                .collect(),
        ))
    }
}

/// `set_s_channels`: gives port `name` the S-channels `channels`; the VSIs of bridge channels
/// that go, go too.
fn set_s_channels(
    config: &mut SwitchConfig,
    name: &str,
    channels: SChannels,
) -> Result<bool, ConfigError> {
    let Some(port) = config.ports.iter_mut().find(|p| p.name == name) else {
        return Err(invalid("port", format!("no port named {name:?}")));
    };
    let changed = match (&mut port.kind, channels) {
        (PortType::Station { channels, .. }, SChannels::Bridge(new)) => replace_list(channels, new),
        (PortType::Station { channels, .. }, SChannels::Uplink(new)) if new.is_empty() => {
            replace_list(channels, Vec::new())
        }
        (PortType::Uplink { channels, .. }, SChannels::Uplink(new)) => replace_list(channels, new),
        (PortType::Uplink { channels, .. }, SChannels::Bridge(new)) if new.is_empty() => {
            replace_list(channels, Vec::new())
        }
        (PortType::Station { .. }, SChannels::Uplink(_)) => {
            return Err(invalid(
                "s_channels[0].physical_network",
                format!(
                    "unknown field; port {name:?} is a station port, whose S-channels have \
                     svid and reflective_relay"
                ),
            ));
        }
        (PortType::Uplink { .. }, SChannels::Bridge(_)) => {
            return Err(invalid(
                "s_channels[0].physical_network",
                format!(
                    "missing; port {name:?} is an uplink, whose S-channels each serve a \
                     physical network"
                ),
            ));
        }
        (other, _) => {
            return Err(invalid(
                "port",
                format!(
                    "port {name:?} is a {} port; only station and uplink ports have S-channels",
                    other.as_str()
                ),
            ));
        }
    };
    if changed {
        let channels: Vec<String> = config.channels().map(|(name, _, _)| name).collect();
        config.vsis.retain(|vsi| channels.contains(&vsi.port));
    }
    Ok(changed)
}

/// Puts `new` in `list`; true if that changed it.
fn replace_list<T: PartialEq>(list: &mut Vec<T>, new: Vec<T>) -> bool {
    if *list == new {
        return false;
    }
    *list = new;
    true
}

/// Merges into `next` what `unlisted` says the request left out, from `current`, where it
/// fits: a port's S-channels (when `next` has the port with the same type), then the VSIs on
/// channels and switches `next` has. Returns true when `next.vsis` are the kept ones.
fn keep_unlisted(current: &SwitchConfig, next: &mut SwitchConfig, unlisted: &Unlisted) -> bool {
    let keeps = |name: &str| unlisted.s_channels.iter().any(|n| n == name);
    // What the request serves itself comes first; a kept channel must not take it.
    let mut names: Vec<String> = next.ports.iter().map(|p| p.name.clone()).collect();
    let mut served: Vec<String> = Vec::new();
    for port in &next.ports {
        if let PortType::Uplink {
            physical_network, ..
        } = &port.kind
        {
            served.push(physical_network.clone());
            if !keeps(&port.name) {
                served.extend(
                    port.kind
                        .uplink_channels()
                        .iter()
                        .map(|c| c.physical_network.clone()),
                );
                names.extend(
                    port.kind
                        .uplink_channels()
                        .iter()
                        .map(|c| ChannelSpec::table_name(&port.name, c.svid)),
                );
            }
        }
    }
    for port in &mut next.ports {
        if !keeps(&port.name) {
            continue;
        }
        let Some(old) = current.port(&port.name) else {
            continue;
        };
        let free = |name: &str, svid: u16| {
            let table_name = ChannelSpec::table_name(name, svid);
            !names.contains(&table_name)
        };
        match (&old.kind, &mut port.kind) {
            (PortType::Station { channels: old, .. }, PortType::Station { channels, .. }) => {
                *channels = old
                    .iter()
                    .filter(|c| free(&port.name, c.svid))
                    .copied()
                    .collect();
            }
            (PortType::Uplink { channels: old, .. }, PortType::Uplink { channels, .. }) => {
                let mut kept = Vec::new();
                for channel in old {
                    if free(&port.name, channel.svid) && !served.contains(&channel.physical_network)
                    {
                        served.push(channel.physical_network.clone());
                        kept.push(channel.clone());
                    }
                }
                *channels = kept;
            }
            _ => {}
        }
    }
    if !unlisted.vsis || !next.vsis.is_empty() {
        return false;
    }
    let kept: Vec<VsiSpec> = current
        .vsis
        .iter()
        .filter(|vsi| next.check_vsi(vsi, "vsi").is_ok())
        .cloned()
        .collect();
    next.vsis = kept;
    true
}

/// The index of the VSI a tables error is about, if it is about one (`vsi[3].mac: ...`).
fn vsi_named(err: &ConfigError) -> Option<usize> {
    let ConfigError::Invalid { field, .. } = err;
    field.strip_prefix("vsi[")?.split_once(']')?.0.parse().ok()
}

/// An add of something that exists: fine if identical, an error otherwise.
fn same_or_taken(same: bool, what: &str, name: &str) -> Result<bool, ConfigError> {
    if same {
        Ok(false)
    } else {
        Err(invalid(
            format!("{what}.name"),
            format!("a different {what} named {name:?} exists; remove it first"),
        ))
    }
}

/// Accepts clients on `listener` until `stop` is set, one thread each.
pub(crate) fn serve(
    listener: &std::os::unix::net::UnixListener,
    control: &Arc<Control>,
    stop: &Arc<AtomicBool>,
) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let tick =
            nix::poll::PollTimeout::try_from(CLIENT_TICK).unwrap_or(nix::poll::PollTimeout::NONE);
        if let Err(err) = nix::poll::poll(&mut fds, tick)
            && err != nix::errno::Errno::EINTR
        {
            eprintln!("weft switch: control socket: poll: {err}");
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                eprintln!("weft switch: control socket: accept: {err}");
                continue;
            }
        };
        clients.retain(|client| !client.is_finished());
        if clients.len() >= MAX_CLIENTS {
            refuse(stream);
            continue;
        }
        let (control, stop) = (Arc::clone(control), Arc::clone(stop));
        match super::spawn("weft-ctl-client", move || client(stream, &control, &stop)) {
            Ok(handle) => clients.push(handle),
            Err(err) => eprintln!("weft switch: control socket: cannot start a thread: {err}"),
        }
    }
    for client in clients {
        let _ = client.join();
    }
}

fn refuse(mut stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let error = json!({
        "ok": false,
        "error": format!("control: {MAX_CLIENTS} clients are connected already; try later"),
    });
    let _ = writeln!(stream, "{error}");
}

/// Serves one client: reads request lines and answers each, until it hangs up or the daemon
/// stops.
fn client(stream: UnixStream, control: &Control, stop: &AtomicBool) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(CLIENT_TICK)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .and_then(|()| stream.try_clone());
    let mut writer = match setup {
        Ok(writer) => writer,
        Err(err) => {
            eprintln!("weft switch: control client: {err}");
            return;
        }
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let budget = u64::try_from(MAX_REQUEST + 1 - line.len()).unwrap_or(0);
        let read = (&mut reader).take(budget).read_until(b'\n', &mut line);
        let last = match read {
            Ok(0) => true,
            Ok(_) if line.ends_with(b"\n") => false,
            Ok(_) if line.len() > MAX_REQUEST => {
                let error = ConfigError::Invalid {
                    field: "request".into(),
                    reason: format!("longer than {MAX_REQUEST} bytes"),
                };
                let _ = respond(&mut writer, &response(&Err(error.into())));
                return;
            }
            Ok(_) => true,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let answer = match core::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(control.handle_line(text.trim())),
            Err(_) => Some(response(&Err(invalid("request", "not UTF-8 text").into()))),
        };
        line.clear();
        if let Some(answer) = answer
            && respond(&mut writer, &answer).is_err()
        {
            return;
        }
        if last {
            return;
        }
    }
}

fn respond(writer: &mut UnixStream, answer: &Value) -> io::Result<()> {
    let mut text = answer.to_string();
    text.push('\n');
    writer.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: &Value) -> Request {
        let parsed = Request::from_value(request).unwrap();
        assert_eq!(&parsed.to_value(), request);
        parsed
    }

    #[test]
    fn test_set_s_channels_reads_the_kind_of_list_it_is_given() {
        let bridge = round_trip(&json!({"op": "set_s_channels", "port": "eth3",
            "s_channels": [{"svid": 1, "reflective_relay": true}, {"svid": 20, "reflective_relay": false}]}));
        let Request::SetSChannels {
            channels: SChannels::Bridge(channels),
            ..
        } = bridge
        else {
            panic!("a station port's channels: {bridge:?}")
        };
        assert_eq!(channels.len(), 2);
        let uplink = round_trip(&json!({"op": "set_s_channels", "port": "eth2",
            "s_channels": [{"svid": 20, "physical_network": "evb2", "relay": "vepa"}]}));
        assert!(matches!(
            uplink,
            Request::SetSChannels {
                channels: SChannels::Uplink(_),
                ..
            }
        ));
        round_trip(&json!({"op": "set_s_channels", "port": "eth2", "s_channels": []}));
        // Written short, read whole.
        let short = json!({"op": "set_s_channels", "port": "eth2",
                           "s_channels": [{"svid": 20, "physical_network": "evb2"}]});
        assert_eq!(
            Request::from_value(&short).unwrap().to_value()["s_channels"][0]["relay"],
            json!("veb")
        );
    }

    #[test]
    fn test_replace_says_what_it_leaves_out() {
        let config = json!({
            "mac_aging_secs": 300, "busy_poll_us": 0, "switch": [], "record": [],
            "port": [
                {"name": "eth2", "type": "uplink", "physical_network": "evb"},
                {"name": "eth3", "type": "station", "vdp_gating": false,
                 "s_channels": [{"svid": 1, "reflective_relay": false}]},
                {"name": "eth4", "type": "station", "vdp_gating": false},
            ],
        });
        let request = round_trip(&json!({"op": "replace", "config": config}));
        let Request::Replace { unlisted, .. } = request else {
            panic!("a replace: {request:?}")
        };
        assert_eq!(
            unlisted,
            Unlisted {
                vsis: true,
                s_channels: vec!["eth2".into(), "eth4".into()],
            }
        );
        // Listing an empty `vsi` says so.
        let mut listed = config.clone();
        listed["vsi"] = json!([]);
        let request = round_trip(&json!({"op": "replace", "config": listed}));
        assert!(matches!(
            request,
            Request::Replace {
                unlisted: Unlisted { vsis: false, .. },
                ..
            }
        ));
    }
}
