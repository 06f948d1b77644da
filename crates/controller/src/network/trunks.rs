//! The trunk service (Neutron's `trunk` and `trunk-details` extensions, seed 002): a parent
//! port carries its own network untagged and each subport's network tagged with the subport's
//! VLAN id.
//!
//! Membership lives in `trunk_ports`, one row per port (the parent with segmentation id 0), so
//! "a port belongs to at most one trunk" and "a VLAN id once per trunk" are the primary key and
//! a unique index, safe under concurrent requests. Subports follow the parent as Neutron's
//! trunk plugin makes them: `device_owner` `trunk:subport`, `device_id` the trunk, and the
//! parent's `binding:host_id` (so the host's agent receives the subports' networks). The
//! parent's `trunk_details` lists them with their MACs.

use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

use crate::{
    auth::AuthContext,
    error::{ApiError, Conflict, Kind},
    network::{
        NetworkService, PORTS, TRUNKS, answer,
        binding::{VIF_TYPE_BINDING_FAILED, VIF_TYPE_UNBOUND},
        delete_row,
        input::{Input, invalid_value},
        model::{NetworkAdmin, NetworkDoc, PortAdmin, PortDoc},
        networks::owner,
        new_id, record, render, row, update_row, visible_row,
    },
    store::{Lock, Operation, WriteTx, now},
};

/// The `device_owner` Neutron gives a subport.
pub const SUBPORT_OWNER: &str = "trunk:subport";

/// One subport as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubPort {
    /// The port.
    pub port_id: String,
    /// Always `vlan` in weft.
    pub segmentation_type: String,
    /// The VLAN id, 1-4094.
    pub segmentation_id: u16,
}

/// A trunk's stored representation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrunkDoc {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The parent port.
    pub port_id: String,
    /// Owner.
    pub tenant_id: String,
    /// Owner.
    pub project_id: String,
    /// Administrative state: a disabled trunk's subports cannot change.
    pub admin_state_up: bool,
    /// `DOWN`, `BUILD`, `ACTIVE`, `DEGRADED` or `ERROR`.
    pub status: String,
    /// Subports, in the order they were added.
    pub sub_ports: Vec<SubPort>,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// `POST /v2.0/trunks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTrunk {
    port_id: String,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    sub_ports: Vec<SubPort>,
}

impl CreateTrunk {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "trunk")?;
        let port_id = input.string("port_id", 36)?.ok_or_else(|| {
            ApiError::bad_request(
                "Failed to parse request. Required attribute 'port_id' not specified",
            )
        })?;
        let cmd = Self {
            port_id,
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            project_id: input.project()?,
            sub_ports: match input.object_list("sub_ports")? {
                Some(list) => parse_subports(list)?,
                None => Vec::new(),
            },
        };
        input.finish()?;
        Ok(cmd)
    }
}

/// `PUT /v2.0/trunks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateTrunk {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
}

impl UpdateTrunk {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "trunk")?;
        for key in ["port_id", "sub_ports", "status"] {
            if input.has(key) {
                return Err(ApiError::bad_request(format!(
                    "Cannot update read-only attribute {key}"
                )));
            }
        }
        let cmd = Self {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
        };
        input.finish()?;
        Ok(cmd)
    }
}

/// Parses `{"sub_ports": [...]}` of `add_subports` (full subports) or `remove_subports`
/// (port ids only).
pub fn parse_subport_body(
    mut body: Map<String, Value>,
    full: bool,
) -> Result<Vec<SubPort>, ApiError> {
    let Some(Value::Array(items)) = body.remove("sub_ports") else {
        return Err(ApiError::bad_request(
            "Resource body required: expected {\"sub_ports\": [...]}",
        ));
    };
    if let Some(key) = body.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unrecognized attribute(s) '{key}'"
        )));
    }
    let mut list = Vec::new();
    for item in items {
        let Value::Object(map) = item else {
            return Err(invalid_value(
                "sub_ports",
                "expected a list of dictionaries",
            ));
        };
        list.push(Input::new(map));
    }
    if full {
        return parse_subports(list);
    }
    list.into_iter()
        .map(|mut input| {
            let port_id = input
                .string("port_id", 36)?
                .ok_or_else(|| invalid_value("sub_ports", "each entry needs a port_id"))?;
            // Neutron accepts (and ignores) the other keys on removal.
            input.take("segmentation_type");
            input.take("segmentation_id");
            input.finish()?;
            Ok(SubPort {
                port_id,
                segmentation_type: String::new(),
                segmentation_id: 0,
            })
        })
        .collect()
}

