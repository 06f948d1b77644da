//! Reading a request body's attributes the way Neutron's attribute converters do: strict types
//! with the few coercions clients rely on (`"200"` for an integer, `"True"` for a boolean), an
//! error that names the attribute, and unknown attributes refused.

use core::{net::IpAddr, str::FromStr};

use ipnet::IpNet;
use serde_json::{Map, Value};
use wire::MacAddr;

use crate::error::ApiError;

/// The attributes of one resource in a request body, consumed one by one.
#[derive(Debug)]
pub struct Input {
    map: Map<String, Value>,
}

impl Input {
    /// Unwraps `{"<resource>": {...}}`; anything else is a 400.
    pub fn unwrap(mut body: Map<String, Value>, resource: &str) -> Result<Self, ApiError> {
        match body.remove(resource) {
            Some(Value::Object(map)) if body.is_empty() => Ok(Self { map }),
            Some(Value::Object(_)) => Err(ApiError::bad_request(format!(
                "Unrecognized attribute(s) '{}'",
                keys(&body)
            ))),
            Some(_) => Err(ApiError::bad_request(format!(
                "Invalid input for {resource}. Reason: expected an object."
            ))),
            None if body.contains_key(&format!("{resource}s")) => Err(ApiError::bad_request(
                format!("Bulk creation of {resource}s is not supported; send one {resource}."),
            )),
            None => Err(ApiError::bad_request(format!(
                "Resource body required: expected {{\"{resource}\": {{...}}}}"
            ))),
        }
    }

    /// Wraps an already unwrapped object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self { map }
    }

    /// True when the attribute was sent.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Takes an attribute as raw JSON.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// Takes a string attribute (at most `max` characters).
    pub fn string(&mut self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::String(text)) if text.chars().count() <= max => Ok(Some(text)),
            Some(Value::String(text)) => Err(invalid_value(
                key,
                &format!("'{text}' exceeds maximum length of {max}"),
            )),
            Some(other) => Err(invalid_value(
                key,
                &format!("{other} is not a valid string"),
            )),
        }
    }

    /// Takes a string attribute that may also be `null`.
    pub fn nullable_string(
        &mut self,
        key: &str,
        max: usize,
    ) -> Result<Option<Option<String>>, ApiError> {
        if matches!(self.map.get(key), Some(Value::Null)) {
            self.map.remove(key);
            return Ok(Some(None));
        }
        self.string(key, max).map(|v| v.map(Some))
    }

    /// Takes a boolean (JSON booleans, or the strings Neutron's converter accepts).
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(value) => parse_bool(&value).map(Some).ok_or_else(|| {
                invalid_value(key, &format!("'{value}' cannot be converted to boolean"))
            }),
        }
    }

    /// Takes an integer (a JSON number or a string of digits, as the CLI sends
    /// `provider:segmentation_id`); `null` counts as absent.
    pub fn integer(&mut self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid_value(key, &format!("'{n}' is not an integer"))),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid_value(key, &format!("'{text}' is not an integer"))),
            Some(other) => Err(invalid_value(key, &format!("'{other}' is not an integer"))),
        }
    }

    /// Takes a list of strings.
    pub fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(invalid_value(key, &format!("'{other}' is not a string"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(invalid_value(key, &format!("'{other}' is not a list"))),
        }
    }

    /// Takes a list of objects.
    pub fn object_list(&mut self, key: &str) -> Result<Option<Vec<Self>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => Ok(Self { map }),
                    other => Err(invalid_value(
                        key,
                        &format!("'{other}' is not a dictionary"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(invalid_value(key, &format!("'{other}' is not a list"))),
        }
    }

    /// Takes an object attribute (`binding:profile`).
    pub fn object(&mut self, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(Value::Null) => Ok(Some(Map::new())),
            Some(other) => Err(invalid_value(
                key,
                &format!("'{other}' is not a dictionary"),
            )),
        }
    }

    /// Takes a MAC address.
    pub fn mac(&mut self, key: &str) -> Result<Option<MacAddr>, ApiError> {
        match self.string(key, 64)? {
            None => Ok(None),
            Some(text) => parse_mac(&text)
                .map(Some)
                .ok_or_else(|| invalid_value(key, &format!("'{text}' is not a valid MAC address"))),
        }
    }

    /// Takes a project id given as `project_id` or `tenant_id` (they must agree).
    pub fn project(&mut self) -> Result<Option<String>, ApiError> {
        let project = self.string("project_id", 255)?;
        let tenant = self.string("tenant_id", 255)?;
        match (project, tenant) {
            (Some(p), Some(t)) if p != t => Err(ApiError::bad_request(
                "'project_id' and 'tenant_id' do not match",
            )),
            (p, t) => Ok(p.or(t)),
        }
    }

    /// Fails when attributes are left that nothing consumed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.map.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "Unrecognized attribute(s) '{}'",
                keys(&self.map)
            )))
        }
    }
}

