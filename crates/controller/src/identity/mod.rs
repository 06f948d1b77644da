//! The identity service (a Keystone v3 subset): domains, projects, users, roles, role
//! assignments and tokens. Handlers in [`http`] parse requests into the typed commands of
//! [`resources`], [`assignments`] and [`token`]; the [`Identity`] methods run each command in
//! one store transaction and return typed data that [`http`] renders in Keystone's shapes.
//!
//! Tokens are random secrets of which only a hash is stored; validation reads the user's roles
//! afresh (so a removed role assignment takes effect) and is cached in-process for a short
//! window (see [`token`]).

pub mod assignments;
pub mod bootstrap;
pub mod http;
pub mod password;
pub mod resources;
pub mod token;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use crate::{
    config::Config,
    error::{ApiError, Conflict},
    store::{Change, Operation, Store, WriteTx},
};

pub use bootstrap::Bootstrapped;
pub use token::{Endpoints, Issued, TokenInfo};

/// The id of the domain every installation has (Keystone's `default`).
pub const DEFAULT_DOMAIN_ID: &str = "default";
/// The name of that domain.
pub const DEFAULT_DOMAIN_NAME: &str = "Default";
/// The roles every installation has, strongest first (admin ⇒ member ⇒ reader).
pub const BUILTIN_ROLES: [&str; 3] = ["admin", "member", "reader"];

/// Users, projects, roles and tokens, kept in the store.
#[derive(Debug)]
pub struct Identity {
    store: Arc<Store>,
    /// How long an issued token lives, in microseconds.
    token_ttl_us: i64,
    /// The region the catalog names.
    region: String,
    cache: token::TokenCache,
}

impl Identity {
    /// The identity service over `store`, with `config`'s token lifetime and region.
    pub fn new(store: Arc<Store>, config: &Config) -> Self {
        let ttl = i64::try_from(config.token_ttl_secs)
            .unwrap_or(i64::MAX / 1_000_000)
            .min(i64::MAX / 1_000_000);
        Self {
            store,
            token_ttl_us: ttl * 1_000_000,
            region: config.bootstrap.region.clone(),
            cache: token::TokenCache::new(token::CACHE_WINDOW),
        }
    }

    /// Replaces the validation cache's freshness window (how long a validated token is trusted
    /// without asking the store again; revocations by another replica show within it).
    #[must_use]
    pub fn with_cache_window(mut self, window: Duration) -> Self {
        self.cache = token::TokenCache::new(window);
        self
    }

    /// The region the service catalog names.
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// A domain: a namespace of users and projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Its id (`default` for the built-in one).
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// A disabled domain's users cannot authenticate.
    pub enabled: bool,
}

/// A project: what networking resources belong to and tokens are scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: String,
    /// The domain it lives in.
    pub domain_id: String,
    /// Its name, unique in the domain.
    pub name: String,
    /// Free text.
    pub description: String,
    /// No token can be scoped to a disabled project.
    pub enabled: bool,
    /// Simple string tags.
    pub tags: Vec<String>,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: String,
    /// The domain it lives in.
    pub domain_id: String,
    /// Its name, unique in the domain.
    pub name: String,
    /// A disabled user cannot authenticate and its tokens are revoked.
    pub enabled: bool,
    /// The project an unscoped authentication is scoped to, if the user has a role there.
    pub default_project_id: Option<String>,
    /// The optional attributes Keystone keeps as "extra".
    pub extra: UserExtra,
}

/// A user's optional attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserExtra {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An e-mail address (not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its id.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
}

impl Domain {
    /// Keystone's representation, without `links`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "description": self.description,
            "enabled": self.enabled, "tags": [], "options": {}})
    }
}

impl Project {
    /// Keystone's representation, without `links`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "domain_id": self.domain_id,
            "description": self.description, "enabled": self.enabled,
            "parent_id": self.domain_id, "is_domain": false, "tags": self.tags, "options": {}})
    }
}

impl User {
    /// Keystone's representation, without `links` (and never the password).
    pub fn to_json(&self) -> Value {
        let mut value = json!({"id": self.id, "name": self.name, "domain_id": self.domain_id,
            "enabled": self.enabled, "password_expires_at": null, "options": {}});
        if let Some(project) = &self.default_project_id {
            value["default_project_id"] = json!(project);
        }
        if let Some(description) = &self.extra.description {
            value["description"] = json!(description);
        }
        if let Some(email) = &self.extra.email {
            value["email"] = json!(email);
        }
        value
    }
}

impl Role {
    /// Keystone's representation, without `links`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "domain_id": null,
            "description": self.description, "options": {}})
    }
}

