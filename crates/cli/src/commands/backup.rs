//! `headcount backup DEST`: a consistent copy of a data directory, taken while it
//! serves or not, that `--data-dir DEST` opens with the same answers.
//!
//! The checkpoints (derived data) are copied first, the database last with one
//! `VACUUM INTO` (one snapshot): every checkpoint copied is then at or behind the
//! copied fact log, which replays what it lacks. No writer lock is taken.

use super::{CmdResult, require_data};
use crate::args::BackupArgs;
use crate::output::count;
use crate::progress;
use headcount_store::StoreError;
use headcount_store::sqlite::{copy_private, create_backup_dir};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The directory of checkpoints inside a data directory.
const CHECKPOINTS: &str = "checkpoints";

/// Runs a backup.
pub fn run(dir: &Path, args: BackupArgs) -> CmdResult {
    let started = Instant::now();
    if let Some(url) = &args.to_database {
        return super::transfer::to_database(dir, url);
    }
    let Some(dest) = &args.dest else {
        return Err("backup needs a destination directory (or --to-database URL)".into());
    };
    if let Some(url) = &args.from_database {
        return super::transfer::from_database(url, dest);
    }
    if crate::database::chosen().is_some() {
        return Err(
            "backup copies a data directory; a PostgreSQL database (--database) is \
                    backed up with PostgreSQL's own tools (pg_dump, base backups), or \
                    copied into a new data directory with `backup --from-database URL DEST`"
                .into(),
        );
    }
    require_data(dir)?;
    let store = headcount_store::SqliteStore::open_shared(dir)?;
    if same_directory(dir, dest) {
        return Err(format!(
            "{} is the data directory itself: back it up to another directory",
            dest.display()
        )
        .into());
    }
    create_backup_dir(dest)?;
    let (checkpoints, checkpoint_bytes) = copy_checkpoints(dir, dest)?;
    let total = store.database_bytes()?;
    let bar = progress::bytes(total);
    bar.set_message("database");
    let target = headcount_store::SqliteStore::database_path(dest);
    let done = AtomicBool::new(false);
    let summary = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::metadata(&target) {
                    bar.set_position(meta.len().min(total));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let summary = store.backup_into(dest);
        done.store(true, Ordering::Relaxed);
        summary
    })?;
    bar.finish_and_clear();
    eprintln!(
        "backed up {} to {} in {:.2} s: {} ({}, {} in {}), {} ({}); \
         serve it with `headcount --data-dir {} serve`",
        dir.display(),
        dest.display(),
        started.elapsed().as_secs_f64(),
        human_bytes(summary.bytes),
        count(summary.workspaces, "workspace", "workspaces"),
        count(summary.facts, "fact", "facts"),
        count(summary.chunks, "chunk", "chunks"),
        count(checkpoints, "checkpoint", "checkpoints"),
        human_bytes(checkpoint_bytes),
        dest.display(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether `a` and `b` name the same existing directory.
fn same_directory(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies the checkpoint files of `dir` (none while a write is half done: those are
/// temporaries) into `dest`; returns how many, and their bytes. A checkpoint replaced
/// while being copied is read whole from the file that was opened (a write renames a
/// new file over it); one removed meanwhile is skipped.
fn copy_checkpoints(dir: &Path, dest: &Path) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let from = dir.join(CHECKPOINTS);
    let entries = match std::fs::read_dir(&from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(format!("cannot read {}: {e}", from.display()).into()),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|ext| ext != "tmp"))
        .collect();
    files.sort();
    let (mut copied, mut bytes) = (0, 0);
    for file in files {
        let Some(name) = file.file_name() else {
            continue;
        };
        match copy_private(&file, &dest.join(CHECKPOINTS).join(name)) {
            Ok(n) => {
                bytes += n;
                copied += 1;
            }
            Err(StoreError::Io { path, source })
                if path == file && source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((copied, bytes))
}

/// `n` bytes in the largest unit that keeps it at least 1.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return count(n, "byte", "bytes");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_are_shown_in_the_largest_unit_at_least_one() {
        assert_eq!(human_bytes(1), "1 byte");
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1500), "1.5 KB");
        assert_eq!(human_bytes(2_500_000), "2.5 MB");
    }
}
