//! Tokens: `POST /v3/auth/tokens` (password or token method, project-scoped or unscoped),
//! validation on every networking request, and revocation.
//!
//! A token is 32 random bytes written as 64 hex digits. The store keeps only its BLAKE2b-256
//! hash, with the user, the scope and the expiry; roles are not copied into the token but read
//! at validation, so removing a role assignment takes effect (as Keystone recomputes roles).
//! Deleting the row revokes the token; deleting or disabling a user deletes its rows.
//!
//! Validation is cached in-process: a hit costs one hash and one read-locked map lookup. An
//! entry is trusted for [`CACHE_WINDOW`], then checked against the store again, so a
//! revocation made through another replica is seen within that window; local revocations,
//! user deletions and role removals evict the entries they affect at once.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use blake2::{Blake2b256, Digest};
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

use crate::{
    auth::{AuthContext, imply_roles},
    error::{ApiError, Kind},
    identity::{
        Domain, Identity, Project, ROLE_COLUMNS, Role, USER_COLUMNS, User, domain_by_id,
        domain_by_name, password, project_by_id, project_by_name, role_by_name, role_from,
        user_by_id, user_from,
    },
};

/// How long a validated token is trusted without asking the store again.
pub const CACHE_WINDOW: Duration = Duration::from_secs(2);

/// The most tokens the validation cache holds; beyond that it drops stale entries, then all.
const CACHE_CAPACITY: usize = 100_000;

/// Length of a token in characters (32 bytes in hex).
const TOKEN_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// The command: what `POST /v3/auth/tokens` asks for.

/// `POST /v3/auth/tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Who is authenticating, and how.
    pub identity: AuthIdentity,
    /// What the token should be scoped to.
    pub scope: Scope,
}

/// The authentication method and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthIdentity {
    /// `password`: a user and its password.
    Password {
        /// The user.
        user: UserSelector,
        /// The password.
        password: String,
    },
    /// `token`: an existing valid token, to rescope.
    Token {
        /// The token.
        token: String,
    },
}

/// A user named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSelector {
    /// By id.
    Id(String),
    /// By name in a domain.
    Name {
        /// The user's name.
        name: String,
        /// Its domain.
        domain: DomainSelector,
    },
}

/// A domain named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainSelector {
    /// By id.
    Id(String),
    /// By name.
    Name(String),
}

/// A project named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectSelector {
    /// By id.
    Id(String),
    /// By name in a domain.
    Name {
        /// The project's name.
        name: String,
        /// Its domain.
        domain: DomainSelector,
    },
}

/// The requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// No `scope`: the user's default project if it has a role there, else unscoped.
    Default,
    /// `"scope": "unscoped"`.
    Unscoped,
    /// A project.
    Project(ProjectSelector),
    /// A domain or the system: weft has no such role assignments, so this always fails.
    Other(&'static str),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    match map.get(key) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(bad(format!(
            "Invalid input for field '{path}{key}': not an object"
        ))),
        None => Err(bad(format!(
            "Expecting to find {path}{key} in request body"
        ))),
    }
}

fn string(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(bad(format!(
            "Invalid input for field '{path}{key}': not a string"
        ))),
    }
}

impl DomainSelector {
    fn parse(map: &Map<String, Value>, path: &str) -> Result<Self, ApiError> {
        if let Some(id) = string(map, "id", path)? {
            return Ok(Self::Id(id));
        }
        match string(map, "name", path)? {
            Some(name) => Ok(Self::Name(name)),
            None => Err(bad(format!("Expecting to find {path}id or {path}name"))),
        }
    }
}

