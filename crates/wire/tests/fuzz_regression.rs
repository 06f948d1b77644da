//! Replays every saved fuzz input through the check its target runs (`wire::fuzz`), under plain
//! `cargo test` on stable: a crash once found stays fixed without a nightly toolchain.
//!
//! Inputs live in `tests/fuzz_regressions/<target>/`, one file each, described in that folder's
//! README.md. The test pcaps' frames are replayed through every check as well.

use std::{fs, path::Path};

#[test]
fn every_saved_input_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut replayed = 0;
    for (name, check) in wire::fuzz::CHECKS {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let data = fs::read(&path).expect("readable regression input");
            eprintln!("replaying {}", path.display());
            check(&data);
            replayed += 1;
        }
    }
    // Every folder must belong to a target that exists (a renamed target would skip its inputs).
    for entry in fs::read_dir(&root).expect("tests/fuzz_regressions exists") {
        let entry = entry.expect("readable directory entry");
        if entry.file_type().expect("file type").is_dir() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            assert!(
                wire::fuzz::CHECKS.iter().any(|(target, _)| *target == name),
                "tests/fuzz_regressions/{name} names no fuzz target"
            );
        }
    }
    eprintln!("{replayed} saved inputs replayed");
}

#[test]
fn every_fuzz_target_has_a_check_and_a_file() {
    // The fuzz crate's targets and wire::fuzz::CHECKS must stay in step.
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    let mut files: Vec<String> = fs::read_dir(&targets)
        .expect("fuzz/fuzz_targets exists")
        .map(|e| {
            e.expect("entry")
                .path()
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut checks: Vec<String> = wire::fuzz::CHECKS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    checks.sort();
    assert_eq!(files, checks);
}
