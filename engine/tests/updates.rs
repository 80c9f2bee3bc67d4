//! Updates and upserts: values change in place (ids never do), survive
//! flushes, merges, reopens and crashes, are folded into the segments a
//! merge writes, and are never applied twice; unique columns of every kind;
//! edges checked when written and counted when they dangle at a merge.

mod common;

use std::sync::Arc;

use common::Notes;
use engram::index::Hnsw;
use engram::storage::{
    BlobSpec, Compression, Dim, EdgeSpec, FixedType, KeySpec, Row, RowId, Schema, Sparse, SparseKind, Store,
    StoreOptions, Value, Weights, WriteBatch,
};
use engram::Error;

fn opts() -> StoreOptions {
    StoreOptions {
        indexer: Some(Arc::new(Hnsw {
            threads: 1,
            ..Hnsw::default()
        })),
        ..StoreOptions::default()
    }
}

fn value(store: &Store, t: engram::storage::TableId, id: u64, n: &Notes) -> (u64, f32, Sparse) {
    let snap = store.snapshot().unwrap();
    let r = snap.table(t).unwrap().get(RowId(id)).unwrap();
    (r.get(n.n), r.get(n.w), r.sparse(n.next).unwrap().to_owned())
}

/// An `Add` logged after the last flush is replayed once after a crash,
/// whether a merge folded the flushed values in meanwhile or not.
#[test]
fn adds_are_applied_once_across_flush_merge_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let n = Notes::new(2, false);
    let t;
    {
        let store = Store::create(&path, opts()).unwrap();
        t = store.create_table("t", n.schema.clone()).unwrap();
        store
            .insert_batch(t, (0..10).map(|i| n.row(vec![1.0, i as f32], "r")).collect())
            .unwrap();
        store.flush().unwrap();
        assert!(store
            .update(t, RowId(3), vec![n.n.add(5), n.next.merge(Sparse::counts([(1, 2)]))])
            .unwrap());
        store.flush().unwrap(); // the patch file holds n = 5
        assert!(store
            .update(
                t,
                RowId(3),
                vec![n.n.add(7), n.next.merge(Sparse::counts([(1, 1), (4, 1)]))]
            )
            .unwrap());
        // The merge folds n = 5 (flushed) into its segment; n = 12 stays a patch.
        store.merge().unwrap();
        assert_eq!(value(&store, t, 3, &n).0, 12);
        // No flush: a reopen finds the last add in the WAL only, as after a
        // crash (dropping a store flushes nothing).
    }
    let store = Store::open(&path, opts()).unwrap();
    let (count, _, next) = value(&store, t, 3, &n);
    assert_eq!(count, 12);
    assert_eq!(next, Sparse::counts([(1, 3), (4, 1)]));
    store.optimize().unwrap();
    let st = store.stats().unwrap();
    assert_eq!(st.tables[0].patched_rows, 0, "optimize folds every update");
    assert_eq!(value(&store, t, 3, &n).0, 12);
    drop(store);
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    assert_eq!(value(&store, t, 3, &n).0, 12);
}

