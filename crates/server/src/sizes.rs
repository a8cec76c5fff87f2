//! Daily sizes: reading stored ones, computing and storing missing completed days,
//! and the live size of the current day. Synchronous: callers off the async runtime
//! (handlers through `spawn_blocking`, the scheduler, the CLI) share it.

use headcount_engine::{Index, Plan};
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::{Store, StoreError};
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// One segment's sizes in one workspace, as of `now`.
#[derive(Clone, Copy)]
pub struct Sizer<'a> {
    /// Where sizes are stored.
    pub store: &'a dyn Store,
    /// The workspace's facts.
    pub index: &'a Index,
    /// The segment's plan.
    pub plan: &'a Plan,
    /// The segment.
    pub segment: SegmentId,
    /// The workspace's time zone.
    pub tz: &'a TimeZone,
    /// The moment of the computation: days that ended by then are completed.
    pub now: Timestamp,
}

impl Sizer<'_> {
    /// Computes and stores the sizes of the completed days among `days` (those that ended
    /// by `now`). Only days not stored yet, unless `recompute`. Returns how many were
    /// computed.
    pub fn fill(&self, days: &[Day], recompute: bool) -> Result<usize, StoreError> {
        let completed: Vec<Day> = days
            .iter()
            .copied()
            .filter(|d| self.completed(*d))
            .collect();
        let (Some(first), Some(last)) = (completed.iter().min(), completed.iter().max()) else {
            return Ok(0);
        };
        let missing: Vec<Day> = if recompute {
            completed
        } else {
            let stored: Vec<Day> = self
                .store
                .sizes(self.segment, *first, *last)?
                .iter()
                .map(|s| s.day)
                .collect();
            completed
                .into_iter()
                .filter(|d| !stored.contains(d))
                .collect()
        };
        Ok(self.compute(missing)?.len())
    }

    /// The answer of `data_series` for `days` (oldest first): stored sizes of completed
    /// days, missing completed days computed and stored now, and the live size as of `now`
    /// for a day that has not ended, as `live` gives it.
    pub fn series(
        &self,
        days: &[Day],
        live: &mut dyn FnMut() -> u64,
    ) -> Result<Vec<(Day, u64)>, StoreError> {
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(Vec::new());
        };
        let mut known: HashMap<Day, u64> = self
            .store
            .sizes(self.segment, *first, *last)?
            .into_iter()
            .map(|s| (s.day, s.size))
            .collect();
        let missing: Vec<Day> = days
            .iter()
            .copied()
            .filter(|d| self.completed(*d) && !known.contains_key(d))
            .collect();
        known.extend(self.compute(missing)?);
        Ok(days
            .iter()
            .map(|d| match known.get(d) {
                Some(size) => (*d, *size),
                None if !self.completed(*d) => (*d, live()),
                None => (*d, 0),
            })
            .collect())
    }

    /// Whether a day has ended by `now`.
    fn completed(&self, day: Day) -> bool {
        day.end(self.tz) <= self.now
    }

    /// Computes and stores the sizes of `days`, all completed; returns them.
    fn compute(&self, days: Vec<Day>) -> Result<Vec<(Day, u64)>, StoreError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let sizes = self.index.sizes(self.plan, &days, self.tz);
        let rows: Vec<(Day, u64)> = days.into_iter().zip(sizes).collect();
        self.store.put_sizes(self.segment, &rows, self.now)?;
        Ok(rows)
    }
}

/// The `n` completed days that end with the day before the one containing `now`.
pub fn last_completed_days(now: Timestamp, n: u32, tz: &TimeZone) -> Vec<Day> {
    let yesterday = Day::containing(now, tz).add_days(-1);
    (0..n as i64)
        .rev()
        .map(|back| yesterday.add_days(-back))
        .collect()
}
