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
//! Users get dense `u32` indices (see `users`): about 14 bytes of arrays plus one
//! hash-map entry and the key's text per user. Each event name, purchase product and
//! attribute name has a time-sorted column of parallel vectors: 12 bytes per
//! event or purchase (time `i64` µs + user `u32`), 16 per attribute write (plus a `u32`
//! value id; values are interned per attribute). Leaves evaluate to bitsets over all
//! users. Deleted users are tombstoned and skipped; [`Index::compact`] reclaims their
//! entries.

mod attributes;
mod bitset;
mod column;
mod counts;
mod eval;
mod hashids;
mod index;
mod intern;
mod names;
mod plan;
mod time;
mod users;

pub use eval::AsOf;
pub use index::Index;
pub use plan::{Plan, PlanError};

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
