//! Checkpoints: an [`Index`] as compact bytes that load at memory speed.
//!
//! The columns' vectors are written as they are in memory, little-endian, and read
//! back in bulk (`codec`), never re-applied fact by fact; only the hash tables (user
//! keys, attribute values, names) are rebuilt, since their hashing is keyed per
//! process. A loaded index answers exactly as the one written, with the same
//! [`Index::version`] and [`Index::position`].
//!
//! # Format (version [`FORMAT_VERSION`])
//! ```text
//! magic    8 bytes  "HCINDEX\0"
//! format   u32      FORMAT_VERSION
//! workspace i64     whose index it is
//! position u64      Index::position: the fact-log position it includes
//! version  u64, latest fact time i64, live events u64
//! datetimes         [i64]
//! users             arena [u8], ends (low halves [u32], the indices where the
//!                   high half steps up [u32]), first-fact times [i64], buckets [u16],
//!                   fact counts [u32]
//! events            count; per name: name, column of ()
//! products          count; per product: name
//! purchases         column of u32 (product position)
//! attributes        count; per name: name, values (appending u8: 1 if values
//!                   are no longer deduplicated; count; each: tag u8 + value),
//!                   id width u8 (1 or 4), column of u8 or u32 (value id; u8::MAX or
//!                   u32::MAX for an unset)
//! crc32    u32      CRC-32 (IEEE) of every byte before it
//! ```
//! Numbers are little-endian; `[T]` is a `u64` length then the items; a name is a
//! `u64` length then UTF-8. A column is its slices (count), each its runs (count; per
//! run: time offsets [u32], block bases [i64], block starts [u64], users [u32],
//! payloads [T]) then its unsorted tail (times [i64], users [u32], payloads [T]).
//!
//! Reading checks, besides the checksum, every length against the bytes left and the
//! structure a query relies on (parallel vectors, block layout, users in their slice,
//! ids in range), so that a damaged file is an error, never a panic or a wrong index.

use crate::attributes::{AttrColumn, UNSET};
use crate::codec::{Decoder, Encoder};
use crate::column::Column;
use crate::ids::Ids;
use crate::index::Index;
use crate::instants::Instants;
use crate::intern::Interner;
use crate::names::Named;
use crate::users::Users;
use headcount_model::WorkspaceId;
use std::io::{self, Read, Write};

/// The first bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"HCINDEX\0";

