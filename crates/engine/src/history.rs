//! Sizes at many ascending instants in one pass forward in time.
//!
//! A history asks the same plans at instant after instant. Rather than reading every
//! column up to each instant again, the pass keeps each leaf's state and moves it from
//! one instant to the next with only the entries in between: per user, an attribute's
//! latest value (and the leaf's bit, looked at again when the user writes, or when a
//! datetime window reaches or leaves its value); per user, the count in a window (new
//! entries added at its end, old ones taken off at its start). Users are disjoint
//! between the slices of the columns, so each slice is a pass of its own, with state
//! that fits in the CPU's cache; the threads take slices and their sizes are added.

use crate::attributes::{Holding, UNSET, holds_when_missing};
use crate::bitset::Bitset;
use crate::column::{Column, SLICE_USERS, SliceCursor};
use crate::grid::each_on_threads;
use crate::ids::{IdCursor, Ids};
use crate::index::Index;
use crate::plan::{Leaf, Plan};
use crate::scratch::{POOL, Scratch};
use crate::time::{Moment, ceil_micros};
use headcount_model::filter::{Cmp, CountTest};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::mem;

/// `sizes[i][j]`: the size of `plans[j]` as of `instants[i]`, which must be in
/// ascending order; days in `tz`, on up to `threads` threads.
pub fn sizes_forward(
    index: &Index,
    plans: &[&Plan],
    instants: &[Timestamp],
    tz: &TimeZone,
    threads: usize,
) -> Vec<Vec<u64>> {
    debug_assert!(instants.is_sorted());
    let pass = Pass::new(index, plans, instants, tz);
    let slices = index.users.indices().div_ceil(SLICE_USERS);
    let mut sizes = vec![vec![0u64; plans.len()]; instants.len()];
    let per_slice = each_on_threads(slices, threads.max(1), || (), |(), s| pass.slice(s));
    for slice in per_slice {
        for (row, slice_row) in sizes.iter_mut().zip(slice) {
            for (size, n) in row.iter_mut().zip(slice_row) {
                *size += n;
            }
        }
    }
    sizes
}

/// What every slice's pass shares: the instants, and each distinct leaf resolved
/// against the index.
struct Pass<'a> {
    index: &'a Index,
    plans: &'a [&'a Plan],
    /// Each instant in stored units (µs, exclusive).
    at: Vec<i64>,
    leaves: Vec<&'a Leaf>,
    tests: Vec<Test>,
    attributes: Vec<&'a Ids>,
    counters: Vec<Counter<'a>>,
}

/// A leaf as the pass computes it.
enum Test {
    /// The same answer for every user at every instant.
    Constant(bool),
    Bucket {
        cmp: Cmp,
        value: i64,
    },
    /// An attribute operator on `attributes[column]`.
    Attribute {
        column: usize,
        holding: Holding,
    },
    /// A count test on `counters[counter]`.
    Count {
        counter: usize,
        test: CountTest,
    },
}

/// The entries a count reads.
#[derive(Clone, Copy)]
enum Entries<'a> {
    Events(&'a Column<()>),
    /// The purchases of one product (`Some` position), or of any.
    Purchases(&'a Column<u32>, Option<u32>),
}

/// What tells two counters apart: purchases or events, the event's or the product's
/// position (`None`: any product), and the window in days (`None`: all time).
type CounterKey = (bool, Option<u32>, Option<u32>);

/// A count's entries and its window at each instant: `[lo[i], at[i])`.
struct Counter<'a> {
    entries: Entries<'a>,
    key: CounterKey,
    lo: Vec<i64>,
}

