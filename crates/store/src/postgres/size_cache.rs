//! Stored daily sizes of segments kept in memory, exact across every node of one
//! database, so that `data_series` answers without a query or a blocking thread.
//!
//! Every change of `segment_sizes` sends `NOTIFY headcount_sizes, '<segment id>'` at
//! its commit (a trigger, migration 5). A thread of the store listens on a connection
//! of its own and drops the entries it names. The cache answers only while that
//! listener is up: PostgreSQL delivers every notification committed after `LISTEN`,
//! so nothing is missed while it listens; when its connection breaks, the whole cache
//! goes and stays unused until it listens again.
//!
//! A load (a query of a segment's sizes, then its insertion) is kept only if no
//! change was seen between its start and its end (a generation counter): a load
//! whose query read sizes that a commit then changed is dropped, whether the
//! notification arrived before its insertion or after it (then it removes it).

use crate::StoredSize;
use headcount_model::{Day, SegmentId};
use postgres::fallible_iterator::FallibleIterator;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

/// The channel the `segment_sizes` trigger notifies, with a segment id as payload.
pub(super) const CHANNEL: &str = "headcount_sizes";
/// How often the listener checks that its store still exists while nothing happens.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// How long the listener waits before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// The sizes of the segments read so far, valid while the listener listens.
#[derive(Default)]
pub(super) struct SizeCache {
    state: RwLock<State>,
    /// Whether the listener thread was started.
    started: AtomicBool,
}

#[derive(Default)]
struct State {
    segments: HashMap<SegmentId, BTreeMap<Day, StoredSize>>,
    /// Bumped by every change seen (see the module's documentation).
    generation: u64,
    /// Whether the listener is up: the cache answers only then.
    listening: bool,
}

/// A load in progress: the generation it started at, when the cache may take it.
#[derive(Clone, Copy)]
pub(super) struct Ticket(Option<u64>);

impl SizeCache {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the listener thread, once (the first time sizes are read).
    pub(super) fn listen(self: &Arc<Self>, config: &postgres::Config) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let cache = Arc::downgrade(self);
        let config = config.clone();
        let spawned = std::thread::Builder::new()
            .name("headcount-pg-sizes".into())
            .spawn(move || run(&cache, &config));
        if spawned.is_err() {
            self.started.store(false, Ordering::SeqCst);
        }
    }

    /// Calls `visit` with what `f` answers of the segment's cached sizes; `None` when
    /// they are not cached (or the cache is not in use).
    pub(super) fn with<T>(
        &self,
        segment: SegmentId,
        f: impl FnOnce(&BTreeMap<Day, StoredSize>) -> T,
    ) -> Option<T> {
        let state = self.read();
        if !state.listening {
            return None;
        }
        state.segments.get(&segment).map(f)
    }

    /// Starts a load: call before querying.
    pub(super) fn ticket(&self) -> Ticket {
        let state = self.read();
        Ticket(state.listening.then_some(state.generation))
    }

    /// Keeps what a load read, unless something changed since its ticket.
    pub(super) fn fill(
        &self,
        segment: SegmentId,
        ticket: Ticket,
        sizes: BTreeMap<Day, StoredSize>,
    ) {
        let mut state = self.write();
        if state.listening && ticket.0 == Some(state.generation) {
            state.segments.insert(segment, sizes);
        }
    }

    /// Drops a segment's entry (its sizes changed, or it was archived) and every
    /// load in progress.
    pub(super) fn forget(&self, segment: SegmentId) {
        let mut state = self.write();
        state.segments.remove(&segment);
        state.generation += 1;
    }

    /// Drops everything; the cache answers again only if `listening`.
    fn reset(&self, listening: bool) {
        let mut state = self.write();
        state.segments.clear();
        state.generation += 1;
        state.listening = listening;
    }

    /// How many segments are cached.
    pub(super) fn len(&self) -> usize {
        self.read().segments.len()
    }

    /// Whether the listener is up (the cache in use).
    pub(super) fn is_listening(&self) -> bool {
        self.read().listening
    }
}

/// The listener: connects, listens, drops what is notified; again after a failure;
/// ends when its cache is gone.
fn run(cache: &Weak<SizeCache>, config: &postgres::Config) {
    loop {
        match listen_once(cache, config) {
            Ended::StoreGone => return,
            Ended::Broken => {
                let Some(held) = cache.upgrade() else { return };
                held.reset(false);
                drop(held);
                std::thread::sleep(RETRY);
            }
        }
    }
}

enum Ended {
    StoreGone,
    Broken,
}

fn listen_once(cache: &Weak<SizeCache>, config: &postgres::Config) -> Ended {
    let Ok(mut client) = config.connect(postgres::NoTls) else {
        return Ended::Broken;
    };
    if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
        return Ended::Broken;
    }
    // Listening from here on: whatever was loaded before may have missed a change.
    match cache.upgrade() {
        Some(held) => held.reset(true),
        None => return Ended::StoreGone,
    }
    let mut notifications = client.notifications();
    loop {
        let next = notifications.timeout_iter(IDLE_WAKE).next();
        let Some(held) = cache.upgrade() else {
            return Ended::StoreGone;
        };
        match next {
            Ok(Some(n)) => forget_notified(&held, n.payload()),
            Ok(None) => {}
            Err(_) => return Ended::Broken,
        }
        // Take every notification already here.
        loop {
            match notifications.iter().next() {
                Ok(Some(n)) => forget_notified(&held, n.payload()),
                Ok(None) => break,
                Err(_) => return Ended::Broken,
            }
        }
    }
}

fn forget_notified(cache: &SizeCache, payload: &str) {
    match payload.parse::<SegmentId>() {
        Ok(segment) => cache.forget(segment),
        Err(_) => cache.reset(true),
    }
}
