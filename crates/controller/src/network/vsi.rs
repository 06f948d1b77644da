//! The VSI type database and VDP association records (issue 7, seed 000's network manager;
//! contract in `docs/vsi.md`).
//!
//! A VSI type maps an 802.1Qbg (type id, version) to a network profile: the network the VSI's
//! traffic joins, the VLAN the bridge assigns, port security. A bridge asks
//! [`NetworkService::vdp_decide`] before it answers a station's VDP request, and the decision is
//! recorded in the same transaction: seed 000 figure 12's A (no association, no traffic), B
//! (associated, traffic with the profile) and C (rejected, no resources given).
//!
//! VLANs are local to a bridge port: on one port a VLAN carries one network, so the VLAN a VSI
//! gets is the type's, else its network's VLAN segment id, else the VLAN its network already has
//! on that port, else the lowest free one of `[vsi] vlan_range`. `vsi_vlans` holds what live
//! associations use; each decide takes its port's `vsi_ports` row first, which serialises the
//! choice on PostgreSQL.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;
use wire::MacAddr;

use crate::{
    auth::AuthContext,
    error::{ApiError, Conflict},
    network::{
        NETWORKS, NetworkService, PORTS, VSI_TYPES, answer, delete_row,
        input::{Input, invalid_value},
        model::{NetworkAdmin, NetworkDoc, PortAdmin, PortDoc},
        networks::owner,
        new_id, record, render, row, visible_row,
    },
    store::{Lock, Operation, WriteTx, now},
};

/// The largest VSI type id: the field is 24 bits (802.1Qbg-2012 §41.2.3).
pub const MAX_TYPE_ID: i64 = 0xff_ffff;

/// A VSI type's stored representation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VsiTypeDoc {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The 802.1Qbg VSI type id (24 bits).
    pub type_id: u32,
    /// The VSI type version.
    pub type_version: u8,
    /// The network the VSI's traffic joins.
    pub network_id: String,
    /// The VLAN a bridge assigns for VID 0; `None`: the network's VLAN or a free one.
    pub vlan: Option<u16>,
    /// Whether the VSI's port filters by its addresses.
    pub port_security_enabled: bool,
    /// Owner.
    pub project_id: String,
    /// Owner.
    pub tenant_id: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// One VDP filter entry (802.1Qbg-2012 §41.2.9): a VID, with a MAC and/or group id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The VLAN id; 0 in a request means "assign one".
    pub vlan: u16,
    /// The VSI's MAC address (formats 2 and 4).
    pub mac_address: Option<String>,
    /// The group id (formats 3 and 4).
    pub group_id: Option<u32>,
}

/// Where an association stands, as the bridge told the station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Pre-associated: resources checked, no traffic yet.
    Preassociated,
    /// Pre-associated with resources reserved.
    PreassociatedRr,
    /// Associated: traffic flows with the type's profile.
    Associated,
    /// De-associated (kept for history until the VSI is used again).
    Deassociated,
}

impl State {
    /// The stored and listed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Preassociated => "preassociated",
            Self::PreassociatedRr => "preassociated_rr",
            Self::Associated => "associated",
            Self::Deassociated => "deassociated",
        }
    }
}

/// An association record's stored representation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationDoc {
    /// UUID.
    pub id: String,
    /// The VSI id, canonical (lowercase, hyphenated as a UUID whatever the format).
    pub vsi_id: String,
    /// VSIID format: 1 IPv4, 2 IPv6, 3 MAC, 4 local, 5 UUID.
    pub id_format: u8,
    /// The VSI type id the station asked for.
    pub type_id: u32,
    /// The VSI type version the station asked for.
    pub type_version: u8,
    /// The VSI type record.
    pub vsi_type_id: String,
    /// The type's network.
    pub network_id: String,
    /// The VSI manager id the station named.
    pub manager_id: String,
    /// The filters as the bridge accepted them (assigned VLANs filled in).
    pub filters: Vec<Filter>,
    /// The bridge (agent host) that recorded it.
    pub bridge: String,
    /// The bridge port the station is on.
    pub port: String,
    /// Where the association stands.
    pub state: State,
    /// The type's owner.
    pub project_id: String,
    /// The type's owner.
    pub tenant_id: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped on every change.
    pub revision_number: i64,
}

/// `POST /v2.0/vsi-types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVsiType {
    type_id: u32,
    type_version: u8,
    network_id: String,
    vlan: Option<u16>,
    name: String,
    description: String,
    port_security_enabled: bool,
    project_id: Option<String>,
}

impl CreateVsiType {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "vsi_type")?;
        let required = |key: &str| {
            ApiError::bad_request(format!(
                "Failed to parse request. Required attribute '{key}' not specified"
            ))
        };
        let type_id = type_id(
            input
                .integer("type_id")?
                .ok_or_else(|| required("type_id"))?,
        )?;
        let type_version = type_version(
            input
                .integer("type_version")?
                .ok_or_else(|| required("type_version"))?,
        )?;
        let network_id = input
            .string("network_id", 36)?
            .ok_or_else(|| required("network_id"))?;
        let cmd = Self {
            type_id,
            type_version,
            network_id,
            vlan: take_vlan(&mut input)?.flatten(),
            name: input.string("name", 255)?.unwrap_or_default(),
            description: input.string("description", 255)?.unwrap_or_default(),
            port_security_enabled: input.boolean("port_security_enabled")?.unwrap_or(true),
            project_id: input.project()?,
        };
        input.finish()?;
        Ok(cmd)
    }
}

/// `PUT /v2.0/vsi-types/{id}`: the name and description always; the profile (network, VLAN,
/// port security) only while no association uses the type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateVsiType {
    name: Option<String>,
    description: Option<String>,
    network_id: Option<String>,
    /// `Some(None)`: back to "the network's VLAN or a free one".
    vlan: Option<Option<u16>>,
    port_security_enabled: Option<bool>,
}

