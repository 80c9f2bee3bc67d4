//! The merges a flush leaves due — graphs for the new segments, then what
//! the [`MergePolicy`](super::MergePolicy) asks for — and who runs them
//! ([`MergeRunner`]): the thread whose write flushed, a merge thread of the
//! handle, or whoever calls [`Store::run_merges`](super::Store::run_merges)
//! (another thread, or another process on a handle of its own).
//!
//! [`Core`] is what a [`Store`](super::Store) handle shares with its merge
//! thread: the engine state and the writer role.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::flush;
use super::inner::Inner;
use super::merge::{self, MergeReport, MergeScope};
use super::open;
use super::options::{MergeRunner, Mode, StoreOptions};
use super::role::Writer;
use super::state::State;
use crate::error::{Error, Result};

/// What a store handle shares with its merge thread.
pub(super) struct Core {
    pub(super) inner: Inner,
    /// The writer role, held for life by a handle opened as
    /// [`Mode::Writer`](super::Mode), or between
    /// [`Store::begin_write`](super::Store::begin_write) and `end_write` by
    /// a reader.
    pub(super) writer: RwLock<Option<Arc<Writer>>>,
    pub(super) permanent_writer: bool,
    /// A reader handle flushed while it held the role: the new segments get
    /// their graphs once it gives the role back.
    pub(super) merge_due: AtomicBool,
}

/// Long enough for any merge another handle runs; the wait polls `cancelled`.
const RUN_WAIT: Duration = Duration::from_secs(3600);

impl Core {
    pub(super) fn new(inner: Inner, writer: Option<Writer>) -> Core {
        Core {
            inner,
            permanent_writer: writer.is_some(),
            writer: RwLock::new(writer.map(Arc::new)),
            merge_due: AtomicBool::new(false),
        }
    }

    pub(super) fn writer(&self) -> Result<Arc<Writer>> {
        self.writer.read().clone().ok_or(Error::ReadOnly)
    }

    pub(super) fn is_writer(&self) -> bool {
        self.writer.read().is_some()
    }

    /// Bring a reader handle up to date (see [`Store::refresh`](super::Store::refresh)).
    pub(super) fn refresh(&self) -> Result<()> {
        if self.is_writer() {
            return Ok(());
        }
        open::refresh(&self.inner)
    }

    /// Flush as the writer `w`, clearing the error an automatic flush left.
    pub(super) fn flush_with(&self, w: &Writer) -> Result<()> {
        flush::flush_locked(&self.inner, &mut *w.io(&self.inner)?)?;
        *self.inner.flush_error.lock() = None;
        Ok(())
    }

    fn indexes_flushes(&self) -> bool {
        self.inner.opts.indexer.is_some() && self.inner.opts.index_on_flush
    }

    /// Whether a merge is due: a trailing run of segments without graphs
    /// (with [`StoreOptions::index_on_flush`](super::StoreOptions::index_on_flush)),
    /// or a run the merge policy would take.
    pub(super) fn pending(&self) -> bool {
        let st = self.inner.current();
        let policy = self.inner.opts.merge_policy.as_ref();
        st.tables.iter().any(|t| {
            (self.indexes_flushes() && merge::chosen(t, MergeScope::Unindexed, true, policy))
                || (policy.is_some() && merge::chosen(t, MergeScope::Tiered, true, policy))
        })
    }

