//! The segments page: every live segment (archived ones behind a toggle) with its
//! identifier, tags, today's live size, its change over 7 and 30 days, a 30-day
//! sparkline and when its sizes were last computed; sortable and filterable.

use super::chart::sparkline;
use super::form::FormData;
use super::page::{self, change};
use super::session::{self, Refusal, Visitor};
use super::signin;
use crate::routes::segments::series_blocking;
use crate::state::{AppState, now, read};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use headcount_model::day::series_days;
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_store::Permission;
use jiff::tz::TimeZone;
use maud::{Markup, html};

/// `GET /console`: the sign-in form, or the segments page once signed in.
pub async fn home(State(state): State<AppState>, parts: Parts) -> Response {
    match session::visitor(&state, &parts).await {
        Ok(visitor) => segments_page(&state, &visitor, &FormData::query(parts.uri.query())).await,
        Err(Refusal::SignedOut) => signin::sign_in_form(&parts.headers, StatusCode::OK, None),
        Err(Refusal::Page(page)) => page,
    }
}

/// A segment as the list shows it.
struct Row {
    id: SegmentId,
    name: String,
    tags: Vec<String>,
    archived: bool,
    /// 31 points: the last 30 completed days and today (live), when permitted.
    points: Vec<(Day, u64)>,
    computed: Option<Timestamp>,
}

impl Row {
    fn live(&self) -> Option<u64> {
        self.points.last().map(|p| p.1)
    }

    fn delta(&self, days: usize) -> Option<i64> {
        let n = self.points.len();
        let then = self.points.get(n.checked_sub(days + 1)?)?.1;
        Some(self.live()? as i64 - then as i64)
    }
}

/// How the list is sorted.
#[derive(Clone, Copy, PartialEq)]
enum Sort {
    Name,
    Size,
    Week,
    Month,
    Computed,
}

impl Sort {
    const ALL: [(Sort, &'static str, &'static str); 5] = [
        (Sort::Name, "name", "Name"),
        (Sort::Size, "size", "Today"),
        (Sort::Week, "change7", "7 days"),
        (Sort::Month, "change30", "30 days"),
        (Sort::Computed, "computed", "Computed"),
    ];

    fn parse(text: &str) -> Sort {
        Sort::ALL
            .iter()
            .find(|(_, name, _)| *name == text)
            .map_or(Sort::Name, |s| s.0)
    }

    fn name(self) -> &'static str {
        Sort::ALL
            .iter()
            .find(|s| s.0 == self)
            .map_or("name", |s| s.1)
    }
}

/// The view's settings, read from the query string.
struct View {
    q: String,
    tag: String,
    archived: bool,
    sort: Sort,
    descending: bool,
}

impl View {
    fn read(query: &FormData) -> View {
        View {
            q: query.text("q").trim().to_string(),
            tag: query.text("tag").to_string(),
            archived: query.get("archived") == Some("1"),
            sort: Sort::parse(query.text("sort")),
            descending: query.get("dir") == Some("desc"),
        }
    }

