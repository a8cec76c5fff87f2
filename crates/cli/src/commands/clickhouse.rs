//! `headcount clickhouse init`, and what the other commands do for a workspace of
//! engine `clickhouse`: `import` writes its facts to ClickHouse, `eval` sizes its
//! filters there.

use super::CmdResult;
use crate::args::{ClickHouseArgs, ClickhouseCmd, ImportArgs};
use headcount_clickhouse::{Batch, ClickHouse, Config, SeqClock};
use headcount_model::{Filter, SegmentId, Timestamp};
use headcount_service::ingest::TrackOptions;
use headcount_store::Workspace;
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Facts sent to ClickHouse in one insert.
const INSERT_FACTS: usize = 100_000;

/// Runs a `clickhouse` subcommand.
pub fn run(cmd: ClickhouseCmd) -> CmdResult {
    match cmd {
        ClickhouseCmd::Init(args) => {
            let ch = connect(&args)?;
            ch.init()?;
            eprintln!(
                "ClickHouse tables ready in database {}{}",
                args.clickhouse_database,
                args.clickhouse_cluster
                    .as_deref()
                    .map(|c| format!(" (sharded over cluster {c})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ClickHouse the arguments name; an error saying what to give when no URL is.
pub fn connect(args: &ClickHouseArgs) -> Result<ClickHouse, Box<dyn std::error::Error>> {
    if args.clickhouse_url.is_empty() {
        return Err(
            "this needs ClickHouse: give --clickhouse-url http://HOST:8123 \
                    (or set HEADCOUNT_CLICKHOUSE_URL)"
                .into(),
        );
    }
    Ok(ClickHouse::new(&Config {
        urls: args.clickhouse_url.clone(),
        database: args.clickhouse_database.clone(),
        cluster: args.clickhouse_cluster.clone(),
    })?)
}

/// `import` into a ClickHouse workspace: every line of every input, in order, as
/// facts inserted in batches; a bad line is reported and skipped (`--strict`: the
/// import stops there). Exit 2 when lines were rejected.
pub fn import(ws: &Workspace, args: &ImportArgs, options: &TrackOptions) -> CmdResult {
    let ch = connect(&args.clickhouse)?;
    let clock = SeqClock::new();
    let started = Instant::now();
    let (mut lines, mut rejected, mut facts) = (0u64, 0u64, 0u64);
    let mut batch = Batch::new();
    let mut in_batch = 0;
    let mut stopped = false;
    // Where the last acknowledged insert ended, for the message of a failed one.
    let mut acknowledged = String::from("nothing");
    'inputs: for path in &args.files {
        let name = path.display().to_string();
        let reader: Box<dyn BufRead> = if name == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot open {name}: {e}"))?;
            Box::new(BufReader::new(file))
        };
        for (number, line) in (1u64..).zip(reader.lines()) {
            let line = line.map_err(|e| format!("{name}:{number}: cannot read: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            lines += 1;
            match super::import::read_line(&line, options) {
                Ok(read) => {
                    for (user, fact) in &read {
                        batch.push(ws.id.0, user, fact, clock.next());
                    }
                    facts += read.len() as u64;
                    in_batch += read.len();
                }
                Err(reason) => {
                    rejected += 1;
                    eprintln!("{name}:{number}: rejected: {reason}");
                    if args.strict {
                        stopped = true;
                        break 'inputs;
                    }
                }
            }
            if in_batch >= INSERT_FACTS {
                ch.insert(&batch)
                    .map_err(|e| not_acknowledged(e, &acknowledged))?;
                acknowledged = format!("{name} up to line {number}");
                batch = Batch::new();
                in_batch = 0;
            }
        }
    }
    if !batch.is_empty() {
        ch.insert(&batch)
            .map_err(|e| not_acknowledged(e, &acknowledged))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        facts as f64 / seconds
    } else {
        0.0
    };
    eprintln!(
        "imported {} lines ({rejected} rejected), {facts} facts into ClickHouse in {seconds:.1} s ({rate:.0} facts/s)",
        lines - rejected
    );
    if args.json {
        let summary = serde_json::json!({
            "lines": lines,
            "imported_lines": lines - rejected,
            "rejected_lines": rejected,
            "facts": facts,
            "seconds": seconds,
            "objects_per_second": rate,
            "stopped": stopped,
        });
        println!("{summary}");
    }
    Ok(if rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Sizes by instant, then by filter.
type Grid = Vec<Vec<u64>>;

/// The error of an insert that failed, saying what was acknowledged before it: a
/// second run of the same import would insert those lines again.
fn not_acknowledged(e: headcount_clickhouse::Error, acknowledged: &str) -> String {
    format!(
        "{e}; acknowledged before it: {acknowledged} (the lines after it were not imported; \
         import only those again, or they will be counted twice)"
    )
}

/// `eval` for a ClickHouse workspace: `sizes[i][j]` of `filters[j]` as of `ends[i]`,
/// and the number of users that exist as of `now`.
pub fn sizes(
    args: &ClickHouseArgs,
    ws: &Workspace,
    filters: &[&Filter],
    by_id: &HashMap<SegmentId, Filter>,
    ends: &[Timestamp],
    tz: &TimeZone,
    now: Timestamp,
) -> Result<(Grid, u64), Box<dyn std::error::Error>> {
    let ch = connect(args)?;
    let resolve = |id: SegmentId| by_id.get(&id).cloned().map(Arc::new);
    let grid = ch.size_grid(ws.id.0, filters, &resolve, ends, tz)?;
    let everyone = Filter::All(Vec::new());
    let users = ch.size_grid(ws.id.0, &[&everyone], &resolve, &[now], tz)?;
    let users = users.first().and_then(|r| r.first()).copied().unwrap_or(0);
    Ok((grid, users))
}
