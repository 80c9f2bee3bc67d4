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

/// Who runs the merges due after a flush ([`StoreOptions::merge_runner`](super::StoreOptions::merge_runner)).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum MergeRunner {
    /// The thread whose write flushed, once the flush is published (on a
    /// reader handle: once it gives the writer role back). Other threads'
    /// commits go on meanwhile; that one waits for the graph.
    #[default]
    Inline,
    /// A merge thread of the handle, started by the first flush and joined
    /// when the handle drops (after the merge running then, if any): no
    /// write waits for a graph. Until it is built, the new segments are
    /// searched exactly, by a scan.
    Background,
    /// Nobody on this handle: the application runs them with
    /// [`Store::run_merges`](super::Store::run_merges) — from a thread or
    /// process of its own, on any handle of the store — when
    /// [`Store::merges_pending`](super::Store::merges_pending) says so.
    Deferred,
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
    /// that end with [`Store::optimize`](super::Store::optimize) turn it off,
    /// and [`StoreOptions::merge_policy`] too, to build one graph instead of
    /// several.
    pub index_on_flush: bool,
    /// Merges that run on their own after each flush (`None`: only the
    /// merges asked for, and the graph builds of
    /// [`StoreOptions::index_on_flush`]).
    pub merge_policy: Option<MergePolicy>,
    /// Who runs the merges due after a flush (graph builds and the merge
    /// policy's): the flushing thread (the default), a merge thread of the
    /// handle, or the application through
    /// [`Store::run_merges`](super::Store::run_merges).
    pub merge_runner: MergeRunner,
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
            merge_policy: Some(MergePolicy::default()),
            merge_runner: MergeRunner::Inline,
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

/// A size-tiered merge policy: flushes leave many small segments, and
/// searching each costs a graph walk of its own, so runs of similar-sized
/// segments are folded together, each row being rewritten about once per
/// tier (`log_fanout(table bytes / floor_bytes)` times in all, which
/// [`StoreStats`](super::StoreStats) reports as write amplification).
///
/// ```
/// use engram::storage::{MergePolicy, StoreOptions};
/// let opts = StoreOptions { merge_policy: Some(MergePolicy { fanout: 8, ..MergePolicy::default() }), ..StoreOptions::default() };
/// assert_eq!(opts.merge_policy.unwrap().max_deleted_ratio, 0.3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergePolicy {
    /// How many adjacent segments of one size tier are merged into one
    /// (at least 2). A segment's tier is `floor(log_fanout(bytes / floor_bytes))`.
    pub fanout: usize,
    /// Segments up to this size are all in the lowest tier.
    pub floor_bytes: u64,
    /// Segments at least this large are left out of tier merges (a merge
    /// rewrites every byte it takes, and builds one graph over them).
    pub max_segment_bytes: u64,
    /// A segment whose share of deleted rows reaches this is rewritten on
    /// its own, dropping them.
    pub max_deleted_ratio: f64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            fanout: 4,
            floor_bytes: 1 << 20,
            max_segment_bytes: 4 << 30,
            max_deleted_ratio: 0.3,
        }
    }
}

impl MergePolicy {
    /// The size tier of a segment of `bytes`, or `None` if tier merges leave
    /// it alone.
    ///
    /// ```
    /// use engram::storage::MergePolicy;
    /// let p = MergePolicy::default();
    /// assert_eq!(p.tier(10), Some(0));
    /// assert_eq!(p.tier(4 << 20), Some(1));
    /// assert_eq!(p.tier(16 << 20), Some(2));
    /// assert_eq!(p.tier(5 << 30), None);
    /// ```
    pub fn tier(&self, bytes: u64) -> Option<u32> {
        if bytes >= self.max_segment_bytes {
            return None;
        }
        let fanout = self.fanout.max(2) as u64;
        let (mut tier, mut bound) = (0u32, self.floor_bytes.max(1).saturating_mul(fanout));
        while bytes >= bound {
            tier += 1;
            bound = bound.saturating_mul(fanout);
        }
        Some(tier)
    }
}
