//! The PostgreSQL backend: the system of record of several `headcount serve` nodes.
//!
//! Several processes may use one database at once, appends included: every append
//! takes the row lock of `fact_log_head` in its transaction and numbers its chunks
//! from it, so that appends are serialized and fact-log positions grow in commit
//! order (see docs/design.md). The schema is created and migrated at open.
//!
//! Calls block: like [`crate::SqliteStore`], use it from a plain thread or
//! `tokio::task::spawn_blocking`, never from an async task (the `postgres` client
//! blocks on a runtime of its own, which tokio refuses inside another).

mod append;
mod follow;
mod leases;
mod maintenance;
mod pool;
mod purge;
mod rate_counter;
mod scan;
mod schema;
mod size_cache;
mod transfer;
mod writer;

pub use rate_counter::RateCounter;
pub use schema::MIGRATIONS;
pub use transfer::PostgresLoad;

use crate::sqlite::{stored_filter, to_json_list};
use crate::{
    ApiKey, EncodedFacts, IdempotencyRecord, ImportRecord, NewWorkspace, Permission, RateWindow,
    Receipts, Result, Segment, Store, StoreError, StoredSize, Workspace,
};
use headcount_model::{Day, Fact, SegmentId, Timestamp, UserKey, WorkspaceId};
use pool::Pool;
use postgres::GenericClient;
use postgres::error::SqlState;
use size_cache::SizeCache;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    /// The background purge's state; held through each of its steps.
    purge: Mutex<crate::purge_plan::Pending>,
    /// The connection holding the writer lock, once taken (see
    /// [`PostgresStore::lock_writer`]).
    writer: Mutex<Option<postgres::Client>>,
    /// The connection listening for appends, once one was waited for.
    listener: Mutex<Option<postgres::Client>>,
    /// The payload of this store's notifications, which its own listener ignores
    /// (see `postgres/append.rs`).
    token: String,
    /// Stored sizes of the segments read so far, kept exact across nodes.
    sizes: Arc<SizeCache>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let held = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let listening = self
            .listener
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        pool::drop_elsewhere(held.into_iter().chain(listening).collect());
    }
}

