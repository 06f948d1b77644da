//! The control socket: a Unix stream socket taking one JSON request per line and answering
//! each with one JSON line. The runtime executes the requests in its own loop, so a request
//! sees and changes the engines between two frames, never during one.
//!
//! Requests (`op`): `status`; on a station `associate`, `preassociate`, `preassociate_rr`
//! (`manager_id`, `type_id`, `type_version`, `vsi_id`, `filters`, optional `migrate_to` /
//! `migrate_from`), `deassociate` (`vsi_id`) and `channels` (`scids`); on a bridge
//! `deassociate` (`vsi_id`: the bridge ends the VSI). The VSI requests take an optional `scid`:
//! the S-channel, resolved to the SVID CDCP granted it ("S-channel SCID n is not granted"
//! otherwise); without it `associate` and the pre-associates use the default channel (SCID 1),
//! `deassociate` the channel that has the VSI. Answers are `{"ok": true, ...}` or
//! `{"error": "..."}`. The status lists each VSI with its `scid` and `svid` (on a station with a
//! state file, a saved VSI not asked for again since the restart is `restoring`, and a
//! `deassociate` of one just forgets it), and each S-channel with its own EVB TLV exchange
//! (`evb`) and engine counters.

use std::{io, path::Path};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

/// One request from the socket, with the way back to its client.
#[derive(Debug)]
pub struct Command {
    /// The request.
    pub request: Value,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Value>,
}

/// The longest request line taken; longer ones close the connection.
const MAX_LINE: usize = 64 * 1024;

/// Listens on `path` (a stale socket file there is replaced) and passes every request to
/// `commands`, until the receiver is gone.
pub fn listen(path: &Path, commands: mpsc::Sender<Command>) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let commands = commands.clone();
            tokio::spawn(async move {
                if let Err(err) = serve(stream, commands).await {
                    tracing::debug!("control connection: {err}");
                }
            });
        }
    });
    Ok(())
}

async fn serve(stream: UnixStream, commands: mpsc::Sender<Command>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        let answer = match serde_json::from_str::<Value>(line.trim()) {
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if commands.send(Command { request, reply }).await.is_err() {
                    return Ok(());
                }
                answer
                    .await
                    .unwrap_or_else(|_| json!({"error": "the daemon is stopping"}))
            }
            Err(err) => json!({"error": format!("not JSON: {err}")}),
        };
        let mut text = answer.to_string();
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
}
