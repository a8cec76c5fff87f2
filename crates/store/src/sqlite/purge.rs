//! The background purge of the embedded store: removes from older chunks the facts
//! that deletion entries made unreachable, a few chunks per step.
//!
//! Each chunk holding deletion entries has a row in `fact_purges` (written in the
//! transaction that appends it) with a cursor, `next_chunk`: chunks of its workspace
//! below the cursor no longer hold facts it deletes. A step takes the workspace of the
//! oldest pending row and every pending row of that workspace (so that deletions
//! waiting together share one pass over the chunks), reads a few chunks from the
//! lowest cursor under the connection, lets go of it while it decodes and re-encodes
//! them, then takes it again for one short transaction that rewrites the chunks that
//! changed in place and moves the cursors. Rows are only rewritten, never deleted: a
//! chunk id, once given, stays the log's (SQLite would reuse the largest one).

use super::SqliteStore;
use crate::Result;
use crate::purge_plan::{Pending, Row, STEP_BYTES, STEP_CHUNKS};
use rusqlite::params;
use std::sync::MutexGuard;

impl SqliteStore {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.purge.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`crate::Store::purge_step`].
    pub(super) fn purge_one_step(&self) -> Result<bool> {
        // Held for the whole step: steps never overlap, so nothing else rewrites a
        // chunk between its read and its write.
        let mut pending = self.pending();
        let mut missing: Vec<(i64, Vec<u8>)> = Vec::new();
        let (rows, chunks, exhausted) = {
            let conn = self.conn();
            let workspace: Option<i64> = conn
                .prepare_cached("SELECT workspace_id FROM fact_purges ORDER BY chunk_id LIMIT 1")?
                .query_map([], |r| r.get(0))?
                .next()
                .transpose()?;
            let Some(workspace) = workspace else {
                pending.clear();
                return Ok(false);
            };
            let rows: Vec<Row> = conn
                .prepare_cached(
                    "SELECT chunk_id, next_chunk FROM fact_purges WHERE workspace_id = ?1 \
                     ORDER BY chunk_id",
                )?
                .query_map(params![workspace], |r| {
                    Ok(Row {
                        chunk: r.get(0)?,
                        next: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            for row in rows.iter().filter(|r| !pending.knows(r.chunk)) {
                let data: Vec<u8> = conn
                    .prepare_cached("SELECT data FROM fact_chunks WHERE id = ?1")?
                    .query_row(params![row.chunk], |r| r.get(0))?;
                missing.push((row.chunk, data));
            }
            let from = rows.iter().map(|r| r.next).min().unwrap_or(0);
            let to = rows.iter().map(|r| r.chunk).max().unwrap_or(0);
            let mut stmt = conn.prepare_cached(
                "SELECT id, data FROM fact_chunks WHERE workspace_id = ?1 AND id >= ?2 \
                 AND id <= ?3 ORDER BY id",
            )?;
            let mut found = stmt.query(params![workspace, from, to])?;
            let mut chunks: Vec<(i64, Vec<u8>)> = Vec::new();
            let mut bytes = 0usize;
            let mut exhausted = true;
            while let Some(row) = found.next()? {
                if chunks.len() >= STEP_CHUNKS || bytes >= STEP_BYTES {
                    exhausted = false;
                    break;
                }
                let data: Vec<u8> = row.get(1)?;
                bytes += data.len();
                chunks.push((row.get(0)?, data));
            }
            (rows, chunks, exhausted)
        };
        // Decoding and re-encoding happen without the connection.
        let plan = pending.plan(&rows, missing, &chunks, exhausted)?;
        let (rewrites, end) = (plan.rewrites, plan.end);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (id, facts, data) in &rewrites {
            tx.prepare_cached("UPDATE fact_chunks SET facts = ?2, data = ?3 WHERE id = ?1")?
                .execute(params![id, *facts as i64, data])?;
        }
        for row in rows.iter().filter(|r| r.next <= end) {
            if end > row.chunk {
                tx.prepare_cached("DELETE FROM fact_purges WHERE chunk_id = ?1")?
                    .execute(params![row.chunk])?;
            } else {
                tx.prepare_cached("UPDATE fact_purges SET next_chunk = ?2 WHERE chunk_id = ?1")?
                    .execute(params![row.chunk, end])?;
            }
        }
        tx.commit()?;
        drop(conn);
        pending.finished(&rows, end);
        Ok(true)
    }
}
