//! Inserting straight into each shard's local tables, in parallel, instead of through
//! the `Distributed` table (which receives every row, parses it and sends each other
//! shard's rows on, synchronously).
//!
//! [`ClickHouse::shards`] reads the cluster's shards and weights from
//! `system.clusters` and finds, among the configured URLs, the server of every replica
//! of every shard (the row of `system.clusters` a server marks `is_local`). A user's
//! shard is chosen by [`Router::shard_of`] exactly as the `Distributed` table does:
//! `cityHash64(workspace, user)` ([`crate::cityhash::sharding_key`]) modulo the sum of
//! the weights, each shard owning as many consecutive slots as its weight, in the
//! order of the cluster definition. So `/users/track` (through the `Distributed`
//! table) and `import` (here) put a user's facts on the same shard.

use crate::cityhash::sharding_key;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::rows::{Batch, Mark, RowUser, Unsequenced};
use crate::{ClickHouse, sql};
use headcount_model::{Fact, Timestamp, UserKey};
use std::sync::Arc;

/// Picks a user's shard as the `Distributed` table's sharding key does.
#[derive(Debug, Clone)]
pub struct Router {
    /// The shard (index into the shards, in cluster order) of each slot.
    slots: Arc<[usize]>,
    shards: usize,
}

impl Router {
    /// Shards by `weights` (one per shard, in the order of the cluster definition); a
    /// shard of weight 0 gets no user.
    ///
    /// # Errors
    /// [`Error::Invalid`] when every weight is 0.
    pub fn new(weights: &[u32]) -> Result<Router> {
        let mut slots = Vec::new();
        for (shard, &weight) in weights.iter().enumerate() {
            slots.extend(std::iter::repeat_n(shard, weight as usize));
        }
        if slots.is_empty() {
            return Err(Error::Invalid(
                "the ClickHouse cluster has no shard of weight above 0".into(),
            ));
        }
        Ok(Router {
            slots: slots.into(),
            shards: weights.len(),
        })
    }

    /// One shard holding everything (a server without a cluster, or inserts through
    /// the `Distributed` table).
    pub fn single() -> Router {
        Router {
            slots: Arc::from(vec![0]),
            shards: 1,
        }
    }

    /// How many shards there are (weight 0 included).
    pub fn len(&self) -> usize {
        self.shards
    }

    /// Whether there are no shards (never: a router has at least one).
    pub fn is_empty(&self) -> bool {
        self.shards == 0
    }

    /// The shard of the user whose text ([`crate::rows::user_text`]) is `user`.
    pub fn shard_of(&self, workspace: i64, user: &str) -> usize {
        if self.slots.len() == 1 {
            return self.slots[0];
        }
        let key = sharding_key(workspace, user.as_bytes());
        self.slots[(key % self.slots.len() as u64) as usize]
    }
}

/// Facts encoded before their `seq` is known, split by shard ([`Router`]): one
/// [`Unsequenced`] per shard.
pub struct Routed {
    router: Router,
    parts: Vec<Unsequenced>,
    /// The last user pushed, its rows' name and bucket, and its shard: the facts of a
    /// line are usually all of one user, whose SHA-256 (bucket) and `cityHash64`
    /// (shard) are then computed once.
    last: Option<(UserKey, RowUser, usize)>,
}

/// Where a [`Routed`] was, to cut it back there.
#[derive(Debug, Clone)]
pub struct RoutedMark(Vec<Mark>);

impl Routed {
    /// Nothing encoded yet.
    pub fn new(router: &Router) -> Routed {
        Routed {
            router: router.clone(),
            parts: (0..router.len()).map(|_| Unsequenced::new()).collect(),
            last: None,
        }
    }

    /// Makes `user` the last user (its rows' name, bucket and shard), unless it is.
    fn remember(&mut self, workspace: i64, user: &UserKey) {
        if matches!(&self.last, Some((key, _, _)) if key == user) {
            return;
        }
        let row_user = RowUser::of(user);
        let shard = self.router.shard_of(workspace, &row_user.text);
        self.last = Some((user.clone(), row_user, shard));
    }

    /// Encodes one fact of `user` in `workspace` into its shard's part.
    pub fn push(&mut self, workspace: i64, user: &UserKey, fact: &Fact) {
        self.remember(workspace, user);
        if let Some((_, row_user, shard)) = &self.last {
            self.parts[*shard].push_user(workspace, row_user, fact);
        }
    }

    /// Encodes an event named `name` at `time`, without detail, of the user of
    /// external id `external_id` (as [`Routed::push`] of that fact would).
    pub fn push_event(&mut self, workspace: i64, external_id: &str, name: &str, time: Timestamp) {
        let same = matches!(&self.last, Some((UserKey::External(id), _, _)) if id == external_id);
        if !same {
            self.remember(workspace, &UserKey::External(external_id.to_string()));
        }
        if let Some((_, row_user, shard)) = &self.last {
            self.parts[*shard].push_event(workspace, row_user, name, time);
        }
    }

