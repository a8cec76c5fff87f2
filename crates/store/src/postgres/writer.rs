//! The writer lock of a PostgreSQL database: a session-level advisory lock held on a
//! connection of its own by `import`, `snapshot` and `demo`, so that a second one is
//! refused with a message naming the holder, as on a data directory.
//!
//! The store's appends are safe from several writers (see `postgres.rs`), and `serve`
//! nodes follow each other's appends (`headcount_service::follow`): `serve` does not
//! take this lock on a database.

use super::PostgresStore;
use crate::{Result, StoreError};

/// The advisory lock key of the writer ("hc-writr").
const WRITER_LOCK: i64 = 0x6863_2d77_7269_7472;

impl PostgresStore {
    /// Takes the writer lock of the database for the store's lifetime.
    ///
    /// # Errors
    /// [`StoreError::DatabaseLocked`] (naming the holder's `application_name` and
    /// address when PostgreSQL shows them) when another process holds it.
    pub fn lock_writer(&self) -> Result<()> {
        let mut config = self.pool.config().clone();
        let command: Vec<String> = std::env::args().skip(1).take(3).collect();
        let name = format!(
            "headcount {} (pid {})",
            command.join(" "),
            std::process::id()
        );
        let name: String = name.chars().take(60).collect();
        config.application_name(&name);
        let mut client = config.connect(postgres::NoTls)?;
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])?
            .get(0);
        if !taken {
            let holder: Option<String> = client
                .query_opt(
                    "SELECT a.application_name || ' from ' || COALESCE(host(a.client_addr), 'a local socket') \
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted \
                     AND l.classid::bigint = $1 AND l.objid::bigint = $2 LIMIT 1",
                    &[&(WRITER_LOCK >> 32), &(WRITER_LOCK & 0xffff_ffff)],
                )?
                .map(|r| r.get(0));
            super::pool::drop_elsewhere(vec![client]);
            return Err(StoreError::DatabaseLocked { holder });
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = writer.replace(client) {
            super::pool::drop_elsewhere(vec![old]);
        }
        Ok(())
    }
}
