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
use headcount_model::{Fact, FactKind, Filter, SegmentId, Timestamp};
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
    assert!(
        mismatches.is_empty(),
        "{} mismatches, the first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The same on one server with plain tables (no cluster, no `Distributed` table).
#[test]
fn one_unsharded_server_gives_the_memory_engine_sizes_too() {
    let (_server, ch) = start_with(1, None);
    let mismatches: Vec<String> = (13..=15)
        .flat_map(|seed| check(&ch, &generate(seed)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches, the first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
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
