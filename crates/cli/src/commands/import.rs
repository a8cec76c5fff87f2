//! `headcount import`: NDJSON bulk import, one `/users/track` body per line.
//!
//! A line is applied whole or not at all: a line with any invalid object is reported
//! with its number and reason and skipped (`--strict`: the import stops there).
//! Valid lines are committed in large transactions, in input order; the last commit
//! makes it durable.
//!
//! Exactly once: each file is hashed (SHA-256) before it is read, and its record in the
//! store (content hash, lines and bytes committed, finished or not) is updated in the
//! same transaction as each commit of its facts. A file whose content was finished
//! before is refused (`--allow-duplicate` imports it anyway); one whose import stopped
//! half-way is resumed after its last committed line. stdin cannot be hashed before it
//! is read: it is hashed while read and recorded when finished (so that a file of the
//! same content is refused later), but never refused nor resumed itself.

use super::{CmdResult, open_existing, workspace};
use crate::args::ImportArgs;
use crate::output::count;
use crate::progress;
use headcount_model::{FactKind, WorkspaceId};
use headcount_service::ingest::{LineObject, TrackOptions, read_line_objects};
use headcount_store::digest::{self, Hasher};
use headcount_store::{
    EncodedFacts, FactRef, ImportProgress, ImportRecord, Receipts, Store, StoreError,
};
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

/// Bytes of input read as one block: a block is parsed and encoded by one thread.
const BLOCK_BYTES: u64 = 4 << 20;

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

/// Whole lines of one input, in input order (`seq` across all inputs). The last block
/// of an input is an empty one with `last` set.
struct Block {
    seq: u64,
    input: usize,
    first_line: u64,
    /// Offset of `bytes` in the input.
    first_byte: u64,
    bytes: Vec<u8>,
    /// Whether the input ended before this block.
    last: bool,
    /// The input's SHA-256, on its last block, when it was hashed while read (stdin).
    sha256: Option<[u8; 32]>,
}

/// One input to import: where it starts, and its record in the store.
struct Input {
    name: String,
    reader: Box<dyn Read + Send>,
    /// The number of its first line to read (after the lines skipped when resuming).
    first_line: u64,
    /// The offset of that line.
    first_byte: u64,
    /// Its import record.
    record: i64,
    /// Whether its progress is recorded at each commit (a file); otherwise only when
    /// it is finished (stdin, hashed while read: it cannot be resumed).
    resumable: bool,
}

/// How far an input got within a parsed block.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Lines from the input's start, through the block's last committed one.
    lines: u64,
    /// Bytes those lines span.
    bytes: u64,
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
    /// How far the input got once `facts` are committed.
    reached: Position,
    /// Whether this is the input's end (see [`Block`]).
    last: bool,
    /// The input's hash, when found while reading.
    sha256: Option<[u8; 32]>,
}

/// Runs an import.
///
/// Three stages overlap: this thread reads blocks of whole lines, one worker per core
/// parses a block and encodes its facts, and a writer thread commits the encoded
/// blocks in input order (so that the order of facts, and the report of rejected
/// lines, are those of the input).
pub fn run(dir: &Path, args: ImportArgs) -> CmdResult {
    let store = open_existing(dir)?;
    let ws = workspace(store.as_ref(), dir, &args.workspace)?;
    let options = TrackOptions {
        max_objects: None,
        allow_attribute_time: true,
        now: headcount_service::state::now(),
    };
    if store.workspace_engine(ws.id)? == headcount_store::ENGINE_CLICKHOUSE {
        return super::clickhouse::import(&ws, &args, &options);
    }
    // Every file is opened before anything is imported: a missing one is an error that
    // leaves the store untouched, rather than one met after earlier files were partly
    // committed.
    let mut opened: Vec<(String, Option<std::fs::File>)> = Vec::with_capacity(args.files.len());
    for path in &args.files {
        if path.as_os_str() == "-" {
            opened.push(("-".into(), None));
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            opened.push((path.display().to_string(), Some(file)));
        }
    }
    let (inputs, plan) = plan(store.as_ref(), &ws, opened, args.allow_duplicate)?;
    // stdin has no length: then no bar and no ETA, only what was read and how fast.
    let bar = plan.total.map_or_else(stream_spinner, progress::bytes);
    let started = Instant::now();
    let (tally, stopped) = import(
        store.as_ref(),
        ws.id,
        inputs,
        &options,
        args.strict,
        &bar,
        BLOCK_BYTES,
        args.commit_facts,
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
            "skipped_lines": plan.skipped_lines,
            "refused_inputs": plan.refused,
        });
        crate::output::line(summary);
    }
    Ok(if tally.rejected > 0 || plan.refused > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// What [`plan`] decided besides the inputs to read.
struct Plan {
    /// Bytes to read, when every input has a length.
    total: Option<u64>,
    /// Inputs refused as duplicates.
    refused: u64,
    /// Lines skipped because an earlier import committed them.
    skipped_lines: u64,
}

/// An instant to the second, for messages.
fn when(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second()).map_or_else(|_| t.to_string(), |t| t.to_string())
}

