//! Keystone v3 routes. Handlers only authenticate, parse into a typed command and call the
//! service, then render the typed result in Keystone's shape (with `links` built from the
//! configured public URL or the request's Host). Errors are rendered as Keystone's
//! `{"error": {...}}` through [`IdentityError`].

use axum::{
    Router,
    body::Body,
    extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use crate::{
    auth::AuthContext,
    error::{ApiError, IdentityError, Kind},
    identity::{
        Domain, Project, Role, User,
        assignments::{Assignment, AssignmentFilter},
        resources::{
            ChangePassword, CreateDomain, CreateProject, CreateRole, CreateUser, ListFilter,
            UpdateDomain, UpdateProject, UpdateRole, UpdateUser,
        },
        token::{AuthRequest, Endpoints, catalog},
    },
    server::{AppState, JsonObject, base_url},
};

/// The identity API version weft speaks (the Keystone release whose v3 subset it follows).
pub const VERSION: &str = "v3.14";

/// The identity API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            get(validate_token).post(issue_token).delete(revoke_token),
        )
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
        .route("/v3/auth/catalog", get(auth_catalog))
        .route("/v3/domains", get(list_domains).post(create_domain))
        .route(
            "/v3/domains/{id}",
            get(show_domain).patch(update_domain).delete(delete_domain),
        )
        .route("/v3/projects", get(list_projects).post(create_project))
        .route(
            "/v3/projects/{id}",
            get(show_project)
                .patch(update_project)
                .delete(delete_project),
        )
        .route(
            "/v3/projects/{project}/users/{user}/roles",
            get(list_grants),
        )
        .route(
            "/v3/projects/{project}/users/{user}/roles/{role}",
            get(check_grant).put(grant).delete(revoke_grant),
        )
        .route("/v3/users", get(list_users).post(create_user))
        .route(
            "/v3/users/{id}",
            get(show_user).patch(update_user).delete(delete_user),
        )
        .route("/v3/users/{id}/projects", get(user_projects))
        .route("/v3/users/{id}/password", post(change_password))
        .route("/v3/roles", get(list_roles).post(create_role))
        .route(
            "/v3/roles/{id}",
            get(show_role).patch(update_role).delete(delete_role),
        )
        .route("/v3/role_assignments", get(list_assignments))
        .route("/v3/services", get(list_services))
        .route("/v3/endpoints", get(list_endpoints))
        .route("/v3/regions", get(list_regions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

type Answer = Result<Response, IdentityError>;

/// Extractor: the validated caller of an identity request (401 in Keystone's shape).
#[derive(Debug)]
pub struct Who(pub AuthContext);

impl FromRequestParts<AppState> for Who {
    type Rejection = IdentityError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .authenticate(&parts.headers)
            .await
            .map(Self)
            .map_err(IdentityError)
    }
}

/// Extractor: a JSON object body, refused in Keystone's shape.
#[derive(Debug)]
pub struct KeystoneBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for KeystoneBody {
    type Rejection = IdentityError;

    async fn from_request(request: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        JsonObject::from_request(request, state)
            .await
            .map(|JsonObject(map)| Self(map))
            .map_err(IdentityError)
    }
}

// ---------------------------------------------------------------------------------------------
// URLs and rendering.

/// The identity API's base URL as the client reached it (no `/v3`).
fn identity_base(state: &AppState, headers: &HeaderMap) -> String {
    base_url(state.config.identity_public_url.as_deref(), headers)
}

/// The host of a Host header value, without its port (`[::1]:5000` → `[::1]`).
pub fn host_part(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Where the catalog sends clients: the configured URLs, else the host the client used for
/// the identity API with each API's own (really bound) port.
pub fn endpoints(state: &AppState, headers: &HeaderMap) -> Endpoints {
    let identity = identity_base(state, headers);
    let network = match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let bound = state
                .network_addr
                .get()
                .copied()
                .unwrap_or(state.config.listen);
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(host_part)
                .filter(|h| !h.is_empty())
                .map_or_else(|| reachable_ip(bound.ip()), str::to_owned);
            format!("http://{host}:{}", bound.port())
        }
    };
    Endpoints { identity, network }
}

/// An address a client can use for `ip` (a wildcard bind means "this host": loopback).
fn reachable_ip(ip: std::net::IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".into(),
        ip if ip.is_unspecified() => "[::1]".into(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 204 with `Content-Length: 0` (keep-alive clients rely on it).
fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, 0.into());
    response
}

fn linked(mut value: Value, base: &str, collection: &str, id: &str) -> Value {
    value["links"] = json!({"self": format!("{base}/v3/{collection}/{id}")});
    value
}

fn one(status: StatusCode, key: &str, value: Value) -> Response {
    json_response(status, &json!({ key: value }))
}

