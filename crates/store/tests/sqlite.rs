//! The embedded backend against the shared conformance suite, plus what only an
//! on-disk data directory has: persistence, the single-writer lock, administration
//! next to the writer, migrations.

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
        Err(StoreError::Locked { dir: path, owner }) => {
            assert_eq!(path, dir);
            let owner = owner.expect("the holder wrote itself into LOCK");
            assert!(
                owner.starts_with(&format!("pid {}: headcount", std::process::id())),
                "{owner}"
            );
        }
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

#[test]
fn a_shared_store_administers_next_to_the_writer_but_never_appends() {
    let dir = temp_dir("shared");
    let writer = SqliteStore::open(&dir).expect("open the writer");
    let before = writer.catalog_version().expect("version");
    let admin = SqliteStore::open_shared(&dir).expect("open shared next to the writer");
    let ws = admin
        .create_workspace(&NewWorkspace {
            name: "acme".into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("create a workspace next to the writer");
    // The writer sees the change, and its version moved.
    assert_ne!(writer.catalog_version().expect("version"), before);
    assert_eq!(writer.workspaces().expect("list")[0].name, "acme");
    // The fact log keeps one writer.
    let user = headcount_model::UserKey::External("u1".into());
    let fact = headcount_model::Fact {
        time: "2024-01-01T00:00:00Z".parse().unwrap(),
        kind: headcount_model::FactKind::Event {
            name: "e".into(),
            detail: None,
        },
    };
    assert!(matches!(
        admin.append_facts(ws.id, &[(user.clone(), fact)]),
        Err(StoreError::NotWriter)
    ));
    assert!(matches!(
        admin.delete_users(ws.id, &[user]),
        Err(StoreError::NotWriter)
    ));
    drop(admin);
    drop(writer);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stores_opening_a_fresh_directory_together_migrate_it_once() {
    let dir = temp_dir("migrate-race");
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || SqliteStore::open_shared(&dir).map(|_| ()))
        })
        .collect();
    for handle in opened {
        handle.join().expect("thread").expect("open shared");
    }
    let store = SqliteStore::open(&dir).expect("open");
    assert_eq!(store.catalog_version().expect("version"), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn deletes_of_the_writer_survive_administration_committed_during_their_scan() {
    use headcount_model::{Fact, FactKind, UserKey};
    let dir = temp_dir("delete-vs-admin");
    let writer = SqliteStore::open(&dir).expect("open the writer");
    let ws = writer
        .create_workspace(&NewWorkspace {
            name: "acme".into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("workspace")
        .id;
    let fact = |i: u64| {
        (
            UserKey::External(format!("u{i}")),
            Fact {
                time: "2024-01-01T00:00:00Z".parse().unwrap(),
                kind: FactKind::Event {
                    name: "e".into(),
                    detail: None,
                },
            },
        )
    };
    for chunk in 0..200u64 {
        let facts: Vec<_> = (chunk * 50..chunk * 50 + 50).map(fact).collect();
        writer.append_facts(ws, &facts).expect("append");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let admin = SqliteStore::open_shared(&dir).expect("open shared");
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                admin
                    .create_workspace(&NewWorkspace {
                        name: format!("w{n}"),
                        time_zone: "UTC".into(),
                        export_limit: 1,
                        track_limit: 1,
                    })
                    .expect("administration next to the writer");
                n += 1;
                // A CLI commits now and then, not in a tight loop (which would starve
                // any other writer's busy handler).
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            n
        })
    };
    for i in 0..100u64 {
        let gone = writer
            .delete_users(ws, &[UserKey::External(format!("u{}", i * 97))])
            .expect("a delete next to administration");
        assert_eq!(gone, 1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(admin.join().expect("admin thread") > 0);
    let _ = std::fs::remove_dir_all(dir);
}
