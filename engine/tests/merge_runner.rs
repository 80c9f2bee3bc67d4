//! Who runs the merges a flush leaves due (`StoreOptions::merge_runner`):
//! with `Background`, a write that fills the memtable returns while the new
//! segment's graph is still being built — held here by a gated indexer, so
//! a write that waited for it could not return at all — and the graph lands
//! on its own; with `Deferred`, nothing builds it until some handle of the
//! store, in this process or another, calls `run_merges`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::Notes;
use engram::index::{Search, SearchParams};
use engram::storage::{IndexInput, MergeRunner, Mode, SegmentIndexer, Store, StoreOptions, TableId};

/// An indexer whose builds wait until the test opens the gate.
#[derive(Debug, Default)]
struct Gated {
    open: Mutex<bool>,
    opened: Condvar,
    started: AtomicUsize,
}

impl Gated {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl SegmentIndexer for Gated {
    fn build(&self, input: &IndexInput<'_>) -> engram::Result<Vec<u8>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        engram::index::Hnsw::default().build(input)
    }
}

fn options(gate: &Arc<Gated>, runner: MergeRunner) -> StoreOptions {
    StoreOptions {
        indexer: Some(gate.clone()),
        memtable_bytes: 64 << 10,
        merge_policy: None,
        merge_runner: runner,
        ..StoreOptions::default()
    }
}

fn reader(path: &std::path::Path, gate: &Arc<Gated>, runner: MergeRunner) -> Store {
    let opts = StoreOptions {
        mode: Mode::Reader,
        ..options(gate, runner)
    };
    Store::open(path, opts).unwrap()
}

/// Once the merges are done: every segment row has its graph, all `n` rows
/// are there, and no merge failed.
fn assert_merged(store: &Store, n: usize) {
    wait_for("the graph", || !store.merges_pending().unwrap());
    let stats = store.stats().unwrap();
    let st = &stats.tables[0];
    assert!(st.indexed_rows > 0 && st.indexed_rows == st.segment_rows);
    assert_eq!(st.live_rows as usize, n);
    assert_eq!(stats.last_flush_error, None);
}

fn key(i: usize) -> Vec<f32> {
    vec![(i as f32 * 0.37).sin(), (i as f32 * 0.11).cos(), i as f32 / 1000.0, 1.0]
}

/// Write batches until the memtable has flushed (the handle's view shows a
/// segment); returns the rows written.
fn write_until_flushed(store: &Store, notes: &Notes, t: TableId) -> usize {
    let mut n = 0;
    while store.stats().unwrap().tables[0].segments == 0 {
        let rows = (n..n + 50).map(|i| notes.row(key(i), &format!("row {i}"))).collect();
        store.insert_batch(t, rows).unwrap();
        n += 50;
        assert!(n < 100_000, "the memtable never flushed");
    }
    n
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Exact top-5 by cosine over the keys written, as the store must answer.
fn brute_top(n: usize, q: &[f32]) -> Vec<u64> {
    let cos = |a: &[f32]| {
        let dot: f32 = a.iter().zip(q).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * q.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let mut all: Vec<(f32, u64)> = (0..n).map(|i| (cos(&key(i)), i as u64)).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(5).map(|x| x.1).collect()
}

fn top(store: &Store, t: TableId, q: &[f32]) -> Vec<u64> {
    let p = SearchParams {
        ef: 400,
        rescore: 0,
        ..SearchParams::default()
    };
    store.search(t, q, 5, &p).unwrap().iter().map(|h| h.id.0).collect()
}

#[test]
fn background_writer_returns_while_the_graph_builds() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gated::default());
    let notes = Notes::new(4, false);
    let store = Store::create(dir.path().join("s"), options(&gate, MergeRunner::Background)).unwrap();
    let t = store.create_table("t", notes.schema.clone()).unwrap();
    let mut n = write_until_flushed(&store, &notes, t);
    wait_for("the build to start", || gate.started.load(Ordering::SeqCst) > 0);
    // The build is stuck behind the gate; writes and searches go on.
    for _ in 0..20 {
        let rows = (n..n + 50).map(|i| notes.row(key(i), &format!("row {i}"))).collect();
        store.insert_batch(t, rows).unwrap();
        n += 50;
    }
    let st = store.stats().unwrap().tables[0].clone();
    assert_eq!(st.indexed_rows, 0, "no graph can have been built yet");
    assert!(store.merges_pending().unwrap());
    let q = key(7777);
    assert_eq!(
        top(&store, t, &q),
        brute_top(n, &q),
        "an unindexed segment is scanned exactly"
    );
    gate.release();
    assert_merged(&store, n);
}

#[test]
fn background_reader_handle_merges_after_giving_the_role_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let gate = Arc::new(Gated::default());
    let notes = Notes::new(4, false);
    let t = Store::create(&path, options(&gate, MergeRunner::Background))
        .unwrap()
        .create_table("t", notes.schema.clone())
        .unwrap();
    let reader = reader(&path, &gate, MergeRunner::Background);
    let cancel = || false;
    reader.begin_write(Duration::from_secs(5), &cancel).unwrap();
    let mut n = write_until_flushed(&reader, &notes, t);
    reader.end_write().unwrap();
    wait_for("the build to start", || gate.started.load(Ordering::SeqCst) > 0);
    // The merge thread builds on a handle of its own: this one takes the
    // role again and commits while the graph waits.
    reader.begin_write(Duration::from_secs(5), &cancel).unwrap();
    let rows = (n..n + 50).map(|i| notes.row(key(i), &format!("row {i}"))).collect();
    reader.insert_batch(t, rows).unwrap();
    n += 50;
    reader.end_write().unwrap();
    gate.release();
    assert_merged(&reader, n);
}

