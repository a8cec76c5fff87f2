//! Rate-limit windows counted in PostgreSQL through [`PostgresCounter`]: concurrent
//! requests share round trips, and the window stays exact across nodes — every hit
//! its own count, exactly `limit` allowed, however the hits were batched.

use headcount_model::WorkspaceId;
use headcount_service::limits::WindowCounter;
use headcount_service::ratelimit::Bucket;
use headcount_service::store_counter::PostgresCounter;
use headcount_store::testing::TestPostgres;
use headcount_store::{NewWorkspace, PostgresStore, Store};
use std::sync::Arc;

const LIMIT: u64 = 150;

#[test]
fn two_nodes_allow_exactly_the_limit_and_give_every_hit_its_own_count() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let open = || -> Arc<dyn Store> { Arc::new(PostgresStore::open(&url).expect("open")) };
    let setup = open();
    let ws: WorkspaceId = setup
        .create_workspace(&NewWorkspace {
            name: "w".into(),
            time_zone: "UTC".into(),
            export_limit: LIMIT,
            track_limit: LIMIT,
        })
        .expect("workspace")
        .id;
    let nodes = [
        Arc::new(PostgresCounter::postgres(&url).expect("url")),
        Arc::new(PostgresCounter::postgres(&url).expect("url")),
    ];
    // The blocking PostgreSQL client is opened outside the runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // 2 nodes × 100 concurrent hits of one window (start 3600 of a 3600 s window).
        let mut tasks = Vec::new();
        for node in &nodes {
            for _ in 0..100 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    node.count((ws, Bucket::Export), LIMIT, 3600, 3700, true)
                        .await
                        .expect("counted")
                }));
            }
        }
        let mut windows = Vec::new();
        for task in tasks {
            windows.push(task.await.expect("task"));
        }
        let allowed = windows.iter().filter(|w| !w.exceeded).count();
        assert_eq!(allowed as u64, LIMIT, "exactly the limit allowed");
        // Each hit took its own count: the remaining values of the allowed hits are
        // LIMIT-1 down to 0, each once.
        let mut remaining: Vec<u64> = windows
            .iter()
            .filter(|w| !w.exceeded)
            .map(|w| w.remaining)
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..LIMIT).collect::<Vec<u64>>());
        assert!(windows.iter().all(|w| w.reset == 7200 && w.limit == LIMIT));
        // A read sees the 200 hits and counts nothing.
        let read = nodes[0]
            .count((ws, Bucket::Export), LIMIT, 3600, 3700, false)
            .await
            .expect("read");
        assert_eq!((read.remaining, read.exceeded), (0, false));
        // The database holds the 200 hits, each counted once.
        let stored = nodes[1]
            .windows()
            .count(ws, "export", 3600, 0)
            .await
            .expect("stored count");
        assert_eq!(stored, 200);
    });
}

/// A large limit, leases allowed: a node reserves leases of counts that its next hits take without
/// a round trip, each hit still with its own count; near the end of the window
/// every count up to the limit is taken, and exactly the limit is allowed across two
/// nodes.
#[test]
fn far_from_a_large_limit_hits_take_leased_counts_and_the_limit_stays_exact() {
    use headcount_service::batched_counter::lease_size;
    const LEASE: u64 = 256;
    const BIG: u64 = 1000 * LEASE;
    assert_eq!(lease_size(BIG, LEASE), LEASE);
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let setup: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).expect("open"));
    let ws: WorkspaceId = setup
        .create_workspace(&NewWorkspace {
            name: "w".into(),
            time_zone: "UTC".into(),
            export_limit: BIG,
            track_limit: BIG,
        })
        .expect("workspace")
        .id;
    let nodes = [
        PostgresCounter::postgres(&url).expect("url").leasing(LEASE),
        PostgresCounter::postgres(&url).expect("url").leasing(LEASE),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stored = |start| nodes[1].windows().count(ws, "export", start, 0);
        let hit = |node: usize, now| nodes[node].count((ws, Bucket::Export), BIG, 3600, now, true);
        // One node alone: its leases follow each other, so the hits take the counts
        // 1, 2, 3, … in order, and the database holds them plus what the node has
        // reserved and not yet taken (under one and a half leases).
        const HITS: u64 = 10 * LEASE;
        for i in 1..=HITS {
            let w = hit(0, 3700).await.expect("hit");
            assert_eq!((w.remaining, w.exceeded), (BIG - i, false), "hit {i}");
        }
        let held = stored(3600).await.expect("stored") - HITS;
        assert!(held < LEASE * 3 / 2, "{held} counts reserved ahead");

        // A window near its limit: two nodes alternating are allowed exactly the
        // limit, every allowed hit with its own count, and no count is lost (the
        // leases their first round trips took are used by their next hits).
        let before = BIG - BIG / 10 - 5;
        nodes[0]
            .windows()
            .count(ws, "export", 7200, before)
            .await
            .expect("preset");
        let mut remaining = Vec::new();
        for i in 0..(BIG - before + 50) {
            let w = hit((i % 2) as usize, 7300).await.expect("hit");
            if !w.exceeded {
                remaining.push(w.remaining);
            }
        }
        remaining.sort_unstable();
        assert_eq!(remaining, (0..BIG - before).collect::<Vec<u64>>());
        assert_eq!(stored(7200).await.expect("stored"), BIG + 50);

        // Without leases (the default), two nodes alternating on the same large
        // limit take consecutive counts.
        let exact = [
            PostgresCounter::postgres(&url).expect("url"),
            PostgresCounter::postgres(&url).expect("url"),
        ];
        for i in 1..=100 {
            let node = &exact[(i % 2) as usize];
            let w = node
                .count((ws, Bucket::Export), BIG, 3600, 10_900, true)
                .await
                .expect("hit");
            assert_eq!(w.remaining, BIG - i, "hit {i}");
        }
    });
}
