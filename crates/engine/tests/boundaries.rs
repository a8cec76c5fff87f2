//! Hand-checked boundary cases of segments.md: every expected number below can be
//! recomputed by hand from the facts of its test.

use headcount_engine::{Index, Plan, PlanError};
use headcount_model::{Day, Fact, FactKind, Filter, SegmentId, UserKey, Value};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;

fn ts(text: &str) -> Timestamp {
    text.parse().expect("a test timestamp")
}

fn user(id: &str) -> UserKey {
    UserKey::External(id.to_string())
}

fn users(ids: &[&str]) -> Vec<UserKey> {
    ids.iter().map(|id| user(id)).collect()
}

fn event(name: &str, at: &str) -> Fact {
    Fact {
        time: ts(at),
        kind: FactKind::Event {
            name: name.to_string(),
            detail: None,
        },
    }
}

fn purchase(product: &str, at: &str) -> Fact {
    Fact {
        time: ts(at),
        kind: FactKind::Purchase {
            product: product.to_string(),
            detail: None,
        },
    }
}

/// An attribute fact; a JSON null unsets, strings with an offset become datetimes.
fn attrs(at: &str, values: &[(&str, Json)]) -> Fact {
    Fact {
        time: ts(at),
        kind: FactKind::Attributes(
            values
                .iter()
                .map(|(name, json)| {
                    let value = Value::from_json(json).expect("a valid attribute value");
                    (name.to_string(), value)
                })
                .collect(),
        ),
    }
}

fn filter(json: Json) -> Filter {
    Filter::parse(&json, "filter").expect("a valid test filter")
}

fn plan(json: Json) -> Plan {
    Plan::compile(&filter(json), &|id| Err(PlanError::UnknownSegment(id)))
        .expect("a plan without references")
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").expect("Europe/Paris in the bundled tzdb")
}

fn micro() -> SignedDuration {
    SignedDuration::from_micros(1)
}

fn day(text: &str) -> Day {
    text.parse().expect("a test day")
}

fn days(texts: &[&str]) -> Vec<Day> {
    texts.iter().map(|t| day(t)).collect()
}

#[test]
fn an_event_at_local_midnight_counts_for_the_new_day() {
    let mut index = Index::new();
    index.apply(&user("old"), &attrs("2024-04-01T00:00:00Z", &[]));
    index.apply(&user("a"), &event("login", "2024-05-02T00:00:00Z"));
    let today = plan(json!({"event": "login", "op": "gte", "value": 1, "within_days": 1}));
    let tz = utc();
    assert_eq!(
        index.sizes(
            &today,
            &days(&["2024-05-01", "2024-05-02", "2024-05-03"]),
            &tz
        ),
        vec![0, 1, 0]
    );
    let ever = plan(json!({"event": "login", "op": "gte", "value": 1}));
    let midnight = ts("2024-05-02T00:00:00Z");
    assert_eq!(index.size(&ever, midnight, &tz), 0);
    assert_eq!(index.size(&ever, midnight + micro(), &tz), 1);

    // In Paris (CEST, UTC+2) the local midnight that begins 05-02 is 2024-05-01T22:00Z.
    let mut index = Index::new();
    index.apply(&user("old"), &attrs("2024-04-01T00:00:00Z", &[]));
    index.apply(&user("a"), &event("login", "2024-05-01T22:00:00Z"));
    let tz = paris();
    assert_eq!(
        index.sizes(
            &today,
            &days(&["2024-05-01", "2024-05-02", "2024-05-03"]),
            &tz
        ),
        vec![0, 1, 0]
    );
}

