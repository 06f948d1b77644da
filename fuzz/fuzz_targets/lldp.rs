//! Fuzz target: see `wire::fuzz::lldp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::lldp(data));
