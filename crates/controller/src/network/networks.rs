//! Networks: create (tenant or provider segments), update, delete.

use serde_json::{Map, Value};
use sqlx::Row;

use crate::{
    auth::AuthContext,
    config::NetworkType,
    error::{ApiError, Conflict},
    network::{
        NETWORKS, NetworkService, SUBNETS, answer, delete_row,
        input::Input,
        model::{NetworkAdmin, NetworkDoc, SegmentDoc},
        new_id, record, render,
        segments::{self, SegmentRequest},
        update_row, visible_row,
    },
    store::{Lock, Operation, now},
};

/// `POST /v2.0/networks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateNetwork {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Shared with every project (admin only).
    pub shared: bool,
    /// `router:external` (admin only).
    pub external: bool,
    /// Default port security for its ports.
    pub port_security_enabled: bool,
    /// Requested MTU.
    pub mtu: Option<u32>,
    /// Owner, when an admin creates for another project.
    pub project_id: Option<String>,
    /// Provider segments (admin only); empty: a tenant network.
    pub segments: Vec<SegmentRequest>,
}

impl CreateNetwork {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "network")?;
        let mut segments = Vec::new();
        if let Some(list) = input.object_list("segments")? {
            for mut item in list {
                let segment = segments::parse_provider(&mut item)?
                    .ok_or_else(|| ApiError::invalid("network_type required"))?;
                item.finish()?;
                segments.push(segment);
            }
        }
        if let Some(segment) = segments::parse_provider(&mut input)? {
            if !segments.is_empty() {
                return Err(ApiError::invalid(
                    "Segments and provider values cannot both be set.",
                ));
            }
            segments.push(segment);
        }
        let mtu = match input.integer("mtu")? {
            None => None,
            Some(m) => {
                Some(u32::try_from(m).map_err(|_| ApiError::invalid("mtu must be positive"))?)
            }
        };
        let cmd = Self {
            name: input.string("name", 255)?.unwrap_or_default(),
            description: input.string("description", 255)?.unwrap_or_default(),
            admin_state_up: input.boolean("admin_state_up")?.unwrap_or(true),
            shared: input.boolean("shared")?.unwrap_or(false),
            external: input.boolean("router:external")?.unwrap_or(false),
            port_security_enabled: input.boolean("port_security_enabled")?.unwrap_or(true),
            mtu,
            project_id: input.project()?,
            segments,
        };
        // Accepted and ignored as Neutron does when the extension is absent from the request.
        input.take("availability_zone_hints");
        input.finish()?;
        Ok(cmd)
    }
}

/// `PUT /v2.0/networks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateNetwork {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New administrative state.
    pub admin_state_up: Option<bool>,
    /// New shared flag (admin).
    pub shared: Option<bool>,
    /// New `router:external` (admin).
    pub external: Option<bool>,
    /// New default port security.
    pub port_security_enabled: Option<bool>,
    /// New MTU.
    pub mtu: Option<u32>,
}

impl UpdateNetwork {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "network")?;
        for key in [
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
            "segments",
        ] {
            if input.has(key) {
                return Err(ApiError::invalid(
                    "Plugin does not support updating provider attributes",
                ));
            }
        }
        let cmd = Self {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            shared: input.boolean("shared")?,
            external: input.boolean("router:external")?,
            port_security_enabled: input.boolean("port_security_enabled")?,
            mtu: match input.integer("mtu")? {
                None => None,
                Some(m) => {
                    Some(u32::try_from(m).map_err(|_| ApiError::invalid("mtu must be positive"))?)
                }
            },
        };
        input.finish()?;
        Ok(cmd)
    }
}

impl NetworkService {
    fn max_mtu(&self, segments: &[SegmentDoc]) -> u32 {
        let overhead = segments
            .iter()
            .filter_map(|s| NetworkType::parse(&s.network_type))
            .map(NetworkType::overhead)
            .max()
            .unwrap_or(0);
        self.ml2.physnet_mtu - overhead
    }

