//! Evaluation of plans as of one instant `T`.
//!
//! Every leaf becomes a [`Bitset`] over all user indices; `all`, `any` and `not`
//! combine them, and the result is finally intersected with the users that exist
//! before `T` (so `not` never brings in a user without facts before `T`, nor a deleted
//! one). An [`AsOf`] caches leaf results, so evaluating many plans at the same
//! instant computes their common leaves once.

use crate::attributes::never_written_leaf;
use crate::bitset::Bitset;
use crate::counts::{Window, count_leaf};
use crate::index::Index;
use crate::plan::{Leaf, Plan};
use crate::time::{Moment, ceil_micros};
use headcount_model::UserKey;
use headcount_model::filter::CountTest;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Leaf results kept at most; beyond, the cache starts over.
const LEAF_CACHE: usize = 256;

/// Evaluations of plans against one [`Index`] as of one instant, sharing their work.
pub struct AsOf<'a> {
    index: &'a Index,
    moment: Moment,
    exists: Bitset,
    leaves: Vec<(Leaf, Bitset)>,
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
        let mut set = plan.evaluate(self.users(), &mut |leaf| self.leaf(leaf));
        set.and_with(&self.exists);
        set
    }

    /// Gives the result of a leaf computed elsewhere (by another thread's `AsOf` at
    /// the same instant), so that plans using it do not compute it again.
    pub(crate) fn seed(&mut self, leaf: &Leaf, set: Bitset) {
        if !self.leaves.iter().any(|(cached, _)| cached == leaf) {
            self.leaves.push((leaf.clone(), set));
        }
    }

    /// The users for which `leaf` holds (before intersecting with those that exist).
    pub(crate) fn leaf(&mut self, leaf: &Leaf) -> Bitset {
        if let Some((_, set)) = self.leaves.iter().find(|(cached, _)| cached == leaf) {
            return set.clone();
        }
        let index = self.index;
        let set = match leaf {
            Leaf::Attribute { name, op } => match index.attributes.get(name) {
                Some(column) => column.leaf(op, &self.moment, self.users(), &mut self.latest),
                None => never_written_leaf(op, self.users()),
            },
            Leaf::Event { name, count } => {
                let (lo, hi) = self.window(count);
                let window = match index.events.get(name) {
                    Some(column) => Window::Events { column, lo, hi },
                    None => Window::Empty,
                };
                count_leaf(&window, count, self.users(), &mut self.counts)
            }
            Leaf::Purchase { product, count } => {
                let (lo, hi) = self.window(count);
                let column = &index.purchases;
                let window = match product {
                    None => Window::Purchases {
                        column,
                        product: None,
                        lo,
                        hi,
                    },
                    Some(name) => match index.products.id(name).map(u32::try_from) {
                        Some(Ok(id)) => Window::Purchases {
                            column,
                            product: Some(id),
                            lo,
                            hi,
                        },
                        _ => Window::Empty,
                    },
                };
                count_leaf(&window, count, self.users(), &mut self.counts)
            }
            Leaf::Bucket { cmp, value } => index.users.with_bucket(|b| cmp.holds(b, *value)),
        };
        if self.leaves.len() >= LEAF_CACHE {
            self.leaves.clear();
        }
        self.leaves.push((leaf.clone(), set.clone()));
        set
    }

    /// The window of a count test: `[start(R − W + 1), T)`, or all time before `T`.
    fn window(&self, test: &CountTest) -> (i64, i64) {
        let lo = match test.within_days {
            Some(days) => ceil_micros(self.moment.window_start(days)),
            None => i64::MIN,
        };
        (lo, self.moment.at_micros)
    }
}
