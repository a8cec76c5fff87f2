//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory,
//! `pg_ctl start` on a free loopback port (its unix socket in the same directory),
//! stopped and removed on drop.
//!
//! The binaries are looked up on the `PATH`, then in `/usr/lib/postgresql/*/bin`
//! (Debian's `postgresql` package). `initdb` refuses root: as root they run as the
//! `postgres` user (`runuser -u postgres --`) on a directory it owns. Missing
//! binaries fail the test with how to install them. Its durability is relaxed
//! (`fsync=off`): a crash of the machine is not what the tests exercise, a restart
//! of the server (see [`TestPostgres::restart`]) keeps every commit.
//!
//! Every call blocks and may be made from any thread, async tests included (the
//! client work runs on a thread of its own).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a test prints when PostgreSQL is missing.
pub const INSTALL_HINT: &str = "install PostgreSQL: apt-get install -y postgresql";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running throwaway PostgreSQL server.
pub struct TestPostgres {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl TestPostgres {
    /// Creates and starts a server; panics (failing the test) with the reason, such
    /// as [`INSTALL_HINT`] when PostgreSQL is not installed.
    pub fn new() -> TestPostgres {
        let bin =
            find_bin().unwrap_or_else(|| panic!("initdb and pg_ctl not found: {INSTALL_HINT}"));
        let as_postgres = is_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root =
            std::env::temp_dir().join(format!("headcount-pg-{}-{n}-{nanos}", std::process::id()));
        create_private_dir(&root);
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&root), "chown");
        }
        let port = free_port();
        let server = TestPostgres {
            root,
            bin,
            port,
            as_postgres,
        };
        server.pg(
            "initdb",
            &[
                "-D",
                &server.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        server.start();
        server
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database of this server (as the superuser `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new empty database with a unique name and answers its URL.
    pub fn create_database(&self) -> String {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("headcount_{n}");
        let admin = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        let created = std::thread::spawn(move || -> Result<(), String> {
            let mut client =
                postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| e.to_string())?;
            client.batch_execute(&sql).map_err(|e| e.to_string())
        })
        .join();
        match created {
            Ok(Ok(())) => self.url(&name),
            Ok(Err(e)) => panic!("creating database {name}: {e}"),
            Err(_) => panic!("creating database {name}: the thread panicked"),
        }
    }

    /// Starts the server (again, after [`TestPostgres::stop`]), waiting until it
    /// accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.root.display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &self.root.join("log").to_string_lossy(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server (a fast shutdown: connections are cut, commits are kept).
    pub fn stop(&self) {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    /// Stops and starts the server on the same port, as an operator's restart.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("log")).unwrap_or_default()
    }

    fn data_dir(&self) -> String {
        self.root.join("data").to_string_lossy().into_owned()
    }

    /// Runs one of the PostgreSQL binaries (as `postgres` when root), panicking with
    /// its output when it fails.
    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(&self.root);
        run(&mut command, program);
    }
}

impl Default for TestPostgres {
    fn default() -> Self {
        TestPostgres::new()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = command.args(args).current_dir(&self.root).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(command: &mut Command, what: &str) {
    match command.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{what} could not run: {e} ({INSTALL_HINT})"),
    }
}

/// The directory holding `initdb` and `pg_ctl`: on the `PATH`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn create_private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    if let Err(e) = builder.create(dir) {
        panic!("creating {}: {e}", dir.display());
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
