//! Many sizes at once on every core: the sizes of several plans at several instants.
//!
//! Several instants are taken in time order in one pass forward (`history`), the
//! threads taking slices of users. One instant is computed by all the threads at once:
//! they compute the distinct leaves of all the plans (each leaf once, whoever takes
//! it), then one thread combines them into every plan's size, which costs a few bitset
//! operations.

use crate::history;
use crate::index::Index;
use crate::plan::Plan;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `sizes[i][j]`: the size of `plans[j]` as of `instants[i]` (facts strictly before
/// it), days in `tz`; computed on up to `threads` threads.
pub fn size_grid(
    index: &Index,
    plans: &[&Plan],
    instants: &[Timestamp],
    tz: &TimeZone,
    threads: usize,
) -> Vec<Vec<u64>> {
    let threads = threads.max(1);
    if instants.len() >= 2 {
        // In time order, one pass forward; then back in the order asked.
        let mut order: Vec<usize> = (0..instants.len()).collect();
        order.sort_by_key(|&i| instants[i]);
        let sorted: Vec<Timestamp> = order.iter().map(|&i| instants[i]).collect();
        let rows = history::sizes_forward(index, plans, &sorted, tz, threads);
        let mut sizes = vec![Vec::new(); instants.len()];
        for (row, i) in rows.into_iter().zip(order) {
            sizes[i] = row;
        }
        return sizes;
    }
    let mut leaves = Vec::new();
    for plan in plans {
        plan.distinct_leaves(&mut leaves);
    }
    instants
        .iter()
        .map(|at| {
            let mut as_of = index.as_of(*at, tz);
            if threads > 1 && leaves.len() > 1 {
                let sets = each_on_threads(
                    leaves.len(),
                    threads,
                    || index.as_of(*at, tz),
                    |as_of, i| as_of.leaf(leaves[i]),
                );
                for (leaf, set) in leaves.iter().zip(sets) {
                    as_of.seed(leaf, set);
                }
            }
            plans.iter().map(|plan| as_of.size(plan)).collect()
        })
        .collect()
}

/// `[work(state, 0), …, work(state, n − 1)]`, the items taken in turn by `threads`
/// threads, each with its own `state`.
pub(crate) fn each_on_threads<S, T: Send>(
    n: usize,
    threads: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(n) {
            scope.spawn(|| {
                let mut state = state();
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    mine.push((i, work(&mut state, i)));
                }
                done.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_model::{Fact, FactKind, Filter, UserKey, Value};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::MIN)
    }

    #[test]
    fn every_split_gives_the_sizes_one_thread_gives() {
        let mut index = Index::new();
        for u in 0..500u32 {
            let user = UserKey::External(format!("u{u}"));
            let day = i64::from(u % 9);
            let time = ts("2024-03-01T12:00:00Z") + jiff::SignedDuration::from_hours(24 * day);
            let mut values = serde_json::Map::new();
            values.insert("n".into(), serde_json::json!(u % 7));
            let values = values
                .into_iter()
                .map(|(k, v)| (k, Value::from_json(&v).ok().flatten()))
                .collect();
            index.apply(
                &user,
                &Fact {
                    time,
                    kind: FactKind::Attributes(values),
                },
            );
            for k in 0..(u % 4) {
                let name = if k % 2 == 0 { "open" } else { "buy" };
                let kind = FactKind::Event {
                    name: name.into(),
                    detail: None,
                };
                index.apply(&user, &Fact { time, kind });
            }
        }
        let filters = [
            r#"{"attribute": "n", "op": "gte", "value": 3}"#,
            r#"{"all": [{"attribute": "n", "op": "gte", "value": 3}, {"event": "open", "op": "gte", "value": 1}]}"#,
            r#"{"any": [{"event": "buy", "op": "gte", "value": 1, "within_days": 2}, {"not": {"attribute": "n", "op": "eq", "value": 1}}]}"#,
            r#"{"random_bucket": {"op": "lt", "value": 5000}}"#,
        ];
        let plans: Vec<Plan> = filters
            .iter()
            .map(|f| {
                let filter = Filter::parse(&serde_json::from_str(f).expect("JSON"), "filter")
                    .expect("filter");
                Plan::compile(&filter, &|id| Err(crate::PlanError::UnknownSegment(id)))
                    .expect("plan")
            })
            .collect();
        let refs: Vec<&Plan> = plans.iter().collect();
        let instants: Vec<Timestamp> = (0..11)
            .map(|d| ts("2024-03-01T00:00:00Z") + jiff::SignedDuration::from_hours(24 * d))
            .collect();
        let tz = TimeZone::UTC;
        let one = size_grid(&index, &refs, &instants, &tz, 1);
        assert!(one.iter().flatten().any(|&s| s > 0));
        for threads in [2, 3, 8] {
            assert_eq!(size_grid(&index, &refs, &instants, &tz, threads), one);
            assert_eq!(
                size_grid(&index, &refs, &instants[5..6], &tz, threads),
                one[5..6]
            );
        }
        for (i, at) in instants.iter().enumerate() {
            for (j, plan) in plans.iter().enumerate() {
                assert_eq!(one[i][j], index.size(plan, *at, &tz));
            }
        }
    }
}
