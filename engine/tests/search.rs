//! Search against brute force with the scalar reference kernels, over rows
//! in segments and the memtable, with deletes and filters.

use std::collections::HashSet;
use std::sync::Arc;

use engram::index::{Filter, Query, Search, SearchParams};
use engram::kernels::distance::Metric;
use engram::kernels::scalar;
use engram::storage::{
    Dim, FixedCol, FixedType, KeySpec, Row, RowId, Schema, Store, StoreOptions, SymbolCol, TableId, TextCol,
};
use engram::Error;
use rand::{Rng, SeedableRng};

const DIM: usize = 48;

/// A stored row as the test remembers it: id, key, namespace, timestamp,
/// weight, tier.
type Kept = (u64, Vec<f32>, String, i64, f32, u8);

struct Cols {
    schema: Schema,
    ns: SymbolCol,
    ts: FixedCol<i64>,
    w: FixedCol<f32>,
    tier: FixedCol<u8>,
    text: TextCol,
}

fn cols() -> Cols {
    let schema = Schema::builder()
        .key("key", KeySpec::new(Dim::new(DIM as u32).unwrap()).with_index(None))
        .symbol("ns")
        .fixed("ts", FixedType::Timestamp)
        .fixed("w", FixedType::F32)
        .enumeration("tier", &["variant", "soft", "hard"])
        .text("text")
        .build()
        .unwrap();
    Cols {
        ns: schema.symbol("ns").unwrap(),
        ts: schema.fixed("ts").unwrap(),
        w: schema.fixed("w").unwrap(),
        tier: schema.fixed("tier").unwrap(),
        text: schema.text("text").unwrap(),
        schema,
    }
}
/// A filter and the predicate that says which rows it admits.
type Case = (Filter, Box<dyn Fn(&Kept) -> bool>);

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    t: TableId,
    rows: Vec<Kept>,
}

/// Clustered vectors (as real embeddings are), 8 namespaces, timestamps,
/// some rows deleted, spread over two segments and the memtable.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
    let cs = cols();
    let t = store.create_table("t", cs.schema.clone()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let centers: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let mut rows = Vec::new();
    for i in 0..3000u64 {
        let c = &centers[rng.gen_range(0..centers.len())];
        let key: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.3..0.3)).collect();
        let ns = format!("ns{}", i % 8);
        let ts = i as i64 * 10;
        let (w, tier) = ((i % 100) as f32 / 100.0, (i % 3) as u8);
        let row = Row::new(&cs.schema)
            .with(cs.schema.key("key").unwrap(), key.clone())
            .with(cs.ns, ns.clone())
            .with(cs.ts, ts)
            .with(cs.w, w)
            .with(cs.tier, tier)
            .with(cs.text, format!("row {i}"));
        let id = store.insert(t, row).unwrap();
        rows.push((id.0, key, ns, ts, w, tier));
        if i == 1000 || i == 2000 {
            store.flush().unwrap();
        }
    }
    for i in (0..3000).step_by(7) {
        store.delete(t, RowId(i)).unwrap();
    }
    rows.retain(|r| r.0 % 7 != 0);
    Fixture {
        _dir: dir,
        store,
        t,
        rows,
    }
}

fn reference(f: &Fixture, q: &[f32], k: usize, metric: Metric, keep: impl Fn(&Kept) -> bool) -> Vec<u64> {
    let mut all: Vec<(f32, u64)> = f
        .rows
        .iter()
        .filter(|r| keep(r))
        .map(|r| {
            let d = match metric {
                Metric::Cosine => scalar::cosine_distance(q, &r.1),
                Metric::Dot => -scalar::dot(q, &r.1),
                Metric::L2 => scalar::l2sq(q, &r.1),
            };
            (d, r.0)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|x| x.1).collect()
}

fn queries(n: usize) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..n)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

fn recall(got: &[u64], want: &[u64]) -> f64 {
    let w: HashSet<_> = want.iter().collect();
    got.iter().filter(|g| w.contains(g)).count() as f64 / want.len().max(1) as f64
}

#[test]
fn exact_f32_scoring_equals_brute_force_for_every_metric() {
    let f = fixture();
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let p = SearchParams {
            metric: Some(metric),
            rescore: 0,
            ..SearchParams::default()
        };
        for q in queries(20) {
            let got: Vec<u64> = f
                .store
                .search(f.t, &q, 10, &p)
                .unwrap()
                .iter()
                .map(|h| h.id.0)
                .collect();
            assert_eq!(got, reference(&f, &q, 10, metric, |_| true), "{metric:?}");
        }
    }
}

#[test]
fn int8_candidates_rescored_keep_recall() {
    let f = fixture();
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let p = SearchParams {
            metric: Some(metric),
            ..SearchParams::default()
        };
        let qs = queries(50);
        let total: f64 = qs
            .iter()
            .map(|q| {
                let hits = f.store.search(f.t, q, 10, &p).unwrap();
                // Reported distances are exact f32 distances, nearest first.
                assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
                let got: Vec<u64> = hits.iter().map(|h| h.id.0).collect();
                recall(&got, &reference(&f, q, 10, metric, |_| true))
            })
            .sum();
        let r = total / qs.len() as f64;
        assert!(r >= 0.99, "{metric:?}: recall@10 {r}");
    }
}

