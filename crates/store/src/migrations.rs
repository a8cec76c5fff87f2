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
    // 2: deletions are entries of the fact log (chunk fact kind 3). Each chunk holding
    // some has a row here until older chunks no longer hold the facts they delete:
    // `next_chunk` is the lowest chunk id not yet purged for it.
    r#"
    CREATE TABLE fact_purges (
        chunk_id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        next_chunk INTEGER NOT NULL
    );
    "#,
    // 3: administration while the server runs, and rate-limit windows that survive a
    // restart. `catalog_version` is bumped by triggers in the same transaction as any
    // change of workspaces, keys or segments, whichever process makes it, so that a
    // server polling it sees every change of the catalog.
    r#"
    CREATE TABLE catalog_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO catalog_version (id, version) VALUES (1, 0);
    CREATE TRIGGER workspaces_inserted AFTER INSERT ON workspaces
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER workspaces_updated AFTER UPDATE ON workspaces
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER workspaces_deleted AFTER DELETE ON workspaces
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER segments_inserted AFTER INSERT ON segments
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER segments_updated AFTER UPDATE ON segments
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    CREATE TRIGGER segments_deleted AFTER DELETE ON segments
        BEGIN UPDATE catalog_version SET version = version + 1; END;
    -- The count of the current window of each (workspace, bucket), saved by the
    -- server every second and at a clean stop. Epoch seconds.
    CREATE TABLE rate_windows (
        workspace_id INTEGER NOT NULL,
        bucket TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, bucket)
    ) WITHOUT ROWID;
    "#,
    // 4: exactly-once writes. The first answer to each Idempotency-Key of a workspace
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
    // 5: leases, so that one process of several sharing a store does a job (the daily
    // sizes of a segment); `expires_at` in microseconds, taken over once past.
    r#"
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: the engine that holds a workspace's facts and counts its segments: "memory"
    // (the in-process index) or "clickhouse" (crates/clickhouse).
    r#"
    ALTER TABLE workspaces ADD COLUMN engine TEXT NOT NULL DEFAULT 'memory';
    "#,
];
