//! Stored daily sizes on two `serve` nodes of one PostgreSQL database: each node
//! answers `data_series` from its cache of stored sizes, and a segment edited on one
//! node is answered with its new sizes by the other within a second, never again with
//! the sizes of its old filter.

#[allow(dead_code)] // helpers other test files use
mod common;

use common::{Run, Server, TempDir, command, series};
use headcount_store::testing::TestPostgres;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn hcdb(data: &Path, url: &str, args: &[&str]) -> Run {
    let output = command(data)
        .env_remove("HEADCOUNT_DATABASE_URL")
        .args(["--database", url])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run headcount");
    Run::from(output)
}

/// The size of the day before yesterday in the segment's 3-day series.
fn two_days_ago(server: &Server, key: &str, segment: &str) -> u64 {
    series(server, key, segment, 3)[0].1
}

/// Waits until `server` knows the segment (a catalog change takes up to a second).
fn known(server: &Server, key: &str, segment: &str) {
    let started = Instant::now();
    let path = format!("/segments/details?segment_id={segment}");
    while server.call(&path, key, None).status != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "never known");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `server` answers `want`, at most `limit`; answers how long it took.
fn until(server: &Server, key: &str, segment: &str, want: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = two_days_ago(server, key, segment);
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {got}, not {want}, after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_segment_edited_on_one_node_is_answered_with_its_new_sizes_by_another_within_a_second() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("pg-sizes");
    let data = tmp.data();
    hcdb(&data, &url, &["workspaces", "create", "acme"]).ok();
    let key = hcdb(
        &data,
        &url,
        &["keys", "create", "--workspace", "acme", "--name", "ci"],
    )
    .ok()
    .stdout
    .trim_end()
    .to_string();
    let global = ["--database", url.as_str()];
    let a = Server::start_with(&data, tmp.path(), &global);
    let b = Server::start_with(&data, tmp.path(), &global);

    // Two days ago: three users pinged, one ponged.
    let then = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48)).to_string();
    let events: Vec<_> = [
        ("u1", "ping"),
        ("u2", "ping"),
        ("u3", "ping"),
        ("u4", "pong"),
    ]
    .iter()
    .map(|(user, name)| json!({"external_id": user, "name": name, "time": then}))
    .collect();
    let tracked = a.call("/users/track", &key, Some(&json!({ "events": events })));
    assert_eq!(tracked.status, 201, "{tracked:?}");
    let created = a.call(
        "/segments/create",
        &key,
        Some(&json!({"name": "s", "filter": {"event": "ping", "op": "gte", "value": 1}})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let segment = created.body["segment_id"]
        .as_str()
        .expect("an id")
        .to_string();
    until(&a, &key, &segment, 3, Duration::from_secs(5));
    known(&b, &key, &segment);
    until(&b, &key, &segment, 3, Duration::from_secs(5));

    for (event, want) in [("pong", 1), ("ping", 3), ("pong", 1)] {
        let updated = a.call(
            "/segments/update",
            &key,
            Some(&json!({"segment_id": segment,
                "filter": {"event": event, "op": "gte", "value": 1}})),
        );
        assert_eq!(updated.status, 200, "{updated:?}");
        assert_eq!(two_days_ago(&a, &key, &segment), want, "read your writes");
        let took = until(&b, &key, &segment, want, Duration::from_secs(1));
        // And it stays: no stale size comes back from a cache.
        for _ in 0..20 {
            assert_eq!(two_days_ago(&b, &key, &segment), want, "after {took:?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    assert_eq!(a.terminate().code(), Some(0));
    assert_eq!(b.terminate().code(), Some(0));
}
