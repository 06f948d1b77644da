//! The networking service (Neutron API v2.0): networks, subnets, ports, tags and the default
//! security group, with ML2-style segment allocation and IPAM, trunks, and the VSI type
//! database with its VDP associations ([`vsi`]). Handlers in [`http`] parse requests into the
//! typed commands of [`networks`], [`subnets`], [`ports`], ...; the service methods run each
//! command in one store transaction.

pub mod binding;
pub mod http;
pub mod input;
pub mod ipam;
pub mod list;
pub mod model;
pub mod networks;
pub mod ports;
pub mod segments;
pub mod subnets;
pub mod tags;
pub mod trunks;
pub mod vsi;

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{AnyConnection, Row};

use crate::{
    agents::AgentService,
    auth::AuthContext,
    config::{Ml2, Ranges},
    error::{ApiError, Kind},
    network::list::{Table, Visibility},
    store::{Change, Operation, Store, WriteTx},
};

/// The networks table.
pub static NETWORKS: Table = Table {
    name: "networks",
    collection: "networks",
    path: "networks",
    kind: Kind::Network,
    columns: &["id", "project_id", "name", "created_at"],
    bool_columns: &["shared"],
    attributes: &[
        "id",
        "name",
        "project_id",
        "admin_state_up",
        "mtu",
        "status",
        "subnets",
        "shared",
        "router:external",
        "port_security_enabled",
        "description",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &[
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ],
    visibility: Visibility::OwnerOrShared,
};

/// The subnets table.
pub static SUBNETS: Table = Table {
    name: "subnets",
    collection: "subnets",
    path: "subnets",
    kind: Kind::Subnet,
    columns: &["id", "project_id", "name", "network_id", "created_at"],
    bool_columns: &[],
    attributes: &[
        "id",
        "name",
        "project_id",
        "network_id",
        "ip_version",
        "enable_dhcp",
        "gateway_ip",
        "cidr",
        "dns_nameservers",
        "description",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &[],
    visibility: Visibility::OwnerOrSharedNetwork,
};

/// The trunks table.
pub static TRUNKS: Table = Table {
    name: "trunks",
    collection: "trunks",
    path: "trunks",
    kind: Kind::Trunk,
    columns: &["id", "project_id", "name", "port_id", "created_at"],
    bool_columns: &[],
    attributes: &[
        "id",
        "name",
        "project_id",
        "port_id",
        "admin_state_up",
        "status",
        "description",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &[],
    visibility: Visibility::Owner,
};

/// The ports table.
pub static PORTS: Table = Table {
    name: "ports",
    collection: "ports",
    path: "ports",
    kind: Kind::Port,
    columns: &[
        "id",
        "project_id",
        "name",
        "network_id",
        "mac_address",
        "device_id",
        "created_at",
    ],
    bool_columns: &[],
    attributes: &[
        "id",
        "name",
        "project_id",
        "network_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "security_groups",
        "port_security_enabled",
        "binding:vnic_type",
        "description",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &["binding:host_id", "binding:vif_type"],
    visibility: Visibility::Owner,
};

/// The VSI types table (seed 000's network manager, `docs/vsi.md`).
pub static VSI_TYPES: Table = Table {
    name: "vsi_types",
    collection: "vsi_types",
    path: "vsi-types",
    kind: Kind::VsiType,
    columns: &["id", "project_id", "name", "network_id", "created_at"],
    bool_columns: &[],
    attributes: &[
        "id",
        "name",
        "project_id",
        "type_id",
        "type_version",
        "network_id",
        "vlan",
        "port_security_enabled",
        "description",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &[],
    visibility: Visibility::Owner,
};

/// The VDP association records (read-only through the API; bridges write them).
pub static VSI_ASSOCIATIONS: Table = Table {
    name: "vsi_associations",
    collection: "vsi_associations",
    path: "vsi-associations",
    kind: Kind::VsiAssociation,
    columns: &[
        "id",
        "project_id",
        "vsi_id",
        "vsi_type_id",
        "bridge",
        "port",
        "state",
        "created_at",
    ],
    bool_columns: &[],
    attributes: &[
        "id",
        "project_id",
        "vsi_id",
        "id_format",
        "type_id",
        "type_version",
        "vsi_type_id",
        "network_id",
        "manager_id",
        "filters",
        "bridge",
        "port",
        "state",
        "created_at",
        "updated_at",
        "revision_number",
    ],
    admin_attributes: &[],
    visibility: Visibility::Owner,
};

/// The security groups table.
pub static SECURITY_GROUPS: Table = Table {
    name: "security_groups",
    collection: "security_groups",
    path: "security-groups",
    kind: Kind::SecurityGroup,
    columns: &["id", "project_id", "name", "created_at"],
    bool_columns: &[],
    attributes: &[
        "id",
        "name",
        "project_id",
        "description",
        "created_at",
        "updated_at",
    ],
    admin_attributes: &[],
    visibility: Visibility::Owner,
};

/// Networks, subnets and ports over the store.
#[derive(Debug)]
pub struct NetworkService {
    store: Arc<Store>,
    ml2: Ml2,
    ranges: Ranges,
    /// Each project's `default` security group id, once known. Safe across replicas: the
    /// group is never deleted and a unique index keeps it one per project.
    default_groups: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The agent registry binding consults.
    agents: Arc<AgentService>,
    /// The mechanism drivers, in order.
    drivers: Vec<Box<dyn binding::MechanismDriver>>,
    /// The VLANs a bridge port hands out for VDP's VID 0 (`[vsi] vlan_range`).
    vsi_vlans: (u16, u16),
}

impl NetworkService {
    /// The service over `store` with the given type-driver settings.
    pub fn new(store: Arc<Store>, ml2: Ml2, ranges: Ranges, agents: Arc<AgentService>) -> Self {
        Self {
            store,
            ml2,
            ranges,
            default_groups: std::sync::Mutex::default(),
            agents,
            drivers: binding::default_drivers(),
            vsi_vlans: (2, 4094),
        }
    }

    /// Sets the VLAN pool bridge ports hand out for VDP's VID 0 (checked by
    /// [`Vsi::vlans`](crate::config::Vsi::vlans)).
    #[must_use]
    pub fn with_vsi_vlans(mut self, range: (u16, u16)) -> Self {
        self.vsi_vlans = range;
        self
    }

    /// Lists a collection.
    pub async fn list(
        &self,
        table: &Table,
        ctx: &AuthContext,
        query: &str,
        base_url: &str,
    ) -> Result<String, ApiError> {
        ctx.require_read(&format!("get_{}", singular(table)))?;
        let query = list::ListQuery::parse(query, table, ctx)?;
        list::list(self.store.pool(), table, ctx, &query, base_url).await
    }

    /// Shows one resource (404 when it does not exist or the caller may not see it).
    pub async fn show(
        &self,
        table: &Table,
        ctx: &AuthContext,
        id: &str,
        fields: &[String],
    ) -> Result<String, ApiError> {
        ctx.require_read(&format!("get_{}", singular(table)))?;
        let mut conn = self.store.pool().acquire().await?;
        let row = visible_row(&mut conn, table, ctx, id, "").await?;
        let body = model::splice(&row.body, &row.admin_body, ctx.is_admin());
        let body = if fields.is_empty() {
            body
        } else {
            let value: serde_json::Value =
                serde_json::from_str(&body).map_err(|err| ApiError::Internal(err.to_string()))?;
            serde_json::Value::Object(list::project(&value, fields)).to_string()
        };
        Ok(format!("{{\"{}\":{body}}}", singular(table)))
    }
}

/// `network` for `networks`, `security_group` for `security_groups`.
pub fn singular(table: &Table) -> &'static str {
    match table.collection {
        "networks" => "network",
        "subnets" => "subnet",
        "ports" => "port",
        "trunks" => "trunk",
        "vsi_types" => "vsi_type",
        "vsi_associations" => "vsi_association",
        _ => "security_group",
    }
}

/// A stored row: its owner and the two halves of its representation.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Owner.
    pub project_id: String,
    /// Public representation.
    pub body: String,
    /// Admin-only attributes.
    pub admin_body: String,
}

impl StoredRow {
    /// Parses both halves.
    pub fn parse<D: DeserializeOwned, A: DeserializeOwned>(&self) -> Result<(D, A), ApiError> {
        let doc = serde_json::from_str(&self.body)
            .map_err(|err| ApiError::Internal(format!("stored body unreadable: {err}")))?;
        let admin = serde_json::from_str(&self.admin_body)
            .map_err(|err| ApiError::Internal(format!("stored admin body unreadable: {err}")))?;
        Ok((doc, admin))
    }
}

/// Reads a row by id, whoever owns it.
pub async fn row(
    conn: &mut AnyConnection,
    table: &Table,
    id: &str,
    lock: &str,
) -> Result<Option<StoredRow>, ApiError> {
    let sql = format!(
        "SELECT project_id, body, admin_body FROM {} WHERE id = $1{lock}",
        table.name
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredRow {
        project_id: row.try_get(0)?,
        body: row.try_get(1)?,
        admin_body: row.try_get(2)?,
    }))
}

/// Reads a row the caller may see; 404 otherwise (never 403: existence is not revealed).
pub async fn visible_row(
    conn: &mut AnyConnection,
    table: &Table,
    ctx: &AuthContext,
    id: &str,
    lock: &str,
) -> Result<StoredRow, ApiError> {
    let not_found = || ApiError::not_found(table.kind, id);
    let row = row(conn, table, id, lock).await?.ok_or_else(not_found)?;
    if ctx.owns(&row.project_id) {
        return Ok(row);
    }
    let shared = match table.visibility {
        Visibility::Owner => false,
        Visibility::OwnerOrShared => shared_network(conn, id).await?,
        Visibility::OwnerOrSharedNetwork => {
            let value: serde_json::Value = serde_json::from_str(&row.body)
                .map_err(|err| ApiError::Internal(err.to_string()))?;
            match value.get("network_id").and_then(serde_json::Value::as_str) {
                Some(network_id) => shared_network(conn, network_id).await?,
                None => false,
            }
        }
    };
    if shared { Ok(row) } else { Err(not_found()) }
}

async fn shared_network(conn: &mut AnyConnection, id: &str) -> Result<bool, ApiError> {
    // Booleans are compared in SQL: the Any driver cannot decode SQLite's BOOLEAN.
    let row = sqlx::query("SELECT COUNT(*) FROM networks WHERE id = $1 AND shared = TRUE")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Serialises a document, recording the change for the revision log; returns (body, admin).
pub fn render<D: Serialize, A: Serialize>(
    doc: &D,
    admin: &A,
) -> Result<(String, String), ApiError> {
    let body = serde_json::to_string(doc).map_err(|err| ApiError::Internal(err.to_string()))?;
    let admin = serde_json::to_string(admin).map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok((body, admin))
}

/// Records a change of `resource` in `tx`'s revision log.
pub fn record(
    tx: &mut WriteTx<'_>,
    resource: &'static str,
    id: &str,
    operation: Operation,
    project_id: &str,
    body: &str,
    admin_body: &str,
) {
    tx.record(Change {
        resource,
        id: id.to_owned(),
        operation,
        project_id: project_id.to_owned(),
        body: model::splice(body, admin_body, true),
    });
}

/// The common end of a create or update: records the change, commits, and answers
/// `{"<resource>": ...}` as the caller may see it.
#[expect(
    clippy::too_many_arguments,
    reason = "the fields of one revision-log entry"
)]
pub async fn answer(
    mut tx: WriteTx<'_>,
    resource: &'static str,
    id: &str,
    operation: Operation,
    project_id: &str,
    body: &str,
    admin_body: &str,
    ctx: &AuthContext,
) -> Result<String, ApiError> {
    record(
        &mut tx, resource, id, operation, project_id, body, admin_body,
    );
    tx.commit().await?;
    Ok(format!(
        "{{\"{resource}\":{}}}",
        model::splice(body, admin_body, ctx.is_admin())
    ))
}

/// Rewrites the representation of an existing row.
pub async fn update_row(
    conn: &mut AnyConnection,
    table: &Table,
    id: &str,
    name: &str,
    body: &str,
    admin_body: &str,
) -> Result<(), ApiError> {
    let sql = format!(
        "UPDATE {} SET name = $1, body = $2, admin_body = $3 WHERE id = $4",
        table.name
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .bind(body)
        .bind(admin_body)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a row by id.
pub async fn delete_row(conn: &mut AnyConnection, table: &Table, id: &str) -> Result<(), ApiError> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table.name);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// 64 random bits from the OS.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // getrandom only fails when the OS has no entropy source at all; fall back to the clock
    // mixed with a counter rather than refusing to allocate.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = jiff::Timestamp::now().as_nanosecond().unsigned_abs();
        return u64::try_from(t % u128::from(u64::MAX)).unwrap_or(0) ^ n.rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

/// A fresh resource id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
