//! `serve --log-format json` and `serve --metrics-listen`, with the real binary: every
//! log line is JSON, a request's line carries its id, the key is written nowhere, and
//! `/metrics` moves to its own address.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{TempDir, command, create_key, create_workspace, wait_timeout};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 exchange: the status line's code, the headers (lower-cased names)
/// and the body.
fn exchange(port: u16, head: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let request = format!(
        "{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Starts `serve` with `args` and waits until `/readyz` answers 200.
fn start(data: &std::path::Path, log: &std::path::Path, port: u16, args: &[&str]) -> Child {
    let mut child = command(data)
        .env("HEADCOUNT_LOG", "info")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("start headcount serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "serve exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ready = TcpStream::connect(("127.0.0.1", port)).is_ok()
            && exchange(port, "GET /readyz HTTP/1.1", "").0 == 200;
        if ready {
            return child;
        }
        assert!(Instant::now() < deadline, "not ready after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn json_logs_carry_the_request_id_never_the_key_and_metrics_listen_moves_metrics() {
    let dir = TempDir::new("observe");
    let data = dir.data();
    create_workspace(&data, "main", "UTC");
    let key = create_key(&data, "main", "k", &[]);
    let (port, metrics_port) = (free_port(), free_port());
    let log = dir.path().join("serve.log");
    let mut child = start(
        &data,
        &log,
        port,
        &[
            "--log-format",
            "json",
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ],
    );

    let body = r#"{"attributes":[{"external_id":"u1","plan":"pro"}]}"#;
    let (status, headers, answer) = exchange(
        port,
        &format!(
            "POST /users/track HTTP/1.1\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nX-Request-Id: track-req-1"
        ),
        body,
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(header(&headers, "x-request-id"), Some("track-req-1"));
    let bad_key = "hc_this-key-is-not-known-0123456789";
    let (status, headers, _) = exchange(
        port,
        &format!("GET /segments/list HTTP/1.1\r\nAuthorization: Bearer {bad_key}"),
        "",
    );
    assert_eq!(status, 401);
    let made = header(&headers, "x-request-id")
        .expect("a made request id")
        .to_string();

    // /metrics: not on the API's address, on its own.
    let (status, _, _) = exchange(port, "GET /metrics HTTP/1.1", "");
    assert_eq!(status, 404);
    let (status, headers, text) = exchange(metrics_port, "GET /metrics HTTP/1.1", "");
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.contains("openmetrics-text")),
        "{headers:?}"
    );
    assert!(
        text.contains(
            "headcount_http_requests_total{route=\"/users/track\",method=\"POST\",status=\"201\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("headcount_keys_rejected_total{reason=\"unknown\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("headcount_facts_ingested_total{kind=\"attributes\"} 1\n"),
        "{text}"
    );

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let exit = wait_timeout(&mut child, Duration::from_secs(20)).expect("serve stops");
    assert!(exit.success(), "{exit}");

    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(!text.is_empty());
    let lines: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let request_line = |id: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == "request" && l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line with id {id}: {text}"))
    };
    let track = request_line("track-req-1");
    assert_eq!(track["fields"]["route"], "/users/track");
    assert_eq!(track["fields"]["status"], 201);
    assert_eq!(track["fields"]["method"], "POST");
    assert!(track["fields"]["latency_ms"].as_f64().is_some(), "{track}");
    assert_eq!(track["span"]["request_id"], "track-req-1", "{track}");
    let refused = request_line(&made);
    assert_eq!(refused["fields"]["status"], 401);
    assert!(!text.contains(&key), "the key is never logged: {text}");
    assert!(
        !text.contains(bad_key),
        "a refused key is never logged: {text}"
    );
    let secret_part = key.rsplit('_').next().unwrap_or(&key);
    assert!(!text.contains(secret_part), "{text}");
}
