//! Simulated machine crashes: the store runs on `SimFs`, which keeps only
//! what was fsynced (file contents, and directory entries once their
//! directory is fsynced). A workload of inserts, deletes, updates, flushes,
//! merges (with graphs), bulk ingests and syncs runs until the machine dies at operation
//! k, or until one write or fsync fails; then the machine crashes, and the
//! store must open, verify, and hold exactly the state after some prefix of
//! the workload — at least everything acknowledged as durable under the
//! sync policy (every acknowledged change under `Always`; everything up to
//! the last flush or `sync` under `Batch` and `Off`).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::Notes;
use engram::index::{Hnsw, Search, SearchParams};
use engram::storage::fs::SimFs;
use engram::storage::{Row, RowId, Store, StoreOptions, SyncPolicy, Value};

/// Seed and counter of each live row.
type State = BTreeMap<u64, (u64, u64)>;

#[derive(Clone, Copy, Debug)]
enum Step {
    Insert(u64),
    Delete(u64),
    Add(u64, u64),
    /// Three rows by bulk ingest (seeds `s`, `s + 1`, `s + 2`).
    Ingest(u64),
    Flush,
    Merge,
    Sync,
}

/// The workload: the same every run.
fn workload() -> Vec<Step> {
    let mut v = Vec::new();
    for i in 0..120u64 {
        v.push(Step::Insert(i));
        if i % 5 == 3 {
            v.push(Step::Delete(i * 7 % (i + 1)));
        }
        if i % 4 == 1 {
            v.push(Step::Add(i * 3 % (i + 1), i));
        }
        if i % 30 == 29 {
            v.push(Step::Flush);
        }
        if i % 17 == 16 {
            v.push(Step::Sync);
        }
        if i == 70 {
            v.push(Step::Merge);
        }
        if i % 25 == 12 {
            v.push(Step::Ingest(1000 + i * 3));
        }
    }
    v
}

fn row(n: &Notes, seed: u64) -> Row {
    let s = seed as f32;
    n.row(
        vec![s, 1.0, -s, 0.5],
        &format!("row {seed} {}", "·".repeat((seed % 40) as usize)),
    )
    .with(n.tag, seed)
}

/// The model: states after each step (step i's state at index i + 1).
fn states(steps: &[Step]) -> Vec<State> {
    let mut st = State::new();
    let mut next = 0u64;
    let mut out = vec![st.clone()];
    for s in steps {
        match *s {
            Step::Insert(seed) => {
                st.insert(next, (seed, 0));
                next += 1;
            }
            Step::Delete(id) => {
                st.remove(&id);
            }
            Step::Add(id, d) => {
                if let Some(r) = st.get_mut(&id) {
                    r.1 += d;
                }
            }
            Step::Ingest(seed) => {
                for k in 0..3 {
                    st.insert(next, (seed + k, 0));
                    next += 1;
                }
            }
            _ => {}
        }
        out.push(st.clone());
    }
    out
}

fn opts(fs: Option<Arc<SimFs>>, sync: SyncPolicy) -> StoreOptions {
    let mut o = StoreOptions {
        sync,
        memtable_bytes: 6 << 10,
        indexer: Some(Arc::new(Hnsw {
            threads: 1,
            ..Hnsw::default()
        })),
        ..StoreOptions::default()
    };
    if let Some(fs) = fs {
        o.fs = fs;
    }
    o
}

/// Run the workload on `fs` until a step fails. Returns (steps attempted,
/// steps known durable).
fn run(path: &std::path::Path, fs: Arc<SimFs>, sync: SyncPolicy, steps: &[Step]) -> (usize, usize) {
    let n = Notes::new(4, false);
    let store = match Store::create(path, opts(Some(fs), sync)) {
        Ok(s) => s,
        Err(_) => return (0, 0),
    };
    let t = match store.create_table("t", n.schema.clone()) {
        Ok(t) => t,
        Err(_) => return (0, 0),
    };
    let mut durable = 0;
    for (i, s) in steps.iter().enumerate() {
        let ok = match *s {
            Step::Insert(seed) => store.insert(t, row(&n, seed)).is_ok(),
            Step::Delete(id) => store.delete(t, RowId(id)).is_ok(),
            Step::Add(id, d) => store.update(t, RowId(id), vec![n.n.add(d)]).is_ok(),
            Step::Ingest(seed) => store.ingest(t, (0..3).map(|k| row(&n, seed + k)), &[], None).is_ok(),
            Step::Flush => store.flush().is_ok(),
            Step::Merge => store.merge().is_ok(),
            Step::Sync => store.sync().is_ok(),
        };
        if !ok {
            return (i + 1, durable);
        }
        // A flush or sync makes everything before it durable; under Always,
        // every acknowledged change is.
        if sync == SyncPolicy::Always || matches!(s, Step::Flush | Step::Sync | Step::Ingest(_)) {
            durable = i + 1;
        }
    }
    (steps.len(), durable)
}

