//! weft's lab: real topologies on one Linux machine.
//!
//! - [`netns`]: network namespaces, veth pairs and processes started inside namespaces, all
//!   removed again when the [`netns::Lab`] that made them drops (also on panic);
//! - [`interrupt`]: Ctrl-C and SIGTERM turn into an orderly teardown instead of leftovers;
//! - [`pktgen`]: a batched `AF_PACKET` sender of 64-byte UDP frames (`weft bench pktgen`);
//! - [`dataplane`]: `weft bench dataplane`, the two-host VXLAN topology built with weft, with
//!   the Linux kernel's bridge + vxlan devices and with a direct veth, measured side by side;
//! - [`datacentre`]: `weft lab`, a small data centre (controller, hosts running `weft switch`
//!   and `weft agent`, VMs) from a [`topology`] file, reached through [`api`];
//! - [`vlanmux`]: a VM NIC with VLAN interfaces in userspace (`weft lab vm-mux`), for VMs on
//!   a trunk's parent port on a kernel without 8021q.
//!
//! Everything here needs root and the `ip` command (iproute2); the benchmark also `iperf3` and
//! `ping`.

pub mod api;
pub mod datacentre;
pub mod dataplane;
pub mod interrupt;
pub mod netns;
pub mod pktgen;
pub mod topology;
pub mod vlanmux;

use std::io;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started, failed or timed out; `message` has its output.
    #[error("`{command}`: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What went wrong, with the command's output.
        message: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The run was interrupted (SIGINT, SIGTERM or SIGHUP).
    #[error("interrupted")]
    Interrupted,
    /// The topology file cannot be used.
    #[error("topology: {0}")]
    Topology(#[from] topology::TopologyError),
    /// A Keystone or Neutron call failed.
    #[error(transparent)]
    Api(#[from] api::ApiError),
    /// A port did not become ACTIVE on its host.
    #[error(transparent)]
    Binding(Box<BindingError>),
    /// Anything else, said in words (a topology that does not forward, output that does not
    /// parse).
    #[error("{0}")]
    Failed(String),
}

/// A port that did not become ACTIVE on the host it was bound to, with its binding state.
#[derive(Debug, thiserror::Error)]
#[error(
    "port {port} on host {host}: {reason} (status {status}, binding:vif_type {vif_type:?}){detail}"
)]
pub struct BindingError {
    /// The port's id.
    pub port: String,
    /// The host it was bound to.
    pub host: String,
    /// `binding failed` or how long it waited.
    pub reason: String,
    /// The port's last status.
    pub status: String,
    /// Its last `binding:vif_type`.
    pub vif_type: String,
    /// More to go on (the host agent's last log lines), or nothing.
    pub detail: String,
}

impl Error {
    /// An [`Error::Io`] saying what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
