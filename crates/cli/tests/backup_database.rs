//! `headcount backup --to-database URL` and `--from-database URL DEST` against a real
//! PostgreSQL the test starts: a data directory with two workspaces, keys (one
//! revoked, one limited to an address), segments (one archived), stored sizes, tracks
//! and a deletion is copied into an empty database, served from it with the same
//! answers, copied back into a new data directory with the same answers again; a
//! database that is not empty is refused with exit status 2.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{Server, TempDir, create_key, create_workspace, hc, open_store};
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::testing::TestPostgres;
use headcount_store::{PostgresStore, Store};
use serde_json::{Value, json};
use std::path::Path;
use std::str::FromStr;

/// An answer of a server: what was asked (with which key), its status and body.
type Answer = (String, u16, Value);

/// `/segments/list` with each key, and `data_series` and `details` of each segment.
fn answers(server: &Server, keys: &[&str], segments: &[String]) -> Vec<Answer> {
    let mut out = Vec::new();
    for key in keys {
        let list = server.call("/segments/list", key, None);
        out.push((format!("list with {}", &key[..8]), list.status, list.body));
        for id in segments {
            for path in [
                format!("/segments/data_series?segment_id={id}&length=5"),
                format!("/segments/details?segment_id={id}"),
            ] {
                let answer = server.call(&path, key, None);
                out.push((
                    format!("{path} with {}", &key[..8]),
                    answer.status,
                    answer.body,
                ));
            }
        }
    }
    out
}

/// The sizes of a `data_series` answer, oldest first.
fn sizes(answer: &Answer) -> Vec<u64> {
    assert_eq!(answer.1, 200, "{answer:?}");
    answer.2["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| p["size"].as_u64().expect("size"))
        .collect()
}

/// The answer to the request starting with `prefix`.
fn find<'a>(all: &'a [Answer], prefix: &str) -> &'a Answer {
    all.iter()
        .find(|(p, _, _)| p.starts_with(prefix))
        .unwrap_or_else(|| panic!("no answer to {prefix}"))
}

