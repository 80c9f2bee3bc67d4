//! The in-memory view of a store: manifest + open segments + patch files +
//! memtables rebuilt from the WAL. Writers and readers build it the same
//! way, so a reader in another process sees exactly what the writer logged.
//!
//! A `State` is immutable once published: writers change a copy (cheap:
//! segments, memtable rows, delete bitmaps and patches are shared) and swap
//! it in, so a snapshot is one `Arc` clone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::deletes::Deletes;
use super::fs::Fs;
use super::legacy;
use super::manifest::{self, Manifest, SegmentEntry, TableEntry};
use super::memtable::{unique_value_bytes, Interner, Layout, MemRow, Memtable};
use super::patch::{self, Patches, RowPatch};
use super::row::{Row, Value};
use super::schema::{ColumnKind, FixedType, Schema};
use super::segment::Segment;
use super::types::TableId;
use super::update::{add_bits, Update};
use super::wal::{self, wal_path, WalOp, WalRecord, WriteOp};
use crate::error::{corrupt, Error, Result};

/// A sealed segment of a table and which of its rows are deleted.
#[derive(Clone)]
pub(crate) struct SegState {
    pub seg: Arc<Segment>,
    pub deletes: Deletes,
}

/// Where a row is stored.
#[derive(Copy, Clone)]
pub(crate) enum At<'s> {
    Seg(&'s Segment, u32),
    Mem(&'s MemRow),
}

/// Where a row is: segment `i` row `r`, or memtable position `p`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    Seg(usize, usize),
    Mem(usize),
}

/// One table: sealed segments (ids below every memtable id, in id order)
/// and the memtable, with deletes and updates.
#[derive(Clone)]
pub(crate) struct TableState {
    pub id: u32,
    pub name: String,
    pub schema: Arc<Schema>,
    pub layout: Arc<Layout>,
    pub next_row_id: u64,
    pub segments: Vec<SegState>,
    pub memtable: Memtable,
    /// Updates applied so far.
    pub patches: Patches,
    /// Updates as of the manifest's `flushed_lsn` (its patch file).
    pub flushed: Patches,
    pub patch_file: Option<u64>,
    /// Whether `patches` changed since the patch file was written.
    pub patches_dirty: bool,
    /// Unique values of live memtable rows.
    pub unique_mem: imbl::HashMap<Box<[u8]>, u64>,
}

impl TableState {
    pub fn new(id: u32, name: String, schema: Schema) -> TableState {
        TableState {
            id,
            name,
            layout: Arc::new(Layout::new(&schema)),
            schema: Arc::new(schema),
            next_row_id: 0,
            segments: Vec::new(),
            memtable: Memtable::default(),
            patches: Patches::default(),
            flushed: Patches::default(),
            patch_file: None,
            patches_dirty: false,
            unique_mem: imbl::HashMap::new(),
        }
    }

    /// Where row `id` is stored (deleted or not).
    pub fn locate(&self, id: u64) -> Option<Loc> {
        if self.memtable.first_id().is_some_and(|f| id >= f) {
            return self.memtable.position(id).map(Loc::Mem);
        }
        // Segments hold increasing, disjoint id ranges.
        let i = self.segments.partition_point(|s| s.seg.max_id < id);
        let s = self.segments.get(i)?;
        s.seg.find(id).map(|r| Loc::Seg(i, r))
    }

