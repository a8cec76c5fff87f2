//! A newcomer's first hour: `demo` on a taken port, commands pointed at a data
//! directory that does not exist, `--listen` without a host, the top-level help, and
//! output piped into a reader that stops early.

#[allow(dead_code)]
mod common;

use common::{BIN, TempDir, create_workspace, hc};
use std::net::TcpListener;
use std::process::{Command, Stdio};

#[test]
fn demo_on_a_taken_port_says_so_before_printing_a_key_or_a_curl() {
    let tmp = TempDir::new("demo-port");
    let data = tmp.data();
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("its address").port();
    let address = format!("127.0.0.1:{port}");
    let run = hc(&data, &["demo", "--users", "200", "--listen", &address]).fails_with(&[
        &format!("cannot listen on {address}: the port is already in use"),
        "--listen 127.0.0.1:PORT",
    ]);
    assert_eq!(run.code(), Some(1), "{run:#?}");
    assert_eq!(run.stdout, "", "nothing printed about the port: {run:#?}");
    assert!(!run.stderr.contains("curl"), "{run:#?}");
    // It failed before touching the data directory (no 100k users built in vain).
    assert!(!data.exists(), "{run:#?}");
    drop(taken);
}

#[test]
fn demo_no_serve_prints_no_curl_and_reruns_leave_one_active_demo_key() {
    let tmp = TempDir::new("demo-keys");
    let data = tmp.data();
    let demo = || hc(&data, &["demo", "--users", "200", "--no-serve"]).ok();
    let first = demo();
    assert_eq!(first.stdout, "", "{first:#?}");
    assert!(!first.stderr.contains("curl"), "{first:#?}");
    assert!(first.stderr.contains("demo data ready in"), "{first:#?}");
    let second = demo();
    assert!(
        second.stderr.contains("reusing the demo data"),
        "{second:#?}"
    );
    // --no-serve creates no key; a served run creates one and revokes the previous.
    let keys = hc(&data, &["keys", "list", "--workspace", "demo"]).ok();
    assert_eq!(keys.stdout.lines().count(), 1, "{keys:#?}");
}

/// Runs `demo` on a port the system chooses until it has printed its walk-through,
/// then stops it; the walk-through names the port actually bound.
fn served_demo_key(data: &std::path::Path) -> String {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("HEADCOUNT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo");
    let stdout = child.stdout.take().expect("its stdout");
    let mut key = None;
    let mut console = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("a line");
        if let Some(base) = line.strip_prefix("headcount demo: http://127.0.0.1:") {
            let port: u16 = base
                .split(' ')
                .next()
                .unwrap_or("")
                .parse()
                .expect("a port");
            assert_ne!(port, 0, "{line}");
        }
        if line.trim().starts_with("console: http://127.0.0.1:") {
            console = Some(line.clone());
        }
        if let Some(k) = line.trim().strip_prefix("export HEADCOUNT_KEY=") {
            key = Some(k.to_string());
            break;
        }
    }
    // SIGTERM would be gentler, but the data directory is all the test reads after.
    child.kill().expect("stop demo");
    child.wait().expect("demo ended");
    let key = key.expect("demo printed a key");
    // The console's address comes first, with the same key ready to paste.
    let console = console.expect("demo printed the console's address");
    assert!(
        console.contains("/console")
            && console.ends_with(&format!("(sign in with this key: {key})")),
        "{console}"
    );
    key
}

#[test]
fn a_rerun_of_demo_revokes_the_previous_demo_key() {
    let tmp = TempDir::new("demo-rerun");
    let data = tmp.data();
    hc(&data, &["demo", "--users", "200", "--no-serve"]).ok();
    let first = served_demo_key(&data);
    let second = served_demo_key(&data);
    assert_ne!(first, second);
    let keys = hc(&data, &["keys", "list", "--workspace", "demo"]).ok();
    let rows: Vec<&str> = keys.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{keys:#?}");
    let status = |secret: &str| {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&secret[..8]))
            .unwrap_or_else(|| panic!("no row for {secret}: {rows:?}"));
        if row.contains("revoked") {
            "revoked"
        } else {
            "active"
        }
    };
    assert_eq!((status(&first), status(&second)), ("revoked", "active"));
}