/// The format this build writes and reads; any other is refused (and the index
/// rebuilt from the facts by the caller).
pub const FORMAT_VERSION: u32 = 2;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// The first bytes are not the magic number `HCINDEX\0`.
    #[error("not a checkpoint (no magic number)")]
    NotACheckpoint,
    /// Written in another format.
    #[error("format version {found}, this build reads version {supported}")]
    Version {
        /// The format found.
        found: u32,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
    /// The input ends early (or a length runs past its end).
    #[error("truncated")]
    Truncated,
    /// The bytes are not those written.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The CRC-32 at the end of the input.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },
    /// The bytes decode to something no index holds.
    #[error("corrupt: {0}")]
    Corrupt(&'static str),
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// The workspace whose index it is.
    pub workspace: WorkspaceId,
    /// The fact-log position the index includes ([`Index::position`]).
    pub position: u64,
}

impl Index {
    /// Writes the index as a checkpoint of `workspace` to `out` (buffered inside;
    /// `out` is flushed, not synced) and returns `out`.
    ///
    /// # Errors
    /// Those of `out`.
    pub fn write_checkpoint<W: Write>(&self, workspace: WorkspaceId, out: W) -> io::Result<W> {
        let mut e = Encoder::new(out);
        e.bytes(MAGIC)?;
        e.item(FORMAT_VERSION)?;
        e.item(workspace.0)?;
        e.item(self.position)?;
        e.item(self.version)?;
        e.item(self.latest_fact)?;
        e.len(self.live_events)?;
        e.items(&self.datetimes.to_vec())?;
        self.users.encode(&mut e)?;
        e.len(self.events.items().len())?;
        for (name, column) in self.events.names().into_iter().zip(self.events.items()) {
            e.str(name)?;
            column.encode(&mut e)?;
        }
        let products = self.products.names();
        e.len(products.len())?;
        for name in products {
            e.str(name)?;
        }
        self.purchases.encode(&mut e)?;
        e.len(self.attributes.items().len())?;
        for (name, attribute) in self
            .attributes
            .names()
            .into_iter()
            .zip(self.attributes.items())
        {
            e.str(name)?;
            attribute.interner().encode(&mut e)?;
            attribute.column().encode(&mut e)?;
        }
        e.finish()
    }

    /// Reads a checkpoint from `input`, which holds `len` bytes (a file's length).
    ///
    /// # Errors
    /// A [`CheckpointError`] saying why the checkpoint cannot be used: nothing read
    /// from a damaged, truncated or other-version input is ever returned.
    pub fn read_checkpoint<R: Read>(
        input: R,
        len: u64,
    ) -> Result<(CheckpointHeader, Index), CheckpointError> {
        let mut d = Decoder::new(input, len);
        let header = read_header(&mut d)?;
        let index = read_index(&mut d, header.position)?;
        d.finish()?;
        Ok((header, index))
    }
}

fn read_header<R: Read>(d: &mut Decoder<R>) -> Result<CheckpointHeader, CheckpointError> {
    let mut magic = [0u8; 8];
    d.bytes(&mut magic).map_err(|e| match e {
        CheckpointError::Truncated => CheckpointError::NotACheckpoint,
        e => e,
    })?;
    if &magic != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    let found: u32 = d.item()?;
    if found != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(CheckpointHeader {
        workspace: WorkspaceId(d.item()?),
        position: d.item()?,
    })
}

fn read_index<R: Read>(d: &mut Decoder<R>, position: u64) -> Result<Index, CheckpointError> {
    let corrupt = CheckpointError::Corrupt;
    let version: u64 = d.item()?;
    let latest_fact: i64 = d.item()?;
    let live_events = usize::try_from(d.item::<u64>()?).map_err(|_| corrupt("event count"))?;
    let datetimes: Vec<i64> = d.items()?;
    if !datetimes.is_sorted_by(|a, b| a < b) {
        return Err(corrupt("datetimes out of order"));
    }
    let users = Users::decode(d)?;
    let n_users = users.indices();
    let n = d.count()?;
    let (mut names, mut columns) = (Vec::new(), Vec::new());
    for _ in 0..n {
        names.push(d.string()?);
        columns.push(Column::<()>::decode(d, n_users, &|()| true)?);
    }
    let events = Named::from_parts(names, columns).ok_or(corrupt("event names repeat"))?;
    let n = d.count()?;
    let products: Vec<String> = (0..n).map(|_| d.string()).collect::<Result<_, _>>()?;
    let products =
        Named::from_parts(products, vec![(); n]).ok_or(corrupt("product names repeat"))?;
    let purchases = Column::<u32>::decode(d, n_users, &|product| (product as usize) < n)?;
    let n = d.count()?;
    let (mut names, mut columns) = (Vec::new(), Vec::new());
    for _ in 0..n {
        names.push(d.string()?);
        let values = Interner::decode(d)?;
        let count = values.len();
        let valid = |id: u32| id == UNSET || (id as usize) < count;
        let column = Ids::decode(d, n_users, &valid)?;
        columns.push(AttrColumn::from_parts(column, values));
    }
    let attributes = Named::from_parts(names, columns).ok_or(corrupt("attribute names repeat"))?;
    Ok(Index {
        users,
        events,
        purchases,
        products,
        attributes,
        live_events,
        version,
        latest_fact,
        datetimes: {
            let mut set = Instants::from_sorted(datetimes);
            set.forget_up_to(latest_fact);
            set
        },
        position,
    })
}
