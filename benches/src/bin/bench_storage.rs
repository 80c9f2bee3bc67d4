//! Storage benchmark: ingest N rows of 384-d keys with text and metadata under
//! each sync policy; open time at N rows against open time at 10k rows (the
//! same-run baseline: opening must not grow with row count); bytes per row;
//! updates of a fixed column and upserts by a unique column, in batches of
//! 1,000, on the ingested table; the write amplification of the default
//! size-tiered merge policy over the ingest (segment bytes merged and
//! flushed, over flushed); and the "always" ingest again with the merges
//! in the handle's merge thread (`MergeRunner::Background`): the writes'
//! rate, and the rate until the merges are done.
//!
//! `bench_storage [ROWS]` (default 1,000,000) writes target/bench/storage.json.

use std::time::{Duration, Instant};

use engram::storage::{MergeRunner, RowId, Store, StoreOptions, SyncPolicy, TableId, WriteBatch};
use engram_benches::{dir_bytes, logical_bytes, memory_schema, synthetic_row, write_report};
use rand::SeedableRng;
use serde_json::json;

const DIM: usize = 384;
const BATCH: usize = 256;
const SINGLE_COMMITS: usize = 2_000;

struct Ingest {
    rows_per_s: f64,
    mb_per_s: f64,
    /// `(bytes flushed + bytes merged) / bytes flushed` under the default
    /// size-tiered merge policy.
    write_amplification: f64,
    bytes_flushed: u64,
    bytes_merged: u64,
    /// Rows per second until every merge due is done (for a background
    /// runner, after the writes: what is still due is run to the end).
    settled_rows_per_s: f64,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn new_store(path: &std::path::Path, sync: SyncPolicy, merge_runner: MergeRunner) -> Res<(Store, TableId)> {
    let store = Store::create(
        path,
        StoreOptions {
            sync,
            merge_runner,
            ..StoreOptions::default()
        },
    )?;
    let t = store.create_table("memories", memory_schema(DIM))?;
    Ok((store, t))
}

fn ingest(path: &std::path::Path, rows: u64, sync: SyncPolicy, runner: MergeRunner) -> Res<Ingest> {
    let (store, t) = new_store(path, sync, runner)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut busy = Duration::ZERO;
    let mut bytes = 0usize;
    let mut i = 0u64;
    let mut last_report = Instant::now();
    while i < rows {
        let n = (rows - i).min(BATCH as u64);
        let batch: Vec<_> = (i..i + n).map(|k| synthetic_row(&mut rng, k, DIM)).collect();
        bytes += batch.iter().map(logical_bytes).sum::<usize>();
        let t0 = Instant::now();
        store.insert_batch(t, batch)?;
        busy += t0.elapsed();
        i += n;
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  {sync:?}: {i}/{rows} rows");
            last_report = Instant::now();
        }
    }
    let t0 = Instant::now();
    store.flush()?;
    busy += t0.elapsed();
    let secs = busy.as_secs_f64();
    let t0 = Instant::now();
    store.run_merges(Duration::from_secs(3600), &|| false)?;
    let settled = secs + t0.elapsed().as_secs_f64();
    let st = store.stats()?;
    Ok(Ingest {
        rows_per_s: rows as f64 / secs,
        mb_per_s: bytes as f64 / secs / 1e6,
        write_amplification: (st.bytes_flushed + st.bytes_merged) as f64 / st.bytes_flushed.max(1) as f64,
        bytes_flushed: st.bytes_flushed,
        bytes_merged: st.bytes_merged,
        settled_rows_per_s: rows as f64 / settled,
    })
}

/// Commits of one row each: what one fsync per commit costs under each policy.
fn single_row_commits(path: &std::path::Path, sync: SyncPolicy) -> Res<f64> {
    let (store, t) = new_store(path, sync, MergeRunner::Inline)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let rows: Vec<_> = (0..SINGLE_COMMITS as u64)
        .map(|k| synthetic_row(&mut rng, k, DIM))
        .collect();
    let t0 = Instant::now();
    for r in rows {
        store.insert(t, r)?;
    }
    Ok(SINGLE_COMMITS as f64 / t0.elapsed().as_secs_f64())
}

