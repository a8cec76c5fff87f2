//! `Index::apply_cached` (a replay that looks each chunk's users up once) builds the
//! same index as `Index::apply`, deletions and users made again after them included.

use headcount_engine::Index;
use headcount_model::{Fact, FactKind, Timestamp, UserKey, Value, WorkspaceId};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).expect("instant")
}

fn fact(n: i64) -> Fact {
    let kind = match n % 4 {
        0 => FactKind::Event {
            name: format!("e{}", n % 3),
            detail: None,
        },
        1 => FactKind::Purchase {
            product: "p".into(),
            detail: None,
        },
        2 => FactKind::Attributes(vec![("plan".into(), Some(Value::String(format!("v{n}"))))]),
        _ => FactKind::Event {
            name: "late".into(),
            detail: None,
        },
    };
    // Times out of order, so that a user's first fact is not its first applied.
    Fact {
        time: at(1_000 - (n * 37) % 1_000),
        kind,
    }
}

/// A chunk: its users, and its facts with their user's position among them.
type Chunk = (Vec<UserKey>, Vec<(usize, Fact)>);

fn checkpoint(index: &Index) -> Vec<u8> {
    index
        .write_checkpoint(WorkspaceId(1), Vec::new())
        .expect("write to memory")
}

#[test]
fn apply_cached_builds_the_same_index_as_apply_across_chunks_and_deletions() {
    // Chunks of (users, facts by user position); a deletion mid-chunk, then the same
    // key again (a new user), and the same key in two chunks.
    let users: Vec<UserKey> = (0..5).map(|u| UserKey::External(format!("u{u}"))).collect();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut n = 0;
    for c in 0..6 {
        let members: Vec<UserKey> = users.iter().skip(c % 2).cloned().collect();
        let mut facts = Vec::new();
        for k in 0..40 {
            n += 1;
            let user = (k * 7 + c) % members.len();
            let fact = if k == 20 && c % 3 == 1 {
                Fact {
                    time: at(2_000),
                    kind: FactKind::Deletion,
                }
            } else {
                fact(n)
            };
            facts.push((user, fact));
        }
        chunks.push((members, facts));
    }

    let mut plain = Index::new();
    for (members, facts) in &chunks {
        for (user, fact) in facts {
            plain.apply(&members[*user], fact);
        }
    }
    let mut cached = Index::new();
    for (members, facts) in &chunks {
        let mut slots = vec![None; members.len()];
        for (user, fact) in facts {
            cached.apply_cached(&members[*user], &mut slots[*user], fact);
            if matches!(fact.kind, FactKind::Deletion) {
                slots.fill(None);
            }
        }
    }
    assert_eq!(cached.version(), plain.version());
    assert!(plain.version() > 200, "every fact applied");
    assert_eq!(checkpoint(&cached), checkpoint(&plain));
}
