//! Dense ids found by a keyed 64-bit hash of their content, while the content itself
//! is stored elsewhere (user keys in one byte arena, attribute values in a table):
//! 13 bytes per slot instead of a second copy of the content.
//!
//! The caller hashes with [`HashIds::hasher`] and confirms a candidate by comparing
//! contents; distinct contents with the same hash are kept in a side table.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// A hasher for keys that already are hashes: it passes them through.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByHash<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

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
        let first = *self.first.get(&hash)?;
        let more = self.more.get(&hash).into_iter().flatten().copied();
        std::iter::once(first).chain(more).find(|&id| is_it(id))
    }

    /// Records `id` under `hash`.
    pub fn insert(&mut self, hash: u64, id: u32) {
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
        self.first.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.more.capacity() * (size_of::<(u64, Vec<u32>)>() + 1)
            + more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_ids_are_told_apart_and_removed() {
        let mut ids = HashIds::default();
        ids.insert(7, 1);
        ids.insert(7, 2);
        ids.insert(7, 3);
        ids.insert(8, 4);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.find(7, |id| id == 2), Some(2));
        assert_eq!(ids.find(7, |id| id == 4), None);
        ids.remove(7, 1);
        assert_eq!(ids.find(7, |id| id == 3), Some(3));
        assert_eq!(ids.find(7, |id| id == 1), None);
        ids.remove(7, 3);
        ids.remove(7, 2);
        assert_eq!(ids.find(7, |_| true), None);
        assert_eq!(ids.len(), 1);
        assert!(ids.more.is_empty());
    }
}
