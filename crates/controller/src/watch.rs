//! The watch: every agent's push stream (`GET /weft/v1/watch?host=H&since=REV`, contract in
//! `docs/agents.md`).
//!
//! One [`Hub`] per server process tails the revision log (woken by this process's commits and,
//! on PostgreSQL, by `LISTEN weft_revisions`, so every replica sees every replica's writes)
//! and keeps the networking state agents need in memory: networks, subnets, ports, and which
//! hosts have bound ports on which network. Each revision becomes at most one line per
//! interested host: a `put`/`delete` for hosts that already see the network, a `join` (the
//! network with its subnets and ports) for a host whose first port on it was just bound, a
//! `leave` for a host whose last one went. Every host keeps a backlog of its recent lines, so
//! a client that reconnects with `since=` its last revision gets exactly the lines it missed;
//! when that is no longer possible (the backlog moved past it, or it predates this process's
//! view) it gets a `resync` with its whole view instead.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use serde_json::{Map, Value, json};
use sqlx::Row;
use tokio::sync::{Notify, mpsc};

use crate::store::{Backend, Store};

/// Lines kept per host for resuming.
pub const BACKLOG: usize = 512;
/// Lines a slow watcher may have queued before it is cut off (it then resumes).
const QUEUE: usize = 4096;
/// Revisions read per query while catching up.
const BATCH: i64 = 2000;
/// How often the tail looks even without being woken (a lost notification costs this much).
const FALLBACK_POLL: Duration = Duration::from_secs(1);
/// The PostgreSQL notification channel commits are announced on.
pub const CHANNEL: &str = "weft_revisions";

/// A stream's first lines and its live feed.
#[derive(Debug)]
pub struct Subscription {
    /// Lines to send before the live ones (a resync, or the missed backlog).
    pub initial: Vec<Arc<str>>,
    /// Live lines.
    pub live: mpsc::Receiver<Arc<str>>,
}

/// The in-memory view and the per-host feeds.
#[derive(Debug)]
pub struct Hub {
    store: Arc<Store>,
    inner: Mutex<Inner>,
    /// Woken after each local commit (and by the PostgreSQL listener).
    pub wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last revision applied.
    head: i64,
    /// The revision the state was loaded at: resuming from before it needs a resync.
    start: i64,
    networks: HashMap<String, Arc<str>>,
    subnets: HashMap<String, (String, Arc<str>)>,
    net_subnets: HashMap<String, BTreeSet<String>>,
    ports: HashMap<String, PortEntry>,
    net_ports: HashMap<String, BTreeSet<String>>,
    net_hosts: HashMap<String, HashMap<String, u32>>,
    host_nets: HashMap<String, BTreeSet<String>>,
    feeds: HashMap<String, Feed>,
    /// Set while the tables are read at start: loading makes no lines (nobody listens yet,
    /// and a join per port would cost the square of a network's size).
    loading: bool,
}

#[derive(Debug)]
struct PortEntry {
    network: String,
    host: Option<String>,
    json: Arc<str>,
}

#[derive(Debug, Default)]
struct Feed {
    backlog: VecDeque<(i64, Arc<str>)>,
    /// The newest revision dropped from the backlog.
    evicted: i64,
    watchers: Vec<mpsc::Sender<Arc<str>>>,
}

/// Why the hub could not read the store.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A query failed.
    #[error("reading the revision log: {0}")]
    Store(#[from] sqlx::Error),
    /// A stored body is not JSON.
    #[error("revision {rev}: unreadable body: {reason}")]
    Body {
        /// Which revision (0 while loading the tables).
        rev: i64,
        /// The parser's complaint.
        reason: String,
    },
}

