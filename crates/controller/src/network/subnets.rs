//! Subnets: create (CIDR, gateway, pools, DNS, host routes), update, delete.

use core::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use sqlx::Row;

use crate::{
    auth::AuthContext,
    error::{ApiError, Conflict},
    network::{
        NETWORKS, NetworkService, SUBNETS, answer, delete_row,
        input::{Input, invalid_value, parse_cidr, parse_ip},
        ipam::{self, check_pools, default_pools},
        model::{NetworkDoc, PoolDoc, RouteDoc, SubnetDoc, splice},
        networks::owner,
        new_id, record, render, row, update_row, visible_row,
    },
    store::{Lock, Operation, now},
};

/// Neutron's default limits on a subnet's DHCP options.
const MAX_DNS_NAMESERVERS: usize = 5;
const MAX_HOST_ROUTES: usize = 20;

/// The gateway a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateway {
    /// Not given: the first host address.
    Default,
    /// `null`: no gateway.
    None,
    /// This address.
    Ip(IpAddr),
}

/// `POST /v2.0/subnets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSubnet {
    /// The network.
    pub network_id: String,
    /// The prefix.
    pub cidr: IpNet,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Gateway.
    pub gateway: Gateway,
    /// Requested pools.
    pub allocation_pools: Option<Vec<PoolDoc>>,
    /// DNS servers.
    pub dns_nameservers: Vec<String>,
    /// Host routes.
    pub host_routes: Vec<RouteDoc>,
    /// DHCP on.
    pub enable_dhcp: bool,
    /// Owner (admin may choose).
    pub project_id: Option<String>,
}

fn parse_pools(input: &mut Input) -> Result<Option<Vec<PoolDoc>>, ApiError> {
    let Some(list) = input.object_list("allocation_pools")? else {
        return Ok(None);
    };
    let mut pools = Vec::new();
    for mut item in list {
        let start = item.string("start", 64)?;
        let end = item.string("end", 64)?;
        item.finish()?;
        match (start, end) {
            (Some(start), Some(end)) => pools.push(PoolDoc { start, end }),
            _ => {
                return Err(invalid_value(
                    "allocation_pools",
                    "each pool needs start and end",
                ));
            }
        }
    }
    Ok(Some(pools))
}

fn parse_dns(input: &mut Input) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = input.string_list("dns_nameservers")? else {
        return Ok(None);
    };
    let mut out: Vec<String> = Vec::new();
    for server in list {
        let ip = parse_ip("dns_nameservers", &server)?.to_string();
        if out.contains(&ip) {
            return Err(invalid_value(
                "dns_nameservers",
                &format!("Duplicate nameserver '{server}'"),
            ));
        }
        out.push(ip);
    }
    if out.len() > MAX_DNS_NAMESERVERS {
        return Err(ApiError::invalid(format!(
            "Number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}"
        )));
    }
    Ok(Some(out))
}

fn parse_routes(input: &mut Input) -> Result<Option<Vec<RouteDoc>>, ApiError> {
    let Some(list) = input.object_list("host_routes")? else {
        return Ok(None);
    };
    let mut out: Vec<RouteDoc> = Vec::new();
    for mut item in list {
        let destination = item.string("destination", 64)?;
        let nexthop = item.string("nexthop", 64)?;
        item.finish()?;
        let (Some(destination), Some(nexthop)) = (destination, nexthop) else {
            return Err(invalid_value(
                "host_routes",
                "each route needs destination and nexthop",
            ));
        };
        let destination = parse_cidr(&destination)?.to_string();
        let nexthop = parse_ip("host_routes", &nexthop)?.to_string();
        let route = RouteDoc {
            destination,
            nexthop,
        };
        if out.contains(&route) {
            return Err(invalid_value("host_routes", "Duplicate hostroute"));
        }
        out.push(route);
    }
    if out.len() > MAX_HOST_ROUTES {
        return Err(ApiError::invalid(format!(
            "Number of host routes exceeds the limit {MAX_HOST_ROUTES}"
        )));
    }
    Ok(Some(out))
}

