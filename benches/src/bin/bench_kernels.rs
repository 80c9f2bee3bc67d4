//! Kernel throughput: GB/s of f32 and int8 distance through the SIMD kernels
//! against the scalar reference, measured in the same run (the ratio is the
//! figure to quote on a shared machine). Writes target/bench/kernels.json.

use std::hint::black_box;
use std::time::Instant;

use engram::kernels::distance::{distance, dot_i8, Metric};
use engram::kernels::scalar;
use engram_benches::write_report;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 384;
const ROWS: usize = 4096;

/// Best of several passes over all rows: bytes of the rows read per second.
fn gbps(bytes_per_row: usize, mut pass: impl FnMut() -> f32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        black_box(pass());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (ROWS * bytes_per_row) as f64 / best / 1e9
}

fn main() -> std::io::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rows: Vec<f32> = (0..ROWS * DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let codes: Vec<i8> = (0..ROWS * DIM).map(|_| rng.gen()).collect();
    let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let qc: Vec<i8> = (0..DIM).map(|_| rng.gen()).collect();
    let f32_row = DIM * 4;
    let mut report = serde_json::Map::new();
    for (name, metric) in [("cosine", Metric::Cosine), ("dot", Metric::Dot), ("l2", Metric::L2)] {
        let simd = gbps(f32_row, || {
            rows.chunks_exact(DIM).map(|r| distance(metric, &q, r)).sum()
        });
        let reference = gbps(f32_row, || {
            rows.chunks_exact(DIM)
                .map(|r| match metric {
                    Metric::Cosine => scalar::cosine_distance(&q, r),
                    Metric::Dot => -scalar::dot(&q, r),
                    Metric::L2 => scalar::l2sq(&q, r),
                })
                .sum()
        });
        report.insert(
            format!("f32_{name}"),
            json!({"simd_gb_per_s": round(simd), "scalar_gb_per_s": round(reference), "speedup": round(simd / reference)}),
        );
    }
    let simd = gbps(DIM, || codes.chunks_exact(DIM).map(|r| dot_i8(&qc, r) as f32).sum());
    let reference = gbps(DIM, || {
        codes.chunks_exact(DIM).map(|r| scalar::dot_i8(&qc, r) as f32).sum()
    });
    report.insert(
        "i8_dot".into(),
        json!({"simd_gb_per_s": round(simd), "scalar_gb_per_s": round(reference), "speedup": round(simd / reference)}),
    );
    report.insert("dim".into(), json!(DIM));
    report.insert("rows".into(), json!(ROWS));
    write_report("kernels", &serde_json::Value::Object(report))
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
