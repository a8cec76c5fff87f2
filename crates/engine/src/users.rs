//! The registry of users: each [`UserKey`] gets a dense `u32` index on first sight,
//! and per index the few numbers every evaluation needs.
//!
//! Per user: one hash-map entry (key → index), the time of its earliest fact (8 bytes,
//! `i64::MAX` once deleted: a tombstone that no instant passes), its random bucket
//! (2 bytes) and its number of events and purchases (4 bytes). A deleted user's index
//! is never reused; a later fact for the same key gets a fresh index.

use crate::bitset::Bitset;
use headcount_model::UserKey;
use std::collections::HashMap;

/// The earliest-fact time of a deleted user: later than every instant.
const DELETED: i64 = i64::MAX;

/// Every user ever seen, live or deleted, by dense index.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_key: HashMap<UserKey, u32>,
    first: Vec<i64>,
    buckets: Vec<u16>,
    facts: Vec<u32>,
}

impl Users {
    /// The index of `key`, creating a live user on first sight, and lowers its
    /// earliest-fact time to `time`.
    pub fn touch(&mut self, key: &UserKey, time: i64) -> u32 {
        let index = match self.by_key.get(key) {
            Some(&index) => index,
            None => {
                let index =
                    u32::try_from(self.first.len()).expect("fewer than 2^32 users per workspace");
                self.by_key.insert(key.clone(), index);
                self.first.push(time);
                self.buckets.push(key.random_bucket());
                self.facts.push(0);
                index
            }
        };
        let first = &mut self.first[index as usize];
        *first = (*first).min(time);
        index
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
        let index = self.by_key.remove(key)? as usize;
        self.first[index] = DELETED;
        Some(std::mem::take(&mut self.facts[index]))
    }

    /// The number of live users.
    pub fn live(&self) -> usize {
        self.by_key.len()
    }

    /// The number of indices ever given, live or deleted: the length of every bitset.
    pub fn indices(&self) -> usize {
        self.first.len()
    }

    /// Whether `index` is a live user.
    pub fn is_live(&self, index: u32) -> bool {
        self.first
            .get(index as usize)
            .is_some_and(|&t| t != DELETED)
    }

    /// The live users whose earliest fact is before `at_micros`.
    pub fn existing_before(&self, at_micros: i64) -> Bitset {
        Bitset::from_fn(self.first.len(), |i| self.first[i] < at_micros)
    }

    /// The users whose random bucket compares to `value` as `holds` says.
    pub fn with_bucket(&self, holds: impl Fn(i64) -> bool) -> Bitset {
        Bitset::from_fn(self.buckets.len(), |i| holds(i64::from(self.buckets[i])))
    }

    /// The keys of the live members of `set`, sorted.
    pub fn keys_of(&self, set: &Bitset) -> Vec<UserKey> {
        let mut keys: Vec<UserKey> = self
            .by_key
            .iter()
            .filter(|&(_, &index)| set.contains(index as usize))
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }
}
