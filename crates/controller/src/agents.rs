//! Agents: the registry `weft agent`s keep fresh with heartbeats (`POST /weft/v1/agents`), shown
//! to admins as Neutron's `GET /v2.0/agents`, and read by port binding to learn what a host
//! can reach. Also the agent credential: one shared secret, separate from every Keystone
//! user, that the `/weft/v1` endpoints require.

use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path, time::Duration};

use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use crate::{
    auth::AuthContext,
    error::{ApiError, Kind},
    network::new_id,
    store::{Store, now},
};

/// The agent type weft's hypervisor agent registers as.
pub const WEFT_AGENT_TYPE: &str = "weft agent";

/// The agent registry.
#[derive(Debug)]
pub struct AgentService {
    store: std::sync::Arc<Store>,
    down_time: Duration,
}

/// An agent as binding sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    /// Stable id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// `weft agent`, ...
    pub agent_type: String,
    /// Whether an admin left it enabled.
    pub admin_state_up: bool,
    /// Whether its last heartbeat is recent.
    pub alive: bool,
    /// What it reported: bridge mappings, tunnel types, tunnel IP.
    pub configurations: Map<String, Value>,
}

impl AgentRecord {
    /// The physical networks it has a bridge mapping for.
    pub fn maps_physnet(&self, physnet: &str) -> bool {
        self.configurations
            .get("bridge_mappings")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(physnet))
    }

    /// Whether it terminates tunnels of this type.
    pub fn has_tunnel_type(&self, network_type: &str) -> bool {
        self.configurations
            .get("tunnel_types")
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(network_type)))
    }

    /// Its tunnel endpoint address, if it reported one.
    pub fn tunneling_ip(&self) -> Option<&str> {
        self.configurations
            .get("tunneling_ip")
            .and_then(Value::as_str)
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    }
}

const COLUMNS: &str = "id, host, agent_type, binary_name, topic, \
     CAST(admin_state_up AS INTEGER) AS up, description, configurations, created_at, \
     started_at, heartbeat_at";

impl AgentService {
    /// The registry over `store`; an agent is alive while its last heartbeat is younger than
    /// `down_time`.
    pub fn new(store: std::sync::Arc<Store>, down_time: Duration) -> Self {
        Self { store, down_time }
    }

    /// Records a heartbeat (registering the agent the first time); answers the agent.
    pub async fn report(&self, body: Map<String, Value>) -> Result<String, ApiError> {
        let report = Report::parse(body)?;
        let stamp = now();
        // One statement: a heartbeat never waits behind the writer lane's transactions.
        sqlx::query(
            "INSERT INTO agents (id, host, agent_type, binary_name, topic, admin_state_up, \
             description, configurations, created_at, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, '', $6, $7, $7, $7) \
             ON CONFLICT (host, agent_type) DO UPDATE SET binary_name = excluded.binary_name, \
             topic = excluded.topic, configurations = excluded.configurations, \
             heartbeat_at = excluded.heartbeat_at, started_at = CASE WHEN $8 = 1 \
             THEN excluded.started_at ELSE agents.started_at END",
        )
        .bind(new_id())
        .bind(report.host.as_str())
        .bind(report.agent_type.as_str())
        .bind(report.binary.as_str())
        .bind(report.topic.as_str())
        .bind(Value::Object(report.configurations).to_string())
        .bind(stamp.as_str())
        .bind(i64::from(report.start_flag))
        .execute(self.store.pool())
        .await?;
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE host = $1 AND agent_type = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(report.host.as_str())
            .bind(report.agent_type.as_str())
            .fetch_one(self.store.pool())
            .await?;
        Ok(json!({"agent": self.render(&row)?}).to_string())
    }

