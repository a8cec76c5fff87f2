//! The HTTP API end to end: a real server on a real port over a real data directory,
//! driven by a real HTTP client, checked against `braze-compat.md` and `segments.md`.

mod common;

use common::{Resp, TestServer, Ws, config};
use headcount_model::SegmentId;
use headcount_store::{Permission, Store};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use std::time::Duration;

const UNKNOWN: &str = "segment_id must be a string of the Segment api identifier";
const LENGTH: &str = "length must be an integer from 1 to 100";
const ALL_USERS: &str = r#"{"all":[]}"#;

fn all_users() -> Value {
    serde_json::from_str(ALL_USERS).unwrap()
}

/// Today's date in a time zone.
fn today_in(tz: &str) -> Date {
    jiff::Timestamp::now()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date()
}

/// `n` consecutive dates ending with `last`, oldest first, as text.
fn dates_ending(last: Date, n: i64) -> Vec<String> {
    (0..n)
        .rev()
        .map(|back| last.checked_sub(back.days()).unwrap().to_string())
        .collect()
}

fn epoch_now() -> u64 {
    jiff::Timestamp::now().as_second() as u64
}

/// The top of the next UTC hour, epoch seconds.
fn next_hour_top() -> u64 {
    (epoch_now() / 3600 + 1) * 3600
}

/// A segment id that exists nowhere.
fn random_id() -> String {
    SegmentId::new_random().to_string()
}

fn is_canonical_uuid(s: &str) -> bool {
    s.parse::<SegmentId>().is_ok_and(|id| id.to_string() == s)
}

fn sizes(points: &[(String, u64)]) -> Vec<u64> {
    points.iter().map(|(_, s)| *s).collect()
}

fn times(points: &[(String, u64)]) -> Vec<String> {
    points.iter().map(|(t, _)| t.clone()).collect()
}

