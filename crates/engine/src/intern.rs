//! Interning of one attribute's values, so that a column stores a 4-byte id per write
//! and an operator is evaluated once per distinct value.
//!
//! Two values share an id exactly when they are `eq` in the sense of segments.md
//! ([`Value::same_as`]): numbers numerically (`-0` and `0` are one value), datetimes as
//! instants. Except once [`Interner::stop_deduplicating`] was called (an attribute
//! whose values are mostly distinct, such as an email): then every write appends its
//! value under a new id, without the hash table (5–11 bytes a value) and without
//! hashing, and an equal value may have several ids; [`Interner::for_each_id_of`]
//! finds them all by a scan.
//!
//! Values are stored by kind, not as [`Value`]s (32 bytes each, plus a heap block per
//! string): per id a kind byte and an 8-byte word, which holds a number's bits, a
//! boolean, a datetime's nanoseconds since the epoch, or a string's place in one text
//! arena (start and length). Rarer shapes (strings of 16 MiB or more, datetimes
//! outside 1677–2262, arrays) live in side vectors the word indexes. They are found
//! again through a hash table of bare ids (5 bytes a slot), hashed from the stored
//! content itself. An attribute with a distinct value per user (an email) costs per
//! user its text, 9 bytes and a slot, where it cost a 32-byte `Value`, a heap block
//! and a 9-byte slot.

use crate::checkpoint::CheckpointError;
use crate::codec::{Decoder, Encoder};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use headcount_model::Value;
use jiff::Timestamp;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{self, Read, Write};

const STRING: u8 = 0;
const NUMBER: u8 = 1;
const BOOL: u8 = 2;
const DATETIME: u8 = 3;
const ARRAY: u8 = 4;
/// A string of [`MAX_INLINE_LEN`] bytes or more: the word indexes `long`.
const LONG_STRING: u8 = 5;
/// A datetime whose nanoseconds do not fit an `i64`: the word indexes `wide`.
const WIDE_DATETIME: u8 = 6;

/// Bits of a string's length in its word (the start takes the rest).
const LEN_BITS: u32 = 24;
/// Strings at least this long go to `long`.
const MAX_INLINE_LEN: usize = 1 << LEN_BITS;
/// Text arenas up to this size keep their strings inline.
const MAX_INLINE_START: usize = 1 << (64 - LEN_BITS);

/// Values reserved for at most before reading a checkpoint's values.
const RESERVE_MAX: usize = 1 << 24;

/// One stored value, borrowed: what [`Interner::get`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// Text.
    String(&'a str),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// An instant.
    DateTime(Timestamp),
    /// An ordered list of strings.
    Array(&'a [String]),
}

impl<'a> ValueRef<'a> {
    /// `value`, borrowed.
    pub fn of(value: &'a Value) -> ValueRef<'a> {
        match value {
            Value::String(s) => ValueRef::String(s),
            Value::Number(f) => ValueRef::Number(*f),
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::DateTime(t) => ValueRef::DateTime(*t),
            Value::Array(items) => ValueRef::Array(items),
        }
    }

    /// An owned copy.
    #[cfg(test)]
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::String(s) => Value::String(s.to_owned()),
            ValueRef::Number(f) => Value::Number(f),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::DateTime(t) => Value::DateTime(t),
            ValueRef::Array(items) => Value::Array(items.to_vec()),
        }
    }

    /// Equality as [`Value::same_as`]: numbers numerically, the rest exactly.
    fn same_as(self, other: ValueRef<'_>) -> bool {
        match (self, other) {
            (ValueRef::String(a), ValueRef::String(b)) => a == b,
            (ValueRef::Number(a), ValueRef::Number(b)) => a == b,
            (ValueRef::Bool(a), ValueRef::Bool(b)) => a == b,
            (ValueRef::DateTime(a), ValueRef::DateTime(b)) => a == b,
            (ValueRef::Array(a), ValueRef::Array(b)) => a == b,
            _ => false,
        }
    }

    fn hash_into(self, h: &mut impl Hasher) {
        match self {
            ValueRef::String(s) => (0u8, s).hash(h),
            // +0.0 and -0.0 are equal numbers: hash them alike.
            ValueRef::Number(f) => (1u8, (f + 0.0).to_bits()).hash(h),
            ValueRef::Bool(b) => (2u8, b).hash(h),
            ValueRef::DateTime(t) => (3u8, t).hash(h),
            ValueRef::Array(items) => (4u8, items).hash(h),
        }
    }
}

