//! `headcount import`: NDJSON bulk import, one `/users/track` body per line.
//!
//! A line is applied whole or not at all: a line with any invalid object is reported
//! with its number and reason and skipped (`--strict`: the import stops there).
//! Valid lines are committed in large transactions; the last commit makes it durable.

use super::{CmdResult, open, workspace};
use crate::args::ImportArgs;
use crate::progress;
use headcount_model::{Fact, FactKind, UserKey};
use headcount_server::ingest::{TrackOptions, read_track_text};
use headcount_store::{Store, StoreError};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Facts buffered before a commit.
const BATCH: usize = 100_000;

#[derive(Default)]
struct Tally {
    lines: u64,
    rejected: u64,
    attributes: u64,
    events: u64,
    purchases: u64,
}

/// Runs an import.
pub fn run(dir: &Path, args: ImportArgs) -> CmdResult {
    let store = open(dir)?;
    let ws = workspace(&store, &args.workspace)?;
    let options = TrackOptions {
        max_objects: None,
        allow_attribute_time: true,
        now: headcount_server::state::now(),
    };
    let store = &store;
    let ws = &ws;
    std::thread::scope(|scope| -> CmdResult {
        let started = Instant::now();
        // Batches are committed by a second thread while this one reads and parses on.
        let (to_writer, batches) = std::sync::mpsc::sync_channel::<Vec<(UserKey, Fact)>>(1);
        let writer = scope.spawn(|| -> Result<(), StoreError> {
            for batch in batches {
                store.append_facts(ws.id, &batch)?;
            }
            Ok(())
        });
        let mut tally = Tally::default();
        let mut batch: Vec<(UserKey, Fact)> = Vec::with_capacity(BATCH);
        let mut stopped = false;
        // Every file is opened before anything is imported: a missing one is an error
        // that leaves the store untouched, rather than one met after earlier files were
        // partly committed.
        let mut inputs: Vec<(String, Box<dyn Read>, u64)> = Vec::with_capacity(args.files.len());
        for path in &args.files {
            if path.as_os_str() == "-" {
                // Not locked here: a second `-` would deadlock on the lock of the first.
                inputs.push(("-".into(), Box::new(std::io::stdin()), 0));
            } else {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                inputs.push((path.display().to_string(), Box::new(file), size));
            }
        }
        for (name, reader, size) in inputs {
            let bar = if size == 0 {
                // stdin: no length, so no bar and no ETA, only what was read and how fast.
                stream_spinner()
            } else {
                progress::bytes(size)
            };
            let mut reader = BufReader::with_capacity(1 << 20, reader);
            let mut number = 0u64;
            loop {
                let block = read_block(&mut reader, &mut number, &name)?;
                if block.is_empty() {
                    break;
                }
                bar.inc(block.iter().map(|(_, line)| line.len() as u64).sum());
                for (line_number, read) in parse_block(&block, &options) {
                    tally.lines += 1;
                    match read {
                        Ok(facts) => {
                            for (_, fact) in &facts {
                                match fact.kind {
                                    FactKind::Attributes(_) => tally.attributes += 1,
                                    FactKind::Event { .. } => tally.events += 1,
                                    FactKind::Purchase { .. } => tally.purchases += 1,
                                }
                            }
                            batch.extend(facts);
                        }
                        Err(reason) => {
                            tally.rejected += 1;
                            bar.suspend(|| eprintln!("{name}:{line_number}: rejected: {reason}"));
                            if args.strict {
                                stopped = true;
                                break;
                            }
                        }
                    }
                    if batch.len() >= BATCH && to_writer.send(std::mem::take(&mut batch)).is_err() {
                        // The writer stopped on an error, reported below.
                        stopped = true;
                        break;
                    }
                }
                let seconds = started.elapsed().as_secs_f64();
                let rate = if seconds > 0.0 {
                    tally.lines as f64 / seconds
                } else {
                    0.0
                };
                bar.set_message(format!("{} rows ({rate:.0} rows/s)", tally.lines));
                if stopped {
                    break;
                }
            }
            bar.finish_and_clear();
            if stopped {
                break;
            }
        }
        let _ = to_writer.send(batch);
        drop(to_writer);
        writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        summarize(&tally, started.elapsed().as_secs_f64(), stopped);
        Ok(if tally.rejected > 0 {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// A spinner over bytes of an input of unknown length, with a message for row counts.
fn stream_spinner() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::no_length();
    let template = "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Lines read and parsed together: enough to keep every core busy between commits.
const BLOCK_LINES: usize = 8192;

/// A line's number and its facts, or why it is rejected.
type Parsed = (u64, Result<Vec<(UserKey, Fact)>, String>);

/// A line of input with its 1-based number.
type Line = (u64, Vec<u8>);

/// Reads up to [`BLOCK_LINES`] non-blank lines; empty at the end of the input.
fn read_block(
    reader: &mut impl BufRead,
    number: &mut u64,
    name: &str,
) -> Result<Vec<Line>, String> {
    let mut block = Vec::with_capacity(BLOCK_LINES);
    while block.len() < BLOCK_LINES {
        let mut bytes = Vec::new();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| format!("{name}: reading line {}: {e}", *number + 1))?;
        if read == 0 {
            break;
        }
        *number += 1;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            block.push((*number, bytes));
        }
    }
    Ok(block)
}

/// Parses a block on every core, keeping the order of its lines.
fn parse_block(block: &[Line], options: &TrackOptions) -> Vec<Parsed> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let part = block.len().div_ceil(threads).max(1);
    let parse = |lines: &[Line]| -> Vec<Parsed> {
        lines
            .iter()
            .map(|(number, bytes)| {
                let read = match std::str::from_utf8(bytes) {
                    Ok(line) => read_line(line, options),
                    // A line that is not UTF-8 is a bad line like any other.
                    Err(e) => Err(format!("the line is not valid UTF-8: {e}")),
                };
                (*number, read)
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let parts: Vec<_> = block
            .chunks(part)
            .map(|lines| scope.spawn(move || parse(lines)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| {
                p.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
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
        "imported {} of {} lines: {} attribute objects, {} events, {} purchases in {seconds:.1}s ({rate:.0} objects/s); {} lines rejected{}",
        t.lines - t.rejected,
        t.lines,
        t.attributes,
        t.events,
        t.purchases,
        t.rejected,
        if stopped {
            " (stopped at the first, --strict)"
        } else {
            ""
        },
    );
}
