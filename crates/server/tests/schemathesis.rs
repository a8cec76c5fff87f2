//! Schema-driven testing (issue 12): schemathesis, pinned in a venv of
//! `tests/schemathesis` (made by `./check`), generates requests for every operation of
//! `/openapi.json` against a real server with a key of every permission and some data,
//! and checks every answer against the document: no 5xx, no status, content type,
//! header or body the document does not allow, no timeout.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::{TestServer, Ws, config};
use headcount_store::Permission;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The version `./check` installs (tests/schemathesis/requirements.txt).
const VERSION: &str = "4.32.5";

/// Generated cases per operation and phase: bounded so that the run takes under a
/// minute on 2 cores. `HEADCOUNT_SCHEMATHESIS_EXAMPLES` and `…_SEED` change them for a
/// longer hunt by hand.
const MAX_EXAMPLES: &str = "100";

/// What every answer is checked for (`HEADCOUNT_SCHEMATHESIS_CHECKS` adds others by
/// hand, such as `negative_data_rejection`).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// The seed of the run (the same cases every time unless `HEADCOUNT_SCHEMATHESIS_SEED`).
const SEED: &str = "12";

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The schemathesis executable: `$HEADCOUNT_SCHEMATHESIS`, or the venv `./check` makes.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("HEADCOUNT_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/schemathesis/.venv/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_answer_outside_the_document() {
    let program = schemathesis();
    let version = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(version) = version else {
        panic!(
            "schemathesis is not installed at {}: run ./check, or \
             `python3 -m venv tests/schemathesis/.venv && \
             tests/schemathesis/.venv/bin/pip install -r tests/schemathesis/requirements.txt` \
             (apt-get install -y python3-venv first where venv is missing)",
            program.display()
        );
    };
    assert!(
        version.ends_with(VERSION),
        "{version}: the test expects schemathesis {VERSION}; reinstall the venv"
    );

    // Limits far above what the run sends: rate limits must not be what it finds.
    let mut server = TestServer::new(config());
    let ws = server.workspace(Ws {
        name: "main",
        time_zone: "Europe/Paris",
        export_limit: 100_000_000,
        track_limit: 100_000_000,
    });
    let key = server.key(ws, &Permission::ALL, &[]);
    server.serve().await;
    server
        .post(
            &key,
            "/users/track",
            &json!({
                "attributes": [
                    {"external_id": "ada", "country": "FR", "plan": "pro"},
                    {"external_id": "bob", "country": "DE", "devices": ["ios", "web"]},
                    {"user_alias": {"alias_name": "c@x.io", "alias_label": "email"}, "age": 41}
                ],
                "events": [
                    {"external_id": "ada", "name": "session_start", "time": "2026-11-28T09:30:00Z"},
                    {"external_id": "bob", "name": "session_start", "time": "2026-11-29T09:30:00Z",
                     "properties": {"screen": "home"}}
                ],
                "purchases": [
                    {"external_id": "ada", "product_id": "sku-1", "currency": "USD", "price": 9.99}
                ]
            }),
        )
        .await
        .expect(201);
    let french = server
        .create_segment(
            &key,
            "French users",
            json!({"attribute": "country", "op": "eq", "value": "FR"}),
        )
        .await;
    server
        .create_segment(
            &key,
            "Active French users",
            json!({"all": [{"in_segment": french},
                           {"event": "session_start", "op": "gte", "value": 1, "within_days": 7}]}),
        )
        .await;

    // Run from a directory of its own: schemathesis and hypothesis leave caches in it.
    let work = std::env::temp_dir().join(format!("headcount-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a directory for schemathesis");
    let report = work.join("report.json");
    let started = Instant::now();
    let child = tokio::process::Command::new(&program)
        .arg("run")
        .arg(format!("{}/openapi.json", server.base))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            &setting("HEADCOUNT_SCHEMATHESIS_CHECKS", CHECKS),
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args([
            "--max-examples",
            &setting("HEADCOUNT_SCHEMATHESIS_EXAMPLES", MAX_EXAMPLES),
        ])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--seed", &setting("HEADCOUNT_SCHEMATHESIS_SEED", SEED)])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--output-truncate", "false"])
        .arg("--report-json-path")
        .arg(&report)
        .args(["--report", "json"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start schemathesis");
    let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("schemathesis runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    let report_text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        output.status.success(),
        "schemathesis found answers outside the document (exit {:?}); see its output above",
        output.status.code()
    );
    let report: Value = serde_json::from_str(&report_text).expect("schemathesis' JSON report");
    println!(
        "schemathesis: {} cases over {} operations in {:.1} s",
        report["test_cases"]["generated"],
        report["operations"]["tested"],
        took.as_secs_f64()
    );
    assert_eq!(report["failures"], json!([]), "failures: {report}");
    assert_eq!(
        report["errors"],
        json!([]),
        "errors (timeouts among them): {report}"
    );
    assert_eq!(report["test_cases"]["with_failures"], 0, "{report}");
    assert_eq!(report["test_cases"]["errored"], 0, "{report}");
    // Every operation was tested (a run that tested nothing also exits 0): every
    // endpoint routed but /openapi.json, which schemathesis leaves out as the schema.
    let operations = headcount_server::endpoints().len() - 1;
    assert_eq!(report["operations"]["tested"], operations, "{report}");
    assert_eq!(report["operations"]["errored"], 0, "{report}");
}