    /// The facts encoded, over every shard.
    pub fn facts(&self) -> usize {
        self.parts.iter().map(Unsequenced::facts).sum()
    }

    /// Each shard's rows.
    pub fn parts(&self) -> &[Unsequenced] {
        &self.parts
    }

    /// Where the encoding is now.
    pub fn mark(&self) -> RoutedMark {
        RoutedMark(self.parts.iter().map(Unsequenced::mark).collect())
    }

    /// Forgets every fact pushed after `mark` was taken.
    pub fn truncate(&mut self, mark: &RoutedMark) {
        for (part, &mark) in self.parts.iter_mut().zip(&mark.0) {
            part.truncate(mark);
        }
    }
}

/// Where a batch of each shard goes: the servers of every replica of the shard and the
/// tables to insert into.
#[derive(Debug, Clone)]
pub struct Shards {
    router: Router,
    /// Per shard, the server of each replica.
    replicas: Vec<Vec<Http>>,
    facts: String,
    deletions: String,
    /// Whether the tables are `Distributed` ones (synchronous inserts then).
    distributed: bool,
    description: String,
}

impl Shards {
    /// Chooses each user's shard.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// How the inserts are spread, for messages.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Inserts `batch` (rows of shard `shard` only) into that shard's tables on every
    /// one of its replicas; once this returns, they hold every row.
    ///
    /// # Errors
    /// A server unreachable ([`Error::is_unavailable`]) or refusing the insert; the
    /// batch may then be partly written (inserting it again with the same `seq`s is
    /// harmless, as for [`ClickHouse::insert`]).
    pub fn insert(&self, shard: usize, batch: &Batch) -> Result<()> {
        let Some(replicas) = self.replicas.get(shard) else {
            return Err(Error::Invalid(format!("no shard {shard}")));
        };
        let sync = [("insert_distributed_sync", "1")];
        let settings: &[(&str, &str)] = if self.distributed { &sync } else { &[] };
        for server in replicas {
            if batch.fact_rows > 0 {
                server.post(
                    settings,
                    &format!("INSERT INTO {} FORMAT RowBinary\n", self.facts),
                    &batch.facts,
                )?;
            }
            if batch.deletion_rows > 0 {
                server.post(
                    settings,
                    &format!("INSERT INTO {} FORMAT RowBinary\n", self.deletions),
                    &batch.deletions,
                )?;
            }
        }
        Ok(())
    }
}

/// One row of `system.clusters`.
struct Replica {
    shard_num: usize,
    weight: u32,
    replica_num: usize,
}

impl ClickHouse {
    /// Where inserts go (see the module's documentation): without a cluster, the one
    /// server's tables; on a cluster, each shard's local tables on the servers of its
    /// replicas, found among the configured URLs; when a replica of a shard is not
    /// among them, or with `HEADCOUNT_CLICKHOUSE_INSERT=distributed` in the environment
    /// (to compare the two), the `Distributed` tables as [`ClickHouse::insert`] uses
    /// them (the description says so).
    ///
    /// # Errors
    /// A server unreachable or refusing the queries; a cluster the first server does
    /// not define.
    pub fn shards(&self) -> Result<Shards> {
        let db = &self.database;
        let Some(cluster) = &self.cluster else {
            return Ok(Shards {
                router: Router::single(),
                replicas: vec![vec![self.servers[0].clone()]],
                facts: format!("{db}.facts"),
                deletions: format!("{db}.deletions"),
                distributed: false,
                description: format!("into {}", self.servers[0].shown()),
            });
        };
        if std::env::var_os("HEADCOUNT_CLICKHOUSE_INSERT").is_some_and(|v| v == "distributed") {
            return Ok(self.through_distributed("HEADCOUNT_CLICKHOUSE_INSERT=distributed".into()));
        }
        let quoted = sql::quote(cluster);
        let rows = self.query(&format!(
            "SELECT shard_num, shard_weight, replica_num FROM system.clusters \
             WHERE cluster = {quoted} ORDER BY shard_num, replica_num FORMAT TabSeparated"
        ))?;
        let rows = parse_replicas(&rows)?;
        if rows.is_empty() {
            return Err(Error::Invalid(format!(
                "the ClickHouse server at {} defines no cluster {cluster:?} in remote_servers",
                self.servers[0].shown()
            )));
        }
        let shard_count = rows.iter().map(|r| r.shard_num).max().unwrap_or(0);
        let mut weights = vec![0u32; shard_count];
        for row in &rows {
            weights[row.shard_num - 1] = row.weight;
        }
        // Which replica each configured server is.
        let mut replicas: Vec<Vec<(usize, Http)>> = vec![Vec::new(); shard_count];
        for server in &self.servers {
            let answer = server.post(
                &[],
                &format!(
                    "SELECT shard_num, shard_weight, replica_num FROM system.clusters \
                     WHERE cluster = {quoted} AND is_local FORMAT TabSeparated"
                ),
                b"",
            )?;
            for me in parse_replicas(&String::from_utf8_lossy(&answer))? {
                if let Some(found) = replicas.get_mut(me.shard_num - 1)
                    && !found.iter().any(|(r, _)| *r == me.replica_num)
                {
                    found.push((me.replica_num, server.clone()));
                }
            }
        }
        let missing: Vec<String> = rows
            .iter()
            .filter(|row| row.weight > 0)
            .filter(|row| {
                !replicas[row.shard_num - 1]
                    .iter()
                    .any(|(r, _)| *r == row.replica_num)
            })
            .map(|row| format!("shard {} replica {}", row.shard_num, row.replica_num))
            .collect();
        if !missing.is_empty() {
            return Ok(self.through_distributed(format!(
                "no configured URL is the server of {}: list every shard's HTTP URL to insert \
                 into each shard directly",
                missing.join(", ")
            )));
        }
        let router = Router::new(&weights)?;
        Ok(Shards {
            description: format!(
                "into the local tables of {} shard(s) of cluster {cluster} in parallel (weights {:?})",
                shard_count, weights
            ),
            router,
            replicas: replicas
                .into_iter()
                .map(|r| r.into_iter().map(|(_, server)| server).collect())
                .collect(),
            facts: format!("{db}.facts_local"),
            deletions: format!("{db}.deletions_local"),
            distributed: false,
        })
    }

