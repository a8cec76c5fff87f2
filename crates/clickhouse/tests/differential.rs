//! Exactness of the ClickHouse engine: the random workspaces and filters of the
//! engine's differential test (every operator and node, three time zones across the
//! 2024 daylight-saving changes, facts on local midnights and a microsecond either
//! side, unsets, kind changes, deletions) are loaded into a memory [`Index`] and into
//! a two-shard ClickHouse cluster (`Distributed` tables), and every segment's size
//! must be the same on every day of the range and at every probe instant (mid-day,
//! exact midnights, exact fact times, below the microsecond): 0 mismatches.
//!
//! `HEADCOUNT_CH_DIFF_CASES=N` runs seeds `1..=N` (default 12, four per time zone);
//! a few more seeds also run on one server without a cluster (plain tables).

// One generator for both differential tests: the engine's, included from its tests.
#[path = "../../engine/tests/generator/mod.rs"]
mod generator;

use generator::{Case, Op, generate};
use headcount_clickhouse::testing::{CLUSTER, Cluster};
use headcount_clickhouse::{Batch, ClickHouse, Config};
use headcount_engine::{Index, Plan, PlanError};
use headcount_model::filter::AttrOp;
use headcount_model::{Day, Fact, FactKind, Filter, SegmentId, Timestamp, UserKey, Value};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_CASES: u64 = 12;

fn start() -> (Cluster, ClickHouse) {
    start_with(2, Some(CLUSTER))
}

fn start_with(shards: usize, cluster_name: Option<&str>) -> (Cluster, ClickHouse) {
    let cluster = match Cluster::start(shards) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let ch = ClickHouse::new(&Config {
        urls: cluster.urls(),
        database: "headcount_diff".into(),
        cluster: cluster_name.map(str::to_string),
    })
    .expect("config");
    ch.init().expect("init");
    // Idempotent.
    ch.init().expect("init again");
    (cluster, ch)
}

fn load(ch: &ClickHouse, case: &Case) -> Index {
    let mut index = Index::new();
    let mut batch = Batch::new();
    let workspace = case.seed as i64;
    for (seq, op) in (1u64..).zip(&case.ops) {
        match op {
            Op::Apply(user, fact) => {
                index.apply(user, fact);
                batch.push(workspace, user, fact, seq);
            }
            Op::Delete(user) => {
                index.delete_user(user);
                let fact = Fact {
                    time: Timestamp::UNIX_EPOCH,
                    kind: FactKind::Deletion,
                };
                batch.push(workspace, user, &fact, seq);
            }
            Op::Compact => index.compact(),
        }
    }
    ch.insert(&batch).expect("insert");
    index
}

/// Fails with the count and the first ten of `mismatches`, if any.
fn assert_none(mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{} mismatches, the first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
}

/// Returns the mismatches of one case, described.
fn check(ch: &ClickHouse, case: &Case) -> Vec<String> {
    let index = load(ch, case);
    let segments: HashMap<SegmentId, Arc<Filter>> = case
        .segments
        .iter()
        .map(|(id, f)| (*id, Arc::new(f.clone())))
        .collect();
    let resolve_plan = |id: SegmentId| {
        segments
            .get(&id)
            .cloned()
            .ok_or(PlanError::UnknownSegment(id))
    };
    let resolve = |id: SegmentId| segments.get(&id).cloned();
    let plans: Vec<Plan> = case
        .segments
        .iter()
        .map(|(_, f)| Plan::compile(f, &resolve_plan).expect("plan"))
        .collect();
    let filters: Vec<&Filter> = case.segments.iter().map(|(_, f)| f).collect();
    let mut instants: Vec<Timestamp> = case.days.iter().map(|d| d.end(&case.tz)).collect();
    instants.extend(case.instants.iter().copied());
    let got = ch
        .size_grid(case.seed as i64, &filters, &resolve, &instants, &case.tz)
        .expect("size grid");
    let mut mismatches = Vec::new();
    // A query of one instant is written without the join of instants: a few alone.
    for at in &case.member_instants {
        let alone = ch
            .size_grid(case.seed as i64, &filters, &resolve, &[*at], &case.tz)
            .expect("size grid");
        for (j, plan) in plans.iter().enumerate() {
            let expected = index.size(plan, *at, &case.tz);
            if alone[0][j] != expected {
                mismatches.push(format!(
                    "seed {}, segment {j} {:?}, as of {at} alone: memory {expected}, ClickHouse {}",
                    case.seed, filters[j], alone[0][j]
                ));
            }
        }
    }
    for (i, at) in instants.iter().enumerate() {
        for (j, plan) in plans.iter().enumerate() {
            let expected = index.size(plan, *at, &case.tz);
            if got[i][j] != expected {
                mismatches.push(format!(
                    "seed {} ({}), segment {j} {:?}, as of {at}: memory {expected}, ClickHouse {}",
                    case.seed,
                    case.tz.iana_name().unwrap_or("?"),
                    filters[j],
                    got[i][j]
                ));
            }
        }
    }
    mismatches
}