// Column lists and row readers, so every query selects the same columns in the same order.
// sqlx's Any driver cannot read a SQLite BOOLEAN column (it can bind one), so flags are read
// as integers: `CAST(x AS INTEGER)` is an integer on both backends.
const DOMAIN_COLUMNS: &str = "id, name, description, CAST(enabled AS INTEGER)";
const PROJECT_COLUMNS: &str = "id, domain_id, name, description, CAST(enabled AS INTEGER), tags";
const USER_COLUMNS: &str =
    "id, domain_id, name, CAST(enabled AS INTEGER), default_project_id, extra";
const ROLE_COLUMNS: &str = "id, name, description";

/// Reads a flag selected as `CAST(x AS INTEGER)`.
fn flag(row: &AnyRow, index: usize) -> Result<bool, ApiError> {
    Ok(row.try_get::<i64, _>(index)? != 0)
}

fn domain_from(row: &AnyRow) -> Result<Domain, ApiError> {
    Ok(Domain {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        enabled: flag(row, 3)?,
    })
}

fn project_from(row: &AnyRow) -> Result<Project, ApiError> {
    let tags: String = row.try_get(5)?;
    Ok(Project {
        id: row.try_get(0)?,
        domain_id: row.try_get(1)?,
        name: row.try_get(2)?,
        description: row.try_get(3)?,
        enabled: flag(row, 4)?,
        tags: serde_json::from_str(&tags).map_err(stored_json)?,
    })
}

fn user_from(row: &AnyRow) -> Result<User, ApiError> {
    let default_project_id: String = row.try_get(4)?;
    let extra: String = row.try_get(5)?;
    Ok(User {
        id: row.try_get(0)?,
        domain_id: row.try_get(1)?,
        name: row.try_get(2)?,
        enabled: flag(row, 3)?,
        default_project_id: (!default_project_id.is_empty()).then_some(default_project_id),
        extra: serde_json::from_str(&extra).map_err(stored_json)?,
    })
}

fn role_from(row: &AnyRow) -> Result<Role, ApiError> {
    Ok(Role {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
    })
}

fn stored_json(err: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("stored identity JSON unreadable: {err}"))
}

/// Reads one row of `table` by id with `columns`, mapped by `from`.
async fn fetch_by_id<T>(
    conn: &mut AnyConnection,
    table: &str,
    columns: &str,
    id: &str,
    from: fn(&AnyRow) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    let sql = format!("SELECT {columns} FROM {table} WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from).transpose()
}

async fn domain_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Domain>, ApiError> {
    fetch_by_id(conn, "domains", DOMAIN_COLUMNS, id, domain_from).await
}

async fn domain_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Domain>, ApiError> {
    let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(domain_from).transpose()
}

async fn project_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Project>, ApiError> {
    fetch_by_id(conn, "projects", PROJECT_COLUMNS, id, project_from).await
}

async fn project_by_name(
    conn: &mut AnyConnection,
    domain_id: &str,
    name: &str,
) -> Result<Option<Project>, ApiError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE domain_id = $1 AND name = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(domain_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(project_from).transpose()
}

async fn user_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<User>, ApiError> {
    fetch_by_id(conn, "users", USER_COLUMNS, id, user_from).await
}

async fn role_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Role>, ApiError> {
    fetch_by_id(conn, "roles", ROLE_COLUMNS, id, role_from).await
}

async fn role_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Role>, ApiError> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(role_from).transpose()
}

/// A fresh identity id: 32 hex digits, as Keystone's.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Records a change of an identity resource for the revision log (global: no project).
fn record(
    tx: &mut WriteTx<'_>,
    resource: &'static str,
    id: &str,
    operation: Operation,
    body: Value,
) {
    tx.record(Change {
        resource,
        id: id.to_owned(),
        operation,
        project_id: String::new(),
        body: body.to_string(),
    });
}

/// Keystone's 409 for a name already taken.
fn duplicate(kind: &str, name: &str, scope: &str) -> ApiError {
    ApiError::conflict(
        Conflict::Duplicate,
        format!(
            "Conflict occurred attempting to store {kind} - Duplicate entry found with name {name}{scope}."
        ),
    )
}

/// Maps a unique-constraint violation (a race between two writers that both passed the
/// pre-check, on PostgreSQL) to the 409 the pre-check would have given.
fn unique_or(err: sqlx::Error, conflict: impl FnOnce() -> ApiError) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => conflict(),
        _ => ApiError::Store(err),
    }
}

#[cfg(test)]
mod tests;
