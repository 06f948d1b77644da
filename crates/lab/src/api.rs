//! A small blocking JSON client for the Keystone v3 and Neutron v2.0 calls `weft lab` makes:
//! hyper's client on a current-thread tokio runtime of its own, so the rest of the lab stays
//! plain threads and commands.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request never got an answer (refused, reset, timed out).
    #[error("{method} {url}: {message}")]
    Transport {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{method} {url}: {status}: {message}")]
    Status {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The server's message (Neutron's or Keystone's error body), or the raw body.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("{method} {url}: unexpected answer: {message}")]
    Answer {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// What was unexpected.
        message: String,
    },
    /// The runtime for the client could not start.
    #[error("cannot start the HTTP client's runtime: {0}")]
    Runtime(std::io::Error),
}

impl ApiError {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An answer: status, the `X-Subject-Token` header if any, and the JSON body (`Null` when
/// empty).
#[derive(Debug)]
struct Answer {
    subject_token: Option<String>,
    body: Value,
}

/// A blocking HTTP/1.1 JSON client.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: HyperClient<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// A client with its own current-thread runtime.
    pub fn new() -> Result<Self, ApiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ApiError::Runtime)?;
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        Ok(Self { runtime, client })
    }

    /// Sends one request with an optional token and JSON body.
    fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let transport = |message: String| ApiError::Transport {
            method: method.clone(),
            url: url.to_owned(),
            message,
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            let value = HeaderValue::from_str(token)
                .map_err(|_| transport("the token is not a header value".into()))?;
            request = request.header("x-auth-token", value);
        }
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|err| transport(err.to_string()))?;
        let (status, subject_token, bytes) = self.runtime.block_on(async {
            let exchange = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|err| transport(error_chain(&err)))?;
                let status = response.status();
                let subject = response
                    .headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|err| transport(err.to_string()))?
                    .to_bytes();
                Ok::<_, ApiError>((status, subject, bytes))
            };
            tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                .await
                .map_err(|_| transport(format!("no answer in {} s", REQUEST_TIMEOUT.as_secs())))?
        })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).trim().to_owned())
            })
        };
        if !status.is_success() {
            return Err(ApiError::Status {
                method,
                url: url.to_owned(),
                status,
                message: error_message(&body),
            });
        }
        Ok(Answer {
            subject_token,
            body,
        })
    }

    /// True when `url` answers at all (any status): the server is up.
    pub fn answers(&self, url: &str) -> bool {
        match self.call(Method::GET, url, None, None) {
            Ok(_) => true,
            Err(err) => err.status().is_some(),
        }
    }
}

/// The message of a Neutron (`NeutronError.message`) or Keystone (`error.message`) error
/// body, else the body as text.
fn error_message(body: &Value) -> String {
    body.pointer("/NeutronError/message")
        .or_else(|| body.pointer("/error/message"))
        .and_then(Value::as_str)
        .map_or_else(
            || match body {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            },
            str::to_owned,
        )
}

/// An error and its sources on one line (hyper's top-level message alone says little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// `text` as a URL query value: unreserved characters as they are, every other byte as `%XX`.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn decode<T: DeserializeOwned>(
    method: &Method,
    url: &str,
    body: &Value,
    key: &str,
) -> Result<T, ApiError> {
    let inner = body.get(key).cloned().unwrap_or(Value::Null);
    serde_json::from_value(inner).map_err(|err| ApiError::Answer {
        method: method.clone(),
        url: url.to_owned(),
        message: format!("{key}: {err}"),
    })
}

/// A user's password credentials for one project, as a cloud of clouds.yaml has them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Credentials {
    /// The identity API's base URL, ending in `/v3`.
    pub auth_url: String,
    /// The user's name (domain `Default`).
    pub username: String,
    /// The password.
    pub password: String,
    /// The project's name (domain `Default`).
    pub project: String,
}

/// A project-scoped Keystone token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token (`X-Auth-Token`).
    pub token: String,
    /// The project it is scoped to.
    pub project_id: String,
}

/// One Keystone entity: what the lab reads back is its id.
#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    /// The id.
    pub id: String,
}

