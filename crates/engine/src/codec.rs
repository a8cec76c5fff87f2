//! The byte level of checkpoints: little-endian numbers and whole vectors of them,
//! written and read in bulk through a 64 KiB buffer, with a CRC-32 of every byte.
//!
//! A vector is its length (`u64`) then its items. The reader knows how many bytes
//! its input holds, so a length that would run past the end is refused before any
//! allocation: a corrupt length can never make it reserve more than the file's size.

use crate::checkpoint::CheckpointError;
use std::io::{self, Read, Write};

/// Bytes converted at a time.
const BUFFER: usize = 64 * 1024;

/// A fixed-size item stored little-endian.
pub trait Le: Copy {
    /// Its size in bytes.
    const SIZE: usize;
    /// Writes it into `out` (exactly `SIZE` bytes).
    fn put(self, out: &mut [u8]);
    /// Reads it from `bytes` (exactly `SIZE` bytes).
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = size_of::<$t>();
            #[inline]
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn get(bytes: &[u8]) -> Self {
                let mut raw = [0u8; size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
        }
    )*};
}

le!(u8, u16, u32, u64, i64);

/// The payload of event columns: nothing, zero bytes.
impl Le for () {
    const SIZE: usize = 0;
    fn put(self, _: &mut [u8]) {}
    fn get(_: &[u8]) -> Self {}
}

