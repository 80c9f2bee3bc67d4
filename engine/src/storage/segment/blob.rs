//! Variable-length column: rows' bytes concatenated into one stream, cut into
//! blocks of [`BLOCK_SIZE`] bytes, each block lz4-compressed.
//!
//! `offsets[i]..offsets[i+1]` is row i's range in the uncompressed stream;
//! `blocks[b]..blocks[b+1]` is block b's range in the compressed data. Block b
//! holds stream bytes `b*BLOCK_SIZE..` so a row is found without an index.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::BLOCK_SIZE;

/// Bytes of decompressed blocks all segments of this process may keep
/// ([`set_block_cache_bytes`]).
static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(256 << 20);
/// Bytes they keep now.
static CACHE_USED: AtomicUsize = AtomicUsize::new(0);

/// Set how many bytes of decompressed lz4 blocks the segments of this
/// process may keep in memory, so that reading a row's text again costs no
/// decompression (default 256 MiB; 0 turns the cache off). Blocks are
/// kept from their first read until their segment is dropped (a merge
/// replaces it, or the store is closed); past the limit, reads decompress
/// as if there were no cache.
///
/// ```
/// engram::storage::set_block_cache_bytes(64 << 20);
/// assert_eq!(engram::storage::block_cache_bytes(), (64 << 20, engram::storage::block_cache_bytes().1));
/// ```
pub fn set_block_cache_bytes(limit: usize) {
    CACHE_LIMIT.store(limit, Ordering::Relaxed);
}

/// The cache's limit and the bytes it holds now (see [`set_block_cache_bytes`]).
pub fn block_cache_bytes() -> (usize, usize) {
    (CACHE_LIMIT.load(Ordering::Relaxed), CACHE_USED.load(Ordering::Relaxed))
}

/// The decompressed blocks of one lz4 blob column of a segment, each filled
/// at its first read if the process-wide budget allows.
pub(crate) struct BlockCache {
    slots: Box<[OnceLock<Box<[u8]>>]>,
    held: AtomicUsize,
}

impl BlockCache {
    pub fn new(blocks: usize) -> BlockCache {
        BlockCache {
            slots: (0..blocks).map(|_| OnceLock::new()).collect(),
            held: AtomicUsize::new(0),
        }
    }

    /// Keep `plain` as block `b` if the budget allows; the kept copy.
    fn keep(&self, b: usize, plain: Vec<u8>) -> Result<&[u8], Vec<u8>> {
        let Some(slot) = self.slots.get(b) else {
            return Err(plain);
        };
        let n = plain.len();
        let used = CACHE_USED.fetch_add(n, Ordering::Relaxed);
        if used + n > CACHE_LIMIT.load(Ordering::Relaxed) {
            CACHE_USED.fetch_sub(n, Ordering::Relaxed);
            return Err(plain);
        }
        match slot.set(plain.into_boxed_slice()) {
            Ok(()) => {
                self.held.fetch_add(n, Ordering::Relaxed);
            }
            // Another reader kept it first.
            Err(_) => {
                CACHE_USED.fetch_sub(n, Ordering::Relaxed);
            }
        }
        Ok(slot.get().map(|b| &b[..]).unwrap_or(&[]))
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        CACHE_USED.fetch_sub(*self.held.get_mut(), Ordering::Relaxed);
    }
}

/// Accumulates a blob column while a segment is written.
#[derive(Default)]
pub(crate) struct BlobWriter {
    pub offsets: Vec<u64>,
    pub blocks: Vec<u64>,
    pub data: Vec<u8>,
    pending: Vec<u8>,
    total: u64,
}

impl BlobWriter {
    pub fn new() -> BlobWriter {
        BlobWriter {
            offsets: vec![0],
            blocks: vec![0],
            ..Default::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.total += bytes.len() as u64;
        self.offsets.push(self.total);
        while self.pending.len() >= BLOCK_SIZE {
            self.seal(BLOCK_SIZE);
        }
    }

    fn seal(&mut self, n: usize) {
        let c = lz4_flex::block::compress(&self.pending[..n]);
        self.data.extend_from_slice(&c);
        self.blocks.push(self.data.len() as u64);
        self.pending.drain(..n);
    }

    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            self.seal(self.pending.len());
        }
    }
}

/// Why a blob read failed.
#[derive(Debug)]
pub(crate) struct BlobError {
    pub reason: String,
}