/// SHA-256 of a whole file, read from its start.
fn hash_file(name: &str, file: &mut std::fs::File) -> Result<[u8; 32], String> {
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{name}: cannot read it to hash it: {e}")),
        }
    }
}

/// Hashes each file and decides what to do with it: refuse it (its content was
/// imported before, or given twice), resume it after the lines an unfinished import of
/// the same content committed, or import it whole; and starts a record for each input
/// to read.
fn plan(
    store: &dyn Store,
    ws: &headcount_store::Workspace,
    opened: Vec<(String, Option<std::fs::File>)>,
    allow_duplicate: bool,
) -> Result<(Vec<Input>, Plan), Box<dyn std::error::Error>> {
    let records = store.imports(ws.id)?;
    let now = headcount_service::state::now();
    let mut plan = Plan {
        total: Some(0),
        refused: 0,
        skipped_lines: 0,
    };
    let mut inputs = Vec::with_capacity(opened.len());
    // Hashes of the files of this command so far, and the records they resume.
    let mut seen: Vec<([u8; 32], String)> = Vec::new();
    let mut resumed: Vec<i64> = Vec::new();
    for (name, file) in opened {
        let Some(mut file) = file else {
            // Not locked here: a second `-` would deadlock on the lock of the first.
            let record = store.begin_import(ws.id, None, "-", now)?;
            inputs.push(Input {
                name,
                reader: Box::new(std::io::stdin()),
                first_line: 1,
                first_byte: 0,
                record: record.id,
                resumable: false,
            });
            plan.total = None;
            continue;
        };
        let sha = hash_file(&name, &mut file)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let finished = records
            .iter()
            .filter(|r| r.sha256 == Some(sha) && r.finished_at.is_some())
            .min_by_key(|r| r.id);
        if !allow_duplicate {
            if let Some(first) = finished {
                let at = first.finished_at.map_or_else(String::new, when);
                eprintln!(
                    "{name}: not imported: the same content (SHA-256 {}) was imported into workspace \"{}\" at {at} (as {}); --allow-duplicate imports it again",
                    &digest::hex(&sha)[..16],
                    ws.name,
                    first.name,
                );
                plan.refused += 1;
                continue;
            }
            if let Some((_, earlier)) = seen.iter().find(|(h, _)| *h == sha) {
                eprintln!(
                    "{name}: not imported: the same content as {earlier}, given earlier in this command; --allow-duplicate imports it again"
                );
                plan.refused += 1;
                continue;
            }
        }
        seen.push((sha, name.clone()));
        // The newest unfinished import of the same content, if no input of this
        // command resumes it already.
        let unfinished: Option<&ImportRecord> = records
            .iter()
            .filter(|r| r.sha256 == Some(sha) && r.finished_at.is_none())
            .filter(|r| !resumed.contains(&r.id) && r.bytes <= size)
            .max_by_key(|r| r.id);
        let (record, first_line, first_byte) = match unfinished {
            Some(r) => {
                resumed.push(r.id);
                if r.lines > 0 {
                    eprintln!(
                        "{name}: resuming the import started at {}: skipping its first {} lines, already committed",
                        when(r.started_at),
                        r.lines
                    );
                    plan.skipped_lines += r.lines;
                }
                (r.id, r.lines + 1, r.bytes)
            }
            None => {
                // A file edited after its import stopped (a bad line fixed) has another
                // hash: it is imported whole, and the operator should know.
                let other = records
                    .iter()
                    .filter(|r| r.name == name && r.finished_at.is_none() && r.lines > 0)
                    .max_by_key(|r| r.id);
                if let Some(r) = other {
                    eprintln!(
                        "{name}: note: an unfinished import of {name} with other content committed its first {} lines at {}; this content is imported from its first line",
                        r.lines,
                        when(r.updated_at)
                    );
                }
                (store.begin_import(ws.id, Some(sha), &name, now)?.id, 1, 0)
            }
        };
        file.seek(SeekFrom::Start(first_byte))
            .map_err(|e| format!("{name}: cannot seek to byte {first_byte}: {e}"))?;
        plan.total = plan.total.map(|t| t + size.saturating_sub(first_byte));
        inputs.push(Input {
            name,
            reader: Box::new(file),
            first_line,
            first_byte,
            record,
            resumable: true,
        });
    }
    Ok((inputs, plan))
}

