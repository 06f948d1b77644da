//! `weft bench scale`: the controller with H simulated hosts in one process. Each host is the
//! real agent runtime (its own watch over loopback HTTP, heartbeats, device reports) over an
//! in-memory switch that checks every configuration with the real switch's reader and table
//! builder. The bench plays Nova: it creates networks with a subnet each, then ports bound to
//! random hosts through concurrent HTTP clients, and measures how long until every host's
//! switch has exactly the configuration the topology calls for; then it changes ports one at
//! a time and measures, per change, the time from the API's answer to the last host that must
//! change applying it.
//!
//! Convergence is checked against a digest: an order-independent hash of each host's TAPs
//! (name, MAC, addresses) and records (network, address, MAC, remote tunnel endpoint), which
//! the bench computes from what the API answered and each memory switch computes from every
//! configuration it accepts.

use std::{
    collections::{BTreeSet, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agent::{AgentConfig, HostConfig, MemorySwitch, SharedSwitch, TunnelType, desired};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use controller::{App, Listeners, config::Config};
use hyper::Method;
use serde_json::{Value, json};
use switch::daemon::{PortType, SwitchConfig};
use wire::MacAddr;

use crate::bench_api::{Api, Phase, run_phase};

/// `weft bench scale`.
#[derive(Debug, Args)]
pub(crate) struct ScaleArgs {
    /// Simulated hosts (agents over memory switches).
    #[arg(long, default_value_t = 100, value_name = "H")]
    hosts: usize,
    /// Ports to create, each bound to a random host.
    #[arg(long, default_value_t = 2000, value_name = "P")]
    ports: usize,
    /// Ports per network (P/K networks are made, each with a /24 subnet).
    #[arg(long, default_value_t = 20, value_name = "K")]
    ports_per_network: usize,
    /// Concurrent API clients creating ports (as Nova's workers would).
    #[arg(long, default_value_t = 16, value_name = "C")]
    clients: usize,
    /// Port updates (a new fixed IP, one at a time) whose update-to-applied time is measured.
    #[arg(long, default_value_t = 200, value_name = "U")]
    updates: usize,
    /// Store of the in-process server (default: SQLite in a temporary directory).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Seconds between each agent's heartbeats (agents count as down after 2.5 of these).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    report_interval: u64,
    /// The least time between two switch configurations an agent sends: changes arriving
    /// sooner are folded into the next one (a lone change still goes at once).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    push_interval_ms: u64,
    /// Agents also space their configurations by this many times as long as their last
    /// changes waited to be applied (0: off). Thousands of simulated hosts share this
    /// machine's cores, where real ones each have their own: the wait grows with the
    /// overload, and the spacing with it.
    #[arg(long, default_value_t = 10, value_name = "N")]
    push_spacing: u32,
    /// Give up waiting for convergence after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Seed of the random host choices.
    #[arg(long, default_value_t = 1, value_name = "N")]
    seed: u64,
    /// Print the figures as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Port updates use addresses from .100 up; creations get .2 to .99.
const UPDATE_FIRST: u8 = 100;
/// The most ports per network: the creation pool's size.
const MAX_PORTS_PER_NETWORK: usize = 98;
/// How long one update may take to reach every host before it counts as lost.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);

/// splitmix64: reproducible choices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n).unwrap_or(0)
    }
}

/// What a host's switch holds, reduced to what convergence is judged on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Digest {
    taps: u64,
    tap_sum: u64,
    records: u64,
    record_sum: u64,
}

