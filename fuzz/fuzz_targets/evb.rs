//! Fuzz target: see `wire::fuzz::evb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::evb(data));
