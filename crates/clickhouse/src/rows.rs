//! Facts as rows of the `facts` table, in ClickHouse's `RowBinary` format.
//!
//! One row per event, per purchase, per attribute written (or unset), and one row for
//! an attribute object that sets nothing (it still makes the user exist). A deletion
//! is a row of the `deletions` table instead.

use headcount_model::{Fact, FactKind, Timestamp, UserKey, Value};
use std::collections::HashMap;

/// `type` of a row that only makes its user exist (an empty attribute object).
pub const TOUCH: u8 = 0;
/// `type` of an event row (`name`: the event's name).
pub const EVENT: u8 = 1;
/// `type` of a purchase row (`name`: the product id).
pub const PURCHASE: u8 = 2;
/// `type` of an attribute write (`name`: the attribute; `kind` and a value column).
pub const ATTRIBUTE: u8 = 3;

/// `kind` of an unset (a null value).
pub const UNSET: u8 = 0;
/// `kind` of a string, in `s`.
pub const STRING: u8 = 1;
/// `kind` of a number, in `n`.
pub const NUMBER: u8 = 2;
/// `kind` of a boolean, in `n` (0 or 1).
pub const BOOL: u8 = 3;
/// `kind` of a datetime: microseconds in `d` (floor), the nanoseconds below in `dn`.
pub const DATETIME: u8 = 4;
/// `kind` of an array of strings, in `a`.
pub const ARRAY: u8 = 5;

/// The text that names a user in the tables; distinct for distinct keys.
pub fn user_text(user: &UserKey) -> String {
    match user {
        UserKey::External(id) => format!("e:{id}"),
        UserKey::Braze(id) => format!("b:{id}"),
        UserKey::Alias { name, label } => format!("a:{}:{label}{name}", label.len()),
    }
}

/// An instant as microseconds since the epoch (floor) and the nanoseconds below them.
pub fn micros_and_nanos(t: Timestamp) -> (i64, u16) {
    let ns = t.as_nanosecond();
    let us = i64::try_from(ns.div_euclid(1000)).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX });
    (us, ns.rem_euclid(1000) as u16)
}

/// The smallest whole microsecond at or after `t`: a stored time `f` (whole µs) is
/// before `t` exactly when `f < ceil_micros(t)`.
pub fn ceil_micros(t: Timestamp) -> i64 {
    let (us, ns) = micros_and_nanos(t);
    if ns > 0 { us.saturating_add(1) } else { us }
}

/// Whether the write at a position of an attributes object is the last of its name
/// there: only that one is stored, as the memory engine applies the writes in order
/// (the last wins), so that `(time, seq)` orders every row of one attribute of a user.
fn last_of_each_name(values: &[(String, Option<Value>)]) -> impl Fn(usize) -> bool + '_ {
    // Small objects (all real ones): compare the names; large ones: one map.
    const SMALL: usize = 32;
    let last: Option<HashMap<&str, usize>> = (values.len() > SMALL).then(|| {
        values
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect()
    });
    move |i| match &last {
        Some(last) => last.get(values[i].0.as_str()) == Some(&i),
        None => !values[i + 1..].iter().any(|(n, _)| *n == values[i].0),
    }
}

/// Hands out `seq` numbers in acceptance order, across processes and restarts: the
/// wall clock in microseconds times 4096, or one more than the last number given
/// (so more than 4096 facts in a microsecond, or a clock stepping back, still get
/// increasing numbers).
#[derive(Debug, Default)]
pub struct SeqClock {
    last: std::sync::atomic::AtomicU64,
}

impl SeqClock {
    /// A clock that has given no number yet.
    pub fn new() -> SeqClock {
        SeqClock::default()
    }

    /// The first of `n` consecutive numbers, all greater than every one given before
    /// by this clock (one reading of the clock for all of them).
    pub fn reserve(&self, n: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let (now, _) = micros_and_nanos(Timestamp::now());
        let floor = u64::try_from(now).unwrap_or(1).saturating_mul(4096).max(1);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let first = floor.max(last.saturating_add(1));
            let end = first.saturating_add(n.max(1) - 1);
            match self
                .last
                .compare_exchange_weak(last, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return first,
                Err(seen) => last = seen,
            }
        }
    }

    /// The next number, greater than every one given before by this clock.
    pub fn next(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let (now, _) = micros_and_nanos(Timestamp::now());
        let floor = u64::try_from(now).unwrap_or(1).saturating_mul(4096).max(1);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// A user as its rows name it: its text ([`user_text`]) and its random bucket, made
/// once for all of its facts (the bucket costs a SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowUser {
    /// [`user_text`] of the user.
    pub text: String,
    /// `UserKey::random_bucket` of the user.
    pub bucket: u16,
}

