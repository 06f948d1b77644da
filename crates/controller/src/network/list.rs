//! Listing a collection as Neutron does: filters on any attribute (repeated values are ORed),
//! tag filters, `fields=`, `sort_key`/`sort_dir`, and `limit`/`marker`/`page_reverse`
//! pagination with `<collection>_links`.
//!
//! Filters and sort keys that are indexed columns run in SQL (with keyset pagination), and the
//! stored bodies are spliced straight into the answer. Anything else (a filter on an arbitrary
//! attribute, a sort on one, `fields=`) parses the rows it has to and finishes in Rust.

use core::cmp::Ordering;

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

use crate::{
    auth::AuthContext,
    error::{ApiError, Kind},
    network::{input::parse_bool_str, model::splice_into},
};

/// How non-admins see a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Their project's rows only.
    Owner,
    /// Their project's rows and shared ones (networks).
    OwnerOrShared,
    /// Their project's rows and those on shared networks (subnets).
    OwnerOrSharedNetwork,
}

/// What the list machinery needs to know about a resource table.
#[derive(Debug)]
pub struct Table {
    /// SQL table name.
    pub name: &'static str,
    /// Collection name in URLs and bodies (`networks`, `security_groups`...).
    pub collection: &'static str,
    /// URL path segment (`security-groups`).
    pub path: &'static str,
    /// The kind a miss reports.
    pub kind: Kind,
    /// Attributes that are also text columns (filter and sort in SQL).
    pub columns: &'static [&'static str],
    /// Attributes that are boolean columns.
    pub bool_columns: &'static [&'static str],
    /// Every attribute a reader may filter or sort on.
    pub attributes: &'static [&'static str],
    /// Attributes only admins see (and may filter on).
    pub admin_attributes: &'static [&'static str],
    /// Row visibility for non-admins.
    pub visibility: Visibility,
}

/// A parsed list query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Attribute filters: attribute and the values any of which may match.
    pub filters: Vec<(String, Vec<String>)>,
    /// `tags`, `tags-any`, `not-tags`, `not-tags-any`: kind and tag list.
    pub tag_filters: Vec<(String, Vec<String>)>,
    /// Attributes to return (empty: all).
    pub fields: Vec<String>,
    /// Sort keys with ascending flags.
    pub sort: Vec<(String, bool)>,
    /// Page size.
    pub limit: Option<usize>,
    /// Id of the row before (after, when reversed) the page.
    pub marker: Option<String>,
    /// Walk backwards from the marker.
    pub page_reverse: bool,
    /// The raw pairs, to build links from.
    pub raw: Vec<(String, String)>,
}

impl ListQuery {
    /// Parses a query string, checking attribute names against `table`.
    pub fn parse(query: &str, table: &Table, ctx: &AuthContext) -> Result<Self, ApiError> {
        let mut out = Self::default();
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (key, value) = (key.into_owned(), value.into_owned());
            out.raw.push((key.clone(), value.clone()));
            match key.as_str() {
                "fields" => out.fields.extend(value.split(',').map(str::to_owned)),
                "sort_key" => sort_keys.push(value),
                "sort_dir" => sort_dirs.push(value),
                "limit" => {
                    let limit: i64 = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        ))
                    })?;
                    let limit = usize::try_from(limit).map_err(|_| {
                        ApiError::bad_request(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        ))
                    })?;
                    out.limit = (limit > 0).then_some(limit);
                }
                "marker" => out.marker = Some(value),
                "page_reverse" => {
                    out.page_reverse = parse_bool_str(&value).ok_or_else(|| {
                        ApiError::bad_request(format!("'{value}' cannot be converted to boolean"))
                    })?;
                }
                "tags" | "tags-any" | "not-tags" | "not-tags-any" => {
                    let tags = value
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned);
                    out.tag_filters.push((key, tags.collect()));
                }
                _ => {
                    let attr = if key == "tenant_id" {
                        "project_id".to_owned()
                    } else {
                        key
                    };
                    if !table.knows(&attr, ctx.is_admin()) {
                        return Err(ApiError::bad_request(format!(
                            "[{attr}] is invalid attribute for filtering"
                        )));
                    }
                    match out.filters.iter_mut().find(|(a, _)| *a == attr) {
                        Some((_, values)) => values.push(value),
                        None => out.filters.push((attr, vec![value])),
                    }
                }
            }
        }
        if !sort_dirs.is_empty() && sort_dirs.len() != sort_keys.len() {
            return Err(ApiError::bad_request(
                "The number of sort_keys and sort_dirs must be same",
            ));
        }
        for (index, key) in sort_keys.into_iter().enumerate() {
            let key = if key == "tenant_id" {
                "project_id".to_owned()
            } else {
                key
            };
            if !table.knows(&key, ctx.is_admin()) {
                return Err(ApiError::bad_request(format!(
                    "[{key}] is invalid attribute for sort_keys"
                )));
            }
            let ascending = match sort_dirs.get(index).map(String::as_str) {
                None | Some("asc") => true,
                Some("desc") => false,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "{other} is invalid value for sort_dirs, valid values are 'asc' and 'desc'"
                    )));
                }
            };
            out.sort.push((key, ascending));
        }
        Ok(out)
    }
}

