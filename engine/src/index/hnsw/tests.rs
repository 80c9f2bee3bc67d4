//! Graph quality against brute force, and the mapped layout.

use super::build::BuildGraph;
use super::layer::Links;
use super::layout::{encode, GraphRef};
use super::space::{factor, Codes, QueryCode};
use crate::kernels::distance::Metric;
use crate::kernels::{quant, scalar};
use rand::{Rng, SeedableRng};

/// Clustered unit vectors, like sentence embeddings: harder than uniform.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centers: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[rng.gen_range(0..centers.len())];
            let v: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.6..0.6)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

struct Data {
    metric: Metric,
    dim: usize,
    codes: Vec<i8>,
    factors: Vec<f32>,
    sqnorms: Vec<f32>,
}

impl Data {
    fn codes(&self) -> Codes<'_> {
        Codes {
            metric: self.metric,
            dim: self.dim,
            codes: &self.codes,
            factors: &self.factors,
            sqnorms: &self.sqnorms,
        }
    }

    fn encode(&self, g: BuildGraph, ef: usize) -> Vec<u8> {
        encode(g, self.metric, &self.factors, &self.sqnorms, ef)
    }
}

fn quantize_all(rows: &[Vec<f32>], metric: Metric) -> Data {
    let dim = rows[0].len();
    let mut codes = vec![0i8; rows.len() * dim];
    let factors = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let s = quant::quantize(r, &mut codes[i * dim..(i + 1) * dim]);
            factor(metric, s, scalar::norm(r))
        })
        .collect();
    let sqnorms = match metric {
        Metric::L2 => rows.iter().map(|r| scalar::norm(r).powi(2)).collect(),
        _ => Vec::new(),
    };
    Data {
        metric,
        dim,
        codes,
        factors,
        sqnorms,
    }
}

/// The scalar reference distance for `metric`.
fn exact(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => scalar::cosine_distance(a, b),
        Metric::Dot => -scalar::dot(a, b),
        Metric::L2 => scalar::l2sq(a, b),
    }
}

/// Aligned copy, as the segment's mmap gives.
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    zerocopy::IntoBytes::as_mut_bytes(&mut v[..])[..bytes.len()].copy_from_slice(bytes);
    v
}

fn recall(rows: &[Vec<f32>], g: &GraphRef<'_>, d: &Data, queries: &[Vec<f32>], ef: usize) -> f64 {
    let mut hit = 0;
    for q in queries {
        let mut truth: Vec<(f32, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (exact(d.metric, q, r), i))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: Vec<usize> = truth[..10].iter().map(|t| t.1).collect();
        let got = super::search::search(g, &d.codes, d.dim, &QueryCode::new(d.metric, q), ef, &|_| true);
        hit += got
            .iter()
            .take(10)
            .filter(|n| truth.contains(&(n.node as usize)))
            .count();
    }
    hit as f64 / (10 * queries.len()) as f64
}

#[test]
fn graph_recall_against_brute_force_single_and_parallel_build() {
    let rows = clustered(3000, 48, 7);
    let queries = clustered(50, 48, 8);
    let d = quantize_all(&rows, Metric::Cosine);
    let codes = d.codes();
    for threads in [1, 4] {
        let g = BuildGraph::new(rows.len(), 12, 1);
        g.build(&codes, 100, threads);
        // Every list within its bound, no self links, every node has an
        // incoming link at level 0 (no node is orphaned by pruning).
        let mut indegree = vec![0usize; rows.len()];
        let mut buf = Vec::new();
        for i in 0..rows.len() as u32 {
            g.neighbours(i, 0, &mut buf);
            assert!(buf.len() <= 24 && !buf.contains(&i));
            for &n in &buf {
                indegree[n as usize] += 1;
            }
        }
        let orphans = indegree.iter().filter(|&&d| d == 0).count();
        assert_eq!(orphans, 0, "nodes without an incoming link at level 0");
        let enc = d.encode(g, 100);
        let bytes = aligned(&enc);
        let gr = GraphRef::parse(&zerocopy::IntoBytes::as_bytes(&bytes[..])[..enc.len()], rows.len())
            .expect("own encoding parses");
        let r = recall(&rows, &gr, &d, &queries, 64);
        // int8 distances cost a little recall before rescoring.
        assert!(r >= 0.9, "recall@10 {r} with {threads} threads");
        let r_small = recall(&rows, &gr, &d, &queries, 10);
        assert!(r_small <= r + 1e-9, "a wider list cannot lose recall: {r_small} vs {r}");
    }
}

