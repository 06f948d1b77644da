//! Fuzz target: see `wire::fuzz::vdp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::vdp(data));
