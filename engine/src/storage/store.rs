//! The public face of the storage engine: [`Store`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::batch::WriteBatch;
use super::format::sync_dir;
use super::manifest::{self, Manifest};
use super::memtable::MemRow;
use super::segment::Segment;
use super::state::{State, TableState};
use super::symbols::Symbols;
use super::types::{Dim, Meta, MetaRecord, Row, RowId, TableId};
use super::view::TableView;
use super::wal::{self, SyncPolicy, WalWriter};
use super::writer::{self, MergeReport, MergeScope, Outcome, Pending, Writer};
use super::{lock, Kind, Scope, SegmentIndexer, Tier};
use crate::error::{corrupt, Error, IoContext, Result};

/// Whether a handle writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The one writer: holds the store's exclusive lock.
    #[default]
    Writer,
    /// A reader: takes no lock, never blocks the writer, and catches up with
    /// the writer's newest manifest and log on each call.
    Reader,
}

/// How to open a store.
///
/// ```
/// use engram::storage::{StoreOptions, SyncPolicy, Mode};
/// let opts = StoreOptions { sync: SyncPolicy::Batch, ..StoreOptions::default() };
/// assert_eq!(opts.mode, Mode::Writer);
/// ```
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Writer or reader.
    pub mode: Mode,
    /// When the WAL is fsynced.
    pub sync: SyncPolicy,
    /// Flush the memtables to segments once they hold this many bytes.
    pub memtable_bytes: usize,
    /// How long a writer waits for another writer to release the lock.
    pub lock_timeout: Duration,
    /// Check every segment checksum on open (reads every byte; off by default
    /// so that opening costs the same at any size — see [`Store::verify`]).
    pub verify_checksums: bool,
    /// A label recorded in a store that [`Store::create`] makes (e.g. which
    /// source the store is derived from); ignored when opening.
    pub tag: String,
    /// Builds each merged segment's search index (`engram::index::Hnsw`);
    /// `None` writes segments without one, which searches scan exactly.
    pub indexer: Option<Arc<dyn SegmentIndexer>>,
    /// With an indexer: right after each flush (automatic or explicit), merge
    /// the segments that have no index into one that has, so that searches
    /// walk a graph rather than scan them. The graph is built outside the
    /// lock commits wait on, by the thread whose commit filled the memtable
    /// (or the caller of [`Store::flush`]). Bulk loads that end with
    /// [`Store::optimize`] turn it off to build one graph instead of several.
    pub index_on_flush: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            mode: Mode::Writer,
            sync: SyncPolicy::Always,
            memtable_bytes: 64 << 20,
            lock_timeout: Duration::from_secs(10),
            verify_checksums: false,
            tag: String::new(),
            indexer: None,
            index_on_flush: true,
        }
    }
}

impl StoreOptions {
    /// Options for a read-only handle.
    pub fn reader() -> StoreOptions {
        StoreOptions {
            mode: Mode::Reader,
            ..StoreOptions::default()
        }
    }
}

/// A table's name, id and dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Id.
    pub id: TableId,
    /// Name.
    pub name: String,
    /// Key dimension.
    pub dim: Dim,
}

/// What [`Store::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows inserted.
    pub inserted: usize,
    /// Rows deleted (ids that named no live row are not counted).
    pub deleted: usize,
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
    /// Sealed segments.
    pub segments: usize,
    /// Bytes of the table's segment files.
    pub segment_bytes: u64,
    /// Rows in segments that carry a search index (the rest are scanned).
    pub indexed_rows: u64,
    /// Bytes of those indexes (inside `segment_bytes`).
    pub index_bytes: u64,
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
    /// The error of the last automatic flush, if it failed.
    pub last_flush_error: Option<String>,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: StoreOptions,
    pub state: RwLock<State>,
    pub flush_error: Mutex<Option<String>>,
    /// Set when a write failed in a way that leaves its outcome unknown; every
    /// later write is refused until the store is reopened.
    pub failed: Mutex<Option<String>>,
}