/// Rows per second of updates (`access_count += 1`, batches of 1,000 rows
/// spread over the table) and of upserts by `memory_id` (batches of 1,000,
/// half of them new), on the `rows`-row table at `path`.
fn updates_and_upserts(path: &std::path::Path, rows: u64) -> Res<(f64, f64)> {
    let store = Store::open(
        path,
        StoreOptions {
            sync: SyncPolicy::Batch,
            ..StoreOptions::default()
        },
    )?;
    let t = store.table("memories")?;
    let schema = store.schema(t)?;
    let access = schema.fixed::<u64>("access_count")?;
    const B: u64 = 1_000;
    let batches = (rows / B).clamp(1, 200);
    let t0 = Instant::now();
    for b in 0..batches {
        let mut w = WriteBatch::new();
        for k in 0..B {
            w.update(t, RowId((b * 7919 + k * 104_729) % rows), vec![access.add(1)]);
        }
        store.write(w)?;
    }
    let update = (batches * B) as f64 / t0.elapsed().as_secs_f64();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let t0 = Instant::now();
    for b in 0..batches {
        let mut w = WriteBatch::new();
        for k in 0..B {
            // Even k: an existing memory id; odd: a new one.
            let id = if k % 2 == 0 {
                (b * 7907 + k * 613) % rows
            } else {
                rows + b * B + k
            };
            w.upsert(t, synthetic_row(&mut rng, id, DIM), vec![access.add(1)]);
        }
        store.write(w)?;
    }
    let upsert = (batches * B) as f64 / t0.elapsed().as_secs_f64();
    Ok((update, upsert))
}

/// Median of several opens (writer and reader alike read only the manifest,
/// segment headers and the WAL).
fn open_ms(path: &std::path::Path) -> Result<f64, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        let s = Store::open(path, StoreOptions::reader())?;
        let st = s.stats()?;
        v.push(t0.elapsed().as_secs_f64() * 1e3);
        assert!(st.tables[0].live_rows > 0);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let scratch = tempfile::tempdir_in(std::env::var("ENGRAM_BENCH_SCRATCH").unwrap_or_else(|_| "target".into()))?;
    let mut rows_per_s = serde_json::Map::new();
    let mut mb_per_s = serde_json::Map::new();
    let mut single = serde_json::Map::new();
    let mut open = 0.0;
    let mut bytes_per_row = 0.0;
    let mut segments = 0;
    let mut amplification = json!(null);
    let (mut update_rps, mut upsert_rps) = (0.0, 0.0);
    for (name, sync) in [
        ("always", SyncPolicy::Always),
        ("batch", SyncPolicy::Batch),
        ("off", SyncPolicy::Off),
    ] {
        eprintln!("ingest {rows} rows, sync={name}");
        let path = scratch.path().join(name);
        let r = ingest(&path, rows, sync, MergeRunner::Inline)?;
        rows_per_s.insert(name.into(), json!(r.rows_per_s.round()));
        mb_per_s.insert(name.into(), json!((r.mb_per_s * 10.0).round() / 10.0));
        if name == "always" {
            amplification = json!({
                "write_amplification": (r.write_amplification * 100.0).round() / 100.0,
                "bytes_flushed": r.bytes_flushed,
                "bytes_merged": r.bytes_merged,
            });
            open = open_ms(&path)?;
            bytes_per_row = dir_bytes(&path) as f64 / rows as f64;
            segments = Store::open(&path, StoreOptions::reader())?.stats()?.tables[0].segments;
            eprintln!("updates and upserts on {rows} rows");
            (update_rps, upsert_rps) = updates_and_upserts(&path, rows)?;
        }
        std::fs::remove_dir_all(&path)?;
        let p1 = scratch.path().join(format!("{name}-single"));
        single.insert(name.into(), json!(single_row_commits(&p1, sync)?.round()));
        std::fs::remove_dir_all(&p1)?;
    }
    // The same ingest with the merges in the handle's merge thread: the
    // writes' own rate, and the rate until the merges due are done.
    eprintln!("ingest {rows} rows, sync=always, background merges");
    let bg_path = scratch.path().join("background");
    let bg = ingest(&bg_path, rows, SyncPolicy::Always, MergeRunner::Background)?;
    std::fs::remove_dir_all(&bg_path)?;
    let small = scratch.path().join("small");
    ingest(&small, 10_000, SyncPolicy::Off, MergeRunner::Inline)?;
    let open_small = open_ms(&small)?;
    write_report(
        "storage",
        &json!({
            "rows": rows,
            "dim": DIM,
            "batch_rows": BATCH,
            "rows_per_s": rows_per_s,
            "rows_per_s_background_merges": {
                "writes": bg.rows_per_s.round(),
                "settled": bg.settled_rows_per_s.round(),
                "write_amplification": (bg.write_amplification * 100.0).round() / 100.0,
            },
            "mb_per_s": mb_per_s,
            "single_row_commits_per_s": single,
            "open_ms": (open * 1000.0).round() / 1000.0,
            "open_ms_at_10k_rows": (open_small * 1000.0).round() / 1000.0,
            "open_ratio_vs_10k": (open / open_small * 100.0).round() / 100.0,
            "segments_at_open": segments,
            "merges": amplification,
            "bytes_per_row": bytes_per_row.round(),
            "logical_bytes_per_row": DIM * 4 + 60 + 48,
            "update_rows_per_s": update_rps.round(),
            "upsert_rows_per_s": upsert_rps.round(),
        }),
    )?;
    Ok(())
}
