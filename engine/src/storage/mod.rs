//! The storage engine: a store is a directory of append-only columnar tables.
//!
//! Write path: WAL (checksummed, group-committed) -> memtable -> flush to an
//! immutable, mmapped segment -> atomic manifest publish -> new WAL.
//! Recovery: manifest + segments + WAL replay up to the first torn record.
//! One writer (an exclusive file lock) and any number of readers, in any
//! number of processes; readers never block and catch up on each call.
//! `docs/design.md` gives the byte layout of every file and the failure cases.

mod batch;
mod codec;
pub mod format;
mod indexer;
mod lock;
mod manifest;
mod memtable;
mod mmap;
mod segment;
mod state;
mod store;
mod symbols;
mod types;
mod view;
pub mod wal;
mod writer;

pub use batch::WriteBatch;
pub use format::FormatVersion;
pub use indexer::{IndexInput, SegmentIndexer};
pub use lock::WriterLock;
pub(crate) use segment::Segment;
pub use store::{Mode, Scan, Store, StoreOptions, StoreStats, TableInfo, TableStats, WriteReport};
pub use types::{Dim, Kind, Meta, MetaRecord, Position, Row, RowId, Scope, TableId, Tier, Value, MAX_ROW_BYTES};
pub(crate) use view::segment_row;
pub use view::{RowRef, TableView};
pub use wal::SyncPolicy;
pub use writer::MergeReport;
