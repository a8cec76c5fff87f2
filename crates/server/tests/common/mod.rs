//! A real headcount server on a real port, over a temporary data directory, for the
//! integration tests: workspaces and keys are created straight in the store (as the
//! CLI does), then the server is started with `serve_until` and can be restarted over
//! the same directory.

use headcount_model::WorkspaceId;
use headcount_server::{Config, Shared};
use headcount_store::{ApiKey, IpNet, NewWorkspace, Permission, SqliteStore, Store, keys};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A test configuration: a short history window and a schedule that stays quiet
/// (checkpoints go to the test server's data directory, see [`TestServer::new`]).
pub fn config() -> Config {
    Config {
        backfill_days: 3,
        max_track_objects: 75,
        schedule_every: Duration::from_secs(3600),
        ..Config::default()
    }
}

/// A workspace to create.
pub struct Ws<'a> {
    pub name: &'a str,
    pub time_zone: &'a str,
    pub export_limit: u64,
    pub track_limit: u64,
}

impl<'a> Ws<'a> {
    /// A UTC workspace with generous limits.
    pub fn named(name: &'a str) -> Self {
        Ws {
            name,
            time_zone: "UTC",
            export_limit: 250_000,
            track_limit: 3_000,
        }
    }
}

/// An answer: status, headers and the JSON body (every answer of the API is JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// A header as text; panics when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no header {name} in {self:?}"))
            .to_str()
            .expect("ASCII header")
    }

    /// The body's `message`.
    pub fn message(&self) -> &str {
        self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {self:?}"))
    }

    /// Asserts the status, and shows the whole answer when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected answer: {self:?}");
        self
    }

    /// Asserts a 400 with exactly this message.
    #[track_caller]
    pub fn expect_bad(&self, message: &str) {
        self.expect(400);
        assert_eq!(self.message(), message, "{self:?}");
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    state: Weak<Shared>,
}