impl RowUser {
    /// The text and bucket of `user`.
    pub fn of(user: &UserKey) -> RowUser {
        RowUser {
            text: user_text(user),
            bucket: user.random_bucket(),
        }
    }
}

/// What a row is of: any fact, or an event without detail.
#[derive(Clone, Copy)]
enum Of<'a> {
    Fact(&'a FactKind),
    Event(&'a str),
}

/// Rows being encoded for one insert.
#[derive(Default)]
pub struct Batch {
    /// `facts` rows, RowBinary.
    pub facts: Vec<u8>,
    /// `facts` rows written.
    pub fact_rows: usize,
    /// `deletions` rows, RowBinary.
    pub deletions: Vec<u8>,
    /// `deletions` rows written.
    pub deletion_rows: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds one fact of `user` in `workspace`. `seq` orders the facts of a workspace
    /// as they were accepted (two writes of one attribute at the same microsecond: the
    /// higher `seq` wins; a deletion forgets the facts of lower `seq`); it must be at
    /// least 1 and, with the row's position in the fact, identifies the row, so that
    /// a fact inserted twice with the same `seq` collapses into one.
    pub fn push(&mut self, workspace: i64, user: &UserKey, fact: &Fact, seq: u64) {
        self.push_at(workspace, user, fact, seq, None);
    }

    /// [`Batch::push`], noting in `slots` where each row's `seq` was written.
    fn push_at(
        &mut self,
        workspace: i64,
        user: &UserKey,
        fact: &Fact,
        seq: u64,
        slots: Option<&mut Vec<Slot>>,
    ) {
        let user = RowUser::of(user);
        self.push_row_at(
            workspace,
            &user,
            fact.time,
            Of::Fact(&fact.kind),
            seq,
            slots,
        );
    }

    /// [`Batch::push_at`] of a user already named and bucketed, and a fact given by
    /// its time and what it is.
    fn push_row_at(
        &mut self,
        workspace: i64,
        user: &RowUser,
        time: Timestamp,
        of: Of<'_>,
        seq: u64,
        mut slots: Option<&mut Vec<Slot>>,
    ) {
        let (bucket, user) = (user.bucket, user.text.as_str());
        let (time, _) = micros_and_nanos(time);
        let mut row = |sub: u16, kind_of_row: u8, name: &str, value: Option<&Value>| {
            let out = &mut self.facts;
            out.extend_from_slice(&workspace.to_le_bytes());
            string(out, user.as_bytes());
            out.extend_from_slice(&bucket.to_le_bytes());
            out.extend_from_slice(&time.to_le_bytes());
            if let Some(slots) = slots.as_deref_mut() {
                slots.push(Slot::Fact(out.len()));
            }
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&sub.to_le_bytes());
            out.push(kind_of_row);
            string(out, name.as_bytes());
            let (kind, s, n, (d, dn), a): (u8, &str, f64, (i64, u16), &[String]) = match value {
                None => (UNSET, "", 0.0, (0, 0), &[]),
                Some(Value::String(s)) => (STRING, s, 0.0, (0, 0), &[]),
                Some(Value::Number(n)) => (NUMBER, "", *n, (0, 0), &[]),
                Some(Value::Bool(b)) => (BOOL, "", f64::from(u8::from(*b)), (0, 0), &[]),
                Some(Value::DateTime(t)) => (DATETIME, "", 0.0, micros_and_nanos(*t), &[]),
                Some(Value::Array(items)) => (ARRAY, "", 0.0, (0, 0), items),
            };
            out.push(kind);
            string(out, s.as_bytes());
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&dn.to_le_bytes());
            varint(out, a.len() as u64);
            for item in a {
                string(out, item.as_bytes());
            }
            self.fact_rows += 1;
        };
        let kind = match of {
            Of::Event(name) => return row(0, EVENT, name, None),
            Of::Fact(kind) => kind,
        };
        match kind {
            FactKind::Attributes(values) if values.is_empty() => row(0, TOUCH, "", None),
            FactKind::Attributes(values) => {
                let last = last_of_each_name(values);
                for (sub, (name, value)) in (0u16..).zip(values) {
                    if last(usize::from(sub)) {
                        row(sub, ATTRIBUTE, name, value.as_ref());
                    }
                }
            }
            FactKind::Event { name, .. } => row(0, EVENT, name, None),
            FactKind::Purchase { product, .. } => row(0, PURCHASE, product, None),
            FactKind::Deletion => {
                let out = &mut self.deletions;
                out.extend_from_slice(&workspace.to_le_bytes());
                string(out, user.as_bytes());
                if let Some(slots) = slots {
                    slots.push(Slot::Deletion(out.len()));
                }
                out.extend_from_slice(&seq.to_le_bytes());
                self.deletion_rows += 1;
            }
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.fact_rows == 0 && self.deletion_rows == 0
    }

    /// Appends `rows`, giving their facts `seq` numbers from `next_seq`, one per fact
    /// in the order they were pushed.
    pub fn append(&mut self, rows: &Unsequenced, mut next_seq: impl FnMut() -> u64) {
        let (facts_base, deletions_base) = (self.facts.len(), self.deletions.len());
        self.facts.extend_from_slice(&rows.batch.facts);
        self.deletions.extend_from_slice(&rows.batch.deletions);
        self.fact_rows += rows.batch.fact_rows;
        self.deletion_rows += rows.batch.deletion_rows;
        let mut start = 0;
        for &end in &rows.fact_ends {
            let seq = next_seq().to_le_bytes();
            for slot in &rows.slots[start..end] {
                let at = match *slot {
                    Slot::Fact(at) => &mut self.facts[facts_base + at..],
                    Slot::Deletion(at) => &mut self.deletions[deletions_base + at..],
                };
                at[..8].copy_from_slice(&seq);
            }
            start = end;
        }
    }
}