impl UpdateVsiType {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::unwrap(body, "vsi_type")?;
        for key in ["type_id", "type_version", "project_id", "tenant_id"] {
            if input.has(key) {
                return Err(ApiError::bad_request(format!(
                    "Cannot update read-only attribute {key}"
                )));
            }
        }
        let cmd = Self {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            network_id: input.string("network_id", 36)?,
            vlan: take_vlan(&mut input)?,
            port_security_enabled: input.boolean("port_security_enabled")?,
        };
        input.finish()?;
        Ok(cmd)
    }

    fn changes_profile(&self) -> bool {
        self.network_id.is_some() || self.vlan.is_some() || self.port_security_enabled.is_some()
    }
}

fn type_id(value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .ok()
        .filter(|v| i64::from(*v) <= MAX_TYPE_ID)
        .ok_or_else(|| {
            invalid_value(
                "type_id",
                &format!("{value} is not in the range 0-{MAX_TYPE_ID} (24 bits)"),
            )
        })
}

fn type_version(value: i64) -> Result<u8, ApiError> {
    u8::try_from(value).map_err(|_| {
        invalid_value(
            "type_version",
            &format!("{value} is not in the range 0-255 (8 bits)"),
        )
    })
}

/// `vlan`: absent (`None`), `null` (`Some(None)`) or 2-4094.
fn take_vlan(input: &mut Input) -> Result<Option<Option<u16>>, ApiError> {
    if !input.has("vlan") {
        return Ok(None);
    }
    let Some(value) = input.integer("vlan")? else {
        return Ok(Some(None));
    };
    let vlan = u16::try_from(value)
        .ok()
        .filter(|v| (2..=4094).contains(v))
        .ok_or_else(|| {
            invalid_value(
                "vlan",
                &format!(
                    "{value} is not in the range 2-4094 (VDP stations refuse VIDs 1 and 4095)"
                ),
            )
        })?;
    Ok(Some(Some(vlan)))
}

/// A VDP request mode: the VSI TLV type (802.1Qbg-2012 §41.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pre-Associate.
    Preassociate,
    /// Pre-Associate with resource reservation.
    PreassociateRr,
    /// Associate.
    Associate,
    /// De-Associate.
    Deassociate,
}

impl Mode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "preassociate" => Self::Preassociate,
            "preassociate_rr" => Self::PreassociateRr,
            "associate" => Self::Associate,
            "deassociate" => Self::Deassociate,
            _ => return None,
        })
    }

    const fn state(self) -> State {
        match self {
            Self::Preassociate => State::Preassociated,
            Self::PreassociateRr => State::PreassociatedRr,
            Self::Associate => State::Associated,
            Self::Deassociate => State::Deassociated,
        }
    }
}

/// The 802.1Qbg error code a rejection carries (PROTOCOL_NOTES §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdpError {
    /// 1: the request is malformed.
    InvalidFormat,
    /// 2: no resources (no free VLAN on the port).
    InsufficientResources,
    /// 3: the VSI manager could not be asked.
    UnableToContactVsiManager,
    /// 4: anything else (an unknown VSI type or version).
    OtherFailure,
    /// 5: filters the profile cannot take (a VLAN other than the type's, a bad MAC).
    InvalidVidGroupMac,
}

impl VdpError {
    /// The name in a decision.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFormat => "invalid_format",
            Self::InsufficientResources => "insufficient_resources",
            Self::UnableToContactVsiManager => "unable_to_contact_vsi_manager",
            Self::OtherFailure => "other_failure",
            Self::InvalidVidGroupMac => "invalid_vid_group_mac",
        }
    }
}

/// Why a request is refused, as the bridge tells the station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code.
    pub error: VdpError,
    /// For the operator.
    pub reason: String,
}

fn reject(error: VdpError, reason: impl Into<String>) -> Rejection {
    Rejection {
        error,
        reason: reason.into(),
    }
}

/// The VSI fields of a request once they are known to make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsiRequest {
    id_format: u8,
    type_id: u32,
    type_version: u8,
    manager_id: String,
    filters: Vec<Filter>,
}

/// `POST /weft/v1/vdp/decide`. JSON that is not the documented shape is a 400; values a VSI
/// TLV could carry but that make no sense are a rejection the bridge passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decide {
    bridge: String,
    port: String,
    mode: Mode,
    /// The canonical VSI id, when it parsed.
    vsi_id: Option<String>,
    request: Result<VsiRequest, Rejection>,
}

impl Decide {
    /// Parses the request body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut outer = Input::new(body);
        let bridge = required_name(&mut outer, "bridge")?;
        let port = required_name(&mut outer, "port")?;
        let Some(Value::Object(inner)) = outer.take("request") else {
            return Err(ApiError::bad_request(
                "request: expected the VSI TLV as an object",
            ));
        };
        outer.finish()?;
        let mut input = Input::new(inner);
        let mode_text = input
            .string("mode", 32)?
            .ok_or_else(|| ApiError::bad_request("request.mode: required"))?;
        let mode = Mode::parse(&mode_text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "request.mode: {mode_text:?} is not associate, preassociate, preassociate_rr \
                 or deassociate"
            ))
        })?;
        let vsi_text = input
            .string("vsi_id", 64)?
            .ok_or_else(|| ApiError::bad_request("request.vsi_id: required"))?;
        let type_id = input.integer("type_id")?;
        let type_version = input.integer("type_version")?;
        let id_format = input.integer("id_format")?;
        let manager_id = input.string("manager_id", 64)?.unwrap_or_default();
        let filters = input
            .object_list("filters")?
            .ok_or_else(|| ApiError::bad_request("request.filters: required"))?;
        let mut raw_filters = Vec::with_capacity(filters.len());
        for mut filter in filters {
            let vlan = filter.integer("vlan")?;
            let mac = filter.nullable_string("mac_address", 64)?.flatten();
            let group = filter.integer("group_id")?;
            filter.finish()?;
            raw_filters.push((vlan, mac, group));
        }
        input.finish()?;
        let vsi_id = canonical_vsi_id(&vsi_text);
        let request = check_request(
            vsi_id.as_deref(),
            &vsi_text,
            id_format,
            type_id,
            type_version,
            manager_id,
            raw_filters,
        );
        Ok(Self {
            bridge,
            port,
            mode,
            vsi_id,
            request,
        })
    }
}

