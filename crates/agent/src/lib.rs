//! weft's hypervisor agent: watches the controller for the part of its state that concerns
//! this host, turns it into one switch configuration, hands that to the local `weft switch`,
//! and reports back (heartbeat, port up/down). `docs/agents.md` is the contract.
//!
//! The core is sans-IO and cheap enough to run thousands of agents in one process:
//! - [`view`]: the host's view of the controller, kept current by watch [`event`]s;
//! - [`desired`]: the switch configuration for a view ([`switch_config`] is its JSON shape);
//! - [`report`]: the heartbeat and device-status bodies, and which port changes to report.
//!
//! [`runtime`] is the thin tokio edge: the HTTP watch and posts, the switch's control socket,
//! the loops and their backoff. It uses tasks only, never a thread per agent.

pub mod desired;
pub mod event;
pub mod model;
pub mod report;
pub mod runtime;
pub mod switch_config;
pub mod view;

pub use desired::{Desired, HostConfig, TunnelType};
pub use runtime::{AgentConfig, AgentError, MemorySwitch, SharedSwitch, run};
pub use view::View;
