//! Administration while `headcount serve` runs on the same data directory, with real
//! processes: keys and workspaces change within a second, CLIs never trip over each
//! other, the fact log keeps one writer, and rate-limit windows survive a restart.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{Server, TempDir, create_key, create_workspace, hc};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the server may take to apply an administrative change.
const APPLIED_WITHIN: Duration = Duration::from_secs(1);

/// Polls `/segments/list` with `key` until it answers `status`; the time it took.
fn until_status(server: &Server, key: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let seen = server.call("/segments/list", key, None).status;
        if seen == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {seen} after {limit:?}, expected {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key_ids(data: &Path) -> Vec<String> {
    hc(data, &["keys", "list"])
        .ok()
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn a_revoked_key_gets_401_within_a_second_of_keys_revoke() {
    let tmp = TempDir::new("admin-revoke");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let key = create_key(&data, "acme", "doomed", &[]);
    let other = create_key(&data, "acme", "kept", &[]);
    let server = Server::start(&data, tmp.path());
    assert_eq!(server.call("/segments/list", &key, None).status, 200);

    hc(&data, &["keys", "revoke", &key[..8]]).ok();
    let took = until_status(&server, &key, 401, Duration::from_secs(5));
    assert!(took < APPLIED_WITHIN, "revocation applied after {took:?}");
    let refused = server.call("/segments/list", &key, None);
    assert_eq!(refused.status, 401);
    assert!(refused.body["message"].is_string(), "{:?}", refused.body);
    assert_eq!(server.call("/segments/list", &other, None).status, 200);
}

#[test]
fn a_new_key_answers_within_a_second_of_keys_create() {
    let tmp = TempDir::new("admin-create");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let server = Server::start(&data, tmp.path());

    let key = create_key(&data, "acme", "fresh", &[]);
    let took = until_status(&server, &key, 200, Duration::from_secs(5));
    assert!(took < APPLIED_WITHIN, "new key accepted after {took:?}");
    // A key restricted by the CLI is restricted by the server too.
    let narrow = create_key(
        &data,
        "acme",
        "narrow",
        &["--permission", "segments.details"],
    );
    let took = until_status(&server, &narrow, 403, Duration::from_secs(5));
    assert!(took < APPLIED_WITHIN, "new key applied after {took:?}");
}

#[test]
fn a_new_workspace_and_its_key_work_within_a_second() {
    let tmp = TempDir::new("admin-workspace");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let acme = create_key(&data, "acme", "a", &[]);
    let server = Server::start(&data, tmp.path());

    hc(
        &data,
        &[
            "workspaces",
            "create",
            "globex",
            "--time-zone",
            "Asia/Tokyo",
        ],
    )
    .ok();
    let key = create_key(&data, "globex", "g", &[]);
    let took = until_status(&server, &key, 200, Duration::from_secs(5));
    assert!(took < APPLIED_WITHIN, "new workspace served after {took:?}");
    let track = server.call(
        "/users/track",
        &key,
        Some(&serde_json::json!({"attributes": [{"external_id": "g1", "country": "JP"}]})),
    );
    assert_eq!(track.status, 201, "{:?}", track.body);
    let created = server.call(
        "/segments/create",
        &key,
        Some(&serde_json::json!({"name": "Japan", "filter": {"attribute": "country", "op": "eq", "value": "JP"}})),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    // The workspaces stay apart: acme sees none of globex's segments.
    let listed = server.call("/segments/list", &acme, None);
    assert_eq!(listed.body["segments"], serde_json::json!([]));
    let listed = server.call("/segments/list", &key, None);
    assert_eq!(listed.body["segments"][0]["name"], "Japan");

    // A segment made through the API survives the catalog reloads the CLI causes.
    create_key(&data, "globex", "later", &[]);
    std::thread::sleep(Duration::from_millis(600));
    let listed = server.call("/segments/list", &key, None);
    assert_eq!(listed.body["segments"][0]["name"], "Japan");
}

#[test]
fn two_clis_creating_keys_at_once_next_to_the_server_all_succeed() {
    let tmp = TempDir::new("admin-concurrent");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let server = Server::start(&data, tmp.path());

    let makers: Vec<_> = (0..2)
        .map(|cli| {
            let data = data.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| create_key(&data, "acme", &format!("cli{cli}-{i}"), &[]))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let mut secrets: Vec<String> = Vec::new();
    for maker in makers {
        secrets.extend(maker.join().expect("a CLI thread"));
    }
    assert_eq!(secrets.len(), 40);
    let mut ids: Vec<String> = secrets.iter().map(|s| s[..8].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every key is distinct");
    let mut listed = key_ids(&data);
    listed.sort();
    assert_eq!(listed, ids, "every key is stored");
    // The server knows every one of them (either CLI may have finished last).
    std::thread::sleep(APPLIED_WITHIN);
    for secret in &secrets {
        assert_eq!(server.call("/segments/list", secret, None).status, 200);
    }
}

#[test]
fn import_while_serving_is_refused_at_once_naming_the_server() {
    let tmp = TempDir::new("admin-import");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let input = tmp.write(
        "one.ndjson",
        "{\"attributes\":[{\"external_id\":\"u1\"}]}\n",
    );
    let server = Server::start(&data, tmp.path());

    let started = Instant::now();
    let run = hc(
        &data,
        &[
            "import",
            "--workspace",
            "acme",
            input.to_str().expect("UTF-8 path"),
        ],
    );
    let took = started.elapsed();
    let holder = format!("(pid {}: headcount --data-dir", server.pid());
    run.fails_with(&[
        "is in use by another headcount process",
        &holder,
        " serve --listen 127.0.0.1:",
        "stop it first",
    ]);
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
    // Reading and administration still work.
    assert_eq!(key_ids(&data), Vec::<String>::new());
    let status = server.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(common::facts(&data, "acme").is_empty());
}

#[test]
fn administration_does_not_wait_for_a_heavy_import() {
    let tmp = TempDir::new("admin-heavy");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    // About 230,000 facts: two transactions of the import's writer.
    let generated = hc(&data, &["gen", "--users", "6000", "--seed", "7"]).ok();
    let input = tmp.write("big.ndjson", &generated.stdout);
    let mut import = common::command(&data)
        .args([
            "import",
            "--workspace",
            "acme",
            input.to_str().expect("UTF-8 path"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start an import");
    let mut slowest = Duration::ZERO;
    let mut rounds = 0;
    while common::wait_timeout(&mut import, Duration::ZERO).is_none() || rounds == 0 {
        let started = Instant::now();
        create_key(&data, "acme", &format!("k{rounds}"), &[]);
        hc(&data, &["workspaces", "list"]).ok();
        slowest = slowest.max(started.elapsed());
        rounds += 1;
    }
    let status = common::wait_timeout(&mut import, Duration::from_secs(60)).expect("import ends");
    assert!(status.success());
    assert!(rounds >= 2, "the import ended before administration began");
    assert!(
        slowest < Duration::from_secs(3),
        "administration waited {slowest:?} next to the import"
    );
    assert_eq!(key_ids(&data).len(), rounds);
}

fn remaining(server: &Server, key: &str) -> (u64, String) {
    let (status, left) = server.get_header("/segments/list", key, "x-ratelimit-remaining");
    assert_eq!(status, 200);
    let (_, reset) = server.get_header("/segments/list", key, "x-ratelimit-reset");
    let left: u64 = left
        .expect("X-RateLimit-Remaining")
        .parse()
        .expect("a number");
    // The second call counted one more.
    (left - 1, reset.expect("X-RateLimit-Reset"))
}

#[test]
fn a_rate_limit_window_goes_on_counting_after_a_clean_restart() {
    let tmp = TempDir::new("admin-window");
    let data = tmp.data();
    hc(
        &data,
        &["workspaces", "create", "acme", "--export-rate-limit", "100"],
    )
    .ok();
    let key = create_key(&data, "acme", "k", &[]);
    let server = Server::start(&data, tmp.path());
    let (before, reset_before) = remaining(&server, &key);
    assert_eq!(before, 98);
    remaining(&server, &key);
    assert_eq!(server.terminate().code(), Some(0));

    let server = Server::start(&data, tmp.path());
    let (after, reset_after) = remaining(&server, &key);
    if reset_after == reset_before {
        assert_eq!(after, 94, "4 requests before the restart, 2 after");
    } else {
        assert_eq!(after, 98, "a new hour started during the test");
    }
}

#[test]
fn a_rate_limit_window_keeps_what_was_saved_a_second_before_kill_9() {
    let tmp = TempDir::new("admin-window-kill");
    let data = tmp.data();
    hc(
        &data,
        &["workspaces", "create", "acme", "--export-rate-limit", "100"],
    )
    .ok();
    let key = create_key(&data, "acme", "k", &[]);
    let server = Server::start(&data, tmp.path());
    let (_, reset_before) = remaining(&server, &key);
    remaining(&server, &key);
    // Saved at most a second later.
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();

    let server = Server::start(&data, tmp.path());
    let (after, reset_after) = remaining(&server, &key);
    if reset_after == reset_before {
        assert_eq!(after, 94, "4 requests before the kill, 2 after");
    } else {
        assert_eq!(after, 98, "a new hour started during the test");
    }
}