fn parse_subports(list: Vec<Input>) -> Result<Vec<SubPort>, ApiError> {
    let mut out: Vec<SubPort> = Vec::new();
    for mut input in list {
        let port_id = input
            .string("port_id", 36)?
            .ok_or_else(|| invalid_value("sub_ports", "each subport needs a port_id"))?;
        let kind = input
            .string("segmentation_type", 16)?
            .unwrap_or_else(|| "vlan".into());
        match kind.as_str() {
            "vlan" => {}
            "inherit" => {
                return Err(ApiError::invalid(
                    "segmentation_type inherit is not supported: weft tags each subport \
                     with the VLAN id you give (segmentation_type vlan, segmentation_id 1-4094)",
                ));
            }
            other => {
                return Err(invalid_value(
                    "sub_ports",
                    &format!("'{other}' is not a valid segmentation type (vlan)"),
                ));
            }
        }
        let id = input
            .integer("segmentation_id")?
            .ok_or_else(|| invalid_value("sub_ports", "each subport needs a segmentation_id"))?;
        let id = u16::try_from(id)
            .ok()
            .filter(|v| (1..=4094).contains(v))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid input for segmentation_id. Reason: {id} is not in the range 1-4094."
                ))
            })?;
        input.finish()?;
        if let Some(dup) = out.iter().find(|s| s.segmentation_id == id) {
            return Err(duplicate(&dup.port_id, id, "the request"));
        }
        if out.iter().any(|s| s.port_id == port_id) {
            return Err(ApiError::invalid(format!(
                "Port {port_id} is listed twice in sub_ports"
            )));
        }
        out.push(SubPort {
            port_id,
            segmentation_type: kind,
            segmentation_id: id,
        });
    }
    Ok(out)
}

fn duplicate(port: &str, vlan: u16, trunk: &str) -> ApiError {
    ApiError::conflict(
        Conflict::DuplicateSubPort,
        format!(
            "segmentation_type vlan and segmentation_id {vlan} already in use on {trunk} \
             (requested for port {port})."
        ),
    )
}

/// The trunk (parent or subport) a port belongs to, if any: (trunk id, is parent).
pub async fn membership(
    conn: &mut AnyConnection,
    port_id: &str,
) -> Result<Option<(String, bool)>, ApiError> {
    let row = sqlx::query("SELECT trunk_id, role FROM trunk_ports WHERE port_id = $1")
        .bind(port_id)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(row) => {
            let role: String = row.try_get(1)?;
            Some((row.try_get(0)?, role == "parent"))
        }
        None => None,
    })
}

fn bound(admin: &PortAdmin) -> bool {
    !admin.host_id.is_empty()
        && admin.vif_type != VIF_TYPE_UNBOUND
        && admin.vif_type != VIF_TYPE_BINDING_FAILED
}

