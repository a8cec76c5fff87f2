//! Durable storage of headcount: workspaces, API keys, segments, stored daily sizes
//! and every user fact, behind one [`Store`] trait.
//!
//! [`SqliteStore`] is the embedded backend (one data directory, WAL, versioned
//! migrations, one writer process); [`PostgresStore`] is the shared one (several
//! processes on one database). Every backend must pass [`conformance`].

pub mod chunk;
pub mod conformance;
pub mod digest;
pub mod error;
pub mod ipnet;
pub mod keys;
mod migrations;
pub mod postgres;
mod purge_plan;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;
pub mod types;

pub use chunk::{EncodedFacts, FactRef};
pub use error::StoreError;
pub use ipnet::IpNet;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use types::*;

use headcount_model::{Day, Fact, SegmentId, Timestamp, UserKey, WorkspaceId};

/// The engine of a workspace whose facts and counting are in this process's memory.
pub const ENGINE_MEMORY: &str = "memory";
/// The engine of a workspace whose facts and counting are in ClickHouse.
pub const ENGINE_CLICKHOUSE: &str = "clickhouse";

/// What [`Store::scan_chunks_after`] calls for each fact: `(chunk, users, user, fact)`.
pub type ChunkFactVisitor<'a> = dyn FnMut(u64, &[UserKey], usize, Fact) + 'a;

/// Facts of one workspace, to append.
pub type FactBatch<'a> = (WorkspaceId, &'a [(UserKey, Fact)]);

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What every storage backend provides. Calls are synchronous and may block on I/O:
/// async callers run them on a blocking thread.
pub trait Store: Send + Sync {
    /// Creates a workspace; a name already taken is [`StoreError::Conflict`].
    fn create_workspace(&self, new: &NewWorkspace) -> Result<Workspace>;
    /// Every workspace, oldest first.
    fn workspaces(&self) -> Result<Vec<Workspace>>;
    /// The engine of a workspace: `"memory"` (the default) or `"clickhouse"`. A
    /// backend that does not record engines has only memory workspaces.
    fn workspace_engine(&self, workspace: WorkspaceId) -> Result<String> {
        let _ = workspace;
        Ok(ENGINE_MEMORY.to_string())
    }
    /// Records the engine of a workspace (see [`Store::workspace_engine`]).
    fn set_workspace_engine(&self, workspace: WorkspaceId, engine: &str) -> Result<()> {
        let _ = workspace;
        Err(StoreError::Conflict(format!(
            "this store cannot record the engine \"{engine}\" of a workspace"
        )))
    }

    /// Stores a new key (its secret already hashed).
    fn insert_key(&self, key: &ApiKey) -> Result<()>;
    /// Every key of every workspace, revoked ones included, oldest first.
    fn keys(&self) -> Result<Vec<ApiKey>>;
    /// Marks a key revoked at `at`; false when no live key has that id.
    fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool>;

