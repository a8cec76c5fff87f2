//! Leases of the PostgreSQL store: one row per lease, taken or renewed by one upsert
//! that only overwrites a row of the same holder or one that has expired. The upsert
//! is atomic under concurrent callers (the row is locked by `ON CONFLICT … DO UPDATE`),
//! so of several nodes asking at once exactly one gets the lease.

use super::{PostgresStore, micros};
use crate::Result;
use headcount_model::Timestamp;
use std::time::Duration;

/// See [`crate::Store::try_lease`].
pub(super) fn try_lease(
    store: &PostgresStore,
    name: &str,
    holder: &str,
    now: Timestamp,
    ttl: Duration,
) -> Result<bool> {
    let now = micros(now);
    let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(ttl);
    let changed = store.pool.get()?.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        &[&name, &holder, &expires, &now],
    )?;
    Ok(changed == 1)
}

/// See [`crate::Store::release_lease`].
pub(super) fn release_lease(store: &PostgresStore, name: &str, holder: &str) -> Result<()> {
    store.pool.get()?.execute(
        "DELETE FROM leases WHERE name = $1 AND holder = $2",
        &[&name, &holder],
    )?;
    Ok(())
}
