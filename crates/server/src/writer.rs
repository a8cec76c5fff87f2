//! The ingestion writer: one thread that commits the facts of concurrent requests in
//! one transaction (group commit: one disk sync for many requests), then applies them
//! to the in-memory indexes, then acknowledges every request.
//!
//! Durable first: an index never holds a fact the store could lose, and a request is
//! acknowledged only once its facts are on disk.

use crate::state::{SharedIndex, write};
use headcount_model::{Fact, UserKey, WorkspaceId};
use headcount_store::{FactBatch, Store, StoreError};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// Facts gathered into one transaction at most (a bound on the latency of a group).
const GROUP_FACTS: usize = 100_000;

/// One request's facts, waiting for the writer.
struct Job {
    workspace: WorkspaceId,
    index: SharedIndex,
    facts: Vec<(UserKey, Fact)>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle through which requests hand their facts to the writer thread.
pub struct Writer {
    jobs: Sender<Job>,
}

impl Writer {
    /// Starts the writer thread. It holds the store weakly, so it never keeps the data
    /// directory open after the server is gone; it ends when the `Writer` is dropped.
    pub fn start(store: &Arc<dyn Store>) -> Writer {
        let (jobs, queue) = channel();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("headcount-writer".into())
            .spawn(move || run(store, queue))
            .expect("spawning the writer thread");
        Writer { jobs }
    }

    /// Makes `facts` durable and visible in `index`; returns once both are done.
    pub async fn append(
        &self,
        workspace: WorkspaceId,
        index: SharedIndex,
        facts: Vec<(UserKey, Fact)>,
    ) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job {
                workspace,
                index,
                facts,
                done,
            })
            .map_err(|_| "the writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the writer dropped the request".to_string())?
    }
}

fn run(store: Weak<dyn Store>, queue: Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        let mut facts = group[0].facts.len();
        while facts < GROUP_FACTS {
            match queue.try_recv() {
                Ok(job) => {
                    facts += job.facts.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let committed = match store.upgrade() {
            Some(store) => commit(store.as_ref(), &group),
            None => Err("the store is closed".to_string()),
        };
        if committed.is_ok() {
            for job in &group {
                let mut index = write(&job.index);
                for (user, fact) in &job.facts {
                    index.apply(user, fact);
                }
            }
        }
        for job in group {
            let _ = job.done.send(committed.clone());
        }
    }
}

fn commit(store: &dyn Store, group: &[Job]) -> Result<(), String> {
    let batches: Vec<FactBatch<'_>> = group
        .iter()
        .map(|j| (j.workspace, j.facts.as_slice()))
        .collect();
    store
        .append_batches(&batches)
        .map_err(|e: StoreError| e.to_string())
}
