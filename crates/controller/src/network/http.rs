//! Neutron v2.0 routes. Handlers only authenticate, parse into a typed command and call the
//! service; the service's `Result` becomes the response (errors through
//! [`ApiError::into_neutron_response`](crate::error::ApiError::into_neutron_response)).

use axum::{
    Router,
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde_json::json;

use crate::{
    error::{ApiError, Kind},
    network::{
        NETWORKS, PORTS, SECURITY_GROUPS, SUBNETS, TRUNKS, VSI_ASSOCIATIONS, VSI_TYPES,
        list::Table,
        networks::{CreateNetwork, UpdateNetwork},
        ports::{CreatePort, UpdatePort},
        subnets::{CreateSubnet, UpdateSubnet},
        tags::{TagChange, check_tag, parse_replace},
        trunks::{CreateTrunk, UpdateTrunk, parse_subport_body},
        vsi::{CreateVsiType, UpdateVsiType},
    },
    server::{AppState, Caller, JsonObject, base_url},
};

/// The extensions weft implements: exactly these aliases are advertised.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("agent", "agent", "The agent management extension."),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
    ),
    (
        "ip-substring-filtering",
        "IP address substring filtering",
        "Provides IP address substring filtering when listing ports",
    ),
    (
        "multi-provider",
        "Multi Provider Network",
        "Expose mapping of virtual networks to multiple physical networks",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "trunk",
        "Trunk Extension",
        "Provides support for trunk ports",
    ),
    (
        "trunk-details",
        "Trunk port details",
        "Expose trunk port details",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, network, port",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "weft-vsi",
        "VSI type database",
        "802.1Qbg VSI types mapped to network profiles, and the VDP associations bridges made.",
    ),
];

/// The networking API's routes.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(versions))
        .route("/v2.0", get(resources))
        .route("/v2.0/", get(resources))
        .route("/v2.0/extensions", get(extensions))
        .route("/v2.0/extensions/{alias}", get(extension))
        .route("/v2.0/networks", get(list_networks).post(create_network))
        .route(
            "/v2.0/networks/{id}",
            get(show_network).put(update_network).delete(delete_network),
        )
        .route("/v2.0/subnets", get(list_subnets).post(create_subnet))
        .route(
            "/v2.0/subnets/{id}",
            get(show_subnet).put(update_subnet).delete(delete_subnet),
        )
        .route("/v2.0/ports", get(list_ports).post(create_port))
        .route(
            "/v2.0/ports/{id}",
            get(show_port).put(update_port).delete(delete_port),
        )
        .route("/v2.0/security-groups", get(list_groups))
        .route("/v2.0/security-groups/{id}", get(show_group))
        .route("/v2.0/trunks", get(list_trunks).post(create_trunk))
        .route(
            "/v2.0/trunks/{id}",
            get(show_trunk).put(update_trunk).delete(delete_trunk),
        )
        .route("/v2.0/trunks/{id}/add_subports", put(add_subports))
        .route("/v2.0/trunks/{id}/remove_subports", put(remove_subports))
        .route("/v2.0/trunks/{id}/get_subports", get(get_subports))
        .route("/v2.0/vsi-types", get(list_vsi_types).post(create_vsi_type))
        .route(
            "/v2.0/vsi-types/{id}",
            get(show_vsi_type)
                .put(update_vsi_type)
                .delete(delete_vsi_type),
        )
        .route("/v2.0/vsi-associations", get(list_vsi_associations))
        .route("/v2.0/vsi-associations/{id}", get(show_vsi_association))
        .merge(crate::agent_api::routes());
    for table in [&NETWORKS, &SUBNETS, &PORTS, &SECURITY_GROUPS, &TRUNKS] {
        router = router
            .route(
                &format!("/v2.0/{}/{{id}}/tags", table.path),
                get(move |s, c, p| get_tags(s, c, p, table))
                    .put(move |s, c, p, b| replace_tags(s, c, p, b, table))
                    .delete(move |s, c, p| clear_tags(s, c, p, table)),
            )
            .route(
                &format!("/v2.0/{}/{{id}}/tags/{{tag}}", table.path),
                get(move |s, c, p| has_tag(s, c, p, table))
                    .put(move |s, c, p| add_tag(s, c, p, table))
                    .delete(move |s, c, p| remove_tag(s, c, p, table)),
            );
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A JSON response with a status.
fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// 204 with `Content-Length: 0` (clients that keep the connection alive rely on it).
fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, 0.into());
    response
}

