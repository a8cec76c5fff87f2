//! `describe`: the readable English sentence Braze returns as a segment's `description`
//! (shared/spec/braze-compat.md, GET /segments/details).

use headcount_model::describe::describe;
use headcount_model::{Filter, SegmentId};
use serde_json::{Value as Json, json};

const SEGMENT_A: &str = "3bbc4555-8fa0-4c9b-a5c0-4505edf3e064";

fn parse(json: Json) -> Filter {
    Filter::parse(&json, "filter").unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// The sentence for `json`, with no segment names known.
fn sentence(json: Json) -> String {
    describe(&parse(json), &|_| None)
}

/// The sentence for `json`, where segment A is called "Loyal customers".
fn sentence_with_names(json: Json) -> String {
    let a: SegmentId = SEGMENT_A.parse().unwrap();
    describe(&parse(json), &move |id| {
        (id == a).then(|| "Loyal customers".to_string())
    })
}

#[test]
fn exact_sentences() {
    let cases: Vec<(Json, &str)> = vec![
        (json!({"all": []}), "All users."),
        (json!({"any": []}), "No users."),
        (
            json!({"attribute": "country", "op": "eq", "value": "FR"}),
            "Users for whom country is \"FR\".",
        ),
        (
            json!({"attribute": "age", "op": "gte", "value": 18}),
            "Users for whom age is at least 18.",
        ),
        (
            json!({"attribute": "age", "op": "eq", "value": 30}),
            "Users for whom age is 30.",
        ),
        (
            json!({"attribute": "score", "op": "ne", "value": 2.5}),
            "Users for whom score is not 2.5.",
        ),
        (
            json!({"attribute": "vip", "op": "eq", "value": true}),
            "Users for whom vip is true.",
        ),
        (
            json!({"attribute": "email", "op": "exists"}),
            "Users for whom email is set.",
        ),
        (
            json!({"attribute": "email", "op": "not_exists"}),
            "Users for whom email is not set.",
        ),
        (
            json!({"attribute": "signup", "op": "lt", "value": "2024-01-01T00:00:00+01:00"}),
            "Users for whom signup is before 2023-12-31T23:00:00Z.",
        ),
        (
            json!({"attribute": "signup", "op": "eq", "value": "2024-01-01T00:00:00Z"}),
            "Users for whom signup is 2024-01-01T00:00:00Z.",
        ),
        (
            json!({"attribute": "country", "op": "in", "value": ["FR", "DE"]}),
            "Users for whom country is one of \"FR\", \"DE\".",
        ),
        (
            json!({"attribute": "country", "op": "not_in", "value": []}),
            "Users for whom country is none of an empty list.",
        ),
        (
            json!({"attribute": "tags", "op": "eq", "value": ["a", "b"]}),
            "Users for whom tags is [\"a\", \"b\"].",
        ),
        (
            json!({"attribute": "tier", "op": "contains", "value": "gold"}),
            "Users for whom tier contains \"gold\".",
        ),
        (
            json!({"attribute": "phone", "op": "starts_with", "value": "+33"}),
            "Users for whom phone starts with \"+33\".",
        ),
        (
            json!({"attribute": "email", "op": "matches", "value": "@example\\.com$"}),
            "Users for whom email matches /@example\\.com$/.",
        ),
        (
            json!({"attribute": "last_seen", "op": "within_last_days", "value": 7}),
            "Users for whom last_seen is within the last 7 days.",
        ),
        (
            json!({"attribute": "last_seen", "op": "within_last_days", "value": 1}),
            "Users for whom last_seen is today.",
        ),
        (
            json!({"attribute": "last_seen", "op": "more_than_days_ago", "value": 30}),
            "Users for whom last_seen is more than 30 days ago.",
        ),
        (
            json!({"attribute": "last_seen", "op": "more_than_days_ago", "value": 1}),
            "Users for whom last_seen is more than 1 day ago.",
        ),
        (
            json!({"event": "login", "op": "eq", "value": 0}),
            "Users for whom \"login\" happened exactly 0 times ever.",
        ),
        (
            json!({"event": "login", "op": "gte", "value": 1, "within_days": 1}),
            "Users for whom \"login\" happened at least 1 time today.",
        ),
        (
            json!({"event": "login", "op": "lt", "value": 5, "within_days": 30}),
            "Users for whom \"login\" happened fewer than 5 times in the last 30 days.",
        ),
        (
            json!({"purchase": "sku-42", "op": "gt", "value": 2}),
            "Users for whom purchases of \"sku-42\" number more than 2 ever.",
        ),
        (
            json!({"purchase": "*", "op": "lte", "value": 1, "within_days": 90}),
            "Users for whom purchases of any product number at most 1 in the last 90 days.",
        ),
        (
            json!({"in_segment": SEGMENT_A}),
            "Users for whom the user is in segment 3bbc4555-8fa0-4c9b-a5c0-4505edf3e064.",
        ),
        (
            json!({"random_bucket": {"op": "lt", "value": 5000}}),
            "Users for whom the random bucket is less than 5000.",
        ),
        (
            json!({"not": {"attribute": "email_opt_out", "op": "eq", "value": true}}),
            "Users for whom not (email_opt_out is true).",
        ),
        (
            json!({"any": [
                {"attribute": "country", "op": "eq", "value": "FR"},
                {"attribute": "country", "op": "eq", "value": "BE"}
            ]}),
            "Users for whom country is \"FR\" or country is \"BE\".",
        ),
        (
            json!({"not": {"all": [
                {"attribute": "a", "op": "exists"},
                {"attribute": "b", "op": "exists"}
            ]}}),
            "Users for whom not (a is set and b is set).",
        ),
        // A list of one needs no parentheses.
        (
            json!({"all": [{"any": [{"attribute": "a", "op": "exists"}]}]}),
            "Users for whom a is set.",
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(sentence(json.clone()), expected, "{json}");
    }
}

#[test]
fn the_spec_example() {
    assert_eq!(
        sentence(json!({"all": [
            {"attribute": "country", "op": "eq", "value": "FR"},
            {"any": [
                {"event": "session_start", "op": "gte", "value": 3, "within_days": 7},
                {"purchase": "*", "op": "gte", "value": 1, "within_days": 30}
            ]},
            {"not": {"attribute": "email_opt_out", "op": "eq", "value": true}}
        ]})),
        "Users for whom country is \"FR\" and (\"session_start\" happened at least 3 times \
         in the last 7 days or purchases of any product number at least 1 in the last 30 days) \
         and not (email_opt_out is true)."
    );
}

#[test]
fn known_segment_names_replace_their_ids() {
    assert_eq!(
        sentence_with_names(json!({"in_segment": SEGMENT_A})),
        "Users for whom the user is in segment \"Loyal customers\"."
    );
    // An unknown id is written as is.
    let other = "0b7c5a9e-1f0d-4a51-9a43-59e3c7b1f2aa";
    assert_eq!(
        sentence_with_names(json!({"all": [
            {"in_segment": SEGMENT_A},
            {"not": {"in_segment": other}}
        ]})),
        format!(
            "Users for whom the user is in segment \"Loyal customers\" and \
             not (the user is in segment {other})."
        )
    );
}

#[test]
fn quotes_and_line_breaks_stay_inside_one_sentence() {
    let text = sentence(json!({"attribute": "note", "op": "eq", "value": "say \"hi\"\nbye"}));
    assert_eq!(text, "Users for whom note is \"say \\\"hi\\\"\\nbye\".");
    assert!(!text.contains('\n'));
}

#[test]
fn every_node_kind_and_operator_names_its_subject() {
    let cases: Vec<(Json, &str)> = vec![
        (json!({"attribute": "plan", "op": "exists"}), "plan"),
        (json!({"attribute": "plan", "op": "not_exists"}), "plan"),
        (
            json!({"attribute": "plan", "op": "eq", "value": "pro"}),
            "plan",
        ),
        (
            json!({"attribute": "plan", "op": "ne", "value": "pro"}),
            "plan",
        ),
        (json!({"attribute": "age", "op": "gt", "value": 1}), "age"),
        (json!({"attribute": "age", "op": "gte", "value": 1}), "age"),
        (json!({"attribute": "age", "op": "lt", "value": 1}), "age"),
        (json!({"attribute": "age", "op": "lte", "value": 1}), "age"),
        (
            json!({"attribute": "signup", "op": "gte", "value": "2024-01-01"}),
            "signup",
        ),
        (
            json!({"attribute": "signup", "op": "lte", "value": "2024-01-01"}),
            "signup",
        ),
        (
            json!({"attribute": "plan", "op": "in", "value": ["a"]}),
            "plan",
        ),
        (
            json!({"attribute": "plan", "op": "not_in", "value": ["a"]}),
            "plan",
        ),
        (
            json!({"attribute": "plan", "op": "contains", "value": "a"}),
            "plan",
        ),
        (
            json!({"attribute": "plan", "op": "starts_with", "value": "a"}),
            "plan",
        ),
        (
            json!({"attribute": "plan", "op": "matches", "value": "a+"}),
            "plan",
        ),
        (
            json!({"attribute": "seen", "op": "within_last_days", "value": 3}),
            "seen",
        ),
        (
            json!({"attribute": "seen", "op": "more_than_days_ago", "value": 3}),
            "seen",
        ),
        (
            json!({"event": "app_open", "op": "ne", "value": 2}),
            "app_open",
        ),
        (
            json!({"purchase": "sku-9", "op": "eq", "value": 2}),
            "sku-9",
        ),
        (
            json!({"purchase": "*", "op": "eq", "value": 2}),
            "any product",
        ),
        (json!({"in_segment": SEGMENT_A}), SEGMENT_A),
        (
            json!({"random_bucket": {"op": "gte", "value": 9000}}),
            "random bucket",
        ),
        (
            json!({"not": {"event": "app_open", "op": "gt", "value": 0}}),
            "app_open",
        ),
        (
            json!({"all": [{"event": "app_open", "op": "gt", "value": 0}, {"attribute": "plan", "op": "exists"}]}),
            "app_open",
        ),
        (
            json!({"any": [{"event": "app_open", "op": "gt", "value": 0}, {"attribute": "plan", "op": "exists"}]}),
            "plan",
        ),
    ];
    for (json, subject) in cases {
        let text = sentence(json.clone());
        assert!(text.starts_with("Users for whom "), "{text}");
        assert!(text.ends_with('.'), "{text}");
        assert!(text.len() > "Users for whom .".len(), "{text}");
        assert!(text.contains(subject), "{text} does not mention {subject}");
        assert!(!text.contains("  "), "{text}");
    }
    // Every comparison reads differently.
    let mut seen = std::collections::HashSet::new();
    for op in ["eq", "ne", "gt", "gte", "lt", "lte"] {
        let text = sentence(json!({"event": "e", "op": op, "value": 2}));
        let bucket = sentence(json!({"random_bucket": {"op": op, "value": 2}}));
        assert!(seen.insert(text.clone()), "{text}");
        assert!(seen.insert(bucket.clone()), "{bucket}");
    }
}
