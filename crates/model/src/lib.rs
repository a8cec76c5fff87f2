//! Pure types of headcount: identifiers, calendar days and instants, attribute values,
//! user facts and the segment filter language.
//!
//! Nothing here does I/O. The engine, the store, the server and the CLI all speak in
//! these types, so that a day and an instant, or a segment id and a workspace id,
//! cannot be confused anywhere in the code base.

pub mod bucket;
pub mod datetime;
pub mod day;
pub mod describe;
pub mod filter;
pub mod ids;
pub mod limits;
pub mod pattern;
pub mod user;
pub mod value;

pub use day::Day;
pub use filter::{Filter, FilterError};
pub use ids::{SegmentId, WorkspaceId};
pub use jiff::Timestamp;
pub use user::{Fact, FactKind, UserKey};
pub use value::Value;
