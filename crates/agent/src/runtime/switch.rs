//! A client of the switch's control socket: one JSON request per line, one
//! `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}` line back. The connection
//! is kept open and made again after any failure.

use core::time::Duration;
use std::{
    io,
    path::{Path, PathBuf},
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

/// A connection (made on first use) to one switch.
#[derive(Debug)]
pub(crate) struct SwitchClient {
    path: PathBuf,
    timeout: Duration,
    connection: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
}

impl SwitchClient {
    /// A client of the socket at `path`, waiting up to `timeout` for each answer.
    pub(crate) fn new(path: &Path, timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            timeout,
            connection: None,
        }
    }

    /// Sends `request` (one line of JSON, without its newline) and returns its result.
    pub(crate) async fn call(&mut self, request: &str) -> Result<Value, SwitchError> {
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
