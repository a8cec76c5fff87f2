//! `serve`'s cluster options with real processes: `--node-name` (and its default, the
//! host name and port) in the log and `/readyz`, and `--redis-url` refused when it is
//! not a Redis URL.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{TempDir, command, hc};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `serve` on a free port with `extra` arguments; killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(tmp: &TempDir, extra: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = std::fs::File::create(tmp.path().join("serve.log")).expect("a log file");
    let child = command(&tmp.data())
        .env("HEADCOUNT_LOG", "info")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start headcount serve");
    Serve { child, port }
}

/// `GET /readyz` once it answers 200: its JSON body.
fn ready(server: &Serve) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "not ready after 30 s");
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", server.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = "GET /readyz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                let body = answer.split("\r\n\r\n").nth(1).expect("a body");
                return serde_json::from_str(body).expect("a JSON body");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_text(tmp: &TempDir) -> String {
    std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default()
}

#[test]
fn serve_names_its_node_in_readyz_and_the_log() {
    let tmp = TempDir::new("node-name");
    let server = serve(&tmp, &["--node-name", "web-7"]);
    assert_eq!(ready(&server)["node"], "web-7");
    drop(server);
    let log = log_text(&tmp);
    assert!(log.contains("node=web-7"), "{log}");
}

#[test]
fn serve_names_its_node_by_host_and_port_by_default() {
    let tmp = TempDir::new("node-default");
    let server = serve(&tmp, &[]);
    let node = ready(&server)["node"].as_str().expect("a node").to_string();
    let (host, port) = node.rsplit_once(':').expect("HOST:PORT");
    assert!(!host.is_empty(), "{node}");
    assert_eq!(port, server.port.to_string());
}

#[test]
fn serve_refuses_a_redis_url_that_is_not_one() {
    let tmp = TempDir::new("redis-url");
    hc(
        &tmp.data(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "http://cache:6379",
        ],
    )
    .fails_with(&["--redis-url: the Redis URL must start with redis://"]);
    let run = command(&tmp.data())
        .env("HEADCOUNT_REDIS_URL", "cache:6379")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run headcount");
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("the Redis URL must start with redis://"),
        "{stderr}"
    );
}
