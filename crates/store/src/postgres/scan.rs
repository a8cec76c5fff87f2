//! Reading a workspace's facts back (the start of a node without a checkpoint): the
//! chunks are fetched and decoded on a thread of their own while the caller applies
//! the facts already decoded, so that the database, the decoding and the replay into
//! the index overlap instead of taking turns.

use super::PostgresStore;
use crate::{Result, StoreError, chunk};
use headcount_model::{Fact, UserKey, WorkspaceId};
use std::sync::mpsc;

/// Chunks fetched per query: positions never change, so the pages join up exactly,
/// and a large log is never held in memory at once.
const PAGE: i64 = 256;
/// Decoded pages waiting for the caller at most (memory: a few pages of facts).
const AHEAD: usize = 2;

/// The chunks of one page, decoded (each chunk's users, and its facts with their
/// user's position among them), and the position of its last chunk.
type Page = (Vec<(Vec<UserKey>, Vec<(usize, Fact)>)>, i64);

/// Every fact of `workspace` after position `after`, in position order, to `visit`;
/// answers the last position read (`after` when there is none).
pub(super) fn facts_after(
    store: &PostgresStore,
    workspace: WorkspaceId,
    after: u64,
    visit: &mut dyn FnMut(&UserKey, Fact),
) -> Result<u64> {
    chunks_after(store, workspace, after, &mut |_, users, user, fact| {
        visit(&users[user], fact)
    })
}

/// [`facts_after`] by chunk (see `Store::scan_chunks_after`): `visit(chunk, users,
/// user, fact)`, `chunk` counting the chunks read.
pub(super) fn chunks_after(
    store: &PostgresStore,
    workspace: WorkspaceId,
    after: u64,
    visit: &mut crate::ChunkFactVisitor<'_>,
) -> Result<u64> {
    let start = i64::try_from(after).unwrap_or(i64::MAX);
    let (pages, decoded) = mpsc::sync_channel::<Result<Page>>(AHEAD);
    std::thread::scope(|s| {
        s.spawn(move || fetch(store, workspace, start, &pages));
        let mut last = start;
        let mut n = 0u64;
        // Ends when the fetching thread is done (its sender dropped).
        for page in decoded {
            let (chunks, position) = page?;
            for (users, facts) in chunks {
                n += 1;
                for (user, fact) in facts {
                    visit(n, &users, user, fact);
                }
            }
            last = position;
        }
        Ok(u64::try_from(last).unwrap_or(after))
    })
}

/// Fetches and decodes the pages after `start`, sending each; stops at the end, at
/// the first error (sent), or when the caller is gone.
fn fetch(
    store: &PostgresStore,
    workspace: WorkspaceId,
    start: i64,
    pages: &mpsc::SyncSender<Result<Page>>,
) {
    let mut client = match store.pool.get() {
        Ok(client) => client,
        Err(e) => {
            let _ = pages.send(Err(e));
            return;
        }
    };
    let mut last = start;
    loop {
        let page = client
            .query(
                "SELECT position, data FROM fact_chunks WHERE workspace_id = $1 \
                 AND position > $2 ORDER BY position LIMIT $3",
                &[&workspace.0, &last, &PAGE],
            )
            .map_err(StoreError::from)
            .and_then(|rows| {
                let mut chunks = Vec::with_capacity(rows.len());
                for row in &rows {
                    let data: &[u8] = row.get(1);
                    let mut facts = Vec::new();
                    let users = chunk::decode_indexed(data, &mut |user, fact| {
                        facts.push((user, fact));
                    })
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    chunks.push((users, facts));
                    last = row.get(0);
                }
                Ok((rows.is_empty(), chunks))
            });
        match page {
            Ok((true, _)) => return,
            Ok((false, facts)) => {
                if pages.send(Ok((facts, last))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = pages.send(Err(e));
                return;
            }
        }
    }
}
