//! `headcount backup` and `headcount verify` with real processes: a backup taken while
//! `serve` ingests holds every acknowledged write and serves the same answers, one
//! taken without a server too; a destination in use is refused; `verify` counts a
//! healthy directory and names each damaged chunk of a broken one.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{Server, TempDir, create_key, create_workspace, hc, hc_stdin, segment_ids, series};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The users whose `/users/track` was acknowledged, in order.
type Acked = Arc<Mutex<Vec<u64>>>;

/// Posts `/users/track` for users u0, u1, … (one `ping` event each, now) until `stop`,
/// recording each acknowledged one.
fn ingest(base: String, key: String, acked: Acked, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"events": [{
            "external_id": format!("u{next}"),
            "name": "ping",
            "time": jiff::Timestamp::now().to_string(),
        }]});
        let status = rt.block_on(async {
            client
                .post(format!("{base}/users/track"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        match status {
            Ok(201) => acked.lock().expect("acked").push(next),
            other => panic!("/users/track of u{next}: {other:?}"),
        }
        next += 1;
    }
}

fn acked_now(acked: &Acked) -> BTreeSet<u64> {
    acked.lock().expect("acked").iter().copied().collect()
}

/// The users of workspace `name` that have a `ping` event, read from the store of
/// `data` (no process may be using it).
fn pinged(data: &Path, name: &str) -> BTreeSet<u64> {
    common::facts(data, name)
        .iter()
        .filter_map(|(user, _)| match user {
            headcount_model::UserKey::External(id) => id.strip_prefix('u')?.parse().ok(),
            _ => None,
        })
        .collect()
}

/// Creates a segment and returns its id.
fn create_segment(server: &Server, key: &str, name: &str, filter: Value) -> String {
    let created = server.call(
        "/segments/create",
        key,
        Some(&json!({"name": name, "filter": filter})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    created.body["segment_id"]
        .as_str()
        .expect("segment_id")
        .to_string()
}

#[test]
fn a_backup_while_serve_ingests_holds_every_acknowledged_write_and_serves_it() {
    let tmp = TempDir::new("backup-live");
    let data = tmp.data();
    let dest = tmp.path().join("copy");
    create_workspace(&data, "acme", "UTC");
    let key = create_key(&data, "acme", "ingest", &[]);
    let server = Server::start(&data, tmp.path());
    let pingers = create_segment(
        &server,
        &key,
        "pingers",
        json!({"event": "ping", "op": "gte", "value": 1}),
    );

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loop_thread = {
        let (base, key, acked, stop) = (
            server.base.clone(),
            key.clone(),
            acked.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || ingest(base, key, acked, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_now(&acked).len() < 50 {
        assert!(Instant::now() < deadline, "ingestion too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = acked_now(&acked);
    let run = hc(&data, &["backup", dest.to_str().expect("UTF-8 path")]).ok();
    let after = acked_now(&acked);
    // verify runs next to the server too, while it ingests.
    let verified = hc(&data, &["verify"]).ok();
    assert!(verified.stdout.contains("no problem found"), "{verified:?}");
    // Ingestion went on while the backup ran (it takes no writer lock).
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    loop_thread.join().expect("the ingestion loop");
    let all = acked_now(&acked);
    assert!(
        all.len() > after.len(),
        "ingestion stopped during the backup"
    );
    assert!(run.stderr.contains("backed up"), "{run:?}");
    assert!(run.stderr.contains("1 workspace"), "{run:?}");

    // The original answers for everything acknowledged.
    let size_of = |server: &Server| series(server, &key, &pingers, 1)[0].1;
    assert_eq!(size_of(&server), all.len() as u64);
    assert_eq!(server.terminate().code(), Some(0));

    // The copy is owner-only, like a data directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dest), 0o700);
        assert_eq!(mode(&dest.join("headcount.db")), 0o600);
    }

    // The copy serves every write acknowledged before the backup began, and nothing
    // that was not written by the time it ended (one request may have been in
    // flight, committed but not yet acknowledged).
    let copy = Server::start(&dest, tmp.path());
    let copied = size_of(&copy);
    assert_eq!(segment_ids(&copy, &key), vec![pingers.clone()]);
    assert_eq!(copy.terminate().code(), Some(0));
    let users = pinged(&dest, "acme");
    assert!(
        users.is_superset(&before),
        "acknowledged before the backup but missing from the copy: {:?}",
        before.difference(&users).collect::<Vec<_>>()
    );
    let limit = after.len() as u64 + 1;
    assert!(
        users.iter().all(|u| *u < limit),
        "the copy holds users written after the backup ended: {users:?}, {} acknowledged then",
        after.len()
    );
    // The log is copied as a prefix: users 0..n, none missing in between.
    assert_eq!(users, (0..users.len() as u64).collect::<BTreeSet<_>>());
    assert_eq!(copied, users.len() as u64);
    hc(&dest, &["verify"]).ok();
}

#[test]
fn a_backup_without_a_server_serves_the_same_series_and_verifies_alike() {
    let tmp = TempDir::new("backup-offline");
    let data = tmp.data();
    let dest = tmp.path().join("copy");
    hc(&data, &["demo", "--no-serve", "--users", "300"]).ok();
    let key = create_key(&data, "demo", "compare", &[]);
    // A checkpoint to copy (snapshot loads the index from the facts and writes one).
    hc(
        &data,
        &[
            "snapshot",
            "--workspace",
            "demo",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-01",
        ],
    )
    .ok();
    let run = hc(&data, &["backup", dest.to_str().expect("UTF-8 path")]).ok();
    assert!(run.stderr.contains("1 workspace"), "{run:?}");
    assert!(run.stderr.contains("1 checkpoint ("), "{run:?}");
    let copied_checkpoint = dest.join("checkpoints").join("workspace-1.index");
    assert_eq!(
        std::fs::read(&copied_checkpoint).expect("the copied checkpoint"),
        std::fs::read(data.join("checkpoints").join("workspace-1.index")).expect("the checkpoint")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dest.join("checkpoints")), 0o700);
        assert_eq!(mode(&copied_checkpoint), 0o600);
    }

    let original = hc(&data, &["verify"]).ok();
    let copied = hc(&dest, &["verify"]).ok();
    let counts = |out: &str| out.split(" s: ").nth(1).unwrap_or_default().to_string();
    assert!(original.stdout.contains("300 users"), "{original:?}");
    assert!(copied.stdout.contains("1 checkpoint checked"), "{copied:?}");
    assert_eq!(counts(&original.stdout), counts(&copied.stdout));

    let answers = |dir: &Path| {
        let server = Server::start(dir, tmp.path());
        let ids = segment_ids(&server, &key);
        let all: Vec<(String, Vec<(String, u64)>)> = ids
            .into_iter()
            .map(|id| {
                let points = series(&server, &key, &id, 30);
                (id, points)
            })
            .collect();
        assert_eq!(server.terminate().code(), Some(0));
        all
    };
    let from_original = answers(&data);
    assert!(from_original.len() >= 5, "{from_original:?}");
    assert!(
        from_original
            .iter()
            .any(|(_, points)| points.iter().any(|(_, size)| *size > 0)),
        "the demo has members: {from_original:?}"
    );
    assert_eq!(answers(&dest), from_original);
}

#[test]
fn a_backup_into_a_directory_that_is_not_empty_is_refused() {
    let tmp = TempDir::new("backup-refused");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let dest = tmp.path().join("taken");
    std::fs::create_dir(&dest).expect("mkdir");
    std::fs::write(dest.join("precious.txt"), "keep me").expect("write");
    let dest_text = dest.to_str().expect("UTF-8 path");
    let run = hc(&data, &["backup", dest_text]).fails_with(&[
        dest_text,
        "exists and is not empty: a backup goes to a new (or empty) directory",
    ]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(dest.join("precious.txt")).expect("kept"),
        "keep me"
    );
    assert!(!dest.join("headcount.db").exists());
    // The data directory itself is not empty either.
    let data_text = data.to_str().expect("UTF-8 path");
    hc(&data, &["backup", data_text]).fails_with(&["the data directory itself"]);
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    hc(&data, &["backup", empty.to_str().expect("UTF-8 path")]).ok();
    assert!(empty.join("headcount.db").is_file());
}

/// Three users, five facts: an attributes object, three events and a purchase.
const TRACKS: &str = concat!(
    r#"{"attributes":[{"external_id":"a","country":"FR"}],"events":[{"external_id":"a","name":"e","time":"2024-03-01T00:00:00Z"}]}"#,
    "\n",
    r#"{"events":[{"external_id":"b","name":"e","time":"2024-03-01T01:00:00Z"},{"external_id":"c","name":"f","time":"2024-03-01T02:00:00Z"}],"purchases":[{"external_id":"c","product_id":"p","currency":"USD","price":1,"time":"2024-03-01T03:00:00Z"}]}"#,
    "\n",
);

/// A directory with workspace acme holding [`TRACKS`] in one chunk.
fn imported(tmp: &TempDir) -> std::path::PathBuf {
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    create_workspace(&data, "empty", "UTC");
    hc_stdin(&data, &["import", "--workspace", "acme", "-"], TRACKS).ok();
    data
}

#[test]
fn verify_counts_a_healthy_directory_and_exits_0() {
    let tmp = TempDir::new("verify-ok");
    let data = imported(&tmp);
    let run = hc(&data, &["verify"]).ok();
    assert!(
        run.stdout.contains(
            "2 workspaces, 3 users, 5 facts (4 events and purchases) in 1 chunk, 0 segments, 0 checkpoints checked; no problem found"
        ),
        "{run:?}"
    );
    assert_eq!(run.stderr, "", "{run:?}");
    // A directory that does not exist is an error, not an empty success.
    let missing = tmp.path().join("missing");
    hc(&missing, &["verify"]).fails_with(&["does not exist"]);
    assert!(!missing.exists());
}

/// Changes the database of `data` with SQL, directly.
fn damage(data: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(data.join("headcount.db")).expect("open the database");
    conn.execute_batch(sql).expect("damage the database");
}

fn only_chunk(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open(data.join("headcount.db")).expect("open the database");
    conn.query_row("SELECT id FROM fact_chunks", [], |r| r.get(0))
        .expect("one chunk")
}

#[test]
fn verify_names_a_chunk_that_does_not_decode_and_exits_2() {
    let tmp = TempDir::new("verify-chunk");
    let data = imported(&tmp);
    let chunk = only_chunk(&data);
    // The first byte is the chunk format's version: 0x01 becomes 0xFE.
    let conn = rusqlite::Connection::open(data.join("headcount.db")).expect("open the database");
    let mut bytes: Vec<u8> = conn
        .query_row("SELECT data FROM fact_chunks WHERE id = ?1", [chunk], |r| {
            r.get(0)
        })
        .expect("the chunk");
    assert_eq!(bytes[0], 1, "the chunk format's version");
    bytes[0] ^= 0xFF;
    conn.execute(
        "UPDATE fact_chunks SET data = ?2 WHERE id = ?1",
        rusqlite::params![chunk, bytes],
    )
    .expect("damage the chunk");
    drop(conn);
    let run = hc(&data, &["verify"]);
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: workspace \"acme\": fact chunk {chunk} does not decode: corrupt fact chunk: unknown version"
        )),
        "{run:?}"
    );
    assert!(run.stdout.contains("1 problem (above)"), "{run:?}");
}

#[test]
fn verify_names_a_chunk_whose_fact_count_disagrees_and_exits_2() {
    let tmp = TempDir::new("verify-count");
    let data = imported(&tmp);
    let chunk = only_chunk(&data);
    damage(&data, "UPDATE fact_chunks SET facts = facts + 1");
    let run = hc(&data, &["verify"]);
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "fact chunk {chunk} does not decode: it decodes to 5 facts, its row says 6"
        )),
        "{run:?}"
    );
}

