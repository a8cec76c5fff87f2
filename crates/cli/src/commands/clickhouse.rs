//! `headcount clickhouse init`, and what the other commands do for a workspace of
//! engine `clickhouse`: `import` writes its facts to ClickHouse, `eval` sizes its
//! filters there.

use super::CmdResult;
use crate::args::{ClickHouseArgs, ClickhouseCmd, ImportArgs};
use headcount_clickhouse::{Batch, ClickHouse, Config, Routed, RoutedMark, Router, SeqClock};
use headcount_model::{Filter, SegmentId, Timestamp};
use headcount_service::ingest::{LineObject, TrackOptions, read_line_objects};
use headcount_store::Workspace;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

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
///
/// Stages overlap: a thread reads blocks of lines, one worker per core parses a block
/// and encodes its facts as rows split by shard ([`Routed`]: the shard the
/// `Distributed` table would choose), this thread puts the blocks back in input order
/// and gives their facts `seq` numbers in that order, and one thread per shard inserts
/// that shard's rows into its local table while the next batch fills
/// ([`headcount_clickhouse::Shards`]). A batch is acknowledged when every shard has
/// acknowledged its part.
pub fn import(ws: &Workspace, args: &ImportArgs, options: &TrackOptions) -> CmdResult {
    let ch = connect(&args.clickhouse)?;
    let shards = ch
        .shards()
        .map_err(|e| format!("{e}; nothing was imported"))?;
    if !args.json {
        eprintln!("inserting {}", shards.describe());
    }
    let router = shards.router().clone();
    let clock = SeqClock::new();
    let started = Instant::now();
    let workers = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, 8);
    let (block_tx, block_rx) = mpsc::sync_channel::<Block>(workers * 2);
    let (parsed_tx, parsed_rx) = mpsc::sync_channel::<Parsed>(workers * 2);
    let files = args.files.clone();
    let reader = std::thread::spawn(move || read_blocks(&files, &block_tx));
    let block_rx = Arc::new(Mutex::new(block_rx));
    let workspace = ws.id.0;
    let parsers: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, tx, options, router) = (
                Arc::clone(&block_rx),
                parsed_tx.clone(),
                *options,
                router.clone(),
            );
            std::thread::spawn(move || parse_blocks(workspace, &router, &rx, &tx, &options))
        })
        .collect();
    // Only the parsers hold the blocks' receiver: when they stop early, the reader's
    // next send fails and it stops too.
    drop(block_rx);
    drop(parsed_tx);
    let inserters = Inserters::start(&shards);

    let (mut lines, mut rejected, mut facts) = (0u64, 0u64, 0u64);
    let mut batches: Vec<Batch> = (0..router.len()).map(|_| Batch::new()).collect();
    let mut rows = 0usize;
    // What each round of inserts reaches, by round number.
    let mut rounds: Vec<String> = Vec::new();
    let mut reached = String::new();
    let mut stopped = false;
    let mut insert_failed = false;
    let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
    let mut next_block = 0u64;
    'blocks: for parsed in parsed_rx.iter() {
        waiting.insert(parsed.number, parsed);
        while let Some(mut block) = waiting.remove(&next_block) {
            next_block += 1;
            lines += block.lines as u64;
            let mut last_line = block.last_line;
            for bad in &block.rejected {
                rejected += 1;
                eprintln!("{}:{}: rejected: {}", block.file, bad.line, bad.reason);
                if args.strict {
                    block.rows.truncate(&bad.mark);
                    lines -= (block.lines - bad.lines_before - 1) as u64;
                    last_line = bad.line.saturating_sub(1);
                    stopped = true;
                    break;
                }
            }
            for (batch, part) in batches.iter_mut().zip(block.rows.parts()) {
                // One reading of the clock per part, numbers in the part's order.
                let mut seq = clock.reserve(part.facts() as u64);
                batch.append(part, || {
                    seq += 1;
                    seq - 1
                });
                rows += part.rows();
            }
            facts += block.rows.facts() as u64;
            reached = format!("{} up to line {last_line}", block.file);
            if stopped {
                break 'blocks;
            }
            if rows >= INSERT_ROWS_PER_SHARD * router.len() {
                rounds.push(reached.clone());
                rows = 0;
                if !inserters.send(&mut batches) {
                    insert_failed = true;
                    break 'blocks;
                }
            }
        }
    }
    // Stops the reader and the parsers when this loop ended early.
    drop(parsed_rx);
    let read = reader
        .join()
        .unwrap_or_else(|_| Err("the reading thread panicked".into()));
    for parser in parsers {
        let _ = parser.join();
    }
    if read.is_ok() && !insert_failed && batches.iter().any(|b| !b.is_empty()) {
        rounds.push(reached);
        let _ = inserters.send(&mut batches);
    }
    inserters.finish(&rounds)?;
    if let Err(e) = read
        && !stopped
    {
        return Err(format!("{e}; nothing after the last acknowledged insert was imported").into());
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
        crate::output::line(summary);
    }
    Ok(if rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Table rows (over every shard: this many times the shards) gathered before one
/// round of inserts: a round sends every shard its rows.
const INSERT_ROWS_PER_SHARD: usize = 200_000;

/// One inserting thread per shard, each fed one batch at a time (the next one fills
/// meanwhile); every shard gets its part of each round, in order.
struct Inserters {
    senders: Vec<mpsc::SyncSender<Batch>>,
    threads: Vec<std::thread::JoinHandle<InsertOutcome>>,
}

/// What one shard's thread acknowledged: the rounds inserted, then its error if one
/// failed.
type InsertOutcome = (usize, Option<headcount_clickhouse::Error>);

impl Inserters {
    fn start(shards: &headcount_clickhouse::Shards) -> Inserters {
        let (mut senders, mut threads) = (Vec::new(), Vec::new());
        for shard in 0..shards.router().len() {
            let (tx, rx) = mpsc::sync_channel::<Batch>(1);
            let shards = shards.clone();
            senders.push(tx);
            threads.push(std::thread::spawn(move || {
                let mut done = 0;
                for batch in rx {
                    if let Err(e) = shards.insert(shard, &batch) {
                        return (done, Some(e));
                    }
                    done += 1;
                }
                (done, None)
            }));
        }
        Inserters { senders, threads }
    }

    /// Sends each shard its batch (emptying them); false when a shard's thread stopped
    /// (its insert failed).
    fn send(&self, batches: &mut [Batch]) -> bool {
        let mut ok = true;
        for (tx, batch) in self.senders.iter().zip(batches.iter_mut()) {
            ok &= tx.send(std::mem::take(batch)).is_ok();
        }
        ok
    }

    /// Waits for every insert; on a failure, the error says which lines every shard
    /// acknowledged (`rounds[i]`: where round `i` reached).
    fn finish(self, rounds: &[String]) -> Result<(), String> {
        drop(self.senders);
        let outcomes: Vec<InsertOutcome> = self
            .threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| {
                    (
                        0,
                        Some(headcount_clickhouse::Error::Invalid(
                            "an inserting thread panicked".into(),
                        )),
                    )
                })
            })
            .collect();
        let acknowledged = outcomes.iter().map(|(done, _)| *done).min().unwrap_or(0);
        match outcomes.into_iter().find_map(|(_, e)| e) {
            None => Ok(()),
            Some(e) => {
                let reached = acknowledged
                    .checked_sub(1)
                    .and_then(|i| rounds.get(i))
                    .map_or("nothing", String::as_str);
                Err(not_acknowledged(e, reached))
            }
        }
    }
}

