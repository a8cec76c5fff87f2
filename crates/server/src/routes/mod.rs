//! The endpoints, one module per resource; each module's `router()` mounts its paths.

pub mod preview;
pub mod segments;
pub mod users;
