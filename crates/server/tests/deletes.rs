//! Deletes as entries of the fact log: ordered with tracks by the writer (store and
//! index agree whatever runs at the same time), cheap for ingestion, and purged from
//! disk in the background.

// The shared helper serves every test file; this one uses part of it.
#[allow(dead_code)]
mod common;

use common::TestServer;
use headcount_engine::{Index, Plan, PlanError};
use headcount_model::{Fact, FactKind, Filter, Timestamp, UserKey, Value, WorkspaceId};
use headcount_server::state::{SharedIndex, read};
use headcount_server::writer::Writer;
use headcount_store::{NewWorkspace, SqliteStore, Store};
use jiff::tz::TimeZone;
use serde_json::{Value as Json, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Filters over the users of the concurrent tests: everyone, a count, an attribute
/// and a random half.
fn filters() -> Vec<Json> {
    vec![
        json!({"all": []}),
        json!({"event": "e", "op": "gte", "value": 2, "within_days": 30}),
        json!({"attribute": "n", "op": "gt", "value": 50}),
        json!({"random_bucket": {"op": "lt", "value": 5000}}),
        json!({"all": [
            {"event": "e", "op": "gte", "value": 1, "within_days": 30},
            {"not": {"attribute": "n", "op": "lt", "value": 20}}
        ]}),
    ]
}

fn plan(filter: &Json) -> Plan {
    let filter = Filter::parse(filter, "filter").expect("a valid filter");
    Plan::compile(&filter, &|id| Err(PlanError::UnknownSegment(id))).expect("a plan")
}

/// A fresh index replayed from the store's log, as a restart builds it.
fn rebuild(store: &dyn Store, ws: WorkspaceId) -> Index {
    let mut index = Index::new();
    store
        .scan_facts(ws, &mut |user, fact| index.apply(user, &fact))
        .expect("scan the facts");
    index
}

fn purge_all(store: &dyn Store) {
    let started = Instant::now();
    while store.purge_step().expect("a purge step") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the purge never ends"
        );
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_orders_deletes_with_tracks_so_the_index_equals_a_rebuild() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("a store"));
    let ws = store
        .create_workspace(&NewWorkspace {
            name: "main".into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("a workspace")
        .id;
    let index: SharedIndex = SharedIndex::default();
    let writer = Arc::new(Writer::start(
        &store,
        Arc::new(headcount_service::follow::Follow::new(
            Default::default(),
            false,
        )),
    ));
    let base = ts("2024-01-01T00:00:00Z").as_second();
    let mut tasks = Vec::new();
    for task in 0..6u64 {
        let (writer, index) = (writer.clone(), index.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (task + 1));
            let mut deleted = 0;
            for round in 0..150 {
                let user = UserKey::External(format!("u{}", rng.below(8)));
                if rng.below(4) == 0 {
                    let other = UserKey::External(format!("u{}", rng.below(8)));
                    deleted += writer
                        .delete(ws, index.clone(), vec![user, other])
                        .await
                        .expect("delete");
                } else {
                    let time = Timestamp::from_second(base + rng.below(86_400 * 20) as i64)
                        .expect("a time");
                    let n = (task * 1000 + round) as f64 % 100.0;
                    let facts = vec![
                        (
                            user.clone(),
                            Fact {
                                time,
                                kind: FactKind::Attributes(vec![(
                                    "n".into(),
                                    Some(Value::Number(n)),
                                )]),
                            },
                        ),
                        (
                            user,
                            Fact {
                                time,
                                kind: FactKind::Event {
                                    name: "e".into(),
                                    detail: None,
                                },
                            },
                        ),
                    ];
                    writer
                        .append(ws, index.clone(), facts)
                        .await
                        .expect("append");
                }
            }
            deleted
        }));
    }
    let mut deleted = 0;
    for task in tasks {
        deleted += task.await.expect("a task");
    }
    assert!(deleted > 0, "some deletes found their user");
    let at = ts("2024-02-01T00:00:00Z");
    let tz = TimeZone::UTC;
    let members = |index: &Index| -> Vec<Vec<UserKey>> {
        filters()
            .iter()
            .map(|f| index.members(&plan(f), at, &tz))
            .collect()
    };
    let live = members(&read(&index));
    assert!(!live[0].is_empty(), "some users are left");
    assert_eq!(
        live,
        members(&rebuild(store.as_ref(), ws)),
        "after the writes"
    );
    purge_all(store.as_ref());
    assert_eq!(
        live,
        members(&rebuild(store.as_ref(), ws)),
        "after the purge"
    );
    assert_eq!(
        read(&index).user_count(),
        rebuild(store.as_ref(), ws).user_count()
    );
}

/// Today's size of each segment, as the running server answers it.
async fn live_sizes(server: &TestServer, key: &str, segments: &[String]) -> Vec<u64> {
    let mut sizes = Vec::new();
    for id in segments {
        let points = server
            .series(key, &format!("segment_id={id}&length=1"))
            .await;
        sizes.push(points.last().expect("today's point").1);
    }
    sizes
}

fn rebuilt_sizes(store: &dyn Store, ws: WorkspaceId) -> Vec<u64> {
    let index = rebuild(store, ws);
    let now = Timestamp::now();
    filters()
        .iter()
        .map(|f| index.size(&plan(f), now, &TimeZone::UTC))
        .collect()
}