/// The distinct values one attribute has held.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    /// Per id, the kind of its value.
    kinds: Vec<u8>,
    /// Per id, the value or where it is (see the module's documentation).
    words: Vec<u64>,
    /// The text of the inline strings, one after the other.
    text: String,
    long: Vec<String>,
    wide: Vec<Timestamp>,
    arrays: Vec<Vec<String>>,
    /// The ids, by hash of their value (empty once `appending`).
    table: HashTable<u32>,
    keys: RandomState,
    /// Whether values are appended without looking for an equal one.
    appending: bool,
}

impl Interner {
    /// The id of `value`, adding it on first sight.
    pub fn intern(&mut self, value: &Value) -> u32 {
        self.intern_ref(ValueRef::of(value))
    }

    /// [`Interner::intern`] of a borrowed value: one probe of the table, which finds
    /// the value or the slot where it goes.
    fn intern_ref(&mut self, value: ValueRef<'_>) -> u32 {
        if self.appending {
            return self.append(value);
        }
        let hash = self.hash(value);
        let id = self.next_id();
        let Interner {
            kinds,
            words,
            text,
            long,
            wide,
            arrays,
            table,
            keys,
            ..
        } = self;
        let stored = Stored {
            kinds,
            words,
            text,
            long,
            wide,
            arrays,
        };
        match table.entry(
            hash,
            |&id| stored.get(id).same_as(value),
            |&id| hash_with(keys, stored.get(id)),
        ) {
            hashbrown::hash_table::Entry::Occupied(entry) => return *entry.get(),
            // The slot takes the id of the value appended next (inserting into a
            // vacant slot hashes nothing).
            hashbrown::hash_table::Entry::Vacant(slot) => slot.insert(id),
        };
        self.append(value)
    }

    /// The id the next value appended gets.
    fn next_id(&self) -> u32 {
        u32::try_from(self.kinds.len())
            .ok()
            .filter(|&id| id != u32::MAX)
            .expect("fewer than 2^32 - 1 values per attribute")
    }

    /// Stores `value` under a new id (the table untouched).
    fn append(&mut self, value: ValueRef<'_>) -> u32 {
        let id = self.next_id();
        let Interner {
            kinds,
            words,
            text,
            long,
            wide,
            arrays,
            ..
        } = self;
        let (kind, word) = match value {
            ValueRef::String(s) if s.len() < MAX_INLINE_LEN && text.len() < MAX_INLINE_START => {
                let word = ((text.len() as u64) << LEN_BITS) | s.len() as u64;
                text.push_str(s);
                (STRING, word)
            }
            ValueRef::String(s) => {
                long.push(s.to_owned());
                (LONG_STRING, long.len() as u64 - 1)
            }
            ValueRef::Number(f) => (NUMBER, f.to_bits()),
            ValueRef::Bool(b) => (BOOL, u64::from(b)),
            ValueRef::DateTime(t) => match i64::try_from(t.as_nanosecond()) {
                Ok(ns) => (DATETIME, ns as u64),
                Err(_) => {
                    wide.push(t);
                    (WIDE_DATETIME, wide.len() as u64 - 1)
                }
            },
            ValueRef::Array(items) => {
                arrays.push(items.to_vec());
                (ARRAY, arrays.len() as u64 - 1)
            }
        };
        kinds.push(kind);
        words.push(word);
        id
    }

    /// From now on, appends every value interned under a new id, without looking for
    /// an equal one, and drops the hash table.
    pub fn stop_deduplicating(&mut self) {
        if !self.appending {
            self.appending = true;
            self.table = HashTable::new();
        }
    }

