//! Fuzz target: see `wire::fuzz::ethernet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::ethernet(data));
