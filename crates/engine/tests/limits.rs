//! The limits on a filter's size after `in_segment` expansion: long chains and wide
//! diamonds of references are refused with the expanded size, never by overflowing
//! the stack, and a filter at the limits compiles and evaluates.

use headcount_engine::{Index, Measure, Plan, PlanError};
use headcount_model::limits::{MAX_INLINED_DEPTH, MAX_INLINED_NODES};
use headcount_model::{Fact, FactKind, Filter, SegmentId, Timestamp, UserKey};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::Arc;

fn id(n: usize) -> SegmentId {
    format!("00000000-0000-4000-8000-{n:012}")
        .parse()
        .expect("a uuid")
}

/// Segment `n` (for n ≥ 1) is `wrap(in_segment(n - 1))`; segment 0 is `{"all": []}`.
fn chain(links: usize, wrap: impl Fn(Filter) -> Filter) -> HashMap<SegmentId, Arc<Filter>> {
    let mut segments = HashMap::new();
    segments.insert(id(0), Arc::new(Filter::All(vec![])));
    for n in 1..=links {
        segments.insert(id(n), Arc::new(wrap(Filter::InSegment(id(n - 1)))));
    }
    segments
}

fn nots(filter: Filter, count: usize) -> Filter {
    (0..count).fold(filter, |f, _| Filter::Not(Box::new(f)))
}

fn compile(segments: &HashMap<SegmentId, Arc<Filter>>, top: usize) -> Result<Plan, PlanError> {
    let resolve = |s: SegmentId| {
        segments
            .get(&s)
            .cloned()
            .ok_or(PlanError::UnknownSegment(s))
    };
    Plan::compile_segment(id(top), &resolve)
}

#[test]
fn a_chain_of_five_thousand_in_segment_links_is_refused_as_too_deep() {
    let segments = chain(5_000, |f| f);
    // in_segment(top) + 5,000 links of one in_segment each + the {"all": []} at the end.
    assert_eq!(
        compile(&segments, 5_000).err(),
        Some(PlanError::TooDeep(5_002))
    );
    let message = compile(&segments, 5_000).err().map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "after in_segment expansion the filter would nest 5,002 levels deep; at most 256 are allowed"
        )
    );
}

#[test]
fn a_chain_of_not_wrapped_links_is_refused_at_the_depth_limit() {
    let segments = chain(200, |f| nots(f, 30));
    // Each link adds 31 levels: 30 nots and its in_segment.
    let deepest_allowed = (MAX_INLINED_DEPTH as usize - 2) / 31;
    assert!(compile(&segments, deepest_allowed).is_ok());
    assert_eq!(
        compile(&segments, deepest_allowed + 1).err(),
        Some(PlanError::TooDeep(2 + 31 * (deepest_allowed as u64 + 1)))
    );
    assert!(matches!(
        compile(&segments, 200),
        Err(PlanError::TooDeep(_))
    ));
}

#[test]
fn a_diamond_of_references_is_measured_without_expanding_it() {
    // Segment n refers to n - 1 twice: expanded, it would have about 2^n nodes.
    let segments = chain(200, |f| Filter::Any(vec![f.clone(), f]));
    let resolve = |s: SegmentId| {
        segments
            .get(&s)
            .cloned()
            .ok_or(PlanError::UnknownSegment(s))
    };
    let mut measure = Measure::new(&resolve);
    let size = measure.segment(id(200)).expect("no cycle");
    assert_eq!(size.nodes, u64::MAX, "the node count saturates");
    assert_eq!(size.depth, 2 * 200 + 1);
    let small = measure.segment(id(5)).expect("no cycle");
    // s0: 1 node; s(n): 1 (any) + 2 × (1 + s(n-1)) = 2^(n+2) - 3.
    assert_eq!(small.nodes, 125);
    assert!(matches!(
        compile(&segments, 200),
        Err(PlanError::TooManyNodes(u64::MAX))
    ));
    assert_eq!(
        compile(&segments, 12).err().map(|e| e.to_string()),
        Some(format!(
            "after in_segment expansion the filter would have 16,382 nodes; at most {} are allowed",
            headcount_model::limits::grouped(MAX_INLINED_NODES)
        ))
    );
}

#[test]
fn a_plan_at_the_depth_limit_compiles_and_evaluates() {
    let links = (MAX_INLINED_DEPTH as usize - 2) / 2;
    // Each link is {"all": [in_segment]}: two levels.
    let segments = chain(links, |f| Filter::All(vec![f]));
    let plan = compile(&segments, links).expect("within the limits");
    let mut index = Index::new();
    let at: Timestamp = "2024-05-01T00:00:00Z".parse().expect("an instant");
    let fact = Fact {
        time: at,
        kind: FactKind::Attributes(vec![]),
    };
    index.apply(&UserKey::External("u1".into()), &fact);
    let later: Timestamp = "2024-06-01T00:00:00Z".parse().expect("an instant");
    assert_eq!(index.size(&plan, later, &TimeZone::UTC), 1);
}
