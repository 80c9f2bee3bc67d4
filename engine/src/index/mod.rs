//! Nearest-neighbour search over a table's key columns.
//!
//! Each sealed segment that a merge wrote carries an HNSW graph per key
//! column that asks for one ([`Hnsw`]); a search walks those graphs on int8
//! codes, scans the rest (the memtable, segments without a graph, and
//! segments where the filter is so selective that a scan of its posting
//! lists is cheaper — see `plan.rs`), pools the candidates, rescores the
//! best on f32 keys, and ranks them (by a [`Scorer`], if given). Hits carry
//! their rows, readable in place from the search's snapshot.

mod filter;
mod hnsw;
mod params;
mod plan;
mod pool;
mod query;

pub use filter::Filter;
pub use hnsw::Hnsw;
pub use params::{Hit, HitRef, Scorer, SearchParams};
pub use plan::PlanChoice;

use crate::error::Result;
use crate::storage::{Snapshot, Store, TableId, TableView};

/// Search a table of a [`Store`] (through a fresh snapshot).
///
/// ```
/// use engram::index::{Search, SearchParams};
/// use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).build().unwrap();
/// let k = s.key("k").unwrap();
/// let t = store.create_table("t", s.clone()).unwrap();
/// let near = store.insert(t, Row::new(&s).with(k, vec![1.0, 0.1])).unwrap();
/// store.insert(t, Row::new(&s).with(k, vec![-1.0, 0.0])).unwrap();
/// let hits = store.search(t, &[1.0, 0.0], 1, &SearchParams::default()).unwrap();
/// assert_eq!(hits[0].id, near);
/// ```
pub trait Search {
    /// The `k` rows nearest to `query` that pass `params.filter`, best first
    /// (ties by id). Fewer than `k` only if fewer rows pass the filter.
    fn search(&self, table: TableId, query: &[f32], k: usize, params: &SearchParams) -> Result<Vec<Hit>>;
}

impl Search for Store {
    fn search(&self, table: TableId, query: &[f32], k: usize, params: &SearchParams) -> Result<Vec<Hit>> {
        let snap = self.snapshot()?;
        let hits = snap.table(table)?.search(query, k, params)?;
        Ok(hits.iter().map(HitRef::hit).collect())
    }
}

impl<'s> TableView<'s> {
    /// The `k` rows of this table nearest to `query` that pass
    /// `params.filter`, best first, each with its row readable in place.
    ///
    /// ```
    /// use engram::index::SearchParams;
    /// use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    /// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).text("t").build().unwrap();
    /// let (k, text) = (s.key("k").unwrap(), s.text("t").unwrap());
    /// let t = store.create_table("t", s.clone()).unwrap();
    /// store.insert(t, Row::new(&s).with(k, vec![1.0, 0.0]).with(text, "east")).unwrap();
    /// let snap = store.snapshot().unwrap();
    /// let hits = snap.table(t).unwrap().search(&[0.9, 0.1], 1, &SearchParams::default()).unwrap();
    /// assert_eq!(hits[0].row.text(text).unwrap(), "east");
    /// ```
    pub fn search(&self, query: &[f32], k: usize, params: &SearchParams) -> Result<Vec<HitRef<'s>>> {
        query::run(*self, query, k, params)
    }
}

/// One search of a [`Snapshot::search_many`] call.
#[derive(Clone, Debug)]
pub struct Query<'q> {
    /// The table.
    pub table: TableId,
    /// The query vector.
    pub key: &'q [f32],
    /// How many hits.
    pub k: usize,
    /// How to search.
    pub params: SearchParams,
}

impl Snapshot {
    /// Several searches over one snapshot (the levels of one generation
    /// step): every answer reflects the same moment of the store, and each
    /// hit's row is read in place from it.
    pub fn search_many(&self, queries: &[Query<'_>]) -> Result<Vec<Vec<HitRef<'_>>>> {
        queries
            .iter()
            .map(|q| self.table(q.table)?.search(q.key, q.k, &q.params))
            .collect()
    }
}
