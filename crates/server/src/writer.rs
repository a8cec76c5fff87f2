//! The ingestion writer: one thread that commits the facts of concurrent requests in
//! one transaction (group commit: one disk sync for many requests), and a second one
//! that then applies them to the in-memory indexes and acknowledges every request.
//!
//! Durable first: an index never holds a fact the store could lose, and a request is
//! acknowledged only once its facts are on disk.

use crate::state::{SharedIndex, write};
use headcount_model::{Fact, UserKey, WorkspaceId};
use headcount_store::{FactBatch, Store, StoreError};
use std::collections::HashMap;
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

/// A group of jobs and the outcome of its commit: the fact-log position of its last
/// chunk.
type Committed = (Vec<Job>, Result<u64, String>);

fn apply(committed: Receiver<Committed>) {
    for done in committed {
        apply_one(done);
    }
}

/// Applies a committed group to the indexes (only if the commit succeeded: an index
/// never holds a fact the store could lose) and answers its requests. With the last
/// job of each workspace, under the same lock, its index records the group's
/// fact-log position: from then on it holds every fact of the group, so that a
/// checkpoint taken under that lock never claims a fact it lacks.
fn apply_one((group, result): Committed) {
    if let Ok(position) = result {
        let last_of_workspace: HashMap<WorkspaceId, usize> = group
            .iter()
            .enumerate()
            .map(|(i, job)| (job.workspace, i))
            .collect();
        for (i, job) in group.iter().enumerate() {
            let mut index = write(&job.index);
            for (user, fact) in &job.facts {
                index.apply(user, fact);
            }
            if last_of_workspace.get(&job.workspace) == Some(&i) {
                let position = position.max(index.position());
                index.set_position(position);
            }
        }
    }
    let result = result.map(|_| ());
    for job in group {
        let _ = job.done.send(result.clone());
    }
}

/// Commits a group and returns the fact-log position of its last chunk: this thread
/// is the fact log's one writer, so the log ends with this group's chunks.
fn commit(store: &dyn Store, group: &[Job]) -> Result<u64, String> {
    let batches: Vec<FactBatch<'_>> = group
        .iter()
        .map(|j| (j.workspace, j.facts.as_slice()))
        .collect();
    store
        .append_batches(&batches)
        .and_then(|()| store.last_fact_position())
        .map_err(|e: StoreError| e.to_string())
}
