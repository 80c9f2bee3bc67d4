//! Settings: `SET engram.ef_search = 100;` and friends.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Candidate list size of graph search, when a call does not give one.
pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Candidates kept per result for rescoring on f32 keys (0: exact f32 scan).
pub static RESCORE: GucSetting<i32> = GucSetting::<i32>::new(4);
/// Memtable size (kB) at which a commit flushes an engine copy's memtable to
/// a segment and builds the segment's graph.
pub static MEMTABLE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

/// Per-second recency decay of session memories (agent memory, §2).
pub static RECENCY_SESSION: GucSetting<f64> = GucSetting::<f64>::new(1e-4);
/// Per-second recency decay of durable namespace memories.
pub static RECENCY_NAMESPACE: GucSetting<f64> = GucSetting::<f64>::new(1e-5);
/// Per-second recency decay of global memories.
pub static RECENCY_GLOBAL: GucSetting<f64> = GucSetting::<f64>::new(2e-6);

/// Whether the graph builds and merges a commit leaves due run in a
/// background worker (on) or in the committing backend before its COMMIT
/// returns (off).
pub static BACKGROUND_MERGES: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Testing only (superuser): a fault to inject into every publish at commit
/// of this session — `publish_panic` (a panic with the writer role held) or
/// `publish_stall` (a 5 s pause with the role held, to kill the backend in).
pub static INJECT_FAULT: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(None);

/// The fault to inject, if any (see [`INJECT_FAULT`]).
pub fn fault() -> Option<String> {
    INJECT_FAULT
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// Register the settings (called from `_PG_init`).
pub fn init() {
    GucRegistry::define_int_guc(
        c"engram.ef_search",
        c"Candidate list size of nearest-neighbour graph search.",
        c"Larger values raise recall and cost time. A call's own ef argument overrides it.",
        &EF_SEARCH,
        1,
        10_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"engram.rescore",
        c"Candidates per result scored on int8 codes before rescoring on f32 keys.",
        c"0 scores every row on its f32 key (exact and slowest).",
        &RESCORE,
        0,
        1_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"engram.memtable_size",
        c"Memtable size at which a commit flushes an engine copy to a segment with its own graph.",
        c"Read when a backend opens a store's engine copy. Larger: fewer, larger graphs, and a longer pause for the commit that builds one.",
        &MEMTABLE_SIZE,
        64,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_bool_guc(
        c"engram.background_merges",
        c"Build the graphs and run the merges a commit leaves due in a background worker.",
        c"On: COMMIT returns once the rows are in the engine copy, and a worker (one of max_worker_processes) builds their graph meanwhile; searches scan the new rows exactly until it is done. Off, or when no worker slot is free: the committing backend builds it before COMMIT returns.",
        &BACKGROUND_MERGES,
        GucContext::Userset,
        GucFlags::default(),
    );
    for (name, short, setting) in [
        (
            c"engram.recency_session",
            c"Per-second recency decay of session memories (default 1e-4: a half-life of 1.9 hours).",
            &RECENCY_SESSION,
        ),
        (
            c"engram.recency_namespace",
            c"Per-second recency decay of durable namespace memories (default 1e-5: a half-life of 19 hours).",
            &RECENCY_NAMESPACE,
        ),
        (
            c"engram.recency_global",
            c"Per-second recency decay of global memories (default 2e-6: a half-life of 4 days).",
            &RECENCY_GLOBAL,
        ),
    ] {
        GucRegistry::define_float_guc(
            name,
            short,
            c"Recency is exp(-rate x age in seconds); used by engram.recency and engram.hybrid_score.",
            setting,
            0.0,
            1.0,
            GucContext::Userset,
            GucFlags::default(),
        );
    }
    GucRegistry::define_string_guc(
        c"engram.inject_fault",
        c"Testing only: a fault injected into every publish at commit (publish_panic, publish_stall).",
        c"For the crash and concurrency tests; leave unset.",
        &INJECT_FAULT,
        GucContext::Suset,
        GucFlags::default(),
    );
}
