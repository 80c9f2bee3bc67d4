//! Bulk ingest: rows written straight into sealed segments and published,
//! with deletes and a watermark, by one manifest — atomic whatever its size,
//! and without passing every byte through the WAL.
//!
//! Under the I/O mutex (no commit of this handle goes on meanwhile): flush
//! the memtable (so every existing row is in a segment, and a delete is a
//! bit of a segment), stream the rows into segments of about
//! [`INGEST_SEGMENT_BYTES`] each at the next ids, fsync the directory, and
//! publish a manifest that names the new segments, the deletes and the
//! watermark. A crash before the publish leaves orphans that the next
//! writer removes; after it, everything is there. Graphs are built after
//! the I/O mutex is released, like a flush's.

use std::collections::HashSet;

use super::flush;
use super::format::sync_dir;
use super::inner::{Inner, Written};
use super::memtable::MemRow;
use super::publish::publish;
use super::role::Writer;
use super::row::Row;
use super::segment::{Segment, SegmentWriter};
use super::state::{Loc, SegState, TableState};
use super::types::{RowId, TableId};
use super::view::{unique_value_bytes, At};
use crate::error::{Error, Result};

/// Rows buffered before they are written as one segment.
pub const INGEST_SEGMENT_BYTES: usize = 64 << 20;

/// What [`Store::ingest`](super::Store::ingest) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// The ids the rows got: consecutive, in order.
    pub ids: std::ops::Range<u64>,
    /// Rows deleted (ids that named no live row are not counted).
    pub deleted: usize,
    /// Segments written.
    pub segments: usize,
}

/// One ingest: validated rows, grouped into segments as they come.
struct Run<'a> {
    inner: &'a Inner,
    state: &'a super::state::State,
    table: &'a TableState,
    next_id: u64,
    next_segment: u64,
    buffer: Vec<MemRow>,
    bytes: usize,
    written: Vec<SegState>,
    uniques: HashSet<Vec<u8>>,
    interner: super::memtable::Interner,
}

impl Run<'_> {
    fn push(&mut self, row: Row) -> Result<()> {
        let t = self.table;
        let row = row.normalize(&t.name, &t.schema)?;
        if let Some(u) = t.schema.unique() {
            let bytes = unique_value_bytes(&t.schema, u, row.get(u));
            if let Some(existing) = t.find_unique(&bytes)? {
                return Err(Error::Duplicate {
                    table: t.name.clone(),
                    column: t.schema.columns()[u.0 as usize].name.clone(),
                    existing,
                });
            }
            if !self.uniques.insert(bytes) {
                return Err(Error::InvalidArgument(format!(
                    "two ingested rows of table {:?} share a unique value",
                    t.name
                )));
            }
        }
        self.check_edges(&row)?;
        self.bytes += row.log_bytes();
        self.buffer
            .push(MemRow::new(self.next_id, &row, &t.schema, &mut self.interner));
        self.next_id += 1;
        if self.bytes >= INGEST_SEGMENT_BYTES {
            self.seal()?;
        }
        Ok(())
    }

    /// Edges name ids their target table has given out (this row's own
    /// included).
    fn check_edges(&self, row: &Row) -> Result<()> {
        for (c, col) in self.table.schema.columns().iter().enumerate() {
            if let (super::schema::ColumnKind::Edges(e), super::row::Value::Edges(ids)) = (&col.kind, &row.values()[c])
            {
                let limit = match &e.target {
                    None => self.next_id + 1,
                    Some(name) => {
                        self.state
                            .table_by_name(name)
                            .ok_or_else(|| {
                                Error::InvalidArgument(format!(
                                    "edges {:?} point into table {name:?}, which does not exist",
                                    col.name
                                ))
                            })?
                            .next_row_id
                    }
                };
                if let Some(bad) = ids.iter().find(|&&id| id >= limit) {
                    return Err(Error::InvalidArgument(format!(
                        "edge {:?} names row {bad}, which has not been given out",
                        col.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Write the buffered rows as one segment.
    fn seal(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let t = self.table;
        let id = self.next_segment;
        self.next_segment += 1;
        let fs = &*self.inner.opts.fs;
        let mut w = SegmentWriter::create(fs, &self.inner.dir, id, t.id, &t.schema, self.buffer.len() as u64, None)?;
        for m in &self.buffer {
            let v = t.view(At::Mem(m));
            w.push(m.id, &v.cells()?)?;
        }
        w.finish()?;
        let seg = Segment::open(fs, &self.inner.dir, id, t.id, &t.schema, None, false)?;
        Written::add(&self.inner.written.flushed, seg.file_len());
        self.written.push(SegState {
            seg,
            deletes: Default::default(),
        });
        self.buffer.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Where [`Store::ingest_with`](super::Store::ingest_with) takes rows to
/// insert and ids to delete; rows are written to segments as they come.
pub struct IngestSink<'a> {
    run: Run<'a>,
    deletes: Vec<RowId>,
}

impl IngestSink<'_> {
    /// Insert `row` at the next id; returns the id.
    pub fn insert(&mut self, row: Row) -> Result<RowId> {
        let id = RowId(self.run.next_id);
        self.run.push(row)?;
        Ok(id)
    }

    /// Delete row `id` if it is live (applied when the ingest publishes).
    pub fn delete(&mut self, id: RowId) {
        self.deletes.push(id);
    }
}

/// Ingest into `table` what `fill` puts into the sink, setting `watermark`,
/// as one published change.
pub(crate) fn ingest_with(
    w: &Writer,
    inner: &Inner,
    table: TableId,
    watermark: Option<u64>,
    fill: impl FnOnce(&mut IngestSink<'_>) -> Result<()>,
) -> Result<IngestReport> {
    let report = {
        let mut wal = w.io(inner)?;
        flush::flush_locked(inner, &mut wal)?;
        let st = inner.current();
        let t = st.table(table)?;
        let first = t.next_row_id;
        let mut sink = IngestSink {
            run: Run {
                inner,
                state: &st,
                table: t,
                next_id: first,
                next_segment: st.next_segment_id,
                buffer: Vec::new(),
                bytes: 0,
                written: Vec::new(),
                uniques: HashSet::new(),
                interner: Default::default(),
            },
            deletes: Vec::new(),
        };
        fill(&mut sink)?;
        sink.run.seal()?;
        sync_dir(&*inner.opts.fs, &inner.dir)?;
        let IngestSink { run, deletes } = sink;
        let (last, next_segment, written) = (run.next_id, run.next_segment, run.written);
        let mut next = (*st).clone();
        next.next_segment_id = next_segment;
        if let Some(m) = watermark {
            next.watermark = m;
        }
        let nt = next.table_mut(table.0)?;
        let mut deleted = 0;
        for id in &deletes {
            // The flush left every row in a segment.
            if let Some(Loc::Seg(i, r)) = nt.live(id.0) {
                nt.segments[i].deletes.insert(r);
                deleted += 1;
            }
        }
        let segments = written.len();
        nt.segments.extend(written);
        nt.next_row_id = last;
        next.generation += 1;
        publish(inner, next)?;
        IngestReport {
            ids: first..last,
            deleted,
            segments,
        }
    };
    Ok(report)
}
