//! The public face of the storage engine: [`Store`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::batch::WriteBatch;
use super::commit::{self, Outcome, Pending, WriteReport};
use super::inner::Inner;
use super::maintain::{Core, Merger};
use super::manifest;
use super::merge::{self, MergeReport, MergeScope};
use super::open;
use super::options::{MergeRunner, Mode, StoreOptions};
use super::role::Writer;
use super::row::Row;
use super::schema::Schema;
use super::state::State;
use super::types::{RowId, TableId};
use super::update::Update;
use super::view::Snapshot;
use super::wal;
use crate::error::{Error, Result};

/// A table's name, id and schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Id.
    pub id: TableId,
    /// Name.
    pub name: String,
    /// Columns.
    pub schema: Arc<Schema>,
}

/// Counts for one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// The table.
    pub info: TableInfo,
    /// Rows that are not deleted.
    pub live_rows: u64,
    /// Rows in sealed segments (deleted or not).
    pub segment_rows: u64,
    /// Rows in the memtable (deleted or not).
    pub memtable_rows: u64,
    /// Deleted rows not yet dropped by a merge or flush.
    pub deleted_rows: u64,
    /// Rows with updates not yet folded into their segment.
    pub patched_rows: u64,
    /// Sealed segments.
    pub segments: usize,
    /// Bytes of the table's segment files.
    pub segment_bytes: u64,
    /// Rows in segments whose key columns carry every graph they ask for
    /// (the rest are scanned).
    pub indexed_rows: u64,
    /// Bytes of those graphs (inside `segment_bytes`).
    pub index_bytes: u64,
    /// Each sealed segment, in row order.
    pub segment_list: Vec<SegmentStats>,
}

/// One sealed segment of a table ([`TableStats::segment_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    /// Rows written to it (deleted or not).
    pub rows: u64,
    /// Of those, deleted since.
    pub deleted_rows: u64,
    /// Bytes of its file.
    pub bytes: u64,
    /// Whether its key columns carry every graph they ask for.
    pub indexed: bool,
}

/// Counts for a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// Manifest generation.
    pub generation: u64,
    /// Bytes of the current WAL.
    pub wal_bytes: u64,
    /// Bytes held in memtables.
    pub memtable_bytes: u64,
    /// Per table.
    pub tables: Vec<TableStats>,
    /// The error of the last automatic flush or graph build, if it failed.
    pub last_flush_error: Option<String>,
    /// Segment bytes this handle's flushes and bulk ingests wrote since it
    /// opened: each row's first write to a segment.
    pub bytes_flushed: u64,
    /// Segment bytes this handle's merges wrote since it opened (rewrites):
    /// write amplification is `(bytes_flushed + bytes_merged) / bytes_flushed`.
    pub bytes_merged: u64,
}

/// A store: one directory of tables. `Store` is `Send + Sync`; share it
/// between threads behind an `Arc`.
///
/// ```
/// use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("s");
/// let schema = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).build().unwrap();
/// let k = schema.key("k").unwrap();
/// {
///     let store = Store::create(&path, StoreOptions::default()).unwrap();
///     let t = store.create_table("t", schema.clone()).unwrap();
///     let rows = vec![Row::new(&schema).with(k, vec![1.0, 2.0]), Row::new(&schema).with(k, vec![3.0, 4.0])];
///     let ids = store.insert_batch(t, rows).unwrap();
///     store.delete(t, ids[0]).unwrap();
///     store.flush().unwrap();
/// }
/// let store = Store::open(&path, StoreOptions::default()).unwrap();
/// let t = store.table("t").unwrap();
/// let snap = store.snapshot().unwrap();
/// let keys: Vec<Vec<f32>> = snap.table(t).unwrap().rows().map(|r| r.key(k).to_vec()).collect();
/// assert_eq!(keys, vec![vec![3.0, 4.0]]);
/// ```
pub struct Store {
    core: Arc<Core>,
    /// The merge thread, with [`MergeRunner::Background`].
    merger: Merger,
}

