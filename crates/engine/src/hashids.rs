//! Dense ids found by a keyed 64-bit hash of their content, while the content itself
//! is stored elsewhere (user keys in one byte arena, attribute values in a table):
//! 9 bytes per slot (32 bits of the hash, the id, a control byte) instead of a second
//! copy of the content.
//!
//! The caller hashes with [`HashIds::hasher`] and confirms a candidate by comparing
//! contents; ids whose 32-bit slot key is taken already go to a side table.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// A hasher for keys that already are hashes: it only spreads their 32 bits over 64.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32).rotate_left(8));
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Fibonacci hashing: the table reads both the low and the high bits.
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ByHash<V> = HashMap<u32, V, BuildHasherDefault<Spread>>;

/// The slot key of a 64-bit content hash.
fn slot(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The ids of contents, by hash.
#[derive(Debug, Clone, Default)]
pub struct HashIds {
    keys: RandomState,
    first: ByHash<u32>,
    more: ByHash<Vec<u32>>,
}

impl HashIds {
    /// A fresh hasher for content, keyed per table (so crafted collisions do not
    /// carry from one process to another).
    pub fn hasher(&self) -> impl Hasher {
        self.keys.build_hasher()
    }

    /// The id with hash `hash` whose content `is_it` confirms.
    pub fn find(&self, hash: u64, is_it: impl Fn(u32) -> bool) -> Option<u32> {
        let hash = slot(hash);
        let first = *self.first.get(&hash)?;
        if is_it(first) {
            return Some(first);
        }
        self.more.get(&hash)?.iter().copied().find(|&id| is_it(id))
    }

    /// Records `id` under `hash`.
    pub fn insert(&mut self, hash: u64, id: u32) {
        let hash = slot(hash);
        if let Some(&existing) = self.first.get(&hash)
            && existing != id
        {
            self.more.entry(hash).or_default().push(id);
        } else {
            self.first.insert(hash, id);
        }
    }

    /// Forgets `id` under `hash`.
    pub fn remove(&mut self, hash: u64, id: u32) {
        let hash = slot(hash);
        if self.first.get(&hash) == Some(&id) {
            let promoted = self.more.get_mut(&hash).and_then(Vec::pop);
            match promoted {
                Some(next) => {
                    self.first.insert(hash, next);
                }
                None => {
                    self.first.remove(&hash);
                }
            }
        } else if let Some(ids) = self.more.get_mut(&hash) {
            ids.retain(|&other| other != id);
        }
        if self.more.get(&hash).is_some_and(Vec::is_empty) {
            self.more.remove(&hash);
        }
    }

    /// The number of ids recorded.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    /// An estimate of the bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        let more: usize = self
            .more
            .values()
            .map(|ids| ids.capacity() * size_of::<u32>())
            .sum();
        self.first.capacity() * (size_of::<(u32, u32)>() + 1)
            + self.more.capacity() * (size_of::<(u32, Vec<u32>)>() + 1)
            + more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_ids_are_told_apart_and_removed() {
        let mut ids = HashIds::default();
        // Hashes that differ only in their low 32 bits share a slot.
        ids.insert(7 << 32, 1);
        ids.insert((7 << 32) | 1, 2);
        ids.insert(7 << 32, 3);
        ids.insert(8 << 32, 4);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.find(7 << 32, |id| id == 2), Some(2));
        assert_eq!(ids.find(7 << 32, |id| id == 4), None);
        assert_eq!(ids.find(8 << 32, |id| id == 4), Some(4));
        ids.remove(7 << 32, 1);
        assert_eq!(ids.find(7 << 32, |id| id == 3), Some(3));
        assert_eq!(ids.find(7 << 32, |id| id == 1), None);
        ids.remove(7 << 32, 3);
        ids.remove(7 << 32, 2);
        assert_eq!(ids.find(7 << 32, |_| true), None);
        assert_eq!(ids.len(), 1);
        assert!(ids.more.is_empty());
    }
}
