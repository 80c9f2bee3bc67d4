//! The embedded-engine demo: declare a table's schema, write rows, update
//! and upsert them in place, reopen the store and read them back through a
//! snapshot; then search 2,000 real sentence embeddings through HNSW
//! graphs, reading each hit's text from the search's own snapshot, with
//! what happened printed along the way. Last, a language model made of
//! search: learn the sample's verses, fit, write three continuations, trace
//! a token to the verse it came from, and score held-out verses in bits per
//! character.
//!
//! `cargo run --release -p engram --example demo [DIR]`

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use engram::generate::{Generator, Request, Sampling, ScoreMode, Settings};
use engram::index::{Filter, Hnsw, Search, SearchParams};
use engram::storage::{Dim, FixedType, KeySpec, Row, Schema, Sparse, SparseKind, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("engram-demo-store"));
    let _ = std::fs::remove_dir_all(&dir);

    println!("== engram embedded demo: store at {}", dir.display());
    let sentences = [
        "In the beginning was the word.",
        "Memory that can speak remembers what it read.",
        "Every acknowledged write survives a crash.",
        "Readers never block the writer.",
    ];
    let schema = Schema::builder()
        .key("key", KeySpec::new(Dim::new(8)?))
        .text("text")
        .symbol("namespace")
        .fixed("sentence", FixedType::U32)
        .fixed("tokens", FixedType::U32)
        .fixed("reads", FixedType::U64)
        .sparse("next", SparseKind::Counts)
        .fixed("hash", FixedType::U64)
        .unique("hash")
        .build()?;
    let (key, text, ns) = (schema.key("key")?, schema.text("text")?, schema.symbol("namespace")?);
    let (sentence, tokens, reads) = (
        schema.fixed::<u32>("sentence")?,
        schema.fixed::<u32>("tokens")?,
        schema.fixed::<u64>("reads")?,
    );
    let (next, hash) = (schema.sparse("next")?, schema.fixed::<u64>("hash")?);
    println!(
        "schema: {} columns ({})",
        schema.columns().len(),
        schema
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row_of = |i: usize, s: &str| {
        // A toy key: letter statistics, enough to show the columns.
        let mut k = vec![0.0f32; 8];
        for b in s.bytes() {
            k[usize::from(b) % 8] += 1.0;
        }
        Row::new(&schema)
            .with(key, k)
            .with(text, s)
            .with(ns, "demo")
            .with(sentence, i as u32)
            .with(tokens, s.split_whitespace().count() as u32)
            .with(next, Sparse::counts([(i as u32, 1)]))
            .with(hash, 1000 + i as u64)
    };
    let ids = {
        let store = Store::create(&dir, StoreOptions::default())?;
        let t = store.create_table("sentences", schema.clone())?;
        let rows: Vec<Row> = sentences.iter().enumerate().map(|(i, s)| row_of(i, s)).collect();
        let ids = store.insert_batch(t, rows)?;
        println!(
            "wrote {} rows (ids {:?}) to the WAL",
            ids.len(),
            ids.iter().map(|i| i.0).collect::<Vec<_>>()
        );
        store.delete(t, ids[3])?;
        println!("deleted row {}", ids[3].0);
        store.update(t, ids[1], vec![reads.add(1), next.merge(Sparse::counts([(7, 2)]))])?;
        println!("updated row {} in place: reads + 1, next-token counts merged", ids[1].0);
        let (same, inserted) = store.upsert(t, row_of(0, sentences[0]), vec![reads.add(1)])?;
        println!("upserted by hash 1000: found row {} (inserted: {inserted})", same.0);
        store.flush()?;
        let st = store.stats()?;
        println!(
            "flushed: generation {}, {} segment(s), {} live rows",
            st.generation, st.tables[0].segments, st.tables[0].live_rows
        );
        ids
    };

    let store = Store::open(&dir, StoreOptions::default())?;
    let t = store.table("sentences")?;
    println!("reopened; reading back through one snapshot:");
    let snap = store.snapshot()?;
    let view = snap.table(t)?;
    for row in view.rows() {
        println!(
            "  row {:>2}  tokens={} reads={} next={:?}  {:?}",
            row.id().0,
            row.get(tokens),
            row.get(reads),
            row.sparse(next)?.ids,
            row.text(text)?
        );
    }
    let again = view.get(ids[0]).ok_or("row 0 missing after reopen")?;
    assert_eq!(again.text(text)?, sentences[0]);
    assert_eq!(again.get(reads), 1);
    assert!(view.get(ids[3]).is_none());
    println!("row 0 read back intact with its update; deleted row stays deleted");
    drop(snap);
    drop(store);
    search_demo(&dir.with_extension("search"))?;
    generation_demo(&dir.with_extension("generate"))
}

