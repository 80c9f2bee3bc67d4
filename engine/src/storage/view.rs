//! Reads over one snapshot: [`Snapshot`] covers every table of a store at
//! one moment; [`TableView`] is one table of it; [`RowView`] is one row,
//! whose columns are read lazily, in place, from the same snapshot (with
//! their updates applied), without decoding the rest of the row.

use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use super::memtable::unique_value_bytes;
use super::memtable::Slot;
use super::patch::Patches;
use super::row::{Row, Sparse, SparseRef, Value};
use super::schema::{
    BlobCol, ColumnId, ColumnKind, EdgeCol, FixedCol, FixedType, KeyCol, Scalar, Schema, SparseCol, SymbolCol, TextCol,
};
use super::segment::unique_hash;
use super::segment::writer::Cell;
pub(crate) use super::state::At;
use super::state::{State, TableState};
use super::types::{RowId, TableId};
use crate::error::{corrupt, Error, Result};

/// A consistent view of a whole store at one moment: later writes are not
/// seen, and the writer is never blocked by it. Cheap to take and to clone
/// (it shares the store's immutable state).
///
/// ```
/// use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let schema = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).text("t").build().unwrap();
/// let t = store.create_table("notes", schema.clone()).unwrap();
/// let (k, text) = (schema.key("k").unwrap(), schema.text("t").unwrap());
/// let id = store.insert(t, Row::new(&schema).with(k, vec![3.0, 4.0]).with(text, "hello")).unwrap();
/// let snap = store.snapshot().unwrap();
/// store.delete(t, id).unwrap(); // not seen by `snap`
/// let row = snap.table(t).unwrap().get(id).unwrap();
/// assert_eq!(row.text(text).unwrap(), "hello");
/// assert_eq!(row.key(k), &[3.0, 4.0]);
/// ```
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) state: Arc<State>,
}

impl Snapshot {
    /// Table `id`.
    pub fn table(&self, id: TableId) -> Result<TableView<'_>> {
        self.state.table(id).map(|t| TableView { t })
    }

    /// The table named `name`.
    pub fn table_named(&self, name: &str) -> Result<TableView<'_>> {
        self.state
            .table_by_name(name)
            .map(|t| TableView { t })
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }

    /// Every table.
    pub fn tables(&self) -> impl Iterator<Item = TableView<'_>> {
        self.state.tables.iter().map(|t| TableView { t })
    }

    /// The watermark as of this snapshot (see [`Store::watermark`](super::Store::watermark)).
    pub fn watermark(&self) -> u64 {
        self.state.watermark
    }

    /// The sequence number of the last logged change this snapshot sees.
    /// Two snapshots of one open store with the same version hold the same
    /// data, so what is derived from a snapshot can be cached under it.
    pub fn version(&self) -> u64 {
        self.state.next_lsn.saturating_sub(1)
    }
}

/// One table of a [`Snapshot`].
#[derive(Copy, Clone)]
pub struct TableView<'s> {
    pub(crate) t: &'s TableState,
}

impl<'s> TableView<'s> {
    /// The table's id.
    pub fn id(&self) -> TableId {
        TableId(self.t.id)
    }

