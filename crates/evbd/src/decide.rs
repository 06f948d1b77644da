//! The controller's VSI decisions over HTTP (`docs/vsi.md`, agent API): `POST
//! /weft/v1/vdp/decide` before the bridge accepts a request (and to record a station's
//! De-Associate), `POST /weft/v1/vdp/state` when the bridge ends a VSI on its own. Every request
//! carries the agent secret as `Authorization: Bearer`.
//!
//! An answer that does not come, or does not read, is "unable to contact the VSI manager"
//! (802.1Qbg reason 3) for the station: the bridge never accepts a VSI the controller did not.

use core::time::Duration;

use evb::vdp::{Profile, Refusal};
use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wire::vdp::{Id16, Reason, Vsi};

use crate::text::{self, FilterJson};

/// The decision path, under the controller's URL.
pub const DECIDE_PATH: &str = "/weft/v1/vdp/decide";
/// The state report path.
pub const STATE_PATH: &str = "/weft/v1/vdp/state";

/// Why the controller gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The URL or the secret cannot go into a request.
    #[error("bad request: {0}")]
    Request(String),
    /// No connection, or it broke.
    #[error("cannot reach the controller: {0}")]
    Transport(String),
    /// No answer in time.
    #[error("no answer in {0:?}")]
    Timeout(Duration),
    /// An answer other than 200.
    #[error("the controller answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The body, for the log.
        body: String,
    },
    /// A 200 whose body is not a decision.
    #[error("unreadable answer: {0}")]
    Body(String),
}

/// A request as the controller reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestJson {
    /// `associate`, `preassociate`, `preassociate_rr` or `deassociate`.
    pub mode: &'static str,
    /// The VSI type ID.
    pub type_id: u32,
    /// The VSI type version.
    pub type_version: u8,
    /// The VSI ID format (5: UUID).
    pub id_format: u8,
    /// The VSI ID.
    pub vsi_id: String,
    /// The VSI Manager ID.
    pub manager_id: String,
    /// The filters as the station sent them.
    pub filters: Vec<FilterJson>,
}

impl RequestJson {
    /// The JSON of a VSI TLV from a station naming `manager_id`.
    pub fn new(manager_id: &Id16, vsi: &Vsi) -> Self {
        Self {
            mode: text::mode_name(vsi.mode),
            type_id: vsi.type_id,
            type_version: vsi.type_version,
            id_format: vsi.id_format.0,
            vsi_id: text::vsi_id_text(vsi.id_format, &vsi.id),
            manager_id: text::manager_id_text(manager_id),
            filters: text::filters_to_json(&vsi.filters),
        }
    }
}

#[derive(Debug, Serialize)]
struct DecideBody<'a> {
    bridge: &'a str,
    port: &'a str,
    request: &'a RequestJson,
}

#[derive(Debug, Serialize)]
struct StateBody<'a> {
    bridge: &'a str,
    port: &'a str,
    vsi_id: &'a str,
    state: &'a str,
    reason: &'a str,
}

/// The controller's answer to a decision request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    /// `accept` or `reject`.
    pub decision: String,
    /// Accept: the filters with any VID 0 replaced by the VLAN assigned.
    #[serde(default)]
    pub filters: Vec<FilterJson>,
    /// Reject: the 802.1Qbg error as a name.
    #[serde(default)]
    pub error: Option<String>,
    /// Reject: why, for the log.
    #[serde(default)]
    pub reason: Option<String>,
    /// Accept: the association recorded, with the profile's network.
    #[serde(default)]
    pub association: Option<AnsweredAssociation>,
}

/// What the bridge reads of the association in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AnsweredAssociation {
    /// The network of the VSI type's profile: the logical switch its frames join.
    #[serde(default)]
    pub network_id: Option<String>,
}

impl Answer {
    /// The profile's network, when the controller named one.
    pub fn network(&self) -> Option<&str> {
        self.association
            .as_ref()
            .and_then(|a| a.network_id.as_deref())
            .filter(|id| !id.is_empty())
    }
}

/// The 802.1Qbg error code the controller's error name stands for; an unknown name is "other
/// failure".
pub fn reason_from_name(name: &str) -> Reason {
    match name {
        "invalid_format" => Reason::INVALID_FORMAT,
        "insufficient_resources" => Reason::INSUFFICIENT_RESOURCES,
        "unable_to_contact_vsi_manager" => Reason::VSI_MANAGER_UNREACHABLE,
        "invalid_vid_group_mac" => Reason::INVALID_FILTER,
        _ => Reason::OTHER_FAILURE,
    }
}

