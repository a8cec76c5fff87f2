//! The filter language of shared/spec/segments.md: for every node kind and every
//! operator, one filter that is accepted (with its exact AST) and one that is refused
//! (with the exact path of the bad node or field, and a reason that says why).

use headcount_model::filter::{AttrOp, Cmp, CountTest, MAX_DAYS, MAX_DEPTH, Ordered, Pattern};
use headcount_model::{Filter, FilterError, SegmentId, Timestamp, Value};
use serde_json::{Value as Json, json};

const NODE_KEYS: &str = "all, any, not, attribute, event, purchase, in_segment, random_bucket";
const ATTR_OPS: &str = "exists, not_exists, eq, ne, gt, gte, lt, lte, in, not_in, contains, \
starts_with, matches, within_last_days, more_than_days_ago";
const CMPS: &str = "eq, ne, gt, gte, lt, lte";
const SEGMENT_A: &str = "3bbc4555-8fa0-4c9b-a5c0-4505edf3e064";
const SEGMENT_B: &str = "0b7c5a9e-1f0d-4a51-9a43-59e3c7b1f2aa";

fn ok(json: Json) -> Filter {
    match Filter::parse(&json, "filter") {
        Ok(filter) => filter,
        Err(e) => panic!("{json} refused: {e}"),
    }
}

fn err(json: Json) -> FilterError {
    match Filter::parse(&json, "filter") {
        Ok(filter) => panic!("{json} accepted as {filter:?}"),
        Err(e) => e,
    }
}

/// Asserts the exact path and reason of a refusal.
#[track_caller]
fn refused(json: Json, path: &str, reason: &str) {
    let e = err(json);
    assert_eq!(
        e,
        FilterError {
            path: path.to_string(),
            reason: reason.to_string()
        }
    );
    assert_eq!(e.to_string(), format!("{path}: {reason}"));
}

/// Asserts the exact path of a refusal and that its reason contains `why`.
#[track_caller]
fn refused_because(json: Json, path: &str, why: &str) {
    let e = err(json);
    assert_eq!(e.path, path, "{e}");
    assert!(e.reason.contains(why), "{e:?} does not say {why:?}");
}

