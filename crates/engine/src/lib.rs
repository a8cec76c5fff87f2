//! headcount's engine: every user and fact of a workspace in memory, and the exact
//! evaluation of segment filters as of any instant, as `shared/spec/segments.md`
//! defines it. Synchronous, no I/O.
//!
//! # Use
//! Feed facts with [`Index::apply`] (any time order), compile a filter with
//! [`Plan::compile`] (which inlines `in_segment` references and rejects cycles), then
//! ask [`Index::size`], [`Index::sizes`] or [`Index::members`]; to size many segments
//! at the same instant, [`Index::as_of`] shares their common work.
//!
//! # Semantics worth knowing
//! - Fact times are kept to the microsecond, truncated toward the past; "before `T`"
//!   is then exact.
//! - Two writes of one attribute at the same microsecond: the one applied last wins.
//! - `within_last_days V` holds for a datetime `x` with `start(R − V + 1) <= x < T`:
//!   a datetime at or after `T` (in the future) is *not* within the last days.
//!   `more_than_days_ago V` holds for `x < start(R − V + 1)`.
//!
//! # Layout and memory
//! - Users (`users`): dense `u32` indices; keys encoded once in a byte arena and
//!   found by a keyed hash; per index the earliest-fact time, the random bucket and
//!   a fact count. About 40–80 bytes per user plus the key's text.
//! - Columns (`column`): per event name, a time-sorted list of runs of parallel
//!   vectors (time µs as a `u32` offset from a block base, exact — `sorted_times`;
//!   user `u32`: 8 bytes per event) plus a small unsorted tail; a window is a binary
//!   search per run. All purchases share one column with the product's id as payload
//!   (12 bytes per purchase): `"*"` reads it all, a product filters it. Per attribute
//!   name, a column of (time, user, value id), 9 bytes per write while the attribute
//!   has at most 255 values (`ids`), 12 beyond, values interned per
//!   attribute (`intern`). Every column is cut into slices of 2^18 users, so that a scan
//!   writes per-user state one cache-sized range of users at a time.
//! - Evaluation (`eval`): each leaf becomes a bitset over all user indices
//!   (`bitset`), combined by `all`/`any`/`not`, then intersected with the users that
//!   exist before `T`. Several instants (a history) are one pass forward in time
//!   (`history`), slice by slice: per user, each attribute's latest value and each
//!   window's count are carried from one instant to the next and updated with just
//!   the entries in between; its per-user arrays are kept for the next pass, up to
//!   8 MiB (`scratch`). Deleted users are tombstoned (their earliest-fact time becomes
//!   "never") and so excluded everywhere; [`Index::compact`] reclaims their entries.
//!
//! [`Index::heap_bytes`] estimates the memory held.
//!
//! # Checkpoints
//! [`Index::write_checkpoint`] writes the index as compact bytes (its vectors,
//! little-endian, checksummed) and [`Index::read_checkpoint`] reads them back at
//! memory speed into an index that answers exactly alike; anything damaged or of
//! another format version is a [`CheckpointError`] (`checkpoint`).

mod attributes;
mod bitset;
mod checkpoint;
mod codec;
mod column;
mod counts;
mod eval;
mod grid;
mod history;
mod ids;
mod index;
mod instants;
mod intern;
mod names;
mod plan;
mod scratch;
mod sorted_times;
mod time;
mod users;

pub use checkpoint::{CheckpointError, CheckpointHeader, FORMAT_VERSION};
pub use eval::AsOf;
pub use index::{Index, MemoryUse};
pub use plan::{Inlined, Measure, Plan, PlanError, Resolve};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_and_plans_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Index>();
        shared::<Plan>();
        shared::<PlanError>();
    }
}
