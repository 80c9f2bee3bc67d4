//! One writer process and two reader processes at once: readers always see a
//! prefix-consistent snapshot and eventually the final state.

use std::process::{Command, Stdio};

use engram::storage::{Store, StoreOptions};

#[test]
fn readers_in_other_processes_see_consistent_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Store::create(&path, StoreOptions::default()).unwrap();
        store.create_table("t", engram_tests::schema()).unwrap();
    }
    let (batches, batch) = (400u64, 5u64);
    let p = path.to_str().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_mp_reader"))
                .args([p, &(batches * batch).to_string(), &batch.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let writer = Command::new(env!("CARGO_BIN_EXE_mp_writer"))
        .args([p, &batches.to_string(), &batch.to_string()])
        .status()
        .unwrap();
    assert!(writer.success(), "writer failed");
    for r in readers {
        let out = r.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "reader failed: {said}");
        println!("reader: {said}");
        // The reader must have raced the writer, not only read the end state.
        let distinct: u64 = said.split_whitespace().last().unwrap().parse().unwrap();
        assert!(distinct >= 2, "reader saw only {distinct} distinct states");
    }
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    let st = store.stats().unwrap();
    assert_eq!(st.tables[0].live_rows, batches * batch);
    // The writer's last flush waited for its segment's graph.
    assert!(st.tables[0].segments > 1);
    assert_eq!(st.tables[0].indexed_rows, st.tables[0].segment_rows);
}
