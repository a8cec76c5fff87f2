//! One module per command.

pub mod backup;
pub mod clickhouse;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod import;
pub mod keys;
pub mod serve;
pub mod snapshot;
pub mod transfer;
pub mod verify;
pub mod workspaces;

use headcount_store::{SqliteStore, Store, Workspace};
use std::path::Path;

/// Result of a command: the exit code, or an error message for stderr.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error>>;

/// The store a command works on: the data directory's, or the PostgreSQL database
/// chosen with `--database` (see [`crate::database`]).
pub type StoreHandle = Box<dyn Store>;

/// Opens the store as the writer of its fact log: for the commands that append facts
/// or own the store's background work (`serve`, `import`, `demo`, `snapshot`). It
/// takes the writer lock (a second writer is refused at once): the data directory's
/// `LOCK`, or the database's advisory lock (`PostgresStore::lock_writer`; appends of
/// several processes are safe there). `serve` on a database opens it with
/// [`open_shared`] instead: its nodes follow each other's appends.
pub fn open(dir: &Path) -> Result<StoreHandle, Box<dyn std::error::Error>> {
    if let Some(db) = crate::database::chosen() {
        let store = crate::database::open(db)?;
        store.lock_writer()?;
        return Ok(Box::new(store));
    }
    Ok(Box::new(SqliteStore::open(dir)?))
}

/// Opens a store that must already hold headcount's data, as its writer (see
/// [`open`]): for the commands that read it, which must not create a directory (or a
/// database) where the user's data is not. The error names the directory and how to
/// create one. A PostgreSQL database is opened as it is (it exists, or connecting
/// fails).
pub fn open_existing(dir: &Path) -> Result<StoreHandle, Box<dyn std::error::Error>> {
    if crate::database::chosen().is_none() {
        require_data(dir)?;
    }
    open(dir)
}

/// Opens a store that must already hold headcount's data without the data
/// directory's writer lock, next to a running writer: for administration (`keys`,
/// `workspaces list`), which a running server picks up within a second, and for
/// reading (`eval`).
pub fn open_shared_existing(dir: &Path) -> Result<StoreHandle, Box<dyn std::error::Error>> {
    if crate::database::chosen().is_none() {
        require_data(dir)?;
    }
    open_shared(dir)
}

/// Opens (creating if needed) the store without the data directory's writer lock
/// (see [`open_shared_existing`]).
pub fn open_shared(dir: &Path) -> Result<StoreHandle, Box<dyn std::error::Error>> {
    if let Some(db) = crate::database::chosen() {
        return Ok(Box::new(crate::database::open(db)?));
    }
    Ok(Box::new(SqliteStore::open_shared(dir)?))
}

/// The checkpoint directory of the store opened: `<dir>/checkpoints` for a data
/// directory, `--checkpoint-dir` (or its default) for a database.
pub fn checkpoint_dir(dir: &Path) -> std::path::PathBuf {
    crate::database::checkpoint_dir().unwrap_or_else(|| headcount_service::checkpoints::dir_of(dir))
}

/// How messages name the store: "the data directory DIR" or "the database URL".
pub fn describe(dir: &Path) -> String {
    match crate::database::chosen() {
        Some(db) => format!("the database {}", crate::database::redacted(&db.url)),
        None => format!("the data directory {}", dir.display()),
    }
}

/// The global option that selects the store, for the commands a message suggests.
pub fn store_option(dir: &Path) -> String {
    match crate::database::chosen() {
        Some(db) => format!("--database {}", crate::database::redacted(&db.url)),
        None => format!("--data-dir {}", dir.display()),
    }
}

/// Refuses a directory that holds no headcount data, naming it and how to create one.
fn require_data(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if !SqliteStore::database_path(dir).is_file() {
        let what = if dir.is_dir() {
            "holds no headcount data"
        } else {
            "does not exist"
        };
        return Err(format!(
            "the data directory {} {what} (--data-dir or HEADCOUNT_DATA_DIR; default ./headcount-data); \
             create one with `headcount --data-dir {} workspaces create NAME` or `headcount demo`",
            dir.display(),
            dir.display()
        )
        .into());
    }
    Ok(())
}

/// The workspace named `name` in the data directory `dir`, or an error naming the
/// directory and listing the workspaces it holds.
pub fn workspace(
    store: &dyn Store,
    dir: &Path,
    name: &str,
) -> Result<Workspace, Box<dyn std::error::Error>> {
    let all = store.workspaces()?;
    let names: Vec<String> = all.iter().map(|w| w.name.clone()).collect();
    let (what, option) = (describe(dir), store_option(dir));
    all.into_iter().find(|w| w.name == name).ok_or_else(|| {
        if names.is_empty() {
            format!(
                "no workspace named \"{name}\" in {what} (it has none yet: \
                 headcount {option} workspaces create NAME)"
            )
            .into()
        } else {
            format!(
                "no workspace named \"{name}\" in {what}; its workspaces: {}",
                names.join(", ")
            )
            .into()
        }
    })
}
