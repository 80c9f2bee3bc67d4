//! One search over a table snapshot: every segment by its plan, the
//! memtable by scan, candidates pooled on approximate (int8) distances, the
//! pool rescored on f32 keys.

use super::filter::Compiled;
use super::hnsw::{self, QueryCode};
use super::params::{Hit, SearchParams};
use super::plan::{self, Plan};
use super::pool::Pool;
use crate::kernels::distance::{code_distance, distance, Metric};
use crate::kernels::{quant, scalar};
use crate::storage::{segment_row, RowRef, Segment, TableView};

/// The query in every form the scorers need.
struct Probe<'q> {
    key: &'q [f32],
    metric: Metric,
    code: Vec<i8>,
    scale: f32,
    norm: f32,
    graph: QueryCode,
    /// Score scans on f32 keys (`rescore == 0`).
    exact: bool,
}

impl Probe<'_> {
    fn approx(&self, r: &RowRef<'_>) -> f32 {
        if self.exact {
            distance(self.metric, self.key, r.key)
        } else {
            code_distance(self.metric, &self.code, self.scale, self.norm, r.code, r.scale, r.norm)
        }
    }
}

pub(crate) fn run(view: &TableView, key: &[f32], k: usize, p: &SearchParams) -> Vec<Hit> {
    let Some(filter) = p.filter.compile(view) else {
        return Vec::new();
    };
    // Bounding by the rows that exist keeps a huge k from sizing huge heaps.
    let k = k.min(view.len());
    if k == 0 {
        return Vec::new();
    }
    // A walk's whole list is worth rescoring: its distances on f32 keys cost
    // little next to the walk, and fix int8's misorderings near the cut.
    let keep = k.saturating_mul(p.rescore.max(1)).max(p.ef).min(view.len());
    let mut code = vec![0i8; key.len()];
    let scale = quant::quantize(key, &mut code);
    let probe = Probe {
        key,
        metric: p.metric,
        code,
        scale,
        norm: scalar::norm(key),
        graph: QueryCode::new(key),
        exact: p.rescore == 0,
    };
    let mut pool = Pool::new(keep);
    let filtered = !filter.is_trivial() || view.has_deletes();
    for s in view.segments() {
        search_segment(view, s, &filter, filtered, &probe, p.ef.max(k), &mut pool);
    }
    for r in view.memtable_rows() {
        if !view.is_deleted(r.id.0) && filter.matches(&r) {
            pool.push(probe.approx(&r), r);
        }
    }
    let mut best = Pool::new(k);
    for c in pool.into_sorted() {
        best.push(distance(p.metric, key, c.row.key), c.row);
    }
    best.into_sorted()
        .into_iter()
        .map(|s| Hit {
            id: s.row.id,
            distance: s.distance,
        })
        .collect()
}

fn search_segment<'a>(
    view: &TableView,
    s: &'a Segment,
    filter: &Compiled,
    filtered: bool,
    probe: &Probe<'_>,
    ef: usize,
    pool: &mut Pool<'a>,
) {
    // Whole columns, fetched once: the per-row checks below index them.
    let (ids, metas) = (s.ids(), s.metas());
    let deletes = view.has_deletes();
    let admit = |i: u32| {
        let (id, i) = (ids[i as usize], i as usize);
        !(deletes && view.is_deleted(id)) && filter.matches_meta(&metas[i], id)
    };
    match plan::choose(s, probe.metric, ef, filtered, &admit) {
        Plan::Graph { graph, ef } => {
            for n in hnsw::search::search(&graph, s.codes(), s.dim, &probe.graph, ef, &admit) {
                pool.push(n.d, segment_row(s, n.node as usize));
            }
        }
        Plan::Scan => {
            let (codes, scales, norms, dim) = (s.codes(), s.scales(), s.norms(), s.dim);
            let mut score = |i: usize| {
                let d = if probe.exact {
                    distance(probe.metric, probe.key, s.key(i))
                } else {
                    let code = &codes[i * dim..(i + 1) * dim];
                    code_distance(
                        probe.metric,
                        &probe.code,
                        probe.scale,
                        probe.norm,
                        code,
                        scales[i],
                        norms[i],
                    )
                };
                if pool.admits(d) {
                    pool.push(d, segment_row(s, i));
                }
            };
            match filter.ids().filter(|set| set.len().saturating_mul(16) < s.rows) {
                // A small id set: look its rows up instead of checking them all.
                Some(set) => set
                    .iter()
                    .filter_map(|&id| s.find(id))
                    .filter(|&i| admit(i as u32))
                    .for_each(&mut score),
                None => (0..s.rows).filter(|&i| admit(i as u32)).for_each(&mut score),
            }
        }
    }
}
