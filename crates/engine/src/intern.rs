//! Interning of one attribute's values, so that a column stores a 4-byte id per write
//! and an operator is evaluated once per distinct value.
//!
//! Two values share an id exactly when they are `eq` in the sense of segments.md
//! ([`Value::same_as`]): numbers numerically (`-0` and `0` are one value), datetimes as
//! instants. The table keeps each value once, found again through [`HashIds`].

use crate::hashids::HashIds;
use headcount_model::Value;
use std::hash::{Hash, Hasher};

/// The distinct values one attribute has held.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    values: Vec<Value>,
    ids: HashIds,
}

impl Interner {
    /// The id of `value`, adding it on first sight.
    pub fn intern(&mut self, value: &Value) -> u32 {
        let hash = self.hash(value);
        if let Some(id) = self.find_hashed(hash, value) {
            return id;
        }
        let id = u32::try_from(self.values.len())
            .ok()
            .filter(|&id| id != u32::MAX)
            .expect("fewer than 2^32 - 1 distinct values per attribute");
        self.values.push(value.clone());
        self.ids.insert(hash, id);
        id
    }

    /// The id of `value` if the attribute ever held it.
    pub fn find(&self, value: &Value) -> Option<u32> {
        self.find_hashed(self.hash(value), value)
    }

    /// Every distinct value, indexed by id.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// An interner of `values`, in id order (as [`Interner::values`] gave them).
    pub fn from_values(values: Vec<Value>) -> Interner {
        let mut interner = Interner {
            values: Vec::new(),
            ids: HashIds::default(),
        };
        for (id, value) in (0..).zip(&values) {
            // The table's own keyed hasher: the one `find` will use.
            let hash = interner.hash(value);
            interner.ids.insert(hash, id);
        }
        interner.values = values;
        interner
    }

    /// Gives back the memory reserved for values not added yet.
    pub fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
    }

    /// An estimate of the bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        let contents: usize = self
            .values
            .iter()
            .map(|value| match value {
                Value::String(s) => s.capacity(),
                Value::Array(items) => {
                    items.capacity() * size_of::<String>()
                        + items.iter().map(String::capacity).sum::<usize>()
                }
                Value::Number(_) | Value::Bool(_) | Value::DateTime(_) => 0,
            })
            .sum();
        self.values.capacity() * size_of::<Value>() + contents + self.ids.heap_bytes()
    }

    fn find_hashed(&self, hash: u64, value: &Value) -> Option<u32> {
        self.ids.find(hash, |id| {
            self.values
                .get(id as usize)
                .is_some_and(|v| v.same_as(value))
        })
    }

    fn hash(&self, value: &Value) -> u64 {
        let mut h = self.ids.hasher();
        match value {
            Value::String(s) => (0u8, s).hash(&mut h),
            // +0.0 and -0.0 are equal numbers: hash them alike.
            Value::Number(f) => (1u8, (f + 0.0).to_bits()).hash(&mut h),
            Value::Bool(b) => (2u8, b).hash(&mut h),
            Value::DateTime(t) => (3u8, t).hash(&mut h),
            Value::Array(items) => (4u8, items).hash(&mut h),
        }
        h.finish()
    }
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
        assert_eq!(interner.values().len(), 3);
    }
}
