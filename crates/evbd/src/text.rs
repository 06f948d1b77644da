//! VSIs as JSON and text: the shapes `docs/vsi.md` gives the controller's API, which the
//! control socket and the status dump use too, so one VSI reads the same everywhere.

use evb::vdp::VsiSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wire::{
    MacAddr,
    vdp::{Filters, Id16, MAX_TYPE_ID, Mode, Vlan, VsiIdFormat},
};

/// A JSON field that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// One filter entry as JSON: `{"vlan": 10, "mac_address": "52:54:00:..", "group_id": null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterJson {
    /// The VID (0: the bridge assigns one).
    pub vlan: u16,
    /// The MAC address, for the MAC formats.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// The group ID, for the group formats.
    #[serde(default)]
    pub group_id: Option<u32>,
}

/// The filters as JSON entries.
pub fn filters_to_json(filters: &Filters) -> Vec<FilterJson> {
    (0..filters.len())
        .filter_map(|index| filters.entry(index))
        .map(|(group, mac, vlan)| FilterJson {
            vlan: vlan.vid,
            mac_address: mac.map(|mac| mac.to_string()),
            group_id: group,
        })
        .collect()
}

/// Filters from JSON entries: the format follows which fields the entries have (all alike).
pub fn filters_from_json(entries: &[FilterJson]) -> Result<Filters, FieldError> {
    let mac = |entry: &FilterJson| -> Result<Option<MacAddr>, FieldError> {
        entry
            .mac_address
            .as_deref()
            .map(|text| {
                text.parse()
                    .map_err(|_| invalid("filters", format!("{text:?} is not a MAC address")))
            })
            .transpose()
    };
    let first = entries
        .first()
        .ok_or_else(|| invalid("filters", "at least one entry"))?;
    let shape = (first.mac_address.is_some(), first.group_id.is_some());
    if entries
        .iter()
        .any(|e| (e.mac_address.is_some(), e.group_id.is_some()) != shape)
    {
        return Err(invalid("filters", "every entry needs the same fields"));
    }
    if entries.iter().any(|e| e.vlan > 4095) {
        return Err(invalid("filters", "a vlan is 0-4095"));
    }
    let vlan = |entry: &FilterJson| Vlan::new(entry.vlan);
    Ok(match shape {
        (false, false) => Filters::Vid(entries.iter().map(vlan).collect()),
        (true, false) => Filters::MacVid(
            entries
                .iter()
                .map(|e| Ok((mac(e)?.unwrap_or(MacAddr::ZERO), vlan(e))))
                .collect::<Result<_, FieldError>>()?,
        ),
        (false, true) => Filters::GroupVid(
            entries
                .iter()
                .map(|e| (e.group_id.unwrap_or(0), vlan(e)))
                .collect(),
        ),
        (true, true) => Filters::GroupMacVid(
            entries
                .iter()
                .map(|e| {
                    Ok((
                        e.group_id.unwrap_or(0),
                        mac(e)?.unwrap_or(MacAddr::ZERO),
                        vlan(e),
                    ))
                })
                .collect::<Result<_, FieldError>>()?,
        ),
    })
}

/// A VSI ID as text: a UUID with dashes for format 5, 32 hex digits otherwise.
pub fn vsi_id_text(format: VsiIdFormat, id: &Id16) -> String {
    if format == VsiIdFormat::UUID {
        id.display(format).to_string()
    } else {
        hex(&id.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 16 bytes from 32 hex digits (dashes ignored), `None` for anything else.
fn from_hex(text: &str) -> Option<Id16> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut id = [0; 16];
    for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(Id16(id))
}

/// A VSI ID (format UUID) from a UUID or 32 hex digits.
pub fn vsi_id_from_text(text: &str) -> Result<Id16, FieldError> {
    from_hex(text).ok_or_else(|| invalid("vsi_id", format!("{text:?} is not a UUID")))
}

/// A VSI Manager ID as text: its name when it is one, hex otherwise (as [`Id16`] shows it).
pub fn manager_id_text(id: &Id16) -> String {
    id.to_string()
}

/// A VSI Manager ID from 32 hex digits, or a name of at most 16 bytes (vdptool's `mgrid2=`).
pub fn manager_id_from_text(text: &str) -> Result<Id16, FieldError> {
    if let Some(id) = from_hex(text) {
        return Ok(id);
    }
    if text.is_empty() {
        return Err(invalid("manager_id", "empty"));
    }
    Id16::from_name(text).ok_or_else(|| invalid("manager_id", "at most 16 bytes"))
}

/// The API's name of a mode: `associate`, `preassociate`, `preassociate_rr`, `deassociate`.
pub const fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::PreAssociate => "preassociate",
        Mode::PreAssociateWithRr => "preassociate_rr",
        Mode::Associate => "associate",
        Mode::Deassociate => "deassociate",
    }
}

/// The state a VSI bound in `mode` is in, as the controller names it.
pub const fn state_name(mode: Mode) -> &'static str {
    match mode {
        Mode::PreAssociate => "preassociated",
        Mode::PreAssociateWithRr => "preassociated_rr",
        Mode::Associate => "associated",
        Mode::Deassociate => "deassociated",
    }
}

/// A mode from its API name.
pub fn mode_from_name(name: &str) -> Option<Mode> {
    Mode::ALL.into_iter().find(|&mode| mode_name(mode) == name)
}

/// The string field `field` of a JSON request.
pub fn str_field<'a>(request: &'a Value, field: &str) -> Result<&'a str, String> {
    request
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("\"{field}\": a string"))
}

fn num_field(request: &Value, field: &str) -> Result<u64, String> {
    request
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("\"{field}\": a number"))
}