#[test]
fn verify_reports_a_segment_that_does_not_parse_as_a_warning_not_damage() {
    let tmp = TempDir::new("verify-segment");
    let data = tmp.data();
    hc(&data, &["demo", "--no-serve", "--users", "50"]).ok();
    damage(
        &data,
        "UPDATE segments SET filter = '{\"bogus\": 1}' WHERE seq = (SELECT MIN(seq) FROM segments)",
    );
    let run = hc(&data, &["verify"]).ok();
    assert!(run.stdout.contains("; no problem found ("), "{run:?}");
    assert!(
        run.stderr
            .contains("warning: workspace \"demo\": segment \"")
            && run
                .stderr
                .contains("cannot be computed: filter.bogus: unknown key"),
        "{run:?}"
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("error:")),
        "{run:?}"
    );
}

/// Writes the checkpoint of workspace acme of `data` (a `snapshot` loads the index
/// from the facts and checkpoints it); returns its path.
fn checkpoint(data: &Path) -> std::path::PathBuf {
    hc(
        data,
        &[
            "snapshot",
            "--workspace",
            "acme",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-01",
        ],
    )
    .ok();
    let path = data.join("checkpoints").join("workspace-1.index");
    assert!(path.is_file(), "snapshot wrote no checkpoint at {path:?}");
    path
}

