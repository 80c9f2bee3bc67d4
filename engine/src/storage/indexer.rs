//! The hook through which a merge asks the index layer for a segment's
//! search index. Storage never looks inside the bytes: it stores them as the
//! segment's last section and hands them back, mapped, to whoever searches.

use std::fmt;

use crate::error::Result;

/// The rows of a segment being written, as the index sees them: row `i` of
/// every column is the segment's row `i`.
pub struct IndexInput<'a> {
    /// Key dimension.
    pub dim: usize,
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

/// Builds a segment's search index when a merge writes the segment.
///
/// Set through [`StoreOptions::indexer`](crate::storage::StoreOptions);
/// `engram::index::Hnsw` is the implementation this crate ships.
pub trait SegmentIndexer: Send + Sync + fmt::Debug {
    /// Index bytes for `input` (stored 64-byte aligned). Called outside every
    /// lock that commits wait on; may use several threads. An empty vector
    /// means "no index" (e.g. too few rows to be worth one).
    fn build(&self, input: &IndexInput<'_>) -> Result<Vec<u8>>;
}
