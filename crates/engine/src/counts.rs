//! Count leaves: the number of events (or purchases) a user has in a window, compared
//! with `K`.
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

/// The users whose number of entries with `lo <= time < hi`, summed over `columns`,
/// passes `test`. `counts` is scratch space, all zeros on entry and on return.
pub fn count_leaf(
    columns: &[&Column<()>],
    test: &CountTest,
    lo: i64,
    hi: i64,
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
            for column in columns {
                column.for_each_in(lo, hi, |user, ()| seen.insert(user as usize));
            }
            match kind {
                Positive::All => seen.clone(),
                _ => Bitset::empty(users),
            }
        }
        Positive::Some => {
            counts.resize(users, 0);
            for column in columns {
                column.for_each_in(lo, hi, |user, ()| {
                    if let Some(n) = counts.get_mut(user as usize) {
                        *n = n.saturating_add(1);
                        seen.insert(user as usize);
                    }
                });
            }
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
                let got: Vec<usize> =
                    count_leaf(&[&column], &test, i64::MIN, i64::MAX, 6, &mut counts)
                        .iter()
                        .collect();
                let want: Vec<usize> = (0..6).filter(|&u| cmp.holds(u as i64, k)).collect();
                assert_eq!(got, want, "{cmp:?} {k}");
                assert!(counts.iter().all(|&c| c == 0));
            }
        }
    }
}