/// Open the crashed store and check it against the model.
fn check(path: &std::path::Path, want: &[State], attempted: usize, durable: usize, what: &str) {
    let n = Notes::new(4, false);
    let store = match Store::open(path, opts(None, SyncPolicy::Always)) {
        Ok(s) => s,
        // The machine died before the store was created.
        Err(engram::Error::NotFound(_)) if durable == 0 => return,
        Err(e) => panic!("{what}: the crashed store does not open: {e}"),
    };
    store.verify().unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    let Ok(t) = store.table("t") else {
        assert_eq!(durable, 0, "{what}: table lost");
        return;
    };
    let mut got = State::new();
    for r in store.scan(t).unwrap() {
        let (id, r) = r.unwrap_or_else(|e| panic!("{what}: unreadable row: {e}"));
        let seed = match r.get(n.tag.0) {
            Value::UInt(s) => *s,
            other => panic!("{what}: row {} has tag {other:?}", id.0),
        };
        let count = match r.get(n.n.0) {
            Value::UInt(c) => *c,
            other => panic!("{what}: row {} has count {other:?}", id.0),
        };
        let mut expect = n.canonical(row(&n, seed));
        expect.set_value(n.n.0, Value::UInt(count));
        assert_eq!(r, expect, "{what}: row {} is not intact", id.0);
        got.insert(id.0, (seed, count));
    }
    let prefix = (durable..=attempted.min(want.len() - 1)).find(|&m| want[m] == got);
    if prefix.is_none() && std::env::var("CRASH_DEBUG").is_ok() {
        let from = durable.saturating_sub(3);
        for (m, w) in want.iter().enumerate().take(attempted + 1).skip(from) {
            let missing: Vec<_> = w.iter().filter(|(k, v)| got.get(k) != Some(v)).collect();
            let extra: Vec<_> = got.iter().filter(|(k, v)| w.get(k) != Some(v)).collect();
            eprintln!("state {m}: missing {missing:?} extra {extra:?}");
        }
    }
    assert!(
        prefix.is_some(),
        "{what}: the store holds no state between step {durable} (durable) and {attempted} (attempted): {} rows",
        got.len()
    );
    if let Some((_, &(seed, _))) = got.iter().next() {
        let s = seed as f32;
        let hits = store
            .search(t, &[s, 1.0, -s, 0.5], 3, &SearchParams::default())
            .unwrap();
        assert_eq!(hits.len(), got.len().min(3), "{what}: search came back short");
    }
    // The recovered store takes writes again.
    store.insert(t, row(&n, 999)).unwrap();
}

#[test]
fn acknowledged_writes_survive_simulated_machine_crashes() {
    let steps = workload();
    let want = states(&steps);
    // A dry run counts the file-system operations of the whole workload.
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(SimFs::new(dir.path()));
        let (done, _) = run(&dir.path().join("s"), fs.clone(), SyncPolicy::Always, &steps);
        assert_eq!(done, steps.len());
        fs.ops()
    };
    let mut points = 0;
    for sync in [SyncPolicy::Always, SyncPolicy::Batch, SyncPolicy::Off] {
        // Crash points spread over the whole run (80 per policy), then
        // single I/O errors (20 per policy) followed by a crash.
        for (mode, count) in [("die", 80u64), ("fail", 20)] {
            for i in 0..count {
                let k = 1 + (i * total / count) + (i * 7919 % 13);
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("s");
                let fs = Arc::new(SimFs::new(dir.path()));
                if mode == "die" {
                    fs.die_at(k);
                } else {
                    fs.fail_at(k);
                }
                let (attempted, durable) = run(&path, fs.clone(), sync, &steps);
                // A failed write leaves the handle refusing writes; the steps
                // after it fail at once, so nothing past the failure counts.
                fs.crash().unwrap();
                check(
                    &path,
                    &want,
                    attempted,
                    durable,
                    &format!("{sync:?} {mode} at op {k} of {total}"),
                );
                points += 1;
            }
        }
    }
    println!("{points} crash points over {total} file-system operations per run");
    assert!(points >= 200);
}

/// A failed WAL fsync leaves the outcome of what it covered unknown (the
/// kernel may have dropped those pages): on every path that fsyncs —
/// `Store::sync` and giving the role back here (a merge's plan and publish
/// take the same path) — the handle then
/// refuses writes, rather than let a later fsync that succeeds call them
/// durable.
#[test]
fn a_failed_fsync_fails_the_handle_on_every_path() {
    let n = Notes::new(4, false);
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(SimFs::new(dir.path()));
    let path = dir.path().join("s");
    let store = Store::create(&path, opts(Some(fs.clone()), SyncPolicy::Batch)).unwrap();
    let t = store.create_table("t", n.schema.clone()).unwrap();
    store.insert(t, row(&n, 1)).unwrap();
    fs.fail_at(fs.ops() + 1);
    assert!(store.sync().is_err());
    let e = store.insert(t, row(&n, 2)).unwrap_err();
    assert!(matches!(e, engram::Error::WriterFailed(_)), "{e:?}");
    drop(store);

    // A reader handle that took the role: the fsync of giving it back.
    let reader = Store::open(
        &path,
        StoreOptions {
            mode: engram::storage::Mode::Reader,
            ..opts(Some(fs.clone()), SyncPolicy::Batch)
        },
    )
    .unwrap();
    reader
        .begin_write(std::time::Duration::from_secs(5), &|| false)
        .unwrap();
    reader.insert(t, row(&n, 3)).unwrap();
    fs.fail_at(fs.ops() + 1);
    assert!(reader.end_write().is_err());
    let refused = reader
        .begin_write(std::time::Duration::from_secs(5), &|| false)
        .and_then(|_| reader.insert(t, row(&n, 4)));
    assert!(matches!(refused, Err(engram::Error::WriterFailed(_))), "{refused:?}");
    let _ = reader.end_write();
}
