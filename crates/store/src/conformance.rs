//! The conformance suite every [`Store`] backend must pass, so that a second backend
//! (PostgreSQL) is checked by the very same assertions as the embedded one.
//!
//! Each check takes a fresh, empty store. A backend's test file calls [`run_all`].

use crate::{ApiKey, NewWorkspace, Permission, Segment, Store, StoreError, keys};
use headcount_model::{Day, Fact, FactKind, SegmentId, Timestamp, UserKey, Value, WorkspaceId};
use serde_json::json;

/// Runs every check, each on a store made by `fresh`.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Store>) {
    workspaces_are_unique_by_name(fresh().as_ref());
    keys_round_trip_and_revoke(fresh().as_ref());
    segments_round_trip_and_update(fresh().as_ref());
    sizes_replace_range_and_clear(fresh().as_ref());
    facts_round_trip_per_workspace(fresh().as_ref());
    fact_positions_grow_and_a_replay_resumes_after_one(fresh().as_ref());
    delete_users_removes_their_facts(fresh().as_ref());
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

/// Deleting users removes them and their facts, in their workspace only.
pub fn delete_users_removes_their_facts(store: &dyn Store) {
    let acme = workspace(store, "acme");
    let globex = workspace(store, "globex");
    let facts = sample_facts();
    store.append_facts(acme, &facts).expect("append");
    store.append_facts(globex, &facts).expect("append");
    let gone = [
        UserKey::External("alice".into()),
        UserKey::External("nobody".into()),
    ];
    assert_eq!(store.delete_users(acme, &gone).expect("delete"), 1);
    let left = scanned(store, acme);
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|(u, _)| *u != gone[0]));
    assert_eq!(scanned(store, globex).len(), facts.len());
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
