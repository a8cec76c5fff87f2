//! The size of SQLite's page cache for a store's connection.
//!
//! SQLite keeps the pages it reads and writes in a cache of its own (by default up
//! to 2,000 KiB of pages per connection). A server holds what it reads in its
//! indexes and caches, so that cache fills mostly with the pages its appends wrote,
//! which it never reads again; a soak watched it grow for minutes (docs/performance.md,
//! "Soak"). [`SqliteStore::limit_page_cache`] bounds it; the operating system's page
//! cache still holds the file.

use super::SqliteStore;
use crate::Result;

impl SqliteStore {
    /// Bounds SQLite's page cache of this store's connection to `kib` KiB
    /// (`PRAGMA cache_size = -kib`; at least SQLite's floor of 10 pages).
    pub fn limit_page_cache(&self, kib: u32) -> Result<()> {
        self.conn()
            .pragma_update(None, "cache_size", -i64::from(kib))?;
        Ok(())
    }

    /// The page cache's bound now, in KiB (SQLite's `cache_size`, a negative
    /// setting being KiB and a positive one pages).
    pub fn page_cache_limit_kib(&self) -> Result<i64> {
        let conn = self.conn();
        let size: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
        if size < 0 {
            return Ok(-size);
        }
        let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok(size * page / 1024)
    }

    /// The bytes of memory SQLite's page cache of this connection holds now
    /// (`SQLITE_DBSTATUS_CACHE_USED`).
    pub fn page_cache_bytes(&self) -> i64 {
        let conn = self.conn();
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle is the open connection held by the guard for the call;
        // sqlite3_db_status only writes the two integers passed.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut current,
                &mut highest,
                0,
            )
        };
        if rc == rusqlite::ffi::SQLITE_OK {
            i64::from(current)
        } else {
            0
        }
    }
}
