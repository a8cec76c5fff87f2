//! Fuzz target `ending_at`: see `fuzz/src/checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headcount_fuzz::checks::ending_at(data));
