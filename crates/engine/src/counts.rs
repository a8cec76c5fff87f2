//! Count leaves: the number of events (or purchases) a user has in a window, compared
//! with `K`.
//!
//! Events are counted in their name's column; purchases in the one column of all
//! purchases, keeping those of the product asked for (or all, for `"*"`).
//!
//! Most tests only ask whether a user has any entry in the window (`gte 1`, `eq 0`,
//! …): those only mark the users seen, with no counting. The others count per user
//! in a scratch array and reset just the entries they touched.

use crate::bitset::Bitset;
use crate::column::Column;
use headcount_model::filter::{Cmp, CountTest};

/// What a count test says about positive counts.
enum Positive {
    /// It holds for every count ≥ 1.
    All,
    /// It holds for no count ≥ 1.
    None,
    /// It depends on the count.
    Some,
}

fn positive(cmp: Cmp, k: i64) -> Positive {
    match cmp {
        Cmp::Gt | Cmp::Ne if k < 1 => Positive::All,
        Cmp::Gte if k <= 1 => Positive::All,
        Cmp::Eq | Cmp::Lte if k < 1 => Positive::None,
        Cmp::Lt if k <= 1 => Positive::None,
        _ => Positive::Some,
    }
}

/// The entries of one count leaf in a window `lo <= time < hi`.
pub enum Window<'a> {
    /// Nothing to count (an event or product never seen).
    Empty,
    /// The entries of an event column.
    Events {
        column: &'a Column<()>,
        lo: i64,
        hi: i64,
    },
    /// The purchases of one product (`Some` position), or of any (`None`).
    Purchases {
        column: &'a Column<u32>,
        product: Option<u32>,
        lo: i64,
        hi: i64,
    },
}

impl Window<'_> {
    /// Calls `f(user)` once per entry.
    fn for_each_user(&self, mut f: impl FnMut(u32)) {
        match *self {
            Window::Empty => {}
            Window::Events { column, lo, hi } => column.for_each_in(lo, hi, |user, ()| f(user)),
            Window::Purchases {
                column,
                product: None,
                lo,
                hi,
            } => column.for_each_in(lo, hi, |user, _| f(user)),
            Window::Purchases {
                column,
                product: Some(wanted),
                lo,
                hi,
            } => column.for_each_in(lo, hi, |user, product| {
                if product == wanted {
                    f(user);
                }
            }),
        }
    }
}

/// The users whose number of entries in `window` passes `test`. `counts` is scratch
/// space, all zeros on entry and on return.
pub fn count_leaf(
    window: &Window<'_>,
    test: &CountTest,
    users: usize,
    counts: &mut Vec<u32>,
) -> Bitset {
    let zero_passes = test.cmp.holds(0, test.value);
    let mut seen = Bitset::empty(users);
    let kind = positive(test.cmp, test.value);
    if matches!(kind, Positive::None) && !zero_passes {
        return Bitset::empty(users);
    }
    let mut members = match kind {
        Positive::All | Positive::None => {
            window.for_each_user(|user| seen.insert(user as usize));
            match kind {
                Positive::All => seen.clone(),
                _ => Bitset::empty(users),
            }
        }
        Positive::Some => {
            counts.resize(users, 0);
            window.for_each_user(|user| {
                if let Some(n) = counts.get_mut(user as usize) {
                    *n = n.saturating_add(1);
                    seen.insert(user as usize);
                }
            });
            let mut members = Bitset::empty(users);
            for user in seen.iter() {
                if test.cmp.holds(i64::from(counts[user]), test.value) {
                    members.insert(user);
                }
                counts[user] = 0;
            }
            members
        }
    };
    if zero_passes {
        seen.negate();
        members.or_with(&seen);
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_comparison_agrees_with_counting() {
        // User u has u entries, at times 0..u.
        let mut column = Column::default();
        for user in 0..6u32 {
            for time in 0..i64::from(user) {
                column.push(time, user, ());
            }
        }
        let mut counts = Vec::new();
        for cmp in [Cmp::Eq, Cmp::Ne, Cmp::Gt, Cmp::Gte, Cmp::Lt, Cmp::Lte] {
            for k in -1..8 {
                let test = CountTest {
                    cmp,
                    value: k,
                    within_days: None,
                };
                let window = Window::Events {
                    column: &column,
                    lo: i64::MIN,
                    hi: i64::MAX,
                };
                let got: Vec<usize> = count_leaf(&window, &test, 6, &mut counts).iter().collect();
                let want: Vec<usize> = (0..6).filter(|&u| cmp.holds(u as i64, k)).collect();
                assert_eq!(got, want, "{cmp:?} {k}");
                assert!(counts.iter().all(|&c| c == 0));
            }
        }
    }
}
