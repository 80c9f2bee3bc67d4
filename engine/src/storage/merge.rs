//! Merge (storage compaction): a run of a table's adjacent segments is
//! rewritten as one, without its deleted rows, with the *flushed* updates
//! folded in and a graph built for each key column that asks for one.
//!
//! Three steps: **plan** under the I/O mutex (choose the segments, reserve
//! the new segment's id), **write** with no lock commits wait on (they go
//! on meanwhile: new rows land in the memtable and in new segments, new
//! deletes and updates in the state), **publish** under the I/O mutex
//! (replace the run, carry over what changed since the plan). Only one
//! merge runs at a time. `docs/design.md` §6.3 gives the failure cases.

use std::collections::HashSet;
use std::sync::Arc;

use super::format::sync_dir;
use super::inner::Inner;
use super::options::MergePolicy;
use super::patch::{self, Patches, RowPatch};
use super::publish::publish;
use super::role::Writer;
use super::schema::ColumnKind;
use super::segment::{Segment, SegmentWriter};
use super::state::{SegState, State, TableState};
use super::view::{At, RowView};
use crate::error::{Error, Result};

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Segments rewritten.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Deleted rows dropped for good.
    pub rows_dropped: u64,
    /// Rows written (live rows of the merged segments).
    pub rows_written: u64,
    /// Bytes of the segments written.
    pub bytes_written: u64,
    /// Edges of written rows that name a row no longer live (deleted, or
    /// never written): kept as they are, and counted here.
    pub dangling_edges: u64,
}

impl MergeReport {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &MergeReport) {
        self.segments_in += other.segments_in;
        self.segments_out += other.segments_out;
        self.rows_dropped += other.rows_dropped;
        self.rows_written += other.rows_written;
        self.bytes_written += other.bytes_written;
        self.dangling_edges += other.dangling_edges;
    }
}

/// Which segments a merge rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MergeScope {
    /// Every segment of a table, into one, when the table has several, any
    /// deleted segment row, or (with an indexer) a segment without a graph.
    All,
    /// The trailing run of segments without a graph (what flushes leave
    /// behind), into one that has one; segments with graphs keep theirs.
    Unindexed,
    /// What [`MergePolicy`] asks for, one run per table: a segment with too
    /// many deleted rows, else the oldest `fanout` adjacent segments of the
    /// lowest size tier that has that many.
    Tiered,
}

/// One table's share of a merge.
struct Plan {
    table: u32,
    /// The table as of the plan.
    at_plan: TableState,
    /// Positions of the run in `at_plan.segments`.
    run: std::ops::Range<usize>,
    live: u64,
    dropped: u64,
    id: u64,
}

/// The run of `t`'s segments that `scope` rewrites, if any.
fn choose(
    t: &TableState,
    scope: MergeScope,
    indexing: bool,
    policy: Option<&MergePolicy>,
) -> Option<std::ops::Range<usize>> {
    let unindexed = |s: &SegState| indexing && !s.seg.indexed(&t.schema);
    let run = match scope {
        MergeScope::All => 0..t.segments.len(),
        MergeScope::Unindexed => {
            let start = t.segments.iter().rposition(|s| !unindexed(s)).map_or(0, |i| i + 1);
            start..t.segments.len()
        }
        MergeScope::Tiered => return tiered(t, policy?),
    };
    let segs = &t.segments[run.clone()];
    let dead: usize = segs.iter().map(|s| s.deletes.len()).sum();
    let needs_graph = segs.iter().any(unindexed);
    let patched = scope == MergeScope::All && !t.flushed.is_empty();
    if segs.is_empty() || (segs.len() < 2 && dead == 0 && !needs_graph && !patched) {
        return None;
    }
    Some(run)
}

/// Whether `scope` would rewrite some of `t`'s segments.
pub(crate) fn chosen(t: &TableState, scope: MergeScope, indexing: bool, policy: Option<&MergePolicy>) -> bool {
    choose(t, scope, indexing, policy).is_some()
}

/// The run [`MergeScope::Tiered`] takes from `t`, if any.
fn tiered(t: &TableState, p: &MergePolicy) -> Option<std::ops::Range<usize>> {
    let too_dead = |s: &SegState| s.seg.rows > 0 && s.deletes.len() as f64 >= p.max_deleted_ratio * s.seg.rows as f64;
    if let Some(i) = t.segments.iter().position(too_dead) {
        return Some(i..i + 1);
    }
    let fanout = p.fanout.max(2);
    let tiers: Vec<Option<u32>> = t.segments.iter().map(|s| p.tier(s.seg.file_len())).collect();
    let mut best: Option<(u32, usize)> = None;
    let mut i = 0;
    while i < tiers.len() {
        let j = i + tiers[i..].iter().take_while(|&&x| x == tiers[i]).count();
        if let Some(tier) = tiers[i] {
            if j - i >= fanout && best.is_none_or(|(b, _)| tier < b) {
                best = Some((tier, i));
            }
        }
        i = j;
    }
    best.map(|(_, start)| start..start + fanout)
}

