//! Every command on a PostgreSQL database (`--database URL`) against a real server the
//! test starts: administration, `serve` with `/users/track` and `data_series`,
//! `verify`, and `import`, `snapshot` and `eval` answering exactly as on a data
//! directory.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{Run, Server, TempDir, command, hc, series};
use headcount_model::{Day, SegmentId, Timestamp, WorkspaceId};
use headcount_store::testing::TestPostgres;
use headcount_store::{PostgresStore, Segment, SqliteStore, Store};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;

/// Runs `headcount --database URL ARGS…` (a data directory is given too, and unused).
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

fn track(server: &Server, key: &str, body: Value) {
    let answer = server.call("/users/track", key, Some(&body));
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[test]
fn serve_on_postgres_counts_tracked_users_exactly_and_keeps_them_across_restarts() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("pg-serve");
    let data = tmp.data();
    let checkpoints = tmp.path().join("checkpoints");
    let global = ["--database", url.as_str(), "--checkpoint-dir"];
    let global: Vec<&str> = global
        .into_iter()
        .chain([checkpoints.to_str().expect("UTF-8 path")])
        .collect();
    hcdb(&data, &url, &["workspaces", "create", "acme"]).ok();
    let key = hcdb(
        &data,
        &url,
        &["keys", "create", "--workspace", "acme", "--name", "ci"],
    )
    .ok()
    .stdout
    .trim_end()
    .to_string();
    let listed = hcdb(&data, &url, &["workspaces", "list"]).ok();
    assert!(listed.stdout.contains("acme"), "{listed:?}");
    assert!(
        !data.exists(),
        "no data directory is created with --database"
    );

    let server = Server::start_with(&data, tmp.path(), &global);
    let created = server.call(
        "/segments/create",
        &key,
        Some(&json!({"name": "pingers", "filter": {"event": "ping", "op": "gte", "value": 1}})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let pingers = created.body["segment_id"]
        .as_str()
        .expect("segment_id")
        .to_string();
    let now = jiff::Timestamp::now().to_string();
    track(
        &server,
        &key,
        json!({"events": [
            {"external_id": "u1", "name": "ping", "time": now},
            {"external_id": "u2", "name": "ping", "time": now},
            {"external_id": "u2", "name": "ping", "time": now},
            {"external_id": "u3", "name": "pong", "time": now},
        ]}),
    );
    track(
        &server,
        &key,
        json!({"events": [{"external_id": "u4", "name": "ping", "time": now}]}),
    );
    assert_eq!(series(&server, &key, &pingers, 1)[0].1, 3);
    // verify reads every fact of the database next to the running server.
    let verified = hcdb(&data, &url, &["verify"]).ok();
    assert!(verified.stdout.contains("no problem found"), "{verified:?}");
    assert!(verified.stdout.contains("5 facts"), "{verified:?}");
    // `serve` holds no writer lock on a database (its nodes follow every append): an
    // import runs next to it.
    let input = tmp.write("one.ndjson", "{\"events\":[]}\n");
    hcdb(
        &data,
        &url,
        &[
            "import",
            "--workspace",
            "acme",
            input.to_str().expect("UTF-8 path"),
        ],
    )
    .ok();
    assert_eq!(server.terminate().code(), Some(0));

    // Committed in PostgreSQL: a new server answers the same, from its checkpoint.
    let server = Server::start_with(&data, tmp.path(), &global);
    assert_eq!(series(&server, &key, &pingers, 1)[0].1, 3);
    track(
        &server,
        &key,
        json!({"events": [{"external_id": "u5", "name": "ping", "time": now}]}),
    );
    assert_eq!(series(&server, &key, &pingers, 1)[0].1, 4);
    assert_eq!(server.terminate().code(), Some(0));
    assert!(
        std::fs::read_dir(&checkpoints)
            .map(|d| d.count())
            .unwrap_or(0)
            > 0,
        "checkpoints are written in --checkpoint-dir"
    );
}

const INPUT: &str = concat!(
    r#"{"attributes":[{"external_id":"u1","country":"FR","_time":"2024-03-29T23:30:00Z"}]}"#,
    "\n",
    r#"{"events":[{"external_id":"u2","name":"login","time":"2024-03-30T22:30:00Z"}]}"#,
    "\n",
    r#"{"events":[{"external_id":"u3","name":"login","time":"2024-03-31T22:30:00Z"}]}"#,
    "\n",
    r#"{"attributes":[{"user_alias":{"alias_name":"a1","alias_label":"crm"},"country":"FR","_time":"2024-04-01T12:00:00Z"}]}"#,
    "\n",
    r#"{"purchases":[{"external_id":"u4","product_id":"p","currency":"EUR","price":3,"time":"2024-04-02T10:00:00Z"}]}"#,
    "\n",
    r#"{"attributes":[{"external_id":"u1","country":"DE","_time":"2024-04-02T21:59:59Z"}]}"#,
    "\n",
);

/// Stores the same two segments in a workspace, as the server would.
fn add_segments(store: &dyn Store, ws: WorkspaceId, ids: [SegmentId; 2]) {
    let at = Timestamp::now();
    let segment = |id, name: &str, filter| Segment {
        id,
        workspace: ws,
        name: name.into(),
        filter,
        text_description: String::new(),
        tags: vec![],
        teams: vec![],
        analytics_tracking_enabled: false,
        created_at: at,
        updated_at: at,
        archived_at: None,
    };
    store
        .insert_segment(&segment(ids[0], "everyone", json!({"all": []})))
        .expect("segment");
    store
        .insert_segment(&segment(
            ids[1],
            "french",
            json!({"attribute": "country", "op": "eq", "value": "FR"}),
        ))
        .expect("segment");
}

fn stored(store: &dyn Store, id: SegmentId) -> Vec<(Day, u64)> {
    store
        .sizes(id, Day::ymd(2024, 3, 1), Day::ymd(2024, 4, 30))
        .expect("sizes")
        .into_iter()
        .map(|s| (s.day, s.size))
        .collect()
}

#[test]
fn import_snapshot_and_eval_on_postgres_answer_as_on_a_data_directory() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("pg-import");
    let data = tmp.data();
    let input = tmp.write("input.ndjson", INPUT);
    let input = input.to_str().expect("UTF-8 path");
    let filters = tmp.write(
        "filters.json",
        r#"[{"name":"everyone","filter":{"all":[]}},
            {"name":"loggers","filter":{"event":"login","op":"gte","value":1}}]"#,
    );
    let filters = filters.to_str().expect("UTF-8 path");
    let ids = [SegmentId::new_random(), SegmentId::new_random()];

    // The data directory.
    hc(
        &data,
        &[
            "workspaces",
            "create",
            "paris",
            "--time-zone",
            "Europe/Paris",
        ],
    )
    .ok();
    hc(&data, &["import", "--workspace", "paris", input]).ok();
    {
        let store = SqliteStore::open(&data).expect("open");
        let ws = store.workspaces().expect("workspaces")[0].id;
        add_segments(&store, ws, ids);
    }
    let range = ["--from", "2024-03-29", "--to", "2024-04-03"];
    let mut args = vec!["snapshot", "--workspace", "paris"];
    args.extend(range);
    let on_dir = hc(&data, &args).ok();
    let mut eval = vec!["eval", "--workspace", "paris", "--filters", filters];
    eval.extend(range);
    let eval_dir = hc(&data, &eval).ok();

    // The database.
    hcdb(
        &data,
        &url,
        &[
            "workspaces",
            "create",
            "paris",
            "--time-zone",
            "Europe/Paris",
        ],
    )
    .ok();
    hcdb(&data, &url, &["import", "--workspace", "paris", input]).ok();
    let pg_store = PostgresStore::open(&url).expect("open");
    let ws = pg_store.workspaces().expect("workspaces")[0].id;
    add_segments(&pg_store, ws, ids);
    let on_db = hcdb(&data, &url, &args).ok();
    let eval_db = hcdb(&data, &url, &eval).ok();

    assert_eq!(on_db.stderr, on_dir.stderr, "snapshot says the same");
    let dir_store = SqliteStore::open(&data).expect("open");
    for id in ids {
        let sizes = stored(&pg_store, id);
        assert_eq!(sizes.len(), 6, "{sizes:?}");
        assert_eq!(sizes, stored(&dir_store, id));
    }
    assert_eq!(
        stored(&pg_store, ids[0])
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        [0, 2, 2, 4, 5, 5],
        "everyone, by hand"
    );
    // Everything but the timings.
    let answer = |run: &Run| {
        let mut v: Value = serde_json::from_str(&run.stdout).expect("eval JSON");
        for timing in ["load_seconds", "eval_seconds"] {
            v.as_object_mut().expect("an object").remove(timing);
        }
        v
    };
    assert_eq!(answer(&eval_db), answer(&eval_dir), "eval answers the same");
    assert_eq!(
        answer(&eval_db)["results"][1]["sizes"]["2024-04-03"],
        2,
        "loggers, by hand"
    );
}
