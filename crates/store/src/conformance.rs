//! The conformance suite every [`Store`] backend must pass, so that a second backend
//! (PostgreSQL) is checked by the very same assertions as the embedded one.
//!
//! Each check takes a fresh, empty store. A backend's test file calls [`run_all`].

use crate::{
    ApiKey, EncodedFacts, IdempotencyRecord, ImportProgress, NewWorkspace, Permission, RateWindow,
    Receipts, Segment, Store, StoreError, keys,
};
use headcount_model::{Day, Fact, FactKind, SegmentId, Timestamp, UserKey, Value, WorkspaceId};
use serde_json::json;

/// Runs every check, each on a store made by `fresh`.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Store>) {
    workspaces_are_unique_by_name(fresh().as_ref());
    keys_round_trip_and_revoke(fresh().as_ref());
    segments_round_trip_and_update(fresh().as_ref());
    sizes_replace_range_and_clear(fresh().as_ref());
    facts_round_trip_per_workspace(fresh().as_ref());
    deletions_are_log_entries_and_purged(fresh().as_ref());
    catalog_version_moves_with_every_catalog_change(fresh().as_ref());
    rate_windows_round_trip_and_replace(fresh().as_ref());
    idempotency_records_per_workspace_expire_and_purge(fresh().as_ref());
    receipts_commit_with_their_facts_or_not_at_all(fresh().as_ref());
    import_records_track_progress_and_finish(fresh().as_ref());
    fact_positions_grow_and_a_replay_resumes_after_one(fresh().as_ref());
    leases_have_one_holder_until_released_or_expired(fresh().as_ref());
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn workspace(store: &dyn Store, name: &str) -> WorkspaceId {
    store
        .create_workspace(&NewWorkspace {
            name: name.into(),
            time_zone: "Europe/Paris".into(),
            export_limit: 10,
            track_limit: 5,
        })
        .expect("create workspace")
        .id
}