fn many(key: &str, items: Vec<Value>, base: &str, path: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({key: items, "links": {"self": format!("{base}/v3/{path}"),
            "previous": null, "next": null}}),
    )
}

fn domain_json(domain: &Domain, base: &str) -> Value {
    linked(domain.to_json(), base, "domains", &domain.id)
}

fn project_json(project: &Project, base: &str) -> Value {
    linked(project.to_json(), base, "projects", &project.id)
}

fn user_json(user: &User, base: &str) -> Value {
    linked(user.to_json(), base, "users", &user.id)
}

fn role_json(role: &Role, base: &str) -> Value {
    linked(role.to_json(), base, "roles", &role.id)
}

/// One entry of `GET /v3/role_assignments`.
pub fn assignment_json(a: &Assignment, include_names: bool, base: &str) -> Value {
    let mut role = json!({"id": a.role_id});
    let mut user = json!({"id": a.user_id});
    let mut project = json!({"id": a.project_id});
    if include_names {
        role["name"] = json!(a.role_name);
        user["name"] = json!(a.user_name);
        user["domain"] = json!({"id": a.user_domain_id, "name": a.user_domain_name});
        project["name"] = json!(a.project_name);
        project["domain"] = json!({"id": a.project_domain_id, "name": a.project_domain_name});
    }
    json!({"role": role, "user": user, "scope": {"project": project},
        "links": {"assignment": format!("{base}/v3/projects/{}/users/{}/roles/{}",
            a.project_id, a.user_id, a.role_id)}})
}

fn version_json(base: &str) -> Value {
    json!({
        "id": VERSION,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

// ---------------------------------------------------------------------------------------------
// Version discovery.

/// `GET /`: Keystone answers 300 Multiple Choices with the versions it has.
async fn versions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = identity_base(&state, &headers);
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": {"values": [version_json(&base)]}}),
    )
}

async fn version(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = identity_base(&state, &headers);
    one(StatusCode::OK, "version", version_json(&base))
}

// ---------------------------------------------------------------------------------------------
// Tokens.

fn wants_catalog(query: Option<&str>) -> bool {
    !form_urlencoded::parse(query.unwrap_or_default().as_bytes()).any(|(k, _)| k == "nocatalog")
}

fn subject(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("X-Subject-Token header is required"))
}

fn token_response(status: StatusCode, token: &str, body: &Value) -> Answer {
    let mut response = json_response(status, body);
    let value = HeaderValue::from_str(token)
        .map_err(|_| ApiError::Internal("token is not a header value".into()))?;
    response.headers_mut().insert("x-subject-token", value);
    Ok(response)
}

async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let request = AuthRequest::parse(&body)?;
    let issued = state.identity.issue(request).await?;
    let endpoints = endpoints(&state, &headers);
    let catalog = wants_catalog(query.as_deref()).then_some(&endpoints);
    let body = issued.info.to_json(catalog, state.identity.region());
    token_response(StatusCode::CREATED, &issued.token, &body)
}

async fn validate_token(
    State(state): State<AppState>,
    Who(caller): Who,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    let subject = subject(&headers)?;
    let info = state.identity.token_info(&caller, &subject).await?;
    let endpoints = endpoints(&state, &headers);
    let catalog = wants_catalog(query.as_deref()).then_some(&endpoints);
    let body = info.to_json(catalog, state.identity.region());
    token_response(StatusCode::OK, &subject, &body)
}

async fn revoke_token(
    State(state): State<AppState>,
    Who(caller): Who,
    headers: HeaderMap,
) -> Answer {
    let subject = subject(&headers)?;
    state.identity.revoke_token(&caller, &subject).await?;
    Ok(no_content())
}

async fn auth_projects(State(state): State<AppState>, Who(caller): Who, h: HeaderMap) -> Answer {
    let base = identity_base(&state, &h);
    let projects = state.identity.auth_projects(&caller).await?;
    let items = projects.iter().map(|p| project_json(p, &base)).collect();
    Ok(many("projects", items, &base, "auth/projects"))
}

async fn auth_domains(State(state): State<AppState>, Who(_caller): Who, h: HeaderMap) -> Answer {
    // weft has no domain role assignments, so no token can be scoped to a domain.
    let base = identity_base(&state, &h);
    Ok(many("domains", Vec::new(), &base, "auth/domains"))
}

