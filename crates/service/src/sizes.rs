//! Daily sizes: reading stored ones, computing and storing missing completed days,
//! and the live size of the current day. Synchronous: callers off the async runtime
//! (handlers through `spawn_blocking`, the scheduler, the CLI) share it.

use crate::counting::{Counting, SizeError};
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::Store;
use jiff::tz::TimeZone;

/// One segment's sizes in one workspace, as of `now`.
#[derive(Clone, Copy)]
pub struct Sizer<'a> {
    /// Where sizes are stored.
    pub store: &'a dyn Store,
    /// What counts the segment's sizes (the workspace's engine).
    pub counting: Counting<'a>,
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
    pub fn fill(&self, days: &[Day], recompute: bool) -> Result<usize, SizeError> {
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
        live: &mut dyn FnMut() -> Result<u64, SizeError>,
    ) -> Result<Vec<(Day, u64)>, SizeError> {
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(Vec::new());
        };
        let today = Day::containing(self.now, self.tz);
        let mut known: Vec<(Day, u64)> = self
            .store
            .sizes(self.segment, *first, *last)?
            .into_iter()
            .map(|s| (s.day, s.size))
            .collect();
        let missing: Vec<Day> = days
            .iter()
            .copied()
            .filter(|d| *d < today && known.binary_search_by_key(d, |k| k.0).is_err())
            .collect();
        known.extend(self.compute(missing)?);
        known.sort_unstable_by_key(|k| k.0);
        // The live size first (it may fail), then the points.
        let live_size = match days.last() {
            Some(last) if *last >= today => live()?,
            _ => 0,
        };
        Ok(assemble(days, today, &known, &mut || live_size))
    }

    /// Whether a day has ended by `now`.
    fn completed(&self, day: Day) -> bool {
        day < Day::containing(self.now, self.tz)
    }

    /// Computes and stores the sizes of `days`, all completed; returns them.
    fn compute(&self, days: Vec<Day>) -> Result<Vec<(Day, u64)>, SizeError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let sizes = self.counting.day_sizes(&days, self.tz)?;
        let rows: Vec<(Day, u64)> = days.into_iter().zip(sizes).collect();
        self.store.put_sizes(self.segment, &rows, self.now)?;
        Ok(rows)
    }
}

/// The answer of `data_series` for `days` (oldest first) when it needs no computing
/// and no I/O: every completed day's size is in the store's memory and `live` is the
/// live size of `today` (the day that contains "now"), when `days` include it. `None`
/// otherwise: then [`Sizer::series`] answers.
pub fn series_in_memory(
    store: &dyn Store,
    segment: SegmentId,
    days: &[Day],
    today: Day,
    live: Option<u64>,
) -> Option<Vec<(Day, u64)>> {
    let (first, last) = (*days.first()?, *days.last()?);
    let mut known = Vec::with_capacity(days.len());
    let answered = store.sizes_in_memory(segment, first, last, &mut |s| {
        known.push((s.day, s.size));
    });
    let completed = days.iter().filter(|d| **d < today).count();
    let stored = known.iter().filter(|k| k.0 < today).count();
    if !answered || stored != completed || (completed < days.len() && live.is_none()) {
        return None;
    }
    Some(assemble(days, today, &known, &mut || live.unwrap_or(0)))
}

/// The points of `days` (sorted): a size from `known` (sorted by day) for each completed day, 0
/// for one that is missing there, and `live()` for a day that has not ended.
fn assemble(
    days: &[Day],
    today: Day,
    known: &[(Day, u64)],
    live: &mut dyn FnMut() -> u64,
) -> Vec<(Day, u64)> {
    let mut known = known.iter().peekable();
    let mut points = Vec::with_capacity(days.len());
    for &day in days {
        while known.next_if(|k| k.0 < day).is_some() {}
        let size = match known.peek() {
            Some(k) if k.0 == day => k.1,
            _ if day >= today => live(),
            _ => 0,
        };
        points.push((day, size));
    }
    points
}

/// The `n` completed days that end with the day before the one containing `now`.
pub fn last_completed_days(now: Timestamp, n: u32, tz: &TimeZone) -> Vec<Day> {
    let yesterday = Day::containing(now, tz).add_days(-1);
    (0..n as i64)
        .rev()
        .map(|back| yesterday.add_days(-back))
        .collect()
}