impl Inner {
    /// Refuse further writes on this handle because of `e`, and return it.
    pub fn fail(&self, e: Error) -> Error {
        self.failed.lock().get_or_insert_with(|| e.to_string());
        e
    }

    pub fn check_not_failed(&self) -> Result<()> {
        match &*self.failed.lock() {
            Some(why) => Err(Error::WriterFailed(why.clone())),
            None => Ok(()),
        }
    }
}

/// A store: one directory of tables. `Store` is `Send + Sync`; share it
/// between threads behind an `Arc`.
///
/// ```
/// use engram::storage::{Store, StoreOptions, Row, Dim};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("s");
/// {
///     let store = Store::create(&path, StoreOptions::default()).unwrap();
///     let t = store.create_table("t", Dim::new(2).unwrap()).unwrap();
///     let ids = store.insert_batch(t, vec![Row::new(vec![1.0, 2.0]), Row::new(vec![3.0, 4.0])]).unwrap();
///     store.delete(t, ids[0]).unwrap();
///     store.flush().unwrap();
/// }
/// let store = Store::open(&path, StoreOptions::default()).unwrap();
/// let t = store.table("t").unwrap();
/// let rows: Vec<_> = store.scan(t).unwrap().map(|r| r.unwrap().1.key).collect();
/// assert_eq!(rows, vec![vec![3.0, 4.0]]);
/// ```
pub struct Store {
    inner: Inner,
    /// The writer role, held for life by a handle opened as [`Mode::Writer`],
    /// or between [`Store::begin_write`] and [`Store::end_write`] by a reader.
    writer: RwLock<Option<Arc<Writer>>>,
    permanent_writer: bool,
}

