//! [`TableView`]: a consistent snapshot of one table's rows as stored —
//! keys, int8 codes, norms, metadata — for the index layer to scan without
//! decoding whole rows.

use std::sync::Arc;

use super::memtable::MemRow;
use super::segment::Segment;
use super::state::TableState;
use super::symbols::Symbols;
use super::types::{Dim, MetaRecord, Position, RowId};

/// One live row as stored, borrowed from a segment or the memtable.
#[derive(Copy, Clone, Debug)]
pub struct RowRef<'a> {
    /// The row's id.
    pub id: RowId,
    /// f32 key.
    pub key: &'a [f32],
    /// Norm of the key.
    pub norm: f32,
    /// int8 code of the key.
    pub code: &'a [i8],
    /// Quantization scale of the code.
    pub scale: f32,
    /// Stored metadata (strings as symbol ids, see [`TableView::symbol`]).
    pub meta: &'a MetaRecord,
    /// Position.
    pub position: &'a Position,
}

/// A snapshot of a table: later writes are not seen, and the writer is never
/// blocked by it.
///
/// ```
/// use engram::storage::{Dim, Row, Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let t = store.create_table("t", Dim::new(2).unwrap()).unwrap();
/// store.insert(t, Row::new(vec![3.0, 4.0])).unwrap();
/// let view = store.view(t).unwrap();
/// let mut norms = vec![];
/// view.for_each(|r| norms.push(r.norm));
/// assert_eq!(norms, vec![5.0]);
/// ```
pub struct TableView {
    pub(crate) table: TableState,
    pub(crate) symbols: Arc<Symbols>,
}

pub(crate) fn segment_row(s: &Segment, i: usize) -> RowRef<'_> {
    RowRef {
        id: RowId(s.ids()[i]),
        key: s.key(i),
        norm: s.norm(i),
        code: s.code(i),
        scale: s.scale(i),
        meta: s.meta(i),
        position: s.position(i),
    }
}

pub(crate) fn mem_row(m: &MemRow) -> RowRef<'_> {
    RowRef {
        id: RowId(m.id),
        key: &m.key,
        norm: m.norm,
        code: &m.code,
        scale: m.scale,
        meta: &m.meta,
        position: &m.position,
    }
}

impl TableView {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// Key dimension.
    pub fn dim(&self) -> Dim {
        self.table.dim
    }

    /// Live rows (segments, then memtable), in id order.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(RowRef<'a>)) {
        let dead = &self.table.tombstones;
        for s in &self.table.segments {
            for i in 0..s.rows {
                let r = segment_row(s, i);
                if !dead.contains(&r.id.0) {
                    f(r);
                }
            }
        }
        for m in self.table.memtable.iter() {
            if !dead.contains(&m.id) {
                f(mem_row(m));
            }
        }
    }

    /// The live row `id`, if any.
    pub fn row(&self, id: RowId) -> Option<RowRef<'_>> {
        if self.table.tombstones.contains(&id.0) {
            return None;
        }
        if let Some(m) = self.table.memtable.get(id.0) {
            return Some(mem_row(m));
        }
        self.table
            .segments
            .iter()
            .find_map(|s| s.find(id.0).map(|i| segment_row(s, i)))
    }

    /// Live rows.
    pub fn len(&self) -> usize {
        (self.table.segment_rows() + self.table.memtable.len() as u64 - self.table.tombstones.len() as u64) as usize
    }

    /// Whether the table has no live row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table's sealed segments, oldest rows first.
    pub(crate) fn segments(&self) -> &[Arc<Segment>] {
        &self.table.segments
    }

    /// Rows not yet in a segment, deleted ones included.
    pub(crate) fn memtable_rows(&self) -> impl Iterator<Item = RowRef<'_>> {
        self.table.memtable.iter().map(mem_row)
    }

    /// Whether row `id` is deleted.
    pub(crate) fn is_deleted(&self, id: u64) -> bool {
        self.table.tombstones.contains(&id)
    }

    /// Whether any row is deleted.
    pub(crate) fn has_deletes(&self) -> bool {
        !self.table.tombstones.is_empty()
    }

    /// The symbol id stored in [`MetaRecord`] for a namespace or session
    /// string; `None` if no row uses it.
    pub fn symbol(&self, s: &str) -> Option<u32> {
        self.symbols.lookup(s)
    }
}