    /// Stores a new segment.
    fn insert_segment(&self, segment: &Segment) -> Result<()>;
    /// Replaces a stored segment's fields (matched by id).
    fn update_segment(&self, segment: &Segment) -> Result<()>;
    /// Every segment of every workspace, archived ones included, oldest first.
    fn segments(&self) -> Result<Vec<Segment>>;
    /// One segment, archived or not; `None` for an unknown id.
    fn segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        Ok(self.segments()?.into_iter().find(|s| s.id == id))
    }

    /// Stores (or replaces) daily sizes of a segment, computed at `computed_at`.
    fn put_sizes(
        &self,
        segment: SegmentId,
        sizes: &[(Day, u64)],
        computed_at: Timestamp,
    ) -> Result<()>;
    /// The stored sizes of a segment for days in `from..=to`, oldest first.
    fn sizes(&self, segment: SegmentId, from: Day, to: Day) -> Result<Vec<StoredSize>>;
    /// What [`Store::sizes`] would answer, calling `visit` for each size oldest first,
    /// when the store can answer from memory without waiting on I/O; `false` (and no
    /// call) otherwise. Lets an async caller skip a thread hop on the common path.
    fn sizes_in_memory(
        &self,
        segment: SegmentId,
        from: Day,
        to: Day,
        visit: &mut dyn FnMut(&StoredSize),
    ) -> bool {
        let _ = (segment, from, to, visit);
        false
    }
    /// Drops whatever the store keeps in memory about a segment's sizes (the stored
    /// sizes stay; the next read loads them again). Called when the segment is
    /// archived, so that archived segments hold no memory.
    fn forget_cached_sizes(&self, segment: SegmentId) {
        let _ = segment;
    }
    /// Forgets every stored size of a segment (its filter changed).
    fn clear_sizes(&self, segment: SegmentId) -> Result<()>;
    /// When the newest stored size of a segment was computed.
    fn last_computed_at(&self, segment: SegmentId) -> Result<Option<Timestamp>>;

    /// Appends facts in one durable transaction: all of them or none.
    fn append_facts(&self, workspace: WorkspaceId, facts: &[(UserKey, Fact)]) -> Result<()> {
        self.append_batches(&[(workspace, facts)])
    }
    /// Appends the facts of several workspaces in one durable transaction (group
    /// commit: one disk sync for many requests): all of them or none.
    fn append_batches(&self, batches: &[FactBatch<'_>]) -> Result<()> {
        let encoded: Vec<(WorkspaceId, EncodedFacts)> = batches
            .iter()
            .filter(|(_, facts)| !facts.is_empty())
            .map(|(ws, facts)| (*ws, EncodedFacts::encode(facts)))
            .collect();
        self.append_encoded(&encoded)
    }
    /// Appends facts encoded beforehand (on any thread, see [`EncodedFacts`]), in one
    /// durable transaction and in the order given: all of them or none.
    fn append_encoded(&self, chunks: &[(WorkspaceId, EncodedFacts)]) -> Result<()>;
    /// Calls `visit` with every stored fact of a workspace in log order: the order of
    /// the appends, and within one the order given. Replayed in this order, a
    /// [`FactKind::Deletion`](headcount_model::FactKind::Deletion) forgets its user's
    /// facts before it, and the user's facts after it make a new user.
    fn scan_facts(
        &self,
        workspace: WorkspaceId,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<()>;
    /// Calls `visit` with every stored fact of a workspace appended after fact-log
    /// position `after`, in append order, and returns the position of the last chunk
    /// read (`after` when there is none). A chunk's position is its place in the fact
    /// log of the whole store: positions only grow, so a reader that has applied every
    /// fact up to a position resumes from it (0: from the start).
    fn scan_facts_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<u64>;
    /// [`Store::scan_facts_after`] by chunk: `visit(chunk, users, user, fact)` gets
    /// each fact with its chunk's users (`users[user]` is its user) and a number that
    /// is the same for the facts of one chunk and changes from one chunk to the next.
    /// Lets a replay look each user up once per chunk. By default, every fact is a
    /// chunk of its own.
    fn scan_chunks_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        visit: &mut crate::ChunkFactVisitor<'_>,
    ) -> Result<u64> {
        let mut n = 0u64;
        self.scan_facts_after(workspace, after, &mut |user, fact| {
            n += 1;
            visit(n, std::slice::from_ref(user), 0, fact);
        })
    }
    /// The position of the last chunk appended to the fact log (any workspace), 0
    /// while it is empty.
    fn last_fact_position(&self) -> Result<u64>;

    /// One small step of the physical removal of deleted users' facts: the facts
    /// (deletion entries excepted) that a deletion entry appended in the log after
    /// them made unreachable. A step holds the store for a few milliseconds at most
    /// and lets go between steps; what is pending survives a restart. Answers whether
    /// anything was pending (call again until `false`). Scans answer the same before
    /// and after a purge, replayed in log order.
    fn purge_step(&self) -> Result<bool>;

    /// A number that changes in the same transaction as every change of workspaces,
    /// keys or segments, by any process: a server polls it to pick up administration
    /// done while it runs.
    fn catalog_version(&self) -> Result<u64>;

    /// The saved rate-limit windows, one per (workspace, bucket).
    fn rate_windows(&self) -> Result<Vec<RateWindow>>;
    /// Saves rate-limit windows in one transaction, each replacing the saved window of
    /// its (workspace, bucket).
    fn put_rate_windows(&self, windows: &[RateWindow]) -> Result<()>;

    /// Appends facts encoded beforehand, as [`Store::append_encoded`], and commits
    /// `receipts` (remembered answers, import progress) in the same durable
    /// transaction: all of it or none, so that they can never disagree with the facts.
    fn append_encoded_with(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<()>;
    /// [`Store::append_batches`] with `receipts` in the same transaction.
    fn append_batches_with(&self, batches: &[FactBatch<'_>], receipts: Receipts<'_>) -> Result<()> {
        let encoded: Vec<(WorkspaceId, EncodedFacts)> = batches
            .iter()
            .filter(|(_, facts)| !facts.is_empty())
            .map(|(ws, facts)| (*ws, EncodedFacts::encode(facts)))
            .collect();
        self.append_encoded_with(&encoded, receipts)
    }

    /// [`Store::append_encoded_with`], answering the fact-log positions of the first
    /// and last chunk written (`None`: nothing was). The default reads the last
    /// position after the commit: exact only for a store with one appender whose
    /// positions are consecutive; PostgreSQL, appended to by several nodes, answers
    /// from its transaction.
    fn append_encoded_at(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<Option<(u64, u64)>> {
        let written = chunks.iter().filter(|(_, c)| !c.is_empty()).count() as u64;
        self.append_encoded_with(chunks, receipts)?;
        if written == 0 {
            return Ok(None);
        }
        let last = self.last_fact_position()?;
        Ok(Some((last.saturating_sub(written - 1), last)))
    }
    /// [`Store::append_batches_with`] answering positions as [`Store::append_encoded_at`].
    fn append_batches_at(
        &self,
        batches: &[FactBatch<'_>],
        receipts: Receipts<'_>,
    ) -> Result<Option<(u64, u64)>> {
        let encoded: Vec<(WorkspaceId, EncodedFacts)> = batches
            .iter()
            .filter(|(_, facts)| !facts.is_empty())
            .map(|(ws, facts)| (*ws, EncodedFacts::encode(facts)))
            .collect();
        self.append_encoded_at(&encoded, receipts)
    }
    /// Calls `visit` with the facts of every workspace in the chunks after fact-log
    /// position `after`, in log order, with each chunk's workspace and position, up to
    /// `max_chunks` chunks; returns the position of the last chunk read (`after` when
    /// none). How a node follows the appends of the others (PostgreSQL only).
    fn scan_log_after(
        &self,
        after: u64,
        max_chunks: u32,
        visit: &mut dyn FnMut(WorkspaceId, u64, &UserKey, Fact),
    ) -> Result<u64> {
        let _ = (after, max_chunks, visit);
        Err(StoreError::Unsupported("following the fact log"))
    }
    /// Waits until another process may have appended to the fact log, at most
    /// `timeout`; answers whether it was woken (PostgreSQL: `LISTEN`). The default
    /// just sleeps: a caller polls.
    fn wait_for_appends(&self, timeout: std::time::Duration) -> Result<bool> {
        std::thread::sleep(timeout);
        Ok(false)
    }
    /// The answer remembered for `key` in `workspace`, if it was given at or after
    /// `since` (an older one has expired and is as good as absent).
    fn idempotency_record(
        &self,
        workspace: WorkspaceId,
        key: &str,
        since: Timestamp,
    ) -> Result<Option<IdempotencyRecord>>;
    /// Remembers an answer durably, replacing an expired one of the same key.
    fn put_idempotency_record(&self, record: &IdempotencyRecord) -> Result<()>;
    /// Forgets the answers given before `before`; returns how many.
    fn purge_idempotency_records(&self, before: Timestamp) -> Result<u64>;

    /// Starts the record of one input of an import (nothing committed yet).
    fn begin_import(
        &self,
        workspace: WorkspaceId,
        sha256: Option<[u8; 32]>,
        name: &str,
        at: Timestamp,
    ) -> Result<ImportRecord>;
    /// Every import record of a workspace, oldest first.
    fn imports(&self, workspace: WorkspaceId) -> Result<Vec<ImportRecord>>;

    /// Takes the lease `name` for `holder` until `now + ttl`, or renews it: true when
    /// `holder` holds it now (it was free, had expired by `now`, or was already
    /// `holder`'s), false while another holder's lease runs. Atomic across every
    /// process sharing the store: of concurrent callers, one gets it.
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<bool>;
    /// Gives up `holder`'s lease `name` (nothing when another holds it, or nobody).
    fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}