#[test]
fn clickhouse_sizes_equal_the_memory_engine_on_every_day_and_instant() {
    let (_cluster, ch) = start();
    let cases = std::env::var("HEADCOUNT_CH_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut mismatches = Vec::new();
    let mut probes = 0;
    let started = Instant::now();
    for seed in 1..=cases {
        let case = generate(seed);
        probes += (case.days.len() + case.instants.len()) * case.segments.len();
        mismatches.extend(check(&ch, &case));
    }
    eprintln!(
        "{cases} cases, {probes} (segment, instant) sizes compared in {:?}",
        started.elapsed()
    );
    assert_none(&mismatches);
}

/// Writes of one attribute at the same time: within one fact the last of a repeated
/// name wins, and across facts the later fact, as in the memory engine; both on one
/// instant (the daily query) and several.
#[test]
fn ties_in_time_are_won_by_the_last_write_applied() {
    let (_server, ch) = start_with(1, None);
    let at = Timestamp::from_second(1_717_200_000).expect("time");
    let attributes = |pairs: &[(&str, &str)]| Fact {
        time: at,
        kind: FactKind::Attributes(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), Some(Value::String(v.to_string()))))
                .collect(),
        ),
    };
    let user = |n: &str| UserKey::External(n.into());
    let ops = vec![
        Op::Apply(user("u1"), attributes(&[("plan", "a"), ("plan", "b")])),
        Op::Apply(user("u2"), attributes(&[("plan", "b"), ("plan", "a")])),
        Op::Apply(user("u3"), attributes(&[("plan", "a")])),
        Op::Apply(user("u3"), attributes(&[("plan", "b"), ("country", "FR")])),
        Op::Apply(user("u4"), attributes(&[("plan", "b")])),
        Op::Apply(user("u4"), attributes(&[("country", "FR"), ("plan", "a")])),
    ];
    let plan_is = |v: &str| Filter::Attribute {
        name: "plan".into(),
        op: AttrOp::Eq(Value::String(v.into())),
    };
    let day = Day::ymd(2024, 6, 1);
    let after = Timestamp::from_second(1_717_300_000).expect("time");
    let case = Case {
        seed: 99,
        tz: TimeZone::UTC,
        days: vec![day, day.add_days(1)],
        ops,
        segments: vec![
            (SegmentId::new_random(), plan_is("a")),
            (SegmentId::new_random(), plan_is("b")),
        ],
        instants: vec![after],
        member_instants: vec![after],
        scattered_days: Vec::new(),
    };
    let mismatches = check(&ch, &case);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // And the sizes are the ones expected: u2 and u4 on "a", u1 and u3 on "b".
    let a = plan_is("a");
    let b = plan_is("b");
    let sizes = ch
        .size_grid(99, &[&a, &b], &|_| None, &[after], &TimeZone::UTC)
        .expect("size grid");
    assert_eq!(sizes, vec![vec![2, 2]]);
}

/// Counts packed in fields of 2 bits overflow as soon as a user has more than 3 rows:
/// the daily query says so, and the counts are asked again one by one, so the sizes
/// stay exact (with fields too narrow and no second query, they would not be).
#[test]
fn packed_counts_too_narrow_for_a_user_are_counted_again_one_by_one() {
    let (_server, ch) = start_with(1, None);
    let ch = ch.with_count_bits(2);
    let case = generate(5);
    let mut facts: HashMap<&UserKey, usize> = HashMap::new();
    for op in &case.ops {
        if let Op::Apply(user, _) = op {
            *facts.entry(user).or_default() += 1;
        }
    }
    let busiest = facts.values().copied().max().unwrap_or(0);
    assert!(
        busiest > 3,
        "the case must give some user more than 3 facts"
    );
    let mismatches = check(&ch, &case);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Sized in 5 passes, each over a part of the random buckets (as a workspace too big
/// for one pass is), the sizes are still the memory engine's: the parts cover every
/// user once (a pass that ignored its part would count everyone 5 times).
#[test]
fn sizes_added_up_over_passes_of_bucket_ranges_are_exact() {
    let (_cluster, ch) = start();
    let ch = ch.with_passes(5);
    let mismatches: Vec<String> = (16..=16)
        .flat_map(|seed| check(&ch, &generate(seed)))
        .collect();
    assert_none(&mismatches);
}

/// The same on one server with plain tables (no cluster, no `Distributed` table).
#[test]
fn one_unsharded_server_gives_the_memory_engine_sizes_too() {
    let (_server, ch) = start_with(1, None);
    let mismatches: Vec<String> = (13..=15)
        .flat_map(|seed| check(&ch, &generate(seed)))
        .collect();
    assert_none(&mismatches);
}

/// The rows of both shards together are the rows inserted: the `Distributed` table
/// spread them, and each user's rows are on one shard.
#[test]
fn facts_are_spread_over_both_shards_by_user() {
    let (cluster, ch) = start();
    let case = generate(4);
    load(&ch, &case);
    let mut per_shard = Vec::new();
    for url in cluster.urls() {
        let one = ClickHouse::new(&Config {
            urls: vec![url],
            database: "headcount_diff".into(),
            cluster: None,
        })
        .expect("config");
        let count: u64 = one
            .query("SELECT count() FROM headcount_diff.facts_local")
            .expect("count")
            .trim()
            .parse()
            .expect("number");
        per_shard.push(count);
    }
    let total: u64 = ch
        .query("SELECT count() FROM headcount_diff.facts")
        .expect("count")
        .trim()
        .parse()
        .expect("number");
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), total);
    let split: u64 = ch
        .query("SELECT count() FROM (SELECT user, uniqExact(_shard_num) AS s FROM headcount_diff.facts GROUP BY user) WHERE s > 1")
        .unwrap_or_else(|_| "0".into())
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(split, 0);
}
