//! The binary format of a chunk of facts: many facts of one workspace in one blob,
//! written in one append and read back in one scan.
//!
//! Storing facts by the chunk rather than one row each makes appends and loads cost a
//! few bytes of encoding per fact instead of a B-tree insertion, and keeps users out of
//! any lookup table: a chunk carries the keys of its users.
//!
//! Layout (integers are LEB128 varints unless noted; `str` is a varint length then
//! UTF-8 bytes):
//!
//! ```text
//! u8 version (1)
//! varint n_users, then per user: u8 kind (0 external, 1 alias, 2 braze), str k1, [str k2 if alias]
//! varint n_names, then str per name (event names, products, attribute names)
//! varint n_facts, then i64 LE base time (µs), then per fact:
//!   varint user, varint zigzag(time − previous time), u8 kind, and
//!   kind 0 (attributes): varint n, then per attribute: varint name, value
//!   kind 1 (event) / 2 (purchase): varint name, varint detail_len+1 (0: none), detail bytes
//!   kind 3 (deletion): nothing more
//! value := u8 tag: 0 null | 1 string str | 2 number f64 LE | 3 false | 4 true
//!        | 5 datetime i64 LE seconds, varint nanoseconds | 6 array varint n, str…
//! ```
//!
//! Kind 3 came after the first chunks were written; chunks without it read as before,
//! and a data directory holding it is refused by older binaries through the schema
//! version (the migration that added the purge table).

use headcount_model::{Fact, FactKind, Timestamp, UserKey, Value};
use std::collections::{HashMap, HashSet};

const VERSION: u8 = 1;

/// Why a chunk could not be read.
#[derive(Debug, thiserror::Error)]
#[error("corrupt fact chunk: {0}")]
pub struct ChunkError(&'static str);

/// Facts encoded as one chunk, ready to be appended: encoding is most of the CPU an
/// append costs and needs no store, so bulk writers do it on their parsing threads.
#[derive(Debug, Clone)]
pub struct EncodedFacts {
    facts: usize,
    deletions: usize,
    data: Vec<u8>,
}

impl EncodedFacts {
    /// Encodes `facts`, in order.
    pub fn encode(facts: &[(UserKey, Fact)]) -> EncodedFacts {
        EncodedFacts {
            facts: facts.len(),
            deletions: facts
                .iter()
                .filter(|(_, f)| matches!(f.kind, FactKind::Deletion))
                .count(),
            data: encode(facts),
        }
    }

    /// The number of deletion entries among the facts: a chunk holding any leaves
    /// earlier facts of its users to purge.
    pub fn deletions(&self) -> usize {
        self.deletions
    }

    /// The number of facts.
    pub fn len(&self) -> usize {
        self.facts
    }

    /// Whether there are no facts.
    pub fn is_empty(&self) -> bool {
        self.facts == 0
    }

    /// The chunk's bytes, as [`decode`] reads them.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

/// A fact to encode, borrowed: any fact, or an event of the common shape given by its
/// parts (what an import reads from a line without building a [`Fact`]).
#[derive(Debug, Clone, Copy)]
pub enum FactRef<'a> {
    /// Any fact of a user.
    Fact(&'a UserKey, &'a Fact),
    /// An event without detail of the user of an external id, already at the
    /// microsecond.
    Event {
        /// The user's external id.
        external_id: &'a str,
        /// The event's name.
        name: &'a str,
        /// When it happened.
        time: Timestamp,
    },
}

impl FactRef<'_> {
    fn time(&self) -> Timestamp {
        match self {
            FactRef::Fact(_, fact) => fact.time,
            FactRef::Event { time, .. } => *time,
        }
    }
}

