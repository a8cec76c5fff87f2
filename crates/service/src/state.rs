//! The state every handler shares.

use crate::catalog::Catalog;
use crate::checkpoints::{self, Checkpoints};
use crate::limits::WindowCounter;
use crate::loading::{Loading, Phase};
use crate::ratelimit::RateLimiter;
use headcount_engine::Index;
use headcount_model::{SegmentId, Timestamp, WorkspaceId};
use headcount_store::{Store, StoreError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

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
    /// Where the indexes' checkpoints live (`<data-dir>/checkpoints`); `None`: no
    /// checkpoints, every start rebuilds the indexes from the facts.
    pub checkpoints: Option<PathBuf>,
    /// A workspace's index is checkpointed once this many changes (facts applied,
    /// users deleted) have accumulated since its last checkpoint…
    pub checkpoint_changes: u64,
    /// …or once this long has passed since it, if anything changed.
    pub checkpoint_every: Duration,
    /// This node's name, in the logs and `/readyz` (`serve --node-name`; by default
    /// the host name and port).
    pub node_name: String,
    /// Where rate-limit windows are counted (`serve --redis-url`: a
    /// [`crate::limits::RedisCounter`]); `None`: in this process, saved to the store.
    pub counter: Option<Arc<dyn WindowCounter>>,
    /// Whether the API's address also serves `GET /metrics` (false when
    /// `serve --metrics-listen` serves it elsewhere).
    pub metrics_on_api: bool,
    /// Whether other nodes append to the store's fact log (several `serve` on one
    /// PostgreSQL database): this node then follows it (see `follow.rs`).
    pub follow_log: bool,
    /// Where the facts of workspaces of engine `clickhouse` live (`serve
    /// --clickhouse-url`); `None`: such workspaces answer 503.
    pub clickhouse: Option<headcount_clickhouse::ClickHouse>,
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
            checkpoints: None,
            checkpoint_changes: 1_000_000,
            checkpoint_every: Duration::from_secs(600),
            node_name: String::new(),
            counter: None,
            metrics_on_api: true,
            follow_log: false,
            clickhouse: None,
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
    pub indexes: Arc<crate::follow::Indexes>,
    /// The gate through which the writer and the follower apply chunks.
    pub follow: Arc<crate::follow::Follow>,
    /// This process's rate-limit counters (saved by `upkeep.rs`).
    pub limiter: Arc<RateLimiter>,
    /// Where requests are counted: `limiter`, or the shared counter of
    /// [`Config::counter`].
    pub counter: Arc<dyn WindowCounter>,
    /// `Idempotency-Key`s being processed.
    pub idempotency: crate::idempotency::InFlight,
    /// Settings.
    pub config: Config,
    /// Who holds this state's leases (see `leases.rs`).
    pub lease_holder: String,
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
    /// The indexes' checkpoints, if the configuration has a directory for them.
    pub checkpoints: Option<Checkpoints>,
    /// Where loading the indexes stands (`/readyz`).
    pub loading: Loading,
    /// Per workspace, the index version its last checkpoint holds and when it was
    /// written; absent: no checkpoint matches the index.
    pub checkpointed: Mutex<HashMap<WorkspaceId, (u64, Instant)>>,
    /// The server's metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Each workspace's engine, and ClickHouse (see `counting.rs`).
    pub engines: crate::counting::Engines,
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
    /// Loads the catalog and every workspace's index, and returns a ready state: the
    /// way for a caller that has nothing to serve until then.
    pub fn load(store: Arc<dyn Store>, config: Config) -> Result<AppState, StoreError> {
        let state = Shared::open(store, config)?;
        state.loading.claim_start();
        state.load_indexes()?;
        Ok(state)
    }

    /// Loads the catalog only: the indexes are empty, and the state not ready, until
    /// [`Shared::start_loading`] (or [`Shared::load_indexes`]) has loaded them.
    pub fn open(store: Arc<dyn Store>, config: Config) -> Result<AppState, StoreError> {
        let catalog = Catalog::load(store.as_ref())?;
        let checkpoints = config.checkpoints.clone().map(Checkpoints::at);
        let loading = Loading::default();
        let limiter = Arc::new(RateLimiter::default());
        let counter: Arc<dyn WindowCounter> = match &config.counter {
            Some(shared) => shared.clone(),
            None => limiter.clone(),
        };
        loading
            .workspaces
            .store(catalog.workspaces().count(), Ordering::Relaxed);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let observed = metrics.clone();
        let indexes = Arc::new(RwLock::new(HashMap::new()));
        let follow = Arc::new(crate::follow::Follow::new(
            indexes.clone(),
            config.follow_log,
        ));
        if config.follow_log {
            // The indexes are loaded from the log as it stands now or later.
            follow.start_at(store.last_fact_position()?);
        }
        let engines = crate::counting::Engines::new(config.clickhouse.clone());
        let state = Arc::new(Shared {
            engines,
            writer: crate::writer::Writer::start_with(
                &store,
                follow.clone(),
                Box::new(move |requests, took| observed.writer_commit(requests, took)),
            ),
            metrics,
            store,
            catalog: RwLock::new(catalog),
            indexes,
            follow,
            limiter,
            counter,
            idempotency: Default::default(),
            lease_holder: crate::leases::holder_name(&config.node_name),
            config,
            segment_writes: tokio::sync::Mutex::new(()),
            size_locks: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            backfills: Mutex::new(()),
            checkpoints,
            loading,
            checkpointed: Mutex::new(HashMap::new()),
        });
        crate::upkeep::restore_windows(&state)?;
        if state.config.follow_log {
            let weak = Arc::downgrade(&state);
            crate::follow::Follow::start(&state.follow, &state.store, move || {
                weak.upgrade().is_some_and(|s| s.loading.is_ready())
            });
        }
        Ok(state)
    }

    /// Loads every index on a thread of its own, once (later calls do nothing); the
    /// state becomes ready when it is done. A failure is logged and leaves the state
    /// [`Phase::Failed`].
    pub fn start_loading(state: &AppState) {
        if !state.loading.claim_start() {
            return;
        }
        let state = state.clone();
        let spawned = std::thread::Builder::new()
            .name("headcount-load".into())
            .spawn(move || {
                if let Err(e) = state.load_indexes() {
                    tracing::error!(error = %e, "loading the indexes failed");
                    state.loading.set(Phase::Failed(e.to_string()));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the loading thread");
        }
    }

    /// Loads every workspace's index, each from its checkpoint and the facts after
    /// it, or from every stored fact (see [`checkpoints::load_index`]); then marks the
    /// state ready.
    pub fn load_indexes(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let workspaces: Vec<(WorkspaceId, String)> = read(&self.catalog)
            .workspaces()
            .map(|e| (e.workspace.id, e.workspace.name.clone()))
            .collect();
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.remove_temporaries();
        }
        let progress = &self.loading;
        progress
            .workspaces
            .store(workspaces.len(), Ordering::Relaxed);
        tracing::info!(workspaces = workspaces.len(), "loading the indexes");
        for (ws, name) in workspaces {
            let begun = Instant::now();
            let before = progress.facts.load(Ordering::Relaxed);
            let mut last_log = Instant::now();
            let loaded = checkpoints::load_index(
                self.store.as_ref(),
                self.checkpoints.as_ref(),
                ws,
                &name,
                &mut |facts| {
                    progress.facts.store(before + facts, Ordering::Relaxed);
                    if last_log.elapsed() >= Duration::from_secs(2) {
                        last_log = Instant::now();
                        tracing::info!(workspace = %name, facts, "loading: facts applied");
                    }
                },
            )?;
            let index = loaded.index;
            tracing::info!(
                workspace = %name,
                from_checkpoint = loaded.from_checkpoint,
                facts_replayed = loaded.replayed,
                users = index.user_count(),
                events = index.event_count(),
                heap_mb = index.heap_bytes() / 1_000_000,
                seconds = begun.elapsed().as_secs_f64(),
                "loaded workspace"
            );
            if loaded.from_checkpoint {
                progress.from_checkpoints.fetch_add(1, Ordering::Relaxed);
                if loaded.replayed == 0 {
                    // The checkpoint on disk is this very index.
                    self.checkpointed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(ws, (index.version(), Instant::now()));
                }
            }
            write(&self.indexes).insert(ws, Arc::new(RwLock::new(index)));
            progress.loaded.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            facts_replayed = progress.facts.load(Ordering::Relaxed),
            node = %self.config.node_name,
            "ready"
        );
        progress.set(Phase::Ready);
        Ok(())
    }

    /// The index of a workspace (created empty on first use).
    pub fn index(&self, ws: WorkspaceId) -> SharedIndex {
        self.follow.index(ws)
    }

    /// The lock of a segment's stored sizes (see [`Shared`]); blocking, so taken off
    /// the async runtime.
    pub fn size_lock(&self, segment: SegmentId) -> Arc<RwLock<()>> {
        let mut locks = self.size_locks.lock().unwrap_or_else(|p| p.into_inner());
        // A lock nobody holds can be dropped: only this map can hand it out, under this
        // mutex, so the next taker gets a fresh one that nobody holds either. Keeps the
        // map at the locks in use instead of one per segment ever computed.
        locks.retain(|id, lock| *id == segment || Arc::strong_count(lock) > 1);
        locks.entry(segment).or_default().clone()
    }

    /// Releases what this process keeps in memory for a segment (its cached live size,
    /// its size lock when nobody holds it, the store's cache of its sizes): called when
    /// it is archived. Anything asked of it later is loaded again.
    pub fn forget_segment(&self, segment: SegmentId) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&segment);
        // Every lock nobody holds goes (see `size_lock`), this segment's among them.
        self.size_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, lock| Arc::strong_count(lock) > 1);
        self.store.forget_cached_sizes(segment);
    }

    /// How many segments have a cached live size and a size lock in memory (tests pin
    /// that archived segments leave both).
    pub fn segment_entries(&self) -> (usize, usize) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).len();
        let locks = self
            .size_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (live, locks)
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
