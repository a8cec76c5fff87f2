//! The embedded backend: SQLite in WAL mode inside one data directory, owned by one
//! process at a time through an exclusive lock on `<dir>/LOCK`.

use crate::chunk;
use crate::migrations::MIGRATIONS;
use crate::{
    ApiKey, EncodedFacts, NewWorkspace, Permission, Result, Segment, Store, StoreError, StoredSize,
    Workspace,
};
use headcount_model::{Day, Fact, SegmentId, Timestamp, UserKey, WorkspaceId};
use rusqlite::{Connection, Row, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
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
    // Held for the store's lifetime: the exclusive lock on the data directory.
    _lock: Option<File>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the data directory `dir`, takes its lock and applies
    /// pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process owns the directory.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let conn = Connection::open(dir.join("headcount.db"))?;
        let store = SqliteStore::from_connection(conn, Some(lock))?;
        Ok(store)
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<SqliteStore> {
        SqliteStore::from_connection(Connection::open_in_memory()?, None)
    }

    /// The path of the database file inside a data directory.
    pub fn database_path(dir: &Path) -> PathBuf {
        dir.join("headcount.db")
    }

    fn from_connection(mut conn: Connection, lock: Option<File>) -> Result<SqliteStore> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before it returns, so an acknowledged write
        // survives a crash of the process or of the machine.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sizes: RwLock::new(HashMap::new()),
            _lock: lock,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: it rolls
        // back open transactions, so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SqliteStore {
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

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
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

fn to_json_list<T: ToString>(items: &[T]) -> String {
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

fn segment_row(r: &Row<'_>) -> rusqlite::Result<Segment> {
    let id: String = r.get(0)?;
    Ok(Segment {
        id: id.parse().map_err(|e| corrupt("segment id", e))?,
        workspace: WorkspaceId(r.get(1)?),
        name: r.get(2)?,
        filter: serde_json::from_str(&r.get::<_, String>(3)?).map_err(|e| corrupt("filter", e))?,
        text_description: r.get(4)?,
        tags: json_list(&r.get::<_, String>(5)?, "tags")?,
        teams: json_list(&r.get::<_, String>(6)?, "teams")?,
        analytics_tracking_enabled: r.get(7)?,
        created_at: instant(r.get(8)?)?,
        updated_at: instant(r.get(9)?)?,
        archived_at: r.get::<_, Option<i64>>(10)?.map(instant).transpose()?,
    })
}

/// A rewritten chunk: its fact count and bytes.
type Rewrite = (usize, Vec<u8>);

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

    fn last_computed_at(&self, segment: SegmentId) -> Result<Option<Timestamp>> {
        let newest = |all: &BTreeMap<Day, StoredSize>| all.values().map(|s| s.computed_at).max();
        if let Some(all) = self.cache_read().get(&segment) {
            return Ok(newest(all));
        }
        self.with_cached_sizes(segment, newest)
    }

    fn append_encoded(&self, chunks: &[(WorkspaceId, EncodedFacts)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO fact_chunks (workspace_id, facts, data) VALUES (?1, ?2, ?3)",
            )?;
            for (ws, chunk) in chunks.iter().filter(|(_, c)| !c.is_empty()) {
                insert.execute(params![ws.0, chunk.len() as i64, chunk.bytes()])?;
            }
        }
        tx.commit()?;
        Ok(())
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

    fn last_fact_position(&self) -> Result<u64> {
        let last: i64 =
            self.conn()
                .query_row("SELECT COALESCE(MAX(id), 0) FROM fact_chunks", [], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn delete_users(&self, workspace: WorkspaceId, users: &[UserKey]) -> Result<u64> {
        let gone: HashSet<&UserKey> = users.iter().collect();
        let mut found: HashSet<&UserKey> = HashSet::new();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // (chunk id, its replacement: fact count and bytes; None deletes it)
        let mut rewrites: Vec<(i64, Option<Rewrite>)> = Vec::new();
        {
            let mut stmt =
                tx.prepare("SELECT id, data FROM fact_chunks WHERE workspace_id = ?1")?;
            let mut rows = stmt.query(params![workspace.0])?;
            while let Some(row) = rows.next()? {
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                let corrupt = |e: chunk::ChunkError| StoreError::Corrupt(e.to_string());
                let named = chunk::users(data).map_err(corrupt)?;
                let hit: Vec<&UserKey> =
                    gone.iter().copied().filter(|u| named.contains(u)).collect();
                if hit.is_empty() {
                    continue;
                }
                found.extend(hit);
                let mut kept = Vec::new();
                chunk::decode(data, &mut |user, fact| {
                    if !gone.contains(user) {
                        kept.push((user.clone(), fact));
                    }
                })
                .map_err(corrupt)?;
                let replacement = (!kept.is_empty()).then(|| (kept.len(), chunk::encode(&kept)));
                rewrites.push((row.get(0)?, replacement));
            }
        }
        for (id, replacement) in rewrites {
            match replacement {
                None => tx.execute("DELETE FROM fact_chunks WHERE id = ?1", params![id])?,
                Some((n, data)) => tx.execute(
                    "UPDATE fact_chunks SET facts = ?2, data = ?3 WHERE id = ?1",
                    params![id, n as i64, data],
                )?,
            };
        }
        tx.commit()?;
        Ok(found.len() as u64)
    }
}
