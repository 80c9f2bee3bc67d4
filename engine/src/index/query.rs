//! One search over a table of a snapshot: every segment by its plan, the
//! memtable by scan, candidates pooled on approximate (int8) distances, the
//! pool rescored on f32 keys and ranked (by the scorer, if any).

use super::filter::{Bound, Pred};
use super::hnsw::{self, GraphRef, QueryCode};
use super::params::{HitRef, SearchParams};
use super::plan::{self, Plan, PlanChoice};
use super::pool::Pool;
use crate::error::{Error, Result};
use crate::kernels::distance::{code_distance, distance, Metric};
use crate::kernels::{quant, scalar};
use crate::storage::{At, KeyCol, KeyData, SegState, TableState, TableView};

/// The query in every form the scorers need.
struct Probe<'q> {
    key: &'q [f32],
    metric: Metric,
    code: Vec<i8>,
    scale: f32,
    norm: f32,
    graph: QueryCode,
    /// Score scans on f32 keys (`rescore == 0`, or a key without codes).
    exact: bool,
}

impl Probe<'_> {
    #[inline]
    fn approx(&self, key: &[f32], code: &[i8], scale: f32, norm: f32) -> f32 {
        if self.exact {
            distance(self.metric, self.key, key)
        } else {
            code_distance(self.metric, &self.code, self.scale, self.norm, code, scale, norm)
        }
    }
}

/// Check `query` against key column `col` of `t`.
pub(crate) fn check_query(t: &TableView<'_>, col: KeyCol, query: &[f32], k: usize) -> Result<()> {
    let spec = t.schema().key_spec(col).ok_or_else(|| Error::ColumnType {
        column: format!("#{}", col.0 .0),
        expected: "key".into(),
    })?;
    if query.len() != spec.dim as usize {
        return Err(Error::DimensionMismatch {
            table: t.name().to_string(),
            expected: spec.dim,
            found: u32::try_from(query.len()).unwrap_or(u32::MAX),
        });
    }
    if let Some(index) = query.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            what: "query",
            index,
            value: query[index],
        });
    }
    if k == 0 {
        return Err(Error::InvalidArgument("k must be at least 1".into()));
    }
    Ok(())
}

/// The `k` best rows of `t` for `query` (checked by [`check_query`]).
pub(crate) fn run<'s>(t: TableView<'s>, query: &[f32], k: usize, p: &SearchParams) -> Result<Vec<HitRef<'s>>> {
    let schema = t.schema();
    let col = match p.column {
        Some(c) => c,
        None => schema
            .first_key()
            .ok_or_else(|| Error::InvalidArgument(format!("table {:?} has no key column to search", t.name())))?,
    };
    check_query(&t, col, query, k)?;
    let spec = schema
        .key_spec(col)
        .ok_or_else(|| Error::Internal("key spec vanished".into()))?;
    let metric = p.metric.unwrap_or(spec.metric.into());
    let pred = p.filter.compile(schema)?;
    let ts: &'s TableState = t.t;
    let live = t.len();
    // Bounding by the rows that exist keeps a huge k from sizing huge heaps.
    let k = k.min(live);
    if k == 0 {
        return Ok(Vec::new());
    }
    // A walk's whole list is worth rescoring: its distances on f32 keys cost
    // little next to the walk, and fix int8's misorderings near the cut
    // (unless the caller needs only a good top k: `rescore_walk` off).
    let walked = if p.rescore_walk { p.ef } else { k };
    let keep = k.saturating_mul(p.rescore.max(1)).max(walked).min(live);
    let mut code = vec![0i8; query.len()];
    let scale = quant::quantize(query, &mut code);
    let probe = Probe {
        key: query,
        metric,
        code,
        scale,
        norm: scalar::norm(query),
        graph: QueryCode::new(metric, query),
        exact: p.rescore == 0 || !spec.codes,
    };
    let mut pool = Pool::new(keep);
    let seg_rows: usize = ts.segments.iter().map(|s| s.seg.rows).sum();
    for s in &ts.segments {
        let ef = if p.ef_by_size && seg_rows > 0 {
            (p.ef * s.seg.rows).div_ceil(seg_rows)
        } else {
            p.ef
        };
        search_segment(ts, s, col, &pred, &probe, ef.max(k), p.plan, &mut pool);
    }
    let kslot = col.0 .0;
    for (pos, m) in ts.memtable.iter() {
        if ts.memtable.deletes.contains(pos) {
            continue;
        }
        let v = ts.view(At::Mem(m));
        if !pred.is_true() && !pred.matches(&v) {
            continue;
        }
        if let Some(key) = m.keys.get(slot_of(ts, kslot)) {
            pool.push(probe.approx(&key.f32, &key.code, key.scale, key.norm), m.id, At::Mem(m));
        }
    }
    let mut ranked: Vec<HitRef<'s>> = pool
        .into_sorted()
        .into_iter()
        .map(|c| {
            let row = ts.view(c.at);
            let d = distance(metric, query, row.key(col));
            let score = p.scorer.as_ref().map_or(d, |f| f(&row, d));
            HitRef {
                id: row.id(),
                distance: d,
                score,
                row,
            }
        })
        .collect();
    ranked.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.id.cmp(&b.id)));
    ranked.truncate(k);
    Ok(ranked)
}

