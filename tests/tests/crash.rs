//! Kill a writing process with SIGKILL at random moments; after each kill,
//! every acknowledged row must be present and intact, no deleted row may come
//! back, and no batch may be half there. The store is reused across kills, so
//! recovery is exercised on top of earlier recoveries.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use engram::index::{Search, SearchParams};
use engram::storage::{Store, StoreOptions};
use engram_tests::check_row;
use rand::{Rng, SeedableRng};

const KILLS: usize = 60;

/// Batches the child writes from `start`: `[n, n+3)` at even n, `[n]` at odd.
fn batches(start: u64, end: u64) -> Vec<std::ops::Range<u64>> {
    let mut v = Vec::new();
    let mut n = start;
    while n < end {
        let c = if n.is_multiple_of(2) { 3 } else { 1 };
        v.push(n..n + c);
        n += c;
    }
    v
}

#[test]
fn acknowledged_rows_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let seed = std::env::var("ENGRAM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash test seed {seed} (set ENGRAM_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new(); // row id -> n
    let mut deleting: BTreeSet<u64> = BTreeSet::new();
    let mut deleted: BTreeSet<u64> = BTreeSet::new();
    let mut next_n = 0u64;
    let mut indexed = 0;
    for kill in 0..KILLS {
        let start_n = next_n;
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&path)
            .arg(start_n.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let the child get going (it must open or recover the store first),
        // then kill it somewhere random.
        let _ = rx.recv_timeout(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..80)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for l in rx.try_iter() {
            let mut it = l.split(' ');
            match (it.next(), it.next()) {
                (Some("deleting"), Some(id)) => {
                    deleting.insert(id.parse().unwrap());
                }
                (Some("deleted"), Some(id)) => {
                    deleted.insert(id.parse().unwrap());
                }
                (Some(id), Some(n)) => {
                    let n: u64 = n.parse().unwrap();
                    acked.insert(id.parse().unwrap(), n);
                }
                _ => panic!("bad line {l:?}"),
            }
        }

        let store =
            Store::open(&path, StoreOptions::reader()).unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
        let Ok(t) = store.table("t") else {
            assert!(acked.is_empty(), "kill {kill}: table lost");
            continue;
        };
        let mut present: BTreeMap<u64, u64> = BTreeMap::new(); // n -> id
        for r in store.scan(t).unwrap() {
            let (id, row) = r.unwrap_or_else(|e| panic!("kill {kill}: read failed: {e}"));
            let n = check_row(&row).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
            assert!(present.insert(n, id.0).is_none(), "kill {kill}: n={n} stored twice");
        }
        let by_id: BTreeMap<u64, u64> = present.iter().map(|(n, id)| (*id, *n)).collect();
        for (id, n) in &acked {
            if deleted.contains(id) {
                assert!(!by_id.contains_key(id), "kill {kill}: deleted row {id} came back");
            } else if !deleting.contains(id) {
                assert_eq!(
                    by_id.get(id),
                    Some(n),
                    "kill {kill}: acknowledged row {id} (n={n}) lost"
                );
            }
        }
        // Rows of this run, acknowledged or not, come in whole batches.
        // Every segment's graph that survived is whole: checksums hold and a
        // search through the graphs returns as many rows as it can.
        store
            .verify()
            .unwrap_or_else(|e| panic!("kill {kill}: verify failed: {e}"));
        if let Some((&n, _)) = present.iter().next() {
            let key = engram_tests::key_for(n);
            let hits = store
                .search(t, &key, 5, &SearchParams::default())
                .unwrap_or_else(|e| panic!("kill {kill}: search failed: {e}"));
            assert_eq!(hits.len(), present.len().min(5), "kill {kill}: search came back short");
        }
        indexed = store.stats().unwrap().tables[0].indexed_rows;
        let end = present.keys().next_back().map_or(start_n, |m| m + 1);
        for b in batches(start_n, end) {
            if b.end - b.start == 3 {
                let have = b.clone().filter(|n| present.contains_key(n)).count();
                assert!(have == 0 || have == 3, "kill {kill}: batch {b:?} is {have}/3 present");
            }
        }
        next_n = end.max(acked.values().next_back().map_or(0, |m| m + 1)).max(start_n);
    }
    assert!(acked.len() > 200, "the writer acknowledged only {} rows", acked.len());
    assert!(indexed > 0, "no segment got a graph");
    println!(
        "{KILLS} kills, {} acknowledged rows, {} deletes, {indexed} rows in graphs at the end",
        acked.len(),
        deleted.len()
    );
}
