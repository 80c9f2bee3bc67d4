//! The storage engine: a store is a directory of append-only columnar tables,
//! each with a schema.
//!
//! Write path: WAL (checksummed, group-committed) -> memtable -> flush to an
//! immutable, mmapped segment -> atomic manifest publish -> new WAL.
//! Recovery: manifest + segments + patch files + WAL replay up to the first
//! torn record. One writer (an exclusive file lock) and any number of
//! readers, in any number of processes; readers never block and catch up on
//! each call. `docs/design.md` gives the byte layout of every file and the
//! failure cases.
//!
//! One protocol per file: `open.rs` (create, open, refresh, upgrade),
//! `commit.rs` (group commit), `flush.rs`, `merge.rs` (plan, write,
//! publish), `maintain.rs` (who runs the merges a flush leaves due),
//! `publish.rs` (manifest and state swap).

mod batch;
mod codec;
mod commit;
mod deletes;
mod flush;
pub mod format;
pub mod fs;
mod indexer;
mod ingest;
mod inner;
mod legacy;
mod lock;
mod maintain;
mod manifest;
mod memtable;
mod merge;
mod mmap;
mod open;
mod options;
mod patch;
mod publish;
mod role;
mod row;
mod schema;
mod segment;
mod state;
mod store;
mod types;
mod update;
mod view;
pub mod wal;

pub use batch::WriteBatch;
pub use commit::WriteReport;
pub use format::{ManifestVersion, PatchVersion, SegmentVersion, WalVersion};
pub use indexer::{IndexInput, SegmentIndexer};
pub use ingest::{IngestReport, IngestSink, INGEST_SEGMENT_BYTES};
pub use legacy::schema as legacy_schema;
pub use lock::WriterLock;
pub use merge::MergeReport;
pub use options::{MergePolicy, MergeRunner, Mode, StoreOptions};
pub use row::{Row, SetColumn, Sparse, SparseRef, Value, Weights, WeightsRef};
pub use schema::{
    BlobCol, BlobSpec, Column, ColumnId, ColumnKind, Compression, EdgeCol, EdgeSpec, FixedCol, FixedType, IndexSpec,
    KeyCol, KeyMetric, KeySpec, Scalar, Schema, SchemaBuilder, SparseCol, SparseKind, SymbolCol, TextCol, MAX_COLUMNS,
};
pub use segment::blob::{block_cache_bytes, set_block_cache_bytes};
pub use store::{Scan, SegmentStats, Store, StoreStats, TableInfo, TableStats};
pub use types::{Dim, RowId, TableId, MAX_ROW_BYTES};
pub use update::Update;
pub use view::{RowView, Snapshot, TableView};
pub use wal::SyncPolicy;

pub(crate) use memtable::Slot;
pub(crate) use segment::dict::Dict;
pub(crate) use segment::reader::{Fixed, KeyData};
pub(crate) use segment::Segment;
pub(crate) use state::{SegState, TableState};
pub(crate) use view::At;
