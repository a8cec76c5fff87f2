//! What several nodes share: the node name in `/readyz`, and rate-limit windows
//! counted in a real Redis (Debian's `redis-server`, started here on a free loopback
//! port in a temporary directory, killed at the end).

#[allow(dead_code)] // helpers other test files use
mod common;

use common::{TestServer, Ws, config};
use headcount_service::limits::{RedisCounter, WindowCounter};
use headcount_store::Permission;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `redis-server` of this test alone.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("headcount-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with \
                     `apt-get install -y redis-server`"
                )
            });
        let redis = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn counter(&self) -> Arc<dyn WindowCounter> {
        Arc::new(RedisCounter::new(&self.url()).expect("a Redis URL"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node of its own data directory, its one workspace limited to `limit` export
/// requests an hour, counting in `counter`.
async fn node(counter: Option<Arc<dyn WindowCounter>>, limit: u64) -> (TestServer, String) {
    let mut server = TestServer::new(headcount_server::Config {
        counter,
        ..config()
    });
    let ws = server.workspace(Ws {
        export_limit: limit,
        ..Ws::named("main")
    });
    let key = server.key(ws, &Permission::ALL, &[]);
    server.serve().await;
    (server, key)
}

#[tokio::test]
async fn readyz_names_the_node_while_loading_and_when_ready() {
    let mut server = TestServer::new(headcount_server::Config {
        node_name: "node-a".into(),
        ..config()
    });
    server.serve_unloaded().await;
    let loading = server
        .send(server.request(reqwest::Method::GET, "/readyz"), None)
        .await;
    assert_eq!(loading.status, 503);
    assert_eq!(loading.body["node"], "node-a");
    server.start_loading();
    server.wait_ready().await;
    let ready = server
        .send(server.request(reqwest::Method::GET, "/readyz"), None)
        .await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["message"], "ready");
    assert_eq!(ready.body["node"], "node-a");
}

#[tokio::test]
async fn a_limit_is_one_limit_across_two_nodes_sharing_redis() {
    let redis = Redis::start();
    let (a, key_a) = node(Some(redis.counter()), 10).await;
    let (b, key_b) = node(Some(redis.counter()), 10).await;
    // 15 requests at each node at once: 10 allowed in all, not 10 per node.
    let mut requests = Vec::new();
    for i in 0..30 {
        let (server, key) = if i % 2 == 0 {
            (&a, &key_a)
        } else {
            (&b, &key_b)
        };
        requests.push(server.get(key, "/segments/list"));
    }
    let answers = futures_join_all(requests).await;
    let allowed: Vec<_> = answers.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!((allowed.len(), refused.len()), (10, 20), "{answers:?}");
    let mut remaining: Vec<u64> = allowed
        .iter()
        .map(|r| r.header("x-ratelimit-remaining").parse().expect("a number"))
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u64>>(), "one count each");
    let now = headcount_server::state::now().as_second() as u64;
    let hour_end = (now / 3600 + 1) * 3600;
    for answer in &answers {
        assert_eq!(answer.header("x-ratelimit-limit"), "10");
        let reset: u64 = answer
            .header("x-ratelimit-reset")
            .parse()
            .expect("a number");
        assert!(
            reset == hour_end || reset == hour_end + 3600,
            "reset {reset}"
        );
    }
    for answer in refused {
        assert_eq!(answer.header("x-ratelimit-remaining"), "0");
        assert!(
            answer
                .header("retry-after")
                .parse::<u64>()
                .expect("seconds")
                >= 1
        );
    }
    // Without Redis, the same two nodes would each allow 10: the counting above was
    // shared.
    let (c, key_c) = node(None, 10).await;
    let (d, key_d) = node(None, 10).await;
    let mut local = 0;
    for _ in 0..15 {
        local += u32::from(c.get(&key_c, "/segments/list").await.status == 200);
        local += u32::from(d.get(&key_d, "/segments/list").await.status == 200);
    }
    assert_eq!(local, 20);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_503_with_retry_after_never_a_hang() {
    let mut redis = Redis::start();
    let (server, key) = node(Some(redis.counter()), 100).await;
    server.get(&key, "/segments/list").await.expect(200);
    redis.kill();
    let started = Instant::now();
    let answer = server.get(&key, "/segments/list").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), "1");
    assert_eq!(
        answer.message(),
        "Service Unavailable: the rate-limit counters cannot be reached, retry shortly"
    );
    // /users/track too.
    let track = server
        .post(&key, "/users/track", &serde_json::json!({"attributes": []}))
        .await;
    assert_eq!(track.status, 503, "{track:?}");
}

/// Awaits every future, concurrently.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    // A join set would need 'static futures; these borrow the servers.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[tokio::test]
async fn a_segments_daily_sizes_wait_for_the_lease_another_node_holds() {
    let (server, key) = node(None, 1000).await;
    let store = server.store();
    let now = headcount_server::state::now();
    let id: headcount_model::SegmentId = server
        .create_segment(&key, "all", serde_json::json!({"all": []}))
        .await
        .parse()
        .expect("a segment id");
    let state = server.state();
    // Let the creation's backfill finish, then forget what it stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while headcount_server::jobs::fill_segment(&state, id, 3).expect("fill") != 0
        || state.backfills.try_lock().is_err()
    {
        assert!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    headcount_store::Store::clear_sizes(store, id).expect("clear");
    let lease = headcount_service::leases::sizes_lease(id);
    let ttl = Duration::from_secs(60);
    assert!(
        headcount_store::Store::try_lease(store, &lease, "other-node", now, ttl).expect("lease")
    );
    assert_eq!(
        headcount_server::jobs::fill_segment(&state, id, 3).expect("fill"),
        0,
        "held by another node: skipped"
    );
    let far = jiff::Timestamp::from_second(0).expect("epoch");
    let stored = headcount_store::Store::sizes(
        store,
        id,
        headcount_model::Day::containing(far, &jiff::tz::TimeZone::UTC),
        headcount_model::Day::containing(now, &jiff::tz::TimeZone::UTC),
    )
    .expect("sizes");
    assert!(stored.is_empty(), "{stored:?}");
    // Its node dies: once the lease expires, this node takes the job over.
    headcount_store::Store::release_lease(store, &lease, "other-node").expect("release");
    assert!(
        headcount_store::Store::try_lease(store, &lease, "other-node", now, Duration::ZERO)
            .expect("lease")
    );
    assert_eq!(
        headcount_server::jobs::fill_segment(&state, id, 3).expect("fill"),
        3,
        "an expired lease is taken over"
    );
    // And given back: the other node may take it at once.
    assert!(
        headcount_store::Store::try_lease(
            store,
            &lease,
            "other-node",
            headcount_server::state::now(),
            ttl
        )
        .expect("lease")
    );
}
