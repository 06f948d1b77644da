//! Fuzz target: see `wire::fuzz::decap`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::decap(data));
