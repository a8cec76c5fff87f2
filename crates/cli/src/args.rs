//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// headcount: exact daily segment sizes behind a Braze-compatible API.
#[derive(Debug, Parser)]
#[command(name = "headcount", version, about)]
pub struct Cli {
    /// The data directory (the embedded store). One writer at a time (serve, import,
    /// snapshot, demo); workspaces, keys, eval, backup and verify work next to it.
    #[arg(
        long,
        global = true,
        env = "HEADCOUNT_DATA_DIR",
        default_value = "./headcount-data"
    )]
    pub data_dir: PathBuf,
    /// A PostgreSQL database to use instead of the data directory, such as
    /// `postgres://user@host:5432/headcount` (its schema is created at first use).
    /// Several `serve` nodes may share it.
    #[arg(
        long,
        global = true,
        env = "HEADCOUNT_DATABASE_URL",
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// With --database: where this machine keeps its checkpoints (default: under
    /// ~/.cache/headcount/checkpoints, one directory per database).
    #[arg(
        long,
        global = true,
        env = "HEADCOUNT_CHECKPOINT_DIR",
        value_name = "DIR"
    )]
    pub checkpoint_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and list workspaces (a running server applies them within a second).
    #[command(subcommand)]
    Workspaces(WorkspacesCmd),
    /// Create, list and revoke API keys (a running server applies them within a second).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Serve the API.
    Serve(ServeArgs),
    /// Import users, events and purchases from NDJSON files (the server must be stopped).
    Import(ImportArgs),
    /// Compute and store daily sizes offline (the server must be stopped).
    Snapshot(SnapshotArgs),
    /// Create a data directory with a realistic synthetic dataset, and serve it.
    Demo(DemoArgs),
    /// Write a seeded synthetic dataset as NDJSON on stdout (for `import` and benchmarks).
    Gen(GenArgs),
    /// Size ad-hoc filters on completed days, offline, without storing anything.
    Eval(EvalArgs),
    /// Copy the data directory, consistently, to a new directory (while serving or not),
    /// or into an empty PostgreSQL database and back (`--to-database`, `--from-database`).
    Backup(BackupArgs),
    /// Read back every stored fact and check the data directory; exit 2 if damaged.
    Verify(VerifyArgs),
    /// Set up ClickHouse for workspaces created with `--engine clickhouse`.
    #[command(subcommand)]
    Clickhouse(ClickhouseCmd),
}

/// `headcount clickhouse …`
#[derive(Debug, Subcommand)]
pub enum ClickhouseCmd {
    /// Create the database and tables (idempotent): on a cluster, a MergeTree table on
    /// every shard and Distributed tables over them.
    Init(ClickHouseArgs),
}

/// Where a ClickHouse workspace's facts live.
#[derive(Debug, Clone, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL (user and password in it); on a cluster, every shard's
    /// URL, comma-separated (the first is queried; `clickhouse init` creates the
    /// tables on each).
    #[arg(long, env = "HEADCOUNT_CLICKHOUSE_URL", value_delimiter = ',')]
    pub clickhouse_url: Vec<String>,
    /// The ClickHouse database.
    #[arg(
        long,
        env = "HEADCOUNT_CLICKHOUSE_DATABASE",
        default_value = "headcount"
    )]
    pub clickhouse_database: String,
    /// The cluster of the servers' `remote_servers` to shard over.
    #[arg(long, env = "HEADCOUNT_CLICKHOUSE_CLUSTER")]
    pub clickhouse_cluster: Option<String>,
}

/// `headcount workspaces …`
#[derive(Debug, Subcommand)]
pub enum WorkspacesCmd {
    /// Create a workspace.
    Create {
        /// Its unique name.
        name: String,
        /// IANA time zone of its days.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Requests per hour shared by the export endpoints.
        #[arg(long, default_value_t = headcount_store::DEFAULT_EXPORT_LIMIT)]
        export_rate_limit: u64,
        /// `/users/track` requests per 3 seconds.
        #[arg(long, default_value_t = headcount_store::DEFAULT_TRACK_LIMIT)]
        track_rate_limit: u64,
        /// Where its facts live and are counted: `memory` (this process) or
        /// `clickhouse` (see `headcount clickhouse init`).
        #[arg(long, default_value = "memory", value_parser = ["memory", "clickhouse"])]
        engine: String,
    },
    /// List workspaces.
    List,
}

