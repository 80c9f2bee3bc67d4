//! HNSW through the store: graphs built by merge, persisted and mapped,
//! searched with and without filters and deletes, against brute force on
//! f32 keys; merges that run while writers and readers go on.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engram::index::{Filter, Hnsw, PlanChoice, Search, SearchParams};
use engram::kernels::scalar;
use engram::storage::{Dim, IndexSpec, KeySpec, Row, RowId, Schema, Store, StoreOptions, TableId, Value};
use rand::{Rng, SeedableRng};

/// A key of `dim` with a graph (M 12, ef_construction 100) and a namespace.
fn schema(dim: usize) -> Schema {
    Schema::builder()
        .key(
            "key",
            KeySpec::new(Dim::new(dim as u32).unwrap()).with_index(Some(IndexSpec {
                m: 12,
                ef_construction: 100,
            })),
        )
        .symbol("ns")
        .build()
        .unwrap()
}

/// A row of [`schema`].
fn krow(v: Vec<f32>) -> Row {
    Row::from_values(vec![Value::Vector(v)])
}

fn read_f32(path: &str, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(all.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

/// Base rows and queries: the committed sample of real sentence embeddings
/// (KJV verses and clauses, all-MiniLM-L6-v2, 384-d: up to 2,000 rows and
/// 100 held-out queries), or, if it is absent, clustered unit vectors.
fn data(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/kjv-sample");
    if let (Some(base), Some(queries)) = (
        read_f32(&format!("{dir}/base.f32"), 384),
        read_f32(&format!("{dir}/queries.f32"), 384),
    ) {
        let start = (seed as usize * 97) % (base.len().saturating_sub(n) + 1);
        let queries = queries.into_iter().skip(seed as usize * 10).take(40).collect();
        return (base[start..(start + n).min(base.len())].to_vec(), queries);
    }
    let dim = 64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centers: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let mut all: Vec<Vec<f32>> = (0..n + 40)
        .map(|_| {
            let c = &centers[rng.gen_range(0..centers.len())];
            let v: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.5..0.5)).collect();
            let norm = scalar::norm(&v);
            v.iter().map(|x| x / norm).collect()
        })
        .collect();
    let queries = all.split_off(n);
    (all, queries)
}

fn indexed_options() -> StoreOptions {
    StoreOptions {
        indexer: Some(Arc::new(Hnsw {
            threads: 2,
            ..Hnsw::default()
        })),
        ..StoreOptions::default()
    }
}

/// Indexed, but flushes leave their segments to an explicit merge.
fn merge_indexed_options() -> StoreOptions {
    StoreOptions {
        index_on_flush: false,
        ..indexed_options()
    }
}

fn indexed_store(dir: &std::path::Path) -> Store {
    Store::open_or_create(dir, indexed_options()).unwrap()
}

/// Namespace of row `i`: "a" for 1 row in `per`, else "b" (hashing the
/// position so the filter is not correlated with the vectors' order).
fn ns(i: usize, per: usize) -> String {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    if (h as usize).is_multiple_of(per) {
        "a".into()
    } else {
        "b".into()
    }
}

fn truth(rows: &[(u64, Vec<f32>)], q: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = rows
        .iter()
        .filter(|(id, _)| keep(*id))
        .map(|(id, v)| (scalar::cosine_distance(q, v), *id))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|x| x.1).collect()
}

struct Loaded {
    _dir: tempfile::TempDir,
    store: Store,
    t: TableId,
    rows: Vec<(u64, Vec<f32>)>,
    queries: Vec<Vec<f32>>,
}

/// `n` rows in three flushes, merged into one indexed segment.
fn load(n: usize, per: usize) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let store = indexed_store(&dir.path().join("s"));
    let (base, queries) = data(n, 1);
    let n = base.len();
    let t = store.create_table("t", schema(base[0].len())).unwrap();
    let mut rows = Vec::new();
    for (c, chunk) in base.chunks(n.div_ceil(3)).enumerate() {
        let batch: Vec<Row> = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                Row::from_values(vec![
                    Value::Vector(v.clone()),
                    Value::Str(ns(c * n.div_ceil(3) + j, per)),
                ])
            })
            .collect();
        let ids = store.insert_batch(t, batch).unwrap();
        rows.extend(ids.into_iter().zip(chunk.iter().cloned()).map(|(id, v)| (id.0, v)));
        store.flush().unwrap();
    }
    let report = store.merge().unwrap();
    assert_eq!((report.segments_in, report.segments_out), (3, 1));
    Loaded {
        _dir: dir,
        store,
        t,
        rows,
        queries,
    }
}

fn mean_recall(l: &Loaded, p: &SearchParams, keep: &dyn Fn(u64) -> bool) -> f64 {
    let mut total = 0.0;
    for q in &l.queries {
        let want = truth(&l.rows, q, 10, keep);
        let got = l.store.search(l.t, q, 10, p).unwrap();
        assert_eq!(got.len(), want.len(), "a search returns k rows when k rows pass");
        for h in &got {
            assert!(keep(h.id.0), "row {} does not pass the filter", h.id.0);
        }
        let got: HashSet<u64> = got.iter().map(|h| h.id.0).collect();
        total += want.iter().filter(|id| got.contains(id)).count() as f64 / want.len().max(1) as f64;
    }
    total / l.queries.len() as f64
}

