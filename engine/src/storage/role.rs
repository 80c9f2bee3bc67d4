//! The writer role of one handle: the store's file lock, the I/O mutex
//! that orders appends, flushes and publishes, the commit queue, and the
//! mutex that lets one merge run at a time.

use std::fs::File;

use parking_lot::{Mutex, MutexGuard};

use super::commit::Queue;
use super::inner::Inner;
use super::wal::WalWriter;
use crate::error::Result;

pub(crate) struct Writer {
    _lock: File,
    pub(crate) queue: Mutex<Queue>,
    io: Mutex<WalWriter>,
    /// Held for a whole merge, so that two merges never plan over the same
    /// segments.
    pub(crate) merge: Mutex<()>,
}

impl Writer {
    pub fn new(lock: File, wal: WalWriter) -> Writer {
        Writer {
            _lock: lock,
            queue: Mutex::new(Queue::default()),
            io: Mutex::new(wal),
            merge: Mutex::new(()),
        }
    }

    /// The I/O mutex, for a handle that has not failed: the one place every
    /// write path (commit, flush, merge plan and publish, sync, giving the
    /// role back) takes it, so a failed handle can do none of them.
    pub fn io(&self, inner: &Inner) -> Result<MutexGuard<'_, WalWriter>> {
        inner.check_not_failed()?;
        let g = self.io.lock();
        inner.check_not_failed()?;
        Ok(g)
    }

    /// The I/O mutex whatever the handle's state (the commit leader checks
    /// the failure itself, per change).
    pub fn io_unchecked(&self) -> MutexGuard<'_, WalWriter> {
        self.io.lock()
    }
}
