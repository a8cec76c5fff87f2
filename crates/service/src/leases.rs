//! Jobs done once by whichever process sharing the store gets there first: a
//! [`Lease`] over [`Store::try_lease`], given back when dropped. The daily sizes of a
//! segment (the daily job and backfills, `jobs::fill_segment`) run under the lease
//! `sizes/<segment id>`: another node holding it skips the segment, and a node that
//! dies holding it loses it after [`LEASE_TTL`], when another takes the job over.

use crate::state::Shared;
use headcount_model::SegmentId;
use headcount_store::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a lease runs unless given back: past it, a job whose node died is taken
/// over. Longer than a segment's longest fill, or two nodes compute it (the same
/// sizes: harmless, only wasted).
pub const LEASE_TTL: Duration = Duration::from_secs(600);

/// The lease of a segment's daily sizes.
pub fn sizes_lease(segment: SegmentId) -> String {
    format!("sizes/{segment}")
}

/// A name for this process's leases: the node name, the process id and a number,
/// unique even for two states in one process.
pub fn holder_name(node_name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let node = if node_name.is_empty() {
        "node"
    } else {
        node_name
    };
    format!(
        "{node}/{}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A lease held until dropped.
pub struct Lease<'a> {
    store: &'a dyn Store,
    name: String,
    holder: &'a str,
}

impl<'a> Lease<'a> {
    /// The lease `name` for the holder of `state`, or `None` while another holds it.
    ///
    /// # Errors
    /// The store's.
    pub fn take(state: &'a Shared, name: String) -> Result<Option<Lease<'a>>, StoreError> {
        let taken =
            state
                .store
                .try_lease(&name, &state.lease_holder, crate::state::now(), LEASE_TTL)?;
        Ok(taken.then(|| Lease {
            store: state.store.as_ref(),
            name,
            holder: &state.lease_holder,
        }))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.release_lease(&self.name, self.holder) {
            // It expires by itself.
            tracing::warn!(lease = %self.name, error = %e, "cannot give back a lease");
        }
    }
}
