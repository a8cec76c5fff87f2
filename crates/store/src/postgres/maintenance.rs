//! Checks of the PostgreSQL store for `headcount verify`, the counterparts of the
//! embedded store's: the schema instead of SQLite's integrity check (PostgreSQL checks
//! its own pages), and every chunk of the fact log decoded.

use super::PostgresStore;
use crate::Result;
use crate::chunk;
use crate::sqlite::{ChunkCheck, ChunkFault};
use headcount_model::{Fact, UserKey, WorkspaceId};

/// The tables the schema must hold.
const TABLES: &[&str] = &[
    "workspaces",
    "api_keys",
    "segments",
    "segment_sizes",
    "fact_log_head",
    "fact_chunks",
    "fact_purges",
    "catalog_version",
    "rate_windows",
    "idempotency_keys",
    "imports",
    "headcount_instance",
];

impl PostgresStore {
    /// The problems of the schema: a version this build does not know, a missing
    /// table, a fact-log head behind a stored chunk. Empty when sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let (found, supported) = self.schema_version()?;
        if found != supported {
            problems.push(format!(
                "the schema has version {found}, this headcount knows {supported}"
            ));
        }
        let mut client = self.pool.get()?;
        for table in TABLES {
            let exists: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])?
                .get(0);
            if !exists {
                problems.push(format!("the table {table} is missing"));
            }
        }
        if problems.is_empty() {
            let row = client.query_one(
                "SELECT (SELECT position FROM fact_log_head WHERE id = 1), \
                 (SELECT COALESCE(max(position), 0) FROM fact_chunks)",
                &[],
            )?;
            let (head, max): (i64, i64) = (row.get(0), row.get(1));
            if head < max {
                problems.push(format!(
                    "the fact log's head ({head}) is behind its last chunk ({max})"
                ));
            }
        }
        Ok(problems)
    }

    /// The id of this database, made at its creation: local files derived from it
    /// (checkpoints) are kept under it, so that they never meet another database.
    pub fn instance_id(&self) -> Result<String> {
        Ok(self
            .pool
            .get()?
            .query_one("SELECT instance FROM headcount_instance WHERE id = 1", &[])?
            .get(0))
    }

    /// As [`crate::SqliteStore::check_chunks`]: decodes the chunks of a workspace at
    /// positions `after + 1 ..= through`, in log order, calling `visit` with the facts
    /// of each chunk that decodes whole and reporting the others. One snapshot.
    pub fn check_chunks(
        &self,
        workspace: WorkspaceId,
        after: u64,
        through: u64,
        visit: &mut dyn FnMut(&UserKey, Fact),
    ) -> Result<ChunkCheck> {
        let position = |p: u64| i64::try_from(p).unwrap_or(i64::MAX);
        let mut client = self.pool.get()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut check = ChunkCheck::default();
        let mut facts: Vec<(UserKey, Fact)> = Vec::new();
        let mut last = position(after);
        loop {
            let rows = tx.query(
                "SELECT position, facts, data FROM fact_chunks WHERE workspace_id = $1 \
                 AND position > $2 AND position <= $3 ORDER BY position LIMIT 256",
                &[&workspace.0, &last, &position(through)],
            )?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                check.chunks += 1;
                let id: i64 = row.get(0);
                last = id;
                let expected: i64 = row.get(1);
                let data: &[u8] = row.get(2);
                facts.clear();
                let decoded =
                    chunk::decode(data, &mut |user, fact| facts.push((user.clone(), fact)));
                let reason = match decoded {
                    Err(e) => Some(e.to_string()),
                    Ok(()) if facts.len() as i64 != expected => Some(format!(
                        "it decodes to {} facts, its row says {expected}",
                        facts.len()
                    )),
                    Ok(()) => None,
                };
                if let Some(reason) = reason {
                    check.faults.push(ChunkFault { chunk: id, reason });
                    continue;
                }
                check.facts += facts.len() as u64;
                for (user, fact) in facts.drain(..) {
                    visit(&user, fact);
                }
            }
        }
        tx.commit()?;
        Ok(check)
    }
}
