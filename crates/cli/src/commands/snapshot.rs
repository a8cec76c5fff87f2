//! `headcount snapshot`: compute and store daily sizes offline, as the server's
//! schedule would.

use super::{CmdResult, open_existing, workspace};
use crate::args::SnapshotArgs;
use crate::output::count;
use crate::progress;
use headcount_engine::Index;
use headcount_model::{Day, SegmentId};
use headcount_service::catalog::{Catalog, time_zone};
use headcount_service::checkpoints::{self, Checkpoints};
use headcount_service::counting::{Counting, segment_filters};
use headcount_service::sizes::Sizer;
use headcount_store::Store;
use std::path::Path;
use std::process::ExitCode;
use std::sync::RwLock;

/// Days computed between two progress updates. Days are computed in one pass forward
/// in time whose first day costs about a whole evaluation, so a chunk is long: with 10,
/// a 40-day snapshot paid that first day four times per segment.
const CHUNK: usize = 100;

/// Runs a snapshot.
pub fn run(dir: &Path, args: SnapshotArgs) -> CmdResult {
    let from: Day = args
        .from
        .parse()
        .map_err(|_| format!("--from must be a date YYYY-MM-DD, got \"{}\"", args.from))?;
    let to: Day = args
        .to
        .parse()
        .map_err(|_| format!("--to must be a date YYYY-MM-DD, got \"{}\"", args.to))?;
    if from > to {
        return Err(format!("--from {from} is after --to {to}").into());
    }
    let store = open_existing(dir)?;
    let ws = workspace(store.as_ref(), dir, &args.workspace)?;
    let tz = time_zone(&ws.time_zone)?;
    let now = headcount_service::state::now();
    if to.end(&tz) > now {
        return Err(format!(
            "--to {to} has not ended yet in {}; the last completed day is {}",
            ws.time_zone,
            Day::containing(now, &tz).add_days(-1)
        )
        .into());
    }
    let catalog = Catalog::load(store.as_ref())?;
    let segments: Vec<SegmentId> = if args.segment.is_empty() {
        catalog
            .segments_of(ws.id)
            .filter(|e| e.segment.archived_at.is_none())
            .map(|e| e.segment.id)
            .collect()
    } else {
        let mut ids = Vec::with_capacity(args.segment.len());
        for text in &args.segment {
            let id: SegmentId = text
                .parse()
                .map_err(|_| format!("--segment must be a segment id (a UUID), got \"{text}\""))?;
            catalog
                .segment_in(ws.id, id)
                .ok_or_else(|| format!("no segment {id} in workspace {}", ws.name))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    };
    let clickhouse = if store.workspace_engine(ws.id)? == headcount_store::ENGINE_CLICKHOUSE {
        Some(super::clickhouse::connect(&args.clickhouse)?)
    } else {
        None
    };
    // A ClickHouse workspace's facts are not in the store: no index to load.
    let index = match clickhouse {
        Some(_) => Index::default(),
        None => load_index(dir, store.as_ref(), &ws, Checkpoint::Write)?,
    };
    let days: Vec<Day> = (0..=from.days_until(to))
        .map(|n| from.add_days(n))
        .collect();
    let bar = progress::bar((segments.len() * days.len()) as u64, "segment-days");
    let mut computed = 0;
    for id in &segments {
        let entry = catalog.segment_in(ws.id, *id).ok_or("segment vanished")?;
        let plan = catalog.segment_plan(entry, store.as_ref())?;
        let filters = match clickhouse {
            Some(_) => Some(segment_filters(&catalog, store.as_ref(), *id)?),
            None => None,
        };
        let counting = match (&clickhouse, &filters) {
            (Some(ch), Some(filters)) => Counting::ClickHouse {
                ch,
                workspace: ws.id,
                filters,
            },
            _ => Counting::Memory {
                index: &index,
                plan: &plan,
            },
        };
        let sizer = Sizer {
            store: store.as_ref(),
            counting,
            segment: *id,
            tz: &tz,
            now,
        };
        for chunk in days.chunks(CHUNK) {
            computed += sizer.fill(chunk, args.recompute)?;
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "computed {} ({} x {}, {} already stored)",
        count(computed as u64, "daily size", "daily sizes"),
        count(segments.len() as u64, "segment", "segments"),
        count(days.len() as u64, "day", "days"),
        segments.len() * days.len() - computed
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads a workspace's index from its checkpoint in `dir` and the facts after it (or
/// from every fact), with a spinner; when facts had to be applied and `checkpoint`
/// allows it, writes a new checkpoint so that the next command starts from it.
pub fn load_index(
    dir: &Path,
    store: &dyn Store,
    ws: &headcount_store::Workspace,
    checkpoint: Checkpoint,
) -> Result<Index, Box<dyn std::error::Error>> {
    let spinner = progress::bar(0, "facts loaded");
    let checkpoints = Checkpoints::at(super::checkpoint_dir(dir));
    let loaded = checkpoints::load_index(store, Some(&checkpoints), ws.id, &ws.name, &mut |n| {
        spinner.set_position(n)
    })?;
    spinner.finish_and_clear();
    if loaded.replayed > 0 && checkpoint == Checkpoint::Write {
        let index = RwLock::new(loaded.index);
        if let Err(e) = checkpoints.write(ws.id, &index) {
            tracing::warn!(error = %e, "cannot write the checkpoint");
        }
        return Ok(index.into_inner().unwrap_or_else(|p| p.into_inner()));
    }
    Ok(loaded.index)
}

/// Whether [`load_index`] may write a fresh checkpoint after replaying facts: only a
/// writer of the data directory (`snapshot`) does; a reader next to a running server
/// (`eval`) must not replace the server's checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Write one when facts were replayed.
    Write,
    /// Only read.
    ReadOnly,
}
