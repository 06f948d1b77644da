//! IP address management: allocation pools, and taking and returning fixed IPs. An address is
//! taken by inserting its `ip_allocations` row (primary key subnet + address), so two ports can
//! never hold one address, whatever the concurrency.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::HashSet;

use ipnet::IpNet;
use sqlx::{AnyConnection, Row};

use crate::{
    error::ApiError,
    network::{
        input::parse_ip,
        model::{PoolDoc, SubnetDoc},
        random_u64,
    },
};

/// An address as a number (IPv4 in the low 32 bits).
pub fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `n` in the family of `like`.
pub fn from_int(n: u128, like: &IpNet) -> IpAddr {
    match like {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The usable host range of a prefix: IPv4 drops the network and broadcast addresses (except
/// on /31 and /32), IPv6 drops the subnet-router anycast address.
pub fn host_range(net: &IpNet) -> (u128, u128) {
    let first = to_int(net.network());
    let last = to_int(net.broadcast());
    match net {
        IpNet::V4(v4) if v4.prefix_len() >= 31 => (first, last),
        IpNet::V4(_) => (first + 1, last - 1),
        IpNet::V6(v6) if v6.prefix_len() == 128 => (first, last),
        IpNet::V6(_) => (first + 1, last),
    }
}

/// Neutron's default pools: the host range minus the gateway.
pub fn default_pools(net: &IpNet, gateway: Option<IpAddr>) -> Vec<PoolDoc> {
    let (lo, hi) = host_range(net);
    let mut ranges = vec![(lo, hi)];
    if let Some(gw) = gateway.map(to_int)
        && (lo..=hi).contains(&gw)
    {
        ranges.clear();
        if gw > lo {
            ranges.push((lo, gw - 1));
        }
        if gw < hi {
            ranges.push((gw + 1, hi));
        }
    }
    ranges
        .into_iter()
        .map(|(a, b)| PoolDoc {
            start: from_int(a, net).to_string(),
            end: from_int(b, net).to_string(),
        })
        .collect()
}

/// Checks requested pools: inside the subnet, start <= end, no overlap, not covering the
/// gateway. Returns them as numeric ranges.
pub fn check_pools(
    net: &IpNet,
    pools: &[PoolDoc],
    gateway: Option<IpAddr>,
) -> Result<Vec<(u128, u128)>, ApiError> {
    let mut ranges = Vec::with_capacity(pools.len());
    let (lo, hi) = (to_int(net.network()), to_int(net.broadcast()));
    for pool in pools {
        let start = parse_ip("allocation_pools", &pool.start)?;
        let end = parse_ip("allocation_pools", &pool.end)?;
        let (a, b) = (to_int(start), to_int(end));
        if !net.contains(&start) || !net.contains(&end) || a < lo || b > hi {
            return Err(ApiError::invalid(format!(
                "The allocation pool {}-{} spans beyond the subnet cidr {net}.",
                pool.start, pool.end
            )));
        }
        if a > b {
            return Err(ApiError::invalid(format!(
                "The allocation pool {}-{} is not valid.",
                pool.start, pool.end
            )));
        }
        ranges.push((a, b));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 <= pair[0].1 {
            return Err(ApiError::invalid("Found overlapping allocation pools."));
        }
    }
    if let Some(gw) = gateway
        && ranges.iter().any(|&(a, b)| (a..=b).contains(&to_int(gw)))
    {
        return Err(ApiError::invalid(format!(
            "Gateway ip {gw} conflicts with allocation pool."
        )));
    }
    Ok(ranges)
}

/// A subnet's address space, parsed once per request.
#[derive(Debug, Clone)]
pub struct Space {
    /// Subnet id.
    pub id: String,
    /// The prefix.
    pub net: IpNet,
    /// Pools as numeric ranges.
    pub pools: Vec<(u128, u128)>,
}

impl Space {
    /// Parses a stored subnet.
    pub fn of(subnet: &SubnetDoc) -> Result<Self, ApiError> {
        let net: IpNet = subnet
            .cidr
            .parse()
            .map_err(|_| ApiError::Internal(format!("stored cidr {:?} unreadable", subnet.cidr)))?;
        let mut pools = Vec::with_capacity(subnet.allocation_pools.len());
        for pool in &subnet.allocation_pools {
            let a = to_int(parse_ip("allocation_pools", &pool.start)?);
            let b = to_int(parse_ip("allocation_pools", &pool.end)?);
            pools.push((a, b));
        }
        Ok(Self {
            id: subnet.id.clone(),
            net,
            pools,
        })
    }

    fn size(&self) -> u128 {
        self.pools.iter().map(|(a, b)| b - a + 1).sum()
    }
}

/// Takes `ip` in `subnet` for `port_id`; false when another port holds it.
pub async fn take(
    conn: &mut AnyConnection,
    subnet_id: &str,
    network_id: &str,
    port_id: &str,
    ip: IpAddr,
) -> Result<bool, ApiError> {
    let done = sqlx::query(
        "INSERT INTO ip_allocations (subnet_id, ip_address, port_id, network_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(subnet_id)
    .bind(ip.to_string())
    .bind(port_id)
    .bind(network_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes any free address from the subnet's pools: a few random picks (Neutron hands out
/// random addresses), then a scan for the lowest free one. `None` when the pools are full.
pub async fn take_any(
    conn: &mut AnyConnection,
    space: &Space,
    network_id: &str,
    port_id: &str,
) -> Result<Option<IpAddr>, ApiError> {
    let size = space.size();
    if size == 0 {
        return Ok(None);
    }
    for _ in 0..8 {
        let mut pick = (u128::from(random_u64()) << 64 | u128::from(random_u64())) % size;
        for &(a, b) in &space.pools {
            if pick <= b - a {
                let ip = from_int(a + pick, &space.net);
                if take(conn, &space.id, network_id, port_id, ip).await? {
                    return Ok(Some(ip));
                }
                break;
            }
            pick -= b - a + 1;
        }
    }
    for _ in 0..4 {
        let rows = sqlx::query("SELECT ip_address FROM ip_allocations WHERE subnet_id = $1")
            .bind(space.id.as_str())
            .fetch_all(&mut *conn)
            .await?;
        let mut used = HashSet::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(0)?;
            if let Ok(ip) = text.parse::<IpAddr>() {
                used.insert(to_int(ip));
            }
        }
        let free = space
            .pools
            .iter()
            .find_map(|&(a, b)| (a..=b).take(used.len() + 1).find(|n| !used.contains(n)));
        let Some(n) = free else { return Ok(None) };
        let ip = from_int(n, &space.net);
        if take(conn, &space.id, network_id, port_id, ip).await? {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

/// Returns every address of `port_id`.
pub async fn release_port(conn: &mut AnyConnection, port_id: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM ip_allocations WHERE port_id = $1")
        .bind(port_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Returns one address of `port_id`.
pub async fn release(
    conn: &mut AnyConnection,
    port_id: &str,
    subnet_id: &str,
    ip: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "DELETE FROM ip_allocations WHERE port_id = $1 AND subnet_id = $2 AND ip_address = $3",
    )
    .bind(port_id)
    .bind(subnet_id)
    .bind(ip)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn default_pools_skip_gateway() {
        let n = net("10.0.4.0/24");
        let pools = default_pools(&n, Some("10.0.4.1".parse().unwrap()));
        assert_eq!(
            pools,
            vec![PoolDoc {
                start: "10.0.4.2".into(),
                end: "10.0.4.254".into()
            }]
        );
        let pools = default_pools(&n, Some("10.0.4.100".parse().unwrap()));
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].end, "10.0.4.99");
        assert_eq!(pools[1].start, "10.0.4.101");
        let v6 = default_pools(&net("2001:db8::/64"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(v6[0].start, "2001:db8::2");
        assert_eq!(v6[0].end, "2001:db8::ffff:ffff:ffff:ffff");
    }

    #[test]
    fn pools_are_checked() {
        let n = net("10.0.4.0/24");
        let gw = Some("10.0.4.1".parse().unwrap());
        let pool = |a: &str, b: &str| PoolDoc {
            start: a.into(),
            end: b.into(),
        };
        assert!(check_pools(&n, &[pool("10.0.4.2", "10.0.4.9")], gw).is_ok());
        assert!(check_pools(&n, &[pool("10.0.4.1", "10.0.4.9")], gw).is_err());
        assert!(check_pools(&n, &[pool("10.0.4.9", "10.0.4.2")], gw).is_err());
        assert!(check_pools(&n, &[pool("10.0.4.2", "10.0.5.9")], gw).is_err());
        let overlapping = [pool("10.0.4.2", "10.0.4.9"), pool("10.0.4.9", "10.0.4.20")];
        assert!(check_pools(&n, &overlapping, gw).is_err());
    }
}
