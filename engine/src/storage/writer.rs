//! The single writer: group commit, flush and merge.
//!
//! Commit protocol. A caller validates its change, queues it, then takes the
//! I/O lock. Whoever holds the I/O lock is the group leader: it drains the
//! whole queue, resolves every change against the current state (assigning
//! row ids, dropping deletes of rows that do not exist), appends the records
//! in one write, syncs per policy, and only then applies them to the state
//! that readers see. Callers whose change a previous leader already handled
//! find their result waiting. So concurrent writers share one fsync, and no
//! reader ever sees a change that is not in the log.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::batch::WriteBatch;
use super::format::sync_dir;
use super::indexer::IndexInput;
use super::manifest;
use super::segment::writer::SegmentRow;
use super::segment::{segment_path, Segment, SegmentWriter};
use super::state::{State, TableState};
use super::store::Inner;
use super::types::{Dim, Row};
use super::wal::{self, BatchDelete, BatchInsert, WalOp, WalRecord, WalWriter};
use crate::error::{Error, Result};

/// A change waiting to be logged.
pub(crate) enum Pending {
    CreateTable { name: String, dim: Dim },
    Insert { table: u32, rows: Vec<Row> },
    Delete { table: u32, ids: Vec<u64> },
    Batch(WriteBatch),
}

/// What a logged change did.
pub(crate) enum Outcome {
    Table(u32),
    Rows { first: u64, count: u64 },
    Deleted(usize),
    Batch { inserted: usize, deleted: usize },
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Pending)>,
    done: HashMap<u64, Result<Outcome>>,
}

pub(crate) struct Writer {
    _lock: File,
    queue: Mutex<Queue>,
    io: Mutex<WalWriter>,
    /// Held for a whole merge, so that two merges never plan over the same
    /// segments.
    merge: Mutex<()>,
}

/// Give every member of a failed group its own copy of the group's error.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::WriterFailed(why) => Error::WriterFailed(why.clone()),
        other => Error::InvalidArgument(other.to_string()),
    }
}

/// Row ids inserted by earlier changes of the group being resolved, and rows
/// they deleted, so later changes of the same group see them.
#[derive(Clone, Default)]
struct GroupOverlay {
    next_ids: HashMap<u32, u64>,
    new_tables: Vec<(u32, String)>,
    inserted: HashSet<(u32, u64)>,
    deleted: HashSet<(u32, u64)>,
}

impl Writer {
    pub fn new(lock: File, wal: WalWriter) -> Writer {
        Writer {
            _lock: lock,
            queue: Mutex::new(Queue::default()),
            io: Mutex::new(wal),
            merge: Mutex::new(()),
        }
    }

    /// Log and apply one change, possibly as part of a group.
    pub fn commit(&self, inner: &Inner, change: Pending) -> Result<Outcome> {
        inner.check_not_failed()?;
        let ticket = {
            let mut q = self.queue.lock();
            let t = q.next_ticket;
            q.next_ticket += 1;
            q.pending.push((t, change));
            t
        };
        let mut wal = self.io.lock();
        if let Some(r) = self.queue.lock().done.remove(&ticket) {
            return r;
        }
        let batch = std::mem::take(&mut self.queue.lock().pending);
        let mut mine = None;
        let results = run_group(inner, &mut wal, batch);
        {
            let mut q = self.queue.lock();
            for (t, r) in results {
                if t == ticket {
                    mine = Some(r);
                } else {
                    q.done.insert(t, r);
                }
            }
        }
        let mut flushed = false;
        if inner.state.read().memtable_bytes() >= inner.opts.memtable_bytes {
            // The group is durable; a failed flush must not turn its success
            // into an error. The next explicit flush reports it.
            let outcome = flush_locked(inner, &mut wal);
            flushed = matches!(outcome, Ok(true));
            *inner.flush_error.lock() = outcome.err().map(|e| e.to_string());
        }
        drop(wal);
        if flushed {
            // Other commits go on while this one builds the new segment's
            // graph; a merge already running leaves it to the next flush.
            if let Err(e) = self.index_flushed(inner, false) {
                *inner.flush_error.lock() = Some(e.to_string());
            }
        }
        mine.unwrap_or_else(|| Err(Error::InvalidArgument("commit lost its own change".into())))
    }

