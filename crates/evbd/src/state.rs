//! A station's VSIs on disk (`weft evb station --state-file`), so that a restarted station asks
//! the bridge for them again before the bridge's keep-alive timeout ends them: the VMs behind
//! them still run, and the bridge gates off what it no longer has associated.
//!
//! The file is JSON: `{"version": 1, "channels": [SCID, ...], "vsis": [VSI, ...]}`.
//! `channels` are the S-channels the station asked CDCP for (besides the default one). Each VSI
//! is the control request that made it (`op` the mode, `scid`, `manager_id`, `type_id`,
//! `type_version`, `vsi_id`, `filters`, `migrate_to`, `migrate_from`), so it reads like one
//! and `weft evb ctl` takes it as it is, plus `bound_filters`: the filters in force, with the
//! VLANs the bridge assigned, which the station asks with again (its keep-alives carry them
//! too, so the bridge takes the request as one).
//!
//! Writing is atomic: the whole file goes to `PATH.tmp`, is flushed to disk, renamed over
//! `PATH`, and the directory is flushed, so a crash leaves the old file or the new one. A file
//! that does not read is renamed `PATH.bad` and the station starts with nothing; if it cannot
//! be moved aside, nothing is written, so a file the station could not read is never lost.

use std::{
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use evb::vdp::VsiSpec;
use serde_json::{Map, Value, json};
use wire::vdp::{Filters, Mode};

use crate::text::{self, FilterJson};

/// The version of the file's layout this station writes and reads.
pub const VERSION: u64 = 1;

/// What a station keeps across a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The S-channels asked for, by SCID (the default one is not listed).
    pub channels: Vec<u16>,
    /// The VSIs the station holds or is asking for.
    pub vsis: Vec<SavedVsi>,
}

/// One VSI the station was asked to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedVsi {
    /// The S-channel it is on.
    pub scid: u16,
    /// The mode asked for: associate, or one of the pre-associates (never de-associate).
    pub mode: Mode,
    /// The VSI as the VMM asked for it (its first request).
    pub spec: VsiSpec,
    /// The filters in force, with the VLANs the bridge assigned, once it answered.
    pub bound_filters: Option<Filters>,
}

impl SavedVsi {
    /// The VSI to ask the bridge for again: as asked, with the filters in force if known.
    pub fn reissue(&self) -> VsiSpec {
        let mut spec = self.spec.clone();
        if let Some(filters) = &self.bound_filters {
            spec.filters = filters.clone();
        }
        spec
    }

    /// The VSI as JSON: its control request, plus the filters in force.
    fn to_json(&self) -> Value {
        let mut request = text::vsi_request(self.mode, &self.spec);
        request["scid"] = json!(self.scid);
        if let Some(filters) = &self.bound_filters {
            request["bound_filters"] = json!(text::filters_to_json(filters));
        }
        request
    }

    /// A VSI from its JSON.
    fn from_json(value: &Value) -> Result<Self, String> {
        let op = text::str_field(value, "op")?;
        let mode = text::mode_from_name(op)
            .filter(|&mode| mode != Mode::Deassociate)
            .ok_or_else(|| format!("\"op\": {op:?} is not a mode to hold a VSI in"))?;
        let scid = value
            .get("scid")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (1..=4095).contains(n))
            .ok_or("\"scid\": an S-channel ID, 1-4095")?;
        let spec = text::vsi_spec(value)?;
        let bound_filters = match value.get("bound_filters") {
            None | Some(Value::Null) => None,
            Some(entries) => {
                let entries: Vec<FilterJson> = serde_json::from_value(entries.clone())
                    .map_err(|e| format!("\"bound_filters\": {e}"))?;
                let filters = text::filters_from_json(&entries).map_err(|e| e.to_string())?;
                if filters.format() != spec.filters.format() || filters.len() != spec.filters.len()
                {
                    return Err("\"bound_filters\" do not match \"filters\"".into());
                }
                Some(filters)
            }
        };
        Ok(Self {
            scid,
            mode,
            spec,
            bound_filters,
        })
    }
}

