//! The one error type of the ClickHouse layer.

/// Why a ClickHouse operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or the connection broke: worth retrying later.
    #[error("ClickHouse at {url} is unreachable: {reason}")]
    Unreachable {
        /// The server's address (without credentials).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error (a bad query, a missing table…).
    #[error("ClickHouse answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// ClickHouse's message.
        message: String,
    },
    /// A setting or an answer that headcount cannot use.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether the failure is the server being away (a retry may succeed), as opposed
    /// to a query or configuration that will fail again.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