/// The committed sample of real embeddings: 2,000 KJV verses and 100
/// held-out queries (all-MiniLM-L6-v2, 384-d), with their texts and the
/// exact top 10 of each query.
struct Sample {
    base: Vec<Vec<f32>>,
    texts: Vec<String>,
    queries: Vec<Vec<f32>>,
    query_texts: Vec<String>,
    truth: Vec<Vec<u64>>,
}

const DIM: usize = 384;

fn load_sample() -> Result<Sample, Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/kjv-sample");
    let floats = |name: &str| -> Result<Vec<Vec<f32>>, std::io::Error> {
        let bytes = std::fs::read(dir.join(name))?;
        let all: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(all.chunks_exact(DIM).map(<[f32]>::to_vec).collect())
    };
    let lines = |name: &str| -> Result<Vec<String>, std::io::Error> {
        Ok(std::fs::read_to_string(dir.join(name))?
            .lines()
            .map(str::to_string)
            .collect())
    };
    let gt = std::fs::read(dir.join("gt.i32"))?;
    let truth = gt
        .chunks_exact(40)
        .map(|q| {
            q.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
                .collect()
        })
        .collect();
    Ok(Sample {
        base: floats("base.f32")?,
        texts: lines("texts.txt")?,
        queries: floats("queries.f32")?,
        query_texts: lines("queries.txt")?,
        truth,
    })
}

/// Mean share of each query's exact top 10 that the search returned.
fn recall(store: &Store, t: engram::storage::TableId, s: &Sample, p: &SearchParams) -> engram::Result<f64> {
    let mut sum = 0.0;
    for (q, want) in s.queries.iter().zip(&s.truth) {
        let got: HashSet<u64> = store.search(t, q, 10, p)?.iter().map(|h| h.id.0).collect();
        sum += want.iter().filter(|id| got.contains(id)).count() as f64 / 10.0;
    }
    Ok(sum / s.queries.len() as f64)
}