impl Hub {
    /// Loads the current state from the store.
    pub async fn open(store: Arc<Store>) -> Result<Arc<Self>, HubError> {
        // The store's commit notifier is the wake-up: without it the tail only looked once
        // a FALLBACK_POLL, and every change reached the agents up to a second late.
        let wake = store.commits();
        let hub = Arc::new(Self {
            store,
            inner: Mutex::new(Inner::default()),
            wake,
        });
        hub.reload().await?;
        Ok(hub)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last revision applied.
    pub fn head(&self) -> i64 {
        self.lock().head
    }

    /// Reads the whole state afresh (at start, and when the log has been compacted past us).
    /// Every watcher is cut off; each reconnects and gets a resync.
    async fn reload(&self) -> Result<(), HubError> {
        let mut tx = self.store.pool().begin().await?;
        if self.store.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let rev: i64 = sqlx::query("SELECT rev FROM revision_counter WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut tables = Vec::new();
        for table in ["networks", "subnets", "ports"] {
            let sql = format!("SELECT body, admin_body FROM {table} ORDER BY id");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?;
            let mut objects = Vec::with_capacity(rows.len());
            for row in rows {
                let body: String = row.try_get(0)?;
                let admin: String = row.try_get(1)?;
                objects.push(crate::network::model::splice(&body, &admin, true));
            }
            tables.push(objects);
        }
        tx.commit().await?;
        let mut fresh = Inner {
            head: rev,
            start: rev,
            ..Inner::default()
        };
        fresh.loading = true;
        for (kind, objects) in ["network", "subnet", "port"].into_iter().zip(tables) {
            for text in objects {
                let object = parse(0, &text)?;
                fresh.apply(0, kind, "create", object);
            }
        }
        fresh.loading = false;
        let mut inner = self.lock();
        *inner = fresh;
        Ok(())
    }

    /// Applies every revision after the head; returns how many.
    pub async fn catch_up(&self) -> Result<usize, HubError> {
        let mut total = 0;
        loop {
            let head = self.head();
            let rows = sqlx::query(
                "SELECT rev, resource, operation, body FROM revisions WHERE rev > $1 \
                 ORDER BY rev LIMIT $2",
            )
            .bind(head)
            .bind(BATCH)
            .fetch_all(self.store.pool())
            .await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let first: i64 = rows[0].try_get(0)?;
            if first != head + 1 {
                tracing::warn!(
                    head,
                    first,
                    "revision log compacted past the watch; reloading"
                );
                self.reload().await?;
                continue;
            }
            let mut decoded = Vec::with_capacity(rows.len());
            for row in &rows {
                let rev: i64 = row.try_get(0)?;
                let resource: String = row.try_get(1)?;
                let operation: String = row.try_get(2)?;
                let body: String = row.try_get(3)?;
                let object = match resource.as_str() {
                    "network" | "subnet" | "port" => Some(parse(rev, &body)?),
                    _ => None,
                };
                decoded.push((rev, resource, operation, object));
            }
            let count = decoded.len();
            let mut inner = self.lock();
            for (rev, resource, operation, object) in decoded {
                if let Some(object) = object {
                    inner.apply(rev, &resource, &operation, object);
                }
                inner.head = rev;
            }
            drop(inner);
            total += count;
            if i64::try_from(count).unwrap_or(i64::MAX) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Tails the log until the process ends: woken by commits, or every second regardless.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(err) = self.catch_up().await {
                tracing::warn!(%err, "watch: catching up failed; retrying");
                tokio::time::sleep(FALLBACK_POLL).await;
                continue;
            }
            let _ = tokio::time::timeout(FALLBACK_POLL, self.wake.notified()).await;
        }
    }

    /// Listens for other replicas' commits (PostgreSQL) and wakes the tail on each.
    pub async fn listen_postgres(self: Arc<Self>, url: String) {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(err) = listener.listen(CHANNEL).await {
                        tracing::warn!(%err, "watch: LISTEN failed");
                    } else {
                        // Whatever was committed while we were not listening.
                        self.wake.notify_one();
                        while listener.recv().await.is_ok() {
                            self.wake.notify_one();
                        }
                    }
                }
                Err(err) => tracing::warn!(%err, "watch: connecting the listener failed"),
            }
            tokio::time::sleep(FALLBACK_POLL).await;
        }
    }

    /// Starts a stream for `host` from `since` (0: from a resync).
    pub fn subscribe(&self, host: &str, since: i64) -> Subscription {
        let mut inner = self.lock();
        let (tx, live) = mpsc::channel(QUEUE);
        let head = inner.head;
        let start = inner.start;
        let resumable = since > 0 && since >= start && since <= head;
        let feed = inner.feeds.entry(host.to_owned()).or_default();
        let initial = if resumable && since >= feed.evicted {
            feed.backlog
                .iter()
                .filter(|(rev, _)| *rev > since)
                .map(|(_, line)| Arc::clone(line))
                .collect()
        } else {
            Vec::new()
        };
        feed.watchers.push(tx);
        let initial = if resumable && since >= feed.evicted {
            initial
        } else {
            vec![inner.resync(host)]
        };
        Subscription { initial, live }
    }

    /// A bookmark at the head, if every line for this stream up to it has been taken off
    /// `live` (so a client resuming from it misses nothing).
    pub fn bookmark(&self, live: &mpsc::Receiver<Arc<str>>) -> Option<Arc<str>> {
        let inner = self.lock();
        live.is_empty().then(|| {
            Arc::from(format!(
                "{{\"type\":\"bookmark\",\"revision\":{}}}\n",
                inner.head
            ))
        })
    }
}