/// A data directory, its store, and the server running over it.
pub struct TestServer {
    pub dir: PathBuf,
    pub config: Config,
    pub base: String,
    pub client: reqwest::Client,
    store: Option<Arc<SqliteStore>>,
    running: Option<Running>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestServer {
    /// A fresh data directory with an open store; nothing served yet. Checkpoints go
    /// to `<dir>/checkpoints` unless `config` says where.
    pub fn new(mut config: Config) -> TestServer {
        let dir = std::env::temp_dir().join(format!(
            "headcount-api-test-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).expect("open the store");
        config
            .checkpoints
            .get_or_insert_with(|| headcount_server::checkpoints::dir_of(&dir));
        TestServer {
            dir,
            config,
            base: String::new(),
            client: reqwest::Client::new(),
            store: Some(Arc::new(store)),
            running: None,
        }
    }

    /// One UTC workspace and a key with every permission, served.
    pub async fn simple() -> (TestServer, String) {
        let mut server = TestServer::new(config());
        let ws = server.workspace(Ws::named("main"));
        let key = server.key(ws, &Permission::ALL, &[]);
        server.serve().await;
        (server, key)
    }

    /// The store (while this helper owns it).
    pub fn store(&self) -> &SqliteStore {
        self.store.as_deref().expect("the store is open")
    }

    /// Creates a workspace in the store (seen by the server from its next start).
    pub fn workspace(&self, ws: Ws<'_>) -> WorkspaceId {
        self.store()
            .create_workspace(&NewWorkspace {
                name: ws.name.to_string(),
                time_zone: ws.time_zone.to_string(),
                export_limit: ws.export_limit,
                track_limit: ws.track_limit,
            })
            .expect("create a workspace")
            .id
    }

    /// Creates a key in the store and returns its secret (seen from the next start).
    pub fn key(&self, ws: WorkspaceId, permissions: &[Permission], allow_ips: &[&str]) -> String {
        let secret = keys::generate_secret().expect("random secret");
        let key = ApiKey {
            id: keys::public_id(&secret).to_string(),
            workspace: ws,
            name: "test".to_string(),
            hash: keys::hash_secret(&secret),
            permissions: permissions.to_vec(),
            allow_ips: allow_ips
                .iter()
                .map(|n| n.parse::<IpNet>().expect("a subnet"))
                .collect(),
            created_at: headcount_server::state::now(),
            revoked_at: None,
        };
        self.store().insert_key(&key).expect("insert a key");
        secret
    }

    /// Serves on a fresh port of 127.0.0.1, loads the indexes in the background, and
    /// waits until `/readyz` says they are loaded.
    pub async fn serve(&mut self) {
        self.serve_unloaded().await;
        self.start_loading();
        self.wait_ready().await;
    }

    /// Serves on a fresh port of 127.0.0.1 with the catalog loaded but not the
    /// indexes: `/readyz` and the API answer 503 until [`TestServer::start_loading`].
    pub async fn serve_unloaded(&mut self) {
        assert!(self.running.is_none(), "already serving");
        let store: Arc<dyn Store> = self.store.clone().expect("the store is open");
        let state = Shared::open(store, self.config.clone()).expect("open the state");
        let weak = Arc::downgrade(&state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port");
        self.base = format!("http://{}", listener.local_addr().expect("local address"));
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(headcount_server::serve_until(state, listener, async {
            let _ = signal.await;
        }));
        self.running = Some(Running {
            shutdown,
            task,
            state: weak,
        });
    }

    /// Starts loading the indexes of the running server.
    pub fn start_loading(&self) {
        let running = self.running.as_ref().expect("serving");
        let state = running.state.upgrade().expect("the server's state");
        Shared::start_loading(&state);
    }

    /// Waits (up to 30 s) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .send(self.request(reqwest::Method::GET, "/readyz"), None)
                .await;
            if r.status == 200 {
                assert_eq!(r.message(), "ready");
                return;
            }
            assert_eq!(r.status, 503, "{r:?}");
            assert!(Instant::now() < deadline, "not ready after 30 s: {r:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops serving, waits until the server and everything it spawned let go of the
    /// store (so that the directory lock is released), and closes the store.
    pub async fn stop(&mut self) {
        // Idle keep-alive connections would hold the graceful shutdown open.
        self.client = reqwest::Client::new();
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            tokio::time::timeout(Duration::from_secs(10), running.task)
                .await
                .expect("the server stops within 10 s")
                .expect("the server task does not panic")
                .expect("the server ends cleanly");
            let deadline = Instant::now() + Duration::from_secs(10);
            while running.state.strong_count() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "background work still holds the state 10 s after shutdown"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.store = None;
    }

    /// Stops, reopens the same directory (which must be unlocked by then) and serves
    /// again on a new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.reopen();
        self.serve().await;
    }

    /// Closes the client's idle keep-alive connections (a test of the connection cap
    /// must not count the one left by waiting for `/readyz`).
    #[allow(dead_code)] // not every test binary counts connections
    pub fn drop_idle_connections(&mut self) {
        self.client = reqwest::Client::new();
    }

    /// Reopens the store of the data directory after [`TestServer::stop`]. A blocking
    /// task of the old server (one that remembers an answer, say) may still hold the
    /// store for a moment after the server itself is gone: it waits for it.
    pub fn reopen(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match SqliteStore::open(&self.dir) {
                Err(headcount_store::StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                opened => break opened.expect("reopen the data directory"),
            }
        };
        self.store = Some(Arc::new(store));
    }

    /// The running server's state.
    #[allow(dead_code)] // not every test binary looks inside
    pub fn state(&self) -> Arc<Shared> {
        let running = self.running.as_ref().expect("serving");
        running.state.upgrade().expect("the server's state")
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    async fn read(response: reqwest::Response) -> Resp {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = response.bytes().await.expect("read the body");
        assert!(
            content_type.starts_with("application/json"),
            "status {status}: content-type {content_type:?}, body {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "status {status}: the body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A request with `key` as bearer token (none if `None`).
    pub async fn send(&self, request: reqwest::RequestBuilder, key: Option<&str>) -> Resp {
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        TestServer::read(request.send().await.expect("send the request")).await
    }

    /// `GET path_and_query`, the query sent exactly as written.
    pub async fn get(&self, key: &str, path_and_query: &str) -> Resp {
        self.send(self.client.get(self.url(path_and_query)), Some(key))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(body), Some(key))
            .await
    }

    /// `POST path` with raw bytes as a JSON body.
    pub async fn post_raw(&self, key: &str, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        self.send(request, Some(key)).await
    }

    /// A request of any method without a key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Creates a segment and returns its id.
    pub async fn create_segment(&self, key: &str, name: &str, filter: Value) -> String {
        let r = self
            .post(
                key,
                "/segments/create",
                &serde_json::json!({ "name": name, "filter": filter }),
            )
            .await;
        r.expect(201);
        r.body["segment_id"]
            .as_str()
            .expect("a segment_id")
            .to_string()
    }

    /// `data_series` as (date, size) pairs.
    pub async fn series(&self, key: &str, query: &str) -> Vec<(String, u64)> {
        let r = self
            .get(key, &format!("/segments/data_series?{query}"))
            .await;
        r.expect(200);
        assert_eq!(r.message(), "success");
        r.body["data"]
            .as_array()
            .expect("data is an array")
            .iter()
            .map(|p| {
                assert_eq!(p.as_object().map(|o| o.len()), Some(2), "{p}");
                (
                    p["time"].as_str().expect("time is a string").to_string(),
                    p["size"].as_u64().expect("size is an integer"),
                )
            })
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
