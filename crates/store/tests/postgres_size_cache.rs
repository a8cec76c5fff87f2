//! The PostgreSQL store's cache of stored sizes, exact across nodes: a size stored or
//! cleared through one store (node A) is what another store on the same database
//! (node B) answers from memory within a second, never a stale size; and the cache is
//! not used while its listener is down.

use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::testing::TestPostgres;
use headcount_store::{PostgresStore, Store};
use std::time::{Duration, Instant};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_714_608_000 + second).expect("instant")
}

/// What B answers from memory for `day`: `None` when it cannot answer from memory,
/// `Some(None)` for no stored size.
fn in_memory(store: &PostgresStore, segment: SegmentId, day: Day) -> Option<Option<u64>> {
    let mut found = None;
    store
        .sizes_in_memory(segment, day, day, &mut |s| found = Some(s.size))
        .then_some(found)
}

/// Reads B's sizes (through the cache) until it answers `want` from memory, at most
/// `within`; answers how long it took.
fn until_seen(
    store: &PostgresStore,
    segment: SegmentId,
    day: Day,
    want: Option<u64>,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let read = store.sizes(segment, day, day).expect("read");
        let memory = in_memory(store, segment, day);
        if memory == Some(want) && read.first().map(|s| s.size) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "B still answers {read:?} (from memory: {memory:?}), not {want:?}, after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn listening(store: &PostgresStore) {
    let started = Instant::now();
    while !store.size_cache_listening() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_size_stored_or_cleared_on_one_node_is_answered_by_another_from_memory_within_a_second() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let (a, b) = (
        PostgresStore::open(&url).expect("node A"),
        PostgresStore::open(&url).expect("node B"),
    );
    let segment = SegmentId::new_random();
    let day = Day::ymd(2024, 5, 1);
    b.sizes(segment, day, day)
        .expect("B reads once: its listener starts");
    listening(&b);
    until_seen(&b, segment, day, None, Duration::from_secs(1));
    assert_eq!(b.cached_size_segments(), 1);

    a.put_sizes(segment, &[(day, 7)], at(0)).expect("A stores");
    until_seen(&b, segment, day, Some(7), Duration::from_secs(1));
    a.put_sizes(segment, &[(day, 9)], at(1))
        .expect("A recomputes");
    until_seen(&b, segment, day, Some(9), Duration::from_secs(1));
    assert_eq!(b.last_computed_at(segment).expect("newest"), Some(at(1)));
    a.clear_sizes(segment)
        .expect("A clears (the segment was edited)");
    until_seen(&b, segment, day, None, Duration::from_secs(1));
    assert_eq!(b.last_computed_at(segment).expect("newest"), None);

    // Read your writes: the node that stores answers it at once.
    b.put_sizes(segment, &[(day, 11)], at(2)).expect("B stores");
    assert_eq!(b.sizes(segment, day, day).expect("read")[0].size, 11);
    until_seen(&a, segment, day, Some(11), Duration::from_secs(1));
}

#[test]
fn sizes_changed_while_another_node_reads_leave_it_no_stale_size() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let (a, b) = (
        PostgresStore::open(&url).expect("node A"),
        PostgresStore::open(&url).expect("node B"),
    );
    let segment = SegmentId::new_random();
    let day = Day::ymd(2024, 5, 1);
    b.sizes(segment, day, day).expect("read");
    listening(&b);
    let last = 300;
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 1..=last {
                a.put_sizes(segment, &[(day, n)], at(n as i64))
                    .expect("A stores");
                if n % 50 == 25 {
                    a.clear_sizes(segment).expect("A clears");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let _ = b.sizes(segment, day, day).expect("B reads");
            if a.sizes(segment, day, day)
                .expect("A reads")
                .first()
                .map(|s| s.size)
                == Some(last)
            {
                break;
            }
        }
    });
    // Every racing load was dropped or its entry removed: B ends on the last size.
    until_seen(&b, segment, day, Some(last), Duration::from_secs(1));
}

#[test]
fn the_cache_is_not_used_while_its_listener_is_down_and_reset_when_it_is_back() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let (a, b) = (
        PostgresStore::open(&url).expect("node A"),
        PostgresStore::open(&url).expect("node B"),
    );
    let segment = SegmentId::new_random();
    let day = Day::ymd(2024, 5, 1);
    a.put_sizes(segment, &[(day, 1)], at(0)).expect("A stores");
    b.sizes(segment, day, day).expect("read");
    listening(&b);
    until_seen(&b, segment, day, Some(1), Duration::from_secs(1));

    // Cut B's listener: it may miss notifications until it listens again.
    let cut: i64 = terminate(&url, "LISTEN headcount_sizes");
    assert_eq!(cut, 1, "one listener (B's) cut");
    let started = Instant::now();
    while b.size_cache_listening() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    a.put_sizes(segment, &[(day, 2)], at(1))
        .expect("A stores while B is deaf");
    // Whether B has noticed yet or not, it never answers the old size for long; once
    // listening again its cache starts empty.
    until_seen(&b, segment, day, Some(2), Duration::from_secs(5));
    listening(&b);
    until_seen(&b, segment, day, Some(2), Duration::from_secs(1));
}

/// Terminates the backends whose last statement was `statement`; answers how many.
fn terminate(url: &str, statement: &str) -> i64 {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE query = $1 AND pid <> pg_backend_pid()",
                &[&statement],
            )
            .expect("terminate")
            .get(0)
    })
    .join()
    .expect("the thread")
}