#[test]
fn a_within_days_window_includes_its_first_and_last_instant_only() {
    let mut index = Index::new();
    index.apply(&user("early"), &attrs("2024-04-01T00:00:00Z", &[]));
    index.apply(&user("first"), &event("login", "2024-05-04T00:00:00Z"));
    index.apply(
        &user("before"),
        &event("login", "2024-05-03T23:59:59.999999Z"),
    );
    index.apply(
        &user("last"),
        &event("login", "2024-05-10T23:59:59.999999Z"),
    );
    index.apply(&user("after"), &event("login", "2024-05-11T00:00:00Z"));
    for id in ["first", "before", "last", "after"] {
        index.apply(&user(id), &attrs("2024-04-01T00:00:00Z", &[]));
    }
    let tz = utc();
    let week = plan(json!({"event": "login", "op": "gte", "value": 1, "within_days": 7}));
    // Day 05-10: the window is [2024-05-04T00:00Z, 2024-05-11T00:00Z).
    let end = day("2024-05-10").end(&tz);
    assert_eq!(index.members(&week, end, &tz), users(&["first", "last"]));
    // Day 05-11: [05-05, 05-12).
    let next = day("2024-05-11").end(&tz);
    assert_eq!(index.members(&week, next, &tz), users(&["after", "last"]));
    // In the middle of 05-10: R is 05-10, the window [05-04, T) stops at T.
    assert_eq!(
        index.members(&week, ts("2024-05-10T12:00:00Z"), &tz),
        users(&["first"])
    );
    // Nobody logged in is a count of zero: everyone else.
    let none = plan(json!({"event": "login", "op": "eq", "value": 0, "within_days": 7}));
    assert_eq!(
        index.members(&none, end, &tz),
        users(&["after", "before", "early"])
    );
    assert_eq!(
        index.sizes(
            &week,
            &days(&["2024-05-03", "2024-05-04", "2024-05-10", "2024-05-11"]),
            &tz
        ),
        vec![1, 2, 2, 2]
    );
}

#[test]
fn a_user_exists_from_its_first_fact() {
    let mut index = Index::new();
    // An attribute object that sets nothing still makes the user exist.
    index.apply(&user("a"), &attrs("2024-05-10T15:00:00Z", &[]));
    let everyone = plan(json!({"all": []}));
    let tz = utc();
    assert_eq!(
        index.sizes(
            &everyone,
            &days(&["2024-05-09", "2024-05-10", "2024-05-11"]),
            &tz
        ),
        vec![0, 1, 1]
    );
    assert_eq!(index.size(&everyone, ts("2024-05-10T15:00:00Z"), &tz), 0);
    assert_eq!(
        index.size(&everyone, ts("2024-05-10T15:00:00Z") + micro(), &tz),
        1
    );
    // An earlier fact arriving later moves the start back.
    index.apply(&user("a"), &event("login", "2024-05-09T23:00:00Z"));
    assert_eq!(
        index.sizes(
            &everyone,
            &days(&["2024-05-08", "2024-05-09", "2024-05-10"]),
            &tz
        ),
        vec![0, 1, 1]
    );
    assert_eq!(index.user_count(), 1);
    assert_eq!(index.event_count(), 1);
}

#[test]
fn an_attribute_set_at_t_is_visible_only_after_t() {
    let mut index = Index::new();
    index.apply(&user("a"), &attrs("2024-05-01T00:00:00Z", &[]));
    index.apply(
        &user("a"),
        &attrs("2024-05-10T12:00:00Z", &[("plan", json!("pro"))]),
    );
    let t = ts("2024-05-10T12:00:00Z");
    let tz = utc();
    let pro = plan(json!({"attribute": "plan", "op": "eq", "value": "pro"}));
    let not_pro = plan(json!({"attribute": "plan", "op": "ne", "value": "pro"}));
    assert_eq!(index.size(&pro, t, &tz), 0);
    assert_eq!(index.size(&not_pro, t, &tz), 1);
    assert_eq!(index.size(&pro, t + micro(), &tz), 1);
    assert_eq!(index.size(&not_pro, t + micro(), &tz), 0);
}