impl AuthRequest {
    /// Parses the request body. Keystone's schema allows extra keys here, so unknown keys are
    /// ignored; missing or mistyped ones are a 400, unsupported methods a 401.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let auth = object(body, "auth", "")?;
        let identity = object(auth, "identity", "auth.")?;
        let methods: Vec<&str> = match identity.get("methods") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|m| {
                    m.as_str()
                        .ok_or_else(|| bad("auth.identity.methods: not strings"))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(bad(
                    "Expecting to find auth.identity.methods in request body",
                ));
            }
        };
        let identity = match methods.as_slice() {
            ["password"] => {
                let section = object(identity, "password", "auth.identity.")?;
                let user = object(section, "user", "auth.identity.password.")?;
                let path = "auth.identity.password.user.";
                let password = string(user, "password", path)?
                    .ok_or_else(|| bad(format!("Expecting to find {path}password")))?;
                let selector = match string(user, "id", path)? {
                    Some(id) => UserSelector::Id(id),
                    None => {
                        let name = string(user, "name", path)?
                            .ok_or_else(|| bad(format!("Expecting to find {path}id or name")))?;
                        let domain = object(user, "domain", path)?;
                        UserSelector::Name {
                            name,
                            domain: DomainSelector::parse(domain, &format!("{path}domain."))?,
                        }
                    }
                };
                AuthIdentity::Password {
                    user: selector,
                    password,
                }
            }
            ["token"] => {
                let section = object(identity, "token", "auth.identity.")?;
                let token = string(section, "id", "auth.identity.token.")?
                    .ok_or_else(|| bad("Expecting to find auth.identity.token.id"))?;
                AuthIdentity::Token { token }
            }
            [] => return Err(bad("auth.identity.methods is empty")),
            _ => return Err(ApiError::BadCredentials),
        };
        let scope = match auth.get("scope") {
            None | Some(Value::Null) => Scope::Default,
            Some(Value::String(s)) if s == "unscoped" => Scope::Unscoped,
            Some(Value::Object(scope)) => {
                if scope.contains_key("project") {
                    let project = object(scope, "project", "auth.scope.")?;
                    let path = "auth.scope.project.";
                    Scope::Project(match string(project, "id", path)? {
                        Some(id) => ProjectSelector::Id(id),
                        None => {
                            let name = string(project, "name", path)?.ok_or_else(|| {
                                bad(format!("Expecting to find {path}id or name"))
                            })?;
                            let domain = object(project, "domain", path)?;
                            ProjectSelector::Name {
                                name,
                                domain: DomainSelector::parse(domain, &format!("{path}domain."))?,
                            }
                        }
                    })
                } else if scope.contains_key("domain") {
                    Scope::Other("domain")
                } else if scope.contains_key("system") {
                    Scope::Other("system")
                } else {
                    return Err(bad("auth.scope: expected project, domain or system"));
                }
            }
            Some(_) => return Err(bad("auth.scope: expected an object or \"unscoped\"")),
        };
        Ok(Self { identity, scope })
    }
}

// ---------------------------------------------------------------------------------------------
// What a token says.

/// Where the catalog's services are reached, as the requesting client sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The identity API's base URL (without `/v3`).
    pub identity: String,
    /// The networking API's base URL.
    pub network: String,
}

/// A valid token's content, as `POST`/`GET /v3/auth/tokens` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// How the user authenticated (`password`, then `token` for a rescoped one).
    pub methods: Vec<String>,
    /// The user.
    pub user: User,
    /// The user's domain.
    pub user_domain: Domain,
    /// The project and its domain (`None`: unscoped).
    pub project: Option<(Project, Domain)>,
    /// Effective roles on the project (implied ones included); empty when unscoped.
    pub roles: Vec<Role>,
    /// Issue time, microseconds since the epoch.
    pub issued_at_us: i64,
    /// Expiry, microseconds since the epoch.
    pub expires_at_us: i64,
    /// This token's audit id, then the one it was rescoped from.
    pub audit_ids: Vec<String>,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The secret, for `X-Subject-Token`.
    pub token: String,
    /// Its content.
    pub info: TokenInfo,
}

impl TokenInfo {
    /// `{"token": {...}}`, with the catalog for a scoped token when `endpoints` is given.
    pub fn to_json(&self, endpoints: Option<&Endpoints>, region: &str) -> Value {
        let mut token = json!({
            "methods": self.methods,
            "user": {
                "id": self.user.id,
                "name": self.user.name,
                "domain": {"id": self.user_domain.id, "name": self.user_domain.name},
                "password_expires_at": null,
            },
            "audit_ids": self.audit_ids,
            "expires_at": rfc3339_us(self.expires_at_us),
            "issued_at": rfc3339_us(self.issued_at_us),
        });
        if let Some((project, domain)) = &self.project {
            token["project"] = json!({"id": project.id, "name": project.name,
                "domain": {"id": domain.id, "name": domain.name}});
            token["is_domain"] = json!(false);
            token["roles"] = self
                .roles
                .iter()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            if let Some(endpoints) = endpoints {
                token["catalog"] = catalog(endpoints, region);
            }
        }
        json!({ "token": token })
    }
}