impl<'a> Pass<'a> {
    fn new(index: &'a Index, plans: &'a [&'a Plan], instants: &[Timestamp], tz: &TimeZone) -> Self {
        let moments: Vec<Moment> = instants.iter().map(|at| Moment::new(*at, tz)).collect();
        let at: Vec<i64> = moments.iter().map(|m| m.at_micros).collect();
        let mut leaves = Vec::new();
        for &plan in plans {
            plan.distinct_leaves(&mut leaves);
        }
        let mut pass = Pass {
            index,
            plans,
            at,
            leaves: Vec::new(),
            tests: Vec::new(),
            attributes: Vec::new(),
            counters: Vec::new(),
        };
        for leaf in &leaves {
            let test = pass.test(leaf, &moments);
            pass.tests.push(test);
        }
        pass.leaves = leaves;
        pass
    }

    fn test(&mut self, leaf: &Leaf, moments: &[Moment]) -> Test {
        let index = self.index;
        match leaf {
            Leaf::Attribute { name, op } => match index.attributes.get(name) {
                Some(column) => {
                    let column_ref = column.column();
                    let position = match self
                        .attributes
                        .iter()
                        .position(|c| std::ptr::eq(*c, column_ref))
                    {
                        Some(p) => p,
                        None => {
                            self.attributes.push(column_ref);
                            self.attributes.len() - 1
                        }
                    };
                    Test::Attribute {
                        column: position,
                        holding: column.holding(op, moments),
                    }
                }
                None => Test::Constant(holds_when_missing(op)),
            },
            Leaf::Event { name, count } => match index.events.id(name) {
                Some(id) => match (index.events.items().get(id), u32::try_from(id)) {
                    (Some(column), Ok(id)) => {
                        let key = (false, Some(id), count.within_days);
                        self.count(Entries::Events(column), key, count, moments)
                    }
                    _ => Test::Constant(count.cmp.holds(0, count.value)),
                },
                None => Test::Constant(count.cmp.holds(0, count.value)),
            },
            Leaf::Purchase { product, count } => {
                let product = match product {
                    None => None,
                    Some(name) => match index.products.id(name).map(u32::try_from) {
                        Some(Ok(id)) => Some(id),
                        _ => return Test::Constant(count.cmp.holds(0, count.value)),
                    },
                };
                let entries = Entries::Purchases(&index.purchases, product);
                self.count(entries, (true, product, count.within_days), count, moments)
            }
            Leaf::Bucket { cmp, value } => Test::Bucket {
                cmp: *cmp,
                value: *value,
            },
        }
    }

    /// The test on a counter of `entries` in the test's window, shared with earlier
    /// tests with the same `key`.
    fn count(
        &mut self,
        entries: Entries<'a>,
        key: CounterKey,
        test: &CountTest,
        moments: &[Moment],
    ) -> Test {
        let counter = match self.counters.iter().position(|c| c.key == key) {
            Some(p) => p,
            None => {
                let lo = moments
                    .iter()
                    .map(|m| match test.within_days {
                        // An empty window when its start is not before its end.
                        Some(days) => ceil_micros(m.window_start(days)).min(m.at_micros),
                        None => i64::MIN,
                    })
                    .collect();
                self.counters.push(Counter { entries, key, lo });
                self.counters.len() - 1
            }
        };
        Test::Count {
            counter,
            test: *test,
        }
    }

    /// The sizes at every instant among the users of slice `s`.
    fn slice(&self, s: usize) -> Vec<Vec<u64>> {
        let mut state = SliceState::new(self, s);
        (0..self.at.len()).map(|i| state.step(self, i)).collect()
    }

    /// The position of `leaf` among the distinct leaves.
    fn position_of(&self, leaf: &Leaf) -> Option<usize> {
        self.leaves
            .iter()
            .position(|l| std::ptr::eq(*l, leaf))
            .or_else(|| self.leaves.iter().position(|l| *l == leaf))
    }
}

/// The pass over one slice of users: the state of every leaf, as of the last instant.
struct SliceState<'a> {
    /// The slice's first user index.
    base: usize,
    /// The slice's users.
    users: std::ops::Range<usize>,
    attributes: Vec<AttributeState<'a>>,
    counters: Vec<CounterState<'a>>,
    /// Per distinct leaf, its set among the slice's users.
    bits: Vec<Bitset>,
    /// Per leaf with a moving answer, per instant, the users to look at again then.
    pending: Vec<Vec<Vec<u32>>>,
    /// The last instant taken in (µs).
    previous: i64,
}