impl Saved {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let vsis: Vec<Value> = self.vsis.iter().map(SavedVsi::to_json).collect();
        let value = json!({"version": VERSION, "channels": self.channels, "vsis": vsis});
        // A `Value` always serializes.
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads the file's text.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let top = value.as_object().ok_or("not a JSON object")?;
        match top.get("version").and_then(Value::as_u64) {
            Some(VERSION) => {}
            Some(other) => return Err(format!("version {other}; this station reads {VERSION}")),
            None => return Err("no \"version\"".into()),
        }
        let channels = list(top, "channels")?
            .iter()
            .map(|scid| {
                scid.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (2..=4095).contains(n))
                    .ok_or_else(|| format!("\"channels\": {scid} is not an SCID of 2-4095"))
            })
            .collect::<Result<_, _>>()?;
        let vsis = list(top, "vsis")?
            .iter()
            .enumerate()
            .map(|(index, vsi)| SavedVsi::from_json(vsi).map_err(|e| format!("VSI {index}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { channels, vsis })
    }
}

/// The list `field` of the file (missing: empty).
fn list<'a>(top: &'a Map<String, Value>, field: &str) -> Result<&'a [Value], String> {
    match top.get(field) {
        None => Ok(&[]),
        Some(value) => value
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| format!("\"{field}\": a list")),
    }
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file is there but does not read; it was moved aside (or could not be).
    #[error("cannot use the state file {path}: {reason}; {aside}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// Where it went, or why it stayed.
        aside: String,
    },
    /// Writing failed; the previous file, if any, is still there.
    #[error("cannot write the state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file that did not read could not be moved aside, so it is not written over.
    #[error("not writing the state file {path}: the one there did not read and is kept")]
    Kept {
        /// The file.
        path: PathBuf,
    },
}

/// A station's state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
    /// A file that did not read is still in the way: nothing is written.
    kept: bool,
}

