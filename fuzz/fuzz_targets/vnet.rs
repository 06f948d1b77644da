//! Fuzz target: see `wire::fuzz::vnet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::vnet(data));