fn attr(name: &str, op: AttrOp) -> Filter {
    Filter::Attribute {
        name: name.to_string(),
        op,
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn seg(text: &str) -> SegmentId {
    text.parse().unwrap()
}

fn count(cmp: Cmp, value: i64, within_days: Option<u32>) -> CountTest {
    CountTest {
        cmp,
        value,
        within_days,
    }
}

fn attr_op_list() -> String {
    format!("must be one of: {ATTR_OPS}")
}

// ---------------------------------------------------------------------------------
// Node kinds.
// ---------------------------------------------------------------------------------

#[test]
fn all_any_and_not_nodes() {
    let country = || json!({"attribute": "country", "op": "eq", "value": "FR"});
    let fr = || attr("country", AttrOp::Eq(s("FR")));
    assert_eq!(ok(json!({"all": [country()]})), Filter::All(vec![fr()]));
    assert_eq!(
        ok(json!({"any": [country(), {"attribute": "vip", "op": "exists"}]})),
        Filter::Any(vec![fr(), attr("vip", AttrOp::Exists)])
    );
    assert_eq!(ok(json!({"not": country()})), Filter::Not(Box::new(fr())));
    // Empty lists are accepted: every existing user / nobody.
    assert_eq!(ok(json!({"all": []})), Filter::All(vec![]));
    assert_eq!(ok(json!({"any": []})), Filter::Any(vec![]));
    assert_eq!(
        ok(json!({"not": {"all": []}})),
        Filter::Not(Box::new(Filter::All(vec![])))
    );

    refused(
        json!({"all": country()}),
        "filter.all",
        "must be an array of filter nodes",
    );
    refused(
        json!({"any": "country"}),
        "filter.any",
        "must be an array of filter nodes",
    );
    refused(
        json!({"all": [country()], "op": "eq"}),
        "filter.op",
        "unknown key; this node accepts: all",
    );
    refused(
        json!({"any": [], "name": "x"}),
        "filter.name",
        "unknown key; this node accepts: any",
    );
    refused(
        json!({"not": [country()]}),
        "filter.not",
        &format!("a filter node must be an object with one of: {NODE_KEYS}"),
    );
    refused(
        json!({"not": country(), "value": 1}),
        "filter.value",
        "unknown key; this node accepts: not",
    );
    // The path of a bad child names its index.
    refused(
        json!({"all": [country(), country(), {"attribute": "age", "op": "older", "value": 3}]}),
        "filter.all[2].op",
        &format!("unknown operator \"older\"; expected one of: {ATTR_OPS}"),
    );
    refused(
        json!({"any": [country(), 42]}),
        "filter.any[1]",
        &format!("a filter node must be an object with one of: {NODE_KEYS}"),
    );
}

#[test]
fn attribute_nodes() {
    assert_eq!(
        ok(json!({"attribute": "country", "op": "eq", "value": "FR"})),
        attr("country", AttrOp::Eq(s("FR")))
    );
    refused(
        json!({"attribute": "", "op": "eq", "value": "FR"}),
        "filter.attribute",
        "must be a non-empty string",
    );
    refused(
        json!({"attribute": 7, "op": "eq", "value": "FR"}),
        "filter.attribute",
        "must be a non-empty string",
    );
    refused(
        json!({"attribute": "country", "value": "FR"}),
        "filter.op",
        "is required",
    );
    refused(
        json!({"attribute": "country", "op": 1, "value": "FR"}),
        "filter.op",
        &attr_op_list(),
    );
    refused(
        json!({"attribute": "country", "op": "eq", "value": "FR", "within_days": 7}),
        "filter.within_days",
        "unknown key; this node accepts: attribute, op, value",
    );
    refused(
        json!({"attribute": "country", "op": "EQ", "value": "FR"}),
        "filter.op",
        &format!("unknown operator \"EQ\"; expected one of: {ATTR_OPS}"),
    );
    refused(
        json!({"attribute": "country", "op": "equals", "value": "FR"}),
        "filter.op",
        &format!("unknown operator \"equals\"; expected one of: {ATTR_OPS}"),
    );
}

#[test]
fn event_nodes() {
    assert_eq!(
        ok(json!({"event": "login", "op": "gte", "value": 3, "within_days": 7})),
        Filter::Event {
            name: "login".into(),
            count: count(Cmp::Gte, 3, Some(7))
        }
    );
    // A count of zero is a count; no window is all time.
    assert_eq!(
        ok(json!({"event": "login", "op": "eq", "value": 0})),
        Filter::Event {
            name: "login".into(),
            count: count(Cmp::Eq, 0, None)
        }
    );
    // The bounds of within_days.
    for w in [1, MAX_DAYS] {
        assert_eq!(
            ok(json!({"event": "login", "op": "gt", "value": 0, "within_days": w})),
            Filter::Event {
                name: "login".into(),
                count: count(Cmp::Gt, 0, Some(w as u32))
            }
        );
    }

    refused(
        json!({"event": "", "op": "eq", "value": 1}),
        "filter.event",
        "must be a non-empty string",
    );
    refused(
        json!({"event": "login", "value": 1}),
        "filter.op",
        "is required",
    );
    refused(
        json!({"event": "login", "op": "eq"}),
        "filter.value",
        "is required",
    );
    refused(
        json!({"event": "login", "op": "exists"}),
        "filter.op",
        &format!("unknown operator \"exists\"; expected one of: {CMPS}"),
    );
    refused(
        json!({"event": "login", "op": ["eq"], "value": 1}),
        "filter.op",
        &format!("must be one of: {CMPS}"),
    );
    refused(
        json!({"event": "login", "op": "eq", "value": 1, "properties": {}}),
        "filter.properties",
        "unknown key; this node accepts: event, op, value, within_days",
    );
    let window = format!("must be an integer from 1 to {MAX_DAYS}");
    for bad in [
        json!(0),
        json!(3651),
        json!(-7),
        json!(2.5),
        json!(7.0),
        json!("7"),
        json!(null),
        json!(true),
        json!([7]),
    ] {
        refused(
            json!({"event": "login", "op": "gte", "value": 1, "within_days": bad}),
            "filter.within_days",
            &window,
        );
    }
    for bad in [json!(2.5), json!("3"), json!(null), json!(true), json!({})] {
        refused(
            json!({"event": "login", "op": "gte", "value": bad}),
            "filter.value",
            "must be an integer",
        );
    }
}

#[test]
fn purchase_nodes() {
    assert_eq!(
        ok(json!({"purchase": "*", "op": "gte", "value": 1, "within_days": 30})),
        Filter::Purchase {
            product: None,
            count: count(Cmp::Gte, 1, Some(30))
        }
    );
    assert_eq!(
        ok(json!({"purchase": "sku-42", "op": "lt", "value": 2})),
        Filter::Purchase {
            product: Some("sku-42".into()),
            count: count(Cmp::Lt, 2, None)
        }
    );
    refused(
        json!({"purchase": null, "op": "gte", "value": 1}),
        "filter.purchase",
        "must be a non-empty string",
    );
    refused(
        json!({"purchase": "*", "op": "gte", "value": 1, "within_days": 0}),
        "filter.within_days",
        "must be an integer from 1 to 3650",
    );
    refused(
        json!({"purchase": "*", "op": "gte", "value": 1, "currency": "EUR"}),
        "filter.currency",
        "unknown key; this node accepts: purchase, op, value, within_days",
    );
}

#[test]
fn in_segment_nodes() {
    assert_eq!(
        ok(json!({"in_segment": SEGMENT_A})),
        Filter::InSegment(seg(SEGMENT_A))
    );
    // Upper case hex is the same identifier.
    assert_eq!(
        ok(json!({"in_segment": SEGMENT_A.to_uppercase()})),
        Filter::InSegment(seg(SEGMENT_A))
    );
    let why = "must be a segment API identifier (a UUID string)";
    for bad in [
        json!("not-a-uuid"),
        json!("3bbc4555-8fa0-4c9b-a5c0-4505edf3e06"),
        json!("3bbc4555-8fa0-4c9b-a5c0-4505edf3e064x"),
        json!(""),
        json!(42),
        json!(null),
        json!({"id": SEGMENT_A}),
    ] {
        refused(json!({"in_segment": bad}), "filter.in_segment", why);
    }
    refused(
        json!({"in_segment": SEGMENT_A, "op": "eq"}),
        "filter.op",
        "unknown key; this node accepts: in_segment",
    );
}

#[test]
fn random_bucket_nodes() {
    assert_eq!(
        ok(json!({"random_bucket": {"op": "lt", "value": 5000}})),
        Filter::RandomBucket {
            cmp: Cmp::Lt,
            value: 5000
        }
    );
    let shape = "must be an object {\"op\": CMP, \"value\": INTEGER}";
    refused(
        json!({"random_bucket": 5000}),
        "filter.random_bucket",
        shape,
    );
    refused(
        json!({"random_bucket": [{"op": "lt", "value": 5000}]}),
        "filter.random_bucket",
        shape,
    );
    refused(
        json!({"random_bucket": {"op": "lt"}}),
        "filter.random_bucket.value",
        "is required",
    );
    refused(
        json!({"random_bucket": {"value": 1}}),
        "filter.random_bucket.op",
        "is required",
    );
    refused(
        json!({"random_bucket": {"op": "lt", "value": 5000, "within_days": 7}}),
        "filter.random_bucket.within_days",
        "unknown key; this node accepts: op, value",
    );
    refused(
        json!({"random_bucket": {"op": "lt", "value": 5000}, "op": "lt"}),
        "filter.op",
        "unknown key; this node accepts: random_bucket",
    );
    refused(
        json!({"random_bucket": {"op": "in", "value": 5000}}),
        "filter.random_bucket.op",
        &format!("unknown operator \"in\"; expected one of: {CMPS}"),
    );
}

// ---------------------------------------------------------------------------------
// Every comparison, on events, purchases and random buckets.
// ---------------------------------------------------------------------------------

const ALL_CMPS: [(&str, Cmp); 6] = [
    ("eq", Cmp::Eq),
    ("ne", Cmp::Ne),
    ("gt", Cmp::Gt),
    ("gte", Cmp::Gte),
    ("lt", Cmp::Lt),
    ("lte", Cmp::Lte),
];

#[test]
fn every_cmp_is_accepted_by_name() {
    for (name, cmp) in ALL_CMPS {
        assert_eq!(cmp.name(), name);
        assert_eq!(
            ok(json!({"event": "login", "op": name, "value": 2, "within_days": 14})),
            Filter::Event {
                name: "login".into(),
                count: count(cmp, 2, Some(14))
            }
        );
        assert_eq!(
            ok(json!({"purchase": "*", "op": name, "value": 1})),
            Filter::Purchase {
                product: None,
                count: count(cmp, 1, None)
            }
        );
        assert_eq!(
            ok(json!({"random_bucket": {"op": name, "value": 9999}})),
            Filter::RandomBucket { cmp, value: 9999 }
        );
    }
}

#[test]
fn every_cmp_has_a_refused_case() {
    // eq: the count is missing.
    refused(
        json!({"event": "login", "op": "eq"}),
        "filter.value",
        "is required",
    );
    // ne: a fractional count.
    refused(
        json!({"purchase": "*", "op": "ne", "value": 0.5}),
        "filter.value",
        "must be an integer",
    );
    // gt: a bucket given as a string.
    refused(
        json!({"random_bucket": {"op": "gt", "value": "5000"}}),
        "filter.random_bucket.value",
        "must be an integer",
    );
    // gte: a window of zero days.
    refused(
        json!({"event": "login", "op": "gte", "value": 1, "within_days": 0}),
        "filter.within_days",
        "must be an integer from 1 to 3650",
    );
    // lt: a window beyond ten years.
    refused(
        json!({"purchase": "sku", "op": "lt", "value": 1, "within_days": 3651}),
        "filter.within_days",
        "must be an integer from 1 to 3650",
    );
    // lte: a null count.
    refused(
        json!({"event": "login", "op": "lte", "value": null}),
        "filter.value",
        "must be an integer",
    );
    // Spellings that are not CMPs.
    for bad in ["EQ", "=", "==", ">=", "ge", "le", "neq", "", "contains"] {
        refused(
            json!({"event": "login", "op": bad, "value": 1}),
            "filter.op",
            &format!("unknown operator \"{bad}\"; expected one of: {CMPS}"),
        );
    }
}

// ---------------------------------------------------------------------------------
// Every attribute operator.
// ---------------------------------------------------------------------------------

#[test]
fn every_attribute_operator_is_accepted() {
    let a = |op: &str, value: Option<Json>| {
        let mut node = json!({"attribute": "a", "op": op});
        if let Some(v) = value {
            node["value"] = v;
        }
        ok(node)
    };
    assert_eq!(a("exists", None), attr("a", AttrOp::Exists));
    assert_eq!(a("not_exists", None), attr("a", AttrOp::NotExists));
    assert_eq!(a("eq", Some(json!("FR"))), attr("a", AttrOp::Eq(s("FR"))));
    assert_eq!(
        a("eq", Some(json!(3))),
        attr("a", AttrOp::Eq(Value::Number(3.0)))
    );
    assert_eq!(
        a("eq", Some(json!(true))),
        attr("a", AttrOp::Eq(Value::Bool(true)))
    );
    assert_eq!(
        a("eq", Some(json!("2024-01-01T10:00:00+02:00"))),
        attr("a", AttrOp::Eq(Value::DateTime(ts("2024-01-01T08:00:00Z"))))
    );
    // A bare date operand of eq stays a string, as it would when written as a value.
    assert_eq!(
        a("eq", Some(json!("2024-01-01"))),
        attr("a", AttrOp::Eq(s("2024-01-01")))
    );
    assert_eq!(
        a("eq", Some(json!(["x", "y"]))),
        attr("a", AttrOp::Eq(Value::Array(vec!["x".into(), "y".into()])))
    );
    assert_eq!(
        a("ne", Some(json!(2.5))),
        attr("a", AttrOp::Ne(Value::Number(2.5)))
    );
    assert_eq!(
        a("gt", Some(json!(18))),
        attr("a", AttrOp::Order(Cmp::Gt, Ordered::Number(18.0)))
    );
    assert_eq!(
        a("gte", Some(json!("2024-01-01"))),
        attr(
            "a",
            AttrOp::Order(Cmp::Gte, Ordered::DateTime(ts("2024-01-01T00:00:00Z")))
        )
    );
    assert_eq!(
        a("lt", Some(json!(-1.5))),
        attr("a", AttrOp::Order(Cmp::Lt, Ordered::Number(-1.5)))
    );
    assert_eq!(
        a("lte", Some(json!("2018-06-27T23:59:59-5:00"))),
        attr(
            "a",
            AttrOp::Order(Cmp::Lte, Ordered::DateTime(ts("2018-06-28T04:59:59Z")))
        )
    );
    assert_eq!(
        a("in", Some(json!(["FR", 3, true]))),
        attr(
            "a",
            AttrOp::In(vec![s("FR"), Value::Number(3.0), Value::Bool(true)])
        )
    );
    assert_eq!(a("in", Some(json!([]))), attr("a", AttrOp::In(vec![])));
    assert_eq!(
        a("not_in", Some(json!(["FR", "DE"]))),
        attr("a", AttrOp::NotIn(vec![s("FR"), s("DE")]))
    );
    assert_eq!(
        a("contains", Some(json!("gold"))),
        attr("a", AttrOp::Contains("gold".into()))
    );
    assert_eq!(
        a("starts_with", Some(json!("+33"))),
        attr("a", AttrOp::StartsWith("+33".into()))
    );
    assert_eq!(
        a("matches", Some(json!("^[a-z]+@example\\.com$"))),
        attr(
            "a",
            AttrOp::Matches(Pattern::new("^[a-z]+@example\\.com$").unwrap())
        )
    );
    assert_eq!(
        a("within_last_days", Some(json!(7))),
        attr("a", AttrOp::WithinLastDays(7))
    );
    assert_eq!(
        a("within_last_days", Some(json!(1))),
        attr("a", AttrOp::WithinLastDays(1))
    );
    assert_eq!(
        a("more_than_days_ago", Some(json!(3650))),
        attr("a", AttrOp::MoreThanDaysAgo(3650))
    );
}

#[test]
fn every_attribute_operator_has_a_refused_case() {
    let node = |op: &str, value: Json| json!({"attribute": "a", "op": op, "value": value});
    // exists / not_exists take no value, not even null.
    refused(
        node("exists", json!(true)),
        "filter.value",
        "\"exists\" takes no value",
    );
    refused(
        node("not_exists", json!(null)),
        "filter.value",
        "\"not_exists\" takes no value",
    );
    // eq: missing value.
    refused(
        json!({"attribute": "a", "op": "eq"}),
        "filter.value",
        "is required",
    );
    // ne: null is not a value.
    refused(
        node("ne", json!(null)),
        "filter.value",
        "must not be null (use the exists / not_exists operators)",
    );
    // eq: objects and arrays of non-strings are no attribute values.
    refused(
        node("eq", json!({"a": 1})),
        "filter.value",
        "nested objects are not supported",
    );
    refused(
        node("eq", json!(["a", 1])),
        "filter.value",
        "arrays may hold only strings",
    );
    // gt: a string that is no datetime.
    refused_because(node("gt", json!("ten")), "filter.value", "ISO-8601");
    refused_because(node("gt", json!("2018-02-30")), "filter.value", "number");
    // gte: a boolean.
    refused(
        node("gte", json!(true)),
        "filter.value",
        "must be a number or an ISO-8601 datetime string",
    );
    // lt: missing value.
    refused(
        json!({"attribute": "a", "op": "lt"}),
        "filter.value",
        "is required",
    );
    // lte: an array.
    refused(
        node("lte", json!([1])),
        "filter.value",
        "must be a number or an ISO-8601 datetime string",
    );
    // in / not_in: not an array.
    refused(
        node("in", json!("FR")),
        "filter.value",
        "must be an array of values",
    );
    refused(
        node("in", json!({"FR": true})),
        "filter.value",
        "must be an array of values",
    );
    refused(
        node("not_in", json!(null)),
        "filter.value",
        "must be an array of values",
    );
    // in / not_in: a bad element is named by its index.
    refused(
        node("not_in", json!(["FR", {"x": 1}])),
        "filter.value[1]",
        "nested objects are not supported",
    );
    refused(
        node("in", json!(["FR", "DE", null])),
        "filter.value[2]",
        "must not be null (use the exists / not_exists operators)",
    );
    // contains / starts_with: strings only.
    refused(
        node("contains", json!(5)),
        "filter.value",
        "must be a string",
    );
    refused(
        node("contains", json!(["gold"])),
        "filter.value",
        "must be a string",
    );
    refused(
        node("starts_with", json!(null)),
        "filter.value",
        "must be a string",
    );
    // matches: a regular expression that does not compile, or is too big.
    refused_because(
        node("matches", json!("(unclosed")),
        "filter.value",
        "invalid regular expression",
    );
    refused_because(
        node("matches", json!("[z-a]")),
        "filter.value",
        "invalid regular expression",
    );
    refused_because(
        node("matches", json!("(?:a{1000}){1000}")),
        "filter.value",
        "invalid regular expression",
    );
    refused(
        node("matches", json!(1)),
        "filter.value",
        "must be a string",
    );
    // within_last_days / more_than_days_ago: whole days from 1 to 3650.
    let window = "must be an integer from 1 to 3650";
    for bad in [
        json!(0),
        json!(3651),
        json!(-1),
        json!(2.5),
        json!("7"),
        json!(null),
    ] {
        refused(
            node("within_last_days", bad.clone()),
            "filter.value",
            window,
        );
        refused(node("more_than_days_ago", bad), "filter.value", window);
    }
    refused(
        json!({"attribute": "a", "op": "within_last_days"}),
        "filter.value",
        "is required",
    );
}

// ---------------------------------------------------------------------------------
// Shapes of nodes.
// ---------------------------------------------------------------------------------

#[test]
fn non_object_nodes_are_refused() {
    let why = format!("a filter node must be an object with one of: {NODE_KEYS}");
    for bad in [
        json!(null),
        json!(true),
        json!(1),
        json!("all"),
        json!([]),
        json!([{"all": []}]),
    ] {
        refused(bad, "filter", &why);
    }
    refused(json!({"not": null}), "filter.not", &why);
}

#[test]
fn unknown_keys_and_missing_kinds() {
    refused(
        json!({}),
        "filter",
        &format!("empty node; a node has one of: {NODE_KEYS}"),
    );
    // A misspelt kind is named, not the fields that are fine.
    refused(
        json!({"atribute": "country", "op": "eq", "value": "FR"}),
        "filter.atribute",
        &format!("unknown key; a node has one of: {NODE_KEYS}"),
    );
    refused(
        json!({"op": "eq", "value": "FR", "segment": SEGMENT_A}),
        "filter.segment",
        &format!("unknown key; a node has one of: {NODE_KEYS}"),
    );
    refused(
        json!({"Attribute": "country", "op": "eq", "value": "FR"}),
        "filter.Attribute",
        &format!("unknown key; a node has one of: {NODE_KEYS}"),
    );
    // Fields without any kind.
    refused(
        json!({"op": "eq", "value": "FR"}),
        "filter",
        &format!("the node has no kind; it needs one of: {NODE_KEYS}"),
    );
    // An unknown key next to a kind.
    refused(
        json!({"attribute": "country", "op": "eq", "value": "FR", "negate": true}),
        "filter.negate",
        "unknown key; this node accepts: attribute, op, value",
    );
    refused(
        json!({"all": [{"any": [{"event": "x", "op": "eq", "value": 1, "within": 7}]}]}),
        "filter.all[0].any[0].within",
        "unknown key; this node accepts: event, op, value, within_days",
    );
}

#[test]
fn two_kinds_in_one_node() {
    let why = "a node has exactly one kind; split it with all/any";
    refused(
        json!({"attribute": "country", "event": "login", "op": "eq", "value": 1}),
        "filter.event",
        why,
    );
    refused(json!({"all": [], "any": []}), "filter.any", why);
    refused(
        json!({"any": [{"in_segment": SEGMENT_A, "not": {"all": []}}]}),
        "filter.any[0].not",
        why,
    );
}

/// `depth` nested `not`s around a leaf.
fn nested_nots(depth: usize) -> Json {
    let mut node = json!({"attribute": "a", "op": "exists"});
    for _ in 0..depth {
        node = json!({ "not": node });
    }
    node
}

#[test]
fn nesting_is_limited_to_max_depth() {
    let mut expected = attr("a", AttrOp::Exists);
    for _ in 0..MAX_DEPTH {
        expected = Filter::Not(Box::new(expected));
    }
    assert_eq!(ok(nested_nots(MAX_DEPTH)), expected);

    let too_deep = format!("filter{}", ".not".repeat(MAX_DEPTH + 1));
    refused(
        nested_nots(MAX_DEPTH + 1),
        &too_deep,
        "filters may nest at most 32 levels deep",
    );
    // The deepest input serde_json reads from text (it stops at 128 levels) is refused
    // at the same place.
    let deep = 120;
    let text = format!(
        "{}{{\"attribute\": \"a\", \"op\": \"exists\"}}{}",
        "{\"not\": ".repeat(deep),
        "}".repeat(deep)
    );
    let deep_json: Json = serde_json::from_str(&text).unwrap();
    refused(
        deep_json,
        &too_deep,
        "filters may nest at most 32 levels deep",
    );

    // all/any count as levels too.
    let mut node = json!({"in_segment": SEGMENT_A});
    for _ in 0..=MAX_DEPTH {
        node = json!({ "all": [node] });
    }
    refused(
        node,
        &format!("filter{}", ".all[0]".repeat(MAX_DEPTH + 1)),
        "filters may nest at most 32 levels deep",
    );
}

#[test]
fn the_root_path_prefixes_every_error() {
    let e = Filter::parse(
        &json!({"all": [{"attribute": "a", "op": "nope"}]}),
        "segments[3].filter",
    )
    .unwrap_err();
    assert_eq!(e.path, "segments[3].filter.all[0].op");
    assert_eq!(
        e.to_string(),
        format!(
            "segments[3].filter.all[0].op: unknown operator \"nope\"; expected one of: {ATTR_OPS}"
        )
    );
}

#[test]
fn the_spec_example_parses_to_its_ast() {
    let filter = ok(json!({"all": [
        {"attribute": "country", "op": "eq", "value": "FR"},
        {"any": [
            {"event": "session_start", "op": "gte", "value": 3, "within_days": 7},
            {"purchase": "*", "op": "gte", "value": 1, "within_days": 30}
        ]},
        {"not": {"attribute": "email_opt_out", "op": "eq", "value": true}}
    ]}));
    assert_eq!(
        filter,
        Filter::All(vec![
            attr("country", AttrOp::Eq(s("FR"))),
            Filter::Any(vec![
                Filter::Event {
                    name: "session_start".into(),
                    count: count(Cmp::Gte, 3, Some(7))
                },
                Filter::Purchase {
                    product: None,
                    count: count(Cmp::Gte, 1, Some(30))
                },
            ]),
            Filter::Not(Box::new(attr(
                "email_opt_out",
                AttrOp::Eq(Value::Bool(true))
            ))),
        ])
    );
}

#[test]
fn segment_refs_name_the_path_of_each_reference() {
    let filter = ok(json!({"all": [
        {"in_segment": SEGMENT_A},
        {"attribute": "a", "op": "exists"},
        {"not": {"any": [
            {"event": "x", "op": "eq", "value": 0},
            {"in_segment": SEGMENT_B},
            {"not": {"in_segment": SEGMENT_A}}
        ]}}
    ]}));
    assert_eq!(
        filter.segment_refs(),
        vec![
            (seg(SEGMENT_A), "filter.all[0].in_segment".to_string()),
            (
                seg(SEGMENT_B),
                "filter.all[2].not.any[1].in_segment".to_string()
            ),
            (
                seg(SEGMENT_A),
                "filter.all[2].not.any[2].not.in_segment".to_string()
            ),
        ]
    );
    assert_eq!(
        ok(json!({"in_segment": SEGMENT_B})).segment_refs(),
        vec![(seg(SEGMENT_B), "filter.in_segment".to_string())]
    );
    assert_eq!(ok(json!({"all": []})).segment_refs(), vec![]);
    assert_eq!(
        ok(json!({"random_bucket": {"op": "lt", "value": 10}})).segment_refs(),
        vec![]
    );
}

#[test]
fn the_first_bad_node_in_document_order_is_reported() {
    refused(
        json!({"any": [
            {"attribute": "a", "op": "exists"},
            {"event": "x", "op": "gte", "value": 1, "within_days": 0},
            {"in_segment": "nope"}
        ]}),
        "filter.any[1].within_days",
        "must be an integer from 1 to 3650",
    );
}
