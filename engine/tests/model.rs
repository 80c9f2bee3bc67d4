//! Random sequences of insert / delete / flush / merge / reopen against an
//! in-memory model: the store's contents must always equal the model's.

use std::collections::BTreeMap;

use engram::storage::{Dim, Meta, Position, Row, RowId, Store, StoreOptions, Value};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>),
    Delete(usize),
    Flush,
    Merge,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..6).prop_map(Op::Insert),
        3 => any::<usize>().prop_map(Op::Delete),
        1 => Just(Op::Flush),
        1 => Just(Op::Merge),
        1 => Just(Op::Reopen),
    ]
}

/// A row whose every column is derived from `seed`, so a mix-up shows.
fn row(seed: u8, n: u64) -> Row {
    let s = f32::from(seed);
    Row::new(vec![s, -s, s * 0.5, 1.0])
        .with_text(format!("row {seed} #{n} {}", "x".repeat(usize::from(seed) % 40)))
        .with_value(if seed.is_multiple_of(2) {
            Value::Sparse(vec![(u32::from(seed), 1), (7, u32::from(seed) + 1)])
        } else {
            Value::Vector(vec![s; 3])
        })
        .with_position(Position {
            absolute: n,
            document: u64::from(seed),
            relative: 1,
            length: 2,
            sentence: 3,
            paragraph: 4,
        })
        .with_meta(Meta {
            timestamp: i64::from(seed) * 1000,
            namespace: format!("ns{}", seed % 3),
            session: format!("s{}", seed % 5),
            authority: 0.5,
            ..Meta::default()
        })
        .with_edges((0..u64::from(seed % 3)).map(RowId).collect())
}

fn small_memtable() -> StoreOptions {
    StoreOptions {
        memtable_bytes: 4 << 10,
        ..StoreOptions::default()
    }
}

fn check(store: &Store, model: &BTreeMap<u64, Row>) -> Result<(), TestCaseError> {
    let t = store.table("t").unwrap();
    let got: Vec<(u64, Row)> = store
        .scan(t)
        .unwrap()
        .map(|r| r.map(|(id, row)| (id.0, row)).unwrap())
        .collect();
    let want: Vec<(u64, Row)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(&got, &want);
    for (id, row) in model.iter().take(5) {
        prop_assert_eq!(store.get(t, RowId(*id)).unwrap(), Some(row.clone()));
    }
    let st = store.stats().unwrap();
    prop_assert_eq!(st.tables[0].live_rows, model.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut store = Store::create(&path, small_memtable()).unwrap();
        let t = store.create_table("t", Dim::new(4).unwrap()).unwrap();
        let mut model: BTreeMap<u64, Row> = BTreeMap::new();
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Insert(seeds) => {
                    let rows: Vec<Row> = seeds.iter().enumerate().map(|(k, s)| row(*s, next_id + k as u64)).collect();
                    let ids = store.insert_batch(t, rows.clone()).unwrap();
                    for (id, r) in ids.iter().zip(rows) {
                        prop_assert_eq!(id.0, next_id);
                        model.insert(id.0, r);
                        next_id += 1;
                    }
                }
                Op::Delete(i) => {
                    // Sometimes a live row, sometimes one already gone.
                    let id = if next_id == 0 { 0 } else { (i as u64) % next_id };
                    let existed = model.remove(&id).is_some();
                    prop_assert_eq!(store.delete(t, RowId(id)).unwrap(), existed);
                }
                Op::Flush => store.flush().unwrap(),
                Op::Merge => {
                    store.merge().unwrap();
                    let st = store.stats().unwrap();
                    prop_assert!(st.tables[0].segments <= 1);
                }
                Op::Reopen => {
                    drop(store);
                    store = Store::open(&path, small_memtable()).unwrap();
                }
            }
            check(&store, &model)?;
        }
        // A reader in this process sees the same thing.
        let reader = Store::open(&path, StoreOptions::reader()).unwrap();
        check(&reader, &model)?;
    }
}

