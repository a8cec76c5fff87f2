//! [`Index`]: every user and fact of one workspace, in memory, and the queries on it.

use crate::attributes::AttrColumn;
use crate::column::Column;
use crate::eval::AsOf;
use crate::instants::Instants;
use crate::names::Named;
use crate::plan::Plan;
use crate::time::{Moment, floor_micros};
use crate::users::Users;
use headcount_model::Value;
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
    pub(crate) live_events: usize,
    /// Changes so far: every apply and delete adds one.
    pub(crate) version: u64,
    /// The latest fact time applied (µs).
    pub(crate) latest_fact: i64,
    /// The datetime attribute values written (µs) that are later than `latest_fact`
    /// (some earlier ones may stay until [`Index::compact`]): the instants at which a
    /// `within_last_days` answer can change without a new fact.
    pub(crate) datetimes: Instants,
    /// The position in its owner's fact log up to which the index holds every fact
    /// (see [`Index::set_position`]).
    pub(crate) position: u64,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Records one fact about a user, creating the user on first sight. Facts may
    /// arrive in any time order. Times are kept to the microsecond (truncated).
    ///
    /// A [`FactKind::Deletion`] is [`Index::delete_user`]: the facts of the key applied
    /// before it are forgotten, and those applied after it make a new user.
    pub fn apply(&mut self, user: &UserKey, fact: &Fact) {
        if matches!(fact.kind, FactKind::Deletion) {
            self.delete_user(user);
            return;
        }
        let time = floor_micros(fact.time);
        let index = self.users.touch(user, time);
        self.apply_at(index, time, fact);
    }

    /// [`Index::apply`] for a replay that meets the same users again and again (the
    /// facts of one stored chunk): `slot` remembers the user's index once found, so
    /// that its key is looked up once rather than for every fact. The caller keeps one
    /// slot per key (all `None` at first) and drops every slot it holds when a
    /// [`FactKind::Deletion`] is applied (this one sets its own to `None`).
    pub fn apply_cached(&mut self, user: &UserKey, slot: &mut Option<u32>, fact: &Fact) {
        if matches!(fact.kind, FactKind::Deletion) {
            self.delete_user(user);
            *slot = None;
            return;
        }
        let time = floor_micros(fact.time);
        let index = match *slot {
            Some(index) => {
                self.users.seen_at(index, time);
                index
            }
            None => {
                let index = self.users.touch(user, time);
                *slot = Some(index);
                index
            }
        };
        self.apply_at(index, time, fact);
    }

    /// Records a fact (not a deletion) of the user at `index`, seen at `time` (µs).
    fn apply_at(&mut self, index: u32, time: i64, fact: &Fact) {
        self.version += 1;
        self.latest_fact = self.latest_fact.max(time);
        match &fact.kind {
            FactKind::Attributes(values) => {
                for (name, value) in values {
                    if let Some(Value::DateTime(t)) = value {
                        // Only a datetime after the latest fact can end a stable answer.
                        let t = floor_micros(*t);
                        if t > self.latest_fact {
                            self.datetimes.insert(t);
                        }
                    }
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
            FactKind::Deletion => {}
        }
    }

    /// Forgets a user and everything about it; a later fact for the same key makes a
    /// new user. Returns whether the user existed.
    ///
    /// The user's entries stay in the columns, ignored, until [`Index::compact`].
    pub fn delete_user(&mut self, user: &UserKey) -> bool {
        self.version += 1;
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
        self.users.shrink_to_fit();
        self.datetimes.forget_up_to(self.latest_fact);
    }

    /// Every attribute name ever written, in no particular order.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.names().into_iter()
    }

    /// Every event name ever recorded, in no particular order.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.names().into_iter()
    }

    /// Every purchased `product_id` ever recorded, in no particular order.
    pub fn product_names(&self) -> impl Iterator<Item = &str> {
        self.products.names().into_iter()
    }

    /// A number that changes whenever the facts change (apply, delete): answers for
    /// the same instant are the same while it does not.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The position in its owner's fact log up to which this index holds every fact,
    /// and none after: 0 until set. The engine gives it no meaning; checkpoints keep
    /// it, so that a restart replays only the facts after it.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Records that the index now holds every fact of its owner's log up to
    /// `position` (and none after it).
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// How long an answer as of `at` stays the answer: for every `t` with
    /// `at <= t < stable_until(at)`, and no change of [`Index::version`], every plan
    /// has the same size as of `t` as as of `at`. It ends at the next local midnight
    /// (windows move), at the next datetime attribute value (a `within_last_days`
    /// answer moves), and at once if a fact at or after `at` is held.
    pub fn stable_until(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let moment = Moment::new(at, tz);
        if self.latest_fact >= moment.at_micros {
            return at;
        }
        let midnight = moment.reference.next().start(tz);
        let datetime = self
            .datetimes
            .first_from(moment.at_micros)
            .and_then(|us| Timestamp::from_microsecond(us).ok());
        match datetime {
            Some(t) if t < midnight => t,
            _ => midnight,
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
        self.memory().total()
    }

    /// [`Index::heap_bytes`] by part: what grows with the users and what grows with
    /// the events.
    pub fn memory(&self) -> MemoryUse {
        let events: usize = self.events.items().iter().map(Column::heap_bytes).sum();
        let attributes = self.attributes.items();
        MemoryUse {
            users: self.users.heap_bytes(),
            events: self.events.heap_bytes()
                + events
                + self.purchases.heap_bytes()
                + self.products.heap_bytes(),
            attribute_writes: self.attributes.heap_bytes()
                + attributes
                    .iter()
                    .map(|a| a.column().heap_bytes())
                    .sum::<usize>(),
            attribute_values: attributes.iter().map(|a| a.interner().heap_bytes()).sum(),
            datetimes: self.datetimes.heap_bytes(),
        }
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

    /// The sizes of completed days: element `i` is `size(plan, days[i].end(tz), tz)`;
    /// computed on every core.
    pub fn sizes(&self, plan: &Plan, days: &[Day], tz: &TimeZone) -> Vec<u64> {
        let ends: Vec<Timestamp> = days.iter().map(|day| day.end(tz)).collect();
        self.size_grid(&[plan], &ends, tz, cores())
            .into_iter()
            .map(|row| row.first().copied().unwrap_or(0))
            .collect()
    }

    /// `sizes[i][j]`: the size of `plans[j]` as of `instants[i]`, days in `tz`,
    /// computed on up to `threads` threads, leaf results shared between plans: the
    /// way to size many segments on many days (instants in any order).
    pub fn size_grid(
        &self,
        plans: &[&Plan],
        instants: &[Timestamp],
        tz: &TimeZone,
        threads: usize,
    ) -> Vec<Vec<u64>> {
        crate::grid::size_grid(self, plans, instants, tz, threads)
    }

    /// The members of `plan` as of `at`, sorted (for tests and debugging).
    pub fn members(&self, plan: &Plan, at: Timestamp, tz: &TimeZone) -> Vec<UserKey> {
        self.as_of(at, tz).members(plan)
    }
}

/// The bytes of memory an [`Index`] holds, by part (estimates, as
/// [`Index::heap_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUse {
    /// The registry of users: keys, their hash table, per-user numbers.
    pub users: usize,
    /// The event and purchase columns and their names.
    pub events: usize,
    /// The attribute columns (time, user, value id per write) and their names.
    pub attribute_writes: usize,
    /// The distinct values of every attribute and their hash tables.
    pub attribute_values: usize,
    /// The set of datetime values kept for [`Index::stable_until`].
    pub datetimes: usize,
}