    pub fn at(&self, loc: Loc) -> Option<At<'_>> {
        match loc {
            Loc::Seg(i, r) => Some(At::Seg(&self.segments[i].seg, r as u32)),
            Loc::Mem(p) => self.memtable.at(p).map(At::Mem),
        }
    }

    pub fn is_deleted(&self, loc: Loc) -> bool {
        match loc {
            Loc::Seg(i, r) => self.segments[i].deletes.contains(r),
            Loc::Mem(p) => self.memtable.deletes.contains(p),
        }
    }

    /// Where live row `id` is.
    pub fn live(&self, id: u64) -> Option<Loc> {
        self.locate(id).filter(|l| !self.is_deleted(*l))
    }

    pub fn live_at(&self, id: u64) -> Option<At<'_>> {
        self.live(id).and_then(|l| self.at(l))
    }

    pub fn is_live(&self, id: u64) -> bool {
        self.live(id).is_some()
    }

    pub fn segment_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.seg.rows as u64).sum()
    }

    pub fn deleted_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.deletes.len() as u64).sum::<u64>() + self.memtable.deletes.len() as u64
    }

    pub fn live_rows(&self) -> u64 {
        self.segment_rows() + self.memtable.len() as u64 - self.deleted_rows()
    }

    pub fn manifest_entry(&self) -> TableEntry {
        TableEntry {
            id: self.id,
            name: self.name.clone(),
            schema: (*self.schema).clone(),
            // As of the flushed state: rows still in the memtable are replayed
            // from the WAL on open, so their ids must not count as used yet.
            next_row_id: self.memtable.first_id().unwrap_or(self.next_row_id),
            segments: self
                .segments
                .iter()
                .map(|s| SegmentEntry {
                    id: s.seg.id,
                    rows: s.seg.rows as u64,
                    min_id: s.seg.min_id,
                    max_id: s.seg.max_id,
                    bytes: s.seg.file_len(),
                    deleted: s.deletes.iter().map(|p| p as u32).collect(),
                })
                .collect(),
            patch_file: self.patch_file,
        }
    }

    /// Delete live row `id`; whether it was live.
    fn delete(&mut self, id: u64) -> bool {
        let Some(loc) = self.live(id) else { return false };
        if self.schema.unique().is_some() {
            if let Some(at) = self.at(loc) {
                if let Ok(b) = self.stored_unique(at) {
                    if self.unique_mem.get(&b[..]) == Some(&id) {
                        self.unique_mem.remove(&b[..]);
                    }
                }
            }
        }
        match loc {
            Loc::Seg(i, r) => self.segments[i].deletes.insert(r),
            Loc::Mem(p) => self.memtable.deletes.insert(p),
        };
        if self.patches.row(id).is_some() {
            self.patches.remove(id);
            self.patches_dirty = true;
        }
        true
    }

    fn insert(&mut self, id: u64, row: &Row, interner: &mut Interner) {
        // Ids only grow: memtable ids exceed every segment id and each other.
        if id < self.next_row_id || row.values().len() != self.schema.columns().len() {
            return;
        }
        if let Some(u) = self.schema.unique() {
            let b = unique_value_bytes(&self.schema, u, row.get(u));
            self.unique_mem.insert(b.into_boxed_slice(), id);
        }
        self.memtable.push(MemRow::new(id, row, &self.schema, interner));
        self.next_row_id = id + 1;
    }

    /// Apply `updates` to live row `id`: the row's patch gets the new
    /// absolute values.
    fn update(&mut self, id: u64, updates: &[Update]) {
        let Some(at) = self.live_at(id) else { return };
        let view = self.view(at);
        let mut p: RowPatch = self.patches.row(id).map(|p| (**p).clone()).unwrap_or_default();
        for u in updates {
            let col = u.column().0;
            let Some(c) = self.schema.column(u.column()) else {
                continue;
            };
            match (&c.kind, u) {
                (ColumnKind::Fixed(t), Update::Set(_, v)) if *t != FixedType::Symbol => {
                    p.set_fixed(col, super::memtable::fixed_bits(t, v))
                }
                (ColumnKind::Fixed(t), Update::Add(_, d)) if *t != FixedType::Symbol => {
                    let base = p.fixed(col).unwrap_or_else(|| view.bits(col));
                    p.set_fixed(col, add_bits(t, base, d));
                }
                (ColumnKind::Sparse(_), Update::Set(_, Value::Sparse(s))) => p.set_sparse(col, s.clone()),
                (ColumnKind::Sparse(_), Update::Merge(_, s)) => {
                    let merged = match p.sparse(col) {
                        Some(cur) => cur.as_ref().merged(s.as_ref()),
                        None => match view.sparse_at(col) {
                            Ok(base) => base.merged(s.as_ref()),
                            Err(_) => continue,
                        },
                    };
                    p.set_sparse(col, merged);
                }
                // Checked before logging: not reached.
                _ => {}
            }
        }
        self.patches.insert(id, Arc::new(p));
        self.patches_dirty = true;
    }
}

/// Everything a store handle knows.
#[derive(Clone)]
pub(crate) struct State {
    pub generation: u64,
    pub incarnation: u64,
    pub tag: String,
    pub watermark: u64,
    pub wal_id: u64,
    pub flushed_lsn: u64,
    /// The lsn the next record must carry.
    pub next_lsn: u64,
    pub next_segment_id: u64,
    pub tables: Vec<TableState>,
    /// Bytes of the current WAL already applied (valid prefix).
    pub wal_end: u64,
    /// Whether bytes follow `wal_end` that are not a valid record.
    pub wal_torn: bool,
    /// A format 1 store: its store-wide symbol list (its segments need it).
    pub legacy_symbols: Option<Arc<Vec<String>>>,
    pub interner: Arc<Mutex<Interner>>,
    /// The file system the store lives on.
    pub fs: Arc<dyn Fs>,
}