impl<'a> SliceState<'a> {
    /// Every leaf as of before any fact: no attribute written, every count zero.
    fn new(pass: &Pass<'a>, s: usize) -> Self {
        let base = s * SLICE_USERS;
        let users = base..(base + SLICE_USERS).min(pass.index.users.indices());
        let len = users.len();
        let attributes = pass
            .attributes
            .iter()
            .map(|column| {
                let cursor = column.slice_cursor(s);
                let latest = POOL.filled(if cursor.needs_latest() { len } else { 0 }, i64::MIN);
                AttributeState {
                    cursor,
                    values: POOL.filled(len, UNSET),
                    latest,
                    changed: Marked::new(len),
                }
            })
            .collect();
        let counters = pass
            .counters
            .iter()
            .map(|counter| {
                let start = counter.lo.first().copied().unwrap_or(i64::MIN);
                CounterState {
                    cursor: match counter.entries {
                        Entries::Events(column) => Cursor::Events(column.slice_cursor(s)),
                        Entries::Purchases(column, product) => {
                            Cursor::Purchases(column.slice_cursor(s), product)
                        }
                    },
                    counts: POOL.filled(len, 0),
                    touched: Marked::new(len),
                    lo: start,
                    hi: start,
                }
            })
            .collect();
        let all = |holds: bool| {
            if holds {
                Bitset::full(len)
            } else {
                Bitset::empty(len)
            }
        };
        let bits = pass
            .tests
            .iter()
            .map(|test| match test {
                Test::Constant(holds) => all(*holds),
                Test::Bucket { cmp, value } => pass
                    .index
                    .users
                    .with_bucket_in(users.clone(), |b| cmp.holds(b, *value)),
                Test::Attribute { holding, .. } => all(holding.range(UNSET).contains(&0)),
                Test::Count { test, .. } => all(test.cmp.holds(0, test.value)),
            })
            .collect();
        let pending = pass
            .tests
            .iter()
            .map(|test| match test {
                Test::Attribute { holding, .. } if holding.moving => {
                    vec![Vec::new(); pass.at.len()]
                }
                _ => Vec::new(),
            })
            .collect();
        SliceState {
            base,
            users,
            attributes,
            counters,
            bits,
            pending,
            previous: i64::MIN,
        }
    }

    /// Moves every leaf to instant `i` and gives each plan's size then.
    fn step(&mut self, pass: &Pass<'_>, i: usize) -> Vec<u64> {
        let at = pass.at[i];
        for state in &mut self.attributes {
            state.advance(self.previous, at, self.base);
        }
        for (state, counter) in self.counters.iter_mut().zip(&pass.counters) {
            state.advance(counter.lo[i], at, self.base);
        }
        self.previous = at;
        let position = u32::try_from(i).unwrap_or(u32::MAX);
        for (t, test) in pass.tests.iter().enumerate() {
            let set = &mut self.bits[t];
            match test {
                Test::Constant(_) | Test::Bucket { .. } => {}
                Test::Attribute { column, holding } => {
                    let state = &self.attributes[*column];
                    let later = &mut self.pending[t];
                    let again = later.get_mut(i).map(mem::take).unwrap_or_default();
                    let mut look = |user: u32| {
                        let id = state.values.get(user as usize).copied().unwrap_or(UNSET);
                        let range = holding.range(id);
                        set.assign(user as usize, range.contains(&position));
                        // The next instant at which the answer for this value changes.
                        let next = if range.start > position {
                            range.start
                        } else {
                            range.end
                        };
                        if next > position
                            && let Some(list) = later.get_mut(next as usize)
                        {
                            list.push(user);
                        }
                    };
                    state.changed.iter().for_each(|&user| look(user));
                    again.into_iter().for_each(look);
                }
                Test::Count { counter, test } => {
                    let state = &self.counters[*counter];
                    for &user in state.touched.iter() {
                        let count = state.counts.get(user as usize).copied().unwrap_or(0);
                        set.assign(user as usize, test.cmp.holds(i64::from(count), test.value));
                    }
                }
            }
        }
        for state in &mut self.attributes {
            state.changed.clear();
        }
        for state in &mut self.counters {
            state.touched.clear();
        }

        let len = self.users.len();
        let exists = pass.index.users.existing_before_in(self.users.clone(), at);
        pass.plans
            .iter()
            .map(|plan| {
                let mut set = plan.evaluate(len, &mut |leaf| match pass
                    .position_of(leaf)
                    .and_then(|p| self.bits.get(p))
                {
                    Some(set) => set.clone(),
                    None => Bitset::empty(len),
                });
                set.and_with(&exists);
                set.count()
            })
            .collect()
    }
}

/// One attribute column in one slice: each user's latest value so far.
struct AttributeState<'a> {
    cursor: IdCursor<'a>,
    /// Per user of the slice, the value id of the latest write so far.
    values: Scratch<u32>,
    /// Per user of the slice, the time of that write (when the cursor needs it).
    latest: Scratch<i64>,
    /// The users (of the slice) written in the last step.
    changed: Marked,
}

impl AttributeState<'_> {
    /// Takes in the writes with `from <= time < to`.
    fn advance(&mut self, from: i64, to: i64, base: usize) {
        let AttributeState {
            cursor,
            values,
            latest,
            changed,
        } = self;
        cursor.for_each_latest_in(from, to, latest, |user, id| {
            let user = (user as usize).wrapping_sub(base);
            if let Some(value) = values.get_mut(user) {
                *value = id;
                changed.insert(user as u32);
            }
        });
    }
}

