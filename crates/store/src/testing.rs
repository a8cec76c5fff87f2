//! Helpers for test suites (behind the `testing` feature): a throwaway PostgreSQL
//! server, and the small facts and workspaces the store's tests write.

pub mod postgres;

pub use self::postgres::TestPostgres;

use crate::{NewWorkspace, Store};
use headcount_model::{Fact, FactKind, Timestamp, WorkspaceId};

/// A `login` event `second` seconds after 2023-11-14T22:13:20Z.
pub fn login_at(second: i64) -> Fact {
    Fact {
        time: Timestamp::from_second(1_700_000_000 + second).expect("a time in range"),
        kind: FactKind::Event {
            name: "login".into(),
            detail: None,
        },
    }
}

/// Creates a UTC workspace `name` (limits of 1) in `store` and answers its id.
pub fn workspace(store: &dyn Store, name: &str) -> WorkspaceId {
    store
        .create_workspace(&NewWorkspace {
            name: name.into(),
            time_zone: "UTC".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("workspace")
        .id
}