/// A user, borrowed: the key of the encoder's table of users.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum UserRef<'a> {
    External(&'a str),
    Alias(&'a str, &'a str),
    Braze(&'a str),
}

impl<'a> UserRef<'a> {
    fn of(user: &'a UserKey) -> UserRef<'a> {
        match user {
            UserKey::External(id) => UserRef::External(id),
            UserKey::Alias { name, label } => UserRef::Alias(name, label),
            UserKey::Braze(id) => UserRef::Braze(id),
        }
    }
}

impl EncodedFacts {
    /// Encodes borrowed facts, in order: the same chunk as [`EncodedFacts::encode`] of
    /// the same facts.
    pub fn encode_refs(facts: &[FactRef<'_>]) -> EncodedFacts {
        EncodedFacts {
            facts: facts.len(),
            deletions: facts
                .iter()
                .filter(
                    |f| matches!(f, FactRef::Fact(_, f) if matches!(f.kind, FactKind::Deletion)),
                )
                .count(),
            data: encode_refs(facts),
        }
    }
}

/// Encodes facts into a chunk.
pub fn encode(facts: &[(UserKey, Fact)]) -> Vec<u8> {
    let refs: Vec<FactRef<'_>> = facts.iter().map(|(u, f)| FactRef::Fact(u, f)).collect();
    encode_refs(&refs)
}

/// Encodes borrowed facts into a chunk.
fn encode_refs(facts: &[FactRef<'_>]) -> Vec<u8> {
    let mut users: HashMap<UserRef<'_>, u64> = HashMap::new();
    let mut user_list: Vec<UserRef<'_>> = Vec::new();
    let mut names: HashMap<&str, u64> = HashMap::new();
    let mut name_list: Vec<&str> = Vec::new();
    let mut body = Vec::with_capacity(facts.len() * 12);
    let base = facts.first().map_or(0, |f| f.time().as_microsecond());
    let mut previous = base;
    // The facts of a user mostly come together (a body's, a line's): the previous
    // fact's user is checked before the table.
    let mut last: Option<(UserRef<'_>, u64)> = None;
    for fact in facts {
        let user = match fact {
            FactRef::Fact(user, _) => UserRef::of(user),
            FactRef::Event { external_id, .. } => UserRef::External(external_id),
        };
        let u = match last {
            Some((previous, u)) if previous == user => u,
            _ => {
                let next = users.len() as u64;
                let u = *users.entry(user).or_insert_with(|| {
                    user_list.push(user);
                    next
                });
                last = Some((user, u));
                u
            }
        };
        varint(&mut body, u);
        let time = fact.time().as_microsecond();
        varint(&mut body, zigzag(time - previous));
        previous = time;
        let fact = match fact {
            FactRef::Fact(_, fact) => fact,
            FactRef::Event { name, .. } => {
                body.push(1);
                let id = intern_name(name, &mut names, &mut name_list);
                varint(&mut body, id);
                varint(&mut body, 0);
                continue;
            }
        };
        match &fact.kind {
            FactKind::Attributes(values) => {
                body.push(0);
                varint(&mut body, values.len() as u64);
                for (key, value) in values {
                    let id = intern_name(key, &mut names, &mut name_list);
                    varint(&mut body, id);
                    encode_value(&mut body, value.as_ref());
                }
            }
            FactKind::Event { name, detail }
            | FactKind::Purchase {
                product: name,
                detail,
            } => {
                body.push(if matches!(fact.kind, FactKind::Event { .. }) {
                    1
                } else {
                    2
                });
                let id = intern_name(name, &mut names, &mut name_list);
                varint(&mut body, id);
                match detail {
                    None => varint(&mut body, 0),
                    Some(d) => {
                        varint(&mut body, d.len() as u64 + 1);
                        body.extend_from_slice(d.as_bytes());
                    }
                }
            }
            FactKind::Deletion => body.push(3),
        }
    }
    let mut out = Vec::with_capacity(body.len() + 64 + user_list.len() * 16);
    out.push(VERSION);
    varint(&mut out, user_list.len() as u64);
    for user in user_list {
        match user {
            UserRef::External(id) => {
                out.push(0);
                string(&mut out, id);
            }
            UserRef::Alias(name, label) => {
                out.push(1);
                string(&mut out, name);
                string(&mut out, label);
            }
            UserRef::Braze(id) => {
                out.push(2);
                string(&mut out, id);
            }
        }
    }
    varint(&mut out, name_list.len() as u64);
    for name in name_list {
        string(&mut out, name);
    }
    varint(&mut out, facts.len() as u64);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn intern_name<'a>(
    name: &'a str,
    names: &mut HashMap<&'a str, u64>,
    list: &mut Vec<&'a str>,
) -> u64 {
    let next = names.len() as u64;
    *names.entry(name).or_insert_with(|| {
        list.push(name);
        next
    })
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn encode_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.push(0),
        Some(Value::String(s)) => {
            out.push(1);
            string(out, s);
        }
        Some(Value::Number(f)) => {
            out.push(2);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Some(Value::Bool(false)) => out.push(3),
        Some(Value::Bool(true)) => out.push(4),
        Some(Value::DateTime(t)) => {
            // Exact to the nanosecond: a datetime value is compared with operands as
            // written, unlike fact times, which are kept to the microsecond.
            out.push(5);
            out.extend_from_slice(&t.as_second().to_le_bytes());
            // jiff gives both parts the sign of the instant.
            varint(out, zigzag(i64::from(t.subsec_nanosecond())));
        }
        Some(Value::Array(items)) => {
            out.push(6);
            varint(out, items.len() as u64);
            for item in items {
                string(out, item);
            }
        }
    }
}

/// A cursor over a chunk's bytes; every read checks its bounds.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self.bytes.get(self.at).ok_or(ChunkError("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(ChunkError("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ChunkError> {
        let end = self
            .at
            .checked_add(len)
            .ok_or(ChunkError("length overflow"))?;
        let bytes = self
            .bytes
            .get(self.at..end)
            .ok_or(ChunkError("truncated"))?;
        self.at = end;
        Ok(bytes)
    }

    fn eight(&mut self) -> Result<[u8; 8], ChunkError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(out)
    }

    fn string(&mut self) -> Result<String, ChunkError> {
        let len = usize::try_from(self.varint()?).map_err(|_| ChunkError("length overflow"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ChunkError("invalid UTF-8"))
    }

    fn count(&mut self) -> Result<usize, ChunkError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ChunkError("count overflow"))?;
        // Every counted item takes at least one byte: a larger count is corrupt, and
        // refusing it keeps a corrupt chunk from asking for a huge allocation.
        if n > self.bytes.len() - self.at.min(self.bytes.len()) {
            return Err(ChunkError("count beyond the chunk"));
        }
        Ok(n)
    }
}

/// The users named in a chunk, read without decoding its facts.
pub fn users(bytes: &[u8]) -> Result<Vec<UserKey>, ChunkError> {
    let mut r = Reader { bytes, at: 0 };
    read_users(&mut r)
}

fn read_users(r: &mut Reader<'_>) -> Result<Vec<UserKey>, ChunkError> {
    if r.byte()? != VERSION {
        return Err(ChunkError("unknown version"));
    }
    let n = r.count()?;
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        users.push(match r.byte()? {
            0 => UserKey::External(r.string()?),
            1 => UserKey::Alias {
                name: r.string()?,
                label: r.string()?,
            },
            2 => UserKey::Braze(r.string()?),
            _ => return Err(ChunkError("unknown user kind")),
        });
    }
    Ok(users)
}

