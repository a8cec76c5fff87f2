//! The registry of users: each [`UserKey`] gets a dense `u32` index on first sight,
//! and per index the few numbers every evaluation needs.
//!
//! Keys are stored once, encoded in one byte arena (a kind byte, then the text; an
//! alias adds the 8-byte length of its name) and found through a hash table of bare
//! indices, hashed again from the arena when it grows. Per user: the key's bytes, a
//! 4-byte arena offset (the low half; where the high half steps up is kept apart), a hash slot (5 bytes, tables at most about half empty), the time of its earliest fact (8 bytes, [`DELETED`] once deleted: a
//! tombstone that no instant passes), its random bucket (2 bytes) and its number of
//! events and purchases (4 bytes): about 40 bytes plus the key, and up to twice that
//! while vectors have spare capacity. A deleted user's index and key
//! bytes are never reused; a later fact for the same key gets a fresh index.

use crate::bitset::Bitset;
use crate::checkpoint::CheckpointError;
use crate::codec::{Decoder, Encoder};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use headcount_model::UserKey;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::ops::Range;

/// The earliest-fact time of a deleted user: later than every instant.
const DELETED: i64 = i64::MAX;

const EXTERNAL: u8 = 0;
const ALIAS: u8 = 1;
const BRAZE: u8 = 2;

/// A key as its kind and one or two texts (an alias: name, then label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts<'a> {
    kind: u8,
    text: &'a [u8],
    label: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(key: &'a UserKey) -> Parts<'a> {
        match key {
            UserKey::External(id) => Parts {
                kind: EXTERNAL,
                text: id.as_bytes(),
                label: &[],
            },
            UserKey::Braze(id) => Parts {
                kind: BRAZE,
                text: id.as_bytes(),
                label: &[],
            },
            UserKey::Alias { name, label } => Parts {
                kind: ALIAS,
                text: name.as_bytes(),
                label: label.as_bytes(),
            },
        }
    }

    /// Reads back what [`Parts::encode`] wrote; `None` only for a corrupt record.
    fn decode(record: &'a [u8]) -> Option<Parts<'a>> {
        let (&kind, rest) = record.split_first()?;
        if kind != ALIAS {
            return Some(Parts {
                kind,
                text: rest,
                label: &[],
            });
        }
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let (text, label) =
            rest.split_at_checked(usize::try_from(u64::from_le_bytes(*len)).ok()?)?;
        Some(Parts { kind, text, label })
    }

    fn encode(&self, arena: &mut Vec<u8>) {
        arena.push(self.kind);
        if self.kind == ALIAS {
            arena.extend_from_slice(&(self.text.len() as u64).to_le_bytes());
        }
        arena.extend_from_slice(self.text);
        arena.extend_from_slice(self.label);
    }

    fn hash(&self, mut h: impl Hasher) -> u64 {
        h.write_u8(self.kind);
        h.write(self.text);
        // 0xff never occurs in UTF-8: it separates name and label unambiguously.
        h.write_u8(0xff);
        h.write(self.label);
        h.finish()
    }

    fn to_key(self) -> UserKey {
        let text = String::from_utf8_lossy(self.text).into_owned();
        match self.kind {
            ALIAS => UserKey::Alias {
                name: text,
                label: String::from_utf8_lossy(self.label).into_owned(),
            },
            BRAZE => UserKey::Braze(text),
            _ => UserKey::External(text),
        }
    }
}

/// Every user ever seen, live or deleted, by dense index.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// The index of every live user, by hash of its key.
    ids: HashTable<u32>,
    keys: RandomState,
    /// Every key, encoded, one after the other.
    arena: Vec<u8>,
    /// Where each key's record ends in `arena` (it starts where the previous ends).
    ends: Ends,
    first: Vec<i64>,
    buckets: Vec<u16>,
    facts: Vec<u32>,
    live: usize,
}