/// Imports `inputs` into workspace `ws` in blocks of about `block_bytes`, committing
/// at least `commit_facts` facts at a time with the inputs' progress; returns what was
/// read and whether `strict` stopped it at a bad line.
#[allow(clippy::too_many_arguments)]
fn import(
    store: &dyn Store,
    ws: WorkspaceId,
    inputs: Vec<Input>,
    options: &TrackOptions,
    strict: bool,
    bar: &ProgressBar,
    block_bytes: u64,
    commit_facts: usize,
) -> Result<(Tally, bool), String> {
    let meta: Vec<(String, i64, bool)> = inputs
        .iter()
        .map(|i| (i.name.clone(), i.record, i.resumable))
        .collect();
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
            let (bar, meta, stop) = (bar.clone(), &meta, &stop);
            scope.spawn(move || {
                let sink = Sink {
                    store,
                    ws,
                    inputs: meta,
                    commit_facts,
                };
                sink.write_blocks(parsed, &bar, stop)
            })
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
/// until `stop`; each input ends with an empty block marked `last`.
fn read_blocks(
    inputs: Vec<Input>,
    to_workers: &SyncSender<Block>,
    bar: &ProgressBar,
    stop: &AtomicBool,
    block_bytes: u64,
) -> Result<(), String> {
    let mut seq = 0;
    for (input, source) in inputs.into_iter().enumerate() {
        let name = source.name;
        let mut hasher = (!source.resumable).then(Hasher::new);
        let mut reader = BufReader::with_capacity(1 << 20, source.reader);
        let mut line = source.first_line;
        let mut offset = source.first_byte;
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
            let last = bytes.is_empty();
            if let Some(hasher) = &mut hasher {
                hasher.update(&bytes);
            }
            bar.inc(bytes.len() as u64);
            // Lines, the input's last one included when it lacks its newline.
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64
                + u64::from(bytes.last().is_some_and(|&b| b != b'\n'));
            let len = bytes.len() as u64;
            let block = Block {
                seq,
                input,
                first_line: line,
                first_byte: offset,
                bytes,
                last,
                sha256: if last {
                    hasher.take().map(Hasher::finish)
                } else {
                    None
                },
            };
            seq += 1;
            line += lines;
            offset += len;
            if to_workers.send(block).is_err() {
                // Every worker is gone: the writer stopped, and says why.
                return Ok(());
            }
            if last {
                break;
            }
        }
    }
    Ok(())
}

/// Parses a block's lines (a line is all valid or rejected whole) and encodes the
/// facts of the valid ones.
fn parse_block(block: Block, options: &TrackOptions, strict: bool) -> Parsed {
    let mut tally = Tally::default();
    // Borrowing the block's text: an event of the common shape allocates nothing.
    let mut objects: Vec<LineObject<'_>> = Vec::with_capacity(block.bytes.len() / 64);
    let mut rejected = Vec::new();
    let mut stop = false;
    let text = block.bytes.strip_suffix(b"\n").unwrap_or(&block.bytes);
    // Through the whole block, unless --strict stops before a line.
    let mut reached = Position {
        lines: block.first_line - 1 + block.bytes.iter().filter(|&&b| b == b'\n').count() as u64,
        bytes: block.first_byte + block.bytes.len() as u64,
    };
    if block.bytes.last().is_some_and(|&b| b != b'\n') {
        // The input's last line, without its newline.
        reached.lines += 1;
    }
    let mut start = block.first_byte;
    let lines = if block.bytes.is_empty() {
        None
    } else {
        Some(text.split(|&b| b == b'\n'))
    };
    for (n, bytes) in lines.into_iter().flatten().enumerate() {
        let line_start = start;
        start += bytes.len() as u64 + 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        tally.lines += 1;
        let before = objects.len();
        let read = match std::str::from_utf8(bytes) {
            Ok(line) => read_line_objects(line, options, &mut objects),
            // A line that is not UTF-8 is a bad line like any other.
            Err(e) => Err(format!("the line is not valid UTF-8: {e}")),
        };
        match read {
            Ok(()) => {
                for object in &objects[before..] {
                    match object {
                        LineObject::Event { .. } => tally.events += 1,
                        LineObject::Fact(_, fact) => match fact.kind {
                            FactKind::Attributes(_) => tally.attributes += 1,
                            FactKind::Event { .. } => tally.events += 1,
                            FactKind::Purchase { .. } => tally.purchases += 1,
                            // Made only by /users/delete, never read from a line.
                            FactKind::Deletion => {}
                        },
                    }
                }
            }
            Err(reason) => {
                tally.rejected += 1;
                rejected.push((block.first_line + n as u64, reason));
                if strict {
                    stop = true;
                    // Committed: the lines before this one.
                    reached = Position {
                        lines: block.first_line - 1 + n as u64,
                        bytes: line_start,
                    };
                    break;
                }
            }
        }
    }
    let refs: Vec<FactRef<'_>> = objects.iter().map(LineObject::as_ref).collect();
    let facts = EncodedFacts::encode_refs(&refs);
    drop(refs);
    drop(objects);
    Parsed {
        seq: block.seq,
        input: block.input,
        facts,
        tally,
        rejected,
        stop,
        reached,
        last: block.last && !stop,
        sha256: block.sha256,
    }
}