#[test]
fn commands_on_a_missing_directory_name_it_and_do_not_create_it() {
    let tmp = TempDir::new("missing");
    let data = tmp.path().join("no-such-dir");
    let shown = data.display().to_string();
    let filters = tmp.write("filters.json", "[]");
    let ndjson = tmp.write("in.ndjson", "");
    let commands: Vec<Vec<&str>> = vec![
        vec!["workspaces", "list"],
        vec!["keys", "list"],
        vec!["keys", "create", "--workspace", "acme", "--name", "x"],
        vec!["keys", "revoke", "abcdefgh"],
        vec!["import", "--workspace", "acme", ndjson.to_str().unwrap()],
        vec![
            "snapshot",
            "--workspace",
            "acme",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        vec![
            "eval",
            "--workspace",
            "acme",
            "--filters",
            filters.to_str().unwrap(),
            "--day",
            "2024-01-01",
        ],
    ];
    for args in commands {
        let run = hc(&data, &args).fails_with(&[
            &format!("the data directory {shown} does not exist"),
            "workspaces create NAME",
        ]);
        assert!(!data.exists(), "{args:?} created {shown}: {run:#?}");
    }
    // An existing directory without headcount's data is refused too, and left empty.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("an empty directory");
    hc(&empty, &["keys", "list"]).fails_with(&[&format!(
        "the data directory {} holds no headcount data",
        empty.display()
    )]);
    assert_eq!(std::fs::read_dir(&empty).expect("readable").count(), 0);
}

#[test]
fn a_missing_workspace_is_reported_with_the_directory_looked_in() {
    let tmp = TempDir::new("missing-ws");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let shown = data.display().to_string();
    hc(
        &data,
        &["keys", "create", "--workspace", "demo", "--name", "x"],
    )
    .fails_with(&[&format!(
        "no workspace named \"demo\" in the data directory {shown}; its workspaces: acme"
    )]);
}

#[test]
fn listen_without_a_host_shows_the_host_port_form() {
    let tmp = TempDir::new("listen");
    let data = tmp.data();
    for command in ["serve", "demo"] {
        let run = hc(&data, &[command, "--listen", "8081"])
            .fails_with(&["\"8081\" is a port, not an address", "127.0.0.1:8081"]);
        assert_eq!(run.code(), Some(2), "{run:#?}");
        hc(&data, &[command, "--listen", "localhost"])
            .fails_with(&["expected HOST:PORT", "127.0.0.1:8080"]);
    }
    assert!(!data.exists());
}

#[test]
fn the_top_level_help_lists_every_command() {
    let tmp = TempDir::new("help");
    let help = hc(&tmp.data(), &["--help"]).ok();
    let commands: Vec<&str> = help
        .stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "workspaces",
            "keys",
            "serve",
            "import",
            "snapshot",
            "demo",
            "gen",
            "eval",
            "backup",
            "verify",
            "clickhouse",
            "help"
        ],
        "{help:#?}"
    );
    // The one-line description does not list (and so cannot omit) commands.
    assert!(
        help.stdout
            .starts_with("headcount: exact daily segment sizes behind a Braze-compatible API."),
        "{help:#?}"
    );
}

#[test]
fn eval_help_says_filters_is_a_file() {
    let tmp = TempDir::new("eval-help");
    let help = hc(&tmp.data(), &["eval", "--help"]).ok();
    assert!(
        help.stdout.contains("A JSON file holding an array of"),
        "{help:#?}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let tmp = TempDir::new("pipe");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let filters = tmp.write(
        "filters.json",
        r#"[{"name": "all", "filter": {"attribute": "country", "op": "exists"}}]"#,
    );
    let commands: [&[&str]; 2] = [
        &["workspaces", "list"],
        &[
            "eval",
            "--workspace",
            "acme",
            "--filters",
            filters.to_str().expect("a UTF-8 path"),
            "--day",
            "2024-01-01",
        ],
    ];
    for args in commands {
        // `headcount … | head -0`: the reader is gone before anything is written.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let output = common::command(&data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run headcount");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
