//! A non-decreasing list of `i64` times (microseconds), exact, in about 4 bytes per
//! entry instead of 8.
//!
//! Entries are grouped in *blocks*: a block's base is the time of its first entry, and
//! each entry stores its `u32` offset from its block's base. An entry starts a new block
//! exactly when its offset from the current base would exceed `u32::MAX` (about 71
//! minutes of microseconds), so a block header (base `i64`, first position) is paid
//! at most once per 71 minutes of the time span, whatever the number of entries.
//!
//! Why searching is exact: the entries are sorted and a base is its block's first
//! entry, so bases never decrease and every entry of a block is at most the base of
//! any later block. With the greedy rule above they are even strictly smaller (an entry
//! of block `b` is within `u32::MAX` of `base(b)`, the next base is more than that
//! beyond it), and equal times always share a block, but the search only needs the
//! weaker fact. The entries `< x` are then all the blocks before `j`, the last block
//! whose base is `< x` (their entries are `<= base(j) < x`), plus the entries of `j`
//! with offset `< x - base(j)`; the blocks after `j` have a base `>= x`. Differences
//! are taken as `u64` (`i64::abs_diff`, or a wrapping subtraction once the order is
//! known), exact for any two `i64`, and a time is rebuilt as base plus offset, which
//! is the original time: nothing overflows or panics, even at `i64::MIN` and
//! `i64::MAX`.

use crate::checkpoint::CheckpointError;
use crate::codec::{Decoder, Encoder};
use std::io::{self, Read, Write};
use std::ops::Range;

/// Non-decreasing times, exact to the unit, stored as `u32` offsets from block bases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedTimes {
    /// Per entry, its time minus its block's base.
    offsets: Vec<u32>,
    /// Per block, its base: the time of its first entry.
    bases: Vec<i64>,
    /// Per block, the position of its first entry; strictly increasing from 0.
    starts: Vec<usize>,
    /// The last block's base (a copy, for [`SortedTimes::push`]), 0 while empty.
    base: i64,
}

/// The entries of one block within a requested range of positions.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// The block's base: an entry's time is `base + offset`.
    pub base: i64,
    /// The position of `offsets[0]` in the whole list.
    pub start: usize,
    /// The offsets of the entries, in order.
    pub offsets: &'a [u32],
}

impl Block<'_> {
    /// The positions of the entries in the whole list.
    pub fn positions(&self) -> Range<usize> {
        self.start..self.start + self.offsets.len()
    }

    /// The time of an entry with offset `offset` in this block.
    #[inline]
    pub fn time(&self, offset: u32) -> i64 {
        self.base.saturating_add(i64::from(offset))
    }
}

