//! Best-first search of one graph level — the loop that both building and
//! querying run — and the neighbour-selection heuristic.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A node and its distance to whatever is being searched for; ordered by
/// distance, then node, so heaps are deterministic.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct Near {
    pub d: f32,
    pub node: u32,
}

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.node.cmp(&o.node))
    }
}

/// Nodes seen by one search, cleared in O(1) by bumping an epoch.
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub fn new() -> Visited {
        Visited {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    /// Start a search over `n` nodes.
    pub fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Mark `node`; false if it was already marked.
    pub fn insert(&mut self, node: u32) -> bool {
        let m = &mut self.marks[node as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

/// Distances to whatever a walk searches for, by node; `prefetch` hints
/// that a node is about to be scored. Any `Fn(u32) -> f32` is one (with no
/// prefetch).
pub(crate) trait Space {
    fn dist(&self, node: u32) -> f32;
    fn prefetch(&self, _node: u32) {}
}

impl<F: Fn(u32) -> f32> Space for F {
    fn dist(&self, node: u32) -> f32 {
        self(node)
    }
}

/// Read access to a graph's adjacency, whether being built or mapped.
pub(crate) trait Links {
    /// Number of nodes.
    fn nodes(&self) -> usize;
    /// Copy the neighbours of `node` at `level` into `out` (cleared first).
    /// Neighbours outside `0..nodes()` are never written.
    fn neighbours(&self, node: u32, level: usize, out: &mut Vec<u32>);
}

/// Greedy descent at one level: move to a closer neighbour while there is one.
pub(crate) fn greedy(g: &impl Links, dist: &impl Space, mut cur: Near, level: usize, buf: &mut Vec<u32>) -> Near {
    loop {
        g.neighbours(cur.node, level, buf);
        for &n in buf.iter() {
            dist.prefetch(n);
        }
        let mut moved = false;
        for &n in buf.iter() {
            let d = dist.dist(n);
            if d < cur.d {
                cur = Near { d, node: n };
                moved = true;
            }
        }
        if !moved {
            return cur;
        }
    }
}

/// Best-first search of `level` from `entry`, keeping the `ef` nearest nodes
/// that `admit` accepts (nearest first). Rejected nodes are still walked
/// through, so a filter narrows the answer without cutting the graph.
pub(crate) fn search_level(
    g: &impl Links,
    dist: &impl Space,
    entry: &[Near],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    admit: &impl Fn(u32) -> bool,
) -> Vec<Near> {
    visited.reset(g.nodes());
    let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
    let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
    for &e in entry {
        if visited.insert(e.node) {
            candidates.push(Reverse(e));
            if admit(e.node) {
                best.push(e);
            }
        }
    }
    while best.len() > ef {
        best.pop();
    }
    let mut buf = Vec::new();
    while let Some(Reverse(c)) = candidates.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c.d > w.d) {
            break;
        }
        g.neighbours(c.node, level, &mut buf);
        // Mark, then start loading every new neighbour, then score them:
        // their cache misses overlap.
        buf.retain(|&n| visited.insert(n));
        for &n in &buf {
            dist.prefetch(n);
        }
        for &n in &buf {
            let d = dist.dist(n);
            if best.len() < ef || best.peek().is_some_and(|w| d < w.d) {
                candidates.push(Reverse(Near { d, node: n }));
                if admit(n) {
                    best.push(Near { d, node: n });
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
    }
    let mut out = best.into_vec();
    out.sort_unstable();
    out
}

/// The neighbour-selection heuristic of HNSW (Malkov & Yashunin, alg. 4):
/// walking `sorted` nearest first, keep a candidate only if it is closer to
/// the base node than to every neighbour already kept, up to `m`. This keeps
/// links pointing in diverse directions, which is what makes the graph
/// navigable across clusters.
pub(crate) fn select(sorted: &[Near], m: usize, between: &impl Fn(u32, u32) -> f32) -> Vec<u32> {
    if sorted.len() <= m {
        return sorted.iter().map(|n| n.node).collect();
    }
    let mut kept: Vec<u32> = Vec::with_capacity(m);
    for c in sorted {
        if kept.len() == m {
            break;
        }
        if kept.iter().all(|&r| between(c.node, r) >= c.d) {
            kept.push(c.node);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_set_survives_epoch_wrap() {
        let mut v = Visited::new();
        v.reset(4);
        v.epoch = u32::MAX;
        assert!(v.insert(1));
        v.reset(4);
        assert!(v.insert(1) && !v.insert(1));
    }

    #[test]
    fn selection_prefers_diverse_neighbours() {
        // Points on a line around node 0. Node 2 is closer to the kept node 1
        // than to 0, node 4 closer to the kept node 3: both are dropped,
        // although there is room for three.
        let pos = [0.0f32, 1.0, 2.0, -1.5, -3.0];
        let between = |a: u32, b: u32| (pos[a as usize] - pos[b as usize]).abs();
        let mut sorted: Vec<Near> = (1..5)
            .map(|n| Near {
                d: pos[n].abs(),
                node: n as u32,
            })
            .collect();
        sorted.sort();
        assert_eq!(select(&sorted, 3, &between), vec![1, 3]);
        // With no more candidates than room, all are kept.
        assert_eq!(select(&sorted[..2], 3, &between), vec![1, 3]);
    }
}
