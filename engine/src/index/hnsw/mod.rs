//! HNSW graphs, one per sealed segment (Malkov & Yashunin, 2018).
//!
//! A merge builds the graph of the segment it writes ([`Hnsw`] is the
//! [`SegmentIndexer`] it calls), in parallel, over the rows' int8 codes; the
//! graph is stored as the segment's index section and searched in place
//! through the segment's mmap, so opening a store reads no graph. Deleted
//! rows stay in the graph as waypoints and are never returned; the next
//! merge leaves them out. Rows not yet merged (the memtable and flushed
//! segments) are scanned exactly.
//!
//! - `build.rs`: parallel insertion, per-node locks;
//! - `layer.rs`: the best-first level search and neighbour selection;
//! - `layout.rs`: bytes on disk and the mapped view;
//! - `space.rs`: cosine, dot and L2 over int8 codes;
//! - `search.rs`: a query against one segment's graph.

mod build;
mod layer;
mod layout;
pub(crate) mod search;
mod space;
mod sync;

use crate::error::Result;
use crate::kernels::distance::Metric;
use crate::storage::{IndexInput, SegmentIndexer};

pub(crate) use layout::GraphRef;
pub(crate) use space::{factor, QueryCode};

/// The indexer that builds HNSW graphs with each key column's settings
/// ([`IndexSpec`](crate::storage::IndexSpec): M and ef_construction).
///
/// ```
/// use std::sync::Arc;
/// use engram::index::{Hnsw, Search, SearchParams};
/// use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let opts = StoreOptions { indexer: Some(Arc::new(Hnsw::default())), ..StoreOptions::default() };
/// let store = Store::create(dir.path().join("s"), opts).unwrap();
/// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).build().unwrap();
/// let k = s.key("k").unwrap();
/// let t = store.create_table("t", s.clone()).unwrap();
/// let rows = (0..100).map(|i| Row::new(&s).with(k, vec![(i as f32).cos(), (i as f32).sin()])).collect();
/// store.insert_batch(t, rows).unwrap();
/// store.flush().unwrap(); // the flushed segment gets its graph
/// store.insert(t, Row::new(&s).with(k, vec![1.0, 0.0])).unwrap();
/// store.flush().unwrap(); // and so does this one: two graphs
/// assert_eq!(store.stats().unwrap().tables[0].indexed_rows, 101);
/// store.merge().unwrap(); // one segment, with one graph
/// let hits = store.search(t, &[1.0, 0.0], 3, &SearchParams { ef: 32, ..SearchParams::default() }).unwrap();
/// assert_eq!(hits.len(), 3);
/// assert!(hits[0].distance < 1e-3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hnsw {
    /// Threads that build one graph.
    pub threads: usize,
    /// Seed of the level draw: the same seed and rows give the same levels.
    pub seed: u64,
}

impl Hnsw {
    /// The default level-draw seed.
    pub const SEED: u64 = 0x5EED_F00D;
}

impl Default for Hnsw {
    /// One thread per core.
    fn default() -> Self {
        Hnsw {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: Hnsw::SEED,
        }
    }
}

impl Hnsw {
    /// Build the graph of `input`'s rows and encode it.
    fn encode(&self, input: &IndexInput<'_>) -> Vec<u8> {
        let metric = input.metric;
        let factors: Vec<f32> = input
            .scales
            .iter()
            .zip(input.norms)
            .map(|(&s, &n)| factor(metric, s, n))
            .collect();
        let sqnorms: Vec<f32> = match metric {
            Metric::L2 => input.norms.iter().map(|n| n * n).collect(),
            _ => Vec::new(),
        };
        let codes = space::Codes {
            metric,
            dim: input.dim,
            codes: input.codes,
            factors: &factors,
            sqnorms: &sqnorms,
        };
        let m = (input.spec.m as usize).max(2);
        let ef = (input.spec.ef_construction as usize).max(m);
        let g = build::BuildGraph::new(input.rows(), m, self.seed);
        g.build(&codes, ef, self.threads);
        layout::encode(g, metric, &factors, &sqnorms, ef)
    }
}

impl SegmentIndexer for Hnsw {
    fn build(&self, input: &IndexInput<'_>) -> Result<Vec<u8>> {
        if input.rows() == 0 || input.rows() > u32::MAX as usize - 1 {
            return Ok(Vec::new());
        }
        Ok(self.encode(input))
    }
}

#[cfg(test)]
mod tests;
