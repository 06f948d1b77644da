//! The agents' HTTP surface: Neutron's admin view (`/v2.0/agents`) and the endpoints agents
//! themselves call with the agent secret (`/weft/v1/agents`, `/weft/v1/devices`,
//! `/weft/v1/watch`, and a bridge's VDP questions `/weft/v1/vdp/decide` and
//! `/weft/v1/vdp/state`). Contracts: `docs/agents.md`, `docs/vsi.md`.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    error::ApiError,
    network::vsi::{Decide, StateReport},
    server::{AgentCaller, AppState, Caller, JsonObject},
    watch::Hub,
};

/// How often an idle watch sends a bookmark (also what keeps proxies from closing it).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// The routes, merged into the networking router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/agents", get(list))
        .route("/v2.0/agents/{id}", get(show).put(update).delete(delete))
        .route("/weft/v1/agents", post(report))
        .route("/weft/v1/devices", post(devices))
        .route("/weft/v1/watch", get(watch))
        .route("/weft/v1/vdp/decide", post(vdp_decide))
        .route("/weft/v1/vdp/state", post(vdp_state))
}

type Answer = Result<Response, ApiError>;

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn list(State(s): State<AppState>, c: Caller, RawQuery(q): RawQuery) -> Answer {
    let body = s
        .agents
        .list(&c.0, q.as_deref().unwrap_or_default())
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn show(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        s.agents.show(&c.0, &id).await?,
    ))
}

async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        s.agents.update(&c.0, &id, body).await?,
    ))
}

async fn delete(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.agents.delete(&c.0, &id).await?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn report(State(s): State<AppState>, _: AgentCaller, JsonObject(body): JsonObject) -> Answer {
    Ok(json_response(StatusCode::OK, s.agents.report(body).await?))
}

async fn vdp_decide(
    State(s): State<AppState>,
    _: AgentCaller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = Decide::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.vdp_decide(cmd).await?,
    ))
}

async fn vdp_state(
    State(s): State<AppState>,
    _: AgentCaller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = StateReport::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.vdp_state(cmd).await?,
    ))
}

fn id_list(body: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= 10_000 => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::BadRequest(format!("{key}: expected port ids")))
            })
            .collect(),
        Some(_) => Err(ApiError::BadRequest(format!(
            "{key}: expected a list of at most 10000 port ids"
        ))),
    }
}

async fn devices(
    State(s): State<AppState>,
    _: AgentCaller,
    JsonObject(body): JsonObject,
) -> Answer {
    let host = body
        .get("host")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::BadRequest("host: expected the agent's host name".into()))?
        .to_owned();
    let up = id_list(&body, "up")?;
    let down = id_list(&body, "down")?;
    let (updated, ignored) = s.network.set_device_status(&host, &up, &down).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({"updated": updated, "ignored": ignored}).to_string(),
    ))
}

async fn watch(State(s): State<AppState>, _: AgentCaller, RawQuery(q): RawQuery) -> Answer {
    let mut host = None;
    let mut since = 0i64;
    for (key, value) in form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "host" if !value.is_empty() => host = Some(value.into_owned()),
            "since" => {
                since = value
                    .parse()
                    .ok()
                    .filter(|n: &i64| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("since: {value:?} is not a revision"))
                    })?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "{other}: unknown watch parameter (host, since)"
                )));
            }
        }
    }
    let host = host.ok_or_else(|| ApiError::BadRequest("host: required".into()))?;
    let hub = Arc::clone(&s.hub);
    let sub = hub.subscribe(&host, since);
    tracing::info!(host, since, "watch opened");
    let state = Stream {
        hub,
        initial: sub.initial.into_iter(),
        live: sub.live,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), st))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

struct Stream {
    hub: Arc<Hub>,
    initial: std::vec::IntoIter<Arc<str>>,
    live: tokio::sync::mpsc::Receiver<Arc<str>>,
}

/// The most bytes of queued lines joined into one chunk of the answer.
const CHUNK: usize = 256 << 10;

impl Stream {
    /// The next line and every line already queued behind it (up to [`CHUNK`] bytes), as one
    /// chunk: a busy stream then costs one write per batch rather than one per line.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let first = self.next().await?;
        let mut chunk = Vec::with_capacity(first.len());
        chunk.extend_from_slice(first.as_bytes());
        while chunk.len() < CHUNK {
            let line = match self.initial.next() {
                Some(line) => line,
                None => match self.live.try_recv() {
                    Ok(line) => line,
                    Err(_) => break,
                },
            };
            chunk.extend_from_slice(line.as_bytes());
        }
        Some(Bytes::from(chunk))
    }

    /// The next line: the initial ones, then live ones, with a bookmark whenever the stream
    /// has been quiet for [`BOOKMARK_INTERVAL`]. `None` ends the stream (the hub cut it off).
    async fn next(&mut self) -> Option<Arc<str>> {
        if let Some(line) = self.initial.next() {
            return Some(line);
        }
        loop {
            match tokio::time::timeout(BOOKMARK_INTERVAL, self.live.recv()).await {
                Ok(line) => return line,
                Err(_) => {
                    if let Some(mark) = self.hub.bookmark(&self.live) {
                        return Some(mark);
                    }
                }
            }
        }
    }
}