#[test]
fn updates_reach_rows_wherever_they_are_and_ids_never_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let n = Notes::new(2, false);
    let store = Store::create(&path, opts()).unwrap();
    let t = store.create_table("t", n.schema.clone()).unwrap();
    store
        .insert_batch(t, (0..5).map(|i| n.row(vec![1.0, i as f32], "seg")).collect())
        .unwrap();
    store.flush().unwrap();
    store.insert(t, n.row(vec![0.0, 1.0], "mem")).unwrap();
    for id in [1u64, 5] {
        assert!(store.update(t, RowId(id), vec![n.w.set(2.5), n.n.add(3)]).unwrap());
        assert!(store.update(t, RowId(id), vec![n.n.add(u64::MAX)]).unwrap());
        assert_eq!(value(&store, t, id, &n).0, u64::MAX, "adds saturate");
        assert_eq!(value(&store, t, id, &n).1, 2.5);
    }
    // A deleted row takes no update; a missing one neither.
    store.delete(t, RowId(2)).unwrap();
    assert!(!store.update(t, RowId(2), vec![n.n.add(1)]).unwrap());
    assert!(!store.update(t, RowId(99), vec![n.n.add(1)]).unwrap());
    // Symbols, keys and texts are not updatable; a wrong type is refused.
    assert!(matches!(
        store.update(
            t,
            RowId(1),
            vec![engram::storage::Update::Set(n.ns.0 .0, Value::Str("x".into()))]
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        store.update(
            t,
            RowId(1),
            vec![engram::storage::Update::Set(n.text.0 .0, Value::Str("x".into()))]
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        store.update(
            t,
            RowId(1),
            vec![engram::storage::Update::Set(n.n.0 .0, Value::Str("x".into()))]
        ),
        Err(Error::InvalidArgument(_))
    ));
    store.flush().unwrap();
    store.merge().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    let ids: Vec<u64> = store.live_ids(t).unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(ids, vec![0, 1, 3, 4, 5]);
    for id in [1u64, 5] {
        assert_eq!(value(&store, t, id, &n), (u64::MAX, 2.5, Sparse::counts([])));
    }
    assert_eq!(value(&store, t, 0, &n), (0, 0.0, Sparse::counts([])));
}

fn unique_schema(kind: &str) -> Schema {
    let b = Schema::builder()
        .fixed("count", FixedType::U64)
        .sparse("w", SparseKind::Weights);
    let b = match kind {
        "raw" => b.blob(
            "u",
            BlobSpec {
                compression: Compression::Raw,
                utf8: true,
            },
        ),
        "lz4" => b.text("u"),
        "symbol" => b.symbol("u"),
        _ => b.fixed("u", FixedType::I64),
    };
    b.unique("u").build().unwrap()
}

/// Upserts find rows by a unique value of each kind, in the memtable and in
/// segments, in one batch and across batches; deleted rows free their value.
#[test]
fn upserts_by_every_kind_of_unique_column() {
    for kind in ["raw", "lz4", "symbol", "i64"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let s = unique_schema(kind);
        let (count, w, u) = (
            s.fixed::<u64>("count").unwrap(),
            s.sparse("w").unwrap(),
            s.id("u").unwrap(),
        );
        let uval = |i: i64| {
            if kind == "i64" {
                Value::Int(i - 50)
            } else {
                Value::Str(format!("token-{i}"))
            }
        };
        let row = |i: i64| {
            let mut r = Row::new(&s)
                .with(count, 1u64)
                .with(w, Sparse::weights([(i as u32, 0.5)]));
            r.set_value(u, uval(i));
            r
        };
        let store = Store::create(&path, StoreOptions::default()).unwrap();
        let t = store.create_table("vocab", s.clone()).unwrap();
        let mut ids = Vec::new();
        for round in 0..3 {
            let mut b = WriteBatch::new();
            for i in 0..20 {
                // Each value twice in the first batch: once inserted, once updated.
                for _ in 0..(if round == 0 { 2 } else { 1 }) {
                    b.upsert(t, row(i), vec![count.add(1), w.merge(Sparse::weights([(0, 1.0)]))]);
                }
            }
            let r = store.write(b).unwrap();
            let got: Vec<(RowId, bool)> = r.upserted;
            if round == 0 {
                assert_eq!(got.iter().filter(|g| g.1).count(), 20, "{kind}");
                ids = got.iter().filter(|g| g.1).map(|g| g.0).collect();
            } else {
                assert!(got.iter().all(|g| !g.1), "{kind}: round {round} inserted");
                assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), ids, "{kind}: stable ids");
            }
            store.flush().unwrap();
        }
        let snap = store.snapshot().unwrap();
        let tv = snap.table(t).unwrap();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(tv.find(&uval(i as i64)).unwrap(), Some(*id), "{kind}");
            let r = tv.get(*id).unwrap();
            assert_eq!(r.get(count), 4, "{kind}: inserted, then three adds");
            assert_eq!(
                r.sparse(w).unwrap().to_owned().weights,
                Weights::F32(if i == 0 { vec![3.5] } else { vec![3.0, 0.5] }),
                "{kind}"
            );
        }
        assert_eq!(tv.find(&uval(99)).unwrap(), None);
        // A plain insert of a live value is refused; once deleted, the value
        // is free again and gets a new id.
        assert!(
            matches!(store.insert(t, row(3)), Err(Error::Duplicate { .. })),
            "{kind}"
        );
        assert!(store.delete(t, ids[3]).unwrap());
        let again = store.insert(t, row(3)).unwrap();
        assert!(again.0 > ids[19].0);
        store.optimize().unwrap();
        drop(store);
        let store = Store::open(&path, StoreOptions::reader()).unwrap();
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.table(t).unwrap().find(&uval(3)).unwrap(), Some(again), "{kind}");
        assert_eq!(snap.table(t).unwrap().find(&uval(4)).unwrap(), Some(ids[4]), "{kind}");
    }
}

#[test]
fn edges_are_checked_when_written_and_dangling_ones_counted_at_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    let turns = Schema::builder()
        .key("k", KeySpec::new(Dim::new(2).unwrap()).with_index(None))
        .build()
        .unwrap();
    let sums = Schema::builder()
        .key("k", KeySpec::new(Dim::new(2).unwrap()).with_index(None))
        .edges(
            "sources",
            EdgeSpec {
                target: Some("turns".into()),
            },
        )
        .build()
        .unwrap();
    let (tk, sk, src) = (
        turns.key("k").unwrap(),
        sums.key("k").unwrap(),
        sums.edges("sources").unwrap(),
    );
    let t = store.create_table("turns", turns.clone()).unwrap();
    let s = store.create_table("summaries", sums.clone()).unwrap();
    let ids = store
        .insert_batch(
            t,
            (0..4).map(|i| Row::new(&turns).with(tk, vec![1.0, i as f32])).collect(),
        )
        .unwrap();
    let summary = |e: Vec<RowId>| Row::new(&sums).with(sk, vec![0.0, 1.0]).with(src, e);
    assert!(matches!(
        store.insert(s, summary(vec![RowId(4)])),
        Err(Error::InvalidArgument(_))
    ));
    let sid = store.insert(s, summary(ids.clone())).unwrap();
    // Rows inserted in the same batch may be named.
    let mut b = WriteBatch::new();
    b.append(t, Row::new(&turns).with(tk, vec![2.0, 2.0]))
        .append(s, summary(vec![RowId(4)]));
    store.write(b).unwrap();
    store.delete(t, ids[1]).unwrap();
    store.delete(t, ids[2]).unwrap();
    store.flush().unwrap();
    // A second segment of summaries, so the merge rewrites them.
    store.insert(s, summary(vec![RowId(0)])).unwrap();
    store.flush().unwrap();
    let report = store.merge().unwrap();
    assert_eq!(report.dangling_edges, 2);
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.table(s).unwrap().get(sid).unwrap().edges(src).unwrap(),
        &[0, 1, 2, 3],
        "edges are kept as written"
    );
}