impl SortedTimes {
    /// An empty list with room for `n` entries.
    pub fn with_capacity(n: usize) -> SortedTimes {
        SortedTimes {
            offsets: Vec::with_capacity(n),
            bases: Vec::new(),
            starts: Vec::new(),
            base: 0,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no entries.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Appends `time`, which must be at least the last time pushed. A smaller time is
    /// still stored and read back exactly, but searches are then meaningless, as
    /// `partition_point` on an unsorted slice is.
    #[inline]
    pub fn push(&mut self, time: i64) {
        debug_assert!(self.last().is_none_or(|last| last <= time));
        // When `time >= base`, the wrapped difference read as a `u64` is the exact one.
        let offset = time.wrapping_sub(self.base) as u64;
        if offset <= u64::from(u32::MAX) && time >= self.base && !self.bases.is_empty() {
            self.offsets.push(offset as u32);
        } else {
            self.start_block(time);
        }
    }

    #[cold]
    fn start_block(&mut self, time: i64) {
        self.base = time;
        self.bases.push(time);
        self.starts.push(self.offsets.len());
        self.offsets.push(0);
    }

    /// Appends every entry of `other`, as pushing them one by one would (the same
    /// blocks), but a block at a time when `other` starts at or after the last entry.
    pub fn append(&mut self, other: &SortedTimes) {
        self.extend_from(other, 0..other.len());
    }

    /// Appends the entries of `other` at `range` (clipped to it), as pushing them one
    /// by one would, but a block at a time while they come at or after the last entry.
    pub fn extend_from(&mut self, other: &SortedTimes, range: Range<usize>) {
        for block in other.blocks(range) {
            let (Some(&lowest), Some(&highest)) = (block.offsets.first(), block.offsets.last())
            else {
                continue;
            };
            // The block as if it started at its first entry (it may be clipped).
            let first = block.time(lowest);
            let span = u64::from(highest - lowest);
            let in_order = self.last().is_none_or(|last| last <= first);
            let current = self.bases.last().copied().filter(|_| in_order);
            let limit = u64::from(u32::MAX);
            match current.map(|base| first.abs_diff(base)) {
                Some(shift) if shift.saturating_add(span) <= limit => {
                    // The whole block fits in the current one: shift its offsets. The
                    // results are in `0..=u32::MAX`, so wrapping arithmetic is exact.
                    let delta = (shift as u32).wrapping_sub(lowest);
                    self.offsets
                        .extend(block.offsets.iter().map(|&o| o.wrapping_add(delta)));
                }
                Some(shift) if shift <= limit => {
                    // It straddles the current block's end: split it entry by entry.
                    for &offset in block.offsets {
                        self.push(block.time(offset));
                    }
                }
                _ if in_order => {
                    // It starts beyond the current block, or the list is empty: one
                    // new block, since the block spans at most `u32::MAX`.
                    self.base = first;
                    self.bases.push(first);
                    self.starts.push(self.offsets.len());
                    self.offsets
                        .extend(block.offsets.iter().map(|&o| o - lowest));
                }
                _ => {
                    for &offset in block.offsets {
                        self.push(block.time(offset));
                    }
                }
            }
        }
    }

    /// The last time, if any.
    pub fn last(&self) -> Option<i64> {
        let base = *self.bases.last()?;
        let offset = *self.offsets.last()?;
        Some(base.saturating_add(i64::from(offset)))
    }

    /// The first time, if any.
    pub fn first(&self) -> Option<i64> {
        self.bases.first().copied()
    }

    /// The time at position `i`, if any (a binary search over blocks; to read many in
    /// order, use [`SortedTimes::blocks`] or a [`Cursor`]).
    #[cfg(test)]
    pub fn get(&self, i: usize) -> Option<i64> {
        let offset = *self.offsets.get(i)?;
        let block = self.block_of(i);
        Some(self.bases.get(block)?.saturating_add(i64::from(offset)))
    }

    /// The block holding position `i < len`.
    fn block_of(&self, i: usize) -> usize {
        self.starts.partition_point(|&s| s <= i).saturating_sub(1)
    }

    /// The position just after the entries of `block`.
    fn block_end(&self, block: usize) -> usize {
        self.starts
            .get(block + 1)
            .copied()
            .unwrap_or(self.offsets.len())
    }

    /// The number of entries `< x`: `partition_point(|t| t < x)` on the plain list.
    pub fn partition_point_lt(&self, x: i64) -> usize {
        // The last block whose base is below `x`; none: every entry is >= x.
        let Some(block) = self.bases.partition_point(|&b| b < x).checked_sub(1) else {
            return 0;
        };
        let start = self.starts[block];
        let end = self.block_end(block);
        // `x > base`, so the difference is positive and exact.
        let beyond = x.abs_diff(self.bases[block]);
        let within = match u32::try_from(beyond) {
            Ok(limit) => self.offsets[start..end].partition_point(|&o| o < limit),
            // Every offset is at most u32::MAX < x - base.
            Err(_) => end - start,
        };
        start + within
    }

    /// The entries at `range` (clipped to the list), one block at a time, in order.
    pub fn blocks(&self, range: Range<usize>) -> impl Iterator<Item = Block<'_>> + '_ {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        let first = if start < end { self.block_of(start) } else { 0 };
        let blocks = if start < end {
            first..self.bases.len()
        } else {
            0..0
        };
        blocks
            .map(move |b| {
                let lo = self.starts[b].max(start);
                let hi = self.block_end(b).min(end);
                (b, lo, hi)
            })
            .take_while(|&(_, lo, hi)| lo < hi)
            .map(|(b, lo, hi)| Block {
                base: self.bases[b],
                start: lo,
                offsets: &self.offsets[lo..hi],
            })
    }

    /// Every time, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.blocks(0..self.len())
            .flat_map(|block| block.offsets.iter().map(move |&o| block.time(o)))
    }

    /// A reader for positions visited mostly in order (as a merge does).
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            times: self,
            offsets: &self.offsets,
            block: 0,
            base: self.bases.first().copied().unwrap_or(0),
            start: 0,
            len: self.block_end(0).min(self.len()),
        }
    }

    /// Reserves room for `n` more entries (not for block headers, which are few).
    pub fn reserve_exact(&mut self, n: usize) {
        self.offsets.reserve_exact(n);
    }

    /// Releases spare capacity.
    pub fn shrink_to_fit(&mut self) {
        self.offsets.shrink_to_fit();
        self.bases.shrink_to_fit();
        self.starts.shrink_to_fit();
    }

    /// The bytes of memory held (the vectors' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * size_of::<u32>()
            + self.bases.capacity() * size_of::<i64>()
            + self.starts.capacity() * size_of::<usize>()
    }
}

