//! A set of instants (µs) asked for the first one at or after a given instant: the
//! datetime attribute values at which a `within_last_days` answer can change.
//!
//! [`crate::Index::stable_until`] needs only those after the latest fact (before it,
//! it answers at once), so the index keeps only those ([`Instants::forget_up_to`]):
//! datetimes in the past, such as signup dates, cost nothing.
//!
//! Kept as one sorted vector (8 bytes an instant) and a small ordered set of recent
//! additions, merged into the vector when it reaches 1/16 of it (at least 1024), so
//! that adding costs O(log n) amortized; a `BTreeSet` of every instant cost ~14 bytes
//! each (nodes partly full).

use std::collections::BTreeSet;

/// Recent additions kept apart at least up to this many.
const RECENT_MIN: usize = 1024;
/// ... and up to this fraction of the sorted ones.
const RECENT_SHARE: usize = 16;

/// Distinct instants, in µs.
#[derive(Debug, Clone, Default)]
pub struct Instants {
    sorted: Vec<i64>,
    recent: BTreeSet<i64>,
}

impl Instants {
    /// Adds `at` (nothing if it is there already).
    pub fn insert(&mut self, at: i64) {
        if self.sorted.binary_search(&at).is_ok() || !self.recent.insert(at) {
            return;
        }
        if self.recent.len() >= (self.sorted.len() / RECENT_SHARE).max(RECENT_MIN) {
            self.merge();
        }
    }

    /// The first instant at or after `at`.
    pub fn first_from(&self, at: i64) -> Option<i64> {
        let i = self.sorted.partition_point(|&x| x < at);
        let sorted = self.sorted.get(i).copied();
        let recent = self.recent.range(at..).next().copied();
        match (sorted, recent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every instant, ascending.
    pub fn to_vec(&self) -> Vec<i64> {
        let mut all = self.sorted.clone();
        all.extend(&self.recent);
        all.sort_unstable();
        all
    }

    /// The set of `sorted` (ascending, distinct).
    pub fn from_sorted(sorted: Vec<i64>) -> Instants {
        Instants {
            sorted,
            recent: BTreeSet::new(),
        }
    }

    /// Forgets the instants at or before `floor` and gives back their memory.
    pub fn forget_up_to(&mut self, floor: i64) {
        self.merge();
        let keep = self.sorted.partition_point(|&x| x <= floor);
        self.sorted.drain(..keep);
        self.sorted.shrink_to_fit();
    }

    /// An estimate of the bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        // A B-tree leaf holds up to 11 keys in ~100 bytes, about 2/3 full.
        self.sorted.capacity() * size_of::<i64>() + self.recent.len() * 14
    }

    fn merge(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let recent = std::mem::take(&mut self.recent);
        self.sorted.extend(recent);
        // Two sorted runs: the standard sort merges them in linear time.
        self.sorted.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_instant_from_a_point_is_found_in_both_parts() {
        let mut set = Instants::default();
        let mut reference = BTreeSet::new();
        // Pseudo-random instants, enough to merge several times.
        let mut x: i64 = 7;
        for _ in 0..10_000 {
            x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
            let at = x % 50_000;
            set.insert(at);
            reference.insert(at);
        }
        for at in (-5..50_010).step_by(7) {
            assert_eq!(set.first_from(at), reference.range(at..).next().copied());
        }
        assert_eq!(set.to_vec(), reference.iter().copied().collect::<Vec<_>>());
        set.forget_up_to(i64::MIN);
        assert!(set.recent.is_empty());
        assert_eq!(set.first_from(0), reference.first().copied());
        set.forget_up_to(25_000);
        assert_eq!(set.first_from(0), reference.range(25_001..).next().copied());
        assert_eq!(set.to_vec().len(), reference.range(25_001..).count());
    }
}