/// Where a row's `seq` is, in the bytes of [`Batch::facts`] or [`Batch::deletions`].
#[derive(Debug, Clone, Copy)]
enum Slot {
    Fact(usize),
    Deletion(usize),
}

/// Facts encoded before their `seq` numbers are known, so that many threads can parse
/// and encode while the numbers are still given in input order ([`Batch::append`]).
#[derive(Default)]
pub struct Unsequenced {
    batch: Batch,
    /// Where each row's `seq` goes, fact after fact.
    slots: Vec<Slot>,
    /// The end in `slots` of each fact's rows.
    fact_ends: Vec<usize>,
}

/// How far an [`Unsequenced`] got, to cut it back there ([`Unsequenced::truncate`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    facts: usize,
    fact_rows: usize,
    deletions: usize,
    deletion_rows: usize,
    slots: usize,
    fact_count: usize,
}

impl Unsequenced {
    /// Nothing encoded yet.
    pub fn new() -> Unsequenced {
        Unsequenced::default()
    }

    /// Encodes one fact of `user` in `workspace` (see [`Batch::push`]).
    pub fn push(&mut self, workspace: i64, user: &UserKey, fact: &Fact) {
        self.batch
            .push_at(workspace, user, fact, 0, Some(&mut self.slots));
        self.fact_ends.push(self.slots.len());
    }

    /// [`Unsequenced::push`] of a user already named and bucketed ([`RowUser::of`]).
    pub fn push_user(&mut self, workspace: i64, user: &RowUser, fact: &Fact) {
        self.batch.push_row_at(
            workspace,
            user,
            fact.time,
            Of::Fact(&fact.kind),
            0,
            Some(&mut self.slots),
        );
        self.fact_ends.push(self.slots.len());
    }

    /// Encodes an event named `name` of `user` at `time` (the fact
    /// `FactKind::Event { name, detail: None }`, without making it).
    pub fn push_event(&mut self, workspace: i64, user: &RowUser, name: &str, time: Timestamp) {
        self.batch.push_row_at(
            workspace,
            user,
            time,
            Of::Event(name),
            0,
            Some(&mut self.slots),
        );
        self.fact_ends.push(self.slots.len());
    }

    /// The table rows encoded (facts and deletions).
    pub fn rows(&self) -> usize {
        self.batch.fact_rows + self.batch.deletion_rows
    }

    /// The facts encoded.
    pub fn facts(&self) -> usize {
        self.fact_ends.len()
    }

    /// Where the encoding is now.
    pub fn mark(&self) -> Mark {
        Mark {
            facts: self.batch.facts.len(),
            fact_rows: self.batch.fact_rows,
            deletions: self.batch.deletions.len(),
            deletion_rows: self.batch.deletion_rows,
            slots: self.slots.len(),
            fact_count: self.fact_ends.len(),
        }
    }

    /// Forgets every fact pushed after `mark` was taken.
    pub fn truncate(&mut self, mark: Mark) {
        self.batch.facts.truncate(mark.facts);
        self.batch.fact_rows = mark.fact_rows;
        self.batch.deletions.truncate(mark.deletions);
        self.batch.deletion_rows = mark.deletion_rows;
        self.slots.truncate(mark.slots);
        self.fact_ends.truncate(mark.fact_count);
    }
}