fn read_value(r: &mut Reader<'_>) -> Result<Option<Value>, ChunkError> {
    Ok(Some(match r.byte()? {
        0 => return Ok(None),
        1 => Value::String(r.string()?),
        2 => {
            // Ingestion reads numbers from JSON, which has no NaN nor infinity.
            let number = f64::from_le_bytes(r.eight()?);
            if !number.is_finite() {
                return Err(ChunkError("a number value that is not finite"));
            }
            Value::Number(number)
        }
        3 => Value::Bool(false),
        4 => Value::Bool(true),
        5 => {
            let seconds = i64::from_le_bytes(r.eight()?);
            let nanos = i32::try_from(unzigzag(r.varint()?))
                .map_err(|_| ChunkError("nanoseconds out of range"))?;
            Value::DateTime(
                Timestamp::new(seconds, nanos).map_err(|_| ChunkError("datetime out of range"))?,
            )
        }
        6 => {
            let n = r.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(r.string()?);
            }
            Value::Array(items)
        }
        _ => return Err(ChunkError("unknown value tag")),
    }))
}

/// Decodes a chunk, calling `visit` with each fact in the order they were encoded.
pub fn decode(bytes: &[u8], visit: &mut dyn FnMut(&UserKey, Fact)) -> Result<(), ChunkError> {
    decode_with(bytes, &mut |users, i, fact| visit(&users[i], fact)).map(|_| ())
}

