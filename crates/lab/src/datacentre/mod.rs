//! `weft lab`: a small data centre on this machine, built from a [`Topology`].
//!
//! In the root namespace: a management bridge holding the controller's address (where
//! `weft server` listens), an underlay bridge and a bridge per physical network, none of them
//! with a route anywhere. Per host: a namespace with a veth into each bridge, running
//! `weft switch` and `weft agent`. Per VM: a namespace whose `eth0` is the TAP of a Neutron
//! port, addressed by DHCP from the switch. With `[evb]`, a ToR namespace as the 802.1Qbg
//! bridge and an EVB station on every host (module `evb`); VMs on its physical network associate
//! their VSI before their NIC comes up.
//!
//! Everything made is recorded in the lab directory's state file as it is made, and every name
//! starts with `<name>-` and every process carries [`MARKER`](crate::netns::MARKER)`=<name>`, so [`down`] removes a
//! lab completely even when `up` was killed half way.

mod demo;
mod down;
mod evb;
mod state;
mod vm;

use std::{
    fmt::Display,
    fs,
    io::Write,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use serde_json::json;

pub use self::{
    demo::{Check, demo, report as demo_report},
    down::{Removed, down},
    evb::{BRIDGE_NAME, VmVsi},
    state::{LabDir, Process, State, Vm},
    vm::{
        LINK, VmCreate, WIRE, mux_socket, tap_name, vm_create, vm_delete, vm_dhcp, vm_exec,
        vm_migrate, vm_vlan_add, vm_vlan_del, vm_vlan_list,
    },
};
use crate::{
    Error, Result,
    api::{Cloud, Credentials},
    interrupt,
    netns::{self, disable_ipv6, run, spawn_detached},
    topology::{HostLink, Topology},
};

/// The lab directory when `--dir` is not given.
pub const DEFAULT_DIR: &str = ".weft-lab";
/// The clouds.yaml `weft lab up` writes, in the current directory.
pub const CLOUDS_YAML: &str = "clouds.yaml";
/// The first line of every clouds.yaml the lab writes (so it only ever replaces its own).
const CLOUDS_MARKER: &str = "# Written by `weft lab up`";
/// The admin's cloud in clouds.yaml.
pub const ADMIN_CLOUD: &str = "weft";
/// The demo user's cloud in clouds.yaml.
pub const DEMO_CLOUD: &str = "weft-demo";
/// How long `weft server` gets to answer after it starts.
const SERVER_START: Duration = Duration::from_secs(90);
/// How long a switch gets to open its control socket, and the server to write the agent
/// secret.
const DAEMON_START: Duration = Duration::from_secs(20);
/// How long a restarted daemon gets to stop before SIGKILL.
const RESTART_GRACE: Duration = Duration::from_secs(5);
/// How long agents get to register with the controller.
const AGENT_REGISTER: Duration = Duration::from_secs(30);

/// Where the lab lives and what it runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The lab directory (state, configs, logs, sockets, the controller's database).
    pub dir: PathBuf,
    /// The `weft` executable to run as server, switch and agent.
    pub weft: PathBuf,
    /// Where to write clouds.yaml.
    pub clouds_yaml: PathBuf,
}

/// Progress lines, each with the time since the command started.
pub struct Progress<'a> {
    start: Instant,
    out: &'a mut dyn Write,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<'a> Progress<'a> {
    /// Progress written to `out`, timed from now.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Self {
            start: Instant::now(),
            out,
        }
    }

    /// Writes one line: `[  1.2s] what`.
    pub fn step(&mut self, what: impl Display) {
        let secs = self.start.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "[{secs:5.1}s] {what}");
        let _ = self.out.flush();
    }

    /// Writes text as it is.
    pub fn say(&mut self, text: impl Display) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

/// True when `weft` has the `agent` subcommand (it arrives in another branch; until then the
/// hosts run only `weft switch`).
pub fn has_agent(weft: &Path) -> bool {
    netns::succeeds(&[&weft.to_string_lossy(), "agent", "--help"])
}