fn hash_of(value: impl Hash) -> u64 {
    // DefaultHasher::new() has fixed keys: the bench and the switches agree on every value.
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Digest {
    fn add_tap(&mut self, name: &str, mac: MacAddr, ips: &[IpAddr]) {
        let mut ips = ips.to_vec();
        ips.sort_unstable();
        self.taps += 1;
        self.tap_sum = self.tap_sum.wrapping_add(hash_of((name, mac.0, ips)));
    }

    fn add_record(&mut self, network: &str, ip: IpAddr, mac: MacAddr, remote: IpAddr) {
        self.records += 1;
        self.record_sum = self
            .record_sum
            .wrapping_add(hash_of((network, ip, mac.0, remote)));
    }

    fn of(config: &SwitchConfig) -> Self {
        let mut digest = Self::default();
        for port in &config.ports {
            if let PortType::Tap { vm, .. } = &port.kind {
                digest.add_tap(&port.name, vm.mac, &vm.ips);
            }
        }
        for record in &config.records {
            digest.add_record(&record.switch, record.ip, record.mac, record.remote);
        }
        digest
    }
}

/// One memory switch's state.
#[derive(Debug, Default)]
struct HostState {
    digest: Digest,
    /// Port names of the configuration in force (what `status` reports, all up).
    ports: Vec<String>,
    /// Logical switches and their VLANs (what `list` gives, for the agent's seeding).
    switches: Vec<(String, u16)>,
    generation: u64,
}

/// Which hosts must still show a fixed IP, and when the last one did.
#[derive(Debug)]
struct Probe {
    ip: IpAddr,
    waiting: HashSet<usize>,
    last: Option<Instant>,
}

/// Every host's memory switch, and the update probe.
#[derive(Debug, Default)]
struct Fleet {
    hosts: Vec<Mutex<HostState>>,
    probe: Mutex<Option<Probe>>,
    applied: AtomicU64,
    refused: AtomicU64,
    first_refusal: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Host `index`'s switch: `replace` is read by the switch's configuration reader and built
/// into tables exactly as `weft switch` does before it swaps them in; every TAP is up.
struct MemSwitch {
    fleet: Arc<Fleet>,
    host: usize,
}

impl MemSwitch {
    fn replace(&self, config: &Value) -> Result<Value, String> {
        let read = SwitchConfig::from_value(config).map_err(|err| err.to_string())?;
        let slot = self
            .fleet
            .hosts
            .get(self.host)
            .ok_or_else(|| "no such host".to_owned())?;
        let generation = lock(slot).generation + 1;
        read.tables(generation).map_err(|err| err.to_string())?;
        let digest = Digest::of(&read);
        let applied = Instant::now();
        let changed = {
            let mut state = lock(slot);
            let changed = state.digest != digest;
            state.digest = digest;
            state.generation = generation;
            state.ports = read.ports.iter().map(|p| p.name.clone()).collect();
            state.switches = read
                .switches
                .iter()
                .map(|s| (s.name.clone(), s.local_vlan))
                .collect();
            changed
        };
        self.fleet.applied.fetch_add(1, Ordering::Relaxed);
        let mut probe = lock(&self.fleet.probe);
        if let Some(probe) = probe.as_mut()
            && probe.waiting.contains(&self.host)
        {
            let shows = read
                .records
                .iter()
                .any(|r| r.ip == probe.ip)
                .then_some(())
                .or_else(|| {
                    read.ports
                        .iter()
                        .filter_map(|p| p.kind.vm())
                        .any(|vm| vm.ips.contains(&probe.ip))
                        .then_some(())
                });
            if shows.is_some() {
                probe.waiting.remove(&self.host);
                probe.last = Some(applied);
            }
        }
        Ok(json!({"changed": changed, "generation": generation}))
    }
}

impl MemorySwitch for MemSwitch {
    fn call(&self, request: &str) -> Result<Value, String> {
        let outcome = (|| {
            let request: Value =
                serde_json::from_str(request).map_err(|err| format!("not JSON: {err}"))?;
            let slot = self
                .fleet
                .hosts
                .get(self.host)
                .ok_or_else(|| "no such host".to_owned())?;
            match request.get("op").and_then(Value::as_str) {
                Some("replace") => self.replace(request.get("config").unwrap_or(&Value::Null)),
                Some("status") => {
                    let state = lock(slot);
                    let ports: Vec<Value> = state
                        .ports
                        .iter()
                        .map(|name| json!({"name": name, "type": "tap", "up": true}))
                        .collect();
                    Ok(json!({ "ports": ports }))
                }
                Some("list") => {
                    let state = lock(slot);
                    let switches: Vec<Value> = state
                        .switches
                        .iter()
                        .map(|(name, vlan)| json!({"name": name, "local_vlan": vlan}))
                        .collect();
                    Ok(json!({"mac_aging_secs": 300, "busy_poll_us": 0,
                              "switch": switches, "port": [], "record": []}))
                }
                other => Err(format!("unknown op {other:?}")),
            }
        })();
        if let Err(err) = &outcome
            && self.fleet.refused.fetch_add(1, Ordering::Relaxed) == 0
        {
            *lock(&self.fleet.first_refusal) = Some(err.clone());
        }
        outcome
    }
}

/// A network the bench made.
#[derive(Debug, Clone)]
struct Net {
    id: String,
    subnet: String,
    /// The /24's first three octets.
    prefix: [u8; 3],
    /// The next update address (last octet).
    next_update: u8,
}

/// A port the bench made, as the API answered.
#[derive(Debug, Clone)]
struct PortRec {
    id: String,
    net: usize,
    host: usize,
    mac: MacAddr,
    ips: Vec<IpAddr>,
}

fn host_name(index: usize) -> String {
    format!("sim-{index:05}")
}

/// Host `index`'s tunnel endpoint: 100.64.0.0/10, the shared address space, never routed.
fn tunnel_ip(index: usize) -> IpAddr {
    let n = u32::try_from(index).unwrap_or(u32::MAX) + 1;
    IpAddr::V4(Ipv4Addr::from(0x6440_0000 | (n & 0x003f_ffff)))
}

fn network_prefix(index: usize) -> [u8; 3] {
    let n = u32::try_from(index).unwrap_or(0);
    [10, ((n >> 8) & 0xff) as u8, (n & 0xff) as u8]
}

/// The figures.
#[derive(Debug, Default)]
struct Report {
    hosts: usize,
    ports: usize,
    networks: usize,
    push_interval_ms: u64,
    push_spacing: u32,
    phases: Vec<Phase>,
    create_seconds: f64,
    converged_seconds: Option<f64>,
    after_last_create_seconds: Option<f64>,
    hosts_converged: usize,
    configs_applied: u64,
    updates: Vec<f64>,
    update_timeouts: usize,
    update_api_ms: Vec<f64>,
    refused: u64,
}

fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (sorted.len() * per_mille)
        .div_ceil(1000)
        .clamp(1, sorted.len())
        - 1;
    sorted[index]
}

impl Report {
    fn to_json(&self) -> Value {
        let pct = |v: &[f64]| {
            json!({"count": v.len(), "p50_ms": percentile(v, 500), "p99_ms": percentile(v, 990),
                   "max_ms": v.last().copied().unwrap_or(0.0)})
        };
        json!({
            "hosts": self.hosts, "ports": self.ports, "networks": self.networks,
            "push_interval_ms": self.push_interval_ms,
            "push_spacing": self.push_spacing,
            "phases": self.phases.iter().map(Phase::to_json).collect::<Vec<_>>(),
            "port_create_seconds": self.create_seconds,
            "port_create_per_s": rate(self.ports, self.create_seconds),
            "converged_seconds": self.converged_seconds,
            "converged_after_last_create_seconds": self.after_last_create_seconds,
            "hosts_converged": self.hosts_converged,
            "configs_applied": self.configs_applied,
            "update_to_applied": pct(&self.updates),
            "update_timeouts": self.update_timeouts,
            "update_api": pct(&self.update_api_ms),
            "configs_refused": self.refused,
        })
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |name: &str, value: String| {
            out.push_str(&format!("{name:<44} {value}\n"));
        };
        row(
            "topology",
            format!(
                "{} hosts, {} networks, {} ports",
                self.hosts, self.networks, self.ports
            ),
        );
        row(
            "agents' least time between configurations",
            format!(
                "{} ms, or {}x the last one's wait",
                self.push_interval_ms, self.push_spacing
            ),
        );
        row(
            "port create (API)",
            format!(
                "{:.1} s, {:.0} ports/s",
                self.create_seconds,
                rate(self.ports, self.create_seconds)
            ),
        );
        row(
            "converged, from the first create",
            self.converged_seconds.map_or_else(
                || {
                    format!(
                        "NOT within the timeout ({} hosts did)",
                        self.hosts_converged
                    )
                },
                |s| format!("{s:.1} s"),
            ),
        );
        if let Some(s) = self.after_last_create_seconds {
            row("converged, after the last create", format!("{s:.1} s"));
        }
        row(
            "switch configurations applied",
            format!("{}", self.configs_applied),
        );
        let u = &self.updates;
        row(
            "port update to last host applied",
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} updates{})",
                percentile(u, 500),
                percentile(u, 990),
                u.last().copied().unwrap_or(0.0),
                u.len(),
                if self.update_timeouts > 0 {
                    format!(", {} timed out", self.update_timeouts)
                } else {
                    String::new()
                }
            ),
        );
        let a = &self.update_api_ms;
        row(
            "port update API answer",
            format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                percentile(a, 500),
                percentile(a, 990)
            ),
        );
        if self.refused > 0 {
            row("configurations refused", format!("{}", self.refused));
        }
        out
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Lets this process hold a socket per agent and per connection: 4 descriptors a host
/// (watch and posts, both ends) and then some.
fn raise_nofile(hosts: usize) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = u64::try_from(hosts).unwrap_or(u64::MAX / 8) * 6 + 4096;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= wanted {
        return Ok(());
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it, go as far as it allows.
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted.max(hard)).is_err() {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        if hard < wanted {
            eprintln!(
                "weft bench scale: only {hard} file descriptors allowed ({wanted} wanted); \
                 connections may fail"
            );
        }
    }
    Ok(())
}

