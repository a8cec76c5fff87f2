//! Limits on what a filter may cost, and a server that starts whatever is stored:
//! chains of `in_segment` refused at the depth limit, `matches` and `in` budgets, and
//! failing segments reported by `details` and `data_series` while the rest is served.

#[allow(dead_code)] // Each test binary uses a part of the helper.
mod common;

use common::{TestServer, Ws, config};
use headcount_model::{SegmentId, Timestamp, WorkspaceId};
use headcount_server::catalog::{Catalog, Definition};
use headcount_store::{Permission, Segment, Store};
use serde_json::{Value, json};

fn nots(inner: Value, count: usize) -> Value {
    (0..count).fold(inner, |f, _| json!({ "not": f }))
}

/// A segment record as the API would have stored it.
fn record(ws: WorkspaceId, name: &str, filter: Value) -> Segment {
    let at: Timestamp = "2024-01-01T00:00:00Z".parse().expect("an instant");
    Segment {
        id: SegmentId::new_random(),
        workspace: ws,
        name: name.to_string(),
        filter,
        text_description: String::new(),
        tags: vec![],
        teams: vec![],
        analytics_tracking_enabled: false,
        created_at: at,
        updated_at: at,
        archived_at: None,
    }
}

async fn series_answer(server: &TestServer, key: &str, id: &str) -> common::Resp {
    server
        .get(
            key,
            &format!("/segments/data_series?segment_id={id}&length=3"),
        )
        .await
}