async fn auth_catalog(State(state): State<AppState>, Who(_caller): Who, h: HeaderMap) -> Answer {
    let base = identity_base(&state, &h);
    let catalog = catalog(&endpoints(&state, &h), state.identity.region());
    Ok(json_response(
        StatusCode::OK,
        &json!({"catalog": catalog, "links": {"self": format!("{base}/v3/auth/catalog"),
            "previous": null, "next": null}}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Domains.

async fn list_domains(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let filter = ListFilter::parse(q.as_deref().unwrap_or_default())?;
    let base = identity_base(&s, &h);
    let list = s.identity.list_domains(&c, &filter).await?;
    let items = list.iter().map(|d| domain_json(d, &base)).collect();
    Ok(many("domains", items, &base, "domains"))
}

async fn show_domain(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let domain = s.identity.domain(&c, &id).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "domain", domain_json(&domain, &base)))
}

async fn create_domain(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = CreateDomain::parse(body)?;
    let domain = s.identity.create_domain(&c, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(
        StatusCode::CREATED,
        "domain",
        domain_json(&domain, &base),
    ))
}

async fn update_domain(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = UpdateDomain::parse(body)?;
    let domain = s.identity.update_domain(&c, &id, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "domain", domain_json(&domain, &base)))
}

async fn delete_domain(State(s): State<AppState>, Who(c): Who, Path(id): Path<String>) -> Answer {
    s.identity.delete_domain(&c, &id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Projects.

async fn list_projects(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let filter = ListFilter::parse(q.as_deref().unwrap_or_default())?;
    let base = identity_base(&s, &h);
    let list = s.identity.list_projects(&c, &filter).await?;
    let items = list.iter().map(|p| project_json(p, &base)).collect();
    Ok(many("projects", items, &base, "projects"))
}

async fn show_project(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let project = s.identity.project(&c, &id).await?;
    let base = identity_base(&s, &h);
    Ok(one(
        StatusCode::OK,
        "project",
        project_json(&project, &base),
    ))
}

async fn create_project(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = CreateProject::parse(body)?;
    let project = s.identity.create_project(&c, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(
        StatusCode::CREATED,
        "project",
        project_json(&project, &base),
    ))
}

async fn update_project(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = UpdateProject::parse(body)?;
    let project = s.identity.update_project(&c, &id, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(
        StatusCode::OK,
        "project",
        project_json(&project, &base),
    ))
}

async fn delete_project(State(s): State<AppState>, Who(c): Who, Path(id): Path<String>) -> Answer {
    s.identity.delete_project(&c, &id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Role assignments.

async fn list_grants(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path((project, user)): Path<(String, String)>,
) -> Answer {
    let roles = s.identity.list_grants(&c, &project, &user).await?;
    let base = identity_base(&s, &h);
    let items = roles.iter().map(|r| role_json(r, &base)).collect();
    Ok(many(
        "roles",
        items,
        &base,
        &format!("projects/{project}/users/{user}/roles"),
    ))
}

async fn check_grant(
    State(s): State<AppState>,
    Who(c): Who,
    Path((project, user, role)): Path<(String, String, String)>,
) -> Answer {
    s.identity.check_grant(&c, &project, &user, &role).await?;
    Ok(no_content())
}

async fn grant(
    State(s): State<AppState>,
    Who(c): Who,
    Path((project, user, role)): Path<(String, String, String)>,
) -> Answer {
    s.identity.grant(&c, &project, &user, &role).await?;
    Ok(no_content())
}

async fn revoke_grant(
    State(s): State<AppState>,
    Who(c): Who,
    Path((project, user, role)): Path<(String, String, String)>,
) -> Answer {
    s.identity.revoke_grant(&c, &project, &user, &role).await?;
    Ok(no_content())
}

async fn list_assignments(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let filter = AssignmentFilter::parse(q.as_deref().unwrap_or_default());
    let list = s.identity.list_assignments(&c, &filter).await?;
    let base = identity_base(&s, &h);
    let items = list
        .iter()
        .map(|a| assignment_json(a, filter.include_names, &base))
        .collect();
    Ok(many("role_assignments", items, &base, "role_assignments"))
}

// ---------------------------------------------------------------------------------------------
// Users.

async fn list_users(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let filter = ListFilter::parse(q.as_deref().unwrap_or_default())?;
    let base = identity_base(&s, &h);
    let list = s.identity.list_users(&c, &filter).await?;
    let items = list.iter().map(|u| user_json(u, &base)).collect();
    Ok(many("users", items, &base, "users"))
}

async fn show_user(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let user = s.identity.user(&c, &id).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "user", user_json(&user, &base)))
}

async fn create_user(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = CreateUser::parse(body)?;
    let user = s.identity.create_user(&c, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::CREATED, "user", user_json(&user, &base)))
}

async fn update_user(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = UpdateUser::parse(body)?;
    let user = s.identity.update_user(&c, &id, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "user", user_json(&user, &base)))
}

async fn delete_user(State(s): State<AppState>, Who(c): Who, Path(id): Path<String>) -> Answer {
    s.identity.delete_user(&c, &id).await?;
    Ok(no_content())
}

async fn user_projects(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let projects = s.identity.user_projects(&c, &id).await?;
    let base = identity_base(&s, &h);
    let items = projects.iter().map(|p| project_json(p, &base)).collect();
    Ok(many(
        "projects",
        items,
        &base,
        &format!("users/{id}/projects"),
    ))
}

async fn change_password(
    State(s): State<AppState>,
    Who(c): Who,
    Path(id): Path<String>,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = ChangePassword::parse(body)?;
    s.identity.change_password(&c, &id, cmd).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Roles.

async fn list_roles(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let filter = ListFilter::parse(q.as_deref().unwrap_or_default())?;
    let base = identity_base(&s, &h);
    let list = s.identity.list_roles(&c, &filter).await?;
    let items = list.iter().map(|r| role_json(r, &base)).collect();
    Ok(many("roles", items, &base, "roles"))
}

async fn show_role(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let role = s.identity.role(&c, &id).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "role", role_json(&role, &base)))
}