impl Table {
    fn knows(&self, attr: &str, admin: bool) -> bool {
        self.attributes.contains(&attr) || (admin && self.admin_attributes.contains(&attr))
    }

    fn is_column(&self, attr: &str) -> bool {
        self.columns.contains(&attr) || self.bool_columns.contains(&attr)
    }
}

enum Bind {
    Text(String),
    Bool(bool),
}

/// Runs a list query and renders the whole response body.
pub async fn list(
    pool: &AnyPool,
    table: &Table,
    ctx: &AuthContext,
    query: &ListQuery,
    base_url: &str,
) -> Result<String, ApiError> {
    let admin = ctx.is_admin();
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let placeholder = |binds: &mut Vec<Bind>, bind: Bind| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    if !admin {
        let p = placeholder(&mut binds, Bind::Text(ctx.project_id.clone()));
        clauses.push(match table.visibility {
            Visibility::Owner => format!("project_id = {p}"),
            Visibility::OwnerOrShared => format!("(project_id = {p} OR shared = TRUE)"),
            Visibility::OwnerOrSharedNetwork => format!(
                "(project_id = {p} OR network_id IN (SELECT id FROM networks WHERE shared = TRUE))"
            ),
        });
    }
    let mut rust_filters = Vec::new();
    for (attr, values) in &query.filters {
        if table.columns.contains(&attr.as_str()) {
            let list: Vec<String> = values
                .iter()
                .map(|v| placeholder(&mut binds, Bind::Text(v.clone())))
                .collect();
            clauses.push(format!("{attr} IN ({})", list.join(", ")));
        } else if table.bool_columns.contains(&attr.as_str()) {
            let mut list = Vec::new();
            for value in values {
                let b = parse_bool_str(value).ok_or_else(|| {
                    ApiError::bad_request(format!("'{value}' cannot be converted to boolean"))
                })?;
                list.push(placeholder(&mut binds, Bind::Bool(b)));
            }
            clauses.push(format!("{attr} IN ({})", list.join(", ")));
        } else {
            rust_filters.push((attr.as_str(), values.as_slice()));
        }
    }
    let in_sql = rust_filters.is_empty()
        && query.tag_filters.is_empty()
        && query.sort.iter().all(|(key, _)| table.is_column(key));
    // Sort keys with `id` last as the tie-breaker, directions flipped for page_reverse.
    let mut sort: Vec<(String, bool)> = query.sort.clone();
    if !sort.iter().any(|(k, _)| k == "id") {
        sort.push(("id".into(), sort.last().is_none_or(|(_, asc)| *asc)));
    }
    let walk: Vec<(String, bool)> = sort
        .iter()
        .map(|(k, asc)| (k.clone(), *asc != query.page_reverse))
        .collect();

    let mut sql = format!("SELECT id, body, admin_body FROM {}", table.name);
    let mut rows_limit = None;
    if in_sql {
        if let Some(marker) = &query.marker {
            // Booleans come back as integers: the Any driver cannot decode SQLite's BOOLEAN.
            let cols: Vec<String> = walk
                .iter()
                .map(|(k, _)| {
                    if table.bool_columns.contains(&k.as_str()) {
                        format!("CAST({k} AS INTEGER)")
                    } else {
                        k.clone()
                    }
                })
                .collect();
            let marker_sql = format!(
                "SELECT {} FROM {} WHERE id = $1",
                cols.join(", "),
                table.name
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(marker_sql))
                .bind(marker.as_str())
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| ApiError::not_found(table.kind, marker.clone()))?;
            // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...
            let mut ors = Vec::new();
            for (index, (key, asc)) in walk.iter().enumerate() {
                let mut ands = Vec::new();
                for (prev, (prev_key, _)) in walk.iter().enumerate().take(index) {
                    let value =
                        column_bind(&row, prev, table.bool_columns.contains(&prev_key.as_str()))?;
                    ands.push(format!("{prev_key} = {}", placeholder(&mut binds, value)));
                }
                let value = column_bind(&row, index, table.bool_columns.contains(&key.as_str()))?;
                let op = if *asc { ">" } else { "<" };
                ands.push(format!("{key} {op} {}", placeholder(&mut binds, value)));
                ors.push(format!("({})", ands.join(" AND ")));
            }
            clauses.push(format!("({})", ors.join(" OR ")));
        }
        rows_limit = query.limit.map(|l| l + 1);
    }
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    if in_sql {
        let order: Vec<String> = walk
            .iter()
            .map(|(k, asc)| format!("{k} {}", if *asc { "ASC" } else { "DESC" }))
            .collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
        if let Some(limit) = rows_limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        q = match bind {
            Bind::Text(text) => q.bind(text),
            Bind::Bool(b) => q.bind(b),
        };
    }
    let rows = q.fetch_all(pool).await?;

    let mut items: Vec<Item> = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(Item {
            id: row.try_get(0)?,
            body: row.try_get(1)?,
            admin_body: row.try_get(2)?,
            value: None,
        });
    }
    let mut has_more = false;
    if in_sql {
        if let Some(limit) = query.limit
            && items.len() > limit
        {
            items.truncate(limit);
            has_more = true;
        }
    } else {
        for item in &mut items {
            item.value = Some(item.parse(admin)?);
        }
        items.retain(|item| {
            let value = item.value.as_ref().unwrap_or(&Value::Null);
            rust_filters
                .iter()
                .all(|(attr, wanted)| filter_matches(value, attr, wanted))
                && query
                    .tag_filters
                    .iter()
                    .all(|(kind, tags)| tags_match(value, kind, tags))
        });
        items.sort_by(|a, b| {
            let (va, vb) = (a.value.as_ref(), b.value.as_ref());
            for (key, asc) in &walk {
                let ord = compare(
                    va.and_then(|v| v.get(key)).unwrap_or(&Value::Null),
                    vb.and_then(|v| v.get(key)).unwrap_or(&Value::Null),
                );
                let ord = if *asc { ord } else { ord.reverse() };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        if let Some(marker) = &query.marker {
            let position = items
                .iter()
                .position(|item| &item.id == marker)
                .ok_or_else(|| ApiError::not_found(table.kind, marker.clone()))?;
            items.drain(..=position);
        }
        if let Some(limit) = query.limit
            && items.len() > limit
        {
            items.truncate(limit);
            has_more = true;
        }
    }
    if query.page_reverse {
        items.reverse();
    }
    Ok(render(table, query, &items, admin, has_more, base_url))
}

fn column_bind(row: &sqlx::any::AnyRow, index: usize, boolean: bool) -> Result<Bind, ApiError> {
    Ok(if boolean {
        Bind::Bool(row.try_get::<i64, _>(index)? != 0)
    } else {
        Bind::Text(row.try_get(index)?)
    })
}

struct Item {
    id: String,
    body: String,
    admin_body: String,
    value: Option<Value>,
}

impl Item {
    fn parse(&self, admin: bool) -> Result<Value, ApiError> {
        let mut value: Value = serde_json::from_str(&self.body)
            .map_err(|err| ApiError::Internal(format!("stored body unreadable: {err}")))?;
        if admin
            && let (Some(map), Ok(Value::Object(extra))) = (
                value.as_object_mut(),
                serde_json::from_str::<Value>(&self.admin_body),
            )
        {
            map.extend(extra);
        }
        Ok(value)
    }
}

fn render(
    table: &Table,
    query: &ListQuery,
    items: &[Item],
    admin: bool,
    has_more: bool,
    base_url: &str,
) -> String {
    let mut out = String::with_capacity(
        items
            .iter()
            .map(|i| i.body.len() + i.admin_body.len() + 1)
            .sum::<usize>()
            + 64,
    );
    out.push_str("{\"");
    out.push_str(table.collection);
    out.push_str("\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if query.fields.is_empty() {
            match &item.value {
                Some(value) => out.push_str(&value.to_string()),
                None => splice_into(&mut out, &item.body, &item.admin_body, admin),
            }
        } else {
            let value = match &item.value {
                Some(value) => value.clone(),
                None => item.parse(admin).unwrap_or(Value::Null),
            };
            out.push_str(&Value::Object(project(&value, &query.fields)).to_string());
        }
    }
    out.push(']');
    if query.limit.is_some() {
        let mut links = Vec::new();
        if has_more && let Some(last) = items.last() {
            let target = if query.page_reverse {
                items.first().unwrap_or(last)
            } else {
                last
            };
            links.push(link(
                base_url,
                table,
                query,
                "next",
                &target.id,
                query.page_reverse,
            ));
        }
        if (query.marker.is_some() || query.page_reverse)
            && let Some(first) = items.first()
        {
            let target = if query.page_reverse {
                items.last().unwrap_or(first)
            } else {
                first
            };
            links.push(link(
                base_url,
                table,
                query,
                "previous",
                &target.id,
                !query.page_reverse,
            ));
        }
        out.push_str(",\"");
        out.push_str(table.collection);
        out.push_str("_links\":");
        out.push_str(&Value::Array(links).to_string());
    }
    out.push('}');
    out
}

fn link(
    base_url: &str,
    table: &Table,
    query: &ListQuery,
    rel: &str,
    marker: &str,
    reverse: bool,
) -> Value {
    let mut params = form_urlencoded::Serializer::new(String::new());
    for (key, value) in &query.raw {
        if key != "marker" && key != "page_reverse" {
            params.append_pair(key, value);
        }
    }
    params.append_pair("marker", marker);
    if reverse {
        params.append_pair("page_reverse", "True");
    }
    let href = format!("{base_url}/v2.0/{}?{}", table.path, params.finish());
    serde_json::json!({"rel": rel, "href": href})
}

/// Keeps only the requested attributes.
pub fn project(value: &Value, fields: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(map) = value.as_object() {
        for field in fields {
            if let Some(v) = map.get(field) {
                out.insert(field.clone(), v.clone());
            }
        }
    }
    out
}

/// Whether a resource matches one attribute filter (any of `wanted`).
pub fn filter_matches(resource: &Value, attr: &str, wanted: &[String]) -> bool {
    let value = resource.get(attr).unwrap_or(&Value::Null);
    if attr == "fixed_ips" {
        // `fixed_ips=ip_address=10.0.0.5`, `fixed_ips=subnet_id=...`, `ip_address_substr=...`.
        return wanted.iter().any(|w| {
            let (key, want) = w.split_once('=').unwrap_or(("ip_address", w.as_str()));
            value.as_array().is_some_and(|ips| {
                ips.iter().any(|ip| match key {
                    "ip_address_substr" => {
                        ip["ip_address"].as_str().is_some_and(|a| a.contains(want))
                    }
                    _ => ip[key].as_str() == Some(want),
                })
            })
        });
    }
    wanted.iter().any(|w| value_matches(value, w))
}

fn value_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Bool(b) => parse_bool_str(wanted) == Some(*b),
        Value::Number(n) => n.to_string() == wanted,
        Value::Null => wanted.is_empty() || wanted == "None",
        Value::Array(items) => items.iter().any(|item| value_matches(item, wanted)),
        Value::Object(_) => false,
    }
}

