//! `weft bench api`: creates, lists and deletes networks, subnets and ports through the HTTP
//! API with keep-alive connections, one client and many, and reports requests/s and p50/p99
//! per phase. It measures an in-process `weft server` (temporary SQLite store, or
//! `--database-url`) unless `--url` points it at any Neutron-compatible endpoint.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use controller::{App, Listeners, config::Config};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

/// `weft bench api`.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The networking endpoint to measure (e.g. a real Neutron on http://127.0.0.1:9696);
    /// default: an in-process weft server.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// `X-Auth-Token` to send with --url (`notused` suits a noauth Neutron).
    #[arg(long, default_value = "notused", value_name = "TOKEN")]
    token: String,
    /// Store of the in-process server (default: SQLite in a temporary directory).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Networks (each with one /16 subnet, so 65,533 ports each) to create.
    #[arg(long, default_value_t = 20, value_name = "N")]
    networks: usize,
    /// Ports to create in the timed phases.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    ports: usize,
    /// Extra ports stored before the list phase (untimed), so the 1,000-port page is read
    /// from a big table.
    #[arg(long, default_value_t = 0, value_name = "N")]
    fill: usize,
    /// Concurrent clients in the concurrent phases.
    #[arg(long, default_value_t = 16, value_name = "N")]
    concurrency: usize,
    /// Times the 1,000-port page is read.
    #[arg(long, default_value_t = 50, value_name = "N")]
    list_repeats: usize,
    /// Print the figures as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// One measured phase.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    pub(crate) name: String,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

impl Phase {
    pub(crate) fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"phase": self.name, "requests": self.requests, "errors": self.errors,
            "seconds": self.seconds, "requests_per_s": self.rate(),
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms})
    }
}

/// A keep-alive HTTP client of one Neutron endpoint (also `weft bench scale`'s, playing Nova).
#[derive(Clone)]
pub(crate) struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
}