fn parse_gateway(input: &mut Input) -> Result<Option<Gateway>, ApiError> {
    Ok(match input.nullable_string("gateway_ip", 64)? {
        None => None,
        Some(None) => Some(Gateway::None),
        Some(Some(text)) => Some(Gateway::Ip(parse_ip("gateway_ip", &text)?)),
    })
}

impl CreateSubnet {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "subnet")?;
        let network_id = input.string("network_id", 36)?.ok_or_else(|| {
            ApiError::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
        })?;
        let cidr_text = input.string("cidr", 64)?.ok_or_else(|| {
            ApiError::bad_request(
                "Failed to parse request. Required attribute 'cidr' not specified",
            )
        })?;
        let cidr = parse_cidr(&cidr_text)?;
        if let Some(version) = input.integer("ip_version")? {
            let matches = matches!((version, cidr), (4, IpNet::V4(_)) | (6, IpNet::V6(_)));
            if version != 4 && version != 6 {
                return Err(invalid_value(
                    "ip_version",
                    &format!("'{version}' is not in [4, 6]"),
                ));
            }
            if !matches {
                return Err(ApiError::invalid(format!(
                    "Invalid CIDR {cidr} for IP version {version}."
                )));
            }
        }
        if matches!(cidr, IpNet::V4(n) if n.prefix_len() > 30)
            || matches!(cidr, IpNet::V6(n) if n.prefix_len() > 126)
        {
            return Err(ApiError::invalid(format!(
                "Subnet {cidr} has no usable addresses."
            )));
        }
        for key in ["ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id"] {
            match input.take(key) {
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(ApiError::invalid(format!("{key} is not supported by weft")));
                }
            }
        }
        let cmd = Self {
            network_id,
            cidr,
            name: input.string("name", 255)?.unwrap_or_default(),
            description: input.string("description", 255)?.unwrap_or_default(),
            gateway: parse_gateway(&mut input)?.unwrap_or(Gateway::Default),
            allocation_pools: parse_pools(&mut input)?,
            dns_nameservers: parse_dns(&mut input)?.unwrap_or_default(),
            host_routes: parse_routes(&mut input)?.unwrap_or_default(),
            enable_dhcp: input.boolean("enable_dhcp")?.unwrap_or(true),
            project_id: input.project()?,
        };
        input.finish()?;
        Ok(cmd)
    }
}

/// `PUT /v2.0/subnets/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSubnet {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New gateway.
    pub gateway: Option<Gateway>,
    /// New pools.
    pub allocation_pools: Option<Vec<PoolDoc>>,
    /// New DNS servers.
    pub dns_nameservers: Option<Vec<String>>,
    /// New host routes.
    pub host_routes: Option<Vec<RouteDoc>>,
    /// New DHCP flag.
    pub enable_dhcp: Option<bool>,
}

impl UpdateSubnet {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "subnet")?;
        for key in [
            "cidr",
            "ip_version",
            "network_id",
            "project_id",
            "tenant_id",
        ] {
            if input.has(key) {
                return Err(ApiError::bad_request(format!(
                    "Cannot update read-only attribute {key}"
                )));
            }
        }
        let cmd = Self {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            gateway: parse_gateway(&mut input)?,
            allocation_pools: parse_pools(&mut input)?,
            dns_nameservers: parse_dns(&mut input)?,
            host_routes: parse_routes(&mut input)?,
            enable_dhcp: input.boolean("enable_dhcp")?,
        };
        input.finish()?;
        Ok(cmd)
    }
}

fn resolve_gateway(net: &IpNet, gateway: &Gateway) -> Result<Option<IpAddr>, ApiError> {
    match gateway {
        Gateway::None => Ok(None),
        Gateway::Default => Ok(Some(ipam::from_int(ipam::host_range(net).0, net))),
        Gateway::Ip(ip) => {
            if !net.contains(ip) {
                return Err(ApiError::invalid(format!(
                    "Gateway IP {ip} is not in subnet {net}."
                )));
            }
            if let IpNet::V4(v4) = net
                && (IpAddr::V4(v4.network()) == *ip || IpAddr::V4(v4.broadcast()) == *ip)
            {
                return Err(ApiError::invalid(format!(
                    "Gateway is not valid on subnet: {ip}"
                )));
            }
            Ok(Some(*ip))
        }
    }
}

