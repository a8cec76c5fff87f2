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