#[test]
fn verify_checks_a_checkpoint_that_agrees_even_behind_the_log() {
    let tmp = TempDir::new("verify-checkpoint-ok");
    let data = imported(&tmp);
    checkpoint(&data);
    let run = hc(&data, &["verify"]).ok();
    assert!(
        run.stdout
            .contains("3 users, 5 facts (4 events and purchases) in 1 chunk, 0 segments, 1 checkpoint checked; no problem found"),
        "{run:?}"
    );
    // Facts appended after the checkpoint are replayed after it: it still agrees.
    let more = r#"{"events":[{"external_id":"d","name":"e","time":"2024-03-02T00:00:00Z"}]}"#;
    hc_stdin(&data, &["import", "--workspace", "acme", "-"], more).ok();
    let run = hc(&data, &["verify"]).ok();
    assert!(
        run.stdout
            .contains("4 users, 6 facts (5 events and purchases) in 2 chunks, 0 segments, 1 checkpoint checked; no problem found"),
        "{run:?}"
    );
}

#[test]
fn verify_names_a_checkpoint_from_another_directory_and_how_it_disagrees() {
    let tmp = TempDir::new("verify-checkpoint-other");
    let data = imported(&tmp);
    // Another directory, whose workspace 1 holds one user with one event.
    let other = tmp.path().join("other");
    create_workspace(&other, "acme", "UTC");
    let one = r#"{"events":[{"external_id":"z","name":"e","time":"2024-03-01T00:00:00Z"}]}"#;
    hc_stdin(&other, &["import", "--workspace", "acme", "-"], one).ok();
    let foreign = checkpoint(&other);
    let ours = data.join("checkpoints").join("workspace-1.index");
    std::fs::create_dir_all(ours.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&foreign, &ours).expect("copy the checkpoint");

    let run = hc(&data, &["verify"]);
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: workspace \"acme\": its checkpoint ({}) disagrees with the facts: \
             users: 1 from the checkpoint and the facts after it, 3 from the facts alone; \
             events and purchases: 1 from the checkpoint and the facts after it, 4 from the facts alone",
            ours.display()
        )),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("1 checkpoint checked; 1 problem (above)"),
        "{run:?}"
    );

    // A damaged checkpoint is named with the reason it cannot be used.
    let mut bytes = std::fs::read(&ours).expect("read the checkpoint");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&ours, bytes).expect("damage the checkpoint");
    let run = hc(&data, &["verify"]);
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("error: workspace \"acme\": its checkpoint cannot be used: "),
        "{run:?}"
    );
}