fn keys(map: &Map<String, Value>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The 400 Neutron gives for a value its converter refuses.
pub fn invalid_value(key: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid input for {key}. Reason: {reason}."))
}

/// Neutron's boolean converter: booleans, and the strings true/false/1/0 in any case.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) => parse_bool_str(text),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// The string half of [`parse_bool`] (query filters arrive as strings).
pub fn parse_bool_str(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A MAC in the colon (or dash) notation, unicast only, not all-zero.
pub fn parse_mac(text: &str) -> Option<MacAddr> {
    let mac = MacAddr::from_str(&text.replace('-', ":")).ok()?;
    (mac.is_unicast() && mac != MacAddr::ZERO).then_some(mac)
}

/// An IP address in canonical form.
pub fn parse_ip(key: &str, text: &str) -> Result<IpAddr, ApiError> {
    IpAddr::from_str(text)
        .map_err(|_| invalid_value(key, &format!("'{text}' is not a valid IP address")))
}

/// A CIDR whose host bits are zero.
pub fn parse_cidr(text: &str) -> Result<IpNet, ApiError> {
    let net = IpNet::from_str(text)
        .map_err(|_| ApiError::invalid(format!("{text} is not in a CIDR format.")))?;
    if net.trunc() != net {
        return Err(ApiError::invalid(format!(
            "'{text}' isn't a recommended CIDR, '{}' should be specified instead.",
            net.trunc()
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(value: Value) -> Input {
        match value {
            Value::Object(map) => Input::new(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn coerces_like_neutron() {
        let mut i = input(json!({"seg": "200", "b": "True", "n": 5, "x": 1}));
        assert_eq!(i.integer("seg").unwrap(), Some(200));
        assert_eq!(i.boolean("b").unwrap(), Some(true));
        assert_eq!(i.integer("n").unwrap(), Some(5));
        let err = i.finish().unwrap_err();
        assert_eq!(err.to_string(), "Unrecognized attribute(s) 'x'");
    }

    #[test]
    fn rejects_bad_values() {
        let mut i = input(json!({"seg": "two", "mac": "ff:ff:ff:ff:ff:ff", "name": 3}));
        assert!(i.integer("seg").is_err());
        assert!(i.mac("mac").is_err());
        assert!(i.string("name", 255).is_err());
        assert!(parse_cidr("10.0.300.0/24").is_err());
        assert!(parse_cidr("10.0.4.5/24").is_err());
        assert!(parse_cidr("10.0.4.0/24").is_ok());
    }

    #[test]
    fn unwrap_requires_the_resource_key() {
        let body = json!({"network": {"name": "n"}, "extra": 1});
        let Value::Object(map) = body else {
            unreachable!()
        };
        assert!(Input::unwrap(map, "network").is_err());
        let Value::Object(map) = json!({"net": {}}) else {
            unreachable!()
        };
        assert!(Input::unwrap(map, "network").is_err());
    }
}