/// [`decode`] that answers the chunk's users and gives each fact with its user's
/// position among them (each user decoded once, whoever owns the facts next).
///
/// # Errors
/// A [`ChunkError`] for a chunk that does not decode; facts before the fault may have
/// been visited.
pub fn decode_indexed(
    bytes: &[u8],
    visit: &mut dyn FnMut(usize, Fact),
) -> Result<Vec<UserKey>, ChunkError> {
    decode_with(bytes, &mut |_, i, fact| visit(i, fact))
}

/// Decodes a chunk: `visit` gets the chunk's users and each fact with its user's
/// position among them (always in range); answers the users.
///
/// # Errors
/// As [`decode_indexed`].
pub fn decode_with(
    bytes: &[u8],
    visit: &mut dyn FnMut(&[UserKey], usize, Fact),
) -> Result<Vec<UserKey>, ChunkError> {
    let mut r = Reader { bytes, at: 0 };
    let users = read_users(&mut r)?;
    let n_names = r.count()?;
    let mut names = Vec::with_capacity(n_names);
    for _ in 0..n_names {
        names.push(r.string()?);
    }
    let name = |i: u64| {
        names
            .get(i as usize)
            .cloned()
            .ok_or(ChunkError("unknown name"))
    };
    let n_facts = r.count()?;
    let mut time = i64::from_le_bytes(r.eight()?);
    for _ in 0..n_facts {
        let user = r.varint()? as usize;
        if user >= users.len() {
            return Err(ChunkError("unknown user"));
        }
        time = time
            .checked_add(unzigzag(r.varint()?))
            .ok_or(ChunkError("time overflow"))?;
        let at = Timestamp::from_microsecond(time).map_err(|_| ChunkError("time out of range"))?;
        let kind = match r.byte()? {
            0 => {
                let n = r.count()?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = name(r.varint()?)?;
                    values.push((key, read_value(&mut r)?));
                }
                FactKind::Attributes(values)
            }
            k @ (1 | 2) => {
                let label = name(r.varint()?)?;
                let detail = match r.varint()? {
                    0 => None,
                    len => {
                        let len =
                            usize::try_from(len - 1).map_err(|_| ChunkError("length overflow"))?;
                        let bytes = r.take(len)?;
                        Some(
                            String::from_utf8(bytes.to_vec())
                                .map_err(|_| ChunkError("invalid UTF-8"))?,
                        )
                    }
                };
                if k == 1 {
                    FactKind::Event {
                        name: label,
                        detail,
                    }
                } else {
                    FactKind::Purchase {
                        product: label,
                        detail,
                    }
                }
            }
            3 => FactKind::Deletion,
            _ => return Err(ChunkError("unknown fact kind")),
        };
        visit(&users, user, Fact { time: at, kind });
    }
    if r.at != bytes.len() {
        return Err(ChunkError("trailing bytes"));
    }
    Ok(users)
}

/// The users a chunk's deletion entries delete.
pub fn deleted_users(bytes: &[u8]) -> Result<HashSet<UserKey>, ChunkError> {
    let mut out = HashSet::new();
    decode(bytes, &mut |user, fact| {
        if matches!(fact.kind, FactKind::Deletion) {
            out.insert(user.clone());
        }
    })?;
    Ok(out)
}