fn search_demo(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let s = load_sample()?;
    println!(
        "\n== vector search: {} KJV verses embedded by all-MiniLM-L6-v2 ({DIM}-d), {} held-out queries",
        s.base.len(),
        s.queries.len()
    );
    let opts = StoreOptions {
        indexer: Some(Arc::new(Hnsw::default())),
        // Small memtables, so that the load flushes several segments.
        memtable_bytes: 1 << 20,
        ..StoreOptions::default()
    };
    let store = Store::create(dir, opts)?;
    let schema = Schema::builder()
        .key("key", KeySpec::new(Dim::new(DIM as u32)?))
        .text("text")
        .symbol("book")
        .build()?;
    let (key, text, book) = (schema.key("key")?, schema.text("text")?, schema.symbol("book")?);
    let t = store.create_table("verses", schema.clone())?;
    // Genesis has 1,533 verses, 15 of them held out as queries: Exodus
    // starts at row 1,518 ("Now these are the names of the children of
    // Israel, ...").
    const EXODUS: usize = 1518;
    if !s.texts[EXODUS].starts_with("Now these are the names") {
        return Err("tests/data/kjv-sample/texts.txt is not the expected sample".into());
    }
    let rows: Vec<Row> = s
        .base
        .iter()
        .zip(&s.texts)
        .enumerate()
        .map(|(i, (v, verse))| {
            let name = if i < EXODUS { "genesis" } else { "exodus" };
            Row::new(&schema)
                .with(key, v.clone())
                .with(text, verse.as_str())
                .with(book, name)
        })
        .collect();
    for chunk in rows.chunks(250) {
        store.insert_batch(t, chunk.to_vec())?;
    }
    store.flush()?;
    let stats = store.stats()?;
    let st = stats.tables[0].clone();
    println!(
        "loaded {} rows in several flushes; each flushed segment got its HNSW graph and the size-tiered \
         merge policy folded them into {} segment(s) ({} rows indexed, {} graph bytes; write amplification {:.2})",
        st.live_rows,
        st.segments,
        st.indexed_rows,
        st.index_bytes,
        (stats.bytes_flushed + stats.bytes_merged) as f64 / stats.bytes_flushed.max(1) as f64
    );
    let p = SearchParams::default();
    let show = |qi: usize, p: &SearchParams| -> engram::Result<()> {
        println!("query: {:?}", s.query_texts[qi]);
        // Each hit's columns are read in place from the search's snapshot.
        let snap = store.snapshot()?;
        for h in snap.table(t)?.search(&s.queries[qi], 3, p)? {
            println!("  {:.3}  [{}] {}", h.distance, h.row.symbol(book), h.row.text(text)?);
        }
        Ok(())
    };
    show(0, &p)?;
    println!(
        "recall@10 against exact brute force over {} graphs (ef {}): {:.3}",
        st.segments,
        p.ef,
        recall(&store, t, &s, &p)?
    );
    let report = store.optimize()?;
    let st = store.stats()?.tables[0].clone();
    println!(
        "optimize: {} segment(s) rewritten; now {} segment(s) with one graph ({} rows); recall@10: {:.3}",
        report.segments_in,
        st.segments,
        st.indexed_rows,
        recall(&store, t, &s, &p)?
    );
    println!("the same query, only in Exodus (a metadata filter):");
    show(
        0,
        &SearchParams {
            filter: Filter::eq("book", "exodus"),
            ..SearchParams::default()
        },
    )?;
    Ok(())
}

