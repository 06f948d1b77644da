//! Fuzz target: see `wire::fuzz::udp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::udp(data));
