//! The watch stream's events: one JSON object per NDJSON line, read into [`Event`].
//!
//! Parsing is separate from applying so the runtime can read a large `resync` line without
//! holding the lock that guards the view.

use serde::{Deserialize, de::IgnoredAny};

use crate::model::{Network, Port, Subnet};

/// One line of the watch stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The revision of the controller's log this line brings the client to.
    pub revision: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What a line says.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The whole view; replaces whatever the client had.
    Resync {
        /// Every network in the view.
        networks: Vec<Network>,
        /// Their subnets.
        subnets: Vec<Subnet>,
        /// Their ports (this host's and others').
        ports: Vec<Port>,
    },
    /// A network newly in the view, with its subnets and ports.
    Join {
        /// The network.
        network: Network,
        /// Its subnets.
        subnets: Vec<Subnet>,
        /// Its ports.
        ports: Vec<Port>,
    },
    /// A network left the view.
    Leave {
        /// Its id.
        network_id: String,
    },
    /// An object was created or changed.
    Put(Object),
    /// An object was deleted.
    Delete {
        /// Its kind.
        kind: ObjectKind,
        /// Its id.
        id: String,
    },
    /// Nothing happened up to `revision`.
    Bookmark,
}

/// The kinds of objects `put` and `delete` carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A network.
    Network,
    /// A subnet.
    Subnet,
    /// A port.
    Port,
}

impl ObjectKind {
    /// The name the stream uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Subnet => "subnet",
            Self::Port => "port",
        }
    }

    fn parse(text: &str) -> Result<Self, EventError> {
        match text {
            "network" => Ok(Self::Network),
            "subnet" => Ok(Self::Subnet),
            "port" => Ok(Self::Port),
            other => Err(EventError::UnknownKind(other.to_owned())),
        }
    }
}

/// A `put`'s object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A network.
    Network(Network),
    /// A subnet.
    Subnet(Subnet),
    /// A port (boxed: it is the largest object by far).
    Port(Box<Port>),
}

/// Why a line or an event was refused. The view is unchanged after any of these; the client
/// logs it and starts over with a resync.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The line is not JSON, or an object lacks a field or has one of the wrong type.
    #[error("malformed event: {0}")]
    Json(serde_json::Error),
    /// The line is not UTF-8.
    #[error("malformed event: not UTF-8")]
    NotUtf8,
    /// A field the event's type needs is absent.
    #[error("{event} event without {field}")]
    Missing {
        /// The event type.
        event: &'static str,
        /// The field.
        field: &'static str,
    },
    /// The `type` is not one this agent knows.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The `kind` of a put or delete is not network, subnet or port.
    #[error("unknown object kind {0:?}")]
    UnknownKind(String),
    /// The revision went backwards, or repeated on a line that is not a bookmark.
    #[error("revision {got} after {last}: the stream went backwards")]
    Backwards {
        /// The revision applied last.
        last: u64,
        /// The revision of this line.
        got: u64,
    },
    /// The first event of a stream from nothing was not a `resync`.
    #[error("{0} event before the first resync")]
    NotSynced(&'static str),
    /// A subnet or port refers to a network that is not in the view.
    #[error("{kind} {id} is on network {network_id}, which is not in the view")]
    UnknownNetwork {
        /// Subnet or port.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The network it names.
        network_id: String,
    },
}

// The cause is part of the message, so it is not also a `source`.
impl From<serde_json::Error> for EventError {
    fn from(err: serde_json::Error) -> Self {
        Self::Json(err)
    }
}

/// A line as read, before its fields are checked against its type.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    event_type: String,
    revision: u64,
    #[serde(default)]
    networks: Option<Vec<Network>>,
    #[serde(default)]
    subnets: Option<Vec<Subnet>>,
    #[serde(default)]
    ports: Option<Vec<Port>>,
    #[serde(default)]
    network: Option<Network>,
    #[serde(default)]
    network_id: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// Skipped in the first pass: a put's object is read straight into its type by a second
    /// one ([`PutLine`]), which costs far less than building a JSON tree of the Neutron
    /// shape's every attribute and converting that.
    #[serde(default)]
    object: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<String>,
}

/// A put line read for its object alone.
#[derive(Deserialize)]
struct PutLine<T> {
    object: T,
}

fn put_object<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, EventError> {
    Ok(serde_json::from_str::<PutLine<T>>(text)?.object)
}

/// A line of a type or kind this agent does not know, from a newer controller: it says
/// nothing this agent acts on, so it only moves the revision on, as a bookmark does. (A
/// resync would not help: it would not carry what this agent cannot read either.)
fn ignored(event_type: &str, kind: &str) -> EventKind {
    tracing::debug!(
        event_type,
        kind,
        "watch: ignoring a line this agent does not know"
    );
    EventKind::Bookmark
}

