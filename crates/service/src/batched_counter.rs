//! Rate-limit windows counted in a shared server (PostgreSQL or Redis), with the
//! concurrent requests of one window sharing a round trip.
//!
//! While one count is on its way to the server, the requests of its window that
//! arrive queue up, and the next round trip counts all of them at once (`+ n`), each
//! taking its own count of the range the server answers. A busy node makes one round
//! trip per batch instead of one per request, and the window stays exact: every hit
//! has its own count, however many nodes share it.
//!
//! Leases, when the operator allows them ([`BatchedCounter::leasing`], `serve
//! --rate-limit-lease`): far from a large limit, a node reserves counts ahead, a
//! lease of [`lease_size`] counts (a thousandth of the limit, at most the allowed
//! size) that its next hits of the window take without any round trip, so that a hit
//! costs what it costs on one node. When less than half a lease is left, one round
//! trip reserves the next while the hits go on taking what is left; nobody waits for
//! it. Leases are only taken while the window's count, as the node last saw it, is
//! under [`LEASE_ZONE`] tenths of a limit of at least [`LEASE_MIN_LIMIT`]: small
//! limits are counted hit by hit, near the end of a window a node only uses up what it
//! holds, and no node ever allows more than the limit. What
//! a lease costs: each hit still has its own count, but the counts seen across nodes
//! are no longer consecutive (a node's hits take its lease's counts, another node's
//! the next lease's), and the counts a node reserved and did not use before its
//! window ended (under 1.5 leases per node and window) count as used, so a window
//! whose nodes stop receiving requests may allow that many less than the limit.

use crate::limits::{CountFuture, CounterUnavailable, WindowCounter};
use crate::ratelimit::{Bucket, Window};
use headcount_model::WorkspaceId;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The smallest lease worth a round trip: windows whose lease would be smaller (a
/// limit under [`LEASE_MIN_LIMIT`], or a smaller allowed size) are counted hit by hit.
pub const MIN_LEASE: u64 = 16;

/// The smallest limit whose windows are leased.
pub const LEASE_MIN_LIMIT: u64 = 1000 * MIN_LEASE;

/// How many counts a node reserves at once in a window of `limit`, leases of at most
/// `allowed` counts being allowed: 0 when that is under [`MIN_LEASE`].
pub fn lease_size(limit: u64, allowed: u64) -> u64 {
    let size = (limit / 1000).min(allowed);
    if size < MIN_LEASE { 0 } else { size }
}

/// The share of the limit (in tenths) under which a window's counts may be leased.
pub const LEASE_ZONE: u64 = 9;

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
    queues: Arc<Queues>,
    /// The largest lease allowed; 0: none, every hit counted in the server.
    lease: u64,
}

/// The windows waiting for round trips, each with the counts the node holds.
type Queues = Mutex<HashMap<WindowKey, Queue>>;

impl<W> std::fmt::Debug for BatchedCounter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchedCounter<{}>", std::any::type_name::<W>())
    }
}

/// What a caller waits for: the window's count (its own, for a hit).
type Answer = oneshot::Sender<Result<u64, CounterUnavailable>>;

/// The callers of one window waiting for the next round trip, and the counts of the
/// window this node holds.
#[derive(Default)]
struct Queue {
    hits: Vec<Answer>,
    reads: Vec<Answer>,
    /// A round trip is on its way; it takes this queue when it comes back.
    flushing: bool,
    /// The next round trip reserves counts even if no hit waits for it.
    refill: bool,
    /// The window's limit, as the last caller gave it.
    limit: u64,
    /// The largest lease allowed.
    allowed: u64,
    /// The window's count in the server after the last round trip.
    known: u64,
    /// The counts reserved for this node and not yet taken, as ranges
    /// `first ..= last`, oldest first.
    leased: VecDeque<(u64, u64)>,
}

impl Queue {
    /// Takes the next leased count, if the node holds one.
    fn take_leased(&mut self) -> Option<u64> {
        let (next, last) = self.leased.front_mut()?;
        let count = *next;
        if next == last {
            self.leased.pop_front();
        } else {
            *next += 1;
        }
        Some(count)
    }

    /// How many counts a round trip that counts `hits` reserves beyond them: a
    /// lease when the node holds less than half of one and the window is far from
    /// its limit, else none.
    fn to_lease(&self, hits: u64) -> u64 {
        let size = lease_size(self.limit, self.allowed);
        let held: u64 = self
            .leased
            .iter()
            .map(|(first, last)| last - first + 1)
            .sum();
        let zone = self.limit / 10 * LEASE_ZONE;
        if size > 0 && held < size / 2 && self.known + hits + size <= zone {
            size
        } else {
            0
        }
    }
}

