//! `GET /metrics` and `X-Request-Id`: the exposition counts exactly what was served,
//! is valid Prometheus text, and request ids are kept or made.

#[allow(dead_code)] // shared with api.rs, which uses the rest of it
mod common;

use common::{TestServer, Ws, config};
use headcount_server::Config;
use headcount_store::{Permission, Store, keys};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// One sample: its metric name and labels (sorted), and its value.
type Sample = ((String, BTreeMap<String, String>), f64);

/// Parses a text exposition (Prometheus 0.0.4 / OpenMetrics text), failing on any
/// line that is not a comment, a descriptor or a well-formed sample; every sample
/// must belong to a family declared by a `# TYPE` line before it, and the text must
/// end with `# EOF`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the exposition ends with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            assert!(is_name(name), "bad metric name in {line:?}");
            match kind {
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "unknown",
                            "info"
                        ]
                        .contains(&t),
                        "bad type in {line:?}"
                    );
                    families.insert(name.to_string(), t.to_string());
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown descriptor {line:?}"),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(is_name(key), "bad label name {key:?} in {line:?}");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c)) => value.push(c),
                                None => panic!("bad escape in {line:?}"),
                            },
                            Some((i, '"')) => break i,
                            Some((_, c)) => value.push(c),
                            None => panic!("unclosed label value in {line:?}"),
                        }
                    };
                    labels.insert(key.to_string(), value);
                    rest = &after[end + 1..];
                    rest = rest.strip_prefix(',').unwrap_or(rest);
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad sample name in {line:?}");
        let family = ["_total", "_bucket", "_sum", "_count", "_created", ""]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                families.get(base).map(|t| (base, t))
            });
        assert!(family.is_some(), "sample of no declared family: {line:?}");
        samples.push(((name.to_string(), labels), value));
    }
    samples
}

/// The value of the sample `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|((n, l), _)| n == name && *l == labels)
        .map(|(_, v)| *v)
}

