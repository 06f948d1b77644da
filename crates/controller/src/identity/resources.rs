//! Domains, projects, users and roles: the typed commands their requests parse into, and the
//! service methods that run each in one transaction. Management is admin-only; a user may read
//! itself and the project its token is scoped to.

use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};

use crate::{
    auth::AuthContext,
    error::{ApiError, Kind},
    identity::{
        BUILTIN_ROLES, DEFAULT_DOMAIN_ID, DOMAIN_COLUMNS, Domain, Identity, PROJECT_COLUMNS,
        Project, ROLE_COLUMNS, Role, USER_COLUMNS, User, UserExtra, domain_by_id, domain_from,
        duplicate, new_id, password, project_by_id, project_from, record, role_by_id, role_from,
        unique_or, user_by_id, user_from,
    },
    network::input::{Input, parse_bool_str},
    store::{Operation, now},
};

/// Longest domain and project names (Keystone's limits).
const MAX_PROJECT_NAME: usize = 64;
/// Longest user and role names.
const MAX_NAME: usize = 255;
/// Longest description.
const MAX_DESCRIPTION: usize = 65_535;

// ---------------------------------------------------------------------------------------------
// Commands.

/// The filters of a list request (`?name=...&domain_id=...&enabled=...`); other query
/// parameters are ignored, as Keystone ignores filters it does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Owning domain (projects and users).
    pub domain_id: Option<String>,
    /// Enabled or not (domains, projects and users).
    pub enabled: Option<bool>,
}

impl ListFilter {
    /// Parses a query string.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut filter = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "name" => filter.name = Some(value.into_owned()),
                "domain_id" => filter.domain_id = Some(value.into_owned()),
                "enabled" => {
                    filter.enabled = Some(parse_bool_str(&value).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid input for field 'enabled': '{value}' is not a boolean"
                        ))
                    })?);
                }
                _ => {}
            }
        }
        Ok(filter)
    }
}

fn required_name(input: &mut Input, max: usize) -> Result<String, ApiError> {
    match input.string("name", max)? {
        Some(name) if !name.trim().is_empty() => Ok(name),
        Some(_) => Err(ApiError::bad_request(
            "Invalid input for field 'name': the name is empty",
        )),
        None => Err(ApiError::bad_request("'name' is a required property")),
    }
}

fn optional_name(input: &mut Input, max: usize) -> Result<Option<String>, ApiError> {
    match input.string("name", max)? {
        Some(name) if name.trim().is_empty() => Err(ApiError::bad_request(
            "Invalid input for field 'name': the name is empty",
        )),
        name => Ok(name),
    }
}

