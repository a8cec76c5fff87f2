//! Attribute history and the attribute operators of segments.md.
//!
//! Per attribute name, a column of `(time, user, value id)` ([`Ids`]: ids one byte
//! wide while there are few values) with the values interned; an unset (a null value) is stored as the id [`UNSET`]. An operator is
//! decided once per distinct value (or, for `eq`/`in`, by looking the operands up);
//! then one pass over the writes before `T`, in an order where each user's latest
//! write comes last, sets or clears each user's bit from the value written.

use crate::bitset::Bitset;
use crate::ids::Ids;
use crate::intern::{Interner, ValueRef};
use crate::time::Moment;
use headcount_model::Value;
use headcount_model::filter::{AttrOp, Cmp, Ordered};

/// The value id of "no value": never set, or unset with null.
pub const UNSET: u32 = u32::MAX;

/// Distinct values an attribute has at least before its values may stop being
/// deduplicated (see [`Interner::stop_deduplicating`]).
const DISTINCT_MIN: usize = 1 << 12;

/// The history of one attribute.
#[derive(Debug, Clone, Default)]
pub struct AttrColumn {
    column: Ids,
    values: Interner,
}

impl AttrColumn {
    /// Records that the attribute became `value` (`None`: unset) at `time`.
    pub fn record(&mut self, time: i64, user: u32, value: Option<&Value>) {
        let id = match value {
            Some(v) => self.values.intern(v),
            None => UNSET,
        };
        self.column.push(time, user, id);
        let distinct = self.values.len();
        // Mostly distinct values (an email, a signup date): their table would cost
        // more than the few repeats it saves; checked as the values double.
        if distinct >= DISTINCT_MIN
            && distinct.is_power_of_two()
            && distinct * 4 >= self.column.len() * 3
        {
            self.values.stop_deduplicating();
        }
    }

    /// The users for which `op` holds as of the moment: those whose latest write
    /// before it passes `op`, and, if `op` holds for a missing attribute, those never
    /// written or last unset. `users` bounds the indices; `latest` is scratch space.
    pub fn leaf(
        &self,
        op: &AttrOp,
        moment: &Moment,
        users: usize,
        latest: &mut Vec<i64>,
    ) -> Bitset {
        let missing = holds_when_missing(op);
        let matching = matching_values(&self.values, op, moment);
        if !missing && !matching.contains(&true) {
            return Bitset::empty(users);
        }
        let mut set = if missing {
            Bitset::full(users)
        } else {
            Bitset::empty(users)
        };
        self.column
            .for_each_latest_before(moment.at_micros, users, latest, |user, id| {
                let member = match id {
                    UNSET => missing,
                    id => matching.get(id as usize).copied().unwrap_or(false),
                };
                set.assign(user as usize, member);
            });
        set
    }

    /// The writes: `(time, user, value id)`, [`UNSET`] for an unset.
    pub fn column(&self) -> &Ids {
        &self.column
    }

    /// For each value id, the positions in `moments` (ascending instants) at which a
    /// user holding that value passes `op`.
    pub fn holding(&self, op: &AttrOp, moments: &[Moment]) -> Holding {
        let n = u32::try_from(moments.len()).unwrap_or(u32::MAX);
        let always = |holds: bool| if holds { 0..n } else { 0..0 };
        let unset = always(holds_when_missing(op));
        // Datetime windows move with the instant; both of their ends never move back,
        // so the positions where a value is inside form one range, found by bisection.
        let ends = |days: u32| -> Vec<jiff::Timestamp> {
            moments.iter().map(|m| m.window_start(days)).collect()
        };
        let position = |ends: &[jiff::Timestamp], x: &jiff::Timestamp| {
            u32::try_from(ends.partition_point(|end| end <= x)).unwrap_or(n)
        };
        let span = |start: u32, end: u32| if start < end { start..end } else { 0..0 };
        let per_value = match op {
            AttrOp::WithinLastDays(days) => {
                let (from, to) = (
                    ends(*days),
                    moments.iter().map(|m| m.at).collect::<Vec<_>>(),
                );
                self.values
                    .iter()
                    .map(|value| match value {
                        // from <= x: a prefix of the positions; x < to: a suffix.
                        ValueRef::DateTime(x) => span(position(&to, &x), position(&from, &x)),
                        _ => 0..0,
                    })
                    .collect()
            }
            AttrOp::MoreThanDaysAgo(days) => {
                let before = ends(*days);
                self.values
                    .iter()
                    .map(|value| match value {
                        ValueRef::DateTime(x) => span(position(&before, &x), n),
                        _ => 0..0,
                    })
                    .collect()
            }
            _ => match moments.first() {
                Some(moment) => matching_values(&self.values, op, moment)
                    .into_iter()
                    .map(always)
                    .collect(),
                None => Vec::new(),
            },
        };
        let moving = matches!(op, AttrOp::WithinLastDays(_) | AttrOp::MoreThanDaysAgo(_));
        Holding {
            per_value,
            unset,
            moving,
        }
    }

    /// The attribute's history from its parts (for checkpoints).
    pub fn from_parts(column: Ids, values: Interner) -> AttrColumn {
        AttrColumn { column, values }
    }