/// Attribute objects for users `u0`..`u{n-1}` with the given attributes.
fn users(prefix: &str, n: usize, extra: Value) -> Value {
    (0..n)
        .map(|i| {
            let mut o = extra.as_object().cloned().unwrap_or_default();
            o.insert("external_id".into(), format!("{prefix}{i}").into());
            Value::Object(o)
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Success shapes
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_catalog_endpoints_answer_in_braze_shapes() {
    let (server, key) = TestServer::simple().await;

    let created = server
        .post(
            &key,
            "/segments/create",
            &json!({
                "name": "French regulars",
                "filter": {"all": [
                    {"attribute": "country", "op": "eq", "value": "FR"},
                    {"event": "session_start", "op": "gte", "value": 3, "within_days": 7}
                ]},
                "description": "Written by a person",
                "tags": ["fr", "active"],
                "teams": ["growth"],
                "analytics_tracking_enabled": true
            }),
        )
        .await;
    created.expect(201);
    let obj = created.body.as_object().unwrap();
    // Braze's two fields, and headcount's warnings: no fact names country or
    // session_start yet in this empty workspace.
    assert_eq!(obj.len(), 3, "{:?}", created.body);
    assert_eq!(created.body["warnings"].as_array().map(Vec::len), Some(2));
    assert_eq!(created.message(), "success");
    let id = created.body["segment_id"].as_str().unwrap().to_string();
    assert!(is_canonical_uuid(&id), "{id}");
    assert!(
        created
            .header("content-type")
            .starts_with("application/json")
    );

    // Details: every field present and non-null, of the right JSON type.
    let d = server
        .get(&key, &format!("/segments/details?segment_id={id}"))
        .await;
    d.expect(200);
    let b = &d.body;
    for field in [
        "message",
        "created_at",
        "updated_at",
        "name",
        "description",
        "text_description",
    ] {
        assert!(b[field].is_string(), "{field} in {b}");
    }
    for field in ["tags", "teams"] {
        assert!(b[field].is_array(), "{field} in {b}");
    }
    assert!(
        b.as_object().unwrap().contains_key("last_computed_at"),
        "{b}"
    );
    assert_eq!(b["message"], "success");
    assert_eq!(b["name"], "French regulars");
    assert_eq!(
        b["description"],
        "Users for whom country is \"FR\" and \"session_start\" happened at least 3 times in the last 7 days."
    );
    assert_eq!(b["text_description"], "Written by a person");
    assert_eq!(b["tags"], json!(["fr", "active"]));
    assert_eq!(b["teams"], json!(["growth"]));
    let created_at: jiff::Timestamp = b["created_at"].as_str().unwrap().parse().unwrap();
    let updated_at: jiff::Timestamp = b["updated_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(created_at, updated_at);
    let age = jiff::Timestamp::now().duration_since(created_at);
    assert!(
        age >= jiff::SignedDuration::ZERO && age < jiff::SignedDuration::from_secs(60),
        "{age:?}"
    );

    // A segment created with nothing optional still answers every field non-null.
    let bare = server.create_segment(&key, "Everyone", all_users()).await;
    let d = server
        .get(&key, &format!("/segments/details?segment_id={bare}"))
        .await;
    d.expect(200);
    assert_eq!(d.body["description"], "All users.");
    assert_eq!(d.body["text_description"], "");
    assert_eq!(d.body["tags"], json!([]));
    assert_eq!(d.body["teams"], json!([]));
    // Once a day has been computed, last_computed_at is a datetime.
    server
        .series(&key, &format!("segment_id={bare}&length=2"))
        .await;
    let d = server
        .get(&key, &format!("/segments/details?segment_id={bare}"))
        .await;
    let last: jiff::Timestamp = d.body["last_computed_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", d.body))
        .parse()
        .unwrap();
    assert!(last >= created_at);

    // Update: exactly {"message":"success"} (and a warning: no user has a country yet);
    // the fields change, created_at stays.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let u = server
        .post(
            &key,
            "/segments/update",
            &json!({
                "segment_id": id,
                "name": "Renamed",
                "tags": [],
                "filter": {"attribute": "country", "op": "in", "value": ["FR", "BE"]}
            }),
        )
        .await;
    u.expect(200);
    assert_eq!(
        u.body,
        json!({"message": "success", "warnings": [
            "filter.attribute: no user has an attribute \"country\" yet"
        ]})
    );
    let d = server
        .get(&key, &format!("/segments/details?segment_id={id}"))
        .await;
    assert_eq!(d.body["name"], "Renamed");
    assert_eq!(d.body["tags"], json!([]));
    assert_eq!(d.body["teams"], json!(["growth"]), "untouched fields stay");
    assert_eq!(d.body["text_description"], "Written by a person");
    assert_eq!(
        d.body["description"],
        "Users for whom country is one of \"FR\", \"BE\"."
    );
    assert_eq!(
        d.body["created_at"].as_str().unwrap(),
        created_at.to_string()
    );
    let updated: jiff::Timestamp = d.body["updated_at"].as_str().unwrap().parse().unwrap();
    assert!(updated > created_at);

    // List shape.
    let l = server.get(&key, "/segments/list").await;
    l.expect(200);
    assert_eq!(l.body.as_object().unwrap().len(), 2);
    assert_eq!(
        l.body,
        json!({"message": "success", "segments": [
            {"id": id, "name": "Renamed", "analytics_tracking_enabled": true, "tags": []},
            {"id": bare, "name": "Everyone", "analytics_tracking_enabled": false, "tags": []},
        ]})
    );

    // Archive: exactly {"message":"success"}, idempotent, and no longer listed.
    let a = server
        .post(&key, "/segments/archive", &json!({"segment_id": id}))
        .await;
    a.expect(200);
    assert_eq!(a.body, json!({"message": "success"}));
    let again = server
        .post(&key, "/segments/archive", &json!({"segment_id": id}))
        .await;
    assert_eq!(
        (again.status, &again.body),
        (200, &json!({"message": "success"}))
    );
    let l = server.get(&key, "/segments/list").await;
    let ids: Vec<&str> = l.body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bare.as_str()]);
    // An archived segment cannot be updated.
    let u = server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": id, "name": "x"}),
        )
        .await;
    u.expect(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_by_100_sorts_and_ignores_unknown_parameters() {
    let (server, key) = TestServer::simple().await;
    let mut ids = Vec::new();
    for i in 0..103 {
        ids.push(
            server
                .create_segment(&key, &format!("segment {i:03}"), all_users())
                .await,
        );
    }
    // Archive one in the middle: it is skipped, not counted.
    server
        .post(&key, "/segments/archive", &json!({"segment_id": ids[50]}))
        .await
        .expect(200);
    let live: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 50)
        .map(|(_, id)| id.clone())
        .collect();

    let page = |query: &'static str| {
        let server = &server;
        let key = &key;
        async move {
            let r = server.get(key, &format!("/segments/list{query}")).await;
            r.expect(200);
            assert_eq!(r.message(), "success");
            r.body["segments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    assert_eq!(s.as_object().unwrap().len(), 4, "{s}");
                    assert!(s["analytics_tracking_enabled"].is_boolean());
                    assert!(s["tags"].is_array());
                    s["id"].as_str().unwrap().to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("").await, live[..100]);
    assert_eq!(page("?page=0").await, live[..100]);
    assert_eq!(page("?page=1").await, live[100..]);
    assert_eq!(page("?page=1").await.len(), 2);
    assert!(page("?page=2").await.is_empty());
    assert!(page("?page=99999").await.is_empty());
    assert_eq!(page("?sort_direction=asc").await, live[..100]);
    let mut newest_first = live.clone();
    newest_first.reverse();
    assert_eq!(page("?sort_direction=desc").await, newest_first[..100]);
    assert_eq!(
        page("?page=1&sort_direction=desc").await,
        newest_first[100..]
    );
    // A real connector sends last_edit.time[gt]; unknown parameters are ignored.
    assert_eq!(
        page("?last_edit.time%5Bgt%5D=2020-01-01T00:00:00Z&page=0&foo=bar").await,
        live[..100]
    );
    assert_eq!(page("?last_edit.time[gt]=x").await, live[..100]);
    // The names come back as created.
    let r = server.get(&key, "/segments/list?page=1").await;
    assert_eq!(r.body["segments"][1]["name"], "segment 102");

    // Bad values of known parameters are 400s naming them.
    let r = server.get(&key, "/segments/list?page=-1").await;
    r.expect(400);
    assert!(r.message().contains("page"), "{r:?}");
    let r = server.get(&key, "/segments/list?sort_direction=up").await;
    r.expect(400);
    assert!(r.message().contains("sort_direction"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_series_counts_tracked_users_and_forgets_deleted_ones() {
    let (server, key) = TestServer::simple().await;
    let pro = server
        .create_segment(
            &key,
            "Pro",
            json!({"attribute": "plan", "op": "eq", "value": "pro"}),
        )
        .await;
    let everyone = server.create_segment(&key, "Everyone", all_users()).await;

    let before = today_in("UTC");
    let points = server
        .series(&key, &format!("segment_id={pro}&length=7"))
        .await;
    assert_eq!(sizes(&points), vec![0; 7]);

    // Three pro users, one free user.
    let mut attributes = users("pro-", 3, json!({"plan": "pro"}))
        .as_array()
        .unwrap()
        .clone();
    attributes.push(json!({"external_id": "free-0", "plan": "free"}));
    let t = server
        .post(&key, "/users/track", &json!({"attributes": attributes}))
        .await;
    t.expect(201);
    assert_eq!(
        t.body,
        json!({"message": "success", "attributes_processed": 4})
    );

    let points = server
        .series(&key, &format!("segment_id={pro}&length=7"))
        .await;
    let after = today_in("UTC");
    assert_eq!(points.len(), 7);
    let expected = dates_ending(after, 7);
    assert!(
        times(&points) == expected || times(&points) == dates_ending(before, 7),
        "{points:?}"
    );
    assert_eq!(sizes(&points), vec![0, 0, 0, 0, 0, 0, 3]);
    let points = server
        .series(&key, &format!("segment_id={everyone}&length=3"))
        .await;
    assert_eq!(sizes(&points), vec![0, 0, 4]);

    // The bounds of length.
    assert_eq!(
        server
            .series(&key, &format!("segment_id={pro}&length=1"))
            .await
            .len(),
        1
    );
    let hundred = server
        .series(&key, &format!("segment_id={pro}&length=100"))
        .await;
    assert_eq!(hundred.len(), 100);
    assert_eq!(hundred.last().unwrap().1, 3);
    // Asked again, it is answered from memory: the same points.
    let again = server
        .series(&key, &format!("segment_id={pro}&length=100"))
        .await;
    assert_eq!(again, hundred);
    assert!(hundred[..99].iter().all(|(_, s)| *s == 0));
    // Consecutive days, oldest first.
    for pair in hundred.windows(2) {
        let a: Date = pair[0].0.parse().unwrap();
        let b: Date = pair[1].0.parse().unwrap();
        assert_eq!(a.tomorrow().unwrap(), b);
    }

    // An attribute change moves a user out of the segment, live.
    server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "pro-2", "plan": "free"}]}),
        )
        .await
        .expect(201);
    let points = server
        .series(&key, &format!("segment_id={pro}&length=2"))
        .await;
    assert_eq!(sizes(&points), vec![0, 2]);

    // Delete: 202 with the count of users that existed; they vanish from today.
    let d = server
        .post(
            &key,
            "/users/delete",
            &json!({"external_ids": ["pro-0", "free-0", "nobody"]}),
        )
        .await;
    d.expect(202);
    assert_eq!(d.body, json!({"message": "success", "deleted": 2}));
    let points = server
        .series(&key, &format!("segment_id={pro}&length=2"))
        .await;
    assert_eq!(sizes(&points), vec![0, 1]);
    let points = server
        .series(&key, &format!("segment_id={everyone}&length=2"))
        .await;
    assert_eq!(sizes(&points), vec![0, 2]);

    // Deleting again deletes nothing; the body must name someone.
    let d = server
        .post(&key, "/users/delete", &json!({"external_ids": ["pro-0"]}))
        .await;
    assert_eq!(
        (d.status, &d.body),
        (202, &json!({"message": "success", "deleted": 0}))
    );
    let d = server
        .post(&key, "/users/delete", &json!({"external_ids": []}))
        .await;
    d.expect(400);
    let d = server
        .post(&key, "/users/delete", &json!({"external_ids": "pro-1"}))
        .await;
    d.expect(400);
    assert!(d.message().contains("external_ids"), "{d:?}");

    // Alias users are users of their own, deleted by alias.
    let alias = json!({"alias_name": "a1", "alias_label": "crm"});
    server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"user_alias": alias, "plan": "pro"}]}),
        )
        .await
        .expect(201);
    let points = server
        .series(&key, &format!("segment_id={pro}&length=1"))
        .await;
    assert_eq!(sizes(&points), vec![2]);
    let d = server
        .post(&key, "/users/delete", &json!({"user_aliases": [alias]}))
        .await;
    assert_eq!(
        (d.status, &d.body),
        (202, &json!({"message": "success", "deleted": 1}))
    );
    let points = server
        .series(&key, &format!("segment_id={pro}&length=1"))
        .await;
    assert_eq!(sizes(&points), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_track_counts_sent_arrays_and_reports_invalid_objects() {
    let (server, key) = TestServer::simple().await;
    let everyone = server.create_segment(&key, "Everyone", all_users()).await;
    let buyers = server
        .create_segment(
            &key,
            "Buyers",
            json!({"purchase": "*", "op": "gte", "value": 1}),
        )
        .await;
    let loggers = server
        .create_segment(
            &key,
            "Loggers",
            json!({"event": "login", "op": "gte", "value": 1}),
        )
        .await;

    // Only the arrays sent are counted.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "e1", "name": "login", "time": "2024-06-27T10:00:00Z"}]}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body, json!({"message": "success", "events_processed": 1}));

    // All three, one of them empty (a common client always sends all three).
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({
                "attributes": [],
                "events": [
                    {"external_id": "e2", "name": "login", "time": "2024-06-27T10:00:00:000+0000",
                     "properties": {"k": "v"}, "app_id": "app"},
                    {"external_id": "e3", "name": "login", "time": "2999-01-01T00:00:00Z"}
                ],
                "purchases": [
                    {"external_id": "p1", "product_id": "sku", "currency": "EUR", "price": 9.5,
                     "quantity": 2, "time": "2024-06-27T10:00:00-5:00"}
                ]
            }),
        )
        .await;
    r.expect(201);
    assert_eq!(
        r.body,
        json!({"message": "success", "attributes_processed": 0, "events_processed": 2, "purchases_processed": 1})
    );

    // Invalid objects among valid ones: 201, an errors array, the valid ones kept.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({
                "attributes": [
                    {"external_id": "a1", "plan": "pro"},
                    {"plan": "no user"},
                    {"external_id": "a2", "nested": {"not": "allowed"}}
                ],
                "events": [
                    {"external_id": "e4", "time": "2024-06-27T10:00:00Z"},
                    {"external_id": "e5", "name": "login", "time": "not a time"},
                    {"external_id": "e6", "name": "login", "time": "2024-06-27T10:00:00Z"}
                ],
                "purchases": [
                    {"external_id": "p2", "product_id": "sku", "currency": "EUR", "price": "free"}
                ]
            }),
        )
        .await;
    r.expect(201);
    assert_eq!(r.message(), "success");
    assert_eq!(r.body["attributes_processed"], 1);
    assert_eq!(r.body["events_processed"], 1);
    assert_eq!(r.body["purchases_processed"], 0);
    let errors = r.body["errors"].as_array().unwrap();
    let places: Vec<(String, u64)> = errors
        .iter()
        .map(|e| {
            assert_eq!(e.as_object().unwrap().len(), 3, "{e}");
            let reason = e["type"].as_str().unwrap();
            assert!(!reason.is_empty());
            (
                e["input_array"].as_str().unwrap().to_string(),
                e["index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        places,
        vec![
            ("attributes".to_string(), 1),
            ("attributes".to_string(), 2),
            ("events".to_string(), 0),
            ("events".to_string(), 1),
            ("purchases".to_string(), 0),
        ]
    );
    assert!(errors[0]["type"].as_str().unwrap().contains("external_id"));
    assert!(errors[2]["type"].as_str().unwrap().contains("name"));
    assert!(errors[3]["type"].as_str().unwrap().contains("time"));
    assert!(errors[4]["type"].as_str().unwrap().contains("price"));

    // e1, e2, e3, p1, a1, e6 exist; e2/e3/e6 and e1 logged in; p1 bought.
    let today = |id: String| {
        let server = &server;
        let key = &key;
        async move {
            server
                .series(key, &format!("segment_id={id}&length=1"))
                .await[0]
                .1
        }
    };
    assert_eq!(today(everyone.clone()).await, 6);
    assert_eq!(today(loggers.clone()).await, 4);
    assert_eq!(today(buyers.clone()).await, 1);
    // e3's future event was clamped to now: it counts today.

    // The object limit: 75 per array is fine, 76 is a 400 and nothing is kept.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": users("bulk-", 75, json!({}))}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body["attributes_processed"], 75);
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": users("over-", 76, json!({}))}),
        )
        .await;
    r.expect(400);
    assert!(
        r.message().starts_with("Max Input Length Exceeded"),
        "{r:?}"
    );
    assert_eq!(today(everyone.clone()).await, 81);

    // Every object invalid: 400, with the errors.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"plan": "x"}], "events": [{"external_id": "z"}]}),
        )
        .await;
    r.expect(400);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(today(everyone.clone()).await, 81);

    // Not an array, no array at all, an unknown field: 400s.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": {"external_id": "x"}}),
        )
        .await;
    r.expect(400);
    assert!(r.message().contains("attributes"), "{r:?}");
    server
        .post(&key, "/users/track", &json!({}))
        .await
        .expect(400);
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [], "atributes": []}),
        )
        .await;
    r.expect(400);
    assert!(r.message().contains("atributes"), "{r:?}");
}