#[test]
fn merged_graph_is_persisted_mapped_and_meets_recall() {
    let l = load(2000, 10);
    let n = l.rows.len() as u64;
    let st = l.store.stats().unwrap();
    assert_eq!(st.tables[0].indexed_rows, n);
    assert!(st.tables[0].index_bytes > 0);
    let p = SearchParams::default();
    let r = mean_recall(&l, &p, &|_| true);
    assert!(r >= 0.95, "recall@10 {r}");
    // Reopen: the graph comes back from the segment, not from a rebuild.
    let path = l.store.path().to_path_buf();
    let before: Vec<_> = l
        .queries
        .iter()
        .map(|q| l.store.search(l.t, q, 10, &p).unwrap())
        .collect();
    drop(l.store);
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    let st = store.stats().unwrap();
    assert_eq!(st.tables[0].indexed_rows, n);
    for (q, b) in l.queries.iter().zip(&before) {
        assert_eq!(&store.search(l.t, q, 10, &p).unwrap(), b);
    }
    store.verify().unwrap();
}

#[test]
fn filters_keep_recall_at_every_selectivity() {
    // 1 row in `per` is in namespace "a": 50%, 10%, 1% and 0.1%. The filter
    // is searched by the plan the cost model picks (posting lists for the
    // selective ones), and by a forced filtered walk of the graph.
    for per in [2usize, 10, 100, 1000] {
        let l = load(2000, per);
        let a: HashSet<u64> = (0..l.rows.len())
            .filter(|&i| ns(i, per) == "a")
            .map(|i| l.rows[i].0)
            .collect();
        for plan in [PlanChoice::Auto, PlanChoice::Graph, PlanChoice::Scan] {
            let p = SearchParams {
                filter: Filter::eq("ns", "a"),
                plan,
                ..SearchParams::default()
            };
            let r = mean_recall(&l, &p, &|id| a.contains(&id));
            assert!(r >= 0.95, "recall@10 {r} at selectivity 1/{per}, plan {plan:?}");
        }
    }
}

#[test]
fn deleted_rows_are_never_returned_and_merge_drops_them() {
    let l = load(2000, 10);
    let p = SearchParams::default();
    // Delete each query's true nearest rows: the graph still holds them.
    let mut dead = HashSet::new();
    for q in l.queries.iter().take(20) {
        for id in truth(&l.rows, q, 5, |_| true) {
            if dead.insert(id) {
                assert!(l.store.delete(l.t, RowId(id)).unwrap());
            }
        }
    }
    let keep = |id: u64| !dead.contains(&id);
    let r = mean_recall(&l, &p, &keep);
    assert!(r >= 0.95, "recall@10 with deletes {r}");
    let report = l.store.merge().unwrap();
    assert_eq!(report.rows_dropped, dead.len() as u64);
    assert_eq!(
        l.store.stats().unwrap().tables[0].indexed_rows,
        2000 - dead.len() as u64
    );
    let rows: Vec<_> = l.rows.iter().filter(|(id, _)| keep(*id)).cloned().collect();
    let l = Loaded { rows, ..l };
    let r = mean_recall(&l, &p, &|_| true);
    assert!(r >= 0.95, "recall@10 after merge {r}");
}

#[test]
fn merge_runs_while_writers_commit_and_readers_search() {
    let dir = tempfile::tempdir().unwrap();
    // Flushes here leave their segments to the merge under test, so that
    // they do not wait for it to index them.
    let store = Arc::new(Store::create(dir.path().join("s"), merge_indexed_options()).unwrap());
    let (all, _) = data(3000, 2);
    let all: Vec<Vec<f32>> = all.iter().cycle().take(3000).cloned().collect();
    let t = store.create_table("t", schema(all[0].len())).unwrap();
    let first: Vec<Row> = all[..2000].iter().map(|v| krow(v.clone())).collect();
    store.insert_batch(t, first).unwrap();
    store.flush().unwrap();
    store.insert(t, krow(all[2000].clone())).unwrap();
    store.flush().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, rest) = (store.clone(), stop.clone(), all[2001..].to_vec());
        std::thread::spawn(move || {
            let mut deleted = Vec::new();
            for (i, v) in rest.into_iter().enumerate() {
                store.insert(t, krow(v)).unwrap();
                if i % 10 == 0 {
                    // Rows of the segments being merged.
                    let id = RowId((i * 2) as u64);
                    assert!(store.delete(t, id).unwrap());
                    deleted.push(id.0);
                }
                if i % 300 == 0 {
                    store.flush().unwrap();
                }
            }
            stop.store(true, Ordering::SeqCst);
            deleted
        })
    };
    let reader = {
        let (store, stop, q) = (store.clone(), stop.clone(), all[5].clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n == 0 {
                let hits = store.search(t, &q, 10, &SearchParams::default()).unwrap();
                assert_eq!(hits.len(), 10);
                n += 1;
            }
            n
        })
    };
    store.merge().unwrap();
    let deleted = writer.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    store.flush().unwrap();
    store.merge().unwrap();
    let check = |s: &Store| {
        let live: HashSet<u64> = s.live_ids(t).unwrap().into_iter().map(|r| r.0).collect();
        let want: HashSet<u64> = (0..3000u64).filter(|id| !deleted.contains(id)).collect();
        assert_eq!(live, want);
        let st = s.stats().unwrap();
        assert_eq!(st.tables[0].segments, 1);
        assert_eq!(st.tables[0].indexed_rows, want.len() as u64);
        for h in s.search(t, &all[7], 50, &SearchParams::default()).unwrap() {
            assert!(!deleted.contains(&h.id.0));
        }
    };
    check(&store);
    let path = store.path().to_path_buf();
    drop(store);
    check(&Store::open(&path, StoreOptions::reader()).unwrap());
}

