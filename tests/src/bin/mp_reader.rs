//! Child process for the multi-process test: scans the store over and over
//! while a writer appends. Every scan must be a prefix-consistent snapshot
//! (ids exactly 0..m, whole batches only, every row intact, so segments stay
//! in row order as flushed ones are merged for their graphs) and m must never
//! shrink; a search through the graphs after each scan returns k rows. Exits
//! 0 once it has seen all `FINAL` rows.

use std::time::{Duration, Instant};

use engram::index::{Search, SearchParams};
use engram::storage::{Store, StoreOptions};
use engram_tests::check_row;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: mp_reader DIR FINAL BATCH")?;
    let final_rows: u64 = args.next().ok_or("missing FINAL")?.parse()?;
    let batch: u64 = args.next().ok_or("missing BATCH")?.parse()?;
    let store = Store::open(&dir, StoreOptions::reader())?;
    let t = store.table("t")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0u64;
    let mut snapshots = 0u64;
    let mut distinct = 0u64;
    loop {
        let mut m = 0u64;
        for r in store.scan(t)? {
            let (id, row) = r?;
            if id.0 != m {
                return Err(format!("gap: expected id {m}, got {}", id.0).into());
            }
            let n = check_row(&row)?;
            if n != id.0 {
                return Err(format!("row {} holds the content of row {n}", id.0).into());
            }
            m += 1;
        }
        if m >= 5 {
            let key = engram_tests::key_for(m - 1);
            let hits = store.search(t, &key, 5, &SearchParams::default())?;
            if hits.len() != 5 {
                return Err(format!("a search over {m} rows returned {} of 5", hits.len()).into());
            }
        }
        if !m.is_multiple_of(batch) {
            return Err(format!("saw {m} rows: a batch of {batch} was split").into());
        }
        if m < last {
            return Err(format!("went back from {last} rows to {m}").into());
        }
        if m > last {
            distinct += 1;
        }
        last = m;
        snapshots += 1;
        if m == final_rows {
            println!("snapshots {snapshots} distinct {distinct}");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out at {m} of {final_rows} rows").into());
        }
    }
}