/// Where the writer commits: the store, the workspace, each input's (name, record,
/// resumable), and how many facts make a commit.
struct Sink<'a> {
    store: &'a dyn Store,
    ws: WorkspaceId,
    inputs: &'a [(String, i64, bool)],
    commit_facts: usize,
}

impl Sink<'_> {
    /// Commits parsed blocks in input order, at least `commit_facts` facts per
    /// transaction, each with the progress of the inputs it holds lines of, and
    /// reports rejected lines; sets `stop` on an error or when `--strict` met a bad
    /// line. Returns what was imported, and whether it stopped early.
    fn write_blocks(
        &self,
        parsed: Receiver<Parsed>,
        bar: &ProgressBar,
        stop: &AtomicBool,
    ) -> Result<(Tally, bool), StoreError> {
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0;
        let mut pending: Vec<(WorkspaceId, EncodedFacts)> = Vec::new();
        let mut pending_facts = 0;
        // Progress of the inputs with lines in `pending`, by input.
        let mut progress: BTreeMap<usize, ImportProgress> = BTreeMap::new();
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
                let (name, record, resumable) = self
                    .inputs
                    .get(block.input)
                    .map_or(("", 0, false), |(n, r, res)| (n.as_str(), *r, *res));
                for (line, reason) in &block.rejected {
                    bar.suspend(|| eprintln!("{name}:{line}: rejected: {reason}"));
                }
                if resumable || block.last {
                    progress.insert(
                        block.input,
                        ImportProgress {
                            id: record,
                            sha256: block.sha256,
                            lines: block.reached.lines,
                            bytes: block.reached.bytes,
                            at: headcount_service::state::now(),
                            finished: block.last,
                        },
                    );
                }
                pending_facts += block.facts.len();
                pending.push((self.ws, block.facts));
                stopped = block.stop;
                if pending_facts >= self.commit_facts || stopped {
                    result = self.commit(&mut pending, &mut progress);
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
        if result.is_ok() && (!pending.is_empty() || !progress.is_empty()) {
            result = self.commit(&mut pending, &mut progress);
        }
        result.map(|()| (tally, stopped))
    }

    /// Commits the pending facts and progress in one transaction.
    fn commit(
        &self,
        pending: &mut Vec<(WorkspaceId, EncodedFacts)>,
        progress: &mut BTreeMap<usize, ImportProgress>,
    ) -> Result<(), StoreError> {
        let imports: Vec<ImportProgress> = std::mem::take(progress).into_values().collect();
        let receipts = Receipts {
            responses: &[],
            imports: &imports,
        };
        let result = self.store.append_encoded_with(pending, receipts);
        pending.clear();
        result
    }
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
            now: headcount_service::state::now(),
        };
        let record = store
            .begin_import(ws.id, None, "in", options.now)
            .expect("record");
        let inputs = vec![Input {
            name: "in".into(),
            reader: Box::new(Cursor::new(input())),
            first_line: 1,
            first_byte: 0,
            record: record.id,
            resumable: true,
        }];
        let (tally, stopped) = import(
            &store,
            ws.id,
            inputs,
            &options,
            strict,
            &ProgressBar::hidden(),
            block_bytes,
            50,
        )
        .expect("import");
        let records = store.imports(ws.id).expect("records");
        let finished = records[0].finished_at.is_some();
        assert_eq!(finished, !strict, "{records:?}");
        if strict {
            // Committed: the 199 lines before the bad line 200, and their bytes.
            let before: usize = input()
                .split(|&b| b == b'\n')
                .take(199)
                .map(|l| l.len() + 1)
                .sum();
            assert_eq!((records[0].lines, records[0].bytes), (199, before as u64));
        } else {
            assert_eq!(
                (records[0].lines, records[0].bytes),
                (300, input().len() as u64)
            );
        }
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