    /// `GET /v2.0/agents`, with equality filters on the plain attributes.
    pub async fn list(&self, ctx: &AuthContext, query: &str) -> Result<String, ApiError> {
        ctx.require_admin("get_agent")?;
        let mut filters: Vec<(String, String)> = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "fields" => fields.push(value.into_owned()),
                "id" | "host" | "agent_type" | "binary" | "topic" | "admin_state_up" | "alive"
                | "availability_zone" | "description" => {
                    filters.push((key.into_owned(), value.into_owned()));
                }
                // Paging and sorting hints are accepted and ignored: agents are few.
                "limit" | "marker" | "page_reverse" | "sort_key" | "sort_dir" => {}
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "[{other}] is invalid attribute for filtering"
                    )));
                }
            }
        }
        let sql = format!("SELECT {COLUMNS} FROM agents ORDER BY host, agent_type");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.store.pool())
            .await?;
        let mut agents = Vec::new();
        for row in &rows {
            let agent = self.render(row)?;
            let keep = filters.iter().all(|(key, want)| {
                agent.get(key).is_some_and(|have| match have {
                    Value::String(s) => s == want,
                    Value::Bool(b) => want.eq_ignore_ascii_case(&b.to_string()),
                    Value::Null => want.is_empty(),
                    other => want.parse::<Value>().is_ok_and(|w| w == *other),
                })
            });
            if keep {
                agents.push(select_fields(agent, &fields));
            }
        }
        Ok(json!({"agents": agents}).to_string())
    }

    /// `GET /v2.0/agents/{id}`.
    pub async fn show(&self, ctx: &AuthContext, id: &str) -> Result<String, ApiError> {
        ctx.require_admin("get_agent")?;
        let row = self.fetch(id).await?;
        Ok(json!({"agent": self.render(&row)?}).to_string())
    }

    /// `PUT /v2.0/agents/{id}`: `admin_state_up` and `description` only.
    pub async fn update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<String, ApiError> {
        ctx.require_admin("update_agent")?;
        let Some(Value::Object(fields)) = body.get("agent") else {
            return Err(ApiError::BadRequest(
                "Resource body required: expected an object under \"agent\"".into(),
            ));
        };
        self.fetch(id).await?;
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("admin_state_up", Value::Bool(up)) => {
                    sqlx::query("UPDATE agents SET admin_state_up = $1 WHERE id = $2")
                        .bind(*up)
                        .bind(id)
                        .execute(self.store.pool())
                        .await?;
                }
                ("description", Value::String(text)) if text.len() <= 255 => {
                    sqlx::query("UPDATE agents SET description = $1 WHERE id = $2")
                        .bind(text.as_str())
                        .bind(id)
                        .execute(self.store.pool())
                        .await?;
                }
                ("admin_state_up" | "description", other) => {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid input for {key}. Reason: '{other}' is not valid."
                    )));
                }
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "Cannot update read-only attribute {key}"
                    )));
                }
            }
        }
        self.show(ctx, id).await
    }

    /// `DELETE /v2.0/agents/{id}` (a live agent registers again with its next heartbeat).
    pub async fn delete(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("delete_agent")?;
        let done = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found(Kind::Agent, id));
        }
        Ok(())
    }

    /// The agents on `host` (inside a transaction, for binding).
    pub async fn on_host(
        &self,
        conn: &mut AnyConnection,
        host: &str,
    ) -> Result<Vec<AgentRecord>, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE host = $1 ORDER BY agent_type");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .fetch_all(conn)
            .await?;
        rows.iter()
            .map(|row| {
                let heartbeat: String = row.try_get("heartbeat_at")?;
                let up: i64 = row.try_get("up")?;
                Ok(AgentRecord {
                    id: row.try_get("id")?,
                    host: row.try_get("host")?,
                    agent_type: row.try_get("agent_type")?,
                    admin_state_up: up != 0,
                    alive: self.alive(&heartbeat),
                    configurations: configurations(row)?,
                })
            })
            .collect()
    }

    async fn fetch(&self, id: &str) -> Result<AnyRow, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(Kind::Agent, id))
    }

    fn alive(&self, heartbeat: &str) -> bool {
        let Ok(then) = heartbeat.parse::<jiff::Timestamp>() else {
            return false;
        };
        let age = jiff::Timestamp::now().duration_since(then);
        age.as_secs_f64() < self.down_time.as_secs_f64()
    }

    fn render(&self, row: &AnyRow) -> Result<Value, ApiError> {
        let heartbeat: String = row.try_get("heartbeat_at")?;
        let up: i64 = row.try_get("up")?;
        let created: String = row.try_get("created_at")?;
        let started: String = row.try_get("started_at")?;
        Ok(json!({
            "id": row.try_get::<String, _>("id")?,
            "agent_type": row.try_get::<String, _>("agent_type")?,
            "binary": row.try_get::<String, _>("binary_name")?,
            "topic": row.try_get::<String, _>("topic")?,
            "host": row.try_get::<String, _>("host")?,
            "admin_state_up": up != 0,
            "alive": self.alive(&heartbeat),
            "configurations": configurations(row)?,
            "created_at": neutron_time(&created),
            "started_at": neutron_time(&started),
            "heartbeat_timestamp": neutron_time(&heartbeat),
            "description": row.try_get::<String, _>("description")?,
            "availability_zone": null,
            "resources_synced": null,
        }))
    }
}

