//! The bound of SQLite's page cache (`SqliteStore::limit_page_cache`, which `serve`
//! sets): however much a connection writes, the pages it keeps stay under the bound,
//! where the default cache keeps filling.

use headcount_model::{Day, SegmentId};
use headcount_store::{SqliteStore, Store};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "headcount-page-cache-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Writes 200 segments' sizes of 200 days, one commit per segment (about 2 MB of
/// table and index pages), and returns the bytes of the page cache afterwards.
fn cache_after_writes(store: &SqliteStore) -> i64 {
    let at = "2024-08-01T00:00:00Z".parse().expect("instant");
    let days: Vec<(Day, u64)> = (0..200)
        .map(|d| (Day::ymd(2024, 1, 1).add_days(d), d as u64 * 7))
        .collect();
    for _ in 0..200 {
        store
            .put_sizes(SegmentId::new_random(), &days, at)
            .expect("put");
    }
    store.page_cache_bytes()
}

#[test]
fn a_limited_page_cache_stays_under_its_bound_while_the_default_one_fills() {
    let dir = temp_dir("limited");
    let store = SqliteStore::open(&dir).expect("open");
    store.limit_page_cache(64).expect("limit");
    assert_eq!(store.page_cache_limit_kib().expect("read"), 64);
    let limited = cache_after_writes(&store);
    drop(store);
    std::fs::remove_dir_all(&dir).expect("clean");

    let dir = temp_dir("default");
    let store = SqliteStore::open(&dir).expect("open");
    assert_eq!(store.page_cache_limit_kib().expect("read"), 2000);
    let default = cache_after_writes(&store);
    drop(store);
    std::fs::remove_dir_all(&dir).expect("clean");

    // 64 KiB of pages, with SQLite's few hundred bytes of bookkeeping per page.
    assert!(limited > 0, "the cache is in use: {limited}");
    assert!(
        limited <= 80 * 1024,
        "limited to 64 KiB, holds {limited} bytes"
    );
    assert!(
        default > 1024 * 1024,
        "the default cache would have kept over 1 MiB, holds {default} bytes"
    );
}
