//! Fuzz target: see `wire::fuzz::vxlan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::vxlan(data));
