//! Checkpoints of the index: a loaded index answers exactly as the one written (sizes,
//! members, history, `version`, `stable_until`, and later facts and deletes land on
//! the same users), and a damaged, truncated or other-version checkpoint is refused,
//! never read into a wrong index, never a panic.

use headcount_engine::{CheckpointError, FORMAT_VERSION, Index, Plan, PlanError};
use headcount_model::{Day, Fact, FactKind, Filter, Timestamp, UserKey, Value, WorkspaceId};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde_json::json;

/// SplitMix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WS: WorkspaceId = WorkspaceId(7);

fn start() -> Timestamp {
    "2024-05-01T00:00:00Z".parse().expect("a timestamp")
}

fn key(rng: &mut Rng, n: u64) -> UserKey {
    let id = rng.below(n);
    match id % 5 {
        0 => UserKey::Alias {
            name: format!("alias-{id}"),
            label: "email".into(),
        },
        1 => UserKey::Braze(format!("b{id}")),
        _ => UserKey::External(format!("user-{id}")),
    }
}

/// A value of every kind, nulls (unsets) included.
fn value(rng: &mut Rng) -> Option<Value> {
    Some(match rng.below(8) {
        0 => return None,
        1 => Value::String(rng.pick(&["gold", "silver", "", "Gold", "été"]).to_string()),
        2 => Value::Number(*rng.pick(&[0.0, -0.0, 1.5, -3.0, 1e-9, 42.0])),
        3 => Value::Bool(rng.below(2) == 1),
        4 | 5 => Value::DateTime(
            start() + SignedDuration::from_nanos(rng.below(40 * 86_400_000_000_000) as i64 + 7),
        ),
        _ => Value::Array(
            (0..rng.below(3))
                .map(|_| rng.pick(&["red", "green", "blue"]).to_string())
                .collect(),
        ),
    })
}

fn fact(rng: &mut Rng) -> Fact {
    let time = start() + SignedDuration::from_micros(rng.below(30 * 86_400_000_000) as i64);
    let kind = match rng.below(4) {
        0 => FactKind::Event {
            name: rng.pick(&["login", "view", "click"]).to_string(),
            detail: None,
        },
        1 => FactKind::Purchase {
            product: rng.pick(&["p1", "p2", "p3"]).to_string(),
            detail: None,
        },
        _ => FactKind::Attributes(
            (0..1 + rng.below(2))
                .map(|_| {
                    let name = rng.pick(&["plan", "score", "renews", "tags", "vip"]);
                    (name.to_string(), value(rng))
                })
                .collect(),
        ),
    };
    Fact { time, kind }
}

/// An index of `users` possible users and `facts` facts in random time order, some
/// users deleted (and some of those back later), compacted half-way so that columns
/// hold runs and unsorted tails both.
fn build(seed: u64, users: u64, facts: usize) -> Index {
    let mut rng = Rng(seed);
    let mut index = Index::new();
    for i in 0..facts {
        let user = key(&mut rng, users);
        if rng.below(50) == 0 {
            index.delete_user(&user);
        } else {
            index.apply(&user, &fact(&mut rng));
        }
        if i == facts / 2 {
            index.compact();
        }
    }
    index.set_position(seed * 1000 + 17);
    index
}

fn checkpoint(index: &Index) -> Vec<u8> {
    index
        .write_checkpoint(WS, Vec::new())
        .expect("write to memory")
}

fn load(bytes: &[u8]) -> Result<Index, CheckpointError> {
    let (header, index) = Index::read_checkpoint(bytes, bytes.len() as u64)?;
    assert_eq!(header.workspace, WS);
    assert_eq!(header.position, index.position());
    Ok(index)
}

fn plans() -> Vec<Plan> {
    let filters = [
        json!({"event": "login", "op": "gte", "value": 1, "within_days": 7}),
        json!({"event": "view", "op": "gte", "value": 2}),
        json!({"purchase": "*", "op": "gte", "value": 1}),
        json!({"purchase": "p2", "op": "eq", "value": 0, "within_days": 3}),
        json!({"attribute": "plan", "op": "eq", "value": "gold"}),
        json!({"attribute": "plan", "op": "not_exists"}),
        json!({"attribute": "plan", "op": "matches", "value": "^[Gg]"}),
        json!({"attribute": "score", "op": "gt", "value": 0}),
        json!({"attribute": "score", "op": "eq", "value": 0}),
        json!({"attribute": "vip", "op": "eq", "value": true}),
        json!({"attribute": "renews", "op": "within_last_days", "value": 3}),
        json!({"attribute": "renews", "op": "more_than_days_ago", "value": 2}),
        json!({"attribute": "tags", "op": "contains", "value": "red"}),
        json!({"random_bucket": {"op": "lt", "value": 5000}}),
        json!({"not": {"any": [
            {"event": "click", "op": "gte", "value": 1},
            {"attribute": "vip", "op": "exists"}
        ]}}),
    ];
    filters
        .iter()
        .map(|f| {
            let filter = Filter::parse(f, "filter").expect("a valid filter");
            Plan::compile(&filter, &|id| Err(PlanError::UnknownSegment(id))).expect("a plan")
        })
        .collect()
}