/// `headcount keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key and print it (only it, once) on stdout.
    Create {
        /// The workspace it belongs to.
        #[arg(long)]
        workspace: String,
        /// A label to recognise it by.
        #[arg(long)]
        name: String,
        /// A permission it carries (repeatable); none given: every permission.
        #[arg(long = "permission", value_name = "P")]
        permissions: Vec<String>,
        /// A client address or CIDR subnet allowed to use it (repeatable); none: any.
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ips: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Only the keys of this workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a key by its id (the first 8 characters of the key, as `keys list` shows).
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// `headcount serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Days of history computed when a segment is created or its filter changes.
    #[arg(long, default_value_t = 100)]
    pub backfill_days: u32,
    /// Most objects per array of a `/users/track` body.
    #[arg(long, default_value_t = 75)]
    pub max_track_objects: usize,
    /// Seconds a client has to send a whole request head, from its first byte.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,
    /// Seconds after which a connection with nothing sent or received (and no request
    /// being handled) is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Most connections open at once; beyond, new ones wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// This node's name, in the logs and `/readyz` (default: the host name and the
    /// port, HOST:PORT).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Count rate-limit windows in this Redis (redis://HOST:PORT[/DB]), exactly across
    /// every node sharing it; without it, in this process (saved to the store).
    #[arg(long, value_name = "URL", env = "HEADCOUNT_REDIS_URL")]
    pub redis_url: Option<String>,
    /// With counts shared by several nodes (Redis or PostgreSQL): let this node reserve
    /// up to COUNTS counts of a window ahead, for limits of 16,000 and more, so that
    /// most requests are counted without a round trip (docs/api.md, "Rate limits").
    /// Each request keeps its own count, but counts are no longer consecutive across
    /// nodes, and a window may allow up to 1.5 leases per node less than its limit.
    /// 0: every request counted in the shared store.
    #[arg(
        long,
        value_name = "COUNTS",
        default_value_t = 0,
        env = "HEADCOUNT_RATE_LIMIT_LEASE"
    )]
    pub rate_limit_lease: u64,
    /// ClickHouse, for workspaces of engine `clickhouse`.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Serve `GET /metrics` on this address, HOST:PORT, instead of on the API's
    /// (where it is then 404).
    #[arg(long, value_name = "ADDR", value_parser = listen_address)]
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written on stderr: `text` for people, `json` (one object a
    /// line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// `headcount import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The workspace to import into.
    #[arg(long)]
    pub workspace: String,
    /// NDJSON files, one `/users/track` body per line; `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Stop at the first bad line instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Also print a JSON summary on stdout (lines, rejected lines, attribute objects,
    /// events, purchases, seconds, objects per second, lines skipped as already
    /// committed, inputs refused as duplicates).
    #[arg(long)]
    pub json: bool,
    /// Import a file even if the same content (SHA-256) was imported into the
    /// workspace before.
    #[arg(long)]
    pub allow_duplicate: bool,
    /// Facts committed together at least (tests make it small to stop an import
    /// between commits).
    #[arg(long, hide = true, default_value_t = 200_000)]
    pub commit_facts: usize,
    /// ClickHouse, for a workspace of engine `clickhouse`.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// `headcount snapshot`
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The workspace.
    #[arg(long)]
    pub workspace: String,
    /// Only this segment (repeatable; default: every live segment).
    #[arg(long)]
    pub segment: Vec<String>,
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: String,
    /// Last day, YYYY-MM-DD (inclusive; must have ended).
    #[arg(long)]
    pub to: String,
    /// Recompute days already stored.
    #[arg(long)]
    pub recompute: bool,
    /// ClickHouse, for a workspace of engine `clickhouse`.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// `headcount demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Users to generate.
    #[arg(long, default_value_t = 100_000)]
    pub users: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Build the data directory and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
}

/// `headcount gen`
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Users to generate.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Seed of the generator: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of activity before --end.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Average events and purchases per user.
    #[arg(long, default_value_t = 30.0)]
    pub events_per_user: f64,
    /// The instant the data ends at (RFC 3339); default: now.
    #[arg(long)]
    pub end: Option<String>,
}

/// `headcount eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The workspace.
    #[arg(long)]
    pub workspace: String,
    /// A JSON file holding an array of {"name", "filter", "id"?}; `in_segment` may name
    /// another entry's id.
    #[arg(long)]
    pub filters: std::path::PathBuf,
    /// A completed day to size (repeatable).
    #[arg(long = "day", value_name = "YYYY-MM-DD")]
    pub days: Vec<String>,
    /// First day of a range (with --to).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day of a range (with --from), inclusive.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// ClickHouse, for a workspace of engine `clickhouse`.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// `headcount backup`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write the copy to: new, or empty. Serve it with
    /// `--data-dir DEST`.
    #[arg(required_unless_present = "to_database")]
    pub dest: Option<PathBuf>,
    /// Copy the data directory into this PostgreSQL database instead, which must be
    /// empty (exit 2 if not); serve it with `--database URL`.
    #[arg(long, value_name = "URL", conflicts_with_all = ["dest", "from_database"])]
    pub to_database: Option<String>,
    /// Copy this PostgreSQL database into DEST (a new data directory) instead of the
    /// data directory.
    #[arg(long, value_name = "URL")]
    pub from_database: Option<String>,
}

/// `headcount verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Reads `--listen`: a socket address `HOST:PORT`; a bare port or a host name is
/// refused with the form to use.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Err(format!(
            "\"{text}\" is a port, not an address: expected HOST:PORT, such as 127.0.0.1:{port}"
        ));
    }
    Err(format!(
        "\"{text}\" is not an address to listen on: expected HOST:PORT with an IP address, \
         such as 127.0.0.1:8080 (this machine only) or 0.0.0.0:8080 (every interface)"
    ))
}
