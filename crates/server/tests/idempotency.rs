//! `Idempotency-Key` on `/users/track` and `/users/delete`: a repeat gets the first
//! answer and applies nothing, another body is 422, a repeat in flight is 409, the
//! answers survive a restart, keys are per workspace, a bad key is 400.

#[allow(dead_code)]
mod common;

use common::{Resp, TestServer, Ws, config};
use headcount_model::{FactKind, UserKey, WorkspaceId};
use headcount_store::{Permission, SqliteStore, Store};
use serde_json::{Value, json};
use std::time::Duration;

/// `POST path` with a JSON body and an `Idempotency-Key` header.
async fn post_with_key(
    server: &TestServer,
    key: &str,
    path: &str,
    idem: &str,
    body: &Value,
) -> Resp {
    let request = server
        .request(reqwest::Method::POST, path)
        .header("idempotency-key", idem)
        .json(body);
    server.send(request, Some(key)).await
}

/// Every stored fact of a workspace, per user.
/// The users of the facts the stored log holds, one per fact, as a replay of it in
/// order sees them: a deletion entry removes the facts of its user before it.
fn stored_facts(store: &SqliteStore, ws: WorkspaceId) -> Vec<UserKey> {
    let mut users: Vec<UserKey> = Vec::new();
    store
        .scan_facts(ws, &mut |user, fact| match fact.kind {
            FactKind::Deletion => users.retain(|u| u != user),
            _ => users.push(user.clone()),
        })
        .expect("scan");
    users.sort_by_key(|u| format!("{u:?}"));
    users
}

fn events(user: &str, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"external_id": user, "name": format!("e{i}"), "time": "2024-05-01T00:00:00Z"}))
        .collect();
    json!({ "events": events })
}

fn replayed(r: &Resp) -> bool {
    r.headers.get("idempotent-replayed").is_some()
}

/// Two workspaces and a key each, served.
async fn two_workspaces() -> (TestServer, [(WorkspaceId, String); 2]) {
    let mut server = TestServer::new(config());
    let a = server.workspace(Ws::named("a"));
    let b = server.workspace(Ws::named("b"));
    let key_a = server.key(a, &Permission::ALL, &[]);
    let key_b = server.key(b, &Permission::ALL, &[]);
    server.serve().await;
    (server, [(a, key_a), (b, key_b)])
}

#[tokio::test]
async fn a_repeated_track_returns_the_first_answer_and_applies_nothing() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    // One valid object and one rejected: the answer carries the rejection.
    let body = json!({"events": [
        {"external_id": "u1", "name": "login", "time": "2024-05-01T00:00:00Z"},
        {"external_id": "u2", "name": "login"},
    ]});
    let first = post_with_key(&server, &key, "/users/track", "track-1", &body).await;
    first.expect(201);
    assert!(!replayed(&first));
    assert_eq!(
        first.body["errors"].as_array().map(Vec::len),
        Some(1),
        "{first:?}"
    );
    for _ in 0..3 {
        let again = post_with_key(&server, &key, "/users/track", "track-1", &body).await;
        assert_eq!((again.status, &again.body), (201, &first.body));
        assert_eq!(again.header("idempotent-replayed"), "true");
        // A repeat is still counted by the rate limit.
        assert!(again.headers.contains_key("x-ratelimit-remaining"));
    }
    assert_eq!(
        stored_facts(server.store(), ws),
        vec![UserKey::External("u1".into())],
        "the facts were applied once"
    );
    // Without the header, the same body is applied again, as before.
    server.post(&key, "/users/track", &body).await.expect(201);
    assert_eq!(stored_facts(server.store(), ws).len(), 2);
}

#[tokio::test]
async fn the_same_key_with_another_body_or_endpoint_is_422() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    post_with_key(&server, &key, "/users/track", "k", &events("u1", 1))
        .await
        .expect(201);
    let other = post_with_key(&server, &key, "/users/track", "k", &events("u1", 2)).await;
    other.expect(422);
    assert!(other.message().contains("Idempotency-Key"), "{other:?}");
    let delete = post_with_key(
        &server,
        &key,
        "/users/delete",
        "k",
        &json!({"external_ids": ["u1"]}),
    )
    .await;
    delete.expect(422);
    assert_eq!(
        stored_facts(server.store(), ws).len(),
        1,
        "nothing else applied"
    );
}

#[tokio::test]
async fn a_rejected_body_is_remembered_and_a_repeat_gets_the_same_400() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    let bad = json!({"events": [{"external_id": "u1", "name": "no time"}]});
    let first = post_with_key(&server, &key, "/users/track", "bad", &bad).await;
    first.expect(400);
    let again = post_with_key(&server, &key, "/users/track", "bad", &bad).await;
    assert_eq!((again.status, &again.body), (400, &first.body));
    assert!(replayed(&again));
    assert!(stored_facts(server.store(), ws).is_empty());
}

#[tokio::test]
async fn a_repeated_delete_returns_the_first_answer() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    server
        .post(&key, "/users/track", &events("u1", 2))
        .await
        .expect(201);
    let body = json!({"external_ids": ["u1"]});
    let first = post_with_key(&server, &key, "/users/delete", "del-1", &body).await;
    first.expect(202);
    assert_eq!(first.body["deleted"], 1);
    assert!(stored_facts(server.store(), ws).is_empty());
    // u1 comes back; the repeat of the delete does not delete it again.
    server
        .post(&key, "/users/track", &events("u1", 1))
        .await
        .expect(201);
    let again = post_with_key(&server, &key, "/users/delete", "del-1", &body).await;
    assert_eq!((again.status, &again.body), (202, &first.body));
    assert!(replayed(&again));
    assert_eq!(
        stored_facts(server.store(), ws).len(),
        1,
        "u1's new fact is kept"
    );
}