fn check_table_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "table name {name:?} must be 1 to 255 bytes without NUL"
        )));
    }
    Ok(())
}

impl Store {
    /// Create a new, empty store in directory `path` (created if missing;
    /// an existing store there is an error).
    pub fn create(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let dir = path.as_ref().to_path_buf();
        if opts.mode == Mode::Reader {
            return Err(Error::ReadOnly);
        }
        let lock = open::create(&dir, &opts)?;
        Self::writer_from(dir, opts, lock)
    }

    /// Open the store in `path`, recovering from a crash if needed: the
    /// manifest's segments are mapped and the WAL is replayed up to its first
    /// torn or corrupt record (which a writer then cuts off). A writer that
    /// opens a store of the first format (format 2 segments) rewrites it in
    /// today's format first; a reader reads it as it is.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        Self::open_with_cancel(path, opts, &|| false)
    }

    /// [`Store::open`], polling `cancelled` while waiting for the writer lock.
    pub fn open_with_cancel(path: impl AsRef<Path>, opts: StoreOptions, cancelled: &dyn Fn() -> bool) -> Result<Store> {
        let dir = path.as_ref().to_path_buf();
        if !manifest::manifest_path(&dir).exists() {
            return Err(Error::NotFound(dir));
        }
        match opts.mode {
            Mode::Reader => {
                let st = State::load(&opts.fs, &dir, opts.verify_checksums, &HashMap::new())?;
                Ok(Store::from_core(Core::new(Inner::new(dir, opts, st), None)))
            }
            Mode::Writer => {
                let lock = super::lock::acquire(&dir, opts.lock_timeout, cancelled)?;
                Self::writer_from(dir, opts, lock)
            }
        }
    }

    fn writer_from(dir: PathBuf, opts: StoreOptions, lock: std::fs::File) -> Result<Store> {
        let (inner, w) = open::open_writer(&dir, opts, lock)?;
        Ok(Store::from_core(Core::new(inner, Some(w))))
    }

    fn from_core(core: Core) -> Store {
        Store {
            core: Arc::new(core),
            merger: Merger::default(),
        }
    }

    /// Open if a store exists at `path`, create it otherwise.
    pub fn open_or_create(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        if manifest::manifest_path(path.as_ref()).exists() {
            Self::open(path, opts)
        } else {
            Self::create(path, opts)
        }
    }

    /// Take the writer role on a reader handle: wait for the store's lock (up
    /// to `timeout`, polling `cancelled`), catch up with everything the
    /// previous writer logged, and cut off any torn tail it left. Until
    /// [`Store::end_write`], this handle writes and no other can.
    pub fn begin_write(&self, timeout: std::time::Duration, cancelled: &dyn Fn() -> bool) -> Result<()> {
        if self.core.is_writer() {
            return Ok(());
        }
        let w = open::take_role(&self.core.inner, timeout, cancelled)?;
        *self.core.writer.write() = Some(Arc::new(w));
        Ok(())
    }

    /// Give the writer role back (fsyncing the WAL first); a no-op on a handle
    /// opened as [`Mode::Writer`]. On a failed handle the role is given back
    /// too, and the failure returned. If a flush happened meanwhile, the
    /// merges due after it then run as [`StoreOptions::merge_runner`] says:
    /// with [`MergeRunner::Inline`], here, detached (graphs for the new
    /// segments as [`Store::index_detached`] builds them, then the
    /// [`StoreOptions::merge_policy`]'s), skipped if another detached merge
    /// is running; a failure shows in [`StoreStats::last_flush_error`].
    pub fn end_write(&self) -> Result<()> {
        if self.core.permanent_writer {
            return Ok(());
        }
        let w = self.core.writer.write().take();
        let r = match w {
            Some(w) => w
                .io(&self.core.inner)
                .and_then(|mut wal| wal.sync_for_release().map_err(|e| self.core.inner.fail(e))),
            None => Ok(()),
        };
        if self.core.merge_due.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.merges_due();
        }
        r
    }

    /// Hand the merges due after a flush to whoever [`StoreOptions::merge_runner`] names.
    fn merges_due(&self) {
        match self.core.inner.opts.merge_runner {
            MergeRunner::Inline => self.core.record(self.core.run_due(false, Duration::ZERO, &|| false)),
            MergeRunner::Background => self.merger.wake(&self.core),
            MergeRunner::Deferred => {}
        }
    }

    /// Whether merges are due on this store: segments without the graphs
    /// their keys ask for (with [`StoreOptions::index_on_flush`]), or runs of
    /// segments the [`StoreOptions::merge_policy`] would fold — what
    /// [`Store::run_merges`] would do. Reads this handle's view (refreshed).
    pub fn merges_pending(&self) -> Result<bool> {
        self.refresh()?;
        Ok(self.core.pending())
    }

    /// Run the merges due now, in this thread: graphs for the segments
    /// flushes left without, then the [`StoreOptions::merge_policy`]'s,
    /// until nothing is due. On the handle that is the writer, as that
    /// writer (commits of other threads go on); on a reader handle not
    /// holding the role, detached like [`Store::index_detached`], waiting up
    /// to `timeout` for another handle's detached merge to end. What a
    /// [`MergeRunner::Deferred`] handle leaves, any handle of the store —
    /// in this process or another — runs here.
    ///
    /// ```
    /// use engram::index::Hnsw;
    /// use engram::storage::{Dim, KeySpec, MergeRunner, Row, Schema, Store, StoreOptions};
    /// use std::{sync::Arc, time::Duration};
    /// let dir = tempfile::tempdir().unwrap();
    /// let opts = StoreOptions { indexer: Some(Arc::new(Hnsw::default())), merge_runner: MergeRunner::Deferred, ..StoreOptions::default() };
    /// let store = Store::create(dir.path().join("s"), opts).unwrap();
    /// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).build().unwrap();
    /// let t = store.create_table("t", s.clone()).unwrap();
    /// store.insert_batch(t, (0..100).map(|i| Row::new(&s).with(s.key("k").unwrap(), vec![1.0, i as f32])).collect()).unwrap();
    /// store.flush().unwrap();
    /// assert!(store.merges_pending().unwrap());
    /// store.run_merges(Duration::from_secs(10), &|| false).unwrap();
    /// assert!(!store.merges_pending().unwrap());
    /// assert_eq!(store.stats().unwrap().tables[0].indexed_rows, 100);
    /// ```
    pub fn run_merges(&self, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<MergeReport> {
        self.refresh()?;
        self.core.run_due(true, timeout, cancelled)
    }

    /// On a reader handle that does not hold the writer role: flush and
    /// merge each table into one segment with its graphs, as
    /// [`Store::optimize`] does, while other handles — in any process —
    /// keep committing. The role is held only to flush and plan (the plan's
    /// segment ids are published, so no other writer gives them out) and to
    /// publish; the rows are copied and the graphs built with no lock
    /// writers wait on. One such merge runs per store at a time (the store's
    /// `MERGE` lock, waited for up to `timeout`, like the role).
    pub fn optimize_detached(&self, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<MergeReport> {
        self.core.detached(MergeScope::All, true, timeout, timeout, cancelled)
    }

    /// [`Store::optimize_detached`] for the segments that have no graph yet
    /// (what flushes leave), without a flush.
    pub fn index_detached(&self, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<MergeReport> {
        self.core
            .detached(MergeScope::Unindexed, false, timeout, timeout, cancelled)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.core.inner.dir
    }

    /// Whether this handle is the writer.
    pub fn is_writer(&self) -> bool {
        self.core.is_writer()
    }

    fn writer(&self) -> Result<Arc<Writer>> {
        self.core.writer()
    }

    /// Bring a reader up to date with the writer: a new manifest means a
    /// reload (sharing already-mapped segments), a longer WAL means replaying
    /// its new records. Called by every read; cheap when nothing changed
    /// (one header read and one `stat`).
    pub fn refresh(&self) -> Result<()> {
        self.core.refresh()
    }

    fn state(&self) -> Result<Arc<State>> {
        self.refresh()?;
        Ok(self.core.inner.current())
    }

    /// A consistent snapshot of every table: reads through it see the store
    /// as it is now, whatever is written later (see [`Snapshot`]).
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot { state: self.state()? })
    }

    /// Create a table with `schema`.
    pub fn create_table(&self, name: &str, schema: Schema) -> Result<TableId> {
        check_table_name(name)?;
        schema.validate()?;
        let w = self.writer()?;
        match commit::commit(
            &w.queue,
            || w.io_unchecked(),
            &self.core.inner,
            Pending::CreateTable {
                name: name.to_string(),
                schema,
            },
        )? {
            (Outcome::Table(id), _) => Ok(TableId(id)),
            _ => Err(Error::Internal("unexpected commit outcome".into())),
        }
    }

    /// Look a table up by name.
    pub fn table(&self, name: &str) -> Result<TableId> {
        self.state()?
            .table_by_name(name)
            .map(|t| TableId(t.id))
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }

    /// All tables.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        Ok(self.state()?.tables.iter().map(info).collect())
    }

    /// The schema of `table`.
    pub fn schema(&self, table: TableId) -> Result<Arc<Schema>> {
        Ok(self.state()?.table(table)?.schema.clone())
    }

    /// Insert one row; returns its id once the row is durable per the sync policy.
    pub fn insert(&self, table: TableId, row: Row) -> Result<RowId> {
        Ok(self.insert_batch(table, vec![row])?[0])
    }

    /// Insert rows atomically (one log record): after a crash either all of
    /// them are there or none. Ids are consecutive.
    pub fn insert_batch(&self, table: TableId, rows: Vec<Row>) -> Result<Vec<RowId>> {
        let mut b = WriteBatch::new();
        for r in rows {
            b.append(table, r);
        }
        Ok(self.write(b)?.appended)
    }

    /// Apply `on_conflict` to the live row whose unique value is `row`'s, or
    /// insert `row`: the row's id, and whether it was inserted.
    ///
    /// ```
    /// use engram::storage::{FixedType, Row, Schema, Store, StoreOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    /// let s = Schema::builder().fixed("token", FixedType::U64).fixed("count", FixedType::U64).unique("token").build().unwrap();
    /// let t = store.create_table("vocab", s.clone()).unwrap();
    /// let (token, count) = (s.fixed::<u64>("token").unwrap(), s.fixed::<u64>("count").unwrap());
    /// let row = || Row::new(&s).with(token, 42).with(count, 1);
    /// let (a, new) = store.upsert(t, row(), vec![count.add(1)]).unwrap();
    /// let (b, again) = store.upsert(t, row(), vec![count.add(1)]).unwrap();
    /// assert!(new && !again && a == b);
    /// assert_eq!(store.snapshot().unwrap().table(t).unwrap().get(a).unwrap().get(count), 2);
    /// ```
    pub fn upsert(&self, table: TableId, row: Row, on_conflict: Vec<Update>) -> Result<(RowId, bool)> {
        let mut b = WriteBatch::new();
        b.upsert(table, row, on_conflict);
        self.write(b)?
            .upserted
            .first()
            .copied()
            .ok_or_else(|| Error::Internal("upsert lost its row".into()))
    }

    /// Apply `updates` to row `id`; whether the row was live.
    pub fn update(&self, table: TableId, id: RowId, updates: Vec<Update>) -> Result<bool> {
        let mut b = WriteBatch::new();
        b.update(table, id, updates);
        Ok(self.write(b)?.updated == 1)
    }

    /// Delete a row; returns whether it existed.
    pub fn delete(&self, table: TableId, id: RowId) -> Result<bool> {
        Ok(self.delete_batch(table, &[id])? == 1)
    }

    /// Delete rows atomically; returns how many existed.
    pub fn delete_batch(&self, table: TableId, ids: &[RowId]) -> Result<usize> {
        let mut b = WriteBatch::new();
        for id in ids {
            b.delete(table, *id);
        }
        Ok(self.write(b)?.deleted)
    }

    /// Apply a [`WriteBatch`] atomically: one log record, so after a crash
    /// either every change in it is there or none is.
    pub fn write(&self, batch: WriteBatch) -> Result<WriteReport> {
        let w = self.writer()?;
        let batch = self.checked(batch)?;
        let (outcome, flushed) =
            commit::commit(&w.queue, || w.io_unchecked(), &self.core.inner, Pending::Write(batch))?;
        if flushed {
            // Other commits go on while this one builds the new segment's
            // graph (a merge already running leaves it to the next flush); on
            // a reader handle, not while it holds the role others wait for.
            if let Err(e) = self.after_flush(false) {
                *self.core.inner.flush_error.lock() = Some(e.to_string());
            }
        }
        match outcome {
            Outcome::Write(r) => Ok(r),
            Outcome::Table(_) => Err(Error::Internal("unexpected commit outcome".into())),
        }
    }

    /// Normalize and check every row and update of `b` against its table's
    /// schema, in the caller's thread, before it joins a commit group.
    fn checked(&self, mut b: WriteBatch) -> Result<WriteBatch> {
        let st = self.core.inner.current();
        let schema = |t: u32| st.table(TableId(t)).map(|t| (t.name.as_str(), t.schema.clone()));
        let norm = |t: u32, row: Row| -> Result<Row> {
            let (name, s) = schema(t)?;
            row.normalize(name, &s)
        };
        let check = |t: u32, ups: Vec<Update>| -> Result<Vec<Update>> {
            let (name, s) = schema(t)?;
            ups.into_iter().map(|u| u.check(name, &s)).collect()
        };
        for (t, rows) in b.inserts.iter_mut() {
            for row in rows.values_mut() {
                *row = norm(*t, std::mem::take(row))?;
            }
        }
        for (t, row) in b.appends.iter_mut() {
            *row = norm(*t, std::mem::take(row))?;
        }
        for (t, row, ups) in b.upserts.iter_mut() {
            *row = norm(*t, std::mem::take(row))?;
            *ups = check(*t, std::mem::take(ups))?;
        }
        for (t, _, ups) in b.updates.iter_mut() {
            *ups = check(*t, std::mem::take(ups))?;
        }
        for t in b.deletes.keys() {
            schema(*t)?;
        }
        let bytes = b.log_bytes();
        if bytes > wal::MAX_RECORD {
            return Err(Error::TooLarge {
                what: "a single atomic write",
                bytes,
                limit: wal::MAX_RECORD,
            });
        }
        Ok(b)
    }

    /// The watermark recorded by the last [`WriteBatch`] that set one (0 if
    /// none did): an application's note of how far the store reflects its
    /// source, made durable atomically with the changes.
    pub fn watermark(&self) -> Result<u64> {
        Ok(self.state()?.watermark)
    }

    /// The label given at creation ([`StoreOptions::tag`]).
    pub fn tag(&self) -> Result<String> {
        Ok(self.state()?.tag.clone())
    }

    /// Ids of a table's live rows, in increasing order.
    pub fn live_ids(&self, table: TableId) -> Result<Vec<RowId>> {
        let snap = self.snapshot()?;
        let t = snap.table(table)?;
        Ok(t.rows().map(|r| r.id()).collect())
    }

    /// Read one row, decoded whole (see [`Snapshot`] to read columns in place).
    pub fn get(&self, table: TableId, id: RowId) -> Result<Option<Row>> {
        let snap = self.snapshot()?;
        let t = snap.table(table)?;
        t.get(id).map(|r| r.to_row()).transpose()
    }

    /// A snapshot iterator over a table's live rows in id order, decoded
    /// whole. Writes made after this call are not seen; the writer is never
    /// blocked.
    pub fn scan(&self, table: TableId) -> Result<Scan> {
        let state = self.state()?;
        state.table(table)?;
        Ok(Scan {
            state,
            table,
            segment: 0,
            row: 0,
            mem: 0,
        })
    }

    /// Bulk ingest: write `rows` (at the next ids) straight into sealed
    /// segments and publish them with `deletes` and `watermark` in one
    /// manifest — atomic whatever its size (a crash leaves all of it or
    /// none), and without passing the rows through the WAL. Commits of this
    /// handle wait meanwhile. Rows are checked as [`Store::write`] checks
    /// them (unique values included); upserts and updates are not ingested.
    ///
    /// ```
    /// use engram::storage::{Dim, KeySpec, Row, RowId, Schema, Store, StoreOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    /// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).build().unwrap();
    /// let k = s.key("k").unwrap();
    /// let t = store.create_table("t", s.clone()).unwrap();
    /// store.insert(t, Row::new(&s).with(k, vec![1.0, 0.0])).unwrap();
    /// let rows = (0..1000).map(|i| Row::new(&s).with(k, vec![1.0, i as f32]));
    /// let r = store.ingest(t, rows, &[RowId(0)], Some(7)).unwrap();
    /// assert_eq!((r.ids, r.deleted), (1..1001, 1));
    /// assert_eq!((store.watermark().unwrap(), store.stats().unwrap().tables[0].live_rows), (7, 1000));
    /// ```
    pub fn ingest(
        &self,
        table: TableId,
        rows: impl IntoIterator<Item = Row>,
        deletes: &[RowId],
        watermark: Option<u64>,
    ) -> Result<super::IngestReport> {
        self.ingest_with(table, watermark, |sink| {
            for row in rows {
                sink.insert(row)?;
            }
            for id in deletes {
                sink.delete(*id);
            }
            Ok(())
        })
    }

    /// [`Store::ingest`] with the rows and deletes pushed by `fill` (rows are
    /// written to segments as they come, so memory stays bounded however
    /// many there are). Nothing of it is published if `fill` fails.
    pub fn ingest_with(
        &self,
        table: TableId,
        watermark: Option<u64>,
        fill: impl FnOnce(&mut super::IngestSink<'_>) -> Result<()>,
    ) -> Result<super::IngestReport> {
        let w = self.writer()?;
        let report = super::ingest::ingest_with(&w, &self.core.inner, table, watermark, fill)?;
        if let Err(e) = self.after_flush(false) {
            *self.core.inner.flush_error.lock() = Some(e.to_string());
        }
        Ok(report)
    }

    /// Flush memtables to sealed segments and start a fresh WAL; then, with
    /// an indexer and [`StoreOptions::index_on_flush`], merge the segments
    /// without graphs into one that has them (segments with graphs keep theirs).
    pub fn flush(&self) -> Result<()> {
        let w = self.writer()?;
        self.flush_with(&w)?;
        self.after_flush(true)
    }

    /// The merges due after a flush: on the handle opened
    /// as the writer, handed on now ([`MergeRunner::Inline`]: run here,
    /// `wait`ing even for a merge already running); on a reader handle, once
    /// it gives the role back.
    fn after_flush(&self, wait: bool) -> Result<()> {
        if !self.core.permanent_writer {
            self.core.merge_due.store(true, std::sync::atomic::Ordering::Release);
            return Ok(());
        }
        match self.core.inner.opts.merge_runner {
            MergeRunner::Inline => self.core.run_due(wait, Duration::ZERO, &|| false).map(|_| ()),
            _ => {
                self.merges_due();
                Ok(())
            }
        }
    }

    fn flush_with(&self, w: &Writer) -> Result<()> {
        self.core.flush_with(w)
    }

    /// Merge each table's segments into one, dropping deleted rows, folding
    /// in updates, and building the merged segment's graphs with
    /// [`StoreOptions::indexer`]. Commits, flushes and searches go on
    /// meanwhile; only one merge runs at a time. Rows still in the memtable
    /// are not included: see [`Store::optimize`].
    pub fn merge(&self) -> Result<MergeReport> {
        merge::merge(&*self.writer()?, &self.core.inner, MergeScope::All, true)
    }

    /// Flush, then merge each table into one segment: afterwards every live
    /// row is in a single segment with its graphs (the fastest to search).
    /// The flush leaves its segments to the merge rather than indexing them
    /// on their own.
    pub fn optimize(&self) -> Result<MergeReport> {
        let w = self.writer()?;
        self.flush_with(&w)?;
        merge::merge(&w, &self.core.inner, MergeScope::All, true)
    }

    /// fsync the WAL now (useful under [`SyncPolicy::Batch`](super::SyncPolicy) or `Off`).
    pub fn sync(&self) -> Result<()> {
        self.writer()?
            .io(&self.core.inner)?
            .sync()
            .map_err(|e| self.core.inner.fail(e))
    }

    /// Check every segment's checksums (reads the whole store).
    pub fn verify(&self) -> Result<()> {
        let st = self.state()?;
        st.tables
            .iter()
            .flat_map(|t| t.segments.iter())
            .try_for_each(|s| s.seg.verify())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        let st = self.state()?;
        Ok(StoreStats {
            generation: st.generation,
            wal_bytes: st.wal_end,
            memtable_bytes: st.memtable_bytes() as u64,
            tables: st
                .tables
                .iter()
                .map(|t| TableStats {
                    info: info(t),
                    live_rows: t.live_rows(),
                    segment_rows: t.segment_rows(),
                    memtable_rows: t.memtable.len() as u64,
                    deleted_rows: t.deleted_rows(),
                    patched_rows: t.patches.len() as u64,
                    segments: t.segments.len(),
                    segment_bytes: t.segments.iter().map(|s| s.seg.file_len()).sum(),
                    indexed_rows: t
                        .segments
                        .iter()
                        .filter(|s| s.seg.indexed(&t.schema) && s.seg.index_bytes(&t.schema) > 0)
                        .map(|s| s.seg.rows as u64)
                        .sum(),
                    index_bytes: t.segments.iter().map(|s| s.seg.index_bytes(&t.schema) as u64).sum(),
                    segment_list: t
                        .segments
                        .iter()
                        .map(|s| SegmentStats {
                            rows: s.seg.rows as u64,
                            deleted_rows: s.deletes.len() as u64,
                            bytes: s.seg.file_len(),
                            indexed: s.seg.indexed(&t.schema),
                        })
                        .collect(),
                })
                .collect(),
            last_flush_error: self.core.inner.flush_error.lock().clone(),
            bytes_flushed: self
                .core
                .inner
                .written
                .flushed
                .load(std::sync::atomic::Ordering::Relaxed),
            bytes_merged: self
                .core
                .inner
                .written
                .merged
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.merger.stop();
        if let Some(w) = self.core.writer.read().as_ref() {
            // Best effort: under Batch/Off, make what was written durable.
            if let Ok(mut wal) = w.io(&self.core.inner) {
                let _ = wal.sync();
            }
        }
    }
}

fn info(t: &super::state::TableState) -> TableInfo {
    TableInfo {
        id: TableId(t.id),
        name: t.name.clone(),
        schema: t.schema.clone(),
    }
}

/// A snapshot iterator over a table's live rows, in id order.
pub struct Scan {
    state: Arc<State>,
    table: TableId,
    segment: usize,
    row: usize,
    mem: usize,
}

impl Iterator for Scan {
    type Item = Result<(RowId, Row)>;

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.state.table(self.table).ok()?;
        while let Some(s) = t.segments.get(self.segment) {
            if self.row == s.seg.rows {
                self.segment += 1;
                self.row = 0;
                continue;
            }
            let i = self.row;
            self.row += 1;
            if !s.deletes.contains(i) {
                let v = t.view(super::view::At::Seg(&s.seg, i as u32));
                return Some(v.to_row().map(|r| (v.id(), r)));
            }
        }
        while let Some(m) = t.memtable.at(self.mem) {
            let p = self.mem;
            self.mem += 1;
            if !t.memtable.deletes.contains(p) {
                let v = t.view(super::view::At::Mem(m));
                return Some(v.to_row().map(|r| (v.id(), r)));
            }
        }
        None
    }
}