#[test]
fn null_unsets_an_attribute() {
    let mut index = Index::new();
    index.apply(
        &user("a"),
        &attrs("2024-05-01T00:00:00Z", &[("plan", json!("pro"))]),
    );
    index.apply(
        &user("a"),
        &attrs("2024-05-05T00:00:00Z", &[("plan", Json::Null)]),
    );
    index.apply(
        &user("a"),
        &attrs("2024-05-08T00:00:00Z", &[("plan", json!("free"))]),
    );
    let tz = utc();
    let count = |json: Json, day_text: &str| index.size(&plan(json), day(day_text).end(&tz), &tz);
    let exists = || json!({"attribute": "plan", "op": "exists"});
    let not_exists = || json!({"attribute": "plan", "op": "not_exists"});
    let pro = || json!({"attribute": "plan", "op": "eq", "value": "pro"});
    let not_pro = || json!({"attribute": "plan", "op": "ne", "value": "pro"});
    assert_eq!(
        [
            count(exists(), "2024-05-02"),
            count(pro(), "2024-05-02"),
            count(not_pro(), "2024-05-02")
        ],
        [1, 1, 0]
    );
    assert_eq!(
        [
            count(exists(), "2024-05-06"),
            count(not_exists(), "2024-05-06"),
            count(pro(), "2024-05-06"),
            count(not_pro(), "2024-05-06")
        ],
        [0, 1, 0, 1]
    );
    assert_eq!(
        [
            count(exists(), "2024-05-09"),
            count(pro(), "2024-05-09"),
            count(not_pro(), "2024-05-09")
        ],
        [1, 0, 1]
    );
}

#[test]
fn datetime_attributes_at_the_edges_of_day_windows() {
    let mut index = Index::new();
    let seen = [
        ("start", json!("2024-05-08T00:00:00Z")),
        ("just_before_start", json!("2024-05-07T23:59:59.999Z")),
        ("last_second", json!("2024-05-10T23:59:59Z")),
        ("at_t", json!("2024-05-11T00:00:00Z")),
        ("future", json!("2024-06-01T00:00:00+02:00")),
        ("long_ago", json!("2020-01-01T00:00:00Z")),
        // A bare date is stored as a string, not a datetime: neither operator holds.
        ("bare_date", json!("2024-05-09")),
    ];
    for (id, value) in &seen {
        index.apply(
            &user(id),
            &attrs("2024-04-01T00:00:00Z", &[("seen", value.clone())]),
        );
    }
    index.apply(&user("missing"), &attrs("2024-04-01T00:00:00Z", &[]));
    let tz = utc();
    // Day 05-10: R = 05-10, start(R − 3 + 1) = 2024-05-08T00:00:00Z, T = 2024-05-11T00:00Z.
    let t = day("2024-05-10").end(&tz);
    let within = plan(json!({"attribute": "seen", "op": "within_last_days", "value": 3}));
    let ago = plan(json!({"attribute": "seen", "op": "more_than_days_ago", "value": 3}));
    assert_eq!(
        index.members(&within, t, &tz),
        users(&["last_second", "start"])
    );
    assert_eq!(
        index.members(&ago, t, &tz),
        users(&["just_before_start", "long_ago"])
    );
    // Just after T, the value at T is within the window; but R is now 05-11, so the
    // window starts at 05-09 and "start" has left it.
    assert_eq!(
        index.members(&within, t + micro(), &tz),
        users(&["at_t", "last_second"])
    );
    // not() of them includes the missing and the wrongly-typed.
    let neither = plan(json!({"all": [
        {"not": {"attribute": "seen", "op": "within_last_days", "value": 3}},
        {"not": {"attribute": "seen", "op": "more_than_days_ago", "value": 3}}
    ]}));
    assert_eq!(
        index.members(&neither, t, &tz),
        users(&["at_t", "bare_date", "future", "missing"])
    );
    // Ordering operators compare datetimes with datetimes only.
    let after = plan(json!({"attribute": "seen", "op": "gte", "value": "2024-05-08T00:00:00Z"}));
    assert_eq!(
        index.members(&after, t, &tz),
        users(&["at_t", "future", "last_second", "start"])
    );
    // In Paris the window of 3 days ending 05-10 starts at 2024-05-07T22:00:00Z.
    let paris = paris();
    let t = day("2024-05-10").end(&paris);
    assert_eq!(t, ts("2024-05-10T22:00:00Z"));
    assert_eq!(
        index.members(&within, t, &paris),
        users(&["just_before_start", "start"])
    );
}

