//! Throwaway ClickHouse servers for tests (feature `testing`): a cluster of shards,
//! each a `clickhouse-server` process on free loopback ports with its configuration,
//! users, data and temporary files in one temporary directory, and a `remote_servers`
//! entry naming the cluster of all of them. Stopped, and the directory removed, on drop.
//!
//! No ZooKeeper is configured: nothing here may use replicated tables or `ON CLUSTER`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server.
pub const SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";
/// The cluster name every server's `remote_servers` defines.
pub const CLUSTER: &str = "headcount_test";
/// How to get the server when it is missing.
pub const INSTALL_HINT: &str = "apt-get install -y clickhouse-server";

/// Longest wait for a server to answer `SELECT 1`.
const STARTUP: Duration = Duration::from_secs(60);

/// One started server.
pub struct Shard {
    /// Its HTTP interface, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its native TCP port (what `remote_servers` names).
    pub tcp_port: u16,
    child: Child,
    dir: PathBuf,
}

impl Shard {
    /// Kills the server at once (as a crash would), keeping its data directory.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same ports and data after [`Shard::kill`].
    ///
    /// # Errors
    /// Why it did not start.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.child = spawn(&self.dir)?;
        wait_ready(&self.url, &mut self.child, &self.dir)
    }
}

/// A cluster of shards that stops on drop.
pub struct Cluster {
    /// The shards, in the order of the cluster definition.
    pub shards: Vec<Shard>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts `shards` servers forming cluster [`CLUSTER`] (one replica per shard).
    ///
    /// # Errors
    /// A message saying how to install the server when it is missing, or why a server
    /// did not start (with the end of its error log).
    pub fn start(shards: usize) -> Result<Cluster, String> {
        Cluster::start_weighted(&vec![1; shards])
    }

    /// Starts one shard per weight, the cluster's `remote_servers` giving each its
    /// `<weight>` (how many of every sum-of-weights users the `Distributed` table
    /// puts there).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_weighted(weights: &[u32]) -> Result<Cluster, String> {
        if !Path::new(SERVER_BINARY).exists() {
            return Err(format!(
                "{SERVER_BINARY} is missing: install Debian's package ({INSTALL_HINT})"
            ));
        }
        // A port found free may be taken by a parallel test before the server binds
        // it: such a server exits, and the cluster starts again on other ports.
        let mut attempt = 1;
        loop {
            match Cluster::start_once(weights) {
                Err(e) if attempt < 3 && e.contains("clickhouse-server exited") => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn start_once(weights: &[u32]) -> Result<Cluster, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "headcount-clickhouse-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cluster = Cluster {
            shards: Vec::new(),
            dir: dir.clone(),
        };
        let ports: Vec<[u16; 3]> = (0..weights.len())
            .map(|_| Ok([free_port()?, free_port()?, free_port()?]))
            .collect::<Result<_, String>>()?;
        let mut remote = String::new();
        for ([_, tcp, _], weight) in ports.iter().zip(weights) {
            remote.push_str(&format!(
                "<shard><weight>{weight}</weight><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
            ));
        }
        for (i, [http, tcp, interserver]) in ports.iter().enumerate() {
            let shard_dir = dir.join(format!("shard{i}"));
            write_config(&shard_dir, *http, *tcp, *interserver, &remote)?;
            let child = spawn(&shard_dir)?;
            cluster.shards.push(Shard {
                url: format!("http://127.0.0.1:{http}"),
                tcp_port: *tcp,
                child,
                dir: shard_dir,
            });
        }
        for shard in &mut cluster.shards {
            wait_ready(&shard.url, &mut shard.child, &shard.dir)?;
        }
        Ok(cluster)
    }

    /// The shards' HTTP URLs.
    pub fn urls(&self) -> Vec<String> {
        self.shards.iter().map(|s| s.url.clone()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            shard.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn write_config(
    dir: &Path,
    http: u16,
    tcp: u16,
    interserver: u16,
    remote: &str,
) -> Result<(), String> {
    for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let d = dir.display();
    let config = format!(
        r#"<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{interserver}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <remote_servers><{CLUSTER}>{remote}</{CLUSTER}></remote_servers>
</yandex>
"#
    );
    let users = r#"<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><max_threads>2</max_threads></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#;
    std::fs::write(dir.join("config.xml"), config).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("users.xml"), users).map_err(|e| e.to_string())
}

fn spawn(dir: &Path) -> Result<Child, String> {
    Command::new(SERVER_BINARY)
        .arg(format!(
            "--config-file={}",
            dir.join("config.xml").display()
        ))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {SERVER_BINARY}: {e} ({INSTALL_HINT})"))
}

fn wait_ready(url: &str, child: &mut Child, dir: &Path) -> Result<(), String> {
    let http = crate::http::Http::parse(url).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(answer) = http.post(&[], "SELECT 1", b"")
            && answer.starts_with(b"1")
        {
            return Ok(());
        }
        let log = || std::fs::read_to_string(dir.join("log/error.log")).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            let text = log();
            let tail: String = text.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            return Err(format!(
                "clickhouse-server exited ({status}) at {url}:\n{tail}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "clickhouse-server at {url} did not answer within {STARTUP:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
