//! The memtable: rows applied from the WAL but not yet flushed.
//!
//! Rows arrive in increasing id order and are kept, each behind an `Arc`,
//! in fixed-size chunks behind `Arc`s: a snapshot for a reader copies a few
//! pointers, and an insert while a snapshot is held copies at most one
//! chunk of pointers, never a row.

use std::collections::HashMap;
use std::sync::Arc;

use super::deletes::Deletes;
use super::row::{Row, Sparse, Value};
use super::schema::{ColumnId, ColumnKind, FixedType, Scalar, Schema};
use crate::kernels::{quant, scalar};

const CHUNK: usize = 1024;

/// Where a column's value sits in a [`MemRow`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Key(u16),
    Fixed(u16),
    Symbol(u16),
    Blob(u16),
    Sparse(u16),
    Edges(u16),
}

/// Each column's slot, for one schema.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub slots: Vec<Slot>,
}

impl Layout {
    pub fn new(schema: &Schema) -> Layout {
        let mut n = [0u16; 6];
        let mut next = |k: usize| {
            n[k] += 1;
            n[k] - 1
        };
        let slots = schema
            .columns()
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Key(_) => Slot::Key(next(0)),
                ColumnKind::Fixed(FixedType::Symbol) => Slot::Symbol(next(2)),
                ColumnKind::Fixed(_) => Slot::Fixed(next(1)),
                ColumnKind::Blob(_) => Slot::Blob(next(3)),
                ColumnKind::Sparse(_) => Slot::Sparse(next(4)),
                ColumnKind::Edges(_) => Slot::Edges(next(5)),
            })
            .collect();
        Layout { slots }
    }
}

/// A key as the memtable holds it: already normed and quantized.
#[derive(Clone, Debug)]
pub(crate) struct MemKey {
    pub f32: Box<[f32]>,
    pub norm: f32,
    /// Empty for a key without codes.
    pub code: Box<[i8]>,
    pub scale: f32,
    pub prefix_norms: Box<[f32]>,
}

/// A row as the memtable holds it: exactly what a segment will store.
#[derive(Clone, Debug)]
pub(crate) struct MemRow {
    pub id: u64,
    pub keys: Box<[MemKey]>,
    /// Carried bits of each fixed column (see `schema::Scalar`).
    pub fixed: Box<[u64]>,
    pub symbols: Box<[Arc<str>]>,
    pub blobs: Box<[Box<[u8]>]>,
    pub sparse: Box<[Sparse]>,
    pub edges: Box<[Box<[u64]>]>,
}

/// Shares the strings of symbol columns between memtable rows.
#[derive(Default)]
pub(crate) struct Interner(HashMap<Arc<str>, ()>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some((k, _)) = self.0.get_key_value(s) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(s);
        self.0.insert(k.clone(), ());
        k
    }
}

/// Carried bits of a canonical fixed value.
pub(crate) fn fixed_bits(t: &FixedType, v: &Value) -> u64 {
    match (t, v) {
        (FixedType::F32, Value::Float(x)) => Scalar::to_bits(*x as f32),
        (FixedType::F64, Value::Float(x)) => x.to_bits(),
        (_, Value::UInt(x)) => *x,
        (_, Value::Int(x)) => *x as u64,
        _ => 0,
    }
}

impl MemRow {
    /// Encode a canonical row (`Row::normalize`) of `schema`.
    pub fn new(id: u64, row: &Row, schema: &Schema, interner: &mut Interner) -> MemRow {
        let mut keys = Vec::new();
        let mut fixed = Vec::new();
        let mut symbols = Vec::new();
        let mut blobs = Vec::new();
        let mut sparse = Vec::new();
        let mut edges = Vec::new();
        for (c, v) in schema.columns().iter().zip(row.values()) {
            match (&c.kind, v) {
                (ColumnKind::Key(k), Value::Vector(x)) => {
                    let (code, scale) = if k.codes {
                        let mut code = vec![0i8; x.len()];
                        let scale = quant::quantize(x, &mut code);
                        (code.into_boxed_slice(), scale)
                    } else {
                        (Box::default(), 0.0)
                    };
                    keys.push(MemKey {
                        f32: x.clone().into_boxed_slice(),
                        norm: scalar::norm(x),
                        code,
                        scale,
                        prefix_norms: k.prefixes.iter().map(|&p| scalar::norm(&x[..p as usize])).collect(),
                    });
                }
                (ColumnKind::Fixed(FixedType::Symbol), Value::Str(s)) => symbols.push(interner.get(s)),
                (ColumnKind::Fixed(t), v) => fixed.push(fixed_bits(t, v)),
                (ColumnKind::Blob(_), Value::Str(s)) => blobs.push(s.as_bytes().into()),
                (ColumnKind::Blob(_), Value::Bytes(b)) => blobs.push(b.clone().into_boxed_slice()),
                (ColumnKind::Sparse(_), Value::Sparse(s)) => sparse.push(s.clone()),
                (ColumnKind::Edges(_), Value::Edges(e)) => edges.push(e.clone().into_boxed_slice()),
                // Rows are normalized before they are logged: not reached.
                (ColumnKind::Key(k), _) => keys.push(MemKey {
                    f32: vec![0.0; k.dim as usize].into(),
                    norm: 0.0,
                    code: if k.codes {
                        vec![0; k.dim as usize].into()
                    } else {
                        Box::default()
                    },
                    scale: 0.0,
                    prefix_norms: vec![0.0; k.prefixes.len()].into(),
                }),
                (ColumnKind::Blob(_), _) => blobs.push(Box::default()),
                (ColumnKind::Sparse(k), _) => sparse.push(Sparse::empty(*k)),
                (ColumnKind::Edges(_), _) => edges.push(Box::default()),
            }
        }
        MemRow {
            id,
            keys: keys.into(),
            fixed: fixed.into(),
            symbols: symbols.into(),
            blobs: blobs.into(),
            sparse: sparse.into(),
            edges: edges.into(),
        }
    }

