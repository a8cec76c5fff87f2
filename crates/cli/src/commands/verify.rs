//! `headcount verify`: reads back everything a data directory stores and says whether
//! it is sound — SQLite's integrity check, every chunk of every workspace's fact log
//! decoded, every segment definition parsed, each workspace's checkpoint compared with
//! the facts — while a server may be running (it reads one snapshot per step and
//! takes no writer lock).
//!
//! Exits 0 with a summary, or 2 with one line per problem naming what is wrong.
//! Segments that cannot be computed are warnings: the server serves everything else
//! and reports them itself.

mod checkpoint;

use super::{CmdResult, describe, require_data};
use crate::args::VerifyArgs;
use crate::output::count;
use crate::progress;
use headcount_engine::Index;
use headcount_model::{Fact, UserKey, WorkspaceId};
use headcount_service::catalog::Catalog;
use headcount_service::checkpoints::Checkpoints;
use headcount_store::sqlite::ChunkCheck;
use headcount_store::{PostgresStore, SqliteStore, Store, StoreError, Workspace};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// The exit status of a directory with problems.
const DAMAGED: u8 = 2;

/// What a verification found.
#[derive(Debug, Default)]
struct Findings {
    problems: Vec<String>,
    warnings: Vec<String>,
    users: u64,
    events: u64,
    facts: u64,
    chunks: u64,
    segments: u64,
    checkpoints: u64,
}

