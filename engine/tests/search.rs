//! Search against brute force with the scalar reference kernels, over rows
//! in segments and the memtable, with deletes and filters.

use std::collections::HashSet;
use std::sync::Arc;

use engram::index::{Filter, Search, SearchParams};
use engram::kernels::distance::Metric;
use engram::kernels::scalar;
use engram::storage::{Dim, Meta, Row, RowId, Store, StoreOptions, TableId};
use engram::Error;
use rand::{Rng, SeedableRng};

const DIM: usize = 48;

/// A stored row as the test remembers it: id, key, namespace, timestamp.
type Kept = (u64, Vec<f32>, String, i64);
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
    let t = store.create_table("t", Dim::new(DIM as u32).unwrap()).unwrap();
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
        let id = store
            .insert(
                t,
                Row::new(key.clone()).with_meta(Meta {
                    namespace: ns.clone(),
                    timestamp: ts,
                    ..Meta::default()
                }),
            )
            .unwrap();
        rows.push((id.0, key, ns, ts));
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
            metric,
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
            metric,
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
        (Filter::namespace("ns3"), Box::new(|r| r.2 == "ns3")),
        (
            Filter {
                time: Some(5000..9000),
                ..Filter::default()
            },
            Box::new(|r| (5000..9000).contains(&r.3)),
        ),
        (
            Filter {
                time: Some(0..20_000),
                ..Filter::namespace("ns1")
            },
            Box::new(|r| r.2 == "ns1" && r.3 < 20_000),
        ),
        (
            Filter {
                ids: Some(ids.clone()),
                ..Filter::default()
            },
            Box::new(move |r| r.0 % 13 == 0),
        ),
        (
            Filter {
                time: Some(100..130),
                ..Filter::default()
            },
            Box::new(|r| (100..130).contains(&r.3)),
        ),
        (Filter::namespace("nobody"), Box::new(|_| false)),
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
    // k beyond the table returns every live row.
    assert_eq!(
        f.store.search(f.t, &[0.5; DIM], 100_000, &p).unwrap().len(),
        f.rows.len()
    );
}