fn parse(rev: i64, text: &str) -> Result<Map<String, Value>, HubError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(HubError::Body {
            rev,
            reason: "not an object".into(),
        }),
        Err(err) => Err(HubError::Body {
            rev,
            reason: err.to_string(),
        }),
    }
}

fn text(object: &Map<String, Value>, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The binding an agent acts on, from a port's admin attributes (`null` unless bound).
fn binding_of(port: &Map<String, Value>) -> Value {
    let host = text(port, "binding:host_id");
    let vif_type = text(port, "binding:vif_type");
    if host.is_empty() || vif_type == "unbound" || vif_type == "binding_failed" {
        return Value::Null;
    }
    let details = port
        .get("binding:vif_details")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let segment = details.get("bound_segment").cloned().unwrap_or(Value::Null);
    let levels = details
        .get("bound_levels")
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "host": host,
        "vif_type": vif_type,
        "segment": segment,
        "tunnel_ip": details.get("tunnel_ip").cloned().unwrap_or(Value::Null),
        "levels": levels,
    })
}

impl Inner {
    fn hosts_on(&self, network: &str) -> HashSet<String> {
        self.net_hosts
            .get(network)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies one revision and sends each interested host its line.
    fn apply(&mut self, rev: i64, kind: &str, operation: &str, mut object: Map<String, Value>) {
        let id = text(&object, "id");
        let delete = operation == "delete";
        match kind {
            "network" => {
                let targets = self.hosts_on(&id);
                if delete {
                    self.networks.remove(&id);
                    for subnet in self.net_subnets.remove(&id).unwrap_or_default() {
                        self.subnets.remove(&subnet);
                    }
                    for port in self.net_ports.remove(&id).unwrap_or_default() {
                        self.ports.remove(&port);
                    }
                    self.net_hosts.remove(&id);
                    for host in &targets {
                        if let Some(nets) = self.host_nets.get_mut(host) {
                            nets.remove(&id);
                        }
                    }
                    let line = delete_line(rev, "network", &id);
                    self.send(rev, &targets, &line);
                } else {
                    let json: Arc<str> = Arc::from(Value::Object(object).to_string());
                    self.networks.insert(id, Arc::clone(&json));
                    let line = put_line(rev, "network", &json);
                    self.send(rev, &targets, &line);
                }
            }
            "subnet" => {
                let network = if delete {
                    self.subnets.get(&id).map(|(n, _)| n.clone())
                } else {
                    Some(text(&object, "network_id"))
                };
                let Some(network) = network else { return };
                let targets = self.hosts_on(&network);
                if delete {
                    self.subnets.remove(&id);
                    if let Some(set) = self.net_subnets.get_mut(&network) {
                        set.remove(&id);
                    }
                    let line = delete_line(rev, "subnet", &id);
                    self.send(rev, &targets, &line);
                } else {
                    let json: Arc<str> = Arc::from(Value::Object(object).to_string());
                    self.net_subnets
                        .entry(network.clone())
                        .or_default()
                        .insert(id.clone());
                    self.subnets.insert(id, (network, Arc::clone(&json)));
                    let line = put_line(rev, "subnet", &json);
                    self.send(rev, &targets, &line);
                }
            }
            "port" => {
                let network = text(&object, "network_id");
                let new = if delete {
                    None
                } else {
                    let binding = binding_of(&object);
                    let host = binding
                        .get("host")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    object.insert("weft:binding".into(), binding);
                    Some(PortEntry {
                        network: network.clone(),
                        host,
                        json: Arc::from(Value::Object(object).to_string()),
                    })
                };
                let old = self.ports.remove(&id);
                let network = old.as_ref().map_or(network, |o| o.network.clone());
                let old_host = old.and_then(|o| o.host);
                let new_host = new.as_ref().and_then(|n| n.host.clone());
                if old_host == new_host {
                    // The common case (a status flip, a new address, a create of an unbound
                    // port): which hosts see the network does not change, so every one of
                    // them gets the line, with no host sets built.
                    let line = match &new {
                        Some(entry) => put_line(rev, "port", &entry.json),
                        None => delete_line(rev, "port", &id),
                    };
                    match new {
                        Some(entry) => {
                            self.net_ports
                                .entry(network.clone())
                                .or_default()
                                .insert(id.clone());
                            self.ports.insert(id, entry);
                        }
                        None => {
                            if let Some(set) = self.net_ports.get_mut(&network) {
                                set.remove(&id);
                            }
                        }
                    }
                    if !self.loading
                        && let Some(hosts) = self.net_hosts.get(&network)
                    {
                        send_to(&mut self.feeds, rev, hosts.keys(), &line);
                    }
                    return;
                }
                let before = self.hosts_on(&network);
                if let Some(host) = &old_host {
                    self.uncount(&network, host);
                }
                if let Some(host) = &new_host {
                    self.count(&network, host);
                }
                let json = new.as_ref().map(|n| Arc::clone(&n.json));
                match new {
                    Some(entry) => {
                        self.net_ports
                            .entry(network.clone())
                            .or_default()
                            .insert(id.clone());
                        self.ports.insert(id.clone(), entry);
                    }
                    None => {
                        if let Some(set) = self.net_ports.get_mut(&network) {
                            set.remove(&id);
                        }
                    }
                }
                let after = self.hosts_on(&network);
                let stayed: HashSet<String> = before.intersection(&after).cloned().collect();
                let line = match &json {
                    Some(json) => put_line(rev, "port", json),
                    None => delete_line(rev, "port", &id),
                };
                self.send(rev, &stayed, &line);
                let joined: HashSet<String> = after.difference(&before).cloned().collect();
                if !joined.is_empty() && !self.loading {
                    let line = self.join_line(rev, &network);
                    self.send(rev, &joined, &line);
                }
                let left: HashSet<String> = before.difference(&after).cloned().collect();
                if !left.is_empty() {
                    let line: Arc<str> = Arc::from(format!(
                        "{{\"type\":\"leave\",\"revision\":{rev},\"network_id\":{}}}\n",
                        Value::String(network.clone())
                    ));
                    self.send(rev, &left, &line);
                }
            }
            _ => {}
        }
    }

    fn count(&mut self, network: &str, host: &str) {
        *self
            .net_hosts
            .entry(network.to_owned())
            .or_default()
            .entry(host.to_owned())
            .or_default() += 1;
        self.host_nets
            .entry(host.to_owned())
            .or_default()
            .insert(network.to_owned());
    }

    fn uncount(&mut self, network: &str, host: &str) {
        let Some(hosts) = self.net_hosts.get_mut(network) else {
            return;
        };
        if let Some(n) = hosts.get_mut(host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                hosts.remove(host);
                if let Some(nets) = self.host_nets.get_mut(host) {
                    nets.remove(network);
                }
            }
        }
        if hosts.is_empty() {
            self.net_hosts.remove(network);
        }
    }

