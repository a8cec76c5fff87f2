//! `headcount workspaces create|list`.

use super::{CmdResult, open_shared, open_shared_existing};
use crate::args::WorkspacesCmd;
use crate::output::table;
use headcount_service::catalog::time_zone;
use headcount_store::NewWorkspace;
use std::path::Path;
use std::process::ExitCode;

/// Runs a `workspaces` subcommand.
pub fn run(dir: &Path, cmd: WorkspacesCmd) -> CmdResult {
    match cmd {
        WorkspacesCmd::Create {
            name,
            time_zone: tz,
            export_rate_limit,
            track_rate_limit,
            engine,
        } => {
            if name.trim().is_empty() {
                return Err("the workspace name must not be empty".into());
            }
            // Stored under its canonical IANA name (the lookup ignores case).
            let tz = time_zone(&tz)?
                .iana_name()
                .map(str::to_string)
                .unwrap_or(tz);
            if export_rate_limit == 0 || track_rate_limit == 0 {
                return Err("rate limits must be at least 1".into());
            }
            let store = open_shared(dir)?;
            let ws = store.create_workspace(&NewWorkspace {
                name: name.trim().to_string(),
                time_zone: tz,
                export_limit: export_rate_limit,
                track_limit: track_rate_limit,
            })?;
            let mut engine_note = String::new();
            if engine != headcount_store::ENGINE_MEMORY {
                store.set_workspace_engine(ws.id, &engine)?;
                engine_note = format!(", engine {engine}");
            }
            eprintln!(
                "created workspace \"{}\" (time zone {}, export limit {}/hour, track limit {}/3s{engine_note})",
                ws.name, ws.time_zone, ws.export_limit, ws.track_limit
            );
        }
        WorkspacesCmd::List => {
            let store = open_shared_existing(dir)?;
            let all = store.workspaces()?;
            if all.is_empty() {
                eprintln!(
                    "no workspaces in the data directory {} yet (headcount workspaces create NAME)",
                    dir.display()
                );
            }
            let rows: Vec<Vec<String>> = all
                .into_iter()
                .map(|w| {
                    vec![
                        w.name,
                        w.time_zone,
                        w.export_limit.to_string(),
                        w.track_limit.to_string(),
                        w.created_at.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "NAME",
                    "TIME_ZONE",
                    "EXPORT_LIMIT/HOUR",
                    "TRACK_LIMIT/3S",
                    "CREATED_AT",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
