//! ML2-style type drivers: checking a provider segment request, allocating tenant segments from
//! the configured ranges, and releasing them. A segment is taken by inserting its row into
//! `segment_allocations`, whose primary key makes a double allocation impossible under any
//! concurrency (`ON CONFLICT DO NOTHING` tells us we lost and must pick again).

use sqlx::{AnyConnection, Row};

use crate::{
    config::{Ml2, NetworkType, Ranges},
    error::{ApiError, Conflict},
    network::{input::Input, model::SegmentDoc, random_u64},
};

/// A provider segment as requested (any part may be left for weft to choose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRequest {
    /// The type.
    pub network_type: NetworkType,
    /// The physical network, for flat and vlan.
    pub physical_network: Option<String>,
    /// The id, if the client chose it.
    pub segmentation_id: Option<u32>,
}

/// Reads `provider:*` attributes from `input`; `None` when none was sent.
pub fn parse_provider(input: &mut Input) -> Result<Option<SegmentRequest>, ApiError> {
    let network_type = input.string("provider:network_type", 255)?;
    let physical_network = input
        .nullable_string("provider:physical_network", 64)?
        .flatten();
    let segmentation_id = input.integer("provider:segmentation_id")?;
    if network_type.is_none() && physical_network.is_none() && segmentation_id.is_none() {
        return Ok(None);
    }
    let Some(network_type) = network_type else {
        return Err(ApiError::invalid("network_type required"));
    };
    let network_type = NetworkType::parse(&network_type).ok_or_else(|| {
        ApiError::invalid(format!("network_type value '{network_type}' not supported"))
    })?;
    let segmentation_id = match segmentation_id {
        None => None,
        Some(id) => Some(u32::try_from(id).map_err(|_| out_of_range(network_type))?),
    };
    Ok(Some(SegmentRequest {
        network_type,
        physical_network,
        segmentation_id,
    }))
}

fn out_of_range(ty: NetworkType) -> ApiError {
    let (lo, hi) = ty.id_space().unwrap_or((0, 0));
    ApiError::invalid(format!("segmentation_id out of range ({lo} through {hi})."))
}

/// Checks a provider request against the type driver's rules (before touching the store).
pub fn validate(request: &SegmentRequest, ml2: &Ml2, ranges: &Ranges) -> Result<(), ApiError> {
    let ty = request.network_type;
    let name = ty.as_str();
    match ty {
        NetworkType::Local | NetworkType::Vxlan | NetworkType::Gre | NetworkType::Nvgre => {
            if request.physical_network.is_some() {
                return Err(ApiError::invalid(format!(
                    "provider:physical_network specified for {name} network"
                )));
            }
        }
        NetworkType::Flat => {
            let Some(physnet) = &request.physical_network else {
                return Err(ApiError::invalid(
                    "physical_network required for flat provider network",
                ));
            };
            if !ml2.flat_networks.iter().any(|p| p == "*" || p == physnet) {
                return Err(ApiError::invalid(format!(
                    "physical_network '{physnet}' unknown for flat provider network"
                )));
            }
        }
        NetworkType::Vlan => {
            if let Some(physnet) = &request.physical_network
                && !ranges.vlan.iter().any(|(p, _)| p == physnet)
            {
                return Err(ApiError::invalid(format!(
                    "physical_network '{physnet}' unknown for VLAN provider network."
                )));
            }
        }
    }
    match (ty.id_space(), request.segmentation_id) {
        (None, Some(_)) => Err(ApiError::invalid(format!(
            "segmentation_id specified for {name} provider network"
        ))),
        (Some((lo, hi)), Some(id)) if id < lo || id > hi => Err(out_of_range(ty)),
        _ => Ok(()),
    }
}

/// Takes the segment a provider request names (choosing what it left open).
pub async fn allocate_provider(
    conn: &mut AnyConnection,
    request: &SegmentRequest,
    ranges: &Ranges,
    network_id: &str,
) -> Result<SegmentDoc, ApiError> {
    let ty = request.network_type;
    let physnet = request.physical_network.clone().unwrap_or_default();
    let doc = |id: Option<u32>| SegmentDoc {
        network_type: ty.as_str().into(),
        physical_network: request.physical_network.clone(),
        segmentation_id: id,
    };
    match ty {
        NetworkType::Local => Ok(doc(None)),
        NetworkType::Flat => {
            if take(conn, ty, &physnet, 0, network_id).await? {
                Ok(doc(None))
            } else {
                Err(ApiError::conflict(
                    Conflict::FlatNetworkInUse,
                    format!(
                        "Unable to create the flat network. Physical network {physnet} is in use."
                    ),
                ))
            }
        }
        _ => match request.segmentation_id {
            Some(id) => {
                if take(conn, ty, &physnet, id, network_id).await? {
                    Ok(doc(Some(id)))
                } else if ty == NetworkType::Vlan {
                    Err(ApiError::conflict(
                        Conflict::VlanIdInUse,
                        format!(
                            "Unable to create the network. The VLAN {id} on physical network \
                             {physnet} is in use."
                        ),
                    ))
                } else {
                    Err(ApiError::conflict(
                        Conflict::TunnelIdInUse,
                        format!("Unable to create the network. The tunnel ID {id} is in use."),
                    ))
                }
            }
            None => {
                let pools = pools_for(ty, request.physical_network.as_deref(), ranges);
                let (physnet, id) = allocate_from(conn, ty, &pools, network_id)
                    .await?
                    .ok_or(ApiError::NoNetworkAvailable)?;
                Ok(SegmentDoc {
                    network_type: ty.as_str().into(),
                    physical_network: (!physnet.is_empty()).then_some(physnet),
                    segmentation_id: Some(id),
                })
            }
        },
    }
}

