//! [`WriteBatch`]: many changes, possibly to several tables, applied as one
//! log record — all of them survive a crash or none does.

use std::collections::BTreeMap;

use super::types::{Row, RowId, TableId};

/// Inserts at caller-chosen ids, deletes, and an optional watermark,
/// committed atomically by [`Store::write`](super::Store::write).
///
/// Inserted ids must exceed every id the table has ever held (ids are never
/// reused); deletes apply before inserts, so a batch carries the net effect
/// of the changes it stands for.
///
/// ```
/// use engram::storage::{Dim, Row, RowId, Store, StoreOptions, WriteBatch};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let t = store.create_table("t", Dim::new(1).unwrap()).unwrap();
/// let mut b = WriteBatch::new();
/// b.insert(t, RowId(10), Row::new(vec![1.0])).insert(t, RowId(12), Row::new(vec![2.0])).set_watermark(7);
/// store.write(b).unwrap();
/// assert_eq!(store.watermark().unwrap(), 7);
/// assert_eq!(store.live_ids(t).unwrap(), vec![RowId(10), RowId(12)]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) inserts: BTreeMap<u32, BTreeMap<u64, Row>>,
    pub(crate) deletes: BTreeMap<u32, Vec<u64>>,
    pub(crate) watermark: Option<u64>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Insert `row` into `table` at `id` (replacing an earlier insert at the
    /// same id in this batch).
    pub fn insert(&mut self, table: TableId, id: RowId, row: Row) -> &mut Self {
        self.inserts.entry(table.0).or_default().insert(id.0, row);
        self
    }

    /// Delete row `id` of `table` if it exists when the batch is applied.
    pub fn delete(&mut self, table: TableId, id: RowId) -> &mut Self {
        self.deletes.entry(table.0).or_default().push(id.0);
        self
    }

    /// Record `watermark` with the batch (see [`Store::watermark`](super::Store::watermark)).
    pub fn set_watermark(&mut self, watermark: u64) -> &mut Self {
        self.watermark = Some(watermark);
        self
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.inserts.values().all(BTreeMap::is_empty)
            && self.deletes.values().all(Vec::is_empty)
            && self.watermark.is_none()
    }
}
