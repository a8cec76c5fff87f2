//! The attribute layout of checkpoint format 2 answers exactly: value ids one byte
//! wide until the 256th distinct value widens them, values no longer deduplicated once
//! an attribute's values are mostly distinct (an email per user), through a
//! checkpoint and a compaction; and a checkpoint of format 1 is refused by number.

use headcount_engine::{CheckpointError, FORMAT_VERSION, Index, Plan, PlanError};
use headcount_model::{Day, Fact, FactKind, Filter, Timestamp, UserKey, Value, WorkspaceId};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde_json::Value as Json;
use std::collections::HashMap;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn start() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().expect("a timestamp")
}

const USERS: u64 = 6000;

/// Per user, per attribute, the writes `(time, order applied, value)`.
type Oracle = HashMap<u64, HashMap<&'static str, Vec<(Timestamp, usize, Option<Value>)>>>;

/// Emails distinct per user (rewritten now and then, sometimes to another user's),
/// numbers with 300 distinct values, datetimes distinct per write, unsets among them.
fn facts(seed: u64) -> Vec<(u64, Fact)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for user in 0..USERS {
        let time = start() + SignedDuration::from_secs(rng.below(40 * 86_400) as i64);
        let values = vec![
            (
                "email".to_string(),
                Some(Value::String(format!("user-{user}@example.com"))),
            ),
            ("n".to_string(), Some(Value::Number(rng.below(300) as f64))),
            (
                "seen".to_string(),
                Some(Value::DateTime(
                    time - SignedDuration::from_micros(rng.below(1 << 40) as i64),
                )),
            ),
        ];
        out.push((
            user,
            Fact {
                time,
                kind: FactKind::Attributes(values),
            },
        ));
    }
    for _ in 0..3000 {
        let user = rng.below(USERS);
        let time = start() + SignedDuration::from_secs(rng.below(40 * 86_400) as i64);
        let (name, value) = match rng.below(5) {
            0 => ("email", None),
            1 => (
                "email",
                Some(Value::String(format!("user-{}@example.com", rng.below(50)))),
            ),
            2 => ("n", None),
            3 => ("n", Some(Value::Number(rng.below(300) as f64))),
            _ => ("seen", Some(Value::DateTime(time))),
        };
        let kind = FactKind::Attributes(vec![(name.to_string(), value)]);
        out.push((user, Fact { time, kind }));
    }
    // Not in time order: columns get several runs and a tail.
    for k in 0..out.len() {
        let other = rng.below(out.len() as u64) as usize;
        out.swap(k, other);
    }
    out
}

fn key(user: u64) -> UserKey {
    UserKey::External(format!("u{user}"))
}

fn build(facts: &[(u64, Fact)]) -> (Index, Oracle, HashMap<u64, Timestamp>) {
    let mut index = Index::new();
    let mut oracle = Oracle::new();
    let mut first = HashMap::new();
    for (order, (user, fact)) in facts.iter().enumerate() {
        index.apply(&key(*user), fact);
        let earliest = first.entry(*user).or_insert(fact.time);
        *earliest = (*earliest).min(fact.time);
        if let FactKind::Attributes(values) = &fact.kind {
            for (name, value) in values {
                let name: &'static str = match name.as_str() {
                    "email" => "email",
                    "n" => "n",
                    _ => "seen",
                };
                oracle
                    .entry(*user)
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push((fact.time, order, value.clone()));
            }
        }
    }
    (index, oracle, first)
}

const FILTERS: &[&str] = &[
    r#"{"attribute": "email", "op": "eq", "value": "user-7@example.com"}"#,
    r#"{"attribute": "email", "op": "ne", "value": "user-7@example.com"}"#,
    r#"{"attribute": "email", "op": "in", "value": ["user-3@example.com", "user-5999@example.com", "nobody"]}"#,
    r#"{"attribute": "email", "op": "not_in", "value": ["user-3@example.com", "user-49@example.com"]}"#,
    r#"{"attribute": "email", "op": "starts_with", "value": "user-12"}"#,
    r#"{"attribute": "email", "op": "not_exists"}"#,
    r#"{"attribute": "n", "op": "eq", "value": 254}"#,
    r#"{"attribute": "n", "op": "eq", "value": 255}"#,
    r#"{"attribute": "n", "op": "gt", "value": 200}"#,
    r#"{"attribute": "n", "op": "ne", "value": 3}"#,
    r#"{"attribute": "n", "op": "exists"}"#,
    r#"{"attribute": "seen", "op": "gt", "value": "2025-01-20T00:00:00Z"}"#,
];

fn plan(filter: &str) -> Plan {
    let json: Json = serde_json::from_str(filter).expect("JSON");
    let filter = Filter::parse(&json, "filter").expect("a filter");
    Plan::compile(&filter, &|id| Err(PlanError::UnknownSegment(id))).expect("a plan")
}

