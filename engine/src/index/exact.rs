//! Exact search: score every admitted row on its int8 code, keep the best
//! `k * rescore`, rescore those on f32 keys. Cost is one pass over the codes
//! (a quarter of the keys' bytes); the answer equals brute force over f32
//! keys whenever the true top k are among the kept candidates.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::params::{Hit, SearchParams};
use crate::kernels::distance::{code_distance, distance};
use crate::kernels::{quant, scalar};
use crate::storage::{RowRef, TableView};

/// A heap entry ordered by distance, then id, so the worst is on top.
struct Scored<'a> {
    distance: f32,
    row: RowRef<'a>,
}

impl PartialEq for Scored<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored<'_> {}
impl PartialOrd for Scored<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored<'_> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.distance.total_cmp(&o.distance).then(self.row.id.cmp(&o.row.id))
    }
}

/// Keep the `n` smallest.
fn push<'a>(heap: &mut BinaryHeap<Scored<'a>>, n: usize, s: Scored<'a>) {
    if heap.len() < n {
        heap.push(s);
    } else if heap.peek().is_some_and(|worst| s < *worst) {
        heap.pop();
        heap.push(s);
    }
}

pub(crate) fn search(view: &TableView, query: &[f32], k: usize, p: &SearchParams) -> Vec<Hit> {
    let Some(filter) = p.filter.compile(view) else {
        return Vec::new();
    };
    let exact = |r: &RowRef<'_>| distance(p.metric, query, r.key);
    let mut best = BinaryHeap::with_capacity(k + 1);
    if p.rescore == 0 {
        view.for_each(|r| {
            if filter.matches(&r) {
                push(
                    &mut best,
                    k,
                    Scored {
                        distance: exact(&r),
                        row: r,
                    },
                );
            }
        });
    } else {
        let mut qcode = vec![0i8; query.len()];
        let qscale = quant::quantize(query, &mut qcode);
        let qnorm = scalar::norm(query);
        let keep = k.saturating_mul(p.rescore).max(k);
        let mut candidates = BinaryHeap::with_capacity(keep + 1);
        view.for_each(|r| {
            if filter.matches(&r) {
                let d = code_distance(p.metric, &qcode, qscale, qnorm, r.code, r.scale, r.norm);
                push(&mut candidates, keep, Scored { distance: d, row: r });
            }
        });
        for c in candidates {
            push(
                &mut best,
                k,
                Scored {
                    distance: exact(&c.row),
                    row: c.row,
                },
            );
        }
    }
    let mut hits: Vec<Scored<'_>> = best.into_vec();
    hits.sort();
    hits.into_iter()
        .map(|s| Hit {
            id: s.row.id,
            distance: s.distance,
        })
        .collect()
}
