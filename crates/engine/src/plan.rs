//! Compiled filters: every `in_segment` reference resolved, cycles rejected.
//!
//! A referenced segment's filter is compiled once per plan and shared: each node that
//! names it points at the same compiled subtree, which an evaluation computes at most
//! once. Inlining without sharing would be equivalent but could grow exponentially
//! with diamond-shaped references.
//!
//! Before anything is compiled, the filter is measured as if every reference were
//! expanded in place ([`Measure`], iterative, each segment measured once), and refused
//! beyond [`MAX_INLINED_NODES`] or [`MAX_INLINED_DEPTH`]. The compilation and the
//! evaluation recurse along the expanded tree, so that check bounds their stacks,
//! whatever chains of references are stored.

use crate::bitset::Bitset;
use headcount_model::filter::{AttrOp, Cmp, CountTest};
use headcount_model::limits::{MAX_INLINED_DEPTH, MAX_INLINED_NODES, grouped};
use headcount_model::{Filter, SegmentId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Why a filter could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An `in_segment` names a segment that `resolve` does not know.
    #[error("unknown segment {0}")]
    UnknownSegment(SegmentId),
    /// An `in_segment` chain leads back to a segment it started from.
    #[error("segment {0} refers to itself through in_segment")]
    Cycle(SegmentId),
    /// An `in_segment` names a segment whose own definition cannot be used.
    #[error("segment {id} cannot be computed: {reason}")]
    Failing {
        /// The segment named.
        id: SegmentId,
        /// Why it cannot be computed.
        reason: String,
    },
    /// Expanded in place, the filter would have more than [`MAX_INLINED_NODES`] nodes.
    #[error(
        "after in_segment expansion the filter would have {} nodes; at most {} are allowed",
        grouped(*.0),
        grouped(MAX_INLINED_NODES)
    )]
    TooManyNodes(u64),
    /// Expanded in place, the filter would nest deeper than [`MAX_INLINED_DEPTH`].
    #[error(
        "after in_segment expansion the filter would nest {} levels deep; at most {} are allowed",
        grouped(*.0),
        grouped(MAX_INLINED_DEPTH)
    )]
    TooDeep(u64),
}

/// Gives the filter of a referenced segment, or why it has none.
pub type Resolve<'a> = dyn Fn(SegmentId) -> Result<Arc<Filter>, PlanError> + 'a;

/// The size of a filter with every `in_segment` expanded in place (saturating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inlined {
    /// Nodes, an `in_segment` counting as one above the filter it names.
    pub nodes: u64,
    /// Levels of nesting, an `in_segment` counting as one above the filter it names.
    pub depth: u64,
}

impl Inlined {
    /// Refuses a size beyond [`MAX_INLINED_NODES`] or [`MAX_INLINED_DEPTH`].
    ///
    /// # Errors
    /// [`PlanError::TooManyNodes`] or [`PlanError::TooDeep`].
    pub fn check(self) -> Result<(), PlanError> {
        if self.nodes > MAX_INLINED_NODES {
            return Err(PlanError::TooManyNodes(self.nodes));
        }
        if self.depth > MAX_INLINED_DEPTH {
            return Err(PlanError::TooDeep(self.depth));
        }
        Ok(())
    }
}

/// Measures filters as if every reference were expanded in place, without expanding
/// anything: each segment is resolved and measured once (so diamonds cost nothing
/// extra), and references are followed with an explicit stack (so no chain of them
/// can exhaust the thread's stack).
pub struct Measure<'a> {
    resolve: &'a Resolve<'a>,
    known: HashMap<SegmentId, Inlined>,
    filters: HashMap<SegmentId, Arc<Filter>>,
}

/// A segment being measured: its references are measured first.
struct Frame {
    id: SegmentId,
    filter: Arc<Filter>,
    refs: Vec<SegmentId>,
    next: usize,
}

