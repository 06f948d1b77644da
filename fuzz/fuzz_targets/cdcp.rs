//! Fuzz target: see `wire::fuzz::cdcp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::cdcp(data));
