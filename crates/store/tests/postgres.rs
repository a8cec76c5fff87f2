//! The PostgreSQL backend against the shared conformance suite, on a real server the
//! test starts, plus what only a shared database has: several processes migrating and
//! appending at once, a restart of the server.

use headcount_model::UserKey;
use headcount_store::testing::{TestPostgres, login_at, workspace};
use headcount_store::{PostgresStore, Store, conformance};
use std::sync::Arc;

#[test]
fn postgres_store_passes_the_conformance_suite() {
    let pg = TestPostgres::new();
    conformance::run_all(&|| Box::new(PostgresStore::open(&pg.create_database()).expect("open")));
}

#[test]
fn stores_opening_a_fresh_database_together_migrate_it_once() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
        })
        .collect();
    for handle in opened {
        handle.join().expect("thread").expect("open together");
    }
    let store = PostgresStore::open(&url).expect("open");
    assert_eq!(store.catalog_version().expect("version"), 0);
    let (found, supported) = store.schema_version().expect("schema");
    assert_eq!(found, supported);
}

/// Appends of several writers at once: every position is used once, and a reader
/// following the log by position never skips a chunk that commits later.
#[test]
fn concurrent_appends_get_positions_in_commit_order_without_gaps() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let setup = PostgresStore::open(&url).expect("open");
    let ws = workspace(&setup, "acme");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = PostgresStore::open(&url).expect("open a writer");
            std::thread::spawn(move || {
                for i in 0..50 {
                    let user = UserKey::External(format!("w{w}-{i}"));
                    store
                        .append_facts(ws, &[(user, login_at(i))])
                        .expect("append");
                }
            })
        })
        .collect();
    // A follower reading while they write: what it has read once never grows behind it.
    let follower = Arc::new(PostgresStore::open(&url).expect("open the follower"));
    let mut seen = Vec::new();
    let mut position = 0;
    while seen.len() < 200 {
        position = follower
            .scan_facts_after(ws, position, &mut |u, _| seen.push(u.clone()))
            .expect("follow");
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(seen.len(), 200, "every fact read once while following");
    let mut all = Vec::new();
    follower
        .scan_facts(ws, &mut |u, _| all.push(u.clone()))
        .expect("scan");
    assert_eq!(all, seen, "the followed order is the log's order");
    assert_eq!(follower.last_fact_position().expect("position"), 200);
}

#[test]
fn the_store_reconnects_after_a_server_restart() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let store = PostgresStore::open(&url).expect("open");
    let ws = workspace(&store, "acme");
    let user = UserKey::External("u".into());
    store
        .append_facts(ws, &[(user.clone(), login_at(1))])
        .expect("append");
    pg.restart();
    // The pooled connection died with the server: the first call may fail, then the
    // pool opens a new one.
    let mut ok = false;
    for _ in 0..3 {
        if store
            .append_facts(ws, &[(user.clone(), login_at(2))])
            .is_ok()
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "appends work again after the restart");
    let mut n = 0;
    store.scan_facts(ws, &mut |_, _| n += 1).expect("scan");
    assert_eq!(n, 2);
}

/// The store is used from `spawn_blocking` by the server: the blocking client must
/// work there, and dropping the store inside an async task must not panic.
#[test]
fn the_store_works_from_spawn_blocking_and_drops_in_async_code() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let store = tokio::task::spawn_blocking(move || PostgresStore::open(&url))
            .await
            .expect("join")
            .expect("open");
        let store = Arc::new(store);
        let s = store.clone();
        let names = tokio::task::spawn_blocking(move || {
            workspace(s.as_ref(), "acme");
            s.workspaces()
        })
        .await
        .expect("join")
        .expect("list");
        assert_eq!(names[0].name, "acme");
        drop(store);
    });
}

#[test]
fn a_second_writer_of_the_database_is_refused_until_the_first_is_gone() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let first = PostgresStore::open(&url).expect("open");
    first.lock_writer().expect("the first writer");
    let second = PostgresStore::open(&url).expect("open next to it");
    match second.lock_writer() {
        Err(headcount_store::StoreError::DatabaseLocked { holder }) => {
            let holder = holder.expect("PostgreSQL shows the holder");
            assert!(
                holder.contains(&format!("(pid {})", std::process::id())),
                "{holder}"
            );
        }
        other => panic!("expected DatabaseLocked, got {other:?}"),
    }
    // Administration works next to the writer.
    workspace(&second, "acme");
    drop(first);
    // PostgreSQL frees the lock when its backend sees the connection closed, which
    // on a busy machine may take a moment after the drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = second.lock_writer() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock is free once its holder is gone: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