    /// The table's name.
    pub fn name(&self) -> &'s str {
        &self.t.name
    }

    /// The table's schema.
    pub fn schema(&self) -> &'s Schema {
        &self.t.schema
    }

    /// Live rows.
    pub fn len(&self) -> usize {
        self.t.live_rows() as usize
    }

    /// Whether the table has no live row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live row `id`, if any.
    pub fn get(&self, id: RowId) -> Option<RowView<'s>> {
        self.t.live_at(id.0).map(|at| self.view(at))
    }

    pub(crate) fn view(&self, at: At<'s>) -> RowView<'s> {
        RowView {
            t: self.t,
            patches: &self.t.patches,
            at,
        }
    }

    /// Live rows in id order.
    pub fn rows(&self) -> impl Iterator<Item = RowView<'s>> + 's {
        let t = self.t;
        let segs = t.segments.iter().flat_map(move |s| {
            (0..s.seg.rows)
                .filter(move |&i| !s.deletes.contains(i))
                .map(move |i| At::Seg(&s.seg, i as u32))
        });
        let mem = t
            .memtable
            .iter()
            .filter(move |(p, _)| !t.memtable.deletes.contains(*p))
            .map(|(_, m)| At::Mem(m));
        segs.chain(mem).map(move |at| RowView {
            t,
            patches: &t.patches,
            at,
        })
    }

    /// The live row whose unique column holds `value`.
    pub fn find(&self, value: &Value) -> Result<Option<RowId>> {
        let u = self
            .t
            .schema
            .unique()
            .ok_or_else(|| Error::InvalidArgument(format!("table {:?} declares no unique column", self.t.name)))?;
        let c = &self.t.schema.columns()[u.0 as usize];
        let v = match &c.kind {
            ColumnKind::Fixed(t) => super::row::canonical_fixed(&c.name, t, value.clone())?,
            _ => value.clone(),
        };
        let bytes = unique_value_bytes(&self.t.schema, u, &v);
        Ok(self.t.find_unique(&bytes)?.map(RowId))
    }
}

/// One row of a snapshot; its columns are read when asked for.
///
/// A handle of another table's schema reads defaults (it never panics).
#[derive(Copy, Clone)]
pub struct RowView<'s> {
    t: &'s TableState,
    patches: &'s Patches,
    at: At<'s>,
}

impl<'s> RowView<'s> {
    /// A view reading updates from `patches` rather than the table's current
    /// ones (merges fold the flushed layer).
    pub(crate) fn with_patches(t: &'s TableState, patches: &'s Patches, at: At<'s>) -> RowView<'s> {
        RowView { t, patches, at }
    }

    /// The row's id.
    pub fn id(&self) -> RowId {
        RowId(match self.at {
            At::Seg(s, i) => s.ids()[i as usize],
            At::Mem(m) => m.id,
        })
    }

    fn slot(&self, col: ColumnId) -> Option<Slot> {
        self.t.layout.slots.get(col.0 as usize).copied()
    }

    /// Key column `c`.
    pub fn key(&self, c: KeyCol) -> &'s [f32] {
        match (self.at, self.slot(c.0)) {
            (At::Seg(s, i), Some(Slot::Key(_))) => s.key(c.0 .0 as usize, &self.t.schema).key(i as usize),
            (At::Mem(m), Some(Slot::Key(k))) => m.keys.get(k as usize).map_or(&[], |k| &k.f32),
            _ => &[],
        }
    }

    /// The carried bits of fixed column `col`, updates applied.
    pub(crate) fn bits(&self, col: u16) -> u64 {
        if let Some(v) = self.patches.get(self.id().0, col).and_then(|p| p.fixed(col)) {
            return v;
        }
        self.stored_bits(col)
    }

    fn stored_bits(&self, col: u16) -> u64 {
        match (self.at, self.slot(ColumnId(col))) {
            (At::Seg(s, i), Some(Slot::Fixed(_))) => match &self.t.schema.columns()[col as usize].kind {
                ColumnKind::Fixed(t) => s.fixed(col as usize, t).bits(i as usize),
                _ => 0,
            },
            (At::Mem(m), Some(Slot::Fixed(k))) => m.fixed.get(k as usize).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// Fixed column `c`.
    pub fn get<T: Scalar>(&self, c: FixedCol<T>) -> T {
        T::from_bits(self.bits(c.0 .0))
    }

    /// Symbol column `c`.
    pub fn symbol(&self, c: SymbolCol) -> &'s str {
        match (self.at, self.slot(c.0)) {
            (At::Seg(s, i), Some(Slot::Symbol(_))) => s.dict(c.0 .0 as usize).row(i as usize).unwrap_or(""),
            (At::Mem(m), Some(Slot::Symbol(k))) => m.symbols.get(k as usize).map_or("", |s| s),
            _ => "",
        }
    }

    /// Blob column `c` (text columns too, as bytes): borrowed in place for a
    /// raw column or the memtable, decompressed for an lz4 column.
    pub fn blob(&self, c: BlobCol) -> Result<Cow<'s, [u8]>> {
        self.blob_at(c.0)
    }

