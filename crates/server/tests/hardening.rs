//! Regression tests for what a hostile or broken client could do (issue 9): idle and
//! slow connections, the connection cap, duplicate JSON keys, the HTTP layer's own
//! errors, repeated headers, and the range of instants.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::{TestServer, config};
use headcount_server::Config;
use headcount_store::Permission;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

async fn serve(config: Config) -> (TestServer, String) {
    let mut server = TestServer::new(config);
    let ws = server.workspace(common::Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    server.serve().await;
    (server, key)
}

/// Waits until the server closes `stream` (reading and discarding anything it sends);
/// the time it took, or `None` if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// An answer read off a raw connection: status, headers (lowercased names), body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body's `message`, checking that the body is JSON.
    #[track_caller]
    fn message(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "status {}: {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let json: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {json}"))
            .to_string()
    }
}

/// Sends raw bytes on a new connection and reads one answer.
async fn raw(server: &TestServer, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(address(server)).await.expect("connect");
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(answer) = parse_answer(&data) {
            return answer;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("an answer within 10 s");
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return parse_answer(&data).unwrap_or_else(|| {
                    panic!("incomplete answer: {:?}", String::from_utf8_lossy(&data))
                });
            }
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no answer within 10 s: {:?}",
                String::from_utf8_lossy(&data)
            ),
        }
    }
}