    /// Whether values are appended without deduplication.
    #[cfg(test)]
    pub fn is_appending(&self) -> bool {
        self.appending
    }

    /// The id of `value` if the attribute ever held it (with deduplication stopped,
    /// the first of its ids).
    pub fn find(&self, value: &Value) -> Option<u32> {
        let value = ValueRef::of(value);
        if self.appending {
            return self
                .iter()
                .position(|v| v.same_as(value))
                .map(|id| id as u32);
        }
        self.find_hashed(self.hash(value), value)
    }

    /// Calls `f` with every id of `value`: none or one, or with deduplication
    /// stopped, any number (found by a scan).
    pub fn for_each_id_of(&self, value: &Value, mut f: impl FnMut(u32)) {
        let wanted = ValueRef::of(value);
        if self.appending {
            for (id, v) in (0u32..).zip(self.iter()) {
                if v.same_as(wanted) {
                    f(id);
                }
            }
        } else if let Some(id) = self.find(value) {
            f(id);
        }
    }

    /// The number of ids (of distinct values, unless deduplication stopped): ids are
    /// `0..len()`.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// The value of `id` (`id < len()`; any other reads as `false`).
    pub fn get(&self, id: u32) -> ValueRef<'_> {
        self.stored().get(id)
    }

    /// Every distinct value, in id order.
    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'_>> + '_ {
        (0..self.kinds.len() as u32).map(|id| self.get(id))
    }

    /// Gives back the memory reserved for values not added yet.
    pub fn shrink_to_fit(&mut self) {
        self.kinds.shrink_to_fit();
        self.words.shrink_to_fit();
        self.text.shrink_to_fit();
        self.long.shrink_to_fit();
        self.wide.shrink_to_fit();
        self.arrays.shrink_to_fit();
        let Interner {
            kinds,
            words,
            text,
            long,
            wide,
            arrays,
            table,
            keys,
            ..
        } = self;
        let stored = Stored {
            kinds,
            words,
            text,
            long,
            wide,
            arrays,
        };
        table.shrink_to_fit(|&id| hash_with(keys, stored.get(id)));
    }

    /// An estimate of the bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        let long: usize = self.long.iter().map(String::capacity).sum();
        let arrays: usize = self
            .arrays
            .iter()
            .map(|items| {
                items.capacity() * size_of::<String>()
                    + items.iter().map(String::capacity).sum::<usize>()
            })
            .sum();
        self.kinds.capacity()
            + self.words.capacity() * size_of::<u64>()
            + self.text.capacity()
            + self.long.capacity() * size_of::<String>()
            + long
            + self.wide.capacity() * size_of::<Timestamp>()
            + self.arrays.capacity() * size_of::<Vec<String>>()
            + arrays
            // hashbrown: one control byte per bucket (and a group's worth more).
            + self.table.capacity() * 8 / 7 * (size_of::<u32>() + 1)
    }

    fn stored(&self) -> Stored<'_> {
        Stored {
            kinds: &self.kinds,
            words: &self.words,
            text: &self.text,
            long: &self.long,
            wide: &self.wide,
            arrays: &self.arrays,
        }
    }

    fn find_hashed(&self, hash: u64, value: ValueRef<'_>) -> Option<u32> {
        let stored = self.stored();
        self.table
            .find(hash, |&id| stored.get(id).same_as(value))
            .copied()
    }

    fn hash(&self, value: ValueRef<'_>) -> u64 {
        hash_with(&self.keys, value)
    }
}

fn hash_with(keys: &RandomState, value: ValueRef<'_>) -> u64 {
    let mut h = keys.build_hasher();
    value.hash_into(&mut h);
    h.finish()
}

/// The stored values, borrowed apart from the table (so that the table can rehash
/// from them while it grows).
#[derive(Clone, Copy)]
struct Stored<'a> {
    kinds: &'a [u8],
    words: &'a [u64],
    text: &'a str,
    long: &'a [String],
    wide: &'a [Timestamp],
    arrays: &'a [Vec<String>],
}

