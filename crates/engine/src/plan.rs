//! Compiled filters: every `in_segment` reference resolved, cycles rejected.
//!
//! A referenced segment's filter is compiled once per plan and shared: each node that
//! names it points at the same compiled subtree, which an evaluation computes at most
//! once. Inlining without sharing would be equivalent but could grow exponentially
//! with diamond-shaped references.

use crate::bitset::Bitset;
use headcount_model::filter::{AttrOp, Cmp, CountTest};
use headcount_model::{Filter, SegmentId};
use std::collections::HashMap;

/// Why a filter could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An `in_segment` names a segment that `resolve` does not know.
    #[error("unknown segment {0}")]
    UnknownSegment(SegmentId),
    /// An `in_segment` chain leads back to a segment it started from.
    #[error("segment {0} refers to itself through in_segment")]
    Cycle(SegmentId),
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
    /// Compiles `filter`, asking `resolve` for the filter of each referenced segment
    /// (`None`: unknown segment). A reference cycle is an error.
    pub fn compile(
        filter: &Filter,
        resolve: &dyn Fn(SegmentId) -> Option<Filter>,
    ) -> Result<Plan, PlanError> {
        let mut compiler = Compiler {
            resolve,
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
    pub fn compile_segment(
        id: SegmentId,
        resolve: &dyn Fn(SegmentId) -> Option<Filter>,
    ) -> Result<Plan, PlanError> {
        Plan::compile(&Filter::InSegment(id), resolve)
    }
}

struct Compiler<'a> {
    resolve: &'a dyn Fn(SegmentId) -> Option<Filter>,
    shared: Vec<Node>,
    positions: HashMap<SegmentId, usize>,
    /// The references being compiled, outermost first.
    open: Vec<SegmentId>,
}

impl Compiler<'_> {
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
        let filter = (self.resolve)(id).ok_or(PlanError::UnknownSegment(id))?;
        self.open.push(id);
        let node = self.node(&filter);
        self.open.pop();
        let position = self.shared.len();
        self.shared.push(node?);
        self.positions.insert(id, position);
        Ok(position)
    }
}