impl<'a> Measure<'a> {
    /// A measure that asks `resolve` for referenced filters.
    pub fn new(resolve: &'a Resolve<'a>) -> Measure<'a> {
        Measure {
            resolve,
            known: HashMap::new(),
            filters: HashMap::new(),
        }
    }

    /// The expanded size of `filter`.
    ///
    /// # Errors
    /// A reference to an unknown or failing segment, or a cycle of references.
    pub fn filter(&mut self, filter: &Filter) -> Result<Inlined, PlanError> {
        for id in filter.segment_ids() {
            self.segment(id)?;
        }
        Ok(self.own(filter))
    }

    /// The expanded size of segment `id`'s filter.
    ///
    /// # Errors
    /// As [`Measure::filter`]; a segment that reaches itself is a cycle.
    pub fn segment(&mut self, id: SegmentId) -> Result<Inlined, PlanError> {
        if let Some(known) = self.known.get(&id) {
            return Ok(*known);
        }
        let mut open = HashSet::from([id]);
        let mut stack = vec![self.frame(id)?];
        while let Some(top) = stack.last_mut() {
            if let Some(&next) = top.refs.get(top.next) {
                top.next += 1;
                if self.known.contains_key(&next) {
                    continue;
                }
                if !open.insert(next) {
                    return Err(PlanError::Cycle(next));
                }
                let frame = self.frame(next)?;
                stack.push(frame);
            } else if let Some(done) = stack.pop() {
                let size = self.own(&done.filter);
                open.remove(&done.id);
                self.known.insert(done.id, size);
                self.filters.insert(done.id, done.filter);
            }
        }
        self.known
            .get(&id)
            .copied()
            .ok_or(PlanError::UnknownSegment(id))
    }

    fn frame(&self, id: SegmentId) -> Result<Frame, PlanError> {
        let filter = (self.resolve)(id)?;
        Ok(Frame {
            id,
            refs: filter.segment_ids(),
            filter,
            next: 0,
        })
    }

    /// The size of `filter` once its references are all known.
    fn own(&self, filter: &Filter) -> Inlined {
        let one = |inner: Inlined| Inlined {
            nodes: inner.nodes.saturating_add(1),
            depth: inner.depth.saturating_add(1),
        };
        match filter {
            Filter::All(children) | Filter::Any(children) => {
                let mut total = Inlined { nodes: 0, depth: 0 };
                for child in children {
                    let size = self.own(child);
                    total.nodes = total.nodes.saturating_add(size.nodes);
                    total.depth = total.depth.max(size.depth);
                }
                one(total)
            }
            Filter::Not(child) => one(self.own(child)),
            Filter::InSegment(id) => one(self.known.get(id).copied().unwrap_or(Inlined {
                nodes: u64::MAX,
                depth: u64::MAX,
            })),
            _ => Inlined { nodes: 1, depth: 1 },
        }
    }
}

/// A filter ready for evaluation against an [`Index`](crate::Index).
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) root: Node,
    /// Compiled referenced segments; a subtree refers only to lower positions.
    pub(crate) shared: Vec<Node>,
}

impl Plan {
    /// Adds the leaves of this plan that `out` does not hold yet.
    pub(crate) fn distinct_leaves<'a>(&'a self, out: &mut Vec<&'a Leaf>) {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a Leaf>) {
            match node {
                Node::All(children) | Node::Any(children) => {
                    children.iter().for_each(|child| walk(child, out));
                }
                Node::Not(child) => walk(child, out),
                Node::Leaf(leaf) => {
                    if !out.contains(&leaf) {
                        out.push(leaf);
                    }
                }
                Node::Shared(_) => {}
            }
        }
        walk(&self.root, out);
        self.shared.iter().for_each(|node| walk(node, out));
    }
}

impl Plan {
    /// The users for which the plan holds, out of `len` users, given the set of each
    /// leaf (before any intersection with the users that exist).
    pub(crate) fn evaluate(&self, len: usize, leaf: &mut dyn FnMut(&Leaf) -> Bitset) -> Bitset {
        let mut memo = vec![None; self.shared.len()];
        self.node(&self.root, len, leaf, &mut memo)
    }

    fn node(
        &self,
        node: &Node,
        len: usize,
        leaf: &mut dyn FnMut(&Leaf) -> Bitset,
        memo: &mut [Option<Bitset>],
    ) -> Bitset {
        match node {
            Node::All(children) => {
                let mut set = Bitset::full(len);
                for child in children {
                    if set.is_empty() {
                        break;
                    }
                    set.and_with(&self.node(child, len, leaf, memo));
                }
                set
            }
            Node::Any(children) => {
                let mut set = Bitset::empty(len);
                for child in children {
                    set.or_with(&self.node(child, len, leaf, memo));
                }
                set
            }
            Node::Not(child) => {
                let mut set = self.node(child, len, leaf, memo);
                set.negate();
                set
            }
            Node::Leaf(test) => leaf(test),
            Node::Shared(position) => {
                if let Some(Some(set)) = memo.get(*position) {
                    return set.clone();
                }
                let Some(subtree) = self.shared.get(*position) else {
                    return Bitset::empty(len);
                };
                let set = self.node(subtree, len, leaf, memo);
                if let Some(slot) = memo.get_mut(*position) {
                    *slot = Some(set.clone());
                }
                set
            }
        }
    }
}

