//! Restarts: a clean stop writes a checkpoint of each index and the next start loads
//! it; a damaged, truncated or other-version checkpoint is rebuilt from the facts;
//! every restart ends with the sizes of a rebuild from the facts alone. And no
//! darkness while loading: `/healthz` at once, `/readyz` 503 then 200, the API 503
//! with `Retry-After` until the indexes are loaded.

#[allow(dead_code)] // helpers other test files use
mod common;

use common::{TestServer, Ws, config};
use headcount_engine::{Plan, PlanError};
use headcount_model::{Filter, Timestamp, WorkspaceId};
use headcount_server::state::read;
use headcount_store::Permission;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Several requests of attributes of every kind, events and purchases, and one user
/// deleted if `delete`.
async fn ingest(server: &TestServer, key: &str, round: u32, delete: bool) {
    for batch in 0..4u32 {
        let mut attributes = Vec::new();
        let mut events = Vec::new();
        let mut purchases = Vec::new();
        for i in 0..25u32 {
            let user = format!("u{}", (round * 31 + batch * 25 + i) % 90);
            let day = 1 + (i + batch) % 5;
            let plan = ["gold", "free", "pro"][(i % 3) as usize];
            let name = ["login", "view"][(i % 2) as usize];
            attributes.push(json!({
                "external_id": user,
                "plan": plan,
                "score": f64::from(i) / 4.0,
                "vip": i % 2 == 0,
                "renews": format!("2024-05-{:02}T10:00:00Z", day + 10),
                "tags": ["red", "blue"],
            }));
            events.push(json!({
                "external_id": user,
                "name": name,
                "time": format!("2024-05-{day:02}T{:02}:00:00Z", i % 24),
            }));
            if i % 4 == 0 {
                purchases.push(json!({
                    "external_id": user, "product_id": "sku-1", "currency": "USD",
                    "price": 9.5, "time": format!("2024-05-{day:02}T12:00:00Z"),
                }));
            }
        }
        let body = json!({"attributes": attributes, "events": events, "purchases": purchases});
        server.post(key, "/users/track", &body).await.expect(201);
    }
    if delete {
        let gone = format!("u{}", round * 7 % 90);
        server
            .post(key, "/users/delete", &json!({"external_ids": [gone]}))
            .await
            .expect(202);
    }
}

fn plans() -> Vec<Plan> {
    [
        json!({"event": "login", "op": "gte", "value": 1, "within_days": 3}),
        json!({"event": "view", "op": "gte", "value": 2}),
        json!({"purchase": "*", "op": "gte", "value": 1}),
        json!({"attribute": "plan", "op": "eq", "value": "gold"}),
        json!({"attribute": "score", "op": "gt", "value": 3}),
        json!({"attribute": "renews", "op": "within_last_days", "value": 5}),
        json!({"attribute": "tags", "op": "contains", "value": "red"}),
    ]
    .iter()
    .map(|f| {
        let filter = Filter::parse(f, "filter").expect("a filter");
        Plan::compile(&filter, &|id| Err(PlanError::UnknownSegment(id))).expect("a plan")
    })
    .collect()
}

/// What the running server's index answers: users, events, and every plan's size at
/// a few instants.
fn answers(server: &TestServer, ws: WorkspaceId) -> (usize, usize, Vec<u64>) {
    let state = server.state();
    let index = state.index(ws);
    let index = read(&index);
    let instants: Vec<Timestamp> = [
        "2024-05-03T00:00:00Z",
        "2024-05-06T00:00:00Z",
        "2024-06-01T00:00:00Z",
    ]
    .iter()
    .map(|t| t.parse().expect("an instant"))
    .collect();
    let mut sizes = Vec::new();
    for plan in plans() {
        for at in &instants {
            sizes.push(index.size(&plan, *at, &TimeZone::UTC));
        }
    }
    (index.user_count(), index.event_count(), sizes)
}

fn from_checkpoints(server: &TestServer) -> usize {
    server
        .state()
        .loading
        .from_checkpoints
        .load(Ordering::Relaxed)
}

fn checkpoint_file(server: &TestServer, ws: WorkspaceId) -> PathBuf {
    headcount_server::checkpoints::dir_of(&server.dir).join(format!("workspace-{}.index", ws.0))
}

/// A server with data, stopped cleanly: its checkpoint written.
async fn stopped_with_data() -> (TestServer, String, WorkspaceId, (usize, usize, Vec<u64>)) {
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    server.serve().await;
    for round in 0..3 {
        ingest(&server, &key, round, true).await;
    }
    let before = answers(&server, ws);
    assert!(before.0 > 50, "{before:?}");
    server.restart().await;
    assert_eq!(
        from_checkpoints(&server),
        1,
        "the clean stop wrote a checkpoint"
    );
    assert_eq!(answers(&server, ws), before);
    server.stop().await;
    assert!(checkpoint_file(&server, ws).exists());
    (server, key, ws, before)
}

