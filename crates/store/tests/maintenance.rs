//! The embedded backend's maintenance: a backup is a data directory with the same
//! facts, written owner-only, never over an existing file; a chunk check reads a
//! range of positions and names each chunk that does not decode.

use headcount_model::{Fact, FactKind, Timestamp, UserKey};
use headcount_store::sqlite::create_backup_dir;
use headcount_store::{NewWorkspace, SqliteStore, Store, StoreError, Workspace};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "headcount-maintenance-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ping(user: &str, minute: i64) -> (UserKey, Fact) {
    let time = Timestamp::from_second(1_700_000_000 + minute * 60).expect("an instant");
    (
        UserKey::External(user.to_string()),
        Fact {
            time,
            kind: FactKind::Event {
                name: "ping".into(),
                detail: None,
            },
        },
    )
}

/// A store with workspace "acme" holding three chunks: u0; u1 and u2; u3.
fn three_chunks(store: &dyn Store) -> Workspace {
    let ws = store
        .create_workspace(&NewWorkspace {
            name: "acme".into(),
            time_zone: "UTC".into(),
            export_limit: 10,
            track_limit: 10,
        })
        .expect("a workspace");
    store.append_facts(ws.id, &[ping("u0", 0)]).expect("append");
    store
        .append_facts(ws.id, &[ping("u1", 1), ping("u2", 2)])
        .expect("append");
    store.append_facts(ws.id, &[ping("u3", 3)]).expect("append");
    ws
}

fn users(store: &SqliteStore, ws: &Workspace, after: u64, through: u64) -> Vec<String> {
    let mut seen = Vec::new();
    let check = store
        .check_chunks(ws.id, after, through, &mut |user, _| {
            if let UserKey::External(id) = user {
                seen.push(id.clone());
            }
        })
        .expect("check");
    assert!(check.faults.is_empty(), "{check:?}");
    assert_eq!(check.facts, seen.len() as u64);
    seen
}

#[test]
fn a_backup_holds_the_same_facts_in_an_owner_only_directory() {
    let root = temp_dir("backup");
    let store = SqliteStore::open(&root.join("data")).expect("open");
    let ws = three_chunks(&store);
    let dest = root.join("copy");
    create_backup_dir(&dest).expect("a backup directory");
    let summary = store.backup_into(&dest).expect("backup");
    assert_eq!(
        (summary.workspaces, summary.chunks, summary.facts),
        (1, 3, 4)
    );
    assert_eq!(
        summary.bytes,
        std::fs::metadata(dest.join("headcount.db"))
            .expect("the copy")
            .len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: PathBuf| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(dest.clone()), 0o700);
        assert_eq!(mode(dest.join("headcount.db")), 0o600);
    }

    // A second backup into the same directory never overwrites the first.
    match store.backup_into(&dest) {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    match create_backup_dir(&dest) {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("exists and is not empty"), "{message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let copy = SqliteStore::open(&dest).expect("the copy opens as a data directory");
    let copied = copy.workspaces().expect("workspaces");
    assert_eq!(copied.len(), 1);
    assert_eq!(
        users(&copy, &copied[0], 0, u64::MAX),
        ["u0", "u1", "u2", "u3"]
    );
    assert_eq!(users(&store, &ws, 0, u64::MAX), ["u0", "u1", "u2", "u3"]);
    drop((store, copy));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_chunk_check_reads_the_positions_asked_for() {
    let store = SqliteStore::in_memory().expect("open");
    let ws = three_chunks(&store);
    assert_eq!(users(&store, &ws, 1, 2), ["u1", "u2"]);
    assert_eq!(users(&store, &ws, 2, 3), ["u3"]);
    assert_eq!(users(&store, &ws, 3, u64::MAX), Vec::<String>::new());
    assert!(store.integrity_check().expect("integrity").is_empty());
}
