//! The ingestion writer's group commit on PostgreSQL: the requests that wait while a
//! commit is in flight go into ONE transaction, which commits them all or none, at
//! consecutive fact-log positions in the order they were queued.

use headcount_model::{Fact, FactKind, UserKey, WorkspaceId};
use headcount_service::follow::{Follow, Indexes};
use headcount_service::state::SharedIndex;
use headcount_service::writer::{WriteError, Writer};
use headcount_store::testing::TestPostgres;
use headcount_store::{NewWorkspace, PostgresStore, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests queued behind the first while it waits for the head's lock.
const QUEUED: usize = 19;

fn event(user: &str) -> (UserKey, Fact) {
    let fact = Fact {
        time: headcount_model::Timestamp::from_second(1_700_000_000).expect("time"),
        kind: FactKind::Event {
            name: "login".into(),
            detail: None,
        },
    };
    (UserKey::External(user.into()), fact)
}

/// A writer on a fresh database, the groups it committed (requests each), one
/// workspace and its index, and a raw connection to the database.
struct Setup {
    _pg: TestPostgres,
    store: Arc<dyn Store>,
    writer: Arc<Writer>,
    groups: Arc<Mutex<Vec<usize>>>,
    ws: WorkspaceId,
    index: SharedIndex,
    sql: postgres::Client,
}

fn setup() -> Setup {
    let pg = TestPostgres::new();
    let url = pg.create_database();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).expect("open"));
    let ws = store
        .create_workspace(&NewWorkspace {
            name: "w".into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("workspace")
        .id;
    let follow = Arc::new(Follow::new(Arc::new(Indexes::default()), true));
    let index = follow.index(ws);
    let groups = Arc::new(Mutex::new(Vec::new()));
    let seen = groups.clone();
    let writer = Arc::new(Writer::start_with(
        &store,
        follow,
        Box::new(move |requests, _| seen.lock().expect("groups").push(requests)),
    ));
    let sql = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    Setup {
        _pg: pg,
        store,
        writer,
        groups,
        ws,
        index,
        sql,
    }
}

/// Holds the head's row lock in a transaction of `sql`, submits one request and then
/// [`QUEUED`] more from threads of a runtime (the first takes the writer into a commit
/// that waits on the lock, the others queue behind it), runs `while_held` on the
/// held transaction and commits it; answers each request's outcome, in submission
/// order.
fn submit_behind_the_lock(
    s: &mut Setup,
    while_held: impl FnOnce(&mut postgres::Transaction<'_>),
) -> Vec<Result<(), WriteError>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut tx = s.sql.transaction().expect("begin");
    tx.execute(
        "SELECT position FROM fact_log_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .expect("lock the head");
    let submit = |n: usize| {
        let (writer, ws, index) = (s.writer.clone(), s.ws, s.index.clone());
        tokio::spawn(async move {
            writer
                .append(ws, index, vec![event(&format!("u{n}"))])
                .await
        })
    };
    runtime.block_on(async {
        let first = submit(0);
        // The writer takes the first alone, then blocks on the lock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut rest = Vec::new();
        for n in 1..=QUEUED {
            rest.push(submit(n));
            // Queued in order.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::block_in_place(|| {
            while_held(&mut tx);
            tx.commit().expect("release the lock");
        });
        let mut outcomes = vec![first.await.expect("first")];
        for r in rest {
            outcomes.push(r.await.expect("queued"));
        }
        outcomes
    })
}

/// The users of the committed chunks, by position.
fn log(store: &dyn Store) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    store
        .scan_log_after(0, 1000, &mut |_, position, user, _| {
            if let UserKey::External(id) = user {
                out.push((position, id.clone()));
            }
        })
        .expect("scan the log");
    out
}

#[test]
fn requests_waiting_for_a_commit_go_into_one_transaction_at_consecutive_positions() {
    let mut s = setup();
    let outcomes = submit_behind_the_lock(&mut s, |_| {});
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let groups = s.groups.lock().expect("groups").clone();
    assert_eq!(
        groups,
        vec![1, QUEUED],
        "one commit alone, then one for the rest"
    );
    let expected: Vec<(u64, String)> = (0..=QUEUED)
        .map(|n| (n as u64 + 1, format!("u{n}")))
        .collect();
    assert_eq!(log(s.store.as_ref()), expected, "positions in queue order");
    let index = s.index.read().expect("index");
    assert_eq!(index.user_count(), QUEUED + 1);
    assert_eq!(index.position(), QUEUED as u64 + 1);
}

#[test]
fn a_group_that_fails_to_commit_commits_none_of_its_requests() {
    let mut s = setup();
    let ws = s.ws.0;
    // While the head is locked: a chunk already at the position the second group's
    // fifth request would take (1 for the first group, 2.. for the second), so
    // that the second group's insert fails on it, after four of its chunks.
    let outcomes = submit_behind_the_lock(&mut s, |tx| {
        tx.execute(
            "INSERT INTO fact_chunks (position, workspace_id, facts, data) VALUES (6, $1, 0, '')",
            &[&ws],
        )
        .expect("a conflicting chunk");
    });
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        outcomes[1..].iter().all(Result::is_err),
        "every request of the failed group refused: {outcomes:?}"
    );
    assert_eq!(*s.groups.lock().expect("groups"), vec![1]);
    s.sql
        .execute("DELETE FROM fact_chunks WHERE position = 6", &[])
        .expect("clear the conflict");
    let users: Vec<String> = log(s.store.as_ref()).into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        users,
        vec!["u0".to_string()],
        "none of the group's facts stored"
    );
    assert_eq!(s.store.last_fact_position().expect("head"), 1);
    let index = s.index.read().expect("index");
    assert_eq!(index.user_count(), 1, "none of the group's facts applied");
    drop(index);
    // The writer goes on: the next request commits.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(s.writer.append(s.ws, s.index.clone(), vec![event("later")]))
        .expect("a later request commits");
    assert_eq!(s.store.last_fact_position().expect("head"), 2);
}