impl StateFile {
    /// The state file at `path` (nothing is read or written yet).
    pub const fn new(path: PathBuf) -> Self {
        Self { path, kept: false }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PATH` with `suffix` added to its name.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// Reads what was saved: nothing when there is no file yet. A file that does not read is
    /// renamed `PATH.bad` (replacing an older one) and reported; start with nothing then.
    pub fn load(&mut self) -> Result<Saved, StateError> {
        let reason = match fs::read_to_string(&self.path) {
            Ok(text) => match Saved::from_text(&text) {
                Ok(saved) => return Ok(saved),
                Err(reason) => reason,
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(err) => err.to_string(),
        };
        let bad = self.sibling(".bad");
        let aside = match fs::rename(&self.path, &bad) {
            Ok(()) => format!("moved to {}, starting with no VSI", bad.display()),
            Err(err) => {
                self.kept = true;
                format!(
                    "cannot move it to {} ({err}): starting with no VSI and not writing it",
                    bad.display()
                )
            }
        };
        Err(StateError::Unreadable {
            path: self.path.clone(),
            reason,
            aside,
        })
    }

    /// Replaces the file with `saved`, atomically (see the module's notes).
    pub fn save(&self, saved: &Saved) -> Result<(), StateError> {
        if self.kept {
            return Err(StateError::Kept {
                path: self.path.clone(),
            });
        }
        self.write(&saved.to_text())
            .map_err(|source| StateError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn write(&self, text: &str) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir)?;
        let tmp = self.sibling(".tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &self.path)?;
        // The rename itself is on disk once the directory is.
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use wire::{
        MacAddr,
        vdp::{Id16, Vlan, VsiIdFormat},
    };

    use super::*;

    /// A scratch directory of its own, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("weft-evbd-state-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn saved() -> Saved {
        let spec = |id: u8, vid: u16| VsiSpec {
            manager_id: Id16::from_name("evmgr1").unwrap(),
            type_id: 100,
            type_version: 4,
            id_format: VsiIdFormat::UUID,
            id: Id16([id; 16]),
            filters: Filters::MacVid(vec![(MacAddr([0x52, 0x54, 0, 0, 0, id]), Vlan::new(vid))]),
            migrate_to: id == 2,
            migrate_from: false,
        };
        Saved {
            channels: vec![2, 4],
            vsis: vec![
                SavedVsi {
                    scid: 1,
                    mode: Mode::Associate,
                    spec: spec(1, 0),
                    bound_filters: Some(spec(1, 20).filters),
                },
                SavedVsi {
                    scid: 2,
                    mode: Mode::PreAssociateWithRr,
                    spec: spec(2, 7),
                    bound_filters: None,
                },
            ],
        }
    }

    #[test]
    fn test_state_round_trip() {
        let scratch = Scratch::new("round-trip");
        let mut file = StateFile::new(scratch.0.join("sub").join("station.json"));
        // No file yet: nothing saved, and that is no error.
        assert_eq!(file.load().unwrap(), Saved::default());
        let saved = saved();
        file.save(&saved).unwrap();
        assert_eq!(file.load().unwrap(), saved);
        // Nothing left over from the atomic write.
        let names: Vec<_> = fs::read_dir(scratch.0.join("sub"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["station.json"]);
        // The request is asked again with the VLAN the bridge gave it.
        let again = saved.vsis[0].reissue();
        assert_eq!(again.filters.vlans().next().map(|v| v.vid), Some(20));
        assert_eq!(saved.vsis[1].reissue(), saved.vsis[1].spec);
        // Each VSI reads as the control request that made it.
        let text = fs::read_to_string(file.path()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let first = &value["vsis"][0];
        assert_eq!(first["op"], "associate");
        assert_eq!(first["vsi_id"], "01010101-0101-0101-0101-010101010101");
        assert_eq!(first["filters"][0]["vlan"], 0);
        assert_eq!(first["bound_filters"][0]["vlan"], 20);
        assert_eq!(text::vsi_spec(first).unwrap(), saved.vsis[0].spec);
        assert_eq!(value["vsis"][1]["op"], "preassociate_rr");
        assert_eq!(value["vsis"][1]["migrate_to"], true);
        // Emptied: the file stays, with nothing in it.
        file.save(&Saved::default()).unwrap();
        assert_eq!(file.load().unwrap(), Saved::default());
    }

    #[test]
    fn test_state_corrupt_file_is_set_aside() {
        let scratch = Scratch::new("corrupt");
        let path = scratch.0.join("station.json");
        let bad = scratch.0.join("station.json.bad");
        let good = saved().to_text();
        let broken = [
            good[..good.len() / 2].to_owned(),
            String::new(),
            "[]".to_owned(),
            good.replace("\"version\": 1", "\"version\": 2"),
            good.replace("\"op\": \"associate\"", "\"op\": \"deassociate\""),
            good.replace("\"scid\": 2", "\"scid\": 0"),
            good.replace("\"type_id\": 100", "\"type_id\": 16777216"),
            good.replace("52:54:00:00:00:01", "not a MAC"),
            good.replace("\"channels\": [\n    2,", "\"channels\": [\n    1,"),
        ];
        for text in broken {
            fs::write(&path, &text).unwrap();
            let mut file = StateFile::new(path.clone());
            let err = file.load().unwrap_err();
            assert!(
                matches!(err, StateError::Unreadable { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("moved to"), "{err}");
            // Set aside as it was, and the station writes a fresh file.
            assert!(!path.exists());
            assert_eq!(fs::read_to_string(&bad).unwrap(), text);
            file.save(&saved()).unwrap();
            assert_eq!(file.load().unwrap(), saved());
        }
    }

    #[test]
    fn test_state_unreadable_file_is_never_written_over() {
        let scratch = Scratch::new("unreadable");
        // A directory where the file should be does not read: it is moved aside.
        let path = scratch.0.join("station.json");
        fs::create_dir(&path).unwrap();
        let mut file = StateFile::new(path.clone());
        assert!(file.load().is_err());
        assert!(scratch.0.join("station.json.bad").is_dir());
        file.save(&saved()).unwrap();
        // A file that cannot be moved aside (its name is taken by a non-empty directory) is
        // kept, and nothing is written over it.
        fs::write(&path, "garbage").unwrap();
        let bad = scratch.0.join("station.json.bad");
        fs::write(bad.join("keep"), "x").unwrap();
        let mut file = StateFile::new(path.clone());
        let err = file.load().unwrap_err();
        assert!(err.to_string().contains("not writing it"), "{err}");
        assert!(matches!(file.save(&saved()), Err(StateError::Kept { .. })));
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");
    }
}
