//! Creating and editing a segment (the filter's errors shown at the path the API's
//! 400 names, and a preview of its sizes before saving), and archiving one after a
//! confirmation. Saving goes through the API's own create, update and archive.

use super::chart::{self, Series};
use super::form::FormData;
use super::jsonview;
use super::list::when;
use super::page;
use super::segment::find;
use super::session::Visitor;
use crate::error::ApiError;
use crate::extract::{BodyBytes, JsonObject};
use crate::routes::preview::{self, Preview};
use crate::routes::segments;
use crate::state::{AppState, read};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use headcount_model::describe::describe;
use headcount_model::{Day, Filter, SegmentId};
use headcount_store::Permission;
use maud::{Markup, html};
use serde_json::{Map, Value, json};

/// What the form holds, as typed.
#[derive(Default)]
struct Draft {
    name: String,
    filter: String,
    description: String,
    tags: String,
}

impl Draft {
    fn read(form: &FormData) -> Draft {
        Draft {
            name: form.text("name").to_string(),
            filter: form.text("filter").to_string(),
            description: form.text("description").to_string(),
            tags: form.text("tags").to_string(),
        }
    }

    fn tags(&self) -> Vec<String> {
        self.tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The API body of this draft; `with_name` false leaves an empty name out (a
    /// preview needs none). A filter that is not JSON is an error at its line.
    fn body(&self, with_name: bool) -> Result<Map<String, Value>, Problem> {
        let mut body = Map::new();
        if with_name || !self.name.trim().is_empty() {
            body.insert("name".into(), json!(self.name));
        }
        if !self.filter.trim().is_empty() {
            let filter: Value = serde_json::from_str(&self.filter).map_err(|e| Problem {
                field: Field::Filter,
                message: format!("filter is not valid JSON: {e}"),
                line: Some(e.line()),
            })?;
            body.insert("filter".into(), filter);
        }
        body.insert("description".into(), json!(self.description));
        body.insert("tags".into(), json!(self.tags()));
        Ok(body)
    }
}

/// The field an error belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    Name,
    Filter,
    Description,
    Tags,
    Form,
}

/// An error shown on the form.
struct Problem {
    field: Field,
    message: String,
    /// The line of a JSON syntax error.
    line: Option<usize>,
}

impl Problem {
    /// The API's 400 message, at the field it names.
    fn from_api(message: String) -> Problem {
        let head: String = message
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let field = match head.as_str() {
            "name" => Field::Name,
            "filter" => Field::Filter,
            "description" => Field::Description,
            "tags" => Field::Tags,
            _ => Field::Form,
        };
        Problem {
            field,
            message,
            line: None,
        }
    }
}

/// Which form: a new segment, or an existing one.
#[derive(Clone, Copy)]
enum Target {
    New,
    Existing(SegmentId),
}

impl Target {
    fn action(self) -> String {
        match self {
            Target::New => "/console/segments/new".into(),
            Target::Existing(id) => format!("/console/segments/{id}/edit"),
        }
    }
}

struct Shown<'a> {
    visitor: &'a Visitor,
    target: Target,
    title: &'a str,
    draft: &'a Draft,
    problem: Option<&'a Problem>,
    preview: Option<(&'a Preview, String)>,
}

fn field_error(shown: &Shown<'_>, field: Field, id: &str) -> Markup {
    html! {
        @if let Some(p) = shown.problem.filter(|p| p.field == field) {
            p.field-error id=(id) role="alert" { (p.message) }
        }
    }
}

fn render(shown: &Shown<'_>) -> Markup {
    let draft = shown.draft;
    let invalid = |f: Field| shown.problem.is_some_and(|p| p.field == f);
    let described = |f: Field, hint: Option<&str>, error: &str| -> Option<String> {
        let mut ids: Vec<&str> = hint.into_iter().collect();
        if invalid(f) {
            ids.push(error);
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let where_marked = shown
        .problem
        .filter(|p| p.field == Field::Filter)
        .and_then(|p| {
            if let Some(line) = p.line {
                return Some(jsonview::marked_line(&draft.filter, line));
            }
            let path = jsonview::error_path(&p.message)?;
            let value: Value = serde_json::from_str(&draft.filter).ok()?;
            Some(jsonview::marked(&value, &path))
        });
    let save_label = match shown.target {
        Target::New => "Create segment",
        Target::Existing(_) => "Save changes",
    };
    let cancel = match shown.target {
        Target::New => "/console".to_string(),
        Target::Existing(id) => format!("/console/segments/{id}"),
    };
    html! {
        p.crumbs { a href="/console" { "Segments" } " / " }
        h1 { (shown.title) }
        @if let Some(p) = shown.problem.filter(|p| p.field == Field::Form) {
            p.error #form-error role="alert" { (p.message) }
        }
        form.edit method="post" action=(shown.target.action()) novalidate {
            input type="hidden" name="csrf" value=(shown.visitor.csrf);
            div.field {
                label for="name" { "Name" }
                input #name type="text" name="name" value=(draft.name) autocomplete="off"
                    aria-invalid=[invalid(Field::Name).then_some("true")]
                    aria-describedby=[described(Field::Name, None, "name-error")]
                    autofocus[invalid(Field::Name)];
                (field_error(shown, Field::Name, "name-error"))
            }
            div.field {
                label for="filter" { "Filter (JSON)" }
                p.hint #filter-hint {
                    "A filter node as in the API, for example "
                    code { r#"{"all": [{"attribute": "country", "op": "eq", "value": "FR"}, {"event": "session_start", "op": "gte", "value": 1, "within_days": 7}]}"# }
                }
                textarea #filter name="filter" rows="12" spellcheck="false"
                    aria-invalid=[invalid(Field::Filter).then_some("true")]
                    aria-describedby=[described(Field::Filter, Some("filter-hint"), "filter-error")]
                    autofocus[invalid(Field::Filter)] { (draft.filter) }
                (field_error(shown, Field::Filter, "filter-error"))
                @if let Some(marked) = where_marked {
                    div.where {
                        p { "Where the error is:" }
                        (marked)
                    }
                }
            }
            div.field {
                label for="description" { "Description" }
                textarea #description name="description" rows="2"
                    aria-invalid=[invalid(Field::Description).then_some("true")]
                    aria-describedby=[described(Field::Description, None, "description-error")] { (draft.description) }
                (field_error(shown, Field::Description, "description-error"))
            }
            div.field {
                label for="tags" { "Tags" }
                p.hint #tags-hint { "Separated by commas." }
                input #tags type="text" name="tags" value=(draft.tags) autocomplete="off"
                    aria-invalid=[invalid(Field::Tags).then_some("true")]
                    aria-describedby=[described(Field::Tags, Some("tags-hint"), "tags-error")];
                (field_error(shown, Field::Tags, "tags-error"))
            }
            div.actions {
                button type="submit" name="intent" value="preview" { "Preview" }
                button.primary type="submit" name="intent" value="save" { (save_label) }
                a href=(cancel) { "Cancel" }
            }
        }
        @if let Some((p, sentence)) = &shown.preview {
            @let today = Day::containing(p.as_of, &shown.visitor.caller.tz);
            @let points: Vec<(Day, u64)> = p.days.iter().copied().chain([(today, p.live_size)]).collect();
            @let series = [Series { name: "Preview", points: &points }];
            section #preview aria-labelledby="preview-heading" {
                h2 #preview-heading tabindex="-1" { "Preview" }
                p.lead { (sentence) }
                @if !p.warnings.is_empty() {
                    ul.warnings #preview-warnings aria-label="Warnings" {
                        @for warning in &p.warnings { li role="status" { (warning) } }
                    }
                }
                p.big { "Today, so far: " strong #preview-live { (p.live_size) } " users"
                    span.meta { " (as of " (when(p.as_of, &shown.visitor.caller.tz)) ")" } }
                (chart::chart(&series, today, "Size over the last 30 completed days and today"))
                (chart::table(&series, today, "Previewed daily size"))
            }
        }
    }
}

fn show(status: StatusCode, shown: &Shown<'_>) -> Response {
    page::respond(
        status,
        page::shell(shown.title, Some(shown.visitor), render(shown)),
    )
}

/// An API refusal other than a 400, as a page.
fn refused(e: ApiError, visitor: &Visitor) -> Response {
    match e {
        ApiError::Forbidden(reason) => page::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            &reason,
            Some(visitor),
        ),
        ApiError::BadRequest(message) => {
            page::error(StatusCode::BAD_REQUEST, "Refused", &message, Some(visitor))
        }
        other => page::internal(other, Some(visitor)),
    }
}

