//! The records the store keeps.

use crate::ipnet::IpNet;
use headcount_model::{Day, SegmentId, Timestamp, WorkspaceId};
use std::fmt;
use std::str::FromStr;

/// Default export rate limit: requests per hour, shared by the `/segments/*` exports.
pub const DEFAULT_EXPORT_LIMIT: u64 = 250_000;
/// Default `/users/track` rate limit per [`TRACK_WINDOW_SECS`].
pub const DEFAULT_TRACK_LIMIT: u64 = 3_000;
/// The `/users/track` window length in seconds.
pub const TRACK_WINDOW_SECS: u64 = 3;

/// A workspace: the tenant that owns users, segments, keys and rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Its unique name.
    pub name: String,
    /// IANA time zone of its calendar days.
    pub time_zone: String,
    /// Export requests allowed per hour.
    pub export_limit: u64,
    /// `/users/track` requests allowed per 3 seconds.
    pub track_limit: u64,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The fields of a workspace to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkspace {
    /// Its unique name.
    pub name: String,
    /// IANA time zone, already validated.
    pub time_zone: String,
    /// Export requests allowed per hour.
    pub export_limit: u64,
    /// `/users/track` requests allowed per 3 seconds.
    pub track_limit: u64,
}

/// What an API key may do: one endpoint each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `GET /segments/list`
    SegmentsList,
    /// `GET /segments/details`
    SegmentsDetails,
    /// `GET /segments/data_series`
    SegmentsDataSeries,
    /// `POST /segments/create`
    SegmentsCreate,
    /// `POST /segments/update`
    SegmentsUpdate,
    /// `POST /segments/archive`
    SegmentsArchive,
    /// `POST /users/track`
    UsersTrack,
    /// `POST /users/delete`
    UsersDelete,
}

impl Permission {
    /// Every permission, the default of a new key.
    pub const ALL: [Permission; 8] = [
        Permission::SegmentsList,
        Permission::SegmentsDetails,
        Permission::SegmentsDataSeries,
        Permission::SegmentsCreate,
        Permission::SegmentsUpdate,
        Permission::SegmentsArchive,
        Permission::UsersTrack,
        Permission::UsersDelete,
    ];

    /// Its name, such as `segments.data_series`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SegmentsList => "segments.list",
            Permission::SegmentsDetails => "segments.details",
            Permission::SegmentsDataSeries => "segments.data_series",
            Permission::SegmentsCreate => "segments.create",
            Permission::SegmentsUpdate => "segments.update",
            Permission::SegmentsArchive => "segments.archive",
            Permission::UsersTrack => "users.track",
            Permission::UsersDelete => "users.delete",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown permission \"{s}\"; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// An API key as stored: never its secret, only a hash of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Public identifier: the first characters of the secret, safe to show.
    pub id: String,
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// A label chosen by its creator.
    pub name: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Client addresses allowed; empty: any.
    pub allow_ips: Vec<IpNet>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A segment definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its API identifier.
    pub id: SegmentId,
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// Its name.
    pub name: String,
    /// The filter as JSON, already validated.
    pub filter: serde_json::Value,
    /// The description a person wrote (Braze's `text_description`).
    pub text_description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Teams.
    pub teams: Vec<String>,
    /// Braze's analytics tracking flag, kept for compatibility.
    pub analytics_tracking_enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it was archived, if it was.
    pub archived_at: Option<Timestamp>,
}

/// One stored daily size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSize {
    /// The day.
    pub day: Day,
    /// Members as of the end of that day.
    pub size: u64,
    /// When it was computed.
    pub computed_at: Timestamp,
}

/// The saved count of a rate-limit window, so that a restart inside the window goes on
/// counting where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The bucket's name (the server's, such as `export` or `track`).
    pub bucket: String,
    /// When the window started, UTC epoch seconds.
    pub window_start: u64,
    /// Requests counted in it.
    pub count: u64,
}

/// How long an `Idempotency-Key` is remembered: 24 hours, in microseconds.
pub const IDEMPOTENCY_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;

/// The first answer to a request that carried an `Idempotency-Key`: a repeat of the key
/// in its workspace gets this answer back instead of being applied again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The workspace the key belongs to (keys of different workspaces never meet).
    pub workspace: WorkspaceId,
    /// The key as the client sent it (unquoted).
    pub key: String,
    /// SHA-256 of the endpoint and the request body: a repeat must match it.
    pub fingerprint: [u8; 32],
    /// The HTTP status of the first answer.
    pub status: u16,
    /// The body of the first answer, byte for byte.
    pub body: Vec<u8>,
    /// When the first answer was given; the key is forgotten 24 hours later.
    pub created_at: Timestamp,
}

/// The record of one input of `headcount import`: its content hash and how many of its
/// lines are committed. Written in the same transaction as each commit of its facts,
/// so that the record and the facts always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// Its id in the store.
    pub id: i64,
    /// The workspace imported into.
    pub workspace: WorkspaceId,
    /// SHA-256 of the whole input; `None` until known (stdin is hashed while read).
    pub sha256: Option<[u8; 32]>,
    /// The input's name as given (a path, or `-`), for messages.
    pub name: String,
    /// Lines of the input committed, from its start (blank and rejected lines included).
    pub lines: u64,
    /// Bytes of the input those lines span.
    pub bytes: u64,
    /// When the import began.
    pub started_at: Timestamp,
    /// When its progress was last committed.
    pub updated_at: Timestamp,
    /// When its last line was committed; `None` while unfinished.
    pub finished_at: Option<Timestamp>,
}

/// Progress of one import, committed with a batch of facts (see
/// [`crate::Store::append_encoded_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProgress {
    /// The record, from [`crate::Store::begin_import`].
    pub id: i64,
    /// SHA-256 of the whole input, when known.
    pub sha256: Option<[u8; 32]>,
    /// Lines committed from the start, this batch included.
    pub lines: u64,
    /// Bytes those lines span.
    pub bytes: u64,
    /// When this progress was made.
    pub at: Timestamp,
    /// Whether this batch holds the input's last line.
    pub finished: bool,
}

/// Bookkeeping committed in the same transaction as a batch of facts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Receipts<'a> {
    /// Answers to remember for their `Idempotency-Key`.
    pub responses: &'a [IdempotencyRecord],
    /// Progress of imports.
    pub imports: &'a [ImportProgress],
}