/// A fixed IP of a port.
#[derive(Debug, Clone, Deserialize)]
pub struct FixedIp {
    /// The subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// The fields of a Neutron port the lab reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Port {
    /// The id.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Its MAC address.
    pub mac_address: String,
    /// `ACTIVE`, `DOWN`, `BUILD`, ...
    pub status: String,
    /// Its addresses.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// The host it is bound to (admin only; empty when unbound).
    #[serde(rename = "binding:host_id", default)]
    pub host_id: String,
    /// `tap` when bound, `binding_failed`, `unbound` (admin only).
    #[serde(rename = "binding:vif_type", default)]
    pub vif_type: String,
    /// `device_id`.
    #[serde(default)]
    pub device_id: String,
    /// Set on a trunk's parent port: its VM sends its subports' traffic tagged.
    #[serde(default)]
    pub trunk_details: Option<TrunkDetails>,
}

/// `trunk_details` of a trunk's parent port.
#[derive(Debug, Clone, Deserialize)]
pub struct TrunkDetails {
    /// The trunk.
    pub trunk_id: String,
    /// Its subports.
    #[serde(default)]
    pub sub_ports: Vec<SubPort>,
}

/// A subport in `trunk_details`.
#[derive(Debug, Clone, Deserialize)]
pub struct SubPort {
    /// The subport's own port.
    pub port_id: String,
    /// `vlan`.
    pub segmentation_type: String,
    /// The VLAN id the VM tags its frames with.
    pub segmentation_id: u32,
    /// The subport's MAC address (what the VM's VLAN interface should have).
    #[serde(default)]
    pub mac_address: String,
}

/// The fields of a Neutron network the lab reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    /// The id.
    pub id: String,
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The MTU its ports should use.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Its physical network (visible to the admin), if it is on one.
    #[serde(default, rename = "provider:physical_network")]
    pub physical_network: Option<String>,
}

/// The fields of a Neutron agent the lab reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    /// The host it runs on.
    pub host: String,
    /// True while its heartbeats arrive.
    #[serde(default)]
    pub alive: bool,
}

/// A client of one weft server's identity and networking APIs.
#[derive(Debug)]
pub struct Cloud {
    http: Http,
    network_url: String,
}

impl Cloud {
    /// A client of the networking API at `network_url` (no trailing `/`).
    pub fn new(network_url: &str) -> Result<Self, ApiError> {
        Ok(Self {
            http: Http::new()?,
            network_url: network_url.trim_end_matches('/').to_owned(),
        })
    }

    /// True when `url` answers.
    pub fn answers(&self, url: &str) -> bool {
        self.http.answers(url)
    }

