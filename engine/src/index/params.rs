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
    /// Candidate list size of graph search (HNSW's ef); at least k is used.
    pub ef: usize,
    /// Rows to keep a result's place while scoring on int8 codes: the best
    /// `k * rescore` candidates are rescored on f32 keys. 0 scores every row
    /// on its f32 key (slowest, exact).
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