/// Users of a slice, each listed once however often it is inserted: a step looks
/// at each changed user once, and the list never outgrows the slice.
struct Marked {
    list: Scratch<u32>,
    seen: Bitset,
}

impl Marked {
    /// No user yet, among `len`.
    fn new(len: usize) -> Self {
        Marked {
            list: POOL.empty(),
            seen: Bitset::empty(len),
        }
    }

    fn insert(&mut self, user: u32) {
        if !self.seen.contains(user as usize) {
            self.seen.insert(user as usize);
            self.list.push(user);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &u32> {
        self.list.iter()
    }

    fn clear(&mut self) {
        for &user in self.list.iter() {
            self.seen.assign(user as usize, false);
        }
        self.list.clear();
    }
}

/// The entries of one count in one slice.
enum Cursor<'a> {
    Events(SliceCursor<'a, ()>),
    Purchases(SliceCursor<'a, u32>, Option<u32>),
}

impl Cursor<'_> {
    fn for_each_in(&self, lo: i64, hi: i64, mut f: impl FnMut(u32)) {
        match self {
            Cursor::Events(cursor) => cursor.for_each_in(lo, hi, |user, ()| f(user)),
            Cursor::Purchases(cursor, None) => cursor.for_each_in(lo, hi, |user, _| f(user)),
            Cursor::Purchases(cursor, Some(wanted)) => {
                cursor.for_each_in(lo, hi, |user, product| {
                    if product == *wanted {
                        f(user);
                    }
                })
            }
        }
    }
}

/// One count in one slice: each user's number of entries in the window `[lo, hi)`.
struct CounterState<'a> {
    cursor: Cursor<'a>,
    counts: Scratch<u32>,
    /// The users (of the slice) whose count moved in the last step.
    touched: Marked,
    lo: i64,
    hi: i64,
}

impl CounterState<'_> {
    /// Moves the window to `[lo, hi)`; neither end moves back.
    fn advance(&mut self, lo: i64, hi: i64, base: usize) {
        let CounterState {
            cursor,
            counts,
            touched,
            ..
        } = self;
        // Entries first come in at the end, then leave at the start: every count stays
        // non-negative, and ends as the number in [lo, hi) even when the windows do
        // not overlap.
        cursor.for_each_in(self.hi, hi, |user| {
            let user = (user as usize).wrapping_sub(base);
            if let Some(count) = counts.get_mut(user) {
                *count = count.saturating_add(1);
                touched.insert(user as u32);
            }
        });
        cursor.for_each_in(self.lo, lo, |user| {
            let user = (user as usize).wrapping_sub(base);
            if let Some(count) = counts.get_mut(user) {
                *count = count.saturating_sub(1);
                touched.insert(user as u32);
            }
        });
        self.lo = lo;
        self.hi = hi;
    }
}