impl MemoryUse {
    /// The sum of the parts.
    pub fn total(&self) -> usize {
        self.users + self.events + self.attribute_writes + self.attribute_values + self.datetimes
    }
}

/// The number of threads worth running: the cores available.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

#[cfg(test)]
mod stable_tests {
    use super::*;
    use headcount_model::FactKind;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::MIN)
    }

    #[test]
    fn answers_stay_stable_until_midnight_a_datetime_value_or_a_newer_fact() {
        let tz = TimeZone::UTC;
        let mut index = Index::new();
        let user = UserKey::External("u".into());
        let event = |t: &str| Fact {
            time: ts(t),
            kind: FactKind::Event {
                name: "e".into(),
                detail: None,
            },
        };
        index.apply(&user, &event("2024-05-01T10:00:00Z"));
        let v = index.version();
        assert_eq!(
            index.stable_until(ts("2024-05-01T12:00:00Z"), &tz),
            ts("2024-05-02T00:00:00Z")
        );
        index.apply(
            &user,
            &Fact {
                time: ts("2024-05-01T10:00:00Z"),
                kind: FactKind::Attributes(vec![(
                    "renews".into(),
                    Some(Value::DateTime(ts("2024-05-01T18:00:00Z"))),
                )]),
            },
        );
        assert_ne!(index.version(), v);
        assert_eq!(
            index.stable_until(ts("2024-05-01T12:00:00Z"), &tz),
            ts("2024-05-01T18:00:00Z")
        );
        assert_eq!(
            index.stable_until(ts("2024-05-01T19:00:00Z"), &tz),
            ts("2024-05-02T00:00:00Z")
        );
        index.apply(&user, &event("2024-05-01T20:00:00Z"));
        assert_eq!(
            index.stable_until(ts("2024-05-01T19:00:00Z"), &tz),
            ts("2024-05-01T19:00:00Z")
        );
        let before = index.version();
        index.delete_user(&user);
        assert_ne!(index.version(), before);
    }

    #[test]
    fn a_deletion_entry_forgets_the_facts_before_it_and_not_those_after() {
        let tz = TimeZone::UTC;
        let user = UserKey::External("u".into());
        let at = |t: &str, kind: FactKind| Fact { time: ts(t), kind };
        let login = || FactKind::Event {
            name: "login".into(),
            detail: None,
        };
        let plan = |json: serde_json::Value| {
            let filter = headcount_model::Filter::parse(&json, "filter").expect("filter");
            Plan::compile(&filter, &|id| Err(crate::PlanError::UnknownSegment(id))).expect("plan")
        };
        let everyone = plan(serde_json::json!({"all": []}));
        let twice = plan(serde_json::json!({"event": "login", "op": "gte", "value": 2}));
        let mut index = Index::new();
        index.apply(&user, &at("2024-05-01T00:00:00Z", login()));
        index.apply(&user, &at("2024-05-02T00:00:00Z", login()));
        let end = ts("2024-06-01T00:00:00Z");
        assert_eq!(index.members(&twice, end, &tz), vec![user.clone()]);
        let version = index.version();
        index.apply(&user, &at("2024-05-03T00:00:00Z", FactKind::Deletion));
        assert_ne!(index.version(), version);
        assert_eq!(index.user_count(), 0);
        assert!(index.members(&everyone, end, &tz).is_empty());
        // After it, the key is a new user, whatever the fact's time: one login only.
        index.apply(&user, &at("2024-04-01T00:00:00Z", login()));
        assert_eq!(index.members(&everyone, end, &tz), vec![user.clone()]);
        assert!(index.members(&twice, end, &tz).is_empty());
        assert_eq!(index.event_count(), 1);
        // A deletion of a user never seen changes nothing but the version.
        index.apply(
            &UserKey::External("nobody".into()),
            &at("2024-05-03T00:00:00Z", FactKind::Deletion),
        );
        assert_eq!(index.user_count(), 1);
    }
}