    /// Creates a network; returns its representation as the caller may see it.
    pub async fn create_network(
        &self,
        ctx: &AuthContext,
        cmd: CreateNetwork,
    ) -> Result<String, ApiError> {
        ctx.require_write("create_network")?;
        if cmd.shared {
            ctx.require_admin("create_network:shared")?;
        }
        if cmd.external {
            ctx.require_admin("create_network:router:external")?;
        }
        if !cmd.segments.is_empty() {
            ctx.require_admin("create_network:provider:network_type")?;
        }
        let project_id = owner(ctx, cmd.project_id.as_deref())?;
        for segment in &cmd.segments {
            segments::validate(segment, &self.ml2, &self.ranges)?;
        }
        let id = new_id();
        let mut tx = self.store.write().await?;
        let mut docs = Vec::new();
        if cmd.segments.is_empty() {
            docs.push(segments::allocate_tenant(tx.conn(), &self.ml2, &self.ranges, &id).await?);
        } else {
            for segment in &cmd.segments {
                docs.push(
                    segments::allocate_provider(tx.conn(), segment, &self.ranges, &id).await?,
                );
            }
        }
        let max_mtu = self.max_mtu(&docs);
        let mtu = match cmd.mtu {
            Some(mtu) if mtu > max_mtu => {
                return Err(ApiError::invalid(format!(
                    "Requested MTU is too big, maximum is {max_mtu}"
                )));
            }
            Some(mtu) if mtu < 68 => {
                return Err(ApiError::invalid(
                    "Requested MTU is too small, minimum is 68",
                ));
            }
            Some(mtu) => mtu,
            None => max_mtu,
        };
        let stamp = now();
        let doc = NetworkDoc {
            id: id.clone(),
            name: cmd.name,
            tenant_id: project_id.clone(),
            project_id: project_id.clone(),
            admin_state_up: cmd.admin_state_up,
            mtu,
            status: "ACTIVE".into(),
            subnets: Vec::new(),
            shared: cmd.shared,
            external: cmd.external,
            port_security_enabled: cmd.port_security_enabled,
            description: cmd.description,
            tags: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            revision_number: 1,
        };
        for (index, seg) in docs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO network_segments (network_id, seg_index, network_type, \
                 physical_network, segmentation_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.as_str())
            .bind(i64::try_from(index).unwrap_or(0))
            .bind(seg.network_type.as_str())
            .bind(seg.physical_network.clone().unwrap_or_default())
            .bind(i64::from(seg.segmentation_id.unwrap_or(0)))
            .execute(tx.conn())
            .await?;
        }
        let admin = NetworkAdmin::from_segments(docs);
        let (body, admin_body) = render(&doc, &admin)?;
        sqlx::query(
            "INSERT INTO networks (id, project_id, name, shared, created_at, body, admin_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(project_id.as_str())
        .bind(doc.name.as_str())
        .bind(doc.shared)
        .bind(stamp.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .execute(tx.conn())
        .await?;
        answer(
            tx,
            "network",
            &id,
            Operation::Create,
            &project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Updates a network.
    pub async fn update_network(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateNetwork,
    ) -> Result<String, ApiError> {
        ctx.require_write("update_network")?;
        if cmd.shared.is_some() {
            ctx.require_admin("update_network:shared")?;
        }
        if cmd.external.is_some() {
            ctx.require_admin("update_network:router:external")?;
        }
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let row = visible_row(tx.conn(), &NETWORKS, ctx, id, lock).await?;
        if !ctx.owns(&row.project_id) {
            return Err(ApiError::Forbidden("update_network".into()));
        }
        let (mut doc, admin): (NetworkDoc, NetworkAdmin) = row.parse()?;
        if let Some(mtu) = cmd.mtu {
            let max_mtu = self.max_mtu(&admin.segments());
            if mtu > max_mtu {
                return Err(ApiError::invalid(format!(
                    "Requested MTU is too big, maximum is {max_mtu}"
                )));
            }
            doc.mtu = mtu;
        }
        if cmd.shared == Some(false) && doc.shared {
            // Neutron refuses to unshare a network other projects use.
            let others = sqlx::query(
                "SELECT COUNT(*) FROM ports WHERE network_id = $1 AND project_id <> $2",
            )
            .bind(id)
            .bind(doc.project_id.as_str())
            .fetch_one(tx.conn())
            .await?;
            let count: i64 = others.try_get(0)?;
            if count > 0 {
                return Err(ApiError::conflict(
                    Conflict::NetworkInUse,
                    format!(
                        "Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."
                    ),
                ));
            }
        }
        doc.name = cmd.name.unwrap_or(doc.name);
        doc.description = cmd.description.unwrap_or(doc.description);
        doc.admin_state_up = cmd.admin_state_up.unwrap_or(doc.admin_state_up);
        doc.shared = cmd.shared.unwrap_or(doc.shared);
        doc.external = cmd.external.unwrap_or(doc.external);
        doc.port_security_enabled = cmd
            .port_security_enabled
            .unwrap_or(doc.port_security_enabled);
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &admin)?;
        sqlx::query(
            "UPDATE networks SET name = $1, shared = $2, body = $3, admin_body = $4 WHERE id = $5",
        )
        .bind(doc.name.as_str())
        .bind(doc.shared)
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .bind(id)
        .execute(tx.conn())
        .await?;
        answer(
            tx,
            "network",
            id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Deletes a network (and its subnets) when no port uses it.
    pub async fn delete_network(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_write("delete_network")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let row = visible_row(tx.conn(), &NETWORKS, ctx, id, lock).await?;
        if !ctx.owns(&row.project_id) {
            return Err(ApiError::Forbidden("delete_network".into()));
        }
        let ports = sqlx::query("SELECT id FROM ports WHERE network_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(tx.conn())
            .await?;
        if !ports.is_empty() {
            let ids: Vec<String> = ports.iter().filter_map(|r| r.try_get(0).ok()).collect();
            return Err(ApiError::conflict(
                Conflict::NetworkInUse,
                format!(
                    "Unable to complete operation on network {id}. There are one or more ports \
                     still in use on the network, id for these ports is: {}.",
                    ids.join(",")
                ),
            ));
        }
        // A VSI type's profile names the network: bridges would have nothing to join.
        let types = sqlx::query("SELECT id FROM vsi_types WHERE network_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(tx.conn())
            .await?;
        if !types.is_empty() {
            let ids: Vec<String> = types.iter().filter_map(|r| r.try_get(0).ok()).collect();
            return Err(ApiError::conflict(
                Conflict::NetworkInUse,
                format!(
                    "Unable to complete operation on network {id}. VSI types {} use it.",
                    ids.join(",")
                ),
            ));
        }
        let subnets = sqlx::query(
            "SELECT id, project_id, body, admin_body FROM subnets WHERE network_id = $1",
        )
        .bind(id)
        .fetch_all(tx.conn())
        .await?;
        for subnet in subnets {
            let (sid, project, body, admin): (String, String, String, String) = (
                subnet.try_get(0)?,
                subnet.try_get(1)?,
                subnet.try_get(2)?,
                subnet.try_get(3)?,
            );
            delete_row(tx.conn(), &SUBNETS, &sid).await?;
            record(
                &mut tx,
                "subnet",
                &sid,
                Operation::Delete,
                &project,
                &body,
                &admin,
            );
        }
        segments::release(tx.conn(), id).await?;
        sqlx::query("DELETE FROM network_segments WHERE network_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        delete_row(tx.conn(), &NETWORKS, id).await?;
        record(
            &mut tx,
            "network",
            id,
            Operation::Delete,
            &row.project_id,
            &row.body,
            &row.admin_body,
        );
        tx.commit().await?;
        Ok(())
    }

    /// Adds or removes a subnet id in a network's `subnets`, bumping its revision.
    pub(crate) async fn touch_network_subnets(
        &self,
        tx: &mut crate::store::WriteTx<'_>,
        network_id: &str,
        add: Option<&str>,
        remove: Option<&str>,
    ) -> Result<(), ApiError> {
        let lock = tx.lock(Lock::Update);
        let Some(row) = super::row(tx.conn(), &NETWORKS, network_id, lock).await? else {
            return Ok(());
        };
        let (mut doc, admin): (NetworkDoc, NetworkAdmin) = row.parse()?;
        if let Some(add) = add {
            doc.subnets.push(add.to_owned());
        }
        if let Some(remove) = remove {
            doc.subnets.retain(|s| s != remove);
        }
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &admin)?;
        update_row(
            tx.conn(),
            &NETWORKS,
            network_id,
            &doc.name,
            &body,
            &admin_body,
        )
        .await?;
        record(
            tx,
            "network",
            network_id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
        );
        Ok(())
    }
}

/// The owning project of a new resource: the caller's, or another one if the caller is admin.
pub fn owner(ctx: &AuthContext, requested: Option<&str>) -> Result<String, ApiError> {
    match requested {
        Some(p) if p != ctx.project_id => {
            if ctx.is_admin() {
                Ok(p.to_owned())
            } else {
                Err(ApiError::bad_request(
                    "Specifying 'project_id' or 'tenant_id' other than the authenticated project \
                     in request requires admin privileges",
                ))
            }
        }
        _ => Ok(ctx.project_id.clone()),
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
    fn parses_the_cli_provider_request() {
        let cmd = CreateNetwork::parse(body(json!({"network": {
            "provider:network_type": "vlan", "name": "pnet", "admin_state_up": true,
            "provider:segmentation_id": "200", "provider:physical_network": "physnet1"}})))
        .unwrap();
        assert_eq!(cmd.segments.len(), 1);
        assert_eq!(cmd.segments[0].segmentation_id, Some(200));
        assert_eq!(cmd.name, "pnet");
    }

    #[test]
    fn refuses_unknown_and_mistyped() {
        let err = CreateNetwork::parse(body(json!({"network": {"nme": "x"}}))).unwrap_err();
        assert_eq!(err.to_string(), "Unrecognized attribute(s) 'nme'");
        assert!(CreateNetwork::parse(body(json!({"network": {"shared": "maybe"}}))).is_err());
        assert!(CreateNetwork::parse(body(json!({"network": {"name": ["x"]}}))).is_err());
        assert!(
            UpdateNetwork::parse(body(json!({"network": {"provider:segmentation_id": 3}})))
                .is_err()
        );
    }
}
