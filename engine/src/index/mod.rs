//! Nearest-neighbour search over a table's keys.
//!
//! Each sealed segment that a merge wrote carries an HNSW graph ([`Hnsw`]);
//! a search walks those graphs on int8 codes, scans the rest (the memtable,
//! segments without a graph, and segments where the filter is so selective
//! that a scan is cheaper — see `plan.rs`), pools the candidates and
//! rescores the best `k * rescore` on f32 keys.

mod filter;
mod hnsw;
mod params;
mod plan;
mod pool;
mod query;

pub use filter::Filter;
pub use hnsw::Hnsw;
pub use params::{Hit, SearchParams};

use crate::error::{Error, Result};
use crate::storage::{Store, TableId};

/// Search a table of a [`Store`].
///
/// ```
/// use engram::index::{Search, SearchParams};
/// use engram::storage::{Dim, Row, Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let t = store.create_table("t", Dim::new(2).unwrap()).unwrap();
/// let near = store.insert(t, Row::new(vec![1.0, 0.1])).unwrap();
/// store.insert(t, Row::new(vec![-1.0, 0.0])).unwrap();
/// let hits = store.search(t, &[1.0, 0.0], 1, &SearchParams::default()).unwrap();
/// assert_eq!(hits[0].id, near);
/// ```
pub trait Search {
    /// The `k` rows nearest to `query` that pass `params.filter`, nearest
    /// first (ties by id). Fewer than `k` only if fewer rows pass the filter.
    fn search(&self, table: TableId, query: &[f32], k: usize, params: &SearchParams) -> Result<Vec<Hit>>;
}

impl Search for Store {
    fn search(&self, table: TableId, query: &[f32], k: usize, params: &SearchParams) -> Result<Vec<Hit>> {
        let view = self.view(table)?;
        if query.len() != view.dim().len() {
            return Err(Error::DimensionMismatch {
                table: view.name().to_string(),
                expected: view.dim().get(),
                found: u32::try_from(query.len()).unwrap_or(u32::MAX),
            });
        }
        if let Some(index) = query.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                what: "query",
                index,
                value: query[index],
            });
        }
        if k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        Ok(query::run(&view, query, k, params))
    }
}