#[cfg(test)]
mod tests {
    use crate::index::Index;
    use crate::plan::Plan;
    use headcount_model::{Fact, FactKind, Filter, UserKey, Value};
    use jiff::tz::TimeZone;
    use jiff::{SignedDuration, Timestamp};

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::MIN)
    }

    fn value(json: serde_json::Value) -> Option<Value> {
        Value::from_json(&json).ok().flatten()
    }

    /// Facts over several slices of users, in a scrambled time order (so columns have
    /// several runs and unsorted tails), with ties, unsets, datetimes, deletions.
    fn index(seed: u64, compact: bool) -> Index {
        let mut rng = Rng(seed);
        let mut index = Index::new();
        let start = ts("2024-03-01T00:00:00Z");
        let users = 300;
        for _ in 0..6000 {
            let user = UserKey::External(format!("u{}", rng.below(users)));
            // Minutes over 30 days; a few exactly at midnights, many ties.
            let minutes = match rng.below(4) {
                0 => 24 * 60 * rng.below(30),
                _ => rng.below(30 * 24 * 60 / 7) * 7,
            };
            let time = start + SignedDuration::from_mins(minutes as i64);
            let kind = match rng.below(6) {
                0 | 1 => {
                    let mut values = Vec::new();
                    values.push((
                        "plan".to_string(),
                        match rng.below(4) {
                            0 => None,
                            k => value(serde_json::json!(["free", "pro", "team"][k as usize - 1])),
                        },
                    ));
                    if rng.below(2) == 0 {
                        let at = start + SignedDuration::from_hours(rng.below(40 * 24) as i64);
                        values.push(("seen".to_string(), value(serde_json::json!(at.to_string()))));
                    }
                    if rng.below(3) == 0 {
                        values.push(("n".to_string(), value(serde_json::json!(rng.below(10)))));
                    }
                    FactKind::Attributes(values)
                }
                2 => FactKind::Purchase {
                    product: ["a", "b"][rng.below(2) as usize].into(),
                    detail: None,
                },
                _ => FactKind::Event {
                    name: ["open", "buy", "share"][rng.below(3) as usize].into(),
                    detail: None,
                },
            };
            index.apply(&user, &Fact { time, kind });
            if rng.below(500) == 0 {
                index.delete_user(&UserKey::External(format!("u{}", rng.below(users))));
            }
        }
        if compact {
            index.compact();
        }
        index
    }

    const FILTERS: &[&str] = &[
        r#"{"attribute": "plan", "op": "eq", "value": "pro"}"#,
        r#"{"attribute": "plan", "op": "ne", "value": "pro"}"#,
        r#"{"attribute": "plan", "op": "not_exists"}"#,
        r#"{"attribute": "n", "op": "gt", "value": 4}"#,
        r#"{"attribute": "seen", "op": "within_last_days", "value": 3}"#,
        r#"{"attribute": "seen", "op": "more_than_days_ago", "value": 2}"#,
        r#"{"attribute": "missing", "op": "not_exists"}"#,
        r#"{"event": "open", "op": "gte", "value": 1, "within_days": 1}"#,
        r#"{"event": "open", "op": "eq", "value": 2, "within_days": 3}"#,
        r#"{"event": "buy", "op": "lt", "value": 3}"#,
        r#"{"event": "share", "op": "eq", "value": 0, "within_days": 7}"#,
        r#"{"event": "never", "op": "eq", "value": 0}"#,
        r#"{"purchase": "a", "op": "gte", "value": 2, "within_days": 5}"#,
        r#"{"purchase": "*", "op": "gt", "value": 0}"#,
        r#"{"purchase": "zzz", "op": "gte", "value": 1}"#,
        r#"{"random_bucket": {"op": "lt", "value": 5000}}"#,
        r#"{"all": [{"attribute": "seen", "op": "within_last_days", "value": 10}, {"not": {"event": "buy", "op": "gte", "value": 1, "within_days": 2}}]}"#,
        r#"{"any": [{"attribute": "plan", "op": "in", "value": ["team", "free"]}, {"purchase": "b", "op": "eq", "value": 1}]}"#,
    ];

    #[test]
    fn one_pass_forward_gives_the_sizes_of_each_instant() {
        let plans: Vec<Plan> = FILTERS
            .iter()
            .map(|f| {
                let json = serde_json::from_str(f).expect("JSON");
                let filter = Filter::parse(&json, "filter").expect("filter");
                Plan::compile(&filter, &|id| Err(crate::PlanError::UnknownSegment(id)))
                    .expect("plan")
            })
            .collect();
        let refs: Vec<&Plan> = plans.iter().collect();
        for seed in 0..6 {
            let tz = match seed % 3 {
                0 => TimeZone::UTC,
                1 => TimeZone::get("Europe/Paris").expect("tz"),
                _ => TimeZone::get("America/New_York").expect("tz"),
            };
            let index = index(seed, seed % 2 == 0);
            let mut rng = Rng(seed + 100);
            // Midnights and odd instants, some repeated, some far apart, unsorted.
            let mut instants: Vec<Timestamp> = (0..40)
                .map(|_| {
                    let hours = rng.below(36 * 24) as i64 - 24;
                    let t = ts("2024-03-01T00:00:00Z") + SignedDuration::from_hours(hours);
                    if rng.below(3) == 0 {
                        t + SignedDuration::from_micros(1)
                    } else {
                        t
                    }
                })
                .collect();
            instants.push(instants[3]);
            let got = index.size_grid(&refs, &instants, &tz, 3);
            assert!(got.iter().flatten().any(|&n| n > 0));
            for (i, at) in instants.iter().enumerate() {
                let mut as_of = index.as_of(*at, &tz);
                for (j, plan) in plans.iter().enumerate() {
                    assert_eq!(
                        got[i][j],
                        as_of.size(plan),
                        "seed {seed}, {at}, {}",
                        FILTERS[j]
                    );
                }
            }
        }
    }
}