/// A station's VSI from a control request: `manager_id`, `type_id`, `type_version`, `vsi_id`
/// (a UUID), `filters`, and optionally `migrate_to` and `migrate_from`.
pub fn vsi_spec(request: &Value) -> Result<VsiSpec, String> {
    let type_id = u32::try_from(num_field(request, "type_id")?)
        .ok()
        .filter(|&t| t <= MAX_TYPE_ID)
        .ok_or("\"type_id\": 0-16777215")?;
    let type_version =
        u8::try_from(num_field(request, "type_version")?).map_err(|_| "\"type_version\": 0-255")?;
    let filters: Vec<FilterJson> = serde_json::from_value(
        request
            .get("filters")
            .cloned()
            .ok_or("\"filters\": a list")?,
    )
    .map_err(|e| format!("\"filters\": {e}"))?;
    let flag = |name: &str| request.get(name).and_then(Value::as_bool).unwrap_or(false);
    Ok(VsiSpec {
        manager_id: manager_id_from_text(str_field(request, "manager_id")?)
            .map_err(|e| e.to_string())?,
        type_id,
        type_version,
        id_format: VsiIdFormat::UUID,
        id: vsi_id_from_text(str_field(request, "vsi_id")?).map_err(|e| e.to_string())?,
        filters: filters_from_json(&filters).map_err(|e| e.to_string())?,
        migrate_to: flag("migrate_to"),
        migrate_from: flag("migrate_from"),
    })
}

/// The control request that asks for `spec` in `mode`: what [`vsi_spec`] reads, with `op`.
pub fn vsi_request(mode: Mode, spec: &VsiSpec) -> Value {
    json!({
        "op": mode_name(mode),
        "manager_id": manager_id_text(&spec.manager_id),
        "type_id": spec.type_id,
        "type_version": spec.type_version,
        "vsi_id": vsi_id_text(spec.id_format, &spec.id),
        "filters": filters_to_json(&spec.filters),
        "migrate_to": spec.migrate_to,
        "migrate_from": spec.migrate_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ids_read_and_print() {
        let id = vsi_id_from_text("aaaaaaaa-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            vsi_id_text(VsiIdFormat::UUID, &id),
            "aaaaaaaa-0000-4000-8000-000000000001"
        );
        assert_eq!(
            vsi_id_from_text("aaaaaaaa000040008000000000000001").unwrap(),
            id
        );
        assert_eq!(
            vsi_id_text(VsiIdFormat::LOCAL, &id),
            "aaaaaaaa000040008000000000000001"
        );
        assert!(vsi_id_from_text("aaaa").is_err());
        assert!(vsi_id_from_text("zzaaaaaa000040008000000000000001").is_err());
        let manager = manager_id_from_text("evmgr1").unwrap();
        assert_eq!(manager_id_text(&manager), "evmgr1");
        assert!(manager_id_from_text("").is_err());
        assert!(manager_id_from_text("seventeen-bytes!!").is_err());
        assert_eq!(
            mode_from_name("preassociate_rr"),
            Some(Mode::PreAssociateWithRr)
        );
        assert_eq!(mode_from_name("assoc"), None);
    }

    #[test]
    fn test_filters_round_trip() {
        let json = vec![FilterJson {
            vlan: 0,
            mac_address: Some("52:54:00:8e:aa:11".into()),
            group_id: None,
        }];
        let filters = filters_from_json(&json).unwrap();
        assert!(matches!(filters, Filters::MacVid(_)));
        assert_eq!(filters_to_json(&filters), json);
        let vids = filters_from_json(&[FilterJson {
            vlan: 7,
            ..FilterJson::default()
        }])
        .unwrap();
        assert_eq!(vids, Filters::Vid(vec![Vlan::new(7)]));
        assert!(filters_from_json(&[]).is_err());
        let mixed = [
            json[0].clone(),
            FilterJson {
                vlan: 1,
                ..FilterJson::default()
            },
        ];
        assert!(filters_from_json(&mixed).is_err());
        let bad_mac = [FilterJson {
            vlan: 1,
            mac_address: Some("nope".into()),
            group_id: None,
        }];
        assert!(filters_from_json(&bad_mac).is_err());
    }

    #[test]
    fn test_control_requests_become_vsis() {
        let spec = vsi_spec(&json!({
            "op": "associate", "manager_id": "evmgr1", "type_id": 5, "type_version": 4,
            "vsi_id": "aaaaaaaa-0000-4000-8000-000000000001",
            "filters": [{"vlan": 0, "mac_address": "52:54:00:8e:aa:11"}],
            "migrate_to": true,
        }))
        .unwrap();
        assert_eq!(spec.type_id, 5);
        assert!(spec.migrate_to && !spec.migrate_from);
        assert_eq!(
            vsi_id_text(spec.id_format, &spec.id),
            "aaaaaaaa-0000-4000-8000-000000000001"
        );
        for bad in [
            json!({"manager_id": "m", "type_id": 16_777_216, "type_version": 1, "vsi_id": "aaaaaaaa-0000-4000-8000-000000000001", "filters": [{"vlan": 0}]}),
            json!({"manager_id": "m", "type_id": 1, "type_version": 256, "vsi_id": "aaaaaaaa-0000-4000-8000-000000000001", "filters": [{"vlan": 0}]}),
            json!({"manager_id": "m", "type_id": 1, "type_version": 1, "vsi_id": "nope", "filters": [{"vlan": 0}]}),
            json!({"manager_id": "m", "type_id": 1, "type_version": 1, "vsi_id": "aaaaaaaa-0000-4000-8000-000000000001"}),
            json!({"type_id": 1, "type_version": 1, "vsi_id": "aaaaaaaa-0000-4000-8000-000000000001", "filters": [{"vlan": 0}]}),
        ] {
            assert!(vsi_spec(&bad).is_err(), "{bad}");
        }
    }
}
