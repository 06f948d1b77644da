//! Reading a JSON value (a parsed TOML file or a control request) field by field, so every
//! error names the field it is about (`port[2].mac: ...`) and unknown keys are refused.
//!
//! serde's derived `Deserialize` reports a wrong type as "invalid type: string, expected u16"
//! with a line and column, which names no field in a one-line JSON request; reading the value
//! tree by hand costs a page and gives every message its path.

use core::{fmt::Display, net::IpAddr, ops::RangeInclusive, str::FromStr};

use ipnet::IpNet;
use serde_json::{Map, Value};
use wire::MacAddr;

use crate::tables::ConfigError;

/// An error about the field at `field`.
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One JSON object being read: the keys read so far are the ones it may have.
pub(crate) struct Object<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Object<'a> {
    /// Starts reading `value`, which must be an object, found at `path` (empty for the top
    /// level of a configuration).
    pub(crate) fn new(path: impl Into<String>, value: &'a Value) -> Result<Self, ConfigError> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Self {
                path,
                map,
                known: Vec::new(),
            }),
            other => Err(invalid(
                if path.is_empty() {
                    "config".to_owned()
                } else {
                    path
                },
                format!("expected a table of fields, got {}", describe(other)),
            )),
        }
    }

    /// Names the object differently from here on (a switch by its name once that is read).
    pub(crate) fn rename(&mut self, path: impl Into<String>) {
        self.path = path.into();
    }

    /// The path of field `key`.
    pub(crate) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reads field `key`, which must be present.
    pub(crate) fn required<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&str, &'a Value) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let field = self.field(key);
        match self.optional(key, read)? {
            Some(value) => Ok(value),
            None => Err(invalid(field, "missing")),
        }
    }

    /// Reads field `key` if present (a JSON `null` counts as absent).
    pub(crate) fn optional<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&str, &'a Value) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.known.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => read(&self.field(key), value).map(Some),
        }
    }

    /// Fails on the first key that no `required`/`optional` call asked for.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        self.finish_with(&[])
    }

    /// As [`finish`](Self::finish), also accepting `extra` keys (read elsewhere).
    pub(crate) fn finish_with(self, extra: &[&str]) -> Result<(), ConfigError> {
        let unknown = self
            .map
            .keys()
            .find(|key| !self.known.contains(&key.as_str()) && !extra.contains(&key.as_str()));
        match unknown {
            None => Ok(()),
            Some(key) => {
                let mut expected: Vec<&str> = self.known.clone();
                expected.extend_from_slice(extra);
                Err(invalid(
                    self.field(key),
                    format!("unknown field; expected one of {}", expected.join(", ")),
                ))
            }
        }
    }
}

/// A short description of a value for "expected X, got Y".
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a table".to_owned(),
    }
}

/// A string.
pub(crate) fn string<'a>(field: &str, value: &'a Value) -> Result<&'a str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| invalid(field, format!("expected a string, got {}", describe(value))))
}

/// A non-empty string, owned.
pub(crate) fn name(field: &str, value: &Value) -> Result<String, ConfigError> {
    let name = string(field, value)?;
    if name.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(name.to_owned())
}

/// A boolean.
pub(crate) fn boolean(field: &str, value: &Value) -> Result<bool, ConfigError> {
    value.as_bool().ok_or_else(|| {
        invalid(
            field,
            format!("expected true or false, got {}", describe(value)),
        )
    })
}

/// An unsigned integer that fits `T` (a TOML or JSON integer, not a float or a string).
pub(crate) fn integer<T: TryFrom<u64> + Into<u64> + Bounded>(
    field: &str,
    value: &Value,
) -> Result<T, ConfigError> {
    let range = || format!("an integer 0-{}", T::MAX.into());
    let number = value.as_u64().ok_or_else(|| {
        invalid(
            field,
            format!("expected {}, got {}", range(), describe(value)),
        )
    })?;
    T::try_from(number).map_err(|_| invalid(field, format!("expected {}, got {number}", range())))
}

