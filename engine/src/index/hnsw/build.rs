//! Building a segment's graph: nodes inserted in parallel (crossbeam scoped
//! threads), each node's adjacency behind its own lock.
//!
//! Lock discipline: a thread holds at most one node lock at a time and never
//! calls out while holding it, except to compute distances over immutable
//! codes; the entry point has its own lock, never held with a node lock. So
//! the build cannot deadlock, and a reader of a list always sees a list some
//! writer finished (`loom_tests` below checks both on small models).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::layer::{greedy, search_level, select, Links, Near, Space, Visited};
use super::space::{Codes, FromRow};
use super::sync::{Mutex, RwLock};

/// Highest level a node may get; with M >= 2 a level above this has
/// probability below 1e-9 per node.
pub(crate) const MAX_LEVEL: usize = 15;

/// A graph under construction.
pub(crate) struct BuildGraph {
    pub m: usize,
    pub m0: usize,
    pub levels: Vec<u8>,
    /// Per node, its neighbour list at each of its levels.
    pub links: Vec<Mutex<Vec<Vec<u32>>>>,
    /// Entry node and top level, once a node is in.
    pub entry: RwLock<Option<(u32, usize)>>,
}

/// Deterministic level of node `i`: `floor(-ln(u) / ln(M))` with `u`
/// uniform in (0, 1] from a hash of (seed, i), so a build is reproducible
/// whatever the thread interleaving.
pub(crate) fn level_of(seed: u64, i: u64, m: usize) -> usize {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let l = (-u.ln() / (m.max(2) as f64).ln()).floor();
    (l as usize).min(MAX_LEVEL)
}

impl BuildGraph {
    pub fn new(n: usize, m: usize, seed: u64) -> BuildGraph {
        let levels: Vec<u8> = (0..n).map(|i| level_of(seed, i as u64, m) as u8).collect();
        let links = levels
            .iter()
            .map(|&l| Mutex::new(vec![Vec::new(); l as usize + 1]))
            .collect();
        BuildGraph {
            m,
            m0: 2 * m,
            levels,
            links,
            entry: RwLock::new(None),
        }
    }

    fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Insert node `q`, linking it both ways at each of its levels.
    pub fn insert(&self, q: u32, codes: &Codes<'_>, ef_construction: usize, visited: &mut Visited) {
        let level = self.levels[q as usize] as usize;
        let Some((ep, top)) = *self.entry.read() else {
            let mut e = self.entry.write();
            if e.is_none() {
                *e = Some((q, level));
                return;
            }
            drop(e);
            return self.insert(q, codes, ef_construction, visited);
        };
        let dist = FromRow { codes, row: q };
        let mut buf = Vec::new();
        let mut cur = Near {
            d: dist.dist(ep),
            node: ep,
        };
        for l in (level + 1..=top).rev() {
            cur = greedy(self, &dist, cur, l, &mut buf);
        }
        let mut entry = vec![cur];
        for l in (0..=level.min(top)).rev() {
            let found = search_level(self, &dist, &entry, ef_construction, l, visited, &|n| n != q);
            let chosen = select(&found, self.m, &|a, b| codes.between(a, b));
            self.links[q as usize].lock()[l] = chosen.clone();
            for n in chosen {
                self.link(n, q, l, codes);
            }
            if !found.is_empty() {
                entry = found;
            }
        }
        if level > top {
            let mut e = self.entry.write();
            if e.is_none_or(|(_, t)| level > t) {
                *e = Some((q, level));
            }
        }
    }

    /// Add `q` to `n`'s list at `level`, re-selecting when the list is full.
    pub fn link(&self, n: u32, q: u32, level: usize, codes: &Codes<'_>) {
        let max = self.max_links(level);
        let mut lists = self.links[n as usize].lock();
        let list = &mut lists[level];
        if list.contains(&q) {
            return;
        }
        if list.len() < max {
            list.push(q);
            return;
        }
        let mut cands: Vec<Near> = list
            .iter()
            .chain(std::iter::once(&q))
            .map(|&c| Near {
                d: codes.between(n, c),
                node: c,
            })
            .collect();
        cands.sort_unstable();
        *list = select(&cands, max, &|a, b| codes.between(a, b));
    }