/// Reads a `RowBinary` answer of one `String` column.
///
/// # Errors
/// A message when the bytes end inside a value.
pub fn read_strings(mut bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let (&byte, rest) = bytes.split_first().ok_or("a string length ends early")?;
            bytes = rest;
            len |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 || shift > 63 {
                break;
            }
        }
        let len = usize::try_from(len).map_err(|_| "a string too long")?;
        let (text, rest) = bytes.split_at_checked(len).ok_or("a string ends early")?;
        out.push(String::from_utf8_lossy(text).into_owned());
        bytes = rest;
    }
    Ok(out)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_write_of_a_repeated_name_in_one_fact_is_a_row() {
        let names = |n: &[&str]| -> Vec<(String, Option<Value>)> {
            n.iter().map(|n| (n.to_string(), None)).collect()
        };
        let kept = |values: &[(String, Option<Value>)]| -> Vec<usize> {
            let last = last_of_each_name(values);
            (0..values.len()).filter(|&i| last(i)).collect()
        };
        assert_eq!(kept(&names(&["a", "b", "a", "c", "b"])), vec![2, 3, 4]);
        assert_eq!(kept(&names(&[])), Vec::<usize>::new());
        // Beyond the small case, the same through a map.
        let mut many: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
        many.push("n3".into());
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let got = kept(&names(&many));
        assert_eq!(got.len(), 40);
        assert!(!got.contains(&3) && got.contains(&40));

        let mut batch = Batch::new();
        let fact = Fact {
            time: Timestamp::UNIX_EPOCH,
            kind: FactKind::Attributes(names(&["plan", "plan", "age"])),
        };
        batch.push(1, &UserKey::External("u".into()), &fact, 7);
        assert_eq!(batch.fact_rows, 2);
    }

    #[test]
    fn user_texts_keep_namespaces_and_alias_parts_apart() {
        let alias = |name: &str, label: &str| {
            user_text(&UserKey::Alias {
                name: name.into(),
                label: label.into(),
            })
        };
        assert_ne!(alias("b", "a:"), alias(":b", "a"));
        assert_ne!(
            user_text(&UserKey::External("x".into())),
            user_text(&UserKey::Braze("x".into()))
        );
    }

    #[test]
    fn strings_read_back_as_written() {
        let mut bytes = Vec::new();
        for text in ["", "a", &"x".repeat(300)] {
            string(&mut bytes, text.as_bytes());
        }
        let read = read_strings(&bytes).unwrap();
        assert_eq!(read, vec!["".to_string(), "a".into(), "x".repeat(300)]);
        assert!(read_strings(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn facts_encoded_before_their_seq_match_facts_pushed_with_it() {
        let user = UserKey::External("u".into());
        let at: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let attrs = Fact {
            time: at,
            kind: FactKind::Attributes(vec![
                ("a".into(), Some(Value::String("x".into()))),
                ("b".into(), None),
            ]),
        };
        let deletion = Fact {
            time: at,
            kind: FactKind::Deletion,
        };
        let event = Fact {
            time: at,
            kind: FactKind::Event {
                name: "e".into(),
                detail: None,
            },
        };
        let mut direct = Batch::new();
        direct.push(7, &user, &attrs, 10);
        direct.push(7, &user, &deletion, 11);
        direct.push(7, &user, &event, 12);
        let mut rows = Unsequenced::new();
        rows.push(7, &user, &attrs);
        rows.push(7, &user, &deletion);
        let mark = rows.mark();
        rows.push(7, &user, &event);
        assert_eq!(rows.facts(), 3);
        let mut seqs = 10..;
        let mut appended = Batch::new();
        appended.append(&rows, || seqs.next().unwrap());
        assert_eq!(appended.facts, direct.facts);
        assert_eq!(appended.deletions, direct.deletions);
        assert_eq!((appended.fact_rows, appended.deletion_rows), (3, 1));
        rows.truncate(mark);
        assert_eq!(rows.facts(), 2);
        let mut cut = Batch::new();
        cut.append(&rows, || 1);
        assert_eq!(cut.fact_rows, 2);
    }

    #[test]
    fn the_seq_clock_only_goes_up() {
        let clock = SeqClock::new();
        let first = clock.next();
        assert!(first > 1_700_000_000_000_000 * 4096);
        let mut last = first;
        for _ in 0..10_000 {
            let next = clock.next();
            assert!(next > last);
            last = next;
        }
        let run = clock.reserve(1000);
        assert!(run > last);
        // The next number is past the whole run (and past the clock, 4096 a µs).
        assert!(clock.next() >= run + 1000);
    }

    #[test]
    fn instants_split_into_micros_and_nanos_toward_the_past() {
        let t: Timestamp = "1969-12-31T23:59:59.9999995Z".parse().unwrap();
        assert_eq!(micros_and_nanos(t), (-1, 500));
        assert_eq!(ceil_micros(t), 0);
        let whole: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(ceil_micros(whole), micros_and_nanos(whole).0);
    }
}
