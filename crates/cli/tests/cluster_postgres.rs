//! Three `serve` nodes on one PostgreSQL database, real processes: the catalog and
//! the facts of any node reach every other within a second, a rate limit is one
//! limit, each completed day is computed once, and neither `kill -9` of a node nor a
//! PostgreSQL restart under load loses an acknowledged write.

#[allow(dead_code)] // shared with cli.rs, which uses the rest of it
mod common;

use common::{Run, TempDir, command};
use headcount_store::testing::TestPostgres;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `headcount --database URL ARGS…`.
fn hcdb(data: &Path, url: &str, args: &[&str]) -> Run {
    let output = command(data)
        .env_remove("HEADCOUNT_DATABASE_URL")
        .args(["--database", url])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run headcount");
    Run::from(output)
}

/// One `serve` node on the database, with its own checkpoint directory and log.
struct Node {
    child: Child,
    base: String,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: the status, the body (`Null` if not JSON) and the response headers.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Node {
    fn start(tmp: &TempDir, url: &str, name: &str) -> Node {
        Node::start_with(tmp, url, name, &[])
    }

    /// A node given `serve` options `extra` besides the usual ones.
    fn start_with(tmp: &TempDir, url: &str, name: &str, extra: &[&str]) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = tmp.path().join(format!("{name}.log"));
        let checkpoints = tmp.path().join(format!("checkpoints-{name}"));
        let child = command(&tmp.data())
            .env_remove("HEADCOUNT_DATABASE_URL")
            .env("HEADCOUNT_LOG", "info")
            .args(["--database", url, "--checkpoint-dir"])
            .arg(&checkpoints)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--node-name", name, "--backfill-days", "5"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start headcount serve");
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "{name} not ready: {}",
                node.log_text()
            );
            if node
                .call("GET", "/readyz", "", None)
                .is_ok_and(|a| a.status == 200)
            {
                return node;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request; `Err` when no HTTP answer came.
    fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        call(&self.client, &self.rt, &self.base, method, path, key, body)
    }

    fn ok(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Answer {
        let answer = self
            .call(method, path, key, body)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(answer.status < 300, "{path}: {answer:?}");
        answer
    }

    /// Today's live size of a segment, as this node answers it.
    fn size(&self, key: &str, id: &str) -> Option<u64> {
        let path = format!("/segments/data_series?segment_id={id}&length=1");
        let answer = self.call("GET", &path, key, None).ok()?;
        (answer.status == 200).then(|| answer.body["data"][0]["size"].as_u64())?
    }
}

fn call(
    client: &reqwest::Client,
    rt: &tokio::runtime::Runtime,
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let url = format!("{base}{path}");
    rt.block_on(async {
        let mut request = match method {
            "POST" => client.post(&url),
            _ => client.get(&url),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            headers,
        })
    })
}

/// Waits until `check` holds, at most `limit`; answers how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() <= limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn track_body(user: &str) -> Value {
    json!({"attributes": [{"external_id": user, "country": "FR"}]})
}

struct Cluster {
    pg: TestPostgres,
    url: String,
    tmp: TempDir,
    key: String,
    nodes: Vec<Node>,
}

/// A new key of every permission on `workspace`, as the CLI prints it.
fn create_key(tmp: &TempDir, url: &str, workspace: &str) -> String {
    let args = ["keys", "create", "--workspace", workspace, "--name", "ci"];
    hcdb(&tmp.data(), url, &args)
        .ok()
        .stdout
        .trim_end()
        .to_string()
}

/// A database with workspace `acme` (`workspace_args` given to its creation), a key
/// of every permission, and three nodes on it.
fn cluster(label: &str, workspace_args: &[&str]) -> Cluster {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new(label);
    let mut create = vec!["workspaces", "create", "acme"];
    create.extend_from_slice(workspace_args);
    hcdb(&tmp.data(), &url, &create).ok();
    let key = create_key(&tmp, &url, "acme");
    let nodes = (1..=3)
        .map(|i| Node::start(&tmp, &url, &format!("node-{i}")))
        .collect();
    Cluster {
        pg,
        url,
        tmp,
        key,
        nodes,
    }
}