    /// After a flush: give the segments that have no index one (merged into
    /// one segment per table), when the store indexes flushed segments.
    /// `wait` waits for a merge in progress instead of leaving the segments
    /// to the next flush.
    pub fn index_flushed(&self, inner: &Inner, wait: bool) -> Result<MergeReport> {
        if inner.opts.indexer.is_none() || !inner.opts.index_on_flush {
            return Ok(MergeReport::default());
        }
        let guard = if wait {
            Some(self.merge.lock())
        } else {
            self.merge.try_lock()
        };
        match guard {
            Some(g) => self.merge_holding(inner, MergeScope::Unindexed, g),
            None => Ok(MergeReport::default()),
        }
    }

    /// Run `f` as the only writer (no commit proceeds meanwhile).
    pub fn exclusive<T>(&self, inner: &Inner, f: impl FnOnce(&mut WalWriter) -> Result<T>) -> Result<T> {
        inner.check_not_failed()?;
        f(&mut self.io.lock())
    }
}

fn run_group(inner: &Inner, wal: &mut WalWriter, batch: Vec<(u64, Pending)>) -> Vec<(u64, Result<Outcome>)> {
    let mut results = Vec::with_capacity(batch.len());
    let mut records = Vec::new();
    {
        let st = inner.state.read();
        let mut lsn = st.next_lsn;
        let mut ov = GroupOverlay::default();
        for (ticket, change) in batch {
            // A change that fails must leave no trace in the group's overlay.
            let saved = ov.clone();
            let resolved = resolve(&st, &mut ov, change);
            if resolved.is_err() {
                ov = saved;
            }
            match resolved {
                Ok((Some(op), outcome)) => {
                    records.push(WalRecord { lsn, op });
                    lsn += 1;
                    results.push((ticket, Ok(outcome)));
                }
                Ok((None, outcome)) => results.push((ticket, Ok(outcome))),
                Err(e) => results.push((ticket, Err(e))),
            }
        }
    }
    if records.is_empty() {
        return results;
    }
    // A change queued before an earlier group failed the handle must not be
    // acknowledged: nothing of it is logged.
    if let Err(e) = inner.check_not_failed() {
        for (_, r) in results.iter_mut() {
            if r.is_ok() {
                *r = Err(copy_error(&e));
            }
        }
        return results;
    }
    // A failed append may still have put whole records on disk, which a
    // reader may already have applied and a reopen will replay: the outcome
    // is unknown, so the handle stops writing (no lsn is ever reused).
    match wal.append(&records).map_err(|e| inner.fail(e)) {
        Ok(()) => {
            let mut st = inner.state.write();
            for r in &records {
                st.apply(r);
            }
            st.wal_end = wal.len();
        }
        Err(e) => {
            for (_, r) in results.iter_mut() {
                if r.is_ok() {
                    *r = Err(copy_error(&e));
                }
            }
        }
    }
    results
}