impl NetworkService {
    /// Creates a trunk.
    pub async fn create_trunk(
        &self,
        ctx: &AuthContext,
        cmd: CreateTrunk,
    ) -> Result<String, ApiError> {
        ctx.require_write("create_trunk")?;
        let project_id = owner(ctx, cmd.project_id.as_deref())?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let parent = visible_row(tx.conn(), &PORTS, ctx, &cmd.port_id, lock).await?;
        if !ctx.owns(&parent.project_id) {
            return Err(ApiError::Forbidden("create_trunk:port_id".into()));
        }
        let id = new_id();
        claim(&mut tx, &cmd.port_id, &id, "parent", 0).await?;
        let stamp = now();
        let mut doc = TrunkDoc {
            id: id.clone(),
            name: cmd.name.unwrap_or_default(),
            description: cmd.description.unwrap_or_default(),
            port_id: cmd.port_id.clone(),
            tenant_id: project_id.clone(),
            project_id: project_id.clone(),
            admin_state_up: cmd.admin_state_up.unwrap_or(true),
            status: "DOWN".into(),
            sub_ports: Vec::new(),
            tags: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            revision_number: 1,
        };
        self.attach(&mut tx, ctx, &mut doc, cmd.sub_ports).await?;
        doc.status = self.trunk_status(&mut tx, &doc).await?;
        let (body, admin_body) = render(&doc, &Map::new())?;
        sqlx::query(
            "INSERT INTO trunks (id, project_id, name, port_id, created_at, body, admin_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(project_id.as_str())
        .bind(doc.name.as_str())
        .bind(doc.port_id.as_str())
        .bind(stamp.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .execute(tx.conn())
        .await?;
        self.refresh_parent(&mut tx, &doc).await?;
        answer(
            tx,
            "trunk",
            &id,
            Operation::Create,
            &project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Updates a trunk's name, description or administrative state.
    pub async fn update_trunk(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateTrunk,
    ) -> Result<String, ApiError> {
        ctx.require_write("update_trunk")?;
        let mut tx = self.store.write().await?;
        let mut doc = self.load_trunk(&mut tx, ctx, id).await?;
        doc.name = cmd.name.unwrap_or(doc.name);
        doc.description = cmd.description.unwrap_or(doc.description);
        doc.admin_state_up = cmd.admin_state_up.unwrap_or(doc.admin_state_up);
        self.save_trunk(tx, ctx, doc, false).await
    }

    /// `PUT /v2.0/trunks/{id}/add_subports`: answers the trunk itself (not wrapped).
    pub async fn add_subports(
        &self,
        ctx: &AuthContext,
        id: &str,
        sub_ports: Vec<SubPort>,
    ) -> Result<String, ApiError> {
        ctx.require_write("add_subports")?;
        let mut tx = self.store.write().await?;
        let mut doc = self.load_trunk(&mut tx, ctx, id).await?;
        disabled_check(&doc)?;
        for new in &sub_ports {
            if let Some(old) = doc
                .sub_ports
                .iter()
                .find(|s| s.segmentation_id == new.segmentation_id)
            {
                return Err(duplicate(
                    &old.port_id,
                    new.segmentation_id,
                    &format!("trunk {id}"),
                ));
            }
        }
        self.attach(&mut tx, ctx, &mut doc, sub_ports).await?;
        doc.status = self.trunk_status(&mut tx, &doc).await?;
        self.save_trunk(tx, ctx, doc, true).await
    }

    /// `PUT /v2.0/trunks/{id}/remove_subports`: answers the trunk itself (not wrapped).
    pub async fn remove_subports(
        &self,
        ctx: &AuthContext,
        id: &str,
        sub_ports: Vec<SubPort>,
    ) -> Result<String, ApiError> {
        ctx.require_write("remove_subports")?;
        let mut tx = self.store.write().await?;
        let mut doc = self.load_trunk(&mut tx, ctx, id).await?;
        disabled_check(&doc)?;
        for gone in &sub_ports {
            if !doc.sub_ports.iter().any(|s| s.port_id == gone.port_id) {
                return Err(ApiError::not_found(
                    Kind::SubPort,
                    format!("{} on trunk {id}", gone.port_id),
                ));
            }
        }
        for gone in &sub_ports {
            self.detach(&mut tx, &gone.port_id).await?;
        }
        doc.sub_ports
            .retain(|s| !sub_ports.iter().any(|g| g.port_id == s.port_id));
        doc.status = self.trunk_status(&mut tx, &doc).await?;
        self.save_trunk(tx, ctx, doc, true).await
    }

    /// `GET /v2.0/trunks/{id}/get_subports`.
    pub async fn get_subports(&self, ctx: &AuthContext, id: &str) -> Result<String, ApiError> {
        ctx.require_read("get_subports")?;
        let mut conn = self.store.pool().acquire().await?;
        let stored = visible_row(&mut conn, &TRUNKS, ctx, id, "").await?;
        let (doc, _): (TrunkDoc, Value) = stored.parse()?;
        Ok(json!({"sub_ports": doc.sub_ports}).to_string())
    }

    /// Deletes a trunk: refused while its parent is bound (in use by a VM), as Neutron does.
    pub async fn delete_trunk(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_write("delete_trunk")?;
        let mut tx = self.store.write().await?;
        let doc = self.load_trunk(&mut tx, ctx, id).await?;
        if let Some(parent) = row(tx.conn(), &PORTS, &doc.port_id, "").await? {
            let (_, admin): (PortDoc, PortAdmin) = parent.parse()?;
            if bound(&admin) {
                return Err(ApiError::conflict(
                    Conflict::TrunkInUse,
                    format!("Trunk {id} is currently in use."),
                ));
            }
        }
        for sub in &doc.sub_ports {
            self.detach(&mut tx, &sub.port_id).await?;
        }
        sqlx::query("DELETE FROM trunk_ports WHERE trunk_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        delete_row(tx.conn(), &TRUNKS, id).await?;
        let (body, admin_body) = render(&doc, &Map::new())?;
        record(
            &mut tx,
            "trunk",
            id,
            Operation::Delete,
            &doc.project_id,
            &body,
            &admin_body,
        );
        self.set_trunk_details(&mut tx, &doc.port_id, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_trunk(
        &self,
        tx: &mut WriteTx<'_>,
        ctx: &AuthContext,
        id: &str,
    ) -> Result<TrunkDoc, ApiError> {
        let lock = tx.lock(Lock::Update);
        let stored = visible_row(tx.conn(), &TRUNKS, ctx, id, lock).await?;
        if !ctx.owns(&stored.project_id) {
            return Err(ApiError::Forbidden("update_trunk".into()));
        }
        let (doc, _): (TrunkDoc, Value) = stored.parse()?;
        Ok(doc)
    }

    async fn save_trunk(
        &self,
        mut tx: WriteTx<'_>,
        ctx: &AuthContext,
        mut doc: TrunkDoc,
        unwrapped: bool,
    ) -> Result<String, ApiError> {
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &Map::new())?;
        update_row(tx.conn(), &TRUNKS, &doc.id, &doc.name, &body, &admin_body).await?;
        self.refresh_parent(&mut tx, &doc).await?;
        if unwrapped {
            // add_subports and remove_subports answer the bare trunk.
            record(
                &mut tx,
                "trunk",
                &doc.id,
                Operation::Update,
                &doc.project_id,
                &body,
                &admin_body,
            );
            tx.commit().await?;
            return Ok(body);
        }
        answer(
            tx,
            "trunk",
            &doc.id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Claims each new subport for the trunk and makes it follow the parent.
    async fn attach(
        &self,
        tx: &mut WriteTx<'_>,
        ctx: &AuthContext,
        doc: &mut TrunkDoc,
        sub_ports: Vec<SubPort>,
    ) -> Result<(), ApiError> {
        let lock = tx.lock(Lock::Update);
        let parent = row(tx.conn(), &PORTS, &doc.port_id, lock)
            .await?
            .ok_or_else(|| ApiError::not_found(Kind::Port, &doc.port_id))?;
        let (_, parent_admin): (PortDoc, PortAdmin) = parent.parse()?;
        for sub in sub_ports {
            if sub.port_id == doc.port_id {
                return Err(ApiError::conflict(
                    Conflict::TrunkPortInUse,
                    format!(
                        "Port {} is the parent of trunk {} and cannot also be its subport.",
                        sub.port_id, doc.id
                    ),
                ));
            }
            let stored = visible_row(tx.conn(), &PORTS, ctx, &sub.port_id, lock).await?;
            if !ctx.owns(&stored.project_id) {
                return Err(ApiError::Forbidden("add_subports:port_id".into()));
            }
            claim(tx, &sub.port_id, &doc.id, "subport", sub.segmentation_id).await?;
            let (mut port, mut admin): (PortDoc, PortAdmin) = stored.parse()?;
            port.device_owner = SUBPORT_OWNER.into();
            port.device_id.clone_from(&doc.id);
            if parent_admin.host_id != admin.host_id {
                self.rebind(tx, &mut port, &mut admin, &parent_admin.host_id)
                    .await?;
            }
            self.save_port(tx, &mut port, &admin).await?;
            doc.sub_ports.push(sub);
        }
        Ok(())
    }

    /// Releases a subport: no trunk, no owner, no binding.
    async fn detach(&self, tx: &mut WriteTx<'_>, port_id: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM trunk_ports WHERE port_id = $1")
            .bind(port_id)
            .execute(tx.conn())
            .await?;
        let lock = tx.lock(Lock::Update);
        let Some(stored) = row(tx.conn(), &PORTS, port_id, lock).await? else {
            return Ok(());
        };
        let (mut port, mut admin): (PortDoc, PortAdmin) = stored.parse()?;
        if port.device_owner == SUBPORT_OWNER {
            port.device_owner.clear();
            port.device_id.clear();
        }
        self.rebind(tx, &mut port, &mut admin, "").await?;
        self.save_port(tx, &mut port, &admin).await
    }

    /// Moves a port's binding to `host` ('' unbinds), running the mechanism drivers.
    async fn rebind(
        &self,
        tx: &mut WriteTx<'_>,
        port: &mut PortDoc,
        admin: &mut PortAdmin,
        host: &str,
    ) -> Result<(), ApiError> {
        host.clone_into(&mut admin.host_id);
        port.status = "DOWN".into();
        if host.is_empty() {
            admin.vif_type = VIF_TYPE_UNBOUND.into();
            admin.vif_details = Map::new();
            return Ok(());
        }
        let network = row(tx.conn(), &crate::network::NETWORKS, &port.network_id, "")
            .await?
            .ok_or_else(|| ApiError::Internal("port without network".into()))?;
        let (_, net_admin): (NetworkDoc, NetworkAdmin) = network.parse()?;
        self.bind(tx.conn(), &port.id, admin, &net_admin.segments())
            .await
    }

    async fn save_port(
        &self,
        tx: &mut WriteTx<'_>,
        port: &mut PortDoc,
        admin: &PortAdmin,
    ) -> Result<(), ApiError> {
        port.revision_number += 1;
        port.updated_at = now();
        let (body, admin_body) = render(&*port, admin)?;
        sqlx::query("UPDATE ports SET device_id = $1, body = $2, admin_body = $3 WHERE id = $4")
            .bind(port.device_id.as_str())
            .bind(body.as_str())
            .bind(admin_body.as_str())
            .bind(port.id.as_str())
            .execute(tx.conn())
            .await?;
        record(
            tx,
            "port",
            &port.id,
            Operation::Update,
            &port.project_id,
            &body,
            &admin_body,
        );
        Ok(())
    }

    /// Rewrites the parent's `trunk_details` from the trunk.
    async fn refresh_parent(&self, tx: &mut WriteTx<'_>, doc: &TrunkDoc) -> Result<(), ApiError> {
        let mut subs = Vec::new();
        for sub in &doc.sub_ports {
            let mac = match row(tx.conn(), &PORTS, &sub.port_id, "").await? {
                Some(stored) => stored.parse::<PortDoc, Value>()?.0.mac_address,
                None => String::new(),
            };
            subs.push(json!({
                "port_id": sub.port_id,
                "segmentation_type": sub.segmentation_type,
                "segmentation_id": sub.segmentation_id,
                "mac_address": mac,
            }));
        }
        let details = json!({"trunk_id": doc.id, "sub_ports": subs});
        self.set_trunk_details(tx, &doc.port_id, Some(details))
            .await
    }

    async fn set_trunk_details(
        &self,
        tx: &mut WriteTx<'_>,
        port_id: &str,
        details: Option<Value>,
    ) -> Result<(), ApiError> {
        let lock = tx.lock(Lock::Update);
        let Some(stored) = row(tx.conn(), &PORTS, port_id, lock).await? else {
            return Ok(());
        };
        let (mut port, admin): (PortDoc, PortAdmin) = stored.parse()?;
        if port.trunk_details == details {
            return Ok(());
        }
        port.trunk_details = details;
        self.save_port(tx, &mut port, &admin).await
    }

    /// DOWN until the parent is bound and its agent reported it up; then ACTIVE, or DEGRADED
    /// when a subport could not be bound, or ERROR when none could.
    async fn trunk_status(&self, tx: &mut WriteTx<'_>, doc: &TrunkDoc) -> Result<String, ApiError> {
        let Some(parent) = row(tx.conn(), &PORTS, &doc.port_id, "").await? else {
            return Ok("ERROR".into());
        };
        let (port, admin): (PortDoc, PortAdmin) = parent.parse()?;
        if !bound(&admin) || port.status != "ACTIVE" {
            return Ok("DOWN".into());
        }
        let mut failed = 0;
        for sub in &doc.sub_ports {
            if let Some(stored) = row(tx.conn(), &PORTS, &sub.port_id, "").await? {
                let (_, a): (PortDoc, PortAdmin) = stored.parse()?;
                if !bound(&a) {
                    failed += 1;
                }
            }
        }
        Ok(match failed {
            0 => "ACTIVE",
            n if n == doc.sub_ports.len() => "ERROR",
            _ => "DEGRADED",
        }
        .into())
    }

    /// After a parent port's binding or status changed: subports follow its host, and the
    /// trunk's status is recomputed (a revision when it changes).
    pub(crate) async fn follow_parent(
        &self,
        tx: &mut WriteTx<'_>,
        parent_id: &str,
    ) -> Result<(), ApiError> {
        let Some((trunk_id, true)) = membership(tx.conn(), parent_id).await? else {
            return Ok(());
        };
        let lock = tx.lock(Lock::Update);
        let Some(stored) = row(tx.conn(), &TRUNKS, &trunk_id, lock).await? else {
            return Ok(());
        };
        let (mut doc, _): (TrunkDoc, Value) = stored.parse()?;
        let host = match row(tx.conn(), &PORTS, parent_id, "").await? {
            Some(p) => p.parse::<PortDoc, PortAdmin>()?.1.host_id,
            None => String::new(),
        };
        for sub in &doc.sub_ports {
            let Some(stored) = row(tx.conn(), &PORTS, &sub.port_id, lock).await? else {
                continue;
            };
            let (mut port, mut admin): (PortDoc, PortAdmin) = stored.parse()?;
            if admin.host_id != host {
                self.rebind(tx, &mut port, &mut admin, &host).await?;
                self.save_port(tx, &mut port, &admin).await?;
            }
        }
        let status = self.trunk_status(tx, &doc).await?;
        if status != doc.status {
            doc.status = status;
            doc.revision_number += 1;
            doc.updated_at = now();
            let (body, admin_body) = render(&doc, &Map::new())?;
            update_row(tx.conn(), &TRUNKS, &doc.id, &doc.name, &body, &admin_body).await?;
            record(
                tx,
                "trunk",
                &doc.id,
                Operation::Update,
                &doc.project_id,
                &body,
                &admin_body,
            );
        }
        Ok(())
    }
}

fn disabled_check(doc: &TrunkDoc) -> Result<(), ApiError> {
    if doc.admin_state_up {
        Ok(())
    } else {
        Err(ApiError::conflict(
            Conflict::TrunkDisabled,
            format!("Trunk {} is currently disabled.", doc.id),
        ))
    }
}

/// Takes `port_id` for the trunk; a port already in a trunk is a 409.
async fn claim(
    tx: &mut WriteTx<'_>,
    port_id: &str,
    trunk_id: &str,
    role: &str,
    vlan: u16,
) -> Result<(), ApiError> {
    let done = sqlx::query(
        "INSERT INTO trunk_ports (port_id, trunk_id, role, segmentation_type, segmentation_id) \
         VALUES ($1, $2, $3, 'vlan', $4) ON CONFLICT DO NOTHING",
    )
    .bind(port_id)
    .bind(trunk_id)
    .bind(role)
    .bind(i64::from(vlan))
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    match membership(tx.conn(), port_id).await? {
        Some((other, _)) => Err(ApiError::conflict(
            Conflict::TrunkPortInUse,
            format!("Port {port_id} is in use by another trunk ({other})."),
        )),
        None => Err(duplicate(port_id, vlan, &format!("trunk {trunk_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn subports_are_checked() {
        let create = |subs: Value| {
            CreateTrunk::parse(body(json!({"trunk": {"port_id": "p", "sub_ports": subs}})))
        };
        assert!(create(json!([{"port_id": "a", "segmentation_id": 1}])).is_ok());
        for bad in [
            json!([{"port_id": "a", "segmentation_id": 0}]),
            json!([{"port_id": "a", "segmentation_id": 4095}]),
            json!([{"port_id": "a"}]),
            json!([{"segmentation_id": 3}]),
            json!([{"port_id": "a", "segmentation_type": "inherit"}]),
            json!([{"port_id": "a", "segmentation_type": "qinq", "segmentation_id": 3}]),
            json!([{"port_id": "a", "segmentation_id": 3, "colour": 1}]),
            json!("a"),
        ] {
            assert!(create(bad.clone()).is_err(), "{bad}");
        }
        let dup = create(json!([{"port_id": "a", "segmentation_id": 3},
                                {"port_id": "b", "segmentation_id": 3}]))
        .unwrap_err();
        assert_eq!(dup.status(), axum::http::StatusCode::CONFLICT);
        let inherit = create(json!([{"port_id": "a", "segmentation_type": "inherit"}]))
            .unwrap_err()
            .to_string();
        assert!(inherit.contains("inherit is not supported"), "{inherit}");
        assert!(CreateTrunk::parse(body(json!({"trunk": {}}))).is_err());
        assert!(UpdateTrunk::parse(body(json!({"trunk": {"port_id": "x"}}))).is_err());
        let removal =
            parse_subport_body(body(json!({"sub_ports": [{"port_id": "a"}]})), false).unwrap();
        assert_eq!(removal[0].port_id, "a");
        assert!(parse_subport_body(body(json!({})), true).is_err());
    }
}
