//! Fuzz target: see `wire::fuzz::icmpv4`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::icmpv4(data));
