//! Child process for the crash test: inserts rows forever (single rows and
//! batches of three, with flushes and merges along the way, each flushed or
//! merged segment getting its HNSW graph) and prints `<row id> <n>` for each
//! row once its insert is acknowledged.

use std::io::Write;

use engram::storage::{Store, StoreOptions};
use engram_tests::{row_for, schema};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: crash_writer DIR START")?;
    let mut n: u64 = args.next().ok_or("missing START")?.parse()?;
    let opts = StoreOptions {
        memtable_bytes: 64 << 10,
        // So that kills also land in graph builds and in the merges that
        // index flushed segments.
        indexer: engram_tests::small_indexer(),
        ..StoreOptions::default()
    };
    let store = Store::open_or_create(&dir, opts)?;
    let t = match store.table("t") {
        Ok(t) => t,
        Err(_) => store.create_table("t", schema())?,
    };
    let mut out = std::io::stdout().lock();
    loop {
        let count = if n.is_multiple_of(2) { 3 } else { 1 };
        let ids = store.insert_batch(t, (n..n + count).map(row_for).collect())?;
        for (k, id) in ids.iter().enumerate() {
            writeln!(out, "{} {}", id.0, n + k as u64)?;
        }
        out.flush()?;
        n += count;
        // Delete some single-row inserts (never part of a batch, so batch
        // atomicity stays checkable). "deleting" is printed first: a kill
        // between the two lines leaves the row's fate open.
        if count == 1 && n % 10 == 2 {
            writeln!(out, "deleting {}", ids[0].0)?;
            out.flush()?;
            store.delete(t, ids[0])?;
            writeln!(out, "deleted {}", ids[0].0)?;
            out.flush()?;
        }
        if n % 700 < count {
            store.merge()?;
        }
    }
}