#[test]
fn damaged_graph_bytes_are_refused_or_bounded() {
    let rows = clustered(300, 16, 3);
    let d = quantize_all(&rows, Metric::Cosine);
    let g = BuildGraph::new(rows.len(), 8, 1);
    g.build(&d.codes(), 40, 1);
    let good = d.encode(g, 40);
    // Wrong row count, truncation, bad header: refused.
    let buf = aligned(&good);
    let b = &zerocopy::IntoBytes::as_bytes(&buf[..])[..good.len()];
    assert!(GraphRef::parse(b, 299).is_none());
    assert!(GraphRef::parse(&b[..b.len() - 4], 300).is_none());
    let mut bad = good.clone();
    bad[20] ^= 1;
    let buf = aligned(&bad);
    assert!(GraphRef::parse(&zerocopy::IntoBytes::as_bytes(&buf[..])[..bad.len()], 300).is_none());
    // Neighbour ids scribbled past the end (header intact): search stays in
    // bounds and still answers.
    let mut scribbled = good.clone();
    let level0 = 64 + 4 * 300;
    for w in (level0 + 4..level0 + 4 * 300 * 17).step_by(4 * 3) {
        scribbled[w..w + 4].copy_from_slice(&u32::MAX.wrapping_sub(5).to_le_bytes());
    }
    let buf = aligned(&scribbled);
    let gr = GraphRef::parse(&zerocopy::IntoBytes::as_bytes(&buf[..])[..scribbled.len()], 300).unwrap();
    let got = super::search::search(
        &gr,
        &d.codes,
        d.dim,
        &QueryCode::new(Metric::Cosine, &rows[0]),
        10,
        &|_| true,
    );
    assert!(!got.is_empty() && got.iter().all(|n| (n.node as usize) < 300));
}

#[test]
fn filtered_walk_returns_only_admitted_rows() {
    let rows = clustered(2000, 32, 11);
    let d = quantize_all(&rows, Metric::Cosine);
    let codes = d.codes();
    let g = BuildGraph::new(rows.len(), 12, 2);
    g.build(&codes, 80, 2);
    let enc = d.encode(g, 80);
    let bytes = aligned(&enc);
    let gr = GraphRef::parse(&zerocopy::IntoBytes::as_bytes(&bytes[..])[..enc.len()], rows.len()).unwrap();
    let admit = |i: u32| i % 10 == 3;
    let q = QueryCode::new(Metric::Cosine, &rows[5]);
    let got = super::search::search(&gr, &d.codes, d.dim, &q, 50, &admit);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|n| admit(n.node)));
    // Against brute force over the admitted rows, on the same int8 distance.
    let mut truth: Vec<(f32, u32)> = (0..2000u32)
        .filter(|&i| admit(i))
        .map(|i| (q.to(&codes, i), i))
        .collect();
    truth.sort_by(|a, b| a.0.total_cmp(&b.0));
    let top: Vec<u32> = truth[..10].iter().map(|t| t.1).collect();
    let found = got[..10].iter().filter(|n| top.contains(&n.node)).count();
    assert!(found >= 9, "{found}/10");
}

/// Graphs of the dot and L2 metrics, on vectors of varied norms (where the
/// metrics rank differently from cosine), against brute force on f32 keys.
#[test]
fn dot_and_l2_graphs_find_their_own_neighbours() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let scale = |v: Vec<Vec<f32>>, rng: &mut rand::rngs::StdRng| -> Vec<Vec<f32>> {
        v.into_iter()
            .map(|r| {
                let s = rng.gen_range(0.2f32..3.0);
                r.iter().map(|x| x * s).collect()
            })
            .collect()
    };
    let rows = scale(clustered(2500, 32, 21), &mut rng);
    let queries = scale(clustered(40, 32, 22), &mut rng);
    for metric in [Metric::Dot, Metric::L2] {
        let d = quantize_all(&rows, metric);
        let g = BuildGraph::new(rows.len(), 12, 3);
        g.build(&d.codes(), 100, 2);
        let enc = d.encode(g, 100);
        let bytes = aligned(&enc);
        let gr = GraphRef::parse(&zerocopy::IntoBytes::as_bytes(&bytes[..])[..enc.len()], rows.len()).unwrap();
        assert_eq!(gr.metric, metric);
        let r = recall(&rows, &gr, &d, &queries, 100);
        assert!(r >= 0.85, "{metric:?}: recall@10 {r} on codes");
    }
}