// ---------------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_id_errors_are_the_braze_400() {
    let (server, key) = TestServer::simple().await;
    let real = server.create_segment(&key, "Real", all_users()).await;
    let unknown = random_id();
    for query in [
        String::new(),
        "segment_id=".to_string(),
        "segment_id=abc".to_string(),
        format!("segment_id={unknown}"),
        format!("segment_id={}", &real[..35]),
        format!("segment_id={real}x"),
    ] {
        server
            .get(&key, &format!("/segments/details?{query}"))
            .await
            .expect_bad(UNKNOWN);
        server
            .get(&key, &format!("/segments/data_series?{query}&length=3"))
            .await
            .expect_bad(UNKNOWN);
    }
    for id in [
        Value::Null,
        json!(""),
        json!("abc"),
        json!(42),
        json!(unknown),
        json!([real]),
    ] {
        let mut body = json!({"name": "x"});
        if !id.is_null() {
            body["segment_id"] = id.clone();
        }
        server
            .post(&key, "/segments/update", &body)
            .await
            .expect_bad(UNKNOWN);
        let mut body = json!({});
        if !id.is_null() {
            body["segment_id"] = id;
        }
        server
            .post(&key, "/segments/archive", &body)
            .await
            .expect_bad(UNKNOWN);
    }
    // The real one still works.
    server
        .get(&key, &format!("/segments/details?segment_id={real}"))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_series_parameter_errors_name_the_parameter() {
    let (server, key) = TestServer::simple().await;
    let id = server.create_segment(&key, "Everyone", all_users()).await;
    for length in [
        "",
        "&length=",
        "&length=0",
        "&length=101",
        "&length=abc",
        "&length=-1",
        "&length=1.5",
    ] {
        server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}{length}"),
            )
            .await
            .expect_bad(LENGTH);
    }
    for bad in [
        "yesterday",
        "2024-06-27T",
        "27/06/2024",
        "2024-06-27T10:00:00 junk",
        "1718000000",
    ] {
        let encoded: String = form_urlencoded_byte(bad);
        let r = server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length=3&ending_at={encoded}"),
            )
            .await;
        r.expect(400);
        let m = r.message();
        assert!(m.starts_with("ending_at"), "{bad}: {m}");
        assert!(m.contains("YYYY-MM-DD"), "{bad}: the accepted forms in {m}");
    }
    // Right forms, wrong values: the message says which part is wrong.
    for (bad, detail) in [
        ("2024-13-01", "not a date on the calendar"),
        ("2024-02-30", "not a date on the calendar"),
        ("2024-06-27T25:00:00Z", "not a time of day"),
        ("2024-06-27T10:00:00+24:00", "not a UTC offset"),
    ] {
        let encoded: String = form_urlencoded_byte(bad);
        let r = server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length=3&ending_at={encoded}"),
            )
            .await;
        r.expect(400);
        let m = r.message();
        assert!(m.starts_with(&format!("ending_at \"{bad}\"")), "{bad}: {m}");
        assert!(m.contains("YYYY-MM-DD"), "{bad}: the accepted forms in {m}");
        assert!(m.contains(detail), "{bad}: {m}");
    }
}