/// Lines handed to a parsing worker at once.
const BLOCK_LINES: usize = 1_000;

/// Lines of one input, in order, for a parsing worker.
struct Block {
    /// Position among all blocks of the import.
    number: u64,
    file: Arc<str>,
    /// (line number, text) of each non-empty line.
    lines: Vec<(u64, String)>,
}

/// A block parsed and encoded.
struct Parsed {
    number: u64,
    file: Arc<str>,
    /// Non-empty lines read.
    lines: usize,
    /// The number of the block's last line.
    last_line: u64,
    rows: Routed,
    rejected: Vec<Rejected>,
}

/// A line of a block that was rejected whole.
struct Rejected {
    line: u64,
    reason: String,
    /// The block's non-empty lines before it.
    lines_before: usize,
    /// The rows of the lines before it.
    mark: RoutedMark,
}

/// Reads every input into blocks; stops when nobody receives them any more.
fn read_blocks(files: &[PathBuf], out: &mpsc::SyncSender<Block>) -> Result<(), String> {
    let mut number = 0u64;
    for path in files {
        let name: Arc<str> = path.display().to_string().into();
        let reader: Box<dyn BufRead> = if &*name == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot open {name}: {e}"))?;
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        let mut lines = Vec::with_capacity(BLOCK_LINES);
        for (line_number, line) in (1u64..).zip(reader.lines()) {
            let line = line.map_err(|e| format!("{name}:{line_number}: cannot read: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            lines.push((line_number, line));
            if lines.len() >= BLOCK_LINES {
                let block = Block {
                    number,
                    file: Arc::clone(&name),
                    lines: std::mem::replace(&mut lines, Vec::with_capacity(BLOCK_LINES)),
                };
                number += 1;
                if out.send(block).is_err() {
                    return Ok(());
                }
            }
        }
        if !lines.is_empty() {
            let block = Block {
                number,
                file: Arc::clone(&name),
                lines,
            };
            number += 1;
            if out.send(block).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parses and encodes blocks until there are none left or nobody receives them.
fn parse_blocks(
    workspace: i64,
    router: &Router,
    blocks: &Mutex<mpsc::Receiver<Block>>,
    out: &mpsc::SyncSender<Parsed>,
    options: &TrackOptions,
) {
    loop {
        let block = match blocks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(block) = block else { return };
        let mut rows = Routed::new(router);
        let mut rejected = Vec::new();
        // Borrowing the lines' text: an event of the common shape allocates nothing.
        let mut objects: Vec<LineObject<'_>> = Vec::new();
        for (index, (line, text)) in block.lines.iter().enumerate() {
            objects.clear();
            match read_line_objects(text, options, &mut objects) {
                Ok(()) => {
                    for object in &objects {
                        match object {
                            LineObject::Event {
                                external_id,
                                name,
                                time,
                            } => rows.push_event(workspace, external_id, name, *time),
                            LineObject::Fact(user, fact) => rows.push(workspace, user, fact),
                        }
                    }
                }
                Err(reason) => rejected.push(Rejected {
                    line: *line,
                    reason,
                    lines_before: index,
                    mark: rows.mark(),
                }),
            }
        }
        let parsed = Parsed {
            number: block.number,
            file: block.file,
            lines: block.lines.len(),
            last_line: block.lines.last().map_or(0, |(n, _)| *n),
            rows,
            rejected,
        };
        if out.send(parsed).is_err() {
            return;
        }
    }
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
