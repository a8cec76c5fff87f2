//! Rate-limit windows shared by every node on one database, counted atomically in
//! `rate_counts` from async code: the statements are prepared once on a connection of
//! their own that the caller's tokio runtime drives, so that a count is one round
//! trip and no thread hop. Concurrent counts share the connection (tokio-postgres
//! pipelines them).
//!
//! A count commits with `synchronous_commit` off (for its transaction only): a window
//! is not acknowledged data, and waiting for the WAL's flush on every request would
//! make the counter, not the work, what bounds a node. A crash of PostgreSQL may
//! forget the last fraction of a second of counts, as Redis would.

use super::count;
use crate::Result;
use headcount_model::WorkspaceId;
use std::sync::Arc;

/// A window's count: ($1 workspace, $2 bucket, $3 window start).
const READ_WINDOW: &str = "SELECT count FROM rate_counts WHERE workspace_id = $1 \
     AND bucket = $2 AND window_start = $3";

/// Adds $4 hits to a window and answers its count after them. The row's lock orders
/// concurrent callers, so that each sees its own range of counts.
const ADD_TO_WINDOW: &str = "INSERT INTO rate_counts (workspace_id, bucket, window_start, count) \
     SELECT $1, $2, $3, $4 \
     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous \
     ON CONFLICT (workspace_id, bucket, window_start) \
     DO UPDATE SET count = rate_counts.count + EXCLUDED.count RETURNING count";

/// Removes the windows of ($1, $2) older than $3: run by a window's first hits.
const DROP_OLDER_WINDOWS: &str = "DELETE FROM rate_counts WHERE workspace_id = $1 \
     AND bucket = $2 AND window_start < $3";

/// Counts rate-limit windows in a PostgreSQL database, exactly across every process
/// that shares it, from async code.
pub struct RateCounter {
    config: tokio_postgres::Config,
    connection: tokio::sync::Mutex<Option<Arc<Prepared>>>,
}

/// An open connection and the counter's statements prepared on it.
struct Prepared {
    client: tokio_postgres::Client,
    read: tokio_postgres::Statement,
    add: tokio_postgres::Statement,
    drop_older: tokio_postgres::Statement,
}

impl std::fmt::Debug for RateCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateCounter")
    }
}

impl RateCounter {
    /// A counter for the database at `url` (connected on first use, and again after
    /// the connection broke).
    ///
    /// # Errors
    /// The URL is not a PostgreSQL connection string.
    pub fn new(url: &str) -> Result<RateCounter> {
        Ok(RateCounter {
            config: super::connection_config(url, "headcount rate limits")?,
            connection: tokio::sync::Mutex::new(None),
        })
    }

    /// The open connection, or a new one with the statements prepared.
    async fn prepared(&self) -> Result<Arc<Prepared>> {
        let mut held = self.connection.lock().await;
        if let Some(prepared) = held.as_ref().filter(|p| !p.client.is_closed()) {
            return Ok(prepared.clone());
        }
        *held = None;
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the connection breaks; the next
            // count then connects again.
            let _ = connection.await;
        });
        let prepared = Arc::new(Prepared {
            read: client.prepare(READ_WINDOW).await?,
            add: client.prepare(ADD_TO_WINDOW).await?,
            drop_older: client.prepare(DROP_OLDER_WINDOWS).await?,
            client,
        });
        *held = Some(prepared.clone());
        Ok(prepared)
    }

    /// Counts `hits` in the window of (`workspace`, `bucket`) starting at
    /// `window_start` (epoch seconds; none: reads it) and answers its count after them:
    /// the hits counted are the `hits` counts ending there. The window's first hits
    /// remove the older windows of its (workspace, bucket). Must run on a tokio
    /// runtime.
    ///
    /// # Errors
    /// The database failed or cannot be reached ([`StoreError::Unavailable`]).
    pub async fn count(
        &self,
        workspace: WorkspaceId,
        bucket: &str,
        window_start: u64,
        hits: u64,
    ) -> Result<u64> {
        let prepared = self.prepared().await?;
        let start = count(window_start);
        let client = &prepared.client;
        let answer = if hits == 0 {
            client
                .query_opt(&prepared.read, &[&workspace.0, &bucket, &start])
                .await
                .map(|row| row.map_or(0, |r| r.get::<_, i64>(0)))
        } else {
            let added = count(hits);
            match client
                .query_one(&prepared.add, &[&workspace.0, &bucket, &start, &added])
                .await
            {
                Ok(row) if row.get::<_, i64>(0) == added => client
                    .execute(&prepared.drop_older, &[&workspace.0, &bucket, &start])
                    .await
                    .map(|_| added),
                Ok(row) => Ok(row.get(0)),
                Err(e) => Err(e),
            }
        };
        match answer {
            Ok(counted) => Ok(counted.max(0) as u64),
            Err(e) => {
                // A broken connection, or statements another node's migration
                // invalidated: the next count prepares them on a new connection.
                let mut held = self.connection.lock().await;
                if held.as_ref().is_some_and(|p| Arc::ptr_eq(p, &prepared)) {
                    *held = None;
                }
                Err(e.into())
            }
        }
    }
}