    /// The merges due, each run by `run`: graphs for the trailing segments
    /// without one, then what the merge policy asks for, until it asks for
    /// nothing. Each round leaves fewer segments or fewer deleted rows; the
    /// cap only guards against deletes arriving as fast as merges drop them.
    fn due_merges(&self, run: impl Fn(MergeScope) -> Result<MergeReport>) -> Result<MergeReport> {
        let mut total = MergeReport::default();
        if self.indexes_flushes() {
            total.add(&run(MergeScope::Unindexed)?);
        }
        if self.inner.opts.merge_policy.is_some() {
            for _ in 0..64 {
                let r = run(MergeScope::Tiered)?;
                total.add(&r);
                if r.segments_in == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Run the merges due: on the handle that is the writer for life, as
    /// that writer (`wait`: even after a merge already running); on a reader
    /// handle, detached (see [`Core::detached`]), waiting up to `merge_wait`
    /// for another detached merge to end (zero: leave the work to it).
    pub(super) fn run_due(
        &self,
        wait: bool,
        merge_wait: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<MergeReport> {
        if self.permanent_writer {
            let w = self.writer()?;
            return self.due_merges(|scope| merge::merge(&w, &self.inner, scope, wait));
        }
        self.due_merges(|scope| self.detached(scope, false, merge_wait, RUN_WAIT.min(self.role_wait()), cancelled))
    }

    fn role_wait(&self) -> Duration {
        self.inner.opts.lock_timeout.max(Duration::from_secs(30))
    }

    /// On a reader handle that does not hold the writer role: rewrite what
    /// `scope` chooses while other handles, in any process, keep committing.
    /// The role is held only to (flush and) plan — the plan's segment ids are
    /// published, so no other writer gives them out — and to publish; rows
    /// are copied and graphs built with no lock writers wait on. One such
    /// merge runs per store at a time (the `MERGE` lock, waited for up to
    /// `merge_wait`; zero: skip if taken).
    pub(super) fn detached(
        &self,
        scope: MergeScope,
        flush: bool,
        merge_wait: Duration,
        role_wait: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<MergeReport> {
        if self.permanent_writer {
            let w = self.writer()?;
            if flush {
                self.flush_with(&w)?;
            }
            return merge::merge(&w, &self.inner, scope, true);
        }
        if self.is_writer() {
            return Err(Error::InvalidArgument(
                "a detached merge runs on a handle that does not hold the writer role".into(),
            ));
        }
        let _one = match super::lock::acquire_named(&self.inner.dir, "MERGE", merge_wait, cancelled) {
            Ok(l) => l,
            // Another detached merge runs: what it leaves, the next one takes.
            Err(Error::WriterLocked { .. }) if merge_wait.is_zero() => return Ok(MergeReport::default()),
            Err(e) => return Err(e),
        };
        let planned = self.with_role(role_wait, cancelled, |w| {
            if flush {
                self.flush_with(w)?;
            }
            merge::plan(w, &self.inner, scope, true)
        })?;
        if planned.is_empty() {
            return Ok(MergeReport::default());
        }
        let written = merge::write(&self.inner, &planned)?;
        self.with_role(role_wait, cancelled, |w| {
            merge::publish_merge(w, &self.inner, planned, written)
        })
    }

    /// Run `f` with the writer role taken on this reader handle for it
    /// alone, given back on return, on error and on panic.
    fn with_role<T>(
        &self,
        wait: Duration,
        cancelled: &dyn Fn() -> bool,
        f: impl FnOnce(&Writer) -> Result<T>,
    ) -> Result<T> {
        struct GiveBack<'a>(&'a Core);
        impl Drop for GiveBack<'_> {
            fn drop(&mut self) {
                if let Some(w) = self.0.writer.write().take() {
                    if let Ok(mut wal) = w.io(&self.0.inner) {
                        if let Err(e) = wal.sync_for_release() {
                            self.0.inner.fail(e);
                        }
                    }
                }
            }
        }
        let w = Arc::new(open::take_role(&self.inner, wait, cancelled)?);
        *self.writer.write() = Some(w.clone());
        let _give_back = GiveBack(self);
        f(&w)
    }

    /// Record a failed merge where [`StoreStats`](super::StoreStats) shows it.
    pub(super) fn record(&self, r: Result<MergeReport>) {
        if let Err(e) = r {
            *self.inner.flush_error.lock() = Some(e.to_string());
        }
    }
}

/// The merge thread of a [`MergeRunner::Background`] handle.
#[derive(Default)]
pub(super) struct Merger {
    signal: Arc<Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Signal {
    /// (work due, stop)
    state: Mutex<(bool, bool)>,
    wake: Condvar,
}

impl Merger {
    /// Ask the thread (started now if need be) to run the merges due.
    pub(super) fn wake(&self, core: &Arc<Core>) {
        let mut thread = self.thread.lock();
        if thread.is_none() {
            let (signal, shared) = (self.signal.clone(), core.clone());
            let spawned = std::thread::Builder::new()
                .name("engram-merge".into())
                .spawn(move || merge_loop(&signal, &shared));
            match spawned {
                Ok(t) => *thread = Some(t),
                Err(e) => {
                    // No thread to be had: merge here rather than never.
                    drop(thread);
                    core_record_spawn_failure(core, e);
                    return;
                }
            }
        }
        self.signal.state.lock().0 = true;
        self.signal.wake.notify_one();
    }

    /// Stop the thread once the merge it runs (if any) ends, and wait for it.
    pub(super) fn stop(&self) {
        self.signal.state.lock().1 = true;
        self.signal.wake.notify_one();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn core_record_spawn_failure(core: &Arc<Core>, e: std::io::Error) {
    core.record(Err(Error::Internal(format!("cannot start the merge thread: {e}"))));
    let stop = || false;
    core.record(core.run_due(false, Duration::ZERO, &stop));
}

/// A reader handle of `core`'s store for the merge thread alone: a reader
/// handle's role is taken and given back by its owner's thread, so the
/// merge thread takes it on a handle of its own (as another process would).
fn own_reader(core: &Core) -> Result<Core> {
    let opts = StoreOptions {
        mode: Mode::Reader,
        merge_runner: MergeRunner::Deferred,
        ..core.inner.opts.clone()
    };
    let st = State::load(&opts.fs, &core.inner.dir, false, &HashMap::new())?;
    Ok(Core::new(Inner::new(core.inner.dir.clone(), opts, st), None))
}

/// Run the merges due from the merge thread: as the writer on the writer's
/// handle, detached on a handle of the thread's own otherwise.
fn run_from_thread(core: &Core, own: &mut Option<Core>, stopping: &dyn Fn() -> bool) -> Result<MergeReport> {
    if core.permanent_writer {
        return core.run_due(true, RUN_WAIT, stopping);
    }
    if own.is_none() {
        *own = Some(own_reader(core)?);
    }
    let reader = own.as_ref().expect("opened above");
    reader.refresh()?;
    let r = reader.run_due(true, RUN_WAIT, stopping)?;
    super::inner::Written::add(&core.inner.written.merged, r.bytes_written);
    Ok(r)
}

fn merge_loop(signal: &Signal, core: &Core) {
    let mut own = None;
    loop {
        {
            let mut st = signal.state.lock();
            while !st.0 && !st.1 {
                signal.wake.wait(&mut st);
            }
            if st.1 {
                return;
            }
            st.0 = false;
        }
        let stopping = || signal.state.lock().1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_from_thread(core, &mut own, &stopping)
        }));
        match r {
            Ok(Err(Error::Cancelled)) => return,
            Ok(r) => core.record(r),
            Err(_) => core.record(Err(Error::Internal("the merge thread panicked".into()))),
        }
    }
}