#[test]
fn ids_are_never_reused_after_delete_merge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path, StoreOptions::default()).unwrap();
    let t = store.create_table("t", Dim::new(4).unwrap()).unwrap();
    let ids = store.insert_batch(t, (0..3).map(|i| row(i, 0)).collect()).unwrap();
    store.delete_batch(t, &ids).unwrap();
    store.flush().unwrap();
    store.merge().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.insert(t, row(9, 0)).unwrap(), RowId(3));
}

#[test]
fn bad_input_is_a_typed_error() {
    use engram::Error;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path, StoreOptions::default()).unwrap();
    let t = store.create_table("t", Dim::new(4).unwrap()).unwrap();
    assert!(matches!(
        store.insert(t, Row::new(vec![1.0])),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        store.insert(t, Row::new(vec![1.0, f32::INFINITY, 0.0, 0.0])),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        store.create_table("t", Dim::new(4).unwrap()),
        Err(Error::TableExists(_))
    ));
    assert!(matches!(
        store.create_table("", Dim::new(4).unwrap()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(store.table("nope"), Err(Error::NoSuchTable(_))));
    assert!(matches!(
        Store::create(&path, StoreOptions::default()),
        Err(Error::AlreadyExists(_)) | Err(Error::WriterLocked { .. })
    ));
    assert!(matches!(
        Store::open(dir.path().join("none"), StoreOptions::default()),
        Err(Error::NotFound(_))
    ));
    let reader = Store::open(&path, StoreOptions::reader()).unwrap();
    assert!(matches!(reader.insert(t, row(1, 0)), Err(Error::ReadOnly)));
    // Too large for one atomic write: refused up front, nothing written.
    let huge = Row::new(vec![0.0; 4]).with_text("x".repeat(65 << 20));
    assert!(matches!(
        store.insert(t, huge),
        Err(Error::TooLarge { what: "a row", .. })
    ));
    let big = |_| Row::new(vec![0.0; 4]).with_text("x".repeat(40 << 20));
    assert!(matches!(
        store.insert_batch(t, (0..7).map(big).collect()),
        Err(Error::TooLarge {
            what: "a single atomic write",
            ..
        })
    ));
    assert_eq!(store.stats().unwrap().tables[0].live_rows, 0);
    // A second writer is refused while the first holds the lock.
    let opts = StoreOptions {
        lock_timeout: std::time::Duration::from_millis(20),
        ..StoreOptions::default()
    };
    assert!(matches!(Store::open(&path, opts), Err(Error::WriterLocked { .. })));
}

#[test]
fn concurrent_writers_share_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::create(dir.path().join("s"), small_memtable()).unwrap());
    let t = store.create_table("t", Dim::new(4).unwrap()).unwrap();
    std::thread::scope(|s| {
        for w in 0..4u8 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..200u64 {
                    store.insert(t, row(w, i)).unwrap();
                }
            });
        }
        let store = store.clone();
        s.spawn(move || {
            for _ in 0..50 {
                let n = store.scan(t).unwrap().count();
                assert!(n <= 800);
            }
        });
    });
    let rows: Vec<_> = store.scan(t).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 800);
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    for w in 0..4u8 {
        assert_eq!(rows.iter().filter(|(_, r)| r.key[0] == f32::from(w)).count(), 200);
    }
}

#[test]
fn merge_keeps_memtable_rows_when_every_segment_row_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), small_memtable()).unwrap();
    let t = store.create_table("t", Dim::new(4).unwrap()).unwrap();
    store.insert(t, row(0, 0)).unwrap();
    store.flush().unwrap();
    store.insert(t, row(0, 1)).unwrap();
    assert!(store.delete(t, RowId(0)).unwrap());
    store.insert(t, row(0, 2)).unwrap();
    store.merge().unwrap();
    let ids: Vec<u64> = store.scan(t).unwrap().map(|r| r.unwrap().0 .0).collect();
    assert_eq!(ids, vec![1, 2]);
    // A reader rebuilds the memtable from the WAL on top of the merged manifest.
    let reader = Store::open(store.path(), StoreOptions::reader()).unwrap();
    let ids: Vec<u64> = reader.scan(t).unwrap().map(|r| r.unwrap().0 .0).collect();
    assert_eq!(ids, vec![1, 2]);
}
