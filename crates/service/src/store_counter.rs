//! Rate-limit windows counted in the store (PostgreSQL's `rate_counts`): exact across
//! every node on one database, for a cluster without Redis.

use crate::limits::{CountFuture, CounterUnavailable, WindowCounter};
use crate::ratelimit::{Bucket, Window};
use headcount_model::WorkspaceId;
use headcount_store::Store;
use std::sync::Arc;

/// A [`WindowCounter`] on [`Store::count_rate_window`].
pub struct StoreCounter {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCounter")
    }
}

impl StoreCounter {
    /// Counts in `store`, which must support [`Store::count_rate_window`].
    pub fn new(store: Arc<dyn Store>) -> StoreCounter {
        StoreCounter { store }
    }
}

impl WindowCounter for StoreCounter {
    fn count(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
        hit: bool,
    ) -> CountFuture<'_> {
        let store = self.store.clone();
        Box::pin(async move {
            let window_secs = window_secs.max(1);
            let start = now - now % window_secs;
            let count = tokio::task::spawn_blocking(move || {
                store.count_rate_window(key.0, key.1.as_str(), start, hit)
            })
            .await
            .map_err(|e| CounterUnavailable(e.to_string()))?
            .map_err(|e| CounterUnavailable(e.to_string()))?;
            Ok(Window {
                limit,
                remaining: limit.saturating_sub(count),
                reset: start + window_secs,
                exceeded: hit && count > limit,
            })
        })
    }
}
