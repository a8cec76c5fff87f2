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

fn chunk_rows(dir: &std::path::Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(SqliteStore::database_path(dir)).expect("raw open");
    let (rows, max): (i64, i64) = conn
        .query_row("SELECT count(*), max(id) FROM fact_chunks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("chunks");
    let pending: i64 = conn
        .query_row("SELECT count(*) FROM fact_purges", [], |r| r.get(0))
        .expect("purges");
    (rows, max, pending)
}

#[test]
fn an_interrupted_purge_resumes_after_reopening_and_never_deletes_a_chunk_row() {
    use headcount_model::{Fact, FactKind, Timestamp, UserKey};
    let dir = temp_dir("purge");
    let gone = UserKey::External("gone".into());
    let kept = UserKey::External("kept".into());
    let event = |user: &UserKey, second: i64, kind: FactKind| {
        let time = Timestamp::from_second(1_700_000_000 + second).expect("time");
        (user.clone(), Fact { time, kind })
    };
    let login = || FactKind::Event {
        name: "login".into(),
        detail: None,
    };
    let ws;
    {
        let store = SqliteStore::open(&dir).expect("open");
        ws = store
            .create_workspace(&NewWorkspace {
                name: "acme".into(),
                time_zone: "UTC".into(),
                export_limit: 1,
                track_limit: 1,
            })
            .expect("workspace")
            .id;
        for i in 0..40 {
            let mut facts = vec![event(&gone, i, login())];
            if i % 2 == 0 {
                facts.push(event(&kept, i, login()));
            }
            store.append_facts(ws, &facts).expect("append");
        }
        // The last chunk (the largest id) ends up holding its deletion entry only.
        store
            .append_facts(
                ws,
                &[
                    event(&gone, 50, login()),
                    event(&gone, 51, FactKind::Deletion),
                ],
            )
            .expect("append the deletion");
        assert!(store.purge_step().expect("one step"), "a purge was pending");
    }
    let (rows, max, pending) = chunk_rows(&dir);
    assert_eq!(
        (rows, max, pending),
        (41, 41, 1),
        "interrupted after a step"
    );
    {
        let store = SqliteStore::open(&dir).expect("reopen");
        let steps = conformance::purge_all(&store);
        assert!(steps >= 2, "the purge went in several steps ({steps})");
        let mut facts = Vec::new();
        store
            .scan_facts(ws, &mut |u, f| facts.push((u.clone(), f)))
            .expect("scan");
        let of = |user: &UserKey| facts.iter().filter(|(u, _)| u == user).count();
        assert_eq!(of(&kept), 20);
        assert_eq!(of(&gone), 1);
        assert!(matches!(facts.last(), Some((u, f)) if *u == gone && f.kind == FactKind::Deletion));
    }
    assert_eq!(
        chunk_rows(&dir),
        (41, 41, 0),
        "rows rewritten, none deleted"
    );
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
