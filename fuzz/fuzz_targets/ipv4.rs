//! Fuzz target: see `wire::fuzz::ipv4`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::ipv4(data));