/// The key slot of column `col` in memtable rows.
fn slot_of(t: &TableState, col: u16) -> usize {
    match t.layout.slots.get(col as usize) {
        Some(crate::storage::Slot::Key(k)) => *k as usize,
        _ => usize::MAX,
    }
}

#[allow(clippy::too_many_arguments)]
fn search_segment<'s>(
    t: &'s TableState,
    s: &'s SegState,
    col: KeyCol,
    pred: &Pred,
    probe: &Probe<'_>,
    ef: usize,
    plan: PlanChoice,
    pool: &mut Pool<'s>,
) {
    let seg = &s.seg;
    let bound = pred.bind(seg);
    if matches!(bound, Bound::False) {
        return;
    }
    let kd: KeyData<'s> = seg.key(col.0 .0 as usize, &t.schema);
    let ids = seg.ids();
    let deletes = &s.deletes;
    let has_deletes = !deletes.is_empty();
    let patched = |id: u64, c: u16| t.patches.get(id, c).and_then(|p| p.fixed(c));
    let trivial = matches!(bound, Bound::True);
    let admit = |i: u32| {
        let i = i as usize;
        !(has_deletes && deletes.contains(i)) && (trivial || bound.holds(i, ids[i], &patched))
    };
    let graph = GraphRef::parse(kd.graph, seg.rows).filter(|g| g.metric == probe.metric);
    let candidates = if trivial { None } else { bound.candidates(seg) };
    let filtered = !trivial || has_deletes;
    let push = |pool: &mut Pool<'s>, i: usize| {
        let d = if probe.exact {
            distance(probe.metric, probe.key, kd.key(i))
        } else {
            probe.approx(&[], kd.code(i), kd.scales[i], kd.norms[i])
        };
        if pool.admits(d) {
            pool.push(d, ids[i], At::Seg(seg, i as u32));
        }
    };
    match plan::choose(seg.rows, graph, ef, filtered, candidates.as_deref(), &admit, plan) {
        Plan::Graph { graph, ef } => {
            for n in hnsw::search::search(&graph, kd.codes, kd.dim, &probe.graph, ef, &admit) {
                let i = n.node as usize;
                pool.push(n.d, ids[i], At::Seg(seg, n.node));
            }
        }
        Plan::Candidates => {
            for &i in candidates.as_deref().unwrap_or(&[]) {
                if (i as usize) < seg.rows && admit(i) {
                    push(pool, i as usize);
                }
            }
        }
        Plan::Scan => {
            for i in 0..seg.rows {
                if admit(i as u32) {
                    push(pool, i);
                }
            }
        }
    }
}