impl State {
    pub fn table(&self, id: TableId) -> Result<&TableState> {
        self.tables
            .iter()
            .find(|t| t.id == id.0)
            .ok_or_else(|| Error::NoSuchTable(format!("#{}", id.0)))
    }

    pub fn table_mut(&mut self, id: u32) -> Result<&mut TableState> {
        self.tables
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::NoSuchTable(format!("#{id}")))
    }

    pub fn table_by_name(&self, name: &str) -> Option<&TableState> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn manifest(&self) -> Manifest {
        Manifest {
            generation: self.generation,
            incarnation: self.incarnation,
            tag: self.tag.clone(),
            watermark: self.watermark,
            wal_id: self.wal_id,
            flushed_lsn: self.flushed_lsn,
            next_segment_id: self.next_segment_id,
            tables: self.tables.iter().map(TableState::manifest_entry).collect(),
        }
    }

    pub fn memtable_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.memtable.bytes()).sum()
    }

    /// Every file the state names (segments, patch files, the WAL).
    pub fn live_files(&self, dir: &Path) -> Vec<std::path::PathBuf> {
        self.tables
            .iter()
            .flat_map(|t| {
                t.segments
                    .iter()
                    .map(|s| s.seg.path().to_path_buf())
                    .chain(t.patch_file.map(|p| patch::patch_path(dir, p)))
            })
            .chain(std::iter::once(wal_path(dir, self.wal_id)))
            .collect()
    }

    /// Load the store in `dir`: manifest, segments, patch files, WAL replay.
    /// Segments already open in `reuse` are shared rather than mapped again.
    ///
    /// A file that vanished between reading the manifest and opening it was
    /// removed by a writer that published a newer manifest: retry.
    pub fn load(fs: &Arc<dyn Fs>, dir: &Path, verify: bool, reuse: &HashMap<u64, Arc<Segment>>) -> Result<State> {
        let mut attempt = 0;
        loop {
            match Self::load_once(fs, dir, verify, reuse) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                other => return other,
            }
        }
    }

    fn load_once(fs: &Arc<dyn Fs>, dir: &Path, verify: bool, reuse: &HashMap<u64, Arc<Segment>>) -> Result<State> {
        let mpath = manifest::manifest_path(dir);
        let m = match manifest::read(&**fs, dir)? {
            manifest::Loaded::Current(m) => m,
            manifest::Loaded::Legacy(m) => return Self::load_legacy(fs, dir, m, verify),
        };
        let mut tables = Vec::with_capacity(m.tables.len());
        for t in m.tables {
            t.schema
                .validate()
                .map_err(|e| corrupt(&mpath, 0, format!("table {:?} has an invalid schema: {e}", t.name)))?;
            let mut ts = TableState::new(t.id, t.name, t.schema);
            for e in &t.segments {
                let seg = match reuse.get(&e.id) {
                    Some(s) => s.clone(),
                    None => Segment::open(&**fs, dir, e.id, t.id, &ts.schema, None, verify)?,
                };
                ts.segments.push(segment_state(&mpath, seg, e)?);
            }
            check_order(&mpath, &ts)?;
            if let Some(p) = t.patch_file {
                ts.flushed = patch::read(&**fs, dir, p, t.id)?;
                ts.patches = ts.flushed.clone();
                ts.patch_file = Some(p);
            }
            ts.next_row_id = t.next_row_id;
            tables.push(ts);
        }
        let mut st = State {
            generation: m.generation,
            incarnation: m.incarnation,
            tag: m.tag,
            watermark: m.watermark,
            wal_id: m.wal_id,
            flushed_lsn: m.flushed_lsn,
            next_lsn: m.flushed_lsn + 1,
            next_segment_id: m.next_segment_id,
            tables,
            wal_end: 0,
            wal_torn: false,
            legacy_symbols: None,
            interner: Arc::default(),
            fs: fs.clone(),
        };
        st.catch_up(dir)?;
        Ok(st)
    }

    /// A format 1 store, read as tables of the legacy schema.
    fn load_legacy(fs: &Arc<dyn Fs>, dir: &Path, m: legacy::Manifest, verify: bool) -> Result<State> {
        let mpath = manifest::manifest_path(dir);
        if m.symbols.first().map(String::as_str) != Some("") {
            return Err(corrupt(&mpath, 0, "malformed symbol table"));
        }
        let symbols = Arc::new(m.symbols);
        let mut tables = Vec::with_capacity(m.tables.len());
        for t in m.tables {
            let schema = legacy::table_schema(t.dim)
                .map_err(|_| corrupt(&mpath, 0, format!("table {:?} has dimension {}", t.name, t.dim)))?;
            let mut ts = TableState::new(t.id, t.name, schema);
            for e in &t.segments {
                let seg = Segment::open(&**fs, dir, e.id, t.id, &ts.schema, Some(&symbols), verify)?;
                if seg.rows as u64 != e.rows {
                    return Err(corrupt(
                        &mpath,
                        0,
                        format!("segment {} does not match its manifest entry", e.id),
                    ));
                }
                ts.segments.push(SegState {
                    seg,
                    deletes: Deletes::default(),
                });
            }
            // Merges of format 1 could leave segments out of id order.
            ts.segments.sort_by_key(|s| s.seg.min_id);
            check_order(&mpath, &ts)?;
            for id in t.tombstones {
                if let Some(Loc::Seg(i, r)) = ts.locate(id) {
                    ts.segments[i].deletes.insert(r);
                }
            }
            ts.next_row_id = t.next_row_id;
            tables.push(ts);
        }
        let mut st = State {
            generation: m.generation,
            incarnation: m.incarnation,
            tag: m.tag,
            watermark: m.watermark,
            wal_id: m.wal_id,
            flushed_lsn: m.flushed_lsn,
            next_lsn: m.flushed_lsn + 1,
            next_segment_id: m.next_segment_id,
            tables,
            wal_end: 0,
            wal_torn: false,
            legacy_symbols: Some(symbols),
            interner: Arc::default(),
            fs: fs.clone(),
        };
        st.catch_up(dir)?;
        Ok(st)
    }

    /// Apply WAL records past `wal_end`. Returns how many were applied.
    pub fn catch_up(&mut self, dir: &Path) -> Result<usize> {
        let path = wal_path(dir, self.wal_id);
        let scan = wal::read(&*self.fs, &path, self.wal_id, self.wal_end, Some(self.next_lsn))?;
        let n = scan.records.len();
        for r in &scan.records {
            self.apply(r);
        }
        self.wal_end = scan.end;
        self.wal_torn = scan.torn;
        Ok(n)
    }

    /// Apply one logged change. Records were validated before they were
    /// logged; anything that still does not fit (a table that is gone, a
    /// row of another shape) is skipped rather than trusted.
    pub fn apply(&mut self, rec: &WalRecord) {
        self.next_lsn = rec.lsn + 1;
        match &rec.op {
            WalOp::CreateTable { table, name, schema } => {
                if self.tables.iter().any(|t| t.id == *table || t.name == *name) || schema.validate().is_err() {
                    return;
                }
                self.tables.push(TableState::new(*table, name.clone(), schema.clone()));
            }
            WalOp::Write(w) => self.apply_write(w),
        }
    }

    fn apply_write(&mut self, w: &WriteOp) {
        for d in &w.deletes {
            if let Ok(t) = self.table_mut(d.table) {
                for id in &d.ids {
                    t.delete(*id);
                }
            }
        }
        let interner = self.interner.clone();
        let mut interner = interner.lock();
        for i in &w.inserts {
            if let Ok(t) = self.table_mut(i.table) {
                for (id, row) in i.ids.iter().zip(&i.rows) {
                    t.insert(*id, row, &mut interner);
                }
            }
        }
        drop(interner);
        for u in &w.updates {
            if let Ok(t) = self.table_mut(u.table) {
                t.update(u.id, &u.updates);
            }
        }
        if let Some(m) = w.watermark {
            self.watermark = m;
        }
    }
}

/// A segment of a manifest with its deletes, checked against its
/// entry.
fn segment_state(mpath: &Path, seg: Arc<Segment>, e: &SegmentEntry) -> Result<SegState> {
    if seg.rows as u64 != e.rows || e.deleted.iter().any(|&p| p as usize >= seg.rows) {
        return Err(corrupt(
            mpath,
            0,
            format!("segment {} does not match its manifest entry", e.id),
        ));
    }
    let mut deletes = Deletes::default();
    for &p in &e.deleted {
        deletes.insert(p as usize);
    }
    Ok(SegState { seg, deletes })
}

/// Segments must hold increasing, disjoint id ranges (lookups rely on it).
fn check_order(mpath: &Path, t: &TableState) -> Result<()> {
    let ok =
        t.segments.iter().all(|s| s.seg.rows > 0) && t.segments.windows(2).all(|w| w[0].seg.max_id < w[1].seg.min_id);
    if !ok {
        return Err(corrupt(
            mpath,
            0,
            format!("segments of table {:?} are empty or out of id order", t.name),
        ));
    }
    Ok(())
}
