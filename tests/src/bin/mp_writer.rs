//! Child process for the multi-process test: appends `BATCHES` batches of
//! `BATCH` rows (row ids 0, 1, 2, ... in order), flushing and merging along
//! the way (each flushed or merged segment getting its HNSW graph) so that
//! readers see manifests change under them.

use engram::storage::{Store, StoreOptions};
use engram_tests::row_for;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: mp_writer DIR BATCHES BATCH")?;
    let batches: u64 = args.next().ok_or("missing BATCHES")?.parse()?;
    let batch: u64 = args.next().ok_or("missing BATCH")?.parse()?;
    let opts = StoreOptions {
        memtable_bytes: 128 << 10,
        indexer: engram_tests::small_indexer(),
        ..StoreOptions::default()
    };
    let store = Store::open(&dir, opts)?;
    let t = store.table("t")?;
    for b in 0..batches {
        let first = b * batch;
        let ids = store.insert_batch(t, (first..first + batch).map(row_for).collect())?;
        if ids[0].0 != first {
            return Err(format!("expected id {first}, got {}", ids[0].0).into());
        }
        if b % 40 == 39 {
            store.merge()?;
        }
    }
    store.flush()?;
    Ok(())
}