#[test]
fn deferred_merges_wait_for_run_merges_on_any_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let gate = Arc::new(Gated::default());
    gate.release();
    let notes = Notes::new(4, false);
    let store = Store::create(&path, options(&gate, MergeRunner::Deferred)).unwrap();
    let t = store.create_table("t", notes.schema.clone()).unwrap();
    let n = write_until_flushed(&store, &notes, t);
    store.flush().unwrap();
    assert_eq!(
        gate.started.load(Ordering::SeqCst),
        0,
        "a deferred handle built a graph"
    );
    assert!(store.merges_pending().unwrap());
    // The writer runs them itself...
    let r = store.run_merges(Duration::from_secs(5), &|| false).unwrap();
    assert!(r.segments_out >= 1);
    assert!(!store.merges_pending().unwrap());
    drop(store);

    // ... and a reader handle runs what another handle's flush left.
    let writer = Store::open(&path, options(&gate, MergeRunner::Deferred)).unwrap();
    let rows = (n..n + 500).map(|i| notes.row(key(i), &format!("row {i}"))).collect();
    writer.insert_batch(t, rows).unwrap();
    writer.flush().unwrap();
    assert!(writer.merges_pending().unwrap());
    drop(writer);
    let reader = reader(&path, &gate, MergeRunner::Deferred);
    assert!(reader.merges_pending().unwrap());
    reader.run_merges(Duration::from_secs(5), &|| false).unwrap();
    assert!(!reader.merges_pending().unwrap());
    assert_merged(&reader, n + 500);
    let q = key(4242);
    assert_eq!(top(&reader, t, &q), brute_top(n + 500, &q));
}

#[test]
fn dropping_a_background_handle_waits_for_its_merge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let gate = Arc::new(Gated::default());
    let notes = Notes::new(4, false);
    let store = Store::create(&path, options(&gate, MergeRunner::Background)).unwrap();
    let t = store.create_table("t", notes.schema.clone()).unwrap();
    let n = write_until_flushed(&store, &notes, t);
    wait_for("the build to start", || gate.started.load(Ordering::SeqCst) > 0);
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            gate.release();
        })
    };
    drop(store);
    opener.join().unwrap();
    let store = Store::open(&path, options(&gate, MergeRunner::Inline)).unwrap();
    let st = &store.stats().unwrap().tables[0];
    assert!(st.indexed_rows > 0, "the merge running at drop was not finished");
    assert_eq!(st.live_rows as usize, n);
}
