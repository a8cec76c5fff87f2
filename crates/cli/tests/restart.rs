//! Restarts of a real `headcount serve` process: a clean stop (SIGTERM) writes a
//! checkpoint and the next start loads it; a `kill -9` during ingestion leaves the
//! last checkpoint, and the next start replays only the facts committed after it.
//! Each ends with the same sizes as a rebuild from the facts alone (`eval` with the
//! checkpoints deleted).

#[allow(dead_code)] // helpers other test files use
mod common;

use common::{Server, TempDir, create_key, create_workspace, hc};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn track_body(n: u64) -> Value {
    let user = format!("u{}", n % 500);
    let day = 1 + n % 9;
    let plan = ["gold", "free"][(n % 2) as usize];
    json!({
        "attributes": [{"external_id": user, "plan": plan, "score": n % 7}],
        "events": [{"external_id": user, "name": "login", "time": format!("2024-05-{day:02}T10:00:00Z")}],
        "purchases": [{"external_id": user, "product_id": "sku", "currency": "USD", "price": 1,
                       "time": format!("2024-05-{day:02}T11:00:00Z")}],
    })
}

/// `eval` of a few filters on a few completed days: users, events and sizes (timings
/// left out).
fn eval(data: &Path, filters: &Path) -> Value {
    let run = hc(
        data,
        &[
            "eval",
            "--workspace",
            "main",
            "--filters",
            filters.to_str().expect("a UTF-8 path"),
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-12",
        ],
    )
    .ok();
    let out: Value = serde_json::from_str(&run.stdout).expect("eval prints JSON");
    json!({"users": out["users"], "events": out["events"], "results": out["results"]})
}

/// Asserts that what `eval` reads (checkpoint and facts after it) equals a rebuild
/// from the facts alone.
fn assert_equal_to_a_rebuild(data: &Path, filters: &Path) -> Value {
    let with_checkpoint = eval(data, filters);
    std::fs::remove_dir_all(data.join("checkpoints")).expect("remove the checkpoints");
    let rebuilt = eval(data, filters);
    assert_eq!(with_checkpoint, rebuilt);
    rebuilt
}

#[test]
fn restarts_after_a_clean_stop_and_after_kill_9_during_ingestion_answer_as_a_rebuild() {
    let tmp = TempDir::new("restart");
    let data = tmp.data();
    create_workspace(&data, "main", "UTC");
    let key = create_key(&data, "main", "k", &[]);
    let filters = tmp.write(
        "filters.json",
        &json!([
            {"name": "logins", "filter": {"event": "login", "op": "gte", "value": 2, "within_days": 3}},
            {"name": "buyers", "filter": {"purchase": "*", "op": "gte", "value": 1}},
            {"name": "gold", "filter": {"attribute": "plan", "op": "eq", "value": "gold"}},
        ])
        .to_string(),
    );

    // A clean stop writes a checkpoint; the next start loads it.
    let server = Server::start(&data, tmp.path());
    for n in 0..200 {
        server
            .call("/users/track", &key, Some(&track_body(n)))
            .status
            .eq(&201)
            .then_some(())
            .expect("tracked");
    }
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(data.join("checkpoints/workspace-1.index").exists());
    let server = Server::start(&data, tmp.path());
    let log = server.log_text();
    assert!(
        log.contains("from_checkpoint=true") && log.contains("facts_replayed=0"),
        "{log}"
    );

    // kill -9 while requests keep coming: the next start loads the checkpoint and
    // replays only what was committed after it.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let sender = {
        let (base, key, stop, acknowledged) = (
            server.base.clone(),
            key.clone(),
            stop.clone(),
            acknowledged.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let client = reqwest::Client::new();
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                let sent = rt.block_on(async {
                    client
                        .post(format!("{base}/users/track"))
                        .bearer_auth(&key)
                        .json(&track_body(n))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                });
                match sent {
                    Ok(r) if r.status().as_u16() == 201 => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("the sender stops at {n}: {other:?}");
                        break;
                    }
                }
                n += 1;
            }
        })
    };
    while acknowledged.load(Ordering::Relaxed) < 100 {
        assert!(!sender.is_finished(), "the sender stopped early");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the sender thread");
    let acked = acknowledged.load(Ordering::Relaxed);

    let server = Server::start(&data, tmp.path());
    let log = server.log_text();
    let loaded = log
        .lines()
        .find(|line| line.contains("loaded workspace"))
        .unwrap_or_else(|| panic!("no load in the log: {log}"));
    assert!(loaded.contains("from_checkpoint=true"), "{loaded}");
    assert!(!loaded.contains("facts_replayed=0 "), "{loaded}");
    let status = server.terminate();
    assert!(status.success(), "{status}");

    let answers = assert_equal_to_a_rebuild(&data, &filters);
    // Every acknowledged request is there: 3 facts each, 200 + acked requests at least.
    let events = answers["events"].as_u64().expect("a count");
    assert!(
        events >= 2 * (200 + acked),
        "{events} events for {acked} requests"
    );
}