#[test]
fn verify_names_the_segment_sizes_a_checkpoint_gets_wrong() {
    let tmp = TempDir::new("verify-checkpoint-sizes");
    // User a is French since 2024-03-01, so on every day since.
    let dated = TRACKS.replace(
        r#""country":"FR"}"#,
        r#""country":"FR","_time":"2024-03-01T00:00:00Z"}"#,
    );
    assert_ne!(dated, TRACKS);
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    hc_stdin(&data, &["import", "--workspace", "acme", "-"], &dated).ok();
    let key = create_key(&data, "acme", "segments", &[]);
    let server = Server::start(&data, tmp.path());
    create_segment(
        &server,
        &key,
        "French",
        json!({"attribute": "country", "op": "eq", "value": "FR"}),
    );
    assert_eq!(server.terminate().code(), Some(0));
    // Another directory with the same users and events, but user a in Germany: the
    // counts agree, the sizes of "French" do not.
    let other = tmp.path().join("other");
    create_workspace(&other, "acme", "UTC");
    hc_stdin(
        &other,
        &["import", "--workspace", "acme", "-"],
        &dated.replace("\"FR\"", "\"DE\""),
    )
    .ok();
    let foreign = checkpoint(&other);
    let ours = data.join("checkpoints").join("workspace-1.index");
    std::fs::create_dir_all(ours.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&foreign, &ours).expect("copy the checkpoint");

    let run = hc(&data, &["verify"]);
    assert_eq!(run.code(), Some(2), "{run:?}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {run:?}"));
    assert!(
        error.contains(
            "disagrees with the facts: the size of segment \"French\" now: \
             0 from the checkpoint and the facts after it, 1 from the facts alone; \
             the size of segment \"French\" on "
        ),
        "{error}"
    );
    // Now and 7 days differ: five are listed, the rest counted.
    assert!(error.contains("; and 3 more (delete it"), "{error}");
    assert!(!error.contains("users:"), "{error}");
}