/// A chunk without the facts that deletions made unreachable: the facts, other than
/// deletion entries, of users for which `dead` holds (deleted by a later chunk) or
/// that a deletion entry of their user follows in this chunk. `None` when nothing is
/// removed; otherwise the new fact count and bytes (possibly a chunk of no facts).
///
/// Positions are read from the chunk itself, so purging a chunk again, or after
/// another purge rewrote it, removes nothing more than it should.
pub fn purge(
    bytes: &[u8],
    dead: &dyn Fn(&UserKey) -> bool,
) -> Result<Option<(usize, Vec<u8>)>, ChunkError> {
    let mut all = Vec::new();
    decode(bytes, &mut |user, fact| all.push((user.clone(), fact)))?;
    let mut last_deletion: HashMap<&UserKey, usize> = HashMap::new();
    for (at, (user, fact)) in all.iter().enumerate() {
        if matches!(fact.kind, FactKind::Deletion) {
            last_deletion.insert(user, at);
        }
    }
    let gone = |at: usize, user: &UserKey, fact: &Fact| {
        !matches!(fact.kind, FactKind::Deletion)
            && (dead(user) || last_deletion.get(user).is_some_and(|d| at < *d))
    };
    let removed: Vec<bool> = all
        .iter()
        .enumerate()
        .map(|(at, (user, fact))| gone(at, user, fact))
        .collect();
    if !removed.contains(&true) {
        return Ok(None);
    }
    let kept: Vec<(UserKey, Fact)> = all
        .into_iter()
        .zip(removed)
        .filter(|(_, gone)| !gone)
        .map(|(fact, _)| fact)
        .collect();
    Ok(Some((kept.len(), encode(&kept))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sample() -> Vec<(UserKey, Fact)> {
        let a = UserKey::External("ada".into());
        let b = UserKey::Alias {
            name: "b@x.io".into(),
            label: "email".into(),
        };
        vec![
            (
                a.clone(),
                Fact {
                    time: ts("2024-01-02T00:00:00.000001Z"),
                    kind: FactKind::Attributes(vec![
                        ("n".into(), Some(Value::Number(-1.5))),
                        ("s".into(), Some(Value::String("été".into()))),
                        ("t".into(), Some(Value::Bool(true))),
                        ("f".into(), Some(Value::Bool(false))),
                        (
                            "d".into(),
                            Some(Value::DateTime(ts("1969-07-20T20:17:40Z"))),
                        ),
                        (
                            "a".into(),
                            Some(Value::Array(vec!["x".into(), String::new()])),
                        ),
                        ("gone".into(), None),
                    ]),
                },
            ),
            (
                b.clone(),
                Fact {
                    time: ts("2023-12-31T23:59:59Z"),
                    kind: FactKind::Event {
                        name: "login".into(),
                        detail: None,
                    },
                },
            ),
            (
                a,
                Fact {
                    time: ts("2024-01-05T00:00:00Z"),
                    kind: FactKind::Purchase {
                        product: "sku".into(),
                        detail: Some("{\"price\":1}".into()),
                    },
                },
            ),
            (
                b.clone(),
                Fact {
                    time: ts("2024-01-05T00:00:00Z"),
                    kind: FactKind::Attributes(vec![]),
                },
            ),
            (
                b,
                Fact {
                    time: ts("2024-01-06T00:00:00Z"),
                    kind: FactKind::Deletion,
                },
            ),
        ]
    }

    #[test]
    fn chunks_round_trip_every_kind_of_fact() {
        let facts = sample();
        let bytes = encode(&facts);
        let mut back = Vec::new();
        decode(&bytes, &mut |u, f| back.push((u.clone(), f))).unwrap();
        assert_eq!(back, facts);
        assert_eq!(users(&bytes).unwrap().len(), 2);
        assert_eq!(EncodedFacts::encode(&facts).deletions(), 1);
    }

    #[test]
    fn purging_drops_facts_before_a_deletion_and_of_users_deleted_later() {
        let facts = sample();
        let bytes = encode(&facts);
        let a = facts[0].0.clone();
        let b = facts[1].0.clone();
        assert_eq!(deleted_users(&bytes).unwrap(), HashSet::from([b.clone()]));
        let read = |data: &[u8]| {
            let mut back = Vec::new();
            decode(data, &mut |u, f| back.push((u.clone(), f))).unwrap();
            back
        };
        // b's facts at 1 and 3 come before its deletion at 4; the deletion stays.
        let (n, data) = purge(&bytes, &|_| false).unwrap().unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            read(&data),
            vec![facts[0].clone(), facts[2].clone(), facts[4].clone()]
        );
        assert!(purge(&data, &|_| false).unwrap().is_none(), "idempotent");
        // a, deleted by a later chunk, loses everything here.
        let (n, data) = purge(&data, &|u| *u == a).unwrap().unwrap();
        assert_eq!((n, read(&data)), (1, vec![facts[4].clone()]));
        // A fact after the deletion is a new user's: kept.
        let mut after = facts.clone();
        after.push((b.clone(), facts[1].1.clone()));
        let (_, data) = purge(&encode(&after), &|_| false).unwrap().unwrap();
        assert_eq!(read(&data).last(), Some(&(b, facts[1].1.clone())));
        // A chunk purged down to nothing still reads.
        let (n, data) = purge(&encode(&facts[..4]), &|_| true).unwrap().unwrap();
        assert_eq!(n, 0);
        assert!(read(&data).is_empty());
    }

    #[test]
    fn chunks_written_before_deletion_entries_still_read() {
        // A version-1 chunk of one event, as the first release wrote it.
        let old = [
            1u8, 1, 0, 1, b'u', 1, 1, b'e', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
        ];
        let mut back = Vec::new();
        decode(&old, &mut |u, f| back.push((u.clone(), f))).unwrap();
        assert_eq!(
            back,
            vec![(
                UserKey::External("u".into()),
                Fact {
                    time: Timestamp::UNIX_EPOCH,
                    kind: FactKind::Event {
                        name: "e".into(),
                        detail: None
                    }
                }
            )]
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], &mut |_, _| {}).is_err(),
                "truncated at {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            let _ = decode(&bad, &mut |_, _| {});
        }
    }

    #[test]
    fn events_given_by_their_parts_encode_as_the_same_facts() {
        let mut facts = sample();
        for (user, at) in [
            ("ada", "2024-01-06T00:00:00Z"),
            ("zoe", "2024-01-01T00:00:00Z"),
        ] {
            let kind = FactKind::Event {
                name: "login".into(),
                detail: None,
            };
            let fact = Fact { time: ts(at), kind };
            facts.push((UserKey::External(user.into()), fact));
        }
        let mut refs = Vec::new();
        for (user, fact) in &facts {
            match (user, &fact.kind) {
                (UserKey::External(id), FactKind::Event { name, detail: None }) => {
                    refs.push(FactRef::Event {
                        external_id: id,
                        name,
                        time: fact.time,
                    })
                }
                _ => refs.push(FactRef::Fact(user, fact)),
            }
        }
        assert!(
            refs.iter().any(|r| matches!(r, FactRef::Event { .. })),
            "the sample has plain events"
        );
        let by_parts = EncodedFacts::encode_refs(&refs);
        let whole = EncodedFacts::encode(&facts);
        assert_eq!(by_parts.bytes(), whole.bytes());
        assert_eq!(
            (by_parts.len(), by_parts.deletions()),
            (whole.len(), whole.deletions())
        );
        let mut back = Vec::new();
        decode(by_parts.bytes(), &mut |u, f| back.push((u.clone(), f))).unwrap();
        assert_eq!(back, facts);
    }
}
