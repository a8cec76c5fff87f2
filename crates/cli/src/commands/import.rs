//! `headcount import`: NDJSON bulk import, one `/users/track` body per line.
//!
//! A line is applied whole or not at all: a line with any invalid object is reported
//! with its number and reason and skipped (`--strict`: the import stops there).
//! Valid lines are committed in large transactions, in input order; the last commit
//! makes it durable.

use super::{CmdResult, open_existing, workspace};
use crate::args::ImportArgs;
use crate::output::count;
use crate::progress;
use headcount_model::{Fact, FactKind, UserKey, WorkspaceId};
use headcount_server::ingest::{TrackOptions, read_track_text};
use headcount_store::{EncodedFacts, Store, StoreError};
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

/// Bytes of input read as one block: a block is parsed and encoded by one thread.
const BLOCK_BYTES: u64 = 4 << 20;
/// Facts committed together (one transaction, one disk sync) at least.
const COMMIT_FACTS: usize = 200_000;

/// What an import read, and what it rejected.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    lines: u64,
    rejected: u64,
    attributes: u64,
    events: u64,
    purchases: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.lines += other.lines;
        self.rejected += other.rejected;
        self.attributes += other.attributes;
        self.events += other.events;
        self.purchases += other.purchases;
    }
}

/// Whole lines of one input, in input order (`seq` across all inputs).
struct Block {
    seq: u64,
    input: usize,
    first_line: u64,
    bytes: Vec<u8>,
}

/// A block parsed and encoded: what the writer commits and reports, in `seq` order.
struct Parsed {
    seq: u64,
    input: usize,
    facts: EncodedFacts,
    tally: Tally,
    /// Rejected lines: number and reason.
    rejected: Vec<(u64, String)>,
    /// `--strict` met a bad line: `facts` hold the lines before it, and nothing after
    /// this block is imported.
    stop: bool,
}