fn main_workspace(store: &dyn Store) -> WorkspaceId {
    store.workspaces().expect("workspaces")[0].id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tracks_and_deletes_of_the_same_users_leave_the_index_equal_to_a_rebuild() {
    let (server, key) = TestServer::simple().await;
    let mut segments = Vec::new();
    for (i, filter) in filters().into_iter().enumerate() {
        segments.push(server.create_segment(&key, &format!("s{i}"), filter).await);
    }
    let server = Arc::new(server);
    let time = (Timestamp::now() - jiff::SignedDuration::from_mins(5)).to_string();
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let (server, key, time) = (server.clone(), key.clone(), time.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (task + 1));
            for round in 0..40 {
                let user = format!("u{}", rng.below(6));
                if rng.below(3) == 0 {
                    let other = format!("u{}", rng.below(6));
                    let r = server
                        .post(
                            &key,
                            "/users/delete",
                            &json!({"external_ids": [user, other]}),
                        )
                        .await;
                    r.expect(202);
                    assert!(r.body["deleted"].as_u64().is_some_and(|n| n <= 2), "{r:?}");
                } else {
                    let body = json!({
                        "attributes": [{"external_id": user, "n": (task * 40 + round) % 100}],
                        "events": [{"external_id": user, "name": "e", "time": time}],
                    });
                    server.post(&key, "/users/track", &body).await.expect(201);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a task");
    }
    let Ok(mut server) = Arc::try_unwrap(server) else {
        panic!("the tasks are done");
    };
    let before = live_sizes(&server, &key, &segments).await;
    assert!(before[0] > 0, "some users are left: {before:?}");
    let ws = main_workspace(server.store());
    assert_eq!(before, rebuilt_sizes(server.store(), ws), "a rebuild");
    server.restart().await;
    assert_eq!(
        live_sizes(&server, &key, &segments).await,
        before,
        "restarted"
    );
    purge_all(server.store());
    server.restart().await;
    assert_eq!(
        live_sizes(&server, &key, &segments).await,
        before,
        "restarted after the purge"
    );
}

/// Users, and events per user, of the workspace the latency test deletes from.
const USERS: usize = 30_000;
const EVENTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_a_track_load_does_not_hold_up_tracks_and_its_users_facts_are_purged() {
    let mut server = TestServer::new(common::config());
    let ws = server.workspace(common::Ws {
        track_limit: 1_000_000,
        ..common::Ws::named("main")
    });
    let key = server.key(ws, &headcount_store::Permission::ALL, &[]);
    // Chunks of 10,000 facts, each naming 10,000 users: a deleted user is in many.
    let base = ts("2025-01-01T00:00:00Z").as_second();
    let mut facts = Vec::new();
    for round in 0..=EVENTS {
        for u in 0..USERS {
            let user = UserKey::External(format!("user-{u}"));
            let time = Timestamp::from_second(base + (round * USERS + u) as i64).expect("a time");
            let kind = if round == 0 {
                FactKind::Attributes(vec![("n".into(), Some(Value::Number(u as f64)))])
            } else {
                FactKind::Event {
                    name: "e".into(),
                    detail: None,
                }
            };
            facts.push((user, Fact { time, kind }));
        }
    }
    for chunk in facts.chunks(10_000) {
        server.store().append_facts(ws, chunk).expect("append");
    }
    let total = facts.len();
    drop(facts);
    server.serve().await;

    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for task in 0..3 {
        let (server, key, stop) = (server.clone(), key.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut sent = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"attributes": [
                    {"external_id": format!("t{task}-{sent}"), "n": 1},
                    {"external_id": format!("t{task}-{}", sent + 1), "n": 2},
                ]});
                let started = Instant::now();
                server.post(&key, "/users/track", &body).await.expect(201);
                worst = worst.max(started.elapsed());
                sent += 2;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (worst, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut gone = HashSet::new();
    for d in 0..4 {
        let ids: Vec<String> = (0..50)
            .map(|i| format!("user-{}", d * 7_001 + i * 113))
            .collect();
        let r = server
            .post(&key, "/users/delete", &json!({ "external_ids": ids }))
            .await;
        r.expect(202);
        assert_eq!(r.body, json!({"message": "success", "deleted": 50}));
        gone.extend(ids.into_iter().map(UserKey::External));
    }
    // Wait for the background purge (taking steps too), under the same load.
    let store = server.clone();
    tokio::task::spawn_blocking(move || purge_all(store.store()))
        .await
        .expect("the purge");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut worst = Duration::ZERO;
    let mut tracked = 0;
    for task in load {
        let (w, n) = task.await.expect("a load task");
        worst = worst.max(w);
        tracked += n;
    }
    // Deleting in the request under the store's connection (before deletes were log
    // entries) made a track wait about 1.9 s here.
    assert!(
        worst < Duration::from_millis(300),
        "a /users/track waited {worst:?} while users were deleted"
    );

    // On disk: none of the deleted users' facts remain, only their deletion entries.
    let mut left = 0usize;
    let mut deletions = 0usize;
    server
        .store()
        .scan_facts(ws, &mut |user, fact| {
            if matches!(fact.kind, FactKind::Deletion) {
                deletions += 1;
            } else {
                assert!(!gone.contains(user), "{user:?} still has {fact:?}");
                left += 1;
            }
        })
        .expect("scan");
    assert_eq!(deletions, gone.len());
    assert_eq!(left, total - gone.len() * (EVENTS + 1) + tracked);
}
