//! What several nodes on one database share besides the catalog: the fact log read
//! by position across workspaces (each node follows the others' appends; every
//! append also sends `NOTIFY headcount_facts` at its commit), and rate-limit windows
//! counted atomically in `rate_counts`.

use super::{PostgresStore, count};
use crate::{Result, StoreError, chunk};
use headcount_model::{Fact, UserKey, WorkspaceId};
use postgres::fallible_iterator::FallibleIterator;

/// The chunks of every workspace after `after`, in position order, at most
/// `max_chunks` of them; answers the last position read.
pub(super) fn scan_log_after(
    store: &PostgresStore,
    after: u64,
    max_chunks: u32,
    visit: &mut dyn FnMut(WorkspaceId, u64, &UserKey, Fact),
) -> Result<u64> {
    let rows = store.pool.get()?.query(
        "SELECT position, workspace_id, data FROM fact_chunks WHERE position > $1 \
         ORDER BY position LIMIT $2",
        &[&count(after), &i64::from(max_chunks.max(1))],
    )?;
    let mut last = after;
    for row in &rows {
        let position = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let workspace = WorkspaceId(row.get(1));
        let data: &[u8] = row.get(2);
        chunk::decode(data, &mut |user, fact| {
            visit(workspace, position, user, fact)
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        last = position;
    }
    Ok(last)
}

/// A window's count: (workspace, bucket, window start).
const READ_WINDOW: &str = "SELECT count FROM rate_counts WHERE workspace_id = $1 AND bucket = $2 \
     AND window_start = $3";

/// Adds $4 hits to a window and answers its new count, committed without waiting for
/// the WAL's flush.
const COUNT_WINDOW: &str = "INSERT INTO rate_counts (workspace_id, bucket, window_start, count) \
     SELECT $1, $2, $3, $4 \
     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous \
     ON CONFLICT (workspace_id, bucket, window_start) \
     DO UPDATE SET count = rate_counts.count + EXCLUDED.count RETURNING count";

/// Counts `hits` in a window (none: reads it), atomically: the row's lock orders
/// concurrent callers, so that each sees its own range of counts. The window's first
/// hits remove the older windows of its (workspace, bucket).
///
/// The count commits with `synchronous_commit` off (for this transaction only): a
/// window is not acknowledged data, and waiting for the WAL's flush on every request
/// would make the counter, not the work, what bounds a node. A crash of PostgreSQL
/// may forget the last fraction of a second of counts, as Redis would. Both statements
/// are prepared once per connection: a count is one round trip.
pub(super) fn count_rate_window(
    store: &PostgresStore,
    workspace: WorkspaceId,
    bucket: &str,
    window_start: u64,
    hits: u64,
) -> Result<u64> {
    let mut client = store.pool.get()?;
    let start = count(window_start);
    if hits == 0 {
        let read = client.prepared(READ_WINDOW)?;
        let found: Option<i64> = client
            .query_opt(&read, &[&workspace.0, &bucket, &start])
            .inspect_err(|_| client.forget_prepared())?
            .map(|r| r.get(0));
        return Ok(found.unwrap_or(0).max(0) as u64);
    }
    let added = count(hits);
    let add = client.prepared(COUNT_WINDOW)?;
    let counted: i64 = client
        .query_one(&add, &[&workspace.0, &bucket, &start, &added])
        .inspect_err(|_| client.forget_prepared())?
        .get(0);
    if counted == added {
        client.execute(
            "DELETE FROM rate_counts WHERE workspace_id = $1 AND bucket = $2 \
             AND window_start < $3",
            &[&workspace.0, &bucket, &start],
        )?;
    }
    Ok(counted.max(0) as u64)
}

/// Waits for a `NOTIFY headcount_facts` on a connection of its own (opened and
/// `LISTEN`ing on first use, again after it broke), at most `timeout`.
pub(super) fn wait_for_appends(
    store: &PostgresStore,
    timeout: std::time::Duration,
) -> Result<bool> {
    let mut held = store.listener.lock().unwrap_or_else(|p| p.into_inner());
    if held.as_ref().is_none_or(|c| c.is_closed()) {
        if let Some(old) = held.take() {
            super::pool::drop_elsewhere(vec![old]);
        }
        let mut client = store.pool.config().connect(postgres::NoTls)?;
        client.batch_execute("LISTEN headcount_facts")?;
        *held = Some(client);
    }
    let Some(client) = held.as_mut() else {
        return Ok(false);
    };
    let mut notifications = client.notifications();
    // This store's own appends are skipped (see `append::token`): its writer
    // applied them already.
    let deadline = std::time::Instant::now() + timeout;
    let woken = loop {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            break Ok(false);
        };
        match notifications.timeout_iter(left).next() {
            Ok(Some(n)) if n.payload() == store.token => {}
            Ok(found) => break Ok(found.is_some()),
            Err(e) => break Err(e),
        }
    };
    let woken = match woken {
        Ok(woken) => woken,
        Err(e) => {
            drop(notifications);
            if let Some(broken) = held.take() {
                super::pool::drop_elsewhere(vec![broken]);
            }
            return Err(e.into());
        }
    };
    // Several appends may have notified: one pass of the follower reads them all.
    while let Ok(Some(_)) = notifications.iter().next() {}
    Ok(woken)
}
