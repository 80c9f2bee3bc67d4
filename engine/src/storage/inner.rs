//! What every protocol of one open store shares: its directory, options,
//! current state, and whether an earlier write failed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::options::StoreOptions;
use super::state::State;
use crate::error::{Error, Result};

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: StoreOptions,
    /// The published state; writers replace it, readers clone the `Arc`.
    pub state: RwLock<Arc<State>>,
    pub flush_error: Mutex<Option<String>>,
    /// Set when a write failed in a way that leaves its outcome unknown; every
    /// later write is refused until the store is reopened.
    pub failed: Mutex<Option<String>>,
    /// Segment bytes this handle wrote, by what wrote them.
    pub written: Written,
}

/// Segment bytes written by one handle since it opened: write
/// amplification is `(flushed + merged) / flushed`.
#[derive(Default)]
pub(crate) struct Written {
    /// By flushes and bulk ingest (each row's first write to a segment).
    pub flushed: AtomicU64,
    /// By merges (each later rewrite).
    pub merged: AtomicU64,
}

impl Written {
    pub fn add(counter: &AtomicU64, bytes: u64) {
        counter.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Inner {
    pub fn new(dir: PathBuf, opts: StoreOptions, state: State) -> Inner {
        Inner {
            dir,
            opts,
            state: RwLock::new(Arc::new(state)),
            flush_error: Mutex::new(None),
            failed: Mutex::new(None),
            written: Written::default(),
        }
    }

    /// The current state.
    pub fn current(&self) -> Arc<State> {
        self.state.read().clone()
    }

    /// Refuse further writes on this handle because of `e`, and return it.
    pub fn fail(&self, e: Error) -> Error {
        self.failed.lock().get_or_insert_with(|| e.to_string());
        e
    }

    /// `WriterFailed` if an earlier write failed this handle.
    pub fn check_not_failed(&self) -> Result<()> {
        match &*self.failed.lock() {
            Some(why) => Err(Error::WriterFailed(why.clone())),
            None => Ok(()),
        }
    }
}