/// Runs `weft bench scale`.
pub(crate) fn run(args: &ScaleArgs) -> Result<()> {
    if args.hosts == 0 || args.ports == 0 {
        bail!("--hosts and --ports must be more than 0");
    }
    if !(1..=MAX_PORTS_PER_NETWORK).contains(&args.ports_per_network) {
        bail!("--ports-per-network must be 1-{MAX_PORTS_PER_NETWORK}");
    }
    if args.ports.div_ceil(args.ports_per_network) > 65_536 {
        bail!("at most 65,536 networks (--ports / --ports-per-network)");
    }
    raise_nofile(args.hosts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_async(args))?;
    let mut failed = Vec::new();
    if report.refused > 0 {
        failed.push(format!("{} configurations were refused", report.refused));
    }
    if report.converged_seconds.is_none() {
        failed.push("the hosts did not converge".to_owned());
    }
    if report.update_timeouts > 0 {
        failed.push(format!("{} updates timed out", report.update_timeouts));
    }
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    // The agents' tasks are parked on sockets of a server that is gone; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

async fn run_async(args: &ScaleArgs) -> Result<Report> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        identity_listen: "127.0.0.1:0".parse()?,
        state_dir: dir.path().to_owned(),
        database_url: args.database_url.clone(),
        auth: controller::config::AuthMode::Noauth,
        agent_down_time_secs: (args.report_interval * 5 / 2).max(30),
        ..Config::default()
    };
    let listeners = Listeners::bind(&config).await?;
    let addr = listeners.network_addr();
    let state = App::open(config).await?;
    let token = state.agent_token.clone();
    let hub = Arc::clone(&state.hub);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(listeners.serve(state, async move {
        let _ = server_stopped.await;
    }));
    let base = format!("http://{addr}");
    let api = Api::new(base.clone(), "notused".into());
    let mut rng = Rng(args.seed);
    let mut report = Report {
        hosts: args.hosts,
        ports: args.ports,
        push_interval_ms: args.push_interval_ms,
        push_spacing: args.push_spacing,
        ..Report::default()
    };

    // The hosts.
    let fleet = Arc::new(Fleet {
        hosts: (0..args.hosts).map(|_| Mutex::default()).collect(),
        ..Fleet::default()
    });
    let (stop_agents, agents_stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    for index in 0..args.hosts {
        let host = HostConfig {
            host: host_name(index),
            tunnel_ip: tunnel_ip(index),
            tunnel_types: BTreeSet::from([TunnelType::Vxlan]),
            bridge_mappings: Default::default(),
            vepa: Default::default(),
            channel_networks: Default::default(),
            vxlan_source_ports: None,
            dhcp_lease_secs: desired::DEFAULT_DHCP_LEASE_SECS,
        };
        let mut config = AgentConfig::new(host, base.clone(), token.clone(), PathBuf::new());
        config.memory_switch = Some(SharedSwitch(Arc::new(MemSwitch {
            fleet: Arc::clone(&fleet),
            host: index,
        })));
        config.report_interval = Duration::from_secs(args.report_interval.max(1));
        config.min_push_interval = Duration::from_millis(args.push_interval_ms);
        config.push_spacing_factor = args.push_spacing;
        // Thousands of agents start at once against one process: be patient with it.
        config.request_timeout = Duration::from_secs(60);
        let mut stopped = agents_stopped.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(err) = agent::run(config, shutdown).await {
                eprintln!("weft bench scale: agent: {err}");
            }
        });
    }
    // Every agent registered (ports bind only to hosts with a live agent).
    loop {
        let agents = api
            .expect(
                Method::GET,
                "/v2.0/agents?alive=true&fields=host",
                None,
                200,
            )
            .await?;
        let alive = agents["agents"].as_array().map_or(0, Vec::len);
        if alive >= args.hosts {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            bail!("only {alive} of {} agents registered", args.hosts);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "weft bench scale: {} agents registered in {:.1} s",
        args.hosts,
        started.elapsed().as_secs_f64()
    );

    // Networks, each with a subnet.
    let network_count = args.ports.div_ceil(args.ports_per_network);
    report.networks = network_count;
    let napi = api.clone();
    let (phase, made) = run_phase(
        "network + subnet create",
        (0..network_count).collect(),
        args.clients,
        move |i: usize| {
            let api = napi.clone();
            tokio::spawn(async move {
                let body = json!({"network": {"name": format!("scale-{i}")}});
                let net = api
                    .expect(Method::POST, "/v2.0/networks", Some(body), 201)
                    .await?;
                let id = net["network"]["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no network id"))?
                    .to_owned();
                let [a, b, c] = network_prefix(i);
                let body = json!({"subnet": {"network_id": id, "ip_version": 4,
                    "cidr": format!("{a}.{b}.{c}.0/24"),
                    "allocation_pools": [{"start": format!("{a}.{b}.{c}.2"),
                                          "end": format!("{a}.{b}.{c}.99")}]}});
                let subnet = api
                    .expect(Method::POST, "/v2.0/subnets", Some(body), 201)
                    .await?;
                let subnet = subnet["subnet"]["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no subnet id"))?
                    .to_owned();
                Ok(Some((i, id, subnet)))
            })
        },
    )
    .await;
    report.phases.push(phase);
    if made.len() != network_count {
        bail!("only {} of {network_count} networks were made", made.len());
    }
    let mut nets: Vec<Option<Net>> = vec![None; network_count];
    for (i, id, subnet) in made {
        nets[i] = Some(Net {
            id,
            subnet,
            prefix: network_prefix(i),
            next_update: UPDATE_FIRST,
        });
    }
    let mut nets: Vec<Net> = nets.into_iter().flatten().collect();

    // Ports: the K ports of network n go to random hosts.
    let jobs: Vec<(usize, usize, String)> = (0..args.ports)
        .map(|i| {
            let net = i / args.ports_per_network;
            (net, rng.below(args.hosts), nets[net].id.clone())
        })
        .collect();
    let papi = api.clone();
    let first_create = Instant::now();
    let (phase, ports) = run_phase(
        &format!("port create + bind ({} clients)", args.clients),
        jobs,
        args.clients,
        move |(net, host, network_id): (usize, usize, String)| {
            let api = papi.clone();
            tokio::spawn(async move {
                let body = json!({"port": {"network_id": network_id,
                    "binding:host_id": host_name(host), "device_owner": "compute:nova",
                    "device_id": format!("vm-{host}")}});
                let port = api
                    .expect(Method::POST, "/v2.0/ports", Some(body), 201)
                    .await?;
                Ok(Some(port_record(&port["port"], net, host)?))
            })
        },
    )
    .await;
    let last_create = Instant::now();
    report.create_seconds = phase.seconds;
    report.phases.push(phase);
    if ports.len() != args.ports {
        bail!("only {} of {} ports were made", ports.len(), args.ports);
    }

    // What every host's switch must hold.
    let mut expected = vec![Digest::default(); args.hosts];
    let mut net_ports: Vec<Vec<usize>> = vec![Vec::new(); nets.len()];
    for (index, port) in ports.iter().enumerate() {
        net_ports[port.net].push(index);
        expected[port.host].add_tap(&desired::tap_name(&port.id), port.mac, &port.ips);
    }
    let net_hosts: Vec<BTreeSet<usize>> = net_ports
        .iter()
        .map(|list| list.iter().map(|p| ports[*p].host).collect())
        .collect();
    for (net, list) in net_ports.iter().enumerate() {
        for &p in list {
            let port = &ports[p];
            for &host in &net_hosts[net] {
                if host != port.host {
                    for ip in &port.ips {
                        expected[host].add_record(
                            &nets[net].id,
                            *ip,
                            port.mac,
                            tunnel_ip(port.host),
                        );
                    }
                }
            }
        }
    }

    // Convergence.
    let deadline = first_create + Duration::from_secs(args.timeout);
    let mut last_note = Instant::now();
    loop {
        let converged = fleet
            .hosts
            .iter()
            .zip(&expected)
            .filter(|(slot, want)| lock(slot).digest == **want)
            .count();
        report.hosts_converged = converged;
        if converged == args.hosts {
            let now = Instant::now();
            report.converged_seconds = Some((now - first_create).as_secs_f64());
            report.after_last_create_seconds = Some((now - last_create).as_secs_f64());
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        if last_note.elapsed() > Duration::from_secs(5) {
            last_note = Instant::now();
            eprintln!(
                "  {converged}/{} hosts converged, {} configurations applied, revision {}",
                args.hosts,
                fleet.applied.load(Ordering::Relaxed),
                hub.head()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.configs_applied = fleet.applied.load(Ordering::Relaxed);
    if let Some(s) = report.converged_seconds {
        eprintln!("  converged {s:.1} s after the first create");
    }

    // Updates, one at a time, once the device reports have settled.
    if report.converged_seconds.is_some() && args.updates > 0 {
        let mut head = hub.head();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = hub.head();
            if now == head {
                break;
            }
            head = now;
        }
        for _ in 0..args.updates {
            let index = rng.below(ports.len());
            let port = &ports[index];
            let net = &mut nets[port.net];
            if net.next_update == u8::MAX {
                continue;
            }
            let [a, b, c] = net.prefix;
            let ip = IpAddr::V4(Ipv4Addr::new(a, b, c, net.next_update));
            net.next_update += 1;
            *lock(&fleet.probe) = Some(Probe {
                ip,
                waiting: net_hosts[port.net].iter().copied().collect(),
                last: None,
            });
            let body = json!({"port": {"fixed_ips": [{"subnet_id": net.subnet,
                                                      "ip_address": ip.to_string()}]}});
            let sent = Instant::now();
            api.expect(
                Method::PUT,
                &format!("/v2.0/ports/{}", port.id),
                Some(body),
                200,
            )
            .await?;
            let answered = Instant::now();
            report
                .update_api_ms
                .push((answered - sent).as_secs_f64() * 1000.0);
            loop {
                let done = {
                    let probe = lock(&fleet.probe);
                    probe
                        .as_ref()
                        .and_then(|p| p.waiting.is_empty().then_some(p.last))
                };
                if let Some(last) = done {
                    let last = last.unwrap_or(answered);
                    report
                        .updates
                        .push(last.saturating_duration_since(answered).as_secs_f64() * 1000.0);
                    break;
                }
                if answered.elapsed() > UPDATE_TIMEOUT {
                    report.update_timeouts += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            *lock(&fleet.probe) = None;
        }
        report.updates.sort_by(f64::total_cmp);
        report.update_api_ms.sort_by(f64::total_cmp);
    }
    report.refused = fleet.refused.load(Ordering::Relaxed);
    if let Some(err) = lock(&fleet.first_refusal).as_ref() {
        eprintln!("weft bench scale: a switch refused a configuration: {err}");
    }
    let _ = stop_agents.send(true);
    let _ = stop_server.send(());
    drop(dir);
    Ok(report)
}

/// A created port as the bench keeps it.
fn port_record(port: &Value, net: usize, host: usize) -> Result<PortRec> {
    let id = port["id"].as_str().context("no port id")?.to_owned();
    let vif = port["binding:vif_type"].as_str().unwrap_or_default();
    if vif != "tap" {
        bail!("port {id} on host {host}: binding:vif_type {vif:?}");
    }
    let mac = port["mac_address"]
        .as_str()
        .and_then(|m| m.parse::<MacAddr>().ok())
        .context("no MAC")?;
    let ips = port["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["ip_address"].as_str()?.parse::<IpAddr>().ok())
        .collect();
    Ok(PortRec {
        id,
        net,
        host,
        mac,
        ips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_addresses_are_distinct() {
        assert_ne!(tunnel_ip(0), tunnel_ip(1));
        assert_eq!(tunnel_ip(0).to_string(), "100.64.0.1");
        assert_eq!(network_prefix(258), [10, 1, 2]);
        let mut a = Digest::default();
        let mut b = Digest::default();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        a.add_record("n", tunnel_ip(1), mac, tunnel_ip(2));
        a.add_record("n", tunnel_ip(3), mac, tunnel_ip(2));
        b.add_record("n", tunnel_ip(3), mac, tunnel_ip(2));
        b.add_record("n", tunnel_ip(1), mac, tunnel_ip(2));
        assert_eq!(a, b);
    }
}
