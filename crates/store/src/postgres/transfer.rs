//! PostgreSQL's side of [`crate::transfer`]: its contents read in one `REPEATABLE
//! READ` snapshot, and an empty database's tables filled with binary `COPY` in one
//! transaction.

use super::PostgresStore;
use super::pool::Pooled;
use crate::transfer::{Kind, Sink, TABLES, Table, TransferSummary, Value, not_empty};
use crate::{Result, StoreError};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{IsolationLevel, Row};

/// Rows sent in one `COPY` at most.
const BATCH_ROWS: usize = 10_000;
/// Bytes (about) sent in one `COPY` at most.
const BATCH_BYTES: usize = 16 << 20;

/// The tables whose identity column must continue after the copied ids.
const IDENTITIES: &[(&str, &str)] = &[
    ("workspaces", "id"),
    ("api_keys", "seq"),
    ("segments", "seq"),
    ("imports", "id"),
];

impl PostgresStore {
    /// Reads every table of [`TABLES`] in one `REPEATABLE READ` read-only transaction
    /// (nodes may go on writing meanwhile, what they commit later is not seen) and
    /// gives each row to `sink`, the fact log's chunks in position order as stored.
    ///
    /// # Errors
    /// Those of PostgreSQL, and of `sink`.
    pub fn export(&self, sink: &mut dyn Sink) -> Result<()> {
        let mut client = self.pool.get()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let row = tx.query_one(
            "SELECT count(*), COALESCE(sum(facts), 0)::bigint FROM fact_chunks",
            &[],
        )?;
        let (chunks, facts): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        sink.start(chunks.max(0) as u64, facts.max(0) as u64)?;
        for table in TABLES {
            let sql = table.select(|c| c.postgres);
            let none: [&(dyn ToSql + Sync); 0] = [];
            let mut rows = tx.query_raw(sql.as_str(), none)?;
            while let Some(row) = rows.next()? {
                sink.row(table, values(table, &row)?)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Starts filling this database, which must be empty (no workspace, key, segment
    /// or fact), with rows copied from another store: one transaction, holding locks
    /// that keep other writers of the catalog and the fact log waiting, committed by
    /// [`PostgresLoad::finish`] and rolled back if dropped before.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the database is not empty; those of PostgreSQL.
    pub fn load(&self) -> Result<PostgresLoad<'_>> {
        let mut client = self.pool.get()?;
        client.batch_execute(
            "BEGIN; LOCK TABLE workspaces, api_keys, segments, fact_chunks \
             IN SHARE ROW EXCLUSIVE MODE",
        )?;
        let mut load = PostgresLoad {
            client,
            open: true,
            table: None,
            batch: Vec::new(),
            weight: 0,
            summary: TransferSummary::default(),
        };
        let held: i64 = load
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM workspaces) + (SELECT count(*) FROM api_keys) \
                 + (SELECT count(*) FROM segments) + (SELECT count(*) FROM fact_chunks)",
                &[],
            )?
            .try_get(0)?;
        if held != 0 {
            return Err(not_empty("the database"));
        }
        Ok(load)
    }
}

/// The values of a row read from `table`.
fn values(table: &Table, row: &Row) -> Result<Vec<Value>> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        values.push(
            match column.kind {
                Kind::Int8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Kind::Int4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map(|n| Value::Int(n.into())),
                Kind::Bool => row
                    .try_get::<_, Option<bool>>(i)?
                    .map(|b| Value::Int(b.into())),
                Kind::Text => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
                Kind::Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
            }
            .unwrap_or(Value::Null),
        );
    }
    Ok(values)
}

/// A copy into a PostgreSQL database under way (see [`PostgresStore::load`]).
pub struct PostgresLoad<'a> {
    client: Pooled<'a>,
    open: bool,
    /// The table of the rows in `batch`.
    table: Option<&'static Table>,
    batch: Vec<Vec<Value>>,
    weight: usize,
    summary: TransferSummary,
}

impl PostgresLoad<'_> {
    /// Sends the rows waiting, with one binary `COPY`.
    fn flush(&mut self) -> Result<()> {
        let Some(table) = self.table else {
            return Ok(());
        };
        if self.batch.is_empty() {
            return Ok(());
        }
        let columns: Vec<&str> = table.columns.iter().map(|c| c.postgres).collect();
        let types: Vec<Type> = table.columns.iter().map(|c| pg_type(c.kind)).collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            table.name,
            columns.join(", ")
        );
        let sink = self.client.copy_in(sql.as_str())?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for row in self.batch.drain(..) {
            let owned = typed(table, row)?;
            let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
            writer.write(&refs)?;
        }
        writer.finish()?;
        self.weight = 0;
        Ok(())
    }

    /// Commits the copy, the identity columns set to go on after the copied ids and
    /// the fact log's head at its last copied position; returns what it holds.
    ///
    /// # Errors
    /// Those of PostgreSQL; the copy is then rolled back.
    pub fn finish(mut self) -> Result<TransferSummary> {
        self.flush()?;
        for (table, column) in IDENTITIES {
            self.client.execute(
                format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                     COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)"
                )
                .as_str(),
                &[],
            )?;
        }
        self.client.batch_execute(
            "UPDATE fact_log_head SET position = GREATEST(position, \
             (SELECT COALESCE(max(position), 0) FROM fact_chunks)) WHERE id = 1; COMMIT",
        )?;
        self.open = false;
        Ok(self.summary)
    }
}

impl Sink for PostgresLoad<'_> {
    fn start(&mut self, _chunks: u64, _facts: u64) -> Result<()> {
        Ok(())
    }

    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()> {
        if self.table.is_some_and(|t| !std::ptr::eq(t, table)) {
            self.flush()?;
        }
        self.table = Some(table);
        self.summary.count(table, &row);
        self.weight += row.iter().map(Value::weight).sum::<usize>();
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS || self.weight >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for PostgresLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Int8 => Type::INT8,
        Kind::Int4 => Type::INT4,
        Kind::Bool => Type::BOOL,
        Kind::Text => Type::TEXT,
        Kind::Bytes => Type::BYTEA,
    }
}

/// A row's values as the Rust types of `table`'s PostgreSQL columns.
fn typed(table: &Table, row: Vec<Value>) -> Result<Vec<Box<dyn ToSql + Sync>>> {
    let mut out: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(row.len());
    for (value, column) in row.into_iter().zip(table.columns) {
        let mismatch = || {
            StoreError::Corrupt(format!(
                "{}.{} holds a value of another type than {:?}",
                table.name, column.sqlite, column.kind
            ))
        };
        out.push(match (column.kind, value) {
            (Kind::Int8, Value::Null) => Box::new(None::<i64>),
            (Kind::Int4, Value::Null) => Box::new(None::<i32>),
            (Kind::Bool, Value::Null) => Box::new(None::<bool>),
            (Kind::Text, Value::Null) => Box::new(None::<String>),
            (Kind::Bytes, Value::Null) => Box::new(None::<Vec<u8>>),
            (Kind::Int8, Value::Int(n)) => Box::new(n),
            (Kind::Int4, Value::Int(n)) => Box::new(i32::try_from(n).map_err(|_| mismatch())?),
            (Kind::Bool, Value::Int(n)) => Box::new(n != 0),
            (Kind::Text, Value::Text(t)) => Box::new(t),
            (Kind::Bytes, Value::Bytes(b)) => Box::new(b),
            _ => return Err(mismatch()),
        });
    }
    Ok(out)
}
