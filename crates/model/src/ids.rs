//! Newtype identifiers, so that ids of different things cannot be swapped.

use std::fmt;
use std::str::FromStr;

/// A workspace: the unit of tenancy, owning users, segments, keys and rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(pub i64);

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A segment's API identifier: a UUID, as Braze uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub uuid::Uuid);

impl SegmentId {
    /// A fresh random identifier for a new segment.
    pub fn new_random() -> Self {
        SegmentId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SegmentId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(SegmentId)
    }
}
