//! Ports: MAC and fixed-IP allocation, port security (allowed address pairs, security groups),
//! binding attributes; create, update, delete.

use core::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use wire::MacAddr;

use crate::{
    auth::AuthContext,
    error::{ApiError, Conflict},
    network::{
        NETWORKS, NetworkService, PORTS, SECURITY_GROUPS, answer,
        binding::{self, VIF_TYPE_BINDING_FAILED, VIF_TYPE_UNBOUND},
        delete_row,
        input::{Input, invalid_value, parse_ip},
        ipam::{self, Space},
        model::{
            AddressPairDoc, FixedIpDoc, NetworkAdmin, NetworkDoc, PortAdmin, PortDoc,
            SecurityGroupDoc, SubnetDoc, splice,
        },
        networks::owner,
        new_id, random_u64, record, render, row, trunks, visible_row,
    },
    store::{Lock, Operation, WriteTx, now},
};

/// VNIC types Neutron knows.
const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "remote-managed",
    "vdpa",
];

/// One requested fixed IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIpRequest {
    /// The subnet to take it from.
    pub subnet_id: Option<String>,
    /// The exact address.
    pub ip_address: Option<IpAddr>,
}

/// One requested allowed address pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// IP or CIDR.
    pub ip_address: String,
    /// MAC, defaulting to the port's.
    pub mac_address: Option<MacAddr>,
}

/// Attributes shared by create and update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortFields {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Administrative state.
    pub admin_state_up: Option<bool>,
    /// MAC (network owner or admin).
    pub mac_address: Option<MacAddr>,
    /// Fixed IPs.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// Device id.
    pub device_id: Option<String>,
    /// Device owner.
    pub device_owner: Option<String>,
    /// Allowed address pairs.
    pub allowed_address_pairs: Option<Vec<PairRequest>>,
    /// Port security.
    pub port_security_enabled: Option<bool>,
    /// Security group ids.
    pub security_groups: Option<Vec<String>>,
    /// `binding:host_id` (admin).
    pub host_id: Option<String>,
    /// `binding:profile` (admin).
    pub profile: Option<Map<String, Value>>,
    /// `binding:vnic_type`.
    pub vnic_type: Option<String>,
}

impl PortFields {
    fn parse(input: &mut Input) -> Result<Self, ApiError> {
        for key in ["binding:vif_type", "binding:vif_details", "status"] {
            if input.has(key) {
                return Err(ApiError::bad_request(format!(
                    "Attribute '{key}' not allowed in POST or PUT"
                )));
            }
        }
        let fixed_ips = match input.object_list("fixed_ips")? {
            None => None,
            Some(list) => {
                let mut out: Vec<FixedIpRequest> = Vec::new();
                for mut item in list {
                    let subnet_id = item.string("subnet_id", 36)?;
                    let ip_address = match item.string("ip_address", 64)? {
                        Some(text) => Some(parse_ip("fixed_ips", &text)?),
                        None => None,
                    };
                    item.finish()?;
                    if subnet_id.is_none() && ip_address.is_none() {
                        return Err(invalid_value(
                            "fixed_ips",
                            "each entry needs subnet_id or ip_address",
                        ));
                    }
                    let req = FixedIpRequest {
                        subnet_id,
                        ip_address,
                    };
                    if req.ip_address.is_some()
                        && out.iter().any(|o| o.ip_address == req.ip_address)
                    {
                        return Err(invalid_value("fixed_ips", "Duplicate IP address"));
                    }
                    out.push(req);
                }
                Some(out)
            }
        };
        let allowed_address_pairs = match input.object_list("allowed_address_pairs")? {
            None => None,
            Some(list) => {
                let mut out: Vec<PairRequest> = Vec::new();
                for mut item in list {
                    let ip = item.string("ip_address", 64)?.ok_or_else(|| {
                        invalid_value("allowed_address_pairs", "ip_address is required")
                    })?;
                    let ip_address = match ip.parse::<IpNet>() {
                        Ok(net) => net.to_string(),
                        Err(_) => parse_ip("allowed_address_pairs", &ip)?.to_string(),
                    };
                    let mac_address = item.mac("mac_address")?;
                    item.finish()?;
                    let pair = PairRequest {
                        ip_address,
                        mac_address,
                    };
                    if out.contains(&pair) {
                        return Err(invalid_value(
                            "allowed_address_pairs",
                            "Duplicate address pair",
                        ));
                    }
                    out.push(pair);
                }
                Some(out)
            }
        };
        let vnic_type = input.string("binding:vnic_type", 64)?;
        if let Some(v) = &vnic_type
            && !VNIC_TYPES.contains(&v.as_str())
        {
            return Err(invalid_value(
                "binding:vnic_type",
                &format!("'{v}' is not in {VNIC_TYPES:?}"),
            ));
        }
        Ok(Self {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            mac_address: input.mac("mac_address")?,
            fixed_ips,
            device_id: input.string("device_id", 255)?,
            device_owner: input.string("device_owner", 255)?,
            allowed_address_pairs,
            port_security_enabled: input.boolean("port_security_enabled")?,
            security_groups: input.string_list("security_groups")?,
            host_id: input.string("binding:host_id", 255)?,
            profile: input.object("binding:profile")?,
            vnic_type,
        })
    }
}

