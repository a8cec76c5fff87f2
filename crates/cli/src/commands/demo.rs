//! `headcount demo`: a ready-to-explore server on a realistic synthetic dataset.
//!
//! The first run fills the data directory (users, events, a dozen segments and their
//! history); later runs on the same directory reuse it. Each run binds its port first,
//! then prints a new key, revoking the previous run's.

use super::{CmdResult, open};
use crate::args::DemoArgs;
use crate::commands::keys;
use crate::commands::serve::{bind, serve};
use crate::output::count;
use crate::progress;
use crate::synth::{self, Params};
use headcount_engine::Index;
use headcount_model::{Filter, SegmentId};
use headcount_service::Config;
use headcount_service::catalog::Catalog;
use headcount_service::counting::Counting;
use headcount_service::ingest::{TrackOptions, read_track};
use headcount_service::sizes::{Sizer, last_completed_days};
use headcount_service::state::now;
use headcount_store::{NewWorkspace, Permission, Segment, Store, Workspace};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The demo workspace's name.
const WORKSPACE: &str = "demo";
/// The name of the key each run creates (revoking the previous one).
const KEY_NAME: &str = "demo";
/// Days of activity generated, and of history computed.
const DAYS: u32 = 120;
const HISTORY: u32 = 100;

/// Builds the demo data directory if needed, then serves it.
pub fn run(dir: &Path, args: DemoArgs) -> CmdResult {
    // The port first: nothing about it is printed (no key, no curl) unless it is ours.
    let listener = if args.no_serve {
        None
    } else {
        Some(bind(args.listen)?)
    };
    let store = open(dir)?;
    let ws = match store
        .workspaces()?
        .into_iter()
        .find(|w| w.name == WORKSPACE)
    {
        Some(ws) => {
            eprintln!("reusing the demo data in {}", super::describe(dir));
            ws
        }
        None => build(store.as_ref(), &args)?,
    };
    let Some(listener) = listener else {
        eprintln!(
            "demo data ready in {}; serve it with: headcount {} demo",
            super::describe(dir),
            super::store_option(dir)
        );
        return Ok(ExitCode::SUCCESS);
    };
    let key = replace_key(store.as_ref(), &ws)?;
    let segment = first_segment(store.as_ref(), &ws)?;
    // The address bound (with `--listen HOST:0`, the port the system chose).
    print_walkthrough(listener.local_addr()?, &key, segment);
    let config = Config {
        checkpoints: Some(super::checkpoint_dir(dir)),
        ..Config::default()
    };
    serve(Arc::from(store), config, listener)?;
    Ok(ExitCode::SUCCESS)
}

/// A new demo key, after revoking the previous ones: a key's secret is stored only as
/// a hash, so it cannot be shown again, and each run would otherwise leave one more
/// key with every permission behind.
fn replace_key(store: &dyn Store, ws: &Workspace) -> Result<String, Box<dyn std::error::Error>> {
    let at = now();
    for key in store.keys()? {
        if key.workspace == ws.id && key.name == KEY_NAME && key.revoked_at.is_none() {
            store.revoke_key(&key.id, at)?;
            eprintln!("revoked the previous demo key {}", key.id);
        }
    }
    keys::create(store, ws.id, KEY_NAME, Permission::ALL.to_vec(), Vec::new())
}

fn build(store: &dyn Store, args: &DemoArgs) -> Result<Workspace, Box<dyn std::error::Error>> {
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
        "generated {} and {} in {:.1}s",
        count(index.user_count() as u64, "user", "users"),
        count(
            index.event_count() as u64,
            "event or purchase",
            "events and purchases"
        ),
        started.elapsed().as_secs_f64()
    );
    create_segments(store, &ws)?;
    compute_history(store, &ws, &index)?;
    eprintln!("demo data ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ws)
}

fn create_segments(store: &dyn Store, ws: &Workspace) -> Result<(), Box<dyn std::error::Error>> {
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
    store: &dyn Store,
    ws: &Workspace,
    index: &Index,
) -> Result<(), Box<dyn std::error::Error>> {
    let catalog = Catalog::load(store)?;
    let tz = headcount_service::catalog::time_zone(&ws.time_zone)?;
    let at = now();
    let days = last_completed_days(at, HISTORY, &tz);
    let segments: Vec<_> = catalog.segments_of(ws.id).collect();
    let bar = progress::bar((segments.len() * days.len()) as u64, "segment-days");
    for entry in segments {
        let plan = catalog.segment_plan(entry, store)?;
        let sizer = Sizer {
            store,
            counting: Counting::Memory { index, plan: &plan },
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

fn print_walkthrough(address: std::net::SocketAddr, key: &str, segment: SegmentId) {
    let base = format!("http://{address}");
    let auth = "-H \"Authorization: Bearer $HEADCOUNT_KEY\"";
    crate::output::line(format_args!(
        "headcount demo: {base} (workspace \"{WORKSPACE}\")\n\n  \
         console: {base}/console  (sign in with this key: {key})\n\n  \
         export HEADCOUNT_KEY={key}\n  \
         curl -s '{base}/segments/list' {auth}\n  \
         curl -s '{base}/segments/details?segment_id={segment}' {auth}\n  \
         curl -s '{base}/segments/data_series?segment_id={segment}&length=30' {auth}\n  \
         curl -s -X POST '{base}/users/track' {auth} -H 'Content-Type: application/json' \\\n    \
         -d '{{\"attributes\":[{{\"external_id\":\"new-user\",\"country\":\"FR\"}}]}}'\n"
    ));
}