/// What the bridge does with an answer to `request`: the VLAN to fill in where the station
/// sent VID 0 (the first such entry's, as the answer gives it), or the refusal to send.
pub fn decision_of(request: &Vsi, answer: &Answer) -> Result<Profile, Refusal> {
    match answer.decision.as_str() {
        "accept" => {
            let assigned = request
                .filters
                .vlans()
                .zip(&answer.filters)
                .find(|(asked, _)| asked.vid == 0)
                .map(|(_, given)| given.vlan)
                .filter(|&vid| vid != 0);
            Ok(Profile { vid: assigned })
        }
        // Soft refusals: lldpad shows the reason only for a plain error code.
        "reject" => Err(Refusal::new(reason_from_name(
            answer.error.as_deref().unwrap_or_default(),
        ))),
        _ => Err(Refusal::new(Reason::VSI_MANAGER_UNREACHABLE)),
    }
}

/// A client of the controller's VDP agent API for one bridge port.
#[derive(Debug, Clone)]
pub struct DecideClient {
    base: String,
    secret: String,
    bridge: String,
    port: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl DecideClient {
    /// A client of the controller at `base` (`http://host:port`; a URL ending in the decide
    /// path is taken as well), as bridge `bridge` on port `port`, waiting at most `timeout` for
    /// each answer. Needs a tokio runtime when used.
    pub fn new(base: &str, secret: &str, bridge: &str, port: &str, timeout: Duration) -> Self {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix(DECIDE_PATH).unwrap_or(base);
        Self {
            base: base.to_owned(),
            secret: secret.trim().to_owned(),
            bridge: bridge.to_owned(),
            port: port.to_owned(),
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same client as port `port` of the same bridge (an S-channel is a bridge port of its
    /// own: the controller keeps VLANs per bridge port).
    pub fn with_port(&self, port: &str) -> Self {
        Self {
            port: port.to_owned(),
            ..self.clone()
        }
    }

    /// Asks whether the request may go ahead (for a De-Associate: records it).
    pub async fn decide(&self, request: &RequestJson) -> Result<Answer, DecideError> {
        let body = DecideBody {
            bridge: &self.bridge,
            port: &self.port,
            request,
        };
        let value = self.post(DECIDE_PATH, &body).await?;
        serde_json::from_value(value).map_err(|err| DecideError::Body(err.to_string()))
    }

    /// Reports that the bridge put a VSI in `state` on its own, and why.
    pub async fn report_state(
        &self,
        vsi_id: &str,
        state: &str,
        reason: &str,
    ) -> Result<(), DecideError> {
        let body = StateBody {
            bridge: &self.bridge,
            port: &self.port,
            vsi_id,
            state,
            reason,
        };
        self.post(STATE_PATH, &body).await.map(drop)
    }

    async fn post(&self, path: &str, body: &impl Serialize) -> Result<Value, DecideError> {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.secret))
            .map_err(|_| DecideError::Request("the agent secret is not a header value".into()))?;
        let payload =
            serde_json::to_vec(body).map_err(|err| DecideError::Request(err.to_string()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|err| DecideError::Request(err.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| DecideError::Transport(error_chain(&err)))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| DecideError::Transport(err.to_string()))?
                .to_bytes();
            Ok::<_, DecideError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DecideError::Timeout(self.timeout))??;
        if status != StatusCode::OK {
            return Err(DecideError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_owned(),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|err| DecideError::Body(err.to_string()))
    }
}

/// An error and its sources on one line (hyper's top-level message alone says little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
    use serde_json::json;
    use wire::{
        MacAddr,
        vdp::{Filters, Mode, Status, Vlan, VsiIdFormat},
    };

    use super::*;

    fn request_vsi(vid: u16) -> Vsi {
        Vsi {
            mode: Mode::Associate,
            status: Status::REQUEST,
            type_id: 100,
            type_version: 1,
            id_format: VsiIdFormat::UUID,
            id: Id16([0xaa; 16]),
            filters: Filters::MacVid(vec![(
                MacAddr([0x52, 0x54, 0, 0x8e, 0xaa, 0x11]),
                Vlan::new(vid),
            )]),
        }
    }

    #[test]
    fn test_answers_become_decisions() {
        let vsi = request_vsi(0);
        let accept: Answer = serde_json::from_value(json!({
            "decision": "accept",
            "filters": [{"vlan": 10, "mac_address": "52:54:00:8e:aa:11", "group_id": null}],
            "association": {"id": "x"},
        }))
        .unwrap();
        assert_eq!(decision_of(&vsi, &accept), Ok(Profile { vid: Some(10) }));
        // No network in the association: the bridge falls back to --switch-network.
        assert_eq!(accept.network(), None);
        let with_network: Answer = serde_json::from_value(json!({
            "decision": "accept", "filters": [],
            "association": {"id": "x", "network_id": "0c1f3f7e-5d2a-4a47-9a33-1b0d2a6f9e10"},
        }))
        .unwrap();
        assert_eq!(
            with_network.network(),
            Some("0c1f3f7e-5d2a-4a47-9a33-1b0d2a6f9e10")
        );
        // The station named its VID: nothing to assign.
        assert_eq!(
            decision_of(&request_vsi(10), &accept),
            Ok(Profile { vid: None })
        );
        for (name, reason) in [
            ("invalid_format", Reason::INVALID_FORMAT),
            ("insufficient_resources", Reason::INSUFFICIENT_RESOURCES),
            (
                "unable_to_contact_vsi_manager",
                Reason::VSI_MANAGER_UNREACHABLE,
            ),
            ("other_failure", Reason::OTHER_FAILURE),
            ("invalid_vid_group_mac", Reason::INVALID_FILTER),
            ("something new", Reason::OTHER_FAILURE),
        ] {
            let reject = Answer {
                decision: "reject".into(),
                filters: Vec::new(),
                error: Some(name.into()),
                reason: Some("because".into()),
                association: None,
            };
            assert_eq!(decision_of(&vsi, &reject), Err(Refusal::new(reason)));
        }
        let odd = Answer {
            decision: "maybe".into(),
            filters: Vec::new(),
            error: None,
            reason: None,
            association: None,
        };
        assert_eq!(
            decision_of(&vsi, &odd),
            Err(Refusal::new(Reason::VSI_MANAGER_UNREACHABLE))
        );
        let json =
            serde_json::to_value(RequestJson::new(&Id16::from_name("evmgr1").unwrap(), &vsi))
                .unwrap();
        assert_eq!(
            json,
            json!({"mode": "associate", "type_id": 100, "type_version": 1, "id_format": 5,
                   "vsi_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "manager_id": "evmgr1",
                   "filters": [{"vlan": 0, "mac_address": "52:54:00:8e:aa:11", "group_id": null}]})
        );
    }

    type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

    /// A fake controller on 127.0.0.1:0 that records what it gets and accepts with VLAN 10.
    async fn fake_controller(seen: Seen) -> String {
        async fn decide(
            State(seen): State<Seen>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> Json<Value> {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            seen.lock().unwrap().push(("decide".into(), auth, body));
            Json(json!({"decision": "accept", "filters": [{"vlan": 10}]}))
        }
        async fn state(State(seen): State<Seen>, Json(body): Json<Value>) -> Json<Value> {
            seen.lock().unwrap().push(("state".into(), None, body));
            Json(json!({}))
        }
        let app = Router::new()
            .route(DECIDE_PATH, post(decide))
            .route(STATE_PATH, post(state))
            .with_state(seen);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn test_client_speaks_the_contract() {
        let seen = Seen::default();
        let url = fake_controller(Arc::clone(&seen)).await;
        let client = DecideClient::new(
            &format!("{url}/"),
            "s3cret\n",
            "tor1",
            "sw1p1",
            Duration::from_secs(5),
        );
        let vsi = request_vsi(0);
        let request = RequestJson::new(&Id16::from_name("evmgr1").unwrap(), &vsi);
        let answer = client.decide(&request).await.unwrap();
        assert_eq!(decision_of(&vsi, &answer), Ok(Profile { vid: Some(10) }));
        // An S-channel asks as a bridge port of its own.
        client
            .with_port("sw1p1.s100")
            .decide(&request)
            .await
            .unwrap();
        client
            .report_state(&request.vsi_id, "deassociated", "keep-alive timeout")
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].1.as_deref(), Some("Bearer s3cret"));
        assert_eq!(seen[0].2["bridge"], "tor1");
        assert_eq!(seen[0].2["port"], "sw1p1");
        assert_eq!(seen[0].2["request"]["mode"], "associate");
        assert_eq!(seen[1].1.as_deref(), Some("Bearer s3cret"));
        assert_eq!(seen[1].2["bridge"], "tor1");
        assert_eq!(seen[1].2["port"], "sw1p1.s100");
        assert_eq!(
            seen[2].2,
            json!({"bridge": "tor1", "port": "sw1p1",
                   "vsi_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
                   "state": "deassociated", "reason": "keep-alive timeout"})
        );
    }

    #[tokio::test]
    async fn test_client_errors() {
        // Nothing listens on port 9 of 127.0.0.1 (discard), so the connection is refused.
        let client = DecideClient::new("http://127.0.0.1:9", "x", "b", "p", Duration::from_secs(2));
        let request = RequestJson::new(&Id16::default(), &request_vsi(0));
        assert!(matches!(
            client.decide(&request).await,
            Err(DecideError::Transport(_) | DecideError::Timeout(_))
        ));
        let bad = DecideClient::new(
            "http://127.0.0.1:9",
            "a\nb",
            "b",
            "p",
            Duration::from_secs(2),
        );
        assert!(matches!(
            bad.decide(&request).await,
            Err(DecideError::Request(_))
        ));
    }
}
