//! Derived copies: a store that holds what can be derived from rows kept
//! elsewhere (the *source*: PostgreSQL tables, for `pg_engram`), kept in
//! step by a protocol that needs nothing of the source but a
//! [`RowSource`] and a watermark.
//!
//! The copy's table declares a unique u64 column holding each row's
//! *source id*; the copy's own row ids are its own business. The store's
//! watermark says which version of the source the copy reflects:
//!
//! - **publish** ([`DerivedCopy::publish`]): apply one source change set,
//!   written at source watermark `base + 1 ..= watermark`, only if the copy
//!   is at `base` — waiting a little, with the role given back, for an
//!   earlier change set still on its way; otherwise report [`Step::Behind`]
//!   or [`Step::Ahead`] and change nothing;
//! - **catch up** ([`DerivedCopy::catch_up`]): make the copy's rows equal
//!   the source's by the difference of source ids;
//! - **rebuild** ([`DerivedCopy::rebuild`]): write a new copy aside from the
//!   source and swap it in, holding the old copy's writer role across the
//!   swap.
//!
//! Every path holds the copy's writer role through a [`Role`] guard. Small
//! change sets are one WAL record; large ones (and catch-ups and rebuilds)
//! go through bulk ingest, so a change set of any size is applied whole or
//! not at all, with memory bounded by one segment's rows.

mod apply;
mod rebuild;
mod role;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use apply::{ChangeSet, Turn};
pub use rebuild::Rebuilt;
pub use role::{Role, RoleWait};

use crate::error::{Error, Result};
use crate::storage::{FixedCol, Row, RowId, Schema, Store, StoreOptions, TableId, Value};

/// Bytes of changes above which a change set is ingested rather than logged.
pub const LOG_BYTES: usize = 16 << 20;

/// What a copy derives from its source rows beyond the rows themselves
/// (a generator's vocabulary and pattern levels, say). Without one, a copy
/// is its table; with one, the deriver writes every row and what it
/// derives, and the copy takes no deletes (a change set or catch-up that
/// needs one fails, and the copy is rebuilt).
pub trait Deriver: Send + Sync {
    /// Make what the deriver keeps in a new copy, whose table exists.
    fn create(&self, store: &Store) -> Result<()>;
    /// Write `rows` (source id, row without its source-id column) and all
    /// that derives from them, the last write setting `watermark`. Several
    /// writes are allowed if each row is written whole with what derives
    /// from it: a crash between them leaves rows the copy holds and rows it
    /// lacks, which a catch-up (by the difference of ids) completes.
    fn insert(&self, store: &Store, rows: Vec<(u64, Row)>, watermark: u64, cancelled: &dyn Fn() -> bool) -> Result<()>;
}

/// What a derived copy holds: its table's name and schema, the unique u64
/// column that holds source ids, the tag that ties the copy to one
/// incarnation of its source, and what else derives from the rows.
#[derive(Clone)]
pub struct CopySpec {
    /// Recorded in the store ([`StoreOptions::tag`]); a copy with another
    /// tag is foreign.
    pub tag: String,
    /// The table.
    pub table: String,
    /// Its schema.
    pub schema: Schema,
    /// The schema's unique u64 column of source ids.
    pub source_id: String,
    /// What derives from the rows, if more than the rows.
    pub deriver: Option<Arc<dyn Deriver>>,
}

impl std::fmt::Debug for CopySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopySpec")
            .field("tag", &self.tag)
            .field("table", &self.table)
            .field("source_id", &self.source_id)
            .field("deriver", &self.deriver.is_some())
            .finish()
    }
}

impl CopySpec {
    fn source_column(&self) -> Result<FixedCol<u64>> {
        let col = self.schema.fixed::<u64>(&self.source_id)?;
        if self.schema.unique() != Some(col.0) {
            return Err(Error::InvalidArgument(format!(
                "source id column {:?} must be the table's unique column",
                self.source_id
            )));
        }
        Ok(col)
    }
}

