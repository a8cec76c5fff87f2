//! headcount's logic, shared by the CLI and the HTTP API: the catalog, ingestion and
//! its group-commit writer, daily sizes and their jobs, the indexes' loading and
//! checkpoints, purges, upkeep, rate-limit counters and the shared state. The store is
//! chosen once at start (an `Arc<dyn Store>` given to [`Shared::open`]); nothing here
//! knows about HTTP.

pub mod batched_counter;
pub mod catalog;
pub mod checkpoints;
pub mod counting;
pub mod error;
pub mod follow;
pub mod idempotency;
pub mod ingest;
pub mod jobs;
pub mod json;
pub mod leases;
pub mod limits;
pub mod loading;
pub mod metrics;
pub mod purge;
pub mod ratelimit;
pub mod resp;
pub mod sizes;
pub mod state;
pub mod store_counter;
pub mod upkeep;
pub mod warnings;
pub mod writer;

pub use error::{ServiceError, ServiceResult};
pub use state::{AppState, Config, Shared};
