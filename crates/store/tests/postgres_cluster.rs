//! What several nodes on one PostgreSQL database rely on: appends answering their own
//! positions, the log read across workspaces by position, rate-limit windows counted
//! atomically, and an unreachable server reported as `StoreError::Unavailable`.

use headcount_model::{Fact, UserKey, WorkspaceId};
use headcount_store::postgres::RateCounter;
use headcount_store::testing::{TestPostgres, login_at, workspace};
use headcount_store::{PostgresStore, Receipts, Result, Store, StoreError};
use std::collections::BTreeMap;

#[test]
fn concurrent_appends_answer_their_own_positions_and_the_log_reads_them_back() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let setup = PostgresStore::open(&url).expect("open");
    let (a, b) = (workspace(&setup, "a"), workspace(&setup, "b"));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = PostgresStore::open(&url).expect("open a writer");
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..25 {
                    let ua = vec![(UserKey::External(format!("a{w}-{i}")), login_at(i))];
                    let ub = vec![(UserKey::External(format!("b{w}-{i}")), login_at(i))];
                    let empty: Vec<(UserKey, Fact)> = Vec::new();
                    let batches = [
                        (a, ua.as_slice()),
                        (b, empty.as_slice()),
                        (b, ub.as_slice()),
                    ];
                    let range = store
                        .append_batches_at(&batches, Receipts::default())
                        .expect("append")
                        .expect("positions");
                    mine.push((range, format!("{w}-{i}")));
                }
                mine
            })
        })
        .collect();
    let mut ranges: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    for w in writers {
        for ((first, last), name) in w.join().expect("writer") {
            assert_eq!(last, first + 1, "two chunks written, consecutive");
            assert!(
                ranges.insert(first, (last, name)).is_none(),
                "a position used twice"
            );
        }
    }
    // The log by position: each append's chunks where it said, in its order.
    let mut chunks: BTreeMap<u64, (WorkspaceId, String)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let last = setup
            .scan_log_after(after, 7, &mut |ws, position, user, _| {
                let UserKey::External(id) = user else {
                    panic!("an external id")
                };
                chunks.insert(position, (ws, id.clone()));
            })
            .expect("scan the log");
        if last == after {
            break;
        }
        after = last;
    }
    assert_eq!(chunks.len(), 200);
    assert_eq!(after, 200);
    for (first, (last, name)) in &ranges {
        assert_eq!(chunks[first], (a, format!("a{name}")));
        assert_eq!(chunks[last], (b, format!("b{name}")));
    }
}

#[test]
fn rate_windows_in_the_database_count_every_hit_once_across_counters() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let ws = workspace(&PostgresStore::open(&url).expect("open"), "acme");
    let setup = Counter::new(&url);
    let counters: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = Counter::new(&url);
                (0..25)
                    .map(|_| store.count(ws, "track", 3000, 1).expect("hit"))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut counts: Vec<u64> = counters
        .into_iter()
        .flat_map(|c| c.join().expect("counter"))
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=100).collect::<Vec<u64>>(),
        "each hit its own count"
    );
    assert_eq!(setup.count(ws, "track", 3000, 0).expect("read"), 100);
    assert_eq!(setup.count(ws, "export", 3000, 0).expect("read"), 0);
    // A new window starts at 1 and forgets the old one.
    assert_eq!(setup.count(ws, "track", 3003, 1).expect("hit"), 1);
    assert_eq!(setup.count(ws, "track", 3000, 0).expect("read"), 0);
}

#[test]
fn a_batch_of_hits_takes_a_range_of_counts_and_stays_exact_beside_single_hits() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let ws = workspace(&PostgresStore::open(&url).expect("open"), "acme");
    let setup = Counter::new(&url);
    // A first batch opens the window (and clears the older one), later ones add up.
    assert_eq!(setup.count(ws, "export", 10, 3).expect("hit"), 3);
    assert_eq!(setup.count(ws, "export", 20, 5).expect("hit"), 5);
    assert_eq!(setup.count(ws, "export", 10, 0).expect("read"), 0);
    let batches: Vec<_> = (0..4)
        .map(|n| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = Counter::new(&url);
                (0..10)
                    .map(|_| store.count(ws, "export", 20, n + 1).expect("hit"))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let ends: Vec<Vec<u64>> = batches
        .into_iter()
        .map(|b| b.join().expect("batch"))
        .collect();
    // 5 + 10 × (1 + 2 + 3 + 4) counted, every batch's range distinct.
    assert_eq!(setup.count(ws, "export", 20, 0).expect("read"), 105);
    let mut taken: Vec<u64> = ends
        .iter()
        .enumerate()
        .flat_map(|(n, e)| e.iter().flat_map(move |end| (end - n as u64)..=*end))
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, (6..=105).collect::<Vec<u64>>());
}

#[test]
fn an_unreachable_server_is_reported_unavailable_and_recovered_from() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let store = PostgresStore::open(&url).expect("open");
    let ws = workspace(&store, "acme");
    pg.stop();
    let user = UserKey::External("u".into());
    match store.append_facts(ws, &[(user.clone(), login_at(1))]) {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match store.catalog_version() {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    pg.start();
    assert!(store.append_facts(ws, &[(user, login_at(2))]).is_ok());
    let mut n = 0;
    store.scan_facts(ws, &mut |_, _| n += 1).expect("scan");
    assert_eq!(n, 1, "the append refused while down was not committed");
}

/// A [`RateCounter`] driven by a runtime of its own, for the threads of a test.
struct Counter {
    runtime: tokio::runtime::Runtime,
    counter: RateCounter,
}

impl Counter {
    fn new(url: &str) -> Counter {
        Counter {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            counter: RateCounter::new(url).expect("url"),
        }
    }

    fn count(&self, ws: WorkspaceId, bucket: &str, start: u64, hits: u64) -> Result<u64> {
        self.runtime
            .block_on(self.counter.count(ws, bucket, start, hits))
    }
}
