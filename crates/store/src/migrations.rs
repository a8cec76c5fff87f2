//! Versioned schema migrations of the embedded store, applied in order at open.
//!
//! The schema version lives in SQLite's `user_version`. Migrations are append-only:
//! never edit a released one, add the next.

/// Each entry brings the schema from version `index` to `index + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema. Instants are UTC microseconds since the epoch.
    r#"
    CREATE TABLE workspaces (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        time_zone TEXT NOT NULL,
        export_limit INTEGER NOT NULL,
        track_limit INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workspace_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        hash BLOB NOT NULL,
        permissions TEXT NOT NULL,
        allow_ips TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE segments (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workspace_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        filter TEXT NOT NULL,
        text_description TEXT NOT NULL,
        tags TEXT NOT NULL,
        teams TEXT NOT NULL,
        analytics_tracking_enabled INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        archived_at INTEGER
    );
    CREATE TABLE segment_sizes (
        segment_id TEXT NOT NULL,
        day TEXT NOT NULL,
        size INTEGER NOT NULL,
        computed_at INTEGER NOT NULL,
        PRIMARY KEY (segment_id, day)
    ) WITHOUT ROWID;
    -- Facts in chunks of the binary format of chunk.rs: one row per append, the
    -- chunk carrying the keys of its users.
    CREATE TABLE fact_chunks (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        facts INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX fact_chunks_by_workspace ON fact_chunks (workspace_id, id);
    "#,
    // 2: exactly-once writes. The first answer to each Idempotency-Key of a workspace
    // (forgotten after 24 h), and per workspace the imports of files by content hash
    // with how far each got (committed in the same transaction as its facts).
    r#"
    CREATE TABLE idempotency_keys (
        workspace_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        status INTEGER NOT NULL,
        body BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        sha256 BLOB,
        name TEXT NOT NULL,
        lines INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX imports_by_content ON imports (workspace_id, sha256);
    "#,
];
