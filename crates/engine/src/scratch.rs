//! Per-user working arrays kept from one history pass to the next.
//!
//! A pass holds, per slice of users, a few arrays of one element per user (an
//! attribute's latest value, a window's count). Allocated afresh each time, a server
//! that recomputes segments all day maps and unmaps megabytes per request, and its
//! resident memory swings with every `malloc_trim`. Taken from here, the arrays of the
//! last passes are used again: memory stays level, and no page is faulted in twice.
//! At most [`KEPT_BYTES`] of arrays wait here between passes; the rest is freed.

use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

/// The most bytes of arrays kept between passes, over all element types: about one
/// pass of a few leaves over one slice (1 MiB per `u32` array of 2^18 users), so that
/// the pool is full after the first recomputations and then stays the same size,
/// rather than growing to whatever the busiest moment held at once.
pub const KEPT_BYTES: usize = 8 << 20;

/// Arrays waiting to be used again.
pub struct Pool {
    kept: Mutex<Kept>,
}

/// The arrays of a pool, and their bytes over all types.
pub struct Kept {
    u32s: Vec<Vec<u32>>,
    i64s: Vec<Vec<i64>>,
    bytes: usize,
}

/// The pool of the history passes.
pub static POOL: Pool = Pool::new();

impl Pool {
    /// A pool with no array yet.
    pub const fn new() -> Self {
        Pool {
            kept: Mutex::new(Kept {
                u32s: Vec::new(),
                i64s: Vec::new(),
                bytes: 0,
            }),
        }
    }

    /// `len` copies of `value`, in a kept array if there is one.
    pub fn filled<T: Element>(&'static self, len: usize, value: T) -> Scratch<T> {
        let mut scratch = self.empty();
        scratch.vec.resize(len, value);
        scratch
    }

    /// An empty vector, with the capacity of a kept array if there is one.
    pub fn empty<T: Element>(&'static self) -> Scratch<T> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let vec = match T::list(&mut kept).pop() {
            Some(vec) => {
                kept.bytes -= vec.capacity() * size_of::<T>();
                vec
            }
            None => Vec::new(),
        };
        Scratch { vec, pool: self }
    }

    /// Keeps `vec` unless the pool would then hold more than [`KEPT_BYTES`].
    fn give<T: Element>(&self, mut vec: Vec<T>) {
        let bytes = vec.capacity() * size_of::<T>();
        if bytes == 0 {
            return;
        }
        vec.clear();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.bytes + bytes <= KEPT_BYTES {
            kept.bytes += bytes;
            T::list(&mut kept).push(vec);
        }
    }
}

/// An element type whose arrays a pool keeps.
pub trait Element: Copy + Sized + 'static {
    /// The arrays of this type among `kept`.
    fn list(kept: &mut Kept) -> &mut Vec<Vec<Self>>;
}

impl Element for u32 {
    fn list(kept: &mut Kept) -> &mut Vec<Vec<u32>> {
        &mut kept.u32s
    }
}

impl Element for i64 {
    fn list(kept: &mut Kept) -> &mut Vec<Vec<i64>> {
        &mut kept.i64s
    }
}

/// A `Vec` taken from a pool, given back when dropped.
pub struct Scratch<T: Element> {
    vec: Vec<T>,
    pool: &'static Pool,
}

impl<T: Element> Drop for Scratch<T> {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.vec));
    }
}

impl<T: Element> Deref for Scratch<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.vec
    }
}

impl<T: Element> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.vec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool::new()))
    }

    fn kept_bytes(pool: &Pool) -> usize {
        pool.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    #[test]
    fn a_dropped_array_is_used_again_and_starts_filled() {
        let pool = pool();
        let mut first = pool.filled(1000, 7i64);
        first[3] = 42;
        let pointer = first.as_ptr();
        drop(first);
        assert_eq!(kept_bytes(pool), 1000 * 8);
        let again = pool.filled(500, -1i64);
        assert_eq!(again.as_ptr(), pointer);
        assert_eq!(*again, vec![-1; 500]);
        assert_eq!(kept_bytes(pool), 0);
        // Another type does not take it.
        drop(again);
        assert_eq!(pool.empty::<u32>().capacity(), 0);
    }

    #[test]
    fn no_more_than_the_bound_is_kept() {
        let pool = pool();
        let per = KEPT_BYTES / size_of::<u32>() / 4;
        let arrays: Vec<Scratch<u32>> = (0..8).map(|_| pool.filled(per, 1)).collect();
        drop(arrays);
        assert_eq!(kept_bytes(pool), KEPT_BYTES);
        let big = pool.filled(per * 2, 0u32);
        drop(big);
        assert_eq!(kept_bytes(pool), KEPT_BYTES - per * 4);
    }
}