/// A random id for a new store: time, process and a per-process random hash
/// key, so stores recreated at one path are told apart.
fn new_incarnation(dir: &Path) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    dir.hash(&mut h);
    h.finish()
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
        std::fs::create_dir_all(&dir).at(&dir)?;
        let lock = lock::acquire(&dir, opts.lock_timeout, &|| false)?;
        if manifest::manifest_path(&dir).exists() {
            return Err(Error::AlreadyExists(dir));
        }
        WalWriter::create(&dir, 1, opts.sync)?;
        manifest::write(
            &dir,
            &Manifest {
                generation: 1,
                incarnation: new_incarnation(&dir),
                tag: opts.tag.clone(),
                watermark: 0,
                wal_id: 1,
                flushed_lsn: 0,
                next_segment_id: 1,
                symbols: vec![String::new()],
                tables: Vec::new(),
            },
        )?;
        if let Some(parent) = dir.parent() {
            let _ = sync_dir(parent);
        }
        Self::open_locked(dir, opts, lock)
    }

    /// Open the store in `path`, recovering from a crash if needed: the
    /// manifest's segments are mapped and the WAL is replayed up to its first
    /// torn or corrupt record (which a writer then cuts off).
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
                let st = State::load(&dir, opts.verify_checksums, &HashMap::new())?;
                Ok(Store::from_parts(dir, opts, st, None))
            }
            Mode::Writer => {
                let lock = lock::acquire(&dir, opts.lock_timeout, cancelled)?;
                Self::open_locked(dir, opts, lock)
            }
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

    fn open_locked(dir: PathBuf, opts: StoreOptions, lock: std::fs::File) -> Result<Store> {
        let st = State::load(&dir, opts.verify_checksums, &HashMap::new())?;
        let wal = WalWriter::reopen(&dir, st.wal_id, st.wal_end, opts.sync)?;
        writer::remove_orphans(&dir, &st)?;
        Ok(Store::from_parts(dir, opts, st, Some(Writer::new(lock, wal))))
    }

    fn from_parts(dir: PathBuf, opts: StoreOptions, st: State, writer: Option<Writer>) -> Store {
        Store {
            inner: Inner {
                dir,
                opts,
                state: RwLock::new(st),
                flush_error: Mutex::new(None),
                failed: Mutex::new(None),
            },
            permanent_writer: writer.is_some(),
            writer: RwLock::new(writer.map(Arc::new)),
        }
    }

    /// Take the writer role on a reader handle: wait for the store's lock (up
    /// to `timeout`, polling `cancelled`), catch up with everything the
    /// previous writer logged, and cut off any torn tail it left. Until
    /// [`Store::end_write`], this handle writes and no other can.
    pub fn begin_write(&self, timeout: std::time::Duration, cancelled: &dyn Fn() -> bool) -> Result<()> {
        if self.writer.read().is_some() {
            return Ok(());
        }
        let lock = lock::acquire(&self.inner.dir, timeout, cancelled)?;
        self.refresh()?;
        let wal = {
            let st = self.inner.state.read();
            WalWriter::reopen(&self.inner.dir, st.wal_id, st.wal_end, self.inner.opts.sync)?
        };
        *self.writer.write() = Some(Arc::new(Writer::new(lock, wal)));
        Ok(())
    }

    /// Give the writer role back (fsyncing the WAL first); a no-op on a handle
    /// opened as [`Mode::Writer`].
    pub fn end_write(&self) -> Result<()> {
        if self.permanent_writer {
            return Ok(());
        }
        let w = self.writer.write().take();
        match w {
            Some(w) => w.exclusive(&self.inner, |wal| wal.sync()),
            None => Ok(()),
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether this handle is the writer.
    pub fn is_writer(&self) -> bool {
        self.writer.read().is_some()
    }

    fn writer(&self) -> Result<Arc<Writer>> {
        self.writer.read().clone().ok_or(Error::ReadOnly)
    }

    /// Bring a reader up to date with the writer: a new manifest means a
    /// reload (sharing already-mapped segments), a longer WAL means replaying
    /// its new records. Called by every read; cheap when nothing changed
    /// (one header read and one `stat`).
    pub fn refresh(&self) -> Result<()> {
        if self.is_writer() {
            return Ok(());
        }
        let dir = &self.inner.dir;
        let stamp = manifest::read_stamp(dir)?;
        {
            let st = self.inner.state.read();
            if (st.incarnation, st.generation) == stamp {
                match std::fs::metadata(wal::wal_path(dir, st.wal_id)) {
                    Ok(m) if m.len() == st.wal_end => return Ok(()),
                    _ => {}
                }
            }
        }
        let mut st = self.inner.state.write();
        if (st.incarnation, st.generation) == stamp {
            match st.catch_up(dir) {
                Ok(_) => return Ok(()),
                // The WAL was rotated away: a newer manifest exists.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let same_store = st.incarnation == stamp.0;
        let reuse: HashMap<u64, Arc<Segment>> = st
            .tables
            .iter()
            .flat_map(|t| t.segments.iter().map(|s| (s.id, s.clone())))
            .filter(|_| same_store)
            .collect();
        *st = State::load(dir, self.inner.opts.verify_checksums, &reuse)?;
        Ok(())
    }

    /// Create a table whose keys have dimension `dim`.
    pub fn create_table(&self, name: &str, dim: Dim) -> Result<TableId> {
        check_table_name(name)?;
        match self.writer()?.commit(
            &self.inner,
            Pending::CreateTable {
                name: name.to_string(),
                dim,
            },
        )? {
            Outcome::Table(id) => Ok(TableId(id)),
            _ => Err(Error::InvalidArgument("unexpected commit outcome".into())),
        }
    }

    /// Look a table up by name.
    pub fn table(&self, name: &str) -> Result<TableId> {
        self.refresh()?;
        self.inner
            .state
            .read()
            .table_by_name(name)
            .map(|t| TableId(t.id))
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }

    /// All tables.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        self.refresh()?;
        Ok(self.inner.state.read().tables.iter().map(info).collect())
    }

    /// Insert one row; returns its id once the row is durable per the sync policy.
    pub fn insert(&self, table: TableId, row: Row) -> Result<RowId> {
        Ok(self.insert_batch(table, vec![row])?[0])
    }

    /// Insert rows atomically (one log record): after a crash either all of
    /// them are there or none. Ids are consecutive.
    pub fn insert_batch(&self, table: TableId, rows: Vec<Row>) -> Result<Vec<RowId>> {
        let w = self.writer()?;
        check_log_size(rows.iter())?;
        {
            let st = self.inner.state.read();
            let t = st.table(table)?;
            for r in &rows {
                r.validate(&t.name, t.dim)?;
            }
        }
        match w.commit(&self.inner, Pending::Insert { table: table.0, rows })? {
            Outcome::Rows { first, count } => Ok((first..first + count).map(RowId).collect()),
            _ => Err(Error::InvalidArgument("unexpected commit outcome".into())),
        }
    }

    /// Apply a [`WriteBatch`] atomically: one log record, so after a crash
    /// either every change in it is there or none is.
    pub fn write(&self, batch: WriteBatch) -> Result<WriteReport> {
        let w = self.writer()?;
        check_log_size(batch.inserts.values().flat_map(|rows| rows.values()))?;
        {
            let st = self.inner.state.read();
            for (table, rows) in &batch.inserts {
                let t = st.table(TableId(*table))?;
                for r in rows.values() {
                    r.validate(&t.name, t.dim)?;
                }
            }
        }
        match w.commit(&self.inner, Pending::Batch(batch))? {
            Outcome::Batch { inserted, deleted } => Ok(WriteReport { inserted, deleted }),
            _ => Err(Error::InvalidArgument("unexpected commit outcome".into())),
        }
    }

    /// The watermark recorded by the last [`WriteBatch`] that set one (0 if
    /// none did): an application's note of how far the store reflects its
    /// source, made durable atomically with the changes.
    pub fn watermark(&self) -> Result<u64> {
        self.refresh()?;
        Ok(self.inner.state.read().watermark)
    }

    /// The label given at creation ([`StoreOptions::tag`]).
    pub fn tag(&self) -> Result<String> {
        self.refresh()?;
        Ok(self.inner.state.read().tag.clone())
    }

    /// Ids of a table's live rows, in increasing order.
    pub fn live_ids(&self, table: TableId) -> Result<Vec<RowId>> {
        self.refresh()?;
        let st = self.inner.state.read();
        let t = st.table(table)?;
        let mut ids: Vec<RowId> = t
            .segments
            .iter()
            .flat_map(|s| s.ids().iter().copied())
            .chain(t.memtable.iter().map(|r| r.id))
            .filter(|id| !t.tombstones.contains(id))
            .map(RowId)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Delete a row; returns whether it existed.
    pub fn delete(&self, table: TableId, id: RowId) -> Result<bool> {
        Ok(self.delete_batch(table, &[id])? == 1)
    }

    /// Delete rows atomically; returns how many existed.
    pub fn delete_batch(&self, table: TableId, ids: &[RowId]) -> Result<usize> {
        let ids = ids.iter().map(|i| i.0).collect();
        match self
            .writer()?
            .commit(&self.inner, Pending::Delete { table: table.0, ids })?
        {
            Outcome::Deleted(n) => Ok(n),
            _ => Err(Error::InvalidArgument("unexpected commit outcome".into())),
        }
    }

    /// Read one row.
    pub fn get(&self, table: TableId, id: RowId) -> Result<Option<Row>> {
        self.refresh()?;
        let st = self.inner.state.read();
        let t = st.table(table)?;
        if t.tombstones.contains(&id.0) {
            return Ok(None);
        }
        if let Some(r) = t.memtable.get(id.0) {
            return mem_row(r, &st.symbols).map(Some);
        }
        for s in &t.segments {
            if let Some(i) = s.find(id.0) {
                return segment_row(s, i, &st.symbols).map(Some);
            }
        }
        Ok(None)
    }

    /// Iterate over a consistent snapshot of a table's live rows in id order.
    /// Writes made after this call are not seen; the writer is never blocked.
    pub fn scan(&self, table: TableId) -> Result<Scan> {
        self.refresh()?;
        let st = self.inner.state.read();
        Ok(Scan {
            table: st.table(table)?.clone(),
            symbols: st.symbols.clone(),
            segment: 0,
            row: 0,
            mem: 0,
        })
    }

    /// A consistent snapshot of a table's stored rows, for scans by the index
    /// layer (see [`TableView`]).
    pub fn view(&self, table: TableId) -> Result<TableView> {
        self.refresh()?;
        let st = self.inner.state.read();
        Ok(TableView {
            table: st.table(table)?.clone(),
            symbols: st.symbols.clone(),
        })
    }

    /// Flush memtables to sealed segments and start a fresh WAL; then, with
    /// an indexer and [`StoreOptions::index_on_flush`], merge the segments
    /// without an index into one that has an index (indexed segments keep
    /// theirs).
    pub fn flush(&self) -> Result<()> {
        let w = self.writer()?;
        self.flush_with(&w)?;
        w.index_flushed(&self.inner, true)?;
        Ok(())
    }

    /// Flush as the writer `w`, clearing the error an automatic flush left.
    fn flush_with(&self, w: &Writer) -> Result<()> {
        w.exclusive(&self.inner, |wal| writer::flush_locked(&self.inner, wal))?;
        *self.inner.flush_error.lock() = None;
        Ok(())
    }

    /// Merge each table's segments into one, dropping deleted rows and
    /// building the merged segment's index with [`StoreOptions::indexer`].
    /// Commits, flushes and searches go on meanwhile; only one merge runs at
    /// a time. Rows still in the memtable are not included: see
    /// [`Store::optimize`].
    pub fn merge(&self) -> Result<MergeReport> {
        self.writer()?.merge(&self.inner, MergeScope::All)
    }

    /// Flush, then merge each table into one segment: afterwards every live
    /// row is in a single segment with one index (the fastest to search).
    /// The flush leaves its segments to the merge rather than indexing them
    /// on their own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use engram::index::{Hnsw, SearchParams};
    /// use engram::storage::{Dim, Row, Store, StoreOptions};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let opts = StoreOptions { indexer: Some(Arc::new(Hnsw::default())), ..StoreOptions::default() };
    /// let store = Store::create(dir.path().join("s"), opts).unwrap();
    /// let t = store.create_table("t", Dim::new(2).unwrap()).unwrap();
    /// store.insert_batch(t, (0..100).map(|i| Row::new(vec![1.0, i as f32])).collect()).unwrap();
    /// store.optimize().unwrap();
    /// let st = store.stats().unwrap();
    /// assert_eq!((st.tables[0].segments, st.tables[0].indexed_rows), (1, 100));
    /// ```
    pub fn optimize(&self) -> Result<MergeReport> {
        let w = self.writer()?;
        self.flush_with(&w)?;
        w.merge(&self.inner, MergeScope::All)
    }

    /// fsync the WAL now (useful under [`SyncPolicy::Batch`] or `Off`).
    pub fn sync(&self) -> Result<()> {
        self.writer()?.exclusive(&self.inner, |wal| wal.sync())
    }

    /// Check every segment's checksums (reads the whole store).
    pub fn verify(&self) -> Result<()> {
        self.refresh()?;
        let st = self.inner.state.read();
        st.tables
            .iter()
            .flat_map(|t| t.segments.iter())
            .try_for_each(|s| s.verify())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        self.refresh()?;
        let st = self.inner.state.read();
        Ok(StoreStats {
            generation: st.generation,
            wal_bytes: st.wal_end,
            memtable_bytes: st.memtable_bytes() as u64,
            tables: st
                .tables
                .iter()
                .map(|t| {
                    let segment_rows = t.segment_rows();
                    let memtable_rows = t.memtable.len() as u64;
                    let deleted_rows = t.tombstones.len() as u64;
                    TableStats {
                        info: info(t),
                        live_rows: segment_rows + memtable_rows - deleted_rows,
                        segment_rows,
                        memtable_rows,
                        deleted_rows,
                        segments: t.segments.len(),
                        segment_bytes: t.segments.iter().map(|s| s.file_len()).sum(),
                        indexed_rows: t
                            .segments
                            .iter()
                            .filter(|s| !s.index_bytes().is_empty())
                            .map(|s| s.rows as u64)
                            .sum(),
                        index_bytes: t.segments.iter().map(|s| s.index_bytes().len() as u64).sum(),
                    }
                })
                .collect(),
            last_flush_error: self.inner.flush_error.lock().clone(),
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(w) = self.writer.get_mut() {
            // Best effort: under Batch/Off, make what was written durable.
            let _ = w.exclusive(&self.inner, |wal| wal.sync());
        }
    }
}

/// Refuse a change too large for one log record before it joins a commit
/// group, so that it cannot fail the other changes of the group.
fn check_log_size<'a>(rows: impl Iterator<Item = &'a Row>) -> Result<()> {
    let bytes: usize = rows.map(Row::log_bytes).sum();
    if bytes > wal::MAX_RECORD {
        return Err(Error::TooLarge {
            what: "a single atomic write",
            bytes,
            limit: wal::MAX_RECORD,
        });
    }
    Ok(())
}

fn info(t: &TableState) -> TableInfo {
    TableInfo {
        id: TableId(t.id),
        name: t.name.clone(),
        dim: t.dim,
    }
}

fn decode_meta(m: &MetaRecord, symbols: &Symbols, path: &Path) -> Result<Meta> {
    let bad = |what: &str| corrupt(path, 0, format!("meta record has an invalid {what}"));
    Ok(Meta {
        timestamp: m.timestamp,
        scope: Scope::from_u8(m.scope).ok_or_else(|| bad("scope"))?,
        namespace: symbols
            .name(m.namespace)
            .ok_or_else(|| bad("namespace id"))?
            .to_string(),
        session: symbols.name(m.session).ok_or_else(|| bad("session id"))?.to_string(),
        kind: Kind::from_u8(m.kind).ok_or_else(|| bad("kind"))?,
        tier: Tier::from_u8(m.tier).ok_or_else(|| bad("tier"))?,
        order: m.order,
        access_count: m.access_count,
        authority: m.authority,
        confidence: m.confidence,
        decay_rate: m.decay_rate,
        token_count: m.token_count,
        anchor_density: m.anchor_density,
    })
}

fn mem_row(r: &MemRow, symbols: &Symbols) -> Result<Row> {
    let here = Path::new("memtable");
    Ok(Row {
        key: r.key.clone(),
        value: super::types::decode_value(&r.value).ok_or_else(|| corrupt(here, 0, "malformed value"))?,
        position: r.position,
        meta: decode_meta(&r.meta, symbols, here)?,
        text: r.text.clone(),
        edges: r.edges.clone(),
    })
}

fn segment_row(s: &Segment, i: usize, symbols: &Symbols) -> Result<Row> {
    Ok(Row {
        key: s.key(i).to_vec(),
        value: s.value(i)?,
        position: *s.position(i),
        meta: decode_meta(s.meta(i), symbols, s.path())?,
        text: s.text(i)?,
        edges: s.edges(i)?.to_vec(),
    })
}

/// A snapshot iterator over a table's live rows, in id order.
pub struct Scan {
    table: TableState,
    symbols: Arc<Symbols>,
    segment: usize,
    row: usize,
    mem: usize,
}

impl Iterator for Scan {
    type Item = Result<(RowId, Row)>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(s) = self.table.segments.get(self.segment) {
            if self.row == s.rows {
                self.segment += 1;
                self.row = 0;
                continue;
            }
            let i = self.row;
            self.row += 1;
            let id = s.ids()[i];
            if !self.table.tombstones.contains(&id) {
                return Some(segment_row(s, i, &self.symbols).map(|r| (RowId(id), r)));
            }
        }
        while let Some(r) = self.table.memtable.at(self.mem) {
            self.mem += 1;
            if !self.table.tombstones.contains(&r.id) {
                return Some(mem_row(r, &self.symbols).map(|row| (RowId(r.id), row)));
            }
        }
        None
    }
}
