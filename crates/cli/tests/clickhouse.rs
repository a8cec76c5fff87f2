//! Workspaces of engine `clickhouse`, end to end through the CLI, on a two-shard
//! ClickHouse cluster started by the test: `clickhouse init`, `workspaces create
//! --engine clickhouse`, `import` and `eval` give the same sizes, day by day, as a
//! memory workspace given the same data.

#[allow(dead_code)]
mod common;

use common::{TempDir, hc};
use headcount_clickhouse::testing::{CLUSTER, Cluster};
use serde_json::Value;
use std::path::Path;

fn start() -> Cluster {
    match Cluster::start(2) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_clickhouse_workspace_sizes_the_bench_segments_like_a_memory_workspace() {
    let cluster = start();
    let urls = cluster.urls().join(",");
    let ch = [
        "--clickhouse-url",
        urls.as_str(),
        "--clickhouse-cluster",
        CLUSTER,
    ];
    let dir = TempDir::new("clickhouse-cli");
    let data = dir.data();
    let mut init = vec!["clickhouse", "init"];
    init.extend_from_slice(&ch);
    hc(&data, &init).ok();
    hc(&data, &init).ok();
    for (name, engine) in [("mem", "memory"), ("ch", "clickhouse")] {
        hc(
            &data,
            &[
                "workspaces",
                "create",
                name,
                "--time-zone",
                "Europe/Paris",
                "--engine",
                engine,
            ],
        )
        .ok();
    }
    let dataset = hc(
        &data,
        &[
            "gen",
            "--users",
            "1500",
            "--seed",
            "7",
            "--days",
            "45",
            "--end",
            "2024-04-05T00:00:00Z",
        ],
    )
    .ok()
    .stdout;
    let file = dir.write("data.ndjson", &dataset);
    let file = file.to_string_lossy().to_string();
    for ws in ["mem", "ch"] {
        let mut args = vec!["import", "--workspace", ws, file.as_str()];
        args.extend_from_slice(&ch);
        hc(&data, &args).ok();
    }
    let segments = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/segments.json");
    let segments = segments.to_string_lossy().to_string();
    let eval = |ws: &str| -> Value {
        let mut args = vec![
            "eval",
            "--workspace",
            ws,
            "--filters",
            segments.as_str(),
            "--from",
            "2024-03-20",
            "--to",
            "2024-04-06",
        ];
        args.extend_from_slice(&ch);
        let out = hc(&data, &args).ok().stdout;
        serde_json::from_str(&out).expect("eval prints JSON")
    };
    let memory = eval("mem");
    let clickhouse = eval("ch");
    assert_eq!(clickhouse["engine"], "clickhouse");
    assert_eq!(memory["users"], clickhouse["users"]);
    let (m, c) = (&memory["results"], &clickhouse["results"]);
    assert_eq!(m.as_array().map(Vec::len), Some(100));
    let mut nonzero = 0;
    for (a, b) in m.as_array().unwrap().iter().zip(c.as_array().unwrap()) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["sizes"], b["sizes"], "segment {}", a["name"]);
        nonzero += a["sizes"]
            .as_object()
            .unwrap()
            .values()
            .filter(|v| v.as_u64() > Some(0))
            .count();
    }
    assert!(
        nonzero > 500,
        "the data should fill most segments: {nonzero}"
    );
}

#[test]
fn eval_of_a_clickhouse_workspace_without_a_url_says_what_to_give() {
    let dir = TempDir::new("clickhouse-no-url");
    let data = dir.data();
    hc(
        &data,
        &["workspaces", "create", "ch", "--engine", "clickhouse"],
    )
    .ok();
    let filters = dir.write("f.json", r#"[{"name": "all", "filter": {"all": []}}]"#);
    hc(
        &data,
        &[
            "eval",
            "--workspace",
            "ch",
            "--filters",
            filters.to_str().unwrap(),
            "--day",
            "2024-01-01",
        ],
    )
    .fails_with(&["--clickhouse-url"]);
}

/// The ClickHouse engine's figures for docs/performance.md (run by hand:
/// `HEADCOUNT_CH_BENCH_USERS=100000 cargo test -p headcount --test clickhouse -- --ignored --nocapture`):
/// import facts/s, one day of the 100 bench segments, 100 days of 20, on two shards.
#[test]
#[ignore]
fn bench_clickhouse_engine() {
    let users = std::env::var("HEADCOUNT_CH_BENCH_USERS").unwrap_or_else(|_| "100000".into());
    let cluster = start();
    let urls = cluster.urls().join(",");
    let ch = [
        "--clickhouse-url",
        urls.as_str(),
        "--clickhouse-cluster",
        CLUSTER,
    ];
    let dir = TempDir::new("clickhouse-bench");
    let data = dir.data();
    let mut init = vec!["clickhouse", "init"];
    init.extend_from_slice(&ch);
    hc(&data, &init).ok();
    hc(
        &data,
        &["workspaces", "create", "ch", "--engine", "clickhouse"],
    )
    .ok();
    let dataset = hc(
        &data,
        &[
            "gen",
            "--users",
            &users,
            "--seed",
            "3",
            "--days",
            "100",
            "--end",
            "2024-06-01T00:00:00Z",
        ],
    )
    .ok()
    .stdout;
    let file = dir.write("data.ndjson", &dataset);
    drop(dataset);
    let file = file.to_string_lossy().to_string();
    let mut args = vec!["import", "--workspace", "ch", "--json", file.as_str()];
    args.extend_from_slice(&ch);
    let import = hc(&data, &args).ok().stdout;
    eprintln!("import: {import}");
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/segments.json"),
        )
        .expect("segments"),
    )
    .expect("json");
    let twenty: Vec<Value> = all
        .as_array()
        .expect("array")
        .iter()
        .take(20)
        .cloned()
        .collect();
    // The first 20 may name later ones through in_segment: keep every entry they need.
    let twenty_file = dir.write(
        "twenty.json",
        &serde_json::to_string(&twenty).expect("json"),
    );
    let all_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/segments.json");
    for (label, filters, from) in [
        (
            "100 segments, 1 day",
            all_file.to_string_lossy().to_string(),
            "2024-05-31",
        ),
        (
            "20 segments, 100 days",
            twenty_file.to_string_lossy().to_string(),
            "2024-02-22",
        ),
    ] {
        let mut args = vec![
            "eval",
            "--workspace",
            "ch",
            "--filters",
            filters.as_str(),
            "--from",
            from,
            "--to",
            "2024-05-31",
        ];
        args.extend_from_slice(&ch);
        let run = hc(&data, &args);
        let out: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
        eprintln!(
            "{label}: eval_seconds {} users {} ({})",
            out["eval_seconds"],
            out["users"],
            run.stderr.trim()
        );
    }
    let mut bytes = 0u64;
    for url in cluster.urls() {
        let shard = headcount_clickhouse::ClickHouse::new(&headcount_clickhouse::Config {
            urls: vec![url],
            database: "headcount".into(),
            cluster: None,
        })
        .expect("config");
        let answer = shard
            .query("SELECT sum(bytes) FROM system.parts WHERE database = 'headcount' AND active")
            .expect("parts");
        bytes += answer.trim().parse::<u64>().unwrap_or(0);
    }
    eprintln!("ClickHouse parts on disk: {bytes} bytes");
}

