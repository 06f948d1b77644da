//! The agent against a fake controller (an axum server serving a scripted watch stream and
//! recording heartbeats and device reports) and a fake switch (a Unix control socket that
//! answers list/status/replace and records every request).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use agent::{AgentConfig, HostConfig, TunnelType, switch_config::Config};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hyper::body::{Bytes, Frame};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    sync::{Notify, mpsc, oneshot},
};

const TOKEN: &str = "s3cret";

// ---- the fake controller ------------------------------------------------------------------

/// One step of a scripted watch connection.
enum Step {
    /// Send this line (a newline is added).
    Line(Value),
    /// Send these bytes as they are (half a line).
    Raw(&'static str),
    /// Wait until the test opens this gate.
    Gate(Arc<Notify>),
    /// Break the connection (the chunked body never ends properly).
    Fail,
    /// End the stream cleanly.
    End,
}

#[derive(Default)]
struct Recorded {
    /// (host, since) of each watch request.
    watches: Vec<(String, u64)>,
    heartbeats: Vec<Value>,
    devices: Vec<Value>,
    /// Requests that came without the agent token.
    unauthorized: usize,
}

struct Controller {
    scripts: Mutex<VecDeque<Vec<Step>>>,
    recorded: Mutex<Recorded>,
}

/// A streaming body fed by a channel; an `Err` item aborts the connection.
struct ChannelBody(mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

fn authorized(controller: &Controller, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !ok {
        controller.recorded.lock().unwrap().unauthorized += 1;
    }
    ok
}

async fn watch(
    State(controller): State<Arc<Controller>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&controller, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let host = query.get("host").cloned().unwrap_or_default();
    let since = query
        .get("since")
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    controller
        .recorded
        .lock()
        .unwrap()
        .watches
        .push((host, since));
    let script = controller
        .scripts
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_default();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for step in script {
            let sent = match step {
                Step::Line(value) => tx.send(Ok(Bytes::from(format!("{value}\n")))),
                Step::Raw(text) => tx.send(Ok(Bytes::from_static(text.as_bytes()))),
                Step::Gate(gate) => {
                    gate.notified().await;
                    Ok(())
                }
                Step::Fail => {
                    let _ = tx.send(Err(std::io::Error::other("scripted break")));
                    return;
                }
                Step::End => return,
            };
            if sent.is_err() {
                return;
            }
        }
        // Out of steps: hold the stream open until the agent goes.
        tx.closed().await;
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::new(ChannelBody(rx)))
        .unwrap()
}

async fn agents(
    State(controller): State<Arc<Controller>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&controller, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    controller
        .recorded
        .lock()
        .unwrap()
        .heartbeats
        .push(body.clone());
    Json(json!({"agent": {"id": "a1", "host": body["agent"]["host"], "alive": true}}))
        .into_response()
}

async fn devices(
    State(controller): State<Arc<Controller>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&controller, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    controller
        .recorded
        .lock()
        .unwrap()
        .devices
        .push(body.clone());
    Json(json!({"updated": [], "ignored": []})).into_response()
}

async fn start_controller(scripts: Vec<Vec<Step>>) -> (Arc<Controller>, String) {
    let controller = Arc::new(Controller {
        scripts: Mutex::new(scripts.into()),
        recorded: Mutex::new(Recorded::default()),
    });
    let router = Router::new()
        .route("/weft/v1/watch", get(watch))
        .route("/weft/v1/agents", post(agents))
        .route("/weft/v1/devices", post(devices))
        .with_state(Arc::clone(&controller));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (controller, url)
}

// ---- the fake switch ----------------------------------------------------------------------

struct FakeSwitch {
    /// Every request line's op, in order.
    ops: Vec<String>,
    /// The config of every replace, in order.
    replaces: Vec<Config>,
    /// What `list` answers (the last replace's config once there is one).
    current: Value,
    /// TAP names `status` calls down.
    down: HashSet<String>,
}

fn answer(switch: &Mutex<FakeSwitch>, line: &str) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(line) else {
        return json!({"ok": false, "error": "request: not valid JSON"});
    };
    let mut switch = switch.lock().unwrap();
    let op = request["op"].as_str().unwrap_or("").to_owned();
    switch.ops.push(op.clone());
    match op.as_str() {
        "list" => json!({"ok": true, "result": switch.current}),
        "status" => {
            let ports: Vec<Value> = switch.current["port"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or("");
                    json!({"name": name, "type": p["type"], "up": !switch.down.contains(name)})
                })
                .collect();
            json!({"ok": true, "result": {"ports": ports}})
        }
        "replace" => match serde_json::from_value::<Config>(request["config"].clone()) {
            Ok(config) => {
                switch.current = request["config"].clone();
                switch.replaces.push(config);
                json!({"ok": true, "result": {"changed": true, "generation": switch.replaces.len()}})
            }
            Err(err) => json!({"ok": false, "error": format!("config: {err}")}),
        },
        other => json!({"ok": false, "error": format!("op: unknown operation {other:?}")}),
    }
}

