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
    -- kind: 0 external_id (k1), 1 alias (k1 = name, k2 = label), 2 braze_id (k1).
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        k1 TEXT NOT NULL,
        k2 TEXT NOT NULL DEFAULT '',
        UNIQUE (workspace_id, kind, k1, k2)
    );
    -- kind: 0 attributes (body: JSON object), 1 event (name, body: detail),
    -- 2 purchase (name = product_id, body: detail).
    CREATE TABLE facts (
        user_id INTEGER NOT NULL,
        time INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        name TEXT,
        body TEXT
    );
    CREATE INDEX facts_by_user ON facts (user_id);
    "#,
];