/// The checkpoint form: offsets, bases and block starts as they are.
impl SortedTimes {
    /// Writes the list.
    pub fn encode<W: Write>(&self, out: &mut Encoder<W>) -> io::Result<()> {
        out.items(&self.offsets)?;
        out.items(&self.bases)?;
        out.len(self.starts.len())?;
        for &start in &self.starts {
            out.item(start as u64)?;
        }
        Ok(())
    }

    /// Reads what [`SortedTimes::encode`] wrote, checking the block layout that
    /// searches rely on (one base per block, starts increasing from 0 within the list).
    pub fn decode<R: Read>(input: &mut Decoder<R>) -> Result<SortedTimes, CheckpointError> {
        let offsets: Vec<u32> = input.items()?;
        let bases: Vec<i64> = input.items()?;
        let starts: Vec<u64> = input.items()?;
        let starts: Vec<usize> = starts
            .into_iter()
            .map(usize::try_from)
            .collect::<Result<_, _>>()
            .map_err(|_| CheckpointError::Corrupt("a block start out of range"))?;
        let laid_out = bases.len() == starts.len()
            && starts.first().is_none_or(|&s| s == 0)
            && starts.is_empty() == offsets.is_empty()
            && starts.windows(2).all(|w| w[0] < w[1])
            && starts.last().is_none_or(|&s| s < offsets.len())
            && bases.is_sorted();
        if !laid_out {
            return Err(CheckpointError::Corrupt("times in blocks out of place"));
        }
        Ok(SortedTimes {
            base: bases.last().copied().unwrap_or(0),
            offsets,
            bases,
            starts,
        })
    }
}

/// Reads a [`SortedTimes`] at positions mostly visited in order: O(1) while the
/// position stays in the current block or moves to the next, a binary search over
/// blocks otherwise.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    times: &'a SortedTimes,
    offsets: &'a [u32],
    /// The current block: its index, base, first position and length.
    block: usize,
    base: i64,
    start: usize,
    len: usize,
}