fn tags_match(resource: &Value, kind: &str, tags: &[String]) -> bool {
    let have: Vec<&str> = resource
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all = tags.iter().all(|t| have.contains(&t.as_str()));
    let any = tags.iter().any(|t| have.contains(&t.as_str()));
    match kind {
        "tags" => all,
        "tags-any" => any,
        "not-tags" => !all,
        _ => !any,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_match_like_neutron() {
        let port = json!({"name": "a", "admin_state_up": true, "mtu": 1450,
            "security_groups": ["s1", "s2"], "gateway_ip": null,
            "fixed_ips": [{"subnet_id": "sub", "ip_address": "10.0.0.5"}]});
        assert!(filter_matches(&port, "name", &["b".into(), "a".into()]));
        assert!(filter_matches(&port, "admin_state_up", &["True".into()]));
        assert!(filter_matches(&port, "mtu", &["1450".into()]));
        assert!(filter_matches(&port, "security_groups", &["s2".into()]));
        assert!(filter_matches(
            &port,
            "fixed_ips",
            &["ip_address=10.0.0.5".into()]
        ));
        assert!(filter_matches(
            &port,
            "fixed_ips",
            &["ip_address_substr=0.0.5".into()]
        ));
        assert!(!filter_matches(
            &port,
            "fixed_ips",
            &["subnet_id=other".into()]
        ));
        assert!(filter_matches(&port, "gateway_ip", &[String::new()]));
        let tagged = json!({"tags": ["red", "blue"]});
        assert!(tags_match(&tagged, "tags", &["red".into(), "blue".into()]));
        assert!(!tags_match(
            &tagged,
            "tags",
            &["red".into(), "green".into()]
        ));
        assert!(tags_match(
            &tagged,
            "tags-any",
            &["red".into(), "green".into()]
        ));
        assert!(tags_match(&tagged, "not-tags-any", &["green".into()]));
    }
}