/// One node of a compiled filter.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Every child holds (none: every existing user).
    All(Vec<Node>),
    /// Some child holds (none: nobody).
    Any(Vec<Node>),
    /// The child does not hold.
    Not(Box<Node>),
    /// A test on one user's facts.
    Leaf(Leaf),
    /// A referenced segment: position in [`Plan::shared`].
    Shared(usize),
}

/// A test that reads the index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaf {
    /// An attribute operator.
    Attribute { name: String, op: AttrOp },
    /// A count of events named `name`.
    Event { name: String, count: CountTest },
    /// A count of purchases of `product` (`None`: any product).
    Purchase {
        product: Option<String>,
        count: CountTest,
    },
    /// A comparison of the random bucket.
    Bucket { cmp: Cmp, value: i64 },
}

impl Plan {
    /// Compiles `filter`, asking `resolve` for the filter of each referenced segment.
    ///
    /// # Errors
    /// What `resolve` answers for a reference, a reference cycle, or a filter beyond
    /// the limits of its expanded size ([`Inlined::check`]).
    pub fn compile(filter: &Filter, resolve: &Resolve<'_>) -> Result<Plan, PlanError> {
        let mut measure = Measure::new(resolve);
        measure.filter(filter)?.check()?;
        // Every reference is resolved and the expanded depth is bounded: the recursion
        // below goes at most MAX_INLINED_DEPTH levels deep.
        let mut compiler = Compiler {
            filters: measure.filters,
            shared: Vec::new(),
            positions: HashMap::new(),
            open: Vec::new(),
        };
        let root = compiler.node(filter)?;
        Ok(Plan {
            root,
            shared: compiler.shared,
        })
    }

    /// Compiles the filter of segment `id` itself, so that a reference back to `id`
    /// anywhere below is reported as [`PlanError::Cycle`].
    ///
    /// # Errors
    /// As [`Plan::compile`].
    pub fn compile_segment(id: SegmentId, resolve: &Resolve<'_>) -> Result<Plan, PlanError> {
        Plan::compile(&Filter::InSegment(id), resolve)
    }
}

struct Compiler {
    /// The filter of every segment reached, as the measure resolved them.
    filters: HashMap<SegmentId, Arc<Filter>>,
    shared: Vec<Node>,
    positions: HashMap<SegmentId, usize>,
    /// The references being compiled, outermost first.
    open: Vec<SegmentId>,
}

impl Compiler {
    fn node(&mut self, filter: &Filter) -> Result<Node, PlanError> {
        Ok(match filter {
            Filter::All(children) => Node::All(self.nodes(children)?),
            Filter::Any(children) => Node::Any(self.nodes(children)?),
            Filter::Not(child) => Node::Not(Box::new(self.node(child)?)),
            Filter::Attribute { name, op } => Node::Leaf(Leaf::Attribute {
                name: name.clone(),
                op: op.clone(),
            }),
            Filter::Event { name, count } => Node::Leaf(Leaf::Event {
                name: name.clone(),
                count: *count,
            }),
            Filter::Purchase { product, count } => Node::Leaf(Leaf::Purchase {
                product: product.clone(),
                count: *count,
            }),
            Filter::RandomBucket { cmp, value } => Node::Leaf(Leaf::Bucket {
                cmp: *cmp,
                value: *value,
            }),
            Filter::InSegment(id) => Node::Shared(self.reference(*id)?),
        })
    }

    fn nodes(&mut self, filters: &[Filter]) -> Result<Vec<Node>, PlanError> {
        filters.iter().map(|f| self.node(f)).collect()
    }

    fn reference(&mut self, id: SegmentId) -> Result<usize, PlanError> {
        if let Some(&position) = self.positions.get(&id) {
            return Ok(position);
        }
        if self.open.contains(&id) {
            return Err(PlanError::Cycle(id));
        }
        let filter = self
            .filters
            .get(&id)
            .cloned()
            .ok_or(PlanError::UnknownSegment(id))?;
        self.open.push(id);
        let node = self.node(&filter);
        self.open.pop();
        let position = self.shared.len();
        self.shared.push(node?);
        self.positions.insert(id, position);
        Ok(position)
    }
}
