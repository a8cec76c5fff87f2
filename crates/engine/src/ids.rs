//! The writes of one attribute, `(time, user, value id)`, with value ids one byte wide
//! while the attribute has few distinct values.
//!
//! Most attributes hold a handful of values (a country, a plan, a flag): their ids are
//! stored as `u8` (byte 255 stands for [`UNSET`]), 9 bytes a write instead of 12. The
//! first id that does not fit (the 256th distinct value) rewrites the column with
//! `u32` ids once; a column never narrows again. Readers see `u32` ids either way.

use crate::attributes::UNSET;
use crate::checkpoint::CheckpointError;
use crate::codec::{Decoder, Encoder};
use crate::column::{Column, SliceCursor};
use std::io::{self, Read, Write};

/// The narrow id standing for [`UNSET`].
const NARROW_UNSET: u8 = u8::MAX;

/// The checkpoint's width byte of a narrow column.
const NARROW: u8 = 1;
/// The checkpoint's width byte of a wide column.
const WIDE: u8 = 4;

/// An attribute's writes, their value ids narrow or wide.
#[derive(Debug, Clone)]
pub enum Ids {
    /// Every id below 255 (or unset): one byte each.
    Narrow(Column<u8>),
    /// Four bytes each.
    Wide(Column<u32>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Narrow(Column::default())
    }
}

fn widen(id: u8) -> u32 {
    if id == NARROW_UNSET {
        UNSET
    } else {
        u32::from(id)
    }
}

/// `id` as a narrow id, if it has one.
fn narrow(id: u32) -> Option<u8> {
    match id {
        UNSET => Some(NARROW_UNSET),
        id => u8::try_from(id).ok().filter(|&id| id != NARROW_UNSET),
    }
}

impl Ids {
    /// Records a write; times may arrive in any order.
    pub fn push(&mut self, time: i64, user: u32, id: u32) {
        match self {
            Ids::Narrow(column) => match narrow(id) {
                Some(small) => column.push(time, user, small),
                None => {
                    let mut wide = std::mem::take(column).map(widen);
                    wide.push(time, user, id);
                    *self = Ids::Wide(wide);
                }
            },
            Ids::Wide(column) => column.push(time, user, id),
        }
    }

    /// The number of writes.
    pub fn len(&self) -> usize {
        match self {
            Ids::Narrow(column) => column.len(),
            Ids::Wide(column) => column.len(),
        }
    }

    /// The bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Ids::Narrow(column) => column.heap_bytes(),
            Ids::Wide(column) => column.heap_bytes(),
        }
    }

    /// [`Column::for_each_latest_before`], ids widened.
    pub fn for_each_latest_before(
        &self,
        hi: i64,
        users: usize,
        latest: &mut Vec<i64>,
        mut f: impl FnMut(u32, u32),
    ) {
        match self {
            Ids::Narrow(column) => {
                column.for_each_latest_before(hi, users, latest, |user, id| f(user, widen(id)))
            }
            Ids::Wide(column) => column.for_each_latest_before(hi, users, latest, f),
        }
    }

    /// [`Column::slice_cursor`].
    pub fn slice_cursor(&self, position: usize) -> IdCursor<'_> {
        match self {
            Ids::Narrow(column) => IdCursor::Narrow(column.slice_cursor(position)),
            Ids::Wide(column) => IdCursor::Wide(column.slice_cursor(position)),
        }
    }

    /// [`Column::compact`].
    pub fn compact(&mut self, keep: &dyn Fn(u32) -> bool) {
        match self {
            Ids::Narrow(column) => column.compact(keep),
            Ids::Wide(column) => column.compact(keep),
        }
    }

    /// Writes the width (a byte: 1 or 4), then the column.
    pub fn encode<W: Write>(&self, out: &mut Encoder<W>) -> io::Result<()> {
        match self {
            Ids::Narrow(column) => {
                out.item(NARROW)?;
                column.encode(out)
            }
            Ids::Wide(column) => {
                out.item(WIDE)?;
                column.encode(out)
            }
        }
    }

    /// Reads what [`Ids::encode`] wrote; `valid` must accept every id (widened).
    pub fn decode<R: Read>(
        input: &mut Decoder<R>,
        users: usize,
        valid: &dyn Fn(u32) -> bool,
    ) -> Result<Ids, CheckpointError> {
        match input.item::<u8>()? {
            NARROW => Ok(Ids::Narrow(Column::decode(input, users, &|id| {
                valid(widen(id))
            })?)),
            WIDE => Ok(Ids::Wide(Column::decode(input, users, valid)?)),
            _ => Err(CheckpointError::Corrupt("an unknown id width")),
        }
    }
}

/// One slice of an [`Ids`] column, read in windows of increasing time.
pub enum IdCursor<'a> {
    /// Of a narrow column.
    Narrow(SliceCursor<'a, u8>),
    /// Of a wide column.
    Wide(SliceCursor<'a, u32>),
}

impl IdCursor<'_> {
    /// [`SliceCursor::needs_latest`].
    pub fn needs_latest(&self) -> bool {
        match self {
            IdCursor::Narrow(cursor) => cursor.needs_latest(),
            IdCursor::Wide(cursor) => cursor.needs_latest(),
        }
    }

    /// [`SliceCursor::for_each_latest_in`], ids widened.
    pub fn for_each_latest_in(
        &self,
        lo: i64,
        hi: i64,
        latest: &mut [i64],
        mut f: impl FnMut(u32, u32),
    ) {
        match self {
            IdCursor::Narrow(cursor) => {
                cursor.for_each_latest_in(lo, hi, latest, |user, id| f(user, widen(id)))
            }
            IdCursor::Wide(cursor) => cursor.for_each_latest_in(lo, hi, latest, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_256th_value_widens_the_column_and_every_id_reads_back() {
        let mut ids = Ids::default();
        let mut want = Vec::new();
        for k in 0..600u32 {
            // Unsets among the writes, before and after widening.
            let id = if k % 7 == 0 { UNSET } else { k / 2 };
            ids.push(i64::from(k), k, id);
            want.push(id);
            assert_eq!(matches!(ids, Ids::Narrow(_)), k < 2 * 255, "write {k}");
        }
        let mut got = vec![0; 600];
        let mut latest = Vec::new();
        ids.for_each_latest_before(i64::MAX, 600, &mut latest, |user, id| {
            got[user as usize] = id
        });
        assert_eq!(got, want);
        assert_eq!(ids.len(), 600);
    }

    #[test]
    fn narrow_ids_keep_unset_apart_from_value_254() {
        let mut ids = Ids::default();
        ids.push(1, 0, 254);
        ids.push(1, 1, UNSET);
        let mut got = Vec::new();
        ids.for_each_latest_before(2, 2, &mut Vec::new(), |user, id| got.push((user, id)));
        got.sort();
        assert_eq!(got, vec![(0, 254), (1, UNSET)]);
        assert!(matches!(ids, Ids::Narrow(_)));
    }
}
