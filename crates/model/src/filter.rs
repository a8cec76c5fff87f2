//! The segment filter language: its AST, and a parser that validates a JSON filter
//! completely and names the path of the first bad node.
//!
//! Grammar (see `shared/spec/segments.md`):
//!
//! ```text
//! node      := {"all": [node, …]} | {"any": [node, …]} | {"not": node}
//!            | {"attribute": NAME, "op": ATTR_OP, "value"?: V}
//!            | {"event": NAME, "op": CMP, "value": INT, "within_days"?: 1..=3650}
//!            | {"purchase": PRODUCT | "*", "op": CMP, "value": INT, "within_days"?: 1..=3650}
//!            | {"in_segment": SEGMENT_ID}
//!            | {"random_bucket": {"op": CMP, "value": INT}}
//! CMP       := eq | ne | gt | gte | lt | lte
//! ATTR_OP   := exists | not_exists | eq | ne | gt | gte | lt | lte | in | not_in
//!            | contains | starts_with | matches | within_last_days | more_than_days_ago
//! ```

use crate::datetime;
use crate::ids::SegmentId;
use crate::limits::{MAX_IN_VALUES, MAX_REGEXES_PER_FILTER, grouped};
pub use crate::pattern::{Pattern, REGEX_SIZE_LIMIT};
use crate::value::Value;
use jiff::Timestamp;
use serde_json::{Map, Value as Json};
use std::fmt;

/// Largest `within_days`, `within_last_days` and `more_than_days_ago`.
pub const MAX_DAYS: i64 = 3650;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// One node of a segment filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every child holds; empty: every existing user.
    All(Vec<Filter>),
    /// At least one child holds; empty: nobody.
    Any(Vec<Filter>),
    /// The child does not hold.
    Not(Box<Filter>),
    /// A test of the user's latest value of a custom attribute.
    Attribute {
        /// The attribute's name.
        name: String,
        /// The test.
        op: AttrOp,
    },
    /// A count of events named `name` in a window.
    Event {
        /// The event name.
        name: String,
        /// The comparison of the count.
        count: CountTest,
    },
    /// A count of purchases of `product` (`None`: any product) in a window.
    Purchase {
        /// The `product_id`, or `None` for `"*"`.
        product: Option<String>,
        /// The comparison of the count.
        count: CountTest,
    },
    /// Membership of another segment as of the same instant.
    InSegment(SegmentId),
    /// A comparison of the user's random bucket.
    RandomBucket {
        /// The comparison.
        cmp: Cmp,
        /// The operand.
        value: i64,
    },
}

/// A comparison of a count of events or purchases with a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountTest {
    /// The comparison.
    pub cmp: Cmp,
    /// The operand `K`.
    pub value: i64,
    /// `W`: the window is the W calendar days ending with the reference day; `None`:
    /// all time.
    pub within_days: Option<u32>,
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
}

impl Cmp {
    /// Whether `left CMP right` holds.
    pub fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Ne => left != right,
            Cmp::Gt => left > right,
            Cmp::Gte => left >= right,
            Cmp::Lt => left < right,
            Cmp::Lte => left <= right,
        }
    }

    /// The operator's name in the filter language.
    pub fn name(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Ne => "ne",
            Cmp::Gt => "gt",
            Cmp::Gte => "gte",
            Cmp::Lt => "lt",
            Cmp::Lte => "lte",
        }
    }

    fn parse(name: &str) -> Option<Cmp> {
        Some(match name {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "gt" => Cmp::Gt,
            "gte" => Cmp::Gte,
            "lt" => Cmp::Lt,
            "lte" => Cmp::Lte,
            _ => return None,
        })
    }
}

/// An operand of an ordering comparison: a number, or a datetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ordered {
    /// Compared with number values.
    Number(f64),
    /// Compared with datetime values.
    DateTime(Timestamp),
}

