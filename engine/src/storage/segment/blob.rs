//! Variable-length column: rows' bytes concatenated into one stream, cut into
//! blocks of [`BLOCK_SIZE`] bytes, each block lz4-compressed.
//!
//! `offsets[i]..offsets[i+1]` is row i's range in the uncompressed stream;
//! `blocks[b]..blocks[b+1]` is block b's range in the compressed data. Block b
//! holds stream bytes `b*BLOCK_SIZE..` so a row is found without an index.

use super::BLOCK_SIZE;

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
pub(crate) fn read_row(offsets: &[u64], blocks: &[u64], data: &[u8], i: usize) -> Result<Vec<u8>, BlobError> {
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
    let mut out = Vec::with_capacity((end - start) as usize);
    if start == end {
        return Ok(out);
    }
    let bs = BLOCK_SIZE as u64;
    for b in (start / bs)..=((end - 1) / bs) {
        let b = b as usize;
        let (&cs, &ce) = match (blocks.get(b), blocks.get(b + 1)) {
            (Some(s), Some(e)) if s <= e && (*e as usize) <= data.len() => (s, e),
            _ => return Err(err(format!("block {b} has bad bounds"))),
        };
        let block_start = b as u64 * bs;
        let block_len = (total - block_start).min(bs) as usize;
        let plain = lz4_flex::block::decompress(&data[cs as usize..ce as usize], block_len)
            .map_err(|e| err(format!("block {b}: {e}")))?;
        if plain.len() != block_len {
            return Err(err(format!(
                "block {b} decompressed to {} bytes, expected {block_len}",
                plain.len()
            )));
        }
        let lo = start.max(block_start) - block_start;
        let hi = end.min(block_start + bs) - block_start;
        out.extend_from_slice(&plain[lo as usize..hi as usize]);
    }
    Ok(out)
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
            assert_eq!(&read_row(&w.offsets, &w.blocks, &w.data, i).unwrap(), r);
        }
        assert!(read_row(&w.offsets, &w.blocks, &w.data, rows.len()).is_err());
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
        assert!(read_row(&offs, &w.blocks, &w.data, 9).is_err());
        // A huge last offset must not turn into a huge allocation.
        let mut offs = w.offsets.clone();
        *offs.last_mut().unwrap() = u64::MAX / 2;
        let n = offs.len();
        offs[n - 2] = 0;
        assert!(read_row(&offs, &w.blocks, &w.data, n - 2).is_err());
        let mut data = w.data.clone();
        for b in data.iter_mut() {
            *b ^= 0x5a;
        }
        for i in 0..50 {
            let _ = read_row(&w.offsets, &w.blocks, &data, i);
        }
        let mut blocks = w.blocks.clone();
        blocks[1] = u64::MAX;
        assert!(read_row(&w.offsets, &blocks, &w.data, 0).is_err());
    }
}