#[test]
fn missing_and_wrongly_typed_attributes() {
    let mut index = Index::new();
    let at = "2024-05-01T00:00:00Z";
    index.apply(&user("none"), &attrs(at, &[]));
    index.apply(&user("fr"), &attrs(at, &[("country", json!("FR"))]));
    index.apply(&user("num"), &attrs(at, &[("country", json!(5))]));
    index.apply(
        &user("list"),
        &attrs(at, &[("country", json!(["FR", "DE"]))]),
    );
    let t = ts("2024-06-01T00:00:00Z");
    let tz = utc();
    let members = |json: Json| index.members(&plan(json), t, &tz);
    assert_eq!(
        members(json!({"attribute": "country", "op": "ne", "value": "FR"})),
        users(&["list", "none", "num"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "not_in", "value": ["FR", "DE"]})),
        users(&["list", "none", "num"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "in", "value": ["FR", 5.0]})),
        users(&["fr", "num"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "eq", "value": ["FR", "DE"]})),
        users(&["list"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "eq", "value": ["DE", "FR"]})),
        users(&[])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "contains", "value": "FR"})),
        users(&["fr", "list"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "contains", "value": "F"})),
        users(&["fr"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "matches", "value": "R$"})),
        users(&["fr"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "gt", "value": 4.5})),
        users(&["num"])
    );
    assert_eq!(
        members(json!({"not": {"attribute": "country", "op": "gt", "value": 4.5}})),
        users(&["fr", "list", "none"])
    );
    assert_eq!(
        members(json!({"attribute": "country", "op": "exists"})),
        users(&["fr", "list", "num"])
    );
    // An attribute nobody ever had.
    assert_eq!(
        members(json!({"attribute": "nothing", "op": "ne", "value": 1})),
        users(&["fr", "list", "none", "num"])
    );
    assert_eq!(
        members(json!({"attribute": "nothing", "op": "lt", "value": 1})),
        users(&[])
    );
}

#[test]
fn not_never_brings_in_users_that_do_not_exist_yet() {
    let mut index = Index::new();
    index.apply(&user("a"), &attrs("2024-05-01T00:00:00Z", &[]));
    index.apply(&user("b"), &event("login", "2024-05-20T00:00:00Z"));
    let t = day("2024-05-10").end(&utc());
    let tz = utc();
    let size = |json: Json| index.size(&plan(json), t, &tz);
    assert_eq!(
        size(json!({"not": {"event": "login", "op": "gte", "value": 1}})),
        1
    );
    assert_eq!(size(json!({"all": []})), 1);
    assert_eq!(size(json!({"any": []})), 0);
    assert_eq!(size(json!({"not": {"any": []}})), 1);
    assert_eq!(size(json!({"not": {"all": []}})), 0);
    assert_eq!(size(json!({"not": {"not": {"all": []}}})), 1);
    assert_eq!(size(json!({"event": "login", "op": "eq", "value": 0})), 1);
    assert_eq!(size(json!({"attribute": "x", "op": "not_exists"})), 1);
}

