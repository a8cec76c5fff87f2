//! A ClickHouse shard killed during ingestion loses no acknowledged write: inserts go
//! through the `Distributed` table synchronously (`insert_distributed_sync`), so an
//! insert that returned `Ok` is on its shards, and one that could not reach a shard
//! fails (and is not acknowledged).

use headcount_clickhouse::testing::{CLUSTER, Cluster};
use headcount_clickhouse::{Batch, ClickHouse, Config};
use headcount_model::{Fact, FactKind, Timestamp, UserKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROWS_PER_BATCH: u64 = 500;

fn batch(n: u64) -> Batch {
    let mut batch = Batch::new();
    for i in 0..ROWS_PER_BATCH {
        let user = UserKey::External(format!("u{i}"));
        let fact = Fact {
            time: Timestamp::from_second(1_700_000_000 + i as i64).unwrap_or(Timestamp::UNIX_EPOCH),
            kind: FactKind::Event {
                name: "e".into(),
                detail: None,
            },
        };
        // One workspace per batch, so that each batch's rows can be counted.
        batch.push(n as i64, &user, &fact, i + 1);
    }
    batch
}

#[test]
fn a_shard_killed_during_ingestion_loses_no_acknowledged_insert() {
    let mut cluster = match Cluster::start(2) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let ch = ClickHouse::new(&Config {
        urls: cluster.urls(),
        database: "headcount_kill".into(),
        cluster: Some(CLUSTER.into()),
    })
    .expect("config");
    ch.init().expect("init");
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (ch, acknowledged, refused, stop) = (
            ch.clone(),
            acknowledged.clone(),
            refused.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                match ch.insert(&batch(n)) {
                    Ok(()) => acknowledged.lock().unwrap().push(n),
                    Err(_) => refused.lock().unwrap().push(n),
                }
                n += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    cluster.shards[1].kill();
    std::thread::sleep(Duration::from_millis(700));
    cluster.shards[1].restart().expect("restart");
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    assert!(acknowledged.len() > 3, "{acknowledged:?}");
    assert!(
        !refused.is_empty(),
        "no insert failed while a shard was down"
    );
    let answer = ch
        .query("SELECT workspace, count() FROM headcount_kill.facts GROUP BY workspace FORMAT TabSeparated")
        .expect("count");
    let stored: std::collections::HashMap<u64, u64> = answer
        .lines()
        .filter_map(|l| {
            let (w, c) = l.split_once('\t')?;
            Some((w.parse().ok()?, c.parse().ok()?))
        })
        .collect();
    for n in &acknowledged {
        assert_eq!(
            stored.get(n),
            Some(&ROWS_PER_BATCH),
            "acknowledged batch {n}"
        );
    }
}
