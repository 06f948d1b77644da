//! Who decides whether a VSI may (pre-)associate: a small local file of VSI types (labs and
//! tests without a controller), or the controller's VSI type database (`docs/vsi.md`), asked
//! over HTTP by the runtime.
//!
//! The local file:
//!
//! ```toml
//! # Every VSI type weft's bridge accepts; any other type is refused ("other failure").
//! [[vsi_type]]
//! type_id = 5
//! type_version = 4   # optional: any version
//! vlan = 10          # optional: the VLAN given where the station asks for VID 0
//! ```
//!
//! It answers as the controller does: an unknown type or version is refused with "other
//! failure"; a filter naming a VLAN other than the type's is refused with "invalid
//! VID/group/MAC".

use std::collections::VecDeque;

use evb::vdp::{Decision, Profile, Refusal, VsiPolicy, VsiRequest};
use serde::Deserialize;
use wire::vdp::{Id16, Reason, Vsi};

/// A local policy file that does not read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value out of range.
    #[error("vsi_type[{index}]: {message}")]
    Invalid {
        /// The entry.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// One VSI type of a local policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsiType {
    /// The VSI type ID (24 bits).
    pub type_id: u32,
    /// The version; `None` accepts every version.
    pub type_version: Option<u8>,
    /// The VLAN assigned where the station asks for VID 0; `None` leaves VID 0.
    pub vlan: Option<u16>,
}

/// A local policy: the VSI types accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicy {
    /// The accepted types.
    #[serde(default)]
    pub vsi_type: Vec<VsiType>,
}

impl LocalPolicy {
    /// Reads a policy file's text.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Self = toml::from_str(text)?;
        for (index, vsi_type) in policy.vsi_type.iter().enumerate() {
            if vsi_type.type_id > wire::vdp::MAX_TYPE_ID {
                return Err(PolicyError::Invalid {
                    index,
                    message: format!("type_id {} is above 16777215", vsi_type.type_id),
                });
            }
            if let Some(vlan) = vsi_type.vlan
                && !(2..=4094).contains(&vlan)
            {
                return Err(PolicyError::Invalid {
                    index,
                    message: format!("vlan {vlan} is not 2-4094"),
                });
            }
        }
        Ok(policy)
    }

    /// The answer to a request.
    pub fn decide(&self, vsi: &Vsi) -> Decision {
        let found = self.vsi_type.iter().find(|t| {
            t.type_id == vsi.type_id && t.type_version.is_none_or(|v| v == vsi.type_version)
        });
        let Some(vsi_type) = found else {
            // Soft, not hard: lldpad prints the reason only for a plain error code.
            return Decision::Refuse(Refusal::new(Reason::OTHER_FAILURE));
        };
        if let Some(vlan) = vsi_type.vlan
            && vsi.filters.vlans().any(|v| v.vid != 0 && v.vid != vlan)
        {
            return Decision::Refuse(Refusal::new(Reason::INVALID_FILTER));
        }
        Decision::Accept(Profile { vid: vsi_type.vlan })
    }
}

/// A request the policy passed on to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// The VSI Manager ID the station named.
    pub manager_id: Id16,
    /// The request.
    pub vsi: Vsi,
}

/// The policy a bridge port asks.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Decide from a local file.
    Local(LocalPolicy),
    /// Defer every request; the runtime asks the controller and answers with
    /// [`Port::decide`](crate::port::Port::decide).
    Remote {
        /// Requests not yet sent to the controller.
        pending: VecDeque<Deferred>,
    },
}

impl Policy {
    /// A policy that asks the controller.
    pub const fn remote() -> Self {
        Self::Remote {
            pending: VecDeque::new(),
        }
    }

    /// Takes the requests to send to the controller.
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        match self {
            Self::Local(_) => Vec::new(),
            Self::Remote { pending } => pending.drain(..).collect(),
        }
    }
}

impl VsiPolicy for Policy {
    fn check(&mut self, request: &VsiRequest<'_>) -> Decision {
        match self {
            Self::Local(local) => local.decide(request.vsi),
            Self::Remote { pending } => {
                pending.push_back(Deferred {
                    manager_id: *request.manager_id,
                    vsi: request.vsi.clone(),
                });
                Decision::Defer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wire::{
        MacAddr,
        vdp::{Filters, Mode, Status, Vlan, VsiIdFormat},
    };

    use super::*;

    fn vsi(type_id: u32, type_version: u8, vid: u16) -> Vsi {
        Vsi {
            mode: Mode::Associate,
            status: Status::REQUEST,
            type_id,
            type_version,
            id_format: VsiIdFormat::UUID,
            id: Id16([1; 16]),
            filters: Filters::MacVid(vec![(
                MacAddr([0x52, 0x54, 0, 0x8e, 0xaa, 0x11]),
                Vlan::new(vid),
            )]),
        }
    }

    #[test]
    fn test_local_policy_decides_like_the_controller() {
        let policy = LocalPolicy::from_toml(
            "[[vsi_type]]\ntype_id = 5\ntype_version = 4\nvlan = 10\n\
             [[vsi_type]]\ntype_id = 6\n",
        )
        .unwrap();
        assert_eq!(
            policy.decide(&vsi(5, 4, 0)),
            Decision::Accept(Profile { vid: Some(10) })
        );
        assert_eq!(
            policy.decide(&vsi(5, 4, 10)),
            Decision::Accept(Profile { vid: Some(10) })
        );
        assert_eq!(
            policy.decide(&vsi(5, 4, 11)),
            Decision::Refuse(Refusal::new(Reason::INVALID_FILTER))
        );
        assert_eq!(
            policy.decide(&vsi(5, 3, 0)),
            Decision::Refuse(Refusal::new(Reason::OTHER_FAILURE))
        );
        assert_eq!(
            policy.decide(&vsi(6, 200, 7)),
            Decision::Accept(Profile { vid: None })
        );
        assert_eq!(
            policy.decide(&vsi(99, 1, 0)),
            Decision::Refuse(Refusal::new(Reason::OTHER_FAILURE))
        );
    }

    #[test]
    fn test_local_policy_file_errors() {
        assert!(LocalPolicy::from_toml("[[vsi_type]]\ntype_id = 16777216\n").is_err());
        assert!(LocalPolicy::from_toml("[[vsi_type]]\ntype_id = 1\nvlan = 1\n").is_err());
        assert!(LocalPolicy::from_toml("[[vsi_type]]\ntypeid = 1\n").is_err());
        assert_eq!(LocalPolicy::from_toml("").unwrap(), LocalPolicy::default());
    }

    #[test]
    fn test_remote_policy_defers_and_queues() {
        let mut policy = Policy::remote();
        let request = vsi(5, 4, 0);
        let manager_id = Id16::from_name("evmgr1").unwrap();
        let decision = policy.check(&VsiRequest {
            manager_id: &manager_id,
            vsi: &request,
        });
        assert_eq!(decision, Decision::Defer);
        assert_eq!(
            policy.take_deferred(),
            vec![Deferred {
                manager_id,
                vsi: request
            }]
        );
        assert!(policy.take_deferred().is_empty());
    }
}