#[test]
fn in_segment_chains_resolve_and_cycles_are_rejected() {
    let ids: Vec<SegmentId> = (1..=4)
        .map(|n| {
            format!("00000000-0000-4000-8000-00000000000{n}")
                .parse()
                .expect("a uuid")
        })
        .collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    let mut segments: HashMap<SegmentId, Filter> = HashMap::new();
    segments.insert(
        c,
        filter(json!({"attribute": "country", "op": "eq", "value": "FR"})),
    );
    segments.insert(
        b,
        filter(json!({"all": [{"in_segment": c.to_string()}, {"event": "login", "op": "gte", "value": 1}]})),
    );
    segments.insert(a, filter(json!({"not": {"in_segment": b.to_string()}})));
    let resolve = |id: SegmentId| {
        segments
            .get(&id)
            .cloned()
            .map(Arc::new)
            .ok_or(PlanError::UnknownSegment(id))
    };

    let mut index = Index::new();
    let at = "2024-05-01T00:00:00Z";
    index.apply(&user("fr_active"), &attrs(at, &[("country", json!("FR"))]));
    index.apply(&user("fr_active"), &event("login", at));
    index.apply(&user("fr_idle"), &attrs(at, &[("country", json!("FR"))]));
    index.apply(&user("de_active"), &attrs(at, &[("country", json!("DE"))]));
    index.apply(&user("de_active"), &event("login", at));
    index.apply(&user("late"), &attrs("2024-07-01T00:00:00Z", &[]));
    let t = ts("2024-06-01T00:00:00Z");
    let tz = utc();

    let plan_a = Plan::compile(&segments[&a], &resolve).expect("a chain compiles");
    assert_eq!(
        index.members(&plan_a, t, &tz),
        users(&["de_active", "fr_idle"])
    );
    let plan_b = Plan::compile_segment(b, &resolve).expect("b compiles");
    assert_eq!(index.members(&plan_b, t, &tz), users(&["fr_active"]));
    // A diamond: both branches reach c.
    let diamond =
        filter(json!({"any": [{"in_segment": a.to_string()}, {"in_segment": b.to_string()}]}));
    let plan = Plan::compile(&diamond, &resolve).expect("a diamond compiles");
    assert_eq!(index.size(&plan, t, &tz), 3);

    // Unknown references.
    let unknown = filter(json!({"in_segment": d.to_string()}));
    assert_eq!(
        Plan::compile(&unknown, &resolve).err(),
        Some(PlanError::UnknownSegment(d))
    );
    // c → a closes the cycle a → b → c → a.
    segments.insert(c, filter(json!({"any": [{"in_segment": a.to_string()}]})));
    let resolve = |id: SegmentId| {
        segments
            .get(&id)
            .cloned()
            .map(Arc::new)
            .ok_or(PlanError::UnknownSegment(id))
    };
    assert!(matches!(
        Plan::compile(&segments[&a], &resolve),
        Err(PlanError::Cycle(_))
    ));
    assert_eq!(
        Plan::compile_segment(a, &resolve).err(),
        Some(PlanError::Cycle(a))
    );
    // A segment referring to itself.
    segments.insert(d, filter(json!({"not": {"in_segment": d.to_string()}})));
    let resolve = |id: SegmentId| {
        segments
            .get(&id)
            .cloned()
            .map(Arc::new)
            .ok_or(PlanError::UnknownSegment(id))
    };
    assert_eq!(
        Plan::compile_segment(d, &resolve).err(),
        Some(PlanError::Cycle(d))
    );
}

#[test]
fn paris_days_of_23_and_25_hours() {
    let tz = paris();
    let mut index = Index::new();
    index.apply(&user("old"), &attrs("2024-01-01T00:00:00Z", &[]));
    // 2024-03-30T23:30Z is 00:30 CET on 03-31.
    index.apply(&user("a"), &event("login", "2024-03-30T23:30:00Z"));
    // 03-31 ends at 22:00Z (CEST): its last microsecond, and the first of 04-01.
    index.apply(&user("a"), &event("login", "2024-03-31T21:59:59.999999Z"));
    index.apply(&user("a"), &event("login", "2024-03-31T22:00:00Z"));
    let once = plan(json!({"event": "login", "op": "eq", "value": 1, "within_days": 1}));
    let twice = plan(json!({"event": "login", "op": "eq", "value": 2, "within_days": 1}));
    let spring = days(&["2024-03-30", "2024-03-31", "2024-04-01", "2024-04-02"]);
    assert_eq!(index.sizes(&twice, &spring, &tz), vec![0, 1, 0, 0]);
    assert_eq!(index.sizes(&once, &spring, &tz), vec![0, 0, 1, 0]);
    // In UTC the same events fall on 03-30 (one) and 03-31 (two).
    assert_eq!(index.sizes(&once, &spring, &utc()), vec![1, 0, 0, 0]);
    assert_eq!(index.sizes(&twice, &spring, &utc()), vec![0, 1, 0, 0]);

    // 10-27 runs from 10-26T22:00Z to 10-27T23:00Z (25 hours).
    index.apply(&user("b"), &event("visit", "2024-10-26T21:59:59Z"));
    index.apply(&user("b"), &event("visit", "2024-10-26T22:00:00Z"));
    index.apply(&user("b"), &event("visit", "2024-10-27T22:30:00Z"));
    index.apply(&user("b"), &event("visit", "2024-10-27T23:00:00Z"));
    let count =
        |k: i64, w: u32| plan(json!({"event": "visit", "op": "eq", "value": k, "within_days": w}));
    let autumn = days(&["2024-10-26", "2024-10-27", "2024-10-28"]);
    assert_eq!(index.sizes(&count(1, 1), &autumn, &tz), vec![1, 0, 1]);
    assert_eq!(index.sizes(&count(2, 1), &autumn, &tz), vec![0, 1, 0]);
    assert_eq!(index.sizes(&count(3, 2), &autumn, &tz), vec![0, 1, 1]);
    assert_eq!(index.sizes(&count(4, 3), &autumn, &tz), vec![0, 0, 1]);
}

