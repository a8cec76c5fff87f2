//! Moving a store's contents to another backend, table by table and row by row as
//! stored: `headcount backup --to-database` (a data directory into an empty
//! PostgreSQL database) and `--from-database` (the other way).
//!
//! Both backends have the same tables with the same columns (the fact log's position
//! is `fact_chunks.id` in SQLite, `fact_chunks.position` in PostgreSQL), so a copy
//! keeps every id (workspaces, keys, segments, fact-log positions, imports) and
//! copies the fact log's encoded chunks as they are, in position order, without
//! decoding them. A source is read in one snapshot (a SQLite read transaction, a
//! PostgreSQL `REPEATABLE READ` transaction), so a server may go on writing
//! meanwhile; a target is written in one transaction, so a failed copy leaves it as
//! it was.
//!
//! Not copied: what each store makes for itself (the schema version, the catalog
//! version, the PostgreSQL database's instance id, the fact log's head, which is set
//! to the last copied position) and the leases of running jobs.

use crate::Result;

/// The SQL type of a column, as PostgreSQL declares it (SQLite stores integers for
/// all three integer kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bigint`.
    Int8,
    /// `int`.
    Int4,
    /// `boolean` (0 or 1 in SQLite).
    Bool,
    /// `text`.
    Text,
    /// `bytea` / `BLOB`.
    Bytes,
}

/// A column copied: its name in each backend, and its type.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name in the embedded store.
    pub sqlite: &'static str,
    /// Its name in PostgreSQL.
    pub postgres: &'static str,
    /// Its type.
    pub kind: Kind,
}

/// A table copied, read in the order of its primary key (its first columns).
#[derive(Debug)]
pub struct Table {
    /// Its name (the same in both backends).
    pub name: &'static str,
    /// Its columns, the primary key first.
    pub columns: &'static [Column],
    /// How many leading columns make up the primary key (the reading order).
    pub key: usize,
}

impl Table {
    /// `SELECT <columns> FROM <table> ORDER BY <key>` with one backend's names.
    pub(crate) fn select(&self, name: fn(&Column) -> &'static str) -> String {
        let columns: Vec<&str> = self.columns.iter().map(name).collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            self.name,
            columns[..self.key].join(", ")
        )
    }

    /// Whether this is the fact log.
    pub fn is_fact_log(&self) -> bool {
        self.name == "fact_chunks"
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        sqlite: name,
        postgres: name,
        kind,
    }
}

use Kind::{Bool, Bytes, Int4, Int8, Text};

/// Every table copied, in the order copied (the fact log after the catalog).
pub const TABLES: &[Table] = &[
    Table {
        name: "workspaces",
        columns: &[
            col("id", Int8),
            col("name", Text),
            col("time_zone", Text),
            col("export_limit", Int8),
            col("track_limit", Int8),
            col("created_at", Int8),
        ],
        key: 1,
    },
    Table {
        name: "api_keys",
        columns: &[
            col("seq", Int8),
            col("id", Text),
            col("workspace_id", Int8),
            col("name", Text),
            col("hash", Bytes),
            col("permissions", Text),
            col("allow_ips", Text),
            col("created_at", Int8),
            col("revoked_at", Int8),
        ],
        key: 1,
    },
    Table {
        name: "segments",
        columns: &[
            col("seq", Int8),
            col("id", Text),
            col("workspace_id", Int8),
            col("name", Text),
            col("filter", Text),
            col("text_description", Text),
            col("tags", Text),
            col("teams", Text),
            col("analytics_tracking_enabled", Bool),
            col("created_at", Int8),
            col("updated_at", Int8),
            col("archived_at", Int8),
        ],
        key: 1,
    },
    Table {
        name: "segment_sizes",
        columns: &[
            col("segment_id", Text),
            col("day", Text),
            col("size", Int8),
            col("computed_at", Int8),
        ],
        key: 2,
    },
    Table {
        name: "rate_windows",
        columns: &[
            col("workspace_id", Int8),
            col("bucket", Text),
            col("window_start", Int8),
            col("count", Int8),
        ],
        key: 2,
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            col("workspace_id", Int8),
            col("key", Text),
            col("fingerprint", Bytes),
            col("status", Int4),
            col("body", Bytes),
            col("created_at", Int8),
        ],
        key: 2,
    },
    Table {
        name: "imports",
        columns: &[
            col("id", Int8),
            col("workspace_id", Int8),
            col("sha256", Bytes),
            col("name", Text),
            col("lines", Int8),
            col("bytes", Int8),
            col("started_at", Int8),
            col("updated_at", Int8),
            col("finished_at", Int8),
        ],
        key: 1,
    },
    Table {
        name: "fact_purges",
        columns: &[
            col("chunk_id", Int8),
            col("workspace_id", Int8),
            col("next_chunk", Int8),
        ],
        key: 1,
    },
    Table {
        name: "fact_chunks",
        columns: &[
            Column {
                sqlite: "id",
                postgres: "position",
                kind: Int8,
            },
            col("workspace_id", Int8),
            col("facts", Int8),
            col("data", Bytes),
        ],
        key: 1,
    },
];

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer (booleans as 0 and 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Value {
    /// Its size in bytes, roughly: for batching.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Value::Null | Value::Int(_) => 8,
            Value::Text(t) => t.len(),
            Value::Bytes(b) => b.len(),
        }
    }
}

/// Where a copy goes: the rows of each table in [`TABLES`] order, each table's in
/// key order.
pub trait Sink {
    /// Called once before any row: how many chunks and facts the fact log copied has.
    fn start(&mut self, chunks: u64, facts: u64) -> Result<()>;
    /// One row of `table`, its values in the order of `table.columns`.
    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()>;
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferSummary {
    /// Workspaces copied.
    pub workspaces: u64,
    /// Rows copied, all tables together.
    pub rows: u64,
    /// Chunks of the fact log copied.
    pub chunks: u64,
    /// Facts in those chunks (deletion entries included).
    pub facts: u64,
    /// Bytes of the chunks copied.
    pub chunk_bytes: u64,
}

impl TransferSummary {
    /// Counts one row of `table`.
    pub(crate) fn count(&mut self, table: &Table, row: &[Value]) {
        self.rows += 1;
        if table.name == "workspaces" {
            self.workspaces += 1;
        }
        if table.is_fact_log() {
            self.chunks += 1;
            if let Some(Value::Int(n)) = row.get(2) {
                self.facts += (*n).max(0) as u64;
            }
            if let Some(Value::Bytes(b)) = row.get(3) {
                self.chunk_bytes += b.len() as u64;
            }
        }
    }
}

/// The message of a copy refused because the target already holds data.
pub(crate) fn not_empty(what: &str) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "{what} is not empty (it holds workspaces, keys, segments or facts): a copy goes \
         into an empty one only"
    ))
}
