//! Helpers for the EVB tests: talking to `weft evb`'s control socket, reading its status,
//! waiting with deadlines (never a sleep as an assertion), reading a pcap file.

#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Sends one request to a control socket and returns the answer.
pub(crate) fn control(socket: &Path, request: &Value) -> Value {
    let mut stream = UnixStream::connect(socket)
        .unwrap_or_else(|err| panic!("connect {}: {err}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    writeln!(stream, "{request}").expect("send");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("answer");
    serde_json::from_str(&line).unwrap_or_else(|err| panic!("answer {line:?}: {err}"))
}

/// The daemon's status.
pub(crate) fn status(socket: &Path) -> Value {
    let answer = control(socket, &serde_json::json!({"op": "status"}));
    answer["status"].clone()
}

/// The VSI `vsi_id` in a status, if it is there.
pub(crate) fn vsi(status: &Value, vsi_id: &str) -> Option<Value> {
    status["vsis"]
        .as_array()?
        .iter()
        .find(|v| v["vsi_id"] == vsi_id)
        .cloned()
}

/// The state of VSI `vsi_id` ("associated", ...), `None` when the daemon does not have it.
pub(crate) fn vsi_state(socket: &Path, vsi_id: &str) -> Option<String> {
    vsi(&status(socket), vsi_id).and_then(|v| v["state"].as_str().map(str::to_owned))
}

/// The VLAN of the first filter of VSI `vsi_id`.
pub(crate) fn vsi_vlan(socket: &Path, vsi_id: &str) -> Option<u64> {
    vsi(&status(socket), vsi_id).and_then(|v| v["filters"][0]["vlan"].as_u64())
}

/// The channels of a status as (SCID, SVID) pairs.
pub(crate) fn channels(socket: &Path) -> Vec<(u64, u64)> {
    status(socket)["channels"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| Some((c["scid"].as_u64()?, c["svid"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The daemon's recent events matching `event` (and `vsi_id`, if given).
pub(crate) fn events(socket: &Path, event: &str, vsi_id: Option<&str>) -> Vec<Value> {
    status(socket)["events"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|e| e["event"] == event && vsi_id.is_none_or(|id| e["vsi_id"] == id))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` every 100 ms until it is true or `timeout` passes; says which.
pub(crate) fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The frames of a classic pcap file (microsecond or nanosecond, either byte order).
pub(crate) fn pcap_frames(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    if bytes.len() < 24 {
        return Vec::new();
    }
    let little = matches!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]
    );
    let word = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = word(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = bytes.get(start..start + len) else {
            break;
        };
        frames.push(frame.to_vec());
        at = start + len;
    }
    frames
}

/// True when `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
