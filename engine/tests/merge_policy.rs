//! The size-tiered merge policy: after every flush, on the writer and on
//! reader handles that took the role, the store is left with no run of
//! `fanout` adjacent segments of one size tier and no segment whose deleted
//! share reaches the limit — while every row stays as written, in id order,
//! and the write amplification is counted.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::Notes;
use engram::index::{Hnsw, Search, SearchParams};
use engram::storage::{MergePolicy, RowId, Store, StoreOptions, TableStats};
use rand::{Rng, SeedableRng};

fn policy() -> MergePolicy {
    MergePolicy {
        fanout: 4,
        floor_bytes: 16 << 10,
        ..MergePolicy::default()
    }
}

/// What the policy promises after it ran: it would choose nothing more.
fn assert_settled(st: &TableStats, p: &MergePolicy, indexed: bool) {
    let list = &st.segment_list;
    for (i, s) in list.iter().enumerate() {
        assert!(
            (s.deleted_rows as f64) < p.max_deleted_ratio * s.rows as f64,
            "segment {i} keeps {} of {} rows deleted",
            s.deleted_rows,
            s.rows
        );
        assert!(!indexed || s.indexed, "segment {i} has no graph");
    }
    let tiers: Vec<Option<u32>> = list.iter().map(|s| p.tier(s.bytes)).collect();
    for w in tiers.windows(p.fanout) {
        assert!(
            w[0].is_none() || w.iter().any(|t| *t != w[0]),
            "{} adjacent segments of tier {:?} left unmerged: {:?}",
            p.fanout,
            w[0],
            list.iter().map(|s| s.bytes).collect::<Vec<_>>()
        );
    }
}

