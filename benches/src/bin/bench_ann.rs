//! Approximate nearest-neighbour search on real sentence embeddings
//! (`scripts/make-ann-data`), side by side with hnswlib measured in the same
//! run (`scripts/ann/hnswlib_bench.py`, whose JSON is passed in).
//!
//! Usage: bench_ann DATA_DIR [--n N] [--queries Q] [--m M]
//!        [--ef-construction E] [--threads T] [--ef 10,20,...] [--rescore R]
//!        [--hnswlib FILE] [--name NAME] [--emit-gt FILE]
//!
//! Measures, for engram: build time (insert + flush + merge with the graph
//! build; the graph build alone too), bytes per vector of codes + graph, the
//! resident memory of a fresh handle after the query sweep, the recall@10 /
//! single-thread QPS curve over the ef sweep, and recall@10 / QPS under time
//! filters of 50%, 10%, 1% and 0.1% selectivity (ground truth: brute force
//! over the admitted rows), and `values_over_ids`: the time of searches whose
//! hits read their value (a next-token distribution) and text in place from
//! the search's snapshot, over the same searches returning ids only, at ef
//! 64. Writes target/bench/<NAME>.json (default "ann").

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use engram::index::{Filter, Hnsw, Search, SearchParams};
use engram::kernels::distance::{distance, Metric};
use engram::storage::{
    Dim, FixedType, IndexSpec, KeySpec, Row, Schema, Sparse, SparseCol, SparseKind, Store, StoreOptions, SyncPolicy,
    TableId, TextCol, Value as Cell,
};
use engram_benches::write_report;
use serde_json::{json, Value};

fn read_f32(path: &Path, dim: usize, limit: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (run `make ann-data`)", path.display()));
    bytes
        .chunks_exact(4 * dim)
        .take(limit)
        .map(|r| {
            r.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

fn read_gt(path: &Path, k: usize, n: usize) -> Vec<Vec<u32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4 * k)
        .map(|r| {
            r.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<u32>>()
        })
        .map(|r| r.into_iter().filter(|&id| (id as usize) < n).collect())
        .collect()
}

/// A row's timestamp: a fixed permutation of 0..n, so a time range of
/// length s*n admits a share s of the rows, uncorrelated with the vectors.
fn stamp(i: usize, n: usize) -> i64 {
    ((i as u64).wrapping_mul(2_654_435_761) % n as u64) as i64
}

fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Args {
    data: PathBuf,
    n: usize,
    m: usize,
    ef_construction: usize,
    threads: usize,
    efs: Vec<usize>,
    hnswlib: Option<PathBuf>,
    name: String,
    queries: usize,
    rescore: usize,
    /// Write the ground truth used (queries x 100 i32 row indices, -1 past
    /// the end) here and stop, so a side-by-side run scores against the same
    /// truth.
    emit_gt: Option<PathBuf>,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        data: PathBuf::from(it.next().expect("usage: bench_ann DATA_DIR [options]")),
        n: usize::MAX,
        m: 16,
        ef_construction: 200,
        threads: 2,
        efs: vec![10, 16, 24, 32, 48, 64, 96, 128, 192],
        hnswlib: None,
        name: "ann".into(),
        queries: 1000,
        rescore: SearchParams::default().rescore,
        emit_gt: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => a.n = v.parse().expect("--n"),
            "--m" => a.m = v.parse().expect("--m"),
            "--ef-construction" => a.ef_construction = v.parse().expect("--ef-construction"),
            "--threads" => a.threads = v.parse().expect("--threads"),
            "--ef" => a.efs = v.split(',').map(|x| x.parse().expect("--ef")).collect(),
            "--hnswlib" => a.hnswlib = Some(v.into()),
            "--name" => a.name = v,
            "--queries" => a.queries = v.parse().expect("--queries"),
            "--rescore" => a.rescore = v.parse().expect("--rescore"),
            "--emit-gt" => a.emit_gt = Some(v.into()),
            _ => panic!("unknown option {flag}"),
        }
    }
    a
}

