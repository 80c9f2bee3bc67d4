//! Write batches with caller-chosen ids and a watermark; readers that take
//! the writer role; stores recreated at the same path.

mod common;

use std::time::Duration;

use common::Notes;
use engram::storage::{Mode, Row, RowId, Store, StoreOptions, WriteBatch};
use engram::Error;

fn notes() -> Notes {
    Notes::new(2, false)
}

fn row(x: f32) -> Row {
    let n = notes();
    n.canonical(n.row(vec![x, 1.0], &format!("{x}")))
}

#[test]
fn batch_applies_deletes_inserts_and_watermark_together_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let store = Store::create(&path, StoreOptions::default()).unwrap();
        let a = store.create_table("a", notes().schema).unwrap();
        let b = store.create_table("b", notes().schema).unwrap();
        let mut w = WriteBatch::new();
        w.insert(a, RowId(5), row(5.0))
            .insert(a, RowId(9), row(9.0))
            .insert(b, RowId(1), row(1.0));
        w.set_watermark(3);
        let r = store.write(w).unwrap();
        assert_eq!((r.inserted, r.deleted), (3, 0));
        let mut w = WriteBatch::new();
        w.delete(a, RowId(5))
            .delete(a, RowId(6))
            .insert(a, RowId(10), row(10.0))
            .set_watermark(4);
        assert_eq!(store.write(w).unwrap().deleted, 1);
        // Ids at or below the highest id so far are refused, and the refused
        // batch changes nothing (not even the watermark).
        let mut w = WriteBatch::new();
        w.insert(a, RowId(9), row(0.0))
            .insert(b, RowId(2), row(2.0))
            .set_watermark(99);
        assert!(matches!(store.write(w), Err(Error::InvalidArgument(_))));
        assert_eq!(store.watermark().unwrap(), 4);
        assert_eq!(store.live_ids(b).unwrap(), vec![RowId(1)]);
        // Plain inserts continue after the highest explicit id.
        assert_eq!(store.insert(a, row(11.0)).unwrap(), RowId(11));
    }
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    let a = store.table("a").unwrap();
    assert_eq!(store.watermark().unwrap(), 4);
    assert_eq!(store.live_ids(a).unwrap(), vec![RowId(9), RowId(10), RowId(11)]);
    assert_eq!(store.get(a, RowId(10)).unwrap(), Some(row(10.0)));
}

#[test]
fn readers_take_turns_as_writer_and_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let t = {
        let s = Store::create(&path, StoreOptions::default()).unwrap();
        s.create_table("t", notes().schema).unwrap()
    };
    let small = StoreOptions {
        memtable_bytes: 2 << 10,
        ..StoreOptions::reader()
    };
    let h1 = Store::open(&path, small.clone()).unwrap();
    let h2 = Store::open(&path, small).unwrap();
    for i in 0..40u64 {
        let (me, other) = if i % 2 == 0 { (&h1, &h2) } else { (&h2, &h1) };
        me.begin_write(Duration::from_secs(1), &|| false).unwrap();
        // While one holds the role, the other cannot take it.
        assert!(matches!(
            other.begin_write(Duration::from_millis(5), &|| false),
            Err(Error::WriterLocked { .. })
        ));
        let mut w = WriteBatch::new();
        w.insert(t, RowId(i * 2), row(i as f32)).set_watermark(i + 1);
        me.write(w).unwrap();
        if i % 7 == 0 {
            me.flush().unwrap();
        }
        me.end_write().unwrap();
        assert!(matches!(me.insert(t, row(0.0)), Err(Error::ReadOnly)));
        assert_eq!(other.watermark().unwrap(), i + 1);
        assert_eq!(other.live_ids(t).unwrap().len() as u64, i + 1);
    }
    let fresh = Store::open(&path, StoreOptions::reader()).unwrap();
    assert_eq!(
        fresh.live_ids(t).unwrap(),
        (0..40).map(|i| RowId(i * 2)).collect::<Vec<_>>()
    );
}

#[test]
fn a_reader_notices_a_store_recreated_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mk = |tag: &str, n: usize| {
        let _ = std::fs::remove_dir_all(&path);
        let s = Store::create(
            &path,
            StoreOptions {
                tag: tag.into(),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let t = s.create_table("t", notes().schema).unwrap();
        for i in 0..n {
            s.insert(t, row(i as f32)).unwrap();
        }
    };
    mk("first", 3);
    let reader = Store::open(
        &path,
        StoreOptions {
            mode: Mode::Reader,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let t = reader.table("t").unwrap();
    assert_eq!(reader.tag().unwrap(), "first");
    assert_eq!(reader.live_ids(t).unwrap().len(), 3);
    // Same generation and WAL id as before, but a different store.
    mk("second", 1);
    assert_eq!(reader.tag().unwrap(), "second");
    assert_eq!(reader.live_ids(t).unwrap(), vec![RowId(0)]);
}
