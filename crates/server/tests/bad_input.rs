//! "Bad input, stated" (issue 12): malformed requests that the other hardening tests do
//! not cover get a 4xx JSON body that names the field (or the part of the request) and
//! says why, never a 5xx, a hang or a partial write: invalid UTF-8, NUL bytes, numbers
//! beyond i64/f64, strings of megabytes, JSON nested thousands deep, repeated query
//! parameters, times far outside any real range. Whatever is accepted reads back whole
//! after a restart.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::TestServer;
use serde_json::{Value, json};

/// `depth` arrays or objects nested in one another, as JSON text.
fn nested_text(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// A `not` filter nested `depth` times.
fn nots(depth: usize) -> Value {
    let mut filter = json!({"all": []});
    for _ in 0..depth {
        filter = json!({ "not": filter });
    }
    filter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_nul_bytes_are_refused_or_kept_whole() {
    let (mut server, key) = TestServer::simple().await;
    // Invalid UTF-8 inside a JSON string, on every endpoint with a body.
    for path in [
        "/users/track",
        "/users/delete",
        "/segments/create",
        "/segments/update",
        "/segments/archive",
        "/segments/preview",
    ] {
        let body = b"{\"external_ids\": [\"a\xff\xfeb\"]}".to_vec();
        let r = server.post_raw(&key, path, body).await;
        r.expect(400);
        assert!(
            r.message()
                .starts_with("the request body is not valid JSON: "),
            "{path}: {r:?}"
        );
    }
    // A raw NUL byte is a control character JSON does not allow.
    let r = server
        .post_raw(
            &key,
            "/users/track",
            b"{\"attributes\":[{\"external_id\":\"a\0b\"}]}".to_vec(),
        )
        .await;
    r.expect(400);
    assert!(r.message().contains("control character"), "{}", r.message());
    // Invalid UTF-8 and NUL in the query: refused naming the parameter.
    for query in [
        "segment_id=%FF%FE&length=3",
        "segment_id=%00&length=3",
        "segment_id=a%00b&length=3",
    ] {
        server
            .get(&key, &format!("/segments/data_series?{query}"))
            .await
            .expect_bad("segment_id must be a string of the Segment api identifier");
    }
    let id = server
        .create_segment(&key, "everyone", json!({"all": []}))
        .await;
    for ending_at in ["%FF%FE", "2026-01-01%00", "%00"] {
        let r = server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length=3&ending_at={ending_at}"),
            )
            .await;
        r.expect(400);
        assert!(r.message().starts_with("ending_at \""), "{r:?}");
    }
    let r = server
        .get(&key, "/segments/list?sort_direction=%FFasc")
        .await;
    r.expect_bad("sort_direction must be asc or desc");

    // An escaped NUL (\u0000) is a character like any other: kept whole, through a restart.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "nul\u{0}id", "nick\u{0}name": "a\u{0}b"}],
                    "events": [{"external_id": "nul\u{0}id", "name": "e\u{0}v",
                                "time": "2026-11-28T09:30:00Z"}]}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body["attributes_processed"], 1);
    let named = server
        .create_segment(
            &key,
            "with\u{0}nul",
            json!({"attribute": "nick\u{0}name", "op": "eq", "value": "a\u{0}b"}),
        )
        .await;
    server.restart().await;
    let r = server
        .get(&key, &format!("/segments/details?segment_id={named}"))
        .await;
    r.expect(200);
    assert_eq!(r.body["name"], "with\u{0}nul");
    let series = server
        .series(&key, &format!("segment_id={named}&length=1"))
        .await;
    assert_eq!(
        series[0].1, 1,
        "the user with NULs is found after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_beyond_i64_and_f64_are_refused_naming_the_field() {
    let (server, key) = TestServer::simple().await;
    // Beyond f64: not a number JSON can carry here.
    let r = server
        .post_raw(
            &key,
            "/users/track",
            r#"{"attributes":[{"external_id":"a","score":1e400}]}"#,
        )
        .await;
    r.expect(400);
    assert!(
        r.message().contains("number out of range"),
        "{}",
        r.message()
    );
    // Beyond i64 where an integer is expected: the field's own message.
    let r = server
        .post_raw(
            &key,
            "/users/track",
            r#"{"purchases":[{"external_id":"a","product_id":"p","currency":"USD","price":1,
                "quantity":9223372036854775808}]}"#,
        )
        .await;
    r.expect(400);
    let refused = r.body["errors"][0]["type"].as_str().expect("an error");
    assert!(refused.contains("quantity"), "{refused}");
    let r = server
        .post_raw(
            &key,
            "/segments/create",
            r#"{"name":"n","filter":{"event":"e","op":"gte","value":1,"within_days":18446744073709551616}}"#,
        )
        .await;
    r.expect(400);
    assert!(r.message().starts_with("filter.within_days"), "{r:?}");
    let r = server
        .post_raw(
            &key,
            "/segments/create",
            r#"{"name":"n","filter":{"event":"e","op":"gte","value":99999999999999999999999}}"#,
        )
        .await;
    r.expect_bad("filter.value: must be an integer");
    // In the query.
    let id = server
        .create_segment(&key, "everyone", json!({"all": []}))
        .await;
    for length in ["9223372036854775808", "18446744073709551617", "1e400", "-1"] {
        server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length={length}"),
            )
            .await
            .expect_bad("length must be an integer from 1 to 100");
    }
    server
        .get(&key, "/segments/list?page=18446744073709551616")
        .await
        .expect_bad("page must be a non-negative integer");
    // The largest page there is is simply past the end.
    let r = server
        .get(&key, "/segments/list?page=18446744073709551615")
        .await;
    r.expect(200);
    assert_eq!(r.body["segments"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_of_megabytes_are_bounded_by_the_body_limit_and_kept_whole() {
    let (mut server, key) = TestServer::simple().await;
    let big = "x".repeat(3 << 20);
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "big", "note": big}]}),
        )
        .await;
    r.expect(201);
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": big, "name": "e", "time": "2026-11-28T09:30:00Z"}]}),
        )
        .await;
    r.expect(201);
    let id = server
        .create_segment(
            &key,
            &"n".repeat(1 << 19),
            json!({"attribute": "note", "op": "eq", "value": big}),
        )
        .await;
    // Over the body limit: 413, nothing kept.
    let over = "x".repeat(5 << 20);
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "over", "note": over}]}),
        )
        .await;
    r.expect(413);
    // A query of megabytes is over the URI limit (414, tests/hardening.rs); one just
    // under it is read, and refused naming the parameter.
    let r = server
        .get(
            &key,
            &format!(
                "/segments/data_series?segment_id={id}&length=1&ending_at={}",
                "9".repeat(60_000)
            ),
        )
        .await;
    r.expect(400);
    assert!(r.message().starts_with("ending_at \"999"), "{r:?}");
    let series = server
        .series(&key, &format!("segment_id={id}&length=1"))
        .await;
    assert_eq!(series[0].1, 1, "the 3 MB attribute before a restart");
    server.restart().await;
    let series = server
        .series(&key, &format!("segment_id={id}&length=1"))
        .await;
    assert_eq!(series[0].1, 1, "the 3 MB attribute is kept whole");
    let r = server
        .get(&key, &format!("/segments/details?segment_id={id}"))
        .await;
    assert_eq!(r.body["name"].as_str().map(str::len), Some(1 << 19));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_thousands_deep_is_a_400_not_a_crash() {
    let (server, key) = TestServer::simple().await;
    // A filter within the parser's depth but beyond the filter limit names the limit.
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "deep", "filter": nots(100)}),
        )
        .await;
    r.expect(400);
    assert!(
        r.message()
            .ends_with("filters may nest at most 32 levels deep"),
        "{r:?}"
    );
    // Thousands deep: the JSON reader refuses it before anything is built.
    let deep_filter = format!(
        r#"{{"name":"deep","filter":{}}}"#,
        nested_text(5000, r#"{"not":"#, "}", r#"{"all":[]}"#)
    );
    let deep_array = format!(
        r#"{{"attributes":[{{"external_id":"a","x":{}}}]}}"#,
        nested_text(100_000, "[", "]", "")
    );
    let deep_properties = format!(
        r#"{{"events":[{{"external_id":"a","name":"e","time":"2026-11-28T09:30:00Z","properties":{}}}]}}"#,
        nested_text(100_000, r#"{"a":"#, "}", "1")
    );
    for (path, body) in [
        ("/segments/create", deep_filter.clone()),
        ("/segments/preview", deep_filter),
        ("/users/track", deep_array),
        ("/users/track", deep_properties),
        ("/users/delete", nested_text(100_000, "[", "]", "")),
    ] {
        let r = server.post_raw(&key, path, body).await;
        r.expect(400);
        assert!(
            r.message().contains("recursion limit exceeded"),
            "{path}: {r:?}"
        );
    }
    // The documented bound: 127 levels of arrays and objects are read, 128 are not.
    let at_the_limit = format!(
        r#"{{"external_ids":{}}}"#,
        nested_text(126, "[", "]", r#""a""#)
    );
    server
        .post_raw(&key, "/users/delete", at_the_limit)
        .await
        .expect_bad("external_ids[0] must be a non-empty string");
    let beyond = format!(
        r#"{{"external_ids":{}}}"#,
        nested_text(127, "[", "]", r#""a""#)
    );
    let r = server.post_raw(&key, "/users/delete", beyond).await;
    r.expect(400);
    assert!(r.message().contains("recursion limit exceeded"), "{r:?}");
    // Nothing was written.
    let r = server.get(&key, "/segments/list").await;
    assert_eq!(r.body["segments"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_parameter_given_twice_is_a_400_naming_it() {
    let (server, key) = TestServer::simple().await;
    let id = server
        .create_segment(&key, "everyone", json!({"all": []}))
        .await;
    for (query, name) in [
        (
            format!("segment_id={id}&segment_id={id}&length=3"),
            "segment_id",
        ),
        (format!("segment_id={id}&length=3&length=4"), "length"),
        (
            format!("segment_id={id}&length=3&ending_at=2026-01-01&ending_at=2026-01-02"),
            "ending_at",
        ),
    ] {
        server
            .get(&key, &format!("/segments/data_series?{query}"))
            .await
            .expect_bad(&format!(
                "{name} is given more than once in the query; give it once"
            ));
    }
    server
        .get(&key, "/segments/list?page=0&page=1")
        .await
        .expect_bad("page is given more than once in the query; give it once");
    server
        .get(
            &key,
            "/segments/list?sort_direction=asc&sort_direction=desc",
        )
        .await
        .expect_bad("sort_direction is given more than once in the query; give it once");
    server
        .get(
            &key,
            &format!("/segments/details?segment_id={id}&segment_id=other"),
        )
        .await
        .expect_bad("segment_id is given more than once in the query; give it once");
    // Unknown parameters are still ignored, repeated or not.
    server
        .get(&key, &format!("/segments/details?segment_id={id}&x=1&x=2"))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_far_outside_any_real_range_are_refused_naming_the_field() {
    let (server, key) = TestServer::simple().await;
    let id = server
        .create_segment(&key, "everyone", json!({"all": []}))
        .await;
    for ending_at in [
        "10000-01-01",
        "99999999999999999999-01-01",
        "%2B275760-09-13T00:00:00Z",
        "-0001-01-01",
        "2026-01-01T25:00:00Z",
        "2026-01-01T10:00:00%2B99:00",
        "2026-01-01T10:00:00.99999999999999999999Z",
    ] {
        let r = server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length=3&ending_at={ending_at}"),
            )
            .await;
        r.expect(400);
        assert!(
            r.message().starts_with("ending_at \""),
            "{ending_at}: {r:?}"
        );
    }
    // Event and purchase times: each object refused naming `time`, the rest kept.
    for time in [
        "10000-01-01T00:00:00Z",
        "99999999999-01-01",
        "-0001-01-01",
        "1e400",
    ] {
        let r = server
            .post(
                &key,
                "/users/track",
                &json!({"events": [
                    {"external_id": "a", "name": "ok", "time": "2026-11-28T09:30:00Z"},
                    {"external_id": "a", "name": "far", "time": time}],
                    "purchases": [{"external_id": "a", "product_id": "p", "currency": "USD",
                                   "price": 1, "time": time}]}),
            )
            .await;
        r.expect(201);
        assert_eq!(r.body["events_processed"], 1, "{time}: {r:?}");
        assert_eq!(r.body["purchases_processed"], 0, "{time}: {r:?}");
        for error in r.body["errors"].as_array().expect("errors") {
            let why = error["type"].as_str().expect("a reason");
            assert!(why.starts_with("'time'"), "{time}: {why}");
        }
    }
    // A number where a time is expected.
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"events": [{"external_id": "a", "name": "n", "time": 1e300}]}),
        )
        .await;
    r.expect(400);
    let why = r.body["errors"][0]["type"].as_str().expect("a reason");
    assert!(why.contains("time"), "{why}");
}