#[test]
fn an_import_into_an_unreachable_clickhouse_fails_saying_nothing_was_acknowledged() {
    let dir = TempDir::new("clickhouse-down");
    let data = dir.data();
    hc(
        &data,
        &["workspaces", "create", "ch", "--engine", "clickhouse"],
    )
    .ok();
    let file = dir.write(
        "one.ndjson",
        "{\"events\":[{\"external_id\":\"u\",\"name\":\"e\",\"time\":\"2024-01-01T00:00:00Z\"}]}\n",
    );
    // Port 1 on loopback: nothing listens there.
    hc(
        &data,
        &[
            "import",
            "--workspace",
            "ch",
            file.to_str().unwrap(),
            "--clickhouse-url",
            "http://127.0.0.1:1",
        ],
    )
    .fails_with(&["unreachable", "acknowledged before it: nothing"]);
}

#[test]
fn a_clickhouse_import_skips_bad_lines_across_blocks_and_strict_stops_at_the_first() {
    use std::io::Read as _;
    let cluster = start();
    let urls = cluster.urls().join(",");
    let ch = [
        "--clickhouse-url",
        urls.as_str(),
        "--clickhouse-cluster",
        CLUSTER,
    ];
    let dir = TempDir::new("clickhouse-bad-lines");
    let data = dir.data();
    let mut init = vec!["clickhouse", "init"];
    init.extend_from_slice(&ch);
    hc(&data, &init).ok();
    // One user per line, 12,000 lines (the import parses blocks of 1,000 on several
    // threads: more blocks than its queues hold), line 1,500 bad.
    let mut text = String::new();
    for i in 1..=12_000 {
        if i == 1500 {
            text.push_str("{\"events\": [\n");
        } else {
            text.push_str(&format!(
                "{{\"events\":[{{\"external_id\":\"u{i}\",\"name\":\"e\",\"time\":\"2024-01-01T00:00:00Z\"}}]}}\n"
            ));
        }
    }
    let file = dir.write("lines.ndjson", &text);
    let file = file.to_string_lossy().to_string();
    let filters = dir.write("all.json", r#"[{"name": "all", "filter": {"all": []}}]"#);
    let filters = filters.to_string_lossy().to_string();
    for (ws, strict, users, lines) in [
        ("lenient", false, 11_999, 12_000),
        ("strict", true, 1_499, 1_500),
    ] {
        hc(
            &data,
            &["workspaces", "create", ws, "--engine", "clickhouse"],
        )
        .ok();
        let mut args = vec!["import", "--workspace", ws, "--json", file.as_str()];
        if strict {
            args.push("--strict");
        }
        args.extend_from_slice(&ch);
        // Stopping early must stop the reading and parsing threads too, not hang.
        let mut child = common::command(&data)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run headcount");
        let Some(status) = common::wait_timeout(&mut child, std::time::Duration::from_secs(120))
        else {
            let _ = child.kill();
            panic!("{ws}: the import did not end in 120 s");
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read");
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read");
        assert_eq!(status.code(), Some(2), "{ws}: {stderr}");
        assert!(stderr.contains(":1500: rejected"), "{ws}: {stderr}");
        let summary: Value = serde_json::from_str(stdout.trim()).expect("summary");
        assert_eq!(summary["facts"], users, "{ws}");
        assert_eq!(summary["rejected_lines"], 1, "{ws}");
        assert_eq!(summary["lines"], lines, "{ws}");
        let mut args = vec![
            "eval",
            "--workspace",
            ws,
            "--filters",
            filters.as_str(),
            "--day",
            "2024-01-01",
        ];
        args.extend_from_slice(&ch);
        let out: Value = serde_json::from_str(&hc(&data, &args).ok().stdout).expect("eval");
        assert_eq!(out["results"][0]["sizes"]["2024-01-01"], users, "{ws}");
    }
}