fn generation_demo(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let s = load_sample()?;
    println!(
        "\n== generation by retrieval: learn {} KJV verses, score the {} held-out ones",
        s.texts.len(),
        s.query_texts.len()
    );
    let store = Store::create(
        dir,
        StoreOptions {
            indexer: Some(Arc::new(Hnsw::default())),
            ..StoreOptions::default()
        },
    )?;
    let g = Generator::create(&store, Settings::default())?;
    // Documents of 50 verses, so traces name a passage.
    let docs: Vec<(u64, String)> = s
        .texts
        .chunks(50)
        .enumerate()
        .map(|(i, verses)| (i as u64 + 1, verses.join("\n") + "\n"))
        .collect();
    let t = std::time::Instant::now();
    let refs: Vec<(u64, &str)> = docs.iter().map(|(i, d)| (*i, d.as_str())).collect();
    let learned = g.learn(&store, &refs)?;
    store.optimize()?;
    println!(
        "learned {} documents: {} tokens, {} patterns over {} levels, graphs built, in {:.1} s",
        learned.documents,
        learned.tokens,
        learned.patterns,
        g.levels().levels().len(),
        t.elapsed().as_secs_f64()
    );
    let fit = g.fit(&store, &mut |_, _| Ok(()))?;
    println!(
        "fit on a held-out slice of the training text ({} tokens): {:.3} -> {:.3} bits per character",
        fit.heldout_tokens, fit.bpc_before, fit.bpc_after
    );
    let snap = store.snapshot()?;
    let runs = [
        ("And God said,", Sampling::default(), "greedy"),
        (
            "And the LORD",
            Sampling {
                temperature: 0.8,
                top_p: 0.9,
                seed: 3,
                ..Sampling::default()
            },
            "temperature 0.8, top_p 0.9, seed 3",
        ),
        (
            "In the beginning",
            Sampling {
                temperature: 1.0,
                top_k: 20,
                repetition_penalty: 1.3,
                seed: 11,
                ..Sampling::default()
            },
            "temperature 1, top_k 20, repetition penalty 1.3, seed 11",
        ),
    ];
    let mut first = Vec::new();
    for (prompt, sampling, how) in runs {
        let out = g.generate(
            &snap,
            prompt,
            &Request {
                max_tokens: 30,
                sampling,
                stop: vec!["\n".into()],
                ..Request::default()
            },
        )?;
        let text: String = out.iter().map(|t| t.text.as_str()).collect();
        println!("[{how}] {prompt}{text}");
        if first.is_empty() {
            first = out;
        }
    }
    // The trace of the first word generated: where it was learned.
    if let Some(tok) = first.iter().find(|t| t.text.trim().len() > 2 && !t.trace.is_empty()) {
        let top = &tok.trace[0];
        let doc = &docs[(top.doc - 1) as usize].1;
        let at: String = engram::text::tokenize(doc)
            .skip(top.pos.saturating_sub(8) as usize)
            .take(12)
            .map(|t| t.text)
            .collect();
        println!(
            "trace of {:?} (p {:.3}, strategy {}, confidence {:.2}): level {}, document {}, token {}, similarity {:.3}, share {:.3}: ...{}...",
            tok.text,
            tok.prob,
            tok.strategy.name(),
            tok.confidence,
            top.level,
            top.doc,
            top.pos,
            top.sim,
            top.share,
            at.replace('\n', " / ")
        );
    }
    let heldout = s.query_texts.join("\n") + "\n";
    for adaptive in [false, true] {
        let r = g.score(
            &snap,
            &heldout,
            ScoreMode {
                adaptive,
                per_token: false,
            },
            &mut |_, _| Ok(()),
        )?;
        println!(
            "held-out verses, {}: {} chars, {} tokens ({} never learned), {:.3} bits per character, per-token perplexity {:.1}",
            if adaptive { "adaptive" } else { "static" },
            r.chars,
            r.tokens,
            r.unknown,
            r.bits_per_char(),
            r.perplexity()
        );
    }
    model2vec_demo(dir, &refs, &heldout)
}

/// The Model2Vec model shipped in `models/` (distilled offline, nothing
/// downloaded): what it knows that spelling does not, and the same
/// generator keyed by it.
fn model2vec_demo(dir: &Path, docs: &[(u64, &str)], heldout: &str) -> Result<(), Box<dyn std::error::Error>> {
    use engram::generate::EmbedderSpec;
    use engram::text::{model2vec::default_model_dir, Embedder, HashedNgrams, Model2Vec};
    let m = Model2Vec::load(default_model_dir())?;
    let h = HashedNgrams::new(64)?;
    let cos =
        |e: &dyn Embedder, a: &str, b: &str| -> f32 { e.embed(a).iter().zip(e.embed(b)).map(|(x, y)| x * y).sum() };
    println!(
        "\n== the shipped Model2Vec model ({} dims): cos(king, queen) {:.2}, cos(king, bread) {:.2}; the hashed n-grams: {:.2}, {:.2}",
        m.dim(),
        cos(&m, "king", "queen"),
        cos(&m, "king", "bread"),
        cos(&h, "king", "queen"),
        cos(&h, "king", "bread")
    );
    let path = dir.with_extension("m2v");
    let _ = std::fs::remove_dir_all(&path);
    let store = Store::create(
        &path,
        StoreOptions {
            indexer: Some(Arc::new(Hnsw::default())),
            ..StoreOptions::default()
        },
    )?;
    let g = Generator::create(
        &store,
        Settings {
            embedder: EmbedderSpec::Model2Vec {
                dir: default_model_dir(),
            },
            ..Settings::default()
        },
    )?;
    g.learn(&store, docs)?;
    store.optimize()?;
    let r = g.score(&store.snapshot()?, heldout, ScoreMode::default(), &mut |_, _| Ok(()))?;
    println!(
        "a generator keyed by it, unfitted: held-out verses at {:.3} bits per character (static)",
        r.bits_per_char()
    );
    Ok(())
}
