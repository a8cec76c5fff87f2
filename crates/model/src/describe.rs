//! A readable English sentence for a filter: Braze's `description` field.

use crate::filter::{AttrOp, Cmp, CountTest, Filter, Ordered};
use crate::ids::SegmentId;
use crate::value::Value;

/// Describes `filter` as one English sentence. `segment_name` gives the name of a
/// segment referenced by `in_segment`, when it is known.
pub fn describe(filter: &Filter, segment_name: &dyn Fn(SegmentId) -> Option<String>) -> String {
    match filter {
        Filter::All(c) if c.is_empty() => "All users.".to_string(),
        Filter::Any(c) if c.is_empty() => "No users.".to_string(),
        _ => format!("Users for whom {}.", clause(filter, segment_name, false)),
    }
}

fn clause(filter: &Filter, names: &dyn Fn(SegmentId) -> Option<String>, nested: bool) -> String {
    let joined = |children: &[Filter], word: &str| {
        let parts: Vec<String> = children.iter().map(|c| clause(c, names, true)).collect();
        let text = parts.join(word);
        if nested && parts.len() > 1 {
            format!("({text})")
        } else {
            text
        }
    };
    match filter {
        Filter::All(c) if c.is_empty() => "true".into(),
        Filter::Any(c) if c.is_empty() => "false".into(),
        Filter::All(c) => joined(c, " and "),
        Filter::Any(c) => joined(c, " or "),
        Filter::Not(child) => format!("not ({})", clause(child, names, false)),
        Filter::Attribute { name, op } => attribute(name, op),
        Filter::Event { name, count } => {
            let times = if count.value == 1 { "time" } else { "times" };
            let name = quoted(name);
            format!(
                "{name} happened {} {times} {}",
                how_many(count),
                window(count)
            )
        }
        Filter::Purchase { product, count } => {
            let what = match product {
                Some(p) => quoted(p),
                None => "any product".to_string(),
            };
            format!(
                "purchases of {what} number {} {}",
                how_many(count),
                window(count)
            )
        }
        Filter::InSegment(id) => match names(*id) {
            Some(name) => format!("the user is in segment {}", quoted(&name)),
            None => format!("the user is in segment {id}"),
        },
        Filter::RandomBucket { cmp, value } => {
            format!("the random bucket {} {value}", cmp_words(*cmp))
        }
    }
}

/// The comparison of a count with its operand: "at least 3".
fn how_many(count: &CountTest) -> String {
    let how = match count.cmp {
        Cmp::Eq => "exactly",
        Cmp::Ne => "other than",
        Cmp::Gt => "more than",
        Cmp::Gte => "at least",
        Cmp::Lt => "fewer than",
        Cmp::Lte => "at most",
    };
    format!("{how} {}", count.value)
}

/// The window of a count: all time, the reference day, or the last W days.
fn window(count: &CountTest) -> String {
    match count.within_days {
        None => "ever".to_string(),
        Some(1) => "today".to_string(),
        Some(w) => format!("in the last {w} days"),
    }
}

fn cmp_words(cmp: Cmp) -> &'static str {
    match cmp {
        Cmp::Eq => "is",
        Cmp::Ne => "is not",
        Cmp::Gt => "is greater than",
        Cmp::Gte => "is at least",
        Cmp::Lt => "is less than",
        Cmp::Lte => "is at most",
    }
}

/// A value as written in a sentence: strings quoted, numbers without a trailing `.0`,
/// datetimes in RFC 3339, arrays as a bracketed list.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DateTime(t) => t.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn attribute(name: &str, op: &AttrOp) -> String {
    let list = |values: &[Value]| {
        if values.is_empty() {
            "an empty list".to_string()
        } else {
            values.iter().map(value_text).collect::<Vec<_>>().join(", ")
        }
    };
    let days = |d: u32| {
        if d == 1 {
            "1 day".to_string()
        } else {
            format!("{d} days")
        }
    };
    match op {
        AttrOp::Exists => format!("{name} is set"),
        AttrOp::NotExists => format!("{name} is not set"),
        AttrOp::Eq(v) => format!("{name} is {}", value_text(v)),
        AttrOp::Ne(v) => format!("{name} is not {}", value_text(v)),
        AttrOp::Order(cmp, Ordered::Number(n)) => format!("{name} {} {n}", cmp_words(*cmp)),
        AttrOp::Order(cmp, Ordered::DateTime(t)) => {
            let when = match cmp {
                Cmp::Gt => "is after",
                Cmp::Gte => "is at or after",
                Cmp::Lt => "is before",
                _ => "is at or before",
            };
            format!("{name} {when} {t}")
        }
        AttrOp::In(values) => format!("{name} is one of {}", list(values)),
        AttrOp::NotIn(values) => format!("{name} is none of {}", list(values)),
        AttrOp::Contains(s) => format!("{name} contains {}", quoted(s)),
        AttrOp::StartsWith(s) => format!("{name} starts with {}", quoted(s)),
        AttrOp::Matches(p) => format!("{name} matches /{}/", p.as_str()),
        AttrOp::WithinLastDays(1) => format!("{name} is today"),
        AttrOp::WithinLastDays(d) => format!("{name} is within the last {}", days(*d)),
        AttrOp::MoreThanDaysAgo(d) => format!("{name} is more than {} ago", days(*d)),
    }
}

/// A string in double quotes, escaped as JSON so that the sentence stays on one line.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_spec_example_reads_as_english() {
        let filter = Filter::parse(
            &json!({"all": [
                {"attribute": "country", "op": "eq", "value": "FR"},
                {"any": [
                    {"event": "session_start", "op": "gte", "value": 3, "within_days": 7},
                    {"purchase": "*", "op": "gte", "value": 1, "within_days": 30}
                ]},
                {"not": {"attribute": "email_opt_out", "op": "eq", "value": true}}
            ]}),
            "filter",
        )
        .unwrap();
        assert_eq!(
            describe(&filter, &|_| None),
            "Users for whom country is \"FR\" and (\"session_start\" happened at least 3 times \
             in the last 7 days or purchases of any product number at least 1 in the last 30 days) \
             and not (email_opt_out is true)."
        );
    }
}