impl<'a> Stored<'a> {
    fn get(self, id: u32) -> ValueRef<'a> {
        let id = id as usize;
        let (Some(&kind), Some(&word)) = (self.kinds.get(id), self.words.get(id)) else {
            return ValueRef::Bool(false);
        };
        let at = |word: u64| usize::try_from(word).unwrap_or(usize::MAX);
        match kind {
            STRING => {
                let start = at(word >> LEN_BITS);
                let len = at(word & (MAX_INLINE_LEN as u64 - 1));
                ValueRef::String(self.text.get(start..start + len).unwrap_or_default())
            }
            NUMBER => ValueRef::Number(f64::from_bits(word)),
            BOOL => ValueRef::Bool(word != 0),
            DATETIME => ValueRef::DateTime(
                Timestamp::from_nanosecond(i128::from(word as i64)).unwrap_or_default(),
            ),
            LONG_STRING => ValueRef::String(self.long.get(at(word)).map_or("", String::as_str)),
            WIDE_DATETIME => {
                ValueRef::DateTime(self.wide.get(at(word)).copied().unwrap_or_default())
            }
            ARRAY => ValueRef::Array(self.arrays.get(at(word)).map_or(&[], Vec::as_slice)),
            _ => ValueRef::Bool(false),
        }
    }
}

/// The checkpoint form: whether deduplication stopped (a byte, 1 if so), then the
/// values one by one (a kind byte, then the value), read back by interning each again
/// (which rebuilds the hash table) or, deduplication stopped, appending each.
impl Interner {
    /// Writes the values in id order.
    pub fn encode<W: Write>(&self, e: &mut Encoder<W>) -> io::Result<()> {
        e.item(u8::from(self.appending))?;
        e.len(self.len())?;
        for value in self.iter() {
            match value {
                ValueRef::String(s) => {
                    e.item(0u8)?;
                    e.str(s)?;
                }
                ValueRef::Number(f) => {
                    e.item(1u8)?;
                    e.item(f.to_bits())?;
                }
                ValueRef::Bool(b) => {
                    e.item(2u8)?;
                    e.item(u8::from(b))?;
                }
                ValueRef::DateTime(t) => {
                    e.item(3u8)?;
                    let ns = t.as_nanosecond();
                    e.item(ns as u64)?;
                    e.item((ns >> 64) as i64)?;
                }
                ValueRef::Array(items) => {
                    e.item(4u8)?;
                    e.len(items.len())?;
                    items.iter().try_for_each(|item| e.str(item))?;
                }
            }
        }
        Ok(())
    }

    /// Reads what [`Interner::encode`] wrote; unless deduplication had stopped, two
    /// equal values are corrupt (ids would no longer be one per value).
    pub fn decode<R: Read>(d: &mut Decoder<R>) -> Result<Interner, CheckpointError> {
        let corrupt = CheckpointError::Corrupt;
        let mut interner = Interner::default();
        match d.item::<u8>()? {
            0 => {}
            1 => interner.stop_deduplicating(),
            _ => return Err(corrupt("an unknown deduplication flag")),
        }
        let count = d.count()?;
        // The table sized once (growing it would hash every value again), within a
        // bound: the count is not yet known to be intact (the checksum comes last).
        let expected = count.min(RESERVE_MAX);
        if !interner.appending {
            interner.table.reserve(expected, |_| 0);
        }
        interner.kinds.reserve_exact(expected);
        interner.words.reserve_exact(expected);
        let mut scratch = Vec::new();
        for id in 0..count {
            // Strings, most values, are read into one buffer rather than allocated.
            let interned = match d.item::<u8>()? {
                0 => interner.intern_ref(ValueRef::String(d.str_into(&mut scratch)?)),
                kind => interner.intern(&decode_value(kind, d)?),
            };
            if interned as usize != id {
                return Err(corrupt("an attribute value twice"));
            }
        }
        interner.shrink_to_fit();
        Ok(interner)
    }
}

