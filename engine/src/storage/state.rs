//! The in-memory view of a store: manifest + open segments + memtables
//! rebuilt from the WAL. Writers and readers build it the same way, so a
//! reader in another process sees exactly what the writer logged.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::manifest::{self, Manifest, SegmentEntry, TableEntry};
use super::memtable::{MemRow, Memtable};
use super::segment::Segment;
use super::symbols::Symbols;
use super::types::{encode_value, Dim, MetaRecord, Row, TableId};
use super::wal::{self, wal_path, WalOp, WalRecord};
use crate::error::{corrupt, Error, Result};
use crate::kernels::{quant, scalar};

/// One table's rows: sealed segments (ids below every memtable id) and the
/// memtable, minus tombstones.
#[derive(Clone)]
pub(crate) struct TableState {
    pub id: u32,
    pub name: String,
    pub dim: Dim,
    pub next_row_id: u64,
    pub segments: Vec<Arc<Segment>>,
    pub memtable: Memtable,
    /// Deleted ids; each names a row that exists in a segment or the memtable.
    pub tombstones: Arc<HashSet<u64>>,
}

impl TableState {
    /// Whether row `id` exists (deleted or not).
    pub fn holds(&self, id: u64) -> bool {
        self.memtable.get(id).is_some() || self.segments.iter().any(|s| s.find(id).is_some())
    }

    /// Whether row `id` exists and is not deleted.
    pub fn is_live(&self, id: u64) -> bool {
        !self.tombstones.contains(&id) && self.holds(id)
    }

