//! `POST /segments/preview`: a filter's sizes, today and over the last 30 completed
//! days, computed without storing anything, with create's validation and permission.

#[allow(dead_code)]
mod common;

use common::{TestServer, Ws};
use headcount_store::Permission;
use jiff::ToSpan;
use serde_json::{Value, json};

/// `n` days before today's UTC midnight, at 12:00.
fn days_ago_noon(n: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let day = today.checked_sub(n.days()).unwrap();
    format!("{day}T12:00:00Z")
}

fn points(body: &Value) -> Vec<(String, u64)> {
    body["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|p| {
            (
                p["time"].as_str().expect("a time").to_string(),
                p["size"].as_u64().expect("a size"),
            )
        })
        .collect()
}

#[tokio::test]
async fn preview_sizes_a_filter_today_and_over_30_days_like_data_series() {
    let (server, key) = TestServer::simple().await;
    // Logins 3 and 10 days ago, and one today.
    let events: Vec<Value> = [("a", 3), ("b", 10), ("c", 0)]
        .into_iter()
        .map(
            |(user, ago)| json!({"external_id": user, "name": "login", "time": days_ago_noon(ago)}),
        )
        .collect();
    server
        .post(&key, "/users/track", &json!({ "events": events }))
        .await
        .expect(201);
    let filter = json!({"event": "login", "op": "gte", "value": 1});

    let r = server
        .post(&key, "/segments/preview", &json!({ "filter": filter }))
        .await;
    r.expect(200);
    assert_eq!(r.message(), "success");
    assert_eq!(r.body["live_size"], 3, "{r:?}");
    assert_eq!(r.body["warnings"], json!([]), "login is a known event");
    let preview = points(&r.body);
    assert_eq!(preview.len(), 30);
    let yesterday = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_sub(1.days())
        .unwrap();
    assert_eq!(preview[29].0, yesterday.to_string());
    // 0 until the first login, 1 from 10 days ago, 2 from 3 days ago.
    let sizes: Vec<u64> = preview.iter().map(|p| p.1).collect();
    let mut expected = vec![0; 20];
    expected.extend([1; 7]);
    expected.extend([2; 3]);
    assert_eq!(sizes, expected);

    // Nothing was stored: the list is still empty, and a segment with the same filter
    // has the same history in data_series.
    let list = server.get(&key, "/segments/list").await;
    assert_eq!(list.body["segments"], json!([]));
    let id = server.create_segment(&key, "Logins", filter).await;
    let series = server
        .series(&key, &format!("segment_id={id}&length=31"))
        .await;
    assert_eq!(&series[..30], &preview[..]);
    assert_eq!(series[30].1, 3);
}

#[tokio::test]
async fn preview_refuses_what_create_refuses_with_the_same_message() {
    let (server, key) = TestServer::simple().await;
    let bodies = [
        json!({}),
        json!({"filter": {"all": [{"attribute": "a", "op": "bogus", "value": 1}]}}),
        json!({"filter": {"in_segment": "00000000-0000-4000-8000-000000000000"}}),
        json!({"filter": {"all": []}, "bogus": 1}),
        json!({"filter": {"all": []}, "name": ""}),
    ];
    for body in bodies {
        let preview = server.post(&key, "/segments/preview", &body).await;
        let mut create_body = body.clone();
        if create_body.get("name").is_none() {
            create_body["name"] = json!("n");
        }
        let create = server.post(&key, "/segments/create", &create_body).await;
        create.expect(400);
        preview.expect_bad(create.message());
    }
    let r = server.post_raw(&key, "/segments/preview", "[1]").await;
    r.expect_bad("the request body must be a JSON object");
}

#[tokio::test]
async fn preview_needs_the_segments_create_permission() {
    let mut server = TestServer::new(common::config());
    let ws = server.workspace(Ws::named("main"));
    let reader = server.key(
        ws,
        &[Permission::SegmentsList, Permission::SegmentsDataSeries],
        &[],
    );
    let creator = server.key(ws, &[Permission::SegmentsCreate], &[]);
    server.serve().await;
    let body = json!({"filter": {"all": []}});
    let r = server.post(&reader, "/segments/preview", &body).await;
    r.expect(403);
    assert_eq!(
        r.body["reason"],
        "this API key lacks the permission segments.create"
    );
    let r = server.post(&creator, "/segments/preview", &body).await;
    r.expect(200);
    assert_eq!(r.body["live_size"], 0);
}

#[tokio::test]
async fn preview_warns_of_names_no_fact_carries_as_create_does() {
    let (server, key) = TestServer::simple().await;
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "a", "name": "session_start", "time": days_ago_noon(1)}]}),
        )
        .await
        .expect(201);
    let filter = json!({"event": "sesion_start", "op": "gte", "value": 1});
    let r = server
        .post(&key, "/segments/preview", &json!({ "filter": filter }))
        .await;
    r.expect(200);
    assert_eq!(
        r.body["warnings"],
        json!([
            "filter.event: no event named \"sesion_start\" yet; did you mean \"session_start\"?"
        ]),
        "{r:?}"
    );
    assert_eq!(r.body["live_size"], 0);
}
