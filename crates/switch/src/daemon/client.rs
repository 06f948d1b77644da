//! A client of the control socket: sends one request line, reads one response line.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use serde_json::Value;

use super::control::Request;

/// How long a response may take (a change that opens devices is the slowest).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The daemon refused the request; the message names the field.
    #[error("{0}")]
    Refused(String),
    /// The daemon's answer was not a response.
    #[error("control socket: not a response: {0}")]
    BadResponse(String),
}

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request` and returns its result.
    pub fn request(&mut self, request: &Request) -> Result<Value, ClientError> {
        self.call(&request.to_value())
    }

    /// Sends a request given as JSON and returns its result.
    pub fn call(&mut self, request: &Value) -> Result<Value, ClientError> {
        let response = self.call_raw(&request.to_string())?;
        match response.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
            Some(false) => Err(ClientError::Refused(
                response
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("refused, without a reason")
                    .to_owned(),
            )),
            None => Err(ClientError::BadResponse(response.to_string())),
        }
    }

    /// Sends `line` as it is (a newline is added) and returns the whole response object.
    pub fn call_raw(&mut self, line: &str) -> Result<Value, ClientError> {
        let mut text = line.trim_end().to_owned();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer)? == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            )));
        }
        serde_json::from_str(&answer).map_err(|_| ClientError::BadResponse(answer))
    }
}