/// Runs an import.
///
/// Three stages overlap: this thread reads blocks of whole lines, one worker per core
/// parses a block and encodes its facts, and a writer thread commits the encoded
/// blocks in input order (so that the order of facts, and the report of rejected
/// lines, are those of the input).
pub fn run(dir: &Path, args: ImportArgs) -> CmdResult {
    let store = open_existing(dir)?;
    let ws = workspace(&store, dir, &args.workspace)?;
    let options = TrackOptions {
        max_objects: None,
        allow_attribute_time: true,
        now: headcount_server::state::now(),
    };
    // Every file is opened before anything is imported: a missing one is an error that
    // leaves the store untouched, rather than one met after earlier files were partly
    // committed.
    let mut inputs: Vec<(String, Box<dyn Read + Send>)> = Vec::with_capacity(args.files.len());
    let mut total = Some(0u64);
    for path in &args.files {
        if path.as_os_str() == "-" {
            // Not locked here: a second `-` would deadlock on the lock of the first.
            inputs.push(("-".into(), Box::new(std::io::stdin())));
            total = None;
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            total = total.map(|t| t + size);
            inputs.push((path.display().to_string(), Box::new(file)));
        }
    }
    // stdin has no length: then no bar and no ETA, only what was read and how fast.
    let bar = total.map_or_else(stream_spinner, progress::bytes);
    let started = Instant::now();
    let (tally, stopped) = import(
        &store,
        ws.id,
        inputs,
        &options,
        args.strict,
        &bar,
        BLOCK_BYTES,
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    summarize(&tally, seconds, stopped);
    if args.json {
        let objects = tally.attributes + tally.events + tally.purchases;
        let summary = serde_json::json!({
            "lines": tally.lines,
            "imported_lines": tally.lines - tally.rejected,
            "rejected_lines": tally.rejected,
            "attributes": tally.attributes,
            "events": tally.events,
            "purchases": tally.purchases,
            "seconds": seconds,
            "objects_per_second": if seconds > 0.0 { objects as f64 / seconds } else { 0.0 },
            "stopped": stopped,
        });
        println!("{summary}");
    }
    Ok(if tally.rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Imports `inputs` into workspace `ws` in blocks of about `block_bytes`; returns
/// what was read and whether `strict` stopped it at a bad line.
fn import(
    store: &dyn Store,
    ws: WorkspaceId,
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    options: &TrackOptions,
    strict: bool,
    bar: &ProgressBar,
    block_bytes: u64,
) -> Result<(Tally, bool), String> {
    let names: Vec<String> = inputs.iter().map(|(name, _)| name.clone()).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let (to_workers, blocks) = sync_channel::<Block>(workers);
    let blocks = Mutex::new(blocks);
    let (to_writer, parsed) = sync_channel::<Parsed>(workers);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (blocks, to_writer, stop) = (&blocks, to_writer.clone(), &stop);
            scope.spawn(move || {
                loop {
                    let next = blocks.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(block) = next else { break };
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    if to_writer.send(parse_block(block, options, strict)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(to_writer);
        let writer = {
            let (bar, names, stop) = (bar.clone(), &names, &stop);
            scope.spawn(move || write_blocks(store, ws, parsed, &bar, names, stop))
        };
        let read = read_blocks(inputs, &to_workers, bar, &stop, block_bytes);
        drop(to_workers);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read?;
        written.map_err(|e| e.to_string())
    })
}

/// Reads every input into blocks of whole lines for the workers, until the end or
/// until `stop`.
fn read_blocks(
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    to_workers: &SyncSender<Block>,
    bar: &ProgressBar,
    stop: &AtomicBool,
    block_bytes: u64,
) -> Result<(), String> {
    let mut seq = 0;
    for (input, (name, reader)) in inputs.into_iter().enumerate() {
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line = 1u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut bytes = Vec::with_capacity(block_bytes as usize + (64 << 10));
            let read = (&mut reader)
                .take(block_bytes)
                .read_to_end(&mut bytes)
                .and_then(|n| {
                    // Finish the last line, unless the input ended.
                    if n as u64 == block_bytes && bytes.last() != Some(&b'\n') {
                        reader.read_until(b'\n', &mut bytes)?;
                    }
                    Ok(())
                });
            read.map_err(|e| format!("{name}: reading after line {line}: {e}"))?;
            if bytes.is_empty() {
                break;
            }
            bar.inc(bytes.len() as u64);
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            let block = Block {
                seq,
                input,
                first_line: line,
                bytes,
            };
            seq += 1;
            line += lines;
            if to_workers.send(block).is_err() {
                // Every worker is gone: the writer stopped, and says why.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parses a block's lines (a line is all valid or rejected whole) and encodes the
/// facts of the valid ones.
fn parse_block(block: Block, options: &TrackOptions, strict: bool) -> Parsed {
    let mut tally = Tally::default();
    let mut facts: Vec<(UserKey, Fact)> = Vec::new();
    let mut rejected = Vec::new();
    let mut stop = false;
    let text = block.bytes.strip_suffix(b"\n").unwrap_or(&block.bytes);
    for (n, bytes) in text.split(|&b| b == b'\n').enumerate() {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        tally.lines += 1;
        let read = match std::str::from_utf8(bytes) {
            Ok(line) => read_line(line, options),
            // A line that is not UTF-8 is a bad line like any other.
            Err(e) => Err(format!("the line is not valid UTF-8: {e}")),
        };
        match read {
            Ok(read) => {
                for (_, fact) in &read {
                    match fact.kind {
                        FactKind::Attributes(_) => tally.attributes += 1,
                        FactKind::Event { .. } => tally.events += 1,
                        FactKind::Purchase { .. } => tally.purchases += 1,
                        // Made only by /users/delete, never read from a line.
                        FactKind::Deletion => {}
                    }
                }
                facts.extend(read);
            }
            Err(reason) => {
                tally.rejected += 1;
                rejected.push((block.first_line + n as u64, reason));
                if strict {
                    stop = true;
                    break;
                }
            }
        }
    }
    Parsed {
        seq: block.seq,
        input: block.input,
        facts: EncodedFacts::encode(&facts),
        tally,
        rejected,
        stop,
    }
}

/// Commits parsed blocks in input order, at least [`COMMIT_FACTS`] facts per
/// transaction, and reports rejected lines; sets `stop` on an error or when
/// `--strict` met a bad line. Returns what was imported, and whether it stopped early.
fn write_blocks(
    store: &dyn Store,
    ws: WorkspaceId,
    parsed: Receiver<Parsed>,
    bar: &ProgressBar,
    names: &[String],
    stop: &AtomicBool,
) -> Result<(Tally, bool), StoreError> {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
    let mut next = 0;
    let mut pending: Vec<(WorkspaceId, EncodedFacts)> = Vec::new();
    let mut pending_facts = 0;
    let mut result = Ok(());
    let mut stopped = false;
    for block in &parsed {
        waiting.insert(block.seq, block);
        while !stopped && result.is_ok() {
            let Some(block) = waiting.remove(&next) else {
                break;
            };
            next += 1;
            tally.add(&block.tally);
            for (line, reason) in &block.rejected {
                let name = names.get(block.input).map_or("", String::as_str);
                bar.suspend(|| eprintln!("{name}:{line}: rejected: {reason}"));
            }
            pending_facts += block.facts.len();
            pending.push((ws, block.facts));
            stopped = block.stop;
            if pending_facts >= COMMIT_FACTS || stopped {
                result = store.append_encoded(&pending);
                pending.clear();
                pending_facts = 0;
            }
            let seconds = started.elapsed().as_secs_f64();
            let rate = if seconds > 0.0 {
                tally.lines as f64 / seconds
            } else {
                0.0
            };
            bar.set_message(format!("{} rows ({rate:.0} rows/s)", tally.lines));
        }
        if stopped || result.is_err() {
            // Stop the reader and the workers, and drain what they still send.
            stop.store(true, Ordering::Relaxed);
        }
    }
    if result.is_ok() && !pending.is_empty() {
        result = store.append_encoded(&pending);
    }
    result.map(|()| (tally, stopped))
}

/// A spinner over bytes of an input of unknown length, with a message for row counts.
fn stream_spinner() -> ProgressBar {
    let bar = ProgressBar::no_length();
    let template = "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Reads one line into facts, or the reason to reject it whole.
fn read_line(line: &str, options: &TrackOptions) -> Result<Vec<(UserKey, Fact)>, String> {
    let track = read_track_text(line, options)?;
    if let Some(first) = track.errors.first() {
        return Err(format!(
            "{}[{}]: {}",
            first.array, first.index, first.reason
        ));
    }
    Ok(track.facts)
}

fn summarize(t: &Tally, seconds: f64, stopped: bool) {
    let objects = t.attributes + t.events + t.purchases;
    let rate = if seconds > 0.0 {
        objects as f64 / seconds
    } else {
        0.0
    };
    eprintln!(
        "imported {} of {}: {}, {}, {} in {seconds:.1}s ({rate:.0} objects/s); {} rejected{}",
        t.lines - t.rejected,
        count(t.lines, "line", "lines"),
        count(t.attributes, "attribute object", "attribute objects"),
        count(t.events, "event", "events"),
        count(t.purchases, "purchase", "purchases"),
        count(t.rejected, "line", "lines"),
        if stopped {
            " (stopped at the first, --strict)"
        } else {
            ""
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_store::{NewWorkspace, SqliteStore};
    use std::io::Cursor;

    /// 300 lines, one event each named after its line number; line 200 is bad, line
    /// 100 is blank.
    fn input() -> Vec<u8> {
        let mut text = String::new();
        for n in 1..=300 {
            match n {
                100 => text.push_str("  \n"),
                200 => text.push_str("{\"events\": [{\"name\": \"no user\"}]}\n"),
                _ => text.push_str(&format!(
                    "{{\"events\":[{{\"external_id\":\"u{}\",\"name\":\"e{n}\",\"time\":\"2024-01-01T00:00:00Z\"}}]}}\n",
                    n % 7
                )),
            }
        }
        text.into_bytes()
    }

    fn imported(block_bytes: u64, strict: bool) -> (Tally, bool, Vec<String>) {
        let dir = std::env::temp_dir().join(format!(
            "headcount-import-{}-{block_bytes}-{strict}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).expect("store");
        let ws = store
            .create_workspace(&NewWorkspace {
                name: "t".into(),
                time_zone: "UTC".into(),
                export_limit: 1,
                track_limit: 1,
            })
            .expect("workspace");
        let options = TrackOptions {
            max_objects: None,
            allow_attribute_time: true,
            now: headcount_server::state::now(),
        };
        let inputs: Vec<(String, Box<dyn Read + Send>)> =
            vec![("in".into(), Box::new(Cursor::new(input())))];
        let (tally, stopped) = import(
            &store,
            ws.id,
            inputs,
            &options,
            strict,
            &ProgressBar::hidden(),
            block_bytes,
        )
        .expect("import");
        let mut names = Vec::new();
        store
            .scan_facts(ws.id, &mut |_, fact| {
                if let FactKind::Event { name, .. } = fact.kind {
                    names.push(name);
                }
            })
            .expect("scan");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        (tally, stopped, names)
    }

    #[test]
    fn blocks_of_any_size_keep_the_input_order_and_strict_stops_at_the_bad_line() {
        let all: Vec<String> = (1..=300)
            .filter(|n| *n != 100 && *n != 200)
            .map(|n| format!("e{n}"))
            .collect();
        // One line per block (shorter than a line), a few lines, everything at once.
        for block_bytes in [10, 1000, 1 << 20] {
            let (tally, stopped, names) = imported(block_bytes, false);
            assert_eq!((tally.lines, tally.rejected, tally.events), (299, 1, 298));
            assert!(!stopped);
            assert_eq!(names, all, "block size {block_bytes}");

            let (tally, stopped, names) = imported(block_bytes, true);
            assert_eq!((tally.lines, tally.rejected, tally.events), (199, 1, 198));
            assert!(stopped);
            assert_eq!(names, all[..198], "block size {block_bytes}");
        }
    }
}