fn configurations(row: &AnyRow) -> Result<Map<String, Value>, ApiError> {
    let text: String = row.try_get("configurations")?;
    serde_json::from_str(&text)
        .map_err(|err| ApiError::Internal(format!("stored agent configurations: {err}")))
}

/// Neutron writes agent times as `2026-11-21 10:40:00`.
fn neutron_time(stamp: &str) -> String {
    stamp.replace('T', " ").trim_end_matches('Z').to_owned()
}

fn select_fields(agent: Value, fields: &[String]) -> Value {
    match agent {
        Value::Object(map) if !fields.is_empty() => Value::Object(
            map.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        other => other,
    }
}

/// A heartbeat body, checked.
struct Report {
    host: String,
    agent_type: String,
    binary: String,
    topic: String,
    configurations: Map<String, Value>,
    start_flag: bool,
}

impl Report {
    fn parse(mut body: Map<String, Value>) -> Result<Self, ApiError> {
        let Some(Value::Object(mut agent)) = body.remove("agent") else {
            return Err(ApiError::BadRequest(
                "expected an object under \"agent\"".into(),
            ));
        };
        let mut text = |key: &str, default: Option<&str>| -> Result<String, ApiError> {
            match agent.remove(key) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Ok(s),
                None if default.is_some() => Ok(default.unwrap_or_default().to_owned()),
                _ => Err(ApiError::BadRequest(format!(
                    "agent.{key}: expected a string of 1-255 characters"
                ))),
            }
        };
        let host = text("host", None)?;
        let agent_type = text("agent_type", None)?;
        let binary = text("binary", Some("weft-agent"))?;
        let topic = text("topic", Some("N/A"))?;
        let configurations = match agent.remove("configurations") {
            Some(Value::Object(map)) => map,
            None => Map::new(),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "agent.configurations: expected an object".into(),
                ));
            }
        };
        if let Some(ip) = configurations.get("tunneling_ip")
            && ip
                .as_str()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                .is_none()
        {
            return Err(ApiError::BadRequest(
                "agent.configurations.tunneling_ip: expected an IP address".into(),
            ));
        }
        let start_flag = match agent.remove("start_flag") {
            Some(Value::Bool(b)) => b,
            None => false,
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "agent.start_flag: expected a boolean".into(),
                ));
            }
        };
        if let Some(key) = agent.keys().next() {
            return Err(ApiError::BadRequest(format!(
                "agent.{key}: unknown attribute"
            )));
        }
        Ok(Self {
            host,
            agent_type,
            binary,
            topic,
            configurations,
            start_flag,
        })
    }
}

/// The shared agent secret: read from `path`, or made (32 random bytes, hex, mode 0600) when
/// the file does not exist yet.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.len() < 16 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: an agent token needs at least 16 characters",
                        path.display()
                    ),
                ));
            }
            Ok(token)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|err| std::io::Error::other(err.to_string()))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(token.as_bytes())?;
            file.write_all(b"\n")?;
            Ok(token)
        }
        Err(err) => Err(err),
    }
}

/// Compares a presented secret with the real one in time independent of where they differ.
pub fn token_matches(presented: &str, real: &str) -> bool {
    let (a, b) = (presented.as_bytes(), real.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_checked() {
        let bad = |v: Value| Report::parse(v.as_object().cloned().unwrap_or_default()).is_err();
        assert!(bad(json!({})));
        assert!(bad(json!({"agent": {"agent_type": "weft agent"}})));
        assert!(bad(
            json!({"agent": {"host": "h1", "agent_type": "x", "start_flag": 1}})
        ));
        assert!(bad(
            json!({"agent": {"host": "h1", "agent_type": "x", "configurations": {"tunneling_ip": "nope"}}})
        ));
        assert!(bad(
            json!({"agent": {"host": "h1", "agent_type": "x", "color": "red"}})
        ));
        let ok = Report::parse(
            json!({"agent": {"host": "h1", "agent_type": "weft agent"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .unwrap();
        assert_eq!(
            (ok.binary.as_str(), ok.topic.as_str()),
            ("weft-agent", "N/A")
        );
    }

    #[test]
    fn token_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-token");
        let first = load_or_create_token(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create_token(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(token_matches(&first, &first));
        assert!(!token_matches("short", &first));
    }
}
