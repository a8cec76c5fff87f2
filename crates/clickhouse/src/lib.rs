//! ClickHouse as headcount's distributed engine: a workspace's facts live in
//! ClickHouse, sharded by a hash of the user across the servers of a cluster, and
//! segment sizes are computed there by SQL compiled from the filters ([`sql`]), with
//! exactly the numbers of the memory engine.
//!
//! - [`ClickHouse::init`] creates the database and tables (idempotent): on a cluster a
//!   `ReplacingMergeTree` table `facts_local` (and `deletions_local`) on every shard and
//!   `Distributed` tables `facts` and `deletions` over them, sharded by
//!   `cityHash64(workspace, user)`; without a cluster, plain tables `facts` and
//!   `deletions`.
//! - [`ClickHouse::insert`] writes a batch of facts in `RowBinary` ([`rows`]), in one
//!   synchronous insert per table: once it returns, every shard holds its rows.
//! - [`ClickHouse::shards`] gives the shards to insert into directly, each its own
//!   rows, users placed exactly as the `Distributed` table places them ([`shards`],
//!   [`cityhash`]): what `import` does, in parallel.
//! - [`ClickHouse::size_grid`] sizes many segments as of many instants with one scan
//!   per chunk of instants, in as many passes over parts of the users (ranges of
//!   random buckets, the facts being ordered by bucket) as keep each server's
//!   per-user states within a quarter of its `max_memory_usage` ([`pass_bytes`]).
//!
//! Synchronous: the server calls it from blocking threads.

pub mod cityhash;
pub mod error;
pub mod http;
pub mod rows;
pub mod shards;
pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use rows::{Batch, Mark, SeqClock, Unsequenced};
pub use shards::{Routed, RoutedMark, Router, Shards};

use headcount_model::{Filter, Timestamp};
use http::Http;
use jiff::tz::TimeZone;

/// Default database name.
pub const DEFAULT_DATABASE: &str = "headcount";
/// At most this many instants per query (each user is repeated once per instant it
/// exists at, and each bound is an array of one element per instant); more are split
/// into several queries, each a scan.
const INSTANTS_PER_QUERY: usize = 128;

/// The memory the per-user states of one sizing query may take on a server, as
/// [`sql::SizeQuery::state_bytes`] estimates it, when the server sets no
/// `max_memory_usage` (a quarter of ClickHouse's default, 10 GB): beyond, the users
/// are sized in several passes, each a part of the buckets. A day of 100 segments
/// keeps about 3.2 KB per user, so a pass of 2.5 GB sizes some 780,000 users of a
/// server.
pub const DEFAULT_PASS_BYTES: u64 = 2_500_000_000;

/// The memory a pass may take on a server whose queries may take `max_memory_usage`
/// bytes (0: no limit): a quarter, the rest left for the query's other needs (~0.3 GB
/// measured) and for other queries; [`DEFAULT_PASS_BYTES`] without a limit.
pub fn pass_bytes(max_memory_usage: u64) -> u64 {
    match max_memory_usage {
        0 => DEFAULT_PASS_BYTES,
        limit => (limit / 4).max(1),
    }
}

/// One bucket in this many is read to estimate a workspace's users per server.
const SAMPLE_EVERY: u16 = 100;

/// The largest number of users and of rows of a workspace on any one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Load {
    users: u64,
    rows: u64,
    /// [`pass_bytes`] of the first server's `max_memory_usage`.
    pass_bytes: u64,
}

/// Where the facts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTP URLs: the first is queried; DDL (`init`) runs on every one of them. On a
    /// cluster, list every shard's server (ClickHouse 18.16 needs ZooKeeper for
    /// `ON CLUSTER`, which headcount does not require).
    pub urls: Vec<String>,
    /// The database (letters, digits, `_`).
    pub database: String,
    /// The cluster of the servers' `remote_servers` to shard over, if any.
    pub cluster: Option<String>,
}

/// A connection to the ClickHouse servers of one [`Config`].
#[derive(Debug, Clone)]
pub struct ClickHouse {
    servers: Vec<Http>,
    database: String,
    cluster: Option<String>,
    /// Bits of a packed count in a query of one instant ([`sql::size_query`]).
    count_bits: u32,
    /// Passes of every sizing query, when set (tests); by [`pass_bytes`] otherwise.
    passes: Option<u16>,
}