impl Users {
    /// The index of `key`, creating a live user on first sight, and lowers its
    /// earliest-fact time to `time`.
    pub fn touch(&mut self, key: &UserKey, time: i64) -> u32 {
        let parts = Parts::of(key);
        let hash = parts.hash(self.keys.build_hasher());
        let index = match self.find(hash, parts) {
            Some(index) => index,
            None => {
                let index =
                    u32::try_from(self.first.len()).expect("fewer than 2^32 users per workspace");
                parts.encode(&mut self.arena);
                self.ends.push(self.arena.len() as u64);
                self.insert(hash, index);
                self.first.push(time);
                self.buckets.push(key.random_bucket());
                self.facts.push(0);
                self.live += 1;
                index
            }
        };
        let first = &mut self.first[index as usize];
        *first = (*first).min(time);
        index
    }

    /// [`Users::touch`] for a user whose index is known: its first fact is now at
    /// `time` at the latest.
    pub fn seen_at(&mut self, index: u32, time: i64) {
        if let Some(first) = self.first.get_mut(index as usize) {
            *first = (*first).min(time);
        }
    }

    /// Counts one more event or purchase of `index`.
    pub fn add_fact(&mut self, index: u32) {
        if let Some(n) = self.facts.get_mut(index as usize) {
            *n = n.saturating_add(1);
        }
    }

    /// Forgets `key`; returns the number of events and purchases it held, or `None`
    /// if it was not a live user.
    pub fn delete(&mut self, key: &UserKey) -> Option<u32> {
        let parts = Parts::of(key);
        let hash = parts.hash(self.keys.build_hasher());
        let index = self.find(hash, parts)?;
        if let Ok(entry) = self.ids.find_entry(hash, |&other| other == index) {
            entry.remove();
        }
        self.first[index as usize] = DELETED;
        self.live -= 1;
        Some(std::mem::take(&mut self.facts[index as usize]))
    }

    /// The number of live users.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The number of indices ever given, live or deleted: the length of every bitset.
    pub fn indices(&self) -> usize {
        self.first.len()
    }

    /// An estimate of the bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: a control byte per bucket besides the index.
        self.ids.capacity() * 8 / 7 * (size_of::<u32>() + 1)
            + self.arena.capacity()
            + self.ends.heap_bytes()
            + self.first.capacity() * size_of::<i64>()
            + self.buckets.capacity() * size_of::<u16>()
            + self.facts.capacity() * size_of::<u32>()
    }

    /// Gives back the memory reserved for users not added yet.
    pub fn shrink_to_fit(&mut self) {
        let (keys, arena, ends) = (&self.keys, &self.arena, &self.ends);
        self.ids
            .shrink_to_fit(|&index| hash_at(keys, arena, ends, index));
        self.arena.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.first.shrink_to_fit();
        self.buckets.shrink_to_fit();
        self.facts.shrink_to_fit();
    }

    /// Whether `index` is a live user.
    pub fn is_live(&self, index: u32) -> bool {
        self.first
            .get(index as usize)
            .is_some_and(|&t| t != DELETED)
    }

    /// The live users whose earliest fact is before `at_micros`.
    pub fn existing_before(&self, at_micros: i64) -> Bitset {
        self.existing_before_in(0..self.first.len(), at_micros)
    }

    /// [`Users::existing_before`] among the indices of `range` (bit `i` is index
    /// `range.start + i`).
    pub fn existing_before_in(&self, range: Range<usize>, at_micros: i64) -> Bitset {
        let first = self.first.get(range).unwrap_or_default();
        Bitset::from_items(first, |&first| first < at_micros)
    }

    /// The users whose random bucket compares to `value` as `holds` says.
    pub fn with_bucket(&self, holds: impl Fn(i64) -> bool) -> Bitset {
        self.with_bucket_in(0..self.buckets.len(), holds)
    }

    /// [`Users::with_bucket`] among the indices of `range`.
    pub fn with_bucket_in(&self, range: Range<usize>, holds: impl Fn(i64) -> bool) -> Bitset {
        let buckets = self.buckets.get(range).unwrap_or_default();
        Bitset::from_items(buckets, |&bucket| holds(i64::from(bucket)))
    }

    /// The keys of the live members of `set`, sorted.
    pub fn keys_of(&self, set: &Bitset) -> Vec<UserKey> {
        let mut keys: Vec<UserKey> = set
            .iter()
            .filter(|&index| self.is_live(index as u32))
            .filter_map(|index| self.parts(index as u32))
            .map(Parts::to_key)
            .collect();
        keys.sort();
        keys
    }

    fn find(&self, hash: u64, parts: Parts<'_>) -> Option<u32> {
        self.ids
            .find(hash, |&index| self.parts(index) == Some(parts))
            .copied()
    }

    /// Records `index` under `hash` (its key's, already in the arena).
    fn insert(&mut self, hash: u64, index: u32) {
        let (keys, arena, ends) = (&self.keys, &self.arena, &self.ends);
        self.ids
            .insert_unique(hash, index, |&index| hash_at(keys, arena, ends, index));
    }

    fn parts(&self, index: u32) -> Option<Parts<'_>> {
        parts_at(&self.arena, &self.ends, index)
    }
}