    /// Inserts through the `Distributed` tables of the first server, as
    /// [`ClickHouse::insert`] does, `because` …
    fn through_distributed(&self, because: String) -> Shards {
        let db = &self.database;
        Shards {
            router: Router::single(),
            replicas: vec![vec![self.servers[0].clone()]],
            facts: format!("{db}.facts"),
            deletions: format!("{db}.deletions"),
            distributed: true,
            description: format!(
                "through the Distributed tables of {} ({because})",
                self.servers[0].shown()
            ),
        }
    }
}

fn parse_replicas(text: &str) -> Result<Vec<Replica>> {
    let bad = || Error::Invalid(format!("unexpected answer from system.clusters: {text:?}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t').map(|f| f.trim().parse::<u64>());
            match (fields.next(), fields.next(), fields.next()) {
                (Some(Ok(shard)), Some(Ok(weight)), Some(Ok(replica))) if shard >= 1 => {
                    Ok(Replica {
                        shard_num: shard as usize,
                        weight: u32::try_from(weight).map_err(|_| bad())?,
                        replica_num: replica as usize,
                    })
                }
                _ => Err(bad()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_give_consecutive_slots_in_cluster_order() {
        let router = Router::new(&[2, 0, 1]).unwrap();
        assert_eq!(&*router.slots, &[0, 0, 2]);
        assert_eq!(router.len(), 3);
        assert!(Router::new(&[0, 0]).is_err());
        // Each user lands on a shard of weight above 0.
        for i in 0..1000 {
            assert_ne!(router.shard_of(1, &format!("e:u{i}")), 1);
        }
    }

    #[test]
    fn routed_events_and_remembered_users_encode_as_plain_pushes() {
        use headcount_model::FactKind;
        let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let event = |name: &str, s: i64| Fact {
            time: at(s),
            kind: FactKind::Event {
                name: name.into(),
                detail: None,
            },
        };
        let (a, b) = (
            UserKey::External("a".into()),
            UserKey::Alias {
                name: "n".into(),
                label: "l".into(),
            },
        );
        let router = Router::new(&[1, 1]).unwrap();
        let mut routed = Routed::new(&router);
        routed.push_event(5, "a", "open", at(1));
        routed.push(5, &b, &event("buy", 2));
        routed.push(5, &a, &event("close", 3));
        routed.push_event(5, "a", "open", at(4));
        let mut direct: Vec<Batch> = (0..2).map(|_| Batch::new()).collect();
        let mut seqs: Vec<u64> = vec![0; 2];
        for (user, fact) in [
            (&a, event("open", 1)),
            (&b, event("buy", 2)),
            (&a, event("close", 3)),
            (&a, event("open", 4)),
        ] {
            let shard = router.shard_of(5, &crate::rows::user_text(user));
            seqs[shard] += 1;
            direct[shard].push(5, user, &fact, seqs[shard]);
        }
        assert_eq!(routed.facts(), 4);
        for (shard, part) in routed.parts().iter().enumerate() {
            let mut seq = 0;
            let mut batch = Batch::new();
            batch.append(part, || {
                seq += 1;
                seq
            });
            assert_eq!(batch.facts, direct[shard].facts, "shard {shard}");
        }
    }

    #[test]
    fn system_clusters_rows_are_read_or_refused() {
        let rows = parse_replicas("1\t1\t1\n2\t3\t1\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].shard_num, rows[1].weight), (2, 3));
        assert!(parse_replicas("x\t1\t1\n").is_err());
        assert!(parse_replicas("0\t1\t1\n").is_err());
    }
}