impl Event {
    /// Reads one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, EventError> {
        let text = core::str::from_utf8(line).map_err(|_| EventError::NotUtf8)?;
        let raw: RawEvent = serde_json::from_str(text)?;
        let kind = match raw.event_type.as_str() {
            "resync" => EventKind::Resync {
                networks: need("resync", "networks", raw.networks)?,
                subnets: need("resync", "subnets", raw.subnets)?,
                ports: need("resync", "ports", raw.ports)?,
            },
            "join" => EventKind::Join {
                network: need("join", "network", raw.network)?,
                subnets: raw.subnets.unwrap_or_default(),
                ports: raw.ports.unwrap_or_default(),
            },
            "leave" => EventKind::Leave {
                network_id: need("leave", "network_id", raw.network_id)?,
            },
            "put" => {
                let kind = need("put", "kind", raw.kind)?;
                need("put", "object", raw.object)?;
                match ObjectKind::parse(&kind) {
                    Ok(ObjectKind::Network) => EventKind::Put(Object::Network(put_object(text)?)),
                    Ok(ObjectKind::Subnet) => EventKind::Put(Object::Subnet(put_object(text)?)),
                    Ok(ObjectKind::Port) => {
                        EventKind::Put(Object::Port(Box::new(put_object(text)?)))
                    }
                    Err(_) => ignored("put", &kind),
                }
            }
            "delete" => {
                let kind = need("delete", "kind", raw.kind)?;
                let id = need("delete", "id", raw.id)?;
                match ObjectKind::parse(&kind) {
                    Ok(kind) => EventKind::Delete { kind, id },
                    Err(_) => ignored("delete", &kind),
                }
            }
            "bookmark" => EventKind::Bookmark,
            other => ignored(other, ""),
        };
        Ok(Self {
            revision: raw.revision,
            kind,
        })
    }

    /// The event's `type`.
    pub const fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Resync { .. } => "resync",
            EventKind::Join { .. } => "join",
            EventKind::Leave { .. } => "leave",
            EventKind::Put(_) => "put",
            EventKind::Delete { .. } => "delete",
            EventKind::Bookmark => "bookmark",
        }
    }
}

fn need<T>(event: &'static str, field: &'static str, value: Option<T>) -> Result<T, EventError> {
    value.ok_or(EventError::Missing { event, field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parses_each_type() {
        let resync = Event::parse(br#"{"type":"resync","revision":4,"networks":[{"id":"n","mtu":1450,"name":"x"}],"subnets":[],"ports":[]}"#).unwrap();
        assert_eq!(resync.revision, 4);
        let EventKind::Resync { networks, .. } = resync.kind else {
            panic!("a resync")
        };
        assert_eq!(networks[0].mtu, 1450);
        let put = Event::parse(br#"{"type":"put","revision":5,"kind":"port","object":{"id":"p","network_id":"n","mac_address":"fa:16:3e:00:00:01","weft:binding":null}}"#).unwrap();
        let EventKind::Put(Object::Port(port)) = put.kind else {
            panic!("a port put")
        };
        assert!(port.binding.is_none() && port.port_security_enabled);
        assert_eq!(
            Event::parse(br#"{"type":"delete","revision":6,"kind":"subnet","id":"s"}"#)
                .unwrap()
                .kind,
            EventKind::Delete {
                kind: ObjectKind::Subnet,
                id: "s".into()
            }
        );
        assert_eq!(
            Event::parse(br#"{"type":"bookmark","revision":6}"#)
                .unwrap()
                .kind,
            EventKind::Bookmark
        );
    }

    #[test]
    fn test_malformed_lines_are_typed_errors() {
        // A newer controller's event types and object kinds are not errors: they only move
        // the revision on.
        for line in [
            &br#"{"type":"rename","revision":7}"#[..],
            br#"{"type":"put","revision":7,"kind":"router","object":{}}"#,
            br#"{"type":"delete","revision":7,"kind":"router","id":"r"}"#,
        ] {
            let event = Event::parse(line).unwrap();
            assert_eq!((event.revision, event.kind), (7, EventKind::Bookmark));
        }
        let cases: [(&[u8], &str); 6] = [
            (b"{not json", "malformed event"),
            (b"\xff\xfe", "malformed event: not UTF-8"),
            (
                br#"{"type":"resync","revision":1,"networks":[]}"#,
                "resync event without subnets",
            ),
            (
                br#"{"type":"put","revision":1,"kind":"port","object":{"id":"p"}}"#,
                "malformed event: missing field `network_id`",
            ),
            (
                br#"{"type":"bookmark"}"#,
                "malformed event: missing field `revision`",
            ),
            (
                br#"{"type":"bookmark","revision":-1}"#,
                "malformed event: invalid value",
            ),
        ];
        for (line, expected) in cases {
            let got = Event::parse(line).unwrap_err().to_string();
            assert!(
                got.starts_with(expected),
                "expected {expected:?}, got {got:?}"
            );
        }
    }
}