/// The rows a copy is derived from.
pub trait RowSource {
    /// The source id of every row, in any order.
    fn ids(&mut self) -> Result<Vec<u64>>;
    /// The rows (all of them, or those of the listed ids), each with its
    /// source id; the source-id column need not be set.
    fn rows(&mut self, only: Option<&[u64]>, each: &mut dyn FnMut(u64, Row) -> Result<()>) -> Result<()>;
}

/// One change of a change set.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A row with this source id was added.
    Insert(u64, Row),
    /// The row with this source id was removed.
    Delete(u64),
}

/// Where a copy stood against the change set offered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Applied: the copy is at the change set's watermark.
    Applied,
    /// The copy is behind the change set's base (at this watermark).
    Behind(u64),
    /// The copy is past the change set's base (at this watermark).
    Ahead(u64),
}

/// A derived copy, open as a reader (the writer role is taken per change).
pub struct DerivedCopy {
    store: Store,
    table: TableId,
    source: FixedCol<u64>,
    schema: Arc<Schema>,
    deriver: Option<Arc<dyn Deriver>>,
}

/// What [`DerivedCopy::open`] found.
pub enum Opened {
    /// A usable copy.
    Usable(Box<DerivedCopy>),
    /// No store at the path.
    Missing,
    /// A store that is not this copy (another tag or schema) or does not
    /// open; the reason.
    Unusable(String),
}

impl DerivedCopy {
    /// Open the copy at `dir` as a reader with `opts`.
    pub fn open(dir: &Path, opts: StoreOptions, spec: &CopySpec) -> Result<Opened> {
        let source = spec.source_column()?;
        if !dir.exists() {
            return Ok(Opened::Missing);
        }
        let store = match Store::open(
            dir,
            StoreOptions {
                mode: crate::storage::Mode::Reader,
                ..opts
            },
        ) {
            Ok(s) => s,
            Err(Error::NotFound(_)) => return Ok(Opened::Missing),
            Err(e) => return Ok(Opened::Unusable(e.to_string())),
        };
        let check = || -> Result<std::result::Result<DerivedCopy, String>> {
            if store.tag()? != spec.tag {
                return Ok(Err("it belongs to another incarnation of its source (tag)".into()));
            }
            let table = match store.table(&spec.table) {
                Ok(t) => t,
                Err(_) => return Ok(Err(format!("it has no table {:?}", spec.table))),
            };
            let schema = store.schema(table)?;
            if *schema != spec.schema {
                return Ok(Err("its table has another schema (format or settings)".into()));
            }
            Ok(Ok(DerivedCopy {
                store,
                table,
                source,
                schema,
                deriver: spec.deriver.clone(),
            }))
        };
        match check() {
            Ok(Ok(c)) => Ok(Opened::Usable(Box::new(c))),
            Ok(Err(why)) => Ok(Opened::Unusable(why)),
            Err(e) => Ok(Opened::Unusable(e.to_string())),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The copy's table.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// The table's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The column of source ids.
    pub fn source_column(&self) -> FixedCol<u64> {
        self.source
    }

    /// The source watermark the copy reflects.
    pub fn watermark(&self) -> Result<u64> {
        self.store.watermark()
    }

    /// The copy's row holding source id `id`, in `snap`.
    pub fn find(&self, snap: &crate::storage::Snapshot, id: u64) -> Result<Option<RowId>> {
        snap.table(self.table)?.find(&Value::UInt(id))
    }

    /// Flush and merge the copy into one segment with its graphs, holding
    /// the writer role only to flush, plan and publish
    /// ([`Store::optimize_detached`]): publishes go on while the graph builds.
    pub fn optimize(&self, wait: RoleWait<'_>) -> Result<crate::storage::MergeReport> {
        self.store.optimize_detached(wait.timeout, wait.cancelled)
    }
}