/// `POST /v2.0/ports`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePort {
    /// The network.
    pub network_id: String,
    /// Owner (admin may choose).
    pub project_id: Option<String>,
    /// Everything else.
    pub fields: PortFields,
}

impl CreatePort {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "port")?;
        let network_id = input.string("network_id", 36)?.ok_or_else(|| {
            ApiError::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
        })?;
        let project_id = input.project()?;
        let fields = PortFields::parse(&mut input)?;
        input.finish()?;
        Ok(Self {
            network_id,
            project_id,
            fields,
        })
    }
}

/// `PUT /v2.0/ports/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePort(pub PortFields);

impl UpdatePort {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "port")?;
        for key in ["network_id", "project_id", "tenant_id"] {
            if input.has(key) {
                return Err(ApiError::bad_request(format!(
                    "Cannot update read-only attribute {key}"
                )));
            }
        }
        let fields = PortFields::parse(&mut input)?;
        input.finish()?;
        Ok(Self(fields))
    }
}

fn random_mac() -> MacAddr {
    let r = random_u64().to_le_bytes();
    MacAddr([0xfa, 0x16, 0x3e, r[0], r[1], r[2]])
}

fn mac_in_use(network_id: &str, mac: MacAddr) -> ApiError {
    ApiError::conflict(
        Conflict::MacAddressInUse,
        format!(
            "Unable to complete operation for network {network_id}. The mac address {mac} is in use."
        ),
    )
}

async fn subnets_of(
    conn: &mut AnyConnection,
    network_id: &str,
) -> Result<Vec<SubnetDoc>, ApiError> {
    let rows =
        sqlx::query("SELECT body FROM subnets WHERE network_id = $1 ORDER BY created_at, id")
            .bind(network_id)
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|row| {
            let body: String = row.try_get(0)?;
            serde_json::from_str(&body).map_err(|err| ApiError::Internal(err.to_string()))
        })
        .collect()
}

/// The project's `default` security group, created on first use as Neutron does.
async fn default_security_group(
    tx: &mut WriteTx<'_>,
    project_id: &str,
) -> Result<String, ApiError> {
    let find = async |conn: &mut AnyConnection| -> Result<Option<String>, ApiError> {
        let row = sqlx::query(
            "SELECT id FROM security_groups WHERE project_id = $1 AND name = 'default'",
        )
        .bind(project_id)
        .fetch_optional(conn)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    };
    if let Some(id) = find(tx.conn()).await? {
        return Ok(id);
    }
    let stamp = now();
    let doc = SecurityGroupDoc {
        id: new_id(),
        name: "default".into(),
        tenant_id: project_id.into(),
        project_id: project_id.into(),
        description: "Default security group".into(),
        tags: Vec::new(),
        created_at: stamp.clone(),
        updated_at: stamp.clone(),
        revision_number: 1,
    };
    let (body, admin_body) = render(&doc, &Map::new())?;
    let done = sqlx::query(
        "INSERT INTO security_groups (id, project_id, name, created_at, body, admin_body) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(doc.id.as_str())
    .bind(project_id)
    .bind("default")
    .bind(stamp.as_str())
    .bind(body.as_str())
    .bind(admin_body.as_str())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        record(
            tx,
            "security_group",
            &doc.id,
            Operation::Create,
            project_id,
            &body,
            &admin_body,
        );
        return Ok(doc.id);
    }
    find(tx.conn())
        .await?
        .ok_or_else(|| ApiError::Internal("default security group vanished".into()))
}