    fn heap_bytes(&self) -> usize {
        let keys: usize = self
            .keys
            .iter()
            .map(|k| k.f32.len() * 4 + k.code.len() + k.prefix_norms.len() * 4 + 48)
            .sum();
        keys + self.fixed.len() * 8
            + self.symbols.len() * 16
            + self.blobs.iter().map(|b| b.len() + 16).sum::<usize>()
            + self.sparse.iter().map(|s| s.len() * 8 + 48).sum::<usize>()
            + self.edges.iter().map(|e| e.len() * 8 + 16).sum::<usize>()
            + std::mem::size_of::<Self>()
    }
}

/// Rows not yet in a segment, and which of them are deleted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memtable {
    chunks: Vec<Arc<Vec<Arc<MemRow>>>>,
    len: usize,
    bytes: usize,
    pub deletes: Deletes,
}

impl Memtable {
    pub fn push(&mut self, row: MemRow) {
        debug_assert!(self.last_id().is_none_or(|l| row.id > l));
        self.bytes += row.heap_bytes();
        self.len += 1;
        let row = Arc::new(row);
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(row),
            _ => {
                let mut v = Vec::with_capacity(CHUNK);
                v.push(row);
                self.chunks.push(Arc::new(v));
            }
        }
    }

    /// Position of row `id`.
    pub fn position(&self, id: u64) -> Option<usize> {
        let c = match self.chunks.binary_search_by_key(&id, |c| c[0].id) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        self.chunks[c]
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .map(|i| c * CHUNK + i)
    }

    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&MemRow> {
        self.position(id).and_then(|p| self.at(p))
    }

    pub fn first_id(&self) -> Option<u64> {
        self.chunks.first().and_then(|c| c.first()).map(|r| r.id)
    }

    pub fn last_id(&self) -> Option<u64> {
        self.chunks.last().and_then(|c| c.last()).map(|r| r.id)
    }

    /// Rows in id order, deleted ones included, with their positions.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &MemRow)> {
        self.chunks.iter().flat_map(|c| c.iter()).map(|r| &**r).enumerate()
    }

    /// The row at position `i`.
    pub fn at(&self, i: usize) -> Option<&MemRow> {
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK)).map(|r| &**r)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The bytes a unique value is indexed by (see `segment::writer::unique_bytes`),
/// from a canonical value.
pub(crate) fn unique_value_bytes(schema: &Schema, col: ColumnId, v: &Value) -> Vec<u8> {
    match (schema.column(col).map(|c| &c.kind), v) {
        (Some(ColumnKind::Fixed(t)), v) if *t != FixedType::Symbol => {
            super::memtable::fixed_bits(t, v).to_le_bytes().to_vec()
        }
        (_, Value::Str(s)) => s.as_bytes().to_vec(),
        (_, Value::Bytes(b)) => b.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::KeySpec;
    use crate::storage::types::Dim;

    #[test]
    fn finds_rows_across_chunks_and_snapshots_are_isolated() {
        let s = Schema::builder()
            .key("k", KeySpec::new(Dim::new(1).unwrap()))
            .build()
            .unwrap();
        let mut it = Interner::default();
        let row = |id: u64, it: &mut Interner| {
            let r = Row::new(&s).with(s.key("k").unwrap(), vec![id as f32]);
            MemRow::new(id, &r, &s, it)
        };
        let mut m = Memtable::default();
        for id in (0..5000).map(|i| i * 3) {
            m.push(row(id, &mut it));
        }
        let snap = m.clone();
        m.push(row(20_000, &mut it));
        assert_eq!(m.get(2997).unwrap().id, 2997);
        assert!(m.get(2998).is_none());
        assert!(snap.get(20_000).is_none());
        assert_eq!(m.get(20_000).unwrap().keys[0].f32[0], 20_000.0);
        assert_eq!(m.at(1024).unwrap().id, 3072);
        assert_eq!(m.iter().count(), 5001);
        assert_eq!(snap.len(), 5000);
    }
}
