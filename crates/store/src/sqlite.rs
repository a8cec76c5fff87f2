//! The embedded backend: SQLite in WAL mode inside one data directory. The fact log
//! has one writer at a time, the process holding an exclusive lock on `<dir>/LOCK`;
//! administrative and read-only processes open the directory without it, SQLite's own
//! locking (WAL, a busy timeout) keeping their short transactions apart.

mod leases;
mod maintenance;
mod page_cache;
mod purge;
mod transfer;

pub use maintenance::{BackupSummary, ChunkCheck, ChunkFault, copy_private, create_backup_dir};
pub use transfer::SqliteLoad;

use crate::chunk;
use crate::migrations::MIGRATIONS;
use crate::{
    ApiKey, EncodedFacts, IdempotencyRecord, ImportRecord, NewWorkspace, Permission, RateWindow,
    Receipts, Result, Segment, Store, StoreError, StoredSize, Workspace,
};
use headcount_model::{Day, Fact, SegmentId, Timestamp, UserKey, WorkspaceId};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

/// The embedded store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Every stored size of the segments read so far, so that the hot path of
    /// `data_series` never waits for the connection. Changed only while holding the
    /// connection, after the database, so that it never holds what the database
    /// does not.
    sizes: RwLock<HashMap<SegmentId, BTreeMap<Day, StoredSize>>>,
    /// The background purge's state; held through each of its steps.
    purge: Mutex<crate::purge_plan::Pending>,
    // Held for the store's lifetime: the exclusive lock on the data directory.
    _lock: Option<File>,
    /// Whether this store may change the fact log (false when opened shared).
    writer: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the data directory `dir` as its writer: takes the
    /// writer lock, writes this process's pid and command line into it, and applies
    /// pending migrations.
    ///
    /// A directory it creates is owner-only (0700), and so are the files it creates
    /// in it (0600; SQLite gives its `-wal` and `-shm` files the database's mode).
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when group or others can write the directory;
    /// [`StoreError::Locked`] (naming the holder) when another process is the writer.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        private::create_dir(dir).map_err(io(dir))?;
        private::check_dir(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = private::open_file(&lock_path).map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    owner: lock_owner(&lock_path),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        claim(&lock).map_err(io(&lock_path))?;
        // Created here, owner-only, before SQLite would create it with its own mode.
        let db_path = SqliteStore::database_path(dir);
        private::open_file(&db_path).map_err(io(&db_path))?;
        let conn = Connection::open(&db_path)?;
        let store = SqliteStore::from_connection(conn, Some(lock), true)?;
        Ok(store)
    }

    /// Opens (creating if needed) the data directory `dir` without its writer lock,
    /// alongside a writer if one runs: for administration (workspaces, keys, whose
    /// changes a running server picks up through [`Store::catalog_version`]) and for
    /// reading. Such a store refuses to change the fact log ([`StoreError::NotWriter`]).
    pub fn open_shared(dir: &Path) -> Result<SqliteStore> {
        private::create_dir(dir).map_err(io(dir))?;
        private::check_dir(dir)?;
        let db_path = SqliteStore::database_path(dir);
        private::open_file(&db_path).map_err(io(&db_path))?;
        let conn = Connection::open(&db_path)?;
        SqliteStore::from_connection(conn, None, false)
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<SqliteStore> {
        SqliteStore::from_connection(Connection::open_in_memory()?, None, true)
    }

    /// The path of the database file inside a data directory.
    pub fn database_path(dir: &Path) -> PathBuf {
        dir.join("headcount.db")
    }

    fn from_connection(
        mut conn: Connection,
        lock: Option<File>,
        writer: bool,
    ) -> Result<SqliteStore> {
        // Other processes may use the database at the same time (a CLI next to the
        // server): wait a moment for their short transactions rather than failing.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before it returns, so an acknowledged write
        // survives a crash of the process or of the machine.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sizes: RwLock::new(HashMap::new()),
            purge: Mutex::new(crate::purge_plan::Pending::default()),
            _lock: lock,
            writer,
        })
    }

    fn check_writer(&self) -> Result<()> {
        if self.writer {
            Ok(())
        } else {
            Err(StoreError::NotWriter)
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: it rolls
        // back open transactions, so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Owner-only creation of the data directory and its files (the store's, and the
/// checkpoints the server writes beside them).
pub mod private {
    use crate::StoreError;
    use std::fs::File;
    use std::path::Path;

    /// Creates `dir` and its missing parents, owner-only; an existing one is kept.
    pub fn create_dir(dir: &Path) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)
    }

    /// Refuses a directory that group or others can write: they could replace the
    /// database or hold its lock.
    pub fn check_dir(dir: &Path) -> Result<(), StoreError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)
                .map_err(|source| StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(StoreError::Unsafe(dir.to_path_buf(), mode & 0o7777));
            }
        }
        Ok(())
    }

    /// Opens `path` for writing, creating it owner-only (0600) if missing; the mode
    /// of an existing file is kept.
    pub fn open_file(path: &Path) -> std::io::Result<File> {
        let mut options = File::options();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path)
    }

    /// Creates `path`, which must not exist, owner-only (0600).
    pub fn create_new_file(path: &Path) -> std::io::Result<File> {
        let mut options = File::options();
        options.create_new(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path)
    }
}

