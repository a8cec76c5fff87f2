//! The ingestion writer: one thread that commits the facts of concurrent requests in
//! one transaction (group commit: one disk sync for many requests), and a second one
//! that then applies them to the in-memory indexes and acknowledges every request.
//!
//! Durable first: an index never holds a fact the store could lose, and a request is
//! acknowledged only once its facts are on disk. Deletions take the same path, as
//! deletion entries of the fact log: store and index see tracks and deletes of the
//! same user in the same order. The facts a deletion leaves behind in older chunks
//! are removed afterwards by the [`Purger`], which the writer wakes.

use crate::follow::Follow;
use crate::purge::Purger;
use crate::state::{SharedIndex, now, write};
use headcount_model::{Fact, FactKind, UserKey, WorkspaceId};
use headcount_store::{EncodedFacts, IdempotencyRecord, Receipts, Store, StoreError};
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
    /// `facts` encoded as a chunk: done by the request's own task before it queues,
    /// so that the writer thread, which every request waits on, only commits.
    encoded: EncodedFacts,
    /// The answer to remember for the request's `Idempotency-Key`, committed with its
    /// facts.
    remember: Option<IdempotencyRecord>,
    /// Answered with the number of deletion entries whose user existed.
    done: oneshot::Sender<Result<u64, WriteError>>,
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The store cannot be reached (PostgreSQL down or restarting): nothing was
    /// committed, retry shortly.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => WriteError::Unavailable(m),
            other => WriteError::Failed(other.to_string()),
        }
    }
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
    pub fn start(store: &Arc<dyn Store>, follow: Arc<Follow>) -> Writer {
        Writer::start_with(store, follow, Box::new(|_, _| {}))
    }

    /// [`Writer::start`], telling `on_commit` of every group committed.
    pub fn start_with(
        store: &Arc<dyn Store>,
        follow: Arc<Follow>,
        on_commit: CommitHook,
    ) -> Writer {
        let (jobs, queue) = channel();
        let purger = Purger::start(store);
        let wake = purger.waker();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("headcount-writer".into())
            .spawn(move || run(store, queue, wake, follow, on_commit))
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
    ) -> Result<(), WriteError> {
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
    ) -> Result<u64, WriteError> {
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
    ) -> Result<(), WriteError> {
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
    ) -> Result<u64, WriteError> {
        let (done, wait) = oneshot::channel();
        let encoded = EncodedFacts::encode(&facts);
        self.jobs
            .send(Job {
                workspace,
                index,
                facts,
                encoded,
                remember,
                done,
            })
            .map_err(|_| WriteError::Failed("the writer has stopped".to_string()))?;
        wait.await
            .map_err(|_| WriteError::Failed("the writer dropped the request".to_string()))?
    }
}

/// Groups, commits, and hands each committed group to a second thread that applies it
/// to the indexes and acknowledges it: the next group's commit overlaps the last one's
/// application, and groups are applied in commit order.
fn run(
    store: Weak<dyn Store>,
    queue: Receiver<Job>,
    purge: SyncSender<()>,
    follow: Arc<Follow>,
    on_commit: CommitHook,
) {
    let (to_applier, committed) = sync_channel::<Committed>(1);
    let (applier_store, applier_follow) = (store.clone(), follow.clone());
    let applier = std::thread::Builder::new()
        .name("headcount-apply".into())
        .spawn(move || apply(committed, &applier_store, &applier_follow));
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
            None => Err(WriteError::Failed("the store is closed".to_string())),
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
            apply_one(done, &store, &follow);
        }
    }
    drop(to_applier);
    if let Some(handle) = applier {
        let _ = handle.join();
    }
}

/// A group of jobs and the outcome of its commit: the fact-log positions of its first
/// and last chunk (`None`: it wrote none).
type Committed = (Vec<Job>, Result<Option<(u64, u64)>, WriteError>);

fn apply(committed: Receiver<Committed>, store: &Weak<dyn Store>, follow: &Follow) {
    for done in committed {
        apply_one(done, store, follow);
    }
}

/// Applies a committed group when other nodes append too: under the follower's
/// gate, after the chunks committed before it (read from the store), each job whose
/// chunk its index has not applied yet (the follower may have got there first).
/// Should catching up fail, the group is left to the follower: it is committed, and
/// acknowledged.
fn apply_followed(
    group: Vec<Job>,
    (first, last): (u64, u64),
    store: &Weak<dyn Store>,
    follow: &Follow,
) {
    let mut seen = follow.gate();
    if seen.saturating_add(1) < first {
        let caught = match store.upgrade() {
            Some(store) => follow
                .catch_up(store.as_ref(), &mut seen, Some(first - 1))
                .map_err(|e| e.to_string()),
            None => Err("the store is closed".to_string()),
        };
        if let Err(e) = caught {
            tracing::warn!(
                error = %e,
                "cannot read the chunks before a group; the follower will apply it"
            );
        }
    }
    let in_order = seen.saturating_add(1) >= first;
    let mut position = first;
    for job in group {
        if job.facts.is_empty() {
            let _ = job.done.send(Ok(0));
            continue;
        }
        let mut deleted = 0;
        if in_order {
            let mut index = write(&job.index);
            if index.position() < position {
                for (user, fact) in &job.facts {
                    match fact.kind {
                        FactKind::Deletion => deleted += u64::from(index.delete_user(user)),
                        _ => index.apply(user, fact),
                    }
                }
                index.set_position(position);
            }
        }
        position += 1;
        let _ = job.done.send(Ok(deleted));
    }
    if in_order {
        *seen = (*seen).max(last);
    }
}

/// Applies a committed group to the indexes (only if the commit succeeded: an index
/// never holds a fact the store could lose) and answers its requests. With the last
/// job of each workspace, under the same lock, its index records the group's
/// fact-log position: from then on it holds every fact of the group, so that a
/// checkpoint taken under that lock never claims a fact it lacks.
fn apply_one((group, result): Committed, store: &Weak<dyn Store>, follow: &Follow) {
    if let (true, Ok(Some(range))) = (follow.enabled, &result) {
        apply_followed(group, *range, store, follow);
        return;
    }
    let result = result.map(|range| range.map_or(0, |(_, last)| last));
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

/// Commits a group and returns the fact-log positions of its first and last chunk.
fn commit(store: &dyn Store, group: &[Job]) -> Result<Option<(u64, u64)>, WriteError> {
    // One chunk per job: its position is what the index records (see `apply_followed`).
    let chunks: Vec<(WorkspaceId, EncodedFacts)> = group
        .iter()
        .filter(|j| !j.encoded.is_empty())
        .map(|j| (j.workspace, j.encoded.clone()))
        .collect();
    let responses: Vec<IdempotencyRecord> =
        group.iter().filter_map(|j| j.remember.clone()).collect();
    let receipts = Receipts {
        responses: &responses,
        imports: &[],
    };
    Ok(store.append_encoded_at(&chunks, receipts)?)
}
