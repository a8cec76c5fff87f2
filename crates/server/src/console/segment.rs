//! A segment's page: its chart over 7, 30 or 100 days or a date range (other segments
//! can join it), every day's date and exact size as text, its filter in plain English
//! and as JSON, when its sizes were last computed, and the `curl` of `data_series`.

use super::chart::{self, MAX_SERIES, Series};
use super::form::FormData;
use super::list::when;
use super::page::{self, change};
use super::session::{Visitor, over_tls};
use crate::catalog::SegmentEntry;
use crate::routes::segments::{MAX_LENGTH, series_points};
use crate::state::{AppState, now, read};
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use headcount_model::day::series_days;
use headcount_model::describe::describe;
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::Permission;
use maud::{Markup, html};

/// The segment `id` names in the visitor's workspace, or the 404 page (the same for
/// an unknown id and another workspace's).
pub fn find(state: &AppState, visitor: &Visitor, id: &str) -> Result<SegmentEntry, Response> {
    id.parse::<SegmentId>()
        .ok()
        .and_then(|id| {
            read(&state.catalog)
                .segment_in(visitor.caller.workspace, id)
                .cloned()
        })
        .ok_or_else(|| {
            page::error(
                StatusCode::NOT_FOUND,
                "No such segment",
                "This workspace has no segment with that identifier.",
                Some(visitor),
            )
        })
}

/// The days a chart shows: `days=7|30|100` (ending today), or `from` and `to` (at
/// most 100 days, ending today at the latest); a message when the range is refused.
fn chosen_days(
    query: &FormData,
    now: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> (Vec<Day>, Option<String>) {
    let today = Day::containing(now, tz);
    let (from, to) = (query.text("from"), query.text("to"));
    if !from.is_empty() || !to.is_empty() {
        let parsed = (from.parse::<Day>(), to.parse::<Day>());
        let refusal = match parsed {
            (Ok(from), Ok(to)) => {
                let to = to.min(today);
                let count = from.days_until(to) + 1;
                if count < 1 {
                    "The range's start must be on or before its end (and today).".to_string()
                } else if count > i64::from(MAX_LENGTH) {
                    format!("A range spans at most {MAX_LENGTH} days.")
                } else {
                    return ((0..count).map(|n| from.add_days(n)).collect(), None);
                }
            }
            _ => "Both dates of a range are needed, as YYYY-MM-DD.".to_string(),
        };
        return (series_days(now, 100, tz), Some(refusal));
    }
    let length = match query.text("days") {
        "7" => 7,
        "30" => 30,
        _ => 100,
    };
    (series_days(now, length, tz), None)
}

/// `GET /console/segments/{id}`.
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    if let Err(refused) = visitor.require(Permission::SegmentsDetails) {
        return refused;
    }
    let entry = match find(&state, &visitor, &id) {
        Ok(e) => e,
        Err(page) => return page,
    };
    let id = entry.segment.id;
    let query = FormData::query(parts.uri.query());
    let caller = &visitor.caller;
    let at = now();
    let today = Day::containing(at, &caller.tz);
    let (description, others) = {
        let catalog = read(&state.catalog);
        // An archived segment's filter may be held only in the store: read it there.
        let description = catalog
            .stored_filter(id, state.store.as_ref())
            .map(|filter| {
                describe(&filter, &|r| {
                    catalog
                        .segment_in(caller.workspace, r)
                        .map(|e| e.segment.name.clone())
                })
            })
            .unwrap_or_default();
        let others: Vec<(SegmentId, String)> = catalog
            .segments_of(caller.workspace)
            .filter(|e| e.segment.id != id && e.segment.archived_at.is_none())
            .map(|e| (e.segment.id, e.segment.name.clone()))
            .collect();
        (description, others)
    };
    let store = state.store.clone();
    let last = match tokio::task::spawn_blocking(move || store.last_computed_at(id)).await {
        Ok(Ok(last)) => last,
        Ok(Err(e)) => return page::internal(e, Some(&visitor)),
        Err(e) => return page::internal(e, Some(&visitor)),
    };
    let (days, range_problem) = chosen_days(&query, at, &caller.tz);
    let compare: Vec<(SegmentId, String)> = query
        .all("compare")
        .into_iter()
        .filter_map(|c| c.parse::<SegmentId>().ok())
        .filter_map(|c| others.iter().find(|o| o.0 == c).cloned())
        .take(MAX_SERIES - 1)
        .collect();
    let mut lines: Vec<(String, Vec<(Day, u64)>)> = Vec::new();
    let charted = visitor.may(Permission::SegmentsDataSeries);
    if charted {
        let ids = std::iter::once((id, entry.segment.name.clone())).chain(compare.iter().cloned());
        for (sid, name) in ids {
            match series_points(&state, caller, sid, &days, at).await {
                Ok(points) => lines.push((name, points)),
                Err(e) => return page::internal(e, Some(&visitor)),
            }
        }
    }
    let body = render(&Shown {
        visitor: &visitor,
        entry: &entry,
        description: &description,
        last,
        days: &days,
        range_problem: range_problem.as_deref(),
        query: &query,
        lines: &lines,
        compare: &compare,
        others: &others,
        today,
        base: base_url(&parts.headers),
        charted,
    });
    page::respond(
        StatusCode::OK,
        page::shell(&entry.segment.name, Some(&visitor), body),
    )
}

