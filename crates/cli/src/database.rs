//! `--database URL`: the PostgreSQL store, chosen once at start in place of the data
//! directory, for every command that opens a store.
//!
//! What a data directory holds besides its database lives elsewhere then: the
//! checkpoints (derived data, local to each process's machine) in `--checkpoint-dir`,
//! by default `$XDG_CACHE_HOME/headcount/checkpoints/<database id>` (else
//! `~/.cache/…`, else the temporary directory), the id being made when the database
//! is created, so that a database dropped and created again never meets the
//! checkpoints of the old one. There is no writer lock: appends of several processes
//! are safe on PostgreSQL (see `headcount_store::postgres`).

use headcount_store::PostgresStore;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The database chosen at start.
#[derive(Debug, Clone)]
pub struct Database {
    /// Its URL as given.
    pub url: String,
    /// `--checkpoint-dir`, if given.
    pub checkpoint_dir: Option<PathBuf>,
}

static CHOSEN: OnceLock<Database> = OnceLock::new();
static CHECKPOINTS: OnceLock<PathBuf> = OnceLock::new();

/// Chooses the database for this process (once, at start; later calls are ignored).
pub fn choose(database: Database) {
    let _ = CHOSEN.set(database);
}

/// The database chosen at start, if any (else the data directory is the store).
pub fn chosen() -> Option<&'static Database> {
    CHOSEN.get()
}

/// Opens the chosen database (creating or migrating its schema) and settles where its
/// checkpoints live.
///
/// # Errors
/// One naming the database (its password hidden) and why it cannot be used.
pub fn open(database: &Database) -> Result<PostgresStore, Box<dyn std::error::Error>> {
    let store = PostgresStore::open(&database.url)
        .map_err(|e| format!("cannot use the database {}: {e}", redacted(&database.url)))?;
    let dir = match &database.checkpoint_dir {
        Some(dir) => dir.clone(),
        None => default_checkpoint_dir(&store.instance_id()?),
    };
    let _ = CHECKPOINTS.set(dir);
    Ok(store)
}

/// Where the checkpoints of the opened database live (after [`open`]).
pub fn checkpoint_dir() -> Option<PathBuf> {
    CHECKPOINTS.get().cloned()
}

fn default_checkpoint_dir(instance: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("headcount").join("checkpoints").join(instance)
}

/// The URL with its password (if any) replaced by `***`, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn redacted_hides_the_password_only() {
        assert_eq!(
            redacted("postgres://hc:s3cret@db:5432/headcount"),
            "postgres://hc:***@db:5432/headcount"
        );
        assert_eq!(
            redacted("postgres://hc@db/headcount"),
            "postgres://hc@db/headcount"
        );
        assert_eq!(redacted("host=db user=hc"), "host=db user=hc");
    }
}
