//! The memtable: rows applied from the WAL but not yet flushed.
//!
//! Rows arrive in increasing id order and are kept in fixed-size chunks
//! behind `Arc`s, so a snapshot for a reader is a copy of a few pointers and
//! a later insert copies at most the last chunk (copy-on-write).

use std::sync::Arc;

use crate::storage::types::{MetaRecord, Position};

const CHUNK: usize = 1024;

/// A row as the memtable holds it: already quantized and interned, exactly
/// what a segment will store.
#[derive(Clone, Debug)]
pub(crate) struct MemRow {
    pub id: u64,
    pub key: Vec<f32>,
    pub norm: f32,
    pub code: Vec<i8>,
    pub scale: f32,
    pub position: Position,
    pub meta: MetaRecord,
    /// Encoded value (see `types::encode_value`).
    pub value: Vec<u8>,
    pub text: String,
    pub edges: Vec<u64>,
}

impl MemRow {
    fn heap_bytes(&self) -> usize {
        self.key.len() * 5 + self.value.len() + self.text.len() + self.edges.len() * 8 + std::mem::size_of::<Self>()
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Memtable {
    chunks: Vec<Arc<Vec<MemRow>>>,
    len: usize,
    bytes: usize,
}

impl Memtable {
    pub fn push(&mut self, row: MemRow) {
        debug_assert!(self.last_id().is_none_or(|l| row.id > l));
        self.bytes += row.heap_bytes();
        self.len += 1;
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(row),
            _ => {
                let mut v = Vec::with_capacity(CHUNK);
                v.push(row);
                self.chunks.push(Arc::new(v));
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<&MemRow> {
        let c = match self.chunks.binary_search_by_key(&id, |c| c[0].id) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let chunk = &self.chunks[c];
        chunk.binary_search_by_key(&id, |r| r.id).ok().map(|i| &chunk[i])
    }

    pub fn last_id(&self) -> Option<u64> {
        self.chunks.last().and_then(|c| c.last()).map(|r| r.id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &MemRow> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The `i`-th row in id order.
    pub fn at(&self, i: usize) -> Option<&MemRow> {
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64) -> MemRow {
        MemRow {
            id,
            key: vec![id as f32],
            norm: 0.0,
            code: vec![0],
            scale: 0.0,
            position: Position::default(),
            meta: MetaRecord::default(),
            value: vec![0],
            text: String::new(),
            edges: vec![],
        }
    }

    #[test]
    fn finds_rows_across_chunks_and_snapshots_are_isolated() {
        let mut m = Memtable::default();
        for id in (0..5000).map(|i| i * 3) {
            m.push(row(id));
        }
        let snap = m.clone();
        m.push(row(20_000));
        assert_eq!(m.get(2997).unwrap().id, 2997);
        assert!(m.get(2998).is_none());
        assert!(snap.get(20_000).is_none());
        assert_eq!(m.get(20_000).unwrap().id, 20_000);
        assert_eq!(m.at(1024).unwrap().id, 3072);
        assert_eq!(m.iter().count(), 5001);
        assert_eq!(snap.len(), 5000);
    }
}
