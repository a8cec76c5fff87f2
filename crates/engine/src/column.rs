//! Time-sorted columns of facts: one per event name, per purchase product and per
//! attribute name.
//!
//! A column is cut into slices of [`SLICE_USERS`] users by user index, each slice
//! organised as below; a scan goes slice by slice.
//!
//! A column holds `(time, user, payload)` entries, time in microseconds. It is a list
//! of *runs*, each sorted by time and stored as parallel vectors: the times as
//! [`SortedTimes`] (per entry a `u32` offset from a block base, exact to the
//! microsecond; 16 bytes per block, which spans up to ~71 minutes), the users and the
//! payloads: 8 bytes per entry for events, 12 with a purchase's product or an
//! attribute's value id. A small unsorted *tail* (16 bytes per entry) takes new
//! entries in any time order. When the tail is full (1/16 of the column,
//! within 1024..=65536 entries) it is sorted into a new run, and runs are merged two by
//! two while the newer one is at least as long as the older one, so a column has
//! O(log n) runs and every entry is merged O(log n) times; entries arriving in time
//! order are appended without comparisons. Queries binary-search each run for a time
//! range (over block bases, then within one block), scan the tail fully, and never
//! mutate anything.
//!
//! Runs are ordered oldest first and merges are stable, so entries with equal times
//! keep the order in which they were applied: [`Column::for_each_latest_before`]
//! relies on it to let the last applied of two simultaneous attribute writes win.

use crate::checkpoint::CheckpointError;
use crate::codec::{Decoder, Encoder, Le};
use crate::sorted_times::SortedTimes;
use std::io::{self, Read, Write};
use std::mem;
use std::ops::Range;

/// Entries the unsorted tail takes at least before it is sorted into a run.
const TAIL_MIN: usize = 1024;
/// Entries the unsorted tail takes at most (1 MiB of event entries).
const TAIL_MAX: usize = 65_536;
/// The tail takes up to this fraction of the entries in runs (within the bounds
/// above), so that it costs at most a few percent of memory and of a full scan.
const TAIL_SHARE: usize = 16;

/// A time-sorted slice of a column, as parallel vectors.
#[derive(Debug, Clone)]
struct Run<V> {
    times: SortedTimes,
    users: Vec<u32>,
    values: Vec<V>,
}

