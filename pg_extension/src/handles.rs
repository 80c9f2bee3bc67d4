//! Each backend's handles on the engine copies of stores, where the copies
//! live, and how they are opened. A leaf among the crate's modules: the
//! protocols (`engine_copy`, `txn`, `merges`) use it, and it uses none of
//! them (only `backend` and `gucs`, which use nothing of the crate).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use engram::derived::DerivedCopy;
use engram::storage::{Schema, StoreOptions};

use crate::backend::{data_dir, database_oid};

/// An open engine copy of one store.
pub struct Handle {
    pub copy: DerivedCopy,
    /// The generator a generator store's copy holds.
    pub generator: Option<engram::generate::Generator>,
    /// Key dimension of the store.
    pub dim: u32,
    /// The catalog's `uid` of the store the copy was opened for.
    pub uid: String,
}

impl Handle {
    /// The copy's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        self.copy.schema()
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<String, Rc<Handle>>> = RefCell::new(HashMap::new());
}

/// Keep `h` as this backend's handle on `name`.
pub fn remember(name: &str, h: &Rc<Handle>) {
    HANDLES.with(|m| m.borrow_mut().insert(name.to_string(), h.clone()));
}

/// `$PGDATA/pg_engram/<database oid>/<name>`: store names are unique per
/// database, not per cluster. Names are validated at creation (letters,
/// digits, `_`, `-`), so they cannot leave that directory.
pub fn dir_of(name: &str) -> PathBuf {
    dir_in(database_oid(), name)
}

/// [`dir_of`] for the database with oid `database` (background workers
/// are connected to none).
pub fn dir_in(database: u32, name: &str) -> PathBuf {
    data_dir().join("pg_engram").join(database.to_string()).join(name)
}

/// Where transactions spool their rows (as unlinked temporary files).
pub fn spool_dir() -> std::io::Result<PathBuf> {
    let d = data_dir().join("pg_engram").join("tmp");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Forget this backend's handle on `name`.
pub fn forget(name: &str) {
    HANDLES.with(|h| h.borrow_mut().remove(name));
}

/// This backend's cached handle on `name`, if any.
pub fn cached(name: &str) -> Option<Rc<Handle>> {
    HANDLES.with(|h| h.borrow().get(name).cloned())
}

/// Graph build threads inside a backend: the build computes only (no
/// PostgreSQL call leaves the calling thread), and is capped so one
/// `engram.optimize` does not take every core of the server.
const BUILD_THREADS: usize = 4;

/// The graph builder of every engine copy in this backend.
pub fn indexer() -> engram::index::Hnsw {
    // Asking for the cores reads cgroup files: once per backend is enough.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(BUILD_THREADS)
    });
    engram::index::Hnsw {
        threads,
        seed: engram::index::Hnsw::SEED,
    }
}

/// How every handle on an engine copy is opened: a reader that takes the
/// writer role to publish, whose graph builds and merges are left to
/// the `merges` module.
pub fn options() -> StoreOptions {
    StoreOptions {
        // The copy is derived from WAL-logged tables: a publish a machine
        // crash loses is caught up again, so none waits for an fsync.
        sync: engram::storage::SyncPolicy::Off,
        merge_runner: engram::storage::MergeRunner::Deferred,
        indexer: Some(Arc::new(indexer())),
        memtable_bytes: crate::gucs::MEMTABLE_SIZE.get().max(64) as usize * 1024,
        ..StoreOptions::reader()
    }
}
