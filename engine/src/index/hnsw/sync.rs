//! The locks the parallel build uses: `parking_lot` normally, `loom`'s
//! model-checked ones under `--cfg loom` (see `tests` in `build.rs`), behind
//! one small API so the build code is the same code in both.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, RwLock};

#[cfg(loom)]
mod model {
    /// `loom`'s mutex with `parking_lot`'s signature (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("no thread panics while holding a build lock")
        }
        pub(crate) fn into_inner(self) -> T {
            self.0
                .into_inner()
                .expect("no thread panics while holding a build lock")
        }
    }

    /// `loom`'s rwlock with `parking_lot`'s signature.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(v: T) -> Self {
            RwLock(loom::sync::RwLock::new(v))
        }
        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().expect("no thread panics while holding a build lock")
        }
        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().expect("no thread panics while holding a build lock")
        }
    }
}

#[cfg(loom)]
pub(crate) use model::{Mutex, RwLock};