    fn blob_at(&self, col: ColumnId) -> Result<Cow<'s, [u8]>> {
        match (self.at, self.slot(col), self.t.schema.column(col).map(|c| &c.kind)) {
            (At::Seg(s, i), Some(Slot::Blob(_)), Some(ColumnKind::Blob(b))) => s
                .blob(col.0 as usize, b.compression)
                .read(i as usize)
                .map_err(|d| s.damaged(col.0 as usize, d)),
            (At::Mem(m), Some(Slot::Blob(k)), _) => Ok(Cow::Borrowed(m.blobs.get(k as usize).map_or(&[][..], |b| b))),
            _ => Ok(Cow::Borrowed(&[])),
        }
    }

    /// Text column `c`.
    pub fn text(&self, c: TextCol) -> Result<Cow<'s, str>> {
        let path = match self.at {
            At::Seg(s, _) => s.path().to_path_buf(),
            At::Mem(_) => "memtable".into(),
        };
        match self.blob_at(c.0)? {
            Cow::Borrowed(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| corrupt(&path, 0, "text is not UTF-8")),
            Cow::Owned(b) => String::from_utf8(b)
                .map(Cow::Owned)
                .map_err(|_| corrupt(&path, 0, "text is not UTF-8")),
        }
    }

    /// Sparse column `c`, updates applied.
    pub fn sparse(&self, c: SparseCol) -> Result<SparseRef<'s>> {
        self.sparse_at(c.0 .0)
    }

    pub(crate) fn sparse_at(&self, col: u16) -> Result<SparseRef<'s>> {
        if let Some(s) = self.patches.get(self.id().0, col).and_then(|p| p.sparse(col)) {
            return Ok(s.as_ref());
        }
        match (
            self.at,
            self.slot(ColumnId(col)),
            self.t.schema.column(ColumnId(col)).map(|c| &c.kind),
        ) {
            (At::Seg(s, i), Some(Slot::Sparse(_)), Some(ColumnKind::Sparse(k))) => s
                .sparse(col as usize, *k)
                .read(i as usize)
                .map_err(|d| s.damaged(col as usize, d)),
            (At::Mem(m), Some(Slot::Sparse(k)), _) => Ok(m.sparse.get(k as usize).map_or(EMPTY, Sparse::as_ref)),
            _ => Ok(EMPTY),
        }
    }

    /// Edge column `c`.
    pub fn edges(&self, c: EdgeCol) -> Result<&'s [u64]> {
        match (self.at, self.slot(c.0)) {
            (At::Seg(s, i), Some(Slot::Edges(_))) => s
                .edges(c.0 .0 as usize)
                .read(i as usize)
                .map_err(|d| s.damaged(c.0 .0 as usize, d)),
            (At::Mem(m), Some(Slot::Edges(k))) => Ok(m.edges.get(k as usize).map_or(&[], |e| e)),
            _ => Ok(&[]),
        }
    }

    /// Column `col` as a dynamically typed value (canonical form).
    pub fn value(&self, col: ColumnId) -> Result<Value> {
        let kind = &self
            .t
            .schema
            .column(col)
            .ok_or_else(|| Error::NoSuchColumn(format!("#{}", col.0)))?
            .kind;
        Ok(match kind {
            ColumnKind::Key(_) => Value::Vector(self.key(KeyCol(col)).to_vec()),
            ColumnKind::Fixed(FixedType::Symbol) => Value::Str(self.symbol(SymbolCol(col)).to_string()),
            ColumnKind::Fixed(t) => bits_value(t, self.bits(col.0)),
            ColumnKind::Blob(b) => {
                let bytes = self.blob_at(col)?.into_owned();
                if b.utf8 {
                    Value::Str(String::from_utf8(bytes).map_err(|_| Error::Internal("text is not UTF-8".into()))?)
                } else {
                    Value::Bytes(bytes)
                }
            }
            ColumnKind::Sparse(_) => Value::Sparse(self.sparse_at(col.0)?.to_owned()),
            ColumnKind::Edges(_) => Value::Edges(self.edges(EdgeCol(col))?.to_vec()),
        })
    }

    /// The whole row, decoded (every column, updates applied).
    pub fn to_row(&self) -> Result<Row> {
        (0..self.t.schema.columns().len())
            .map(|c| self.value(ColumnId(c as u16)))
            .collect::<Result<Vec<_>>>()
            .map(Row::from_values)
    }

    /// The row's columns as a segment writes them.
    pub(crate) fn cells(&self) -> Result<Vec<Cell<'s>>> {
        let schema = &self.t.schema;
        let mut out = Vec::with_capacity(schema.columns().len());
        for (c, col) in schema.columns().iter().enumerate() {
            let id = ColumnId(c as u16);
            out.push(match &col.kind {
                ColumnKind::Key(_) => match self.at {
                    At::Seg(s, i) => {
                        let k = s.key(c, schema);
                        let i = i as usize;
                        Cell::Key {
                            f32: k.key(i),
                            norm: k.norms[i],
                            code: k.code(i),
                            scale: k.scales.get(i).copied().unwrap_or(0.0),
                            prefix_norms: k.prefix_norms(i),
                        }
                    }
                    At::Mem(m) => match self.slot(id) {
                        Some(Slot::Key(k)) => {
                            let k = &m.keys[k as usize];
                            Cell::Key {
                                f32: &k.f32,
                                norm: k.norm,
                                code: &k.code,
                                scale: k.scale,
                                prefix_norms: &k.prefix_norms,
                            }
                        }
                        _ => return Err(Error::Internal("memtable row lacks a key".into())),
                    },
                },
                ColumnKind::Fixed(FixedType::Symbol) => Cell::Symbol(self.symbol(SymbolCol(id))),
                ColumnKind::Fixed(_) => Cell::Fixed(self.bits(id.0)),
                ColumnKind::Blob(_) => Cell::Blob(self.blob_at(id)?),
                ColumnKind::Sparse(_) => Cell::Sparse(self.sparse_at(id.0)?),
                ColumnKind::Edges(_) => Cell::Edges(self.edges(EdgeCol(id))?),
            });
        }
        Ok(out)
    }
}

