//! Merges that never block writers: while one reader handle (as a
//! PostgreSQL backend is) merges a table and builds its graph, others keep
//! taking the writer role and committing, and their commit latency stays
//! far below the merge's length.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engram::index::{Hnsw, Search, SearchParams};
use engram::storage::{Dim, IndexSpec, KeySpec, Row, Schema, Store, StoreOptions, Value};
use rand::{Rng, SeedableRng};

fn schema() -> Schema {
    Schema::builder()
        .key(
            "key",
            KeySpec::new(Dim::new(64).unwrap()).with_index(Some(IndexSpec {
                m: 16,
                ef_construction: 200,
            })),
        )
        .build()
        .unwrap()
}

fn row(rng: &mut impl Rng) -> Row {
    Row::from_values(vec![Value::Vector(
        (0..64).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
    )])
}

fn reader() -> StoreOptions {
    StoreOptions {
        indexer: Some(Arc::new(Hnsw {
            threads: 1,
            ..Hnsw::default()
        })),
        // Commits here never flush: the merge under test is the only one.
        memtable_bytes: 1 << 30,
        ..StoreOptions::reader()
    }
}

#[test]
fn commits_go_on_while_a_detached_merge_builds_a_graph() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    {
        let s = Store::create(
            &path,
            StoreOptions {
                index_on_flush: false,
                merge_policy: None,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let t = s.create_table("t", schema()).unwrap();
        for _ in 0..4 {
            s.insert_batch(t, (0..3000).map(|_| row(&mut rng)).collect()).unwrap();
            s.flush().unwrap();
        }
    }
    let merger = Store::open(&path, reader()).unwrap();
    let writer = Store::open(&path, reader()).unwrap();
    let t = writer.table("t").unwrap();
    let done = AtomicBool::new(false);
    let (merge_time, latencies) = std::thread::scope(|s| {
        let m = s.spawn(|| {
            let start = Instant::now();
            let r = merger.optimize_detached(Duration::from_secs(10), &|| false).unwrap();
            done.store(true, Ordering::SeqCst);
            // The four flushed segments, and what the flush found in the memtable.
            assert!(r.segments_in >= 4 && r.segments_out == 1, "{r:?}");
            start.elapsed()
        });
        let mut lat = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        while !done.load(Ordering::SeqCst) {
            let start = Instant::now();
            writer.begin_write(Duration::from_secs(10), &|| false).unwrap();
            writer.insert(t, row(&mut rng)).unwrap();
            writer.end_write().unwrap();
            lat.push(start.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
        (m.join().unwrap(), lat)
    });
    let worst = latencies.iter().max().copied().unwrap_or_default();
    let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    println!(
        "detached merge of 12,000 rows: {merge_time:?}; {} commits meanwhile, mean {mean:?}, worst {worst:?}",
        latencies.len()
    );
    assert!(latencies.len() >= 10, "commits stalled during the merge");
    assert!(
        worst * 4 < merge_time,
        "a commit waited {worst:?} during a {merge_time:?} merge"
    );
    // Everything is there: the merged rows with their graph, and the rows
    // committed meanwhile.
    let check = Store::open(&path, StoreOptions::reader()).unwrap();
    let st = check.stats().unwrap().tables[0].clone();
    assert_eq!(st.live_rows, 12_000 + latencies.len() as u64);
    assert!(st.indexed_rows >= 12_000 && st.segments <= 2, "{st:?}");
    let q = vec![0.1f32; 64];
    assert_eq!(check.search(t, &q, 10, &SearchParams::default()).unwrap().len(), 10);
}