/// The service catalog: identity and network, each with public, internal and admin endpoints.
pub fn catalog(endpoints: &Endpoints, region: &str) -> Value {
    let service = |kind: &str, name: &str, url: &str| {
        let list: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .map(|interface| {
                json!({"id": stable_id(&format!("{kind}/{interface}")), "interface": interface,
                    "region": region, "region_id": region, "url": url})
            })
            .collect();
        json!({"id": stable_id(kind), "type": kind, "name": name, "endpoints": list})
    };
    json!([
        service(
            "identity",
            "keystone",
            &format!("{}/v3", endpoints.identity)
        ),
        service("network", "neutron", &endpoints.network),
    ])
}

/// A 32-hex-digit id derived from a name, so catalog ids stay the same across restarts.
fn stable_id(name: &str) -> String {
    hex(&token_hash(name)[..16])
}

/// `2026-11-21T10:00:00.123456Z`, as Keystone prints token times.
pub fn rfc3339_us(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string())
        .unwrap_or_default()
}

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

// ---------------------------------------------------------------------------------------------
// Secrets and hashes.

/// The BLAKE2b-256 hash a token is stored and cached under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Blake2b256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|err| ApiError::Internal(format!("no randomness for a token: {err}")))?;
    Ok(bytes)
}

/// Keystone's audit id shape: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_audit_id() -> Result<String, ApiError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes::<16>()?;
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The validation cache.

/// Validated tokens by hash: who they belong to, when they expire, when the store last
/// confirmed them.
#[derive(Debug)]
pub(crate) struct TokenCache {
    inner: RwLock<CacheInner>,
    window: Duration,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Bumped by every eviction: a validation that read the store before an eviction must not
    /// put its (possibly revoked) result back afterwards.
    epoch: u64,
    map: HashMap<[u8; 32], Cached>,
}

#[derive(Debug, Clone)]
struct Cached {
    ctx: AuthContext,
    expires_at_us: i64,
    checked: Instant,
}

enum Lookup {
    Fresh(AuthContext),
    Expired,
    Miss,
}