/// Restarts from the facts alone (no checkpoint) and asserts the same answers.
async fn assert_equal_to_a_rebuild(server: &mut TestServer, ws: WorkspaceId) {
    let loaded = answers(server, ws);
    server.stop().await;
    std::fs::remove_dir_all(headcount_server::checkpoints::dir_of(&server.dir))
        .expect("remove the checkpoints");
    server.restart().await;
    assert_eq!(from_checkpoints(server), 0);
    assert_eq!(answers(server, ws), loaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_clean_stop_loads_the_checkpoint_and_replays_what_follows() {
    let (mut server, key, ws, _) = stopped_with_data().await;
    server.reopen();
    server.serve().await;
    assert_eq!(from_checkpoints(&server), 1);
    // Owner-only, as the rest of the data directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &std::path::Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&checkpoint_file(&server, ws)), 0o600);
        assert_eq!(
            mode(&headcount_server::checkpoints::dir_of(&server.dir)),
            0o700
        );
    }
    // More facts and deletes, then a restart that cannot write a checkpoint (as after a
    // crash): the old checkpoint and the log after it, deletion entries included.
    ingest(&server, &key, 5, true).await;
    let after = answers(&server, ws);
    let checkpoint = std::fs::read(checkpoint_file(&server, ws)).expect("the checkpoint");
    server.stop().await;
    std::fs::write(checkpoint_file(&server, ws), &checkpoint).expect("the old checkpoint back");
    server.restart().await;
    assert_eq!(from_checkpoints(&server), 1);
    let facts = server.state().loading.facts.load(Ordering::Relaxed);
    assert!(
        facts > 0 && facts < 1000,
        "only the facts after it: {facts}"
    );
    assert_eq!(answers(&server, ws), after);
    assert_equal_to_a_rebuild(&mut server, ws).await;
}

async fn damaged_checkpoint_is_rebuilt(damage: impl FnOnce(&mut Vec<u8>)) {
    let (mut server, _key, ws, before) = stopped_with_data().await;
    let path = checkpoint_file(&server, ws);
    let mut bytes = std::fs::read(&path).expect("the checkpoint");
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("the damaged checkpoint");
    server.reopen();
    server.serve().await;
    assert_eq!(from_checkpoints(&server), 0, "the damage went unnoticed");
    assert_eq!(answers(&server, ws), before);
    // The rebuilt index is checkpointed again at the next clean stop.
    server.restart().await;
    assert_eq!(from_checkpoints(&server), 1);
    assert_eq!(answers(&server, ws), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_with_a_flipped_byte_is_rebuilt_from_the_facts() {
    damaged_checkpoint_is_rebuilt(|bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_checkpoint_is_rebuilt_from_the_facts() {
    damaged_checkpoint_is_rebuilt(|bytes| bytes.truncate(bytes.len() * 2 / 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_format_version_is_rebuilt_from_the_facts() {
    damaged_checkpoint_is_rebuilt(|bytes| {
        let other = headcount_engine::FORMAT_VERSION + 1;
        bytes[8..12].copy_from_slice(&other.to_le_bytes());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_format_version_1_is_rebuilt_from_the_facts() {
    // What a directory checkpointed by a build before format 2 holds.
    damaged_checkpoint_is_rebuilt(|bytes| bytes[8..12].copy_from_slice(&1u32.to_le_bytes())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_workspace_is_rebuilt_from_the_facts() {
    let (mut server, _key, ws, before) = stopped_with_data().await;
    server.reopen();
    let other = server.workspace(Ws::named("other"));
    std::fs::copy(
        checkpoint_file(&server, ws),
        checkpoint_file(&server, other),
    )
    .expect("copy the checkpoint");
    server.restart().await;
    assert_eq!(
        from_checkpoints(&server),
        1,
        "only main's checkpoint is usable"
    );
    assert_eq!(answers(&server, ws), before);
    assert_eq!(answers(&server, other).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_loading_and_the_api_answers_503_until_the_indexes_are_loaded() {
    let (mut server, key, _ws, _) = stopped_with_data().await;
    server.reopen();
    server.serve_unloaded().await;
    let get = |path: &str| server.request(reqwest::Method::GET, path);
    let r = server.send(get("/healthz"), None).await;
    r.expect(200);
    let r = server.send(get("/readyz"), None).await;
    r.expect(503);
    assert_eq!(r.message(), "loading");
    assert_eq!(r.header("retry-after"), "2");
    assert_eq!(r.body["workspaces"], json!(1));
    assert_eq!(r.body["workspaces_loaded"], json!(0));
    let r = server.get(&key, "/segments/list").await;
    r.expect(503);
    assert_eq!(r.header("retry-after"), "2");
    assert!(r.message().contains("loading"), "{r:?}");
    let track =
        json!({"events": [{"external_id": "x", "name": "e", "time": "2024-05-01T00:00:00Z"}]});
    let r = server.post(&key, "/users/track", &track).await;
    r.expect(503);
    server.start_loading();
    server.wait_ready().await;
    let r = server.send(get("/readyz"), None).await;
    r.expect(200);
    assert_eq!(r.body, json!({"message": "ready"}));
    server.get(&key, "/segments/list").await.expect(200);
    let r: Value = server.post(&key, "/users/track", &track).await.body;
    assert_eq!(r["message"], json!("success"));
}
