//! `serve` and `snapshot` for a workspace of engine `clickhouse`, on a two-shard
//! ClickHouse cluster started by the test: the same tracks and segments as a memory
//! workspace give the same `data_series` (backfilled history, a live today), the
//! same stored sizes after `snapshot`; a shard killed makes tracks answer 503 (with
//! `Retry-After`) while stored days still answer; restarted, everything works again.

#[allow(dead_code)]
mod common;

use common::{Server, TempDir, create_key, hc};
use headcount_clickhouse::testing::{CLUSTER, Cluster};
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

/// The same `/users/track` bodies for both workspaces: events over the last days,
/// attributes now.
fn bodies(now: Timestamp) -> Vec<Value> {
    let mut out = Vec::new();
    for u in 0..40 {
        let id = format!("u{u}");
        let mut events = Vec::new();
        for back in 0..(u % 6) {
            let time = now - (24 * back + 1 + u % 5).hours();
            events.push(json!({"external_id": id, "name": "login", "time": time.to_string()}));
        }
        let country = if u % 3 == 0 { "FR" } else { "DE" };
        out.push(json!({
            "attributes": [{"external_id": id, "country": country, "plan": if u % 2 == 0 { "pro" } else { "free" }}],
            "events": events,
        }));
    }
    out
}

fn filters() -> Vec<(&'static str, Value)> {
    vec![
        (
            "fr",
            json!({"attribute": "country", "op": "eq", "value": "FR"}),
        ),
        (
            "active",
            json!({"event": "login", "op": "gte", "value": 2, "within_days": 3}),
        ),
        (
            "pro-or-logged",
            json!({"any": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {"event": "login", "op": "gte", "value": 1, "within_days": 2}
            ]}),
        ),
    ]
}

fn series_of(server: &Server, key: &str, id: &str, query: &str) -> (u16, Value) {
    let answer = server.call(
        &format!("/segments/data_series?segment_id={id}&{query}"),
        key,
        None,
    );
    (answer.status, answer.body)
}

