//! What several nodes on one database share besides the catalog: the fact log read
//! by position across workspaces (each node follows the others' appends; every
//! append also sends `NOTIFY headcount_facts` at its commit).

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