/// Writes items, checksumming every byte.
pub struct Encoder<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    buffer: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `out`.
    pub fn new(out: W) -> Encoder<W> {
        Encoder {
            out,
            crc: crc32fast::Hasher::new(),
            buffer: Vec::with_capacity(BUFFER),
        }
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        self.crc.update(&self.buffer);
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buffer.len() + bytes.len() > BUFFER {
            self.flush_buffer()?;
        }
        if bytes.len() > BUFFER {
            self.crc.update(bytes);
            return self.out.write_all(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// One item.
    pub fn item<T: Le>(&mut self, item: T) -> io::Result<()> {
        let mut raw = [0u8; 16];
        let raw = &mut raw[..T::SIZE];
        item.put(raw);
        self.bytes(raw)
    }

    /// A length or count.
    pub fn len(&mut self, n: usize) -> io::Result<()> {
        self.item(n as u64)
    }

    /// A vector: its length, then its items.
    pub fn items<T: Le>(&mut self, items: &[T]) -> io::Result<()> {
        self.len(items.len())?;
        if T::SIZE == 0 {
            return Ok(());
        }
        for chunk in items.chunks(BUFFER / T::SIZE) {
            if self.buffer.len() + chunk.len() * T::SIZE > BUFFER {
                self.flush_buffer()?;
            }
            let start = self.buffer.len();
            self.buffer.resize(start + chunk.len() * T::SIZE, 0);
            for (item, out) in chunk
                .iter()
                .zip(self.buffer[start..].chunks_exact_mut(T::SIZE))
            {
                item.put(out);
            }
        }
        Ok(())
    }

    /// Text: its length in bytes, then its UTF-8.
    pub fn str(&mut self, text: &str) -> io::Result<()> {
        self.len(text.len())?;
        self.bytes(text.as_bytes())
    }

    /// Writes what is buffered and the CRC-32 of everything (not itself checksummed);
    /// returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_buffer()?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads items from an input of known length, checksumming every byte.
pub struct Decoder<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    /// Bytes of the input not read yet.
    remaining: u64,
    buffer: Vec<u8>,
}

impl<R: Read> Decoder<R> {
    /// A decoder of `input`, which holds `len` bytes.
    pub fn new(input: R, len: u64) -> Decoder<R> {
        Decoder {
            input,
            crc: crc32fast::Hasher::new(),
            remaining: len,
            buffer: vec![0; BUFFER],
        }
    }

    /// Fills `out`; the input ending first is [`CheckpointError::Truncated`].
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CheckpointError> {
        let n = out.len() as u64;
        if n > self.remaining {
            return Err(CheckpointError::Truncated);
        }
        self.input.read_exact(out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => CheckpointError::Truncated,
            _ => CheckpointError::Io(e),
        })?;
        self.remaining -= n;
        Ok(())
    }

    /// Raw bytes, checksummed.
    pub fn bytes(&mut self, out: &mut [u8]) -> Result<(), CheckpointError> {
        self.fill(out)?;
        self.crc.update(out);
        Ok(())
    }

    /// One item.
    pub fn item<T: Le>(&mut self) -> Result<T, CheckpointError> {
        let mut raw = [0u8; 16];
        let raw = &mut raw[..T::SIZE];
        self.bytes(raw)?;
        Ok(T::get(raw))
    }

    /// A length or count, refused when `size` bytes each would run past the end.
    pub fn len(&mut self, size: usize) -> Result<usize, CheckpointError> {
        let n: u64 = self.item()?;
        let bytes = n.checked_mul(size as u64);
        match (bytes, usize::try_from(n)) {
            (Some(bytes), Ok(n)) if bytes <= self.remaining => Ok(n),
            _ => Err(CheckpointError::Truncated),
        }
    }

    /// A count of things each taking at least one byte.
    pub fn count(&mut self) -> Result<usize, CheckpointError> {
        self.len(1)
    }

    /// A vector that must have `len` items, as the one it runs beside: any other
    /// count is refused before anything is built (zero-sized items, which take no
    /// bytes, could otherwise claim any count).
    pub fn items_beside<T: Le>(&mut self, len: usize) -> Result<Vec<T>, CheckpointError> {
        let n: u64 = self.item()?;
        if n != len as u64 {
            return Err(CheckpointError::Corrupt(
                "column vectors of different lengths",
            ));
        }
        match n.checked_mul(T::SIZE as u64) {
            Some(bytes) if bytes <= self.remaining => self.read_items(len),
            _ => Err(CheckpointError::Truncated),
        }
    }

    /// A vector, allocated once at its exact size.
    pub fn items<T: Le>(&mut self) -> Result<Vec<T>, CheckpointError> {
        let n = self.len(T::SIZE)?;
        self.read_items(n)
    }

    /// `n` items (their count read and checked against the bytes left).
    fn read_items<T: Le>(&mut self, n: usize) -> Result<Vec<T>, CheckpointError> {
        if T::SIZE == 0 {
            // Zero-sized items allocate nothing; their count is checked by the caller
            // against the vectors they run beside.
            return Ok((0..n).map(|_| T::get(&[])).collect());
        }
        let mut items = Vec::with_capacity(n);
        let per_chunk = BUFFER / T::SIZE;
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut left = n;
        while left > 0 {
            let take = left.min(per_chunk);
            let raw = &mut buffer[..take * T::SIZE];
            let read = self.bytes(raw);
            if let Err(e) = read {
                self.buffer = buffer;
                return Err(e);
            }
            items.extend(raw.chunks_exact(T::SIZE).map(T::get));
            left -= take;
        }
        self.buffer = buffer;
        Ok(items)
    }

    /// Text written by [`Encoder::str`].
    pub fn string(&mut self) -> Result<String, CheckpointError> {
        let n = self.len(1)?;
        let mut raw = vec![0; n];
        self.bytes(&mut raw)?;
        String::from_utf8(raw).map_err(|_| CheckpointError::Corrupt("text that is not UTF-8"))
    }

    /// Text written by [`Encoder::str`], read into `scratch` (reused from call to call,
    /// so that no string is allocated per value).
    pub fn str_into<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s str, CheckpointError> {
        let n = self.len(1)?;
        scratch.clear();
        scratch.resize(n, 0);
        self.bytes(scratch)?;
        std::str::from_utf8(scratch).map_err(|_| CheckpointError::Corrupt("text that is not UTF-8"))
    }

    /// Reads the CRC-32 that ends the input and compares it with that of everything
    /// read; anything after it is corruption.
    pub fn finish(mut self) -> Result<(), CheckpointError> {
        let computed = self.crc.clone().finalize();
        let mut raw = [0u8; 4];
        self.fill(&mut raw)?;
        let stored = u32::from_le_bytes(raw);
        if stored != computed {
            return Err(CheckpointError::Checksum { stored, computed });
        }
        if self.remaining != 0 {
            return Err(CheckpointError::Corrupt("bytes after the checksum"));
        }
        Ok(())
    }
}