    /// The network, its subnets and its ports, as JSON arrays' contents.
    fn network_parts(&self, network: &str) -> NetworkParts {
        let subnets = self
            .net_subnets
            .get(network)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subnets.get(id).map(|(_, j)| Arc::clone(j)))
            .collect();
        let ports = self
            .net_ports
            .get(network)
            .into_iter()
            .flatten()
            .filter_map(|id| self.ports.get(id).map(|p| Arc::clone(&p.json)))
            .collect();
        (self.networks.get(network).cloned(), subnets, ports)
    }

    fn join_line(&self, rev: i64, network: &str) -> Arc<str> {
        let (net, subnets, ports) = self.network_parts(network);
        let net = net.map_or_else(|| "null".to_owned(), |n| n.to_string());
        Arc::from(format!(
            "{{\"type\":\"join\",\"revision\":{rev},\"network\":{net},\"subnets\":[{}],\"ports\":[{}]}}\n",
            join(&subnets),
            join(&ports)
        ))
    }

    fn resync(&self, host: &str) -> Arc<str> {
        let mut networks = Vec::new();
        let mut subnets = Vec::new();
        let mut ports = Vec::new();
        for network in self.host_nets.get(host).into_iter().flatten() {
            let (net, mut s, mut p) = self.network_parts(network);
            networks.extend(net);
            subnets.append(&mut s);
            ports.append(&mut p);
        }
        Arc::from(format!(
            "{{\"type\":\"resync\",\"revision\":{},\"networks\":[{}],\"subnets\":[{}],\"ports\":[{}]}}\n",
            self.head,
            join(&networks),
            join(&subnets),
            join(&ports)
        ))
    }

    fn send(&mut self, rev: i64, hosts: &HashSet<String>, line: &Arc<str>) {
        if self.loading {
            return;
        }
        send_to(&mut self.feeds, rev, hosts.iter(), line);
    }
}

