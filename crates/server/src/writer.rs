//! The ingestion writer: one thread that commits the facts of concurrent requests in
//! one transaction (group commit: one disk sync for many requests), and a second one
//! that then applies them to the in-memory indexes and acknowledges every request.
//!
//! Durable first: an index never holds a fact the store could lose, and a request is
//! acknowledged only once its facts are on disk.

use crate::state::{SharedIndex, write};
use headcount_model::{Fact, UserKey, WorkspaceId};
use headcount_store::{FactBatch, IdempotencyRecord, Receipts, Store, StoreError};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// Facts gathered into one transaction at most (a bound on the latency of a group).
const GROUP_FACTS: usize = 100_000;

/// One request's facts, waiting for the writer.
struct Job {
    workspace: WorkspaceId,
    index: SharedIndex,
    facts: Vec<(UserKey, Fact)>,
    /// The answer to remember for the request's `Idempotency-Key`, committed with its
    /// facts.
    remember: Option<IdempotencyRecord>,
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
        self.append_remembering(workspace, index, facts, None).await
    }

    /// [`Writer::append`], committing `remember` (an answer to remember for an
    /// `Idempotency-Key`) in the same transaction as the facts.
    pub async fn append_remembering(
        &self,
        workspace: WorkspaceId,
        index: SharedIndex,
        facts: Vec<(UserKey, Fact)>,
        remember: Option<IdempotencyRecord>,
    ) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job {
                workspace,
                index,
                facts,
                remember,
                done,
            })
            .map_err(|_| "the writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the writer dropped the request".to_string())?
    }
}

/// Groups, commits, and hands each committed group to a second thread that applies it
/// to the indexes and acknowledges it: the next group's commit overlaps the last one's
/// application, and groups are applied in commit order.
fn run(store: Weak<dyn Store>, queue: Receiver<Job>) {
    let (to_applier, committed) = sync_channel::<Committed>(1);
    let applier = std::thread::Builder::new()
        .name("headcount-apply".into())
        .spawn(move || apply(committed));
    let applier = match applier {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the apply thread; applying on the writer");
            None
        }
    };
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
        let result = match store.upgrade() {
            Some(store) => commit(store.as_ref(), &group),
            None => Err("the store is closed".to_string()),
        };
        let done = (group, result);
        let unsent = match &applier {
            Some(_) => to_applier.send(done).err().map(|e| e.0),
            None => Some(done),
        };
        if let Some(done) = unsent {
            apply_one(done);
        }
    }
    drop(to_applier);
    if let Some(handle) = applier {
        let _ = handle.join();
    }
}

/// A group of jobs and the outcome of its commit.
type Committed = (Vec<Job>, Result<(), String>);

fn apply(committed: Receiver<Committed>) {
    for done in committed {
        apply_one(done);
    }
}

/// Applies a committed group to the indexes (only if the commit succeeded: an index
/// never holds a fact the store could lose) and answers its requests.
fn apply_one((group, result): Committed) {
    if result.is_ok() {
        for job in &group {
            let mut index = write(&job.index);
            for (user, fact) in &job.facts {
                index.apply(user, fact);
            }
        }
    }
    for job in group {
        let _ = job.done.send(result.clone());
    }
}

fn commit(store: &dyn Store, group: &[Job]) -> Result<(), String> {
    let batches: Vec<FactBatch<'_>> = group
        .iter()
        .map(|j| (j.workspace, j.facts.as_slice()))
        .collect();
    let responses: Vec<IdempotencyRecord> =
        group.iter().filter_map(|j| j.remember.clone()).collect();
    let appended = if responses.is_empty() {
        store.append_batches(&batches)
    } else {
        let receipts = Receipts {
            responses: &responses,
            imports: &[],
        };
        store.append_batches_with(&batches, receipts)
    };
    appended.map_err(|e: StoreError| e.to_string())
}