    /// The distinct values, by id (for checkpoints).
    pub fn interner(&self) -> &Interner {
        &self.values
    }

    /// The number of writes recorded.
    pub fn len(&self) -> usize {
        self.column.len()
    }

    /// Drops the writes of users for which `keep` fails; gives back spare capacity.
    pub fn compact(&mut self, keep: &dyn Fn(u32) -> bool) {
        self.column.compact(keep);
        self.values.shrink_to_fit();
    }
}

/// Where an attribute operator holds over a list of ascending instants: per value id,
/// the range of instant positions at which it passes.
pub struct Holding {
    per_value: Vec<std::ops::Range<u32>>,
    unset: std::ops::Range<u32>,
    /// Whether a value's answer can change from one instant to the next (a datetime
    /// window); otherwise every range is all positions or none.
    pub moving: bool,
}

impl Holding {
    /// The positions at which a user whose latest write is value `id` passes.
    pub fn range(&self, id: u32) -> std::ops::Range<u32> {
        match id {
            UNSET => self.unset.clone(),
            id => self.per_value.get(id as usize).cloned().unwrap_or(0..0),
        }
    }
}

/// The users for which `op` holds for an attribute nobody ever had.
pub fn never_written_leaf(op: &AttrOp, users: usize) -> Bitset {
    if holds_when_missing(op) {
        Bitset::full(users)
    } else {
        Bitset::empty(users)
    }
}

/// Whether `op` holds for a user without the attribute.
pub fn holds_when_missing(op: &AttrOp) -> bool {
    matches!(op, AttrOp::NotExists | AttrOp::Ne(_) | AttrOp::NotIn(_))
}

/// Per value id, whether `op` holds for that value.
fn matching_values(values: &Interner, op: &AttrOp, moment: &Moment) -> Vec<bool> {
    let n = values.len();
    let by_lookup = |operands: &[Value], negate: bool| {
        let mut matching = vec![negate; n];
        for operand in operands {
            values.for_each_id_of(operand, |id| {
                if let Some(slot) = matching.get_mut(id as usize) {
                    *slot = !negate;
                }
            });
        }
        matching
    };
    match op {
        AttrOp::Eq(v) => by_lookup(std::slice::from_ref(v), false),
        AttrOp::Ne(v) => by_lookup(std::slice::from_ref(v), true),
        AttrOp::In(vs) => by_lookup(vs, false),
        AttrOp::NotIn(vs) => by_lookup(vs, true),
        _ => {
            let test = ValueTest::new(op, moment);
            values.iter().map(|v| test.holds(v)).collect()
        }
    }
}

/// An operator other than `eq`/`ne`/`in`/`not_in`, with its instants worked out.
enum ValueTest<'a> {
    Always(bool),
    Order(Cmp, Ordered),
    Contains(&'a str),
    StartsWith(&'a str),
    Matches(&'a headcount_model::filter::Pattern),
    /// A datetime in `[from, to)`.
    Within {
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    },
    /// A datetime before `before`.
    Before {
        before: jiff::Timestamp,
    },
}

impl<'a> ValueTest<'a> {
    fn new(op: &'a AttrOp, moment: &Moment) -> ValueTest<'a> {
        match op {
            AttrOp::Exists => ValueTest::Always(true),
            AttrOp::NotExists => ValueTest::Always(false),
            AttrOp::Order(cmp, operand) => ValueTest::Order(*cmp, *operand),
            AttrOp::Contains(s) => ValueTest::Contains(s),
            AttrOp::StartsWith(s) => ValueTest::StartsWith(s),
            AttrOp::Matches(p) => ValueTest::Matches(p),
            AttrOp::WithinLastDays(days) => ValueTest::Within {
                from: moment.window_start(*days),
                to: moment.at,
            },
            AttrOp::MoreThanDaysAgo(days) => ValueTest::Before {
                before: moment.window_start(*days),
            },
            // Decided by lookup in `matching_values`; never reached.
            AttrOp::Eq(_) | AttrOp::Ne(_) | AttrOp::In(_) | AttrOp::NotIn(_) => {
                ValueTest::Always(false)
            }
        }
    }

    fn holds(&self, value: ValueRef<'_>) -> bool {
        match (self, value) {
            (ValueTest::Always(answer), _) => *answer,
            (ValueTest::Order(cmp, Ordered::Number(k)), ValueRef::Number(x)) => cmp.holds(x, *k),
            (ValueTest::Order(cmp, Ordered::DateTime(k)), ValueRef::DateTime(x)) => {
                cmp.holds(x, *k)
            }
            (ValueTest::Contains(s), ValueRef::String(x)) => x.contains(s),
            (ValueTest::Contains(s), ValueRef::Array(items)) => items.iter().any(|item| item == s),
            (ValueTest::StartsWith(s), ValueRef::String(x)) => x.starts_with(s),
            (ValueTest::Matches(re), ValueRef::String(x)) => re.is_match(x),
            (ValueTest::Within { from, to }, ValueRef::DateTime(x)) => *from <= x && x < *to,
            (ValueTest::Before { before }, ValueRef::DateTime(x)) => x < *before,
            _ => false,
        }
    }
}