#[test]
fn a_count_of_zero_is_a_count() {
    let mut index = Index::new();
    let at = "2024-05-01T00:00:00Z";
    index.apply(&user("twice"), &event("login", at));
    index.apply(&user("twice"), &event("login", "2024-05-02T00:00:00Z"));
    index.apply(&user("other"), &event("logout", at));
    index.apply(&user("buyer"), &purchase("book", at));
    index.apply(&user("buyer2"), &purchase("pen", at));
    index.apply(&user("buyer2"), &purchase("pen", at));
    index.apply(&user("late"), &attrs("2024-06-02T00:00:00Z", &[]));
    let t = ts("2024-06-01T00:00:00Z");
    let tz = utc();
    let members = |json: Json| index.members(&plan(json), t, &tz);
    assert_eq!(
        members(json!({"event": "login", "op": "eq", "value": 0})),
        users(&["buyer", "buyer2", "other"])
    );
    assert_eq!(
        members(json!({"event": "login", "op": "lt", "value": 2})),
        users(&["buyer", "buyer2", "other"])
    );
    assert_eq!(
        members(json!({"event": "login", "op": "lte", "value": 2})),
        users(&["buyer", "buyer2", "other", "twice"])
    );
    assert_eq!(
        members(json!({"event": "login", "op": "ne", "value": 1})),
        users(&["buyer", "buyer2", "other", "twice"])
    );
    assert_eq!(
        members(json!({"event": "nobody_did_this", "op": "eq", "value": 0})),
        users(&["buyer", "buyer2", "other", "twice"])
    );
    assert_eq!(
        members(json!({"purchase": "*", "op": "eq", "value": 0})),
        users(&["other", "twice"])
    );
    assert_eq!(
        members(json!({"purchase": "*", "op": "gte", "value": 1})),
        users(&["buyer", "buyer2"])
    );
    assert_eq!(
        members(json!({"purchase": "pen", "op": "eq", "value": 2})),
        users(&["buyer2"])
    );
    assert_eq!(
        members(json!({"purchase": "book", "op": "gte", "value": 1, "within_days": 30})),
        users(&[])
    );
    assert_eq!(index.event_count(), 6);
}