#[test]
fn a_clickhouse_workspace_serves_tracks_series_and_snapshots_like_a_memory_workspace() {
    let mut cluster = Cluster::start(2).unwrap_or_else(|e| panic!("{e}"));
    let urls = cluster.urls().join(",");
    // `serve` and `snapshot` read their ClickHouse from the environment.
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe {
        std::env::set_var("HEADCOUNT_CLICKHOUSE_URL", &urls);
        std::env::set_var("HEADCOUNT_CLICKHOUSE_CLUSTER", CLUSTER);
    }
    let dir = TempDir::new("clickhouse-serve");
    let data = dir.data();
    hc(&data, &["clickhouse", "init"]).ok();
    let mut keys = Vec::new();
    for (name, engine) in [("mem", "memory"), ("ch", "clickhouse")] {
        let create = [
            "workspaces",
            "create",
            name,
            "--time-zone",
            "Europe/Paris",
            "--engine",
            engine,
        ];
        hc(&data, &create).ok();
        keys.push(create_key(&data, name, "k", &[]));
    }
    let server = Server::start(&data, dir.path());
    let now = Timestamp::now();
    for body in bodies(now) {
        for key in &keys {
            let answer = server.call("/users/track", key, Some(&body));
            assert_eq!(answer.status, 201, "{answer:?}");
        }
    }
    // A deletion, in both.
    for key in &keys {
        let answer = server.call("/users/delete", key, Some(&json!({"external_ids": ["u3"]})));
        assert_eq!(answer.status, 202, "{answer:?}");
    }
    let mut ids: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for (name, filter) in filters() {
        for (k, key) in keys.iter().enumerate() {
            let created = server.call(
                "/segments/create",
                key,
                Some(&json!({"name": name, "filter": filter})),
            );
            assert_eq!(created.status, 201, "{created:?}");
            ids[k].push(created.body["segment_id"].as_str().expect("id").to_string());
        }
    }
    // Backfilled history and a live today, equal in both workspaces.
    let mut nonzero = 0;
    for (s, (m_id, c_id)) in ids[0].iter().zip(&ids[1]).enumerate() {
        let (m_status, memory) = series_of(&server, &keys[0], m_id, "length=8");
        let (c_status, clickhouse) = series_of(&server, &keys[1], c_id, "length=8");
        assert_eq!((m_status, c_status), (200, 200), "{memory} {clickhouse}");
        assert_eq!(memory["data"], clickhouse["data"], "segment {s}");
        nonzero += memory["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|p| p["size"].as_u64() > Some(0))
            .count();
    }
    assert!(nonzero >= 8, "the data should fill the segments: {nonzero}");
    // The preview too.
    let (_, filter) = &filters()[2];
    let previews: Vec<Value> = keys
        .iter()
        .map(|key| {
            let p = server.call("/segments/preview", key, Some(&json!({"filter": filter})));
            assert_eq!(p.status, 200, "{p:?}");
            p.body
        })
        .collect();
    assert_eq!(previews[0]["days"], previews[1]["days"]);
    assert_eq!(previews[0]["live_size"], previews[1]["live_size"]);

    // ClickHouse unavailable: a shard killed.
    cluster.shards[1].kill();
    let body = json!({"attributes": [{"external_id": "late", "country": "FR"}]});
    let refused = server.call("/users/track", &keys[1], Some(&body));
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.body["message"].as_str().is_some(), "{refused:?}");
    let (status, retry) = server.get_header(
        &format!("/segments/data_series?segment_id={}&length=1", ids[1][0]),
        &keys[1],
        "retry-after",
    );
    assert_eq!(
        (status, retry.as_deref()),
        (503, Some("5")),
        "a live today needs ClickHouse"
    );
    // Stored days still answer.
    // `ending_at` a date: the series ends the day before it (today in Paris).
    let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("Europe/Paris");
    let today = now.to_zoned(paris).strftime("%Y-%m-%d").to_string();
    let stored =
        |key: &str, id: &str| series_of(&server, key, id, &format!("length=4&ending_at={today}"));
    let (status, during) = stored(&keys[1], &ids[1][1]);
    assert_eq!(status, 200, "{during}");
    assert_eq!(during["data"], stored(&keys[0], &ids[0][1]).1["data"]);
    // The memory workspace does not depend on ClickHouse.
    assert_eq!(
        server.call("/users/track", &keys[0], Some(&body)).status,
        201
    );

    cluster.shards[1]
        .restart()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server.call("/users/track", &keys[1], Some(&body)).status,
        201
    );
    for (s, (m_id, c_id)) in ids[0].iter().zip(&ids[1]).enumerate() {
        let (_, memory) = series_of(&server, &keys[0], m_id, "length=8");
        let (c_status, clickhouse) = series_of(&server, &keys[1], c_id, "length=8");
        assert_eq!(c_status, 200, "{clickhouse}");
        assert_eq!(
            memory["data"], clickhouse["data"],
            "segment {s} after the restart"
        );
    }
    server.terminate();

    // `snapshot --recompute` stores the same sizes in both.
    let from = (now - (24 * 6).hours()).strftime("%Y-%m-%d").to_string();
    let to = (now - (24 * 2).hours()).strftime("%Y-%m-%d").to_string();
    for ws in ["mem", "ch"] {
        hc(
            &data,
            &[
                "snapshot",
                "--workspace",
                ws,
                "--from",
                &from,
                "--to",
                &to,
                "--recompute",
            ],
        )
        .ok();
    }
    let store = common::open_store(&data);
    use headcount_store::Store;
    for (s, (m_id, c_id)) in ids[0].iter().zip(&ids[1]).enumerate() {
        let sizes = |id: &str| -> Vec<(String, u64)> {
            let id = id.parse().expect("segment id");
            store
                .sizes(id, from.parse().expect("day"), to.parse().expect("day"))
                .expect("sizes")
                .iter()
                .map(|s| (s.day.to_string(), s.size))
                .collect()
        };
        let (m, c) = (sizes(m_id), sizes(c_id));
        assert_eq!(m.len(), 5, "{m:?}");
        assert_eq!(m, c, "segment {s}");
    }
}
