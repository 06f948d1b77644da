//! Fuzz target: see `wire::fuzz::gso`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::gso(data));
