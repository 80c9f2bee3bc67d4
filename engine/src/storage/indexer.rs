//! The hook through which a merge asks the index layer for a key column's
//! graph. Storage never looks inside the bytes: it stores them as the key
//! column's graph part and hands them back, mapped, to whoever searches.

use std::fmt;

use super::schema::IndexSpec;
use crate::error::Result;
use crate::kernels::distance::Metric;

/// The rows of a segment being written, as the index sees one key column:
/// row `i` of every slice is the segment's row `i`.
pub struct IndexInput<'a> {
    /// Key dimension.
    pub dim: usize,
    /// The distance the graph is for.
    pub metric: Metric,
    /// Graph settings of the column.
    pub spec: IndexSpec,
    /// int8 codes, `rows * dim`, row-major.
    pub codes: &'a [i8],
    /// Quantization scale per row.
    pub scales: &'a [f32],
    /// f32 key norm per row.
    pub norms: &'a [f32],
}

impl IndexInput<'_> {
    /// Rows in the segment.
    pub fn rows(&self) -> usize {
        self.scales.len()
    }
}

/// Builds a key column's graph when a merge writes a segment.
///
/// Set through [`StoreOptions::indexer`](crate::storage::StoreOptions);
/// `engram::index::Hnsw` is the implementation this crate ships.
pub trait SegmentIndexer: Send + Sync + fmt::Debug {
    /// Graph bytes for `input` (stored 64-byte aligned). Called outside every
    /// lock that commits wait on; may use several threads. An empty vector
    /// means "no graph" (e.g. too few rows to be worth one).
    fn build(&self, input: &IndexInput<'_>) -> Result<Vec<u8>>;
}
