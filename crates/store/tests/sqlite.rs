//! The embedded backend against the shared conformance suite, plus what only an
//! on-disk data directory has: persistence, the single-owner lock, migrations.

use headcount_model::Day;
use headcount_store::{NewWorkspace, SqliteStore, Store, StoreError, conformance};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headcount-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn in_memory_store_passes_the_conformance_suite() {
    conformance::run_all(&|| Box::new(SqliteStore::in_memory().expect("open")));
}

#[test]
fn on_disk_store_passes_the_conformance_suite() {
    let root = temp_dir("conformance");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(&|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(SqliteStore::open(&root.join(n.to_string())).expect("open"))
    });
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_second_owner_of_the_data_directory_is_refused() {
    let dir = temp_dir("lock");
    let first = SqliteStore::open(&dir).expect("open");
    match SqliteStore::open(&dir) {
        Err(StoreError::Locked(path)) => assert_eq!(path, dir),
        other => panic!("expected Locked, got {:?}", other.err()),
    }
    drop(first);
    SqliteStore::open(&dir).expect("reopen after the owner is gone");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn data_survives_reopening() {
    let dir = temp_dir("reopen");
    {
        let store = SqliteStore::open(&dir).expect("open");
        let ws = store
            .create_workspace(&NewWorkspace {
                name: "acme".into(),
                time_zone: "UTC".into(),
                export_limit: 1,
                track_limit: 1,
            })
            .expect("workspace");
        let seg = headcount_model::SegmentId::new_random();
        store
            .put_sizes(
                seg,
                &[(Day::ymd(2024, 5, 1), 42)],
                "2024-05-02T00:00:00Z".parse().unwrap(),
            )
            .expect("sizes");
        assert_eq!(ws.name, "acme");
        let store2 = SqliteStore::open(&dir);
        assert!(store2.is_err());
        drop(store);
        let store = SqliteStore::open(&dir).expect("reopen");
        assert_eq!(store.workspaces().expect("list")[0].name, "acme");
        assert_eq!(
            store
                .sizes(seg, Day::ymd(2024, 5, 1), Day::ymd(2024, 5, 1))
                .expect("sizes")[0]
                .size,
            42
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_data_directory_from_a_newer_headcount_is_refused() {
    let dir = temp_dir("newer");
    drop(SqliteStore::open(&dir).expect("open"));
    let conn = rusqlite::Connection::open(SqliteStore::database_path(&dir)).expect("raw open");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&dir),
        Err(StoreError::TooNew { found: 999, .. })
    ));
    let _ = std::fs::remove_dir_all(dir);
}
