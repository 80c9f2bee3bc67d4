//! The graph builds and merges that commits leave due, run by a background
//! worker so that no COMMIT waits for a graph.
//!
//! Engine copies are opened with [`MergeRunner::Deferred`]: a publish that
//! flushes the copy's memtable, or ingests a large transaction as segments,
//! leaves those segments without graphs (searches scan them exactly). After
//! its publish, the committing backend starts a dynamic background worker
//! for the store ([`after_publish`]); the worker opens a handle of its own
//! and runs [`Store::run_merges`] — detached, taking the copy's writer role
//! only to plan and to publish — until nothing is due. One worker merges a
//! store at a time (the engine's `MERGE` lock); a worker that finds it taken
//! exits at once, since the holder looks again for work after it lets go.
//!
//! A worker that cannot be had (no free slot of `max_worker_processes`), or
//! `engram.background_merges = off`, runs the merges in the committing
//! backend, after its publish and before COMMIT returns. A worker stopped
//! half-way (server shutdown, crash) leaves only files the next writer
//! removes; the work is done by the next one started.

use std::time::Duration;

use engram::storage::Store;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;

use crate::backend::database_oid;
use crate::handles;

/// Start the merges due on the copy of `store` after a publish: in a
/// background worker if one can be had, else here.
pub fn after_publish(store: &str, copy: &Store) {
    match copy.merges_pending() {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            debug1!("engram: store {store:?}: cannot tell whether merges are due: {e}");
            return;
        }
    }
    if crate::gucs::BACKGROUND_MERGES.get() && start_worker(store) {
        return;
    }
    // In the committing backend: after the publish, with no role held, so
    // other backends' commits go on.
    if let Err(e) = copy.run_merges(Duration::ZERO, &|| false) {
        warning!(
            "engram: store {store:?}: merging the engine copy after commit failed ({}); the next commit that flushes tries again",
            crate::errors::scrub(&e.to_string())
        );
    }
}

fn start_worker(store: &str) -> bool {
    let started = BackgroundWorkerBuilder::new(&format!("engram merges {store}"))
        .set_type("engram merges")
        .set_library("pg_engram")
        .set_function("engram_merge_worker")
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_argument(Some(pg_sys::Datum::from(database_oid() as usize)))
        .set_extra(store)
        .load_dynamic();
    match started {
        Ok(_) => true,
        Err(_) => {
            debug1!("engram: store {store:?}: no background worker slot free; merging in this backend");
            false
        }
    }
}

/// The background worker's main function: run the merges due on the copy
/// of the store named in `bgw_extra` (of the database whose oid is `arg`).
///
/// It keeps PostgreSQL's default SIGTERM handling for background workers
/// (exit at once): the engine's files are safe at any point of a merge, and
/// a shutdown should not wait for a graph.
// `no_mangle` counts as unsafe code: PostgreSQL finds the worker's entry
// point by this exact symbol name, which nothing else in the process uses.
#[allow(unsafe_code)]
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn engram_merge_worker(arg: pg_sys::Datum) {
    crate::backend::unblock_worker_signals();
    let database = arg.value() as u32;
    let store = BackgroundWorker::get_extra().to_string();
    let dir = handles::dir_in(database, &store);
    let copy = match Store::open(&dir, handles::options()) {
        Ok(c) => c,
        // Dropped or rebuilt meanwhile: nothing to do.
        Err(e) => {
            debug1!("engram merges: store {store:?}: not opened: {e}");
            return;
        }
    };
    loop {
        match copy.run_merges(Duration::ZERO, &|| false) {
            // Another worker holds the merge lock (it looks again once it
            // lets go), or nothing is due any more.
            Ok(r) if r.segments_in == 0 => return,
            Ok(r) => log!(
                "engram merges: store {store:?}: {} segments into {}, {} rows",
                r.segments_in,
                r.segments_out,
                r.rows_written
            ),
            Err(e) => {
                log!(
                    "engram merges: store {store:?}: merge failed: {}",
                    crate::errors::scrub(&e.to_string())
                );
                return;
            }
        }
        match copy.merges_pending() {
            Ok(true) => {}
            _ => return,
        }
    }
}
