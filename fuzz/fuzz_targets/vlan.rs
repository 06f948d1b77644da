//! Fuzz target: see `wire::fuzz::vlan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::vlan(data));
