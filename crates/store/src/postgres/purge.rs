//! The background purge of the PostgreSQL store, the same steps as the embedded
//! store's (see `sqlite/purge.rs`; the decision is shared in `purge_plan.rs`).
//!
//! A step runs in one transaction under a transaction-level advisory lock, so that
//! steps of several processes never overlap: nothing else rewrites a chunk between
//! its read and its write. Appends do not wait for it (they add rows; a step only
//! rewrites older ones and the purge cursors).

use super::PostgresStore;
use crate::Result;
use crate::purge_plan::{Pending, Row, STEP_BYTES, STEP_CHUNKS};
use std::sync::MutexGuard;

/// The advisory lock key held through a purge step ("hc-purge").
const PURGE_LOCK: i64 = 0x6863_2d70_7572_6765;

impl PostgresStore {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.purge.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`crate::Store::purge_step`].
    pub(super) fn purge_one_step(&self) -> Result<bool> {
        let mut pending = self.pending();
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PURGE_LOCK])?;
        let workspace: Option<i64> = tx
            .query_opt(
                "SELECT workspace_id FROM fact_purges ORDER BY chunk_id LIMIT 1",
                &[],
            )?
            .map(|r| r.get(0));
        let Some(workspace) = workspace else {
            pending.clear();
            return Ok(false);
        };
        let rows: Vec<Row> = tx
            .query(
                "SELECT chunk_id, next_chunk FROM fact_purges WHERE workspace_id = $1 \
                 ORDER BY chunk_id",
                &[&workspace],
            )?
            .iter()
            .map(|r| Row {
                chunk: r.get(0),
                next: r.get(1),
            })
            .collect();
        let mut missing: Vec<(i64, Vec<u8>)> = Vec::new();
        for row in rows.iter().filter(|r| !pending.knows(r.chunk)) {
            let data: Vec<u8> = tx
                .query_one(
                    "SELECT data FROM fact_chunks WHERE position = $1",
                    &[&row.chunk],
                )?
                .get(0);
            missing.push((row.chunk, data));
        }
        let from = rows.iter().map(|r| r.next).min().unwrap_or(0);
        let to = rows.iter().map(|r| r.chunk).max().unwrap_or(0);
        let found = tx.query(
            "SELECT position, data FROM fact_chunks WHERE workspace_id = $1 AND position >= $2 \
             AND position <= $3 ORDER BY position LIMIT $4",
            &[&workspace, &from, &to, &(STEP_CHUNKS as i64 + 1)],
        )?;
        let mut chunks: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut bytes = 0usize;
        let mut exhausted = true;
        for row in &found {
            if chunks.len() >= STEP_CHUNKS || bytes >= STEP_BYTES {
                exhausted = false;
                break;
            }
            let data: Vec<u8> = row.get(1);
            bytes += data.len();
            chunks.push((row.get(0), data));
        }
        let plan = pending.plan(&rows, missing, &chunks, exhausted)?;
        for (id, facts, data) in &plan.rewrites {
            tx.execute(
                "UPDATE fact_chunks SET facts = $2, data = $3 WHERE position = $1",
                &[id, &(*facts as i64), data],
            )?;
        }
        for row in rows.iter().filter(|r| r.next <= plan.end) {
            if plan.end > row.chunk {
                tx.execute("DELETE FROM fact_purges WHERE chunk_id = $1", &[&row.chunk])?;
            } else {
                tx.execute(
                    "UPDATE fact_purges SET next_chunk = $2 WHERE chunk_id = $1",
                    &[&row.chunk, &plan.end],
                )?;
            }
        }
        tx.commit()?;
        pending.finished(&rows, plan.end);
        Ok(true)
    }
}
