//! Rate-limit windows counted in the store (PostgreSQL's `rate_counts`): exact across
//! every node on one database, for a cluster without Redis. Concurrent requests of one
//! window share a round trip ([`crate::batched_counter`]).

use crate::batched_counter::{BatchedCounter, SharedWindows, WindowKey};
use crate::limits::CounterUnavailable;
use headcount_store::Store;
use std::sync::Arc;

/// A [`crate::limits::WindowCounter`] on [`Store::count_rate_window`].
pub type StoreCounter = BatchedCounter<StoreWindows>;

/// Windows kept by [`Store::count_rate_window`].
pub struct StoreWindows(Arc<dyn Store>);

impl StoreCounter {
    /// Counts in `store`, which must support [`Store::count_rate_window`].
    pub fn new(store: Arc<dyn Store>) -> StoreCounter {
        BatchedCounter::batching(StoreWindows(store))
    }
}

impl SharedWindows for StoreWindows {
    async fn add(
        &self,
        window: WindowKey,
        _window_secs: u64,
        hits: u64,
    ) -> Result<u64, CounterUnavailable> {
        let store = self.0.clone();
        let (workspace, bucket, start) = window;
        // The store's client blocks: it runs off the async runtime.
        tokio::task::spawn_blocking(move || {
            store.count_rate_window(workspace, bucket.as_str(), start, hits)
        })
        .await
        .map_err(|e| CounterUnavailable(e.to_string()))?
        .map_err(|e| CounterUnavailable(e.to_string()))
    }
}
