//! What one step of the background purge changes, whatever the backend: given the
//! pending deletion chunks of one workspace and a few chunks read from the lowest
//! cursor, which chunks to rewrite and where the cursors move. The backends read and
//! write (see `sqlite/purge.rs` and `postgres/purge.rs`); the decision is made here.

use crate::chunk;
use crate::{Result, StoreError};
use headcount_model::UserKey;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Chunks looked at per step at most.
pub(crate) const STEP_CHUNKS: usize = 16;
/// Bytes of chunks read per step at most (at least one chunk is read).
pub(crate) const STEP_BYTES: usize = 1 << 20;

/// The users each pending deletion chunk deletes, decoded once per chunk.
#[derive(Default)]
pub(crate) struct Pending {
    users: HashMap<i64, Arc<HashSet<UserKey>>>,
}

/// A pending purge: the chunk holding the deletions and its cursor.
pub(crate) struct Row {
    /// The chunk (its id or position) holding the deletion entries.
    pub chunk: i64,
    /// The lowest chunk of its workspace not yet purged for it.
    pub next: i64,
}

/// What a step writes.
pub(crate) struct Plan {
    /// Chunks to replace: (id, facts left, new bytes).
    pub rewrites: Vec<(i64, usize, Vec<u8>)>,
    /// The new cursor of every row whose cursor is at or below it; rows whose chunk
    /// is below it are done (deleted).
    pub end: i64,
}

fn corrupt(e: chunk::ChunkError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Pending {
    /// Forgets everything (nothing is pending any more).
    pub(crate) fn clear(&mut self) {
        self.users.clear();
    }

    /// Whether the users of a deletion chunk are decoded already.
    pub(crate) fn knows(&self, chunk: i64) -> bool {
        self.users.contains_key(&chunk)
    }

    /// Decides a step: `missing` holds the bytes of the deletion chunks not yet known,
    /// `chunks` the chunks read from the lowest cursor (in order), `exhausted` whether
    /// they reach the last pending deletion chunk.
    pub(crate) fn plan(
        &mut self,
        rows: &[Row],
        missing: Vec<(i64, Vec<u8>)>,
        chunks: &[(i64, Vec<u8>)],
        exhausted: bool,
    ) -> Result<Plan> {
        for (id, data) in missing {
            let users = chunk::deleted_users(&data).map_err(corrupt)?;
            self.users.insert(id, Arc::new(users));
        }
        let mut rewrites: Vec<(i64, usize, Vec<u8>)> = Vec::new();
        for (id, data) in chunks {
            let active = || rows.iter().filter(|r| r.next <= *id && *id <= r.chunk);
            let holds_deletions = active().any(|r| r.chunk == *id);
            let later: Vec<&HashSet<UserKey>> = active()
                .filter(|r| r.chunk > *id)
                .filter_map(|r| self.users.get(&r.chunk).map(Arc::as_ref))
                .collect();
            let dead = |user: &UserKey| later.iter().any(|users| users.contains(user));
            if !holds_deletions {
                let named = chunk::users(data).map_err(corrupt)?;
                if !named.iter().any(dead) {
                    continue;
                }
            }
            if let Some((facts, bytes)) = chunk::purge(data, &dead).map_err(corrupt)? {
                rewrites.push((*id, facts, bytes));
            }
        }
        let end = match chunks.last() {
            Some((last, _)) if !exhausted => last + 1,
            _ => rows.iter().map(|r| r.chunk).max().unwrap_or(0) + 1,
        };
        Ok(Plan { rewrites, end })
    }

    /// After the step's commit: forgets the deletion chunks it finished.
    pub(crate) fn finished(&mut self, rows: &[Row], end: i64) {
        for row in rows.iter().filter(|r| end > r.chunk) {
            self.users.remove(&row.chunk);
        }
    }
}