    pub fn segment_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows as u64).sum()
    }

    /// Tombstones that name segment rows: the ones a manifest must keep.
    pub fn segment_tombstones(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .tombstones
            .iter()
            .copied()
            .filter(|id| self.segments.iter().any(|s| s.find(*id).is_some()))
            .collect();
        v.sort_unstable();
        v
    }

    pub fn manifest_entry(&self) -> TableEntry {
        TableEntry {
            id: self.id,
            name: self.name.clone(),
            dim: self.dim.get(),
            // As of the flushed state: rows still in the memtable are replayed
            // from the WAL on open, so their ids must not count as used yet.
            next_row_id: self.memtable.iter().next().map_or(self.next_row_id, |r| r.id),
            segments: self
                .segments
                .iter()
                .map(|s| SegmentEntry {
                    id: s.id,
                    rows: s.rows as u64,
                    min_id: s.min_id,
                    max_id: s.max_id,
                    bytes: s.file_len(),
                })
                .collect(),
            tombstones: self.segment_tombstones(),
        }
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
    pub symbols: Arc<Symbols>,
    /// Bytes of the current WAL already applied (valid prefix).
    pub wal_end: u64,
    /// Whether bytes follow `wal_end` that are not a valid record.
    pub wal_torn: bool,
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
            symbols: self.symbols.names().to_vec(),
            tables: self.tables.iter().map(TableState::manifest_entry).collect(),
        }
    }

    pub fn memtable_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.memtable.bytes()).sum()
    }

    /// Load the store in `dir`: manifest, segments, WAL replay. Segments
    /// already open in `reuse` are shared rather than mapped again.
    ///
    /// A file that vanished between reading the manifest and opening it was
    /// removed by a writer that published a newer manifest: retry.
    pub fn load(dir: &Path, verify: bool, reuse: &HashMap<u64, Arc<Segment>>) -> Result<State> {
        let mut attempt = 0;
        loop {
            match Self::load_once(dir, verify, reuse) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                other => return other,
            }
        }
    }

    fn load_once(dir: &Path, verify: bool, reuse: &HashMap<u64, Arc<Segment>>) -> Result<State> {
        let m = manifest::read(dir)?;
        let mpath = manifest::manifest_path(dir);
        let symbols = Symbols::from_names(m.symbols).ok_or_else(|| corrupt(&mpath, 0, "malformed symbol table"))?;
        let mut tables = Vec::with_capacity(m.tables.len());
        for t in m.tables {
            let dim = Dim::new(t.dim)
                .map_err(|_| corrupt(&mpath, 0, format!("table {:?} has dimension {}", t.name, t.dim)))?;
            let mut segments = Vec::with_capacity(t.segments.len());
            for e in &t.segments {
                let seg = match reuse.get(&e.id) {
                    Some(s) => s.clone(),
                    None => Segment::open(dir, e.id, verify)?,
                };
                if seg.table != t.id || seg.dim != dim.len() || seg.rows as u64 != e.rows {
                    return Err(corrupt(
                        &mpath,
                        0,
                        format!("segment {} does not match its manifest entry", e.id),
                    ));
                }
                segments.push(seg);
            }
            let mut ts = TableState {
                id: t.id,
                name: t.name,
                dim,
                next_row_id: t.next_row_id,
                segments,
                memtable: Memtable::default(),
                tombstones: Arc::default(),
            };
            let tomb: HashSet<u64> = t.tombstones.into_iter().filter(|id| ts.holds(*id)).collect();
            ts.tombstones = Arc::new(tomb);
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
            symbols: Arc::new(symbols),
            wal_end: 0,
            wal_torn: false,
        };
        st.catch_up(dir)?;
        Ok(st)
    }

    /// Apply WAL records past `wal_end`. Returns how many were applied.
    pub fn catch_up(&mut self, dir: &Path) -> Result<usize> {
        let path = wal_path(dir, self.wal_id);
        let scan = wal::read(&path, self.wal_id, self.wal_end, Some(self.next_lsn))?;
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
    /// dimension that differs) is skipped rather than trusted.
    pub fn apply(&mut self, rec: &WalRecord) {
        self.next_lsn = rec.lsn + 1;
        match &rec.op {
            WalOp::CreateTable { table, name, dim } => {
                if self.tables.iter().any(|t| t.id == *table || t.name == *name) {
                    return;
                }
                let Ok(dim) = Dim::new(*dim) else { return };
                self.tables.push(TableState {
                    id: *table,
                    name: name.clone(),
                    dim,
                    next_row_id: 0,
                    segments: Vec::new(),
                    memtable: Memtable::default(),
                    tombstones: Arc::default(),
                });
            }
            WalOp::Insert { table, first_id, rows } => {
                let ids: Vec<u64> = (0..rows.len() as u64).map(|k| first_id + k).collect();
                self.insert_rows(*table, &ids, rows);
            }
            WalOp::Delete { table, ids } => self.delete_rows(*table, ids),
            WalOp::Batch {
                deletes,
                inserts,
                watermark,
            } => {
                for d in deletes {
                    self.delete_rows(d.table, &d.ids);
                }
                for i in inserts {
                    self.insert_rows(i.table, &i.ids, &i.rows);
                }
                if let Some(w) = watermark {
                    self.watermark = *w;
                }
            }
        }
    }

    fn insert_rows(&mut self, table: u32, ids: &[u64], rows: &[Row]) {
        let symbols = Arc::make_mut(&mut self.symbols);
        let Some(t) = self.tables.iter_mut().find(|t| t.id == table) else {
            return;
        };
        for (&id, row) in ids.iter().zip(rows) {
            // Ids only grow: memtable ids exceed every segment id and each other.
            if row.key.len() != t.dim.len() || id < t.next_row_id {
                continue;
            }
            t.memtable.push(mem_row(id, row, symbols));
            t.next_row_id = id + 1;
        }
    }

    fn delete_rows(&mut self, table: u32, ids: &[u64]) {
        let Some(t) = self.tables.iter_mut().find(|t| t.id == table) else {
            return;
        };
        let live: Vec<u64> = ids.iter().copied().filter(|id| t.holds(*id)).collect();
        if !live.is_empty() {
            Arc::make_mut(&mut t.tombstones).extend(live);
        }
    }
}

/// Turn a logged row into what the memtable and segments store.
fn mem_row(id: u64, row: &Row, symbols: &mut Symbols) -> MemRow {
    let mut code = vec![0i8; row.key.len()];
    let scale = quant::quantize(&row.key, &mut code);
    let m = &row.meta;
    let meta = MetaRecord {
        timestamp: m.timestamp,
        namespace: symbols.intern(&m.namespace),
        session: symbols.intern(&m.session),
        order: m.order,
        access_count: m.access_count,
        token_count: m.token_count,
        authority: m.authority,
        confidence: m.confidence,
        decay_rate: m.decay_rate,
        anchor_density: m.anchor_density,
        scope: m.scope as u8,
        kind: m.kind as u8,
        tier: m.tier as u8,
        _pad: 0,
    };
    let mut value = Vec::new();
    encode_value(&row.value, &mut value);
    MemRow {
        id,
        key: row.key.clone(),
        norm: scalar::norm(&row.key),
        code,
        scale,
        position: row.position,
        meta,
        value,
        text: row.text.clone(),
        edges: row.edges.clone(),
    }
}