/// Percent-encodes everything but unreserved characters.
fn form_urlencoded_byte(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_400s_naming_the_path() {
    let (server, key) = TestServer::simple().await;
    let create = |filter: Value| {
        let server = &server;
        let key = &key;
        async move {
            server
                .post(
                    key,
                    "/segments/create",
                    &json!({"name": "n", "filter": filter}),
                )
                .await
        }
    };
    let cases = [
        (
            json!({"all": [
                {"attribute": "a", "op": "eq", "value": 1},
                {"attribute": "b", "op": "bogus", "value": 1}
            ]}),
            "filter.all[1].op",
        ),
        (json!({"alll": []}), "filter.alll"),
        (
            json!({"any": [{"not": {"atribute": "x"}}]}),
            "filter.any[0].not.atribute",
        ),
        (
            json!({"event": "e", "op": "gte", "value": 1, "within_days": 0}),
            "filter.within_days",
        ),
        (
            json!({"all": [{"attribute": "a", "op": "matches", "value": "("}]}),
            "filter.all[0].value",
        ),
        (
            json!({"all": [{"attribute": "a", "op": "eq"}]}),
            "filter.all[0]",
        ),
        (json!({"all": {"attribute": "a"}}), "filter.all"),
        (json!("everyone"), "filter"),
    ];
    for (filter, path) in cases {
        let r = create(filter.clone()).await;
        r.expect(400);
        assert!(
            r.message().starts_with(path),
            "{filter}: expected {path} in {:?}",
            r.body
        );
    }
    // Required fields.
    let r = server
        .post(&key, "/segments/create", &json!({"name": "n"}))
        .await;
    r.expect(400);
    assert!(r.message().contains("filter"), "{r:?}");
    let r = server
        .post(&key, "/segments/create", &json!({"filter": all_users()}))
        .await;
    r.expect(400);
    assert!(r.message().contains("name"), "{r:?}");
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "  ", "filter": all_users()}),
        )
        .await;
    r.expect(400);
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "n", "filter": all_users(), "tags": "one"}),
        )
        .await;
    r.expect(400);
    assert!(r.message().contains("tags"), "{r:?}");

    // in_segment of an unknown or archived segment.
    let unknown = random_id();
    let r = create(json!({"any": [{"in_segment": unknown}]})).await;
    r.expect_bad(&format!(
        "filter.any[0].in_segment: no live segment {unknown} in this workspace"
    ));
    let gone = server.create_segment(&key, "Gone", all_users()).await;
    server
        .post(&key, "/segments/archive", &json!({"segment_id": gone}))
        .await
        .expect(200);
    let r = create(json!({"in_segment": gone})).await;
    r.expect_bad(&format!(
        "filter.in_segment: no live segment {gone} in this workspace"
    ));
    let r = create(json!({"in_segment": "not-a-uuid"})).await;
    r.expect(400);
    assert!(r.message().starts_with("filter.in_segment"), "{r:?}");

    // Cycles through update: A <- B, then A := in B; and A := not in A.
    let a = server.create_segment(&key, "A", all_users()).await;
    let b = server
        .create_segment(&key, "B", json!({"in_segment": a}))
        .await;
    let c = server
        .create_segment(&key, "C", json!({"all": [{"in_segment": b}]}))
        .await;
    for (filter, path) in [
        (json!({"in_segment": b}), "filter.in_segment"),
        (
            json!({"all": [{"in_segment": c}]}),
            "filter.all[0].in_segment",
        ),
        (json!({"not": {"in_segment": a}}), "filter.not.in_segment"),
    ] {
        let r = server
            .post(
                &key,
                "/segments/update",
                &json!({"segment_id": a, "filter": filter}),
            )
            .await;
        r.expect(400);
        assert!(
            r.message().starts_with(path) && r.message().contains("cycle"),
            "{r:?}"
        );
    }
    // A is unchanged, and a reference that makes no cycle is fine.
    let d = server
        .get(&key, &format!("/segments/details?segment_id={a}"))
        .await;
    assert_eq!(d.body["description"], "All users.");
    let d = server
        .get(&key, &format!("/segments/details?segment_id={c}"))
        .await;
    assert_eq!(
        d.body["description"],
        "Users for whom the user is in segment \"B\"."
    );
    let r = server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": c, "filter": {"in_segment": a}}),
        )
        .await;
    assert_eq!((r.status, &r.body), (200, &json!({"message": "success"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_paths_and_methods_get_json_errors() {
    let (server, key) = TestServer::simple().await;
    let id = server.create_segment(&key, "Everyone", all_users()).await;

    // Unknown body fields, on every POST.
    for (path, body, field) in [
        (
            "/segments/create",
            json!({"name": "n", "filter": all_users(), "colour": "red"}),
            "colour",
        ),
        (
            "/segments/update",
            json!({"segment_id": id, "colour": "red"}),
            "colour",
        ),
        (
            "/segments/archive",
            json!({"segment_id": id, "force": true}),
            "force",
        ),
        (
            "/users/track",
            json!({"attributes": [], "event": []}),
            "event",
        ),
        (
            "/users/delete",
            json!({"external_ids": ["x"], "emails": ["x@y"]}),
            "emails",
        ),
    ] {
        let r = server.post(&key, path, &body).await;
        r.expect(400);
        assert!(
            r.message().contains(&format!("unknown field \"{field}\"")),
            "{path}: {r:?}"
        );
    }
    // The segment was not archived by the refused request.
    assert_eq!(
        server.get(&key, "/segments/list").await.body["segments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Malformed JSON and non-objects.
    for path in ["/segments/create", "/users/track", "/segments/archive"] {
        let r = server.post_raw(&key, path, "{\"name\": ").await;
        r.expect(400);
        assert!(
            r.message()
                .starts_with("the request body is not valid JSON"),
            "{r:?}"
        );
        let r = server.post_raw(&key, path, "[1, 2]").await;
        r.expect_bad("the request body must be a JSON object");
        let r = server.post_raw(&key, path, "").await;
        r.expect(400);
    }

    // Over 4 MB: 413 with a JSON body; nothing was stored.
    let big =
        json!({"attributes": [{"external_id": "big", "pad": "x".repeat(4 * 1024 * 1024 + 10)}]})
            .to_string();
    let r = server.post_raw(&key, "/users/track", big).await;
    r.expect(413);
    // The unread rest of the body makes the connection unusable: the client is told.
    assert_eq!(r.header("connection"), "close");
    assert_eq!(
        r.body,
        json!({"message": "Payload Too Large: the body is over 4 MB"})
    );
    let r = server
        .post_raw(&key, "/segments/create", vec![b' '; 5 * 1024 * 1024])
        .await;
    r.expect(413);
    let today = server
        .series(&key, &format!("segment_id={id}&length=1"))
        .await;
    assert_eq!(sizes(&today), vec![0]);
    // Just under the limit is read.
    let pad = 4 * 1024 * 1024 - 200;
    let near = json!({"attributes": [{"external_id": "near", "pad": "x".repeat(pad)}]}).to_string();
    assert!(near.len() < 4 * 1024 * 1024);
    server
        .post_raw(&key, "/users/track", near)
        .await
        .expect(201);

    // Unknown paths: 404 JSON, with or without a key.
    for path in ["/segments/nope", "/", "/users", "/segments/list/extra"] {
        let r = server.get(&key, path).await;
        r.expect(404);
        assert_eq!(r.body, json!({"message": "Not Found: no such endpoint"}));
        let r = server
            .send(server.request(reqwest::Method::GET, path), None)
            .await;
        r.expect(404);
    }

    // Wrong methods: 405 JSON, before any authentication.
    for (method, path) in [
        (reqwest::Method::POST, "/segments/list"),
        (reqwest::Method::POST, "/segments/data_series"),
        (reqwest::Method::GET, "/segments/create"),
        (reqwest::Method::GET, "/users/track"),
        (reqwest::Method::DELETE, "/users/delete"),
        (reqwest::Method::PUT, "/segments/update"),
    ] {
        for key in [Some(key.as_str()), None] {
            let r = server.send(server.request(method.clone(), path), key).await;
            r.expect(405);
            assert_eq!(
                r.body,
                json!({"message": "Method Not Allowed for this endpoint"})
            );
        }
    }

    // The health check needs no key.
    let r = server
        .send(server.request(reqwest::Method::GET, "/healthz"), None)
        .await;
    r.expect(200);
    assert_eq!(r.message(), "success");
}

// ---------------------------------------------------------------------------------
// Permissions, authentication, isolation
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_needs_exactly_its_permission() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let admin = server.key(ws, &Permission::ALL, &[]);
    let keys: Vec<(Permission, String, String)> = Permission::ALL
        .iter()
        .map(|p| {
            let without: Vec<Permission> =
                Permission::ALL.iter().copied().filter(|q| q != p).collect();
            (
                *p,
                server.key(ws, &without, &[]),
                server.key(ws, &[*p], &[]),
            )
        })
        .collect();
    server.serve().await;
    let seg = server.create_segment(&admin, "S", all_users()).await;

    for (permission, without, only) in &keys {
        let archived = server
            .create_segment(&admin, "to archive", all_users())
            .await;
        let call = |key: String| {
            let server = &server;
            let seg = seg.clone();
            let archived = archived.clone();
            let permission = *permission;
            async move {
                match permission {
                    Permission::SegmentsList => server.get(&key, "/segments/list").await,
                    Permission::SegmentsDetails => {
                        server
                            .get(&key, &format!("/segments/details?segment_id={seg}"))
                            .await
                    }
                    Permission::SegmentsDataSeries => {
                        server
                            .get(
                                &key,
                                &format!("/segments/data_series?segment_id={seg}&length=2"),
                            )
                            .await
                    }
                    Permission::SegmentsCreate => {
                        server
                            .post(
                                &key,
                                "/segments/create",
                                &json!({"name": "new", "filter": all_users()}),
                            )
                            .await
                    }
                    Permission::SegmentsUpdate => {
                        server
                            .post(
                                &key,
                                "/segments/update",
                                &json!({"segment_id": seg, "name": "S2"}),
                            )
                            .await
                    }
                    Permission::SegmentsArchive => {
                        server
                            .post(&key, "/segments/archive", &json!({"segment_id": archived}))
                            .await
                    }
                    Permission::UsersTrack => {
                        server
                            .post(
                                &key,
                                "/users/track",
                                &json!({"attributes": [{"external_id": "u"}]}),
                            )
                            .await
                    }
                    Permission::UsersDelete => {
                        server
                            .post(&key, "/users/delete", &json!({"external_ids": ["u"]}))
                            .await
                    }
                }
            }
        };
        let denied = call(without.clone()).await;
        denied.expect(403);
        assert_eq!(denied.message(), "Access Denied", "{permission}");
        // The refusal still tells the caller where its rate limit stands.
        assert!(denied.header("x-ratelimit-limit").parse::<u64>().is_ok());

        let allowed = call(only.clone()).await;
        let expected = match permission {
            Permission::SegmentsCreate | Permission::UsersTrack => 201,
            Permission::UsersDelete => 202,
            _ => 200,
        };
        allowed.expect(expected);
        assert_eq!(allowed.message(), "success", "{permission}");
    }
    // The refused archive did nothing, the allowed one did.
    let listed = server.get(&admin, "/segments/list").await;
    let names: Vec<&str> = listed.body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "to archive").count(), 7);
    assert_eq!(names.iter().filter(|n| **n == "new").count(), 1);
    assert!(names.contains(&"S2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_401_revoked_keys_too_and_ip_lists_are_enforced() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    let doomed = server.key(ws, &Permission::ALL, &[]);
    let elsewhere = server.key(ws, &Permission::ALL, &["10.0.0.0/8"]);
    let local = server.key(ws, &Permission::ALL, &["127.0.0.1/32", "::1"]);
    server.serve().await;

    let check_401 = |r: Resp, sent: &str| {
        r.expect(401);
        assert_eq!(
            r.body,
            json!({"message": format!("Invalid API key: {sent}")})
        );
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            assert_eq!(r.header(h), "", "{h} is present but empty on a 401");
        }
    };
    // No key at all.
    let r = server
        .send(server.request(reqwest::Method::GET, "/segments/list"), None)
        .await;
    check_401(r, "");
    // A wrong key, and a right key with one character changed.
    check_401(server.get("nope", "/segments/list").await, "nope");
    let mut altered = key.clone();
    altered.replace_range(30..31, if &key[30..31] == "0" { "1" } else { "0" });
    check_401(server.get(&altered, "/segments/list").await, &altered);
    let r = server
        .post(
            "wrong-key",
            "/users/track",
            &json!({"attributes": [{"external_id": "x"}]}),
        )
        .await;
    check_401(r, "wrong-key");
    // Another scheme than Bearer is no key.
    let r = server
        .send(
            server
                .request(reqwest::Method::GET, "/segments/list")
                .header("authorization", format!("Basic {key}")),
            None,
        )
        .await;
    r.expect(401);
    // The right key works, with its rate-limit headers.
    let r = server.get(&key, "/segments/list").await;
    r.expect(200);
    assert_eq!(r.header("x-ratelimit-limit"), "250000");

    // IP allow-lists: 10.0.0.0/8 refuses 127.0.0.1, 127.0.0.1/32 accepts it.
    let r = server.get(&elsewhere, "/segments/list").await;
    r.expect(403);
    assert_eq!(r.message(), "Access Denied");
    let r = server
        .post(
            &elsewhere,
            "/users/track",
            &json!({"attributes": [{"external_id": "x"}]}),
        )
        .await;
    r.expect(403);
    server.get(&local, "/segments/list").await.expect(200);

    // Revoked keys are refused once the server has reloaded its catalog.
    server.get(&doomed, "/segments/list").await.expect(200);
    let id = headcount_store::keys::public_id(&doomed).to_string();
    assert!(
        server
            .store()
            .revoke_key(&id, headcount_server::state::now())
            .unwrap()
    );
    server.restart().await;
    check_401(server.get(&doomed, "/segments/list").await, &doomed);
    server.get(&key, "/segments/list").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspace_cannot_tell_a_segment_exists() {
    let mut server = TestServer::new(config());
    let a = server.workspace(Ws::named("a"));
    let b = server.workspace(Ws::named("b"));
    let key_a = server.key(a, &Permission::ALL, &[]);
    let key_b = server.key(b, &Permission::ALL, &[]);
    server.serve().await;
    let seg_a = server.create_segment(&key_a, "A's", all_users()).await;
    let seg_b = server.create_segment(&key_b, "B's", all_users()).await;
    server
        .post(
            &key_a,
            "/users/track",
            &json!({"attributes": users("a-", 3, json!({}))}),
        )
        .await
        .expect(201);
    server
        .post(
            &key_b,
            "/users/track",
            &json!({"attributes": users("b-", 1, json!({}))}),
        )
        .await
        .expect(201);

    let unknown = random_id();
    for id in [&seg_a, &unknown] {
        server
            .get(&key_b, &format!("/segments/details?segment_id={id}"))
            .await
            .expect_bad(UNKNOWN);
        server
            .get(
                &key_b,
                &format!("/segments/data_series?segment_id={id}&length=5"),
            )
            .await
            .expect_bad(UNKNOWN);
        server
            .post(
                &key_b,
                "/segments/update",
                &json!({"segment_id": id, "name": "taken"}),
            )
            .await
            .expect_bad(UNKNOWN);
        server
            .post(&key_b, "/segments/archive", &json!({"segment_id": id}))
            .await
            .expect_bad(UNKNOWN);
        let r = server
            .post(
                &key_b,
                "/segments/create",
                &json!({"name": "ref", "filter": {"in_segment": id}}),
            )
            .await;
        r.expect_bad(&format!(
            "filter.in_segment: no live segment {id} in this workspace"
        ));
    }
    // Each lists only its own; A's segment is untouched; users are counted apart.
    let l = server.get(&key_b, "/segments/list").await;
    assert_eq!(
        l.body["segments"],
        json!([{"id": seg_b, "name": "B's", "analytics_tracking_enabled": false, "tags": []}])
    );
    let d = server
        .get(&key_a, &format!("/segments/details?segment_id={seg_a}"))
        .await;
    assert_eq!(d.body["name"], "A's");
    let sa = server
        .series(&key_a, &format!("segment_id={seg_a}&length=1"))
        .await;
    let sb = server
        .series(&key_b, &format!("segment_id={seg_b}&length=1"))
        .await;
    assert_eq!((sa[0].1, sb[0].1), (3, 1));
    // Deleting A's users through B's key deletes nothing.
    let r = server
        .post(&key_b, "/users/delete", &json!({"external_ids": ["a-0"]}))
        .await;
    assert_eq!(r.body["deleted"], 0);
}

// ---------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------

/// Waits out the last seconds of an hour, so that a test's requests share one window.
async fn away_from_the_hour() {
    let into = epoch_now() % 3600;
    if into > 3590 {
        tokio::time::sleep(Duration::from_secs(3600 - into + 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_rate_limit_counts_down_then_429s_per_workspace() {
    let mut server = TestServer::new(config());
    let limited = server.workspace(Ws {
        export_limit: 3,
        track_limit: 50,
        ..Ws::named("limited")
    });
    let other = server.workspace(Ws {
        export_limit: 3,
        ..Ws::named("other")
    });
    let key = server.key(limited, &Permission::ALL, &[]);
    let second_key = server.key(limited, &Permission::ALL, &[]);
    let other_key = server.key(other, &Permission::ALL, &[]);
    server.serve().await;
    away_from_the_hour().await;
    let reset = next_hour_top().to_string();

    let requests = [
        server.get(&key, "/segments/list").await,
        // 400s count and carry the headers too.
        server
            .get(&key, "/segments/data_series?segment_id=nope&length=1")
            .await,
        // Another key of the same workspace shares the window.
        server
            .get(&second_key, "/segments/details?segment_id=nope")
            .await,
    ];
    for (i, (r, status)) in requests.iter().zip([200, 400, 400]).enumerate() {
        r.expect(status);
        assert_eq!(r.header("x-ratelimit-limit"), "3");
        assert_eq!(r.header("x-ratelimit-remaining"), (2 - i).to_string());
        assert_eq!(r.header("x-ratelimit-reset"), reset);
    }

    let r = server.get(&key, "/segments/list").await;
    r.expect(429);
    assert_eq!(r.message(), "API Rate Limit Exceeded");
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    let reset_n: u64 = r.header("x-ratelimit-reset").parse().unwrap();
    assert_eq!(reset_n.to_string(), reset);
    let now = epoch_now();
    assert!(
        retry.abs_diff(reset_n - now) <= 1,
        "Retry-After {retry} vs reset in {}",
        reset_n - now
    );
    assert_eq!(r.header("x-ratelimit-remaining"), "0");
    assert_eq!(r.header("x-ratelimit-limit"), "3");
    // Every export endpoint shares the spent window, POSTs included.
    server
        .get(&key, "/segments/details?segment_id=nope")
        .await
        .expect(429);
    server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "n", "filter": all_users()}),
        )
        .await
        .expect(429);

    // /users/track has its own bucket.
    let t = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "u"}]}),
        )
        .await;
    t.expect(201);
    assert_eq!(t.header("x-ratelimit-limit"), "50");
    let t_reset: u64 = t.header("x-ratelimit-reset").parse().unwrap();
    let now = epoch_now();
    assert!(
        t_reset > now.saturating_sub(1) && t_reset <= now + 3,
        "{t_reset} vs {now}"
    );
    assert_eq!(t_reset % 3, 0);

    // Another workspace is unaffected.
    let o = server.get(&other_key, "/segments/list").await;
    o.expect(200);
    assert_eq!(o.header("x-ratelimit-remaining"), "2");
    assert_eq!(o.header("x-ratelimit-reset"), reset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_rate_limit_is_per_3_seconds() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws {
        export_limit: 100,
        track_limit: 2,
        ..Ws::named("t")
    });
    let key = server.key(ws, &Permission::ALL, &[]);
    server.serve().await;
    let body = json!({"attributes": [{"external_id": "u"}]});
    // Three requests in one 3-second window: the third is refused. A window boundary
    // falling between them (rare) just means trying again in the fresh window.
    let mut checked = false;
    for _ in 0..4 {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(server.post(&key, "/users/track", &body).await);
        }
        let resets: Vec<&str> = answers
            .iter()
            .map(|r| r.header("x-ratelimit-reset"))
            .collect();
        if resets.iter().any(|r| *r != resets[0]) {
            tokio::time::sleep(Duration::from_secs(3)).await;
            continue;
        }
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![201, 201, 429]);
        let remaining: Vec<&str> = answers
            .iter()
            .map(|r| r.header("x-ratelimit-remaining"))
            .collect();
        assert_eq!(remaining, vec!["1", "0", "0"]);
        let retry: u64 = answers[2].header("retry-after").parse().unwrap();
        assert!((1..=3).contains(&retry), "{retry}");
        assert_eq!(answers[2].header("x-ratelimit-limit"), "2");
        checked = true;
        break;
    }
    assert!(checked, "never got three requests into one window");
    // The export bucket is untouched by the spent track bucket.
    let r = server.get(&key, "/segments/list").await;
    r.expect(200);
    assert_eq!(r.header("x-ratelimit-remaining"), "99");
}