impl NetworkService {
    /// Creates a port.
    pub async fn create_port(
        &self,
        ctx: &AuthContext,
        cmd: CreatePort,
    ) -> Result<String, ApiError> {
        ctx.require_write("create_port")?;
        let f = cmd.fields;
        if f.host_id.is_some() || f.profile.is_some() {
            ctx.require_admin("create_port:binding:host_id")?;
        }
        let project_id = owner(ctx, cmd.project_id.as_deref())?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Share);
        let network = visible_row(tx.conn(), &NETWORKS, ctx, &cmd.network_id, lock).await?;
        let (net, _): (NetworkDoc, Value) = network.parse()?;
        let network_owner = ctx.owns(&net.project_id);
        if f.mac_address.is_some() && !network_owner {
            return Err(ApiError::Forbidden("create_port:mac_address".into()));
        }
        if f.fixed_ips.iter().flatten().any(|r| r.ip_address.is_some()) && !network_owner {
            return Err(ApiError::Forbidden(
                "create_port:fixed_ips:ip_address".into(),
            ));
        }
        let port_security = f.port_security_enabled.unwrap_or(net.port_security_enabled);
        let pairs = f.allowed_address_pairs.clone().unwrap_or_default();
        if !port_security && !pairs.is_empty() {
            return Err(pairs_need_security());
        }
        let security_groups = match (&f.security_groups, port_security) {
            (Some(groups), false) if !groups.is_empty() => return Err(groups_need_security()),
            (_, false) => Vec::new(),
            (Some(groups), true) => self.check_groups(tx.conn(), ctx, groups).await?,
            (None, true) => {
                let cached = self
                    .default_groups
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&project_id).cloned());
                let group = match cached {
                    Some(group) => group,
                    None => default_security_group(&mut tx, &project_id).await?,
                };
                vec![group]
            }
        };
        let id = new_id();
        let subnets = subnets_of(tx.conn(), &net.id).await?;
        let fixed_ips = match &f.fixed_ips {
            Some(requests) => {
                take_requested(
                    tx.conn(),
                    &net.id,
                    &id,
                    &subnets,
                    requests,
                    f.device_owner.as_deref(),
                )
                .await?
            }
            None => take_default(tx.conn(), &net.id, &id, &subnets).await?,
        };
        // Remembered only once committed: a rolled-back transaction may have made the group.
        let default_group = (f.security_groups.is_none() && port_security)
            .then(|| security_groups.first().cloned())
            .flatten();
        let stamp = now();
        let mut doc = PortDoc {
            id: id.clone(),
            name: f.name.unwrap_or_default(),
            network_id: net.id.clone(),
            tenant_id: project_id.clone(),
            project_id: project_id.clone(),
            mac_address: String::new(),
            admin_state_up: f.admin_state_up.unwrap_or(true),
            status: "DOWN".into(),
            device_id: f.device_id.unwrap_or_default(),
            device_owner: f.device_owner.unwrap_or_default(),
            fixed_ips,
            allowed_address_pairs: Vec::new(),
            security_groups,
            port_security_enabled: port_security,
            vnic_type: f.vnic_type.unwrap_or_else(|| "normal".into()),
            description: f.description.unwrap_or_default(),
            tags: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            revision_number: 1,
            trunk_details: None,
        };
        let mut admin = PortAdmin {
            host_id: f.host_id.unwrap_or_default(),
            profile: f.profile.unwrap_or_default(),
            ..PortAdmin::default()
        };
        if !admin.host_id.is_empty() {
            let (_, net_admin): (NetworkDoc, NetworkAdmin) = network.parse()?;
            self.bind(tx.conn(), &id, &mut admin, &net_admin.segments())
                .await?;
        }
        for attempt in 0.. {
            let mac = f.mac_address.unwrap_or_else(random_mac);
            doc.mac_address = mac.to_string();
            doc.allowed_address_pairs = pair_docs(&pairs, mac);
            let (body, admin_body) = render(&doc, &admin)?;
            let done = sqlx::query(
                "INSERT INTO ports (id, project_id, name, network_id, mac_address, device_id, \
                 created_at, body, admin_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.as_str())
            .bind(project_id.as_str())
            .bind(doc.name.as_str())
            .bind(net.id.as_str())
            .bind(doc.mac_address.as_str())
            .bind(doc.device_id.as_str())
            .bind(stamp.as_str())
            .bind(body.as_str())
            .bind(admin_body.as_str())
            .execute(tx.conn())
            .await?;
            if done.rows_affected() == 1 {
                record(
                    &mut tx,
                    "port",
                    &id,
                    Operation::Create,
                    &project_id,
                    &body,
                    &admin_body,
                );
                tx.commit().await?;
                if let (Some(group), Ok(mut cache)) = (default_group, self.default_groups.lock()) {
                    cache.insert(project_id.clone(), group);
                }
                return Ok(format!(
                    "{{\"port\":{}}}",
                    splice(&body, &admin_body, ctx.is_admin())
                ));
            }
            if f.mac_address.is_some() {
                return Err(mac_in_use(&net.id, mac));
            }
            if attempt >= 16 {
                break;
            }
        }
        Err(ApiError::Internal(
            "no free MAC address after 16 attempts".into(),
        ))
    }

    async fn check_groups(
        &self,
        conn: &mut AnyConnection,
        ctx: &AuthContext,
        groups: &[String],
    ) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<String> = Vec::new();
        for group in groups {
            visible_row(conn, &SECURITY_GROUPS, ctx, group, "").await?;
            if !out.contains(group) {
                out.push(group.clone());
            }
        }
        Ok(out)
    }

    /// Updates a port.
    pub async fn update_port(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdatePort,
    ) -> Result<String, ApiError> {
        ctx.require_write("update_port")?;
        let f = cmd.0;
        if f.host_id.is_some() || f.profile.is_some() {
            ctx.require_admin("update_port:binding:host_id")?;
        }
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let stored = visible_row(tx.conn(), &PORTS, ctx, id, lock).await?;
        let (mut doc, mut admin): (PortDoc, PortAdmin) = stored.parse()?;
        let network = row(tx.conn(), &NETWORKS, &doc.network_id, "")
            .await?
            .ok_or_else(|| ApiError::Internal("port without network".into()))?;
        let network_owner = ctx.owns(&network.project_id);
        if let Some(mac) = f.mac_address {
            if !network_owner {
                return Err(ApiError::Forbidden("update_port:mac_address".into()));
            }
            if !admin.host_id.is_empty() && mac.to_string() != doc.mac_address {
                return Err(ApiError::conflict(
                    Conflict::PortBound,
                    format!(
                        "Unable to complete operation on port {id}, port is already bound, port type: {}, old_mac {}, new_mac {mac}.",
                        admin.vif_type, doc.mac_address
                    ),
                ));
            }
        }
        if let Some(requests) = &f.fixed_ips {
            if requests.iter().any(|r| r.ip_address.is_some()) && !network_owner {
                return Err(ApiError::Forbidden(
                    "update_port:fixed_ips:ip_address".into(),
                ));
            }
            let subnets = subnets_of(tx.conn(), &doc.network_id).await?;
            // Keep addresses that stay, release the rest, then take the new ones.
            let mut keep = Vec::new();
            let mut new_requests = Vec::new();
            for request in requests {
                let existing = doc.fixed_ips.iter().find(|ip| {
                    request
                        .ip_address
                        .is_some_and(|want| ip.ip_address == want.to_string())
                        && request
                            .subnet_id
                            .as_ref()
                            .is_none_or(|s| *s == ip.subnet_id)
                });
                match existing {
                    Some(ip) => keep.push(ip.clone()),
                    None => new_requests.push(request.clone()),
                }
            }
            for old in &doc.fixed_ips {
                if !keep.contains(old) {
                    ipam::release(tx.conn(), id, &old.subnet_id, &old.ip_address).await?;
                }
            }
            let owner = f
                .device_owner
                .clone()
                .unwrap_or_else(|| doc.device_owner.clone());
            let mut taken = take_requested(
                tx.conn(),
                &doc.network_id,
                id,
                &subnets,
                &new_requests,
                Some(&owner),
            )
            .await?;
            keep.append(&mut taken);
            doc.fixed_ips = keep;
        }
        let port_security = f.port_security_enabled.unwrap_or(doc.port_security_enabled);
        let mac: MacAddr = f
            .mac_address
            .unwrap_or_else(|| doc.mac_address.parse().unwrap_or(MacAddr::ZERO));
        if let Some(pairs) = &f.allowed_address_pairs {
            doc.allowed_address_pairs = pair_docs(pairs, mac);
        }
        if let Some(groups) = &f.security_groups {
            doc.security_groups = if port_security || !groups.is_empty() {
                self.check_groups(tx.conn(), ctx, groups).await?
            } else {
                Vec::new()
            };
        }
        if !port_security {
            if !doc.allowed_address_pairs.is_empty() {
                return Err(pairs_need_security());
            }
            if !doc.security_groups.is_empty() {
                return Err(groups_need_security());
            }
        }
        if let Some(vnic) = &f.vnic_type
            && *vnic != doc.vnic_type
            && !admin.host_id.is_empty()
        {
            return Err(ApiError::conflict(
                Conflict::PortBound,
                format!("Unable to complete operation on port {id}, port is already bound."),
            ));
        }
        doc.mac_address = mac.to_string();
        doc.port_security_enabled = port_security;
        doc.name = f.name.unwrap_or(doc.name);
        doc.description = f.description.unwrap_or(doc.description);
        doc.admin_state_up = f.admin_state_up.unwrap_or(doc.admin_state_up);
        doc.device_id = f.device_id.unwrap_or(doc.device_id);
        doc.device_owner = f.device_owner.unwrap_or(doc.device_owner);
        doc.vnic_type = f.vnic_type.unwrap_or(doc.vnic_type);
        if let Some(host) = f.host_id {
            // Binding runs when the host changes, and again for a port that failed to bind
            // (Nova retries by setting the host again).
            let rebind = host != admin.host_id || admin.vif_type == VIF_TYPE_BINDING_FAILED;
            admin.host_id = host;
            if rebind {
                doc.status = "DOWN".into();
                if admin.host_id.is_empty() {
                    admin.vif_type = VIF_TYPE_UNBOUND.into();
                    admin.vif_details = Map::new();
                } else {
                    let (_, net_admin): (NetworkDoc, NetworkAdmin) = network.parse()?;
                    self.bind(tx.conn(), id, &mut admin, &net_admin.segments())
                        .await?;
                }
            }
        }
        if let Some(profile) = f.profile {
            admin.profile = profile;
        }
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &admin)?;
        let done = sqlx::query(
            "UPDATE ports SET name = $1, mac_address = $2, device_id = $3, body = $4, \
             admin_body = $5 WHERE id = $6 AND NOT EXISTS (SELECT 1 FROM ports o WHERE \
             o.network_id = $7 AND o.mac_address = $2 AND o.id <> $6)",
        )
        .bind(doc.name.as_str())
        .bind(doc.mac_address.as_str())
        .bind(doc.device_id.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .bind(id)
        .bind(doc.network_id.as_str())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(mac_in_use(&doc.network_id, mac));
        }
        // The parent's binding leads its trunk's subports.
        self.follow_parent(&mut tx, id).await?;
        answer(
            tx,
            "port",
            id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Runs the mechanism drivers for `admin.host_id` and writes the outcome into `admin`.
    pub(crate) async fn bind(
        &self,
        conn: &mut AnyConnection,
        port_id: &str,
        admin: &mut PortAdmin,
        segments: &[crate::network::model::SegmentDoc],
    ) -> Result<(), ApiError> {
        let agents = self.agents.on_host(conn, &admin.host_id).await?;
        let outcome = binding::bind(&self.drivers, &admin.host_id, &agents, segments);
        if !outcome.reasons.is_empty() {
            tracing::warn!(
                port = port_id,
                host = admin.host_id,
                reasons = ?outcome.reasons,
                "port binding failed"
            );
        }
        admin.vif_type = outcome.vif_type;
        admin.vif_details = outcome.vif_details;
        Ok(())
    }

    /// An agent's report that its ports' devices came up or went away: ports bound to `host`
    /// become `ACTIVE` or `DOWN` (one revision each that changes); others are ignored.
    pub async fn set_device_status(
        &self,
        host: &str,
        up: &[String],
        down: &[String],
    ) -> Result<(Vec<String>, Vec<String>), ApiError> {
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let mut updated = Vec::new();
        let mut ignored = Vec::new();
        let wanted = up
            .iter()
            .map(|id| (id, "ACTIVE"))
            .chain(down.iter().map(|id| (id, "DOWN")));
        for (id, status) in wanted {
            let Some(stored) = row(tx.conn(), &PORTS, id, lock).await? else {
                ignored.push(id.clone());
                continue;
            };
            let (mut doc, admin): (PortDoc, PortAdmin) = stored.parse()?;
            let bound = admin.host_id == host
                && admin.vif_type != VIF_TYPE_BINDING_FAILED
                && admin.vif_type != VIF_TYPE_UNBOUND;
            if !bound {
                ignored.push(id.clone());
                continue;
            }
            if doc.status != status {
                doc.status = status.into();
                doc.revision_number += 1;
                doc.updated_at = now();
                let (body, admin_body) = render(&doc, &admin)?;
                crate::network::update_row(tx.conn(), &PORTS, id, &doc.name, &body, &admin_body)
                    .await?;
                record(
                    &mut tx,
                    "port",
                    id,
                    Operation::Update,
                    &doc.project_id,
                    &body,
                    &admin_body,
                );
            }
            self.follow_parent(&mut tx, id).await?;
            updated.push(id.clone());
        }
        tx.commit().await?;
        Ok((updated, ignored))
    }

    /// Deletes a port, returning its addresses.
    pub async fn delete_port(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_write("delete_port")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let stored = visible_row(tx.conn(), &PORTS, ctx, id, lock).await?;
        if let Some((trunk, parent)) = trunks::membership(tx.conn(), id).await? {
            return Err(if parent {
                ApiError::conflict(
                    Conflict::PortInUseAsTrunkParent,
                    format!("Port {id} is currently a parent port for trunk {trunk}."),
                )
            } else {
                ApiError::conflict(
                    Conflict::PortInUseAsSubPort,
                    format!("Port {id} is currently a subport for trunk {trunk}."),
                )
            });
        }
        ipam::release_port(tx.conn(), id).await?;
        delete_row(tx.conn(), &PORTS, id).await?;
        record(
            &mut tx,
            "port",
            id,
            Operation::Delete,
            &stored.project_id,
            &stored.body,
            &stored.admin_body,
        );
        tx.commit().await?;
        Ok(())
    }
}

