//! The data directory is private to its owner: created owner-only, and refused when
//! other users could write it.

#![cfg(unix)]

use headcount_store::{NewWorkspace, SqliteStore, Store, StoreError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headcount-perm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_new_data_directory_and_its_files_are_owner_only() {
    let root = temp_dir("modes");
    let dir = root.join("nested").join("data");
    let store = SqliteStore::open(&dir).expect("open");
    store
        .create_workspace(&NewWorkspace {
            name: "w".into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("a write, so that the WAL exists");
    assert_eq!(mode(&root.join("nested")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "LOCK",
        "headcount.db",
        "headcount.db-wal",
        "headcount.db-shm",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_directory_that_others_can_write_is_refused_with_the_fix() {
    for (name, bits) in [("group", 0o770), ("others", 0o702), ("both", 0o777)] {
        let dir = temp_dir(name);
        std::fs::create_dir_all(&dir).expect("create");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(bits)).expect("chmod");
        match SqliteStore::open(&dir) {
            Err(e @ StoreError::Unsafe(..)) => {
                let message = e.to_string();
                assert_eq!(
                    message,
                    format!(
                        "the data directory {d} can be written by other users (mode {bits:04o}); \
make it owner-only with `chmod go-w {d}` (or `chmod 700 {d}`)",
                        d = dir.display()
                    )
                );
            }
            other => panic!("{name}: expected Unsafe, got {:?}", other.err()),
        }
        assert!(!dir.join("LOCK").exists(), "{name}: nothing created");
        // A directory only its owner writes (here 0755) is accepted.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        SqliteStore::open(&dir).expect("open once fixed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