fn recall(got: &[u64], want: &[u32]) -> f64 {
    let want: HashSet<u64> = want.iter().take(10).map(|&x| x as u64).collect();
    got.iter().filter(|id| want.contains(id)).count() as f64 / want.len().max(1) as f64
}

/// Mean recall@10 and single-thread QPS of `queries` under `p`: the
/// fastest of three timed passes (hnswlib's side does the same), so that a
/// moment of a noisy neighbour does not decide a point.
fn sweep(
    store: &Store,
    t: engram::storage::TableId,
    queries: &[Vec<f32>],
    gt: &[Vec<u32>],
    p: &SearchParams,
) -> (f64, f64) {
    // One untimed pass warms the page cache and the visited sets.
    for q in queries.iter().take(50) {
        store.search(t, q, 10, p).expect("search");
    }
    let mut best = f64::MAX;
    let mut results: Vec<Vec<u64>> = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        results = queries
            .iter()
            .map(|q| {
                store
                    .search(t, q, 10, p)
                    .expect("search")
                    .iter()
                    .map(|h| h.id.0)
                    .collect()
            })
            .collect();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let r = results.iter().zip(gt).map(|(g, w)| recall(g, w)).sum::<f64>() / queries.len() as f64;
    (r, queries.len() as f64 / best)
}

/// A row's value: a small next-token count distribution, as generation
/// stores (what `values_over_ids` reads back).
fn value(i: usize) -> Sparse {
    Sparse::counts((0..4u32).map(|j| {
        (
            (i as u32).wrapping_mul(2_654_435_761).rotate_left(j * 8) % 50_000,
            j + 1,
        )
    }))
}

/// Seconds for `queries` at ef 64, one snapshot per query (as
/// `Store::search` takes), ids only or also reading each hit's value and
/// text in place.
fn read_pass(store: &Store, t: TableId, queries: &[Vec<f32>], cols: Option<(SparseCol, TextCol)>) -> f64 {
    let p = SearchParams {
        ef: 64,
        ..SearchParams::default()
    };
    let start = Instant::now();
    let mut sink = 0u64;
    for q in queries {
        let snap = store.snapshot().expect("snapshot");
        let hits = snap.table(t).expect("table").search(q, 10, &p).expect("search");
        for h in &hits {
            sink = sink.wrapping_add(h.id.0);
            if let Some((next, text)) = cols {
                let v = h.row.sparse(next).expect("value");
                sink = sink.wrapping_add((0..v.len()).map(|i| v.weight(i) as u64).sum::<u64>());
                sink = sink.wrapping_add(h.row.text(text).expect("text").len() as u64);
            }
        }
    }
    std::hint::black_box(sink);
    start.elapsed().as_secs_f64()
}

/// `values_over_ids`: the passes alternate, and each kind keeps its fastest
/// of five, so that a noisy neighbour slows both alike or neither. The
/// first values pass, before any text block is in the segments' block cache,
/// is reported apart (`cold_ratio`).
fn values_over_ids(store: &Store, t: TableId, queries: &[Vec<f32>], cols: (SparseCol, TextCol)) -> Value {
    let cold = read_pass(store, t, queries, Some(cols));
    let (mut ids, mut values) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        ids = ids.min(read_pass(store, t, queries, None));
        values = values.min(read_pass(store, t, queries, Some(cols)));
    }
    json!({
        "ef": 64,
        "ids_s": ids,
        "values_and_text_s": values,
        "ratio": values / ids,
        "cold_ratio": cold / ids,
        "block_cache_bytes_held": engram::storage::block_cache_bytes().1,
    })
}

/// The texts of the base rows (one per line), or placeholders.
fn texts(data: &Path, n: usize) -> Vec<String> {
    let mut t: Vec<String> = std::fs::read_to_string(data.join("texts.txt"))
        .unwrap_or_default()
        .lines()
        .take(n)
        .map(str::to_string)
        .collect();
    t.extend((t.len()..n).map(|i| format!("text {i}")));
    t
}