/// Read row `i` from a blob column. Every offset is checked against its
/// neighbours and the data length before it is used: a corrupt column yields
/// an error, never a panic or an oversized allocation.
pub(crate) fn read_row<'a>(
    offsets: &[u64],
    blocks: &[u64],
    data: &[u8],
    i: usize,
    cache: Option<&'a BlockCache>,
) -> Result<Cow<'a, [u8]>, BlobError> {
    let err = |reason: String| BlobError { reason };
    let (&start, &end) = match (offsets.get(i), offsets.get(i + 1)) {
        (Some(s), Some(e)) => (s, e),
        _ => return Err(err(format!("row {i} past the offsets column"))),
    };
    let total = *offsets.last().unwrap_or(&0);
    // The stream cannot be longer than its blocks hold: this bounds every
    // allocation below by the column's real size.
    let capacity = (blocks.len().saturating_sub(1) as u64).saturating_mul(BLOCK_SIZE as u64);
    if start > end || end > total || total > capacity {
        return Err(err(format!(
            "row {i} has offsets {start}..{end} outside 0..{total} (capacity {capacity})"
        )));
    }
    if start == end {
        return Ok(Cow::Borrowed(&[]));
    }
    let bs = BLOCK_SIZE as u64;
    let (first, last) = ((start / bs) as usize, ((end - 1) / bs) as usize);
    let block = |b: usize| -> Result<Cow<'a, [u8]>, BlobError> {
        if let Some(kept) = cache.and_then(|c| c.slots.get(b)).and_then(|s| s.get()) {
            return Ok(Cow::Borrowed(&kept[..]));
        }
        let (&cs, &ce) = match (blocks.get(b), blocks.get(b + 1)) {
            (Some(s), Some(e)) if s <= e && (*e as usize) <= data.len() => (s, e),
            _ => return Err(err(format!("block {b} has bad bounds"))),
        };
        let block_len = (total - b as u64 * bs).min(bs) as usize;
        let plain = lz4_flex::block::decompress(&data[cs as usize..ce as usize], block_len)
            .map_err(|e| err(format!("block {b}: {e}")))?;
        if plain.len() != block_len {
            return Err(err(format!(
                "block {b} decompressed to {} bytes, expected {block_len}",
                plain.len()
            )));
        }
        Ok(match cache {
            Some(c) => match c.keep(b, plain) {
                Ok(kept) => Cow::Borrowed(kept),
                Err(plain) => Cow::Owned(plain),
            },
            None => Cow::Owned(plain),
        })
    };
    let slice = |b: usize, plain: &[u8]| {
        let block_start = b as u64 * bs;
        let lo = start.max(block_start) - block_start;
        let hi = end.min(block_start + bs) - block_start;
        plain[lo as usize..hi as usize].to_vec()
    };
    if first == last {
        let plain = block(first)?;
        let block_start = first as u64 * bs;
        let (lo, hi) = ((start - block_start) as usize, (end - block_start) as usize);
        return Ok(match plain {
            Cow::Borrowed(p) => Cow::Borrowed(&p[lo..hi]),
            Cow::Owned(p) => Cow::Owned(p[lo..hi].to_vec()),
        });
    }
    let mut out = Vec::with_capacity((end - start) as usize);
    for b in first..=last {
        out.extend_from_slice(&slice(b, &block(b)?));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_spanning_blocks_round_trip() {
        let rows: Vec<Vec<u8>> = (0..500)
            .map(|i| (0..(i * 97 % 3000)).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let mut w = BlobWriter::new();
        for r in &rows {
            w.push(r);
        }
        w.finish();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&*read_row(&w.offsets, &w.blocks, &w.data, i, None).unwrap(), &r[..]);
        }
        assert!(read_row(&w.offsets, &w.blocks, &w.data, rows.len(), None).is_err());
        // Through a cache: the same bytes on the first read and on the next
        // ones (then borrowed from the kept blocks).
        let cache = BlockCache::new(w.blocks.len() - 1);
        for _ in 0..2 {
            for (i, r) in rows.iter().enumerate() {
                assert_eq!(
                    &*read_row(&w.offsets, &w.blocks, &w.data, i, Some(&cache)).unwrap(),
                    &r[..]
                );
            }
        }
        assert!(cache.held.load(Ordering::Relaxed) > 0);
        let bs = BLOCK_SIZE as u64;
        let within = (0..rows.len())
            .find(|&i| w.offsets[i] < w.offsets[i + 1] && w.offsets[i] / bs == (w.offsets[i + 1] - 1) / bs)
            .unwrap();
        let again = read_row(&w.offsets, &w.blocks, &w.data, within, Some(&cache)).unwrap();
        assert!(
            matches!(again, Cow::Borrowed(_)),
            "a row inside a kept block is read in place"
        );
    }

    #[test]
    fn corrupt_offsets_and_data_are_errors_not_panics() {
        let mut w = BlobWriter::new();
        for i in 0..50u8 {
            w.push(&[i; 1000]);
        }
        w.finish();
        let mut offs = w.offsets.clone();
        offs[10] = u64::MAX;
        assert!(read_row(&offs, &w.blocks, &w.data, 9, None).is_err());
        // A huge last offset must not turn into a huge allocation.
        let mut offs = w.offsets.clone();
        *offs.last_mut().unwrap() = u64::MAX / 2;
        let n = offs.len();
        offs[n - 2] = 0;
        assert!(read_row(&offs, &w.blocks, &w.data, n - 2, None).is_err());
        let mut data = w.data.clone();
        for b in data.iter_mut() {
            *b ^= 0x5a;
        }
        for i in 0..50 {
            let _ = read_row(&w.offsets, &w.blocks, &data, i, None);
        }
        let mut blocks = w.blocks.clone();
        blocks[1] = u64::MAX;
        assert!(read_row(&w.offsets, &blocks, &w.data, 0, None).is_err());
    }
}
