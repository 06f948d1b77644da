//! Fuzz target: see `wire::fuzz::ecp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::ecp(data));
