//! Rate-limit windows counted in the store (PostgreSQL's `rate_counts`): exact across
//! every node on one database, for a cluster without Redis.
//!
//! Concurrent requests of one window share a round trip: while one count is on its
//! way to the database, the requests that arrive queue up, and the next round trip
//! counts all of them at once (`count = count + n`), each taking its own count of
//! the range the database answers. A busy node makes one round trip per batch
//! instead of one per request, and the window stays exact: every hit has its own
//! count, however many nodes share it.

use crate::limits::{CountFuture, CounterUnavailable, WindowCounter};
use crate::ratelimit::{Bucket, Window};
use headcount_model::WorkspaceId;
use headcount_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A [`WindowCounter`] on [`Store::count_rate_window`].
pub struct StoreCounter {
    store: Arc<dyn Store>,
    queues: Arc<Mutex<HashMap<WindowKey, Queue>>>,
}

impl std::fmt::Debug for StoreCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCounter")
    }
}

/// One window of one bucket of one workspace: (workspace, bucket, window start).
type WindowKey = (WorkspaceId, Bucket, u64);

/// What a caller waits for: the window's count (its own, for a hit).
type Answer = oneshot::Sender<Result<u64, CounterUnavailable>>;

/// The callers of one window waiting for the next round trip.
#[derive(Default)]
struct Queue {
    hits: Vec<Answer>,
    reads: Vec<Answer>,
    /// A round trip is on its way; it takes this queue when it comes back.
    flushing: bool,
}

impl StoreCounter {
    /// Counts in `store`, which must support [`Store::count_rate_window`].
    pub fn new(store: Arc<dyn Store>) -> StoreCounter {
        StoreCounter {
            store,
            queues: Arc::default(),
        }
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
        let window_secs = window_secs.max(1);
        let start = now - now % window_secs;
        let window = (key.0, key.1, start);
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let queue = queues.entry(window).or_default();
            if hit {
                queue.hits.push(answer);
            } else {
                queue.reads.push(answer);
            }
            !std::mem::replace(&mut queue.flushing, true)
        };
        if lead {
            let (store, queues) = (self.store.clone(), self.queues.clone());
            tokio::task::spawn_blocking(move || flush(store.as_ref(), &queues, window));
        }
        Box::pin(async move {
            let count = answered
                .await
                .map_err(|_| CounterUnavailable("the rate-limit counter stopped".into()))??;
            Ok(Window {
                limit,
                remaining: limit.saturating_sub(count),
                reset: start + window_secs,
                exceeded: hit && count > limit,
            })
        })
    }
}

/// Counts `window`'s queued callers, one round trip per batch, until none is left.
fn flush(store: &dyn Store, queues: &Mutex<HashMap<WindowKey, Queue>>, window: WindowKey) {
    loop {
        let (hits, reads) = {
            let mut all = queues.lock().unwrap_or_else(|p| p.into_inner());
            let Some(queue) = all.get_mut(&window) else {
                return;
            };
            if queue.hits.is_empty() && queue.reads.is_empty() {
                all.remove(&window);
                return;
            }
            (
                std::mem::take(&mut queue.hits),
                std::mem::take(&mut queue.reads),
            )
        };
        let (workspace, bucket, start) = window;
        let n = hits.len() as u64;
        match store.count_rate_window(workspace, bucket.as_str(), start, n) {
            Ok(total) => {
                // The batch's hits took the counts total - n + 1 ..= total.
                let first = total.saturating_sub(n);
                for (i, answer) in (1..).zip(hits) {
                    let _ = answer.send(Ok(first + i));
                }
                for answer in reads {
                    let _ = answer.send(Ok(total));
                }
            }
            Err(e) => {
                for answer in hits.into_iter().chain(reads) {
                    let _ = answer.send(Err(CounterUnavailable(e.to_string())));
                }
            }
        }
    }
}