/// The API's address as the browser reached it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("127.0.0.1:8080");
    let scheme = if over_tls(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

struct Shown<'a> {
    visitor: &'a Visitor,
    entry: &'a SegmentEntry,
    description: &'a str,
    last: Option<Timestamp>,
    days: &'a [Day],
    range_problem: Option<&'a str>,
    query: &'a FormData,
    lines: &'a [(String, Vec<(Day, u64)>)],
    compare: &'a [(SegmentId, String)],
    others: &'a [(SegmentId, String)],
    today: Day,
    base: String,
    charted: bool,
}

/// A link to this page with `days` or the range, and `compare`.
fn link(id: SegmentId, range: &[(&str, &str)], compare: &[SegmentId]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in range {
        query.append_pair(k, v);
    }
    for c in compare {
        query.append_pair("compare", &c.to_string());
    }
    format!("/console/segments/{id}?{}", query.finish())
}

fn render(s: &Shown<'_>) -> Markup {
    let segment = &s.entry.segment;
    let id = segment.id;
    let tz = &s.visitor.caller.tz;
    let compare_ids: Vec<SegmentId> = s.compare.iter().map(|c| c.0).collect();
    let range: Vec<(&str, &str)> = ["days", "from", "to"]
        .into_iter()
        .filter_map(|k| s.query.get(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
    let active_days = s
        .query
        .get("days")
        .filter(|_| s.query.get("from").is_none_or(str::is_empty));
    let series: Vec<Series<'_>> = s
        .lines
        .iter()
        .map(|(name, points)| Series { name, points })
        .collect();
    let own = s.lines.first().map(|l| &l.1[..]).unwrap_or(&[]);
    let live = own.last().filter(|p| p.0 == s.today).map(|p| p.1);
    let delta = |back: usize| -> Option<i64> {
        let n = own.len();
        let then = own.get(n.checked_sub(back + 1)?)?.1;
        Some(live? as i64 - then as i64)
    };
    let (first, last) = (s.days.first(), s.days.last());
    let caption = match (first, last) {
        (Some(f), Some(l)) => format!("Daily size from {f} to {l}"),
        _ => "Daily size".to_string(),
    };
    let curl = format!(
        "curl -s '{}/segments/data_series?segment_id={id}&length=100' -H \"Authorization: Bearer $HEADCOUNT_KEY\"",
        s.base
    );
    let pretty = serde_json::to_string_pretty(&segment.filter).unwrap_or_default();
    html! {
        p.crumbs { a href="/console" { "Segments" } " / " }
        div.heading {
            h1 { (segment.name) @if segment.archived_at.is_some() { " " span.badge { "archived" } } }
            div.actions {
                @if segment.archived_at.is_none() && s.visitor.may(Permission::SegmentsUpdate) {
                    a.button href={"/console/segments/" (id) "/edit"} { "Edit" }
                }
                @if segment.archived_at.is_none() && s.visitor.may(Permission::SegmentsArchive) {
                    a.button.danger href={"/console/segments/" (id) "/archive"} { "Archive" }
                }
            }
        }
        p {
            "API identifier " code.id { (id) } " "
            button.copy type="button" data-copy=(id.to_string()) aria-label="Copy the API identifier" { "Copy" }
            @for t in &segment.tags { " " span.tag { (t) } }
        }
        @if !segment.text_description.is_empty() { p.lead { (segment.text_description) } }
        @if s.charted {
            dl.stats {
                div { dt { "Today, so far" } dd { @match live { Some(v) => (v), None => "—" } } }
                div { dt { "Change over 7 days" } dd { @match delta(7) { Some(d) => (change(d)), None => "—" } } }
                div { dt { "Change over 30 days" } dd { @match delta(30) { Some(d) => (change(d)), None => "—" } } }
                div { dt { "Last computed" } dd { @match s.last { Some(t) => time datetime=(t.to_string()) { (when(t, tz)) }, None => "not yet" } } }
            }
            section aria-labelledby="chart-heading" {
                h2 #chart-heading { "Size over time" }
                nav.range aria-label="Chart range" {
                    @for n in ["7", "30", "100"] {
                        @let current = active_days == Some(n) || (n == "100" && range.is_empty());
                        a href=(link(id, &[("days", n)], &compare_ids)) aria-current=[current.then_some("true")] { (n) " days" }
                    }
                }
                form.inline method="get" action={"/console/segments/" (id)} aria-label="Date range" {
                    div.field { label for="from" { "From" } input #from type="date" name="from" value=(s.query.text("from")); }
                    div.field { label for="to" { "To" } input #to type="date" name="to" value=(s.query.text("to")); }
                    @for c in &compare_ids { input type="hidden" name="compare" value=(c); }
                    button type="submit" { "Show range" }
                }
                @if let Some(problem) = s.range_problem { p.error role="alert" { (problem) } }
                a.skip-chart href="#days-table" { "Skip the chart to the table of days" }
                (chart::chart(&series, s.today, &caption))
                @if !s.compare.is_empty() {
                    ul.compared {
                        @for (cid, name) in s.compare {
                            @let rest: Vec<SegmentId> = compare_ids.iter().copied().filter(|c| c != cid).collect();
                            li { a href=(link(id, &range, &rest)) { "Remove " (name) " from the chart" } }
                        }
                    }
                }
                @if s.compare.len() + 1 < MAX_SERIES && !s.others.is_empty() {
                    form.inline method="get" action={"/console/segments/" (id)} aria-label="Compare" {
                        @for (k, v) in &range { input type="hidden" name=(k) value=(v); }
                        @for c in &compare_ids { input type="hidden" name="compare" value=(c); }
                        div.field {
                            label for="compare" { "Compare with" }
                            select #compare name="compare" {
                                @for (oid, name) in s.others {
                                    @if !compare_ids.contains(oid) { option value=(oid) { (name) } }
                                }
                            }
                        }
                        button type="submit" { "Add to the chart" }
                    }
                }
                div #days-table { (chart::table(&series, s.today, &caption)) }
            }
        } @else {
            p.note { "This key lacks the permission segments.data_series, so the sizes are not shown." }
        }
        section aria-labelledby="filter-heading" {
            h2 #filter-heading { "Filter" }
            p.lead { (s.description) }
            details open {
                summary { "As JSON" }
                pre.json { code { (pretty) } }
            }
        }
        section aria-labelledby="api-heading" {
            h2 #api-heading { "From the API" }
            p { "The last 100 days of this segment with " code { "data_series" } ":" }
            pre.curl { code #curl { (curl) } }
            button.copy type="button" data-copy=(curl) aria-label="Copy the curl command" { "Copy" }
        }
        p.meta { "Created " (when(segment.created_at, tz)) " · updated " (when(segment.updated_at, tz)) }
    }
}