/// Runs a verification.
pub fn run(dir: &Path, _args: VerifyArgs) -> CmdResult {
    let started = Instant::now();
    let store: Box<dyn Verifiable> = match crate::database::chosen() {
        Some(db) => Box::new(crate::database::open(db)?),
        None => {
            require_data(dir)?;
            Box::new(SqliteStore::open_shared(dir)?)
        }
    };
    let store = store.as_ref();
    let mut found = Findings::default();
    for line in store.integrity_check()? {
        found
            .problems
            .push(format!("{}: {line}", store.integrity_check_name()));
    }
    let catalog = match Catalog::load(store) {
        Ok(catalog) => Some(catalog),
        Err(e) => {
            found.problems.push(format!(
                "the catalog (workspaces, keys, segments) does not load: {e}"
            ));
            None
        }
    };
    let checkpoints = Checkpoints::at(super::checkpoint_dir(dir));
    let workspaces = store.workspaces()?;
    for ws in &workspaces {
        check_workspace(store, catalog.as_ref(), &checkpoints, ws, &mut found)?;
    }
    if let Some(catalog) = &catalog {
        check_segments(store, catalog, &workspaces, &mut found);
    }
    for warning in &found.warnings {
        eprintln!("warning: {warning}");
    }
    for problem in &found.problems {
        eprintln!("error: {problem}");
    }
    let summary = format!(
        "{}, {}, {} ({}) in {}, {}, {} checked",
        count(workspaces.len() as u64, "workspace", "workspaces"),
        count(found.users, "user", "users"),
        count(found.facts, "fact", "facts"),
        count(found.events, "event or purchase", "events and purchases"),
        count(found.chunks, "chunk", "chunks"),
        count(found.segments, "segment", "segments"),
        count(found.checkpoints, "checkpoint", "checkpoints"),
    );
    let seconds = started.elapsed().as_secs_f64();
    if found.problems.is_empty() {
        crate::output::line(format_args!(
            "verified {} in {seconds:.2} s: {summary}; no problem found{}",
            describe(dir),
            match found.warnings.len() {
                0 => String::new(),
                n => format!(" ({})", count(n as u64, "warning", "warnings")),
            }
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        crate::output::line(format_args!(
            "verified {} in {seconds:.2} s: {summary}; {} (above)",
            describe(dir),
            count(found.problems.len() as u64, "problem", "problems"),
        ));
        Ok(ExitCode::from(DAMAGED))
    }
}

/// Decodes every chunk of a workspace's fact log into a fresh index, counting users
/// and facts, recording each chunk that does not decode; then compares the
/// workspace's checkpoint, if any, with that index. The checkpoint is read first and
/// both indexes are bounded by the end of the log read after it, so that facts a
/// running server appends meanwhile are in neither.
fn check_workspace(
    store: &dyn Verifiable,
    catalog: Option<&Catalog>,
    checkpoints: &Checkpoints,
    ws: &Workspace,
    found: &mut Findings,
) -> Result<(), Box<dyn std::error::Error>> {
    let checkpoint = checkpoints.read(ws.id);
    let end = store.last_fact_position()?;
    let spinner = progress::bar(0, "facts read");
    spinner.set_message(ws.name.clone());
    let mut index = Index::new();
    let mut n = 0u64;
    let check = store.check_chunks(ws.id, 0, end, &mut |user, fact| {
        index.apply(user, &fact);
        n += 1;
        if n.is_multiple_of(65_536) {
            spinner.set_position(n);
        }
    })?;
    spinner.finish_and_clear();
    for fault in &check.faults {
        found.problems.push(format!(
            "workspace \"{}\": fact chunk {} does not decode: {}",
            ws.name, fault.chunk, fault.reason
        ));
    }
    found.chunks += check.chunks;
    found.facts += check.facts;
    found.users += index.user_count() as u64;
    found.events += index.event_count() as u64;
    match checkpoint {
        Ok(None) => {}
        Err(reason) => found.problems.push(format!(
            "workspace \"{}\": its checkpoint cannot be used: {reason} (the next start \
             rebuilds it from the facts; so does deleting it)",
            ws.name
        )),
        Ok(Some(loaded)) => {
            found.checkpoints += 1;
            let differences = checkpoint::compare(store, catalog, ws, loaded, &index, end)?;
            if !differences.is_empty() {
                found.problems.push(format!(
                    "workspace \"{}\": its checkpoint ({}) disagrees with the facts: {} \
                     (delete it: the next start rebuilds it from the facts)",
                    ws.name,
                    checkpoints.path(ws.id).display(),
                    differences.join("; ")
                ));
            }
        }
    }
    Ok(())
}

/// Parses and plans every stored segment; one that cannot be computed is a warning.
fn check_segments(
    store: &dyn Verifiable,
    catalog: &Catalog,
    workspaces: &[Workspace],
    found: &mut Findings,
) {
    for ws in workspaces {
        for entry in catalog.segments_of(ws.id) {
            found.segments += 1;
            if let Some(reason) = catalog.failure(entry, store) {
                let archived = if entry.segment.archived_at.is_some() {
                    "archived "
                } else {
                    ""
                };
                found.warnings.push(format!(
                    "workspace \"{}\": {archived}segment \"{}\" ({}) cannot be computed: {reason}",
                    ws.name, entry.segment.name, entry.segment.id
                ));
            }
        }
    }
}

/// What verify needs of a store beyond [`Store`]: its backend's own checks.
pub trait Verifiable: Store {
    /// What the integrity check is called in messages.
    fn integrity_check_name(&self) -> &'static str;
    /// The problems the backend finds in its database; empty when sound.
    fn integrity_check(&self) -> Result<Vec<String>, StoreError>;
    /// Decodes the chunks of a workspace at positions `after + 1 ..= through`.
    fn check_chunks(
        &self,
        workspace: WorkspaceId,
        after: u64,
        through: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<ChunkCheck, StoreError>;
}

impl Verifiable for SqliteStore {
    fn integrity_check_name(&self) -> &'static str {
        "SQLite's integrity check of the database"
    }
    fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        SqliteStore::integrity_check(self)
    }
    fn check_chunks(
        &self,
        workspace: WorkspaceId,
        after: u64,
        through: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<ChunkCheck, StoreError> {
        SqliteStore::check_chunks(self, workspace, after, through, visit)
    }
}

impl Verifiable for PostgresStore {
    fn integrity_check_name(&self) -> &'static str {
        "the check of the PostgreSQL schema"
    }
    fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        PostgresStore::integrity_check(self)
    }
    fn check_chunks(
        &self,
        workspace: WorkspaceId,
        after: u64,
        through: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<ChunkCheck, StoreError> {
        PostgresStore::check_chunks(self, workspace, after, through, visit)
    }
}