impl ClickHouse {
    /// Checks the configuration (nothing is contacted).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad URL, database or cluster name.
    pub fn new(config: &Config) -> Result<ClickHouse> {
        let servers = config
            .urls
            .iter()
            .map(|u| Http::parse(u.trim()))
            .collect::<Result<Vec<_>>>()?;
        if servers.is_empty() {
            return Err(Error::Invalid("no ClickHouse URL given".into()));
        }
        let name_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok(&config.database) {
            return Err(Error::Invalid(format!(
                "ClickHouse database {:?}: use letters, digits and _",
                config.database
            )));
        }
        if let Some(cluster) = &config.cluster
            && !name_ok(cluster)
        {
            return Err(Error::Invalid(format!(
                "ClickHouse cluster {cluster:?}: use letters, digits and _"
            )));
        }
        Ok(ClickHouse {
            count_bits: sql::COUNT_BITS,
            passes: None,
            servers,
            database: config.database.clone(),
            cluster: config.cluster.clone(),
        })
    }

    /// The tables queries read.
    pub fn tables(&self) -> sql::Tables {
        let db = &self.database;
        sql::Tables {
            facts: format!("{db}.facts"),
            local_deletions: match self.cluster {
                Some(_) => format!("{db}.deletions_local"),
                None => format!("{db}.deletions"),
            },
            any_deletions: true,
        }
    }