/// `GET /console/segments/new`.
pub async fn new_form(visitor: Visitor) -> Response {
    if let Err(refused) = visitor.require(Permission::SegmentsCreate) {
        return refused;
    }
    show(
        StatusCode::OK,
        &Shown {
            visitor: &visitor,
            target: Target::New,
            title: "New segment",
            draft: &Draft::default(),
            problem: None,
            preview: None,
        },
    )
}

/// `GET /console/segments/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = visitor.require(Permission::SegmentsUpdate) {
        return refused;
    }
    let entry = match find(&state, &visitor, &id) {
        Ok(e) => e,
        Err(page) => return page,
    };
    let s = &entry.segment;
    let draft = Draft {
        name: s.name.clone(),
        filter: serde_json::to_string_pretty(&s.filter).unwrap_or_default(),
        description: s.text_description.clone(),
        tags: s.tags.join(", "),
    };
    let title = format!("Edit {}", s.name);
    show(
        StatusCode::OK,
        &Shown {
            visitor: &visitor,
            target: Target::Existing(s.id),
            title: &title,
            draft: &draft,
            problem: None,
            preview: None,
        },
    )
}

/// Previews a draft, or saves it with `save`; answers the form again on a 400.
async fn submit(
    state: AppState,
    visitor: Visitor,
    target: Target,
    title: &str,
    body: &[u8],
) -> Response {
    let form = FormData::parse(body);
    if let Err(refused) = visitor.check_csrf(form.get("csrf")) {
        return refused;
    }
    let needed = match target {
        Target::New => Permission::SegmentsCreate,
        Target::Existing(_) => Permission::SegmentsUpdate,
    };
    if let Err(refused) = visitor.require(needed) {
        return refused;
    }
    let draft = Draft::read(&form);
    let previewing = form.get("intent") == Some("preview");
    let answer = |problem: Option<Problem>, preview: Option<(Preview, String)>| {
        let status = if problem.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        show(
            status,
            &Shown {
                visitor: &visitor,
                target,
                title,
                draft: &draft,
                problem: problem.as_ref(),
                preview: preview.as_ref().map(|(p, s)| (p, s.clone())),
            },
        )
    };
    let body = match draft.body(!previewing) {
        Ok(body) => body,
        Err(problem) => return answer(Some(problem), None),
    };
    if previewing {
        if !visitor.may(Permission::SegmentsCreate) {
            let problem = Problem {
                field: Field::Form,
                message: "A preview needs the permission segments.create, which this key lacks."
                    .into(),
                line: None,
            };
            return answer(Some(problem), None);
        }
        return match preview::compute(&state, &visitor.caller, &body).await {
            Ok(p) => {
                let sentence = body
                    .get("filter")
                    .and_then(|f| Filter::parse(f, "filter").ok())
                    .map(|filter| {
                        let catalog = read(&state.catalog);
                        describe(&filter, &|r| {
                            catalog
                                .segment_in(visitor.caller.workspace, r)
                                .map(|e| e.segment.name.clone())
                        })
                    })
                    .unwrap_or_default();
                answer(None, Some((p, sentence)))
            }
            Err(ApiError::BadRequest(message)) => answer(Some(Problem::from_api(message)), None),
            Err(e) => refused(e, &visitor),
        };
    }
    let caller = Extension(visitor.caller.clone());
    let saved = match target {
        Target::New => segments::create(State(state.clone()), caller, JsonObject(body))
            .await
            .map(|(_, Json(answer))| answer.segment_id.parse::<SegmentId>().ok()),
        Target::Existing(id) => {
            let mut body = body;
            body.insert("segment_id".into(), json!(id.to_string()));
            segments::update(State(state.clone()), caller, JsonObject(body))
                .await
                .map(|_| Some(id))
        }
    };
    match saved {
        Ok(Some(id)) => Redirect::to(&format!("/console/segments/{id}")).into_response(),
        Ok(None) => page::internal("create answered without a segment_id", Some(&visitor)),
        Err(ApiError::BadRequest(message)) => answer(Some(Problem::from_api(message)), None),
        Err(e) => refused(e, &visitor),
    }
}

