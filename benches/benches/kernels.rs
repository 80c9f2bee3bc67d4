//! Criterion's view of the distance kernels: throughput in bytes of rows
//! read per second, SIMD (`simsimd`) against the scalar reference, on 384-d
//! rows (`cargo bench -p engram-benches --bench kernels`, or
//! `make bench-kernels`, which also writes target/bench/kernels.json).
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engram::kernels::distance::{distance, dot_i8, Metric};
use engram::kernels::scalar;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;
const ROWS: usize = 1024;

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rows: Vec<f32> = (0..ROWS * DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let codes: Vec<i8> = (0..ROWS * DIM).map(|_| rng.gen()).collect();
    let qc: Vec<i8> = (0..DIM).map(|_| rng.gen()).collect();

    let mut g = c.benchmark_group("f32");
    g.throughput(Throughput::Bytes((ROWS * DIM * 4) as u64));
    for (name, metric) in [("cosine", Metric::Cosine), ("dot", Metric::Dot), ("l2", Metric::L2)] {
        g.bench_function(format!("{name}/simd"), |b| {
            b.iter(|| {
                rows.chunks_exact(DIM)
                    .map(|r| distance(metric, black_box(&q), r))
                    .sum::<f32>()
            })
        });
    }
    g.bench_function("cosine/scalar", |b| {
        b.iter(|| {
            rows.chunks_exact(DIM)
                .map(|r| scalar::cosine_distance(black_box(&q), r))
                .sum::<f32>()
        })
    });
    g.bench_function("dot/scalar", |b| {
        b.iter(|| {
            rows.chunks_exact(DIM)
                .map(|r| scalar::dot(black_box(&q), r))
                .sum::<f32>()
        })
    });
    g.bench_function("l2/scalar", |b| {
        b.iter(|| {
            rows.chunks_exact(DIM)
                .map(|r| scalar::l2sq(black_box(&q), r))
                .sum::<f32>()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("i8");
    g.throughput(Throughput::Bytes((ROWS * DIM) as u64));
    g.bench_function("dot/simd", |b| {
        b.iter(|| codes.chunks_exact(DIM).map(|r| dot_i8(black_box(&qc), r)).sum::<i32>())
    });
    g.bench_function("dot/scalar", |b| {
        b.iter(|| {
            codes
                .chunks_exact(DIM)
                .map(|r| scalar::dot_i8(black_box(&qc), r))
                .sum::<i32>()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = kernels
}
criterion_main!(benches);