impl Api {
    /// A client of `base` (`http://host:port`) sending `token` as `X-Auth-Token`.
    pub(crate) fn new(base: String, token: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            base,
            token,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-auth-token", &self.token)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let response = self
            .client
            .request(request)
            .await
            .context("request failed")?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// Sends and checks the status; returns the parsed body (Null for empty ones).
    pub(crate) async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let (status, bytes) = self.call(method.clone(), path, body).await?;
        if status != want {
            bail!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// Runs `jobs` through `concurrency` workers; each job returns a value (kept) or fails
/// (counted; the first few are printed).
pub(crate) async fn run_phase<T: Send + 'static, R: Send + 'static>(
    name: &str,
    jobs: Vec<T>,
    concurrency: usize,
    job: impl Fn(T) -> tokio::task::JoinHandle<Result<Option<R>>> + Send + Sync + 'static,
) -> (Phase, Vec<R>) {
    let total = jobs.len();
    let queue = Arc::new(std::sync::Mutex::new(jobs.into_iter()));
    let job = Arc::new(job);
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (queue, job, errors) = (Arc::clone(&queue), Arc::clone(&job), Arc::clone(&errors));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ids = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(item) = next else { break };
                let began = Instant::now();
                match job(item).await {
                    Ok(Ok(id)) => ids.extend(id),
                    Ok(Err(err)) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("weft bench: {err:#}");
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(began.elapsed());
            }
            (latencies, ids)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    for worker in workers {
        if let Ok((l, i)) = worker.await {
            latencies.extend(l);
            ids.extend(i);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    // Nearest-rank percentile, `per_mille` of the requests at or below.
    let pick = |per_mille: usize| {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = (latencies.len() * per_mille)
            .div_ceil(1000)
            .clamp(1, latencies.len())
            - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    let phase = Phase {
        name: name.to_owned(),
        requests: total,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_ms: pick(500),
        p99_ms: pick(990),
    };
    eprintln!(
        "  {:<32} {:>7} req  {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
        phase.name,
        phase.requests,
        phase.rate(),
        phase.p50_ms,
        phase.p99_ms,
        if phase.errors > 0 {
            format!("  ({} errors)", phase.errors)
        } else {
            String::new()
        }
    );
    (phase, ids)
}

fn id_from(body: &Value, resource: &str) -> Result<Option<String>> {
    body[resource]["id"]
        .as_str()
        .map(|id| Some(id.to_owned()))
        .ok_or_else(|| anyhow!("no {resource} id in the answer"))
}

/// Runs `weft bench api`.
pub(crate) fn run(args: &ApiArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &ApiArgs) -> Result<()> {
    let mut _dir = None;
    let mut _server = None;
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let dir = tempfile::tempdir()?;
            let config = Config {
                listen: "127.0.0.1:0".parse()?,
                identity_listen: "127.0.0.1:0".parse()?,
                state_dir: dir.path().to_owned(),
                database_url: args.database_url.clone(),
                auth: controller::config::AuthMode::Noauth,
                ..Config::default()
            };
            let listeners = Listeners::bind(&config).await?;
            let addr = listeners.network_addr();
            let state = App::open(config).await?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(listeners.serve(state, async move {
                let _ = stopped.await;
            }));
            _server = Some(stop);
            _dir = Some(dir);
            format!("http://{addr}")
        }
    };
    eprintln!(
        "weft bench api: measuring {base} ({} clients in concurrent phases)",
        args.concurrency
    );
    let api = Api::new(base, args.token.clone());
    api.expect(Method::GET, "/v2.0/networks?limit=1", None, 200)
        .await
        .context("the endpoint does not answer")?;
    let c = args.concurrency;
    let mut phases = Vec::new();

    let create_net = |api: Api| {
        move |i: usize| {
            let api = api.clone();
            tokio::spawn(async move {
                let body =
                    json!({"network": {"name": format!("bench-net-{i}"), "admin_state_up": true}});
                id_from(
                    &api.expect(Method::POST, "/v2.0/networks", Some(body), 201)
                        .await?,
                    "network",
                )
            })
        }
    };
    let half = args.networks / 2;
    let (p, mut nets) = run_phase(
        "network create (1 client)",
        (0..half).collect(),
        1,
        create_net(api.clone()),
    )
    .await;
    phases.push(p);
    let (p, more) = run_phase(
        &format!("network create ({c} clients)"),
        (half..args.networks).collect(),
        c,
        create_net(api.clone()),
    )
    .await;
    phases.push(p);
    nets.extend(more);
    if nets.is_empty() {
        bail!("no network was created");
    }
    let subnet_jobs: Vec<(usize, String)> = nets.iter().cloned().enumerate().collect();
    let sapi = api.clone();
    let (p, subnets) = run_phase("subnet create", subnet_jobs, c, move |(i, net): (usize, String)| {
        let api = sapi.clone();
        tokio::spawn(async move {
            let body = json!({"subnet": {"network_id": net, "ip_version": 4, "name": format!("bench-sub-{i}"),
                "cidr": format!("10.{}.0.0/16", i % 200)}});
            id_from(&api.expect(Method::POST, "/v2.0/subnets", Some(body), 201).await?, "subnet")
        })
    })
    .await;
    phases.push(p);
    let nets = Arc::new(nets);
    let create_port = |api: Api, nets: Arc<Vec<String>>| {
        move |i: usize| {
            let api = api.clone();
            let net = nets[i % nets.len()].clone();
            tokio::spawn(async move {
                let body = json!({"port": {"network_id": net, "name": format!("bench-port-{i}"), "admin_state_up": true}});
                id_from(
                    &api.expect(Method::POST, "/v2.0/ports", Some(body), 201)
                        .await?,
                    "port",
                )
            })
        }
    };
    let sequential = (args.ports / 10).min(500);
    let (p, mut ports) = run_phase(
        "port create (1 client)",
        (0..sequential).collect(),
        1,
        create_port(api.clone(), Arc::clone(&nets)),
    )
    .await;
    phases.push(p);
    let (p, more) = run_phase(
        &format!("port create ({c} clients)"),
        (sequential..args.ports).collect(),
        c,
        create_port(api.clone(), Arc::clone(&nets)),
    )
    .await;
    phases.push(p);
    ports.extend(more);
    if args.fill > 0 {
        let start = args.ports;
        let (_, more) = run_phase(
            "fill (untimed)",
            (start..start + args.fill).collect(),
            c,
            create_port(api.clone(), Arc::clone(&nets)),
        )
        .await;
        ports.extend(more);
    }
    let lapi = api.clone();
    let (p, _) = run_phase(
        &format!("port list, 1000-port page ({} stored)", ports.len()),
        (0..args.list_repeats).collect(),
        1,
        move |_| {
            let api = lapi.clone();
            tokio::spawn(async move {
                // Not parsed: the client's JSON parsing would dominate what is measured.
                let (status, bytes) = api
                    .call(Method::GET, "/v2.0/ports?limit=1000", None)
                    .await?;
                if status != 200 || !bytes.starts_with(b"{\"ports\":[{") {
                    bail!("port list: {status}");
                }
                Ok(None::<String>)
            })
        },
    )
    .await;
    phases.push(p);
    let shown: Vec<String> = ports.iter().take(500).cloned().collect();
    let gapi = api.clone();
    let (p, _) = run_phase(
        &format!("port show ({c} clients)"),
        shown,
        c,
        move |id: String| {
            let api = gapi.clone();
            tokio::spawn(async move {
                api.expect(Method::GET, &format!("/v2.0/ports/{id}"), None, 200)
                    .await?;
                Ok(None::<String>)
            })
        },
    )
    .await;
    phases.push(p);
    let delete = |api: Api, collection: &'static str| {
        move |id: String| {
            let api = api.clone();
            tokio::spawn(async move {
                api.expect(
                    Method::DELETE,
                    &format!("/v2.0/{collection}/{id}"),
                    None,
                    204,
                )
                .await?;
                Ok(None::<String>)
            })
        }
    };
    let (p, _) = run_phase(
        &format!("port delete ({c} clients)"),
        ports,
        c,
        delete(api.clone(), "ports"),
    )
    .await;
    phases.push(p);
    let (p, _) = run_phase(
        &format!("subnet delete ({c} clients)"),
        subnets,
        c,
        delete(api.clone(), "subnets"),
    )
    .await;
    phases.push(p);
    let nets = Arc::try_unwrap(nets).unwrap_or_else(|arc| (*arc).clone());
    let (p, _) = run_phase(
        &format!("network delete ({c} clients)"),
        nets,
        c,
        delete(api.clone(), "networks"),
    )
    .await;
    phases.push(p);

    if args.json {
        println!(
            "{:#}",
            Value::Array(phases.iter().map(Phase::to_json).collect())
        );
    } else {
        println!(
            "{:<40} {:>8} {:>7} {:>10} {:>9} {:>9}",
            "phase", "requests", "errors", "req/s", "p50 ms", "p99 ms"
        );
        for p in &phases {
            println!(
                "{:<40} {:>8} {:>7} {:>10.1} {:>9.2} {:>9.2}",
                p.name,
                p.requests,
                p.errors,
                p.rate(),
                p.p50_ms,
                p.p99_ms
            );
        }
    }
    if phases.iter().any(|p| p.errors > 0) {
        bail!("some requests failed (see above)");
    }
    Ok(())
}