impl<V: Copy> Run<V> {
    fn with_capacity(n: usize) -> Run<V> {
        Run {
            times: SortedTimes::with_capacity(n),
            users: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    fn push(&mut self, time: i64, user: u32, value: V) {
        self.times.push(time);
        self.users.push(user);
        self.values.push(value);
    }

    /// A run of entries already sorted by time.
    fn from_sorted(entries: &[(i64, u32, V)]) -> Run<V> {
        let mut run = Run::with_capacity(entries.len());
        for &(time, user, value) in entries {
            run.push(time, user, value);
        }
        run
    }

    /// The positions of the entries with `lo <= time < hi`.
    fn range(&self, lo: i64, hi: i64) -> Range<usize> {
        let start = self.times.partition_point_lt(lo);
        let end = self.times.partition_point_lt(hi);
        start..end.max(start)
    }

    /// The stable merge of two runs, `older` first among equal times.
    fn merge(mut older: Run<V>, newer: Run<V>) -> Run<V> {
        let in_order = match (older.times.last(), newer.times.first()) {
            (Some(last), Some(first)) => first >= last,
            _ => true,
        };
        if in_order {
            older.times.reserve_exact(newer.len());
            older.users.reserve_exact(newer.len());
            older.values.reserve_exact(newer.len());
            older.times.append(&newer.times);
            older.users.extend_from_slice(&newer.users);
            older.values.extend_from_slice(&newer.values);
            return older;
        }
        let mut out = Run::with_capacity(older.len() + newer.len());
        let (mut i, mut j) = (0, 0);
        let (mut old_times, mut new_times) = (older.times.cursor(), newer.times.cursor());
        while i < older.len() && j < newer.len() {
            let (old_time, new_time) = (old_times.time(i), new_times.time(j));
            // Selections rather than branches: the comparison is unpredictable.
            let take = new_time < old_time;
            out.times.push(if take { new_time } else { old_time });
            out.users
                .push(if take { newer.users[j] } else { older.users[i] });
            out.values.push(if take {
                newer.values[j]
            } else {
                older.values[i]
            });
            j += usize::from(take);
            i += usize::from(!take);
        }
        out.times.extend_from(&older.times, i..older.len());
        out.times.extend_from(&newer.times, j..newer.len());
        out.users.extend_from_slice(&older.users[i..]);
        out.values.extend_from_slice(&older.values[i..]);
        out.users.extend_from_slice(&newer.users[j..]);
        out.values.extend_from_slice(&newer.values[j..]);
        out
    }

    /// Calls `f(time, user, value)` for the entries at `positions`, in order.
    fn for_each_entry(&self, positions: Range<usize>, mut f: impl FnMut(i64, u32, V)) {
        for block in self.times.blocks(positions) {
            let positions = block.positions();
            let entries = block
                .offsets
                .iter()
                .zip(&self.users[positions.clone()])
                .zip(&self.values[positions]);
            for ((&offset, &user), &value) in entries {
                f(block.time(offset), user, value);
            }
        }
    }

    /// Keeps only the entries of users for which `keep` holds.
    fn retain_users(&mut self, keep: &dyn Fn(u32) -> bool) {
        if self.users.iter().all(|&user| keep(user)) {
            // Nothing to drop: no copy (a compaction after a restart costs a scan).
            self.times.shrink_to_fit();
            self.users.shrink_to_fit();
            self.values.shrink_to_fit();
            return;
        }
        let mut kept = Run::with_capacity(0);
        self.for_each_entry(0..self.len(), |time, user, value| {
            if keep(user) {
                kept.push(time, user, value);
            }
        });
        kept.times.shrink_to_fit();
        kept.users.shrink_to_fit();
        kept.values.shrink_to_fit();
        *self = kept;
    }
}

/// Users per slice of a column: a scan in time order writes per-user state (a bit of
/// a bitset, a 4-byte count) at random, and keeping those writes within one slice's
/// users at a time keeps them in the CPU's cache (2^18 users: 32 KiB of bits, 1 MiB of
/// counts) however many users there are.
#[cfg(not(test))]
pub const SLICE_USERS: usize = 1 << 18;
/// In this crate's unit tests, slices are small so that small data crosses several.
#[cfg(test)]
pub const SLICE_USERS: usize = 1 << 6;

/// All entries of one event name, purchase product or attribute name, in slices of
/// [`SLICE_USERS`] users by user index.
#[derive(Debug, Clone)]
pub struct Column<V> {
    slices: Vec<Slice<V>>,
}

impl<V> Default for Column<V> {
    fn default() -> Self {
        Column { slices: Vec::new() }
    }
}

impl<V: Copy> Column<V> {
    /// Records an entry; times may arrive in any order.
    pub fn push(&mut self, time: i64, user: u32, value: V) {
        let slice = user as usize / SLICE_USERS;
        if self.slices.len() <= slice {
            self.slices.resize_with(slice + 1, Slice::default);
        }
        self.slices[slice].push(time, user, value);
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.slices.iter().map(Slice::len).sum()
    }

    /// The bytes of memory the column holds (its vectors' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.slices.iter().map(Slice::heap_bytes).sum::<usize>()
            + self.slices.capacity() * size_of::<Slice<V>>()
    }

    /// Calls `f(user, value)` for every entry with `lo <= time < hi`, in no
    /// particular order (slice by slice, so by ranges of users).
    pub fn for_each_in(&self, lo: i64, hi: i64, mut f: impl FnMut(u32, V)) {
        for slice in &self.slices {
            slice.for_each_in(lo, hi, &mut f);
        }
    }

    /// Calls `f(user, value)` for entries with `time < hi` such that, per user, the
    /// last call carries the latest entry (the last applied among equal times).
    /// `users` bounds the user indices; `latest` is scratch space.
    pub fn for_each_latest_before(
        &self,
        hi: i64,
        users: usize,
        latest: &mut Vec<i64>,
        mut f: impl FnMut(u32, V),
    ) {
        if self.slices.iter().any(|slice| !slice.is_one_run()) {
            // Users are disjoint between slices: one reset serves them all.
            latest.clear();
            latest.resize(users, i64::MIN);
        }
        for (position, slice) in self.slices.iter().enumerate() {
            let base = position * SLICE_USERS;
            let latest = latest.get_mut(base..).unwrap_or_default();
            slice.for_each_latest_in(i64::MIN, hi, base, latest, &mut f);
        }
    }

    /// Slice `position` ready for windows read in increasing time order (empty when
    /// the column has no such slice).
    pub fn slice_cursor(&self, position: usize) -> SliceCursor<'_, V> {
        let Some(slice) = self.slices.get(position) else {
            return SliceCursor {
                runs: Vec::new(),
                tail: None,
                base: position * SLICE_USERS,
            };
        };
        let tail = (!slice.tail.is_empty()).then(|| {
            let mut tail = slice.tail.clone();
            tail.sort_by_key(|&(time, _, _)| time);
            Run::from_sorted(&tail)
        });
        SliceCursor {
            runs: slice.runs.iter().collect(),
            tail,
            base: position * SLICE_USERS,
        }
    }