fn resolve(st: &State, ov: &mut GroupOverlay, change: Pending) -> Result<(Option<WalOp>, Outcome)> {
    match change {
        Pending::CreateTable { name, dim } => {
            if st.table_by_name(&name).is_some() || ov.new_tables.iter().any(|(_, n)| *n == name) {
                return Err(Error::TableExists(name));
            }
            let id = st
                .tables
                .iter()
                .map(|t| t.id)
                .chain(ov.new_tables.iter().map(|(i, _)| *i))
                .max()
                .map_or(1, |m| m + 1);
            ov.new_tables.push((id, name.clone()));
            Ok((
                Some(WalOp::CreateTable {
                    table: id,
                    name,
                    dim: dim.get(),
                }),
                Outcome::Table(id),
            ))
        }
        Pending::Insert { table, rows } => {
            let t = st.table(super::types::TableId(table))?;
            let next = ov.next_ids.entry(table).or_insert(t.next_row_id);
            let first = *next;
            let count = rows.len() as u64;
            *next += count;
            ov.inserted.extend((first..first + count).map(|id| (table, id)));
            if rows.is_empty() {
                return Ok((None, Outcome::Rows { first, count }));
            }
            Ok((
                Some(WalOp::Insert {
                    table,
                    first_id: first,
                    rows,
                }),
                Outcome::Rows { first, count },
            ))
        }
        Pending::Delete { table, ids } => {
            let live = live_for_delete(st, ov, table, ids)?;
            if live.is_empty() {
                return Ok((None, Outcome::Deleted(0)));
            }
            let n = live.len();
            Ok((Some(WalOp::Delete { table, ids: live }), Outcome::Deleted(n)))
        }
        Pending::Batch(b) => {
            let mut deletes = Vec::new();
            let mut deleted = 0;
            for (table, ids) in b.deletes {
                let ids = live_for_delete(st, ov, table, ids)?;
                deleted += ids.len();
                if !ids.is_empty() {
                    deletes.push(BatchDelete { table, ids });
                }
            }
            let mut inserts = Vec::new();
            let mut inserted = 0;
            for (table, rows) in b.inserts {
                let t = st.table(super::types::TableId(table))?;
                let next = ov.next_ids.entry(table).or_insert(t.next_row_id);
                if let Some((&first, _)) = rows.first_key_value() {
                    if first < *next {
                        return Err(Error::InvalidArgument(format!(
                            "row id {first} of table {:?} is not above its highest id so far ({}); ids are never reused",
                            t.name,
                            *next - 1
                        )));
                    }
                }
                if let Some((&last, _)) = rows.last_key_value() {
                    *next = last + 1;
                }
                inserted += rows.len();
                let (ids, rows): (Vec<u64>, Vec<Row>) = rows.into_iter().unzip();
                ov.inserted.extend(ids.iter().map(|id| (table, *id)));
                if !ids.is_empty() {
                    inserts.push(BatchInsert { table, ids, rows });
                }
            }
            let outcome = Outcome::Batch { inserted, deleted };
            if deletes.is_empty() && inserts.is_empty() && b.watermark.is_none() {
                return Ok((None, outcome));
            }
            Ok((
                Some(WalOp::Batch {
                    deletes,
                    inserts,
                    watermark: b.watermark,
                }),
                outcome,
            ))
        }
    }
}

/// The ids among `ids` that name live rows, counting rows inserted earlier in
/// the same commit group and not yet deleted by it.
fn live_for_delete(st: &State, ov: &mut GroupOverlay, table: u32, ids: Vec<u64>) -> Result<Vec<u64>> {
    let t = st.table(super::types::TableId(table))?;
    let mut live = Vec::new();
    for id in ids {
        let exists = t.is_live(id) || ov.inserted.contains(&(table, id));
        if exists && ov.deleted.insert((table, id)) {
            live.push(id);
        }
    }
    Ok(live)
}

fn mem_segment_row(r: &super::memtable::MemRow) -> SegmentRow<'_> {
    SegmentRow {
        id: r.id,
        key: &r.key,
        norm: r.norm,
        code: &r.code,
        scale: r.scale,
        position: &r.position,
        meta: &r.meta,
        value: &r.value,
        text: r.text.as_bytes(),
        edges: &r.edges,
    }
}

/// Publish `next` as the new manifest and state. Files named by the old
/// state but not the new one are removed afterwards (readers that still map
/// them keep their maps).
fn publish(inner: &Inner, next: State) -> Result<()> {
    // Past the rename the new manifest may be the durable one while memory
    // still holds the old: stop writing until a reopen settles which.
    manifest::write(&inner.dir, &next.manifest()).map_err(|e| inner.fail(e))?;
    let old = std::mem::replace(&mut *inner.state.write(), next);
    let st = inner.state.read();
    let live: HashSet<u64> = st.tables.iter().flat_map(|t| t.segments.iter().map(|s| s.id)).collect();
    for t in &old.tables {
        for s in &t.segments {
            if !live.contains(&s.id) {
                let _ = std::fs::remove_file(segment_path(&inner.dir, s.id));
            }
        }
    }
    if old.wal_id != st.wal_id {
        let _ = std::fs::remove_file(wal::wal_path(&inner.dir, old.wal_id));
    }
    Ok(())
}

