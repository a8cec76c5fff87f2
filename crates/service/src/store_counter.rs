//! Rate-limit windows counted in PostgreSQL's `rate_counts`: exact across every node
//! on one database, for a cluster without Redis. Concurrent requests of one window
//! share a round trip ([`crate::batched_counter`]).

use crate::batched_counter::{BatchedCounter, SharedWindows, WindowKey};
use crate::limits::CounterUnavailable;
use headcount_store::StoreError;
use headcount_store::postgres::RateCounter;

/// A [`crate::limits::WindowCounter`] on PostgreSQL's `rate_counts` from async code
/// (what `serve` on a database uses: no blocking thread per round trip).
pub type PostgresCounter = BatchedCounter<RateCounter>;

impl PostgresCounter {
    /// Counts in the PostgreSQL database at `url`, on a connection of its own.
    ///
    /// # Errors
    /// The URL is not a PostgreSQL connection string.
    pub fn postgres(url: &str) -> Result<PostgresCounter, StoreError> {
        Ok(BatchedCounter::batching(RateCounter::new(url)?))
    }
}

impl SharedWindows for RateCounter {
    async fn add(
        &self,
        window: WindowKey,
        _window_secs: u64,
        hits: u64,
    ) -> Result<u64, CounterUnavailable> {
        let (workspace, bucket, start) = window;
        self.count(workspace, bucket.as_str(), start, hits)
            .await
            .map_err(|e| CounterUnavailable(e.to_string()))
    }
}
