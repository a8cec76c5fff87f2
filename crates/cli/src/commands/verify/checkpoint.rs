//! The comparison of a workspace's checkpoint with its facts: the checkpoint with the
//! facts after it replayed must answer as an index rebuilt from every fact — the same
//! users, the same events, and the same size of every live segment now and at the
//! end of each of the last days.

use super::Verifiable;
use headcount_engine::Index;
use headcount_service::catalog::{Catalog, time_zone};
use headcount_service::sizes::last_completed_days;
use headcount_store::Workspace;

/// Completed days compared, besides now.
const DAYS: u32 = 7;
/// Differences listed at most; the rest are counted.
const LISTED: usize = 5;

/// How the checkpoint `loaded`, with the facts after its position up to `end`
/// replayed, differs from `rebuilt` (every fact up to `end`): empty when it agrees.
///
/// # Errors
/// Those of the store while replaying.
pub fn compare(
    store: &dyn Verifiable,
    catalog: Option<&Catalog>,
    ws: &Workspace,
    mut loaded: Index,
    rebuilt: &Index,
    end: u64,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let position = loaded.position();
    if position > end {
        return Ok(vec![format!(
            "it includes the fact log up to position {position}, which ends at {end} \
             (a checkpoint of another data directory, or of a log that lost its end)"
        )]);
    }
    // Chunks that do not decode are reported by the rebuild; here they are skipped
    // alike, so that only the checkpoint's own differences remain.
    store.check_chunks(ws.id, position, end, &mut |user, fact| {
        loaded.apply(user, &fact)
    })?;
    let mut differences = Vec::new();
    let mut differ = |what: String, ours: u64, theirs: u64| {
        if ours != theirs {
            differences.push(format!(
                "{what}: {ours} from the checkpoint and the facts after it, {theirs} from the facts alone"
            ));
        }
    };
    differ(
        "users".to_string(),
        loaded.user_count() as u64,
        rebuilt.user_count() as u64,
    );
    differ(
        "events and purchases".to_string(),
        loaded.event_count() as u64,
        rebuilt.event_count() as u64,
    );
    if let (Some(catalog), Ok(tz)) = (catalog, time_zone(&ws.time_zone)) {
        let now = headcount_service::state::now();
        let days = last_completed_days(now, DAYS, &tz);
        let live = catalog
            .segments_of(ws.id)
            .filter(|e| e.segment.archived_at.is_none());
        for entry in live {
            // A segment that cannot be computed is a warning of its own.
            let Ok(plan) = catalog.segment_plan(entry, store) else {
                continue;
            };
            let name = &entry.segment.name;
            differ(
                format!("the size of segment \"{name}\" now"),
                loaded.size(&plan, now, &tz),
                rebuilt.size(&plan, now, &tz),
            );
            let ours = loaded.sizes(&plan, &days, &tz);
            let theirs = rebuilt.sizes(&plan, &days, &tz);
            for ((day, ours), theirs) in days.iter().zip(ours).zip(theirs) {
                differ(
                    format!("the size of segment \"{name}\" on {day}"),
                    ours,
                    theirs,
                );
            }
        }
    }
    if differences.len() > LISTED {
        let more = differences.len() - LISTED;
        differences.truncate(LISTED);
        differences.push(format!("and {more} more"));
    }
    Ok(differences)
}