/// A reader of an unsigned integer in `range`, for [`Object::required`] and
/// [`Object::optional`]; `unit` (`" seconds"`, or empty) follows the bounds in its error.
pub(crate) fn integer_in<T>(
    range: RangeInclusive<T>,
    unit: &'static str,
) -> impl Fn(&str, &Value) -> Result<T, ConfigError>
where
    T: TryFrom<u64> + Into<u64> + Bounded + PartialOrd + Display,
{
    move |field, value| {
        let number = integer::<T>(field, value)?;
        if range.contains(&number) {
            return Ok(number);
        }
        let (low, high) = (range.start(), range.end());
        Err(invalid(
            field,
            format!("must be {low}-{high}{unit}, got {number}"),
        ))
    }
}

/// The types [`integer`] reads.
pub(crate) trait Bounded: Copy {
    /// The largest value.
    const MAX: Self;
}

impl Bounded for u16 {
    const MAX: Self = Self::MAX;
}

impl Bounded for u32 {
    const MAX: Self = Self::MAX;
}

impl Bounded for u64 {
    const MAX: Self = Self::MAX;
}

/// A MAC address written as six hex octets.
pub(crate) fn mac(field: &str, value: &Value) -> Result<MacAddr, ConfigError> {
    let text = string(field, value)?;
    MacAddr::from_str(text).map_err(|err| invalid(field, format!("{err}, got {text:?}")))
}

/// A MAC address that may be a port's or a record's (unicast).
pub(crate) fn unicast_mac(field: &str, value: &Value) -> Result<MacAddr, ConfigError> {
    let mac = mac(field, value)?;
    if !mac.is_unicast() {
        return Err(invalid(
            field,
            format!("{mac} is a multicast address, not a host's"),
        ));
    }
    Ok(mac)
}

/// An IPv4 or IPv6 address.
pub(crate) fn ip(field: &str, value: &Value) -> Result<IpAddr, ConfigError> {
    let text = string(field, value)?;
    IpAddr::from_str(text).map_err(|_| {
        invalid(
            field,
            format!("invalid IP address {text:?}; expected e.g. 10.0.0.1 or 2001:db8::1"),
        )
    })
}

/// A prefix like `10.0.0.0/24`; a bare address is its own /32 or /128.
pub(crate) fn prefix(field: &str, value: &Value) -> Result<IpNet, ConfigError> {
    let text = string(field, value)?;
    if let Ok(ip) = IpAddr::from_str(text) {
        return Ok(IpNet::from(ip));
    }
    IpNet::from_str(text).map_err(|_| {
        invalid(
            field,
            format!("invalid IP prefix {text:?}; expected e.g. 10.0.0.0/24 or 10.0.0.5"),
        )
    })
}

/// A list, each element read with `read` at `field[i]`.
pub(crate) fn list<'a, T>(
    field: &str,
    value: &'a Value,
    mut read: impl FnMut(&str, &'a Value) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid(field, format!("expected a list, got {}", describe(value))))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read(&format!("{field}[{i}]"), item))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn test_errors_name_the_field() {
        let value = json!({"a": "x", "b": [1, "y"], "c": 70000, "d": 1});
        let mut object = Object::new("thing", &value).unwrap();
        assert_eq!(
            object
                .required("a", integer::<u16>)
                .unwrap_err()
                .to_string(),
            "thing.a: expected an integer 0-65535, got the string \"x\""
        );
        assert_eq!(
            object
                .required("b", |f, v| list(f, v, integer::<u16>))
                .unwrap_err()
                .to_string(),
            "thing.b[1]: expected an integer 0-65535, got the string \"y\""
        );
        assert_eq!(
            object
                .required("c", integer::<u16>)
                .unwrap_err()
                .to_string(),
            "thing.c: expected an integer 0-65535, got 70000"
        );
        assert_eq!(
            object.required("e", string).unwrap_err().to_string(),
            "thing.e: missing"
        );
        assert_eq!(
            object.finish().unwrap_err().to_string(),
            "thing.d: unknown field; expected one of a, b, c, e"
        );
    }

    #[test]
    fn test_addresses() {
        assert!(mac("m", &json!("fa:16:3e:00:00:01")).is_ok());
        assert_eq!(
            unicast_mac("m", &json!("01:00:5e:00:00:01"))
                .unwrap_err()
                .to_string(),
            "m: 01:00:5e:00:00:01 is a multicast address, not a host's"
        );
        assert_eq!(
            prefix("p", &json!("10.0.0.5")).unwrap().to_string(),
            "10.0.0.5/32"
        );
        assert!(ip("i", &json!("10.0.0.300")).is_err());
    }
}
