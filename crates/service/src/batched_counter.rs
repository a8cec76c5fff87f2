//! Rate-limit windows counted in a shared server (PostgreSQL or Redis), with the
//! concurrent requests of one window sharing a round trip.
//!
//! While one count is on its way to the server, the requests of its window that
//! arrive queue up, and the next round trip counts all of them at once (`+ n`), each
//! taking its own count of the range the server answers. A busy node makes one round
//! trip per batch instead of one per request, and the window stays exact: every hit
//! has its own count, however many nodes share it.

use crate::limits::{CountFuture, CounterUnavailable, WindowCounter};
use crate::ratelimit::{Bucket, Window};
use headcount_model::WorkspaceId;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// One window of one bucket of one workspace: (workspace, bucket, window start).
pub type WindowKey = (WorkspaceId, Bucket, u64);

/// A server that keeps window counts: adds to them atomically.
pub trait SharedWindows: Send + Sync + 'static {
    /// Adds `hits` to `window` (whose windows last `window_secs`) and answers its
    /// count after them; `hits` 0 reads the count.
    fn add(
        &self,
        window: WindowKey,
        window_secs: u64,
        hits: u64,
    ) -> impl Future<Output = Result<u64, CounterUnavailable>> + Send;
}

/// A [`WindowCounter`] on a [`SharedWindows`], one round trip per batch.
pub struct BatchedCounter<W> {
    windows: Arc<W>,
    queues: Arc<Mutex<HashMap<WindowKey, Queue>>>,
}

impl<W> std::fmt::Debug for BatchedCounter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchedCounter<{}>", std::any::type_name::<W>())
    }
}

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

impl<W: SharedWindows> BatchedCounter<W> {
    /// Counts in `windows`.
    pub fn batching(windows: W) -> BatchedCounter<W> {
        BatchedCounter {
            windows: Arc::new(windows),
            queues: Arc::default(),
        }
    }

    /// The server the counts are kept in.
    pub fn windows(&self) -> &W {
        &self.windows
    }
}

impl<W: SharedWindows> WindowCounter for BatchedCounter<W> {
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
            let (windows, queues) = (self.windows.clone(), self.queues.clone());
            tokio::spawn(flush(windows, queues, window, window_secs));
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
async fn flush<W: SharedWindows>(
    windows: Arc<W>,
    queues: Arc<Mutex<HashMap<WindowKey, Queue>>>,
    window: WindowKey,
    window_secs: u64,
) {
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
        let n = hits.len() as u64;
        match windows.add(window, window_secs, n).await {
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
                    let _ = answer.send(Err(CounterUnavailable(e.0.clone())));
                }
            }
        }
    }
}