impl SqliteStore {
    /// How many segments' sizes the in-memory cache holds (tests pin that archived
    /// segments leave it).
    pub fn cached_size_segments(&self) -> usize {
        self.cache_read().len()
    }

    fn cache_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<SegmentId, BTreeMap<Day, StoredSize>>> {
        self.sizes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<SegmentId, BTreeMap<Day, StoredSize>>> {
        self.sizes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads a segment's sizes into the cache (holding the connection, so that no
    /// change can slip between the read and the caching) and answers from them.
    fn with_cached_sizes<T>(
        &self,
        segment: SegmentId,
        answer: impl FnOnce(&BTreeMap<Day, StoredSize>) -> T,
    ) -> Result<T> {
        let conn = self.conn();
        if let Some(all) = self.cache_read().get(&segment) {
            return Ok(answer(all));
        }
        let mut stmt = conn.prepare_cached(
            "SELECT day, size, computed_at FROM segment_sizes WHERE segment_id = ?1",
        )?;
        let all: BTreeMap<Day, StoredSize> = stmt
            .query_map(params![segment.to_string()], |r| {
                let day: String = r.get(0)?;
                let day: Day = day.parse().map_err(|e| corrupt("day", e))?;
                Ok((
                    day,
                    StoredSize {
                        day,
                        size: r.get::<_, i64>(1)? as u64,
                        computed_at: instant(r.get(2)?)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let out = answer(&all);
        self.cache_write().insert(segment, all);
        Ok(out)
    }
}

/// Writes who holds the writer lock into `LOCK` (after taking it), for the message of
/// the next process refused.
fn claim(mut lock: &File) -> std::io::Result<()> {
    let command: Vec<String> = std::env::args().skip(1).collect();
    let mut text = format!(
        "pid {}: headcount {}",
        std::process::id(),
        command.join(" ")
    );
    if text.len() > 300 {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    lock.set_len(0)?;
    lock.write_all(text.trim_end().as_bytes())
}

/// What the holder of the writer lock wrote into `LOCK`, if anything readable.
fn lock_owner(lock_path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock_path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = MIGRATIONS.len() as i64;
    let version = |conn: &Connection| -> Result<i64> {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        Ok(version)
    };
    if version(conn)? == supported {
        return Ok(());
    }
    // Another process may be migrating the same directory: the version is read again
    // under the write lock, and only what is still missing is applied.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = version(&tx)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn instant(us: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("{what}: {e}").into(),
    )
}

fn json_list<T: std::str::FromStr>(text: &str, what: &str) -> rusqlite::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(what, e))?;
    items
        .iter()
        .map(|s| s.parse::<T>().map_err(|e| corrupt(what, e)))
        .collect()
}

pub(crate) fn to_json_list<T: ToString>(items: &[T]) -> String {
    serde_json::Value::from(items.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string()
}

fn workspace_row(r: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId(r.get(0)?),
        name: r.get(1)?,
        time_zone: r.get(2)?,
        export_limit: r.get::<_, i64>(3)? as u64,
        track_limit: r.get::<_, i64>(4)? as u64,
        created_at: instant(r.get(5)?)?,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let hash: Vec<u8> = r.get(3)?;
    Ok(ApiKey {
        id: r.get(0)?,
        workspace: WorkspaceId(r.get(1)?),
        name: r.get(2)?,
        hash: hash
            .try_into()
            .map_err(|_| corrupt("key hash", "not 32 bytes"))?,
        permissions: json_list::<Permission>(&r.get::<_, String>(4)?, "permissions")?,
        allow_ips: json_list(&r.get::<_, String>(5)?, "allow_ips")?,
        created_at: instant(r.get(6)?)?,
        revoked_at: r.get::<_, Option<i64>>(7)?.map(instant).transpose()?,
    })
}

/// A stored filter's JSON; text that is no JSON (a damaged row) is kept as a JSON
/// string, which no filter parses, so that its segment fails alone instead of the load.
pub(crate) fn stored_filter(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn segment_row(r: &Row<'_>) -> rusqlite::Result<Segment> {
    let id: String = r.get(0)?;
    Ok(Segment {
        id: id.parse().map_err(|e| corrupt("segment id", e))?,
        workspace: WorkspaceId(r.get(1)?),
        name: r.get(2)?,
        filter: stored_filter(r.get::<_, String>(3)?),
        text_description: r.get(4)?,
        tags: json_list(&r.get::<_, String>(5)?, "tags")?,
        teams: json_list(&r.get::<_, String>(6)?, "teams")?,
        analytics_tracking_enabled: r.get(7)?,
        created_at: instant(r.get(8)?)?,
        updated_at: instant(r.get(9)?)?,
        archived_at: r.get::<_, Option<i64>>(10)?.map(instant).transpose()?,
    })
}

const SEGMENT_COLUMNS: &str = "id, workspace_id, name, filter, text_description, tags, teams, \
    analytics_tracking_enabled, created_at, updated_at, archived_at";

impl Store for SqliteStore {
    fn create_workspace(&self, new: &NewWorkspace) -> Result<Workspace> {
        let conn = self.conn();
        let now = Timestamp::now();
        let inserted = conn.execute(
            "INSERT INTO workspaces (name, time_zone, export_limit, track_limit, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![
                new.name,
                new.time_zone,
                new.export_limit as i64,
                new.track_limit as i64,
                micros(now)
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a workspace named \"{}\" already exists",
                new.name
            )));
        }
        Ok(Workspace {
            id: WorkspaceId(conn.last_insert_rowid()),
            name: new.name.clone(),
            time_zone: new.time_zone.clone(),
            export_limit: new.export_limit,
            track_limit: new.track_limit,
            created_at: instant(micros(now))?,
        })
    }

    fn workspaces(&self) -> Result<Vec<Workspace>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, time_zone, export_limit, track_limit, created_at FROM workspaces ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], workspace_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn workspace_engine(&self, workspace: WorkspaceId) -> Result<String> {
        let engine: Option<String> = self
            .conn()
            .query_row(
                "SELECT engine FROM workspaces WHERE id = ?1",
                params![workspace.0],
                |r| r.get(0),
            )
            .optional()?;
        engine.ok_or_else(|| StoreError::NotFound(format!("no workspace {workspace}")))
    }

    fn set_workspace_engine(&self, workspace: WorkspaceId, engine: &str) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE workspaces SET engine = ?2 WHERE id = ?1",
            params![workspace.0, engine],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no workspace {workspace}")));
        }
        Ok(())
    }

    fn insert_key(&self, key: &ApiKey) -> Result<()> {
        let inserted = self.conn().execute(
            "INSERT INTO api_keys (id, workspace_id, name, hash, permissions, allow_ips, created_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
            params![
                key.id,
                key.workspace.0,
                key.name,
                key.hash.as_slice(),
                to_json_list(&key.permissions),
                to_json_list(&key.allow_ips),
                micros(key.created_at),
                key.revoked_at.map(micros),
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a key with id {} already exists",
                key.id
            )));
        }
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ApiKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, workspace_id, name, hash, permissions, allow_ips, created_at, revoked_at \
             FROM api_keys ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([], key_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, micros(at)],
        )?;
        Ok(changed > 0)
    }

    fn insert_segment(&self, s: &Segment) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO segments ({SEGMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                s.id.to_string(),
                s.workspace.0,
                s.name,
                s.filter.to_string(),
                s.text_description,
                to_json_list(&s.tags),
                to_json_list(&s.teams),
                s.analytics_tracking_enabled,
                micros(s.created_at),
                micros(s.updated_at),
                s.archived_at.map(micros),
            ],
        )?;
        Ok(())
    }

    fn update_segment(&self, s: &Segment) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE segments SET name = ?2, filter = ?3, text_description = ?4, tags = ?5, teams = ?6, \
             analytics_tracking_enabled = ?7, updated_at = ?8, archived_at = ?9 WHERE id = ?1",
            params![
                s.id.to_string(),
                s.name,
                s.filter.to_string(),
                s.text_description,
                to_json_list(&s.tags),
                to_json_list(&s.teams),
                s.analytics_tracking_enabled,
                micros(s.updated_at),
                s.archived_at.map(micros),
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no segment {}", s.id)));
        }
        Ok(())
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY seq"
        ))?;
        let rows = stmt
            .query_map([], segment_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn put_sizes(
        &self,
        segment: SegmentId,
        sizes: &[(Day, u64)],
        computed_at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO segment_sizes (segment_id, day, size, computed_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let id = segment.to_string();
            for (day, size) in sizes {
                stmt.execute(params![
                    id,
                    day.to_string(),
                    *size as i64,
                    micros(computed_at)
                ])?;
            }
        }
        tx.commit()?;
        let computed_at = instant(micros(computed_at))?;
        if let Some(cached) = self.cache_write().get_mut(&segment) {
            for (day, size) in sizes {
                let row = StoredSize {
                    day: *day,
                    size: *size,
                    computed_at,
                };
                cached.insert(*day, row);
            }
        }
        drop(conn);
        Ok(())
    }

    fn sizes(&self, segment: SegmentId, from: Day, to: Day) -> Result<Vec<StoredSize>> {
        let range = |all: &BTreeMap<Day, StoredSize>| -> Vec<StoredSize> {
            if from > to {
                return Vec::new();
            }
            all.range(from..=to).map(|(_, s)| *s).collect()
        };
        if let Some(all) = self.cache_read().get(&segment) {
            return Ok(range(all));
        }
        self.with_cached_sizes(segment, range)
    }

    fn sizes_in_memory(
        &self,
        segment: SegmentId,
        from: Day,
        to: Day,
        visit: &mut dyn FnMut(&StoredSize),
    ) -> bool {
        let cache = self.cache_read();
        let Some(all) = cache.get(&segment) else {
            return false;
        };
        if from <= to {
            all.range(from..=to).for_each(|(_, s)| visit(s));
        }
        true
    }

    fn clear_sizes(&self, segment: SegmentId) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM segment_sizes WHERE segment_id = ?1",
            params![segment.to_string()],
        )?;
        self.cache_write().remove(&segment);
        Ok(())
    }

    fn forget_cached_sizes(&self, segment: SegmentId) {
        // Under the connection, as every load of the cache is (see `with_cached_sizes`).
        let conn = self.conn();
        self.cache_write().remove(&segment);
        drop(conn);
    }

    fn last_computed_at(&self, segment: SegmentId) -> Result<Option<Timestamp>> {
        let newest = |all: &BTreeMap<Day, StoredSize>| all.values().map(|s| s.computed_at).max();
        if let Some(all) = self.cache_read().get(&segment) {
            return Ok(newest(all));
        }
        self.with_cached_sizes(segment, newest)
    }

    fn append_encoded(&self, chunks: &[(WorkspaceId, EncodedFacts)]) -> Result<()> {
        self.append_encoded_with(chunks, Receipts::default())
    }

    fn scan_facts(
        &self,
        workspace: WorkspaceId,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<()> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT data FROM fact_chunks WHERE workspace_id = ?1 ORDER BY id")?;
        let mut rows = stmt.query(params![workspace.0])?;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            chunk::decode(data, visit).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        Ok(())
    }

    fn scan_facts_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<u64> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, data FROM fact_chunks WHERE workspace_id = ?1 AND id > ?2 ORDER BY id",
        )?;
        let after_id = i64::try_from(after).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![workspace.0, after_id])?;
        let mut last = after;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            chunk::decode(data, visit).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            last = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(last);
        }
        Ok(last)
    }

    fn scan_chunks_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut crate::ChunkFactVisitor<'_>,
    ) -> Result<u64> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, data FROM fact_chunks WHERE workspace_id = ?1 AND id > ?2 ORDER BY id",
        )?;
        let after_id = i64::try_from(after).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![workspace.0, after_id])?;
        let mut last = after;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let id = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(last);
            chunk::decode_with(data, &mut |users, user, fact| visit(id, users, user, fact))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            last = id;
        }
        Ok(last)
    }

    fn last_fact_position(&self) -> Result<u64> {
        let last: i64 =
            self.conn()
                .query_row("SELECT COALESCE(MAX(id), 0) FROM fact_chunks", [], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn purge_step(&self) -> Result<bool> {
        self.purge_one_step()
    }

    fn catalog_version(&self) -> Result<u64> {
        let version: i64 = self.conn().query_row(
            "SELECT version FROM catalog_version WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(version as u64)
    }

    fn rate_windows(&self) -> Result<Vec<RateWindow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT workspace_id, bucket, window_start, count FROM rate_windows \
             ORDER BY workspace_id, bucket",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RateWindow {
                    workspace: WorkspaceId(r.get(0)?),
                    bucket: r.get(1)?,
                    window_start: r.get::<_, i64>(2)?.max(0) as u64,
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn put_rate_windows(&self, windows: &[RateWindow]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO rate_windows (workspace_id, bucket, window_start, count) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for w in windows {
                stmt.execute(params![
                    w.workspace.0,
                    w.bucket,
                    w.window_start.min(i64::MAX as u64) as i64,
                    w.count.min(i64::MAX as u64) as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn append_encoded_with(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<()> {
        self.check_writer()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO fact_chunks (workspace_id, facts, data) VALUES (?1, ?2, ?3)",
            )?;
            for (ws, chunk) in chunks.iter().filter(|(_, c)| !c.is_empty()) {
                insert.execute(params![ws.0, chunk.len() as i64, chunk.bytes()])?;
                if chunk.deletions() > 0 {
                    // In the same transaction: a deletion never lands without its purge.
                    tx.prepare_cached(
                        "INSERT INTO fact_purges (chunk_id, workspace_id, next_chunk) \
                         VALUES (?1, ?2, 0)",
                    )?
                    .execute(params![tx.last_insert_rowid(), ws.0])?;
                }
            }
        }
        for record in receipts.responses {
            put_idempotency(&tx, record)?;
        }
        if !receipts.imports.is_empty() {
            let mut update = tx.prepare_cached(
                "UPDATE imports SET sha256 = COALESCE(?2, sha256), lines = ?3, bytes = ?4, \
                 updated_at = ?5, finished_at = CASE WHEN ?6 THEN ?5 ELSE finished_at END \
                 WHERE id = ?1",
            )?;
            for p in receipts.imports {
                let changed = update.execute(params![
                    p.id,
                    p.sha256.as_ref().map(|h| h.as_slice()),
                    p.lines as i64,
                    p.bytes as i64,
                    micros(p.at),
                    p.finished,
                ])?;
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("no import record {}", p.id)));
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn idempotency_record(
        &self,
        workspace: WorkspaceId,
        key: &str,
        since: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys \
             WHERE workspace_id = ?1 AND key = ?2 AND created_at >= ?3",
        )?;
        let mut rows = stmt.query(params![workspace.0, key, micros(since)])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let fingerprint: Vec<u8> = r.get(0)?;
        Ok(Some(IdempotencyRecord {
            workspace,
            key: key.to_string(),
            fingerprint: fingerprint
                .try_into()
                .map_err(|_| corrupt("idempotency fingerprint", "not 32 bytes"))?,
            status: u16::try_from(r.get::<_, i64>(1)?)
                .map_err(|e| corrupt("idempotency status", e))?,
            body: r.get(2)?,
            created_at: instant(r.get(3)?)?,
        }))
    }

    fn put_idempotency_record(&self, record: &IdempotencyRecord) -> Result<()> {
        put_idempotency(&self.conn(), record)
    }

    fn purge_idempotency_records(&self, before: Timestamp) -> Result<u64> {
        let gone = self.conn().execute(
            "DELETE FROM idempotency_keys WHERE created_at < ?1",
            params![micros(before)],
        )?;
        Ok(gone as u64)
    }

    fn begin_import(
        &self,
        workspace: WorkspaceId,
        sha256: Option<[u8; 32]>,
        name: &str,
        at: Timestamp,
    ) -> Result<ImportRecord> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO imports (workspace_id, sha256, name, lines, bytes, started_at, updated_at) \
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?4)",
            params![
                workspace.0,
                sha256.as_ref().map(|h| h.as_slice()),
                name,
                micros(at)
            ],
        )?;
        let at = instant(micros(at))?;
        Ok(ImportRecord {
            id: conn.last_insert_rowid(),
            workspace,
            sha256,
            name: name.to_string(),
            lines: 0,
            bytes: 0,
            started_at: at,
            updated_at: at,
            finished_at: None,
        })
    }

    fn imports(&self, workspace: WorkspaceId) -> Result<Vec<ImportRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, sha256, name, lines, bytes, started_at, updated_at, finished_at \
             FROM imports WHERE workspace_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![workspace.0], |r| {
                let sha256: Option<Vec<u8>> = r.get(1)?;
                Ok(ImportRecord {
                    id: r.get(0)?,
                    workspace,
                    sha256: sha256
                        .map(|h| h.try_into())
                        .transpose()
                        .map_err(|_| corrupt("import sha256", "not 32 bytes"))?,
                    name: r.get(2)?,
                    lines: r.get::<_, i64>(3)? as u64,
                    bytes: r.get::<_, i64>(4)? as u64,
                    started_at: instant(r.get(5)?)?,
                    updated_at: instant(r.get(6)?)?,
                    finished_at: r.get::<_, Option<i64>>(7)?.map(instant).transpose()?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        leases::try_lease(self, name, holder, now, ttl)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        leases::release_lease(self, name, holder)
    }
}

/// Remembers an answer (inside a transaction or not).
fn put_idempotency(conn: &Connection, record: &IdempotencyRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys \
         (workspace_id, key, fingerprint, status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        record.workspace.0,
        record.key,
        record.fingerprint.as_slice(),
        i64::from(record.status),
        record.body,
        micros(record.created_at),
    ])?;
    Ok(())
}