impl TokenCache {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            inner: RwLock::new(CacheInner::default()),
            window,
        }
    }

    fn lookup(&self, key: &[u8; 32], now: Instant, now_us: i64) -> Lookup {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        match inner.map.get(key) {
            Some(entry) if entry.expires_at_us <= now_us => Lookup::Expired,
            Some(entry) if now.duration_since(entry.checked) < self.window => {
                Lookup::Fresh(entry.ctx.clone())
            }
            _ => Lookup::Miss,
        }
    }

    fn epoch(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .epoch
    }

    /// Caches a validation that started at `epoch`, unless something was evicted since.
    fn insert(&self, key: [u8; 32], epoch: u64, ctx: AuthContext, expires_at_us: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.epoch != epoch {
            return;
        }
        if inner.map.len() >= CACHE_CAPACITY && !inner.map.contains_key(&key) {
            let now = Instant::now();
            let window = self.window;
            inner
                .map
                .retain(|_, entry| now.duration_since(entry.checked) < window);
            if inner.map.len() >= CACHE_CAPACITY {
                inner.map.clear();
            }
        }
        inner.map.insert(
            key,
            Cached {
                ctx,
                expires_at_us,
                checked: Instant::now(),
            },
        );
    }

    fn evict_where(&self, drop: impl Fn(&[u8; 32], &AuthContext) -> bool) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.epoch += 1;
        inner.map.retain(|key, entry| !drop(key, &entry.ctx));
    }

    pub(crate) fn evict_token(&self, key: &[u8; 32]) {
        self.evict_where(|k, _| k == key);
    }

    pub(crate) fn evict_user(&self, user_id: &str) {
        self.evict_where(|_, ctx| ctx.user_id == user_id);
    }

    pub(crate) fn evict_project(&self, project_id: &str) {
        self.evict_where(|_, ctx| ctx.project_id == project_id);
    }

    pub(crate) fn evict_grant(&self, user_id: &str, project_id: &str) {
        self.evict_where(|_, ctx| ctx.user_id == user_id && ctx.project_id == project_id);
    }

    pub(crate) fn clear(&self) {
        self.evict_where(|_, _| true);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

// ---------------------------------------------------------------------------------------------
// The service.

/// A token row joined with what decides whether it is still valid.
struct TokenRow {
    user_id: String,
    project_id: String,
    methods: String,
    audit_ids: String,
    issued_at_us: i64,
    expires_at_us: i64,
    user_ok: bool,
    project_ok: bool,
}

async fn token_row(conn: &mut AnyConnection, hash: &str) -> Result<Option<TokenRow>, ApiError> {
    let row = sqlx::query(
        "SELECT t.user_id, t.project_id, t.methods, t.audit_ids, t.issued_at, t.expires_at, \
         CAST(u.enabled AS INTEGER), CAST(d.enabled AS INTEGER), CAST(p.enabled AS INTEGER) \
         FROM tokens t JOIN users u ON u.id = t.user_id JOIN domains d ON d.id = u.domain_id \
         LEFT JOIN projects p ON p.id = t.project_id WHERE t.hash = $1",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let project_id: String = row.try_get(1)?;
    let user_enabled: i64 = row.try_get(6)?;
    let domain_enabled: i64 = row.try_get(7)?;
    let project_enabled: Option<i64> = row.try_get(8)?;
    Ok(Some(TokenRow {
        user_id: row.try_get(0)?,
        project_ok: project_id.is_empty() || project_enabled.is_some_and(|e| e != 0),
        project_id,
        methods: row.try_get(2)?,
        audit_ids: row.try_get(3)?,
        issued_at_us: row.try_get(4)?,
        expires_at_us: row.try_get(5)?,
        user_ok: user_enabled != 0 && domain_enabled != 0,
    }))
}

/// The names of the roles directly assigned to a user on a project.
pub(crate) async fn assigned_role_names(
    conn: &mut AnyConnection,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id \
         WHERE a.user_id = $1 AND a.project_id = $2 ORDER BY r.name",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(ApiError::from))
        .collect()
}

/// The roles a user holds on a project, implied ones included (admin ⇒ member ⇒ reader).
pub(crate) async fn effective_roles(
    conn: &mut AnyConnection,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<Role>, ApiError> {
    let sql = format!(
        "SELECT {} FROM role_assignments a JOIN roles r ON r.id = a.role_id \
         WHERE a.user_id = $1 AND a.project_id = $2 ORDER BY r.name",
        ROLE_COLUMNS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut roles = rows.iter().map(role_from).collect::<Result<Vec<_>, _>>()?;
    let names = imply_roles(roles.iter().map(|r| r.name.clone()));
    for name in names {
        if !roles.iter().any(|r| r.name == name)
            && let Some(role) = role_by_name(conn, &name).await?
        {
            roles.push(role);
        }
    }
    Ok(roles)
}

async fn resolve_domain(
    conn: &mut AnyConnection,
    selector: &DomainSelector,
) -> Result<Option<Domain>, ApiError> {
    match selector {
        DomainSelector::Id(id) => domain_by_id(conn, id).await,
        DomainSelector::Name(name) => domain_by_name(conn, name).await,
    }
}

/// The user and its password hash, for authentication.
async fn user_for_auth(
    conn: &mut AnyConnection,
    selector: &UserSelector,
) -> Result<Option<(User, String)>, ApiError> {
    let row = match selector {
        UserSelector::Id(id) => {
            let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.as_str())
                .fetch_optional(conn)
                .await?
        }
        UserSelector::Name { name, domain } => {
            let Some(domain) = resolve_domain(conn, domain).await? else {
                return Ok(None);
            };
            let sql = format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE domain_id = $1 AND name = $2"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(domain.id)
                .bind(name.as_str())
                .fetch_optional(conn)
                .await?
        }
    };
    let Some(row) = row else { return Ok(None) };
    Ok(Some((user_from(&row)?, row.try_get(6)?)))
}

impl Identity {
    /// Validates a token and returns who it belongs to: the cheap check every networking
    /// request makes. Expired, revoked and unknown tokens, tokens of deleted or disabled users
    /// and project tokens whose user no longer has a role there are all a 401.
    pub async fn validate(&self, token: &str) -> Result<AuthContext, ApiError> {
        if token.len() != TOKEN_LEN {
            return Err(ApiError::Unauthorized);
        }
        let key = token_hash(token);
        match self.cache.lookup(&key, Instant::now(), now_us()) {
            Lookup::Fresh(ctx) => return Ok(ctx),
            Lookup::Expired => {
                self.cache.evict_token(&key);
                return Err(ApiError::Unauthorized);
            }
            Lookup::Miss => {}
        }
        let epoch = self.cache.epoch();
        let mut conn = self.store.pool().acquire().await?;
        let row = token_row(&mut conn, &hex(&key))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if row.expires_at_us <= now_us() || !row.user_ok || !row.project_ok {
            return Err(ApiError::Unauthorized);
        }
        let roles = if row.project_id.is_empty() {
            Vec::new()
        } else {
            let names = assigned_role_names(&mut conn, &row.user_id, &row.project_id).await?;
            if names.is_empty() {
                return Err(ApiError::Unauthorized);
            }
            imply_roles(names)
        };
        let ctx = AuthContext {
            user_id: row.user_id,
            project_id: row.project_id,
            roles,
        };
        self.cache
            .insert(key, epoch, ctx.clone(), row.expires_at_us);
        Ok(ctx)
    }

    /// Everything a valid token says, read from the store (`None`: not valid).
    async fn token_content(
        &self,
        conn: &mut AnyConnection,
        token: &str,
    ) -> Result<Option<TokenInfo>, ApiError> {
        if token.len() != TOKEN_LEN {
            return Ok(None);
        }
        let Some(row) = token_row(conn, &hex(&token_hash(token))).await? else {
            return Ok(None);
        };
        if row.expires_at_us <= now_us() || !row.user_ok || !row.project_ok {
            return Ok(None);
        }
        let user = user_by_id(conn, &row.user_id).await?;
        let Some(user) = user else { return Ok(None) };
        let Some(user_domain) = domain_by_id(conn, &user.domain_id).await? else {
            return Ok(None);
        };
        let (project, roles) = if row.project_id.is_empty() {
            (None, Vec::new())
        } else {
            let roles = effective_roles(conn, &user.id, &row.project_id).await?;
            let project = project_by_id(conn, &row.project_id).await?;
            let (Some(project), false) = (project, roles.is_empty()) else {
                return Ok(None);
            };
            let Some(domain) = domain_by_id(conn, &project.domain_id).await? else {
                return Ok(None);
            };
            (Some((project, domain)), roles)
        };
        Ok(Some(TokenInfo {
            methods: row.methods.split_whitespace().map(str::to_owned).collect(),
            user,
            user_domain,
            project,
            roles,
            issued_at_us: row.issued_at_us,
            expires_at_us: row.expires_at_us,
            audit_ids: row
                .audit_ids
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        }))
    }

    /// `POST /v3/auth/tokens`: authenticates and issues a token. Any failure to authenticate
    /// or to scope is the same 401, which says nothing about which part was wrong.
    pub async fn issue(&self, request: AuthRequest) -> Result<Issued, ApiError> {
        let mut conn = self.store.pool().acquire().await?;
        let now = now_us();
        let (user, user_domain, methods, expires_at_us, parent_audit) = match request.identity {
            AuthIdentity::Password { user, password } => {
                let found = user_for_auth(&mut conn, &user).await?;
                let hash = found.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
                // Verifying takes tens of milliseconds: give the connection back meanwhile.
                drop(conn);
                let ok = password::verify(password, hash).await;
                conn = self.store.pool().acquire().await?;
                let Some((user, _)) = found.filter(|_| ok) else {
                    return Err(ApiError::BadCredentials);
                };
                let domain = domain_by_id(&mut conn, &user.domain_id).await?;
                let Some(domain) = domain.filter(|d| d.enabled && user.enabled) else {
                    return Err(ApiError::BadCredentials);
                };
                (
                    user,
                    domain,
                    vec!["password".to_owned()],
                    now.saturating_add(self.token_ttl_us),
                    None,
                )
            }
            AuthIdentity::Token { token } => {
                let Some(info) = self.token_content(&mut conn, &token).await? else {
                    return Err(ApiError::BadCredentials);
                };
                let mut methods = info.methods;
                if !methods.iter().any(|m| m == "token") {
                    methods.push("token".to_owned());
                }
                // A rescoped token lives no longer than the one it came from.
                let parent = info.audit_ids.first().cloned();
                (
                    info.user,
                    info.user_domain,
                    methods,
                    info.expires_at_us,
                    parent,
                )
            }
        };
        let project = match &request.scope {
            Scope::Unscoped => None,
            Scope::Other(_) => return Err(ApiError::BadCredentials),
            Scope::Default => match &user.default_project_id {
                Some(id) => {
                    let project = project_by_id(&mut conn, id).await?;
                    let roles = assigned_role_names(&mut conn, &user.id, id).await?;
                    project.filter(|p| p.enabled && !roles.is_empty())
                }
                None => None,
            },
            Scope::Project(selector) => {
                let project = match selector {
                    ProjectSelector::Id(id) => project_by_id(&mut conn, id).await?,
                    ProjectSelector::Name { name, domain } => {
                        match resolve_domain(&mut conn, domain).await? {
                            Some(domain) => project_by_name(&mut conn, &domain.id, name).await?,
                            None => None,
                        }
                    }
                };
                match project.filter(|p| p.enabled) {
                    Some(project) => Some(project),
                    None => return Err(ApiError::BadCredentials),
                }
            }
        };
        let (project, roles) = match project {
            None => (None, Vec::new()),
            Some(project) => {
                let roles = effective_roles(&mut conn, &user.id, &project.id).await?;
                if roles.is_empty() {
                    return Err(ApiError::BadCredentials);
                }
                let domain = domain_by_id(&mut conn, &project.domain_id)
                    .await?
                    .filter(|d| d.enabled)
                    .ok_or(ApiError::BadCredentials)?;
                (Some((project, domain)), roles)
            }
        };
        drop(conn);

        let token = hex(&random_bytes::<32>()?);
        let mut audit_ids = vec![new_audit_id()?];
        audit_ids.extend(parent_audit);
        let project_id = project
            .as_ref()
            .map(|(p, _)| p.id.clone())
            .unwrap_or_default();
        let mut tx = self.store.write().await?;
        // Expired tokens are of no use to anyone: each issue sweeps them (an index range scan
        // that is empty almost every time).
        sqlx::query("DELETE FROM tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT INTO tokens (hash, user_id, project_id, methods, audit_ids, issued_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hex(&token_hash(&token)))
        .bind(user.id.as_str())
        .bind(project_id.as_str())
        .bind(methods.join(" "))
        .bind(audit_ids.join(" "))
        .bind(now)
        .bind(expires_at_us)
        .execute(tx.conn())
        .await?;
        // Tokens are credentials, not resources: they stay out of the revision log, which is
        // streamed to agents.
        tx.commit().await?;
        Ok(Issued {
            token,
            info: TokenInfo {
                methods,
                user,
                user_domain,
                project,
                roles,
                issued_at_us: now,
                expires_at_us,
                audit_ids,
            },
        })
    }

    /// True when `password` is the user's current password (and the user may authenticate).
    /// Slow by design (argon2): for start-up checks, not request paths.
    pub async fn verify_password(
        &self,
        user: &UserSelector,
        password: &str,
    ) -> Result<bool, ApiError> {
        let mut conn = self.store.pool().acquire().await?;
        let found = user_for_auth(&mut conn, user).await?;
        drop(conn);
        let enabled = found.as_ref().is_some_and(|(u, _)| u.enabled);
        let hash = found.map(|(_, h)| h).unwrap_or_default();
        Ok(password::verify(password.to_owned(), hash).await && enabled)
    }

    /// `GET /v3/auth/tokens`: what `subject` says, for its own user or an admin; 404 when it
    /// is not valid.
    pub async fn token_info(
        &self,
        caller: &AuthContext,
        subject: &str,
    ) -> Result<TokenInfo, ApiError> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self
            .token_content(&mut conn, subject)
            .await?
            .ok_or_else(|| ApiError::not_found(Kind::Token, subject))?;
        if !caller.is_admin() && caller.user_id != info.user.id {
            return Err(ApiError::Forbidden("identity:validate_token".into()));
        }
        Ok(info)
    }

    /// `DELETE /v3/auth/tokens`: revokes `subject` (its own user or an admin).
    pub async fn revoke_token(&self, caller: &AuthContext, subject: &str) -> Result<(), ApiError> {
        let key = token_hash(subject);
        let hash = hex(&key);
        let mut tx = self.store.write().await?;
        let row = sqlx::query("SELECT user_id FROM tokens WHERE hash = $1")
            .bind(hash.as_str())
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| ApiError::not_found(Kind::Token, subject))?;
        let owner: String = row.try_get(0)?;
        if !caller.is_admin() && caller.user_id != owner {
            return Err(ApiError::Forbidden("identity:revoke_token".into()));
        }
        sqlx::query("DELETE FROM tokens WHERE hash = $1")
            .bind(hash.as_str())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        self.cache.evict_token(&key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn parses_the_cli_password_request() {
        let request = AuthRequest::parse(&body(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": "pw"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})))
        .unwrap();
        assert_eq!(
            request,
            AuthRequest {
                identity: AuthIdentity::Password {
                    user: UserSelector::Name {
                        name: "admin".into(),
                        domain: DomainSelector::Name("Default".into()),
                    },
                    password: "pw".into(),
                },
                scope: Scope::Project(ProjectSelector::Name {
                    name: "admin".into(),
                    domain: DomainSelector::Name("Default".into()),
                }),
            }
        );
    }

    #[test]
    fn parses_ids_unscoped_and_token_method() {
        let request = AuthRequest::parse(&body(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "id": "u1", "password": "pw"}}}, "scope": "unscoped"}})))
        .unwrap();
        assert_eq!(
            request.identity,
            AuthIdentity::Password {
                user: UserSelector::Id("u1".into()),
                password: "pw".into()
            }
        );
        assert_eq!(request.scope, Scope::Unscoped);
        let request = AuthRequest::parse(&body(json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": "t"}},
            "scope": {"project": {"id": "p1"}}}})))
        .unwrap();
        assert_eq!(request.identity, AuthIdentity::Token { token: "t".into() });
        assert_eq!(
            request.scope,
            Scope::Project(ProjectSelector::Id("p1".into()))
        );
        let request = AuthRequest::parse(&body(json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": "t"}},
            "scope": {"domain": {"id": "default"}}}})))
        .unwrap();
        assert_eq!(request.scope, Scope::Other("domain"));
    }

    #[test]
    fn refuses_malformed_requests() {
        for bad in [
            json!({}),
            json!({"auth": {}}),
            json!({"auth": {"identity": {"methods": []}}}),
            json!({"auth": {"identity": {"methods": ["password"]}}}),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "u", "password": "p"}}}}}),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "id": "u"}}}}}),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "id": 3, "password": "p"}}}}}),
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}},
                "scope": 7}}),
        ] {
            let err = AuthRequest::parse(&body(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}: {err}");
        }
        let err = AuthRequest::parse(&body(json!({"auth": {"identity": {
            "methods": ["totp"], "totp": {}}}})))
        .unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn times_look_like_keystones() {
        assert_eq!(
            rfc3339_us(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            rfc3339_us(1_700_000_000_000_000),
            "2023-11-14T22:13:20.000000Z"
        );
    }

    #[test]
    fn audit_ids_are_22_url_safe_chars() {
        let id = new_audit_id().unwrap();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn catalog_points_at_both_apis() {
        let endpoints = Endpoints {
            identity: "http://h:5000".into(),
            network: "http://h:9696".into(),
        };
        let catalog = catalog(&endpoints, "RegionOne");
        assert_eq!(catalog[0]["type"], "identity");
        assert_eq!(catalog[0]["endpoints"][0]["url"], "http://h:5000/v3");
        assert_eq!(catalog[1]["type"], "network");
        assert_eq!(catalog[1]["name"], "neutron");
        assert_eq!(catalog[1]["endpoints"][2]["interface"], "admin");
        assert_eq!(catalog[1]["endpoints"][2]["url"], "http://h:9696");
        assert_eq!(catalog[1]["endpoints"][0]["region_id"], "RegionOne");
    }

    #[test]
    fn cache_evictions_win_over_in_flight_validations() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let ctx = AuthContext {
            user_id: "u".into(),
            project_id: "p".into(),
            roles: vec!["member".into()],
        };
        let far = now_us() + 60_000_000;
        let epoch = cache.epoch();
        cache.insert([1; 32], epoch, ctx.clone(), far);
        assert!(matches!(
            cache.lookup(&[1; 32], Instant::now(), now_us()),
            Lookup::Fresh(_)
        ));
        // A validation that read the store before this eviction must not re-insert.
        let stale = cache.epoch();
        cache.evict_user("u");
        cache.insert([1; 32], stale, ctx.clone(), far);
        assert_eq!(cache.len(), 0);
        cache.insert([2; 32], cache.epoch(), ctx.clone(), now_us() - 1);
        assert!(matches!(
            cache.lookup(&[2; 32], Instant::now(), now_us()),
            Lookup::Expired
        ));
        cache.evict_grant("u", "p");
        assert_eq!(cache.len(), 0);
    }
}