    /// The same entries with each payload mapped by `f` (the order kept exactly).
    pub fn map<B: Copy>(self, f: impl Fn(V) -> B) -> Column<B> {
        let slices = self
            .slices
            .into_iter()
            .map(|slice| Slice {
                runs: slice
                    .runs
                    .into_iter()
                    .map(|run| Run {
                        times: run.times,
                        users: run.users,
                        values: run.values.into_iter().map(&f).collect(),
                    })
                    .collect(),
                in_runs: slice.in_runs,
                tail: slice
                    .tail
                    .into_iter()
                    .map(|(time, user, value)| (time, user, f(value)))
                    .collect(),
            })
            .collect();
        Column { slices }
    }

    /// Drops the entries of users for which `keep` fails and rewrites each slice as
    /// one sorted run.
    pub fn compact(&mut self, keep: &dyn Fn(u32) -> bool) {
        for slice in &mut self.slices {
            slice.compact(keep);
        }
    }
}

/// The entries of one column whose users fall in one range of [`SLICE_USERS`].
#[derive(Debug, Clone)]
struct Slice<V> {
    runs: Vec<Run<V>>,
    /// The number of entries in `runs`.
    in_runs: usize,
    tail: Vec<(i64, u32, V)>,
}

impl<V> Default for Slice<V> {
    fn default() -> Self {
        Slice {
            runs: Vec::new(),
            in_runs: 0,
            tail: Vec::new(),
        }
    }
}

impl<V: Copy> Slice<V> {
    /// Records an entry; times may arrive in any order.
    fn push(&mut self, time: i64, user: u32, value: V) {
        self.tail.push((time, user, value));
        if self.tail.len() >= (self.in_runs / TAIL_SHARE).clamp(TAIL_MIN, TAIL_MAX) {
            self.flush();
            self.merge_while_unbalanced();
        }
    }

    /// The number of entries.
    fn len(&self) -> usize {
        self.in_runs + self.tail.len()
    }