/// The days of sizes each node's log says it computed for `segment`.
fn days_computed(node: &Node, segment: &str) -> u64 {
    node.log_text()
        .lines()
        .filter(|l| l.contains("computed daily sizes") && l.contains(segment))
        .filter_map(|l| {
            let rest = &l[l.find("days=")? + 5..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn three_nodes_share_segments_facts_keys_limits_and_compute_each_day_once() {
    let c = cluster("pg-cluster", &[]);
    let (a, b, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let key = c.key.as_str();

    // A segment created on one node is served by the others within a second.
    let created = a.ok(
        "POST",
        "/segments/create",
        key,
        Some(&json!({"name": "French", "filter": {"attribute": "country", "op": "eq", "value": "FR"}})),
    );
    let id = created.body["segment_id"]
        .as_str()
        .expect("an id")
        .to_string();
    for node in [b, n3] {
        let took = within(Duration::from_secs(1), || node.size(key, &id).is_some());
        assert!(
            took.is_some(),
            "the segment is not served by another node within 1 s"
        );
    }

    // A track on one node: that node answers with it at once, the others within 1 s.
    for (i, node) in c.nodes.iter().enumerate() {
        let user = format!("u{i}");
        node.ok("POST", "/users/track", key, Some(&track_body(&user)));
        assert_eq!(
            node.size(key, &id),
            Some(i as u64 + 1),
            "read your own writes"
        );
        for other in &c.nodes {
            let took = within(Duration::from_secs(1), || {
                other.size(key, &id) == Some(i as u64 + 1)
            });
            assert!(
                took.is_some(),
                "track {i} not counted by every node within 1 s"
            );
        }
    }

    // Each completed day of the segment computed once, by one node, over the cluster.
    let computed = within(Duration::from_secs(10), || {
        c.nodes.iter().map(|n| days_computed(n, &id)).sum::<u64>() >= 5
    });
    assert!(computed.is_some(), "the backfill never ran");
    std::thread::sleep(Duration::from_millis(500));
    let per_node: Vec<u64> = c.nodes.iter().map(|n| days_computed(n, &id)).collect();
    assert_eq!(
        per_node.iter().sum::<u64>(),
        5,
        "days computed per node: {per_node:?}"
    );
    assert_eq!(
        per_node.iter().filter(|&&d| d > 0).count(),
        1,
        "{per_node:?}"
    );

    // A workspace created by the CLI is known to every node within a second, and its
    // limit of 10 is 10 across the three nodes, each answer's headers from the shared
    // count.
    hcdb(
        &c.tmp.data(),
        &c.url,
        &[
            "workspaces",
            "create",
            "limited",
            "--export-rate-limit",
            "10",
        ],
    )
    .ok();
    let limited = create_key(&c.tmp, &c.url, "limited");
    std::thread::sleep(Duration::from_millis(1000));
    let mut allowed = 0;
    let mut remaining_seen = Vec::new();
    let mut refused = 0;
    for i in 0..30 {
        let node = &c.nodes[i % 3];
        let answer = node
            .call("GET", "/segments/list", &limited, None)
            .expect("an answer");
        match answer.status {
            200 => {
                allowed += 1;
                let remaining: u64 = answer
                    .header("x-ratelimit-remaining")
                    .and_then(|v| v.parse().ok())
                    .expect("X-RateLimit-Remaining");
                assert_eq!(answer.header("x-ratelimit-limit").as_deref(), Some("10"));
                remaining_seen.push(remaining);
            }
            429 => {
                refused += 1;
                assert_eq!(answer.header("x-ratelimit-remaining").as_deref(), Some("0"));
            }
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(
        (allowed, refused),
        (10, 20),
        "allowed and refused across the nodes"
    );
    // Each allowed answer's Remaining is one less than the last, whatever the node.
    let expected: Vec<u64> = (0..10).rev().collect();
    assert_eq!(
        remaining_seen, expected,
        "remaining as counted across nodes"
    );

    // A key revoked (by the CLI on the database) is refused by every node within 1 s.
    let listed = hcdb(&c.tmp.data(), &c.url, &["keys", "list"]).ok();
    let key_id = &key[..8];
    assert!(listed.stdout.contains(key_id), "{listed:?}");
    hcdb(&c.tmp.data(), &c.url, &["keys", "revoke", key_id]).ok();
    for node in &c.nodes {
        let took = within(Duration::from_secs(1), || {
            node.call("POST", "/users/track", key, Some(&track_body("late")))
                .is_ok_and(|a| a.status == 401)
        });
        assert!(
            took.is_some(),
            "a revoked key still works on a node after 1 s"
        );
    }
}

/// `serve --rate-limit-lease`: with a limit of 256,000 each node reserves 256 counts
/// ahead and its requests take them, so every answer still has its own Remaining and
/// each node's fall by one, but the second node's counts start after the first's lease.
#[test]
fn nodes_with_leases_answer_from_counts_reserved_ahead() {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let tmp = TempDir::new("lease");
    let create = [
        "workspaces",
        "create",
        "big",
        "--export-rate-limit",
        "256000",
    ];
    hcdb(&tmp.data(), &url, &create).ok();
    let key = create_key(&tmp, &url, "big");
    let lease = ["--rate-limit-lease", "256"];
    let nodes = [
        Node::start_with(&tmp, &url, "a", &lease),
        Node::start_with(&tmp, &url, "b", &lease),
    ];
    let mut seen: [Vec<u64>; 2] = Default::default();
    for i in 0..40 {
        let answer = nodes[i % 2].ok("GET", "/segments/list", &key, None);
        let remaining = answer
            .header("x-ratelimit-remaining")
            .and_then(|v| v.parse().ok())
            .expect("X-RateLimit-Remaining");
        seen[i % 2].push(remaining);
    }
    // a's first request took count 1 and reserved 2..=257; b's took 258.
    let from = |first: u64| (0..20).map(|i| 256_000 - first - i).collect::<Vec<u64>>();
    assert_eq!(seen[0], from(1), "node a");
    assert_eq!(seen[1], from(258), "node b");
}

/// Tracks users `prefix-N` round-robin on `nodes` from 6 threads until `stop`;
/// answers the acknowledged (201) users and counts every other outcome by status
/// (0: no answer).
fn load(
    bases: Vec<String>,
    key: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, std::collections::BTreeMap<u16, usize>)> {
    std::thread::spawn(move || {
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let (bases, key, stop, next) =
                    (bases.clone(), key.clone(), stop.clone(), next.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .expect("a client");
                    let mut acked = Vec::new();
                    let mut other = std::collections::BTreeMap::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let base = &bases[n % bases.len()];
                        let user = format!("{prefix}-{n}");
                        match call(
                            &client,
                            &rt,
                            base,
                            "POST",
                            "/users/track",
                            &key,
                            Some(&track_body(&user)),
                        ) {
                            Ok(a) if a.status == 201 => acked.push(user),
                            Ok(a) => {
                                if a.status == 503 {
                                    assert!(a.header("retry-after").is_some(), "{a:?}");
                                    assert!(a.body["message"].is_string(), "{a:?}");
                                }
                                *other.entry(a.status).or_insert(0) += 1;
                            }
                            Err(_) => *other.entry(0).or_insert(0) += 1,
                        }
                    }
                    (acked, other)
                })
            })
            .collect();
        let mut acked = Vec::new();
        let mut other = std::collections::BTreeMap::new();
        for w in workers {
            let (a, o) = w.join().expect("a load thread");
            acked.extend(a);
            for (k, v) in o {
                *other.entry(k).or_insert(0) += v;
            }
        }
        (acked, other)
    })
}

/// Every user in `acked` is a member of `segment` on `node` (by the live size and a
/// count of distinct members).
fn all_present(node: &Node, key: &str, segment: &str, acked: usize) -> bool {
    node.size(key, segment).is_some_and(|n| n as usize >= acked)
}

#[test]
fn losing_a_node_or_restarting_postgres_under_load_loses_no_acknowledged_write() {
    let c = cluster("pg-cluster-loss", &["--track-rate-limit", "1000000"]);
    let key = c.key.clone();
    let created = c.nodes[0].ok(
        "POST",
        "/segments/create",
        &key,
        Some(&json!({"name": "French", "filter": {"attribute": "country", "op": "eq", "value": "FR"}})),
    );
    let id = created.body["segment_id"]
        .as_str()
        .expect("an id")
        .to_string();
    let bases: Vec<String> = c.nodes.iter().map(|n| n.base.clone()).collect();

    // kill -9 of one node while tracks go to all three.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(bases.clone(), key.clone(), "k", stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let mut nodes = c.nodes;
    let victim = nodes.remove(2);
    drop(victim); // SIGKILL and reap
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let (acked, other) = running.join().expect("the load");
    assert!(
        acked.len() > 50,
        "too little load: {} acked, {other:?}",
        acked.len()
    );
    assert!(!other.contains_key(&500), "500s: {other:?}");
    for node in &nodes {
        let took = within(Duration::from_secs(2), || {
            all_present(node, &key, &id, acked.len())
        });
        assert!(
            took.is_some(),
            "a surviving node lacks acknowledged writes: {:?} < {}",
            node.size(&key, &id),
            acked.len()
        );
    }
    let before = nodes[0].size(&key, &id).expect("a size");

    // PostgreSQL restarting while tracks go to the two nodes left.
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(bases, key.clone(), "r", stop.clone());
    std::thread::sleep(Duration::from_millis(1000));
    c.pg.stop();
    // While it is down, nodes answer 503 (with Retry-After and a message), never hang.
    let down = within(Duration::from_secs(5), || {
        nodes[0]
            .call("POST", "/users/track", &key, Some(&track_body("down")))
            .is_ok_and(|a| a.status == 503)
    });
    assert!(
        down.is_some(),
        "no 503 while PostgreSQL is down: {}",
        nodes[0].log_text()
    );
    std::thread::sleep(Duration::from_millis(1000));
    c.pg.start();
    // They reconnect by themselves.
    for node in &nodes {
        let back = within(Duration::from_secs(10), || {
            node.call("POST", "/users/track", &key, Some(&track_body("back")))
                .is_ok_and(|a| a.status == 201)
        });
        assert!(
            back.is_some(),
            "a node did not recover: {}",
            node.log_text()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (acked_r, other) = running.join().expect("the load");
    assert!(!other.contains_key(&500), "500s: {other:?}");
    assert!(
        other.get(&503).copied().unwrap_or(0) > 0,
        "no 503 seen: {other:?}"
    );
    // "down" was refused, "back" acknowledged once per node (one user).
    let expected = before as usize + acked_r.len() + 1;
    for node in &nodes {
        let took = within(Duration::from_secs(2), || {
            all_present(node, &key, &id, expected)
        });
        assert!(
            took.is_some(),
            "acknowledged writes lost across the restart: {:?} < {expected}",
            node.size(&key, &id)
        );
    }
    // And a fresh node started after all this holds every one of them too.
    let fresh = Node::start(&c.tmp, &c.url, "node-4");
    assert!(
        all_present(&fresh, &key, &id, expected),
        "{:?}",
        fresh.size(&key, &id)
    );
}