/// The attribute operators.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrOp {
    /// Has a value.
    Exists,
    /// Has no value.
    NotExists,
    /// Equal to the value (same kind).
    Eq(Value),
    /// Not `Eq`.
    Ne(Value),
    /// `gt`/`gte`/`lt`/`lte` against a number or a datetime (never `Eq`/`Ne`).
    Order(Cmp, Ordered),
    /// `Eq` to one of the values.
    In(Vec<Value>),
    /// Not `In`.
    NotIn(Vec<Value>),
    /// String containing the substring, or array holding the element.
    Contains(String),
    /// String starting with the prefix.
    StartsWith(String),
    /// String matching the regular expression (unanchored search).
    Matches(Pattern),
    /// Datetime within the last N calendar days up to the instant.
    WithinLastDays(u32),
    /// Datetime before the start of the last N calendar days.
    MoreThanDaysAgo(u32),
}

/// Why a filter was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    /// The path of the bad node or field, such as `filter.all[2].op`.
    pub path: String,
    /// What is wrong, in English.
    pub reason: String,
}

fn fail<T>(path: &str, reason: impl fmt::Display) -> Result<T, FilterError> {
    Err(FilterError {
        path: path.to_string(),
        reason: reason.to_string(),
    })
}

const NODE_KEYS: &str = "all, any, not, attribute, event, purchase, in_segment, random_bucket";
const ATTR_OPS: &str = "exists, not_exists, eq, ne, gt, gte, lt, lte, in, not_in, contains, \
starts_with, matches, within_last_days, more_than_days_ago";
const CMPS: &str = "eq, ne, gt, gte, lt, lte";
/// Keys that are fields of some node kind, not kinds themselves.
const FIELD_KEYS: &[&str] = &["op", "value", "within_days"];

impl Filter {
    /// Parses and validates a filter; `root` is the path of the filter itself in error
    /// messages (usually `"filter"`). Segment references are checked for form only: the
    /// caller checks that they exist, are not archived and make no cycle.
    pub fn parse(json: &Json, root: &str) -> Result<Filter, FilterError> {
        parse_node(json, root, 0, &mut Budget::default())
    }

    /// Every segment named by an `in_segment` node, with the path of its node.
    pub fn segment_refs(&self) -> Vec<(SegmentId, String)> {
        let mut out = Vec::new();
        self.collect_refs("filter".to_string(), &mut out);
        out
    }

    /// The segments named by the filter's own `in_segment` nodes, in order, without
    /// paths (cheaper than [`Filter::segment_refs`]).
    pub fn segment_ids(&self) -> Vec<SegmentId> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            match node {
                Filter::All(children) | Filter::Any(children) => {
                    stack.extend(children.iter().rev())
                }
                Filter::Not(child) => stack.push(child),
                Filter::InSegment(id) => out.push(*id),
                _ => {}
            }
        }
        out
    }

    fn collect_refs(&self, path: String, out: &mut Vec<(SegmentId, String)>) {
        match self {
            Filter::All(children) | Filter::Any(children) => {
                let key = if matches!(self, Filter::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, child) in children.iter().enumerate() {
                    child.collect_refs(format!("{path}.{key}[{i}]"), out);
                }
            }
            Filter::Not(child) => child.collect_refs(format!("{path}.not"), out),
            Filter::InSegment(id) => out.push((*id, format!("{path}.in_segment"))),
            _ => {}
        }
    }
}

/// What the nodes parsed so far have spent of the per-filter limits.
#[derive(Default)]
struct Budget {
    /// `matches` nodes seen.
    regexes: usize,
}