/// Where each key's record ends in the arena: per user the low 32 bits (4 bytes
/// rather than 8), and the indices at which the high bits step up by one (none while
/// the arena holds less than 4 GiB of keys).
#[derive(Debug, Clone, Default)]
struct Ends {
    low: Vec<u32>,
    /// Ascending: the high bits of the end of index `i` are the number of steps `<= i`.
    steps: Vec<u32>,
}

impl Ends {
    /// Appends the end of the next index (not before the previous one).
    fn push(&mut self, end: u64) {
        let index = u32::try_from(self.low.len()).unwrap_or(u32::MAX);
        while (self.steps.len() as u64) < end >> 32 {
            self.steps.push(index);
        }
        self.low.push(end as u32);
    }

    /// The end of `index`'s record.
    fn get(&self, index: usize) -> Option<u64> {
        let low = *self.low.get(index)?;
        let high = self.steps.partition_point(|&step| step as usize <= index) as u64;
        Some((high << 32) | u64::from(low))
    }

    fn len(&self) -> usize {
        self.low.len()
    }

    fn heap_bytes(&self) -> usize {
        (self.low.capacity() + self.steps.capacity()) * size_of::<u32>()
    }

    fn shrink_to_fit(&mut self) {
        self.low.shrink_to_fit();
        self.steps.shrink_to_fit();
    }

    /// Whether the ends never go back and the last is `arena_len` (for checkpoints).
    fn is_valid(&self, arena_len: u64) -> bool {
        if !self.steps.is_sorted() || self.steps.last().is_some_and(|&s| s as usize >= self.len()) {
            return false;
        }
        let mut previous = 0;
        for index in 0..self.len() {
            match self.get(index) {
                Some(end) if end >= previous => previous = end,
                _ => return false,
            }
        }
        previous == arena_len
    }
}

/// The key of `index`, from the arena and the records' ends.
fn parts_at<'a>(arena: &'a [u8], ends: &Ends, index: u32) -> Option<Parts<'a>> {
    let index = index as usize;
    let start = match index {
        0 => 0,
        _ => ends.get(index - 1)?,
    };
    let end = ends.get(index)?;
    let record = arena.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)?;
    Parts::decode(record)
}

/// The hash of the key of `index` (of nothing, for a record that does not decode:
/// never the case for an index in the table).
fn hash_at(keys: &RandomState, arena: &[u8], ends: &Ends, index: u32) -> u64 {
    match parts_at(arena, ends, index) {
        Some(parts) => parts.hash(keys.build_hasher()),
        None => 0,
    }
}

