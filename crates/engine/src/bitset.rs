//! Fixed-length sets of dense user indices, one bit per user: the currency in which
//! leaf results are combined with `all`, `any` and `not`.

/// A set of indices below a fixed length, packed into 64-bit words. Bits at and above
/// the length are always zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// The empty set over `len` indices.
    pub fn empty(len: usize) -> Bitset {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// The set of every index below `len`.
    pub fn full(len: usize) -> Bitset {
        let mut set = Bitset {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        set.clear_tail();
        set
    }

    /// The set of the positions of `items` for which `member` holds.
    pub fn from_items<T>(items: &[T], member: impl Fn(&T) -> bool) -> Bitset {
        let words = items
            .chunks(64)
            .map(|chunk| {
                chunk.iter().enumerate().fold(0u64, |word, (bit, item)| {
                    word | (u64::from(member(item)) << bit)
                })
            })
            .collect();
        Bitset {
            words,
            len: items.len(),
        }
    }

    /// Adds (`member`) or removes index `i`; indices out of range are ignored.
    #[inline]
    pub fn assign(&mut self, i: usize, member: bool) {
        if i < self.len {
            let word = &mut self.words[i >> 6];
            let bit = 1u64 << (i & 63);
            *word = (*word & !bit) | (u64::from(member) << (i & 63));
        }
    }

    /// Adds index `i`; indices out of range are ignored.
    #[inline]
    pub fn insert(&mut self, i: usize) {
        if i < self.len {
            self.words[i >> 6] |= 1 << (i & 63);
        }
    }

    /// Whether index `i` is a member.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        i < self.len && self.words[i >> 6] & (1 << (i & 63)) != 0
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The number of members.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Keeps only the members also in `other`.
    pub fn and_with(&mut self, other: &Bitset) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= o;
        }
    }

    /// Adds every member of `other`.
    pub fn or_with(&mut self, other: &Bitset) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Replaces the set by its complement below the length.
    pub fn negate(&mut self) {
        for w in &mut self.words {
            *w = !*w;
        }
        self.clear_tail();
    }

    /// The members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
        })
    }

    fn clear_tail(&mut self) {
        let used = self.len % 64;
        if used != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << used) - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complement_stays_below_the_length() {
        let mut set = Bitset::empty(70);
        set.insert(3);
        set.insert(69);
        set.insert(70);
        assert_eq!(set.count(), 2);
        set.negate();
        assert_eq!(set.count(), 68);
        assert!(!set.contains(3) && set.contains(4) && !set.contains(70));
        assert_eq!(Bitset::full(70).count(), 70);
        assert_eq!(Bitset::full(128).count(), 128);
    }

    #[test]
    fn from_items_and_iter_agree() {
        let items: Vec<u32> = (0..200).collect();
        let set = Bitset::from_items(&items, |&i| i % 7 == 0);
        let members: Vec<usize> = set.iter().collect();
        assert_eq!(members, (0..200).filter(|i| i % 7 == 0).collect::<Vec<_>>());
        let mut other = Bitset::from_items(&items, |&i| i % 2 == 0);
        other.and_with(&set);
        assert_eq!(
            other.count(),
            (0..200).filter(|i| i % 14 == 0).count() as u64
        );
        other.or_with(&set);
        assert_eq!(other, set);
        assert!(Bitset::empty(0).is_empty() && Bitset::full(0).is_empty());
        let mut set = set;
        set.assign(0, false);
        set.assign(1, true);
        set.assign(7, true);
        assert_eq!(set.iter().take(3).collect::<Vec<_>>(), vec![1, 7, 14]);
    }
}