fn pairs_need_security() -> ApiError {
    ApiError::conflict(
        Conflict::AddressPairAndPortSecurityRequired,
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
}

fn groups_need_security() -> ApiError {
    ApiError::conflict(
        Conflict::PortSecurityAndIPRequiredForSecurityGroups,
        "Port security must be enabled and port must have an IP address in order to use security groups.",
    )
}

fn pair_docs(pairs: &[PairRequest], port_mac: MacAddr) -> Vec<AddressPairDoc> {
    pairs
        .iter()
        .map(|p| AddressPairDoc {
            ip_address: p.ip_address.clone(),
            mac_address: p.mac_address.unwrap_or(port_mac).to_string(),
        })
        .collect()
}

fn already_allocated(ip: IpAddr, subnet_id: &str) -> ApiError {
    ApiError::conflict(
        Conflict::IpAddressAlreadyAllocated,
        format!("IP address {ip} already allocated in subnet {subnet_id}"),
    )
}

/// Takes the addresses a request lists.
async fn take_requested(
    conn: &mut AnyConnection,
    network_id: &str,
    port_id: &str,
    subnets: &[SubnetDoc],
    requests: &[FixedIpRequest],
    device_owner: Option<&str>,
) -> Result<Vec<FixedIpDoc>, ApiError> {
    let mut out = Vec::with_capacity(requests.len());
    for request in requests {
        let subnet = match (&request.subnet_id, request.ip_address) {
            (Some(subnet_id), _) => {
                subnets.iter().find(|s| &s.id == subnet_id).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Failed to create port on network {network_id}, because fixed_ips included \
                     invalid subnet {subnet_id}."
                    ))
                })?
            }
            (None, Some(ip)) => subnets
                .iter()
                .find(|s| s.cidr.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "IP address {ip} is not a valid IP for any subnet on network {network_id}."
                    ))
                })?,
            (None, None) => continue,
        };
        let space = Space::of(subnet)?;
        let ip = match request.ip_address {
            Some(ip) => {
                if !space.net.contains(&ip) {
                    return Err(ApiError::invalid(format!(
                        "IP address {ip} is not a valid IP for the specified subnet."
                    )));
                }
                let is_router = device_owner.is_some_and(|o| o.starts_with("network:"));
                if subnet.gateway_ip.as_deref() == Some(ip.to_string().as_str()) && !is_router {
                    return Err(already_allocated(ip, &subnet.id));
                }
                if !ipam::take(conn, &subnet.id, network_id, port_id, ip).await? {
                    return Err(already_allocated(ip, &subnet.id));
                }
                ip
            }
            None => ipam::take_any(conn, &space, network_id, port_id)
                .await?
                .ok_or_else(|| {
                    ApiError::conflict(
                        Conflict::IpAddressGenerationFailure,
                        format!("No more IP addresses available for subnet {}.", subnet.id),
                    )
                })?,
        };
        out.push(FixedIpDoc {
            subnet_id: subnet.id.clone(),
            ip_address: ip.to_string(),
        });
    }
    Ok(out)
}

