//! A controller on ephemeral ports with a temporary SQLite store, and a small HTTP client.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{net::SocketAddr, sync::Arc};

use controller::{App, AppState, Listeners, config::Config};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;

pub struct Server {
    pub state: AppState,
    pub network: SocketAddr,
    pub identity: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server; `tweak` adjusts the config (noauth by default).
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            identity_listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().to_owned(),
            auth: controller::config::AuthMode::Noauth,
            ..Config::default()
        };
        tweak(&mut config);
        let listeners = Listeners::bind(&config).await.unwrap();
        let (network, identity) = (listeners.network_addr(), listeners.identity_addr());
        let state = App::open(config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(listeners.serve(Arc::clone(&state), async move {
            let _ = stopped.await;
        }));
        Self {
            state,
            network,
            identity,
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One answer: status, headers, parsed body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub text: String,
}

#[derive(Clone)]
pub struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    pub base: String,
    pub token: Option<String>,
    /// Sent as `Authorization: Bearer` (the agent secret).
    pub bearer: Option<String>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
            token: None,
            bearer: None,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.raw(method, path, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    pub async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("x-auth-token", token);
        }
        if let Some(secret) = &self.bearer {
            request = request.header("authorization", format!("Bearer {secret}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// Opens a streaming GET and returns its lines as they come.
    pub async fn lines(&self, path: &str) -> (u16, Lines) {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.base));
        if let Some(secret) = &self.bearer {
            request = request.header("authorization", format!("Bearer {secret}"));
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            Lines {
                body: response.into_body(),
                buffer: Vec::new(),
            },
        )
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }
}

/// A streaming response read line by line.
pub struct Lines {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

impl Lines {
    /// The next line as JSON, or `None` when the stream ends or nothing comes for `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON line"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.ok()?.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next line that is not a bookmark.
    pub async fn event(&mut self, wait: std::time::Duration) -> Option<Value> {
        loop {
            let line = self.next(wait).await?;
            if line["type"] != "bookmark" {
                return Some(line);
            }
        }
    }
}

/// Asserts a Neutron error body of the given status and type.
pub fn assert_neutron_error(answer: &Answer, status: u16, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    let error = &answer.body["NeutronError"];
    assert_eq!(error["type"], kind, "{}", answer.text);
    assert!(error["message"].is_string(), "{}", answer.text);
    assert_eq!(error["detail"], "", "{}", answer.text);
}

/// A database for one test: a fresh SQLite file, or a fresh PostgreSQL database when
/// `WEFT_TEST_POSTGRES_URL` points at a server (`.ci/postgres.sh start` prints one).
pub struct TestDb {
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite always; PostgreSQL too when configured (and CI insists on it).
pub async fn test_databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("weft.db").display());
    let mut out = vec![TestDb {
        name: "sqlite",
        url: sqlite,
        _dir: Some(dir),
    }];
    match std::env::var("WEFT_TEST_POSTGRES_URL") {
        Ok(base) => {
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            let name = format!("weft_t_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let (prefix, _) = base.rsplit_once('/').unwrap();
            out.push(TestDb {
                name: "postgres",
                url: format!("{prefix}/{name}"),
                _dir: None,
            });
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the store tests on PostgreSQL too: set WEFT_TEST_POSTGRES_URL")
        }
        Err(_) => eprintln!("WEFT_TEST_POSTGRES_URL unset: PostgreSQL cases skipped"),
    }
    out
}
