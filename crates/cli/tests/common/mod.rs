//! Helpers of the CLI tests: temporary data directories, runs of the real `headcount`
//! binary, a real `headcount serve` on a free port, and reading a data directory back
//! with the store once every process is done with it.

use headcount_model::{Fact, FactKind, UserKey};
use headcount_store::{SqliteStore, Store};
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_headcount");

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new, empty, uniquely named directory.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "headcount-cli-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data directory used by the tests (a subdirectory, created by headcount).
    pub fn data(&self) -> PathBuf {
        self.path.join("data")
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The output of one run of the binary, as text.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts a zero exit and returns the run.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(self.status.success(), "expected success, got {self:#?}");
        self
    }

    /// Asserts a non-zero exit whose stderr contains every one of `needles`.
    #[track_caller]
    pub fn fails_with(self, needles: &[&str]) -> Run {
        assert!(!self.status.success(), "expected a failure, got {self:#?}");
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}: {self:#?}"
            );
        }
        self
    }
}

/// A command running the binary on data directory `data`.
pub fn command(data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(data)
        .env_remove("HEADCOUNT_DATA_DIR")
        .env("HEADCOUNT_LOG", "warn");
    cmd
}

/// Runs `headcount --data-dir DATA ARGS…` to completion.
pub fn hc(data: &Path, args: &[&str]) -> Run {
    let output = command(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run headcount");
    Run::from(output)
}

/// Runs `headcount --data-dir DATA ARGS…` with `input` on its stdin.
pub fn hc_stdin(data: &Path, args: &[&str], input: &str) -> Run {
    let mut child = command(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run headcount");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    });
    let output = child.wait_with_output().expect("wait for headcount");
    writer.join().expect("stdin writer");
    Run::from(output)
}

/// Creates a workspace with the CLI.
pub fn create_workspace(data: &Path, name: &str, time_zone: &str) {
    hc(
        data,
        &["workspaces", "create", name, "--time-zone", time_zone],
    )
    .ok();
}

/// Creates a key with the CLI and returns it.
pub fn create_key(data: &Path, workspace: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["keys", "create", "--workspace", workspace, "--name", name];
    args.extend_from_slice(extra);
    let run = hc(data, &args).ok();
    run.stdout.trim_end().to_string()
}

/// Opens the data directory in this process without its writer lock (what
/// `headcount keys` does), to read it or change its catalog and sizes. Never the
/// writer's lock: a child that another test thread is starting holds a copy of this
/// process's descriptors between its fork and its exec, so a lock taken here could
/// outlive the store for an instant and make the next `hc` of this test find the
/// directory "in use by" the test binary.
pub fn open_store(data: &Path) -> SqliteStore {
    SqliteStore::open_shared(data).expect("open the data directory")
}

/// Every stored fact of the workspace named `name`, read with the store itself (the
/// directory must not be in use).
pub fn facts(data: &Path, name: &str) -> Vec<(UserKey, Fact)> {
    let store = open_store(data);
    let ws = store
        .workspaces()
        .expect("workspaces")
        .into_iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workspace {name}"));
    let mut all = Vec::new();
    store
        .scan_facts(ws.id, &mut |user, fact| all.push((user.clone(), fact)))
        .expect("scan facts");
    all
}

/// An external id user.
pub fn ext(id: &str) -> UserKey {
    UserKey::External(id.to_string())
}

/// The facts of one user.
pub fn of<'a>(facts: &'a [(UserKey, Fact)], user: &UserKey) -> Vec<&'a Fact> {
    facts
        .iter()
        .filter(|(u, _)| u == user)
        .map(|(_, f)| f)
        .collect()
}

