//! Maintenance of the embedded store that works next to a running writer: a
//! consistent copy of the database (`VACUUM INTO`, one statement reading one
//! snapshot), SQLite's own integrity check, and a check that every chunk of the fact
//! log decodes.

use super::{SqliteStore, io, private};
use crate::chunk;
use crate::{Result, StoreError};
use headcount_model::{Fact, UserKey, WorkspaceId};
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;

/// What [`SqliteStore::backup_into`] wrote, counted in the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// The size of the copied database file.
    pub bytes: u64,
    /// Workspaces in the copy.
    pub workspaces: u64,
    /// Chunks of the fact log in the copy.
    pub chunks: u64,
    /// Facts in the copy (deletion entries included).
    pub facts: u64,
}

/// A chunk of the fact log that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFault {
    /// The chunk's id (its row in `fact_chunks`).
    pub chunk: i64,
    /// Why: the decoder's error, or a count that disagrees with the row's.
    pub reason: String,
}

/// What [`SqliteStore::check_chunks`] found in a workspace's fact log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkCheck {
    /// Chunks read.
    pub chunks: u64,
    /// Facts decoded from the chunks that decode.
    pub facts: u64,
    /// The chunks that do not decode, in log order.
    pub faults: Vec<ChunkFault>,
}

impl SqliteStore {
    /// Writes a consistent copy of the database to `<dest>/headcount.db` (a file that
    /// must not exist yet; `dest` must exist), owner-only (0600), with SQLite's
    /// `VACUUM INTO`: one statement reading one snapshot, so a writer may go on
    /// appending meanwhile and the copy holds exactly the transactions committed
    /// before it began. Needs no writer lock. The copy is synced to disk.
    ///
    /// # Errors
    /// Those of the file system and of SQLite (a full disk among them); the partial
    /// copy is then removed.
    pub fn backup_into(&self, dest: &Path) -> Result<BackupSummary> {
        let target = SqliteStore::database_path(dest);
        // Created here, empty and owner-only: VACUUM INTO accepts an empty file and
        // keeps its mode, where it would create one with the process's umask.
        private::create_new_file(&target).map_err(io(&target))?;
        if let Err(e) = self.vacuum_into(&target) {
            let _ = std::fs::remove_file(&target);
            return Err(e);
        }
        let file = std::fs::File::open(&target).map_err(io(&target))?;
        file.sync_all().map_err(io(&target))?;
        let bytes = file.metadata().map_err(io(&target))?.len();
        drop(file);
        if let Ok(dir) = std::fs::File::open(dest) {
            let _ = dir.sync_all();
        }
        let copy = Connection::open_with_flags(&target, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let workspaces: i64 =
            copy.query_row("SELECT COUNT(*) FROM workspaces", [], |r| r.get(0))?;
        let (chunks, facts): (i64, i64) = copy.query_row(
            "SELECT COUNT(*), COALESCE(SUM(facts), 0) FROM fact_chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(BackupSummary {
            bytes,
            workspaces: workspaces.max(0) as u64,
            chunks: chunks.max(0) as u64,
            facts: facts.max(0) as u64,
        })
    }

    fn vacuum_into(&self, target: &Path) -> Result<()> {
        let path = target.to_str().ok_or_else(|| StoreError::Io {
            path: target.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path is not valid UTF-8",
            ),
        })?;
        self.conn().execute("VACUUM INTO ?1", params![path])?;
        Ok(())
    }

    /// The bytes of the database's pages in use: about what a backup writes.
    pub fn database_bytes(&self) -> Result<u64> {
        let conn = self.conn();
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok(((pages - free).max(0) * size.max(0)) as u64)
    }

    /// SQLite's `PRAGMA integrity_check`: the problems it reports, none when the
    /// database is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    /// Decodes the chunks of a workspace's fact log whose ids (fact-log positions) are
    /// in `after + 1 ..= through`, in log order, calling `visit` with the facts of each
    /// chunk that decodes whole; a chunk that does not (or whose fact count disagrees
    /// with its row's) is reported with its id, and the check goes on. Reads one
    /// snapshot; needs no writer lock. `0, u64::MAX` reads the whole log.
    pub fn check_chunks(
        &self,
        workspace: WorkspaceId,
        after: u64,
        through: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<ChunkCheck> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, facts, data FROM fact_chunks \
             WHERE workspace_id = ?1 AND id > ?2 AND id <= ?3 ORDER BY id",
        )?;
        let position = |p: u64| i64::try_from(p).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![workspace.0, position(after), position(through)])?;
        let mut check = ChunkCheck::default();
        let mut facts: Vec<(UserKey, Fact)> = Vec::new();
        while let Some(row) = rows.next()? {
            check.chunks += 1;
            let id: i64 = row.get(0)?;
            let expected: i64 = row.get(1)?;
            let data = match row.get_ref(2)?.as_blob() {
                Ok(data) => data,
                Err(_) => {
                    check.faults.push(ChunkFault {
                        chunk: id,
                        reason: "its data is not a blob".to_string(),
                    });
                    continue;
                }
            };
            facts.clear();
            let decoded = chunk::decode(data, &mut |user, fact| facts.push((user.clone(), fact)));
            let reason = match decoded {
                Err(e) => Some(e.to_string()),
                Ok(()) if facts.len() as i64 != expected => Some(format!(
                    "it decodes to {} facts, its row says {expected}",
                    facts.len()
                )),
                Ok(()) => None,
            };
            if let Some(reason) = reason {
                check.faults.push(ChunkFault { chunk: id, reason });
                continue;
            }
            check.facts += facts.len() as u64;
            for (user, fact) in facts.drain(..) {
                visit(&user, fact);
            }
        }
        Ok(check)
    }
}

/// Creates the directory of a backup, owner-only (0700) like a data directory; an
/// existing one must be empty and writable by its owner only.
///
/// # Errors
/// [`StoreError::Conflict`] when `dest` exists and is not an empty directory;
/// [`StoreError::Unsafe`] when others can write it; those of the file system.
pub fn create_backup_dir(dest: &Path) -> Result<()> {
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(StoreError::Conflict(format!(
                "{} exists and is not empty: a backup goes to a new (or empty) directory",
                dest.display()
            )));
        }
    }
    private::create_dir(dest).map_err(io(dest))?;
    private::check_dir(dest)
}

/// Copies the file `from` to `to` (which must not exist), creating it owner-only
/// (0600, and its directory 0700 if missing) and syncing it; returns the bytes copied.
///
/// # Errors
/// Those of the file system.
pub fn copy_private(from: &Path, to: &Path) -> Result<u64> {
    if let Some(parent) = to.parent() {
        private::create_dir(parent).map_err(io(parent))?;
    }
    let mut source = std::fs::File::open(from).map_err(io(from))?;
    let mut target = private::create_new_file(to).map_err(io(to))?;
    let bytes = std::io::copy(&mut source, &mut target).map_err(io(to))?;
    target.sync_all().map_err(io(to))?;
    Ok(bytes)
}
