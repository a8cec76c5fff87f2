//! Following the fact log: on PostgreSQL several nodes append to one log, and each
//! keeps its in-memory indexes current by applying, in position order, the chunks
//! the others committed.
//!
//! Every application to an index goes through one gate holding `seen`, the position
//! up to which this node has applied every chunk of every workspace: the writer
//! (its own groups, at once: read-your-writes) and the follower thread (the rest,
//! woken by `NOTIFY` or every [`POLL`]). A chunk is applied to its workspace's index
//! only if its position is above the index's, which then moves to it: never twice,
//! never out of order.

use crate::state::{SharedIndex, write};
use headcount_model::{Fact, FactKind, UserKey, WorkspaceId};
use headcount_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

/// The longest the follower sleeps without a notification.
pub const POLL: Duration = Duration::from_millis(100);

/// Chunks read from the log at once.
const PAGE: u32 = 256;

/// A chunk read from the log: its workspace, position and facts.
type Chunk = (WorkspaceId, u64, Vec<(UserKey, Fact)>);

/// Every workspace's index, shared by the state, the writer and the follower.
pub type Indexes = RwLock<HashMap<WorkspaceId, SharedIndex>>;

/// The gate through which chunks reach the indexes (see the module).
pub struct Follow {
    /// Whether other processes append to the log (PostgreSQL): without it, the
    /// writer is the one appender and applies its groups as they come.
    pub enabled: bool,
    indexes: Arc<Indexes>,
    seen: Mutex<u64>,
}

impl Follow {
    /// A gate over `indexes`; `enabled` on a store several nodes append to.
    pub fn new(indexes: Arc<Indexes>, enabled: bool) -> Follow {
        Follow {
            enabled,
            indexes,
            seen: Mutex::new(0),
        }
    }

    /// Takes the gate: the position up to which every chunk is applied.
    pub fn gate(&self) -> MutexGuard<'_, u64> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks every chunk up to `position` applied (the indexes were loaded from
    /// the log as it stood at `position` or later).
    pub fn start_at(&self, position: u64) {
        let mut seen = self.gate();
        *seen = (*seen).max(position);
    }

    /// The index of a workspace, created empty on first use.
    pub fn index(&self, ws: WorkspaceId) -> SharedIndex {
        if let Some(index) = crate::state::read(&self.indexes).get(&ws) {
            return index.clone();
        }
        write(&self.indexes).entry(ws).or_default().clone()
    }

    /// Applies, under the gate, every committed chunk after `*seen` (up to `upto`
    /// when given) in position order, and moves `*seen` along; answers the number of
    /// facts applied.
    pub fn catch_up(
        &self,
        store: &dyn Store,
        seen: &mut u64,
        upto: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut applied = 0;
        loop {
            if upto.is_some_and(|u| *seen >= u) {
                return Ok(applied);
            }
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut read = 0u32;
            let last =
                store.scan_log_after(*seen, PAGE, &mut |ws, position, user, fact| match chunks
                    .last_mut()
                {
                    Some((_, p, facts)) if *p == position => facts.push((user.clone(), fact)),
                    _ => {
                        read += 1;
                        chunks.push((ws, position, vec![(user.clone(), fact)]));
                    }
                })?;
            for (ws, position, facts) in chunks {
                if upto.is_some_and(|u| position > u) {
                    return Ok(applied);
                }
                let index = self.index(ws);
                let mut index = write(&index);
                if position > index.position() {
                    for (user, fact) in &facts {
                        match fact.kind {
                            FactKind::Deletion => {
                                index.delete_user(user);
                            }
                            _ => index.apply(user, fact),
                        }
                    }
                    applied += facts.len() as u64;
                    index.set_position(position);
                }
                drop(index);
                *seen = position;
            }
            // A chunk with no facts is never written, but move past what was read.
            if last > *seen && upto.is_none_or(|u| last <= u) {
                *seen = last;
            }
            if read < PAGE {
                return Ok(applied);
            }
        }
    }

    /// Starts the follower thread: it ends when the store or this gate is dropped.
    /// `ready` says when the indexes are loaded (nothing is followed before).
    pub fn start(
        follow: &Arc<Follow>,
        store: &Arc<dyn Store>,
        ready: impl Fn() -> bool + Send + 'static,
    ) {
        let follow: Weak<Follow> = Arc::downgrade(follow);
        let store: Weak<dyn Store> = Arc::downgrade(store);
        let spawned = std::thread::Builder::new()
            .name("headcount-follow".into())
            .spawn(move || run(follow, store, ready));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the follower thread");
        }
    }
}

fn run(follow: Weak<Follow>, store: Weak<dyn Store>, ready: impl Fn() -> bool) {
    let mut failing = false;
    loop {
        let (Some(follow), Some(store)) = (follow.upgrade(), store.upgrade()) else {
            return;
        };
        if ready() {
            let mut seen = follow.gate();
            match follow.catch_up(store.as_ref(), &mut seen, None) {
                Ok(applied) => {
                    if applied > 0 {
                        tracing::debug!(applied, position = *seen, "followed the fact log");
                    }
                    if failing {
                        tracing::info!("following the fact log again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot follow the fact log; retrying");
                    }
                    failing = true;
                }
            }
        }
        drop(follow);
        if store.wait_for_appends(POLL).is_err() {
            drop(store);
            std::thread::sleep(POLL);
        }
    }
}