    /// Runs one query on the first server; the answer as text.
    ///
    /// # Errors
    /// As [`Http::post`].
    pub fn query(&self, sql: &str) -> Result<String> {
        let answer = self.servers[0].post(&[("wait_end_of_query", "1")], sql, b"")?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Creates the database and tables where missing (see the crate's documentation).
    ///
    /// # Errors
    /// A server unreachable or refusing a statement; on a cluster, a cluster the first
    /// server does not define, or fewer URLs than the cluster has shards.
    pub fn init(&self) -> Result<()> {
        let db = &self.database;
        let facts_columns = "workspace Int64, user String, bucket UInt16, time Int64, seq UInt64, \
             sub UInt16, type UInt8, name String, kind UInt8, s String, n Float64, d Int64, \
             dn UInt16, a Array(String)";
        let deletion_columns = "workspace Int64, user String, seq UInt64";
        let engine = |key: &str| format!("ENGINE = ReplacingMergeTree() ORDER BY ({key})");
        let local_suffix = if self.cluster.is_some() { "_local" } else { "" };
        let local = [
            format!("CREATE DATABASE IF NOT EXISTS {db}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.facts{local_suffix} ({facts_columns}) {}",
                engine("workspace, bucket, user, seq, sub")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.deletions{local_suffix} ({deletion_columns}) {}",
                engine("workspace, user, seq")
            ),
        ];
        if let Some(cluster) = &self.cluster {
            let shards = self.query(&format!(
                "SELECT count(DISTINCT shard_num) FROM system.clusters WHERE cluster = {}",
                sql::quote(cluster)
            ))?;
            let shards: usize = shards.trim().parse().unwrap_or(0);
            if shards == 0 {
                return Err(Error::Invalid(format!(
                    "the ClickHouse server at {} defines no cluster {cluster:?} in remote_servers",
                    self.servers[0].shown()
                )));
            }
            if shards > self.servers.len() {
                return Err(Error::Invalid(format!(
                    "cluster {cluster:?} has {shards} shards but {} ClickHouse URL(s) were given: \
                     list the HTTP URL of every shard, comma-separated, to create their tables",
                    self.servers.len()
                )));
            }
        }
        for server in &self.servers {
            for statement in &local {
                server.post(&[], statement, b"")?;
            }
            if let Some(cluster) = &self.cluster {
                for table in ["facts", "deletions"] {
                    let columns = if table == "facts" {
                        facts_columns
                    } else {
                        deletion_columns
                    };
                    server.post(
                        &[],
                        &format!(
                            "CREATE TABLE IF NOT EXISTS {db}.{table} ({columns}) ENGINE = \
                             Distributed({cluster}, {db}, {table}_local, cityHash64(workspace, user))"
                        ),
                        b"",
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Inserts a batch; once this returns, ClickHouse holds every row (on its shard).
    ///
    /// # Errors
    /// A server unreachable ([`Error::is_unavailable`]) or refusing the insert; the
    /// batch may then be partly written: inserting it again with the same `seq`s
    /// is harmless (rows are identified by workspace, user, `seq` and position).
    pub fn insert(&self, batch: &Batch) -> Result<()> {
        let db = &self.database;
        let settings = [("insert_distributed_sync", "1")];
        if batch.fact_rows > 0 {
            self.servers[0].post(
                &settings,
                &format!("INSERT INTO {db}.facts FORMAT RowBinary\n"),
                &batch.facts,
            )?;
        }
        if batch.deletion_rows > 0 {
            self.servers[0].post(
                &settings,
                &format!("INSERT INTO {db}.deletions FORMAT RowBinary\n"),
                &batch.deletions,
            )?;
        }
        Ok(())
    }

    /// `sizes[i][j]`: the size of `targets[j]` as of `instants[i]` in `workspace`,
    /// days in `tz`; `resolve` gives the filters named by `in_segment`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unknown segment or a cycle; a server unreachable or
    /// refusing the query.
    pub fn size_grid(
        &self,
        workspace: i64,
        targets: &[&Filter],
        resolve: &sql::Resolve<'_>,
        instants: &[Timestamp],
        tz: &TimeZone,
    ) -> Result<Vec<Vec<u64>>> {
        let regex_values = self.regex_values(workspace, targets, resolve)?;
        let mut tables = self.tables();
        // A small table: without any deletion the queries skip the join with it (a
        // deletion written meanwhile is one the sizes could have missed anyway).
        let deletions = self.servers[0].post(
            &[("wait_end_of_query", "1")],
            &format!(
                "SELECT count() FROM {}.deletions WHERE workspace = {workspace}",
                self.database
            ),
            b"",
        )?;
        tables.any_deletions = String::from_utf8_lossy(&deletions).trim() != "0";
        let load = match self.passes {
            Some(_) => Load::default(),
            None => self.load(workspace)?,
        };
        let mut out = Vec::with_capacity(instants.len());
        let packed = sql::Sizing {
            workspace,
            tables: &tables,
            targets,
            resolve,
            regex_values: &regex_values,
            tz,
            pack_bits: Some(self.count_bits),
            buckets: sql::Buckets::ALL,
        };
        for part in instants.chunks(INSTANTS_PER_QUERY) {
            let counts = match self.sizes_in_passes(&packed, part, load)? {
                Some(counts) => counts,
                // A user with more rows than a packed count holds: the counts one by one.
                None => {
                    let one_by_one = sql::Sizing {
                        pack_bits: None,
                        ..packed
                    };
                    self.sizes_in_passes(&one_by_one, part, load)?
                        .ok_or_else(|| {
                            Error::Invalid("counts not packed reported an overflow".into())
                        })?
                }
            };
            out.extend(counts);
        }
        Ok(out)
    }

    /// The same, every sizing query in `passes` passes (1 to 10,000), whatever the
    /// workspace's size: for tests of the passes on small data.
    pub fn with_passes(mut self, passes: u16) -> ClickHouse {
        self.passes = Some(passes.clamp(1, sql::BUCKETS));
        self
    }

    /// The users and rows of `workspace` on its fullest server, estimated from one
    /// bucket in [`SAMPLE_EVERY`] (buckets are a hash of the user: each holds about as
    /// many users as any other).
    fn load(&self, workspace: i64) -> Result<Load> {
        let answer = self.servers[0].post(
            &[
                ("wait_end_of_query", "1"),
                ("distributed_group_by_no_merge", "1"),
            ],
            &format!(
                "SELECT uniq(user), count() FROM {}.facts WHERE workspace = {workspace} \
                 AND bucket < {}",
                self.database,
                sql::BUCKETS / SAMPLE_EVERY
            ),
            b"",
        )?;
        let limit = self.servers[0].post(
            &[("wait_end_of_query", "1")],
            "SELECT value FROM system.settings WHERE name = 'max_memory_usage'",
            b"",
        )?;
        let limit = String::from_utf8_lossy(&limit).trim().parse().unwrap_or(0);
        let mut load = Load {
            pass_bytes: pass_bytes(limit),
            ..Load::default()
        };
        for line in String::from_utf8_lossy(&answer).lines() {
            let mut numbers = line.split('\t').map(|n| n.trim().parse::<u64>());
            if let (Some(Ok(users)), Some(Ok(rows))) = (numbers.next(), numbers.next()) {
                load.users = load.users.max(users * u64::from(SAMPLE_EVERY));
                load.rows = load.rows.max(rows * u64::from(SAMPLE_EVERY));
            }
        }
        Ok(load)
    }

    /// [`ClickHouse::sizes_of`] in passes over parts of the buckets, as many as keep
    /// each pass's per-user states within `load.pass_bytes` on a server holding `load`;
    /// the counts of the passes added up.
    fn sizes_in_passes(
        &self,
        sizing: &sql::Sizing<'_>,
        part: &[Timestamp],
        load: Load,
    ) -> Result<Option<Vec<Vec<u64>>>> {
        let compile = |sizing: &sql::Sizing<'_>| {
            sql::size_query(sizing, part).map_err(|e| Error::Invalid(e.to_string()))
        };
        let whole = compile(sizing)?;
        let passes = self.passes.unwrap_or_else(|| {
            passes_for(whole.state_bytes(load.users, load.rows), load.pass_bytes)
        });
        if passes == 1 {
            return self.sizes_of(&whole, part.len(), sizing.targets.len(), (0, 1));
        }
        let mut total: Option<Vec<Vec<u64>>> = None;
        for pass in 0..passes {
            let query = compile(&sql::Sizing {
                buckets: sql::Buckets::part(pass, passes),
                ..*sizing
            })?;
            let counts = self.sizes_of(&query, part.len(), sizing.targets.len(), (pass, passes))?;
            let Some(counts) = counts else {
                return Ok(None);
            };
            match &mut total {
                None => total = Some(counts),
                Some(total) => {
                    for (sum, row) in total.iter_mut().zip(counts) {
                        for (sum, n) in sum.iter_mut().zip(row) {
                            *sum += n;
                        }
                    }
                }
            }
        }
        Ok(total)
    }

    /// The same, with packed counts of `bits` bits ([`sql::COUNT_BITS`] by default):
    /// for tests, narrow counts overflow with few rows and take the other path.
    pub fn with_count_bits(mut self, bits: u32) -> ClickHouse {
        self.count_bits = bits.clamp(1, 63);
        self
    }

    /// One [`sql::size_query`] of `instants` instants and `targets` targets run: the
    /// sizes per instant, or `None` when its packed counts may have overflowed (then
    /// ask again with `pack_bits: None`: one aggregate per count). `pass` (pass,
    /// passes) is logged with it.
    fn sizes_of(
        &self,
        query: &sql::SizeQuery,
        instants: usize,
        targets: usize,
        pass: (u16, u16),
    ) -> Result<Option<Vec<Vec<u64>>>> {
        let grouping = sql::settings(instants);
        log_query(&query.sql, instants, targets, pass, &grouping);
        let mut settings = vec![
            ("wait_end_of_query", "1"),
            ("distributed_group_by_no_merge", "1"),
            ("max_query_size", "268435456"),
            ("max_ast_elements", "10000000"),
            ("max_expanded_ast_elements", "10000000"),
        ];
        settings.extend(grouping);
        let answer = self.servers[0].post(&settings, &query.sql, b"")?;
        let text = String::from_utf8_lossy(&answer);
        let extra = usize::from(query.overflow_column);
        let mut counts =
            sql::parse_counts(&text, instants, targets + extra).map_err(Error::Invalid)?;
        if query.overflow_column {
            let overflowed = counts.iter_mut().filter_map(Vec::pop).any(|n| n > 0);
            if overflowed {
                return Ok(None);
            }
        }
        Ok(Some(counts))
    }
}

/// With `HEADCOUNT_CLICKHOUSE_SQL_LOG=FILE` in the environment, appends each sizing
/// query to `FILE` as one JSON line (`instants`, `targets`, `pass` and `passes` (the
/// counts of a chunk of instants are the sums of its passes), `settings`, `sql`):
/// bench/clickhouse.py runs the same SQL on a current ClickHouse (chDB). Failing to
/// write is ignored.
fn log_query(
    query: &str,
    instants: usize,
    targets: usize,
    (pass, passes): (u16, u16),
    settings: &[(&str, &str)],
) {
    let Some(path) = std::env::var_os("HEADCOUNT_CLICKHOUSE_SQL_LOG") else {
        return;
    };
    let mut sql = String::with_capacity(query.len() + 2);
    for c in query.chars() {
        match c {
            '"' => sql.push_str("\\\""),
            '\\' => sql.push_str("\\\\"),
            c if u32::from(c) < 0x20 => sql.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => sql.push(c),
        }
    }
    let settings: Vec<String> = settings
        .iter()
        .map(|(name, value)| format!(r#""{name}": "{value}""#))
        .collect();
    let line = format!(
        r#"{{"instants": {instants}, "targets": {targets}, "pass": {pass}, "passes": {passes}, "settings": {{{}}}, "sql": "{sql}"}}"#,
        settings.join(", ")
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write as _;
        let _ = writeln!(file, "{line}");
    }
}

impl ClickHouse {
    /// For each `matches` test, the distinct string values of its attribute that the
    /// pattern matches (by headcount's regex engine), when the attribute has at most
    /// [`MAX_REGEX_VALUES`] distinct strings.
    fn regex_values(
        &self,
        workspace: i64,
        targets: &[&Filter],
        resolve: &sql::Resolve<'_>,
    ) -> Result<sql::RegexValues> {
        let mut out = sql::RegexValues::new();
        let mut strings: std::collections::HashMap<String, Option<Vec<String>>> =
            std::collections::HashMap::new();
        for (name, pattern) in sql::regex_tests(targets, resolve) {
            if sql::re2_pattern(pattern.as_str()).is_some() {
                continue;
            }
            if !strings.contains_key(&name) {
                let values = self.distinct_strings(workspace, &name)?;
                strings.insert(name.clone(), values);
            }
            if let Some(Some(values)) = strings.get(&name) {
                let matching = values
                    .iter()
                    .filter(|v| pattern.is_match(v))
                    .cloned()
                    .collect();
                out.insert((name, pattern.as_str().to_string()), matching);
            }
        }
        Ok(out)
    }

    /// The distinct string values attribute `name` ever held, or `None` beyond
    /// [`MAX_REGEX_VALUES`].
    fn distinct_strings(&self, workspace: i64, name: &str) -> Result<Option<Vec<String>>> {
        let answer = self.servers[0].post(
            &[("wait_end_of_query", "1")],
            &format!(
                "SELECT DISTINCT s FROM {}.facts WHERE workspace = {workspace} AND type = {} \
                 AND kind = {} AND name = {} LIMIT {} FORMAT RowBinary",
                self.database,
                rows::ATTRIBUTE,
                rows::STRING,
                sql::quote(name),
                MAX_REGEX_VALUES + 1
            ),
            b"",
        )?;
        let values = rows::read_strings(&answer).map_err(Error::Invalid)?;
        Ok((values.len() <= MAX_REGEX_VALUES).then_some(values))
    }
}

/// The most distinct strings of one attribute for which `matches` is decided by
/// headcount's regex engine; beyond, by ClickHouse's `match()`.
pub const MAX_REGEX_VALUES: usize = 100_000;

/// Passes that keep each one's `bytes` of per-user states within `budget`: 1 to
/// 10,000 (one bucket a pass).
fn passes_for(bytes: u64, budget: u64) -> u16 {
    let passes = bytes.div_ceil(budget.max(1)).max(1);
    passes.min(u64::from(sql::BUCKETS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_keep_each_within_the_budget() {
        assert_eq!(passes_for(0, DEFAULT_PASS_BYTES), 1);
        assert_eq!(passes_for(DEFAULT_PASS_BYTES, DEFAULT_PASS_BYTES), 1);
        assert_eq!(passes_for(DEFAULT_PASS_BYTES + 1, DEFAULT_PASS_BYTES), 2);
        // 5M users on a server, a day of 100 segments (48 aggregates): 16 GB, in passes
        // of 2 GB under the bench's 8 GB limit.
        assert_eq!(
            passes_for(5_000_000 * (128 + 64 * 48), pass_bytes(8_000_000_000)),
            8
        );
        assert_eq!(pass_bytes(0), DEFAULT_PASS_BYTES);
        assert_eq!(passes_for(u64::MAX, 1), 10_000);
    }
}