/// The names of a user's events.
pub fn event_names(facts: &[&Fact]) -> Vec<String> {
    let mut names: Vec<String> = facts
        .iter()
        .filter_map(|f| match &f.kind {
            FactKind::Event { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

/// Waits for a child to exit, at most `limit`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An answer of the API.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

/// A running `headcount serve` process.
pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// Starts `serve` on `data` and waits until `/readyz` answers 200 (its indexes
    /// loaded).
    pub fn start(data: &Path, log_dir: &Path) -> Server {
        Server::start_with(data, log_dir, &[])
    }

    /// [`Server::start`] with more global options (such as `--database URL`).
    pub fn start_with(data: &Path, log_dir: &Path, global: &[&str]) -> Server {
        // The port may be taken between the probe and the bind: then try another.
        for attempt in 0..5 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            let port = free_port();
            let log = log_dir.join(format!("serve-{port}-{attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("a log file");
            let child = command(data)
                .env("HEADCOUNT_LOG", "info")
                .args(global)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start headcount serve");
            let mut server = Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
                rt,
                client,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(text) if text.contains("cannot listen") && attempt < 4 => continue,
                Err(text) => panic!("headcount serve did not start: {text}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/readyz", self.base);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            let ready = self.rt.block_on(async {
                match self
                    .client
                    .get(&url)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16() == 200,
                    Err(_) => false,
                }
            });
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("not ready after 30 s: {}", self.log_text()))
    }

    /// What the server wrote on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A request with a key: `POST` with a JSON body, or `GET` when `body` is `None`.
    pub fn call(&self, path: &str, key: &str, body: Option<&Value>) -> Resp {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let request = match body {
                Some(body) => self.client.post(&url).json(body),
                None => self.client.get(&url),
            };
            let response = request
                .bearer_auth(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {}", error_chain(&e)));
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.expect("a JSON body");
            Resp { status, body }
        })
    }

    /// `GET path` with a key: the status and the value of header `name`, if any.
    #[allow(dead_code)] // used by admin.rs only
    pub fn get_header(&self, path: &str, key: &str, name: &str) -> (u16, Option<String>) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let response = self
                .client
                .get(&url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {}", error_chain(&e)));
            let value = response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (response.status().as_u16(), value)
        })
    }

    /// Sends SIGTERM with `kill -TERM PID` and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = wait_timeout(&mut self.child, Duration::from_secs(20));
        status.unwrap_or_else(|| panic!("serve ignored SIGTERM: {}", self.log_text()))
    }

    /// SIGKILL (`kill -9`), at once, and reaps the process.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            self.keep_log();
        }
    }
}

impl Server {
    /// Keeps the server's log of a failed test: printed with the test's output, and
    /// copied out of its temporary directory (removed next) into
    /// `target/tmp/failed-serve-logs/`.
    fn keep_log(&self) {
        let text = self.log_text();
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("failed-serve-logs");
        let name = self
            .log
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "serve.log".into());
        let copy = kept.join(format!("{}-{name}", std::process::id()));
        let saved = std::fs::create_dir_all(&kept).and_then(|()| std::fs::write(&copy, &text));
        let whereto = match saved {
            Ok(()) => copy.display().to_string(),
            Err(e) => format!("not kept: {e}"),
        };
        eprintln!(
            "--- log of headcount serve at {} ({whereto}) ---\n{text}--- end of log ---",
            self.base
        );
    }
}

/// An error and its causes, outermost first ("error sending request" alone does not
/// say whether the connection was refused, reset or closed without an answer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// The points of `/segments/data_series` for segment `id`: (day, size), oldest first.
#[allow(dead_code)] // used by backup.rs only
pub fn series(server: &Server, key: &str, id: &str, length: u32) -> Vec<(String, u64)> {
    let answer = server.call(
        &format!("/segments/data_series?segment_id={id}&length={length}"),
        key,
        None,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| {
            (
                p["time"].as_str().expect("time").to_string(),
                p["size"].as_u64().expect("size"),
            )
        })
        .collect()
}

/// The ids of the live segments of `/segments/list` (its first page), in its order.
#[allow(dead_code)] // used by backup.rs only
pub fn segment_ids(server: &Server, key: &str) -> Vec<String> {
    let listed = server.call("/segments/list", key, None);
    assert_eq!(listed.status, 200, "{listed:?}");
    listed.body["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}
