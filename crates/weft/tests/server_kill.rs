//! Kill -9 at any moment loses no acknowledged write and leaves no half-made resource: clients
//! create ports as fast as they can, the server is SIGKILLed mid-stream and restarted on the
//! same state directory, and every acknowledged port is there, with its addresses, its
//! revision-log entry, and nothing dangling.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use sqlx::Row;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(state: &Path, network: u16, identity: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--noauth"])
        .args(["--listen", &format!("127.0.0.1:{network}")])
        .args(["--identity-listen", &format!("127.0.0.1:{identity}")])
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn call(
    http: &Http,
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .ok()?;
    let response = http.request(request).await.ok()?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn wait_ready(http: &Http, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while call(http, addr, Method::GET, "/v2.0/networks", None)
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "weft server did not come up on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (port, identity) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let mut server = spawn_server(&state, port, identity);
    wait_ready(&http, addr).await;
    let (_, net) = call(
        &http,
        addr,
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": "n"}})),
    )
    .await
    .unwrap();
    let net_id = net["network"]["id"].as_str().unwrap().to_owned();
    let subnet = json!({"subnet": {"network_id": net_id, "cidr": "10.20.0.0/16", "ip_version": 4}});
    assert_eq!(
        call(&http, addr, Method::POST, "/v2.0/subnets", Some(subnet))
            .await
            .unwrap()
            .0,
        201
    );

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for _ in 0..6 {
        let (http, acked, net_id) = (http.clone(), Arc::clone(&acked), net_id.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let body = json!({"port": {"network_id": net_id}});
                match call(&http, addr, Method::POST, "/v2.0/ports", Some(body)).await {
                    Some((201, port)) => acked
                        .lock()
                        .unwrap()
                        .push(port["port"]["id"].as_str().unwrap().to_owned()),
                    Some((status, body)) => panic!("port create: {status} {body}"),
                    None => break, // the server is gone
                }
            }
        }));
    }
    // Let writes flow, then SIGKILL in the middle of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes before the kill: {}",
        acked.len()
    );

    let mut server = spawn_server(&state, port, identity);
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    wait_ready(&http, addr).await;
    let (status, ports) = call(&http, addr, Method::GET, "/v2.0/ports", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let stored: std::collections::HashSet<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(stored.contains(id.as_str()), "acknowledged port {id} lost");
    }
    // At most the requests in flight at the kill committed without an answer.
    assert!(
        stored.len() <= acked.len() + 6,
        "{} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // Nothing half-made: addresses, ports and the revision log agree.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", state.join("weft.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM ip_allocations WHERE port_id NOT IN (SELECT id FROM ports)")
            .await,
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM ports WHERE id NOT IN (SELECT port_id FROM ip_allocations)")
            .await,
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM ports WHERE id NOT IN (SELECT resource_id FROM revisions WHERE resource = 'port')").await,
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM revisions").await,
        count("SELECT rev FROM revision_counter").await
    );
    pool.close().await;
}