/// `options` is accepted only empty: weft implements none of Keystone's resource options.
fn no_options(input: &mut Input) -> Result<(), ApiError> {
    match input.object("options")? {
        Some(map) if !map.is_empty() => Err(ApiError::bad_request(format!(
            "Invalid input for field 'options': unsupported option(s) '{}'",
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Takes a `description` that may be `null` (meaning empty).
fn description(input: &mut Input) -> Result<Option<String>, ApiError> {
    Ok(input
        .nullable_string("description", MAX_DESCRIPTION)?
        .map(Option::unwrap_or_default))
}

/// `POST /v3/domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDomain {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Enabled.
    pub enabled: bool,
}

impl CreateDomain {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "domain")?;
        let cmd = Self {
            name: required_name(&mut input, MAX_PROJECT_NAME)?,
            description: description(&mut input)?.unwrap_or_default(),
            enabled: input.boolean("enabled")?.unwrap_or(true),
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `PATCH /v3/domains/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateDomain {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New enabled flag.
    pub enabled: Option<bool>,
}

impl UpdateDomain {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "domain")?;
        let cmd = Self {
            name: optional_name(&mut input, MAX_PROJECT_NAME)?,
            description: description(&mut input)?,
            enabled: input.boolean("enabled")?,
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `POST /v3/projects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateProject {
    /// Name.
    pub name: String,
    /// Domain (default: `default`).
    pub domain_id: Option<String>,
    /// Parent: only a domain (weft has no project hierarchy).
    pub parent_id: Option<String>,
    /// Description.
    pub description: String,
    /// Enabled.
    pub enabled: bool,
    /// Tags.
    pub tags: Vec<String>,
}

impl CreateProject {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "project")?;
        let cmd = Self {
            name: required_name(&mut input, MAX_PROJECT_NAME)?,
            domain_id: input.nullable_string("domain_id", 64)?.flatten(),
            parent_id: input.nullable_string("parent_id", 64)?.flatten(),
            description: description(&mut input)?.unwrap_or_default(),
            enabled: input.boolean("enabled")?.unwrap_or(true),
            tags: input.string_list("tags")?.unwrap_or_default(),
        };
        if input.boolean("is_domain")? == Some(true) {
            return Err(ApiError::bad_request(
                "Invalid input for field 'is_domain': projects acting as domains are not supported",
            ));
        }
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `PATCH /v3/projects/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateProject {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

impl UpdateProject {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "project")?;
        if input.has("domain_id") || input.has("parent_id") || input.has("is_domain") {
            return Err(ApiError::bad_request(
                "Update of domain_id, parent_id or is_domain is not allowed.",
            ));
        }
        let cmd = Self {
            name: optional_name(&mut input, MAX_PROJECT_NAME)?,
            description: description(&mut input)?,
            enabled: input.boolean("enabled")?,
            tags: input.string_list("tags")?,
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `POST /v3/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUser {
    /// Name.
    pub name: String,
    /// Domain (default: `default`).
    pub domain_id: Option<String>,
    /// Password (`None`: the user cannot authenticate until one is set).
    pub password: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Default project.
    pub default_project_id: Option<String>,
    /// Description and e-mail.
    pub extra: UserExtra,
}

impl CreateUser {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "user")?;
        let cmd = Self {
            name: required_name(&mut input, MAX_NAME)?,
            domain_id: input.nullable_string("domain_id", 64)?.flatten(),
            password: input
                .nullable_string("password", password::MAX_PASSWORD_LEN)?
                .flatten(),
            enabled: input.boolean("enabled")?.unwrap_or(true),
            default_project_id: input.nullable_string("default_project_id", 64)?.flatten(),
            extra: UserExtra {
                description: input
                    .nullable_string("description", MAX_DESCRIPTION)?
                    .flatten(),
                email: input.nullable_string("email", 255)?.flatten(),
            },
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `PATCH /v3/users/{id}`; for the optional attributes `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateUser {
    /// New name.
    pub name: Option<String>,
    /// New password (revokes the user's tokens).
    pub password: Option<String>,
    /// New enabled flag (disabling revokes the user's tokens).
    pub enabled: Option<bool>,
    /// New default project.
    pub default_project_id: Option<Option<String>>,
    /// New description.
    pub description: Option<Option<String>>,
    /// New e-mail.
    pub email: Option<Option<String>>,
}

impl UpdateUser {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "user")?;
        if input.has("domain_id") {
            return Err(ApiError::bad_request("Update of domain_id is not allowed."));
        }
        let cmd = Self {
            name: optional_name(&mut input, MAX_NAME)?,
            password: match input.nullable_string("password", password::MAX_PASSWORD_LEN)? {
                Some(None) => {
                    return Err(ApiError::bad_request(
                        "Invalid input for field 'password': null is not a string",
                    ));
                }
                other => other.flatten(),
            },
            enabled: input.boolean("enabled")?,
            default_project_id: input.nullable_string("default_project_id", 64)?,
            description: input.nullable_string("description", MAX_DESCRIPTION)?,
            email: input.nullable_string("email", 255)?,
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `POST /v3/users/{id}/password`: a user changes its own password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePassword {
    /// The current password.
    pub original_password: String,
    /// The new one.
    pub password: String,
}

impl ChangePassword {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "user")?;
        let max = password::MAX_PASSWORD_LEN;
        let cmd = Self {
            original_password: input.string("original_password", max)?.ok_or_else(|| {
                ApiError::bad_request("'original_password' is a required property")
            })?,
            password: input
                .string("password", max)?
                .ok_or_else(|| ApiError::bad_request("'password' is a required property"))?,
        };
        input.finish()?;
        Ok(cmd)
    }
}

/// `POST /v3/roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRole {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

impl CreateRole {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "role")?;
        let cmd = Self {
            name: required_name(&mut input, MAX_NAME)?,
            description: description(&mut input)?.unwrap_or_default(),
        };
        if input.nullable_string("domain_id", 64)?.flatten().is_some() {
            return Err(ApiError::bad_request(
                "Invalid input for field 'domain_id': domain-specific roles are not supported",
            ));
        }
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

/// `PATCH /v3/roles/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateRole {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

impl UpdateRole {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "role")?;
        let cmd = Self {
            name: optional_name(&mut input, MAX_NAME)?,
            description: description(&mut input)?,
        };
        no_options(&mut input)?;
        input.finish()?;
        Ok(cmd)
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

enum Bind {
    Text(String),
    Bool(bool),
}

/// `SELECT columns FROM table [WHERE filters] ORDER BY name, id`.
async fn list<T>(
    conn: &mut AnyConnection,
    table: &str,
    columns: &str,
    filter: &ListFilter,
    from: fn(&sqlx::any::AnyRow) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    if let Some(name) = &filter.name {
        binds.push(Bind::Text(name.clone()));
        clauses.push(format!("name = ${}", binds.len()));
    }
    if let Some(domain) = &filter.domain_id
        && table != "domains"
        && table != "roles"
    {
        binds.push(Bind::Text(domain.clone()));
        clauses.push(format!("domain_id = ${}", binds.len()));
    }
    if let Some(enabled) = filter.enabled
        && table != "roles"
    {
        binds.push(Bind::Bool(enabled));
        clauses.push(format!("enabled = ${}", binds.len()));
    }
    let mut sql = format!("SELECT {columns} FROM {table}");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY name, id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Bool(flag) => query.bind(flag),
        };
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(from).collect()
}

async fn count(conn: &mut AnyConnection, sql: &'static str, id: &str) -> Result<i64, ApiError> {
    let row = sqlx::query(sql).bind(id).fetch_one(conn).await?;
    Ok(row.try_get(0)?)
}

/// True when another row of `table` in the same scope already has `name`.
async fn name_taken(
    conn: &mut AnyConnection,
    table: &str,
    scope_domain: Option<&str>,
    name: &str,
    id: &str,
) -> Result<bool, ApiError> {
    let sql = match scope_domain {
        Some(_) => {
            format!("SELECT COUNT(*) FROM {table} WHERE name = $1 AND id <> $2 AND domain_id = $3")
        }
        None => format!("SELECT COUNT(*) FROM {table} WHERE name = $1 AND id <> $2"),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).bind(id);
    if let Some(domain) = scope_domain {
        query = query.bind(domain);
    }
    let row = query.fetch_one(conn).await?;
    let n: i64 = row.try_get(0)?;
    Ok(n > 0)
}

pub(super) async fn existing_domain(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Domain, ApiError> {
    domain_by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(Kind::Domain, id))
}

pub(super) async fn existing_project(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Project, ApiError> {
    project_by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(Kind::Project, id))
}

pub(super) async fn existing_user(conn: &mut AnyConnection, id: &str) -> Result<User, ApiError> {
    user_by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(Kind::User, id))
}

pub(super) async fn existing_role(conn: &mut AnyConnection, id: &str) -> Result<Role, ApiError> {
    role_by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(Kind::Role, id))
}

async fn delete_tokens(
    conn: &mut AnyConnection,
    column: &'static str,
    id: &str,
) -> Result<(), ApiError> {
    let sql = format!("DELETE FROM tokens WHERE {column} = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The service.

impl Identity {
    /// `GET /v3/domains`.
    pub async fn list_domains(
        &self,
        ctx: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Vec<Domain>, ApiError> {
        ctx.require_admin("identity:list_domains")?;
        let mut conn = self.store.pool().acquire().await?;
        list(&mut conn, "domains", DOMAIN_COLUMNS, filter, domain_from).await
    }

    /// `GET /v3/domains/{id}`.
    pub async fn domain(&self, ctx: &AuthContext, id: &str) -> Result<Domain, ApiError> {
        ctx.require_admin("identity:get_domain")?;
        let mut conn = self.store.pool().acquire().await?;
        existing_domain(&mut conn, id).await
    }

    /// `POST /v3/domains`.
    pub async fn create_domain(
        &self,
        ctx: &AuthContext,
        cmd: CreateDomain,
    ) -> Result<Domain, ApiError> {
        ctx.require_admin("identity:create_domain")?;
        let domain = Domain {
            id: new_id(),
            name: cmd.name,
            description: cmd.description,
            enabled: cmd.enabled,
        };
        let mut tx = self.store.write().await?;
        let done = sqlx::query(
            "INSERT INTO domains (id, name, description, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(domain.id.as_str())
        .bind(domain.name.as_str())
        .bind(domain.description.as_str())
        .bind(domain.enabled)
        .bind(now())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(duplicate("domain", &domain.name, ""));
        }
        record(
            &mut tx,
            "domain",
            &domain.id,
            Operation::Create,
            domain.to_json(),
        );
        tx.commit().await?;
        Ok(domain)
    }

    /// `PATCH /v3/domains/{id}`. Disabling a domain stops its users authenticating and
    /// invalidates their tokens; the default domain cannot be disabled.
    pub async fn update_domain(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateDomain,
    ) -> Result<Domain, ApiError> {
        ctx.require_admin("identity:update_domain")?;
        if id == DEFAULT_DOMAIN_ID && cmd.enabled == Some(false) {
            return Err(ApiError::Forbidden(
                "identity:update_domain (the default domain cannot be disabled)".into(),
            ));
        }
        let mut tx = self.store.write().await?;
        let mut domain = existing_domain(tx.conn(), id).await?;
        if let Some(name) = cmd.name {
            if name_taken(tx.conn(), "domains", None, &name, id).await? {
                return Err(duplicate("domain", &name, ""));
            }
            domain.name = name;
        }
        domain.description = cmd.description.unwrap_or(domain.description);
        let disabling = domain.enabled && cmd.enabled == Some(false);
        domain.enabled = cmd.enabled.unwrap_or(domain.enabled);
        sqlx::query("UPDATE domains SET name = $1, description = $2, enabled = $3 WHERE id = $4")
            .bind(domain.name.as_str())
            .bind(domain.description.as_str())
            .bind(domain.enabled)
            .bind(id)
            .execute(tx.conn())
            .await
            .map_err(|err| unique_or(err, || duplicate("domain", &domain.name, "")))?;
        if disabling {
            // Revoked for good, as for a disabled user: re-enabling does not revive them.
            sqlx::query(
                "DELETE FROM tokens WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1) \
                 OR project_id IN (SELECT id FROM projects WHERE domain_id = $1)",
            )
            .bind(id)
            .execute(tx.conn())
            .await?;
        }
        record(&mut tx, "domain", id, Operation::Update, domain.to_json());
        tx.commit().await?;
        if disabling {
            self.cache.clear();
        }
        Ok(domain)
    }

    /// `DELETE /v3/domains/{id}`: only a disabled domain with no projects or users left.
    pub async fn delete_domain(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("identity:delete_domain")?;
        if id == DEFAULT_DOMAIN_ID {
            return Err(ApiError::Forbidden(
                "identity:delete_domain (the default domain cannot be deleted)".into(),
            ));
        }
        let mut tx = self.store.write().await?;
        let domain = existing_domain(tx.conn(), id).await?;
        if domain.enabled {
            return Err(ApiError::Forbidden(
                "identity:delete_domain (Cannot delete a domain that is enabled, please disable \
                 it first.)"
                    .into(),
            ));
        }
        let projects = count(
            tx.conn(),
            "SELECT COUNT(*) FROM projects WHERE domain_id = $1",
            id,
        )
        .await?;
        let users = count(
            tx.conn(),
            "SELECT COUNT(*) FROM users WHERE domain_id = $1",
            id,
        )
        .await?;
        if projects + users > 0 {
            return Err(ApiError::conflict(
                crate::error::Conflict::Duplicate,
                format!(
                    "Domain {id} still has {projects} project(s) and {users} user(s); delete \
                     them first."
                ),
            ));
        }
        sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        record(&mut tx, "domain", id, Operation::Delete, domain.to_json());
        tx.commit().await?;
        Ok(())
    }

    /// `GET /v3/projects`.
    pub async fn list_projects(
        &self,
        ctx: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Vec<Project>, ApiError> {
        ctx.require_admin("identity:list_projects")?;
        let mut conn = self.store.pool().acquire().await?;
        list(&mut conn, "projects", PROJECT_COLUMNS, filter, project_from).await
    }

    /// `GET /v3/projects/{id}`: admin, or a token scoped to that project.
    pub async fn project(&self, ctx: &AuthContext, id: &str) -> Result<Project, ApiError> {
        if ctx.project_id != id || ctx.project_id.is_empty() {
            ctx.require_admin("identity:get_project")?;
        }
        let mut conn = self.store.pool().acquire().await?;
        existing_project(&mut conn, id).await
    }

    /// `POST /v3/projects`.
    pub async fn create_project(
        &self,
        ctx: &AuthContext,
        cmd: CreateProject,
    ) -> Result<Project, ApiError> {
        ctx.require_admin("identity:create_project")?;
        let domain_id = match (cmd.domain_id, cmd.parent_id) {
            (Some(domain), Some(parent)) if domain != parent => {
                return Err(ApiError::bad_request(
                    "Invalid input for field 'parent_id': weft has no project hierarchy; the \
                     parent must be the project's domain",
                ));
            }
            (Some(domain), _) | (None, Some(domain)) => domain,
            (None, None) => DEFAULT_DOMAIN_ID.to_owned(),
        };
        let project = Project {
            id: new_id(),
            domain_id,
            name: cmd.name,
            description: cmd.description,
            enabled: cmd.enabled,
            tags: cmd.tags,
        };
        let tags = serde_json::to_string(&project.tags)
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        let mut tx = self.store.write().await?;
        if domain_by_id(tx.conn(), &project.domain_id).await?.is_none() {
            return Err(ApiError::not_found(Kind::Domain, project.domain_id));
        }
        let done = sqlx::query(
            "INSERT INTO projects (id, domain_id, name, description, enabled, tags, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(project.id.as_str())
        .bind(project.domain_id.as_str())
        .bind(project.name.as_str())
        .bind(project.description.as_str())
        .bind(project.enabled)
        .bind(tags)
        .bind(now())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(duplicate(
                "project",
                &project.name,
                &format!(" at domain ID {}", project.domain_id),
            ));
        }
        record(
            &mut tx,
            "project",
            &project.id,
            Operation::Create,
            project.to_json(),
        );
        tx.commit().await?;
        Ok(project)
    }

    /// `PATCH /v3/projects/{id}`. Disabling a project revokes the tokens scoped to it.
    pub async fn update_project(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateProject,
    ) -> Result<Project, ApiError> {
        ctx.require_admin("identity:update_project")?;
        let mut tx = self.store.write().await?;
        let mut project = existing_project(tx.conn(), id).await?;
        let conflict = |name: &str, domain: &str| {
            duplicate("project", name, &format!(" at domain ID {domain}"))
        };
        if let Some(name) = cmd.name {
            if name_taken(tx.conn(), "projects", Some(&project.domain_id), &name, id).await? {
                return Err(conflict(&name, &project.domain_id));
            }
            project.name = name;
        }
        project.description = cmd.description.unwrap_or(project.description);
        project.tags = cmd.tags.unwrap_or(project.tags);
        let disabling = project.enabled && cmd.enabled == Some(false);
        project.enabled = cmd.enabled.unwrap_or(project.enabled);
        let tags = serde_json::to_string(&project.tags)
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        sqlx::query(
            "UPDATE projects SET name = $1, description = $2, enabled = $3, tags = $4 \
             WHERE id = $5",
        )
        .bind(project.name.as_str())
        .bind(project.description.as_str())
        .bind(project.enabled)
        .bind(tags)
        .bind(id)
        .execute(tx.conn())
        .await
        .map_err(|err| unique_or(err, || conflict(&project.name, &project.domain_id)))?;
        if disabling {
            delete_tokens(tx.conn(), "project_id", id).await?;
        }
        record(&mut tx, "project", id, Operation::Update, project.to_json());
        tx.commit().await?;
        if disabling {
            self.cache.evict_project(id);
        }
        Ok(project)
    }

    /// `DELETE /v3/projects/{id}`: also removes its role assignments and revokes the tokens
    /// scoped to it. Its networking resources stay, as in OpenStack.
    pub async fn delete_project(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("identity:delete_project")?;
        let mut tx = self.store.write().await?;
        let project = existing_project(tx.conn(), id).await?;
        sqlx::query("DELETE FROM role_assignments WHERE project_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        delete_tokens(tx.conn(), "project_id", id).await?;
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        record(&mut tx, "project", id, Operation::Delete, project.to_json());
        tx.commit().await?;
        self.cache.evict_project(id);
        Ok(())
    }

    /// `GET /v3/users`.
    pub async fn list_users(
        &self,
        ctx: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Vec<User>, ApiError> {
        ctx.require_admin("identity:list_users")?;
        let mut conn = self.store.pool().acquire().await?;
        list(&mut conn, "users", USER_COLUMNS, filter, user_from).await
    }

    /// `GET /v3/users/{id}`: admin, or the user itself.
    pub async fn user(&self, ctx: &AuthContext, id: &str) -> Result<User, ApiError> {
        if ctx.user_id != id || ctx.user_id.is_empty() {
            ctx.require_admin("identity:get_user")?;
        }
        let mut conn = self.store.pool().acquire().await?;
        existing_user(&mut conn, id).await
    }

    /// `POST /v3/users`.
    pub async fn create_user(&self, ctx: &AuthContext, cmd: CreateUser) -> Result<User, ApiError> {
        ctx.require_admin("identity:create_user")?;
        let hash = match cmd.password {
            Some(password) => password::hash(password).await?,
            None => String::new(),
        };
        let user = User {
            id: new_id(),
            domain_id: cmd
                .domain_id
                .unwrap_or_else(|| DEFAULT_DOMAIN_ID.to_owned()),
            name: cmd.name,
            enabled: cmd.enabled,
            default_project_id: cmd.default_project_id,
            extra: cmd.extra,
        };
        let mut tx = self.store.write().await?;
        self.insert_user(&mut tx, &user, &hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Inserts a user in `tx` (checking its domain and default project), recording the change.
    pub(crate) async fn insert_user(
        &self,
        tx: &mut crate::store::WriteTx<'_>,
        user: &User,
        password_hash: &str,
    ) -> Result<(), ApiError> {
        if domain_by_id(tx.conn(), &user.domain_id).await?.is_none() {
            return Err(ApiError::not_found(Kind::Domain, user.domain_id.as_str()));
        }
        if let Some(project) = &user.default_project_id {
            existing_project(tx.conn(), project).await?;
        }
        let extra = serde_json::to_string(&user.extra)
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        let done = sqlx::query(
            "INSERT INTO users (id, domain_id, name, enabled, password_hash, default_project_id, \
             extra, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(user.id.as_str())
        .bind(user.domain_id.as_str())
        .bind(user.name.as_str())
        .bind(user.enabled)
        .bind(password_hash)
        .bind(user.default_project_id.clone().unwrap_or_default())
        .bind(extra)
        .bind(now())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(duplicate(
                "user",
                &user.name,
                &format!(" at domain ID {}", user.domain_id),
            ));
        }
        record(tx, "user", &user.id, Operation::Create, user.to_json());
        Ok(())
    }

    /// `PATCH /v3/users/{id}`. A new password or disabling revokes the user's tokens.
    pub async fn update_user(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateUser,
    ) -> Result<User, ApiError> {
        ctx.require_admin("identity:update_user")?;
        let new_hash = match cmd.password {
            Some(password) => Some(password::hash(password).await?),
            None => None,
        };
        let mut tx = self.store.write().await?;
        let mut user = existing_user(tx.conn(), id).await?;
        let conflict =
            |name: &str, domain: &str| duplicate("user", name, &format!(" at domain ID {domain}"));
        if let Some(name) = cmd.name {
            if name_taken(tx.conn(), "users", Some(&user.domain_id), &name, id).await? {
                return Err(conflict(&name, &user.domain_id));
            }
            user.name = name;
        }
        if let Some(Some(project)) = &cmd.default_project_id {
            existing_project(tx.conn(), project).await?;
        }
        user.default_project_id = cmd.default_project_id.unwrap_or(user.default_project_id);
        user.extra.description = cmd.description.unwrap_or(user.extra.description);
        user.extra.email = cmd.email.unwrap_or(user.extra.email);
        let disabling = user.enabled && cmd.enabled == Some(false);
        user.enabled = cmd.enabled.unwrap_or(user.enabled);
        let extra = serde_json::to_string(&user.extra)
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        sqlx::query(
            "UPDATE users SET name = $1, enabled = $2, default_project_id = $3, extra = $4 \
             WHERE id = $5",
        )
        .bind(user.name.as_str())
        .bind(user.enabled)
        .bind(user.default_project_id.clone().unwrap_or_default())
        .bind(extra)
        .bind(id)
        .execute(tx.conn())
        .await
        .map_err(|err| unique_or(err, || conflict(&user.name, &user.domain_id)))?;
        let revoke = disabling || new_hash.is_some();
        if let Some(hash) = new_hash {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id)
                .execute(tx.conn())
                .await?;
        }
        if revoke {
            delete_tokens(tx.conn(), "user_id", id).await?;
        }
        record(&mut tx, "user", id, Operation::Update, user.to_json());
        tx.commit().await?;
        if revoke {
            self.cache.evict_user(id);
        }
        Ok(user)
    }

    /// `POST /v3/users/{id}/password`: the user itself, proving the current password. Revokes
    /// the user's tokens, as Keystone does.
    pub async fn change_password(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: ChangePassword,
    ) -> Result<(), ApiError> {
        if ctx.user_id != id || ctx.user_id.is_empty() {
            return Err(ApiError::Forbidden("identity:change_password".into()));
        }
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(Kind::User, id))?;
        let current: String = row.try_get(0)?;
        if !password::verify(cmd.original_password, current).await {
            return Err(ApiError::BadCredentials);
        }
        let hash = password::hash(cmd.password).await?;
        let mut tx = self.store.write().await?;
        let user = existing_user(tx.conn(), id).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(tx.conn())
            .await?;
        delete_tokens(tx.conn(), "user_id", id).await?;
        record(&mut tx, "user", id, Operation::Update, user.to_json());
        tx.commit().await?;
        self.cache.evict_user(id);
        Ok(())
    }

    /// `DELETE /v3/users/{id}`: also removes its role assignments and revokes its tokens.
    pub async fn delete_user(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("identity:delete_user")?;
        let mut tx = self.store.write().await?;
        let user = existing_user(tx.conn(), id).await?;
        sqlx::query("DELETE FROM role_assignments WHERE user_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        delete_tokens(tx.conn(), "user_id", id).await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        record(&mut tx, "user", id, Operation::Delete, user.to_json());
        tx.commit().await?;
        self.cache.evict_user(id);
        Ok(())
    }

    /// `GET /v3/roles`.
    pub async fn list_roles(
        &self,
        ctx: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Vec<Role>, ApiError> {
        ctx.require_admin("identity:list_roles")?;
        let mut conn = self.store.pool().acquire().await?;
        list(&mut conn, "roles", ROLE_COLUMNS, filter, role_from).await
    }

    /// `GET /v3/roles/{id}`.
    pub async fn role(&self, ctx: &AuthContext, id: &str) -> Result<Role, ApiError> {
        ctx.require_admin("identity:get_role")?;
        let mut conn = self.store.pool().acquire().await?;
        existing_role(&mut conn, id).await
    }

    /// `POST /v3/roles`.
    pub async fn create_role(&self, ctx: &AuthContext, cmd: CreateRole) -> Result<Role, ApiError> {
        ctx.require_admin("identity:create_role")?;
        let role = Role {
            id: new_id(),
            name: cmd.name,
            description: cmd.description,
        };
        let mut tx = self.store.write().await?;
        if !insert_role(tx.conn(), &role).await? {
            return Err(duplicate("role", &role.name, ""));
        }
        record(&mut tx, "role", &role.id, Operation::Create, role.to_json());
        tx.commit().await?;
        Ok(role)
    }

    /// `PATCH /v3/roles/{id}`; the built-in roles cannot be renamed (policy relies on them).
    pub async fn update_role(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateRole,
    ) -> Result<Role, ApiError> {
        ctx.require_admin("identity:update_role")?;
        let mut tx = self.store.write().await?;
        let mut role = existing_role(tx.conn(), id).await?;
        if let Some(name) = cmd.name.filter(|n| *n != role.name) {
            if BUILTIN_ROLES.contains(&role.name.as_str()) {
                return Err(ApiError::Forbidden(format!(
                    "identity:update_role (the built-in role {} cannot be renamed)",
                    role.name
                )));
            }
            if name_taken(tx.conn(), "roles", None, &name, id).await? {
                return Err(duplicate("role", &name, ""));
            }
            role.name = name;
        }
        role.description = cmd.description.unwrap_or(role.description);
        sqlx::query("UPDATE roles SET name = $1, description = $2 WHERE id = $3")
            .bind(role.name.as_str())
            .bind(role.description.as_str())
            .bind(id)
            .execute(tx.conn())
            .await
            .map_err(|err| unique_or(err, || duplicate("role", &role.name, "")))?;
        record(&mut tx, "role", id, Operation::Update, role.to_json());
        tx.commit().await?;
        // Cached contexts carry role names.
        self.cache.clear();
        Ok(role)
    }

    /// `DELETE /v3/roles/{id}`: also removes its assignments; the built-in roles stay.
    pub async fn delete_role(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("identity:delete_role")?;
        let mut tx = self.store.write().await?;
        let role = existing_role(tx.conn(), id).await?;
        if BUILTIN_ROLES.contains(&role.name.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "identity:delete_role (the built-in role {} cannot be deleted)",
                role.name
            )));
        }
        sqlx::query("DELETE FROM role_assignments WHERE role_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        record(&mut tx, "role", id, Operation::Delete, role.to_json());
        tx.commit().await?;
        self.cache.clear();
        Ok(())
    }
}

/// Inserts a role unless its name is taken; true when inserted.
pub(crate) async fn insert_role(conn: &mut AnyConnection, role: &Role) -> Result<bool, ApiError> {
    let done = sqlx::query(
        "INSERT INTO roles (id, name, description, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(role.id.as_str())
    .bind(role.name.as_str())
    .bind(role.description.as_str())
    .bind(now())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
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
    fn parses_list_filters() {
        assert_eq!(
            ListFilter::parse("name=Default&enabled=true&marker=x").unwrap(),
            ListFilter {
                name: Some("Default".into()),
                domain_id: None,
                enabled: Some(true)
            }
        );
        assert_eq!(
            ListFilter::parse("domain_id=default&name=a%20b").unwrap(),
            ListFilter {
                name: Some("a b".into()),
                domain_id: Some("default".into()),
                enabled: None
            }
        );
        assert!(ListFilter::parse("enabled=maybe").is_err());
    }

    #[test]
    fn parses_the_cli_project_create() {
        let cmd = CreateProject::parse(body(json!({"project": {
            "name": "p1", "domain_id": "default", "description": null, "enabled": true,
            "is_domain": false, "parent_id": null, "options": {}}})))
        .unwrap();
        assert_eq!(
            cmd,
            CreateProject {
                name: "p1".into(),
                domain_id: Some("default".into()),
                parent_id: None,
                description: String::new(),
                enabled: true,
                tags: Vec::new(),
            }
        );
        assert!(CreateProject::parse(body(json!({"project": {"name": ""}}))).is_err());
        assert!(CreateProject::parse(body(json!({"project": {"description": "x"}}))).is_err());
        assert!(CreateProject::parse(body(json!({"project": {"name": "p", "nmae": 1}}))).is_err());
        assert!(
            CreateProject::parse(body(json!({"project": {"name": "p", "is_domain": true}})))
                .is_err()
        );
        assert!(UpdateProject::parse(body(json!({"project": {"domain_id": "other"}}))).is_err());
    }

    #[test]
    fn parses_the_cli_user_create_and_update() {
        let cmd = CreateUser::parse(body(json!({"user": {
            "name": "u1", "password": "pw", "enabled": true, "domain_id": "default",
            "email": "u1@example.org"}})))
        .unwrap();
        assert_eq!(
            cmd,
            CreateUser {
                name: "u1".into(),
                domain_id: Some("default".into()),
                password: Some("pw".into()),
                enabled: true,
                default_project_id: None,
                extra: UserExtra {
                    description: None,
                    email: Some("u1@example.org".into())
                },
            }
        );
        let cmd =
            UpdateUser::parse(body(json!({"user": {"enabled": false, "email": null}}))).unwrap();
        assert_eq!(
            cmd,
            UpdateUser {
                enabled: Some(false),
                email: Some(None),
                ..UpdateUser::default()
            }
        );
        assert!(UpdateUser::parse(body(json!({"user": {"password": null}}))).is_err());
        assert!(UpdateUser::parse(body(json!({"user": {"domain_id": "x"}}))).is_err());
        assert!(
            CreateUser::parse(body(json!({"user": {"name": "u", "options": {
            "ignore_lockout_failure_attempts": true}}})))
            .is_err()
        );
    }

    #[test]
    fn parses_roles_domains_and_passwords() {
        assert_eq!(
            CreateRole::parse(body(json!({"role": {"name": "observer"}}))).unwrap(),
            CreateRole {
                name: "observer".into(),
                description: String::new()
            }
        );
        assert!(CreateRole::parse(body(json!({"role": {"name": "r", "domain_id": "d"}}))).is_err());
        assert_eq!(
            CreateDomain::parse(body(json!({"domain": {"name": "d", "enabled": false}}))).unwrap(),
            CreateDomain {
                name: "d".into(),
                description: String::new(),
                enabled: false
            }
        );
        assert_eq!(
            UpdateDomain::parse(body(json!({"domain": {"enabled": true}}))).unwrap(),
            UpdateDomain {
                enabled: Some(true),
                ..UpdateDomain::default()
            }
        );
        assert!(ChangePassword::parse(body(json!({"user": {"password": "n"}}))).is_err());
        assert_eq!(
            ChangePassword::parse(body(json!({"user": {"password": "n",
                "original_password": "o"}})))
            .unwrap(),
            ChangePassword {
                original_password: "o".into(),
                password: "n".into()
            }
        );
    }
}