/// Every segment a flush writes gets its own graph, whether the flush was
/// asked for or forced by a full memtable in the middle of concurrent
/// commits; indexed segments keep theirs and their place, and searches over
/// many graphs match brute force.
#[test]
fn flushed_segments_get_their_own_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        // About 120 rows of 384-d keys: a flush every few commits.
        memtable_bytes: 256 << 10,
        // Each flushed segment keeps its own graph (tests/merge_policy.rs
        // folds them together).
        merge_policy: None,
        ..indexed_options()
    };
    let store = Arc::new(Store::create(dir.path().join("s"), opts).unwrap());
    let (base, queries) = data(2000, 3);
    let t = store.create_table("t", schema(base[0].len())).unwrap();
    let (first, base) = base.split_at(50);
    let ids = store
        .insert_batch(t, first.iter().map(|v| krow(v.clone())).collect())
        .unwrap();
    let first: Vec<(u64, Vec<f32>)> = ids.into_iter().map(|id| id.0).zip(first.iter().cloned()).collect();
    let writers: Vec<_> = base
        .chunks(base.len().div_ceil(2))
        .map(|part| {
            let (store, part) = (store.clone(), part.to_vec());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for chunk in part.chunks(25) {
                    let rows = chunk.iter().map(|v| krow(v.clone())).collect();
                    let ids = store.insert_batch(t, rows).unwrap();
                    mine.extend(ids.into_iter().map(|id| id.0).zip(chunk.iter().cloned()));
                    // Delete one row of every batch: some of them sit in
                    // segments that are about to be indexed.
                    store.delete(t, RowId(mine[mine.len() - 7].0)).unwrap();
                }
                mine
            })
        })
        .collect();
    let searcher = {
        let (store, q) = (store.clone(), queries[0].clone());
        std::thread::spawn(move || {
            for _ in 0..200 {
                let hits = store.search(t, &q, 10, &SearchParams::default()).unwrap();
                assert_eq!(hits.len(), 10);
            }
        })
    };
    let mut rows: Vec<(u64, Vec<f32>)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    rows.extend(first);
    searcher.join().unwrap();
    let before = store.stats().unwrap().tables[0].clone();
    assert!(before.segments >= 4, "{} segments", before.segments);
    store.flush().unwrap();
    let st = store.stats().unwrap().tables[0].clone();
    // A flush indexes only what has no index: the indexed segments stay.
    assert!(st.segments <= before.segments + 1);
    assert!(st.segments > 1);
    assert_eq!(st.indexed_rows, st.segment_rows, "every segment has a graph");
    assert_eq!(st.memtable_rows, 0);

    let live: HashSet<u64> = store.live_ids(t).unwrap().into_iter().map(|id| id.0).collect();
    rows.retain(|(id, _)| live.contains(id));
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len() as u64, st.live_rows);
    // Segments stay in row order: a scan returns ids ascending.
    let scanned: Vec<u64> = store.scan(t).unwrap().map(|r| r.unwrap().0 .0).collect();
    assert_eq!(scanned, rows.iter().map(|r| r.0).collect::<Vec<_>>());

    let path = store.path().to_path_buf();
    let store = Arc::try_unwrap(store).ok().unwrap();
    let l = Loaded {
        _dir: dir,
        store,
        t,
        rows,
        queries,
    };
    let r = mean_recall(&l, &SearchParams::default(), &|_| true);
    assert!(r >= 0.95, "recall@10 over {} graphs: {r}", st.segments);
    drop(l.store);
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    assert_eq!(store.stats().unwrap().tables[0].indexed_rows, st.segment_rows);
}

#[test]
fn index_on_flush_off_leaves_segments_to_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), merge_indexed_options()).unwrap();
    let (base, _) = data(300, 4);
    let t = store.create_table("t", schema(base[0].len())).unwrap();
    store
        .insert_batch(t, base.iter().map(|v| krow(v.clone())).collect())
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().unwrap().tables[0].indexed_rows, 0);
    store.insert(t, krow(base[0].clone())).unwrap();
    let report = store.optimize().unwrap();
    assert_eq!((report.segments_in, report.segments_out), (2, 1));
    let st = store.stats().unwrap().tables[0].clone();
    assert_eq!((st.segments, st.indexed_rows), (1, base.len() as u64 + 1));
}
