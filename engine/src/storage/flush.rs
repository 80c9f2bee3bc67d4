//! Flush: the memtables become sealed segments (their rows' updates folded
//! in), the updates of segment rows are persisted in patch files, a fresh
//! WAL is started, and a manifest naming all of it is published. Runs under
//! the I/O mutex. `docs/design.md` §6.2 gives the steps and their failures.

use super::format::sync_dir;
use super::inner::{Inner, Written};
use super::memtable::Memtable;
use super::patch;
use super::publish::publish;
use super::segment::{Segment, SegmentWriter};
use super::state::{SegState, State};
use super::view::At;
use super::wal::WalWriter;
use crate::error::Result;

/// Flush every memtable into new segments, switch to a fresh WAL and publish
/// a manifest. Returns whether anything was flushed. Caller holds the I/O lock.
pub(crate) fn flush_locked(inner: &Inner, wal: &mut WalWriter) -> Result<bool> {
    let snap = inner.current();
    if snap.next_lsn - 1 == snap.flushed_lsn && snap.legacy_symbols.is_none() {
        return Ok(false);
    }
    let (next, new_wal) = flush_state(inner, (*snap).clone())?;
    publish(inner, next)?;
    *wal = new_wal;
    Ok(true)
}

/// Write `base`'s memtables as segments and its patches as patch files,
/// and create the next WAL: the state to publish, and its WAL.
pub(crate) fn flush_state(inner: &Inner, base: State) -> Result<(State, WalWriter)> {
    let (dir, fs) = (&inner.dir, &*inner.opts.fs);
    let mut next = base.clone();
    for t in next.tables.iter_mut() {
        let live: Vec<At<'_>> = base
            .table(super::types::TableId(t.id))?
            .memtable
            .iter()
            .filter(|(p, _)| !t.memtable.deletes.contains(*p))
            .map(|(_, m)| At::Mem(m))
            .collect();
        let bt = base.table(super::types::TableId(t.id))?;
        if !live.is_empty() {
            let id = next.next_segment_id;
            next.next_segment_id += 1;
            let mut w = SegmentWriter::create(fs, dir, id, t.id, &t.schema, live.len() as u64, None)?;
            for at in &live {
                let v = bt.view(*at);
                w.push(v.id().0, &v.cells()?)?;
            }
            w.finish()?;
            let seg = Segment::open(fs, dir, id, t.id, &t.schema, None, false)?;
            Written::add(&inner.written.flushed, seg.file_len());
            t.segments.push(SegState {
                seg,
                deletes: Default::default(),
            });
        }
        // Patches of memtable rows are in the new segment now.
        if let Some(first) = bt.memtable.first_id() {
            let gone: Vec<u64> = t.patches.rows.keys().copied().filter(|id| *id >= first).collect();
            for id in gone {
                t.patches.remove(id);
            }
        }
        t.memtable = Memtable::default();
        t.unique_mem = imbl::HashMap::new();
        if t.patches_dirty || (t.patches.is_empty() != t.flushed.is_empty()) {
            t.patch_file = if t.patches.is_empty() {
                None
            } else {
                let id = next.next_segment_id;
                next.next_segment_id += 1;
                patch::write(fs, dir, id, t.id, &t.patches)?;
                Some(id)
            };
        }
        t.flushed = t.patches.clone();
        t.patches_dirty = false;
    }
    sync_dir(fs, dir)?;
    let new_wal = WalWriter::create(fs, dir, base.wal_id + 1, inner.opts.sync)?;
    sync_dir(fs, dir)?;
    next.generation += 1;
    next.wal_id = base.wal_id + 1;
    next.flushed_lsn = base.next_lsn - 1;
    next.wal_end = new_wal.len();
    next.wal_torn = false;
    next.legacy_symbols = None;
    Ok((next, new_wal))
}