/// `POST /console/segments/new`: preview or create.
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    BodyBytes(body): BodyBytes,
) -> Response {
    submit(state, visitor, Target::New, "New segment", &body).await
}

/// `POST /console/segments/{id}/edit`: preview or save.
pub async fn update(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Response {
    let entry = match find(&state, &visitor, &id) {
        Ok(e) => e,
        Err(page) => return page,
    };
    let title = format!("Edit {}", entry.segment.name);
    submit(
        state,
        visitor,
        Target::Existing(entry.segment.id),
        &title,
        &body,
    )
    .await
}

/// `GET /console/segments/{id}/archive`: the confirmation.
pub async fn confirm_archive(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = visitor.require(Permission::SegmentsArchive) {
        return refused;
    }
    let entry = match find(&state, &visitor, &id) {
        Ok(e) => e,
        Err(page) => return page,
    };
    let s = &entry.segment;
    let title = format!("Archive {}?", s.name);
    let body = html! {
        p.crumbs { a href="/console" { "Segments" } " / " a href={"/console/segments/" (s.id)} { (s.name) } }
        h1 { (title) }
        p { "An archived segment leaves the list of segments and can no longer be edited or used in another segment's filter. "
            "Its history stays readable through the API. The console cannot undo this." }
        form method="post" action={"/console/segments/" (s.id) "/archive"} {
            input type="hidden" name="csrf" value=(visitor.csrf);
            div.actions {
                button.danger type="submit" autofocus { "Archive segment" }
                a href={"/console/segments/" (s.id)} { "Cancel" }
            }
        }
    };
    page::respond(StatusCode::OK, page::shell(&title, Some(&visitor), body))
}

/// `POST /console/segments/{id}/archive`.
pub async fn archive(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Response {
    if let Err(refused) = visitor.check_csrf(FormData::parse(&body).get("csrf")) {
        return refused;
    }
    if let Err(refused) = visitor.require(Permission::SegmentsArchive) {
        return refused;
    }
    let entry = match find(&state, &visitor, &id) {
        Ok(e) => e,
        Err(page) => return page,
    };
    let id = entry.segment.id;
    let mut body = Map::new();
    body.insert("segment_id".into(), json!(id.to_string()));
    match segments::archive(
        State(state.clone()),
        Extension(visitor.caller.clone()),
        JsonObject(body),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/segments/{id}")).into_response(),
        Err(e) => refused(e, &visitor),
    }
}