/// Gives a tenant network the first configured tenant type with a free id.
pub async fn allocate_tenant(
    conn: &mut AnyConnection,
    ml2: &Ml2,
    ranges: &Ranges,
    network_id: &str,
) -> Result<SegmentDoc, ApiError> {
    for &ty in &ml2.tenant_network_types {
        if ty == NetworkType::Local {
            return Ok(SegmentDoc {
                network_type: ty.as_str().into(),
                physical_network: None,
                segmentation_id: None,
            });
        }
        let pools = pools_for(ty, None, ranges);
        if let Some((physnet, id)) = allocate_from(conn, ty, &pools, network_id).await? {
            return Ok(SegmentDoc {
                network_type: ty.as_str().into(),
                physical_network: (!physnet.is_empty()).then_some(physnet),
                segmentation_id: Some(id),
            });
        }
    }
    Err(ApiError::NoNetworkAvailable)
}

/// Returns every segment of `network_id` to its pool.
pub async fn release(conn: &mut AnyConnection, network_id: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM segment_allocations WHERE network_id = $1")
        .bind(network_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// (physical network or '', min, max) ranges a type allocates from.
fn pools_for(ty: NetworkType, physnet: Option<&str>, ranges: &Ranges) -> Vec<(String, u32, u32)> {
    let tunnel = |list: &[(u32, u32)]| list.iter().map(|&(a, b)| (String::new(), a, b)).collect();
    match ty {
        NetworkType::Vlan => ranges
            .vlan
            .iter()
            .filter(|(p, _)| physnet.is_none_or(|want| want == p))
            .flat_map(|(p, list)| list.iter().map(move |&(a, b)| (p.clone(), a, b)))
            .collect(),
        NetworkType::Vxlan => tunnel(&ranges.vxlan),
        NetworkType::Gre => tunnel(&ranges.gre),
        NetworkType::Nvgre => tunnel(&ranges.nvgre),
        NetworkType::Local | NetworkType::Flat => Vec::new(),
    }
}

/// Tries a few random ids (as Neutron does, so ids are not predictable), then scans each pool
/// for its lowest free id.
async fn allocate_from(
    conn: &mut AnyConnection,
    ty: NetworkType,
    pools: &[(String, u32, u32)],
    network_id: &str,
) -> Result<Option<(String, u32)>, ApiError> {
    let total: u64 = pools.iter().map(|(_, a, b)| u64::from(b - a) + 1).sum();
    if total == 0 {
        return Ok(None);
    }
    for _ in 0..8 {
        let mut pick = random_u64() % total;
        for (physnet, lo, hi) in pools {
            let size = u64::from(hi - lo) + 1;
            if pick < size {
                let id = lo + u32::try_from(pick).unwrap_or(0);
                if take(conn, ty, physnet, id, network_id).await? {
                    return Ok(Some((physnet.clone(), id)));
                }
                break;
            }
            pick -= size;
        }
    }
    for (physnet, lo, hi) in pools {
        // A concurrent writer (PostgreSQL) can take the gap we found; look again.
        for _ in 0..4 {
            let taken = sqlx::query(
                "SELECT segmentation_id FROM segment_allocations WHERE network_type = $1 AND \
                 physical_network = $2 AND segmentation_id >= $3 AND segmentation_id <= $4 \
                 ORDER BY segmentation_id",
            )
            .bind(ty.as_str())
            .bind(physnet.as_str())
            .bind(i64::from(*lo))
            .bind(i64::from(*hi))
            .fetch_all(&mut *conn)
            .await?;
            let mut next = i64::from(*lo);
            for row in taken {
                let id: i64 = row.try_get(0)?;
                if id != next {
                    break;
                }
                next += 1;
            }
            let Ok(id) = u32::try_from(next) else { break };
            if id > *hi {
                break;
            }
            if take(conn, ty, physnet, id, network_id).await? {
                return Ok(Some((physnet.clone(), id)));
            }
        }
    }
    Ok(None)
}

/// Inserts the allocation row; false when someone holds it.
async fn take(
    conn: &mut AnyConnection,
    ty: NetworkType,
    physnet: &str,
    id: u32,
    network_id: &str,
) -> Result<bool, ApiError> {
    let done = sqlx::query(
        "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, \
         network_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(ty.as_str())
    .bind(physnet)
    .bind(i64::from(id))
    .bind(network_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn request(ty: NetworkType, physnet: Option<&str>, id: Option<u32>) -> SegmentRequest {
        SegmentRequest {
            network_type: ty,
            physical_network: physnet.map(Into::into),
            segmentation_id: id,
        }
    }

    #[test]
    fn provider_rules() {
        let ml2 = Config::default().ml2;
        let ranges = ml2.ranges().unwrap();
        let check = |r| validate(&r, &ml2, &ranges).map_err(|e| e.to_string());
        assert!(check(request(NetworkType::Vlan, Some("physnet1"), Some(200))).is_ok());
        assert_eq!(
            check(request(NetworkType::Vlan, Some("physnet1"), Some(4095))).unwrap_err(),
            "Invalid input for operation: segmentation_id out of range (1 through 4094)."
        );
        assert_eq!(
            check(request(NetworkType::Vlan, Some("physnet9"), Some(150))).unwrap_err(),
            "Invalid input for operation: physical_network 'physnet9' unknown for VLAN provider \
             network."
        );
        assert!(check(request(NetworkType::Vxlan, None, Some(20_000_000))).is_err());
        assert!(check(request(NetworkType::Vxlan, Some("p"), Some(5))).is_err());
        assert!(check(request(NetworkType::Flat, None, None)).is_err());
        assert!(check(request(NetworkType::Flat, Some("physnet0"), Some(3))).is_err());
        assert!(check(request(NetworkType::Nvgre, None, Some(100))).is_err());
    }
}