/// Flush every memtable into new segments, switch to a fresh WAL and publish
/// a manifest. Returns whether anything was flushed. Caller holds the I/O lock.
pub(crate) fn flush_locked(inner: &Inner, wal: &mut WalWriter) -> Result<bool> {
    let snap = inner.state.read().clone();
    if snap.next_lsn - 1 == snap.flushed_lsn {
        return Ok(false);
    }
    let dir = &inner.dir;
    let mut next = snap.clone();
    for t in next.tables.iter_mut() {
        let live: Vec<_> = t.memtable.iter().filter(|r| !t.tombstones.contains(&r.id)).collect();
        if !live.is_empty() {
            let id = next.next_segment_id;
            next.next_segment_id += 1;
            let mut w = SegmentWriter::create(dir, id, t.id, t.dim.len(), live.len() as u64)?;
            for r in live {
                w.push(mem_segment_row(r))?;
            }
            w.finish()?;
            t.segments.push(Segment::open(dir, id, false)?);
        }
        t.memtable = Default::default();
        retain_live_tombstones(t);
    }
    sync_dir(dir)?;
    let new_wal = WalWriter::create(dir, snap.wal_id + 1, inner.opts.sync)?;
    sync_dir(dir)?;
    next.generation += 1;
    next.wal_id = snap.wal_id + 1;
    next.flushed_lsn = snap.next_lsn - 1;
    next.wal_end = new_wal.len();
    next.wal_torn = false;
    publish(inner, next)?;
    *wal = new_wal;
    Ok(true)
}

fn retain_live_tombstones(t: &mut TableState) {
    let keep: HashSet<u64> = t.tombstones.iter().copied().filter(|id| t.holds(*id)).collect();
    t.tombstones = Arc::new(keep);
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Segments rewritten.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Deleted rows dropped for good.
    pub rows_dropped: u64,
}

/// Which segments a merge rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MergeScope {
    /// Every segment of a table, into one, when the table has several, any
    /// deleted segment row, or (with an indexer) a segment without an index.
    All,
    /// Only the segments without an index (with an indexer), into one: what
    /// a flush leaves behind. Indexed segments keep their graphs.
    Unindexed,
}

/// One table's share of a merge: its segments as of the merge's snapshot,
/// and the id reserved for the segment that replaces them.
struct MergePlan {
    table: u32,
    sources: Vec<Arc<Segment>>,
    dead: Arc<HashSet<u64>>,
    dim: usize,
    live: u64,
    dropped: u64,
    id: u64,
}

impl Writer {
    /// Rewrite each table's segments in `scope` into one, without their
    /// deleted rows; build each new segment's index with `inner.opts.indexer`.
    ///
    /// Only the planning and the final publish hold the I/O lock: commits and
    /// flushes go on while the rows are copied and the index is built, which
    /// can take minutes on a large table. Rows deleted meanwhile stay deleted
    /// (their tombstones name rows the new segment holds, so they are kept);
    /// segments flushed meanwhile are not part of this merge.
    pub fn merge(&self, inner: &Inner, scope: MergeScope) -> Result<MergeReport> {
        self.merge_holding(inner, scope, self.merge.lock())
    }