/// A complete answer at the start of `data`, if there is one.
fn parse_answer(data: &[u8]) -> Option<Raw> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&data[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next()?.get(9..12)?.parse().expect("a status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().expect("a length"))
        .unwrap_or(0);
    let body = data.get(end + 4..end + 4 + length)?.to_vec();
    Some(Raw {
        status,
        headers,
        body,
    })
}

#[tokio::test]
async fn idle_connections_and_half_sent_heads_are_closed_after_the_timeouts() {
    let (server, _key) = serve(Config {
        header_read_timeout: Duration::from_millis(700),
        idle_timeout: Duration::from_millis(1500),
        ..config()
    })
    .await;
    let addr = address(&server);

    // A connection that never sends anything: closed after the idle timeout.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    let took = closed_within(&mut idle, Duration::from_secs(8)).await;
    let took = took.expect("an idle connection is closed");
    assert!(took >= Duration::from_millis(1300), "closed after {took:?}");

    // A keep-alive connection after its answer: idle too.
    let mut kept = TcpStream::connect(&addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let took = closed_within(&mut kept, Duration::from_secs(8)).await;
    assert!(
        took.is_some(),
        "a kept-alive connection is closed once idle"
    );

    // A head sent a byte at a time, often enough never to be idle: closed after the
    // header-read timeout.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..40 {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        if let Some(took) = closed_within(&mut slow, Duration::from_millis(200)).await {
            let _ = took;
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a slow head is still open after {took:?}");
    assert!(took < Duration::from_secs(6), "closed after {took:?}");

    // Meanwhile the server answers.
    let r = raw(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_until_one_closes() {
    let (mut server, _key) = serve(Config {
        max_connections: 2,
        idle_timeout: Duration::from_secs(60),
        header_read_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    // The connection left open by waiting for readiness would take a place.
    server.drop_idle_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = address(&server);
    let first = TcpStream::connect(&addr).await.expect("connect");
    let _second = TcpStream::connect(&addr).await.expect("connect");
    // Let the server accept both.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(&addr).await.expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection was served at a cap of 2"
    );
    drop(first);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer))
        .await
        .expect("served once a connection closed")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn a_key_named_twice_is_refused_with_a_400_naming_it() {
    let (server, key) = TestServer::simple().await;
    server
        .post_raw(
            &key,
            "/users/track",
            r#"{"attributes":[{"external_id":"a","plan":"x"}],"attributes":[{"external_id":"b","plan":"y"}]}"#,
        )
        .await
        .expect_bad(r#"the request body has the key "attributes" twice"#);
    server
        .post_raw(
            &key,
            "/users/track",
            r#"{"events":[{"external_id":"a","external_id":"b","name":"x","time":"2025-05-01T10:00:00Z"}]}"#,
        )
        .await
        .expect_bad(r#"the request body has the key "external_id" twice in events[0]"#);
    server
        .post_raw(
            &key,
            "/users/track",
            r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01T10:00:00Z"}],"attributes":[{"external_id":"a"},{"external_id":"b","c":1,"c":2}]}"#,
        )
        .await
        .expect_bad(r#"the request body has the key "c" twice in attributes[1]"#);
    server
        .post_raw(
            &key,
            "/segments/create",
            r#"{"name":"a","name":"b","filter":{"all":[]}}"#,
        )
        .await
        .expect_bad(r#"the request body has the key "name" twice"#);
    server
        .post_raw(
            &key,
            "/segments/create",
            r#"{"name":"a","filter":{"all":[],"all":[]}}"#,
        )
        .await
        .expect_bad(r#"the request body has the key "all" twice in filter"#);
    let list = server.get(&key, "/segments/list?page=0").await;
    list.expect(200);
    assert_eq!(list.body["segments"], json!([]), "nothing was created");
}

#[tokio::test]
async fn errors_of_the_http_layer_have_json_bodies() {
    let (server, _key) = TestServer::simple().await;
    let many_headers: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_uri = format!(
        "GET /healthz?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a control character in a header",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different Content-Lengths",
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
        ),
        // Equal ones are read as one (RFC 9110 allows it): here, a request without a key.
        (
            "two equal Content-Lengths",
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
            401,
        ),
        (
            "an oversized Content-Length",
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{}"
                .to_vec(),
            400,
        ),
        ("a 100 KB URI", long_uri.into_bytes(), 414),
        (
            "2,000 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        (
            "a malformed request line",
            b"GET  /healthz HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (what, request, status) in cases {
        let r = raw(&server, &request).await;
        assert_eq!(r.status, status, "{what}");
        let message = r.message();
        assert!(!message.is_empty(), "{what}");
        if status == 414 {
            assert!(message.starts_with("URI Too Long"), "{what}: {message}");
        }
        if status == 431 {
            assert!(message.contains("100 headers"), "{what}: {message}");
        }
    }
    // An answer of the API itself is left as it is.
    let r = raw(&server, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.message(), "Not Found: no such endpoint");
}

#[tokio::test]
async fn two_authorization_headers_are_a_400_naming_the_header() {
    let (server, key) = TestServer::simple().await;
    let request = format!(
        "GET /segments/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nAuthorization: Bearer nope\r\n\r\n"
    );
    let r = raw(&server, request.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "the request has the header Authorization more than once; send it once"
    );
    // One is fine.
    let request =
        format!("GET /segments/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    assert_eq!(raw(&server, request.as_bytes()).await.status, 200);
}

#[tokio::test]
async fn instants_outside_the_supported_range_get_one_clear_400() {
    let (server, key) = TestServer::simple().await;
    let range = "is outside the supported range of instants (from 1900-01-01T00:00:00Z to the end of year 9999)";
    let track = |time: &str| {
        json!({"events":[
            {"external_id":"a","name":"ok","time":"2025-05-01T10:00:00Z"},
            {"external_id":"a","name":"x","time":time}
        ]})
    };
    // Before the range: the object is refused, naming the field and the range.
    let r = server
        .post(&key, "/users/track", &track("1899-12-31T23:59:59Z"))
        .await;
    r.expect(201);
    assert_eq!(
        r.body["errors"][0]["type"],
        format!("'time' \"1899-12-31T23:59:59Z\" {range}")
    );
    let r = server
        .post(
            &key,
            "/users/track",
            &json!({"events":[{"external_id":"a","name":"x","time":"0000-01-01"}]}),
        )
        .await;
    r.expect(400);
    assert_eq!(
        r.body["errors"][0]["type"],
        format!("'time' \"0000-01-01\" {range}")
    );
    // The end of year 9999 is in the range, and in the future: the moment of receipt.
    for time in [
        "9999-12-30T23:00:00Z",
        "9999-12-31T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
    ] {
        let r = server.post(&key, "/users/track", &track(time)).await;
        r.expect(201);
        assert_eq!(r.body["events_processed"], 2, "{time}: {:?}", r.body);
    }

    let id = server
        .create_segment(&key, "everyone", json!({"all":[]}))
        .await;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    // A future ending_at, to the last day that can be written, is the moment of the request.
    for ending_at in ["9999-12-31", "9999-12-31T23:59:59Z", "9999-12-30"] {
        let series = server
            .series(
                &key,
                &format!("segment_id={id}&length=2&ending_at={ending_at}"),
            )
            .await;
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].0, today, "{ending_at}");
    }
    // Before the range, or a series that would reach back before it: 400.
    for (ending_at, length, first) in [
        ("0000-01-01", 3, "-000001-12-29"),
        ("1899-06-01", 1, "1899-05-31"),
        ("1900-02-01", 100, "1899-10-24"),
    ] {
        server
            .get(
                &key,
                &format!("/segments/data_series?segment_id={id}&length={length}&ending_at={ending_at}"),
            )
            .await
            .expect_bad(&format!(
                "ending_at \"{ending_at}\" {range}: a series of {length} days ending then would begin on {first}"
            ));
    }
    // The first day of the range is the first a series may show.
    let series = server
        .series(
            &key,
            &format!("segment_id={id}&length=100&ending_at=1900-04-11"),
        )
        .await;
    assert_eq!(series[0].0, "1900-01-01");
}
