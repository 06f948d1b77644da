//! Fuzz target: see `wire::fuzz::arp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzz::arp(data));
