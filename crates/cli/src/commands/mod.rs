//! One module per command.

pub mod demo;
pub mod eval;
pub mod generate;
pub mod import;
pub mod keys;
pub mod serve;
pub mod snapshot;
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

/// Opens the data directory without its writer lock, next to a running writer: for
/// administration (`workspaces`, `keys`), which a running server picks up within a
/// second, and for reading (`eval`).
pub fn open_shared(dir: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    Ok(SqliteStore::open_shared(dir)?)
}

/// The workspace named `name`, or an error listing the names that exist.
pub fn workspace(store: &dyn Store, name: &str) -> Result<Workspace, Box<dyn std::error::Error>> {
    let all = store.workspaces()?;
    let names: Vec<String> = all.iter().map(|w| w.name.clone()).collect();
    all.into_iter().find(|w| w.name == name).ok_or_else(|| {
        if names.is_empty() {
            format!("no workspace named \"{name}\" (there are none yet: headcount workspaces create NAME)").into()
        } else {
            format!("no workspace named \"{name}\"; workspaces: {}", names.join(", ")).into()
        }
    })
}