/// A planned merge: what it rewrites, and the state it was planned on.
pub(crate) struct Planned {
    plans: Vec<Plan>,
    at_plan: Arc<State>,
}

impl Planned {
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

/// The new segments of a merge, written but not yet published.
pub(crate) struct Written {
    built: Vec<Option<Arc<Segment>>>,
    report: MergeReport,
}

/// Step 1, under the I/O mutex: choose each table's run and reserve the new
/// segments' ids. With `publish_reservation`, a manifest recording the
/// reservation is published, so that another process taking the writer
/// role before this merge publishes cannot give the ids out again.
pub(crate) fn plan(w: &Writer, inner: &Inner, scope: MergeScope, publish_reservation: bool) -> Result<Planned> {
    let mut wal = w.io(inner)?;
    let mut next = (*inner.current()).clone();
    let indexing = inner.opts.indexer.is_some();
    let policy = inner.opts.merge_policy.as_ref();
    let mut plans = Vec::new();
    for t in &next.tables {
        let Some(run) = choose(t, scope, indexing, policy) else {
            continue;
        };
        let segs = &t.segments[run.clone()];
        let rows: u64 = segs.iter().map(|s| s.seg.rows as u64).sum();
        let dropped: u64 = segs.iter().map(|s| s.deletes.len() as u64).sum();
        plans.push(Plan {
            table: t.id,
            at_plan: t.clone(),
            run,
            live: rows - dropped,
            dropped,
            id: 0,
        });
    }
    for p in plans.iter_mut() {
        p.id = next.next_segment_id;
        next.next_segment_id += 1;
    }
    if !plans.is_empty() {
        if publish_reservation {
            // A manifest carries the deletes applied so far: the log records
            // they follow must be as durable as it is (see `publish_merge`).
            wal.sync().map_err(|e| inner.fail(e))?;
            next.generation += 1;
            publish(inner, next)?;
        } else {
            // Reserved in memory only: this handle stays the writer until it
            // publishes, and a crash before then leaves an orphan file that
            // open removes.
            *inner.state.write() = Arc::new(next);
        }
    }
    Ok(Planned {
        plans,
        at_plan: inner.current(),
    })
}

/// Step 2, with no lock that commits wait on: write the new segments.
pub(crate) fn write(inner: &Inner, planned: &Planned) -> Result<Written> {
    let mut report = MergeReport::default();
    let mut built = Vec::with_capacity(planned.plans.len());
    for p in &planned.plans {
        report.segments_in += p.run.len();
        report.rows_dropped += p.dropped;
        if p.live > 0 {
            report.dangling_edges += write_merged(inner, &planned.at_plan, p)?;
            let seg = Segment::open(
                &*inner.opts.fs,
                &inner.dir,
                p.id,
                p.table,
                &p.at_plan.schema,
                None,
                false,
            )?;
            report.rows_written += seg.rows as u64;
            report.bytes_written += seg.file_len();
            built.push(Some(seg));
            report.segments_out += 1;
        } else {
            built.push(None);
        }
    }
    sync_dir(&*inner.opts.fs, &inner.dir)?;
    super::inner::Written::add(&inner.written.merged, report.bytes_written);
    Ok(Written { built, report })
}

/// Step 3, under the I/O mutex: replace each run with its new segment,
/// carrying over what changed since the plan, and publish. The store must
/// be the one planned on (a rebuild may have swapped the directory).
pub(crate) fn publish_merge(w: &Writer, inner: &Inner, planned: Planned, written: Written) -> Result<MergeReport> {
    let mut wal = w.io(inner)?;
    // The manifest records the deletes applied so far, some of them only in
    // the log: make the log durable first, or a crash could keep a delete
    // and lose a change logged before it (under `Batch` or `Off`).
    wal.sync().map_err(|e| inner.fail(e))?;
    let mut next = (*inner.current()).clone();
    if next.incarnation != planned.at_plan.incarnation {
        return Err(Error::Internal("the store was replaced while a merge of it ran".into()));
    }
    for (p, seg) in planned.plans.iter().zip(written.built) {
        let mut next_id = next.next_segment_id;
        swap_in(
            &*inner.opts.fs,
            &inner.dir,
            &mut next_id,
            next.table_mut(p.table)?,
            p,
            seg,
        )?;
        next.next_segment_id = next_id;
    }
    next.generation += 1;
    publish(inner, next)?;
    Ok(written.report)
}

/// Rewrite each table's segments chosen by `scope`, as the writer `w` holds
/// for the whole merge (one merge at a time per handle).
pub(crate) fn merge(w: &Writer, inner: &Inner, scope: MergeScope, wait: bool) -> Result<MergeReport> {
    let _one = if wait {
        w.merge.lock()
    } else {
        match w.merge.try_lock() {
            Some(g) => g,
            // A merge already running: the segments wait for the next one.
            None => return Ok(MergeReport::default()),
        }
    };
    let planned = plan(w, inner, scope, false)?;
    if planned.is_empty() {
        return Ok(MergeReport::default());
    }
    let written = write(inner, &planned)?;
    publish_merge(w, inner, planned, written)
}

/// Copy a plan's live rows (flushed updates applied) into its new segment,
/// building its graphs; returns the count of dangling edges.
fn write_merged(inner: &Inner, st: &State, p: &Plan) -> Result<u64> {
    let t = &p.at_plan;
    let indexer = inner.opts.indexer.as_deref();
    let mut w = SegmentWriter::create(&*inner.opts.fs, &inner.dir, p.id, t.id, &t.schema, p.live, indexer)?;
    let edge_targets: Vec<(usize, Option<&TableState>)> = t
        .schema
        .columns()
        .iter()
        .enumerate()
        .filter_map(|(c, col)| match &col.kind {
            ColumnKind::Edges(e) => Some((
                c,
                match &e.target {
                    None => Some(t),
                    Some(name) => st.table_by_name(name),
                },
            )),
            _ => None,
        })
        .collect();
    let mut dangling = 0u64;
    for s in &t.segments[p.run.clone()] {
        for r in 0..s.seg.rows {
            if s.deletes.contains(r) {
                continue;
            }
            let v = RowView::with_patches(t, &t.flushed, At::Seg(&s.seg, r as u32));
            let cells = v.cells()?;
            for (c, target) in &edge_targets {
                if let super::segment::writer::Cell::Edges(e) = &cells[*c] {
                    dangling += e.iter().filter(|&&id| !target.is_some_and(|tt| tt.is_live(id))).count() as u64;
                }
            }
            w.push(v.id().0, &cells)?;
        }
    }
    w.finish()?;
    Ok(dangling)
}

/// Replace plan `p`'s run in `t` (the table as it is now) with `seg`,
/// carrying over the deletes and updates that arrived during the merge.
fn swap_in(
    fs: &dyn super::fs::Fs,
    dir: &std::path::Path,
    next_id: &mut u64,
    t: &mut TableState,
    p: &Plan,
    seg: Option<Arc<Segment>>,
) -> Result<()> {
    let planned = &p.at_plan.segments[p.run.clone()];
    let start = t.segments.iter().position(|s| s.seg.id == planned[0].seg.id);
    let intact = start.is_some_and(|i| {
        t.segments.len() >= i + planned.len() && planned.iter().zip(&t.segments[i..]).all(|(a, b)| a.seg.id == b.seg.id)
    });
    let (Some(start), true) = (start, intact) else {
        return Err(Error::Internal(format!(
            "merge of table {}: its segments changed while merging",
            p.table
        )));
    };
    let now: Vec<SegState> = t.segments.drain(start..start + planned.len()).collect();
    let mut merged_ids: HashSet<u64> = HashSet::new();
    if let Some(seg) = seg {
        let mut deletes = super::deletes::Deletes::default();
        // A row deleted after the plan stays deleted in the new segment.
        for (before, after) in planned.iter().zip(&now) {
            for pos in after.deletes.iter().filter(|&pos| !before.deletes.contains(pos)) {
                if let Some(r) = seg.find(after.seg.ids()[pos]) {
                    deletes.insert(r);
                }
            }
        }
        merged_ids.extend(seg.ids().iter().copied());
        t.segments.insert(start, SegState { seg, deletes });
    }
    // Updates folded into the new segment leave the patches; those made
    // since the plan (another value by now) stay, as do patches of rows of
    // other segments. Patches of dropped rows go. Patches are compared by
    // value: a handle that reloaded the store since the plan holds copies.
    let folded = |patches: &mut Patches, plan: &Patches| -> bool {
        let mut changed = false;
        for (id, pp) in plan.rows.iter() {
            let in_run = planned.iter().any(|s| s.seg.find(*id).is_some());
            if !in_run {
                continue;
            }
            let same = patches.row(*id).is_some_and(|cur: &Arc<RowPatch>| **cur == **pp);
            if same || !merged_ids.contains(id) {
                patches.remove(*id);
                changed = true;
            }
        }
        changed
    };
    folded(&mut t.patches, &p.at_plan.flushed);
    if folded(&mut t.flushed, &p.at_plan.flushed) {
        t.patch_file = if t.flushed.is_empty() {
            None
        } else {
            let id = *next_id;
            *next_id += 1;
            patch::write(fs, dir, id, t.id, &t.flushed)?;
            sync_dir(fs, dir)?;
            Some(id)
        };
    }
    Ok(())
}