    /// Insert every node using `threads` threads.
    pub fn build(&self, codes: &Codes<'_>, ef_construction: usize, threads: usize) {
        let n = self.levels.len();
        if n == 0 {
            return;
        }
        // The first node becomes the entry alone, so no thread starts on an
        // empty graph with a competing entry.
        self.insert(0, codes, ef_construction, &mut Visited::new());
        let next = AtomicUsize::new(1);
        let work = |visited: &mut Visited| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            self.insert(i as u32, codes, ef_construction, visited);
        };
        let threads = threads.clamp(1, n);
        if threads == 1 {
            work(&mut Visited::new());
        } else {
            crossbeam::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|_| work(&mut Visited::new()));
                }
            })
            .expect("graph build threads do not panic");
        }
        self.adopt_orphans();
    }

    /// Give every level-0 node at least one incoming link. Pruning can drop a
    /// node from every list that held it — more often when nodes are
    /// inserted concurrently and miss each other — and such a node can never
    /// be found. Each orphan is adopted by its nearest neighbour, in place of
    /// that neighbour's link to the node with the most other incoming links.
    fn adopt_orphans(&self) {
        let n = self.levels.len();
        let mut indegree = vec![0u32; n];
        for lists in &self.links {
            for &t in &lists.lock()[0] {
                indegree[t as usize] += 1;
            }
        }
        for q in 0..n as u32 {
            if indegree[q as usize] > 0 || n == 1 {
                continue;
            }
            let Some(&parent) = self.links[q as usize].lock()[0].first() else {
                continue;
            };
            let mut lists = self.links[parent as usize].lock();
            let list = &mut lists[0];
            if list.len() < self.m0 {
                list.push(q);
                indegree[q as usize] += 1;
                continue;
            }
            let Some((slot, &victim)) = list.iter().enumerate().max_by_key(|(_, &t)| indegree[t as usize]) else {
                continue;
            };
            if indegree[victim as usize] > 1 {
                list[slot] = q;
                indegree[victim as usize] -= 1;
                indegree[q as usize] += 1;
            }
        }
    }
}

impl Links for BuildGraph {
    fn nodes(&self) -> usize {
        self.levels.len()
    }

    fn neighbours(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(list) = self.links[node as usize].lock().get(level) {
            out.extend_from_slice(list);
        }
    }
}

/// Model checks of the build's locking (`make test-loom`): the
/// interleavings of concurrent inserts on a tiny graph that loom explores
/// (all of them up to 3 preemptions) leave lists bounded, free of self and
/// duplicate links, every node linked in, and the entry at the top level.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::index::hnsw::space::factor;
    use crate::kernels::{quant, scalar};

    fn codes() -> Codes<'static> {
        let keys: [[f32; 2]; 4] = [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]];
        let mut codes = vec![0i8; 8];
        let mut factors = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let s = quant::quantize(k, &mut codes[2 * i..2 * i + 2]);
            factors.push(factor(crate::kernels::distance::Metric::Cosine, s, scalar::norm(k)));
        }
        Codes {
            metric: crate::kernels::distance::Metric::Cosine,
            dim: 2,
            codes: Box::leak(codes.into_boxed_slice()),
            factors: Box::leak(factors.into_boxed_slice()),
            sqnorms: &[],
        }
    }

    fn check(g: &BuildGraph, inserted: &[u32]) {
        let mut linked = std::collections::HashSet::new();
        for &q in inserted {
            let lists = g.links[q as usize].lock();
            for (level, list) in lists.iter().enumerate() {
                assert!(list.len() <= g.max_links(level));
                assert!(!list.contains(&q), "self link at {q}");
                let mut dedup = list.clone();
                dedup.sort_unstable();
                dedup.dedup();
                assert_eq!(dedup.len(), list.len(), "duplicate link in {q}'s list");
                if level == 0 {
                    linked.extend(list.iter().copied());
                    if !list.is_empty() {
                        linked.insert(q);
                    }
                }
            }
        }
        for &q in inserted {
            assert!(linked.contains(&q), "node {q} has no link in or out");
        }
        let (entry, top) = g.entry.read().expect("an entry once a node is in");
        assert!(inserted.contains(&entry));
        assert_eq!(top, g.levels[entry as usize] as usize);
        assert_eq!(
            top,
            inserted
                .iter()
                .map(|&q| g.levels[q as usize] as usize)
                .max()
                .unwrap_or(0)
        );
    }

    #[test]
    fn concurrent_inserts_keep_the_graph_well_formed() {
        loom::model(|| {
            let codes = codes();
            // M = 2 gives level-0 lists of 4 and upper lists of 2, so the
            // three concurrent inserts contend for full lists and prune.
            let g = loom::sync::Arc::new(BuildGraph::new(4, 2, 3));
            g.insert(0, &codes, 4, &mut Visited::new());
            let handles: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|q| {
                    let g = g.clone();
                    loom::thread::spawn(move || g.insert(q, &codes, 4, &mut Visited::new()))
                })
                .collect();
            g.insert(3, &codes, 4, &mut Visited::new());
            for h in handles {
                h.join().expect("insert thread");
            }
            check(&g, &[0, 1, 2, 3]);
        });
    }

    #[test]
    fn the_first_insert_races_for_the_entry() {
        loom::model(|| {
            let codes = codes();
            let g = loom::sync::Arc::new(BuildGraph::new(4, 2, 3));
            let other = {
                let g = g.clone();
                loom::thread::spawn(move || g.insert(1, &codes, 4, &mut Visited::new()))
            };
            g.insert(2, &codes, 4, &mut Visited::new());
            other.join().expect("insert thread");
            check(&g, &[1, 2]);
        });
    }
}