// ---------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_keys_users_and_stored_sizes_survive_a_restart() {
    let (mut server, key) = TestServer::simple().await;
    let everyone = server.create_segment(&key, "Everyone", all_users()).await;
    let pro = server
        .create_segment(
            &key,
            "Pro",
            json!({"attribute": "plan", "op": "eq", "value": "pro"}),
        )
        .await;
    let gone = server.create_segment(&key, "Gone", all_users()).await;
    server
        .post(&key, "/segments/archive", &json!({"segment_id": gone}))
        .await
        .expect(200);
    server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": users("u", 2, json!({"plan": "pro"}))}),
        )
        .await
        .expect(201);
    // Store the last completed days of Everyone (all 0: nobody existed then).
    let first = server
        .series(&key, &format!("segment_id={everyone}&length=5"))
        .await;
    assert_eq!(sizes(&first), vec![0, 0, 0, 0, 2]);
    // A user whose first fact is two days old: the stored days keep their sizes (a
    // completed day is computed once); today counts them.
    let two_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "late", "name": "e", "time": two_days_ago.to_string()}]}),
        )
        .await
        .expect(201);
    let before = server
        .series(&key, &format!("segment_id={everyone}&length=5"))
        .await;
    assert_eq!(sizes(&before), vec![0, 0, 0, 0, 3]);
    let pro_before = server
        .series(&key, &format!("segment_id={pro}&length=3"))
        .await;
    assert_eq!(pro_before.last().unwrap().1, 2);
    let list_before = server.get(&key, "/segments/list").await.body;
    let details_before = server
        .get(&key, &format!("/segments/details?segment_id={everyone}"))
        .await
        .body;
    assert!(details_before["last_computed_at"].is_string());

    server.restart().await;

    // The same key works; the catalog, the users and the stored sizes are all back.
    assert_eq!(server.get(&key, "/segments/list").await.body, list_before);
    assert_eq!(
        server
            .get(&key, &format!("/segments/details?segment_id={everyone}"))
            .await
            .body,
        details_before
    );
    let after = server
        .series(&key, &format!("segment_id={everyone}&length=5"))
        .await;
    assert_eq!(after, before);
    assert_eq!(
        server
            .series(&key, &format!("segment_id={pro}&length=3"))
            .await,
        pro_before
    );
    server
        .get(&key, &format!("/segments/details?segment_id={gone}"))
        .await
        .expect(200);
    // The users are really there: deleting one finds it.
    let d = server
        .post(
            &key,
            "/users/delete",
            &json!({"external_ids": ["late", "u0"]}),
        )
        .await;
    assert_eq!(d.body["deleted"], 2);
    let today = server
        .series(&key, &format!("segment_id={everyone}&length=1"))
        .await;
    assert_eq!(sizes(&today), vec![1]);
    // And a segment created after the restart still sees them.
    let pro_again = server
        .create_segment(
            &key,
            "Pro again",
            json!({"attribute": "plan", "op": "eq", "value": "pro"}),
        )
        .await;
    let s = server
        .series(&key, &format!("segment_id={pro_again}&length=1"))
        .await;
    assert_eq!(sizes(&s), vec![1]);
    // A second restart in a row works too.
    server.restart().await;
    let s = server
        .series(&key, &format!("segment_id={pro_again}&length=1"))
        .await;
    assert_eq!(sizes(&s), vec![1]);
}

