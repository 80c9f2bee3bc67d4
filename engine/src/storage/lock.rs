//! The writer lock: an exclusive advisory lock (flock) on the store's `LOCK`
//! file, held for the writer's lifetime. It is released by the kernel when
//! the holder exits, however it exits, so a crashed writer never leaves a
//! stale lock. Readers never take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// Take the writer lock of `dir`, waiting up to `timeout`.
/// `cancelled` is polled while waiting; when it returns true the wait ends
/// with [`Error::Cancelled`].
pub(crate) fn acquire(dir: &Path, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .at(&path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
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
        pause = (pause * 2).min(Duration::from_millis(50));
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
}
