//! `headcount backup --to-database URL` and `--from-database URL DEST`: a data
//! directory copied into an empty PostgreSQL database and back, so that an embedded
//! installation can grow into a cluster (and leave it).
//!
//! Every table is copied as stored, ids and the fact log's encoded chunks included
//! (see `headcount_store::transfer`): the source read in one snapshot (it may be
//! serving meanwhile), the target written in one transaction (a failed copy leaves it
//! empty). Checkpoints are not copied: the target's first start replays the log.

use super::{CmdResult, require_data};
use crate::database::redacted;
use crate::output::count;
use crate::progress;
use headcount_store::sqlite::create_backup_dir;
use headcount_store::transfer::{Sink, Table, TransferSummary, Value};
use headcount_store::{PostgresStore, SqliteStore, StoreError};
use indicatif::ProgressBar;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// The exit status of a copy refused because its target is not empty.
const NOT_EMPTY: u8 = 2;

/// Copies the data directory `dir` into the empty database at `url`.
pub fn to_database(dir: &Path, url: &str) -> CmdResult {
    let started = Instant::now();
    if crate::database::chosen().is_some() {
        return Err(
            "--to-database copies the data directory (--data-dir) into the database \
                    it names: leave out --database (or HEADCOUNT_DATABASE_URL)"
                .into(),
        );
    }
    require_data(dir)?;
    let source = SqliteStore::open_shared(dir)?;
    let target = PostgresStore::open(url)
        .map_err(|e| format!("cannot use the database {}: {e}", redacted(url)))?;
    let load = match target.load() {
        Err(StoreError::Conflict(_)) => {
            eprintln!(
                "error: the database {} is not empty (it holds workspaces, keys, segments or \
                 facts): --to-database copies into an empty database only; create a new one \
                 (such as with `createdb`) and copy into that",
                redacted(url)
            );
            return Ok(ExitCode::from(NOT_EMPTY));
        }
        load => load?,
    };
    let mut sink = Progress::new(load);
    source.export(&mut sink)?;
    let summary = sink.finish()?.finish()?;
    eprintln!(
        "copied {} into the database {} in {:.2} s: {}; serve it with \
         `headcount --database {} serve`",
        dir.display(),
        redacted(url),
        started.elapsed().as_secs_f64(),
        describe(&summary),
        redacted(url),
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies the database at `url` into `dest`, a new (or empty) directory.
pub fn from_database(url: &str, dest: &Path) -> CmdResult {
    let started = Instant::now();
    let source = PostgresStore::open(url)
        .map_err(|e| format!("cannot use the database {}: {e}", redacted(url)))?;
    let existed = dest.exists();
    create_backup_dir(dest)?;
    let copied = (|| -> Result<TransferSummary, Box<dyn std::error::Error>> {
        let target = SqliteStore::open(dest)?;
        let mut sink = Progress::new(target.load()?);
        source.export(&mut sink)?;
        Ok(sink.finish()?.finish()?)
    })();
    let summary = match copied {
        Ok(summary) => summary,
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(dest);
            }
            return Err(e);
        }
    };
    eprintln!(
        "copied the database {} into {} in {:.2} s: {}; serve it with \
         `headcount --data-dir {} serve`",
        redacted(url),
        dest.display(),
        started.elapsed().as_secs_f64(),
        describe(&summary),
        dest.display(),
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(summary: &TransferSummary) -> String {
    format!(
        "{}, {} in {} ({:.1} MB), {} in all",
        count(summary.workspaces, "workspace", "workspaces"),
        count(summary.facts, "fact", "facts"),
        count(summary.chunks, "chunk", "chunks"),
        summary.chunk_bytes as f64 / 1e6,
        count(summary.rows, "row", "rows"),
    )
}

/// A sink that shows, on stderr, how many chunks of the fact log went through.
struct Progress<S> {
    inner: S,
    bar: Option<ProgressBar>,
}

impl<S: Sink> Progress<S> {
    fn new(inner: S) -> Progress<S> {
        Progress { inner, bar: None }
    }

    /// The sink, once the copy went through it.
    fn finish(self) -> Result<S, StoreError> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        Ok(self.inner)
    }
}

impl<S: Sink> Sink for Progress<S> {
    fn start(&mut self, chunks: u64, facts: u64) -> Result<(), StoreError> {
        self.bar = Some(progress::bar(chunks, "chunks"));
        self.inner.start(chunks, facts)
    }

    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<(), StoreError> {
        if table.is_fact_log()
            && let Some(bar) = &self.bar
        {
            bar.inc(1);
        }
        self.inner.row(table, row)
    }
}
