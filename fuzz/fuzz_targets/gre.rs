//! Fuzz target: see `wire::fuzz::gre`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::gre(data));