fn parse_node(
    json: &Json,
    path: &str,
    depth: usize,
    budget: &mut Budget,
) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return fail(
            path,
            format!("filters may nest at most {MAX_DEPTH} levels deep"),
        );
    }
    let Json::Object(obj) = json else {
        return fail(
            path,
            format!("a filter node must be an object with one of: {NODE_KEYS}"),
        );
    };
    let kinds: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| NODE_KEYS.split(", ").any(|n| n == *k))
        .collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        // Name the key that is wrong: one that is no field of any node (a misspelt
        // kind, most likely) rather than an `op` or a `value` that is fine in itself.
        [] => match obj.keys().find(|k| !FIELD_KEYS.contains(&k.as_str())) {
            Some(key) => {
                return fail(
                    &format!("{path}.{key}"),
                    format!("unknown key; a node has one of: {NODE_KEYS}"),
                );
            }
            None if obj.is_empty() => {
                return fail(path, format!("empty node; a node has one of: {NODE_KEYS}"));
            }
            None => {
                return fail(
                    path,
                    format!("the node has no kind; it needs one of: {NODE_KEYS}"),
                );
            }
        },
        [_, second, ..] => {
            return fail(
                &format!("{path}.{second}"),
                "a node has exactly one kind; split it with all/any",
            );
        }
    };
    let field = |name: &str| format!("{path}.{name}");
    match kind {
        "all" | "any" => {
            only_keys(obj, path, &[kind])?;
            let Json::Array(items) = &obj[kind] else {
                return fail(&field(kind), "must be an array of filter nodes");
            };
            let children = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_node(item, &format!("{path}.{kind}[{i}]"), depth + 1, budget)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if kind == "all" {
                Filter::All(children)
            } else {
                Filter::Any(children)
            })
        }
        "not" => {
            only_keys(obj, path, &["not"])?;
            Ok(Filter::Not(Box::new(parse_node(
                &obj["not"],
                &field("not"),
                depth + 1,
                budget,
            )?)))
        }
        "attribute" => parse_attribute(obj, path, budget),
        "event" | "purchase" => {
            only_keys(obj, path, &[kind, "op", "value", "within_days"])?;
            let name = non_empty_string(&obj[kind], &field(kind))?;
            let count = CountTest {
                cmp: cmp_field(obj, path)?,
                value: int_field(obj, path, "value")?,
                within_days: match obj.get("within_days") {
                    None => None,
                    Some(v) => Some(days(v, &field("within_days"))?),
                },
            };
            Ok(if kind == "event" {
                Filter::Event { name, count }
            } else {
                let product = if name == "*" { None } else { Some(name) };
                Filter::Purchase { product, count }
            })
        }
        "in_segment" => {
            only_keys(obj, path, &["in_segment"])?;
            let id = match &obj["in_segment"] {
                Json::String(s) => s.parse::<SegmentId>().ok(),
                _ => None,
            };
            match id {
                Some(id) => Ok(Filter::InSegment(id)),
                None => fail(
                    &field("in_segment"),
                    "must be a segment API identifier (a UUID string)",
                ),
            }
        }
        "random_bucket" => {
            only_keys(obj, path, &["random_bucket"])?;
            let inner_path = field("random_bucket");
            let Json::Object(inner) = &obj["random_bucket"] else {
                return fail(
                    &inner_path,
                    "must be an object {\"op\": CMP, \"value\": INTEGER}",
                );
            };
            only_keys(inner, &inner_path, &["op", "value"])?;
            Ok(Filter::RandomBucket {
                cmp: cmp_field(inner, &inner_path)?,
                value: int_field(inner, &inner_path, "value")?,
            })
        }
        _ => unreachable!("kind is one of NODE_KEYS"),
    }
}

fn only_keys(obj: &Map<String, Json>, path: &str, allowed: &[&str]) -> Result<(), FilterError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => fail(
            &format!("{path}.{key}"),
            format!("unknown key; this node accepts: {}", allowed.join(", ")),
        ),
        None => Ok(()),
    }
}

fn non_empty_string(json: &Json, path: &str) -> Result<String, FilterError> {
    match json {
        Json::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => fail(path, "must be a non-empty string"),
    }
}

fn required<'a>(
    obj: &'a Map<String, Json>,
    path: &str,
    key: &str,
) -> Result<&'a Json, FilterError> {
    obj.get(key).ok_or_else(|| FilterError {
        path: format!("{path}.{key}"),
        reason: "is required".into(),
    })
}

fn cmp_field(obj: &Map<String, Json>, path: &str) -> Result<Cmp, FilterError> {
    let op_path = format!("{path}.op");
    match required(obj, path, "op")? {
        Json::String(s) => match Cmp::parse(s) {
            Some(cmp) => Ok(cmp),
            None => fail(
                &op_path,
                format!("unknown operator \"{s}\"; expected one of: {CMPS}"),
            ),
        },
        _ => fail(&op_path, format!("must be one of: {CMPS}")),
    }
}

fn int_field(obj: &Map<String, Json>, path: &str, key: &str) -> Result<i64, FilterError> {
    match required(obj, path, key)?.as_i64() {
        Some(n) => Ok(n),
        None => fail(&format!("{path}.{key}"), "must be an integer"),
    }
}

