//! A bounded pool of blocking PostgreSQL connections.
//!
//! Each [`postgres::Client`] runs its own small tokio runtime and blocks on it, so it
//! must only be used from a thread that is not driving async tasks (a plain thread, or
//! `tokio::task::spawn_blocking`). Dropping one also drops its runtime, which tokio
//! refuses inside an async context: the pool drops its connections on a thread of
//! its own.
//!
//! At most [`MAX_OPEN`] connections are open at once: a burst of callers beyond that
//! waits for one to come back (at most [`WAIT`]) instead of opening a connection per
//! caller, and one that waited too long gets [`StoreError::Unavailable`] (a 503).

use crate::{Result, StoreError};
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Connections open at most at once (idle and in use together).
pub(super) const MAX_OPEN: usize = 32;
/// How long a caller waits for a connection when all of them are in use.
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// Connections to one database, opened on demand, reused, at most `max_open`.
pub(super) struct Pool {
    config: postgres::Config,
    max_open: usize,
    wait: Duration,
    state: Mutex<State>,
    /// Signalled whenever a connection comes back or a slot frees up.
    returned: Condvar,
}

/// The idle connections and how many are open (idle ones included).
#[derive(Default)]
struct State {
    idle: Vec<postgres::Client>,
    open: usize,
}

/// A connection taken from the pool, given back when dropped (unless it broke).
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<postgres::Client>,
}

impl Pool {
    /// A pool for `config`; no connection is opened yet.
    pub(super) fn new(config: postgres::Config) -> Pool {
        Pool::bounded(config, MAX_OPEN, WAIT)
    }

    /// A pool of at most `max_open` connections whose callers wait at most `wait`.
    pub(super) fn bounded(config: postgres::Config, max_open: usize, wait: Duration) -> Pool {
        Pool {
            config,
            max_open: max_open.max(1),
            wait,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        }
    }

    /// The configuration connections are opened with.
    pub(super) fn config(&self) -> &postgres::Config {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, or a new one while fewer than the maximum are open, or the
    /// first one given back within the wait.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when every connection stayed busy for the whole
    /// wait or the server cannot be reached.
    pub(super) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.state();
        loop {
            let mut broken = Vec::new();
            let mut found = None;
            while let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    broken.push(client);
                } else {
                    found = Some(client);
                    break;
                }
            }
            if !broken.is_empty() {
                drop(state);
                drop_elsewhere(broken);
                self.returned.notify_all();
                state = self.state();
                if found.is_none() {
                    continue;
                }
            }
            if let Some(client) = found {
                return Ok(self.pooled(client));
            }
            if state.open < self.max_open {
                state.open += 1;
                drop(state);
                return match self.config.connect(postgres::NoTls) {
                    Ok(client) => Ok(self.pooled(client)),
                    Err(e) => {
                        self.state().open -= 1;
                        self.returned.notify_one();
                        Err(e.into())
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "all {} connections to PostgreSQL stayed busy for {} s",
                    self.max_open,
                    self.wait.as_secs_f64()
                )));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn pooled(&self, client: postgres::Client) -> Pooled<'_> {
        Pooled {
            pool: self,
            client: Some(client),
        }
    }

    /// How many connections are open (idle and in use).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state().open
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let state = std::mem::take(self.state.get_mut().unwrap_or_else(|p| p.into_inner()));
        drop_elsewhere(state.idle);
    }
}

/// Drops connections on a thread of their own (their runtimes may not be dropped
/// inside an async context), waiting for it.
pub(super) fn drop_elsewhere(clients: Vec<postgres::Client>) {
    if clients.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || drop(clients)).join();
}

impl Deref for Pooled<'_> {
    type Target = postgres::Client;

    fn deref(&self) -> &postgres::Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            self.pool.state().open -= 1;
            self.pool.returned.notify_one();
            drop_elsewhere(vec![client]);
            return;
        }
        self.pool.state().idle.push(client);
        self.pool.returned.notify_one();
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::TestPostgres;

    #[test]
    fn a_burst_beyond_the_bound_waits_for_a_connection_instead_of_opening_one() {
        let pg = TestPostgres::new();
        let config: postgres::Config = pg.url("postgres").parse().expect("url");
        let pool = Pool::bounded(config, 2, Duration::from_secs(20));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let mut c = pool.get().expect("a connection within the wait");
                        c.batch_execute("SELECT pg_sleep(0.01)").expect("query");
                        assert!(pool.open() <= 2, "{} open", pool.open());
                    }
                });
            }
        });
        assert_eq!(pool.open(), 2);
    }

    #[test]
    fn a_caller_that_waits_too_long_is_told_the_database_is_unavailable() {
        let pg = TestPostgres::new();
        let config: postgres::Config = pg.url("postgres").parse().expect("url");
        let pool = Pool::bounded(config, 1, Duration::from_millis(200));
        let held = pool.get().expect("the first connection");
        let started = Instant::now();
        let refused = pool.get().err().expect("no second connection");
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(held);
        assert!(pool.get().is_ok(), "the connection came back");
    }
}