    /// The bytes of memory the slice holds (its vectors' capacities).
    fn heap_bytes(&self) -> usize {
        let runs: usize = self
            .runs
            .iter()
            .map(|run| {
                run.times.heap_bytes()
                    + run.users.capacity() * size_of::<u32>()
                    + run.values.capacity() * size_of::<V>()
            })
            .sum();
        runs + self.runs.capacity() * size_of::<Run<V>>()
            + self.tail.capacity() * size_of::<(i64, u32, V)>()
    }

    /// Calls `f(user, value)` for every entry with `lo <= time < hi`, in no
    /// particular order.
    fn for_each_in(&self, lo: i64, hi: i64, f: &mut impl FnMut(u32, V)) {
        for run in &self.runs {
            let range = run.range(lo, hi);
            for (&user, &value) in run.users[range.clone()].iter().zip(&run.values[range]) {
                f(user, value);
            }
        }
        for &(time, user, value) in &self.tail {
            if lo <= time && time < hi {
                f(user, value);
            }
        }
    }

    /// Whether the entries are one sorted run: visiting it in order makes each user's
    /// latest entry come last, without scratch space.
    fn is_one_run(&self) -> bool {
        self.tail.is_empty() && self.runs.len() <= 1
    }

    /// [`Column::for_each_latest_before`] for this slice, in the window
    /// `lo <= time < hi`; see [`latest_in`].
    fn for_each_latest_in(
        &self,
        lo: i64,
        hi: i64,
        base: usize,
        latest: &mut [i64],
        f: &mut impl FnMut(u32, V),
    ) {
        let runs: Vec<&Run<V>> = self.runs.iter().collect();
        latest_in(&runs, &self.tail, lo, hi, base, latest, f);
    }

    /// Drops the entries of users for which `keep` fails and rewrites the slice as
    /// one sorted run.
    fn compact(&mut self, keep: &dyn Fn(u32) -> bool) {
        self.flush();
        while self.runs.len() > 1 {
            self.merge_last_two();
        }
        for run in &mut self.runs {
            run.retain_users(keep);
        }
        self.runs.retain(|run| run.len() > 0);
        self.runs.shrink_to_fit();
        self.in_runs = self.runs.iter().map(Run::len).sum();
    }

    fn flush(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let mut tail = mem::take(&mut self.tail);
        tail.sort_by_key(|&(time, _, _)| time);
        self.in_runs += tail.len();
        self.runs.push(Run::from_sorted(&tail));
    }

    /// Merges the newest runs while the newer is at least as long as the older: like
    /// a binary counter, so run lengths at least double toward the oldest.
    fn merge_while_unbalanced(&mut self) {
        while let [.., older, newer] = self.runs.as_slice() {
            if older.len() > newer.len() {
                break;
            }
            self.merge_last_two();
        }
    }

    fn merge_last_two(&mut self) {
        if let (Some(newer), Some(older)) = (self.runs.pop(), self.runs.pop()) {
            self.runs.push(Run::merge(older, newer));
        }
    }
}

/// Calls `f(user, value)` for the entries of `runs` (oldest first) and of the
/// unsorted `tail` with `lo <= time < hi`, such that per user the last call carries the
/// latest entry, the last applied among equal times. Unless the entries are one sorted
/// run, `latest[user − base]` holds the time of the user's latest entry visited so
/// far (`i64::MIN`: none), so that windows read in increasing time order with the
/// same `latest` keep each user's latest entry over all of them.
fn latest_in<V: Copy>(
    runs: &[&Run<V>],
    tail: &[(i64, u32, V)],
    lo: i64,
    hi: i64,
    base: usize,
    latest: &mut [i64],
    f: &mut impl FnMut(u32, V),
) {
    if tail.is_empty() && runs.len() <= 1 {
        for run in runs {
            let range = run.range(lo, hi);
            for (&user, &value) in run.users[range.clone()].iter().zip(&run.values[range]) {
                f(user, value);
            }
        }
        return;
    }
    let mut visit = |time: i64, user: u32, value: V| {
        if let Some(seen) = (user as usize)
            .checked_sub(base)
            .and_then(|i| latest.get_mut(i))
            && time >= *seen
        {
            *seen = time;
            f(user, value);
        }
    };
    for run in runs {
        run.for_each_entry(run.range(lo, hi), &mut visit);
    }
    for &(time, user, value) in tail {
        if lo <= time && time < hi {
            visit(time, user, value);
        }
    }
}

