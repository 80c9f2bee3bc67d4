//! What a search is asked and what it answers.

use std::sync::Arc;

use super::plan::PlanChoice;
use super::Filter;
use crate::kernels::distance::Metric;
use crate::storage::{KeyCol, RowId, RowView};

/// A hook that ranks the candidates a search rescored: it sees each row
/// (every column readable) and its exact distance, and returns the value
/// hits are ordered by, smallest first. A hybrid score (similarity,
/// recency, scope, quality) goes here.
pub type Scorer = Arc<dyn Fn(&RowView<'_>, f32) -> f32 + Send + Sync>;

/// How to search.
///
/// ```
/// use engram::index::{Filter, SearchParams};
/// let p = SearchParams { filter: Filter::eq("namespace", "docs"), ..SearchParams::default() };
/// assert_eq!(p.rescore, 4);
/// ```
#[derive(Clone)]
pub struct SearchParams {
    /// The key column to search; `None` is the table's first key column.
    pub column: Option<KeyCol>,
    /// Distance to rank by; `None` is the column's own metric (graphs are
    /// walked only when the metrics agree).
    pub metric: Option<Metric>,
    /// Candidate list size of graph search (HNSW's ef): larger finds more of
    /// the true neighbours and costs more. At least `k` is used.
    pub ef: usize,
    /// Split `ef` across a table's segments by their share of its rows
    /// (each walked with at least `k`): a table in several segments then
    /// costs about what one graph of all its rows would, where each
    /// segment walked at the full `ef` costs that many times more. The
    /// price is some recall in the smaller segments; off by default.
    pub ef_by_size: bool,
    /// The best `max(ef, k * rescore)` candidates by int8 distance are
    /// rescored on their f32 keys, and the best `k` of those returned. 0
    /// scores every scanned row on its f32 key (graph walks still navigate
    /// on codes).
    pub rescore: usize,
    /// Rescore the walk's whole candidate list (at least `ef` rows, the
    /// default), or only the best `k * rescore` of it. Reading an f32 key
    /// is a cache miss of its own: a caller that needs a good top `k`
    /// rather than the best possible one (generation, which weighs its
    /// neighbours by a softmax) saves most of them.
    pub rescore_walk: bool,
    /// Which rows may be returned.
    pub filter: Filter,
    /// Force a plan (tests and benchmarks); `Auto` lets the cost model choose.
    pub plan: PlanChoice,
    /// Rank rescored candidates by this instead of their distance.
    pub scorer: Option<Scorer>,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            column: None,
            metric: None,
            ef: 64,
            ef_by_size: false,
            rescore: 4,
            rescore_walk: true,
            filter: Filter::default(),
            plan: PlanChoice::Auto,
            scorer: None,
        }
    }
}

impl std::fmt::Debug for SearchParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchParams")
            .field("column", &self.column)
            .field("metric", &self.metric)
            .field("ef", &self.ef)
            .field("ef_by_size", &self.ef_by_size)
            .field("rescore", &self.rescore)
            .field("rescore_walk", &self.rescore_walk)
            .field("filter", &self.filter)
            .field("plan", &self.plan)
            .field("scorer", &self.scorer.is_some())
            .finish()
    }
}

/// One result, owned.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Hit {
    /// The row.
    pub id: RowId,
    /// Its distance to the query under the search's metric (f32 keys).
    pub distance: f32,
    /// What hits are ranked by: the scorer's value, or the distance.
    pub score: f32,
}

/// One result, with its row readable in place from the search's snapshot.
#[derive(Copy, Clone)]
pub struct HitRef<'s> {
    /// The row's id.
    pub id: RowId,
    /// Its distance to the query (f32 keys).
    pub distance: f32,
    /// What hits are ranked by: the scorer's value, or the distance.
    pub score: f32,
    /// The row: every column, read lazily from the same snapshot.
    pub row: RowView<'s>,
}

impl HitRef<'_> {
    /// The owned part.
    pub fn hit(&self) -> Hit {
        Hit {
            id: self.id,
            distance: self.distance,
            score: self.score,
        }
    }
}