// ---------------------------------------------------------------------------------
// data_series windows
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_series_windows_follow_ending_at_in_every_accepted_form() {
    let (server, key) = TestServer::simple().await;
    // Users appear on 06-25, 06-27 and 06-28 (UTC).
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [
                {"external_id": "u1", "name": "visit", "time": "2024-06-25T12:00:00Z"},
                {"external_id": "u2", "name": "visit", "time": "2024-06-27T20:00:00Z"},
                {"external_id": "u3", "name": "visit", "time": "2024-06-28T02:00:00Z"}
            ]}),
        )
        .await
        .expect(201);
    let id = server.create_segment(&key, "Everyone", all_users()).await;
    let series = |query: &'static str| {
        let server = &server;
        let key = &key;
        let id = id.clone();
        async move {
            server
                .series(key, &format!("segment_id={id}&{query}"))
                .await
        }
    };
    let days = |first: &str, n: i64| -> Vec<String> {
        let first: Date = first.parse().unwrap();
        dates_ending(first.checked_add((n - 1).days()).unwrap(), n)
    };

    // A bare date is the start of that day: the series ends the day before.
    let s = series("ending_at=2024-06-28&length=5").await;
    assert_eq!(times(&s), days("2024-06-23", 5));
    assert_eq!(sizes(&s), vec![0, 0, 1, 1, 2]);
    // Braze's observed windows.
    let s = series("ending_at=2022-12-15&length=6").await;
    assert_eq!(times(&s), days("2022-12-09", 6));
    assert_eq!(sizes(&s), vec![0; 6]);
    let s = series("ending_at=2022-12-09&length=99").await;
    assert_eq!(s.len(), 99);
    assert_eq!(s[0].0, "2022-09-01");
    assert_eq!(s[98].0, "2022-12-08");
    // Braze's own example, with a one-digit offset hour: 2024-06-28T04:59:59Z.
    let s = series("ending_at=2024-06-27T23:59:59-5:00&length=3").await;
    assert_eq!(times(&s), days("2024-06-26", 3));
    assert_eq!(sizes(&s), vec![1, 2, 3]);
    // The same instant written as ±HHMM with fractional seconds, and as ±HH.
    let s = series("ending_at=2024-06-27T23:59:59.5-0500&length=3").await;
    assert_eq!(times(&s), days("2024-06-26", 3));
    let s = series("ending_at=2024-06-27T23:59:59-05&length=3").await;
    assert_eq!(times(&s), days("2024-06-26", 3));
    // An unencoded '+' arrives as a space: still +05:00 (2024-06-27T18:59:59Z).
    let s = series("ending_at=2024-06-27T23:59:59+05:00&length=3").await;
    assert_eq!(times(&s), days("2024-06-25", 3));
    assert_eq!(sizes(&s), vec![1, 1, 2]);
    let s = series("ending_at=2024-06-27T23:59:59%2B05:00&length=3").await;
    assert_eq!(times(&s), days("2024-06-25", 3));
    let s = series("ending_at=2024-06-27T23:59:59%2005:00&length=3").await;
    assert_eq!(times(&s), days("2024-06-25", 3));
    // Z, and the exact start of a day, which belongs to the next series.
    let s = series("ending_at=2024-06-27T23:59:59Z&length=2").await;
    assert_eq!(times(&s), days("2024-06-26", 2));
    let s = series("ending_at=2024-06-28T00:00:00Z&length=2").await;
    assert_eq!(times(&s), days("2024-06-26", 2));
    let s = series("ending_at=2024-06-28T00:00:00.000001Z&length=2").await;
    assert_eq!(times(&s), days("2024-06-27", 2));
    assert_eq!(sizes(&s), vec![2, 3]);
    // No offset: the workspace's local time (UTC here).
    let s = series("ending_at=2024-06-28T00:00&length=2").await;
    assert_eq!(times(&s), days("2024-06-26", 2));
    // A space instead of 'T' between date and time.
    let s = series("ending_at=2024-06-28%2000:00:01Z&length=1").await;
    assert_eq!(times(&s), days("2024-06-28", 1));

    // A future ending_at is the moment of the request: the last point is today, live.
    let before = today_in("UTC");
    let s = series("ending_at=2999-01-01T00:00:00Z&length=3").await;
    let after = today_in("UTC");
    assert!(
        times(&s) == dates_ending(after, 3) || times(&s) == dates_ending(before, 3),
        "{s:?}"
    );
    assert_eq!(s[2].1, 3);
    let s = series("ending_at=2999-01-01&length=1").await;
    assert_eq!(s[0].1, 3);
    // Unknown parameters are ignored on every GET.
    let s = series("ending_at=2024-06-28&length=5&last_edit.time[gt]=x&foo=&bar=1").await;
    assert_eq!(sizes(&s), vec![0, 0, 1, 1, 2]);
    let r = server
        .get(
            &key,
            &format!("/segments/details?segment_id={id}&fields_to_export=name&x[y]=z"),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["name"], "Everyone");
    // No ending_at at all is the same.
    let s = series("length=2").await;
    assert_eq!(s.last().unwrap().1, 3);
    assert!(s.last().unwrap().0 == after.to_string() || s.last().unwrap().0 == before.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_series_days_are_the_workspace_calendar_days() {
    let mut server = TestServer::new(config());
    let paris = server.workspace(Ws {
        time_zone: "Europe/Paris",
        ..Ws::named("paris")
    });
    let utc = server.workspace(Ws::named("utc"));
    let paris_key = server.key(paris, &Permission::ALL, &[]);
    let utc_key = server.key(utc, &Permission::ALL, &[]);
    server.serve().await;
    // 22:30 UTC on the 26th is 00:30 on the 27th in Paris (UTC+2 in summer).
    let event = json!({"events": [
        {"external_id": "night", "name": "visit", "time": "2024-06-26T22:30:00Z"}
    ]});
    for key in [&paris_key, &utc_key] {
        server.post(key, "/users/track", &event).await.expect(201);
    }
    let in_paris = server.create_segment(&paris_key, "All", all_users()).await;
    let in_utc = server.create_segment(&utc_key, "All", all_users()).await;

    // ending_at=2024-06-28: Paris midnight (22:00 UTC on the 27th) versus UTC midnight.
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2024-06-28&length=2"),
        )
        .await;
    assert_eq!(
        p,
        vec![("2024-06-26".to_string(), 0), ("2024-06-27".to_string(), 1)]
    );
    let u = server
        .series(
            &utc_key,
            &format!("segment_id={in_utc}&ending_at=2024-06-28&length=2"),
        )
        .await;
    assert_eq!(
        u,
        vec![("2024-06-26".to_string(), 1), ("2024-06-27".to_string(), 1)]
    );
    // An instant with an offset is placed on Paris's calendar: 22:00Z is midnight there.
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2024-06-26T22:00:00Z&length=1"),
        )
        .await;
    assert_eq!(p, vec![("2024-06-26".to_string(), 0)]);
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2024-06-26T22:00:01Z&length=1"),
        )
        .await;
    assert_eq!(p, vec![("2024-06-27".to_string(), 1)]);
    // No offset: Paris local time. 00:00:01 on the 27th in Paris ends on the 27th.
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2024-06-27T00:00:01&length=2"),
        )
        .await;
    assert_eq!(
        times(&p),
        vec!["2024-06-26".to_string(), "2024-06-27".to_string()]
    );
    // Across the autumn DST change (a 25-hour day), days stay calendar days.
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2024-10-29&length=3"),
        )
        .await;
    assert_eq!(times(&p), dates_ending("2024-10-28".parse().unwrap(), 3));
    assert_eq!(sizes(&p), vec![1, 1, 1]);
    // Today is Paris's today.
    let before = today_in("Europe/Paris");
    let p = server
        .series(
            &paris_key,
            &format!("segment_id={in_paris}&ending_at=2999-01-01&length=1"),
        )
        .await;
    let after = today_in("Europe/Paris");
    assert!(
        p[0].0 == before.to_string() || p[0].0 == after.to_string(),
        "{p:?}"
    );
    assert_eq!(p[0].1, 1);
}