/// The connection settings of `url`, named `application` in `pg_stat_activity` and
/// giving up a connection attempt after 10 s, unless the URL says otherwise.
///
/// # Errors
/// [`StoreError::Url`] for a URL that does not parse.
fn connection_config(url: &str, application: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name(application);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    Ok(config)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`,
    /// or the key=value form) and creates or migrates its schema.
    ///
    /// # Errors
    /// [`StoreError::Url`] for a URL that does not parse, [`StoreError::Postgres`]
    /// when the server cannot be reached or refuses, [`StoreError::TooNew`] for a
    /// schema from a newer headcount.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let config = postgres::Config::from(connection_config(url, "headcount")?);
        let store = PostgresStore {
            pool: Pool::new(config),
            purge: Mutex::new(crate::purge_plan::Pending::default()),
            writer: Mutex::new(None),
            listener: Mutex::new(None),
            token: append::token(),
            sizes: Arc::default(),
        };
        schema::migrate(&mut *store.pool.get()?)?;
        Ok(store)
    }

    /// Total size of the database on disk, in bytes.
    pub fn database_bytes(&self) -> Result<u64> {
        let bytes: i64 = self
            .pool
            .get()?
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .get(0);
        Ok(bytes.max(0) as u64)
    }

    /// The schema version stored in the database and the one this build knows.
    pub fn schema_version(&self) -> Result<(i64, i64)> {
        let found: i64 = self
            .pool
            .get()?
            .query_one("SELECT version FROM headcount_schema WHERE id = 1", &[])?
            .get(0);
        Ok((found, MIGRATIONS.len() as i64))
    }

    /// How many segments' sizes the in-memory cache holds (tests pin that archived
    /// segments leave it).
    pub fn cached_size_segments(&self) -> usize {
        self.sizes.len()
    }

    /// Whether the cache of stored sizes is in use: its listener for the changes made
    /// by every node is up. It starts with the first read of sizes.
    pub fn size_cache_listening(&self) -> bool {
        self.sizes.is_listening()
    }

    /// A segment's stored sizes read through the cache: `f` of the cached ones, or of
    /// the ones read from the database (kept when nothing changed meanwhile).
    fn with_sizes<T>(
        &self,
        segment: SegmentId,
        f: impl Fn(&BTreeMap<Day, StoredSize>) -> T,
    ) -> Result<T> {
        self.sizes.listen(self.pool.config());
        if let Some(found) = self.sizes.with(segment, &f) {
            return Ok(found);
        }
        let ticket = self.sizes.ticket();
        let all = self
            .pool
            .get()?
            .query(
                "SELECT day, size, computed_at FROM segment_sizes WHERE segment_id = $1",
                &[&segment.to_string()],
            )?
            .iter()
            .map(|r| {
                let day: Day = r.get::<_, &str>(0).parse().map_err(|e| corrupt("day", e))?;
                let size = StoredSize {
                    day,
                    size: r.get::<_, i64>(1).max(0) as u64,
                    computed_at: instant(r.get(2))?,
                };
                Ok((day, size))
            })
            .collect::<Result<BTreeMap<Day, StoredSize>>>()?;
        let answer = f(&all);
        self.sizes.fill(segment, ticket, all);
        Ok(answer)
    }

    /// Whether the database holds nothing of headcount's yet: no workspace, key,
    /// segment or fact.
    pub fn is_empty(&self) -> Result<bool> {
        let row = self.pool.get()?.query_one(
            "SELECT (SELECT count(*) FROM workspaces) + (SELECT count(*) FROM api_keys) \
             + (SELECT count(*) FROM segments) + (SELECT count(*) FROM fact_chunks)",
            &[],
        )?;
        Ok(row.get::<_, i64>(0) == 0)
    }
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn instant(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("instant: {e}")))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json_list<T: std::str::FromStr>(text: &str, what: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(what, e))?;
    items
        .iter()
        .map(|s| s.parse::<T>().map_err(|e| corrupt(what, e)))
        .collect()
}

fn count(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn workspace_row(r: &postgres::Row) -> Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId(r.get(0)),
        name: r.get(1),
        time_zone: r.get(2),
        export_limit: r.get::<_, i64>(3).max(0) as u64,
        track_limit: r.get::<_, i64>(4).max(0) as u64,
        created_at: instant(r.get(5))?,
    })
}

fn key_row(r: &postgres::Row) -> Result<ApiKey> {
    let hash: Vec<u8> = r.get(3);
    Ok(ApiKey {
        id: r.get(0),
        workspace: WorkspaceId(r.get(1)),
        name: r.get(2),
        hash: hash
            .try_into()
            .map_err(|_| corrupt("key hash", "not 32 bytes"))?,
        permissions: json_list::<Permission>(r.get(4), "permissions")?,
        allow_ips: json_list(r.get(5), "allow_ips")?,
        created_at: instant(r.get(6))?,
        revoked_at: r.get::<_, Option<i64>>(7).map(instant).transpose()?,
    })
}

fn segment_row(r: &postgres::Row) -> Result<Segment> {
    let id: &str = r.get(0);
    Ok(Segment {
        id: id.parse().map_err(|e| corrupt("segment id", e))?,
        workspace: WorkspaceId(r.get(1)),
        name: r.get(2),
        filter: stored_filter(r.get::<_, String>(3)),
        text_description: r.get(4),
        tags: json_list(r.get(5), "tags")?,
        teams: json_list(r.get(6), "teams")?,
        analytics_tracking_enabled: r.get(7),
        created_at: instant(r.get(8))?,
        updated_at: instant(r.get(9))?,
        archived_at: r.get::<_, Option<i64>>(10).map(instant).transpose()?,
    })
}

const SEGMENT_COLUMNS: &str = "id, workspace_id, name, filter, text_description, tags, teams, \
    analytics_tracking_enabled, created_at, updated_at, archived_at";

/// Whether an error is the violation of a uniqueness rule.
fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Remembers an answer (inside a transaction or not).
fn put_idempotency(client: &mut impl GenericClient, record: &IdempotencyRecord) -> Result<()> {
    client.execute(
        "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, status, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, key) DO UPDATE SET \
         fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, body = EXCLUDED.body, \
         created_at = EXCLUDED.created_at",
        &[
            &record.workspace.0,
            &record.key,
            &record.fingerprint.as_slice(),
            &i32::from(record.status),
            &record.body,
            &micros(record.created_at),
        ],
    )?;
    Ok(())
}

impl Store for PostgresStore {
    fn create_workspace(&self, new: &NewWorkspace) -> Result<Workspace> {
        let now = micros(Timestamp::now());
        let row = self.pool.get()?.query_opt(
            "INSERT INTO workspaces (name, time_zone, export_limit, track_limit, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING \
             RETURNING id, name, time_zone, export_limit, track_limit, created_at",
            &[
                &new.name,
                &new.time_zone,
                &count(new.export_limit),
                &count(new.track_limit),
                &now,
            ],
        )?;
        match row {
            Some(row) => workspace_row(&row),
            None => Err(StoreError::Conflict(format!(
                "a workspace named \"{}\" already exists",
                new.name
            ))),
        }
    }

    fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.pool
            .get()?
            .query(
                "SELECT id, name, time_zone, export_limit, track_limit, created_at \
                 FROM workspaces ORDER BY id",
                &[],
            )?
            .iter()
            .map(workspace_row)
            .collect()
    }

    fn insert_key(&self, key: &ApiKey) -> Result<()> {
        let inserted = self.pool.get()?.execute(
            "INSERT INTO api_keys (id, workspace_id, name, hash, permissions, allow_ips, \
             created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
            &[
                &key.id,
                &key.workspace.0,
                &key.name,
                &key.hash.as_slice(),
                &to_json_list(&key.permissions),
                &to_json_list(&key.allow_ips),
                &micros(key.created_at),
                &key.revoked_at.map(micros),
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
        self.pool
            .get()?
            .query(
                "SELECT id, workspace_id, name, hash, permissions, allow_ips, created_at, \
                 revoked_at FROM api_keys ORDER BY seq",
                &[],
            )?
            .iter()
            .map(key_row)
            .collect()
    }

    fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let changed = self.pool.get()?.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &micros(at)],
        )?;
        Ok(changed > 0)
    }

    fn insert_segment(&self, s: &Segment) -> Result<()> {
        let result = self.pool.get()?.execute(
            &format!(
                "INSERT INTO segments ({SEGMENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &s.id.to_string(),
                &s.workspace.0,
                &s.name,
                &s.filter.to_string(),
                &s.text_description,
                &to_json_list(&s.tags),
                &to_json_list(&s.teams),
                &s.analytics_tracking_enabled,
                &micros(s.created_at),
                &micros(s.updated_at),
                &s.archived_at.map(micros),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a segment with id {} already exists",
                s.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn update_segment(&self, s: &Segment) -> Result<()> {
        let changed = self.pool.get()?.execute(
            "UPDATE segments SET name = $2, filter = $3, text_description = $4, tags = $5, \
             teams = $6, analytics_tracking_enabled = $7, updated_at = $8, archived_at = $9 \
             WHERE id = $1",
            &[
                &s.id.to_string(),
                &s.name,
                &s.filter.to_string(),
                &s.text_description,
                &to_json_list(&s.tags),
                &to_json_list(&s.teams),
                &s.analytics_tracking_enabled,
                &micros(s.updated_at),
                &s.archived_at.map(micros),
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no segment {}", s.id)));
        }
        Ok(())
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        self.pool
            .get()?
            .query(
                &format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY seq"),
                &[],
            )?
            .iter()
            .map(segment_row)
            .collect()
    }

    fn segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        self.pool
            .get()?
            .query_opt(
                &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = $1"),
                &[&id.to_string()],
            )?
            .as_ref()
            .map(segment_row)
            .transpose()
    }

    fn put_sizes(
        &self,
        segment: SegmentId,
        sizes: &[(Day, u64)],
        computed_at: Timestamp,
    ) -> Result<()> {
        let days: Vec<String> = sizes.iter().map(|(d, _)| d.to_string()).collect();
        let counts: Vec<i64> = sizes.iter().map(|(_, n)| count(*n)).collect();
        let stored = self.pool.get()?.execute(
            "INSERT INTO segment_sizes (segment_id, day, size, computed_at) \
             SELECT $1, day, size, $4 FROM unnest($2::text[], $3::bigint[]) AS s(day, size) \
             ON CONFLICT (segment_id, day) DO UPDATE SET size = EXCLUDED.size, \
             computed_at = EXCLUDED.computed_at",
            &[&segment.to_string(), &days, &counts, &micros(computed_at)],
        );
        // At once on this node (its own notification may come later); on failure too,
        // since the commit's outcome may be unknown.
        self.sizes.forget(segment);
        stored?;
        Ok(())
    }

    fn sizes(&self, segment: SegmentId, from: Day, to: Day) -> Result<Vec<StoredSize>> {
        if from > to {
            return Ok(Vec::new());
        }
        self.with_sizes(segment, |all| {
            all.range(from..=to).map(|(_, s)| *s).collect()
        })
    }

    fn sizes_in_memory(
        &self,
        segment: SegmentId,
        from: Day,
        to: Day,
        visit: &mut dyn FnMut(&StoredSize),
    ) -> bool {
        self.sizes
            .with(segment, |all| {
                if from <= to {
                    all.range(from..=to).for_each(|(_, s)| visit(s));
                }
            })
            .is_some()
    }

    fn forget_cached_sizes(&self, segment: SegmentId) {
        self.sizes.forget(segment);
    }

    fn clear_sizes(&self, segment: SegmentId) -> Result<()> {
        let cleared = self.pool.get()?.execute(
            "DELETE FROM segment_sizes WHERE segment_id = $1",
            &[&segment.to_string()],
        );
        self.sizes.forget(segment);
        cleared?;
        Ok(())
    }

    fn last_computed_at(&self, segment: SegmentId) -> Result<Option<Timestamp>> {
        self.with_sizes(segment, |all| all.values().map(|s| s.computed_at).max())
    }

    fn append_encoded(&self, chunks: &[(WorkspaceId, EncodedFacts)]) -> Result<()> {
        self.append_encoded_with(chunks, Receipts::default())
    }

    fn scan_facts(
        &self,
        workspace: WorkspaceId,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<()> {
        self.scan_facts_after(workspace, 0, visit).map(|_| ())
    }

    fn scan_facts_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<u64> {
        scan::facts_after(self, workspace, after, visit)
    }

    fn scan_chunks_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut crate::ChunkFactVisitor<'_>,
    ) -> Result<u64> {
        scan::chunks_after(self, workspace, after, visit)
    }

    fn last_fact_position(&self) -> Result<u64> {
        let last: i64 = self
            .pool
            .get()?
            .query_one("SELECT position FROM fact_log_head WHERE id = 1", &[])?
            .get(0);
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn purge_step(&self) -> Result<bool> {
        self.purge_one_step()
    }

    fn catalog_version(&self) -> Result<u64> {
        let version: i64 = self
            .pool
            .get()?
            .query_one("SELECT version FROM catalog_version WHERE id = 1", &[])?
            .get(0);
        Ok(version.max(0) as u64)
    }

    fn rate_windows(&self) -> Result<Vec<RateWindow>> {
        Ok(self
            .pool
            .get()?
            .query(
                "SELECT workspace_id, bucket, window_start, count FROM rate_windows \
                 ORDER BY workspace_id, bucket",
                &[],
            )?
            .iter()
            .map(|r| RateWindow {
                workspace: WorkspaceId(r.get(0)),
                bucket: r.get(1),
                window_start: r.get::<_, i64>(2).max(0) as u64,
                count: r.get::<_, i64>(3).max(0) as u64,
            })
            .collect())
    }

    fn put_rate_windows(&self, windows: &[RateWindow]) -> Result<()> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        let upsert = tx.prepare(
            "INSERT INTO rate_windows (workspace_id, bucket, window_start, count) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, bucket) DO UPDATE SET \
             window_start = EXCLUDED.window_start, count = EXCLUDED.count",
        )?;
        for w in windows {
            tx.execute(
                &upsert,
                &[
                    &w.workspace.0,
                    &w.bucket,
                    &count(w.window_start),
                    &count(w.count),
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn append_encoded_with(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<()> {
        self.append_positions(chunks, receipts).map(|_| ())
    }

    fn append_encoded_at(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<Option<(u64, u64)>> {
        self.append_positions(chunks, receipts)
    }

    fn scan_log_after(
        &self,
        after: u64,
        max_chunks: u32,
        visit: &mut dyn FnMut(WorkspaceId, u64, &UserKey, Fact),
    ) -> Result<u64> {
        follow::scan_log_after(self, after, max_chunks, visit)
    }

    fn wait_for_appends(&self, timeout: std::time::Duration) -> Result<bool> {
        follow::wait_for_appends(self, timeout)
    }

    fn idempotency_record(
        &self,
        workspace: WorkspaceId,
        key: &str,
        since: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = self.pool.get()?.query_opt(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys \
             WHERE workspace_id = $1 AND key = $2 AND created_at >= $3",
            &[&workspace.0, &key, &micros(since)],
        )?;
        let Some(r) = row else {
            return Ok(None);
        };
        let fingerprint: Vec<u8> = r.get(0);
        Ok(Some(IdempotencyRecord {
            workspace,
            key: key.to_string(),
            fingerprint: fingerprint
                .try_into()
                .map_err(|_| corrupt("idempotency fingerprint", "not 32 bytes"))?,
            status: u16::try_from(r.get::<_, i32>(1))
                .map_err(|e| corrupt("idempotency status", e))?,
            body: r.get(2),
            created_at: instant(r.get(3))?,
        }))
    }

    fn put_idempotency_record(&self, record: &IdempotencyRecord) -> Result<()> {
        put_idempotency(&mut *self.pool.get()?, record)
    }

    fn purge_idempotency_records(&self, before: Timestamp) -> Result<u64> {
        let gone = self.pool.get()?.execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &[&micros(before)],
        )?;
        Ok(gone)
    }

    fn begin_import(
        &self,
        workspace: WorkspaceId,
        sha256: Option<[u8; 32]>,
        name: &str,
        at: Timestamp,
    ) -> Result<ImportRecord> {
        let id: i64 = self
            .pool
            .get()?
            .query_one(
                "INSERT INTO imports (workspace_id, sha256, name, lines, bytes, started_at, \
                 updated_at) VALUES ($1, $2, $3, 0, 0, $4, $4) RETURNING id",
                &[
                    &workspace.0,
                    &sha256.as_ref().map(|h| h.as_slice()),
                    &name,
                    &micros(at),
                ],
            )?
            .get(0);
        let at = instant(micros(at))?;
        Ok(ImportRecord {
            id,
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
        self.pool
            .get()?
            .query(
                "SELECT id, sha256, name, lines, bytes, started_at, updated_at, finished_at \
                 FROM imports WHERE workspace_id = $1 ORDER BY id",
                &[&workspace.0],
            )?
            .iter()
            .map(|r| {
                let sha256: Option<Vec<u8>> = r.get(1);
                Ok(ImportRecord {
                    id: r.get(0),
                    workspace,
                    sha256: sha256
                        .map(|h| h.try_into())
                        .transpose()
                        .map_err(|_| corrupt("import sha256", "not 32 bytes"))?,
                    name: r.get(2),
                    lines: r.get::<_, i64>(3).max(0) as u64,
                    bytes: r.get::<_, i64>(4).max(0) as u64,
                    started_at: instant(r.get(5))?,
                    updated_at: instant(r.get(6))?,
                    finished_at: r.get::<_, Option<i64>>(7).map(instant).transpose()?,
                })
            })
            .collect()
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

    fn workspace_engine(&self, workspace: WorkspaceId) -> Result<String> {
        let row = self.pool.get()?.query_opt(
            "SELECT engine FROM workspaces WHERE id = $1",
            &[&workspace.0],
        )?;
        row.map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("no workspace {workspace}")))
    }

    fn set_workspace_engine(&self, workspace: WorkspaceId, engine: &str) -> Result<()> {
        let changed = self.pool.get()?.execute(
            "UPDATE workspaces SET engine = $2 WHERE id = $1",
            &[&workspace.0, &engine],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no workspace {workspace}")));
        }
        Ok(())
    }
}