/// A value of `kind` (its byte already read).
fn decode_value<R: Read>(kind: u8, d: &mut Decoder<R>) -> Result<Value, CheckpointError> {
    Ok(match kind {
        0 => Value::String(d.string()?),
        1 => {
            let f = f64::from_bits(d.item()?);
            if !f.is_finite() {
                return Err(CheckpointError::Corrupt("a number that is not finite"));
            }
            Value::Number(f)
        }
        2 => match d.item::<u8>()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(CheckpointError::Corrupt("a boolean that is neither")),
        },
        3 => {
            let low: u64 = d.item()?;
            let high: i64 = d.item()?;
            let ns = (i128::from(high) << 64) | i128::from(low);
            Value::DateTime(
                Timestamp::from_nanosecond(ns)
                    .map_err(|_| CheckpointError::Corrupt("a datetime out of range"))?,
            )
        }
        4 => {
            let n = d.count()?;
            Value::Array((0..n).map(|_| d.string()).collect::<Result<_, _>>()?)
        }
        _ => return Err(CheckpointError::Corrupt("an unknown value kind")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_an_id() {
        let mut interner = Interner::default();
        let zero = interner.intern(&Value::Number(0.0));
        assert_eq!(interner.intern(&Value::Number(-0.0)), zero);
        let s = interner.intern(&Value::String("1".into()));
        assert_ne!(s, zero);
        assert_eq!(interner.find(&Value::String("1".into())), Some(s));
        assert_eq!(interner.find(&Value::Number(1.0)), None);
        let a = interner.intern(&Value::Array(vec!["x".into(), "y".into()]));
        assert_eq!(
            interner.find(&Value::Array(vec!["y".into(), "x".into()])),
            None
        );
        assert_eq!(
            interner.intern(&Value::Array(vec!["x".into(), "y".into()])),
            a
        );
        assert_eq!(interner.len(), 3);
    }

    #[test]
    fn without_deduplication_every_id_of_a_value_is_found() {
        let mut interner = Interner::default();
        let a = interner.intern(&Value::Number(1.0));
        interner.stop_deduplicating();
        assert!(interner.is_appending());
        let b = interner.intern(&Value::Number(1.0));
        let c = interner.intern(&Value::String("x".into()));
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(interner.heap_bytes() < 64, "{}", interner.heap_bytes());
        let mut ids = Vec::new();
        interner.for_each_id_of(&Value::Number(1.0), |id| ids.push(id));
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(interner.find(&Value::String("x".into())), Some(2));
        assert_eq!(interner.find(&Value::String("y".into())), None);
    }

    #[test]
    fn every_kind_reads_back_as_written_and_is_found_again() {
        let t = |s: &str| Value::DateTime(s.parse().unwrap_or(Timestamp::MIN));
        let values = vec![
            Value::String(String::new()),
            Value::String("été".into()),
            Value::String("x".repeat(MAX_INLINE_LEN)),
            Value::Number(-1.5),
            Value::Number(f64::MAX),
            Value::Bool(true),
            Value::Bool(false),
            t("2026-10-31T12:34:56.789123456Z"),
            // Outside the i64 nanoseconds of 1677..2262: a wide datetime.
            Value::DateTime(Timestamp::MAX),
            Value::DateTime(Timestamp::MIN),
            Value::Array(Vec::new()),
            Value::Array(vec!["a".into(), "".into()]),
        ];
        let mut interner = Interner::default();
        for (id, value) in (0..).zip(&values) {
            assert_eq!(interner.intern(value), id);
        }
        // Many more, so that the table grows and rehashes from the stored values.
        for n in 0..5000 {
            interner.intern(&Value::String(format!("user-{n}@example.com")));
        }
        interner.shrink_to_fit();
        for (id, value) in (0..).zip(&values) {
            assert_eq!(interner.get(id).to_value(), *value);
            assert_eq!(interner.find(value), Some(id));
        }
        assert_eq!(
            interner.find(&Value::String("user-4999@example.com".into())),
            Some(values.len() as u32 + 4999)
        );
        assert_eq!(interner.len(), values.len() + 5000);
    }
}
