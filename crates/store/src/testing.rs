//! Helpers for test suites (behind the `testing` feature): a throwaway PostgreSQL
//! server.

pub mod postgres;

pub use self::postgres::TestPostgres;
