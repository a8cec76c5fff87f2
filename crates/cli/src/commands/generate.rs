//! `headcount gen`: the synthetic dataset as NDJSON on stdout, one user per line.

use super::CmdResult;
use crate::args::GenArgs;
use crate::synth::{self, Params};
use headcount_model::Timestamp;
use std::io::Write;
use std::process::ExitCode;

/// Writes the dataset.
pub fn run(args: GenArgs) -> CmdResult {
    let end = match &args.end {
        None => headcount_service::state::now(),
        Some(text) => text.parse::<Timestamp>().map_err(|e| {
            format!("--end must be an RFC 3339 instant such as 2026-01-01T00:00:00Z: {e}")
        })?,
    };
    let params = Params {
        users: args.users,
        seed: args.seed,
        days: args.days,
        end,
        events_per_user: args.events_per_user,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    for n in 0..params.users {
        let line = synth::user_body(&params, n);
        match writeln!(out, "{line}") {
            Ok(()) => {}
            // A closed pipe (`gen | head`) is a normal end, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