fn main() -> std::io::Result<()> {
    let a = args();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(a.data.join("meta.json"))?).map_err(std::io::Error::other)?;
    let dim = meta["dim"].as_u64().unwrap_or(384) as usize;
    let gt_k = meta["gt_k"].as_u64().unwrap_or(100) as usize;
    let base = read_f32(&a.data.join("base.f32"), dim, a.n);
    let n = base.len();
    let queries = read_f32(&a.data.join("queries.f32"), dim, a.queries);
    // Ground truth of the full set holds for a prefix only if computed on
    // it: recompute when the base is cut.
    let gt: Vec<Vec<u32>> = if n == meta["n"].as_u64().unwrap_or(0) as usize {
        read_gt(&a.data.join("gt.i32"), gt_k, n)
    } else {
        eprintln!("computing exact ground truth for n = {n}");
        queries.iter().map(|q| brute(&base, q, |_| true)).collect()
    };
    if let Some(path) = &a.emit_gt {
        let mut bytes = Vec::with_capacity(gt.len() * 400);
        for row in &gt {
            for j in 0..100 {
                let id = row.get(j).map_or(-1, |&x| x as i32);
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        return std::fs::write(path, bytes);
    }
    eprintln!(
        "engram: {n} x {dim}, M {} ef_construction {} threads {}",
        a.m, a.ef_construction, a.threads
    );

    let tmp = tempfile::tempdir_in(std::env::var("ENGRAM_BENCH_TMP").unwrap_or_else(|_| "target".into()))?;
    let path = tmp.path().join("ann");
    let hnsw = Hnsw {
        threads: a.threads,
        ..Hnsw::default()
    };
    let schema = Schema::builder()
        .key(
            "key",
            KeySpec::new(Dim::new(dim as u32).expect("dim")).with_index(Some(IndexSpec {
                m: a.m as u32,
                ef_construction: a.ef_construction as u32,
            })),
        )
        .fixed("timestamp", FixedType::Timestamp)
        .sparse("next", SparseKind::Counts)
        .text("text")
        .build()
        .expect("schema");
    let cols = (schema.sparse("next").expect("next"), schema.text("text").expect("text"));
    let texts = texts(&a.data, n);
    let opts = StoreOptions {
        sync: SyncPolicy::Off,
        indexer: Some(Arc::new(hnsw)),
        // A bulk load: one graph over everything at the end.
        index_on_flush: false,
        ..StoreOptions::default()
    };
    let start = Instant::now();
    let store = Store::create(&path, opts).expect("create");
    let t = store.create_table("kjv", schema).expect("table");
    for (c, chunk) in base.chunks(10_000).enumerate() {
        let rows = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = c * 10_000 + j;
                Row::from_values(vec![
                    Cell::Vector(v.clone()),
                    Cell::Int(stamp(i, n)),
                    Cell::Sparse(value(i)),
                    Cell::Str(texts[i].clone()),
                ])
            })
            .collect();
        store.insert_batch(t, rows).expect("insert");
    }
    store.flush().expect("flush");
    let load_s = start.elapsed().as_secs_f64();
    let g = Instant::now();
    store.merge().expect("merge");
    let graph_s = g.elapsed().as_secs_f64();
    store.sync().expect("sync");
    let build_s = start.elapsed().as_secs_f64();
    eprintln!("engram: loaded in {load_s:.1} s, graph in {graph_s:.1} s");
    let stats = store.stats().expect("stats");
    let ts = &stats.tables[0];
    drop(store);

    // A fresh handle: what a process that opens the store pays. It is the
    // writer, as an embedding process owns its store (a reader handle also
    // checks for other processes' commits on every call).
    let (rss_before, _) = rss();
    let open = Instant::now();
    let store = Store::open(&path, StoreOptions::default()).expect("open");
    let open_ms = open.elapsed().as_secs_f64() * 1e3;
    let mut curve = Vec::new();
    for &ef in &a.efs {
        let p = SearchParams {
            ef,
            rescore: a.rescore,
            ..SearchParams::default()
        };
        let (r, qps) = sweep(&store, t, &queries, &gt, &p);
        eprintln!("engram ef {ef}: recall@10 {r:.4}, {qps:.0} QPS");
        curve.push(json!({"ef": ef, "recall_at_10": r, "qps": qps}));
    }
    let (rss_after, _) = rss();
    let reads = values_over_ids(&store, t, &queries, cols);
    eprintln!("engram values_over_ids at ef 64: {:.3}", reads["ratio"]);

    let fq = &queries[..queries.len().min(200)];
    let mut filtered = Vec::new();
    for s in [0.5, 0.1, 0.01, 0.001] {
        let hi = ((n as f64) * s).round() as i64;
        let fgt: Vec<Vec<u32>> = fq.iter().map(|q| brute(&base, q, |i| stamp(i, n) < hi)).collect();
        let p = SearchParams {
            filter: Filter::range("timestamp", 0..hi),
            rescore: a.rescore,
            ..SearchParams::default()
        };
        let (r, qps) = sweep(&store, t, fq, &fgt, &p);
        eprintln!("engram filter {s}: recall@10 {r:.4}, {qps:.0} QPS");
        filtered.push(json!({"selectivity": s, "recall_at_10": r, "qps": qps, "ef": p.ef}));
    }

    // Codes (+ scale and norm) and graph: what search reads; the f32 keys
    // are the store's data, read only to rescore.
    let engram_bpv = (ts.index_bytes + (n * (dim + 8)) as u64) as f64 / n as f64;
    let mut report = json!({
        "n": n,
        "dim": dim,
        "threads": a.threads,
        "m": a.m,
        "ef_construction": a.ef_construction,
        "queries": queries.len(),
        "rescore": a.rescore,
        "data": meta,
        "engram": curve,
        "filtered": filtered,
        "values_over_ids": reads["ratio"],
        "values_over_ids_detail": reads,
        "build_s": {"engram": build_s},
        "engram_detail": {
            "load_s": load_s,
            "graph_build_s": graph_s,
            "index_bytes": ts.index_bytes,
            "segment_bytes": ts.segment_bytes,
            "segment_bytes_per_vector": ts.segment_bytes as f64 / n as f64,
            "open_ms": open_ms,
            "rss_delta_bytes": rss_after.saturating_sub(rss_before),
        },
        "bytes_per_vector": {"engram": engram_bpv},
    });
    if let Some(h) = &a.hnswlib {
        let h: Value = serde_json::from_str(&std::fs::read_to_string(h)?).map_err(std::io::Error::other)?;
        report["hnswlib"] = h["curve"].clone();
        report["build_s"]["hnswlib"] = h["build_s"].clone();
        report["bytes_per_vector"]["hnswlib"] = h["bytes_per_vector"].clone();
        report["hnswlib_detail"] = h.clone();
        report["ratios"] = ratios(&report);
    }
    write_report(&a.name, &report)
}

