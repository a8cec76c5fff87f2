//! The state every handler shares.

use crate::catalog::Catalog;
use crate::ratelimit::RateLimiter;
use headcount_engine::Index;
use headcount_model::{SegmentId, Timestamp, WorkspaceId};
use headcount_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Days of history (re)computed when a segment is created or its filter changes.
    pub backfill_days: u32,
    /// Most objects in each array of a `/users/track` body.
    pub max_track_objects: usize,
    /// How often the scheduler looks for completed days to store.
    pub schedule_every: Duration,
    /// Time allowed from the first byte of a request head to its end; the connection
    /// is closed beyond.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long, and no request being
    /// handled, is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; beyond, new ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backfill_days: 100,
            max_track_objects: 75,
            schedule_every: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The in-memory index of one workspace.
pub type SharedIndex = Arc<RwLock<Index>>;

/// Shared by every handler and background task.
pub struct Shared {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// Workspaces, keys and segments.
    pub catalog: RwLock<Catalog>,
    /// User facts of each workspace.
    pub indexes: RwLock<HashMap<WorkspaceId, SharedIndex>>,
    /// Rate-limit counters (saved by `upkeep.rs`).
    pub limiter: RateLimiter,
    /// `Idempotency-Key`s being processed.
    pub idempotency: crate::idempotency::InFlight,
    /// Settings.
    pub config: Config,
    /// The group-commit writer of ingested facts.
    pub writer: crate::writer::Writer,
    /// Held by every change to segments (create, update, archive) from the check of its
    /// `in_segment` references until the catalog holds the change, so that two
    /// concurrent updates cannot each pass the cycle check and together make a cycle.
    pub segment_writes: tokio::sync::Mutex<()>,
    /// One lock per segment, held while its daily sizes are computed and stored (from
    /// reading its plan in the catalog to writing the sizes) and while its history is
    /// cleared, so that sizes computed with a filter that has just been replaced can
    /// never land after the clearing of the history.
    size_locks: Mutex<HashMap<SegmentId, Arc<RwLock<()>>>>,
    /// The latest live size of each segment, reused while it is provably the same.
    live: Mutex<HashMap<SegmentId, LiveSize>>,
    /// Held by each background backfill while it runs: one at a time, each on every
    /// core, so that many segments created together become ready one after another
    /// instead of all competing until the end.
    pub backfills: Mutex<()>,
}

/// What handlers receive.
pub type AppState = Arc<Shared>;

/// Reads a lock, ignoring poisoning: every writer leaves the data consistent before
/// anything that could panic.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes a lock, ignoring poisoning (see [`read`]).
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Loads the catalog, every workspace's facts and the saved rate-limit windows from
    /// the store.
    pub fn load(store: Arc<dyn Store>, config: Config) -> Result<AppState, StoreError> {
        let catalog = Catalog::load(store.as_ref())?;
        let mut indexes = HashMap::new();
        for entry in catalog.workspaces() {
            let mut index = Index::new();
            let started = std::time::Instant::now();
            store.scan_facts(entry.workspace.id, &mut |user, fact| {
                index.apply(user, &fact)
            })?;
            // One sorted run per column, at its exact size: faster queries, less memory.
            index.compact();
            tracing::info!(
                workspace = %entry.workspace.name,
                users = index.user_count(),
                events = index.event_count(),
                heap_mb = index.heap_bytes() / 1_000_000,
                seconds = started.elapsed().as_secs_f64(),
                "loaded workspace"
            );
            indexes.insert(entry.workspace.id, Arc::new(RwLock::new(index)));
        }
        let state = Arc::new(Shared {
            writer: crate::writer::Writer::start(&store),
            store,
            catalog: RwLock::new(catalog),
            indexes: RwLock::new(indexes),
            limiter: RateLimiter::default(),
            idempotency: Default::default(),
            config,
            segment_writes: tokio::sync::Mutex::new(()),
            size_locks: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            backfills: Mutex::new(()),
        });
        crate::upkeep::restore_windows(&state)?;
        Ok(state)
    }

    /// The index of a workspace (created empty on first use).
    pub fn index(&self, ws: WorkspaceId) -> SharedIndex {
        if let Some(index) = read(&self.indexes).get(&ws) {
            return index.clone();
        }
        write(&self.indexes).entry(ws).or_default().clone()
    }

    /// The lock of a segment's stored sizes (see [`Shared`]); blocking, so taken off
    /// the async runtime.
    pub fn size_lock(&self, segment: SegmentId) -> Arc<RwLock<()>> {
        self.size_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(segment)
            .or_default()
            .clone()
    }
}

/// A live size and the conditions under which it is still the answer.
#[derive(Debug, Clone, Copy)]
struct LiveSize {
    size: u64,
    version: u64,
    generation: u64,
    from: Timestamp,
    until: Timestamp,
}

impl Shared {
    /// The live size [`Shared::live_size`] would reuse, if there is one.
    pub fn cached_live_size(
        &self,
        segment: SegmentId,
        index: &Index,
        generation: u64,
        now: Timestamp,
    ) -> Option<u64> {
        let c = *self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&segment)?;
        (c.version == index.version()
            && c.generation == generation
            && c.from <= now
            && now < c.until)
            .then_some(c.size)
    }

    /// The size of a segment as of `now` (today's live point): computed by `compute`,
    /// or reused from an earlier request when nothing it depends on can have changed:
    /// the same facts (`Index::version`), the same filters (`Catalog::generation`),
    /// and `now` within the earlier answer's `Index::stable_until`.
    pub fn live_size(
        &self,
        segment: SegmentId,
        index: &Index,
        generation: u64,
        now: Timestamp,
        tz: &jiff::tz::TimeZone,
        compute: impl FnOnce() -> u64,
    ) -> u64 {
        if let Some(size) = self.cached_live_size(segment, index, generation, now) {
            return size;
        }
        let size = compute();
        let entry = LiveSize {
            size,
            version: index.version(),
            generation,
            from: now,
            until: index.stable_until(now, tz),
        };
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(segment, entry);
        size
    }
}

/// The current instant, at the microsecond precision the store keeps; one place, so
/// that the whole server agrees on "now".
pub fn now() -> Timestamp {
    let t = Timestamp::now();
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}
