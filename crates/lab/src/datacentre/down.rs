//! `weft lab down`: removes everything a lab made, by its state file and by sweeping its name
//! prefix, so it also cleans up after a crash. Running it twice is harmless.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{CLOUDS_MARKER, CLOUDS_YAML, LabDir, Progress, state};
use crate::{Error, Result, netns};

/// How long the lab's processes get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What [`down`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Processes stopped.
    pub processes: Vec<u32>,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Links (bridges, veth ends) deleted from the root namespace.
    pub links: Vec<String>,
    /// Files and directories removed (clouds.yaml, `/etc/netns` entries, the lab directory).
    pub files: Vec<PathBuf>,
}

impl Removed {
    /// True when there was nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.namespaces.is_empty()
            && self.links.is_empty()
            && self.files.is_empty()
    }
}

/// Removes the lab in `dir`; `name` names it when its state file is gone (else the state's,
/// else the lab directory's name file, else the default `weft`).
pub fn down(dir: &Path, name: Option<&str>, progress: &mut Progress<'_>) -> Result<Removed> {
    let lab = if dir.is_dir() {
        Some(LabDir::open(dir)?)
    } else {
        None
    };
    // A state that does not parse is as good as none: the sweep below finds everything.
    let state = lab.as_ref().and_then(|l| l.load().ok().flatten());
    let name = match (name, &state) {
        (Some(name), _) => name.to_owned(),
        (None, Some(state)) => state.topology.name.clone(),
        (None, None) => lab
            .as_ref()
            .and_then(LabDir::recorded_name)
            .unwrap_or_else(|| "weft".into()),
    };
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        || name.len() < 2
    {
        return Err(Error::Failed(format!("{name:?} is not a lab name")));
    }
    let prefix = format!("{name}-");
    let mut removed = Removed::default();

    // Processes first: a switch holding a TAP or an agent re-creating one must not race the
    // deletions below. Only processes carrying this lab's marker are ever signalled.
    let mut pids = netns::marked_processes(&name);
    if let Some(state) = &state {
        pids.extend(
            state
                .processes
                .iter()
                .map(|p| p.pid)
                .chain(state.vms.iter().filter_map(|v| v.dhcp_pid))
                .filter(|&pid| netns::is_marked(pid, &name)),
        );
    }
    let namespaces: Vec<String> = netns::list_netns()?
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix))
        .collect();
    // Whatever else runs inside the lab's namespaces was started there by the lab.
    for ns in &namespaces {
        pids.extend(netns::pids_inside(ns));
    }
    pids.sort_unstable();
    pids.dedup();
    removed.processes = netns::terminate(&pids, STOP_GRACE);
    if !removed.processes.is_empty() {
        progress.step(format!("stopped {} process(es)", removed.processes.len()));
    }

    // VMs first, so their TAPs go before the switches' namespaces.
    let (vms, hosts): (Vec<String>, Vec<String>) = namespaces
        .into_iter()
        .partition(|ns| ns.starts_with(&format!("{prefix}vm-")));
    for ns in vms.into_iter().chain(hosts) {
        if netns::succeeds(&["ip", "netns", "delete", &ns]) {
            removed.namespaces.push(ns);
        }
    }
    if !removed.namespaces.is_empty() {
        progress.step(format!(
            "deleted namespaces {}",
            removed.namespaces.join(", ")
        ));
    }

    // Deleting a host's namespace took its veths along; what is left are the bridges and any
    // veth whose namespace never got it.
    for link in netns::list_links()? {
        if link.starts_with(&prefix) && netns::succeeds(&["ip", "link", "delete", &link]) {
            removed.links.push(link);
        }
    }
    if !removed.links.is_empty() {
        progress.step(format!("deleted links {}", removed.links.join(", ")));
    }

    if let Ok(entries) = fs::read_dir("/etc/netns") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix)
                && fs::remove_dir_all(entry.path()).is_ok()
            {
                removed.files.push(entry.path());
            }
        }
    }

    let mut clouds = vec![PathBuf::from(CLOUDS_YAML)];
    if let Some(path) = state.as_ref().and_then(|s| s.clouds_yaml.clone()) {
        clouds.insert(0, path);
    }
    let ours = format!("{CLOUDS_MARKER} (lab {name:?})");
    for path in clouds {
        let is_ours = fs::read_to_string(&path).is_ok_and(|text| text.starts_with(&ours));
        if is_ours && fs::remove_file(&path).is_ok() {
            removed.files.push(path);
        }
    }

    if let Some(lab) = lab {
        // Only a directory that is a lab's is removed: never whatever --dir pointed at.
        let is_lab = lab.path().join(state::STATE_FILE).exists()
            || lab.path().join(state::NAME_FILE).exists();
        let path = lab.path().to_owned();
        drop(lab);
        if is_lab {
            fs::remove_dir_all(&path)
                .map_err(|err| Error::io(format!("cannot remove {}", path.display()), err))?;
            removed.files.push(path);
        }
    }
    if !removed.files.is_empty() {
        progress.step(format!(
            "removed {}",
            removed
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Anything still there now would be a leak: say so instead of claiming success.
    let left: Vec<String> = netns::list_netns()?
        .into_iter()
        .chain(netns::list_links()?)
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        return Err(Error::Failed(format!(
            "could not remove {}",
            left.join(", ")
        )));
    }
    Ok(removed)
}