/// The checkpoint form of a column: per slice, its runs as they are (times, users,
/// payloads) and its unsorted tail, so that a column reads back exactly as it was.
impl<V: Copy + Le> Column<V> {
    /// Writes the column.
    pub fn encode<W: Write>(&self, out: &mut Encoder<W>) -> io::Result<()> {
        out.len(self.slices.len())?;
        for slice in &self.slices {
            out.len(slice.runs.len())?;
            for run in &slice.runs {
                run.times.encode(out)?;
                out.items(&run.users)?;
                out.items(&run.values)?;
            }
            let times: Vec<i64> = slice.tail.iter().map(|e| e.0).collect();
            let users: Vec<u32> = slice.tail.iter().map(|e| e.1).collect();
            let values: Vec<V> = slice.tail.iter().map(|e| e.2).collect();
            out.items(&times)?;
            out.items(&users)?;
            out.items(&values)?;
        }
        Ok(())
    }

    /// Reads what [`Column::encode`] wrote, checking that every entry's user is below
    /// `users` and in its slice, and that `valid` accepts every payload.
    pub fn decode<R: Read>(
        input: &mut Decoder<R>,
        users: usize,
        valid: &dyn Fn(V) -> bool,
    ) -> Result<Column<V>, CheckpointError> {
        let corrupt = CheckpointError::Corrupt;
        let n = input.count()?;
        let mut slices = Vec::with_capacity(n);
        for position in 0..n {
            let in_slice = |user: &u32| {
                let user = *user as usize;
                user < users && user / SLICE_USERS == position
            };
            let check = |users: &[u32], values: &[V], len: usize| {
                if users.len() != len || values.len() != len {
                    return Err(corrupt("column vectors of different lengths"));
                }
                if !users.iter().all(in_slice) || !values.iter().all(|&v| valid(v)) {
                    return Err(corrupt("a column entry out of range"));
                }
                Ok(())
            };
            let runs_n = input.count()?;
            let mut runs = Vec::with_capacity(runs_n);
            for _ in 0..runs_n {
                let times = SortedTimes::decode(input)?;
                let users: Vec<u32> = input.items_beside(times.len())?;
                let values: Vec<V> = input.items_beside(times.len())?;
                check(&users, &values, times.len())?;
                runs.push(Run {
                    times,
                    users,
                    values,
                });
            }
            let times: Vec<i64> = input.items()?;
            let tail_users: Vec<u32> = input.items_beside(times.len())?;
            let values: Vec<V> = input.items_beside(times.len())?;
            check(&tail_users, &values, times.len())?;
            let tail = times
                .into_iter()
                .zip(tail_users)
                .zip(values)
                .map(|((t, u), v)| (t, u, v))
                .collect();
            slices.push(Slice {
                in_runs: runs.iter().map(Run::len).sum(),
                runs,
                tail,
            });
        }
        Ok(Column { slices })
    }
}

/// One slice of a column, its tail sorted into a last run: the way to read it in
/// windows of increasing time, each costing a binary search per run and its entries.
pub struct SliceCursor<'a, V> {
    runs: Vec<&'a Run<V>>,
    tail: Option<Run<V>>,
    base: usize,
}