    /// The link to this view sorted by `sort` (flipping the direction when it already is).
    fn sorted_by(&self, sort: Sort) -> String {
        let descending = if self.sort == sort {
            !self.descending
        } else {
            sort != Sort::Name
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        if !self.tag.is_empty() {
            query.append_pair("tag", &self.tag);
        }
        if self.archived {
            query.append_pair("archived", "1");
        }
        query.append_pair("sort", sort.name());
        query.append_pair("dir", if descending { "desc" } else { "asc" });
        format!("/console?{}", query.finish())
    }
}

/// When, in the workspace's time zone, to the minute.
pub fn when(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

async fn segments_page(state: &AppState, visitor: &Visitor, query: &FormData) -> Response {
    if let Err(refused) = visitor.require(Permission::SegmentsList) {
        return refused;
    }
    let view = View::read(query);
    let (mut rows, tags) = {
        let catalog = read(&state.catalog);
        let mut tags: Vec<String> = Vec::new();
        let rows: Vec<Row> = catalog
            .segments_of(visitor.caller.workspace)
            .filter(|e| view.archived || e.segment.archived_at.is_none())
            .inspect(|e| tags.extend(e.segment.tags.iter().cloned()))
            .filter(|e| {
                view.q.is_empty()
                    || e.segment
                        .name
                        .to_lowercase()
                        .contains(&view.q.to_lowercase())
            })
            .filter(|e| view.tag.is_empty() || e.segment.tags.contains(&view.tag))
            .map(|e| Row {
                id: e.segment.id,
                name: e.segment.name.clone(),
                tags: e.segment.tags.clone(),
                archived: e.segment.archived_at.is_some(),
                points: Vec::new(),
                computed: None,
            })
            .collect();
        tags.sort();
        tags.dedup();
        (rows, tags)
    };
    let with_sizes = visitor.may(Permission::SegmentsDataSeries);
    if with_sizes {
        let shared = state.clone();
        let caller = visitor.caller.clone();
        let ids: Vec<SegmentId> = rows.iter().map(|r| r.id).collect();
        let sized = tokio::task::spawn_blocking(move || {
            let at = now();
            let days = series_days(at, 31, &caller.tz);
            ids.iter()
                .map(|id| {
                    let points = series_blocking(&shared, &caller, *id, &days, at)?;
                    let computed = shared.store.last_computed_at(*id)?;
                    Ok((points, computed))
                })
                .collect::<Result<Vec<_>, crate::error::ApiError>>()
        })
        .await;
        match sized {
            Ok(Ok(sized)) => {
                for (row, (points, computed)) in rows.iter_mut().zip(sized) {
                    row.points = points;
                    row.computed = computed;
                }
            }
            Ok(Err(e)) => return page::internal(e, Some(visitor)),
            Err(e) => return page::internal(e, Some(visitor)),
        }
    }
    sort(&mut rows, view.sort);
    if view.descending {
        rows.reverse();
    }
    let title = "Segments";
    page::respond(
        StatusCode::OK,
        page::shell(
            title,
            Some(visitor),
            render(visitor, &view, &rows, &tags, with_sizes),
        ),
    )
}

fn sort(rows: &mut [Row], by: Sort) {
    match by {
        Sort::Name => rows.sort_by_cached_key(|r| r.name.to_lowercase()),
        Sort::Size => rows.sort_by_key(|r| r.live()),
        Sort::Week => rows.sort_by_key(|r| r.delta(7)),
        Sort::Month => rows.sort_by_key(|r| r.delta(30)),
        Sort::Computed => rows.sort_by_key(|r| r.computed),
    }
}

fn render(visitor: &Visitor, view: &View, rows: &[Row], tags: &[String], sizes: bool) -> Markup {
    let tz = &visitor.caller.tz;
    let header = |sort: Sort, label: &str| {
        let current = view.sort == sort;
        let aria = match (current, view.descending) {
            (false, _) => None,
            (true, false) => Some("ascending"),
            (true, true) => Some("descending"),
        };
        html! {
            th scope="col" aria-sort=[aria] {
                a href=(view.sorted_by(sort)) {
                    (label)
                    @if current { span aria-hidden="true" { @if view.descending { " ↓" } @else { " ↑" } } }
                }
            }
        }
    };
    html! {
        div.heading {
            h1 { "Segments" }
            @if visitor.may(Permission::SegmentsCreate) {
                a.button.primary href="/console/segments/new" { "New segment" }
            }
        }
        form.filters method="get" action="/console" role="search" aria-label="Filter the segments" {
            div.field {
                label for="q" { "Name contains" }
                input #q type="search" name="q" value=(view.q);
            }
            div.field {
                label for="tag" { "Tag" }
                select #tag name="tag" {
                    option value="" { "Any tag" }
                    @for t in tags {
                        option value=(t) selected[*t == view.tag] { (t) }
                    }
                }
            }
            div.field.check {
                input #archived type="checkbox" name="archived" value="1" checked[view.archived];
                label for="archived" { "Show archived segments" }
            }
            input type="hidden" name="sort" value=(view.sort.name());
            input type="hidden" name="dir" value=(if view.descending { "desc" } else { "asc" });
            button type="submit" { "Apply" }
        }
        p.count role="status" {
            (rows.len()) @if rows.len() == 1 { " segment" } @else { " segments" }
            @if !sizes { " · this key lacks the permission segments.data_series, so sizes are not shown" }
        }
        @if rows.is_empty() {
            p { "No segment matches." }
        } @else {
            div.scroll {
                table.segments {
                    caption.visually-hidden { "Segments, their sizes and trends" }
                    thead {
                        tr {
                            (header(Sort::Name, "Name"))
                            th scope="col" { "API identifier" }
                            th scope="col" { "Tags" }
                            (header(Sort::Size, "Today"))
                            (header(Sort::Week, "7 days"))
                            (header(Sort::Month, "30 days"))
                            th scope="col" { "Last 30 days" }
                            (header(Sort::Computed, "Computed"))
                        }
                    }
                    tbody {
                        @for row in rows {
                            tr data-segment=(row.id) {
                                td data-label="Name" {
                                    a href={"/console/segments/" (row.id)} { (row.name) }
                                    @if row.archived { " " span.badge { "archived" } }
                                }
                                td data-label="API identifier" {
                                    code.id { (row.id) }
                                    " "
                                    button.copy type="button" data-copy=(row.id.to_string())
                                        aria-label={"Copy the API identifier of " (row.name)} { "Copy" }
                                }
                                td data-label="Tags" {
                                    @for t in &row.tags { span.tag { (t) } " " }
                                }
                                td.num data-label="Today" {
                                    @match row.live() { Some(v) => (v), None => "—" }
                                }
                                td.num data-label="7 days" {
                                    @match row.delta(7) { Some(d) => (change(d)), None => "—" }
                                }
                                td.num data-label="30 days" {
                                    @match row.delta(30) { Some(d) => (change(d)), None => "—" }
                                }
                                td data-label="Last 30 days" {
                                    @if row.points.len() > 1 {
                                        (sparkline(&row.points[1..]))
                                    } @else { "—" }
                                }
                                td data-label="Computed" {
                                    @match row.computed {
                                        Some(t) => time datetime=(t.to_string()) { (when(t, tz)) },
                                        None => "not yet",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