#[tokio::test]
async fn keys_are_per_workspace() {
    let (server, [(a, key_a), (b, key_b)]) = two_workspaces().await;
    let body = events("u1", 1);
    post_with_key(&server, &key_a, "/users/track", "shared", &body)
        .await
        .expect(201);
    let in_b = post_with_key(&server, &key_b, "/users/track", "shared", &body).await;
    in_b.expect(201);
    assert!(!replayed(&in_b), "another workspace's key is another key");
    // Another body under the same key is fine in the other workspace, too.
    post_with_key(&server, &key_b, "/users/track", "only-a", &events("u9", 1))
        .await
        .expect(201);
    post_with_key(&server, &key_a, "/users/track", "only-a", &events("u1", 3))
        .await
        .expect(201);
    assert_eq!(stored_facts(server.store(), a).len(), 4);
    assert_eq!(stored_facts(server.store(), b).len(), 2);
}

#[tokio::test]
async fn remembered_answers_survive_a_restart() {
    let (mut server, [(ws, key), _]) = two_workspaces().await;
    let body = events("u1", 2);
    let first = post_with_key(&server, &key, "/users/track", "durable", &body).await;
    first.expect(201);
    server.restart().await;
    let again = post_with_key(&server, &key, "/users/track", "durable", &body).await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert!(replayed(&again));
    let other = post_with_key(&server, &key, "/users/track", "durable", &events("u1", 1)).await;
    other.expect(422);
    assert_eq!(stored_facts(server.store(), ws).len(), 2);
}

#[tokio::test]
async fn a_bad_key_is_400_naming_the_header() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    let body = events("u1", 1);
    let long = "k".repeat(256);
    for bad in ["", "\"unterminated", long.as_str(), "tab\there"] {
        let r = post_with_key(&server, &key, "/users/track", bad, &body).await;
        r.expect(400);
        assert!(r.message().contains("Idempotency-Key"), "{bad:?}: {r:?}");
    }
    // Not ASCII: reqwest refuses to build such a header, so send raw bytes.
    let request = server
        .request(reqwest::Method::POST, "/users/track")
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text"),
        )
        .json(&body);
    let r = server.send(request, Some(&key)).await;
    r.expect(400);
    assert!(r.message().contains("printable ASCII"), "{r:?}");
    assert!(stored_facts(server.store(), ws).is_empty());
    // A quoted key (a Structured Field String) is the same key as the bare one.
    post_with_key(&server, &key, "/users/track", "\"same\"", &body)
        .await
        .expect(201);
    let bare = post_with_key(&server, &key, "/users/track", "same", &body).await;
    assert!(replayed(&bare), "{bare:?}");
}

#[tokio::test]
async fn a_repeat_while_the_first_is_in_flight_is_409() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    // Hold the database's write lock from another connection: the first request's
    // commit waits for it (the store waits up to 5 s for a busy database).
    let db = rusqlite::Connection::open(SqliteStore::database_path(&server.dir)).expect("open");
    db.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let body = events("u1", 1);
    let first = {
        let request = server
            .request(reqwest::Method::POST, "/users/track")
            .header("idempotency-key", "slow")
            .bearer_auth(&key)
            .json(&body);
        tokio::spawn(async move { request.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = post_with_key(&server, &key, "/users/track", "slow", &body).await;
    second.expect(409);
    assert!(
        second.message().contains("still being processed"),
        "{second:?}"
    );
    db.execute_batch("COMMIT").expect("release the write lock");
    drop(db);
    let first = first.await.expect("join").expect("the first answer");
    assert_eq!(first.status().as_u16(), 201);
    let third = post_with_key(&server, &key, "/users/track", "slow", &body).await;
    third.expect(201);
    assert!(replayed(&third));
    assert_eq!(stored_facts(server.store(), ws).len(), 1);
}

#[tokio::test]
async fn concurrent_pairs_of_a_key_apply_once_each() {
    let (server, [(ws, key), _]) = two_workspaces().await;
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for pair in 0..40 {
        for _ in 0..2 {
            let (server, key) = (server.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let idem = format!("pair-{pair}");
                let r =
                    post_with_key(&server, &key, "/users/track", &idem, &events(&idem, 1)).await;
                (pair, r.status, replayed(&r))
            }));
        }
    }
    let mut firsts = [0; 40];
    let mut conflicts = 0;
    for task in tasks {
        let (pair, status, replayed) = task.await.expect("join");
        match (status, replayed) {
            (201, false) => firsts[pair] += 1,
            (201, true) => {}
            (409, false) => conflicts += 1,
            other => panic!("pair {pair}: unexpected answer {other:?}"),
        }
    }
    assert!(
        firsts.iter().all(|n| *n == 1),
        "each key applied once: {firsts:?}"
    );
    assert_eq!(stored_facts(server.store(), ws).len(), 40);
    assert!(conflicts >= 1, "no pair met in flight: {firsts:?}");
    eprintln!("{conflicts} of 40 pairs met in flight");
}