/// `POST /weft/v1/vdp/state`: a change the bridge made on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateReport {
    bridge: String,
    port: String,
    vsi_id: String,
    reason: String,
}

impl StateReport {
    /// Parses the request body; only `deassociated` can be reported.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut input = Input::new(body);
        let bridge = required_name(&mut input, "bridge")?;
        let port = required_name(&mut input, "port")?;
        let text = input
            .string("vsi_id", 64)?
            .ok_or_else(|| ApiError::bad_request("vsi_id: required"))?;
        let vsi_id = canonical_vsi_id(&text).ok_or_else(|| {
            ApiError::bad_request(format!("vsi_id: {text:?} is not a UUID or 32 hex digits"))
        })?;
        match input.string("state", 32)?.as_deref() {
            Some("deassociated") => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "state: {other:?}: a bridge reports only \"deassociated\""
                )));
            }
        }
        let reason = input.string("reason", 255)?.unwrap_or_default();
        input.finish()?;
        Ok(Self {
            bridge,
            port,
            vsi_id,
            reason,
        })
    }
}

fn required_name(input: &mut Input, key: &str) -> Result<String, ApiError> {
    input
        .string(key, 255)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{key}: required")))
}

/// A VSI id as a UUID or 32 hex digits, in one canonical text (lowercase, hyphenated),
/// whatever its format: `/vdp/state` names a VSI without its format.
fn canonical_vsi_id(text: &str) -> Option<String> {
    let simple = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let hyphenated = text.len() == 36;
    if !simple && !hyphenated {
        return None;
    }
    uuid::Uuid::try_parse(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

type RawFilter = (Option<i64>, Option<String>, Option<i64>);

/// The checks a bridge makes on a VSI TLV before asking anyone (802.1Qbg-2012 §41.2.9 and
/// lldpad's `filter_ok`/`check_vid`, PROTOCOL_NOTES §7.3 and §7.5).
fn check_request(
    vsi_id: Option<&str>,
    vsi_text: &str,
    id_format: Option<i64>,
    type_id: Option<i64>,
    type_version: Option<i64>,
    manager_id: String,
    raw_filters: Vec<RawFilter>,
) -> Result<VsiRequest, Rejection> {
    let format = |reason: String| reject(VdpError::InvalidFormat, reason);
    let vsi_id = vsi_id.ok_or_else(|| format(format!("VSI id {vsi_text:?} is not 16 octets")))?;
    let id_format = id_format
        .and_then(|f| u8::try_from(f).ok())
        .filter(|f| (1..=5).contains(f))
        .ok_or_else(|| format(format!("VSIID format {id_format:?} is not 1-5")))?;
    let octets = uuid::Uuid::try_parse(vsi_id)
        .map(|id| *id.as_bytes())
        .map_err(|_| format(format!("VSI id {vsi_text:?} is not 16 octets")))?;
    // IPv4 sits in the last 4 octets after 10 zeros and FF FF; a MAC in the last 6 after 10
    // zeros (lldpad `is_ipv4`, `is_mac`).
    let zeros = octets[..10].iter().all(|b| *b == 0);
    match id_format {
        1 if !(zeros && octets[10..12] == [0xff, 0xff]) => {
            return Err(format(format!(
                "VSI id {vsi_id} is not an IPv4-mapped address (format 1)"
            )));
        }
        3 if !zeros => {
            return Err(format(format!(
                "VSI id {vsi_id} is not a MAC address in the last 6 octets (format 3)"
            )));
        }
        _ => {}
    }
    let type_id = type_id
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| i64::from(*t) <= MAX_TYPE_ID)
        .ok_or_else(|| format(format!("VSI type id {type_id:?} is not 24 bits")))?;
    let type_version = type_version
        .and_then(|v| u8::try_from(v).ok())
        .ok_or_else(|| format(format!("VSI type version {type_version:?} is not 8 bits")))?;
    if raw_filters.is_empty() {
        // A VSI TLV with no entries is not used (lldpad `ptlv_2_vsi22`).
        return Err(format("no filter entries".into()));
    }
    let shape = |f: &RawFilter| (f.1.is_some(), f.2.is_some());
    let first_shape = shape(&raw_filters[0]);
    let mut filters = Vec::with_capacity(raw_filters.len());
    for raw in raw_filters {
        if shape(&raw) != first_shape {
            return Err(format(
                "filter entries of different formats in one VSI TLV".into(),
            ));
        }
        let (vlan, mac, group) = raw;
        let vlan = vlan
            .and_then(|v| u16::try_from(v).ok())
            .filter(|v| *v <= 4095)
            .ok_or_else(|| format(format!("VID {vlan:?} is not 12 bits")))?;
        if vlan == 1 || vlan == 4095 {
            return Err(reject(
                VdpError::InvalidVidGroupMac,
                format!("VID {vlan} is reserved (a station may use 0 or 2-4094)"),
            ));
        }
        let mac_address = match mac {
            None => None,
            Some(text) => {
                let mac: MacAddr = text
                    .replace('-', ":")
                    .parse()
                    .map_err(|_| format(format!("{text:?} is not a MAC address")))?;
                if mac == MacAddr::ZERO || !mac.is_unicast() {
                    return Err(reject(
                        VdpError::InvalidVidGroupMac,
                        format!("MAC {mac} is zero, broadcast or multicast"),
                    ));
                }
                Some(mac.to_string())
            }
        };
        let group_id = match group {
            None => None,
            Some(g) => {
                Some(u32::try_from(g).map_err(|_| format(format!("group id {g} is not 32 bits")))?)
            }
        };
        filters.push(Filter {
            vlan,
            mac_address,
            group_id,
        });
    }
    Ok(VsiRequest {
        id_format,
        type_id,
        type_version,
        manager_id,
        filters,
    })
}

/// A decision as the bridge receives it.
fn accepted(filters: &[Filter], association: Option<&AssociationDoc>) -> String {
    json!({"decision": "accept", "filters": filters, "association": association}).to_string()
}

fn rejected(rejection: &Rejection) -> String {
    json!({"decision": "reject", "error": rejection.error.as_str(), "reason": rejection.reason})
        .to_string()
}

/// An association row read for update.
struct Stored {
    doc: AssociationDoc,
}

impl NetworkService {
    /// Creates a VSI type (admin only).
    pub async fn create_vsi_type(
        &self,
        ctx: &AuthContext,
        cmd: CreateVsiType,
    ) -> Result<String, ApiError> {
        ctx.require_admin("create_vsi_type")?;
        let project_id = owner(ctx, cmd.project_id.as_deref())?;
        let mut tx = self.store.write().await?;
        // Shared: the network must not go away before the type is in.
        let lock = tx.lock(Lock::Share);
        visible_row(tx.conn(), &NETWORKS, ctx, &cmd.network_id, lock).await?;
        let stamp = now();
        let doc = VsiTypeDoc {
            id: new_id(),
            name: cmd.name,
            description: cmd.description,
            type_id: cmd.type_id,
            type_version: cmd.type_version,
            network_id: cmd.network_id,
            vlan: cmd.vlan,
            port_security_enabled: cmd.port_security_enabled,
            project_id: project_id.clone(),
            tenant_id: project_id.clone(),
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            revision_number: 1,
        };
        let (body, admin_body) = render(&doc, &Map::new())?;
        // ON CONFLICT DO NOTHING, not a caught unique violation: a failed statement aborts a
        // PostgreSQL transaction.
        let done = sqlx::query(
            "INSERT INTO vsi_types (id, project_id, name, network_id, type_id, type_version, \
             created_at, body, admin_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT DO NOTHING",
        )
        .bind(doc.id.as_str())
        .bind(project_id.as_str())
        .bind(doc.name.as_str())
        .bind(doc.network_id.as_str())
        .bind(i64::from(doc.type_id))
        .bind(i64::from(doc.type_version))
        .bind(stamp.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(ApiError::conflict(
                Conflict::DuplicateVsiType,
                format!(
                    "VSI type {} version {} already exists.",
                    doc.type_id, doc.type_version
                ),
            ));
        }
        answer(
            tx,
            "vsi_type",
            &doc.id,
            Operation::Create,
            &project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Updates a VSI type (admin only); its profile only while no association uses it.
    pub async fn update_vsi_type(
        &self,
        ctx: &AuthContext,
        id: &str,
        cmd: UpdateVsiType,
    ) -> Result<String, ApiError> {
        ctx.require_admin("update_vsi_type")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let stored = visible_row(tx.conn(), &VSI_TYPES, ctx, id, lock).await?;
        let (mut doc, _): (VsiTypeDoc, Value) = stored.parse()?;
        if cmd.changes_profile() && type_in_use(&mut tx, id).await? {
            return Err(in_use(id, "change its profile"));
        }
        if let Some(network_id) = cmd.network_id {
            let lock = tx.lock(Lock::Share);
            visible_row(tx.conn(), &NETWORKS, ctx, &network_id, lock).await?;
            doc.network_id = network_id;
        }
        doc.name = cmd.name.unwrap_or(doc.name);
        doc.description = cmd.description.unwrap_or(doc.description);
        doc.vlan = cmd.vlan.unwrap_or(doc.vlan);
        doc.port_security_enabled = cmd
            .port_security_enabled
            .unwrap_or(doc.port_security_enabled);
        doc.revision_number += 1;
        doc.updated_at = now();
        let (body, admin_body) = render(&doc, &Map::new())?;
        sqlx::query(
            "UPDATE vsi_types SET name = $1, network_id = $2, body = $3, admin_body = $4 \
             WHERE id = $5",
        )
        .bind(doc.name.as_str())
        .bind(doc.network_id.as_str())
        .bind(body.as_str())
        .bind(admin_body.as_str())
        .bind(id)
        .execute(tx.conn())
        .await?;
        answer(
            tx,
            "vsi_type",
            id,
            Operation::Update,
            &doc.project_id,
            &body,
            &admin_body,
            ctx,
        )
        .await
    }

    /// Deletes a VSI type (admin only) that no live association uses.
    pub async fn delete_vsi_type(&self, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
        ctx.require_admin("delete_vsi_type")?;
        let mut tx = self.store.write().await?;
        let lock = tx.lock(Lock::Update);
        let stored = visible_row(tx.conn(), &VSI_TYPES, ctx, id, lock).await?;
        if type_in_use(&mut tx, id).await? {
            return Err(in_use(id, "be deleted"));
        }
        delete_row(tx.conn(), &VSI_TYPES, id).await?;
        record(
            &mut tx,
            "vsi_type",
            id,
            Operation::Delete,
            &stored.project_id,
            &stored.body,
            &stored.admin_body,
        );
        tx.commit().await?;
        Ok(())
    }

    /// Decides a bridge's VDP request and records the outcome in the same transaction;
    /// answers the decision (`docs/vsi.md`).
    pub async fn vdp_decide(&self, cmd: Decide) -> Result<String, ApiError> {
        let mut tx = self.store.write().await?;
        lock_port(&mut tx, &cmd.bridge, &cmd.port).await?;
        let existing = match &cmd.vsi_id {
            Some(vsi_id) => load_association(&mut tx, &cmd.bridge, vsi_id).await?,
            None => None,
        };
        let request = match cmd.request {
            Ok(request) => request,
            Err(rejection) => return refuse(tx, existing, &rejection).await,
        };
        if cmd.mode == Mode::Deassociate {
            // Always accepted: the station is going whatever the controller thinks.
            let filters = match &existing {
                Some(stored) => fill_from(&request.filters, &stored.doc.filters),
                None => request.filters.clone(),
            };
            let Some(stored) = existing else {
                return Ok(accepted(&filters, None));
            };
            if stored.doc.port != cmd.port {
                // Seed 000's migration between ports of one bridge: the target port's
                // (pre-)association already moved the record; the source's De-Associate ends
                // the VSI there, not the record.
                tracing::info!(
                    bridge = cmd.bridge,
                    port = cmd.port,
                    recorded = stored.doc.port,
                    vsi = stored.doc.vsi_id,
                    "De-Associate from a port the VSI has left: the record stays"
                );
                return Ok(accepted(&filters, Some(&stored.doc)));
            }
            let doc = deassociate(&mut tx, stored, "station de-associated").await?;
            tx.commit().await?;
            return Ok(accepted(&filters, Some(&doc)));
        }
        let Some(vsi_type) = find_type(&mut tx, request.type_id, request.type_version).await?
        else {
            let rejection = reject(
                VdpError::OtherFailure,
                format!(
                    "no VSI type {} version {}",
                    request.type_id, request.type_version
                ),
            );
            return refuse(tx, existing, &rejection).await;
        };
        if let Some(vsi_id) = &cmd.vsi_id
            && let Some(rejection) = port_mismatch(&mut tx, vsi_id, &vsi_type, &request).await?
        {
            return refuse(tx, existing, &rejection).await;
        }
        let own = existing.as_ref().map(|s| s.doc.id.clone());
        let vlan = match self
            .choose_vlan(
                &mut tx,
                &cmd.bridge,
                &cmd.port,
                own.as_deref(),
                &vsi_type,
                &request,
            )
            .await?
        {
            Ok(vlan) => vlan,
            Err(rejection) => return refuse(tx, existing, &rejection).await,
        };
        let filters: Vec<Filter> = request
            .filters
            .iter()
            .map(|f| Filter { vlan, ..f.clone() })
            .collect();
        let stamp = now();
        let state = cmd.mode.state();
        let vsi_id = cmd.vsi_id.unwrap_or_default();
        let fresh = AssociationDoc {
            id: new_id(),
            vsi_id: vsi_id.clone(),
            id_format: request.id_format,
            type_id: request.type_id,
            type_version: request.type_version,
            vsi_type_id: vsi_type.id.clone(),
            network_id: vsi_type.network_id.clone(),
            manager_id: request.manager_id,
            filters: filters.clone(),
            bridge: cmd.bridge.clone(),
            port: cmd.port.clone(),
            state,
            project_id: vsi_type.project_id.clone(),
            tenant_id: vsi_type.project_id.clone(),
            created_at: stamp.clone(),
            updated_at: stamp,
            revision_number: 1,
        };
        let existing = match existing {
            Some(stored) => Some(stored),
            None if insert_association(&mut tx, &fresh).await? => None,
            // A concurrent decide for the same VSI on another port of this bridge committed
            // first: continue as an update of its record.
            None => Some(
                load_association(&mut tx, &cmd.bridge, &vsi_id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Internal(format!("association of {vsi_id} vanished"))
                    })?,
            ),
        };
        let doc = match existing {
            None => {
                let (body, admin_body) = render(&fresh, &Map::new())?;
                record(
                    &mut tx,
                    "vsi_association",
                    &fresh.id,
                    Operation::Create,
                    &fresh.project_id,
                    &body,
                    &admin_body,
                );
                fresh
            }
            Some(stored) => {
                let mut doc = stored.doc;
                let unchanged = AssociationDoc {
                    id: doc.id.clone(),
                    created_at: doc.created_at.clone(),
                    updated_at: doc.updated_at.clone(),
                    revision_number: doc.revision_number,
                    ..fresh.clone()
                } == doc;
                if unchanged {
                    // A keep-alive: the same answer, and nothing to record.
                    tx.commit().await?;
                    return Ok(accepted(&filters, Some(&doc)));
                }
                doc = AssociationDoc {
                    id: doc.id,
                    created_at: doc.created_at,
                    revision_number: doc.revision_number + 1,
                    ..fresh
                };
                save_association(&mut tx, &doc).await?;
                doc
            }
        };
        hold_vlans(&mut tx, &doc, vlan).await?;
        if state == State::Associated {
            // Seed 000's migration: the new bridge's Associate ends the old bridge's record.
            finish_migration(&mut tx, &doc).await?;
        }
        tx.commit().await?;
        Ok(accepted(&filters, Some(&doc)))
    }

    /// Records a de-association the bridge made on its own; answers the association, if known.
    pub async fn vdp_state(&self, cmd: StateReport) -> Result<String, ApiError> {
        let mut tx = self.store.write().await?;
        let Some(stored) = load_association(&mut tx, &cmd.bridge, &cmd.vsi_id).await? else {
            return Ok(json!({"association": null}).to_string());
        };
        if stored.doc.port != cmd.port {
            // The VSI moved to another port of this bridge since: what ended is the old
            // port's, not the record's.
            tracing::info!(
                bridge = cmd.bridge,
                port = cmd.port,
                recorded = stored.doc.port,
                vsi = cmd.vsi_id,
                "VDP state report from a port the VSI has left: the record stays"
            );
            return Ok(json!({"association": stored.doc}).to_string());
        }
        let doc = deassociate(&mut tx, stored, &cmd.reason).await?;
        tx.commit().await?;
        Ok(json!({"association": doc}).to_string())
    }

    /// The VLAN a VSI of `vsi_type` gets on this bridge port (see the module docs), or why
    /// there is none.
    async fn choose_vlan(
        &self,
        tx: &mut WriteTx<'_>,
        bridge: &str,
        port: &str,
        own: Option<&str>,
        vsi_type: &VsiTypeDoc,
        request: &VsiRequest,
    ) -> Result<Result<u16, Rejection>, ApiError> {
        let mut asked: Vec<u16> = request
            .filters
            .iter()
            .map(|f| f.vlan)
            .filter(|v| *v != 0)
            .collect();
        asked.sort_unstable();
        asked.dedup();
        if asked.len() > 1 {
            // One VSI, one type, one network: one VLAN.
            return Ok(Err(reject(
                VdpError::InvalidVidGroupMac,
                format!("filters ask for several VLANs ({asked:?}) for one network"),
            )));
        }
        let asked = asked.first().copied();
        let rows = sqlx::query(
            "SELECT vlan, network_id, association_id FROM vsi_vlans \
             WHERE bridge = $1 AND port = $2",
        )
        .bind(bridge)
        .bind(port)
        .fetch_all(tx.conn())
        .await?;
        let mut ours = Vec::new();
        let mut blocked = std::collections::BTreeSet::new();
        for row in rows {
            let vlan = u16::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            let network: String = row.try_get(1)?;
            let association: String = row.try_get(2)?;
            if network == vsi_type.network_id {
                ours.push(vlan);
            } else if Some(association.as_str()) != own {
                blocked.insert(vlan);
            }
        }
        let where_ = format!("{bridge} port {port}");
        if let Some(fixed) = self.profile_vlan(tx, vsi_type).await? {
            if blocked.contains(&fixed) {
                return Ok(Err(reject(
                    VdpError::InsufficientResources,
                    format!("VLAN {fixed} already carries another network on {where_}"),
                )));
            }
            return Ok(match asked {
                Some(vid) if vid != fixed => Err(reject(
                    VdpError::InvalidVidGroupMac,
                    format!(
                        "VID {vid}: VSI type {} gives VLAN {fixed}",
                        vsi_type.type_id
                    ),
                )),
                _ => Ok(fixed),
            });
        }
        ours.sort_unstable();
        if let Some(&shared) = ours.first() {
            return Ok(match asked {
                Some(vid) if !ours.contains(&vid) => Err(reject(
                    VdpError::InvalidVidGroupMac,
                    format!("VID {vid}: the network has VLAN {shared} on {where_}"),
                )),
                Some(vid) => Ok(vid),
                None => Ok(shared),
            });
        }
        let (min, max) = self.vsi_vlans;
        if let Some(vid) = asked {
            return Ok(if blocked.contains(&vid) {
                Err(reject(
                    VdpError::InvalidVidGroupMac,
                    format!("VID {vid} carries another network on {where_}"),
                ))
            } else {
                Ok(vid)
            });
        }
        Ok((min..=max).find(|v| !blocked.contains(v)).ok_or_else(|| {
            reject(
                VdpError::InsufficientResources,
                format!("no free VLAN in {min}-{max} on {where_}"),
            )
        }))
    }

    /// The VLAN the profile itself names: the type's, else its network's VLAN segment id.
    async fn profile_vlan(
        &self,
        tx: &mut WriteTx<'_>,
        vsi_type: &VsiTypeDoc,
    ) -> Result<Option<u16>, ApiError> {
        if let Some(vlan) = vsi_type.vlan {
            return Ok(Some(vlan));
        }
        let Some(network) = row(tx.conn(), &NETWORKS, &vsi_type.network_id, "").await? else {
            return Ok(None);
        };
        let (_, admin): (NetworkDoc, NetworkAdmin) = network.parse()?;
        // VLAN 1 is a valid provider segment but no VDP station accepts it: then the port
        // picks one and the bridge translates.
        Ok(admin
            .segments()
            .iter()
            .filter(|s| s.network_type == "vlan")
            .find_map(|s| s.segmentation_id)
            .and_then(|id| u16::try_from(id).ok())
            .filter(|id| (2..=4094).contains(id)))
    }
}

/// When the VSI is a Neutron port (its id is the port's, as `weft lab` and Nova's 802.1Qbg
/// virtual ports make it), what the request disagrees with the port on: the type's network
/// must be the port's, and every filter's MAC the port's MAC.
async fn port_mismatch(
    tx: &mut WriteTx<'_>,
    vsi_id: &str,
    vsi_type: &VsiTypeDoc,
    request: &VsiRequest,
) -> Result<Option<Rejection>, ApiError> {
    let Some(stored) = row(tx.conn(), &PORTS, vsi_id, "").await? else {
        return Ok(None);
    };
    let (port, _): (PortDoc, PortAdmin) = stored.parse()?;
    if port.network_id != vsi_type.network_id {
        return Ok(Some(reject(
            VdpError::OtherFailure,
            format!(
                "VSI {vsi_id} is a port of network {}; VSI type {} version {} is network {}'s",
                port.network_id, vsi_type.type_id, vsi_type.type_version, vsi_type.network_id
            ),
        )));
    }
    let stranger = request
        .filters
        .iter()
        .filter_map(|f| f.mac_address.as_deref())
        .find(|mac| !mac.eq_ignore_ascii_case(&port.mac_address));
    Ok(stranger.map(|mac| {
        reject(
            VdpError::InvalidVidGroupMac,
            format!("MAC {mac} is not port {vsi_id}'s ({})", port.mac_address),
        )
    }))
}

/// Live associations (not `deassociated`) use the type.
async fn type_in_use(tx: &mut WriteTx<'_>, id: &str) -> Result<bool, ApiError> {
    let row =
        sqlx::query("SELECT COUNT(*) FROM vsi_associations WHERE vsi_type_id = $1 AND state <> $2")
            .bind(id)
            .bind(State::Deassociated.as_str())
            .fetch_one(tx.conn())
            .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

fn in_use(id: &str, what: &str) -> ApiError {
    ApiError::conflict(
        Conflict::VsiTypeInUse,
        format!("VSI type {id} is in use by associations and cannot {what}."),
    )
}

/// Takes the bridge port's row for the rest of the transaction.
async fn lock_port(tx: &mut WriteTx<'_>, bridge: &str, port: &str) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO vsi_ports (bridge, port) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(bridge)
        .bind(port)
        .execute(tx.conn())
        .await?;
    let lock = tx.lock(Lock::Update);
    let sql = format!("SELECT bridge FROM vsi_ports WHERE bridge = $1 AND port = $2{lock}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bridge)
        .bind(port)
        .fetch_one(tx.conn())
        .await?;
    Ok(())
}

async fn find_type(
    tx: &mut WriteTx<'_>,
    type_id: u32,
    type_version: u8,
) -> Result<Option<VsiTypeDoc>, ApiError> {
    // Shared: the type must not be deleted before this association is in.
    let lock = tx.lock(Lock::Share);
    let sql = format!("SELECT body FROM vsi_types WHERE type_id = $1 AND type_version = $2{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(type_id))
        .bind(i64::from(type_version))
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let body: String = row.try_get(0)?;
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|err| ApiError::Internal(format!("stored VSI type unreadable: {err}")))
}

async fn load_association(
    tx: &mut WriteTx<'_>,
    bridge: &str,
    vsi_id: &str,
) -> Result<Option<Stored>, ApiError> {
    let lock = tx.lock(Lock::Update);
    let sql = format!("SELECT body FROM vsi_associations WHERE bridge = $1 AND vsi_id = $2{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bridge)
        .bind(vsi_id)
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let body: String = row.try_get(0)?;
    let doc = serde_json::from_str(&body)
        .map_err(|err| ApiError::Internal(format!("stored association unreadable: {err}")))?;
    Ok(Some(Stored { doc }))
}

/// Inserts a new record; false when the (bridge, VSI) record already exists.
async fn insert_association(tx: &mut WriteTx<'_>, doc: &AssociationDoc) -> Result<bool, ApiError> {
    let (body, admin_body) = render(doc, &Map::new())?;
    let done = sqlx::query(
        "INSERT INTO vsi_associations (id, project_id, name, vsi_id, vsi_type_id, bridge, port, \
         state, created_at, body, admin_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11) ON CONFLICT DO NOTHING",
    )
    .bind(doc.id.as_str())
    .bind(doc.project_id.as_str())
    .bind(doc.vsi_id.as_str())
    .bind(doc.vsi_id.as_str())
    .bind(doc.vsi_type_id.as_str())
    .bind(doc.bridge.as_str())
    .bind(doc.port.as_str())
    .bind(doc.state.as_str())
    .bind(doc.created_at.as_str())
    .bind(body.as_str())
    .bind(admin_body.as_str())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Rewrites a record and notes the revision.
async fn save_association(tx: &mut WriteTx<'_>, doc: &AssociationDoc) -> Result<(), ApiError> {
    let (body, admin_body) = render(doc, &Map::new())?;
    sqlx::query(
        "UPDATE vsi_associations SET project_id = $1, vsi_type_id = $2, port = $3, state = $4, \
         body = $5, admin_body = $6 WHERE id = $7",
    )
    .bind(doc.project_id.as_str())
    .bind(doc.vsi_type_id.as_str())
    .bind(doc.port.as_str())
    .bind(doc.state.as_str())
    .bind(body.as_str())
    .bind(admin_body.as_str())
    .bind(doc.id.as_str())
    .execute(tx.conn())
    .await?;
    record(
        tx,
        "vsi_association",
        &doc.id,
        Operation::Update,
        &doc.project_id,
        &body,
        &admin_body,
    );
    Ok(())
}

/// Makes `vlan` the one VLAN the association holds, on its current port.
async fn hold_vlans(tx: &mut WriteTx<'_>, doc: &AssociationDoc, vlan: u16) -> Result<(), ApiError> {
    release_vlans(tx, &doc.id).await?;
    sqlx::query(
        "INSERT INTO vsi_vlans (bridge, port, vlan, association_id, network_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(doc.bridge.as_str())
    .bind(doc.port.as_str())
    .bind(i64::from(vlan))
    .bind(doc.id.as_str())
    .bind(doc.network_id.as_str())
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn release_vlans(tx: &mut WriteTx<'_>, association: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM vsi_vlans WHERE association_id = $1")
        .bind(association)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Marks a record `deassociated` (a no-op when it already is) and frees its VLAN.
async fn deassociate(
    tx: &mut WriteTx<'_>,
    stored: Stored,
    reason: &str,
) -> Result<AssociationDoc, ApiError> {
    let mut doc = stored.doc;
    release_vlans(tx, &doc.id).await?;
    if doc.state == State::Deassociated {
        return Ok(doc);
    }
    tracing::info!(
        bridge = doc.bridge,
        port = doc.port,
        vsi = doc.vsi_id,
        reason,
        "VSI de-associated"
    );
    doc.state = State::Deassociated;
    doc.revision_number += 1;
    doc.updated_at = now();
    save_association(tx, &doc).await?;
    Ok(doc)
}

/// The rejection's answer; a live record of the VSI on this bridge ends, since the bridge
/// sends the station a De-Associate with the error code.
async fn refuse(
    mut tx: WriteTx<'_>,
    existing: Option<Stored>,
    rejection: &Rejection,
) -> Result<String, ApiError> {
    if let Some(stored) = existing {
        deassociate(&mut tx, stored, &rejection.reason).await?;
        tx.commit().await?;
    }
    Ok(rejected(rejection))
}

/// Ends the VSI's live records on other bridges once it is associated on `doc.bridge`.
async fn finish_migration(tx: &mut WriteTx<'_>, doc: &AssociationDoc) -> Result<(), ApiError> {
    let lock = tx.lock(Lock::Update);
    let sql = format!(
        "SELECT body FROM vsi_associations WHERE vsi_id = $1 AND bridge <> $2 AND state <> $3 \
         ORDER BY bridge{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(doc.vsi_id.as_str())
        .bind(doc.bridge.as_str())
        .bind(State::Deassociated.as_str())
        .fetch_all(tx.conn())
        .await?;
    for row in rows {
        let body: String = row.try_get(0)?;
        let old: AssociationDoc = serde_json::from_str(&body)
            .map_err(|err| ApiError::Internal(format!("stored association unreadable: {err}")))?;
        let reason = format!("migrated to {} port {}", doc.bridge, doc.port);
        deassociate(tx, Stored { doc: old }, &reason).await?;
    }
    Ok(())
}

/// The request's filters with each VID 0 replaced by the VLAN recorded for the same MAC and
/// group (what a De-Associate is answered with).
fn fill_from(asked: &[Filter], recorded: &[Filter]) -> Vec<Filter> {
    asked
        .iter()
        .map(|f| {
            let vlan = if f.vlan == 0 {
                recorded
                    .iter()
                    .find(|r| r.mac_address == f.mac_address && r.group_id == f.group_id)
                    .map_or(0, |r| r.vlan)
            } else {
                f.vlan
            };
            Filter { vlan, ..f.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn decide(request: Value) -> Result<Decide, ApiError> {
        Decide::parse(body(
            json!({"bridge": "tor1", "port": "sw1p1", "request": request}),
        ))
    }

    fn request(filters: Value) -> Value {
        json!({"mode": "associate", "type_id": 100, "type_version": 1, "id_format": 5,
               "vsi_id": "00000000-0000-0000-0000-00000000BEEF", "manager_id": "evmgr1",
               "filters": filters})
    }

    #[test]
    fn vsi_types_are_checked() {
        let create = |v: Value| CreateVsiType::parse(body(json!({"vsi_type": v})));
        let ok =
            create(json!({"type_id": 16_777_215, "type_version": 255, "network_id": "n"})).unwrap();
        assert_eq!(
            (ok.type_id, ok.type_version, ok.vlan),
            (16_777_215, 255, None)
        );
        assert!(ok.port_security_enabled);
        for bad in [
            json!({"type_id": 16_777_216, "type_version": 1, "network_id": "n"}),
            json!({"type_id": -1, "type_version": 1, "network_id": "n"}),
            json!({"type_id": 1, "type_version": 256, "network_id": "n"}),
            json!({"type_id": 1, "type_version": 1}),
            json!({"type_version": 1, "network_id": "n"}),
            json!({"type_id": 1, "type_version": 1, "network_id": "n", "vlan": 1}),
            json!({"type_id": 1, "type_version": 1, "network_id": "n", "vlan": 4095}),
            json!({"type_id": 1, "type_version": 1, "network_id": "n", "colour": "red"}),
        ] {
            assert!(create(bad.clone()).is_err(), "{bad}");
        }
        let null_vlan =
            create(json!({"type_id": 1, "type_version": 1, "network_id": "n", "vlan": null}))
                .unwrap();
        assert_eq!(null_vlan.vlan, None);
        let update = |v: Value| UpdateVsiType::parse(body(json!({"vsi_type": v})));
        assert_eq!(update(json!({"vlan": null})).unwrap().vlan, Some(None));
        assert_eq!(update(json!({"vlan": 7})).unwrap().vlan, Some(Some(7)));
        assert!(!update(json!({"name": "x"})).unwrap().changes_profile());
        assert!(update(json!({"type_id": 3})).is_err());
    }

    #[test]
    fn vsi_ids_are_canonical_whatever_the_spelling() {
        let canonical = Some("00000000-0000-0000-0000-00000000beef".to_owned());
        assert_eq!(
            canonical_vsi_id("00000000-0000-0000-0000-00000000BEEF"),
            canonical
        );
        assert_eq!(
            canonical_vsi_id("0000000000000000000000000000beef"),
            canonical
        );
        assert_eq!(canonical_vsi_id("beef"), None);
        assert_eq!(
            canonical_vsi_id("urn:uuid:00000000-0000-0000-0000-00000000beef"),
            None
        );
    }

    #[test]
    fn requests_parse_or_are_rejected_with_the_right_code() {
        let ok = decide(request(
            json!([{"vlan": 0, "mac_address": "52-54-00-8E-AA-11"}]),
        ))
        .unwrap();
        let parsed = ok.request.unwrap();
        assert_eq!(
            parsed.filters[0].mac_address.as_deref(),
            Some("52:54:00:8e:aa:11")
        );
        assert_eq!(
            ok.vsi_id.as_deref(),
            Some("00000000-0000-0000-0000-00000000beef")
        );
        let code = |filters: Value| decide(request(filters)).unwrap().request.unwrap_err().error;
        assert_eq!(code(json!([])), VdpError::InvalidFormat);
        assert_eq!(code(json!([{"vlan": 4096}])), VdpError::InvalidFormat);
        assert_eq!(code(json!([{"vlan": 1}])), VdpError::InvalidVidGroupMac);
        assert_eq!(code(json!([{"vlan": 4095}])), VdpError::InvalidVidGroupMac);
        for mac in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "33:33:00:00:00:01",
            "00:00:00:00:00:00",
        ] {
            assert_eq!(
                code(json!([{"vlan": 0, "mac_address": mac}])),
                VdpError::InvalidVidGroupMac,
                "{mac}"
            );
        }
        assert_eq!(
            code(json!([{"vlan": 0, "mac_address": "nope"}])),
            VdpError::InvalidFormat
        );
        assert_eq!(
            code(json!([{"vlan": 0, "mac_address": "52:54:00:00:00:01"}, {"vlan": 0}])),
            VdpError::InvalidFormat
        );
        // IPv4 and MAC VSI ids have a fixed layout.
        let mut ipv4 = request(json!([{"vlan": 0}]));
        ipv4["id_format"] = json!(1);
        let err = decide(ipv4.clone()).unwrap().request.unwrap_err();
        assert_eq!(err.error, VdpError::InvalidFormat);
        ipv4["vsi_id"] = json!("00000000000000000000ffffc0000201");
        assert!(decide(ipv4).unwrap().request.is_ok());
        // Shapes that are not the documented JSON are the agent's bug: 400.
        assert!(decide(json!({"mode": "associate"})).is_err());
        let mut bad_mode = request(json!([{"vlan": 0}]));
        bad_mode["mode"] = json!("dance");
        assert!(decide(bad_mode).is_err());
        let mut stringly = request(json!([{"vlan": 0}]));
        stringly["type_id"] = json!("hundred");
        assert!(decide(stringly).is_err());
        assert!(Decide::parse(body(json!({"port": "p", "request": request(json!([]))}))).is_err());
    }

    #[test]
    fn deassociate_answers_fill_in_the_recorded_vlan() {
        let mac = Some("52:54:00:8e:aa:11".to_owned());
        let asked = [Filter {
            vlan: 0,
            mac_address: mac.clone(),
            group_id: None,
        }];
        let recorded = [Filter {
            vlan: 10,
            mac_address: mac,
            group_id: None,
        }];
        assert_eq!(fill_from(&asked, &recorded)[0].vlan, 10);
        assert_eq!(fill_from(&asked, &[])[0].vlan, 0);
    }

    #[test]
    fn state_reports_only_deassociate() {
        let report = |state: &str| {
            StateReport::parse(body(json!({"bridge": "tor1", "port": "p", "state": state,
                "vsi_id": "0000000000000000000000000000beef", "reason": "keep-alive timeout"})))
        };
        assert_eq!(
            report("deassociated").unwrap().vsi_id,
            "00000000-0000-0000-0000-00000000beef"
        );
        assert!(report("associated").is_err());
    }
}
