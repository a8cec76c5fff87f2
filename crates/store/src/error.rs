//! The storage layer's error type.

use std::path::PathBuf;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the writer lock of the data directory.
    #[error(
        "the data directory {} is in use by another headcount process{}; stop it first \
         (workspaces and keys commands work while it runs)",
        .dir.display(),
        .owner.as_deref().map(|o| format!(" ({o})")).unwrap_or_default()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as it wrote itself into `LOCK` (its pid and command line),
        /// when known.
        owner: Option<String>,
    },
    /// Another process holds the writer lock of the PostgreSQL database.
    #[error(
        "the database is in use by another headcount writer{}; stop it first \
         (workspaces and keys commands work while it runs)",
        .holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    DatabaseLocked {
        /// Who holds it, as PostgreSQL shows it, when known.
        holder: Option<String>,
    },
    /// A store opened without the writer lock was asked to change the fact log.
    #[error("this process does not hold the writer lock of the data directory")]
    NotWriter,
    /// The data directory can be written by users other than its owner.
    #[error(
        "the data directory {path} can be written by other users (mode {mode:04o}); \
make it owner-only with `chmod go-w {path}` (or `chmod 700 {path}`)",
        path = .0.display(),
        mode = .1
    )]
    Unsafe(PathBuf, u32),
    /// A uniqueness rule was broken (such as a workspace name already taken).
    #[error("{0}")]
    Conflict(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The data directory was written by a newer headcount.
    #[error(
        "the data directory has schema version {found}, newer than this headcount ({supported})"
    )]
    TooNew {
        /// The stored version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The embedded database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed.
    #[error("PostgreSQL error: {}", postgres_message(.0))]
    Postgres(postgres::Error),
    /// The database cannot be reached (down, restarting, connection lost): worth
    /// retrying shortly; nothing of the failed operation was committed unless it says so.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The store does not implement this operation (a PostgreSQL-only one on a data
    /// directory).
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// A database URL that does not parse.
    #[error("invalid database URL: {0}")]
    Url(String),
    /// The file system failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A PostgreSQL error with the server's message and detail when it sent one (the
/// client's own text says only "db error").
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

impl From<postgres::Error> for StoreError {
    /// Connection-class failures (refused, lost, the server shutting down or starting
    /// up) become [`StoreError::Unavailable`]; the rest stay [`StoreError::Postgres`].
    fn from(e: postgres::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(postgres_message(&e))
        } else {
            StoreError::Postgres(e)
        }
    }
}

/// Whether a PostgreSQL error means the server cannot be reached right now.
fn is_unavailable(e: &postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // Class 08: connection exception; 57P01-57P03: shutting down, crashed,
        // starting up.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    e.is_closed()
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().contains("timed out")
}