fn key(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn tiers_fold_flushed_segments_and_every_row_stays() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::new(16, false);
    let opts = StoreOptions {
        indexer: Some(Arc::new(Hnsw {
            threads: 2,
            ..Hnsw::default()
        })),
        merge_policy: Some(policy()),
        ..StoreOptions::default()
    };
    let store = Store::create(dir.path().join("s"), opts).unwrap();
    let t = store.create_table("t", notes.schema.clone()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut model: BTreeMap<u64, (Vec<f32>, String)> = BTreeMap::new();
    let mut most_segments = 0;
    for round in 0..40 {
        let keys: Vec<Vec<f32>> = (0..100).map(|_| key(&mut rng, 16)).collect();
        let texts: Vec<String> = (0..100).map(|i| format!("round {round} row {i}")).collect();
        let rows = keys.iter().zip(&texts).map(|(k, s)| notes.row(k.clone(), s)).collect();
        let ids = store.insert_batch(t, rows).unwrap();
        for ((id, k), s) in ids.iter().zip(keys).zip(texts) {
            model.insert(id.0, (k, s));
        }
        // Deletes spread over older rows, heavier now and then, so that
        // some segments cross the deleted-share limit.
        let share = if round % 7 == 6 { 0.4 } else { 0.03 };
        let victims: Vec<u64> = model.keys().copied().filter(|_| rng.gen_bool(share / 4.0)).collect();
        let victims: Vec<RowId> = victims.into_iter().map(RowId).collect();
        store.delete_batch(t, &victims).unwrap();
        for v in &victims {
            model.remove(&v.0);
        }
        store.flush().unwrap();
        let st = store.stats().unwrap();
        assert_eq!(st.last_flush_error, None);
        let ts = &st.tables[0];
        assert_settled(ts, &policy(), true);
        most_segments = most_segments.max(ts.segments);
        assert_eq!(ts.live_rows, model.len() as u64);
    }
    let st = store.stats().unwrap();
    let ts = &st.tables[0];
    // 40 flushes of about 20 KiB each: tiers keep the count small.
    assert!(most_segments <= 12, "{most_segments} segments at most");
    assert!(ts.segments < 10, "{} segments", ts.segments);

    // Every row, as written, in id order.
    let snap = store.snapshot().unwrap();
    let view = snap.table(t).unwrap();
    let got: Vec<(u64, Vec<f32>, String)> = view
        .rows()
        .map(|r| {
            (
                r.id().0,
                r.key(notes.key).to_vec(),
                r.text(notes.text).unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, Vec<f32>, String)> = model.iter().map(|(id, (k, s))| (*id, k.clone(), s.clone())).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert_eq!(g.2, w.2);
        for (a, b) in g.1.iter().zip(&w.1) {
            assert!((a - b).abs() < 1e-6, "row {}: key changed", g.0);
        }
    }
    // The merged graphs find each row's own key first.
    for (id, (k, _)) in model.iter().step_by(97) {
        let hits = store.search(t, k, 1, &SearchParams::default()).unwrap();
        assert_eq!(hits[0].id.0, *id);
    }

    // Write amplification: every byte on disk now was written by a flush
    // or a merge, and each row was rewritten about once per tier (plus the
    // graph build of its flushed segment, and the graphs themselves).
    assert!(st.bytes_flushed > 0 && st.bytes_merged > 0);
    assert!(ts.segment_bytes <= st.bytes_flushed + st.bytes_merged);
    let wa = (st.bytes_flushed + st.bytes_merged) as f64 / st.bytes_flushed as f64;
    let tiers = ts
        .segment_list
        .iter()
        .filter_map(|s| policy().tier(s.bytes))
        .max()
        .unwrap() as f64
        + 1.0;
    assert!(
        wa > 1.0 && wa <= 2.0 * (1.0 + tiers),
        "write amplification {wa} over {tiers} tiers"
    );
}

#[test]
fn a_segment_with_many_deletes_is_rewritten_alone() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::new(4, false);
    let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    let t = store.create_table("t", notes.schema.clone()).unwrap();
    let mut segs = Vec::new();
    for s in 0..3 {
        let rows = (0..1000)
            .map(|i| notes.row(vec![s as f32, i as f32, 1.0, 0.0], "x"))
            .collect();
        segs.push(store.insert_batch(t, rows).unwrap());
        store.flush().unwrap();
    }
    // 20 % of the first segment (below the limit), 40 % of the second.
    let mut victims: Vec<RowId> = segs[0].iter().step_by(5).copied().collect();
    victims.extend(segs[1].iter().enumerate().filter(|(i, _)| i % 5 < 2).map(|(_, id)| *id));
    store.delete_batch(t, &victims).unwrap();
    store.flush().unwrap();
    let ts = &store.stats().unwrap().tables[0];
    let shape: Vec<(u64, u64)> = ts.segment_list.iter().map(|s| (s.rows, s.deleted_rows)).collect();
    assert_eq!(shape, vec![(1000, 200), (600, 0), (1000, 0)]);
    let live: Vec<RowId> = store.live_ids(t).unwrap();
    assert_eq!(live.len(), 3000 - 600);
    assert!(live.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn reader_handles_merge_when_they_give_the_role_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let notes = Notes::new(4, false);
    drop(
        Store::create(&path, StoreOptions::default())
            .unwrap()
            .create_table("t", notes.schema.clone()),
    );
    let opts = StoreOptions {
        merge_policy: Some(policy()),
        ..StoreOptions::reader()
    };
    let a = Store::open(&path, opts.clone()).unwrap();
    let b = Store::open(&path, opts).unwrap();
    let t = a.table("t").unwrap();
    let mut n = 0u64;
    for round in 0..9 {
        let h = if round % 2 == 0 { &a } else { &b };
        h.begin_write(Duration::from_secs(10), &|| false).unwrap();
        let rows = (0..300)
            .map(|i| notes.row(vec![round as f32, i as f32, 1.0, 0.0], "y"))
            .collect();
        n += h.insert_batch(t, rows).unwrap().len() as u64;
        h.flush().unwrap();
        h.end_write().unwrap();
        let st = h.stats().unwrap();
        assert_eq!(st.last_flush_error, None);
        assert_settled(&st.tables[0], &policy(), false);
    }
    let check = Store::open(&path, StoreOptions::reader()).unwrap();
    let ts = &check.stats().unwrap().tables[0];
    assert_eq!(ts.live_rows, n);
    assert!(ts.segments < 9, "{} segments after 9 flushes", ts.segments);
    assert_settled(ts, &policy(), false);
}