impl<V: Copy> SliceCursor<'_, V> {
    /// Whether per-user state is needed to keep each user's latest entry: the entries
    /// are not one sorted run.
    pub fn needs_latest(&self) -> bool {
        self.runs.len() + usize::from(self.tail.is_some()) > 1
    }

    /// Calls `f(user, value)` for every entry with `lo <= time < hi`, in no particular
    /// order.
    pub fn for_each_in(&self, lo: i64, hi: i64, mut f: impl FnMut(u32, V)) {
        for run in self.runs.iter().copied().chain(&self.tail) {
            let range = run.range(lo, hi);
            for (&user, &value) in run.users[range.clone()].iter().zip(&run.values[range]) {
                f(user, value);
            }
        }
    }

    /// Calls `f(user, value)` for entries with `lo <= time < hi` such that per user
    /// the last call carries the latest one, also over successive windows read in
    /// increasing time order with the same `latest`: per user of the slice (index
    /// `user − base`), `i64::MIN` at first; unused unless [`Self::needs_latest`].
    pub fn for_each_latest_in(
        &self,
        lo: i64,
        hi: i64,
        latest: &mut [i64],
        mut f: impl FnMut(u32, V),
    ) {
        let mut runs = self.runs.clone();
        runs.extend(&self.tail);
        latest_in(&runs, &[], lo, hi, self.base, latest, &mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(column: &Column<u32>, lo: i64, hi: i64) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        column.for_each_in(lo, hi, |u, v| out.push((u, v)));
        out.sort();
        out
    }

    #[test]
    fn ranges_are_exact_whatever_the_arrival_order() {
        let mut column = Column::default();
        // A scrambled order over 7000 entries: runs of 4096 and 2048, and a tail.
        for k in 0..7000u32 {
            let time = i64::from((k * 7919) % 7000);
            column.push(time, k % 13, k);
        }
        assert_eq!(column.len(), 7000);
        assert_eq!(column.slices[0].runs.len(), 2);
        assert_eq!(column.slices[0].tail.len(), 7000 - 4096 - 2048);
        let got = collect(&column, 100, 200);
        let mut want: Vec<(u32, u32)> = (0..7000u32)
            .filter(|k| (100..200).contains(&i64::from((k * 7919) % 7000)))
            .map(|k| (k % 13, k))
            .collect();
        want.sort();
        assert_eq!(got, want);
        for run in &column.slices[0].runs {
            assert!(run.times.iter().is_sorted());
        }
    }

    #[test]
    fn wide_time_spans_merge_and_search_exactly() {
        // Times from before 1970 to far after, in steps that cross ~71-minute blocks,
        // with many ties, pushed in a scrambled order; checked against plain vectors.
        let mut seed = 1u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut entries = Vec::new();
        let mut t = -(1i64 << 45);
        for k in 0..20_000u32 {
            t += match next() % 4 {
                0 => 0,
                1 => (next() % 1000) as i64,
                2 => (next() % (1 << 33)) as i64,
                _ => (next() % (1 << 40)) as i64,
            };
            entries.push((t, k % 97, k));
        }
        for k in 0..entries.len() {
            let other = (next() % entries.len() as u64) as usize;
            if next() % 3 == 0 {
                entries.swap(k, other);
            }
        }
        let mut column = Column::default();
        for &(time, user, value) in &entries {
            column.push(time, user, value);
        }
        let (first, last) = (
            entries.iter().map(|e| e.0).min(),
            entries.iter().map(|e| e.0).max(),
        );
        let mut probes = vec![i64::MIN, i64::MAX, first.unwrap_or(0), last.unwrap_or(0)];
        for _ in 0..40 {
            probes.push(entries[(next() % entries.len() as u64) as usize].0);
        }
        let mut latest = Vec::new();
        for round in 0..2 {
            for w in probes.windows(2) {
                let (lo, hi) = (w[0].min(w[1]), w[0].max(w[1]));
                let mut want: Vec<(u32, u32)> = entries
                    .iter()
                    .filter(|e| lo <= e.0 && e.0 < hi)
                    .map(|e| (e.1, e.2))
                    .collect();
                want.sort();
                assert_eq!(collect(&column, lo, hi), want);
                // Per user, the entry applied last among those with the latest time.
                let mut state = vec![None; 97];
                for &(time, user, value) in &entries {
                    if time < hi && state[user as usize].is_none_or(|(t, _)| time >= t) {
                        state[user as usize] = Some((time, value));
                    }
                }
                let want: Vec<Option<u32>> = state.iter().map(|s| s.map(|(_, v)| v)).collect();
                let mut got = vec![None; 97];
                column
                    .for_each_latest_before(hi, 97, &mut latest, |u, v| got[u as usize] = Some(v));
                assert_eq!(got, want, "round {round}, before {hi}");
            }
            column.compact(&|_| true);
            assert_eq!(column.slices[0].runs.len(), 1);
        }
        for run in &column.slices[0].runs {
            assert!(run.times.iter().is_sorted());
        }
    }

    #[test]
    fn the_last_applied_of_equal_times_wins() {
        let mut column = Column::default();
        for k in 0..3000u32 {
            // Every entry of user 0 at time 5: the last one pushed must win.
            column.push(if k % 2 == 0 { 5 } else { 1000 + i64::from(k) }, k % 2, k);
        }
        let mut latest = Vec::new();
        let mut state = vec![u32::MAX; 2];
        column.for_each_latest_before(10, 2, &mut latest, |u, v| state[u as usize] = v);
        assert_eq!(state, vec![2998, u32::MAX]);
        column.compact(&|_| true);
        assert_eq!(column.slices[0].runs.len(), 1);
        let mut state = vec![u32::MAX; 2];
        column.for_each_latest_before(10, 2, &mut latest, |u, v| state[u as usize] = v);
        assert_eq!(state, vec![2998, u32::MAX]);
        column.compact(&|u| u != 0);
        assert_eq!(column.len(), 1500);
    }

    #[test]
    fn slices_of_users_answer_as_one_column_would() {
        // Users spread over four slices, times scrambled, attribute-like values: each
        // user's latest value before `hi`, and window contents, against a plain list.
        let mut column = Column::default();
        let mut all: Vec<(i64, u32, u32)> = Vec::new();
        let users = 3 * SLICE_USERS as u32 + 7;
        for k in 0..40_000u32 {
            let user = (k.wrapping_mul(2_654_435_761) >> 7) % users;
            let time = i64::from((k * 7919) % 9973);
            column.push(time, user, k);
            all.push((time, user, k));
        }
        assert_eq!(column.slices.len(), 4);
        assert_eq!(column.len(), all.len());
        for compacted in [false, true] {
            if compacted {
                column.compact(&|_| true);
            }
            for (lo, hi) in [(0, 10_000), (100, 2_000), (5_000, 5_001)] {
                let mut got = Vec::new();
                column.for_each_in(lo, hi, |u, v| got.push((u, v)));
                got.sort();
                let mut want: Vec<(u32, u32)> = all
                    .iter()
                    .filter(|(t, _, _)| lo <= *t && *t < hi)
                    .map(|&(_, u, v)| (u, v))
                    .collect();
                want.sort();
                assert_eq!(got, want, "window {lo}..{hi}, compacted {compacted}");

                let mut latest = Vec::new();
                let mut got = std::collections::BTreeMap::new();
                column.for_each_latest_before(hi, users as usize, &mut latest, |u, v| {
                    got.insert(u, v);
                });
                // The reference: the last pushed of each user's latest time.
                let mut want = std::collections::BTreeMap::new();
                let mut best: std::collections::HashMap<u32, i64> = Default::default();
                for &(t, u, v) in all.iter().filter(|(t, _, _)| *t < hi) {
                    if best.get(&u).is_none_or(|&b| t >= b) {
                        best.insert(u, t);
                        want.insert(u, v);
                    }
                }
                assert_eq!(got, want, "latest before {hi}, compacted {compacted}");
            }
        }
    }
}