fn days(json: &Json, path: &str) -> Result<u32, FilterError> {
    match json.as_i64() {
        Some(n) if (1..=MAX_DAYS).contains(&n) => Ok(n as u32),
        _ => fail(path, format!("must be an integer from 1 to {MAX_DAYS}")),
    }
}

fn parse_attribute(
    obj: &Map<String, Json>,
    path: &str,
    budget: &mut Budget,
) -> Result<Filter, FilterError> {
    only_keys(obj, path, &["attribute", "op", "value"])?;
    let name = non_empty_string(&obj["attribute"], &format!("{path}.attribute"))?;
    let op_path = format!("{path}.op");
    let value_path = format!("{path}.value");
    let Json::String(op_name) = required(obj, path, "op")? else {
        return fail(&op_path, format!("must be one of: {ATTR_OPS}"));
    };
    let no_value = |op: AttrOp| match obj.get("value") {
        Some(_) => fail(&value_path, format!("\"{op_name}\" takes no value")),
        None => Ok(op),
    };
    let value = || required(obj, path, "value");
    let op = match op_name.as_str() {
        "exists" => no_value(AttrOp::Exists)?,
        "not_exists" => no_value(AttrOp::NotExists)?,
        "eq" => AttrOp::Eq(scalar(value()?, &value_path)?),
        "ne" => AttrOp::Ne(scalar(value()?, &value_path)?),
        "gt" | "gte" | "lt" | "lte" => {
            let cmp = Cmp::parse(op_name).expect("matched above");
            AttrOp::Order(cmp, ordered(value()?, &value_path)?)
        }
        "in" | "not_in" => {
            let Json::Array(items) = value()? else {
                return fail(&value_path, "must be an array of values");
            };
            if items.len() > MAX_IN_VALUES {
                return fail(
                    &value_path,
                    format!(
                        "{op_name} lists may hold at most {} values; this one holds {}",
                        grouped(MAX_IN_VALUES as u64),
                        grouped(items.len() as u64)
                    ),
                );
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &format!("{value_path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if op_name == "in" {
                AttrOp::In(values)
            } else {
                AttrOp::NotIn(values)
            }
        }
        "contains" => AttrOp::Contains(string(value()?, &value_path)?),
        "starts_with" => AttrOp::StartsWith(string(value()?, &value_path)?),
        "matches" => {
            let source = string(value()?, &value_path)?;
            // Counted before compiling: the limit is there to spare the compilations.
            budget.regexes += 1;
            if budget.regexes > MAX_REGEXES_PER_FILTER {
                return fail(
                    &op_path,
                    format!(
                        "a filter may use at most {MAX_REGEXES_PER_FILTER} matches operators; this is one more"
                    ),
                );
            }
            match Pattern::new(&source) {
                Ok(pattern) => AttrOp::Matches(pattern),
                Err(e) => return fail(&value_path, format!("invalid regular expression: {e}")),
            }
        }
        "within_last_days" => AttrOp::WithinLastDays(days(value()?, &value_path)?),
        "more_than_days_ago" => AttrOp::MoreThanDaysAgo(days(value()?, &value_path)?),
        other => {
            return fail(
                &op_path,
                format!("unknown operator \"{other}\"; expected one of: {ATTR_OPS}"),
            );
        }
    };
    Ok(Filter::Attribute { name, op })
}

fn scalar(json: &Json, path: &str) -> Result<Value, FilterError> {
    match Value::from_json(json) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => fail(
            path,
            "must not be null (use the exists / not_exists operators)",
        ),
        Err(e) => fail(path, e),
    }
}

fn string(json: &Json, path: &str) -> Result<String, FilterError> {
    match json {
        Json::String(s) => Ok(s.clone()),
        _ => fail(path, "must be a string"),
    }
}

fn ordered(json: &Json, path: &str) -> Result<Ordered, FilterError> {
    match json {
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Ordered::Number(f)),
            _ => fail(path, "must be a finite number"),
        },
        Json::String(s) => match datetime::parse_instant_utc(s) {
            Some(t) => Ok(Ordered::DateTime(t)),
            None => fail(
                path,
                format!(
                    "must be a number or an ISO-8601 datetime ({})",
                    datetime::ACCEPTED_FORMS
                ),
            ),
        },
        _ => fail(path, "must be a number or an ISO-8601 datetime string"),
    }
}