/// A random password: 24 hex digits.
fn password() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Failed(format!("no randomness for a password: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Polls `ready` every 100 ms until it says yes, `timeout` passes (`Ok(false)`), or a signal
/// arrives.
fn wait_for(timeout: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(true);
        }
        interrupt::check()?;
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Builds the data centre and starts everything; on failure removes what it made.
pub fn up(topology: Topology, options: &Options, progress: &mut Progress<'_>) -> Result<State> {
    preflight(&topology, options)?;
    let dir = LabDir::create(&options.dir)?;
    if let Some(old) = dir.load()? {
        return Err(Error::Failed(format!(
            "lab {:?} is already up in {} (`weft lab down` first)",
            old.topology.name,
            options.dir.display()
        )));
    }
    state::write_atomically(
        &options.dir.join(state::NAME_FILE),
        topology.name.as_bytes(),
    )?;
    let mut state = State::new(topology, options.weft.clone());
    dir.save(&state)?;
    match build(&dir, &mut state, options, progress) {
        Ok(()) => Ok(state),
        Err(err) => {
            progress.step(format!("failed: {err}"));
            progress.step("removing what was made");
            let name = state.topology.name.clone();
            drop(dir);
            let _ = down(&options.dir, Some(&name), progress);
            Err(err)
        }
    }
}

/// Refuses to start over leftovers or someone else's clouds.yaml.
fn preflight(topology: &Topology, options: &Options) -> Result<()> {
    if !netns::is_root() {
        return Err(Error::Failed(
            "weft lab needs root (namespaces, links)".into(),
        ));
    }
    let prefix = format!("{}-", topology.name);
    let leftovers: Vec<String> = netns::list_netns()?
        .into_iter()
        .chain(netns::list_links()?)
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !leftovers.is_empty() && !options.dir.join(state::STATE_FILE).exists() {
        return Err(Error::Failed(format!(
            "lab {:?} has leftovers ({}): run `weft lab down --name {}` first",
            topology.name,
            leftovers.join(", "),
            topology.name
        )));
    }
    let controller = topology.controller_ip().to_string();
    let taken = run(&["ip", "-o", "-4", "addr", "show"])?
        .lines()
        .any(|l| l.contains(&format!(" {controller}/")));
    if taken && !options.dir.join(state::STATE_FILE).exists() {
        return Err(Error::Failed(format!(
            "{controller} (the controller's address in management {}) is already on an \
             interface: another lab? Give this one another `management` network",
            topology.management
        )));
    }
    if let Ok(text) = fs::read_to_string(&options.clouds_yaml)
        && !text.starts_with(CLOUDS_MARKER)
    {
        return Err(Error::Failed(format!(
            "{} exists and was not written by weft lab: move it away or run from another \
             directory",
            options.clouds_yaml.display()
        )));
    }
    Ok(())
}

fn build(
    dir: &LabDir,
    state: &mut State,
    options: &Options,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let t = state.topology.clone();
    progress.step(format!(
        "lab {:?} in {}: {} host(s), management {}, underlay {}",
        t.name,
        dir.path().display(),
        t.hosts.len(),
        t.management,
        t.underlay
    ));

    for bridge in t.bridges() {
        interrupt::check()?;
        run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        state.bridges.push(bridge.clone());
        dir.save(state)?;
        disable_ipv6(&bridge);
        run(&["ip", "link", "set", &bridge, "up"])?;
    }
    let controller_cidr = format!("{}/{}", t.controller_ip(), t.management.prefix());
    run(&[
        "ip",
        "addr",
        "add",
        &controller_cidr,
        "dev",
        &t.management_bridge(),
    ])?;
    progress.step(format!(
        "bridges {} (controller {controller_cidr})",
        t.bridges().join(", ")
    ));

    for (i, host) in t.hosts.iter().enumerate() {
        interrupt::check()?;
        let ns = t.host_ns(&host.name);
        add_namespace(dir, state, &ns)?;
        for link in t.host_links(&host.name) {
            add_bridge_link(dir, state, &link, &ns)?;
        }
        let mgmt = format!("{}/{}", t.host_management_ip(i), t.management.prefix());
        let tunnel = format!("{}/{}", t.host_tunnel_ip(i), t.underlay.prefix());
        run(&["ip", "-n", &ns, "addr", "add", &mgmt, "dev", "mgmt"])?;
        run(&["ip", "-n", &ns, "addr", "add", &tunnel, "dev", "underlay"])?;
        progress.step(format!(
            "host {}: namespace {ns}, management {mgmt}, tunnel {tunnel}",
            host.name
        ));
    }

    if t.evb.is_some() {
        evb::build_tor(dir, state, progress)?;
    }

    start_server(dir, state, progress)?;
    evb::start_tor(dir, state, progress)?;
    let cloud = Cloud::new(&state.network_url)?;
    make_demo(dir, state, &cloud, progress)?;
    write_clouds_yaml(dir, state, &options.clouds_yaml)?;
    progress.step(format!(
        "wrote {} (clouds {ADMIN_CLOUD:?} and {DEMO_CLOUD:?})",
        options.clouds_yaml.display()
    ));
    start_hosts(dir, state, &cloud, progress)?;
    state.ready = true;
    dir.save(state)?;
    Ok(())
}

/// Starts a lab daemon (`role` serving `host`, in namespace `ns`) and waits until it has
/// made its control socket; records it first.
pub(super) fn start_daemon(
    dir: &LabDir,
    state: &mut State,
    (role, host, ns): (&str, Option<&str>, &str),
    args: &[&str],
    socket: &Path,
    log: PathBuf,
) -> Result<u32> {
    let mut child = spawn_detached(Some(ns), args, &state.topology.name, &[], &log)?;
    state.processes.push(Process {
        role: role.into(),
        host: host.map(str::to_owned),
        ns: Some(ns.to_owned()),
        pid: child.pid(),
        log: log.clone(),
    });
    dir.save(state)?;
    let listening = wait_for(DAEMON_START, || {
        if let Some(status) = child.exited() {
            return Err(Error::Failed(format!(
                "{role} {}exited ({status}){}",
                on(host),
                state::log_tail(&log, 15)
            )));
        }
        Ok(socket.exists())
    })?;
    if !listening {
        return Err(Error::Failed(format!(
            "{role} {}made no control socket {} within {} s{}",
            on(host),
            socket.display(),
            DAEMON_START.as_secs(),
            state::log_tail(&log, 15)
        )));
    }
    Ok(child.pid())
}

/// " on HOST " for messages about a daemon of a host ("" for none).
fn on(host: Option<&str>) -> String {
    host.map(|h| format!("on {h} ")).unwrap_or_default()
}

/// Makes namespace `ns` (recorded first), without IPv6, with `lo` up.
fn add_namespace(dir: &LabDir, state: &mut State, ns: &str) -> Result<()> {
    run(&["ip", "netns", "add", ns])?;
    state.namespaces.push(ns.to_owned());
    dir.save(state)?;
    // No IPv6: nothing in the lab speaks it, and a namespace would otherwise send router
    // solicitations out of every veth.
    let _ = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// A veth from `link.bridge` in the root namespace (end `link.root`, recorded first) into
/// namespace `ns` (end `link.inside`), up at both ends.
fn add_bridge_link(dir: &LabDir, state: &mut State, link: &HostLink, ns: &str) -> Result<()> {
    run(&[
        "ip",
        "link",
        "add",
        &link.root,
        "type",
        "veth",
        "peer",
        "name",
        &link.inside,
        "netns",
        ns,
    ])?;
    state.links.push(link.root.clone());
    dir.save(state)?;
    disable_ipv6(&link.root);
    run(&[
        "ip",
        "link",
        "set",
        &link.root,
        "master",
        &link.bridge,
        "up",
    ])?;
    run(&["ip", "-n", ns, "link", "set", &link.inside, "up"])?;
    Ok(())
}

fn start_server(dir: &LabDir, state: &mut State, progress: &mut Progress<'_>) -> Result<()> {
    let t = &state.topology;
    let controller = t.controller_ip();
    let server_dir = dir.path().join("server");
    fs::create_dir_all(&server_dir)
        .map_err(|err| Error::io(format!("cannot create {}", server_dir.display()), err))?;
    let admin_password = password()?;
    let config = format!(
        "# Written by `weft lab up` for lab {name:?}.\n\
         listen = \"{controller}:9696\"\n\
         public_url = \"http://{controller}:9696\"\n\
         identity_listen = \"{controller}:5000\"\n\
         identity_public_url = \"http://{controller}:5000\"\n\
         state_dir = {state_dir}\n\n\
         [bootstrap]\nadmin_user = \"admin\"\nadmin_password = \"{admin_password}\"\n\
         admin_project = \"admin\"\n\n{ml2}",
        name = t.name,
        state_dir = toml_string(&server_dir),
        ml2 = t.ml2_toml(),
    );
    let config_path = dir.path().join("server.toml");
    state::write_atomically(&config_path, config.as_bytes())?;
    state.clouds.insert(
        ADMIN_CLOUD.into(),
        Credentials {
            auth_url: state.auth_url.clone(),
            username: "admin".into(),
            password: admin_password,
            project: "admin".into(),
        },
    );
    launch_server(dir, state, progress)
}

/// Starts `weft server` from the lab's `server.toml` and waits until it answers.
fn launch_server(dir: &LabDir, state: &mut State, progress: &mut Progress<'_>) -> Result<()> {
    let t = &state.topology;
    let controller = t.controller_ip();
    let config_path = dir.path().join("server.toml");
    let log = dir.path().join("server.log");
    let weft = state.weft.to_string_lossy().into_owned();
    let config_arg = config_path.to_string_lossy().into_owned();
    let mut server = spawn_detached(
        None,
        &[&weft, "server", "--config", &config_arg],
        &t.name,
        &[],
        &log,
    )?;
    state.processes.push(Process {
        role: "server".into(),
        host: None,
        ns: None,
        pid: server.pid(),
        log: log.clone(),
    });
    dir.save(state)?;
    progress.step(format!(
        "weft server (pid {}) starting on {controller}:9696 and :5000",
        server.pid()
    ));

    let probe = Cloud::new(&state.network_url)?;
    let version_url = state.auth_url.clone();
    let answered = wait_for(SERVER_START, || {
        if let Some(status) = server.exited() {
            return Err(Error::Failed(format!(
                "weft server exited ({status}){}",
                state::log_tail(&log, 15)
            )));
        }
        Ok(probe.answers(&version_url))
    })?;
    if !answered {
        return Err(Error::Failed(format!(
            "weft server did not answer on {version_url} within {} s{}",
            SERVER_START.as_secs(),
            state::log_tail(&log, 15)
        )));
    }
    progress.step(format!("weft server answers at {}", state.auth_url));
    Ok(())
}

/// A daemon `weft lab restart` can restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// The controller.
    Server,
    /// A host's agent.
    Agent(String),
    /// A host's 802.1Qbg station (an EVB lab's): restarted with its state file, it asks the
    /// bridge for its VSIs again before the bridge's keep-alive timeout ends them.
    Station(String),
}

/// `weft lab restart`: stops a daemon (SIGTERM, then SIGKILL after a grace period) and starts
/// it again the way `up` did. The switches keep forwarding meanwhile.
pub fn restart(dir: &Path, daemon: &Daemon, progress: &mut Progress<'_>) -> Result<()> {
    let (lab, mut state) = open_ready(dir)?;
    let (role, host) = match daemon {
        Daemon::Server => ("server", None),
        Daemon::Agent(host) => ("agent", Some(host.as_str())),
        Daemon::Station(host) => ("station", Some(host.as_str())),
    };
    if matches!(daemon, Daemon::Station(_)) && state.topology.evb.is_none() {
        return Err(Error::Failed(
            "this lab has no [evb] fabric, so no stations".into(),
        ));
    }
    let index = match host {
        Some(name) => Some(
            state
                .topology
                .hosts
                .iter()
                .position(|h| h.name == name)
                .ok_or_else(|| Error::Failed(format!("no host {name:?} in this lab")))?,
        ),
        None => None,
    };
    let matches = |p: &Process| p.role == role && p.host.as_deref() == host;
    let pids: Vec<u32> = state
        .processes
        .iter()
        .filter(|p| matches(p))
        .map(|p| p.pid)
        .collect();
    netns::terminate(&pids, RESTART_GRACE);
    state.processes.retain(|p| !matches(p));
    lab.save(&state)?;
    progress.step(format!(
        "stopped weft {role}{}",
        host.map_or_else(String::new, |h| format!(" on {h}"))
    ));
    match (daemon, index) {
        (Daemon::Agent(name), Some(i)) => {
            let socket = lab.path().join(name).join("switch.sock");
            let token_file = lab.path().join("server").join("agent-token");
            let pid = start_agent(&lab, &mut state, i, &socket.to_string_lossy(), &token_file)?;
            progress.step(format!("weft agent on {name} started (pid {pid})"));
        }
        (Daemon::Station(name), Some(i)) => {
            let pid = evb::start_station(&lab, &mut state, i)?;
            progress.step(format!("weft evb station on {name} started (pid {pid})"));
        }
        _ => launch_server(&lab, &mut state, progress)?,
    }
    Ok(())
}

/// A TOML basic string holding `path`.
fn toml_string(path: &Path) -> String {
    serde_json::Value::from(path.to_string_lossy().into_owned()).to_string()
}

/// The `demo` project, the `demo` user with the `member` role on it, and its cloud.
fn make_demo(
    dir: &LabDir,
    state: &mut State,
    cloud: &Cloud,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    let auth_url = state.auth_url.clone();
    let project = cloud.keystone_create(
        &admin,
        &auth_url,
        "project",
        json!({"name": "demo", "domain_id": "default",
               "description": "The demo project of weft lab"}),
    )?;
    let demo_password = password()?;
    let user = cloud.keystone_create(
        &admin,
        &auth_url,
        "user",
        json!({"name": "demo", "domain_id": "default", "password": demo_password,
               "default_project_id": project.id}),
    )?;
    let member = cloud.role_id(&admin, &auth_url, "member")?;
    cloud.assign_role(&admin, &auth_url, &project.id, &user.id, &member)?;
    state.clouds.insert(
        DEMO_CLOUD.into(),
        Credentials {
            auth_url,
            username: "demo".into(),
            password: demo_password,
            project: "demo".into(),
        },
    );
    dir.save(state)?;
    progress.step("project demo, user demo (role member on it)");
    Ok(())
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// clouds.yaml with every cloud of the lab.
fn clouds_yaml(state: &State) -> String {
    let mut yaml = format!(
        "{CLOUDS_MARKER} (lab {:?}); `weft lab down` removes it.\nclouds:\n",
        state.topology.name
    );
    for (name, c) in &state.clouds {
        yaml.push_str(&format!(
            "  {name}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      \
             project_name: {}\n      user_domain_name: \"Default\"\n      \
             project_domain_name: \"Default\"\n    region_name: \"RegionOne\"\n    \
             identity_api_version: 3\n    interface: public\n",
            quoted(&c.auth_url),
            quoted(&c.username),
            quoted(&c.password),
            quoted(&c.project),
        ));
    }
    yaml
}

fn write_clouds_yaml(dir: &LabDir, state: &mut State, path: &Path) -> Result<()> {
    state::write_atomically(path, clouds_yaml(state).as_bytes())?;
    // Under sudo, the user who asked for the lab runs `openstack` as themselves: the file is
    // theirs (still 0600: it holds passwords).
    let sudo_id = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (sudo_id("SUDO_UID"), sudo_id("SUDO_GID")) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|err| Error::io(format!("cannot chown {}", path.display()), err))?;
    }
    // Made absolute so `weft lab down` run from elsewhere still finds it.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    state.clouds_yaml = Some(absolute);
    dir.save(state)
}

/// Starts `weft switch` and (when this build has it) `weft agent` in every host.
fn start_hosts(
    dir: &LabDir,
    state: &mut State,
    cloud: &Cloud,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let t = state.topology.clone();
    let weft = state.weft.to_string_lossy().into_owned();
    let agent = has_agent(&state.weft);
    let token_file = dir.path().join("server").join("agent-token");
    for (i, host) in t.hosts.iter().enumerate() {
        interrupt::check()?;
        let ns = t.host_ns(&host.name);
        let host_dir = dir.path().join(&host.name);
        fs::create_dir_all(&host_dir)
            .map_err(|err| Error::io(format!("cannot create {}", host_dir.display()), err))?;
        let socket = host_dir.join("switch.sock");
        let socket_arg = socket.to_string_lossy().into_owned();
        let log = host_dir.join("switch.log");
        // The agent owns the switch's whole configuration, so the switch starts empty.
        let pid = start_daemon(
            dir,
            state,
            ("switch", Some(&host.name), &ns),
            &[&weft, "switch", "--control", &socket_arg],
            &socket,
            log,
        )?;
        let mut line = format!("host {}: weft switch (pid {pid})", host.name);
        if t.evb.is_some() {
            let pid = evb::start_station(dir, state, i)?;
            line.push_str(&format!(", weft evb station (pid {pid})"));
        }
        if agent {
            let pid = start_agent(dir, state, i, &socket_arg, &token_file)?;
            line.push_str(&format!(", weft agent (pid {pid})"));
        }
        progress.step(line);
    }
    if !agent {
        progress.step(
            "this weft has no `weft agent`: hosts run only `weft switch` (ports will not bind)",
        );
        return Ok(());
    }
    wait_agents(state, cloud, progress)?;
    evb::wait_channels(dir, state, progress)
}

fn start_agent(
    dir: &LabDir,
    state: &mut State,
    index: usize,
    socket: &str,
    token_file: &Path,
) -> Result<u32> {
    let t = state.topology.clone();
    let host = &t.hosts[index];
    let server_log = dir.path().join("server.log");
    let written = wait_for(DAEMON_START, || Ok(token_file.exists()))?;
    if !written {
        return Err(Error::Failed(format!(
            "weft server wrote no agent secret {} within {} s{}",
            token_file.display(),
            DAEMON_START.as_secs(),
            state::log_tail(&server_log, 10)
        )));
    }
    let ns = t.host_ns(&host.name);
    let log = dir.path().join(&host.name).join("agent.log");
    let weft = state.weft.to_string_lossy().into_owned();
    let token_arg = token_file.to_string_lossy().into_owned();
    let tunnel_ip = t.host_tunnel_ip(index).to_string();
    let tunnel_types = t.tunnel_types.join(",");
    let mut args: Vec<String> = [
        weft.as_str(),
        "agent",
        "--host",
        &host.name,
        "--server",
        &state.network_url,
        "--token-file",
        &token_arg,
        "--tunnel-ip",
        &tunnel_ip,
        "--tunnel-types",
        &tunnel_types,
        "--switch-socket",
        socket,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for mapping in t.bridge_mappings() {
        args.push("--bridge-mapping".into());
        args.push(mapping);
    }
    if let Some(evb) = &t.evb {
        if evb.vepa() {
            args.push("--vepa".into());
            args.push(evb.physical_network.clone());
        }
        for channel in &evb.channels {
            args.push("--channel-network".into());
            args.push(channel.physical_network.clone());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = spawn_detached(Some(&ns), &args, &t.name, &[], &log)?;
    state.processes.push(Process {
        role: "agent".into(),
        host: Some(host.name.clone()),
        ns: Some(ns),
        pid: agent.pid(),
        log,
    });
    dir.save(state)?;
    Ok(agent.pid())
}

/// Waits until every host's agent shows as alive in `GET /v2.0/agents`, so a VM can be bound
/// right after `up`. A controller without that API is not waited for.
fn wait_agents(state: &State, cloud: &Cloud, progress: &mut Progress<'_>) -> Result<()> {
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    let hosts: Vec<&str> = state
        .topology
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    let mut missing = hosts.clone();
    let registered = wait_for(AGENT_REGISTER, || {
        for p in state.processes.iter().filter(|p| p.role == "agent") {
            if !netns::is_alive(p.pid) {
                return Err(Error::Failed(format!(
                    "weft agent on {} exited{}",
                    p.host.as_deref().unwrap_or("?"),
                    state::log_tail(&p.log, 15)
                )));
            }
        }
        let alive = match cloud.agents(&admin) {
            Ok(agents) => agents,
            Err(err) if err.status() == Some(hyper::StatusCode::NOT_FOUND) => {
                missing.clear();
                return Ok(true);
            }
            Err(err) => return Err(err.into()),
        };
        missing = hosts
            .iter()
            .copied()
            .filter(|h| !alive.iter().any(|a| a.host == *h && a.alive))
            .collect();
        Ok(missing.is_empty())
    })?;
    if !registered {
        return Err(Error::Failed(format!(
            "agents of {} did not register within {} s",
            missing.join(", "),
            AGENT_REGISTER.as_secs()
        )));
    }
    progress.step("agents registered");
    Ok(())
}

/// Opens the lab in `dir` for a command that needs it up.
pub fn open_ready(dir: &Path) -> Result<(LabDir, State)> {
    if !dir.join(state::STATE_FILE).exists() {
        return Err(Error::Failed(format!(
            "no lab in {} (`weft lab up` first, or --dir)",
            dir.display()
        )));
    }
    let lab = LabDir::open(dir)?;
    let state = lab
        .load()?
        .ok_or_else(|| Error::Failed(format!("no lab in {}", dir.display())))?;
    if !state.ready {
        return Err(Error::Failed(format!(
            "the lab in {} is not (or not fully) up: `weft lab down`, then `weft lab up`",
            dir.display()
        )));
    }
    Ok((lab, state))
}

/// `weft lab status`: the lab's processes, hosts and VMs.
pub fn status(dir: &Path, out: &mut dyn Write) -> Result<()> {
    if !dir.join(state::STATE_FILE).exists() {
        let _ = writeln!(out, "no lab in {}", dir.display());
        return Ok(());
    }
    // Read without the lock: status must answer while a `vm create` waits for a port.
    let state =
        state::peek(dir)?.ok_or_else(|| Error::Failed(format!("no lab in {}", dir.display())))?;
    let t = &state.topology;
    let answers = Cloud::new(&state.network_url)
        .map(|c| c.answers(&state.auth_url))
        .unwrap_or(false);
    let mut text = format!(
        "lab {:?} in {} ({})\ncontroller: {} and {} ({})\n",
        t.name,
        dir.display(),
        if state.ready { "up" } else { "NOT fully up" },
        state.network_url,
        state.auth_url,
        if answers { "answers" } else { "NOT answering" },
    );
    if let Some(path) = &state.clouds_yaml {
        text.push_str(&format!(
            "clouds.yaml: {} (clouds {})\n",
            path.display(),
            state.clouds.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    text.push_str("\nPROCESS  HOST    PID      STATE    LOG\n");
    for p in &state.processes {
        let alive = netns::is_alive(p.pid) && netns::is_marked(p.pid, &t.name);
        text.push_str(&format!(
            "{:<8} {:<7} {:<8} {:<8} {}\n",
            p.role,
            p.host.as_deref().unwrap_or("-"),
            p.pid,
            if alive { "running" } else { "GONE" },
            p.log.display()
        ));
    }
    text.push_str("\nHOST    NAMESPACE        MANAGEMENT       TUNNEL\n");
    for (i, h) in t.hosts.iter().enumerate() {
        text.push_str(&format!(
            "{:<7} {:<16} {:<16} {}\n",
            h.name,
            t.host_ns(&h.name),
            t.host_management_ip(i),
            t.host_tunnel_ip(i)
        ));
    }
    if let Some(evb) = &t.evb {
        text.push_str(&format!(
            "\nEVB: ToR namespace {} (bridge {BRIDGE_NAME:?}, a port per host), physical network \
             {} (VLANs {}-{}), hosts' edge relays {}\n",
            t.tor_ns(),
            evb.physical_network,
            evb.vlan_range.0,
            evb.vlan_range.1,
            evb.relay
        ));
        for c in &evb.channels {
            text.push_str(&format!(
                "     S-channel {} (CDCP, S-VLAN from {}-{}): physical network {} (VLANs {}-{}), \
                 edge relays {}\n",
                c.scid,
                evb.svid_range.0,
                evb.svid_range.1,
                c.physical_network,
                c.vlan_range.0,
                c.vlan_range.1,
                c.relay
            ));
        }
    }
    text.push('\n');
    text.push_str(&vm::list_text(&state));
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// `weft lab vm list`.
pub fn vm_list(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let state =
        state::peek(dir)?.ok_or_else(|| Error::Failed(format!("no lab in {}", dir.display())))?;
    let _ = out.write_all(vm::list_text(&state).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clouds_yaml_has_both_clouds() {
        let mut state = State::new(Topology::default(), "/bin/weft".into());
        for (name, user) in [(ADMIN_CLOUD, "admin"), (DEMO_CLOUD, "demo")] {
            state.clouds.insert(
                name.into(),
                Credentials {
                    auth_url: state.auth_url.clone(),
                    username: user.into(),
                    password: "p\"w".into(),
                    project: user.into(),
                },
            );
        }
        let yaml = clouds_yaml(&state);
        assert!(yaml.starts_with(CLOUDS_MARKER), "{yaml}");
        assert!(yaml.contains("\n  weft:\n    auth:\n"), "{yaml}");
        assert!(yaml.contains("\n  weft-demo:\n"), "{yaml}");
        assert!(
            yaml.contains("auth_url: \"http://198.18.0.1:5000/v3\""),
            "{yaml}"
        );
        assert!(yaml.contains("password: \"p\\\"w\""), "{yaml}");
        assert!(yaml.contains("project_name: \"demo\""), "{yaml}");
    }

    #[test]
    fn test_passwords_are_random_hex() {
        let (a, b) = (password().unwrap(), password().unwrap());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
