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
pub mod verify;
pub mod workspaces;

use headcount_store::{SqliteStore, Store, Workspace};
use std::path::Path;

/// Result of a command: the exit code, or an error message for stderr.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error>>;

/// Opens the data directory as the writer of its fact log (taking its lock): for
/// the commands that append facts or own the directory's background work (`serve`,
/// `import`, `demo`, `snapshot`). A second writer is refused at once.
pub fn open(dir: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    Ok(SqliteStore::open(dir)?)
}

/// Opens a data directory that must already hold headcount's data, as its writer
/// (taking its lock): for the commands that read it, which must not create a directory
/// (or a database) where the user's data is not. The error names the directory and
/// how to create one.
pub fn open_existing(dir: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    require_data(dir)?;
    open(dir)
}

/// Opens a data directory that must already hold headcount's data without its writer
/// lock, next to a running writer: for administration (`keys`, `workspaces list`),
/// which a running server picks up within a second, and for reading (`eval`).
pub fn open_shared_existing(dir: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    require_data(dir)?;
    open_shared(dir)
}

/// Opens (creating if needed) the data directory without its writer lock (see
/// [`open_shared_existing`]).
pub fn open_shared(dir: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    Ok(SqliteStore::open_shared(dir)?)
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
    let dir = dir.display();
    all.into_iter().find(|w| w.name == name).ok_or_else(|| {
        if names.is_empty() {
            format!(
                "no workspace named \"{name}\" in the data directory {dir} (it has none yet: \
                 headcount --data-dir {dir} workspaces create NAME)"
            )
            .into()
        } else {
            format!(
                "no workspace named \"{name}\" in the data directory {dir}; its workspaces: {}",
                names.join(", ")
            )
            .into()
        }
    })
}