impl Cursor<'_> {
    /// The time at position `i`.
    ///
    /// # Panics
    /// If `i` is not below the list's length, as slice indexing does.
    #[inline]
    pub fn time(&mut self, i: usize) -> i64 {
        // One comparison for `start <= i < start + len`.
        if i.wrapping_sub(self.start) >= self.len {
            self.seek(i);
        }
        // The stored time was `base + offset` exactly: this cannot overflow.
        self.base.wrapping_add(i64::from(self.offsets[i]))
    }

    #[cold]
    fn seek(&mut self, i: usize) {
        let next = self.block + 1;
        let block = if self.times.starts.get(next) == Some(&i) {
            next
        } else {
            self.times.block_of(i)
        };
        self.block = block;
        self.base = self.times.bases.get(block).copied().unwrap_or(0);
        self.start = self.times.starts.get(block).copied().unwrap_or(0);
        self.len = self.times.block_end(block).saturating_sub(self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: i64 = u32::MAX as i64;

    /// SplitMix64: a tiny deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn build(times: &[i64]) -> SortedTimes {
        let mut sorted = SortedTimes::default();
        for &t in times {
            sorted.push(t);
        }
        sorted
    }

    /// A random non-decreasing sequence mixing duplicates, small steps, steps right at
    /// the block limit, and gaps of hours to years, starting before 1970.
    fn sequence(rng: &mut Rng, n: usize) -> Vec<i64> {
        let mut t = -(rng.below(1 << 50) as i64);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(t);
            let step = match rng.below(10) {
                0..=2 => 0,
                3..=5 => rng.below(1000) as i64,
                6 => rng.below(SPAN as u64) as i64,
                7 => SPAN - 2 + rng.below(5) as i64,
                8 => SPAN + rng.below(1 << 40) as i64,
                _ => rng.below(1 << 45) as i64,
            };
            t = t.saturating_add(step);
        }
        out
    }

    /// The greedy layout: bases strictly increasing, blocks non-empty, every entry of
    /// a block within `u32::MAX` of its base and below the next base by more than that.
    fn check_layout(sorted: &SortedTimes) {
        assert_eq!(sorted.bases.len(), sorted.starts.len());
        assert_eq!(
            sorted.starts.first().copied(),
            (!sorted.is_empty()).then_some(0)
        );
        assert!(sorted.starts.windows(2).all(|w| w[0] < w[1]));
        assert!(sorted.bases.windows(2).all(|w| w[0] < w[1]));
        for (b, block) in sorted.blocks(0..sorted.len()).enumerate() {
            assert_eq!(block.offsets.first(), Some(&0));
            assert!(block.offsets.is_sorted());
            if let Some(&next) = sorted.bases.get(b + 1) {
                assert!(next.abs_diff(block.base) > u64::from(u32::MAX));
            }
        }
    }

    fn check_against(sorted: &SortedTimes, want: &[i64], rng: &mut Rng) {
        check_layout(sorted);
        assert_eq!(sorted.len(), want.len());
        assert_eq!(sorted.iter().collect::<Vec<_>>(), want);
        assert_eq!(sorted.first(), want.first().copied());
        assert_eq!(sorted.last(), want.last().copied());
        for (i, &t) in want.iter().enumerate() {
            assert_eq!(sorted.get(i), Some(t));
        }
        assert_eq!(sorted.get(want.len()), None);
        let mut cursor = sorted.cursor();
        for (i, &t) in want.iter().enumerate() {
            assert_eq!(cursor.time(i), t);
        }
        for _ in 0..want.len().min(200) {
            let i = rng.below(want.len() as u64) as usize;
            assert_eq!(cursor.time(i), want[i]);
        }
        let mut probes = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for &t in want {
            probes.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
        }
        for &b in &sorted.bases {
            for d in [SPAN - 1, SPAN, SPAN + 1, SPAN + 2] {
                probes.push(b.saturating_add(d));
            }
        }
        for _ in 0..500 {
            probes.push(rng.next() as i64);
            if let Some(&t) = want.get(rng.below(want.len() as u64) as usize) {
                probes.push(t.saturating_add(rng.below(1 << 33) as i64 - (1 << 32)));
            }
        }
        for x in probes {
            assert_eq!(
                sorted.partition_point_lt(x),
                want.partition_point(|&t| t < x),
                "x = {x}"
            );
        }
        // Every sub-range, block by block, reads back the same times.
        for _ in 0..50 {
            let a = rng.below(want.len() as u64 + 2) as usize;
            let b = rng.below(want.len() as u64 + 2) as usize;
            let got: Vec<(usize, i64)> = sorted
                .blocks(a..b)
                .flat_map(|block| {
                    block
                        .positions()
                        .zip(block.offsets)
                        .map(move |(i, &o)| (i, block.time(o)))
                })
                .collect();
            let hi = b.min(want.len());
            let lo = a.min(hi);
            let expected: Vec<(usize, i64)> = (lo..hi).map(|i| (i, want[i])).collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn random_sequences_read_back_and_search_exactly() {
        let mut rng = Rng(7);
        for case in 0..300 {
            let n = match case % 4 {
                0 => rng.below(8) as usize,
                1 => rng.below(100) as usize,
                _ => rng.below(3000) as usize,
            };
            let want = sequence(&mut rng, n);
            let sorted = build(&want);
            check_against(&sorted, &want, &mut rng);
        }
    }

    #[test]
    fn extreme_times_neither_panic_nor_overflow() {
        let mut rng = Rng(11);
        let sequences: [&[i64]; 6] = [
            &[
                i64::MIN,
                i64::MIN,
                i64::MIN + 1,
                -1,
                0,
                0,
                1,
                i64::MAX - 1,
                i64::MAX,
            ],
            &[i64::MIN, i64::MAX, i64::MAX],
            &[
                i64::MIN,
                i64::MIN + SPAN,
                i64::MIN + SPAN + 1,
                i64::MIN + 2 * SPAN + 1,
            ],
            &[i64::MAX - SPAN - 1, i64::MAX - SPAN, i64::MAX - 1, i64::MAX],
            &[-SPAN - 1, -SPAN, -1, 0, SPAN - 1, SPAN, SPAN + 1],
            &[5; 10],
        ];
        for want in sequences {
            let sorted = build(want);
            check_against(&sorted, want, &mut rng);
        }
        assert_eq!(build(&[0, SPAN]).bases.len(), 1);
        assert_eq!(build(&[0, SPAN + 1]).bases.len(), 2);
        assert_eq!(build(&[i64::MIN, i64::MAX]).bases.len(), 2);
        let empty = SortedTimes::default();
        assert_eq!(empty.partition_point_lt(i64::MAX), 0);
        assert_eq!(empty.blocks(0..10).count(), 0);
        assert_eq!(
            (empty.first(), empty.last(), empty.get(0)),
            (None, None, None)
        );
    }

    #[test]
    fn appending_makes_the_same_blocks_as_pushing() {
        let mut rng = Rng(3);
        for _ in 0..300 {
            let n = rng.below(2000) as usize;
            let want = sequence(&mut rng, n);
            let cut = rng.below(n as u64 + 1) as usize;
            // The second part may start exactly where the first ends, or be shifted
            // to start within, at, or beyond the end of the first's last block.
            let mut second = want[cut..].to_vec();
            if let (Some(&last), Some(&first)) = (want[..cut].last(), second.first()) {
                let shift = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(SPAN as u64) as i64,
                    2 => SPAN,
                    _ => SPAN + rng.below(1 << 40) as i64,
                };
                let by = last.saturating_add(shift).saturating_sub(first).max(0);
                second.iter_mut().for_each(|t| *t = t.saturating_add(by));
            }
            let mut appended = build(&want[..cut]);
            appended.append(&build(&second));
            let whole: Vec<i64> = want[..cut].iter().chain(&second).copied().collect();
            assert_eq!(appended, build(&whole));
            check_against(&appended, &whole, &mut rng);
            // Any sub-range of the second part, as the tail of a merge appends it.
            let from = rng.below(second.len() as u64 + 1) as usize;
            let mut extended = build(&want[..cut]);
            extended.extend_from(&build(&second), from..second.len() + 1);
            let whole: Vec<i64> = want[..cut].iter().chain(&second[from..]).copied().collect();
            assert_eq!(extended, build(&whole));
        }
    }

    #[test]
    fn out_of_order_pushes_still_read_back_exactly() {
        if cfg!(debug_assertions) {
            return;
        }
        let mut sorted = build(&[10, 20]);
        sorted.append(&build(&[5, 6]));
        assert_eq!(sorted.iter().collect::<Vec<_>>(), vec![10, 20, 5, 6]);
    }

    #[test]
    fn an_hour_of_entries_costs_four_bytes_each() {
        let mut sorted = SortedTimes::with_capacity(100_000);
        for k in 0..100_000i64 {
            sorted.push(1_700_000_000_000_000 + k * 36_000);
        }
        sorted.shrink_to_fit();
        assert_eq!(sorted.bases.len(), 1);
        assert_eq!(sorted.heap_bytes(), 400_000 + 16);
    }
}