/// Whether `filter` holds for a user whose latest value is `value`.
fn holds(filter: &str, value: Option<&Value>) -> bool {
    let json: Json = serde_json::from_str(filter).expect("JSON");
    let operand = &json["value"];
    let same = |v: &Value, o: &Json| match (v, o) {
        (Value::String(s), Json::String(o)) => s == o,
        (Value::Number(x), Json::Number(o)) => o.as_f64() == Some(*x),
        _ => false,
    };
    match (json["op"].as_str().unwrap_or(""), value) {
        ("exists", v) => v.is_some(),
        ("not_exists", v) => v.is_none(),
        ("eq", Some(v)) => same(v, operand),
        ("ne", v) => v.is_none_or(|v| !same(v, operand)),
        ("in", Some(v)) => operand
            .as_array()
            .is_some_and(|o| o.iter().any(|o| same(v, o))),
        ("not_in", v) => v.is_none_or(|v| {
            !operand
                .as_array()
                .is_some_and(|o| o.iter().any(|o| same(v, o)))
        }),
        ("starts_with", Some(Value::String(s))) => s.starts_with(operand.as_str().unwrap_or("")),
        ("gt", Some(Value::Number(x))) => operand.as_f64().is_some_and(|o| *x > o),
        ("gt", Some(Value::DateTime(t))) => operand
            .as_str()
            .and_then(|o| o.parse::<Timestamp>().ok())
            .is_some_and(|o| *t > o),
        _ => false,
    }
}

fn want(oracle: &Oracle, first: &HashMap<u64, Timestamp>, filter: &str, at: Timestamp) -> u64 {
    let json: Json = serde_json::from_str(filter).expect("JSON");
    let name = json["attribute"].as_str().unwrap_or("");
    let mut n = 0;
    for user in 0..USERS {
        if first.get(&user).is_none_or(|t| *t >= at) {
            continue;
        }
        let latest = oracle
            .get(&user)
            .and_then(|attrs| attrs.get(name))
            .and_then(|writes| {
                writes
                    .iter()
                    .filter(|w| w.0 < at)
                    .max_by_key(|w| (w.0, w.1))
                    .map(|w| w.2.clone())
            })
            .flatten();
        n += u64::from(holds(filter, latest.as_ref()));
    }
    n
}

fn instants() -> Vec<Timestamp> {
    (0..42)
        .step_by(3)
        .map(|d| {
            Day::containing(start(), &TimeZone::UTC)
                .add_days(d)
                .end(&TimeZone::UTC)
        })
        .collect()
}

fn assert_exact(index: &Index, oracle: &Oracle, first: &HashMap<u64, Timestamp>, what: &str) {
    let plans: Vec<Plan> = FILTERS.iter().map(|f| plan(f)).collect();
    let refs: Vec<&Plan> = plans.iter().collect();
    let instants = instants();
    let grid = index.size_grid(&refs, &instants, &TimeZone::UTC, 2);
    for (i, at) in instants.iter().enumerate() {
        for (j, filter) in FILTERS.iter().enumerate() {
            let expected = want(oracle, first, filter, *at);
            assert_eq!(
                index.size(&plans[j], *at, &TimeZone::UTC),
                expected,
                "{what}: {filter} as of {at}"
            );
            assert_eq!(grid[i][j], expected, "{what}, history: {filter} as of {at}");
        }
    }
}

#[test]
fn narrow_ids_and_undeduplicated_values_answer_exactly() {
    let facts = facts(11);
    let (mut index, oracle, first) = build(&facts);
    // Some answers are not trivially zero or everyone.
    let some = want(&oracle, &first, FILTERS[8], instants()[13]);
    assert!(some > 100 && some < 5000, "{some}");
    assert_exact(&index, &oracle, &first, "as applied");
    let bytes = index
        .write_checkpoint(WorkspaceId(1), Vec::new())
        .expect("write");
    let (_, loaded) = Index::read_checkpoint(bytes.as_slice(), bytes.len() as u64).expect("read");
    assert_exact(&loaded, &oracle, &first, "loaded");
    index.compact();
    assert_exact(&index, &oracle, &first, "compacted");
}

#[test]
fn mostly_distinct_values_cost_no_table_and_few_values_one_byte_per_write() {
    let mut index = Index::new();
    let mut narrow = Index::new();
    let mut wide = Index::new();
    for user in 0..20_000u64 {
        let time = start() + SignedDuration::from_secs(user as i64);
        let email = Value::String(format!("user-{user}@example.com"));
        let attrs = |name: &str, value: Value| Fact {
            time,
            kind: FactKind::Attributes(vec![(name.to_string(), Some(value))]),
        };
        index.apply(&key(user), &attrs("email", email));
        narrow.apply(&key(user), &attrs("n", Value::Number((user % 200) as f64)));
        wide.apply(&key(user), &attrs("n", Value::Number((user % 400) as f64)));
    }
    for index in [&mut index, &mut narrow, &mut wide] {
        index.compact();
    }
    // The text (~25 bytes) and 9 bytes per email, no hash table slot (was ≥ 5).
    let values = index.memory().attribute_values;
    assert!(values < 20_000 * 36, "{values} bytes of values");
    let (narrow, wide) = (
        narrow.memory().attribute_writes,
        wide.memory().attribute_writes,
    );
    assert!(narrow < 20_000 * 10, "{narrow} bytes of narrow writes");
    assert!(wide >= 20_000 * 12, "{wide} bytes of wide writes");
}

#[test]
fn a_checkpoint_of_format_version_1_is_refused_by_its_number() {
    // Written by build 7e2dafd (format 1) from `headcount gen --users 40 --seed 7`.
    let bytes = include_bytes!("data/checkpoint-v1.index");
    let err = Index::read_checkpoint(&bytes[..], bytes.len() as u64).err();
    assert_eq!(FORMAT_VERSION, 2);
    assert!(
        matches!(
            err,
            Some(CheckpointError::Version {
                found: 1,
                supported: 2
            })
        ),
        "{err:?}"
    );
}
