//! How a store is opened: [`Mode`] and [`StoreOptions`].

use std::sync::Arc;
use std::time::Duration;

use super::fs::{Fs, RealFs};
use super::indexer::SegmentIndexer;
use super::wal::SyncPolicy;

/// Whether a handle writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The one writer: holds the store's exclusive lock.
    #[default]
    Writer,
    /// A reader: takes no lock, never blocks the writer, and catches up with
    /// the writer's newest manifest and log on each call.
    Reader,
}

/// How to open a store.
///
/// ```
/// use engram::storage::{StoreOptions, SyncPolicy, Mode};
/// let opts = StoreOptions { sync: SyncPolicy::Batch, ..StoreOptions::default() };
/// assert_eq!(opts.mode, Mode::Writer);
/// ```
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Writer or reader.
    pub mode: Mode,
    /// When the WAL is fsynced.
    pub sync: SyncPolicy,
    /// Flush the memtables to segments once they hold this many bytes.
    pub memtable_bytes: usize,
    /// How long a writer waits for another writer to release the lock.
    pub lock_timeout: Duration,
    /// Check every segment checksum on open (reads every byte; off by default
    /// so that opening costs the same at any size — see
    /// [`Store::verify`](super::Store::verify)).
    pub verify_checksums: bool,
    /// A label recorded in a store that [`Store::create`](super::Store::create)
    /// makes (e.g. which source the store is derived from); ignored when opening.
    pub tag: String,
    /// Builds the graphs of key columns that ask for one
    /// ([`KeySpec::index`](super::KeySpec)), when a merge writes a segment
    /// (`engram::index::Hnsw`); `None` writes segments without graphs, which
    /// searches scan exactly.
    pub indexer: Option<Arc<dyn SegmentIndexer>>,
    /// With an indexer: right after each flush (automatic or explicit), merge
    /// the segments that have no graph into one that has, so that searches
    /// walk a graph rather than scan them. The graph is built outside the
    /// lock commits wait on, by the thread whose commit filled the memtable
    /// (or the caller of [`Store::flush`](super::Store::flush)). Bulk loads
    /// that end with [`Store::optimize`](super::Store::optimize) turn it off
    /// to build one graph instead of several.
    pub index_on_flush: bool,
    /// The file system the store's files live on: the operating system's,
    /// or a simulated machine that can crash (`fs::SimFs`, for tests).
    pub fs: Arc<dyn Fs>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            mode: Mode::Writer,
            sync: SyncPolicy::Always,
            memtable_bytes: 64 << 20,
            lock_timeout: Duration::from_secs(10),
            verify_checksums: false,
            tag: String::new(),
            indexer: None,
            index_on_flush: true,
            fs: Arc::new(RealFs),
        }
    }
}

impl StoreOptions {
    /// Options for a read-only handle.
    pub fn reader() -> StoreOptions {
        StoreOptions {
            mode: Mode::Reader,
            ..StoreOptions::default()
        }
    }
}