#[test]
fn filters_are_honoured_at_every_selectivity() {
    let f = fixture();
    let ids: Arc<HashSet<u64>> = Arc::new((0..3000).filter(|i| i % 13 == 0).collect());
    let cases: Vec<Case> = vec![
        (Filter::eq("ns", "ns3"), Box::new(|r| r.2 == "ns3")),
        (
            Filter::range("ts", 5000i64..9000),
            Box::new(|r| (5000..9000).contains(&r.3)),
        ),
        (
            Filter::eq("ns", "ns1").and(Filter::range("ts", 0i64..20_000)),
            Box::new(|r| r.2 == "ns1" && r.3 < 20_000),
        ),
        (Filter::Ids(ids.clone()), Box::new(move |r| r.0 % 13 == 0)),
        (
            Filter::range("ts", 100i64..130),
            Box::new(|r| (100..130).contains(&r.3)),
        ),
        (Filter::eq("ns", "nobody"), Box::new(|_| false)),
        (
            Filter::one_of("ns", ["ns2", "ns5", "nobody"]),
            Box::new(|r| r.2 == "ns2" || r.2 == "ns5"),
        ),
        (
            Filter::range("w", 0.25f64..0.3),
            Box::new(|r| (0.25..0.3).contains(&r.4)),
        ),
        (Filter::eq("tier", "hard"), Box::new(|r| r.5 == 2)),
        (
            Filter::eq("ns", "ns4").or(Filter::eq("tier", "soft").and(Filter::range("ts", 0i64..3000))),
            Box::new(|r| r.2 == "ns4" || (r.5 == 1 && r.3 < 3000)),
        ),
        (
            Filter::Not(Box::new(Filter::one_of(
                "ns",
                ["ns0", "ns1", "ns2", "ns3", "ns4", "ns5", "ns6"],
            ))),
            Box::new(|r| r.2 == "ns7"),
        ),
    ];
    for (filter, keep) in cases {
        let p = SearchParams {
            filter: filter.clone(),
            ..SearchParams::default()
        };
        let mut total = 0.0;
        let qs = queries(20);
        for q in &qs {
            let got: Vec<u64> = f.store.search(f.t, q, 10, &p).unwrap().iter().map(|h| h.id.0).collect();
            let want = reference(&f, q, 10, Metric::Cosine, &keep);
            assert_eq!(
                got.len(),
                want.len(),
                "{filter:?}: returns k rows whenever k pass the filter"
            );
            assert!(
                got.iter().all(|id| f.rows.iter().any(|r| r.0 == *id && keep(r))),
                "{filter:?}"
            );
            total += if want.is_empty() { 1.0 } else { recall(&got, &want) };
        }
        assert!(
            total / qs.len() as f64 >= 0.99,
            "{filter:?}: recall {}",
            total / qs.len() as f64
        );
    }
}