#[test]
fn a_deleted_user_is_forgotten_and_its_key_starts_over() {
    let mut index = Index::new();
    let at = "2024-05-01T00:00:00Z";
    index.apply(&user("a"), &event("login", at));
    index.apply(&user("a"), &purchase("pen", at));
    index.apply(&user("a"), &attrs(at, &[("plan", json!("pro"))]));
    index.apply(&user("b"), &event("login", at));
    assert_eq!((index.user_count(), index.event_count()), (2, 3));
    assert!(index.delete_user(&user("a")));
    assert!(!index.delete_user(&user("a")));
    assert!(!index.delete_user(&user("never")));
    assert_eq!((index.user_count(), index.event_count()), (1, 1));

    let tz = utc();
    let t = ts("2024-06-01T00:00:00Z");
    let logged_in = plan(json!({"event": "login", "op": "gte", "value": 1}));
    let pro = plan(json!({"attribute": "plan", "op": "eq", "value": "pro"}));
    let everyone = plan(json!({"all": []}));
    assert_eq!(index.members(&logged_in, t, &tz), users(&["b"]));
    assert_eq!(index.size(&pro, t, &tz), 0);
    assert_eq!(index.size(&everyone, t, &tz), 1);

    // The same key again is a new user, existing from its new first fact only.
    index.apply(&user("a"), &attrs("2024-05-20T00:00:00Z", &[]));
    assert_eq!((index.user_count(), index.event_count()), (2, 1));
    assert_eq!(index.members(&everyone, t, &tz), users(&["a", "b"]));
    assert_eq!(index.members(&logged_in, t, &tz), users(&["b"]));
    assert_eq!(index.size(&pro, t, &tz), 0);
    assert_eq!(index.size(&everyone, ts("2024-05-10T00:00:00Z"), &tz), 1);
    index.compact();
    assert_eq!(index.members(&everyone, t, &tz), users(&["a", "b"]));
    assert_eq!(index.members(&logged_in, t, &tz), users(&["b"]));
}

#[test]
fn random_bucket_compares_the_sha256_bucket() {
    let mut index = Index::new();
    let ids: Vec<String> = (0..200).map(|n| format!("user-{n}")).collect();
    for id in &ids {
        index.apply(&user(id), &attrs("2024-05-01T00:00:00Z", &[]));
    }
    let alias = UserKey::Alias {
        name: "n".into(),
        label: "l".into(),
    };
    index.apply(&alias, &attrs("2024-05-01T00:00:00Z", &[]));
    let t = ts("2024-06-01T00:00:00Z");
    let tz = utc();
    // sha256("user-1") starts c6c289e49e9c05b2: 0xc6c289e49e9c05b2 % 10000 = 2594.
    let exact = plan(json!({"random_bucket": {"op": "eq", "value": 2594}}));
    assert!(index.members(&exact, t, &tz).contains(&user("user-1")));
    let half = plan(json!({"random_bucket": {"op": "lt", "value": 5000}}));
    let mut want: Vec<UserKey> = ids
        .iter()
        .map(|id| user(id))
        .chain([alias.clone()])
        .filter(|key| key.random_bucket() < 5000)
        .collect();
    want.sort();
    assert_eq!(index.members(&half, t, &tz), want);
    assert!(want.len() > 60 && want.len() < 140);
    let all = plan(json!({"random_bucket": {"op": "gte", "value": 0}}));
    assert_eq!(index.size(&all, t, &tz), 201);
    let none = plan(json!({"random_bucket": {"op": "gt", "value": 9999}}));
    assert_eq!(index.size(&none, t, &tz), 0);
}

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// Facts at distinct instants (every 7 minutes from 2024-01-01), so that their
/// order of application cannot matter.
fn generated_facts(count: usize) -> Vec<(UserKey, Fact)> {
    let mut rng = Lcg(7);
    let base = ts("2024-01-01T00:00:00Z");
    (0..count)
        .map(|k| {
            let time = base + SignedDuration::from_secs(k as i64 * 7 * 60 + 1);
            let who = user(&format!("u{}", rng.next(60)));
            let kind = match rng.next(6) {
                0 | 1 => FactKind::Event {
                    name: ["login", "visit"][rng.next(2) as usize].to_string(),
                    detail: None,
                },
                2 => FactKind::Purchase {
                    product: ["pen", "book", "ink"][rng.next(3) as usize].to_string(),
                    detail: None,
                },
                3 => FactKind::Attributes(vec![(
                    "plan".to_string(),
                    [None, Some("free"), Some("pro")][rng.next(3) as usize]
                        .map(|p| Value::String(p.to_string())),
                )]),
                4 => FactKind::Attributes(vec![(
                    "score".to_string(),
                    Some(Value::Number(rng.next(10) as f64)),
                )]),
                _ => FactKind::Attributes(vec![(
                    "seen".to_string(),
                    Some(Value::DateTime(
                        base + SignedDuration::from_hours(rng.next(24 * 120) as i64),
                    )),
                )]),
            };
            (who, Fact { time, kind })
        })
        .collect()
}

