//! The tag API (`standard-attr-tag`): `GET/PUT/DELETE /v2.0/<collection>/<id>/tags[/<tag>]`.
//! Every change bumps the resource's `revision_number`, as Neutron does.

use serde_json::Value;

use crate::{
    auth::AuthContext,
    error::{ApiError, Kind},
    network::{NetworkService, list::Table, record, singular, update_row, visible_row},
    store::{Lock, Operation, now},
};

/// Neutron's tag length limit.
pub const MAX_TAG_LEN: usize = 255;

/// What to do to a resource's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Add one tag.
    Add(String),
    /// Replace the whole list.
    Replace(Vec<String>),
    /// Remove one tag (404 when absent).
    Remove(String),
    /// Remove all tags.
    Clear,
}

/// Checks one tag.
pub fn check_tag(tag: &str) -> Result<(), ApiError> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN {
        return Err(ApiError::bad_request(format!(
            "Invalid input for tags. Reason: '{tag}' is not a valid tag (1 to {MAX_TAG_LEN} characters)."
        )));
    }
    Ok(())
}

/// Reads `{"tags": [...]}`.
pub fn parse_replace(mut body: serde_json::Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let tags = match body.remove("tags") {
        Some(Value::Array(items)) if body.is_empty() => items,
        _ => {
            return Err(ApiError::bad_request(
                "Invalid input for tags. Reason: expected {\"tags\": [...]}.",
            ));
        }
    };
    let mut out: Vec<String> = Vec::new();
    for item in tags {
        let Value::String(tag) = item else {
            return Err(ApiError::bad_request(
                "Invalid input for tags. Reason: tags must be strings.",
            ));
        };
        check_tag(&tag)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

impl NetworkService {
    /// The tags of a resource.
    pub async fn tags(
        &self,
        table: &Table,
        ctx: &AuthContext,
        id: &str,
    ) -> Result<Vec<String>, ApiError> {
        ctx.require_read("get_tags")?;
        let mut conn = self.store.pool().acquire().await?;
        let row = visible_row(&mut conn, table, ctx, id, "").await?;
        let value: Value =
            serde_json::from_str(&row.body).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(tag_list(&value))
    }

    /// Changes the tags of a resource; returns the new list.
    pub async fn change_tags(
        &self,
        table: &Table,
        ctx: &AuthContext,
        id: &str,
        change: TagChange,
    ) -> Result<Vec<String>, ApiError> {
        ctx.require_write("update_tags")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let row = visible_row(tx.conn(), table, ctx, id, lock).await?;
        if !ctx.owns(&row.project_id) {
            return Err(ApiError::Forbidden("update_tags".into()));
        }
        let mut value: Value =
            serde_json::from_str(&row.body).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut tags = tag_list(&value);
        match change {
            TagChange::Add(tag) => {
                check_tag(&tag)?;
                if tags.contains(&tag) {
                    return Ok(tags);
                }
                tags.push(tag);
            }
            TagChange::Replace(list) => tags = list,
            TagChange::Remove(tag) => {
                let before = tags.len();
                tags.retain(|t| *t != tag);
                if tags.len() == before {
                    return Err(ApiError::not_found(Kind::Tag, tag));
                }
            }
            TagChange::Clear => tags.clear(),
        }
        let map = value
            .as_object_mut()
            .ok_or_else(|| ApiError::Internal("stored body is not an object".into()))?;
        map.insert("tags".into(), Value::from(tags.clone()));
        let revision = map
            .get("revision_number")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        map.insert("revision_number".into(), Value::from(revision));
        map.insert("updated_at".into(), Value::from(now()));
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = value.to_string();
        update_row(tx.conn(), table, id, &name, &body, &row.admin_body).await?;
        let resource = singular(table);
        record(
            &mut tx,
            resource,
            id,
            Operation::Update,
            &row.project_id,
            &body,
            &row.admin_body,
        );
        tx.commit().await?;
        Ok(tags)
    }
}

fn tag_list(value: &Value) -> Vec<String> {
    value
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