/// Names are unique; the list keeps creation order and every field.
pub fn workspaces_are_unique_by_name(store: &dyn Store) {
    let a = workspace(store, "acme");
    let b = workspace(store, "globex");
    assert_ne!(a, b);
    let again = store.create_workspace(&NewWorkspace {
        name: "acme".into(),
        time_zone: "UTC".into(),
        export_limit: 1,
        track_limit: 1,
    });
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let all = store.workspaces().expect("list");
    assert_eq!(
        all.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    assert_eq!(all[0].time_zone, "Europe/Paris");
    assert_eq!((all[0].export_limit, all[0].track_limit), (10, 5));
}

/// Keys keep their hash, permissions and allow-list; revoking is once only.
pub fn keys_round_trip_and_revoke(store: &dyn Store) {
    let ws = workspace(store, "acme");
    let secret = "0123abcd-0000-4000-8000-000000000000";
    let key = ApiKey {
        id: keys::public_id(secret).into(),
        workspace: ws,
        name: "ci".into(),
        hash: keys::hash_secret(secret),
        permissions: vec![Permission::SegmentsList, Permission::UsersTrack],
        allow_ips: vec!["10.0.0.0/8".parse().expect("net")],
        created_at: ts("2024-01-01T00:00:00Z"),
        revoked_at: None,
    };
    store.insert_key(&key).expect("insert");
    assert!(matches!(
        store.insert_key(&key),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.keys().expect("keys"), vec![key.clone()]);
    let at = ts("2024-02-01T00:00:00Z");
    assert!(store.revoke_key("0123abcd", at).expect("revoke"));
    assert!(!store.revoke_key("0123abcd", at).expect("revoke twice"));
    assert!(!store.revoke_key("missing", at).expect("revoke unknown"));
    assert_eq!(store.keys().expect("keys")[0].revoked_at, Some(at));
}

/// Segments come back field for field, in creation order, and updates replace them.
pub fn segments_round_trip_and_update(store: &dyn Store) {
    let ws = workspace(store, "acme");
    let mut first = Segment {
        id: SegmentId::new_random(),
        workspace: ws,
        name: "French users".into(),
        filter: json!({"attribute": "country", "op": "eq", "value": "FR"}),
        text_description: "People in France".into(),
        tags: vec!["geo".into()],
        teams: vec![],
        analytics_tracking_enabled: true,
        created_at: ts("2024-01-01T00:00:00Z"),
        updated_at: ts("2024-01-01T00:00:00Z"),
        archived_at: None,
    };
    let second = Segment {
        id: SegmentId::new_random(),
        name: "Everyone".into(),
        filter: json!({"all": []}),
        ..first.clone()
    };
    store.insert_segment(&first).expect("insert");
    store.insert_segment(&second).expect("insert");
    assert_eq!(
        store.segments().expect("list"),
        vec![first.clone(), second.clone()]
    );
    first.name = "Users in France".into();
    first.archived_at = Some(ts("2024-03-01T12:00:00.123456Z"));
    store.update_segment(&first).expect("update");
    assert_eq!(store.segments().expect("list"), vec![first, second.clone()]);
    let ghost = Segment {
        id: SegmentId::new_random(),
        ..second
    };
    assert!(matches!(
        store.update_segment(&ghost),
        Err(StoreError::NotFound(_))
    ));
}

/// Sizes are per (segment, day), replaced on rewrite, read by range, and cleared.
pub fn sizes_replace_range_and_clear(store: &dyn Store) {
    let seg = SegmentId::new_random();
    let other = SegmentId::new_random();
    let t1 = ts("2024-01-10T00:05:00Z");
    let t2 = ts("2024-01-11T00:05:00Z");
    let d = |n| Day::ymd(2024, 1, n);
    store
        .put_sizes(seg, &[(d(1), 5), (d(2), 7), (d(3), 9)], t1)
        .expect("put");
    store.put_sizes(seg, &[(d(2), 8)], t2).expect("replace");
    store.put_sizes(other, &[(d(2), 100)], t1).expect("other");
    let got: Vec<_> = store
        .sizes(seg, d(2), d(5))
        .expect("range")
        .iter()
        .map(|s| (s.day, s.size, s.computed_at))
        .collect();
    assert_eq!(got, vec![(d(2), 8, t2), (d(3), 9, t1)]);
    assert_eq!(store.last_computed_at(seg).expect("last"), Some(t2));
    store.clear_sizes(seg).expect("clear");
    assert!(store.sizes(seg, d(1), d(31)).expect("range").is_empty());
    assert_eq!(store.last_computed_at(seg).expect("last"), None);
    assert_eq!(store.sizes(other, d(1), d(31)).expect("range").len(), 1);
    // Writes after reads are read back (a backend may keep what it read).
    store
        .put_sizes(seg, &[(d(4), 11)], t1)
        .expect("put after clear");
    store
        .put_sizes(other, &[(d(3), 101)], t2)
        .expect("put after read");
    let sizes = |s, from, to| -> Vec<u64> {
        store
            .sizes(s, from, to)
            .expect("range")
            .iter()
            .map(|r| r.size)
            .collect()
    };
    assert_eq!(sizes(seg, d(1), d(31)), [11]);
    assert_eq!(sizes(other, d(1), d(31)), [100, 101]);
    assert_eq!(
        sizes(other, d(3), d(2)),
        Vec::<u64>::new(),
        "an empty range"
    );
    assert_eq!(store.last_computed_at(other).expect("last"), Some(t2));
    // An answer from memory, when the backend gives one, is the same answer.
    for (s, from, to) in [(seg, d(1), d(31)), (other, d(3), d(9)), (other, d(3), d(2))] {
        let mut seen = Vec::new();
        if store.sizes_in_memory(s, from, to, &mut |r| seen.push(*r)) {
            assert_eq!(seen, store.sizes(s, from, to).expect("range"));
        }
    }
}

fn sample_facts() -> Vec<(UserKey, Fact)> {
    let alice = UserKey::External("alice".into());
    let alias = UserKey::Alias {
        name: "a@x.io".into(),
        label: "email".into(),
    };
    vec![
        (
            alice.clone(),
            Fact {
                time: ts("2024-01-01T10:00:00.000001Z"),
                kind: FactKind::Attributes(vec![
                    // In name order: a backend may return one fact's attributes sorted.
                    ("age".into(), Some(Value::Number(41.5))),
                    ("country".into(), Some(Value::String("FR".into()))),
                    ("gone".into(), None),
                    (
                        "signup".into(),
                        Some(Value::DateTime(ts("2023-12-31T23:00:00Z"))),
                    ),
                    (
                        "tags".into(),
                        Some(Value::Array(vec!["a".into(), "b".into()])),
                    ),
                    ("vip".into(), Some(Value::Bool(true))),
                ]),
            },
        ),
        (
            alice,
            Fact {
                time: ts("2024-01-02T00:00:00Z"),
                kind: FactKind::Event {
                    name: "login".into(),
                    detail: Some(r#"{"properties":{"x":1}}"#.into()),
                },
            },
        ),
        (
            alias.clone(),
            Fact {
                time: ts("2024-01-03T00:00:00Z"),
                kind: FactKind::Purchase {
                    product: "sku-1".into(),
                    detail: None,
                },
            },
        ),
        (
            alias,
            Fact {
                time: ts("2024-01-04T00:00:00Z"),
                kind: FactKind::Attributes(vec![]),
            },
        ),
        (
            UserKey::Braze("b-1".into()),
            Fact {
                time: ts("2024-01-05T00:00:00Z"),
                kind: FactKind::Event {
                    name: "open".into(),
                    detail: None,
                },
            },
        ),
    ]
}

fn scanned(store: &dyn Store, ws: WorkspaceId) -> Vec<(UserKey, Fact)> {
    let mut out = Vec::new();
    store
        .scan_facts(ws, &mut |u, f| out.push((u.clone(), f)))
        .expect("scan");
    out.sort_by_key(|(_, f)| f.time);
    out
}

/// Facts come back exactly, values of every kind included, and only in their workspace.
pub fn facts_round_trip_per_workspace(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let facts = sample_facts();
    store.append_facts(acme, &facts[..3]).expect("append");
    store
        .append_batches(&[(acme, &facts[3..]), (globex, &facts[..1])])
        .expect("append a group of batches");
    assert_eq!(scanned(store, acme), facts);
    assert_eq!(scanned(store, globex), facts[..1].to_vec());
}

fn in_log_order(store: &dyn Store, ws: WorkspaceId) -> Vec<(UserKey, Fact)> {
    let mut out = Vec::new();
    store
        .scan_facts(ws, &mut |u, f| out.push((u.clone(), f)))
        .expect("scan");
    out
}

fn at(time: &str, kind: FactKind) -> Fact {
    Fact {
        time: ts(time),
        kind,
    }
}

fn event(name: &str) -> FactKind {
    FactKind::Event {
        name: name.into(),
        detail: None,
    }
}

/// Runs the purge to its end (it must end), returning the number of steps taken.
pub fn purge_all(store: &dyn Store) -> usize {
    let mut steps = 0;
    while store.purge_step().expect("purge step") {
        steps += 1;
        assert!(steps < 100_000, "the purge never ends");
    }
    steps
}

/// A deletion is an entry of the log, scanned in order among the facts; the purge
/// then removes its user's facts before it (in earlier appends and earlier in its
/// own), keeps the facts after it (a new user) and the deletion entries, and touches
/// no other user or workspace.
pub fn deletions_are_log_entries_and_purged(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let facts = sample_facts();
    let alice = UserKey::External("alice".into());
    let alias = facts[2].0.clone();
    store.append_facts(acme, &facts).expect("append");
    store.append_facts(globex, &facts).expect("append");
    // One append: a fact of the alias before its deletion, then one after it.
    let mixed = vec![
        (alias.clone(), at("2024-01-06T00:00:00Z", event("late"))),
        (
            alias.clone(),
            at("2024-01-06T01:00:00Z", FactKind::Deletion),
        ),
        (alias.clone(), at("2024-01-06T02:00:00Z", event("new"))),
    ];
    store.append_facts(acme, &mixed).expect("append");
    let deletions = vec![
        (
            alice.clone(),
            at("2024-01-07T00:00:00Z", FactKind::Deletion),
        ),
        (
            UserKey::External("nobody".into()),
            at("2024-01-07T00:00:00Z", FactKind::Deletion),
        ),
    ];
    store.append_facts(acme, &deletions).expect("append");
    // Before its deletion in time, but after it in the log: a new user's fact.
    let back = vec![(alice, at("2024-01-01T00:00:00Z", event("back")))];
    store.append_facts(acme, &back).expect("append");
    let log: Vec<_> = [&facts[..], &mixed, &deletions, &back].concat();
    assert_eq!(in_log_order(store, acme), log, "the log as appended");
    purge_all(store);
    let purged: Vec<_> = [&facts[4..], &mixed[1..], &deletions[..], &back[..]].concat();
    assert_eq!(in_log_order(store, acme), purged, "after the purge");
    assert_eq!(in_log_order(store, globex), facts, "another workspace");
    assert!(!store.purge_step().expect("purge step"), "nothing left");
    // A later deletion of the same user purges the facts between the two.
    let again = vec![(
        UserKey::External("alice".into()),
        at("2024-01-08T00:00:00Z", FactKind::Deletion),
    )];
    store.append_facts(acme, &again).expect("append");
    purge_all(store);
    let purged: Vec<_> = [&facts[4..], &mixed[1..], &deletions[..], &again[..]].concat();
    assert_eq!(in_log_order(store, acme), purged, "after a second deletion");
}

/// The catalog version changes with every change of workspaces, keys and segments
/// (refused changes and failed revocations included as no change), and with nothing
/// else: facts and sizes leave it alone.
pub fn catalog_version_moves_with_every_catalog_change(store: &dyn Store) {
    let mut seen = vec![store.catalog_version().expect("version")];
    let mut changed = |what: &str, expected: bool| {
        let now = store.catalog_version().expect("version");
        let last = *seen.last().expect("a first version");
        assert_eq!(now != last, expected, "{what}: {last} then {now}");
        seen.push(now);
    };
    let ws = workspace(store, "acme");
    changed("create a workspace", true);
    let refused = store.create_workspace(&NewWorkspace {
        name: "acme".into(),
        time_zone: "UTC".into(),
        export_limit: 1,
        track_limit: 1,
    });
    assert!(refused.is_err());
    changed("a refused workspace", false);
    let secret = "4567cdef-0000-4000-8000-000000000000";
    store
        .insert_key(&ApiKey {
            id: keys::public_id(secret).into(),
            workspace: ws,
            name: "ci".into(),
            hash: keys::hash_secret(secret),
            permissions: Permission::ALL.to_vec(),
            allow_ips: vec![],
            created_at: ts("2024-01-01T00:00:00Z"),
            revoked_at: None,
        })
        .expect("insert key");
    changed("insert a key", true);
    assert!(
        store
            .revoke_key("4567cdef", ts("2024-01-02T00:00:00Z"))
            .expect("revoke")
    );
    changed("revoke a key", true);
    assert!(
        !store
            .revoke_key("4567cdef", ts("2024-01-03T00:00:00Z"))
            .expect("revoke")
    );
    changed("revoke a revoked key", false);
    let mut segment = Segment {
        id: SegmentId::new_random(),
        workspace: ws,
        name: "Everyone".into(),
        filter: json!({"all": []}),
        text_description: String::new(),
        tags: vec![],
        teams: vec![],
        analytics_tracking_enabled: false,
        created_at: ts("2024-01-01T00:00:00Z"),
        updated_at: ts("2024-01-01T00:00:00Z"),
        archived_at: None,
    };
    store.insert_segment(&segment).expect("insert segment");
    changed("insert a segment", true);
    segment.name = "All of them".into();
    store.update_segment(&segment).expect("update segment");
    changed("update a segment", true);
    store
        .append_facts(ws, &sample_facts())
        .expect("append facts");
    store
        .put_sizes(
            segment.id,
            &[(Day::ymd(2024, 1, 1), 3)],
            ts("2024-01-02T00:00:00Z"),
        )
        .expect("sizes");
    changed("facts and sizes", false);
}

/// Rate-limit windows come back as saved, one per (workspace, bucket), the last save
/// of each replacing the one before.
pub fn rate_windows_round_trip_and_replace(store: &dyn Store) {
    assert_eq!(store.rate_windows().expect("none yet"), vec![]);
    let window = |ws: i64, bucket: &str, start: u64, count: u64| RateWindow {
        workspace: WorkspaceId(ws),
        bucket: bucket.into(),
        window_start: start,
        count,
    };
    store
        .put_rate_windows(&[
            window(1, "export", 1_700_000_000, 5),
            window(1, "track", 1_700_000_001, 2),
        ])
        .expect("save");
    store
        .put_rate_windows(&[
            window(1, "export", 1_700_000_000, 9),
            window(2, "export", 1_700_003_600, 1),
        ])
        .expect("save again");
    let mut saved = store.rate_windows().expect("load");
    saved.sort_by(|a, b| (a.workspace, &a.bucket).cmp(&(b.workspace, &b.bucket)));
    assert_eq!(
        saved,
        vec![
            window(1, "export", 1_700_000_000, 9),
            window(1, "track", 1_700_000_001, 2),
            window(2, "export", 1_700_003_600, 1),
        ]
    );
}

fn answer(ws: WorkspaceId, key: &str, status: u16, at: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        workspace: ws,
        key: key.into(),
        fingerprint: keys::hash_secret(key),
        status,
        body: format!(r#"{{"message":"{key}"}}"#).into_bytes(),
        created_at: ts(at),
    }
}

/// A remembered answer comes back byte for byte in its workspace only, not once it is
/// older than `since`, is replaced by a new answer to the same key, and is purged.
pub fn idempotency_records_per_workspace_expire_and_purge(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let first = answer(acme, "k-1", 201, "2024-01-01T00:00:00Z");
    store.put_idempotency_record(&first).expect("put");
    let since = ts("2023-12-31T00:00:00Z");
    let got = store.idempotency_record(acme, "k-1", since).expect("get");
    assert_eq!(got, Some(first.clone()));
    assert_eq!(
        store.idempotency_record(globex, "k-1", since).expect("get"),
        None,
        "keys are per workspace"
    );
    assert_eq!(
        store.idempotency_record(acme, "k-2", since).expect("get"),
        None
    );
    let later = ts("2024-01-01T00:00:00.000001Z");
    assert_eq!(
        store.idempotency_record(acme, "k-1", later).expect("get"),
        None,
        "an answer older than `since` has expired"
    );
    let replaced = answer(acme, "k-1", 400, "2024-01-03T00:00:00Z");
    store.put_idempotency_record(&replaced).expect("replace");
    assert_eq!(
        store.idempotency_record(acme, "k-1", since).expect("get"),
        Some(replaced.clone())
    );
    let other = answer(globex, "k-1", 202, "2024-01-01T00:00:00Z");
    store.put_idempotency_record(&other).expect("put");
    let purged = store
        .purge_idempotency_records(ts("2024-01-02T00:00:00Z"))
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(
        store.idempotency_record(globex, "k-1", since).expect("get"),
        None
    );
    assert_eq!(
        store.idempotency_record(acme, "k-1", since).expect("get"),
        Some(replaced)
    );
}

/// Answers and import progress are committed with their facts, or not at all when the
/// transaction fails (here: progress of an import that does not exist).
pub fn receipts_commit_with_their_facts_or_not_at_all(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let facts = sample_facts();
    let record = answer(acme, "with-facts", 201, "2024-01-01T00:00:00Z");
    store
        .append_batches_with(
            &[(acme, &facts[..2])],
            Receipts {
                responses: std::slice::from_ref(&record),
                imports: &[],
            },
        )
        .expect("append with an answer");
    assert_eq!(scanned(store, acme), facts[..2].to_vec());
    let since = ts("2023-01-01T00:00:00Z");
    assert_eq!(
        store
            .idempotency_record(acme, "with-facts", since)
            .expect("get"),
        Some(record)
    );
    // An answer without facts (every object rejected) is committed all the same.
    let alone = answer(acme, "alone", 400, "2024-01-01T00:00:00Z");
    store
        .append_encoded_with(
            &[],
            Receipts {
                responses: std::slice::from_ref(&alone),
                imports: &[],
            },
        )
        .expect("an answer alone");
    assert!(
        store
            .idempotency_record(acme, "alone", since)
            .expect("get")
            .is_some()
    );
    let lost = answer(acme, "lost", 201, "2024-01-01T00:00:00Z");
    let failed = store.append_encoded_with(
        &[(acme, EncodedFacts::encode(&facts[2..]))],
        Receipts {
            responses: std::slice::from_ref(&lost),
            imports: &[ImportProgress {
                id: 987_654,
                sha256: None,
                lines: 1,
                bytes: 1,
                at: ts("2024-01-01T00:00:00Z"),
                finished: false,
            }],
        },
    );
    assert!(failed.is_err(), "progress of an unknown import: {failed:?}");
    assert_eq!(scanned(store, acme), facts[..2].to_vec(), "no fact kept");
    assert_eq!(
        store.idempotency_record(acme, "lost", since).expect("get"),
        None,
        "no answer kept"
    );
}

/// An import record starts empty, moves with each commit of facts, learns its hash,
/// finishes, and is listed per workspace in order.
pub fn import_records_track_progress_and_finish(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let hash = keys::hash_secret("file contents");
    let started = ts("2024-01-01T00:00:00Z");
    let file = store
        .begin_import(acme, Some(hash), "a.ndjson", started)
        .expect("begin");
    let stdin = store
        .begin_import(acme, None, "-", started)
        .expect("begin stdin");
    store
        .begin_import(globex, Some(hash), "a.ndjson", started)
        .expect("begin elsewhere");
    assert_eq!(
        (file.lines, file.bytes, file.finished_at),
        (0, 0, None),
        "{file:?}"
    );
    let facts = sample_facts();
    let step = |id, sha256, lines, bytes, at: &str, finished| ImportProgress {
        id,
        sha256,
        lines,
        bytes,
        at: ts(at),
        finished,
    };
    store
        .append_encoded_with(
            &[(acme, EncodedFacts::encode(&facts[..2]))],
            Receipts {
                responses: &[],
                imports: &[step(
                    file.id,
                    Some(hash),
                    2,
                    40,
                    "2024-01-01T00:01:00Z",
                    false,
                )],
            },
        )
        .expect("first commit");
    let listed = store.imports(acme).expect("imports");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, file.id);
    assert_eq!(
        (listed[0].lines, listed[0].bytes, listed[0].finished_at),
        (2, 40, None)
    );
    assert_eq!(listed[0].updated_at, ts("2024-01-01T00:01:00Z"));
    assert_eq!(listed[0].started_at, started);
    assert_eq!(listed[0].sha256, Some(hash));
    assert_eq!(listed[0].name, "a.ndjson");
    let stdin_hash = keys::hash_secret("stdin");
    store
        .append_encoded_with(
            &[(acme, EncodedFacts::encode(&facts[2..]))],
            Receipts {
                responses: &[],
                imports: &[
                    step(file.id, None, 5, 90, "2024-01-01T00:02:00Z", true),
                    step(
                        stdin.id,
                        Some(stdin_hash),
                        7,
                        70,
                        "2024-01-01T00:02:00Z",
                        true,
                    ),
                ],
            },
        )
        .expect("last commit of both");
    let listed = store.imports(acme).expect("imports");
    assert_eq!(
        listed[0].sha256,
        Some(hash),
        "a hash is kept when none is given"
    );
    assert_eq!((listed[0].lines, listed[0].bytes), (5, 90));
    assert_eq!(listed[0].finished_at, Some(ts("2024-01-01T00:02:00Z")));
    assert_eq!(listed[1].sha256, Some(stdin_hash));
    assert_eq!(listed[1].finished_at, Some(ts("2024-01-01T00:02:00Z")));
    assert_eq!(scanned(store, acme), facts);
    let elsewhere = store.imports(globex).expect("imports");
    assert_eq!(elsewhere.len(), 1);
    assert_eq!((elsewhere[0].lines, elsewhere[0].finished_at), (0, None));
}

/// Every append gets a later position than the ones before; a scan after a position
/// reads exactly the facts appended after it, in append order, and says where it
/// stopped.
pub fn fact_positions_grow_and_a_replay_resumes_after_one(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let facts = sample_facts();
    assert_eq!(store.last_fact_position().expect("position"), 0);
    let after = |ws, position| {
        let mut out = Vec::new();
        let last = store
            .scan_facts_after(ws, position, &mut |u, f| out.push((u.clone(), f)))
            .expect("scan after");
        (out, last)
    };
    assert_eq!(after(acme, 0), (vec![], 0));
    store.append_facts(acme, &facts[..2]).expect("append");
    let first = store.last_fact_position().expect("position");
    assert!(first > 0);
    store
        .append_batches(&[(globex, &facts[..1]), (acme, &facts[2..4])])
        .expect("append a group");
    let second = store.last_fact_position().expect("position");
    assert!(second > first);
    store.append_facts(acme, &facts[4..]).expect("append");
    let third = store.last_fact_position().expect("position");
    assert!(third > second);
    assert_eq!(after(acme, 0), (facts.clone(), third));
    // Append order, not time order: the facts after `first` only.
    assert_eq!(after(acme, first), (facts[2..].to_vec(), third));
    assert_eq!(after(acme, second), (facts[4..].to_vec(), third));
    assert_eq!(after(acme, third), (vec![], third));
    // The other workspace's chunk sits between them: read once, then never again.
    let (globex_facts, globex_last) = after(globex, first);
    assert_eq!(globex_facts, facts[..1].to_vec());
    assert!(first < globex_last && globex_last < second);
    assert_eq!(after(globex, globex_last), (vec![], globex_last));
}

/// A lease has one holder at a time: taken when free, renewed by its holder, refused
/// to others until it expires (then taken over) or is released; leases are
/// independent by name, and a release by another holder changes nothing.
pub fn leases_have_one_holder_until_released_or_expired(store: &dyn Store) {
    use std::time::Duration;
    let t0 = ts("2026-01-01T00:00:00Z");
    let at = |secs: i64| Timestamp::from_second(t0.as_second() + secs).expect("a test instant");
    let ttl = Duration::from_secs(60);
    let lease = |name: &str, holder: &str, now: Timestamp| {
        store.try_lease(name, holder, now, ttl).expect("try_lease")
    };
    assert!(lease("sizes/1", "a", at(0)), "a free lease is taken");
    assert!(!lease("sizes/1", "b", at(1)), "held by a: refused to b");
    assert!(
        lease("sizes/2", "b", at(1)),
        "another name is another lease"
    );
    assert!(lease("sizes/1", "a", at(30)), "its holder renews it");
    assert!(
        !lease("sizes/1", "b", at(89)),
        "renewed at 30: runs until 90"
    );
    assert!(lease("sizes/1", "b", at(90)), "expired: taken over");
    assert!(!lease("sizes/1", "a", at(91)), "a lost it");
    store
        .release_lease("sizes/1", "a")
        .expect("release by a non-holder");
    assert!(
        !lease("sizes/1", "a", at(92)),
        "a release by a non-holder changes nothing"
    );
    store.release_lease("sizes/1", "b").expect("release");
    assert!(lease("sizes/1", "a", at(93)), "released: free again");
    store
        .release_lease("nothing", "a")
        .expect("releasing an unknown lease");
}