/// Asserts that two indexes answer every question alike.
fn assert_same(a: &Index, b: &Index) {
    assert_same_sizes(a, b);
    let tz = TimeZone::get("Europe/Paris").expect("a zone");
    let plans = plans();
    for hours in [0, 100, 333, 500, 719, 2000] {
        let at = start() + SignedDuration::from_hours(hours) + SignedDuration::from_nanos(1);
        assert_eq!(a.stable_until(at, &tz), b.stable_until(at, &tz));
        for plan in &plans {
            assert_eq!(a.members(plan, at, &tz), b.members(plan, at, &tz));
        }
    }
}

/// Asserts that two indexes have the same counts, and the same sizes of every plan
/// on every day.
fn assert_same_sizes(a: &Index, b: &Index) {
    let tz = TimeZone::get("Europe/Paris").expect("a zone");
    assert_eq!(a.user_count(), b.user_count());
    assert_eq!(a.event_count(), b.event_count());
    assert_eq!(a.version(), b.version());
    assert_eq!(a.position(), b.position());
    let plans = plans();
    let refs: Vec<&Plan> = plans.iter().collect();
    let days: Vec<Timestamp> = (0..34)
        .map(|d| Day::containing(start(), &tz).add_days(d).end(&tz))
        .collect();
    assert_eq!(
        a.size_grid(&refs, &days, &tz, 2),
        b.size_grid(&refs, &days, &tz, 2)
    );
}

#[test]
fn a_loaded_index_answers_exactly_as_the_original() {
    for seed in 1..=6 {
        let mut original = build(seed, 300, 6000);
        let bytes = checkpoint(&original);
        let mut loaded = load(&bytes).expect("a good checkpoint loads");
        assert_same(&original, &loaded);
        // Writing the loaded index gives the very same bytes.
        assert_eq!(checkpoint(&loaded), bytes, "seed {seed}");
        // Later facts and deletes find the same users in both.
        let mut rng = Rng(seed + 100);
        for _ in 0..3000 {
            let user = key(&mut rng, 400);
            if rng.below(20) == 0 {
                assert_eq!(original.delete_user(&user), loaded.delete_user(&user));
            } else {
                let fact = fact(&mut rng);
                original.apply(&user, &fact);
                loaded.apply(&user, &fact);
            }
        }
        assert_same(&original, &loaded);
        original.compact();
        loaded.compact();
        assert_same(&original, &loaded);
    }
}

#[test]
fn an_empty_index_round_trips() {
    let empty = Index::new();
    let loaded = load(&checkpoint(&empty)).expect("loads");
    assert_same(&empty, &loaded);
}

#[test]
fn columns_over_several_slices_round_trip() {
    // More users than one slice holds (2^18), each with a fact or two.
    let mut index = Index::new();
    let mut rng = Rng(99);
    for u in 0..600_000u64 {
        let user = UserKey::External(format!("u{u}"));
        let mut fact = fact(&mut rng);
        if u % 3 == 0 {
            fact.kind = FactKind::Event {
                name: "login".into(),
                detail: None,
            };
        }
        index.apply(&user, &fact);
    }
    for u in (0..600_000u64).step_by(97) {
        index.delete_user(&UserKey::External(format!("u{u}")));
    }
    let loaded = load(&checkpoint(&index)).expect("loads");
    assert_eq!(loaded.user_count(), 600_000 - 600_000usize.div_ceil(97));
    assert_same_sizes(&index, &loaded);
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let bytes = checkpoint(&build(3, 100, 1500));
    let mut rng = Rng(5);
    let mut positions: Vec<usize> = (0..64).chain(bytes.len() - 8..bytes.len()).collect();
    positions.extend((0..300).map(|_| rng.below(bytes.len() as u64) as usize));
    for position in positions {
        let mut damaged = bytes.clone();
        damaged[position] ^= 1 << rng.below(8);
        assert!(
            load(&damaged).is_err(),
            "a flip at byte {position} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn a_truncated_checkpoint_is_refused() {
    let bytes = checkpoint(&build(4, 100, 1500));
    let mut rng = Rng(6);
    let mut lengths: Vec<usize> = (0..40).chain(bytes.len() - 40..bytes.len()).collect();
    lengths.extend((0..200).map(|_| rng.below(bytes.len() as u64) as usize));
    for len in lengths {
        let err = load(&bytes[..len]).err();
        assert!(
            matches!(
                err,
                Some(
                    CheckpointError::Truncated
                        | CheckpointError::NotACheckpoint
                        | CheckpointError::Corrupt(_)
                )
            ),
            "{len} of {} bytes: {err:?}",
            bytes.len()
        );
    }
    // Bytes after the checksum are refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(load(&longer).is_err());
}

#[test]
fn another_format_version_is_refused_by_its_number() {
    let mut bytes = checkpoint(&build(5, 50, 500));
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = load(&bytes).err();
    assert!(
        matches!(err, Some(CheckpointError::Version { found, supported })
            if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{err:?}"
    );
    let err = load(b"SQLite format 3\0 and then some").err();
    assert!(
        matches!(err, Some(CheckpointError::NotACheckpoint)),
        "{err:?}"
    );
}