#[test]
fn bad_queries_are_typed_errors() {
    let f = fixture();
    let p = SearchParams::default();
    assert!(matches!(
        f.store.search(f.t, &[1.0; 3], 10, &p),
        Err(Error::DimensionMismatch { .. })
    ));
    let mut q = vec![0.5; DIM];
    q[5] = f32::NAN;
    assert!(matches!(
        f.store.search(f.t, &q, 10, &p),
        Err(Error::NonFinite { index: 5, .. })
    ));
    assert!(matches!(
        f.store.search(f.t, &[0.5; DIM], 0, &p),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        f.store.search(
            f.t,
            &[0.5; DIM],
            1,
            &SearchParams {
                filter: Filter::eq("nope", 1u64),
                ..p.clone()
            }
        ),
        Err(Error::NoSuchColumn(_))
    ));
    assert!(matches!(
        f.store.search(
            f.t,
            &[0.5; DIM],
            1,
            &SearchParams {
                filter: Filter::eq("ts", "x"),
                ..p.clone()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
    // k beyond the table returns every live row.
    assert_eq!(
        f.store.search(f.t, &[0.5; DIM], 100_000, &p).unwrap().len(),
        f.rows.len()
    );
}

#[test]
fn hits_read_their_rows_from_the_search_snapshot() {
    let f = fixture();
    let c = cols();
    let snap = f.store.snapshot().unwrap();
    let q = queries(1).remove(0);
    let hits = snap
        .table(f.t)
        .unwrap()
        .search(&q, 10, &SearchParams::default())
        .unwrap();
    // Rows deleted and rewritten after the snapshot do not change its hits.
    for h in &hits {
        f.store.delete(f.t, h.id).unwrap();
    }
    for h in &hits {
        let kept = f.rows.iter().find(|r| r.0 == h.id.0).unwrap();
        assert_eq!(h.row.symbol(c.ns), kept.2);
        assert_eq!(h.row.get(c.ts), kept.3);
        assert_eq!(h.row.text(c.text).unwrap(), format!("row {}", h.id.0));
        assert_eq!(h.row.key(c.schema.key("key").unwrap()), &kept.1[..]);
    }
    assert!(f
        .store
        .search(f.t, &q, 10, &SearchParams::default())
        .unwrap()
        .iter()
        .all(|h| hits.iter().all(|o| o.id != h.id)));
}

#[test]
fn a_scorer_ranks_the_rescored_candidates() {
    let f = fixture();
    let c = cols();
    let q = queries(1).remove(0);
    // Prefer recent rows: distance minus a bonus for the timestamp.
    let ts = c.ts;
    let p = SearchParams {
        ef: 200,
        rescore: 20,
        scorer: Some(Arc::new(move |row: &engram::storage::RowView<'_>, d: f32| {
            d - row.get(ts) as f32 * 1e-4
        })),
        ..SearchParams::default()
    };
    let snap = f.store.snapshot().unwrap();
    let hits = snap.table(f.t).unwrap().search(&q, 10, &p).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.windows(2).all(|w| w[0].score <= w[1].score));
    for h in &hits {
        let want = h.distance - h.row.get(ts) as f32 * 1e-4;
        assert!((h.score - want).abs() < 1e-6);
        let exact = scalar::cosine_distance(&q, &f.rows.iter().find(|r| r.0 == h.id.0).unwrap().1);
        assert!((h.distance - exact).abs() < 1e-4);
    }
    // The scorer reorders: the plain search ranks by distance alone.
    let plain: Vec<u64> = snap
        .table(f.t)
        .unwrap()
        .search(&q, 10, &SearchParams::default())
        .unwrap()
        .iter()
        .map(|h| h.id.0)
        .collect();
    assert_ne!(plain, hits.iter().map(|h| h.id.0).collect::<Vec<_>>());
}

#[test]
fn without_rescore_walk_only_k_times_rescore_candidates_are_rescored() {
    let f = fixture();
    let q = queries(1).remove(0);
    let snap = f.store.snapshot().unwrap();
    let t = snap.table(f.t).unwrap();
    // A scorer that ignores the distance ranks the rescored candidates by
    // id: which ids come back shows how many candidates were rescored.
    let by_id = |rescore_walk: bool, scorer: bool| {
        let p = SearchParams {
            ef: 200,
            rescore: 1,
            rescore_walk,
            scorer: scorer.then(|| Arc::new(|row: &engram::storage::RowView<'_>, _d: f32| row.id().0 as f32) as _),
            ..SearchParams::default()
        };
        let mut ids: Vec<u64> = t.search(&q, 10, &p).unwrap().iter().map(|h| h.id.0).collect();
        ids.sort();
        ids
    };
    // Only the walk's best 10: the scorer reorders them and picks no other.
    assert_eq!(by_id(false, true), by_id(false, false));
    // The whole walk (200 rows): the scorer's 10 lowest ids among them.
    let wide = by_id(true, true);
    assert_ne!(wide, by_id(false, true));
    assert!(wide.iter().max() < by_id(false, true).iter().max());
}

#[test]
fn several_tables_are_searched_over_one_snapshot() {
    let f = fixture();
    let c = cols();
    let other = f.store.create_table("u", c.schema.clone()).unwrap();
    let q = queries(1).remove(0);
    f.store
        .insert(
            other,
            Row::new(&c.schema)
                .with(c.schema.key("key").unwrap(), q.clone())
                .with(c.text, "the query"),
        )
        .unwrap();
    let snap = f.store.snapshot().unwrap();
    let p = SearchParams::default();
    let out = snap
        .search_many(&[
            Query {
                table: f.t,
                key: &q,
                k: 5,
                params: p.clone(),
            },
            Query {
                table: other,
                key: &q,
                k: 5,
                params: p.clone(),
            },
        ])
        .unwrap();
    assert_eq!(out[0].len(), 5);
    assert_eq!(
        out[0].iter().map(|h| h.id.0).collect::<Vec<_>>(),
        reference(&f, &q, 5, Metric::Cosine, |_| true)
    );
    assert_eq!(out[1].len(), 1);
    assert_eq!(out[1][0].row.text(c.text).unwrap(), "the query");
    assert!(out[1][0].distance < 1e-6);
}

#[test]
fn updated_values_are_what_filters_see() {
    let f = fixture();
    let c = cols();
    // Move every ns3 row of one tier to another tier; the filter follows.
    let moved: Vec<u64> = f
        .rows
        .iter()
        .filter(|r| r.2 == "ns3" && r.5 == 0)
        .map(|r| r.0)
        .collect();
    for id in &moved {
        f.store.update(f.t, RowId(*id), vec![c.tier.set(2)]).unwrap();
    }
    let p = SearchParams {
        filter: Filter::eq("ns", "ns3").and(Filter::eq("tier", "hard")),
        ..SearchParams::default()
    };
    for q in queries(5) {
        let got = f.store.search(f.t, &q, 10, &p).unwrap();
        let want = reference(&f, &q, 10, Metric::Cosine, |r| {
            r.2 == "ns3" && (r.5 == 2 || moved.contains(&r.0))
        });
        assert_eq!(got.iter().map(|h| h.id.0).collect::<Vec<_>>(), want);
    }
}
