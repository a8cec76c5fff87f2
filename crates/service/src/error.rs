//! The service layer's one error type; the HTTP layer maps it once to its own.

use headcount_store::StoreError;

/// What the service's operations fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A background task could not finish (it panicked or was cancelled).
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Result of a service operation.
pub type ServiceResult<T> = Result<T, ServiceError>;