type Answer = Result<Response, ApiError>;

fn network_base(state: &AppState, headers: &HeaderMap) -> String {
    base_url(state.config.public_url.as_deref(), headers)
}

fn fields_of(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

async fn versions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = network_base(&state, &headers);
    let body = json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]});
    json_response(StatusCode::OK, body.to_string())
}

async fn resources(State(state): State<AppState>, headers: HeaderMap, _caller: Caller) -> Response {
    let base = network_base(&state, &headers);
    let resources: Vec<_> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
    ]
    .iter()
    .map(|(name, collection)| {
        json!({"name": name, "collection": collection,
                "links": [{"rel": "self", "href": format!("{base}/v2.0/{collection}")}]})
    })
    .collect();
    json_response(StatusCode::OK, json!({"resources": resources}).to_string())
}

fn extension_json(alias: &str, name: &str, description: &str) -> serde_json::Value {
    json!({"alias": alias, "name": name, "description": description,
        "updated": "2026-11-21T00:00:00-00:00", "links": []})
}

async fn extensions(_caller: Caller) -> Response {
    let list: Vec<_> = EXTENSIONS
        .iter()
        .map(|(a, n, d)| extension_json(a, n, d))
        .collect();
    json_response(StatusCode::OK, json!({"extensions": list}).to_string())
}

async fn extension(_caller: Caller, Path(alias): Path<String>) -> Answer {
    let (a, n, d) = EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .ok_or_else(|| ApiError::not_found(Kind::Extension, alias.clone()))?;
    Ok(json_response(
        StatusCode::OK,
        json!({"extension": extension_json(a, n, d)}).to_string(),
    ))
}

async fn list_in(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    query: Option<String>,
    table: &Table,
) -> Answer {
    let base = network_base(state, headers);
    let body = state
        .network
        .list(
            table,
            &caller.0,
            query.as_deref().unwrap_or_default(),
            &base,
        )
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn show_in(
    state: &AppState,
    caller: &Caller,
    id: &str,
    query: Option<String>,
    table: &Table,
) -> Answer {
    let body = state
        .network
        .show(table, &caller.0, id, &fields_of(query.as_deref()))
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn list_networks(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &NETWORKS).await
}

async fn show_network(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &NETWORKS).await
}

async fn create_network(
    State(s): State<AppState>,
    c: Caller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = CreateNetwork::parse(body)?;
    Ok(json_response(
        StatusCode::CREATED,
        s.network.create_network(&c.0, cmd).await?,
    ))
}

async fn update_network(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = UpdateNetwork::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.update_network(&c.0, &id, cmd).await?,
    ))
}

async fn delete_network(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.network.delete_network(&c.0, &id).await?;
    Ok(no_content())
}

async fn list_subnets(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &SUBNETS).await
}

async fn show_subnet(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &SUBNETS).await
}

async fn create_subnet(
    State(s): State<AppState>,
    c: Caller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = CreateSubnet::parse(body)?;
    Ok(json_response(
        StatusCode::CREATED,
        s.network.create_subnet(&c.0, cmd).await?,
    ))
}

async fn update_subnet(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = UpdateSubnet::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.update_subnet(&c.0, &id, cmd).await?,
    ))
}

async fn delete_subnet(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.network.delete_subnet(&c.0, &id).await?;
    Ok(no_content())
}

async fn list_ports(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &PORTS).await
}

async fn show_port(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &PORTS).await
}

async fn create_port(State(s): State<AppState>, c: Caller, JsonObject(body): JsonObject) -> Answer {
    let cmd = CreatePort::parse(body)?;
    Ok(json_response(
        StatusCode::CREATED,
        s.network.create_port(&c.0, cmd).await?,
    ))
}