async fn create_role(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = CreateRole::parse(body)?;
    let role = s.identity.create_role(&c, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::CREATED, "role", role_json(&role, &base)))
}

async fn update_role(
    State(s): State<AppState>,
    Who(c): Who,
    h: HeaderMap,
    Path(id): Path<String>,
    KeystoneBody(body): KeystoneBody,
) -> Answer {
    let cmd = UpdateRole::parse(body)?;
    let role = s.identity.update_role(&c, &id, cmd).await?;
    let base = identity_base(&s, &h);
    Ok(one(StatusCode::OK, "role", role_json(&role, &base)))
}

async fn delete_role(State(s): State<AppState>, Who(c): Who, Path(id): Path<String>) -> Answer {
    s.identity.delete_role(&c, &id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// The catalog as resources (read-only: weft's catalog is its two APIs, not a table).

async fn list_services(State(s): State<AppState>, Who(c): Who, h: HeaderMap) -> Answer {
    c.require_admin("identity:list_services")?;
    let base = identity_base(&s, &h);
    let catalog = catalog(&endpoints(&s, &h), s.identity.region());
    let items = catalog
        .as_array()
        .into_iter()
        .flatten()
        .map(|service| {
            let id = service["id"].as_str().unwrap_or_default();
            linked(
                json!({"id": id, "type": service["type"], "name": service["name"],
                    "enabled": true, "description": ""}),
                &base,
                "services",
                id,
            )
        })
        .collect();
    Ok(many("services", items, &base, "services"))
}

async fn list_endpoints(State(s): State<AppState>, Who(c): Who, h: HeaderMap) -> Answer {
    c.require_admin("identity:list_endpoints")?;
    let base = identity_base(&s, &h);
    let catalog = catalog(&endpoints(&s, &h), s.identity.region());
    let mut items = Vec::new();
    for service in catalog.as_array().into_iter().flatten() {
        for endpoint in service["endpoints"].as_array().into_iter().flatten() {
            let mut endpoint = endpoint.clone();
            endpoint["service_id"] = service["id"].clone();
            endpoint["enabled"] = json!(true);
            let id = endpoint["id"].as_str().unwrap_or_default().to_owned();
            items.push(linked(endpoint, &base, "endpoints", &id));
        }
    }
    Ok(many("endpoints", items, &base, "endpoints"))
}

async fn list_regions(State(s): State<AppState>, Who(_c): Who, h: HeaderMap) -> Answer {
    let base = identity_base(&s, &h);
    let region = s.identity.region();
    let item = linked(
        json!({"id": region, "description": "", "parent_region_id": null}),
        &base,
        "regions",
        region,
    );
    Ok(many("regions", vec![item], &base, "regions"))
}

async fn not_found(uri: Uri) -> IdentityError {
    IdentityError(ApiError::not_found(Kind::Resource, uri.path()))
}

async fn method_not_allowed() -> IdentityError {
    IdentityError(ApiError::MethodNotAllowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        assert_eq!(host_part("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_part("keystone.example"), "keystone.example");
        assert_eq!(host_part("[::1]:5000"), "[::1]");
        assert_eq!(host_part("[::1]"), "[::1]");
        assert_eq!(reachable_ip("0.0.0.0".parse().unwrap()), "127.0.0.1");
        assert_eq!(reachable_ip("::".parse().unwrap()), "[::1]");
        assert_eq!(reachable_ip("10.0.0.5".parse().unwrap()), "10.0.0.5");
    }

    #[test]
    fn nocatalog_flag() {
        assert!(wants_catalog(None));
        assert!(!wants_catalog(Some("nocatalog")));
        assert!(!wants_catalog(Some("nocatalog=1")));
    }
}