    /// `POST /v3/auth/tokens`: a token for the user, scoped to the project.
    pub fn token(&self, credentials: &Credentials) -> Result<Token, ApiError> {
        let url = format!(
            "{}/auth/tokens?nocatalog",
            credentials.auth_url.trim_end_matches('/')
        );
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": credentials.username,
                "domain": {"id": "default"},
                "password": credentials.password,
            }}},
            "scope": {"project": {"name": credentials.project, "domain": {"id": "default"}}},
        }});
        let answer = self.http.call(Method::POST, &url, None, Some(&body))?;
        let project: Entity = decode(
            &Method::POST,
            &url,
            answer.body.get("token").unwrap_or(&Value::Null),
            "project",
        )?;
        let token = answer.subject_token.ok_or_else(|| ApiError::Answer {
            method: Method::POST,
            url: url.clone(),
            message: "no X-Subject-Token header".into(),
        })?;
        Ok(Token {
            token,
            project_id: project.id,
        })
    }

    /// `POST {auth_url}/{collection}` with `{key: body}`; returns the new entity's id.
    pub fn keystone_create(
        &self,
        token: &Token,
        auth_url: &str,
        key: &str,
        body: Value,
    ) -> Result<Entity, ApiError> {
        let url = format!("{}/{key}s", auth_url.trim_end_matches('/'));
        let answer = self.http.call(
            Method::POST,
            &url,
            Some(&token.token),
            Some(&json!({ key: body })),
        )?;
        decode(&Method::POST, &url, &answer.body, key)
    }

    /// The id of the role called `name`.
    pub fn role_id(&self, token: &Token, auth_url: &str, name: &str) -> Result<String, ApiError> {
        let url = format!(
            "{}/roles?name={}",
            auth_url.trim_end_matches('/'),
            query_value(name)
        );
        let answer = self
            .http
            .call(Method::GET, &url, Some(&token.token), None)?;
        let roles: Vec<Entity> = decode(&Method::GET, &url, &answer.body, "roles")?;
        roles
            .into_iter()
            .next()
            .map(|r| r.id)
            .ok_or_else(|| ApiError::Answer {
                method: Method::GET,
                url,
                message: format!("no role {name:?}"),
            })
    }

    /// `PUT /v3/projects/{project}/users/{user}/roles/{role}`.
    pub fn assign_role(
        &self,
        token: &Token,
        auth_url: &str,
        project: &str,
        user: &str,
        role: &str,
    ) -> Result<(), ApiError> {
        let url = format!(
            "{}/projects/{project}/users/{user}/roles/{role}",
            auth_url.trim_end_matches('/')
        );
        self.http
            .call(Method::PUT, &url, Some(&token.token), None)
            .map(drop)
    }

    /// The network `name_or_id` names, as the token's user sees it (an id first, then a
    /// unique name).
    pub fn network(&self, token: &Token, name_or_id: &str) -> Result<Network, ApiError> {
        self.find(token, "network", name_or_id)
    }

    /// The port `name_or_id` names (an id first, then a unique name).
    pub fn port(&self, token: &Token, name_or_id: &str) -> Result<Port, ApiError> {
        self.find(token, "port", name_or_id)
    }

    /// A `kind` (`network`, `port`) by id, else by its unique name, as the CLI resolves them.
    fn find<T: DeserializeOwned>(
        &self,
        token: &Token,
        kind: &str,
        name_or_id: &str,
    ) -> Result<T, ApiError> {
        let wanted = query_value(name_or_id);
        let url = format!("{}/v2.0/{kind}s/{wanted}", self.network_url);
        match self.http.call(Method::GET, &url, Some(&token.token), None) {
            Ok(answer) => return decode(&Method::GET, &url, &answer.body, kind),
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(err) => return Err(err),
        }
        let url = format!("{}/v2.0/{kind}s?name={wanted}", self.network_url);
        let answer = self
            .http
            .call(Method::GET, &url, Some(&token.token), None)?;
        let mut found: Vec<T> = decode(&Method::GET, &url, &answer.body, &format!("{kind}s"))?;
        match found.len() {
            1 => Ok(found.remove(0)),
            n => Err(ApiError::Answer {
                method: Method::GET,
                url,
                message: if n == 0 {
                    format!("no {kind} {name_or_id:?}")
                } else {
                    format!("{n} {kind}s are called {name_or_id:?}: give its id")
                },
            }),
        }
    }

    /// Any networking API call: `path` (from `/v2.0/...`) relative to the networking URL;
    /// returns the JSON answer (`Null` for an empty one, as after a `DELETE`).
    pub fn request(
        &self,
        token: &Token,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.network_url);
        Ok(self.http.call(method, &url, Some(&token.token), body)?.body)
    }

    /// The public URL of the catalog's `service_type` service (`network`), as the token's
    /// user sees it (`GET {auth_url}/auth/catalog`).
    pub fn endpoint(
        &self,
        token: &Token,
        auth_url: &str,
        service_type: &str,
    ) -> Result<String, ApiError> {
        let url = format!("{}/auth/catalog", auth_url.trim_end_matches('/'));
        let answer = self
            .http
            .call(Method::GET, &url, Some(&token.token), None)?;
        let missing = || ApiError::Answer {
            method: Method::GET,
            url: url.clone(),
            message: format!("no public {service_type} endpoint in the catalog"),
        };
        let catalog = answer.body.get("catalog").and_then(Value::as_array);
        let service = catalog
            .into_iter()
            .flatten()
            .find(|s| s.get("type").and_then(Value::as_str) == Some(service_type))
            .ok_or_else(missing)?;
        service
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| e.get("interface").and_then(Value::as_str) == Some("public"))
            .and_then(|e| e.get("url").and_then(Value::as_str))
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(missing)
    }

    /// `GET /v2.0/agents` (admin only).
    pub fn agents(&self, token: &Token) -> Result<Vec<Agent>, ApiError> {
        let url = format!("{}/v2.0/agents", self.network_url);
        let answer = self
            .http
            .call(Method::GET, &url, Some(&token.token), None)?;
        decode(&Method::GET, &url, &answer.body, "agents")
    }

    /// `POST /v2.0/ports`.
    pub fn create_port(&self, token: &Token, body: Value) -> Result<Port, ApiError> {
        let url = format!("{}/v2.0/ports", self.network_url);
        let answer = self.http.call(
            Method::POST,
            &url,
            Some(&token.token),
            Some(&json!({"port": body})),
        )?;
        decode(&Method::POST, &url, &answer.body, "port")
    }

    /// `PUT /v2.0/ports/{id}`.
    pub fn update_port(&self, token: &Token, id: &str, body: Value) -> Result<Port, ApiError> {
        let url = format!("{}/v2.0/ports/{id}", self.network_url);
        let answer = self.http.call(
            Method::PUT,
            &url,
            Some(&token.token),
            Some(&json!({"port": body})),
        )?;
        decode(&Method::PUT, &url, &answer.body, "port")
    }

    /// `POST /v2.0/{collection}` with `{key: body}` (networks, subnets...); the new resource.
    pub fn neutron_create(
        &self,
        token: &Token,
        collection: &str,
        key: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/v2.0/{collection}", self.network_url);
        let answer = self.http.call(
            Method::POST,
            &url,
            Some(&token.token),
            Some(&json!({ key: body })),
        )?;
        decode(&Method::POST, &url, &answer.body, key)
    }

    /// `DELETE /v2.0/ports/{id}`.
    pub fn delete_port(&self, token: &Token, id: &str) -> Result<(), ApiError> {
        let url = format!("{}/v2.0/ports/{id}", self.network_url);
        self.http
            .call(Method::DELETE, &url, Some(&token.token), None)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_error_messages_of_both_apis() {
        let neutron = json!({"NeutronError": {"type": "PortNotFound", "message": "Port x could not be found.", "detail": ""}});
        assert_eq!(error_message(&neutron), "Port x could not be found.");
        let keystone = json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}});
        assert!(error_message(&keystone).starts_with("The request"));
        assert_eq!(error_message(&Value::String("oops".into())), "oops");
    }

    #[test]
    fn test_query_values_are_escaped() {
        assert_eq!(query_value("net-1_a.b~"), "net-1_a.b~");
        assert_eq!(query_value("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn test_ports_decode_with_binding_fields() {
        let body = json!({"port": {"id": "p", "network_id": "n", "mac_address": "fa:16:3e:00:00:01",
            "status": "DOWN", "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}],
            "binding:host_id": "h1", "binding:vif_type": "binding_failed"}});
        let port: Port = decode(&Method::GET, "u", &body, "port").unwrap();
        assert_eq!(port.vif_type, "binding_failed");
        assert_eq!(port.host_id, "h1");
        assert_eq!(port.fixed_ips[0].ip_address, "10.0.0.5");
        // A member does not see the binding fields.
        let body =
            json!({"port": {"id": "p", "network_id": "n", "mac_address": "m", "status": "DOWN"}});
        let port: Port = decode(&Method::GET, "u", &body, "port").unwrap();
        assert!(port.vif_type.is_empty());
        assert!(port.trunk_details.is_none());
    }

    #[test]
    fn test_a_trunk_parent_decodes_with_its_subports() {
        let body = json!({"port": {"id": "p", "network_id": "n", "mac_address": "fa:16:3e:90:7a:ca",
            "status": "ACTIVE", "trunk_details": {"trunk_id": "t", "sub_ports": [
                {"port_id": "s1", "segmentation_type": "vlan", "segmentation_id": 1,
                 "mac_address": "fa:16:3e:cc:b9:27"}]}}});
        let port: Port = decode(&Method::GET, "u", &body, "port").unwrap();
        let trunk = port.trunk_details.expect("trunk_details");
        assert_eq!(trunk.trunk_id, "t");
        assert_eq!(
            (
                trunk.sub_ports[0].segmentation_id,
                trunk.sub_ports[0].mac_address.as_str()
            ),
            (1, "fa:16:3e:cc:b9:27")
        );
    }
}
