//! The lab directory: its state file (JSON, everything the lab made), the lock that keeps two
//! `weft lab` commands from changing it at once, and file helpers.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, api::Credentials, topology::Topology};

/// The state file's name inside the lab directory.
pub(super) const STATE_FILE: &str = "state.json";
/// A file holding just the lab's name, written before anything else: `weft lab down` knows
/// which prefix to sweep even when `weft lab up` died before the first state was saved.
pub(super) const NAME_FILE: &str = "name";
const LOCK_FILE: &str = "lock";

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// `server`, `switch`, `agent`, `dhcp`, `mux`; with `[evb]`, `tor` (the ToR's switch),
    /// `bridge` (its EVB bridge facing `host`) and `station` (`host`'s EVB station).
    pub role: String,
    /// The host (or VM) it serves, if any.
    pub host: Option<String>,
    /// Its namespace (none: the root namespace).
    pub ns: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// A VM: a namespace whose `eth0` is a port's TAP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// Its name.
    pub name: String,
    /// The host its port is bound to.
    pub host: String,
    /// Its namespace.
    pub ns: String,
    /// The Neutron port.
    pub port_id: String,
    /// True when `weft lab vm create` created the port (then `vm delete` deletes it; else it
    /// only unbinds it).
    pub created_port: bool,
    /// The cloud (of clouds.yaml) the port was made or found with.
    pub cloud: String,
    /// The DHCP client's process id, once started.
    pub dhcp_pid: Option<u32>,
    /// The address DHCP gave eth0.
    pub ip: Option<String>,
    /// For a VM on a trunk's parent port: the name the switch's TAP has inside the VM (the
    /// NIC's wire; `eth0` and its VLAN interfaces are the multiplexer's). `None`: the TAP is
    /// `eth0`.
    #[serde(default)]
    pub wire: Option<String>,
    /// The VLAN multiplexer's process id (trunk VMs).
    #[serde(default)]
    pub mux_pid: Option<u32>,
    /// A VM on the EVB fabric: its VSI, associated through its host's station.
    #[serde(default)]
    pub vsi: Option<super::evb::VmVsi>,
}

/// Everything a lab made, saved after every step so `weft lab down` can undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The topology it was built from.
    pub topology: Topology,
    /// The `weft` executable it runs.
    pub weft: PathBuf,
    /// The networking API's base URL.
    pub network_url: String,
    /// The identity API's base URL, ending in `/v3`.
    pub auth_url: String,
    /// The clouds of clouds.yaml, by name (`weft`: the admin; `weft-demo`: the demo user).
    pub clouds: BTreeMap<String, Credentials>,
    /// The clouds.yaml the lab wrote.
    pub clouds_yaml: Option<PathBuf>,
    /// Bridges made in the root namespace.
    pub bridges: Vec<String>,
    /// veth ends made in the root namespace.
    pub links: Vec<String>,
    /// Namespaces made (hosts, then VMs).
    pub namespaces: Vec<String>,
    /// `/etc/netns/<ns>` directories made.
    pub etc_netns: Vec<PathBuf>,
    /// Processes started.
    pub processes: Vec<Process>,
    /// VMs.
    pub vms: Vec<Vm>,
    /// Round-robin position for VMs without `--host`.
    pub next_host: usize,
    /// True once `weft lab up` finished.
    pub ready: bool,
}

impl State {
    /// A fresh state for `topology`, nothing made yet.
    pub fn new(topology: Topology, weft: PathBuf) -> Self {
        let controller = topology.controller_ip();
        Self {
            network_url: format!("http://{controller}:9696"),
            auth_url: format!("http://{controller}:5000/v3"),
            topology,
            weft,
            clouds: BTreeMap::new(),
            clouds_yaml: None,
            bridges: Vec::new(),
            links: Vec::new(),
            namespaces: Vec::new(),
            etc_netns: Vec::new(),
            processes: Vec::new(),
            vms: Vec::new(),
            next_host: 0,
            ready: false,
        }
    }

    /// The processes of one role (and host).
    pub fn process(&self, role: &str, host: Option<&str>) -> Option<&Process> {
        self.processes
            .iter()
            .find(|p| p.role == role && p.host.as_deref() == host)
    }

    /// The credentials of cloud `name`.
    pub fn cloud(&self, name: &str) -> Result<&Credentials> {
        self.clouds.get(name).ok_or_else(|| {
            Error::Failed(format!(
                "no cloud {name:?} in this lab (it has {})",
                self.clouds.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// An open lab directory, locked for as long as this lives.
#[derive(Debug)]
pub struct LabDir {
    path: PathBuf,
    _lock: Flock<fs::File>,
}

impl LabDir {
    /// Creates (mode 0700) and locks `path`.
    pub fn create(path: &Path) -> Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|err| Error::io(format!("cannot create {}", path.display()), err))?;
        Self::open(path)
    }

    /// Locks an existing lab directory (waits while another `weft lab` command holds it).
    pub fn open(path: &Path) -> Result<Self> {
        // Absolute: the paths handed to daemons (dhclient refuses a relative lease file) must
        // not depend on their working directory.
        let path = &std::path::absolute(path)
            .map_err(|err| Error::io(format!("cannot resolve {}", path.display()), err))?;
        let lock_path = path.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|err| Error::io(format!("cannot open {}", lock_path.display()), err))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            Error::io(format!("cannot lock {}", lock_path.display()), errno.into())
        })?;
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state, if a readable one is there.
    pub fn load(&self) -> Result<Option<State>> {
        peek(&self.path)
    }

    /// Saves the state (whole or not at all).
    pub fn save(&self, state: &State) -> Result<()> {
        let text = serde_json::to_string_pretty(state)
            .map_err(|err| Error::Failed(format!("cannot encode the state: {err}")))?;
        write_atomically(&self.path.join(STATE_FILE), text.as_bytes())
    }

    /// The lab's name as recorded in the state directory's `name` file.
    pub fn recorded_name(&self) -> Option<String> {
        fs::read_to_string(self.path.join(NAME_FILE))
            .ok()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
    }
}

/// The state of the lab in `dir` without taking the lock: the file is only ever replaced
/// whole, so a reader sees one complete state, maybe one step old.
pub(super) fn peek(dir: &Path) -> Result<Option<State>> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(format!("cannot read {}", path.display()), err)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|err| Error::Failed(format!("{}: {err}", path.display())))
}

/// Writes `path` whole or not at all, mode 0600 (state and clouds.yaml hold passwords).
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Failed(format!("{}: not a file path", path.display())))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    };
    write().map_err(|err| Error::io(format!("cannot write {}", path.display()), err))
}

/// The last `lines` lines of a log file, indented, for error messages.
pub(super) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut tail = format!("\n  last lines of {}:", path.display());
    if all.is_empty() {
        tail.push_str(" (empty)");
    }
    for line in &all[start..] {
        tail.push_str("\n    ");
        tail.push_str(line);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_vm_saved_before_trunks_still_loads() {
        let saved = r#"{"name": "vm1", "host": "h1", "ns": "weft-vm-vm1", "port_id": "p",
            "created_port": true, "cloud": "weft", "dhcp_pid": 7, "ip": "10.0.1.5/24"}"#;
        let vm: Vm = serde_json::from_str(saved).unwrap();
        assert_eq!((vm.wire, vm.mux_pid), (None, None));
        assert_eq!(vm.dhcp_pid, Some(7));
    }
}