fn start_switch(path: &std::path::Path, initial: Value) -> Arc<Mutex<FakeSwitch>> {
    let switch = Arc::new(Mutex::new(FakeSwitch {
        ops: Vec::new(),
        replaces: Vec::new(),
        current: initial,
        down: HashSet::new(),
    }));
    let listener = UnixListener::bind(path).unwrap();
    let shared = Arc::clone(&switch);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let switch = Arc::clone(&shared);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = answer(&switch, &line);
                    if write
                        .write_all(format!("{reply}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    switch
}

// ---- helpers ------------------------------------------------------------------------------

/// Sends the agent's logs to the test output (filtered by RUST_LOG, default warn).
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Polls `check` until it gives a value; fails after ten seconds.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn network(id: &str, mtu: u32) -> Value {
    json!({"id": id, "name": id, "tenant_id": "t", "project_id": "t", "admin_state_up": true,
           "mtu": mtu, "status": "ACTIVE", "subnets": [], "shared": false,
           "router:external": false, "port_security_enabled": true, "description": "",
           "tags": [], "created_at": "", "updated_at": "", "revision_number": 1,
           "provider:network_type": "vxlan", "provider:physical_network": null,
           "provider:segmentation_id": 100})
}

fn subnet(id: &str, network: &str, cidr: &str, gateway: &str) -> Value {
    json!({"id": id, "name": "", "tenant_id": "t", "project_id": "t", "network_id": network,
           "ip_version": 4, "enable_dhcp": true, "gateway_ip": gateway, "cidr": cidr,
           "allocation_pools": [], "host_routes": [], "dns_nameservers": ["192.0.2.53"],
           "description": "", "tags": [], "created_at": "", "updated_at": "",
           "revision_number": 1})
}

fn port(
    id: &str,
    network: &str,
    mac: &str,
    ip: &str,
    host: &str,
    tunnel: &str,
    segment: Value,
) -> Value {
    json!({"id": id, "name": "", "network_id": network, "tenant_id": "t", "project_id": "t",
           "mac_address": mac, "admin_state_up": true, "status": "DOWN", "device_id": "vm",
           "device_owner": "compute:nova",
           "fixed_ips": [{"subnet_id": "s", "ip_address": ip}],
           "allowed_address_pairs": [], "security_groups": [], "port_security_enabled": true,
           "binding:vnic_type": "normal", "description": "", "tags": [], "created_at": "",
           "updated_at": "", "revision_number": 1, "binding:host_id": host,
           "binding:profile": {}, "binding:vif_type": "tap", "binding:vif_details": {},
           "weft:binding": {"host": host, "vif_type": "tap", "segment": segment,
                            "tunnel_ip": tunnel, "levels": []}})
}

fn vxlan() -> Value {
    json!({"network_type": "vxlan", "physical_network": null, "segmentation_id": 100})
}

fn vlan() -> Value {
    json!({"network_type": "vlan", "physical_network": "physnet1", "segmentation_id": 200})
}

const P1: &str = "11111111-aaaa-4000-8000-000000000001";
const P2: &str = "22222222-aaaa-4000-8000-000000000002";
const P3: &str = "33333333-aaaa-4000-8000-000000000003";
const P5: &str = "55555555-aaaa-4000-8000-000000000005";
const TAP1: &str = "tap11111111-aa";
const TAP5: &str = "tap55555555-aa";

fn record_of<'a>(config: &'a Config, ip: &str) -> Option<&'a str> {
    config
        .record
        .iter()
        .find(|r| r.ip == ip)
        .map(|r| r.remote.as_str())
}

fn vlan_of(config: &Config, network: &str) -> Option<u16> {
    config
        .switch
        .iter()
        .find(|s| s.name == network)
        .map(|s| s.local_vlan)
}

