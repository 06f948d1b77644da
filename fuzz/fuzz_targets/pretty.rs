//! Fuzz target: see `wire::fuzz::pretty`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::pretty(data));
