//! [`WriteBatch`]: many changes, possibly to several tables, applied as one
//! log record — all of them survive a crash or none does.

use std::collections::BTreeMap;

use super::row::Row;
use super::types::{RowId, TableId};
use super::update::Update;

/// Changes committed atomically by [`Store::write`](super::Store::write).
///
/// They are applied in this order: deletes; inserts at caller-chosen ids
/// (which must exceed every id the table has held: ids are never reused);
/// inserts at ids the store assigns; upserts (each finds the live row with
/// its unique value — possibly one inserted earlier in the batch — and
/// updates it, or inserts the row); updates; and the watermark.
///
/// ```
/// use engram::storage::{Dim, FixedType, KeySpec, Row, RowId, Schema, Store, StoreOptions, WriteBatch};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let s = Schema::builder().key("k", KeySpec::new(Dim::new(1).unwrap())).fixed("n", FixedType::U64).build().unwrap();
/// let t = store.create_table("t", s.clone()).unwrap();
/// let (k, n) = (s.key("k").unwrap(), s.fixed::<u64>("n").unwrap());
/// let mut b = WriteBatch::new();
/// b.insert(t, RowId(10), Row::new(&s).with(k, vec![1.0]))
///     .insert(t, RowId(12), Row::new(&s).with(k, vec![2.0]))
///     .update(t, RowId(12), vec![n.add(5)])
///     .set_watermark(7);
/// store.write(b).unwrap();
/// assert_eq!(store.watermark().unwrap(), 7);
/// assert_eq!(store.live_ids(t).unwrap(), vec![RowId(10), RowId(12)]);
/// assert_eq!(store.snapshot().unwrap().table(t).unwrap().get(RowId(12)).unwrap().get(n), 5);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) deletes: BTreeMap<u32, Vec<u64>>,
    pub(crate) inserts: BTreeMap<u32, BTreeMap<u64, Row>>,
    pub(crate) appends: Vec<(u32, Row)>,
    pub(crate) upserts: Vec<(u32, Row, Vec<Update>)>,
    pub(crate) updates: Vec<(u32, u64, Vec<Update>)>,
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

    /// Insert `row` into `table` at the next id (reported in
    /// [`WriteReport::appended`](super::WriteReport), in order).
    pub fn append(&mut self, table: TableId, row: Row) -> &mut Self {
        self.appends.push((table.0, row));
        self
    }

    /// Apply `on_conflict` to the live row of `table` whose unique value is
    /// `row`'s, or insert `row` if there is none (reported in
    /// [`WriteReport::upserted`](super::WriteReport), in order).
    pub fn upsert(&mut self, table: TableId, row: Row, on_conflict: Vec<Update>) -> &mut Self {
        self.upserts.push((table.0, row, on_conflict));
        self
    }

    /// Apply `updates` to row `id` of `table` if it is live when the batch
    /// is applied.
    pub fn update(&mut self, table: TableId, id: RowId, updates: Vec<Update>) -> &mut Self {
        self.updates.push((table.0, id.0, updates));
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
            && self.appends.is_empty()
            && self.upserts.is_empty()
            && self.updates.is_empty()
            && self.watermark.is_none()
    }

    /// An upper bound on the bytes the batch takes in one log record.
    pub fn log_bytes(&self) -> usize {
        let rows = self
            .inserts
            .values()
            .flat_map(|r| r.values())
            .chain(self.appends.iter().map(|(_, r)| r))
            .chain(self.upserts.iter().map(|(_, r, _)| r))
            .map(Row::log_bytes)
            .sum::<usize>();
        let updates = self
            .updates
            .iter()
            .map(|u| &u.2)
            .chain(self.upserts.iter().map(|u| &u.2))
            .map(|u| 32 + u.iter().map(update_bytes).sum::<usize>())
            .sum::<usize>();
        let deletes = self.deletes.values().map(|d| 16 + d.len() * 8).sum::<usize>();
        256 + rows + updates + deletes
    }
}

fn update_bytes(u: &Update) -> usize {
    match u {
        Update::Merge(_, s) => 32 + s.len() * 8,
        Update::Set(_, super::row::Value::Sparse(s)) => 32 + s.len() * 8,
        _ => 32,
    }
}
