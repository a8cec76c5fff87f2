//! The embedded store's side of [`crate::transfer`]: its contents read in one read
//! transaction, and a new data directory's tables filled in one write transaction.

use super::SqliteStore;
use crate::transfer::{Kind, Sink, TABLES, Table, TransferSummary, Value, not_empty};
use crate::{Result, StoreError};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params_from_iter};
use std::sync::MutexGuard;

impl SqliteStore {
    /// Reads every table of [`TABLES`] in one snapshot (a read transaction: a writer
    /// may go on meanwhile, what it commits later is not seen) and gives each row to
    /// `sink`, the fact log's chunks in position order as stored. Needs no writer
    /// lock.
    ///
    /// # Errors
    /// Those of SQLite, and of `sink`.
    pub fn export(&self, sink: &mut dyn Sink) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let (chunks, facts): (i64, i64) = tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(facts), 0) FROM fact_chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        sink.start(chunks.max(0) as u64, facts.max(0) as u64)?;
        for table in TABLES {
            let mut stmt = tx.prepare(&table.select(|c| c.sqlite))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(table.columns.len());
                for i in 0..table.columns.len() {
                    values.push(match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => Value::Int(n),
                        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                        ValueRef::Real(_) => {
                            return Err(StoreError::Corrupt(format!(
                                "{}.{} holds a real number",
                                table.name, table.columns[i].sqlite
                            )));
                        }
                    });
                }
                sink.row(table, values)?;
            }
        }
        tx.finish()?;
        Ok(())
    }

    /// Starts filling this store, which must be empty (no workspace, key, segment or
    /// fact), with rows copied from another: one write transaction, committed by
    /// [`SqliteLoad::finish`], rolled back if dropped before.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the store is not empty; those of SQLite.
    pub fn load(&self) -> Result<SqliteLoad<'_>> {
        self.check_writer()?;
        let conn = self.conn();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let load = SqliteLoad {
            conn,
            open: true,
            summary: TransferSummary::default(),
        };
        let held: i64 = load.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM workspaces) + (SELECT COUNT(*) FROM api_keys) \
             + (SELECT COUNT(*) FROM segments) + (SELECT COUNT(*) FROM fact_chunks)",
            [],
            |r| r.get(0),
        )?;
        if held != 0 {
            return Err(not_empty("the data directory"));
        }
        Ok(load)
    }
}

/// A copy into an embedded store under way (see [`SqliteStore::load`]).
pub struct SqliteLoad<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
    summary: TransferSummary,
}

impl SqliteLoad<'_> {
    /// Commits the copy; returns what it holds.
    ///
    /// # Errors
    /// Those of SQLite (a full disk among them); the copy is then rolled back.
    pub fn finish(mut self) -> Result<TransferSummary> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(self.summary)
    }
}

impl Sink for SqliteLoad<'_> {
    fn start(&mut self, _chunks: u64, _facts: u64) -> Result<()> {
        Ok(())
    }

    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()> {
        self.summary.count(table, &row);
        let sql = insert(table);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let values = row.into_iter().zip(table.columns).map(|(v, c)| match v {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(n) if c.kind == Kind::Bool => {
                rusqlite::types::Value::Integer(i64::from(n != 0))
            }
            Value::Int(n) => rusqlite::types::Value::Integer(n),
            Value::Text(t) => rusqlite::types::Value::Text(t),
            Value::Bytes(b) => rusqlite::types::Value::Blob(b),
        });
        stmt.execute(params_from_iter(values))?;
        Ok(())
    }
}

impl Drop for SqliteLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// `INSERT INTO <table> (<columns>) VALUES (?1, …)` with the embedded store's names.
fn insert(table: &Table) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.sqlite).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        columns.join(", "),
        marks.join(", ")
    )
}
