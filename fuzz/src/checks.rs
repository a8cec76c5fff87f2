//! The properties each fuzz target checks, shared by the fuzz targets (`fuzz/`, run by
//! hand with `cargo fuzz`) and by the regression test that replays every kept input in
//! CI (`crates/cli/tests/fuzz_regressions.rs`). Each check takes arbitrary bytes and
//! panics only when headcount breaks a property: a panic, a wrong round trip, a
//! series of the wrong shape.

use headcount_engine::{Index, Plan, PlanError};
use headcount_model::datetime;
use headcount_model::day::series_days;
use headcount_model::describe::describe;
use headcount_model::{Fact, Filter, Timestamp, UserKey};
use headcount_server::ingest::{TrackOptions, read_track_text};
use headcount_store::chunk;
use jiff::tz::TimeZone;

/// A check: arbitrary bytes in, a panic when a property breaks.
pub type Check = fn(&[u8]);

/// The targets, by name: the name of a fuzz target and of its folder of kept inputs.
pub const TARGETS: [(&str, Check); 6] = [
    ("ending_at", ending_at),
    ("filter", filter),
    ("track_body", track_body),
    ("import_line", import_line),
    ("chunk_decode", chunk_decode),
    ("checkpoint_decode", checkpoint_decode),
];

/// A fixed "now" so that a failure replays the same way.
fn now() -> Timestamp {
    Timestamp::from_second(1_780_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn zones() -> Vec<TimeZone> {
    [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Pacific/Kiritimati",
    ]
    .iter()
    .filter_map(|name| TimeZone::get(name).ok())
    .collect()
}

/// `ending_at`: whatever parses resolves in every zone to an instant whose series of
/// 100 days is 100 consecutive days, and `parse` agrees with `parse_checked`.
pub fn ending_at(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = datetime::parse_checked(text);
    assert_eq!(datetime::parse(text).is_some(), checked.is_ok(), "{text:?}");
    let Ok(written) = checked else {
        let _ = checked.map_err(|e| e.to_string());
        return;
    };
    for tz in zones() {
        let at = written.resolve(&tz).min(now());
        let days = series_days(at, 100, &tz);
        assert_eq!(days.len(), 100, "{text:?}");
        for pair in days.windows(2) {
            assert_eq!(pair[0].next(), pair[1], "{text:?}");
        }
    }
}

/// A small index with a few users and facts of every kind, for evaluating plans.
fn small_index() -> Index {
    let mut index = Index::new();
    let body = r#"{"attributes":[{"external_id":"a","_time":"2026-05-01T00:00:00Z","country":"FR","n":3,"ok":true,"at":"2026-04-01T10:00:00Z","tags":["x","y"]},{"external_id":"b","_time":"2026-05-02T00:00:00Z","country":"DE"}],"events":[{"external_id":"a","name":"login","time":"2026-05-10T10:00:00Z"},{"user_alias":{"alias_name":"n","alias_label":"l"},"name":"login","time":"2026-05-11T10:00:00Z"}],"purchases":[{"external_id":"b","product_id":"p","currency":"EUR","price":3.5,"time":"2026-05-12T00:00:00Z"}]}"#;
    if let Ok(track) = read_track_text(body, &options(true)) {
        for (user, fact) in &track.facts {
            index.apply(user, fact);
        }
    }
    index
}

/// The filter language: any JSON either is refused with a path and a reason, or
/// parses into a filter that describes itself, compiles (references to unknown
/// segments refused) and evaluates without panicking.
pub fn filter(data: &[u8]) {
    if data.len() > 64 << 10 {
        return;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let filter = match Filter::parse(&json, "filter") {
        Ok(filter) => filter,
        Err(e) => {
            assert!(e.path.starts_with("filter"), "{e}");
            assert!(!e.reason.is_empty());
            return;
        }
    };
    let _ = describe(&filter, &|_| None);
    let refs = filter.segment_refs();
    match Plan::compile(&filter, &|id| Err(PlanError::UnknownSegment(id))) {
        Ok(plan) => {
            assert!(refs.is_empty(), "a plan compiled with unknown references");
            let index = small_index();
            for tz in zones() {
                let size = index.size(&plan, now(), &tz);
                assert!(size <= 3, "{size} members of 3 users");
            }
        }
        Err(_) => assert!(
            !refs.is_empty(),
            "a filter without references failed to compile"
        ),
    }
}

fn options(import: bool) -> TrackOptions {
    TrackOptions {
        max_objects: if import { None } else { Some(75) },
        allow_attribute_time: import,
        now: now(),
    }
}

/// Facts read from a body survive the chunk format exactly.
fn round_trip(facts: &[(UserKey, Fact)]) {
    let bytes = chunk::encode(facts);
    let mut back = Vec::with_capacity(facts.len());
    let decoded = chunk::decode(&bytes, &mut |user, fact| back.push((user.clone(), fact)));
    assert!(
        decoded.is_ok(),
        "a chunk we wrote does not decode: {decoded:?}"
    );
    assert_eq!(back.as_slice(), facts);
}

fn read(data: &[u8], import: bool) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(track) = read_track_text(text, &options(import)) else {
        return;
    };
    for (_, fact) in &track.facts {
        assert!(fact.time <= now(), "a fact in the future: {fact:?}");
    }
    round_trip(&track.facts);
}

/// A `/users/track` body as the API reads it.
pub fn track_body(data: &[u8]) {
    read(data, false);
}

/// One line of `headcount import`.
pub fn import_line(data: &[u8]) {
    read(data, true);
}

/// Any bytes are a chunk or a `ChunkError`, never a panic; what decodes re-encodes to
/// the same facts.
pub fn chunk_decode(data: &[u8]) {
    let _ = chunk::users(data);
    let mut facts = Vec::new();
    if chunk::decode(data, &mut |user, fact| facts.push((user.clone(), fact))).is_ok() {
        round_trip(&facts);
    }
}

/// Any bytes are an index checkpoint or a `CheckpointError`, never a panic nor an
/// allocation the bytes cannot back; a checkpoint that loads writes back to the same
/// bytes.
pub fn checkpoint_decode(data: &[u8]) {
    let Ok((header, index)) = Index::read_checkpoint(data, data.len() as u64) else {
        return;
    };
    let written = index.write_checkpoint(header.workspace, Vec::new());
    assert_eq!(
        written.ok().as_deref(),
        Some(data),
        "a loaded checkpoint writes back differently"
    );
}

/// A checkpoint of the small index, for seeds.
pub fn small_checkpoint() -> Vec<u8> {
    small_index()
        .write_checkpoint(headcount_model::WorkspaceId(1), Vec::new())
        .unwrap_or_default()
}
