//! Evaluation of plans as of one instant `T`.
//!
//! Every leaf becomes a [`Bitset`] over all user indices; `all`, `any` and `not`
//! combine them, and the result is finally intersected with the users that exist
//! before `T` (so `not` never brings in a user without facts before `T`, nor a deleted
//! one). An [`AsOf`] caches leaf results and attribute states, so evaluating many
//! plans at the same instant shares their common leaves.

use crate::attributes::attribute_leaf;
use crate::bitset::Bitset;
use crate::column::Column;
use crate::counts::count_leaf;
use crate::index::Index;
use crate::plan::{Leaf, Node, Plan};
use crate::time::{Moment, ceil_micros};
use headcount_model::UserKey;
use headcount_model::filter::CountTest;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Leaf results kept at most; beyond, the cache starts over.
const LEAF_CACHE: usize = 256;
/// Attribute states kept at most (4 bytes per user each); beyond, the cache starts over.
const STATE_CACHE: usize = 8;

/// Evaluations of plans against one [`Index`] as of one instant, sharing their work.
pub struct AsOf<'a> {
    index: &'a Index,
    moment: Moment,
    exists: Bitset,
    leaves: Vec<(Leaf, Bitset)>,
    states: Vec<(String, Vec<u32>)>,
    counts: Vec<u32>,
    latest: Vec<i64>,
}

impl<'a> AsOf<'a> {
    /// Evaluations as of `at` (facts strictly before `at`), days in `tz`.
    pub(crate) fn new(index: &'a Index, at: Timestamp, tz: &TimeZone) -> AsOf<'a> {
        let moment = Moment::new(at, tz);
        let exists = index.users.existing_before(moment.at_micros);
        AsOf {
            index,
            moment,
            exists,
            leaves: Vec::new(),
            states: Vec::new(),
            counts: Vec::new(),
            latest: Vec::new(),
        }
    }

    /// The instant of these evaluations.
    pub fn at(&self) -> Timestamp {
        self.moment.at
    }

    /// The number of users that exist before the instant.
    pub fn existing(&self) -> u64 {
        self.exists.count()
    }

    /// The number of members of `plan`.
    pub fn size(&mut self, plan: &Plan) -> u64 {
        self.member_set(plan).count()
    }

    /// The members of `plan`, sorted.
    pub fn members(&mut self, plan: &Plan) -> Vec<UserKey> {
        let set = self.member_set(plan);
        self.index.users.keys_of(&set)
    }

    fn users(&self) -> usize {
        self.index.users.indices()
    }

    fn member_set(&mut self, plan: &Plan) -> Bitset {
        let mut memo = vec![None; plan.shared.len()];
        let mut set = self.node(&plan.root, plan, &mut memo);
        set.and_with(&self.exists);
        set
    }

    fn node(&mut self, node: &Node, plan: &Plan, memo: &mut [Option<Bitset>]) -> Bitset {
        match node {
            Node::All(children) => {
                let mut set = Bitset::full(self.users());
                for child in children {
                    if set.is_empty() {
                        break;
                    }
                    set.and_with(&self.node(child, plan, memo));
                }
                set
            }
            Node::Any(children) => {
                let mut set = Bitset::empty(self.users());
                for child in children {
                    set.or_with(&self.node(child, plan, memo));
                }
                set
            }
            Node::Not(child) => {
                let mut set = self.node(child, plan, memo);
                set.negate();
                set
            }
            Node::Leaf(leaf) => self.leaf(leaf),
            Node::Shared(position) => {
                if let Some(Some(set)) = memo.get(*position) {
                    return set.clone();
                }
                let Some(subtree) = plan.shared.get(*position) else {
                    return Bitset::empty(self.users());
                };
                let set = self.node(subtree, plan, memo);
                if let Some(slot) = memo.get_mut(*position) {
                    *slot = Some(set.clone());
                }
                set
            }
        }
    }

    fn leaf(&mut self, leaf: &Leaf) -> Bitset {
        if let Some((_, set)) = self.leaves.iter().find(|(cached, _)| cached == leaf) {
            return set.clone();
        }
        let index = self.index;
        let set = match leaf {
            Leaf::Attribute { name, op } => {
                let history = index.attributes.get(name);
                let state = history.map(|column| self.state(name, column));
                let state = state.map(|position| self.states[position].1.as_slice());
                attribute_leaf(history.zip(state), op, &self.moment, self.users())
            }
            Leaf::Event { name, count } => {
                let columns: Vec<&Column<()>> = index.events.get(name).into_iter().collect();
                self.count(&columns, count)
            }
            Leaf::Purchase {
                product: Some(product),
                count,
            } => {
                let columns: Vec<&Column<()>> = index.purchases.get(product).into_iter().collect();
                self.count(&columns, count)
            }
            Leaf::Purchase {
                product: None,
                count,
            } => {
                let columns: Vec<&Column<()>> = index.purchases.items().iter().collect();
                self.count(&columns, count)
            }
            Leaf::Bucket { cmp, value } => index.users.with_bucket(|b| cmp.holds(b, *value)),
        };
        if self.leaves.len() >= LEAF_CACHE {
            self.leaves.clear();
        }
        self.leaves.push((leaf.clone(), set.clone()));
        set
    }

    /// The position in `states` of the state of attribute `name`, computed if needed.
    fn state(&mut self, name: &str, column: &crate::attributes::AttrColumn) -> usize {
        if let Some(position) = self.states.iter().position(|(n, _)| n == name) {
            return position;
        }
        if self.states.len() >= STATE_CACHE {
            self.states.clear();
        }
        let state = column.state_before(self.moment.at_micros, self.users(), &mut self.latest);
        self.states.push((name.to_owned(), state));
        self.states.len() - 1
    }

    fn count(&mut self, columns: &[&Column<()>], test: &CountTest) -> Bitset {
        let lo = match test.within_days {
            Some(days) => ceil_micros(self.moment.window_start(days)),
            None => i64::MIN,
        };
        let users = self.users();
        count_leaf(
            columns,
            test,
            lo,
            self.moment.at_micros,
            users,
            &mut self.counts,
        )
    }
}
