//! The storage-free part of `Idempotency-Key`: the keys whose first request is being
//! processed on this node. The HTTP middleware is the server's (`idempotency.rs`); the
//! answers themselves are remembered in the store.

use crate::state::AppState;
use headcount_model::{Timestamp, WorkspaceId};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// How often expired keys are purged from the store, at most (microseconds).
pub const PURGE_EVERY_MICROS: i64 = 10 * 60 * 1_000_000;

/// The keys whose first request is being processed, and when expired keys were last
/// purged.
#[derive(Debug, Default)]
pub struct InFlight {
    keys: Mutex<HashSet<(WorkspaceId, String)>>,
    last_purge: AtomicI64,
}

/// A key claimed by the request processing it; released when dropped.
pub struct Claim {
    state: AppState,
    id: (WorkspaceId, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.state
            .idempotency
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl InFlight {
    /// Claims `key` of `workspace` for the request processing it; `None` if another
    /// request holds it.
    pub fn claim(state: &AppState, workspace: WorkspaceId, key: &str) -> Option<Claim> {
        let id = (workspace, key.to_string());
        let mut keys = state
            .idempotency
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        keys.insert(id.clone()).then(|| Claim {
            state: state.clone(),
            id,
        })
    }

    /// Whether a purge is due at `now` (and, if so, claims it).
    pub fn purge_due(&self, now: Timestamp) -> bool {
        let now = now.as_microsecond();
        let last = self.last_purge.load(Ordering::Relaxed);
        now - last >= PURGE_EVERY_MICROS
            && self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