// ---------------------------------------------------------------------------------
// Filter changes and concurrency
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_change_recomputes_the_history_of_the_segment_and_its_dependants() {
    let (server, key) = TestServer::simple().await;
    // A user whose first fact is 3 days old (noon, so that it is on that date in UTC).
    let three_days_ago = today_in("UTC")
        .checked_sub(3.days())
        .unwrap()
        .at(12, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "old", "name": "e", "time": three_days_ago.to_string()}]}),
        )
        .await
        .expect(201);
    let a = server.create_segment(&key, "A", json!({"any": []})).await;
    let b = server
        .create_segment(&key, "B", json!({"in_segment": a}))
        .await;
    let unrelated = server.create_segment(&key, "U", json!({"any": []})).await;
    for id in [&a, &b, &unrelated] {
        let s = server
            .series(&key, &format!("segment_id={id}&length=5"))
            .await;
        assert_eq!(sizes(&s), vec![0; 5]);
    }
    server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": a, "filter": all_users()}),
        )
        .await
        .expect(200);
    for id in [&a, &b] {
        let s = server
            .series(&key, &format!("segment_id={id}&length=5"))
            .await;
        assert_eq!(sizes(&s), vec![0, 1, 1, 1, 1], "{id}");
    }
    let s = server
        .series(&key, &format!("segment_id={unrelated}&length=5"))
        .await;
    assert_eq!(sizes(&s), vec![0; 5]);
    // An update that leaves the filter as it was keeps the stored history.
    server
        .post(
            &key,
            "/segments/update",
            &json!({"segment_id": a, "name": "A2"}),
        )
        .await
        .expect(200);
    let s = server
        .series(&key, &format!("segment_id={a}&length=5"))
        .await;
    assert_eq!(sizes(&s), vec![0, 1, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_computed_during_a_filter_change_never_outlive_it() {
    let (server, key) = TestServer::simple().await;
    // Relative to today's UTC midnight, so that every event is before today whatever
    // the hour the test runs at.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .expect("start of today")
        .timestamp();
    // Enough users that computing 99 days takes a moment: the race has room.
    for batch in 0..20 {
        let events: Vec<Value> = (0..75)
            .map(|i| {
                let n = batch * 75 + i;
                let t = today - jiff::SignedDuration::from_hours(24 * (n % 95) + 12);
                json!({"external_id": format!("u{n}"), "name": "visit", "time": t.to_string()})
            })
            .collect();
        server
            .post(&key, "/users/track", &json!({"events": events}))
            .await
            .expect(201);
    }
    let id = server.create_segment(&key, "flip", all_users()).await;
    // A data_series that computes 99 days races an update that flips the filter
    // between everyone and nobody; afterwards the history is the current filter's.
    let mut stale = Vec::new();
    for round in 0..40 {
        let nobody = round % 2 == 0;
        let filter = if nobody {
            json!({"any": []})
        } else {
            all_users()
        };
        let path = format!("/segments/data_series?segment_id={id}&length=100");
        let body = json!({"segment_id": id, "filter": filter});
        let (d, u) = tokio::join!(
            server.get(&key, &path),
            server.post(&key, "/segments/update", &body)
        );
        d.expect(200);
        u.expect(200);
        let s = server
            .series(&key, &format!("segment_id={id}&length=100"))
            .await;
        let past: u64 = s[..99].iter().map(|(_, n)| n).sum();
        if nobody && past != 0 {
            stale.push(round);
        }
        if !nobody {
            // Everyone: nobody existed 99 days ago, all but today's by yesterday.
            assert_eq!((s[0].1, s[98].1), (0, 1500), "round {round}");
        }
    }
    assert!(
        stale.is_empty(),
        "stale sizes of the old filter in rounds {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_cannot_make_a_reference_cycle() {
    let (server, key) = TestServer::simple().await;
    for _ in 0..15 {
        let a = server.create_segment(&key, "A", all_users()).await;
        let b = server.create_segment(&key, "B", all_users()).await;
        let ab = json!({"segment_id": a, "filter": {"in_segment": b}});
        let ba = json!({"segment_id": b, "filter": {"in_segment": a}});
        let (x, y) = tokio::join!(
            server.post(&key, "/segments/update", &ab),
            server.post(&key, "/segments/update", &ba)
        );
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "{x:?} {y:?}");
        let refused = if x.status == 400 { &x } else { &y };
        assert!(refused.message().contains("cycle"), "{refused:?}");
        for id in [&a, &b] {
            server
                .get(
                    &key,
                    &format!("/segments/data_series?segment_id={id}&length=1"),
                )
                .await
                .expect(200);
        }
    }
    // Concurrent updates of different fields of one segment both take effect.
    let s = server.create_segment(&key, "S", all_users()).await;
    for round in 0..10 {
        let name = json!({"segment_id": s, "name": format!("name {round}")});
        let tags = json!({"segment_id": s, "tags": [format!("tag {round}")]});
        let (x, y) = tokio::join!(
            server.post(&key, "/segments/update", &name),
            server.post(&key, "/segments/update", &tags)
        );
        x.expect(200);
        y.expect(200);
        let d = server
            .get(&key, &format!("/segments/details?segment_id={s}"))
            .await;
        assert_eq!(d.body["name"], format!("name {round}"));
        assert_eq!(d.body["tags"], json!([format!("tag {round}")]));
    }
}
