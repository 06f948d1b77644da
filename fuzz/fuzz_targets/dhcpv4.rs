//! Fuzz target: see `wire::fuzz::dhcpv4`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::dhcpv4(data));