/// Appends `line` to each host's backlog and hands it to its watchers.
fn send_to<'a>(
    feeds: &mut HashMap<String, Feed>,
    rev: i64,
    hosts: impl Iterator<Item = &'a String>,
    line: &Arc<str>,
) {
    for host in hosts {
        // Looked up before inserting: the host's name is copied once, not once per line.
        let feed = match feeds.get_mut(host) {
            Some(feed) => feed,
            None => feeds.entry(host.clone()).or_default(),
        };
        feed.backlog.push_back((rev, Arc::clone(line)));
        while feed.backlog.len() > BACKLOG {
            if let Some((old, _)) = feed.backlog.pop_front() {
                feed.evicted = old;
            }
        }
        // A watcher that cannot keep up is cut off; it resumes from its last line.
        feed.watchers
            .retain(|tx| tx.try_send(Arc::clone(line)).is_ok());
    }
}

/// A network's JSON, its subnets' and its ports'.
type NetworkParts = (Option<Arc<str>>, Vec<Arc<str>>, Vec<Arc<str>>);

fn join(parts: &[Arc<str>]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(part);
    }
    out
}

fn put_line(rev: i64, kind: &str, json: &str) -> Arc<str> {
    Arc::from(format!(
        "{{\"type\":\"put\",\"revision\":{rev},\"kind\":\"{kind}\",\"object\":{json}}}\n"
    ))
}

fn delete_line(rev: i64, kind: &str, id: &str) -> Arc<str> {
    Arc::from(format!(
        "{{\"type\":\"delete\",\"revision\":{rev},\"kind\":\"{kind}\",\"id\":{}}}\n",
        Value::String(id.to_owned())
    ))
}