/// The checkpoint form: the vectors as they are; the hash table is rebuilt from the
/// keys of the live users, and the live count recounted.
impl Users {
    /// Writes the users.
    pub fn encode<W: Write>(&self, out: &mut Encoder<W>) -> io::Result<()> {
        out.items(&self.arena)?;
        out.items(&self.ends.low)?;
        out.items(&self.ends.steps)?;
        out.items(&self.first)?;
        out.items(&self.buckets)?;
        out.items(&self.facts)
    }

    /// Reads what [`Users::encode`] wrote, checking that the vectors agree.
    pub fn decode<R: Read>(input: &mut Decoder<R>) -> Result<Users, CheckpointError> {
        let corrupt = CheckpointError::Corrupt;
        let mut users = Users {
            arena: input.items()?,
            ends: Ends {
                low: input.items()?,
                steps: input.items()?,
            },
            first: input.items()?,
            buckets: input.items()?,
            facts: input.items()?,
            ..Users::default()
        };
        let n = users.first.len();
        if users.ends.len() != n || users.buckets.len() != n || users.facts.len() != n {
            return Err(corrupt("user vectors of different lengths"));
        }
        if !users.ends.is_valid(users.arena.len() as u64) {
            return Err(corrupt("user keys out of place"));
        }
        let live = (0..n as u32).filter(|&index| users.is_live(index)).count();
        users.ids.reserve(live, |_| 0);
        for index in 0..n as u32 {
            if !users.is_live(index) {
                continue;
            }
            let parts = parts_at(&users.arena, &users.ends, index)
                .ok_or(corrupt("a user key that does not decode"))?;
            let hash = parts.hash(users.keys.build_hasher());
            // One probe: finds the key (corrupt) or the slot where it goes.
            let (keys, arena, ends) = (&users.keys, &users.arena, &users.ends);
            match users.ids.entry(
                hash,
                |&other| parts_at(arena, ends, other) == Some(parts),
                |&other| hash_at(keys, arena, ends, other),
            ) {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return Err(corrupt("a live user key twice"));
                }
                hashbrown::hash_table::Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            }
            users.live += 1;
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_ends_past_4_gib_read_back_exactly() {
        let wanted: Vec<u64> = vec![
            0,
            10,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 5,
            (3 << 32) + 7,
            (3 << 32) + 7,
            (4 << 32) + 1,
        ];
        let mut ends = Ends::default();
        wanted.iter().for_each(|&end| ends.push(end));
        let got: Vec<u64> = (0..wanted.len()).filter_map(|i| ends.get(i)).collect();
        assert_eq!(got, wanted);
        assert!(ends.is_valid(wanted[wanted.len() - 1]));
        assert!(!ends.is_valid(wanted[wanted.len() - 1] + 1));
        assert_eq!(ends.heap_bytes(), (8 + 4) * size_of::<u32>());
    }

    #[test]
    fn keys_of_every_kind_round_trip_and_stay_distinct() {
        let keys = [
            UserKey::External("a".into()),
            UserKey::Braze("a".into()),
            UserKey::Alias {
                name: "a".into(),
                label: "".into(),
            },
            UserKey::Alias {
                name: "".into(),
                label: "a".into(),
            },
            UserKey::External("".into()),
            UserKey::External("été".into()),
        ];
        let mut users = Users::default();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(users.touch(key, 10), i as u32);
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(users.touch(key, 20), i as u32);
        }
        assert_eq!(users.live(), keys.len());
        let mut all = keys.to_vec();
        all.sort();
        let everyone = Bitset::full(users.indices());
        assert_eq!(users.keys_of(&everyone), all);
        assert_eq!(users.delete(&keys[0]), Some(0));
        assert_eq!(users.delete(&keys[0]), None);
        assert_eq!(users.touch(&keys[0], 30), keys.len() as u32);
        assert_eq!(users.keys_of(&everyone).len(), keys.len() - 1);
        assert_eq!(users.existing_before(25).count(), keys.len() as u64 - 1);
    }
}
