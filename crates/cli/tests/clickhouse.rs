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
