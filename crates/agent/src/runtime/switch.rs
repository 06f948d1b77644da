//! A client of the switch's control socket: one JSON request per line, one
//! `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}` line back. The connection
//! is kept open and made again after any failure.
//!
//! The same requests can go to an in-process [`MemorySwitch`] instead (simulations and
//! `weft bench scale`, which run thousands of agents in one process): everything above the
//! transport (what is sent, when, and what is done with the answer) is the same code.

use core::{fmt, time::Duration};
use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// Why a control request got no result.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// The socket failed (the switch is not running, or went away).
    #[error("control socket {path}: {error}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed (part of the message, so not a `source`).
        error: io::Error,
    },
    /// No answer in time.
    #[error("control socket: no answer within {0:?}")]
    Timeout(Duration),
    /// The switch refused the request; its message names the field.
    #[error("the switch refused: {0}")]
    Refused(String),
    /// The answer was not a response line.
    #[error("control socket: not a response: {0}")]
    BadResponse(String),
}

/// A switch living in the agent's process: it takes the control socket's requests (one JSON
/// object, as sent on the socket without its newline) and gives the `result` of an `ok`
/// answer, or the error message of a refusal.
///
/// It is called on the agent's tokio tasks, so it must not block for long.
pub trait MemorySwitch: Send + Sync {
    /// Handles one request.
    fn call(&self, request: &str) -> Result<Value, String>;
}

/// A shared in-process switch, as [`super::AgentConfig`] holds it.
#[derive(Clone)]
pub struct SharedSwitch(pub Arc<dyn MemorySwitch>);

impl fmt::Debug for SharedSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemorySwitch")
    }
}

/// A client of one switch: the control socket (connected on first use) or an in-process one.
#[derive(Debug)]
pub(crate) enum SwitchClient {
    Socket(SocketClient),
    Memory(SharedSwitch),
}

impl SwitchClient {
    /// The in-process switch if there is one, else a client of the socket at `path` that
    /// waits up to `timeout` for each answer.
    pub(crate) fn new(memory: Option<&SharedSwitch>, path: &Path, timeout: Duration) -> Self {
        match memory {
            Some(switch) => Self::Memory(switch.clone()),
            None => Self::Socket(SocketClient::new(path, timeout)),
        }
    }

    /// Sends `request` (one line of JSON, without its newline) and returns its result.
    pub(crate) async fn call(&mut self, request: &str) -> Result<Value, SwitchError> {
        match self {
            Self::Socket(client) => client.call(request).await,
            Self::Memory(switch) => switch.0.call(request).map_err(SwitchError::Refused),
        }
    }
}

/// A connection (made on first use) to one switch's control socket.
#[derive(Debug)]
pub(crate) struct SocketClient {
    path: PathBuf,
    timeout: Duration,
    connection: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
}

impl SocketClient {
    fn new(path: &Path, timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            timeout,
            connection: None,
        }
    }

    async fn call(&mut self, request: &str) -> Result<Value, SwitchError> {
        let result = tokio::time::timeout(self.timeout, self.exchange(request)).await;
        let answer = match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                self.connection = None;
                return Err(err);
            }
            Err(_) => {
                // A late answer would be read as the next request's: start afresh.
                self.connection = None;
                return Err(SwitchError::Timeout(self.timeout));
            }
        };
        let response: Value = serde_json::from_str(&answer).map_err(|_| {
            self.connection = None;
            SwitchError::BadResponse(answer.trim_end().chars().take(200).collect())
        })?;
        match response.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
            Some(false) => Err(SwitchError::Refused(
                response
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_owned(),
            )),
            None => Err(SwitchError::BadResponse(
                answer.trim_end().chars().take(200).collect(),
            )),
        }
    }

    async fn exchange(&mut self, request: &str) -> Result<String, SwitchError> {
        let io = |error| SwitchError::Io {
            path: self.path.clone(),
            error,
        };
        if self.connection.is_none() {
            let stream = UnixStream::connect(&self.path).await.map_err(io)?;
            let (read, write) = stream.into_split();
            self.connection = Some((BufReader::new(read), write));
        }
        let Some((reader, writer)) = self.connection.as_mut() else {
            return Err(io(io::Error::other("not connected")));
        };
        let mut line = Vec::with_capacity(request.len() + 1);
        line.extend_from_slice(request.as_bytes());
        line.push(b'\n');
        let written = writer.write_all(&line).await;
        let mut answer = String::new();
        let read = match written {
            Ok(()) => reader.read_line(&mut answer).await,
            Err(err) => Err(err),
        };
        match read {
            Ok(0) => Err(SwitchError::Io {
                path: self.path.clone(),
                error: io::Error::new(io::ErrorKind::UnexpectedEof, "the switch hung up"),
            }),
            Ok(_) => Ok(answer),
            Err(error) => Err(SwitchError::Io {
                path: self.path.clone(),
                error,
            }),
        }
    }
}