/// Exact top 100 by f32 cosine among rows `keep` admits.
fn brute(base: &[Vec<f32>], q: &[f32], keep: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut d: Vec<(f32, u32)> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (distance(Metric::Cosine, q, v), i as u32))
        .collect();
    let k = d.len().min(100);
    if k > 0 {
        d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    }
    d.truncate(k);
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().map(|x| x.1).collect()
}

/// The targets as ratios: QPS at recall@10 >= 0.95 (the best QPS of
/// any sweep point reaching it), build time, bytes per vector.
fn ratios(r: &Value) -> Value {
    let best = |curve: &Value| {
        curve
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["recall_at_10"].as_f64().unwrap_or(0.0) >= 0.95)
            .filter_map(|p| p["qps"].as_f64())
            .fold(None, |m: Option<f64>, q| Some(m.map_or(q, |m| m.max(q))))
    };
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => json!(a / b),
        _ => Value::Null,
    };
    json!({
        "qps_at_recall_0_95_engram_over_hnswlib": div(best(&r["engram"]), best(&r["hnswlib"])),
        "build_s_engram_over_hnswlib": div(r["build_s"]["engram"].as_f64(), r["build_s"]["hnswlib"].as_f64()),
        "bytes_per_vector_engram_over_hnswlib": div(r["bytes_per_vector"]["engram"].as_f64(), r["bytes_per_vector"]["hnswlib"].as_f64()),
    })
}