async fn details(server: &TestServer, key: &str, id: &str) -> common::Resp {
    let d = server
        .get(key, &format!("/segments/details?segment_id={id}"))
        .await;
    d.expect(200);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_not_wrapped_in_segment_links_is_refused_at_the_depth_limit() {
    let (server, key) = TestServer::simple().await;
    let mut previous = server.create_segment(&key, "s0", json!({"all": []})).await;
    // Each link nests 31 levels (30 nots and its in_segment) above the one before: the
    // 8th link nests 1 + 8 × 31 = 249 levels, the 9th would nest 280.
    for n in 1..=8 {
        let filter = nots(json!({ "in_segment": previous }), 30);
        previous = server.create_segment(&key, &format!("s{n}"), filter).await;
    }
    let refused = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "s9", "filter": nots(json!({ "in_segment": previous }), 30)}),
        )
        .await;
    refused.expect_bad(
        "filter: after in_segment expansion the filter would nest 280 levels deep; at most 256 are allowed",
    );
    assert_eq!(series_answer(&server, &key, &previous).await.status, 200);
    assert!(
        details(&server, &key, &previous)
            .await
            .body
            .get("error")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_chain_too_deep_to_plan_still_starts_and_serves_the_rest() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    // Written with the store directly, as older versions accepted: 600 links.
    let healthy = record(ws, "healthy", json!({"all": []}));
    server.store().insert_segment(&healthy).expect("insert");
    let mut links = vec![record(ws, "link 0", json!({"all": []}))];
    for n in 1..=600 {
        let previous = links[n - 1].id.to_string();
        links.push(record(
            ws,
            &format!("link {n}"),
            json!({ "in_segment": previous }),
        ));
    }
    for link in &links {
        server.store().insert_segment(link).expect("insert");
    }
    let unparsable = record(ws, "unparsable", json!({"nope": 1}));
    server.store().insert_segment(&unparsable).expect("insert");
    let on_unparsable = record(
        ws,
        "on unparsable",
        json!({"in_segment": unparsable.id.to_string()}),
    );
    server
        .store()
        .insert_segment(&on_unparsable)
        .expect("insert");
    // JSON nested deeper than the JSON parser reads back (128 levels).
    let too_nested = record(ws, "too nested", nots(json!({"all": []}), 200));
    server.store().insert_segment(&too_nested).expect("insert");
    server.serve().await;

    let healthy_id = healthy.id.to_string();
    let d = details(&server, &key, &too_nested.id.to_string()).await;
    let error = d.body["error"].as_str().expect("an error");
    assert!(
        error.starts_with("filter: a filter node must be an object"),
        "{error}"
    );
    series_answer(&server, &key, &too_nested.id.to_string())
        .await
        .expect(400);
    assert_eq!(series_answer(&server, &key, &healthy_id).await.status, 200);
    assert!(
        details(&server, &key, &healthy_id)
            .await
            .body
            .get("error")
            .is_none()
    );
    // Link n nests n + 1 levels: link 255 is the deepest that can be planned.
    let fine = links[255].id.to_string();
    assert_eq!(series_answer(&server, &key, &fine).await.status, 200);
    assert!(
        details(&server, &key, &fine)
            .await
            .body
            .get("error")
            .is_none()
    );

    let deep = links[600].id.to_string();
    let why =
        "after in_segment expansion the filter would nest 601 levels deep; at most 256 are allowed";
    let d = details(&server, &key, &deep).await;
    assert_eq!(d.body["error"], json!(why), "{:?}", d.body);
    assert_eq!(d.body["name"], json!("link 600"));
    assert!(d.body["description"].is_string());
    let s = series_answer(&server, &key, &deep).await;
    s.expect_bad(&format!(
        "segment_id names a segment that cannot be computed: {why}; \
         update its filter (POST /segments/update) to one that can be"
    ));

    let d = details(&server, &key, &unparsable.id.to_string()).await;
    let error = d.body["error"].as_str().expect("an error").to_string();
    assert!(error.starts_with("filter.nope: unknown key"), "{error}");
    series_answer(&server, &key, &unparsable.id.to_string())
        .await
        .expect(400);
    let d = details(&server, &key, &on_unparsable.id.to_string()).await;
    assert_eq!(
        d.body["error"],
        json!(format!(
            "segment {} cannot be computed: {error}",
            unparsable.id
        ))
    );

    // A new reference is held to the limit: 1 + (n + 1) levels.
    let at_limit = json!({"name": "at limit", "filter": {"in_segment": links[254].id.to_string()}});
    server
        .post(&key, "/segments/create", &at_limit)
        .await
        .expect(201);
    let over = json!({"name": "over", "filter": {"in_segment": links[255].id.to_string()}});
    server.post(&key, "/segments/create", &over).await.expect_bad(
        "filter: after in_segment expansion the filter would nest 257 levels deep; at most 256 are allowed",
    );

    // An update that gives the failing segment a filter that can be planned repairs it.
    let repair = json!({"segment_id": deep, "filter": {"all": []}});
    server
        .post(&key, "/segments/update", &repair)
        .await
        .expect(200);
    assert!(
        details(&server, &key, &deep)
            .await
            .body
            .get("error")
            .is_none()
    );
    assert_eq!(series_answer(&server, &key, &deep).await.status, 200);
    let repair = json!({"segment_id": unparsable.id.to_string(), "filter": {"any": []}});
    server
        .post(&key, "/segments/update", &repair)
        .await
        .expect(200);
    let d = details(&server, &key, &on_unparsable.id.to_string()).await;
    assert!(d.body.get("error").is_none(), "{:?}", d.body);

    // And it starts again.
    server.restart().await;
    assert_eq!(series_answer(&server, &key, &healthy_id).await.status, 200);
    let d = details(&server, &key, &links[300].id.to_string()).await;
    assert!(
        d.body["error"]
            .as_str()
            .is_some_and(|e| e.contains(" 301 levels"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_would_make_a_dependant_too_deep_is_refused() {
    let (server, key) = TestServer::simple().await;
    let base = server
        .create_segment(&key, "base", json!({"all": []}))
        .await;
    let mut top = base.clone();
    for n in 0..8 {
        top = server
            .create_segment(
                &key,
                &format!("n{n}"),
                nots(json!({ "in_segment": top }), 30),
            )
            .await;
    }
    // top nests 1 + 8 × 31 = 249 levels; base growing by 30 would make it 279.
    let deeper = json!({"segment_id": base, "filter": nots(json!({"all": []}), 30)});
    let r = server.post(&key, "/segments/update", &deeper).await;
    r.expect(400);
    assert_eq!(
        r.message(),
        format!(
            "filter: segment {top} (\"n7\") refers to this segment and would become too large: \
             after in_segment expansion the filter would nest 279 levels deep; at most 256 are allowed"
        )
    );
    let fits = json!({"segment_id": base, "filter": nots(json!({"all": []}), 7)});
    server
        .post(&key, "/segments/update", &fits)
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_and_in_budgets_are_refused_with_the_limit_named() {
    let (server, key) = TestServer::simple().await;
    let matches = |pattern: String| json!({"attribute": "a", "op": "matches", "value": pattern});
    // The 57 KB request: refused at once, before compiling 1,000 patterns.
    let many: Vec<Value> = (0..1_000).map(|_| matches("\\w{20}".into())).collect();
    let started = std::time::Instant::now();
    server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "many", "filter": {"any": many}}),
        )
        .await
        .expect_bad(
            "filter.any[20].op: a filter may use at most 20 matches operators; this is one more",
        );
    assert!(started.elapsed().as_secs() < 5);

    let list: Vec<Value> = (0..300_000).map(|i| json!(format!("v{i}"))).collect();
    let body = json!({"name": "long", "filter": {"attribute": "a", "op": "in", "value": list}});
    server
        .post(&key, "/segments/create", &body)
        .await
        .expect_bad(
            "filter.value: in lists may hold at most 10,000 values; this one holds 300,000",
        );

    // Per workspace: 200 matches operators in live segments.
    for n in 0..10 {
        let twenty: Vec<Value> = (0..20).map(|i| matches(format!("^p{n}-{i}$"))).collect();
        server
            .create_segment(&key, &format!("r{n}"), json!({ "any": twenty }))
            .await;
    }
    let one_more = json!({"name": "r10", "filter": matches("^one-more$".into())});
    server.post(&key, "/segments/create", &one_more).await.expect_bad(
        "filter: the live segments of this workspace would use 201 matches operators; at most 200 are allowed",
    );
    // An archived segment no longer counts.
    let list = server.get(&key, "/segments/list").await;
    let first = list.body["segments"][0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    server
        .post(&key, "/segments/archive", &json!({ "segment_id": first }))
        .await
        .expect(200);
    server
        .post(&key, "/segments/create", &one_more)
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_size_of_a_workspace_patterns_is_bounded() {
    let (server, key) = TestServer::simple().await;
    // \w{20} (Unicode) compiles to about 1.1 MB: 32 MiB holds 29 distinct ones.
    let big = |from: usize| -> Value {
        let nodes: Vec<Value> = (from..from + 10)
            .map(|i| json!({"attribute": "a", "op": "matches", "value": format!("\\w{{20}}-{i}")}))
            .collect();
        json!({ "any": nodes })
    };
    server.create_segment(&key, "b0", big(0)).await;
    server.create_segment(&key, "b1", big(10)).await;
    let r = server
        .post(
            &key,
            "/segments/create",
            &json!({"name": "b2", "filter": big(20)}),
        )
        .await;
    r.expect(400);
    assert!(
        r.message()
            .starts_with("filter: the live segments of this workspace would hold ")
            && r.message()
                .ends_with(" bytes of compiled matches patterns; at most 33,554,432 are allowed"),
        "{}",
        r.message()
    );
    // The same patterns again cost nothing more: they share the compiled ones.
    server.create_segment(&key, "b0 again", big(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_segment_is_served_from_the_store_without_its_filter_in_memory() {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    let values: Vec<Value> = (0..10_000).map(|i| json!(format!("v{i}"))).collect();
    let mut alone = record(
        ws,
        "archived alone",
        json!({"attribute": "a", "op": "in", "value": values}),
    );
    alone.archived_at = Some(alone.created_at);
    let mut referred = record(ws, "archived referred", json!({"all": []}));
    referred.archived_at = Some(referred.created_at);
    let live = record(ws, "live", json!({"in_segment": referred.id.to_string()}));
    for s in [&alone, &referred, &live] {
        server.store().insert_segment(s).expect("insert");
    }
    {
        let catalog = Catalog::load(server.store()).expect("load");
        let held = |id| catalog.segment_in(ws, id).expect("an entry").clone();
        let entry = held(alone.id);
        assert!(matches!(entry.definition, Definition::Unloaded { .. }));
        assert!(entry.segment.filter.is_null());
        assert!(entry.filter().is_none());
        // Still needed by a live filter: kept.
        assert!(held(referred.id).filter().is_some());
        assert!(held(live.id).filter().is_some());
    }
    server.serve().await;
    let d = details(&server, &key, &alone.id.to_string()).await;
    assert!(
        d.body["description"]
            .as_str()
            .is_some_and(|t| t.contains("\"v9999\"")),
        "{:?}",
        d.body
    );
    assert!(d.body.get("error").is_none());
    assert_eq!(
        series_answer(&server, &key, &alone.id.to_string())
            .await
            .status,
        200
    );
    assert_eq!(
        series_answer(&server, &key, &live.id.to_string())
            .await
            .status,
        200
    );

    // Archiving the live one through the API lets go of both filters.
    server
        .post(
            &key,
            "/segments/archive",
            &json!({"segment_id": live.id.to_string()}),
        )
        .await
        .expect(200);
    server.stop().await;
    let store = headcount_store::SqliteStore::open(&server.dir).expect("reopen");
    let mut catalog = Catalog::load(&store).expect("load");
    for id in [referred.id, live.id] {
        let entry = catalog.segment_in(ws, id).expect("an entry");
        assert!(
            matches!(entry.definition, Definition::Unloaded { .. }),
            "{id}"
        );
    }
    // And in a running catalog, the archive itself unloads it.
    let mut fresh = record(ws, "fresh", json!({"all": []}));
    let entry = headcount_server::catalog::SegmentEntry::parsed(
        fresh.clone(),
        headcount_model::Filter::All(vec![]),
    );
    catalog.put_segment(entry);
    assert!(
        catalog
            .segment_in(ws, fresh.id)
            .and_then(|e| e.filter())
            .is_some()
    );
    fresh.archived_at = Some(fresh.created_at);
    let entry = headcount_server::catalog::SegmentEntry::parsed(
        fresh.clone(),
        headcount_model::Filter::All(vec![]),
    );
    catalog.put_segment(entry);
    assert!(
        catalog
            .segment_in(ws, fresh.id)
            .and_then(|e| e.filter())
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_with_equal_patterns_share_one_compiled_regex() {
    let server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let pattern =
        json!({"attribute": "email", "op": "matches", "value": "@shared-by-segments\\.com$"});
    let first = record(ws, "first", pattern.clone());
    let second = record(ws, "second", json!({"not": pattern}));
    for s in [&first, &second] {
        server.store().insert_segment(s).expect("insert");
    }
    let catalog = Catalog::load(server.store()).expect("load");
    let patterns: Vec<_> = [first.id, second.id]
        .iter()
        .flat_map(|id| {
            let entry = catalog.segment_in(ws, *id).expect("an entry");
            entry
                .filter()
                .expect("held")
                .patterns()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(patterns.len(), 2);
    assert!(patterns[0].shares_with(&patterns[1]));
}