/// Neutron's default: one address from an IPv4 subnet and one from an IPv6 subnet.
async fn take_default(
    conn: &mut AnyConnection,
    network_id: &str,
    port_id: &str,
    subnets: &[SubnetDoc],
) -> Result<Vec<FixedIpDoc>, ApiError> {
    let mut out = Vec::new();
    for version in [4, 6] {
        let candidates: Vec<&SubnetDoc> =
            subnets.iter().filter(|s| s.ip_version == version).collect();
        if candidates.is_empty() {
            continue;
        }
        let mut got = false;
        for subnet in candidates {
            let space = Space::of(subnet)?;
            if let Some(ip) = ipam::take_any(conn, &space, network_id, port_id).await? {
                out.push(FixedIpDoc {
                    subnet_id: subnet.id.clone(),
                    ip_address: ip.to_string(),
                });
                got = true;
                break;
            }
        }
        if !got {
            return Err(ApiError::conflict(
                Conflict::IpAddressGenerationFailure,
                format!("No more IP addresses available on network {network_id}."),
            ));
        }
    }
    Ok(out)
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
    fn parses_the_cli_request() {
        let cmd = CreatePort::parse(body(json!({"port": {"admin_state_up": true,
            "name": "trunkparent", "network_id": "n"}})))
        .unwrap();
        assert_eq!(cmd.fields.name.as_deref(), Some("trunkparent"));
        assert!(cmd.fields.fixed_ips.is_none());
    }

    #[test]
    fn refuses_bad_ports() {
        let bad = |v: Value| CreatePort::parse(body(v)).unwrap_err().to_string();
        assert!(
            bad(json!({"port": {"network_id": "n", "mac_address": "zz"}})).contains("mac_address")
        );
        assert!(
            bad(json!({"port": {"network_id": "n", "fixed_ips": [{"ip_address": "10.0.0.300"}]}}))
                .contains("fixed_ips")
        );
        assert!(
            bad(json!({"port": {"network_id": "n", "binding:vif_type": "ovs"}}))
                .contains("not allowed")
        );
        assert!(
            bad(json!({"port": {"network_id": "n", "binding:vnic_type": "weird"}}))
                .contains("vnic_type")
        );
        assert!(bad(json!({"port": {"name": "x"}})).contains("network_id"));
        assert!(random_mac().to_string().starts_with("fa:16:3e:"));
    }
}
