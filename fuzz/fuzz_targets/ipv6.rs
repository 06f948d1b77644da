//! Fuzz target: see `wire::fuzz::ipv6`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::ipv6(data));