fn generated_plans() -> Vec<Plan> {
    [
        json!({"event": "login", "op": "gte", "value": 3, "within_days": 14}),
        json!({"event": "visit", "op": "eq", "value": 0, "within_days": 7}),
        json!({"purchase": "*", "op": "gt", "value": 1, "within_days": 30}),
        json!({"purchase": "ink", "op": "lte", "value": 2}),
        json!({"attribute": "plan", "op": "eq", "value": "pro"}),
        json!({"attribute": "plan", "op": "not_in", "value": ["free"]}),
        json!({"attribute": "score", "op": "gte", "value": 5}),
        json!({"attribute": "seen", "op": "within_last_days", "value": 10}),
        json!({"attribute": "seen", "op": "more_than_days_ago", "value": 20}),
        json!({"all": [
            {"not": {"attribute": "plan", "op": "exists"}},
            {"any": [
                {"event": "login", "op": "gte", "value": 1, "within_days": 3},
                {"random_bucket": {"op": "lt", "value": 3000}}
            ]}
        ]}),
    ]
    .into_iter()
    .map(plan)
    .collect()
}

fn every_fifth_day() -> Vec<Day> {
    (0..25).map(|n| day("2024-01-01").add_days(n * 5)).collect()
}

#[test]
fn facts_applied_out_of_order_give_the_same_answers() {
    // Enough facts for columns of several sorted runs plus an unsorted tail.
    let facts = generated_facts(20_000);
    let mut in_order = Index::new();
    for (who, fact) in &facts {
        in_order.apply(who, fact);
    }
    let mut shuffled = Index::new();
    let mut order: Vec<usize> = (0..facts.len()).collect();
    let mut rng = Lcg(99);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.next(i as u64 + 1) as usize);
    }
    for &i in &order {
        shuffled.apply(&facts[i].0, &facts[i].1);
    }
    let mut reversed = Index::new();
    for (who, fact) in facts.iter().rev() {
        reversed.apply(who, fact);
    }
    let tz = paris();
    let days = every_fifth_day();
    let mut nonzero = 0;
    for plan in generated_plans() {
        let want = in_order.sizes(&plan, &days, &tz);
        nonzero += want.iter().filter(|&&n| n > 0).count();
        assert_eq!(shuffled.sizes(&plan, &days, &tz), want);
        assert_eq!(reversed.sizes(&plan, &days, &tz), want);
        let mut compacted = shuffled.clone();
        compacted.compact();
        assert_eq!(compacted.sizes(&plan, &days, &tz), want);
    }
    assert!(
        nonzero > 100,
        "the generated data should exercise the plans"
    );
    assert_eq!(shuffled.event_count(), in_order.event_count());
    assert_eq!(shuffled.user_count(), 60);
}

#[test]
fn sizes_equals_size_day_by_day() {
    let mut index = Index::new();
    for (who, fact) in generated_facts(3000) {
        index.apply(&who, &fact);
    }
    let tz = paris();
    // Days in any order, with a repeat.
    let mut days = every_fifth_day();
    days.reverse();
    days.push(day("2024-02-10"));
    for plan in generated_plans() {
        let sizes = index.sizes(&plan, &days, &tz);
        let one_by_one: Vec<u64> = days
            .iter()
            .map(|d| index.size(&plan, d.end(&tz), &tz))
            .collect();
        assert_eq!(sizes, one_by_one);
        // Sharing work between plans at one instant changes nothing either.
        let t = day("2024-02-10").end(&tz);
        let mut shared = index.as_of(t, &tz);
        assert_eq!(shared.size(&plan), index.size(&plan, t, &tz));
        assert_eq!(shared.members(&plan), index.members(&plan, t, &tz));
    }
}
