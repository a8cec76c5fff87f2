//! Fuzz target `checkpoint_decode`: see `fuzz/src/checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headcount_fuzz::checks::checkpoint_decode(data));
