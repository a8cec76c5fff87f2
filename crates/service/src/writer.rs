//! The ingestion writer: one thread that commits the facts of concurrent requests in
//! one transaction (group commit: one disk sync for many requests), and a second one
//! that then applies them to the in-memory indexes and acknowledges every request.
//!
//! Durable first: an index never holds a fact the store could lose, and a request is
//! acknowledged only once its facts are on disk. Deletions take the same path, as
//! deletion entries of the fact log: store and index see tracks and deletes of the
//! same user in the same order. The facts a deletion leaves behind in older chunks
//! are removed afterwards by the [`Purger`], which the writer wakes.

use crate::purge::Purger;
use crate::state::{SharedIndex, now, write};
use headcount_model::{Fact, FactKind, UserKey, WorkspaceId};
use headcount_store::{FactBatch, IdempotencyRecord, Receipts, Store, StoreError};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// Facts gathered into one transaction at most (a bound on the latency of a group).
const GROUP_FACTS: usize = 100_000;

/// Told of every group committed: its number of requests and its commit's duration
/// (the metrics' hook).
pub type CommitHook = Box<dyn Fn(usize, std::time::Duration) + Send>;

/// One request's facts, waiting for the writer.
struct Job {
    workspace: WorkspaceId,
    index: SharedIndex,
    facts: Vec<(UserKey, Fact)>,
    /// The answer to remember for the request's `Idempotency-Key`, committed with its
    /// facts.
    remember: Option<IdempotencyRecord>,
    /// Answered with the number of deletion entries whose user existed.
    done: oneshot::Sender<Result<u64, String>>,
}

/// The handle through which requests hand their facts to the writer thread.
pub struct Writer {
    // Dropped first: the writer thread ends, then the purge thread is stopped.
    jobs: Sender<Job>,
    _purger: Purger,
}

impl Writer {
    /// Starts the writer thread and the purge thread. Both hold the store weakly, so
    /// they never keep the data directory open after the server is gone; they end
    /// when the `Writer` is dropped.
    pub fn start(store: &Arc<dyn Store>) -> Writer {
        Writer::start_with(store, Box::new(|_, _| {}))
    }

    /// [`Writer::start`], telling `on_commit` of every group committed.
    pub fn start_with(store: &Arc<dyn Store>, on_commit: CommitHook) -> Writer {
        let (jobs, queue) = channel();
        let purger = Purger::start(store);
        let wake = purger.waker();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("headcount-writer".into())
            .spawn(move || run(store, queue, wake, on_commit))
            .expect("spawning the writer thread");
        Writer {
            jobs,
            _purger: purger,
        }
    }

    /// Makes `facts` durable and visible in `index`; returns once both are done.
    pub async fn append(
        &self,
        workspace: WorkspaceId,
        index: SharedIndex,
        facts: Vec<(UserKey, Fact)>,
    ) -> Result<(), String> {
        self.submit(workspace, index, facts, None).await.map(|_| ())
    }

    /// Deletes `users`: appends a deletion entry for each to the log and applies them
    /// to `index`, in commit order with every other write; returns once both are done,
    /// with the number of them that existed when their deletion was applied. Their
    /// earlier facts are purged from the store in the background.
    pub async fn delete(
        &self,
        workspace: WorkspaceId,
        index: SharedIndex,
        users: Vec<UserKey>,
    ) -> Result<u64, String> {
        let time = now();
        let facts = users
            .into_iter()
            .map(|user| {
                let fact = Fact {
                    time,
                    kind: FactKind::Deletion,
                };
                (user, fact)
            })
            .collect();
        self.submit(workspace, index, facts, None).await
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
        self.submit(workspace, index, facts, remember)
            .await
            .map(|_| ())
    }

    async fn submit(
        &self,
        workspace: WorkspaceId,
        index: SharedIndex,
        facts: Vec<(UserKey, Fact)>,
        remember: Option<IdempotencyRecord>,
    ) -> Result<u64, String> {
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
fn run(store: Weak<dyn Store>, queue: Receiver<Job>, purge: SyncSender<()>, on_commit: CommitHook) {
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
        let started = std::time::Instant::now();
        let result = match store.upgrade() {
            Some(store) => commit(store.as_ref(), &group),
            None => Err("the store is closed".to_string()),
        };
        if result.is_ok() {
            on_commit(group.len(), started.elapsed());
        }
        let deletes = group
            .iter()
            .flat_map(|job| &job.facts)
            .any(|(_, fact)| matches!(fact.kind, FactKind::Deletion));
        if result.is_ok() && deletes {
            // Full means a wake-up is already waiting.
            let _ = purge.try_send(());
        }
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
    let last_of_workspace: HashMap<WorkspaceId, usize> = group
        .iter()
        .enumerate()
        .map(|(i, job)| (job.workspace, i))
        .collect();
    for (i, job) in group.into_iter().enumerate() {
        let answer = result.clone().map(|position| {
            let mut index = write(&job.index);
            let mut deleted = 0;
            for (user, fact) in &job.facts {
                match fact.kind {
                    FactKind::Deletion => deleted += u64::from(index.delete_user(user)),
                    _ => index.apply(user, fact),
                }
            }
            if last_of_workspace.get(&job.workspace) == Some(&i) {
                let position = position.max(index.position());
                index.set_position(position);
            }
            deleted
        });
        let _ = job.done.send(answer);
    }
}

/// Commits a group and returns the fact-log position of its last chunk: this thread
/// is the fact log's one writer, so the log ends with this group's chunks.
fn commit(store: &dyn Store, group: &[Job]) -> Result<u64, String> {
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
    appended
        .and_then(|()| store.last_fact_position())
        .map_err(|e: StoreError| e.to_string())
}
