//! The writer role of a derived copy, held by a guard: taken on a reader
//! handle, given back when the guard goes — on return, on error, and when a
//! panic unwinds through it — so no path can leave the store locked.

use std::time::Duration;

use crate::error::Result;
use crate::storage::Store;

/// How long to wait for the role, and what ends the wait early.
#[derive(Clone, Copy)]
pub struct RoleWait<'a> {
    /// Longest wait for another writer ([`crate::Error::WriterLocked`] after).
    pub timeout: Duration,
    /// Polled while waiting; true ends the wait with [`crate::Error::Cancelled`].
    pub cancelled: &'a dyn Fn() -> bool,
}

impl RoleWait<'_> {
    /// Wait up to `timeout`, never cancelled.
    pub fn patient(timeout: Duration) -> RoleWait<'static> {
        RoleWait {
            timeout,
            cancelled: &|| false,
        }
    }
}

/// The writer role of `store`, until dropped.
pub struct Role<'a> {
    store: &'a Store,
    held: bool,
}

impl<'a> Role<'a> {
    /// Take the role (a no-op on a handle opened as the writer).
    pub fn take(store: &'a Store, wait: RoleWait<'_>) -> Result<Role<'a>> {
        store.begin_write(wait.timeout, wait.cancelled)?;
        Ok(Role { store, held: true })
    }

    /// Give the role back now, reporting a failure to sync the WAL.
    pub fn release(mut self) -> Result<()> {
        self.held = false;
        self.store.end_write()
    }
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        if self.held {
            let _ = self.store.end_write();
        }
    }
}
