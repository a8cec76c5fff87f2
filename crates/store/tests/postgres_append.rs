//! The PostgreSQL append of one statement (`postgres/append.rs`): its positions, the
//! purges of its deletion chunks, and its notifications, which wake the other
//! stores' listeners but not the appending store's own.

use headcount_model::{Fact, FactKind, UserKey};
use headcount_store::testing::{TestPostgres, workspace};
use headcount_store::{PostgresStore, Receipts, Store};
use std::time::Duration;

fn fact(kind: FactKind) -> Fact {
    Fact {
        time: headcount_model::Timestamp::from_second(1_700_000_000).expect("time"),
        kind,
    }
}

fn login(user: &str) -> Vec<(UserKey, Fact)> {
    let kind = FactKind::Event {
        name: "login".into(),
        detail: None,
    };
    vec![(UserKey::External(user.into()), fact(kind))]
}

#[test]
fn an_append_wakes_the_other_stores_listeners_but_not_its_own() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let (mine, other) = (
        PostgresStore::open(&url).expect("open"),
        PostgresStore::open(&url).expect("open another"),
    );
    let ws = workspace(&mine, "w");
    // Starts listening (nothing appended yet).
    assert!(
        !mine
            .wait_for_appends(Duration::from_millis(50))
            .expect("listen")
    );
    let facts = login("a");
    mine.append_batches_at(&[(ws, facts.as_slice())], Receipts::default())
        .expect("append");
    assert!(
        !mine
            .wait_for_appends(Duration::from_millis(500))
            .expect("wait"),
        "woken by its own append"
    );
    let facts = login("b");
    other
        .append_batches_at(&[(ws, facts.as_slice())], Receipts::default())
        .expect("append elsewhere");
    assert!(
        mine.wait_for_appends(Duration::from_secs(5)).expect("wait"),
        "not woken by another store's append"
    );
}

#[test]
fn one_append_numbers_its_chunks_in_order_and_plans_the_purge_of_its_deletions() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let store = PostgresStore::open(&url).expect("open");
    let ws = workspace(&store, "w");
    let first = login("a");
    store
        .append_batches_at(&[(ws, first.as_slice())], Receipts::default())
        .expect("append");
    let deletion = vec![(UserKey::External("a".into()), fact(FactKind::Deletion))];
    let (b, c) = (login("b"), login("c"));
    let range = store
        .append_batches_at(
            &[
                (ws, b.as_slice()),
                (ws, deletion.as_slice()),
                (ws, c.as_slice()),
            ],
            Receipts::default(),
        )
        .expect("append")
        .expect("positions");
    assert_eq!(range, (2, 4));
    let mut log = Vec::new();
    store
        .scan_log_after(1, 10, &mut |_, position, user, fact| {
            log.push((position, user.clone(), fact.kind));
        })
        .expect("scan");
    let users: Vec<(u64, String)> = log.iter().map(|(p, u, _)| (*p, format!("{u:?}"))).collect();
    assert_eq!(users.len(), 3, "{users:?}");
    assert_eq!(
        log.iter().map(|(p, _, _)| *p).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(matches!(log[1].2, FactKind::Deletion), "{log:?}");
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let purges: Vec<i64> = sql
        .query("SELECT chunk_id FROM fact_purges ORDER BY chunk_id", &[])
        .expect("purges")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(purges, [3], "the deletion's chunk only");
}