async fn scrape(server: &TestServer) -> (u16, String) {
    let response = server
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("GET /metrics");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

#[tokio::test]
async fn metrics_count_requests_facts_429s_and_rejected_keys_exactly() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws {
        name: "main",
        time_zone: "UTC",
        export_limit: 4,
        track_limit: 3_000,
    });
    let key = server.key(ws, &Permission::ALL, &[]);
    let track_only = server.key(ws, &[Permission::UsersTrack], &[]);
    let elsewhere = server.key(ws, &Permission::ALL, &["10.0.0.0/8"]);
    let revoked = server.key(ws, &Permission::ALL, &[]);
    assert!(
        server
            .store()
            .revoke_key(keys::public_id(&revoked), headcount_server::state::now())
            .expect("revoke")
    );
    server.serve().await;

    let now = jiff::Timestamp::now().to_string();
    server
        .post(
            &key,
            "/users/track",
            &json!({
                "attributes": [
                    {"external_id": "a", "plan": "pro"},
                    {"external_id": "b", "plan": "free"}
                ],
                "events": [{"external_id": "a", "name": "open", "time": now}],
                "purchases": [{"external_id": "c", "product_id": "p", "currency": "USD",
                               "price": 1.5, "time": now}]
            }),
        )
        .await
        .expect(201);
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "b", "name": "open", "time": now}]}),
        )
        .await
        .expect(201);
    // Four requests of the export bucket (limit 4), then a 429.
    let id = server
        .create_segment(
            &key,
            "pro",
            json!({"attribute": "plan", "op": "eq", "value": "pro"}),
        )
        .await;
    server
        .get(
            &key,
            &format!("/segments/data_series?segment_id={id}&length=2"),
        )
        .await
        .expect(200);
    server.get(&key, "/segments/list").await.expect(200);
    server
        .get(&key, &format!("/segments/details?segment_id={id}"))
        .await
        .expect(200);
    server.get(&key, "/segments/list").await.expect(429);
    // Keys refused: unknown, revoked, without the permission, from another address.
    server.get("nope", "/segments/list").await.expect(401);
    server.get(&revoked, "/segments/list").await.expect(401);
    server.get(&track_only, "/segments/list").await.expect(403);
    server.get(&elsewhere, "/segments/list").await.expect(403);
    // A route with a parameter is counted under its template; no route: `unmatched`.
    server
        .request(reqwest::Method::GET, "/console/segments/abc123")
        .send()
        .await
        .expect("GET a console page");
    server.get(&key, "/no/such/path").await.expect(404);

    // The daily job's catch-up pass runs in the background once the server is ready:
    // wait (up to 10 s) until it has recorded its day.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, text) = loop {
        let (status, text) = scrape(&server).await;
        if text.contains("headcount_last_stored_day_age_seconds{")
            || std::time::Instant::now() > deadline
        {
            break (status, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "{text}");
    let samples = parse_exposition(&text);
    let requests = |route: &str, method: &str, status: &str| {
        value(
            &samples,
            "headcount_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/users/track", "POST", "201"), Some(2.0));
    assert_eq!(requests("/segments/create", "POST", "201"), Some(1.0));
    assert_eq!(requests("/segments/data_series", "GET", "200"), Some(1.0));
    assert_eq!(requests("/segments/list", "GET", "200"), Some(1.0));
    assert_eq!(requests("/segments/list", "GET", "429"), Some(1.0));
    assert_eq!(requests("/segments/list", "GET", "401"), Some(2.0));
    assert_eq!(requests("/segments/list", "GET", "403"), Some(2.0));
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0));
    let console: Vec<&Sample> = samples
        .iter()
        .filter(|((n, l), _)| {
            n == "headcount_http_requests_total"
                && l.get("route")
                    .is_some_and(|r| r.starts_with("/console/segments"))
        })
        .collect();
    assert_eq!(console.len(), 1, "{console:?}");
    assert_eq!(console[0].0.1["route"], "/console/segments/{id}");
    assert!(!text.contains("abc123"), "the raw path is no label");
    assert_eq!(
        value(
            &samples,
            "headcount_http_request_duration_seconds_count",
            &[("route", "/users/track"), ("method", "POST")]
        ),
        Some(2.0)
    );
    let kind = |k: &str| value(&samples, "headcount_facts_ingested_total", &[("kind", k)]);
    assert_eq!(kind("attributes"), Some(2.0));
    assert_eq!(kind("event"), Some(2.0));
    assert_eq!(kind("purchase"), Some(1.0));
    assert_eq!(
        value(&samples, "headcount_writer_requests_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "headcount_writer_groups_total", &[]),
        Some(2.0),
        "each track waited for its commit: one group each"
    );
    assert_eq!(
        value(
            &samples,
            "headcount_writer_commit_duration_seconds_count",
            &[]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "headcount_rate_limited_total",
            &[("bucket", "export")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "headcount_rate_limited_total",
            &[("bucket", "track")]
        ),
        None
    );
    let rejected = |r: &str| value(&samples, "headcount_keys_rejected_total", &[("reason", r)]);
    assert_eq!(rejected("unknown"), Some(1.0));
    assert_eq!(rejected("revoked"), Some(1.0));
    assert_eq!(rejected("permission"), Some(1.0));
    assert_eq!(rejected("ip"), Some(1.0));
    let main = [("workspace", "main")];
    assert_eq!(value(&samples, "headcount_index_users", &main), Some(3.0));
    assert_eq!(value(&samples, "headcount_index_facts", &main), Some(3.0));
    assert!(value(&samples, "headcount_index_memory_bytes", &main).is_some_and(|b| b > 0.0));
    assert!(value(&samples, "headcount_backfill_segments_pending", &[]).is_some());
    assert_eq!(
        value(&samples, "headcount_daily_segments_pending", &[]),
        Some(0.0)
    );
    // The daily job's catch-up pass ran at start: the newest completed day (yesterday,
    // which ended at today's UTC midnight) is stored.
    let age = value(&samples, "headcount_last_stored_day_age_seconds", &main)
        .expect("the day's age is known once the catch-up pass ran");
    let since_midnight = (jiff::Timestamp::now().as_second() % 86_400) as f64;
    assert!(
        (age - since_midnight).abs() < 60.0,
        "{age} s since the last stored day, {since_midnight} s since midnight"
    );
    let families: BTreeSet<&str> = samples.iter().map(|((n, _), _)| n.as_str()).collect();
    assert!(families.contains("headcount_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn metrics_need_no_key_and_are_404_on_the_api_when_served_elsewhere() {
    let mut server = TestServer::new(config());
    server.workspace(Ws::named("main"));
    server.serve().await;
    let (status, text) = scrape(&server).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE headcount_http_requests counter"),
        "{text}"
    );
    server.stop().await;

    let mut elsewhere = TestServer::new(Config {
        metrics_on_api: false,
        ..config()
    });
    elsewhere.workspace(Ws::named("main"));
    elsewhere.serve().await;
    let (status, _) = scrape(&elsewhere).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_made_otherwise() {
    let (server, _key) = TestServer::simple().await;
    let id_of = |sent: Option<&str>| {
        let mut request = server.request(reqwest::Method::GET, "/healthz");
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let server = &server;
        async move {
            server
                .send(request, None)
                .await
                .header("x-request-id")
                .to_string()
        }
    };
    assert_eq!(id_of(Some("abc-123_X.y:z")).await, "abc-123_X.y:z");
    let made = id_of(None).await;
    assert_eq!(made.len(), 32, "{made}");
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
    assert_ne!(made, id_of(None).await, "each request gets its own id");
    for insane in ["has space", "quote\"d", &"x".repeat(65)] {
        let id = id_of(Some(insane)).await;
        assert_ne!(id, insane);
        assert_eq!(id.len(), 32, "{id}");
    }
    // Errors carry it too.
    let r = server
        .send(server.request(reqwest::Method::GET, "/nowhere"), None)
        .await;
    r.expect(404);
    assert_eq!(r.header("x-request-id").len(), 32);
}
