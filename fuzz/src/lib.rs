//! headcount's fuzz targets: the checks live in `checks.rs`, shared with the
//! regression test that replays every kept input in CI.

pub mod checks;