impl<W: SharedWindows> BatchedCounter<W> {
    /// Counts in `windows`.
    pub fn batching(windows: W) -> BatchedCounter<W> {
        BatchedCounter {
            windows: Arc::new(windows),
            queues: Arc::default(),
            lease: 0,
        }
    }

    /// Lets the node reserve up to `counts` counts ahead in the windows of large limits
    /// (module documentation); 0, the default: every hit is counted in the server.
    pub fn leasing(mut self, counts: u64) -> BatchedCounter<W> {
        self.lease = counts;
        self
    }

    /// The server the counts are kept in.
    pub fn windows(&self) -> &W {
        &self.windows
    }

    /// Starts the round trips of `window` (its caller set its queue's `flushing`).
    fn spawn_flush(&self, window: WindowKey, window_secs: u64) {
        let (windows, queues) = (self.windows.clone(), self.queues.clone());
        tokio::spawn(flush(windows, queues, window, window_secs));
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
        let answered_now = move |count: u64| Window {
            limit,
            remaining: limit.saturating_sub(count),
            reset: start + window_secs,
            exceeded: hit && count > limit,
        };
        let (lead, answered) = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            if !queues.contains_key(&window) {
                // A new window: the node's older windows of this key are over.
                queues.retain(|k, q| (k.0, k.1) != key || k.2 > start || q.flushing);
            }
            let queue = queues.entry(window).or_default();
            queue.limit = limit;
            queue.allowed = self.lease;
            if hit && let Some(count) = queue.take_leased() {
                // Less than half a lease left: reserve the next one now, while this
                // one lasts.
                if !queue.flushing && queue.to_lease(0) > 0 {
                    queue.flushing = true;
                    queue.refill = true;
                    self.spawn_flush(window, window_secs);
                }
                return Box::pin(std::future::ready(Ok(answered_now(count))));
            }
            let (answer, answered) = oneshot::channel();
            if hit {
                queue.hits.push(answer);
            } else {
                queue.reads.push(answer);
            }
            (!std::mem::replace(&mut queue.flushing, true), answered)
        };
        if lead {
            self.spawn_flush(window, window_secs);
        }
        Box::pin(async move {
            let count = answered
                .await
                .map_err(|_| CounterUnavailable("the rate-limit counter stopped".into()))??;
            Ok(answered_now(count))
        })
    }
}

/// Counts `window`'s queued callers, one round trip per batch, until none is left.
async fn flush<W: SharedWindows>(
    windows: Arc<W>,
    queues: Arc<Queues>,
    window: WindowKey,
    window_secs: u64,
) {
    loop {
        let (hits, reads, lease) = {
            let mut all = queues.lock().unwrap_or_else(|p| p.into_inner());
            let Some(queue) = all.get_mut(&window) else {
                return;
            };
            let refill = std::mem::take(&mut queue.refill);
            let lease = if refill || !queue.hits.is_empty() {
                queue.to_lease(queue.hits.len() as u64)
            } else {
                0
            };
            if queue.hits.is_empty() && queue.reads.is_empty() && lease == 0 {
                // The window stays, with its count and lease, until the next window
                // of its key replaces it.
                queue.flushing = false;
                return;
            }
            (
                std::mem::take(&mut queue.hits),
                std::mem::take(&mut queue.reads),
                lease,
            )
        };
        let n = hits.len() as u64;
        match windows.add(window, window_secs, n + lease).await {
            Ok(total) => {
                // The batch's hits took the counts total - n - lease + 1 ..= total - lease,
                // and the node holds the rest that are within the limit.
                let first = total.saturating_sub(n + lease);
                for (i, answer) in (1..).zip(hits) {
                    let _ = answer.send(Ok(first + i));
                }
                for answer in reads {
                    let _ = answer.send(Ok(total));
                }
                let mut all = queues.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(queue) = all.get_mut(&window) {
                    queue.known = total;
                    let last = total.min(queue.limit);
                    if lease > 0 && first + n < last {
                        queue.leased.push_back((first + n + 1, last));
                    }
                    // The hits that came during the round trip take the new lease.
                    let mut waiting = std::mem::take(&mut queue.hits).into_iter();
                    while let Some(answer) = waiting.next() {
                        match queue.take_leased() {
                            Some(count) => {
                                let _ = answer.send(Ok(count));
                            }
                            None => {
                                queue.hits.push(answer);
                                queue.hits.extend(waiting);
                                break;
                            }
                        }
                    }
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
