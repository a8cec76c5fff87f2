//! Durable storage of headcount: workspaces, API keys, segments, stored daily sizes
//! and every user fact, behind one [`Store`] trait.
//!
//! [`SqliteStore`] is the embedded backend (one data directory, WAL, versioned
//! migrations, one owning process). Every backend must pass [`conformance`].

pub mod chunk;
pub mod conformance;
pub mod error;
pub mod ipnet;
pub mod keys;
mod migrations;
pub mod sqlite;
pub mod types;

pub use chunk::EncodedFacts;
pub use error::StoreError;
pub use ipnet::IpNet;
pub use sqlite::SqliteStore;
pub use types::*;

use headcount_model::{Day, Fact, SegmentId, Timestamp, UserKey, WorkspaceId};

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
    /// Calls `visit` with every stored fact of a workspace, in no particular order.
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
    /// The position of the last chunk appended to the fact log (any workspace), 0
    /// while it is empty.
    fn last_fact_position(&self) -> Result<u64>;
    /// Deletes users and all their facts; returns how many existed.
    fn delete_users(&self, workspace: WorkspaceId, users: &[UserKey]) -> Result<u64>;
}
