//! `headcount eval`: sizes of ad-hoc filters on completed days, computed from the data
//! directory without storing anything — for exploring a filter before saving it as a
//! segment, and for benchmarks. Prints JSON with the timings of loading and evaluating.

use super::{CmdResult, open_shared_existing, workspace};
use crate::args::EvalArgs;
use crate::commands::snapshot::{Checkpoint, load_index};
use headcount_engine::{Plan, PlanError};
use headcount_model::{Day, Filter, SegmentId};
use headcount_service::catalog::time_zone;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Runs an evaluation.
pub fn run(dir: &Path, args: EvalArgs) -> CmdResult {
    let entries = read_filters(&args.filters)?;
    let days = days(&args)?;
    let store = open_shared_existing(dir)?;
    let ws = workspace(store.as_ref(), dir, &args.workspace)?;
    let tz = time_zone(&ws.time_zone)?;
    let now = headcount_service::state::now();
    if let Some(day) = days.iter().find(|d| d.end(&tz) > now) {
        return Err(format!(
            "{day} has not ended yet in {}: eval sizes completed days",
            ws.time_zone
        )
        .into());
    }
    let by_id: HashMap<SegmentId, Filter> = entries
        .iter()
        .filter_map(|(_, id, f)| id.map(|id| (id, f.clone())))
        .collect();
    let plans: Vec<(String, Plan)> = entries
        .iter()
        .map(|(name, _, filter)| {
            Plan::compile(filter, &|id| {
                by_id
                    .get(&id)
                    .cloned()
                    .map(Arc::new)
                    .ok_or(PlanError::UnknownSegment(id))
            })
            .map(|plan| (name.clone(), plan))
            .map_err(|e| format!("filter \"{name}\": {e}"))
        })
        .collect::<Result<_, _>>()?;
    if store.workspace_engine(ws.id)? == headcount_store::ENGINE_CLICKHOUSE {
        let evaluating = Instant::now();
        let ends: Vec<_> = days.iter().map(|day| day.end(&tz)).collect();
        let filters: Vec<&Filter> = entries.iter().map(|(_, _, f)| f).collect();
        let (grid, users) =
            super::clickhouse::sizes(&args.clickhouse, &ws, &filters, &by_id, &ends, &tz, now)?;
        let results: Vec<Value> = entries
            .iter()
            .enumerate()
            .map(|(j, (name, _, _))| {
                let sizes: Map<String, Value> = days
                    .iter()
                    .zip(&grid)
                    .map(|(day, row)| (day.to_string(), row.get(j).copied().unwrap_or(0).into()))
                    .collect();
                json!({ "name": name, "sizes": sizes })
            })
            .collect();
        let out = json!({
            "engine": "clickhouse",
            "users": users,
            "eval_seconds": evaluating.elapsed().as_secs_f64(),
            "results": results,
        });
        crate::output::line(out);
        return Ok(ExitCode::SUCCESS);
    }
    let loading = Instant::now();
    let index = load_index(dir, store.as_ref(), &ws, Checkpoint::ReadOnly)?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let evaluating = Instant::now();
    let ends: Vec<_> = days.iter().map(|day| day.end(&tz)).collect();
    let refs: Vec<&Plan> = plans.iter().map(|(_, plan)| plan).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let grid = index.size_grid(&refs, &ends, &tz, threads);
    let mut sizes: Vec<Map<String, Value>> = vec![Map::new(); plans.len()];
    for (day, row) in days.iter().zip(grid) {
        for (out, size) in sizes.iter_mut().zip(row) {
            out.insert(day.to_string(), size.into());
        }
    }
    let eval_seconds = evaluating.elapsed().as_secs_f64();
    let results: Vec<Value> = plans
        .iter()
        .zip(sizes)
        .map(|((name, _), sizes)| json!({ "name": name, "sizes": sizes }))
        .collect();
    let out = json!({
        "users": index.user_count(),
        "events": index.event_count(),
        "load_seconds": load_seconds,
        "eval_seconds": eval_seconds,
        "results": results,
    });
    crate::output::line(out);
    Ok(ExitCode::SUCCESS)
}

type Entry = (String, Option<SegmentId>, Filter);

fn read_filters(path: &Path) -> Result<Vec<Entry>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    let items = json.as_array().ok_or_else(|| {
        format!(
            "{}: expected a JSON array of {{\"name\", \"filter\", \"id\"?}}",
            path.display()
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("[{i}].name must be a string"))?;
            let id = match item.get("id") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("[{i}].id must be a UUID"))?,
                ),
            };
            let filter = Filter::parse(
                item.get("filter").unwrap_or(&Value::Null),
                &format!("[{i}].filter"),
            )?;
            Ok((name.to_string(), id, filter))
        })
        .collect()
}

fn days(args: &EvalArgs) -> Result<Vec<Day>, Box<dyn std::error::Error>> {
    let parse = |s: &str| {
        s.parse::<Day>()
            .map_err(|_| format!("\"{s}\" is not a date YYYY-MM-DD"))
    };
    let mut days: Vec<Day> = args
        .days
        .iter()
        .map(|d| parse(d))
        .collect::<Result<_, _>>()?;
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let (from, to) = (parse(from)?, parse(to)?);
        if from > to {
            return Err(format!("--from {from} is after --to {to}").into());
        }
        days.extend((0..=from.days_until(to)).map(|n| from.add_days(n)));
    }
    if days.is_empty() {
        return Err("give at least one --day, or --from and --to".into());
    }
    Ok(days)
}
