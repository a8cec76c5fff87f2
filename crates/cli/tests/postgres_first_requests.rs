//! `serve` on PostgreSQL answers the first requests of a workspace whose engine it has
//! not learnt yet: learning it reads the store, which must happen off the async
//! runtime (the PostgreSQL client panicked there, and the request's connection closed
//! without an answer: the CI flake "error sending request" of postgres.rs).

#[allow(dead_code)] // helpers other test files use
mod common;

use common::{Run, Server, TempDir, command};
use headcount_store::testing::TestPostgres;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;

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

fn key_of(data: &Path, url: &str, workspace: &str) -> String {
    hcdb(data, url, &["workspaces", "create", workspace]).ok();
    hcdb(
        data,
        url,
        &["keys", "create", "--workspace", workspace, "--name", "ci"],
    )
    .ok()
    .stdout
    .trim_end()
    .to_string()
}

#[test]
fn the_first_track_delete_and_preview_of_a_workspace_on_postgres_are_answered() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("pg-first");
    let data = tmp.data();
    let keys: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|w| key_of(&data, &url, w))
        .collect();
    let server = Server::start_with(&data, tmp.path(), &["--database", url.as_str()]);
    let now = jiff::Timestamp::now().to_string();

    let tracked = server.call(
        "/users/track",
        &keys[0],
        Some(&json!({"events": [{"external_id": "u1", "name": "ping", "time": now}]})),
    );
    assert_eq!(tracked.status, 201, "{tracked:?}");
    let deleted = server.call(
        "/users/delete",
        &keys[1],
        Some(&json!({"external_ids": ["u1"]})),
    );
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let previewed = server.call(
        "/segments/preview",
        &keys[2],
        Some(&json!({"filter": {"event": "ping", "op": "gte", "value": 1}})),
    );
    assert_eq!(previewed.status, 200, "{previewed:?}");
    assert_eq!(server.terminate().code(), Some(0));
}