impl NetworkService {
    /// Creates a subnet.
    pub async fn create_subnet(
        &self,
        ctx: &AuthContext,
        cmd: CreateSubnet,
    ) -> Result<String, ApiError> {
        ctx.require_write("create_subnet")?;
        let project_id = owner(ctx, cmd.project_id.as_deref())?;
        let gateway = resolve_gateway(&cmd.cidr, &cmd.gateway)?;
        let pools = match &cmd.allocation_pools {
            Some(pools) => {
                check_pools(&cmd.cidr, pools, gateway)?;
                pools.clone()
            }
            None => default_pools(&cmd.cidr, gateway),
        };
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let network = visible_row(tx.conn(), &NETWORKS, ctx, &cmd.network_id, lock).await?;
        if !ctx.owns(&network.project_id) {
            return Err(ApiError::Forbidden("create_subnet".into()));
        }
        let (net_doc, _): (NetworkDoc, Value) = network.parse()?;
        let others = sqlx::query("SELECT body FROM subnets WHERE network_id = $1")
            .bind(cmd.network_id.as_str())
            .fetch_all(tx.conn())
            .await?;
        for other in others {
            let body: String = other.try_get(0)?;
            let other: SubnetDoc =
                serde_json::from_str(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Ok(net) = other.cidr.parse::<IpNet>()
                && (net.contains(&cmd.cidr.network()) || cmd.cidr.contains(&net.network()))
            {
                return Err(ApiError::invalid(format!(
                    "Requested subnet with cidr: {} for network: {} overlaps with another subnet.",
                    cmd.cidr, cmd.network_id
                )));
            }
        }
        let id = new_id();
        let stamp = now();
        let doc = SubnetDoc {
            id: id.clone(),
            name: cmd.name,
            tenant_id: project_id.clone(),
            project_id: project_id.clone(),
            network_id: net_doc.id.clone(),
            ip_version: if cmd.cidr.addr().is_ipv4() { 4 } else { 6 },
            enable_dhcp: cmd.enable_dhcp,
            gateway_ip: gateway.map(|g| g.to_string()),
            cidr: cmd.cidr.to_string(),
            allocation_pools: pools,
            host_routes: cmd.host_routes,
            dns_nameservers: cmd.dns_nameservers,
            description: cmd.description,
            tags: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            revision_number: 0,
        };
        let (body, admin_body) = render(&doc, &Map::new())?;
        sqlx::query(
            "INSERT INTO subnets (id, project_id, name, network_id, created_at, body, admin_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(project_id.as_str())
        .bind(doc.name.as_str())
        .bind(doc.network_id.as_str())
        .bind(stamp.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .execute(tx.conn())
        .await?;
        record(
            &mut tx,
            "subnet",
            &id,
            Operation::Create,
            &project_id,
            &body,
            &admin_body,
        );
        self.touch_network_subnets(&mut tx, &doc.network_id, Some(&id), None)
            .await?;
        tx.commit().await?;
        Ok(format!(
            "{{\"subnet\":{}}}",
            splice(&body, &admin_body, ctx.is_admin())
        ))
    }

    /// Updates a subnet.
    pub async fn update_subnet(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateSubnet,
    ) -> Result<String, ApiError> {
        ctx.require_write("update_subnet")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let row = visible_row(tx.conn(), &SUBNETS, ctx, id, lock).await?;
        if !ctx.owns(&row.project_id) {
            return Err(ApiError::Forbidden("update_subnet".into()));
        }
        let (mut doc, admin): (SubnetDoc, Map<String, Value>) = row.parse()?;
        let net: IpNet = doc
            .cidr
            .parse()
            .map_err(|_| ApiError::Internal("stored cidr".into()))?;
        let mut gateway = doc.gateway_ip.as_deref().and_then(|g| g.parse().ok());
        if let Some(requested) = &cmd.gateway {
            gateway = resolve_gateway(&net, requested)?;
        }
        let pools = cmd
            .allocation_pools
            .unwrap_or_else(|| doc.allocation_pools.clone());
        check_pools(&net, &pools, gateway)?;
        doc.allocation_pools = pools;
        doc.gateway_ip = gateway.map(|g| g.to_string());
        doc.name = cmd.name.unwrap_or(doc.name);
        doc.description = cmd.description.unwrap_or(doc.description);
        doc.dns_nameservers = cmd.dns_nameservers.unwrap_or(doc.dns_nameservers);
        doc.host_routes = cmd.host_routes.unwrap_or(doc.host_routes);
        doc.enable_dhcp = cmd.enable_dhcp.unwrap_or(doc.enable_dhcp);
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &admin)?;
        update_row(tx.conn(), &SUBNETS, id, &doc.name, &body, &admin_body).await?;
        answer(
            tx,
            "subnet",
            id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Deletes a subnet no port has an address in.
    pub async fn delete_subnet(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_write("delete_subnet")?;
        let mut tx = self.store.write().await?;
        // Lock the network before the subnet, in the order network deletion takes them.
        let peek = visible_row(tx.conn(), &SUBNETS, ctx, id, "").await?;
        let (peeked, _): (SubnetDoc, Value) = peek.parse()?;
        let lock = tx.lock(Lock::Update);
        row(tx.conn(), &NETWORKS, &peeked.network_id, lock).await?;
        let row = visible_row(tx.conn(), &SUBNETS, ctx, id, lock).await?;
        if !ctx.owns(&row.project_id) {
            return Err(ApiError::Forbidden("delete_subnet".into()));
        }
        let used = sqlx::query("SELECT COUNT(*) FROM ip_allocations WHERE subnet_id = $1")
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
        let used: i64 = used.try_get(0)?;
        if used > 0 {
            return Err(ApiError::conflict(
                Conflict::SubnetInUse,
                format!(
                    "Unable to complete operation on subnet {id}: One or more ports have an IP \
                     allocation from this subnet."
                ),
            ));
        }
        let (doc, _): (SubnetDoc, Value) = row.parse()?;
        delete_row(tx.conn(), &SUBNETS, id).await?;
        record(
            &mut tx,
            "subnet",
            id,
            Operation::Delete,
            &row.project_id,
            &row.body,
            &row.admin_body,
        );
        self.touch_network_subnets(&mut tx, &doc.network_id, None, Some(id))
            .await?;
        tx.commit().await?;
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
    fn parses_the_cli_request() {
        let cmd = CreateSubnet::parse(body(json!({"subnet": {"cidr": "10.0.4.0/24",
            "name": "subnet0", "ip_version": 4, "network_id": "n"}})))
        .unwrap();
        assert_eq!(cmd.gateway, Gateway::Default);
        assert_eq!(
            resolve_gateway(&cmd.cidr, &cmd.gateway).unwrap(),
            Some("10.0.4.1".parse().unwrap())
        );
    }

    #[test]
    fn refuses_bad_subnets() {
        let bad = |v: Value| CreateSubnet::parse(body(v)).unwrap_err().to_string();
        assert_eq!(
            bad(json!({"subnet": {"cidr": "10.0.300.0/24", "ip_version": 4, "network_id": "n"}})),
            "Invalid input for operation: 10.0.300.0/24 is not in a CIDR format."
        );
        assert!(
            bad(json!({"subnet": {"cidr": "10.0.0.0/24", "ip_version": 6, "network_id": "n"}}))
                .contains("IP version")
        );
        assert!(bad(json!({"subnet": {"cidr": "10.0.0.0/24", "network_id": "n", "dns_nameservers": ["1.1.1.1", "1.1.1.1"]}})).contains("Duplicate"));
        assert!(
            bad(json!({"subnet": {"cidr": "10.0.0.0/24", "network_id": "n", "gateway_ip": "x"}}))
                .contains("gateway_ip")
        );
        let cidr: IpNet = "10.0.0.0/24".parse().unwrap();
        assert!(resolve_gateway(&cidr, &Gateway::Ip("10.0.1.1".parse().unwrap())).is_err());
        assert!(resolve_gateway(&cidr, &Gateway::Ip("10.0.0.255".parse().unwrap())).is_err());
    }
}
