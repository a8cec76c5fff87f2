//! Warnings for names no fact carries yet: a misspelled attribute, event or product
//! is accepted, but create, update and details say so and suggest the close name.

#[allow(dead_code)]
mod common;

use common::TestServer;
use serde_json::{Value, json};

/// A served workspace whose facts name the attribute `country`, the event
/// `session_start` and the product `gift-card`.
async fn server_with_names() -> (TestServer, String) {
    let (server, key) = TestServer::simple().await;
    server
        .post(
            &key,
            "/users/track",
            &json!({
                "attributes": [{"external_id": "ada", "country": "FR"}],
                "events": [{"external_id": "ada", "name": "session_start", "time": "2026-11-28T09:30:00Z"}],
                "purchases": [{"external_id": "ada", "product_id": "gift-card", "currency": "EUR",
                               "price": 10, "time": "2026-11-28T09:31:00Z"}]
            }),
        )
        .await
        .expect(201);
    (server, key)
}

fn misspelled() -> Value {
    json!({"all": [
        {"attribute": "countyr", "op": "eq", "value": "FR"},
        {"any": [{"event": "sesion_start", "op": "gte", "value": 1, "within_days": 7}]},
        {"not": {"purchase": "Gift-Card", "op": "gte", "value": 1}},
        {"attribute": "language", "op": "eq", "value": "fr"}
    ]})
}

fn misspelled_warnings() -> Value {
    json!([
        "filter.all[0].attribute: no user has an attribute \"countyr\" yet; did you mean \"country\"?",
        "filter.all[1].any[0].event: no event named \"sesion_start\" yet; did you mean \"session_start\"?",
        "filter.all[2].not.purchase: no purchase of product \"Gift-Card\" yet; did you mean \"gift-card\"?",
        "filter.all[3].attribute: no user has an attribute \"language\" yet"
    ])
}

fn known() -> Value {
    json!({"all": [
        {"attribute": "country", "op": "eq", "value": "FR"},
        {"event": "session_start", "op": "gte", "value": 1, "within_days": 7},
        {"purchase": "gift-card", "op": "gte", "value": 1},
        {"purchase": "*", "op": "gte", "value": 1}
    ]})
}

async fn details_warnings(server: &TestServer, key: &str, id: &str) -> Value {
    let r = server
        .get(key, &format!("/segments/details?segment_id={id}"))
        .await;
    r.expect(200);
    r.body["warnings"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_accepts_unknown_names_and_warns_with_a_did_you_mean() {
    let (server, key) = server_with_names().await;
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "typos", "filter": misspelled()}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body["warnings"], misspelled_warnings());
    let id = r.body["segment_id"].as_str().unwrap().to_string();
    assert_eq!(
        details_warnings(&server, &key, &id).await,
        misspelled_warnings()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_names_give_no_warning() {
    let (server, key) = server_with_names().await;
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "known", "filter": known()}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body.get("warnings"), None, "{:?}", r.body);
    let id = r.body["segment_id"].as_str().unwrap().to_string();
    assert_eq!(details_warnings(&server, &key, &id).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_warns_about_the_new_filter_and_stops_once_it_is_fixed() {
    let (server, key) = server_with_names().await;
    let id = server.create_segment(&key, "s", known()).await;
    let r = server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": id, "filter": misspelled()}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["warnings"], misspelled_warnings());
    let r = server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": id, "filter": known()}),
        )
        .await;
    assert_eq!((r.status, &r.body), (200, &json!({"message": "success"})));
    assert_eq!(details_warnings(&server, &key, &id).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_stops_warning_once_a_fact_carries_it() {
    let (server, key) = server_with_names().await;
    let filter = json!({"event": "signup", "op": "gte", "value": 1});
    let id = server.create_segment(&key, "signups", filter).await;
    assert_eq!(
        details_warnings(&server, &key, &id).await,
        json!(["filter.event: no event named \"signup\" yet"])
    );
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "bob", "name": "signup", "time": "2026-11-29T10:00:00Z"}]}),
        )
        .await
        .expect(201);
    assert_eq!(details_warnings(&server, &key, &id).await, json!([]));
}
