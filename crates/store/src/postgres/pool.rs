//! A small pool of blocking PostgreSQL connections.
//!
//! Each [`postgres::Client`] runs its own small tokio runtime and blocks on it, so it
//! must only be used from a thread that is not driving async tasks (a plain thread, or
//! `tokio::task::spawn_blocking`). Dropping one also drops its runtime, which tokio
//! refuses inside an async context: the pool drops its idle connections on a thread
//! of its own.

use crate::Result;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Idle connections kept at most; more may be open at once while busy.
const IDLE_MAX: usize = 16;

/// Connections to one database, opened on demand and reused.
pub(super) struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<postgres::Client>>,
}

/// A connection taken from the pool, given back when dropped (unless it broke).
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<postgres::Client>,
}

impl Pool {
    /// A pool for `config`; no connection is opened yet.
    pub(super) fn new(config: postgres::Config) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The configuration connections are opened with.
    pub(super) fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// An idle connection, or a new one.
    pub(super) fn get(&self) -> Result<Pooled<'_>> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut found = None;
            while let Some(client) = idle.pop() {
                if !client.is_closed() {
                    found = Some(client);
                    break;
                }
                drop_elsewhere(vec![client]);
            }
            found
        };
        let client = match reused {
            Some(client) => client,
            None => self.config.connect(postgres::NoTls)?,
        };
        Ok(Pooled {
            pool: self,
            client: Some(client),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        drop_elsewhere(idle);
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
            drop_elsewhere(vec![client]);
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push(client);
        } else {
            drop(idle);
            drop_elsewhere(vec![client]);
        }
    }
}
