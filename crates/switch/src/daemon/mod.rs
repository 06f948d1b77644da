//! `weft switch` as a daemon: a [`Switch`] forwarding on its own thread, configured from a
//! [`SwitchConfig`] and changed at run time through a Unix control socket ([`control`]).
//!
//! Three kinds of threads, no async runtime:
//! - the forwarding thread (`forward.rs`) owns the switch and its devices, waits on their
//!   descriptors with epoll (reading only the ready ones), and forwards; it never waits on
//!   the control side's lock, which hands it commands through a channel and a bell;
//! - the control thread accepts clients on the socket, one thread per client;
//! - a client's thread parses requests; changes are serialized by one mutex on the control
//!   side, validated by building the new [`Tables`], and applied by opening devices there,
//!   handing them to the forwarding thread, then swapping the tables.
//!
//! The daemon keeps forwarding with its last tables whatever its clients do, so an agent can
//! restart and reprogram it without a forwarding gap.

pub mod client;
pub mod config;
pub mod control;
pub mod devices;
mod fields;
mod forward;

use std::{
    fs, io,
    os::unix::{
        fs::{FileTypeExt, MetadataExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use arc_swap::ArcSwap;
use serde_json::Value;

pub use self::{
    client::{Client, ClientError},
    config::{
        ChannelSpec, PortSpec, PortType, RecordSpec, SubportSpec, SwitchConfig, SwitchSpec,
        UplinkChannelSpec, VmSpec, VsiSpec,
    },
    control::{ControlError, Request, SChannels, Unlisted},
    forward::{MacEntry, MacLocation},
};
use self::{
    control::Control,
    forward::{Command, Mailbox},
};
use crate::{device::memory::MemoryPeer, switch::Switch, tables::Tables};

/// Where `weft switch` puts its control socket unless told otherwise.
pub const DEFAULT_CONTROL_PATH: &str = "/run/weft/switch.sock";

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The control socket could not be set up.
    #[error("control socket {}: {source}", path.display())]
    Socket {
        /// Its path.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Another daemon answers on the control socket's path.
    #[error("control socket {}: another weft switch is listening there", path.display())]
    InUse {
        /// Its path.
        path: PathBuf,
    },
    /// The initial configuration was refused (it names the field) or a device failed.
    #[error(transparent)]
    Config(#[from] ControlError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// A running daemon. Dropping it shuts it down, as [`shutdown`](Self::shutdown) does.
pub struct Daemon {
    control: Arc<Control>,
    path: PathBuf,
    /// The socket file's (device, inode), so only our own file is removed at the end.
    socket_id: (u64, u64),
    stop: Arc<AtomicBool>,
    commands: Mailbox,
    accept: Option<JoinHandle<()>>,
    forward: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Daemon")
            .field("control_path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Listens on `control_path`, opens the devices of `config`'s ports, and starts
    /// forwarding.
    ///
    /// A stale socket file at the path (nothing answers on it) is replaced; a live one is an
    /// error. Nothing is left running or open when this fails.
    pub fn start(
        config: SwitchConfig,
        control_path: impl AsRef<Path>,
    ) -> Result<Self, DaemonError> {
        let path = control_path.as_ref().to_path_buf();
        let (listener, socket_id) = listen(&path)?;
        let tables = Arc::new(ArcSwap::from_pointee(Tables::default()));
        let (commands, mut inbox) = forward::mailbox().map_err(DaemonError::Thread)?;
        let mut switch = Switch::new(Arc::clone(&tables));
        switch.set_mac_aging(Duration::from_secs(config.mac_aging_secs));
        let busy_poll = Duration::from_micros(config.busy_poll_us);
        // From here on, an error drops `daemon`, which stops its threads and removes the socket.
        let mut daemon = Self {
            control: Arc::new(Control::new(tables, commands.clone())),
            path,
            socket_id,
            stop: Arc::new(AtomicBool::new(false)),
            commands,
            accept: None,
            forward: None,
        };
        daemon.forward = Some(
            spawn("weft-forward", move || {
                forward::run(switch, &mut inbox, busy_poll);
            })
            .map_err(DaemonError::Thread)?,
        );
        // The file is the whole truth: there is nothing to keep yet.
        daemon.control.replace(config, &Unlisted::default())?;
        let (control, stop) = (Arc::clone(&daemon.control), Arc::clone(&daemon.stop));
        daemon.accept = Some(
            spawn("weft-control", move || {
                control::serve(&listener, &control, &stop);
            })
            .map_err(DaemonError::Thread)?,
        );
        Ok(daemon)
    }

    /// The control socket's path.
    pub fn control_path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force.
    pub fn config(&self) -> SwitchConfig {
        self.control.config()
    }

    /// Runs a request in-process, exactly as the control socket would.
    pub fn request(&self, request: Request) -> Result<Value, ControlError> {
        self.control.execute(request)
    }

    /// The test's end of memory port `port` (`type = "memory"`), while the port exists.
    pub fn memory_peer(&self, port: &str) -> Option<MemoryPeer> {
        self.control.memory_peer(port)
    }

    /// Stops accepting clients, lets connected ones finish their request, stops forwarding,
    /// closes every device and removes the socket file.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        if let Some(forward) = self.forward.take() {
            let _ = self.commands.send(Command::Stop);
            let _ = forward.join();
        }
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.socket_id);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Binds the control socket, replacing a stale socket file, and makes it the owner's only.
fn listen(path: &Path) -> Result<(UnixListener, (u64, u64)), DaemonError> {
    let failed = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent).map_err(failed)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(DaemonError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(failed)?;
            }
            Err(err) => return Err(failed(err)),
        },
        Ok(_) => {
            return Err(failed(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(failed(err)),
    }
    let listener = UnixListener::bind(path).map_err(failed)?;
    let meta = fs::symlink_metadata(path).map_err(failed)?;
    let id = (meta.dev(), meta.ino());
    let setup = listener
        .set_nonblocking(true)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o600)));
    if let Err(err) = setup {
        let _ = fs::remove_file(path);
        return Err(failed(err));
    }
    Ok((listener, id))
}

/// Starts a named thread. The daemon is the switch's driver, the one part of the crate that
/// runs threads, and every one of them starts here.
fn spawn<T: Send + 'static>(
    name: &str,
    run: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    thread::Builder::new().name(name.to_owned()).spawn(run)
}
