//! weft's lab: real topologies on one Linux machine.
//!
//! - [`netns`]: network namespaces, veth pairs and processes started inside namespaces, all
//!   removed again when the [`netns::Lab`] that made them drops (also on panic);
//! - [`interrupt`]: Ctrl-C and SIGTERM turn into an orderly teardown instead of leftovers;
//! - [`pktgen`]: a batched `AF_PACKET` sender of 64-byte UDP frames (`weft bench pktgen`);
//! - [`dataplane`]: `weft bench dataplane`, the two-host VXLAN topology built with weft, with
//!   the Linux kernel's bridge + vxlan devices and with a direct veth, measured side by side.
//!
//! Everything here needs root and the `ip` command (iproute2); the benchmark also `iperf3` and
//! `ping`.

pub mod dataplane;
pub mod interrupt;
pub mod netns;
pub mod pktgen;

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
    /// Anything else, said in words (a topology that does not forward, output that does not
    /// parse).
    #[error("{0}")]
    Failed(String),
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
