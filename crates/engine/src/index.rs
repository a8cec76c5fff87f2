//! [`Index`]: every user and fact of one workspace, in memory, and the queries on it.

use crate::attributes::AttrColumn;
use crate::column::Column;
use crate::eval::AsOf;
use crate::names::Named;
use crate::plan::Plan;
use crate::time::floor_micros;
use crate::users::Users;
use headcount_model::{Day, Fact, FactKind, UserKey};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::fmt;

/// All users and facts of one workspace, in memory.
///
/// Mutations take `&mut self`; queries take `&self`, never mutate, and may run
/// concurrently (the index is `Send + Sync`).
#[derive(Clone, Default)]
pub struct Index {
    pub(crate) users: Users,
    pub(crate) events: Named<Column<()>>,
    /// Every purchase, its product's position in `products` as payload.
    pub(crate) purchases: Column<u32>,
    pub(crate) products: Named<()>,
    pub(crate) attributes: Named<AttrColumn>,
    live_events: usize,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Records one fact about a user, creating the user on first sight. Facts may
    /// arrive in any time order. Times are kept to the microsecond (truncated).
    pub fn apply(&mut self, user: &UserKey, fact: &Fact) {
        let time = floor_micros(fact.time);
        let index = self.users.touch(user, time);
        match &fact.kind {
            FactKind::Attributes(values) => {
                for (name, value) in values {
                    self.attributes
                        .get_or_create(name)
                        .record(time, index, value.as_ref());
                }
            }
            FactKind::Event { name, .. } => {
                self.events.get_or_create(name).push(time, index, ());
                self.users.add_fact(index);
                self.live_events += 1;
            }
            FactKind::Purchase { product, .. } => {
                let product = u32::try_from(self.products.id_or_create(product))
                    .expect("fewer than 2^32 products");
                self.purchases.push(time, index, product);
                self.users.add_fact(index);
                self.live_events += 1;
            }
        }
    }

    /// Forgets a user and everything about it; a later fact for the same key makes a
    /// new user. Returns whether the user existed.
    ///
    /// The user's entries stay in the columns, ignored, until [`Index::compact`].
    pub fn delete_user(&mut self, user: &UserKey) -> bool {
        match self.users.delete(user) {
            Some(facts) => {
                self.live_events = self.live_events.saturating_sub(facts as usize);
                true
            }
            None => false,
        }
    }

    /// Drops the stored entries of deleted users and rewrites every column as a single
    /// sorted run (faster queries, exact-size memory). Answers do not change.
    pub fn compact(&mut self) {
        let users = &self.users;
        let keep = |index: u32| users.is_live(index);
        for column in self.events.items_mut() {
            column.compact(&keep);
        }
        self.purchases.compact(&keep);
        for column in self.attributes.items_mut() {
            column.compact(&keep);
        }
    }

    /// The number of live users.
    pub fn user_count(&self) -> usize {
        self.users.live()
    }

    /// The number of events and purchases of live users.
    pub fn event_count(&self) -> usize {
        self.live_events
    }

    /// An estimate of the bytes of memory the index holds: vector capacities, hash
    /// tables and the text of keys, names and values (not the allocator's overhead).
    /// Takes time proportional to the number of users and distinct values.
    pub fn heap_bytes(&self) -> usize {
        let events: usize = self.events.items().iter().map(Column::heap_bytes).sum();
        let attributes: usize = self
            .attributes
            .items()
            .iter()
            .map(AttrColumn::heap_bytes)
            .sum();
        self.users.heap_bytes()
            + self.events.heap_bytes()
            + events
            + self.purchases.heap_bytes()
            + self.products.heap_bytes()
            + self.attributes.heap_bytes()
            + attributes
    }

    /// Evaluations as of instant `at` (facts strictly before `at`), days in `tz`,
    /// sharing leaf results between plans: the way to size many segments at once.
    pub fn as_of(&self, at: Timestamp, tz: &TimeZone) -> AsOf<'_> {
        AsOf::new(self, at, tz)
    }

    /// The number of members of `plan` as of instant `at` (facts strictly before
    /// `at`), days in `tz`.
    pub fn size(&self, plan: &Plan, at: Timestamp, tz: &TimeZone) -> u64 {
        self.as_of(at, tz).size(plan)
    }

    /// The sizes of completed days: element `i` is `size(plan, days[i].end(tz), tz)`.
    pub fn sizes(&self, plan: &Plan, days: &[Day], tz: &TimeZone) -> Vec<u64> {
        days.iter()
            .map(|day| self.size(plan, day.end(tz), tz))
            .collect()
    }

    /// The members of `plan` as of `at`, sorted (for tests and debugging).
    pub fn members(&self, plan: &Plan, at: Timestamp, tz: &TimeZone) -> Vec<UserKey> {
        self.as_of(at, tz).members(plan)
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("users", &self.users.live())
            .field("events", &self.live_events)
            .field(
                "attribute_writes",
                &self
                    .attributes
                    .items()
                    .iter()
                    .map(AttrColumn::len)
                    .sum::<usize>(),
            )
            .finish()
    }
}
