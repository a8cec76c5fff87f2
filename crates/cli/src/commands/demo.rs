//! `headcount demo`: a ready-to-explore server on a realistic synthetic dataset.
//!
//! The first run fills the data directory (users, events, a dozen segments and their
//! history); later runs on the same directory reuse it. Each run prints a new key.

use super::{CmdResult, open};
use crate::args::DemoArgs;
use crate::commands::keys;
use crate::commands::serve::serve;
use crate::progress;
use crate::synth::{self, Params};
use headcount_engine::Index;
use headcount_model::{Filter, SegmentId};
use headcount_server::Config;
use headcount_server::catalog::Catalog;
use headcount_server::ingest::{TrackOptions, read_track};
use headcount_server::sizes::{Sizer, last_completed_days};
use headcount_server::state::now;
use headcount_store::{NewWorkspace, Permission, Segment, SqliteStore, Store, Workspace};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The demo workspace's name.
const WORKSPACE: &str = "demo";
/// Days of activity generated, and of history computed.
const DAYS: u32 = 120;
const HISTORY: u32 = 100;

/// Builds the demo data directory if needed, then serves it.
pub fn run(dir: &Path, args: DemoArgs) -> CmdResult {
    let store = open(dir)?;
    let ws = match store
        .workspaces()?
        .into_iter()
        .find(|w| w.name == WORKSPACE)
    {
        Some(ws) => {
            eprintln!("reusing the demo data in {}", dir.display());
            ws
        }
        None => build(&store, &args)?,
    };
    let key = keys::create(&store, ws.id, "demo", Permission::ALL.to_vec(), Vec::new())?;
    let segment = first_segment(&store, &ws)?;
    print_walkthrough(&args, &key, segment);
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config {
        checkpoints: Some(headcount_server::checkpoints::dir_of(dir)),
        ..Config::default()
    };
    serve(Arc::new(store), config, args.listen)?;
    Ok(ExitCode::SUCCESS)
}

fn build(store: &SqliteStore, args: &DemoArgs) -> Result<Workspace, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let ws = store.create_workspace(&NewWorkspace {
        name: WORKSPACE.into(),
        time_zone: "UTC".into(),
        export_limit: headcount_store::DEFAULT_EXPORT_LIMIT,
        track_limit: headcount_store::DEFAULT_TRACK_LIMIT,
    })?;
    let end = now();
    let params = Params {
        users: args.users.into(),
        seed: args.seed,
        days: DAYS,
        end,
        events_per_user: 30.0,
    };
    let options = TrackOptions {
        max_objects: None,
        allow_attribute_time: true,
        now: end,
    };
    let mut index = Index::new();
    let bar = progress::bar(params.users, "users");
    let mut batch = Vec::new();
    for n in 0..params.users {
        let body = synth::user_body(&params, n);
        let body = body.as_object().ok_or("generator produced a non-object")?;
        let track = read_track(body, &options)?;
        for (user, fact) in &track.facts {
            index.apply(user, fact);
        }
        batch.extend(track.facts);
        if batch.len() >= 200_000 {
            store.append_facts(ws.id, &batch)?;
            batch.clear();
        }
        bar.inc(1);
    }
    store.append_facts(ws.id, &batch)?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} users and {} events and purchases in {:.1}s",
        index.user_count(),
        index.event_count(),
        started.elapsed().as_secs_f64()
    );
    create_segments(store, &ws)?;
    compute_history(store, &ws, &index)?;
    eprintln!("demo data ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ws)
}

fn create_segments(store: &SqliteStore, ws: &Workspace) -> Result<(), Box<dyn std::error::Error>> {
    let mut french = None;
    let mut specs = synth::demo_segments();
    specs.push((
        "French buyers",
        "French users who bought at least twice",
        json!(null),
    ));
    for (name, description, filter) in specs {
        let filter = match (filter.is_null(), &french) {
            (true, Some(id)) => {
                json!({"all": [{"in_segment": id}, {"purchase": "*", "op": "gte", "value": 2}]})
            }
            _ => filter,
        };
        Filter::parse(&filter, "filter")?;
        let at = now();
        let id = SegmentId::new_random();
        if name == "French users" {
            french = Some(id.to_string());
        }
        store.insert_segment(&Segment {
            id,
            workspace: ws.id,
            name: name.into(),
            filter,
            text_description: description.into(),
            tags: vec!["demo".into()],
            teams: Vec::new(),
            analytics_tracking_enabled: true,
            created_at: at,
            updated_at: at,
            archived_at: None,
        })?;
    }
    Ok(())
}

fn compute_history(
    store: &SqliteStore,
    ws: &Workspace,
    index: &Index,
) -> Result<(), Box<dyn std::error::Error>> {
    let catalog = Catalog::load(store)?;
    let tz = headcount_server::catalog::time_zone(&ws.time_zone)?;
    let at = now();
    let days = last_completed_days(at, HISTORY, &tz);
    let segments: Vec<_> = catalog.segments_of(ws.id).collect();
    let bar = progress::bar((segments.len() * days.len()) as u64, "segment-days");
    for entry in segments {
        let plan = catalog.plan(&entry.filter)?;
        let sizer = Sizer {
            store,
            index,
            plan: &plan,
            segment: entry.segment.id,
            tz: &tz,
            now: at,
        };
        for chunk in days.chunks(10) {
            sizer.fill(chunk, false)?;
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn first_segment(
    store: &dyn Store,
    ws: &Workspace,
) -> Result<SegmentId, Box<dyn std::error::Error>> {
    store
        .segments()?
        .into_iter()
        .find(|s| s.workspace == ws.id && s.archived_at.is_none())
        .map(|s| s.id)
        .ok_or_else(|| "the demo workspace has no segment".into())
}

fn print_walkthrough(args: &DemoArgs, key: &str, segment: SegmentId) {
    let base = format!("http://{}", args.listen);
    println!("headcount demo: {base} (workspace \"{WORKSPACE}\")");
    println!();
    println!("  export HEADCOUNT_KEY={key}");
    println!("  curl -s '{base}/segments/list' -H \"Authorization: Bearer $HEADCOUNT_KEY\"");
    println!(
        "  curl -s '{base}/segments/details?segment_id={segment}' -H \"Authorization: Bearer $HEADCOUNT_KEY\""
    );
    println!(
        "  curl -s '{base}/segments/data_series?segment_id={segment}&length=30' -H \"Authorization: Bearer $HEADCOUNT_KEY\""
    );
    println!(
        "  curl -s -X POST '{base}/users/track' -H \"Authorization: Bearer $HEADCOUNT_KEY\" -H 'Content-Type: application/json' \\\n    -d '{{\"attributes\":[{{\"external_id\":\"new-user\",\"country\":\"FR\"}}]}}'"
    );
    println!();
}
