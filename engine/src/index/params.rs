//! What a search is asked and what it answers.

use super::Filter;
use crate::kernels::distance::Metric;
use crate::storage::RowId;

/// How to search.
///
/// ```
/// use engram::index::{Filter, SearchParams};
/// let p = SearchParams { filter: Filter::namespace("docs"), ..SearchParams::default() };
/// assert_eq!(p.rescore, 4);
/// ```
#[derive(Clone, Debug)]
pub struct SearchParams {
    /// Distance to rank by.
    pub metric: Metric,
    /// Candidate list size of graph search (HNSW's ef): larger finds more of
    /// the true neighbours and costs more. At least `k` is used.
    pub ef: usize,
    /// The best `max(ef, k * rescore)` candidates by int8 distance are
    /// rescored on their f32 keys, and the best `k` of those returned. 0
    /// scores every scanned row on its f32 key (graph walks still navigate
    /// on codes).
    pub rescore: usize,
    /// Which rows may be returned.
    pub filter: Filter,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            metric: Metric::Cosine,
            ef: 64,
            rescore: 4,
            filter: Filter::default(),
        }
    }
}

/// One result.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Hit {
    /// The row.
    pub id: RowId,
    /// Its distance to the query under the search's metric (f32 keys).
    pub distance: f32,
}
