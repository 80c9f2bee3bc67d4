//! Nearest-neighbour search over a table's keys.
//!
//! Today: exact search — every live row that passes the filter is scored on
//! its int8 code, and the best candidates are rescored on their f32 keys.
//! This is also the strategy HNSW graphs fall back to when a filter is
//! selective. Per-segment HNSW graphs come next (see the project issues).

mod exact;
mod filter;
mod params;

pub use filter::Filter;
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
        Ok(exact::search(&view, query, k, params))
    }
}