fn create_segment(server: &Server, key: &str, name: &str, event: &str) -> String {
    let created = server.call(
        "/segments/create",
        key,
        Some(&json!({"name": name, "filter": {"event": event, "op": "gte", "value": 1}})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    created.body["segment_id"]
        .as_str()
        .expect("segment_id")
        .to_string()
}

fn track(server: &Server, key: &str, users: &[&str], event: &str) {
    let now = jiff::Timestamp::now().to_string();
    let events: Vec<Value> = users
        .iter()
        .map(|u| json!({"external_id": u, "name": event, "time": now}))
        .collect();
    let answer = server.call("/users/track", key, Some(&json!({ "events": events })));
    assert_eq!(answer.status, 201, "{answer:?}");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn a_data_directory_moved_into_postgres_and_back_serves_the_same_answers() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("backup-database");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    create_workspace(&data, "beta", "Europe/Paris");
    let acme = create_key(&data, "acme", "admin", &[]);
    let beta = create_key(&data, "beta", "local", &["--allow-ip", "127.0.0.1/32"]);
    let revoked = create_key(&data, "acme", "old", &[]);
    let read_only = create_key(&data, "acme", "reader", &["--permission", "segments.list"]);
    hc(&data, &["keys", "revoke", &revoked[..8]]).ok();

    let server = Server::start(&data, tmp.path());
    let pingers = create_segment(&server, &acme, "pingers", "ping");
    let buyers = create_segment(&server, &acme, "buyers", "buy");
    let gone = create_segment(&server, &acme, "gone", "ping");
    let visitors = create_segment(&server, &beta, "visitors", "visit");
    let archived = server.call(
        "/segments/archive",
        &acme,
        Some(&json!({"segment_id": gone})),
    );
    assert_eq!(archived.status, 200, "{archived:?}");
    track(&server, &acme, &["u1", "u2", "u3", "u4"], "ping");
    track(&server, &acme, &["u2", "u5"], "buy");
    track(&server, &beta, &["v1", "v2", "v3"], "visit");
    let deleted = server.call(
        "/users/delete",
        &acme,
        Some(&json!({"external_ids": ["u3"]})),
    );
    assert_eq!(deleted.status, 202, "{deleted:?}");
    assert_eq!(server.terminate().code(), Some(0));

    // Stored sizes of completed days, as the daily job leaves them.
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let day = |back: i64| Day(today - jiff::ToSpan::days(back));
    let computed_at = Timestamp::from_second(1_700_000_000).expect("an instant");
    {
        let store = open_store(&data);
        let id = |s: &str| SegmentId::from_str(s).expect("a segment id");
        store
            .put_sizes(id(&pingers), &[(day(2), 40), (day(1), 41)], computed_at)
            .expect("sizes");
        store
            .put_sizes(id(&visitors), &[(day(1), 7)], computed_at)
            .expect("sizes");
    }

    let keys = [acme.as_str(), beta.as_str()];
    let segments = [pingers, buyers, gone, visitors];
    let server = Server::start(&data, tmp.path());
    let expected = answers(&server, &keys, &segments);
    assert_eq!(server.terminate().code(), Some(0));
    let pinger_sizes = sizes(find(
        &expected,
        &format!("/segments/data_series?segment_id={}", segments[0]),
    ));
    assert_eq!(pinger_sizes[2..], [40, 41, 3], "{expected:?}");
    assert_eq!(
        sizes(find(
            &expected,
            &format!("/segments/data_series?segment_id={}", segments[1])
        ))[4],
        2
    );

    // Into PostgreSQL.
    let moved = hc(&data, &["backup", "--to-database", &url]).ok();
    assert!(moved.stderr.contains("2 workspaces"), "{moved:?}");
    let db = PostgresStore::open(&url).expect("the database");
    assert_eq!(db.keys().expect("keys").len(), 4);
    assert_eq!(db.segments().expect("segments").len(), 4);
    let stored = db
        .sizes(
            SegmentId::from_str(&segments[0]).expect("id"),
            day(5),
            day(0),
        )
        .expect("sizes");
    let mine: Vec<(Day, u64)> = stored
        .iter()
        .filter(|s| s.computed_at == computed_at)
        .map(|s| (s.day, s.size))
        .collect();
    assert_eq!(mine, vec![(day(2), 40), (day(1), 41)], "{stored:?}");
    drop(db);
    let checkpoints = tmp.path().join("pg-checkpoints");
    let global = [
        "--database",
        url.as_str(),
        "--checkpoint-dir",
        path(&checkpoints),
    ];
    let on_pg = Server::start_with(&data, tmp.path(), &global);
    assert_eq!(answers(&on_pg, &keys, &segments), expected);
    let refused = on_pg.call("/segments/list", &revoked, None);
    assert_eq!(refused.status, 401, "{refused:?}");
    let limited = on_pg.call(
        &format!("/segments/details?segment_id={}", segments[0]),
        &read_only,
        None,
    );
    assert_eq!(limited.status, 403, "{limited:?}");
    // New rows continue after the copied ids, and the log after its positions.
    let fresh = create_segment(&on_pg, &acme, "fresh", "buy");
    assert!(!segments.contains(&fresh));
    track(&on_pg, &acme, &["u6"], "buy");
    let buyers_now = on_pg.call(
        &format!("/segments/data_series?segment_id={fresh}&length=1"),
        &acme,
        None,
    );
    assert_eq!(buyers_now.body["data"][0]["size"], 3, "{buyers_now:?}");
    assert_eq!(on_pg.terminate().code(), Some(0));

    // A database that is no longer empty is refused, and left as it was.
    let again = hc(&data, &["backup", "--to-database", &url]);
    assert_eq!(again.code(), Some(2), "{again:?}");
    assert!(again.stderr.contains("is not empty"), "{again:?}");

    // Back into a new data directory: the same answers, the new segment and track too.
    let back = tmp.path().join("back");
    let run = hc(&data, &["backup", "--from-database", &url, path(&back)]).ok();
    assert!(run.stderr.contains("2 workspaces"), "{run:?}");
    let copy = Server::start(&back, tmp.path());
    // What changed on PostgreSQL: a new segment listed, one more buyer today.
    let mut expected_back = expected.clone();
    for (p, status, body) in expected_back.iter_mut() {
        if *status == 200
            && p.starts_with(&format!("/segments/data_series?segment_id={}", segments[1]))
        {
            body["data"][4]["size"] = json!(3);
        }
    }
    let listed = |all: &[Answer]| -> Vec<String> {
        let mut ids: Vec<String> = find(all, &format!("list with {}", &acme[..8])).2["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        ids
    };
    let got = answers(&copy, &keys, &segments);
    let mut ids_before = listed(&expected);
    ids_before.push(fresh.clone());
    ids_before.sort();
    assert_eq!(listed(&got), ids_before);
    let not_acme_list = |all: Vec<Answer>| -> Vec<Answer> {
        all.into_iter()
            .filter(|(p, _, _)| *p != format!("list with {}", &acme[..8]))
            .collect()
    };
    assert_eq!(not_acme_list(got), not_acme_list(expected_back));
    assert_eq!(copy.call("/segments/list", &revoked, None).status, 401);
    assert_eq!(copy.terminate().code(), Some(0));
    hc(&back, &["verify"]).ok();

    // A data directory that already holds data is refused as a destination.
    let busy = hc(&data, &["backup", "--from-database", &url, path(&data)]);
    assert_ne!(busy.code(), Some(0), "{busy:?}");
}
