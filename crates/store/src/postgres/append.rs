//! Appending chunks to the fact log.
//!
//! Every append takes the row lock of `fact_log_head` in its transaction and numbers
//! its chunks from it: appends are serialized across processes and positions grow in
//! commit order. The lock is held until the commit, so the time between taking it and
//! committing is the time every other appender waits.
//!
//! An append without receipts (the ingestion writer's group commit of tracks and
//! deletes: the hot path) is ONE statement sent in one round trip, committed on its
//! own: it takes the lock, inserts the chunks and their purges, and notifies the
//! followers, so the lock is held for the server's work and the commit's `fsync`
//! only, never across a network round trip. An append with receipts (idempotency
//! records, import progress) is a transaction of a few statements.

use super::{PostgresStore, count, micros, put_idempotency};
use crate::{EncodedFacts, Receipts, Result, StoreError};
use headcount_model::WorkspaceId;
use postgres::types::{ToSql, Type};

/// The append of the hot path: takes `n` positions from the head (`$1`'s length),
/// inserts chunk `i` (1-based) at `head - n + i`, a purge for each chunk with
/// deletions (`$4`), notifies the followers (the payload `$5`: the appending store's
/// token), and answers the new head.
const APPEND: &str = "\
WITH head AS (
    UPDATE fact_log_head SET position = position + cardinality($1::bigint[])
    WHERE id = 1 RETURNING position
), chunks AS (
    INSERT INTO fact_chunks (position, workspace_id, facts, data)
    SELECT head.position - cardinality($1::bigint[]) + c.i, c.ws, c.n, c.data
    FROM head, unnest($1::bigint[], $2::bigint[], $3::bytea[]) WITH ORDINALITY AS c(ws, n, data, i)
), purges AS (
    INSERT INTO fact_purges (chunk_id, workspace_id, next_chunk)
    SELECT head.position - cardinality($1::bigint[]) + c.i, c.ws, 0
    FROM head, unnest($1::bigint[], $4::bool[]) WITH ORDINALITY AS c(ws, deletes, i)
    WHERE c.deletes
)
SELECT head.position, pg_notify('headcount_facts', $5) FROM head";

/// The columns of [`APPEND`]'s parameters, per chunk.
struct Columns<'a> {
    token: &'a str,
    workspaces: Vec<i64>,
    facts: Vec<i64>,
    data: Vec<&'a [u8]>,
    deletes: Vec<bool>,
}

impl<'a> Columns<'a> {
    fn of(chunks: &[&'a (WorkspaceId, EncodedFacts)], token: &'a str) -> Columns<'a> {
        Columns {
            token,
            workspaces: chunks.iter().map(|(ws, _)| ws.0).collect(),
            facts: chunks.iter().map(|(_, c)| c.len() as i64).collect(),
            data: chunks.iter().map(|(_, c)| c.bytes()).collect(),
            deletes: chunks.iter().map(|(_, c)| c.deletions() > 0).collect(),
        }
    }

    /// [`APPEND`]'s parameters, typed (no round trip to prepare the statement).
    fn params(&self) -> [(&(dyn ToSql + Sync), Type); 5] {
        [
            (&self.workspaces, Type::INT8_ARRAY),
            (&self.facts, Type::INT8_ARRAY),
            (&self.data, Type::BYTEA_ARRAY),
            (&self.deletes, Type::BOOL_ARRAY),
            (&self.token, Type::TEXT),
        ]
    }
}

/// A token naming one store (one process's connection pool) in its notifications: its
/// own listener skips them, since its writer applies its own appends at once (waking
/// its follower for them would only read them back from the database, under the
/// gate the writer's applier waits on).
pub(super) fn token() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough within one machine: a foreign wake-up is then only skipped
        // by a store of the same process and instant, and the follower polls anyway.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes[..4].copy_from_slice(&std::process::id().to_le_bytes());
        bytes[4..].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The positions of the first and last of `n` chunks whose last is at `head`.
fn range(head: i64, n: usize) -> (u64, u64) {
    let first = head - n as i64 + 1;
    (first.max(0) as u64, head.max(0) as u64)
}

impl PostgresStore {
    /// Appends in one transaction (see [`crate::Store::append_encoded_with`]) and
    /// answers the positions of the first and last chunk written, taken in that
    /// transaction.
    pub(super) fn append_positions(
        &self,
        chunks: &[(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<Option<(u64, u64)>> {
        let chunks: Vec<&(WorkspaceId, EncodedFacts)> =
            chunks.iter().filter(|(_, c)| !c.is_empty()).collect();
        if receipts.responses.is_empty() && receipts.imports.is_empty() {
            if chunks.is_empty() {
                return Ok(None);
            }
            return self.append_alone(&chunks).map(Some);
        }
        self.append_with_receipts(&chunks, receipts)
    }

    /// The hot path: [`APPEND`] in one round trip, committed on its own.
    fn append_alone(&self, chunks: &[&(WorkspaceId, EncodedFacts)]) -> Result<(u64, u64)> {
        let columns = Columns::of(chunks, &self.token);
        let mut client = self.pool.get()?;
        let head: i64 = client
            .query_typed_one(APPEND, &columns.params())?
            .try_get(0)?;
        Ok(range(head, chunks.len()))
    }

    /// An append with receipts: the idempotency records, the imports' progress and
    /// [`APPEND`] in one transaction.
    fn append_with_receipts(
        &self,
        chunks: &[&(WorkspaceId, EncodedFacts)],
        receipts: Receipts<'_>,
    ) -> Result<Option<(u64, u64)>> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        for record in receipts.responses {
            put_idempotency(&mut tx, record)?;
        }
        for p in receipts.imports {
            let changed = tx.execute(
                "UPDATE imports SET sha256 = COALESCE($2, sha256), lines = $3, bytes = $4, \
                 updated_at = $5, finished_at = CASE WHEN $6 THEN $5 ELSE finished_at END \
                 WHERE id = $1",
                &[
                    &p.id,
                    &p.sha256.as_ref().map(|h| h.as_slice()),
                    &count(p.lines),
                    &count(p.bytes),
                    &micros(p.at),
                    &p.finished,
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("no import record {}", p.id)));
            }
        }
        // Last: the head's lock is then held for the chunks and the commit only.
        let mut written = None;
        if !chunks.is_empty() {
            let columns = Columns::of(chunks, &self.token);
            let head: i64 = tx.query_typed_one(APPEND, &columns.params())?.try_get(0)?;
            written = Some(range(head, chunks.len()));
        }
        tx.commit()?;
        Ok(written)
    }
}
