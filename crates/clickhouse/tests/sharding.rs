//! Inserting into each shard's local table (`import`) puts every user where the
//! `Distributed` table (`/users/track`) does: headcount's `cityHash64` is ClickHouse's
//! bit for bit, and shards get users in proportion to their weights, in the order of
//! the cluster definition. And a shard that is down fails its inserts: nothing is
//! acknowledged that is not stored.

use headcount_clickhouse::cityhash;
use headcount_clickhouse::rows::user_text;
use headcount_clickhouse::testing::{CLUSTER, Cluster};
use headcount_clickhouse::{Batch, ClickHouse, Config, Routed, SeqClock};
use headcount_model::{Fact, FactKind, Timestamp, UserKey};
use std::collections::{BTreeMap, BTreeSet};

fn connect(cluster: &Cluster, database: &str) -> ClickHouse {
    let ch = ClickHouse::new(&Config {
        urls: cluster.urls(),
        database: database.into(),
        cluster: Some(CLUSTER.into()),
    })
    .expect("config");
    ch.init().expect("init");
    ch
}

fn event(name: &str, second: i64) -> Fact {
    Fact {
        time: Timestamp::from_second(1_700_000_000 + second).unwrap_or(Timestamp::UNIX_EPOCH),
        kind: FactKind::Event {
            name: name.into(),
            detail: None,
        },
    }
}

/// Users of every key kind, with texts of every length branch of CityHash (0–16,
/// 17–32, 33–64, over 64 bytes) and non-ASCII ones.
fn users(n: usize) -> Vec<UserKey> {
    (0..n)
        .map(|i| match i % 4 {
            0 => UserKey::External(format!("user-{i}")),
            1 => UserKey::Braze("b".repeat(i % 150) + &i.to_string()),
            2 => UserKey::Alias {
                name: format!("ålias-{i}-{}", "x".repeat(i % 70)),
                label: "email".into(),
            },
            _ => UserKey::External(format!("{i}")),
        })
        .collect()
}

#[test]
fn city_hash64_is_clickhouses_over_many_keys() {
    let cluster = Cluster::start(1).unwrap_or_else(|e| panic!("{e}"));
    let ch = ClickHouse::new(&Config {
        urls: cluster.urls(),
        database: "default".into(),
        cluster: None,
    })
    .expect("config");
    ch.query("CREATE TABLE default.keys (i UInt32, w Int64, u String) ENGINE = Memory")
        .expect("table");
    // Texts of every length from 0 to 300 bytes, arbitrary bytes, and user texts under
    // workspaces of either sign.
    let mut keys: Vec<(i64, Vec<u8>)> = Vec::new();
    let bytes: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for len in 0..=bytes.len() {
        keys.push((len as i64 - 150, bytes[..len].to_vec()));
    }
    for (i, user) in users(400).iter().enumerate() {
        let workspace = [1, 2, 7, 1_000_003, -5, i64::MAX, i64::MIN][i % 7];
        keys.push((workspace, user_text(user).into_bytes()));
    }
    let mut rows = Vec::new();
    for (i, (w, u)) in keys.iter().enumerate() {
        rows.extend_from_slice(&(i as u32).to_le_bytes());
        rows.extend_from_slice(&w.to_le_bytes());
        let mut len = u.len() as u64;
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                rows.push(byte);
                break;
            }
            rows.push(byte | 0x80);
        }
        rows.extend_from_slice(u);
    }
    let http = headcount_clickhouse::http::Http::parse(&cluster.urls()[0]).expect("url");
    http.post(&[], "INSERT INTO default.keys FORMAT RowBinary\n", &rows)
        .expect("insert");
    let answer = ch
        .query("SELECT i, cityHash64(u), cityHash64(w, u) FROM default.keys ORDER BY i FORMAT TabSeparated")
        .expect("hashes");
    let mut checked = 0;
    for line in answer.lines() {
        let fields: Vec<u64> = line.split('\t').map(|f| f.parse().expect(line)).collect();
        let (w, u) = &keys[fields[0] as usize];
        assert_eq!(cityhash::city_hash64(u), fields[1], "cityHash64 of {u:?}");
        assert_eq!(
            cityhash::sharding_key(*w, u),
            fields[2],
            "cityHash64({w}, {u:?})"
        );
        checked += 1;
    }
    assert_eq!(checked, keys.len());
}

/// Each shard's users, from its local table, with the event names each has there.
fn placement(cluster: &Cluster, database: &str) -> Vec<BTreeMap<String, BTreeSet<String>>> {
    cluster
        .urls()
        .iter()
        .map(|url| {
            let http = headcount_clickhouse::http::Http::parse(url).expect("url");
            let answer = http
                .post(
                    &[],
                    &format!("SELECT user, name FROM {database}.facts_local FORMAT TabSeparated"),
                    b"",
                )
                .expect("local rows");
            let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for line in String::from_utf8_lossy(&answer).lines() {
                let (user, name) = line.split_once('\t').expect(line);
                users.entry(user.into()).or_default().insert(name.into());
            }
            users
        })
        .collect()
}