fn reported(devices: &[Value], key: &str, port: &str) -> bool {
    devices.iter().any(|d| {
        d[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == port))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_agent_follows_the_watch_and_programs_the_switch() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("switch.sock");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();

    // What the switch has from a previous run of the agent: n1 on host-local VLAN 7.
    let switch = start_switch(
        &socket,
        json!({"mac_aging_secs": 120, "busy_poll_us": 0,
               "switch": [{"name": "n1", "local_vlan": 7, "segment": "vxlan:100", "flood": [],
                           "mac_limit": 8192}],
               "port": [{"name": "vxlan0", "type": "vxlan", "local_ip": "192.0.2.1", "port": 4789}],
               "record": []}),
    );

    let gates: Vec<Arc<Notify>> = (0..5).map(|_| Arc::new(Notify::new())).collect();
    let resync = json!({"type": "resync", "revision": 10,
        "networks": [network("n1", 1450)],
        "subnets": [subnet("s1", "n1", "10.0.0.0/24", "10.0.0.1")],
        "ports": [port(P1, "n1", "fa:16:3e:00:00:01", "10.0.0.5", "h1", "192.0.2.1", vxlan()),
                  port(P2, "n1", "fa:16:3e:00:00:02", "10.0.0.6", "h2", "192.0.2.2", vxlan())]});
    let put_p3 = json!({"type": "put", "revision": 11, "kind": "port",
        "object": port(P3, "n1", "fa:16:3e:00:00:03", "10.0.0.7", "h3", "192.0.2.3", vxlan())});
    let join_n2 = json!({"type": "join", "revision": 12, "network": network("n2", 1500),
        "subnets": [], "ports": [port(P5, "n2", "fa:16:3e:00:00:05", "10.2.0.5", "h1", "192.0.2.1", vlan())]});
    let move_p2 = json!({"type": "put", "revision": 13, "kind": "port",
        "object": port(P2, "n1", "fa:16:3e:00:00:02", "10.0.0.6", "h4", "192.0.2.4", vxlan())});
    let scripts = vec![
        // since=0: nothing until the test has checked the switch is untouched, then a
        // resync and a put, then half a line and a broken connection. (The gate before the
        // break lets the server flush what it wrote: an aborted connection loses its buffer.)
        vec![
            Step::Gate(Arc::clone(&gates[0])),
            Step::Line(resync),
            Step::Line(put_p3),
            Step::Raw(r#"{"type":"join","revision":12,"netw"#),
            Step::Gate(Arc::clone(&gates[4])),
            Step::Fail,
        ],
        // since=11: the join after all, a bookmark, a move, then a clean end.
        vec![
            Step::Line(join_n2),
            Step::Line(json!({"type": "bookmark", "revision": 12})),
            Step::Gate(Arc::clone(&gates[1])),
            Step::Line(move_p2),
            Step::End,
        ],
        // since=13: n1 leaves; then an event the view must refuse.
        vec![
            Step::Gate(Arc::clone(&gates[2])),
            Step::Line(json!({"type": "leave", "revision": 14, "network_id": "n1"})),
            Step::Gate(Arc::clone(&gates[3])),
            Step::Line(
                json!({"type": "put", "revision": 15, "kind": "port", "object": {"id": "x"}}),
            ),
        ],
        // since=0 again: a resync of what is left.
        vec![Step::Line(json!({"type": "resync", "revision": 20,
            "networks": [network("n2", 1500)], "subnets": [],
            "ports": [port(P5, "n2", "fa:16:3e:00:00:05", "10.2.0.5", "h1", "192.0.2.1", vlan())]}))],
    ];
    let (controller, url) = start_controller(scripts).await;

    let mut config = AgentConfig::new(
        HostConfig {
            host: "h1".into(),
            tunnel_ip: "192.0.2.1".parse().unwrap(),
            tunnel_types: [TunnelType::Vxlan].into(),
            bridge_mappings: [("physnet1".to_owned(), "pn1".to_owned())].into(),
            vepa: Default::default(),
            channel_networks: Default::default(),
            vxlan_source_ports: None,
            dhcp_lease_secs: 3600,
        },
        url,
        std::fs::read_to_string(&token_file).unwrap(),
        socket.clone(),
    );
    config.report_interval = Duration::from_millis(100);
    config.status_interval = Duration::from_millis(20);
    config.backoff_initial = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(50);
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(agent::run(config, async {
        let _ = stopped.await;
    }));

    // Connected and registered, but no event yet: the switch has not been touched at all.
    eventually("the first watch and two heartbeats", || {
        let recorded = controller.recorded.lock().unwrap();
        (recorded.watches.len() == 1 && recorded.heartbeats.len() >= 2).then_some(())
    })
    .await;
    assert!(
        switch.lock().unwrap().ops.is_empty(),
        "switch touched before any event"
    );
    {
        let recorded = controller.recorded.lock().unwrap();
        assert_eq!(recorded.watches[0], ("h1".to_owned(), 0));
        let first = &recorded.heartbeats[0]["agent"];
        assert_eq!(first["start_flag"], true);
        assert_eq!(first["agent_type"], "weft agent");
        assert_eq!(
            first["configurations"],
            json!({"bridge_mappings": {"physnet1": "pn1"}, "tunnel_types": ["vxlan"],
                   "tunneling_ip": "192.0.2.1", "l2_population": true, "devices": 0})
        );
        assert_eq!(recorded.heartbeats[1]["agent"]["start_flag"], false);
        assert_eq!(recorded.unauthorized, 0);
    }

    // The resync and the put: n1 keeps VLAN 7 from the switch, with both remote ports.
    gates[0].notify_one();
    let config = eventually("n1 with p2 and p3", || {
        let switch = switch.lock().unwrap();
        let last = switch.replaces.last()?;
        record_of(last, "10.0.0.7").is_some().then(|| last.clone())
    })
    .await;
    assert_eq!(
        switch.lock().unwrap().ops[0],
        "list",
        "VLANs are seeded first"
    );
    assert_eq!(vlan_of(&config, "n1"), Some(7));
    assert_eq!(
        config.mac_aging_secs,
        Some(120),
        "replace keeps the switch's settings"
    );
    assert_eq!(record_of(&config, "10.0.0.6"), Some("192.0.2.2"));
    assert_eq!(config.switch[0].flood, ["192.0.2.2", "192.0.2.3"]);
    assert_eq!(config.switch[0].dhcp[0].server_ip, "10.0.0.1");
    assert_eq!(config.switch[0].dhcp[0].lease_secs, 3600);
    assert!(config.port.iter().any(|p| p.name() == TAP1));
    gates[4].notify_one();

    // The connection broke in the middle of the join: the agent resumes after the put.
    let config = eventually("n2 joined", || {
        let switch = switch.lock().unwrap();
        let last = switch.replaces.last()?;
        vlan_of(last, "n2").map(|_| last.clone())
    })
    .await;
    assert_eq!(controller.recorded.lock().unwrap().watches[1].1, 11);
    assert_eq!(vlan_of(&config, "n2"), Some(1), "the lowest free VLAN");
    assert_eq!(vlan_of(&config, "n1"), Some(7), "n1 is not renumbered");
    assert_eq!(config.switch[1].segment, "vlan:physnet1:200");
    assert!(config.port.iter().any(|p| p.name() == TAP5));

    // The switch says both TAPs are up; then one goes down.
    eventually("both ports reported up", || {
        let recorded = controller.recorded.lock().unwrap();
        (reported(&recorded.devices, "up", P1) && reported(&recorded.devices, "up", P5))
            .then_some(())
    })
    .await;
    switch.lock().unwrap().down.insert(TAP1.to_owned());
    eventually("p1 reported down", || {
        let recorded = controller.recorded.lock().unwrap();
        reported(&recorded.devices, "down", P1).then_some(())
    })
    .await;
    let reports = controller.recorded.lock().unwrap().devices.clone();
    assert!(reports.iter().all(|d| d["host"] == "h1"));
    let p1_reports = reports
        .iter()
        .filter(|d| d.to_string().contains(P1))
        .count();
    assert_eq!(p1_reports, 2, "one report per change: {reports:?}");

    // p2 moves to h4: its record follows; then the stream ends and resumes from 13.
    gates[1].notify_one();
    eventually("p2's record behind h4", || {
        let switch = switch.lock().unwrap();
        let last = switch.replaces.last()?;
        (record_of(last, "10.0.0.6") == Some("192.0.2.4")).then_some(())
    })
    .await;
    eventually("the third watch", || {
        let recorded = controller.recorded.lock().unwrap();
        recorded.watches.get(2).map(|w| w.1)
    })
    .await;
    assert_eq!(controller.recorded.lock().unwrap().watches[2].1, 13);

    // n1 leaves: its switch, TAP and records go; n2 stays on its VLAN.
    gates[2].notify_one();
    let config = eventually("n1 gone", || {
        let switch = switch.lock().unwrap();
        let last = switch.replaces.last()?;
        vlan_of(last, "n1").is_none().then(|| last.clone())
    })
    .await;
    assert!(config.record.is_empty());
    assert!(config.port.iter().all(|p| p.name() != TAP1));
    assert_eq!(vlan_of(&config, "n2"), Some(1));

    // A malformed event: the agent starts over with since=0 and a resync; after it, every
    // port is reported again.
    let reports_before = controller.recorded.lock().unwrap().devices.len();
    let replaces_before = switch.lock().unwrap().replaces.len();
    gates[3].notify_one();
    eventually("the resync after the bad event", || {
        let recorded = controller.recorded.lock().unwrap();
        (recorded.watches.len() == 4).then_some(())
    })
    .await;
    eventually("p5 reported again after the resync", || {
        let recorded = controller.recorded.lock().unwrap();
        reported(&recorded.devices[reports_before..], "up", P5).then_some(())
    })
    .await;
    let sinces: Vec<u64> = controller
        .recorded
        .lock()
        .unwrap()
        .watches
        .iter()
        .map(|w| w.1)
        .collect();
    assert_eq!(sinces, [0, 11, 13, 0]);
    // The resync changed nothing the switch has: no new replace was needed.
    assert_eq!(switch.lock().unwrap().replaces.len(), replaces_before);

    eventually("a heartbeat counting one device", || {
        let recorded = controller.recorded.lock().unwrap();
        let last = recorded.heartbeats.last()?;
        (last["agent"]["configurations"]["devices"] == 1).then_some(())
    })
    .await;

    // Shutdown leaves the switch as it is.
    let ops_before = switch.lock().unwrap().ops.len();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    let switch = switch.lock().unwrap();
    assert!(
        switch.ops[ops_before..].iter().all(|op| op == "status"),
        "{:?}",
        &switch.ops[ops_before..]
    );
    assert_eq!(switch.current["switch"][0]["name"], "n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_refused_token_and_an_absent_switch_are_survived() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("switch.sock");
    let resync = json!({"type": "resync", "revision": 3, "networks": [network("n1", 1500)],
        "subnets": [],
        "ports": [port(P1, "n1", "fa:16:3e:00:00:01", "10.0.0.5", "h1", "192.0.2.1", vxlan())]});
    let (controller, url) = start_controller(vec![vec![Step::Line(resync)]]).await;

    // A wrong token: every request is refused, the agent keeps trying and touches nothing.
    let host = HostConfig {
        host: "h1".into(),
        tunnel_ip: "192.0.2.1".parse().unwrap(),
        tunnel_types: [TunnelType::Vxlan].into(),
        bridge_mappings: Default::default(),
        vepa: Default::default(),
        channel_networks: Default::default(),
        vxlan_source_ports: None,
        dhcp_lease_secs: 60,
    };
    let mut config = AgentConfig::new(host, url, "wrong".into(), socket.clone());
    config.report_interval = Duration::from_millis(50);
    config.backoff_initial = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(20);
    let (stop, stopped) = oneshot::channel::<()>();
    let wrong = tokio::spawn(agent::run(config.clone(), async {
        let _ = stopped.await;
    }));
    eventually("several refusals", || {
        (controller.recorded.lock().unwrap().unauthorized >= 4).then_some(())
    })
    .await;
    stop.send(()).unwrap();
    wrong.await.unwrap().unwrap();
    assert!(controller.recorded.lock().unwrap().watches.is_empty());

    // The right token but no switch yet: the agent waits for it, then configures it.
    config.token = TOKEN.into();
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(agent::run(config, async {
        let _ = stopped.await;
    }));
    eventually("the resync served", || {
        (controller.recorded.lock().unwrap().watches.len() == 1).then_some(())
    })
    .await;
    let switch = start_switch(&socket, json!({}));
    let config = eventually("a replace", || {
        switch.lock().unwrap().replaces.first().cloned()
    })
    .await;
    assert_eq!(vlan_of(&config, "n1"), Some(1));
    assert!(config.record.is_empty());
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
}
