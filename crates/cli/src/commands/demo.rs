//! `headcount demo`: a ready-to-explore server on a realistic synthetic dataset.

use super::CmdResult;
use crate::args::DemoArgs;
use std::path::Path;

/// Builds the demo data directory and serves it.
pub fn run(_dir: &Path, _args: DemoArgs) -> CmdResult {
    Err("not yet".into())
}
