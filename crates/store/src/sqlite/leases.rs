//! Leases of the embedded store: one row per lease, taken or renewed by one upsert
//! that only overwrites a row of the same holder or one that has expired. SQLite has
//! one writer at a time, so the upsert is atomic; a PostgreSQL backend does the same
//! with `INSERT … ON CONFLICT … DO UPDATE … WHERE`.

use super::{SqliteStore, micros};
use crate::Result;
use headcount_model::Timestamp;
use rusqlite::params;
use std::time::Duration;

/// See [`crate::Store::try_lease`].
pub(super) fn try_lease(
    store: &SqliteStore,
    name: &str,
    holder: &str,
    now: Timestamp,
    ttl: Duration,
) -> Result<bool> {
    let now = micros(now);
    let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(ttl);
    let conn = store.conn();
    let changed = conn.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4",
        params![name, holder, expires, now],
    )?;
    Ok(changed == 1)
}

/// See [`crate::Store::release_lease`].
pub(super) fn release_lease(store: &SqliteStore, name: &str, holder: &str) -> Result<()> {
    store.conn().execute(
        "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )?;
    Ok(())
}