async fn update_port(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = UpdatePort::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.update_port(&c.0, &id, cmd).await?,
    ))
}

async fn delete_port(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.network.delete_port(&c.0, &id).await?;
    Ok(no_content())
}

async fn list_trunks(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &TRUNKS).await
}

async fn show_trunk(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &TRUNKS).await
}

async fn create_trunk(
    State(s): State<AppState>,
    c: Caller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = CreateTrunk::parse(body)?;
    Ok(json_response(
        StatusCode::CREATED,
        s.network.create_trunk(&c.0, cmd).await?,
    ))
}

async fn update_trunk(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = UpdateTrunk::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.update_trunk(&c.0, &id, cmd).await?,
    ))
}

async fn delete_trunk(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.network.delete_trunk(&c.0, &id).await?;
    Ok(no_content())
}

async fn add_subports(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let subs = parse_subport_body(body, true)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.add_subports(&c.0, &id, subs).await?,
    ))
}

async fn remove_subports(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let subs = parse_subport_body(body, false)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.remove_subports(&c.0, &id, subs).await?,
    ))
}

async fn get_subports(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        s.network.get_subports(&c.0, &id).await?,
    ))
}

async fn list_vsi_types(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &VSI_TYPES).await
}

async fn show_vsi_type(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &VSI_TYPES).await
}

async fn create_vsi_type(
    State(s): State<AppState>,
    c: Caller,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = CreateVsiType::parse(body)?;
    Ok(json_response(
        StatusCode::CREATED,
        s.network.create_vsi_type(&c.0, cmd).await?,
    ))
}

async fn update_vsi_type(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Answer {
    let cmd = UpdateVsiType::parse(body)?;
    Ok(json_response(
        StatusCode::OK,
        s.network.update_vsi_type(&c.0, &id, cmd).await?,
    ))
}

async fn delete_vsi_type(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer {
    s.network.delete_vsi_type(&c.0, &id).await?;
    Ok(no_content())
}

async fn list_vsi_associations(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &VSI_ASSOCIATIONS).await
}

async fn show_vsi_association(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &VSI_ASSOCIATIONS).await
}

async fn list_groups(
    State(s): State<AppState>,
    c: Caller,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    list_in(&s, &c, &h, q, &SECURITY_GROUPS).await
}

async fn show_group(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    show_in(&s, &c, &id, q, &SECURITY_GROUPS).await
}

fn tags_body(tags: Vec<String>) -> String {
    json!({"tags": tags}).to_string()
}

async fn get_tags(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    table: &'static Table,
) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        tags_body(s.network.tags(table, &c.0, &id).await?),
    ))
}

async fn has_tag(
    State(s): State<AppState>,
    c: Caller,
    Path((id, tag)): Path<(String, String)>,
    table: &'static Table,
) -> Answer {
    if s.network.tags(table, &c.0, &id).await?.contains(&tag) {
        Ok(no_content())
    } else {
        Err(ApiError::not_found(Kind::Tag, tag))
    }
}

async fn replace_tags(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
    table: &'static Table,
) -> Answer {
    let tags = parse_replace(body)?;
    let tags = s
        .network
        .change_tags(table, &c.0, &id, TagChange::Replace(tags))
        .await?;
    Ok(json_response(StatusCode::OK, tags_body(tags)))
}

async fn add_tag(
    State(s): State<AppState>,
    c: Caller,
    Path((id, tag)): Path<(String, String)>,
    table: &'static Table,
) -> Answer {
    check_tag(&tag)?;
    s.network
        .change_tags(table, &c.0, &id, TagChange::Add(tag))
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_tag(
    State(s): State<AppState>,
    c: Caller,
    Path((id, tag)): Path<(String, String)>,
    table: &'static Table,
) -> Answer {
    s.network
        .change_tags(table, &c.0, &id, TagChange::Remove(tag))
        .await?;
    Ok(no_content())
}

async fn clear_tags(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    table: &'static Table,
) -> Answer {
    s.network
        .change_tags(table, &c.0, &id, TagChange::Clear)
        .await?;
    Ok(no_content())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(Kind::Resource, uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
