//! The writer lock: an exclusive advisory lock (flock) on the store's `LOCK`
//! file, held for the writer's lifetime. It is released by the kernel when
//! the holder exits, however it exits, so a crashed writer never leaves a
//! stale lock. Readers never take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// The writer role of a store, held without opening the store: for whoever
/// replaces a store's directory as a whole (e.g. with a copy rebuilt aside)
/// and must be sure that no handle writes to it meanwhile. Released on drop.
///
/// ```
/// use std::time::Duration;
/// use engram::storage::{Store, StoreOptions, WriterLock};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("s");
/// drop(Store::create(&path, StoreOptions::default()).unwrap());
/// let role = WriterLock::acquire(&path, Duration::ZERO, &|| false).unwrap();
/// // No handle can write now: a writer's open times out.
/// let busy = StoreOptions { lock_timeout: Duration::ZERO, ..StoreOptions::default() };
/// assert!(Store::open(&path, busy).is_err());
/// drop(role);
/// ```
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Take the writer lock of the store in `dir`, waiting up to `timeout`
    /// and polling `cancelled` meanwhile ([`Error::WriterLocked`] and
    /// [`Error::Cancelled`] when either ends the wait).
    pub fn acquire(dir: &Path, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<WriterLock> {
        acquire(dir, timeout, cancelled).map(|file| WriterLock { _file: file })
    }
}

/// Take the writer lock of `dir`, waiting up to `timeout`.
/// `cancelled` is polled while waiting; when it returns true the wait ends
/// with [`Error::Cancelled`].
///
/// The lock is only good if its file is still the one named `dir/LOCK`: a
/// directory replaced while we waited (renamed aside, with its `LOCK`) would
/// otherwise give us the role of a store nobody opens any more, while
/// another process takes the new directory's.
pub(crate) fn acquire(dir: &Path, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<File> {
    acquire_named(dir, "LOCK", timeout, cancelled)
}

/// Take the lock file `name` of `dir` (`LOCK`: the writer role; `MERGE`:
/// the one merge that may run detached from the role), as [`acquire`].
pub(crate) fn acquire_named(dir: &Path, name: &str, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<File> {
    let path = dir.join(name);
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)
    };
    let mut file = open()?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => {
                let held = file.metadata().at(&path)?;
                match std::fs::metadata(&path) {
                    Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok(file),
                    // Replaced while we waited: wait for the new one.
                    _ => {
                        file = open()?;
                        continue;
                    }
                }
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(Error::Io { path, source: e }),
        }
        if cancelled() {
            return Err(Error::Cancelled);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::WriterLocked {
                path: dir.to_path_buf(),
                waited,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        // A busy role changes hands every few milliseconds: a waiter that
        // polls slowly starves behind faster ones.
        pause = (pause * 2).min(Duration::from_millis(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_times_out_then_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), Duration::ZERO, &|| false).unwrap();
        let e = acquire(dir.path(), Duration::from_millis(30), &|| false).unwrap_err();
        assert!(matches!(e, Error::WriterLocked { .. }));
        assert!(matches!(
            acquire(dir.path(), Duration::from_secs(5), &|| true),
            Err(Error::Cancelled)
        ));
        drop(first);
        acquire(dir.path(), Duration::ZERO, &|| false).unwrap();
    }

    /// A waiter whose `LOCK` is renamed away with its directory, and a new
    /// directory put in its place, ends up holding the new directory's lock,
    /// never the old one's while someone else holds the new one's.
    #[test]
    fn a_replaced_lock_file_is_not_held() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("s");
        std::fs::create_dir(&dir).unwrap();
        let old = acquire(&dir, Duration::ZERO, &|| false).unwrap();
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || acquire(&dir, Duration::from_secs(10), &|| false).unwrap())
        };
        std::thread::sleep(Duration::from_millis(50));
        // Swap the directory, then take the new one's lock before the old
        // one is released.
        std::fs::rename(&dir, root.path().join("s.old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        let new = acquire(&dir, Duration::ZERO, &|| false).unwrap();
        drop(old);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "the waiter took the old directory's lock");
        drop(new);
        let got = waiter.join().unwrap();
        let (held, named) = (got.metadata().unwrap(), std::fs::metadata(dir.join("LOCK")).unwrap());
        assert_eq!((held.dev(), held.ino()), (named.dev(), named.ino()));
    }
}