const EMPTY: SparseRef<'static> = SparseRef {
    ids: &[],
    weights: super::row::WeightsRef::Counts(&[]),
};

/// The canonical value of carried bits of a fixed column of type `t`.
pub(crate) fn bits_value(t: &FixedType, bits: u64) -> Value {
    match t {
        FixedType::F32 => Value::Float(f64::from(<f32 as Scalar>::from_bits(bits))),
        FixedType::F64 => Value::Float(f64::from_bits(bits)),
        FixedType::I32 | FixedType::I64 | FixedType::Timestamp => Value::Int(bits as i64),
        _ => Value::UInt(bits),
    }
}

/// Reads of a table's rows through views (here, not in `state.rs`, which
/// views are built on).
impl TableState {
    pub fn view<'a>(&'a self, at: At<'a>) -> RowView<'a> {
        RowView::with_patches(self, &self.patches, at)
    }

    /// The bytes of the unique value of a stored row.
    pub(crate) fn stored_unique(&self, at: At<'_>) -> Result<Vec<u8>> {
        let u = self
            .schema
            .unique()
            .ok_or_else(|| Error::Internal("no unique column".into()))?;
        let v = self.view(at).value(u)?;
        Ok(unique_value_bytes(&self.schema, u, &v))
    }

    /// The live row whose unique value has canonical bytes `bytes`.
    pub fn find_unique(&self, bytes: &[u8]) -> Result<Option<u64>> {
        let Some(u) = self.schema.unique() else { return Ok(None) };
        if let Some(&id) = self.unique_mem.get(bytes) {
            return Ok(Some(id));
        }
        let hash = unique_hash(bytes);
        for s in self.segments.iter().rev() {
            for r in s.seg.unique_candidates(u.0 as usize, hash) {
                if !s.deletes.contains(r) && self.stored_unique(At::Seg(&s.seg, r as u32))? == bytes {
                    return Ok(Some(s.seg.ids()[r]));
                }
            }
        }
        Ok(None)
    }
}