    fn merge_holding(&self, inner: &Inner, scope: MergeScope, _one_merge: MutexGuard<'_, ()>) -> Result<MergeReport> {
        let plans = {
            let _io = self.io.lock();
            inner.check_not_failed()?;
            let mut st = inner.state.write();
            let mut plans = Vec::new();
            let mut next_id = st.next_segment_id;
            let indexing = inner.opts.indexer.is_some();
            for t in &st.tables {
                let sources: Vec<Arc<Segment>> = match scope {
                    MergeScope::All => t.segments.clone(),
                    // Only asked for by `index_flushed`, with an indexer.
                    MergeScope::Unindexed => t
                        .segments
                        .iter()
                        .filter(|s| s.index_bytes().is_empty())
                        .cloned()
                        .collect(),
                };
                let dead = t
                    .tombstones
                    .iter()
                    .filter(|id| sources.iter().any(|s| s.find(**id).is_some()))
                    .count() as u64;
                let unindexed = indexing && sources.iter().any(|s| s.index_bytes().is_empty());
                if sources.is_empty() || (sources.len() < 2 && dead == 0 && !unindexed) {
                    continue;
                }
                let rows: u64 = sources.iter().map(|s| s.rows as u64).sum();
                plans.push(MergePlan {
                    table: t.id,
                    sources,
                    dead: t.tombstones.clone(),
                    dim: t.dim.len(),
                    live: rows - dead,
                    dropped: dead,
                    id: next_id,
                });
                next_id += 1;
            }
            // Reserved in memory only: the next manifest published records
            // it, and a crash before then leaves an orphan file that open
            // removes.
            st.next_segment_id = next_id;
            plans
        };
        let mut report = MergeReport::default();
        if plans.is_empty() {
            return Ok(report);
        }
        let mut built = Vec::with_capacity(plans.len());
        for p in &plans {
            report.segments_in += p.sources.len();
            report.rows_dropped += p.dropped;
            if p.live > 0 {
                write_merged(inner, p)?;
                built.push(Some(Segment::open(&inner.dir, p.id, false)?));
                report.segments_out += 1;
            } else {
                built.push(None);
            }
        }
        sync_dir(&inner.dir)?;
        let _io = self.io.lock();
        inner.check_not_failed()?;
        let mut next = inner.state.read().clone();
        for (p, seg) in plans.iter().zip(built) {
            let t = next.table_mut(p.table)?;
            let gone: HashSet<u64> = p.sources.iter().map(|s| s.id).collect();
            let before = t.segments.len();
            let at = t.segments.iter().position(|s| gone.contains(&s.id)).unwrap_or(0);
            t.segments.retain(|s| !gone.contains(&s.id));
            if before - t.segments.len() != gone.len() {
                return Err(Error::InvalidArgument(format!(
                    "merge of table {}: its segments changed while merging",
                    p.table
                )));
            }
            // The merged segment takes its sources' place: the segments
            // before it hold older rows, the ones flushed since the plan
            // newer ones.
            if let Some(seg) = seg {
                t.segments.insert(at, seg);
            }
            retain_live_tombstones(t);
        }
        next.generation += 1;
        publish(inner, next)?;
        Ok(report)
    }
}

/// Copy a plan's live rows into its new segment and build the segment's index.
fn write_merged(inner: &Inner, p: &MergePlan) -> Result<()> {
    let mut w = SegmentWriter::create(&inner.dir, p.id, p.table, p.dim, p.live)?;
    let indexer = inner.opts.indexer.as_deref();
    let rows = if indexer.is_some() { p.live as usize } else { 0 };
    let mut codes: Vec<i8> = Vec::with_capacity(rows * p.dim);
    let mut scales = Vec::with_capacity(rows);
    let mut norms = Vec::with_capacity(rows);
    for s in &p.sources {
        copy_live_rows(s, &p.dead, &mut w, |r| {
            if indexer.is_some() {
                codes.extend_from_slice(r.code);
                scales.push(r.scale);
                norms.push(r.norm);
            }
        })?;
    }
    let index = match indexer {
        Some(ix) => ix.build(&IndexInput {
            dim: p.dim,
            codes: &codes,
            scales: &scales,
            norms: &norms,
        })?,
        None => Vec::new(),
    };
    drop(codes);
    w.finish_with_index(&index)
}

fn copy_live_rows(
    s: &Segment,
    dead: &HashSet<u64>,
    w: &mut SegmentWriter,
    mut also: impl FnMut(&SegmentRow<'_>),
) -> Result<()> {
    let ids = s.ids();
    for (i, &id) in ids.iter().enumerate() {
        if dead.contains(&id) {
            continue;
        }
        let value = s.value_bytes(i)?;
        let text = s.text_bytes(i)?;
        let row = SegmentRow {
            id,
            key: s.key(i),
            norm: s.norm(i),
            code: s.code(i),
            scale: s.scale(i),
            position: s.position(i),
            meta: s.meta(i),
            value: &value,
            text: &text,
            edges: s.edges(i)?,
        };
        also(&row);
        w.push(row)?;
    }
    Ok(())
}

/// Remove files a crashed writer may have left: temp files, segments no
/// manifest names, WALs other than the current one.
pub(crate) fn remove_orphans(dir: &Path, st: &State) -> Result<()> {
    let live: HashSet<String> = st
        .tables
        .iter()
        .flat_map(|t| t.segments.iter().map(|s| segment_path(dir, s.id)))
        .chain(std::iter::once(wal::wal_path(dir, st.wal_id)))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".tmp")
            || (name.starts_with("seg-") && name.ends_with(".seg"))
            || (name.starts_with("wal-") && name.ends_with(".log"));
        if ours && !live.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}
