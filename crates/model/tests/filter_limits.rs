//! What one filter may cost: `matches` operators, `in` list lengths, and compiled
//! patterns shared between equal pattern texts.

use headcount_model::Filter;
use headcount_model::filter::{AttrOp, Pattern};
use headcount_model::limits::{
    MAX_IN_VALUES, MAX_REGEX_BYTES_PER_WORKSPACE, MAX_REGEXES_PER_FILTER,
    MAX_REGEXES_PER_WORKSPACE, check_workspace_patterns,
};
use serde_json::{Value as Json, json};

fn matches(pattern: &str) -> Json {
    json!({"attribute": "a", "op": "matches", "value": pattern})
}

#[test]
fn a_filter_with_more_matches_operators_than_the_limit_is_refused_before_compiling_them() {
    let at_limit: Vec<Json> = (0..MAX_REGEXES_PER_FILTER)
        .map(|n| matches(&format!("x{n}")))
        .collect();
    assert!(Filter::parse(&json!({"any": at_limit}), "filter").is_ok());
    // The request: 1,000 × \w{20}. Refused at the 21st, in no time.
    let many: Vec<Json> = (0..1_000).map(|_| matches("\\w{20}")).collect();
    let started = std::time::Instant::now();
    let e = Filter::parse(&json!({"any": many}), "filter").expect_err("over the limit");
    assert_eq!(e.path, format!("filter.any[{MAX_REGEXES_PER_FILTER}].op"));
    assert_eq!(
        e.reason,
        "a filter may use at most 20 matches operators; this is one more"
    );
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn an_in_list_longer_than_the_limit_is_refused_with_its_length() {
    let list = |n: usize| -> Json { (0..n).map(|i| json!(format!("v{i}"))).collect() };
    for op in ["in", "not_in"] {
        let at_limit = json!({"attribute": "a", "op": op, "value": list(MAX_IN_VALUES)});
        assert!(Filter::parse(&at_limit, "filter").is_ok());
        let over = json!({"attribute": "a", "op": op, "value": list(300_000)});
        let e = Filter::parse(&over, "filter").expect_err("over the limit");
        assert_eq!(e.path, "filter.value");
        assert_eq!(
            e.reason,
            format!("{op} lists may hold at most 10,000 values; this one holds 300,000")
        );
    }
}

#[test]
fn equal_patterns_share_one_compiled_regex() {
    let first = Pattern::new("^shared-[a-z]+$").expect("a pattern");
    let second = Pattern::new("^shared-[a-z]+$").expect("a pattern");
    assert!(first.shares_with(&second));
    assert!(!first.shares_with(&Pattern::new("^other$").expect("a pattern")));
    // Through the parser too.
    let parse = || Filter::parse(&matches("^shared-[a-z]+$"), "filter").expect("a filter");
    let (a, b) = (parse(), parse());
    match (&a, &b) {
        (
            Filter::Attribute {
                op: AttrOp::Matches(p),
                ..
            },
            Filter::Attribute {
                op: AttrOp::Matches(q),
                ..
            },
        ) => {
            assert!(p.shares_with(q));
            assert!(p.shares_with(&first));
            assert!(p.is_match("shared-abc") && !p.is_match("shared-1"));
        }
        other => panic!("not two matches nodes: {other:?}"),
    }
}

#[test]
fn a_pattern_is_compiled_again_once_nothing_holds_it() {
    let first = Pattern::new("^dropped-pattern$").expect("a pattern");
    let bytes = first.memory_usage();
    assert!(bytes > 0);
    drop(first);
    let again = Pattern::new("^dropped-pattern$").expect("a pattern");
    assert!(again.is_match("dropped-pattern"));
}

#[test]
fn workspace_patterns_are_limited_in_count_and_in_compiled_bytes() {
    let one = Pattern::new("^ws-[0-9]+$").expect("a pattern");
    let same: Vec<Pattern> = vec![one.clone(); MAX_REGEXES_PER_WORKSPACE];
    assert!(check_workspace_patterns(&same).is_ok());
    let over: Vec<Pattern> = vec![one; MAX_REGEXES_PER_WORKSPACE + 1];
    assert_eq!(
        check_workspace_patterns(&over),
        Err(
            "the live segments of this workspace would use 201 matches operators; at most 200 are allowed"
                .to_string()
        )
    );
    // Large distinct patterns: \w{20} (Unicode) is about a megabyte of automata.
    let big: Vec<Pattern> = (0..40)
        .map(|n| Pattern::new(&format!("\\w{{20}}-{n}")).expect("a pattern"))
        .collect();
    let bytes: usize = big.iter().map(Pattern::memory_usage).sum();
    assert!(bytes > MAX_REGEX_BYTES_PER_WORKSPACE, "{bytes} bytes");
    let e = check_workspace_patterns(&big).expect_err("over the byte budget");
    assert!(
        e.starts_with("the live segments of this workspace would hold ")
            && e.ends_with("bytes of compiled matches patterns; at most 33,554,432 are allowed"),
        "{e}"
    );
}