#[test]
fn track_and_import_put_each_user_on_the_same_shard_by_weight() {
    // Weights 1 and 3: a quarter of the users on the first shard.
    let cluster = Cluster::start_weighted(&[1, 3]).unwrap_or_else(|e| panic!("{e}"));
    let ch = connect(&cluster, "headcount_place");
    let shards = ch.shards().expect("shards");
    assert!(
        shards.describe().contains("local tables"),
        "{}",
        shards.describe()
    );
    let users = users(2000);
    let clock = SeqClock::new();
    // /users/track's path: through the Distributed table.
    let mut tracked = Batch::new();
    for user in &users {
        tracked.push(3, user, &event("tracked", 0), clock.next());
    }
    ch.insert(&tracked).expect("insert through Distributed");
    // import's path: each shard's local table.
    let mut routed = Routed::new(shards.router());
    for user in &users {
        routed.push(3, user, &event("imported", 1));
    }
    for (shard, part) in routed.parts().iter().enumerate() {
        let mut batch = Batch::new();
        batch.append(part, || clock.next());
        shards.insert(shard, &batch).expect("insert into a shard");
    }
    let placed = placement(&cluster, "headcount_place");
    let both: BTreeSet<String> = ["imported".to_string(), "tracked".into()].into();
    for user in &users {
        let text = user_text(user);
        let holders: Vec<usize> = (0..2).filter(|&s| placed[s].contains_key(&text)).collect();
        assert_eq!(holders.len(), 1, "{text} on shards {holders:?}");
        assert_eq!(placed[holders[0]][&text], both, "{text}");
    }
    let first = placed[0].len() as f64 / users.len() as f64;
    assert!((0.2..0.3).contains(&first), "first shard's share {first}");
    // And the sizes read through the Distributed table see every row once.
    let count = ch
        .query("SELECT count() FROM headcount_place.facts")
        .expect("count");
    assert_eq!(count.trim(), (2 * users.len()).to_string());
    // Given only the first shard's URL, inserts cannot reach the second shard's local
    // table: they go through the Distributed table, and say so.
    let partial = ClickHouse::new(&Config {
        urls: vec![cluster.urls()[0].clone()],
        database: "headcount_place".into(),
        cluster: Some(CLUSTER.into()),
    })
    .expect("config");
    let fallback = partial.shards().expect("shards");
    assert_eq!(fallback.router().len(), 1);
    assert!(
        fallback.describe().contains("Distributed") && fallback.describe().contains("shard 2"),
        "{}",
        fallback.describe()
    );
}

#[test]
fn an_insert_into_a_killed_shard_fails_and_acknowledged_ones_are_stored() {
    let mut cluster = Cluster::start(2).unwrap_or_else(|e| panic!("{e}"));
    let ch = connect(&cluster, "headcount_direct_kill");
    let shards = ch.shards().expect("shards");
    let users = users(200);
    let batch_of = |workspace: i64| {
        let mut routed = Routed::new(shards.router());
        for user in &users {
            routed.push(workspace, user, &event("e", 0));
        }
        let mut seq = 0;
        routed
            .parts()
            .iter()
            .map(|part| {
                let mut batch = Batch::new();
                batch.append(part, || {
                    seq += 1;
                    seq
                });
                batch
            })
            .collect::<Vec<_>>()
    };
    for (shard, batch) in batch_of(1).iter().enumerate() {
        shards.insert(shard, batch).expect("both shards up");
    }
    cluster.shards[1].kill();
    let batches = batch_of(2);
    shards.insert(0, &batches[0]).expect("shard 1 is up");
    let err = shards
        .insert(1, &batches[1])
        .expect_err("shard 2 is down: its insert must fail");
    assert!(err.is_unavailable(), "{err}");
    cluster.shards[1].restart().expect("restart");
    let answer = ch
        .query(
            "SELECT workspace, count() FROM headcount_direct_kill.facts \
             GROUP BY workspace ORDER BY workspace FORMAT TabSeparated",
        )
        .expect("count");
    // Workspace 1, acknowledged on both shards: every row. Workspace 2: shard 1's only.
    let second_shard_rows = batches[1].fact_rows;
    assert!(second_shard_rows > 0);
    assert_eq!(
        answer,
        format!(
            "1\t{}\n2\t{}\n",
            users.len(),
            users.len() - second_shard_rows
        )
    );
}
