//! A generator: one store holding everything a retrieval language model is
//! — its settings, the documents it learned (table `docs`, by document id),
//! the vocabulary, the pattern levels and the fitted parameters (table
//! `generator`, name to value) — behind one handle that learns, writes,
//! scores and fits.
//!
//! The settings are fixed when the generator is created and recorded in the
//! store; opening reads them back, so a generator always keys, embeds and
//! counts as it did when it learned.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::context::ContextKeyer;
use super::generator::{GeneratedToken, Request};
use super::levels::{Document, Levels, DEFAULT_LENGTHS};
use super::predict::{Order0, Params};
use super::score::{Score, ScoreMode};
use super::smooth::{Base, Discount};
use super::strategy::Strategy;
use crate::derived::Deriver;
use crate::error::{Error, Result};
use crate::storage::{FixedCol, FixedType, Row, Schema, Snapshot, Store, TableId, TextCol, Value, WriteBatch};
use crate::text::embed::{Embedder, HashedNgrams};
use crate::text::model2vec::Model2Vec;
use crate::text::tokenize;
use crate::text::vocab::{TokenId, Vocabulary};

/// Which embedder a generator keys its contexts with.
#[derive(Clone, Debug, PartialEq)]
pub enum EmbedderSpec {
    /// The built-in hashed character n-gram embedder of this dimension.
    Hashed {
        /// Its dimension (8 to 65 536).
        dim: usize,
    },
    /// A Model2Vec static model in this directory ([`Model2Vec`]); the
    /// project's default is
    /// [`default_model_dir`](crate::text::model2vec::default_model_dir).
    Model2Vec {
        /// The model's directory.
        dir: std::path::PathBuf,
    },
}

impl EmbedderSpec {
    /// The embedder.
    pub fn build(&self) -> Result<Arc<dyn Embedder>> {
        match self {
            EmbedderSpec::Hashed { dim } => Ok(Arc::new(HashedNgrams::new(*dim)?)),
            EmbedderSpec::Model2Vec { dir } => Ok(Arc::new(Model2Vec::load(dir)?)),
        }
    }

    fn encode(&self) -> String {
        match self {
            EmbedderSpec::Hashed { dim } => format!("hashed:{dim}"),
            EmbedderSpec::Model2Vec { dir } => format!("model2vec:{}", dir.display()),
        }
    }

    fn decode(s: &str) -> Result<EmbedderSpec> {
        match s.split_once(':') {
            Some(("hashed", d)) => Ok(EmbedderSpec::Hashed {
                dim: d.parse().map_err(|_| bad_setting("embedder", s))?,
            }),
            Some(("model2vec", dir)) if !dir.is_empty() => Ok(EmbedderSpec::Model2Vec { dir: dir.into() }),
            _ => Err(bad_setting("embedder", s)),
        }
    }
}

fn bad_setting(name: &str, value: &str) -> Error {
    Error::InvalidArgument(format!("setting {name}: {value:?} is not valid"))
}

/// What a generator is built with.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Context lengths of the pattern levels (default 1, 2, 3, 4, 6, 8).
    pub lengths: Vec<usize>,
    /// The embedder.
    pub embedder: EmbedderSpec,
    /// Weight ratio of each offset to the next nearer in context keys.
    pub key_decay: f32,
    /// Seed of the context keys' permutations and of the fitting slice.
    pub seed: u64,
    /// Share of the documents fitting holds out (by a seeded hash of their
    /// ids), in (0, 1).
    pub heldout_fraction: f64,
    /// Tokens fitting scores at most.
    pub heldout_tokens: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lengths: DEFAULT_LENGTHS.to_vec(),
            embedder: EmbedderSpec::Hashed { dim: 64 },
            key_decay: 0.8,
            seed: 0,
            heldout_fraction: 0.1,
            heldout_tokens: 20_000,
        }
    }
}

impl Settings {
    fn encode(&self) -> Vec<(String, String)> {
        let lengths: Vec<String> = self.lengths.iter().map(|r| r.to_string()).collect();
        [
            ("lengths", lengths.join(",")),
            ("embedder", self.embedder.encode()),
            ("key_decay", self.key_decay.to_string()),
            ("seed", self.seed.to_string()),
            ("heldout_fraction", self.heldout_fraction.to_string()),
            ("heldout_tokens", self.heldout_tokens.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("setting.{k}"), v))
        .collect()
    }

    fn decode(kv: &HashMap<String, String>) -> Result<Settings> {
        let get = |k: &str| {
            kv.get(&format!("setting.{k}"))
                .ok_or_else(|| Error::InvalidArgument(format!("the generator records no setting {k}")))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.parse().map_err(|_| bad_setting(k, v))
        }
        let lengths = get("lengths")?;
        Settings {
            lengths: lengths.split(',').map(|r| num("lengths", r)).collect::<Result<_>>()?,
            embedder: EmbedderSpec::decode(get("embedder")?)?,
            key_decay: num("key_decay", get("key_decay")?)?,
            seed: num("seed", get("seed")?)?,
            heldout_fraction: num("heldout_fraction", get("heldout_fraction")?)?,
            heldout_tokens: num("heldout_tokens", get("heldout_tokens")?)?,
        }
        .checked()
    }

    /// Check the settings.
    pub fn checked(self) -> Result<Settings> {
        let longest = self.lengths.iter().copied().max().unwrap_or(0);
        if self.lengths.is_empty() || longest > 64 {
            return Err(Error::InvalidArgument(format!(
                "levels {:?}: one to many context lengths of 1 to 64 are required",
                self.lengths
            )));
        }
        if !(self.heldout_fraction > 0.0 && self.heldout_fraction < 1.0) || self.heldout_tokens == 0 {
            return Err(Error::InvalidArgument(format!(
                "heldout_fraction {} must lie in (0, 1) and heldout_tokens {} be positive",
                self.heldout_fraction, self.heldout_tokens
            )));
        }
        Ok(self)
    }
}

impl Params {
    /// Every parameter as a (name, number) pair (a bin's strategy by its
    /// index): how a store, or a catalog, records them.
    pub fn to_pairs(&self) -> Vec<(String, f64)> {
        encode_params(self)
    }

    /// The parameters recorded as `pairs` (the defaults where none are),
    /// checked for `levels` levels.
    pub fn from_pairs(pairs: &HashMap<String, f64>, levels: usize) -> Result<Params> {
        decode_params(pairs, levels)
    }
}

fn encode_params(p: &Params) -> Vec<(String, f64)> {
    let mut kv = vec![("param.beta".to_string(), p.beta)];
    for (i, d) in p.discounts.iter().enumerate() {
        for (k, x) in d.0.iter().enumerate() {
            kv.push((format!("param.discount.{i}.{}", k + 1), *x));
        }
    }
    for (j, pi) in p.pi.iter().enumerate() {
        kv.push((format!("param.pi.{j}"), *pi));
    }
    for s in Strategy::ALL {
        let sp = p.strategies.of(s);
        let n = s.name();
        kv.extend([
            (format!("param.{n}.k"), sp.k as f64),
            (format!("param.{n}.tau"), sp.tau),
            (format!("param.{n}.ef"), sp.ef as f64),
            (format!("param.{n}.position_weight"), sp.position_weight),
            (format!("param.{n}.alpha"), sp.alpha),
            (format!("param.{n}.max_r"), sp.max_r as f64),
        ]);
    }
    for (i, s) in p.strategies.bins.iter().enumerate() {
        kv.push((format!("param.bin.{i}"), s.index() as f64));
    }
    kv
}

/// The name under which a generator keeps how many (context, token) pairs
/// of order `order` (0: the vocabulary) are counted exactly `k` times.
fn counts_of_counts_key(order: usize, k: usize) -> String {
    format!("coc.{order}.{k}")
}

/// The parameters recorded in `kv` (the defaults where none are).
fn decode_params(kv: &HashMap<String, f64>, levels: usize) -> Result<Params> {
    let mut p = Params::default();
    let f = |k: &str, into: &mut f64| {
        if let Some(v) = kv.get(k) {
            *into = *v;
        }
    };
    let u = |k: &str, into: &mut usize| {
        if let Some(v) = kv.get(k) {
            *into = *v as usize;
        }
    };
    f("param.beta", &mut p.beta);
    if kv.contains_key("param.discount.0.1") {
        p.discounts = vec![Discount::DEFAULT; levels + 1];
        for (i, d) in p.discounts.iter_mut().enumerate() {
            for (k, x) in d.0.iter_mut().enumerate() {
                f(&format!("param.discount.{i}.{}", k + 1), x);
            }
        }
    }
    if kv.contains_key("param.pi.0") {
        p.pi = vec![1.0; levels];
        for (j, pi) in p.pi.iter_mut().enumerate() {
            f(&format!("param.pi.{j}"), pi);
        }
    }
    for s in Strategy::ALL {
        let n = s.name();
        let sp = &mut p.strategies.params[s.index()];
        u(&format!("param.{n}.k"), &mut sp.k);
        f(&format!("param.{n}.tau"), &mut sp.tau);
        u(&format!("param.{n}.ef"), &mut sp.ef);
        f(&format!("param.{n}.position_weight"), &mut sp.position_weight);
        f(&format!("param.{n}.alpha"), &mut sp.alpha);
        u(&format!("param.{n}.max_r"), &mut sp.max_r);
    }
    for (i, bin) in p.strategies.bins.iter_mut().enumerate() {
        if let Some(&v) = kv.get(&format!("param.bin.{i}")) {
            *bin = *Strategy::ALL
                .get(v as usize)
                .ok_or_else(|| Error::InvalidArgument(format!("bin {i}: no strategy {v}")))?;
        }
    }
    p.checked(levels)?;
    Ok(p)
}

/// What learning wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Documents learned.
    pub documents: u64,
    /// Their tokens.
    pub tokens: u64,
    /// Patterns (context occurrences) counted over all levels.
    pub patterns: u64,
}

/// One level as [`Generator::levels_info`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelInfo {
    /// Context length.
    pub r: usize,
    /// Pattern occurrences counted (the sum of every context's counts).
    pub patterns: u64,
    /// Distinct contexts (rows).
    pub contexts: u64,
    /// Bytes of the level's segment files.
    pub bytes: u64,
    /// Rows searched through a graph, and all rows of sealed segments.
    pub indexed_rows: u64,
    /// Rows not yet in a sealed segment (searched by brute force).
    pub unsealed_rows: u64,
}

/// A retrieval language model in a store (see the module documentation).
///
/// ```
/// use engram::generate::model::{Generator, Settings};
/// use engram::generate::{Request, ScoreMode};
/// use engram::storage::{Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("g"), StoreOptions::default()).unwrap();
/// let g = Generator::create(&store, Settings::default()).unwrap();
/// g.learn(&store, &[(1, "the cat sat on the mat. the dog sat on the log.")]).unwrap();
/// let snap = store.snapshot().unwrap();
/// let out = g.generate(&snap, "the dog", &Request { max_tokens: 3, ..Request::default() }).unwrap();
/// assert_eq!(out.iter().map(|t| t.text.as_str()).collect::<String>(), " sat on the");
/// let s = g.score(&snap, "the cat sat", ScoreMode::default(), &mut |_, _| Ok(())).unwrap();
/// assert!(s.bits_per_char() > 0.0);
/// ```
pub struct Generator {
    settings: Settings,
    embedder: Arc<dyn Embedder>,
    vocab: Vocabulary,
    levels: Levels,
    docs: TableId,
    doc_id: FixedCol<u64>,
    body: TextCol,
    kv: TableId,
    kv_name: TextCol,
    kv_text: TextCol,
    kv_number: FixedCol<f64>,
    /// Order 0 as of a snapshot version: read once per change, not per call.
    base: Mutex<Option<(u64, Arc<Base>)>>,
    /// Every learned token's `P_0`, sorted, as of a version and an order-0
    /// discount: what each generation step merges with.
    order0: Mutex<Option<(u64, Discount, Arc<Order0>)>>,
}

/// Table `generator`: settings are texts, written once at creation;
/// parameters are numbers, updated in place by each fit.
fn kv_schema() -> Result<Schema> {
    Schema::builder()
        .text("name")
        .text("text")
        .fixed("number", FixedType::F64)
        .unique("name")
        .build()
}

/// Table `docs` of a generator: each learned document's id (unique) and text.
pub fn docs_schema() -> Result<Schema> {
    Schema::builder()
        .fixed(DOC_ID, FixedType::U64)
        .text("body")
        .unique(DOC_ID)
        .build()
}

/// The column of `docs` that holds document ids.
pub const DOC_ID: &str = "id";

impl Generator {
    /// Make `store` a generator with `settings` (it must hold no generator).
    pub fn create(store: &Store, settings: Settings) -> Result<Generator> {
        let settings = settings.checked()?;
        if store.table("generator").is_ok() {
            return Err(Error::InvalidArgument("the store already holds a generator".into()));
        }
        let kv = store.create_table("generator", kv_schema()?)?;
        match store.table("docs") {
            // A derived copy makes its source table first.
            Ok(t) if *store.schema(t)? == docs_schema()? => {}
            Ok(_) => return Err(Error::InvalidArgument("table docs is not a generator's".into())),
            Err(Error::NoSuchTable(_)) => {
                store.create_table("docs", docs_schema()?)?;
            }
            Err(e) => return Err(e),
        }
        let g = Generator::assemble(store, kv, settings)?;
        g.write_settings(store)?;
        Ok(g)
    }

    /// The generator of `store`, with the settings it was created with.
    pub fn open(store: &Store) -> Result<Generator> {
        let kv = store.table("generator").map_err(|e| match e {
            Error::NoSuchTable(_) => Error::InvalidArgument("the store holds no generator".into()),
            e => e,
        })?;
        let schema = kv_schema()?;
        let (name, text) = (schema.text("name")?, schema.text("text")?);
        let snap = store.snapshot()?;
        let rows = snap
            .table(kv)?
            .rows()
            .map(|r| Ok((r.text(name)?.into_owned(), r.text(text)?.into_owned())))
            .collect::<Result<HashMap<_, _>>>()?;
        Generator::assemble(store, kv, Settings::decode(&rows)?)
    }

    fn assemble(store: &Store, kv: TableId, settings: Settings) -> Result<Generator> {
        let embedder = settings.embedder.build()?;
        let dim = embedder.dim();
        let vocab = Vocabulary::open_or_create(store, embedder.clone())?;
        let longest = settings.lengths.iter().copied().max().unwrap_or(1);
        let keyer = ContextKeyer::new(dim, longest, settings.key_decay, settings.seed)?;
        let levels = Levels::open_or_create(store, keyer, dim, &settings.lengths)?;
        let (kvs, docs) = (kv_schema()?, docs_schema()?);
        Ok(Generator {
            embedder,
            vocab,
            levels,
            docs: store.table("docs")?,
            doc_id: docs.fixed(DOC_ID)?,
            body: docs.text("body")?,
            kv,
            kv_name: kvs.text("name")?,
            kv_text: kvs.text("text")?,
            kv_number: kvs.fixed("number")?,
            base: Mutex::new(None),
            order0: Mutex::new(None),
            settings,
        })
    }

    fn write_settings(&self, store: &Store) -> Result<()> {
        let schema = store.schema(self.kv)?;
        let mut b = WriteBatch::new();
        for (k, v) in self.settings.encode() {
            b.append(self.kv, Row::new(&schema).with(self.kv_name, k).with(self.kv_text, v));
        }
        store.write(b)?;
        Ok(())
    }

    fn read_numbers(&self, snap: &Snapshot) -> Result<HashMap<String, f64>> {
        snap.table(self.kv)?
            .rows()
            .filter(|r| r.text(self.kv_text).is_ok_and(|t| t.is_empty()))
            .map(|r| Ok((r.text(self.kv_name)?.into_owned(), r.get(self.kv_number))))
            .collect()
    }

    /// The settings it was created with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its embedder.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Its vocabulary.
    pub fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    /// Its pattern levels.
    pub fn levels(&self) -> &Levels {
        &self.levels
    }

    /// Learn documents `(id, text)` (ids not learned before, distinct) in
    /// two atomic writes: the vocabulary first (for the token ids), then
    /// the patterns with the documents themselves. A crash between the two
    /// leaves token counts raised for documents that are not recorded, and
    /// nothing else: the documents can be learned again.
    pub fn learn(&self, store: &Store, docs: &[(u64, &str)]) -> Result<Learned> {
        self.learn_at(store, docs, None)
    }

    /// [`Generator::learn`], the second write also setting the store's
    /// watermark to `watermark` (a derived copy's).
    pub fn learn_at(&self, store: &Store, docs: &[(u64, &str)], watermark: Option<u64>) -> Result<Learned> {
        let snap = store.snapshot()?;
        let t = snap.table(self.docs)?;
        let mut seen = std::collections::HashSet::new();
        for &(id, _) in docs {
            if t.find(&Value::UInt(id))?.is_some() || !seen.insert(id) {
                return Err(Error::InvalidArgument(format!("document {id} is already learned")));
            }
        }
        let tokenized: Vec<Vec<&str>> = docs
            .iter()
            .map(|(_, text)| tokenize(text).map(|t| t.text).collect())
            .collect();
        let all: Vec<&str> = tokenized.iter().flatten().copied().collect();
        let ids = self.vocab.learn(store, &all)?;
        let mut embedded: HashMap<&str, Vec<f32>> = HashMap::new();
        for w in &all {
            embedded.entry(w).or_insert_with(|| self.embedder.embed(w));
        }
        let embs: Vec<Vec<&[f32]>> = tokenized
            .iter()
            .map(|words| words.iter().map(|w| embedded[w].as_slice()).collect())
            .collect();
        let mut at = 0;
        let mut views = Vec::with_capacity(docs.len());
        for ((id, _), e) in docs.iter().zip(&embs) {
            views.push(Document {
                id: *id,
                tokens: &ids[at..at + e.len()],
                embeddings: e,
            });
            at += e.len();
        }
        let learning = self.levels.learning(store, &self.vocab, &views)?;
        let (mut b, patterns) = (learning.batch, learning.counted);
        let kv_schema = store.schema(self.kv)?;
        for (i, n) in learning.counts_of_counts.iter().enumerate() {
            for (k, &d) in n.iter().enumerate().filter(|x| *x.1 != 0) {
                let row = Row::new(&kv_schema)
                    .with(self.kv_name, counts_of_counts_key(i, k + 1))
                    .with(self.kv_number, d as f64);
                b.upsert(self.kv, row, vec![self.kv_number.add(d as f64)]);
            }
        }
        let schema = store.schema(self.docs)?;
        for &(id, text) in docs {
            b.append(self.docs, Row::new(&schema).with(self.doc_id, id).with(self.body, text));
        }
        if let Some(w) = watermark {
            b.set_watermark(w);
        }
        store.write(b)?;
        Ok(Learned {
            documents: docs.len() as u64,
            tokens: all.len() as u64,
            patterns: patterns as u64,
        })
    }

    /// Every learned document's id and text, by id.
    pub fn documents(&self, snap: &Snapshot) -> Result<Vec<(u64, String)>> {
        let mut docs: Vec<(u64, String)> = snap
            .table(self.docs)?
            .rows()
            .map(|r| Ok((r.get(self.doc_id), r.text(self.body)?.into_owned())))
            .collect::<Result<_>>()?;
        docs.sort_by_key(|d| d.0);
        Ok(docs)
    }

    /// The parameters in use: the fitted ones, else the defaults (with
    /// the discounts estimated from the store's counts, see
    /// [`Generator::in_use`]).
    pub fn params(&self, snap: &Snapshot) -> Result<Params> {
        // One read of the table serves both the record and the estimate.
        let kv = self.read_numbers(snap)?;
        let recorded = decode_params(&kv, self.levels.levels().len())?;
        Ok(self.estimated(&kv, &recorded, None))
    }

    /// The parameters recorded in the store (no discounts when unfitted).
    pub(crate) fn recorded_params(&self, snap: &Snapshot) -> Result<Params> {
        decode_params(&self.read_numbers(snap)?, self.levels.levels().len())
    }

    /// `params` as a call uses them: when they give no discounts, each
    /// order's are estimated from its counts of counts in `snap`, as
    /// Kneser-Ney does (Chen & Goodman), and the fixed default stands where
    /// the counts are too few to say.
    pub fn in_use(&self, snap: &Snapshot, params: &Params) -> Result<Params> {
        self.in_use_less(snap, params, None)
    }

    /// [`Generator::in_use`] with the counts of counts changed by `delta`
    /// (per order, as `Overlay::counts_of_counts` gives it): what the
    /// store would estimate without text an overlay took back.
    pub(crate) fn in_use_less(&self, snap: &Snapshot, params: &Params, delta: Option<&[[i64; 4]]>) -> Result<Params> {
        if !params.discounts.is_empty() {
            return Ok(params.clone());
        }
        Ok(self.estimated(&self.read_numbers(snap)?, params, delta))
    }

    /// `params`, with the discounts estimated from the counts of counts in
    /// `kv` (changed by `delta`) when it gives none.
    fn estimated(&self, kv: &HashMap<String, f64>, params: &Params, delta: Option<&[[i64; 4]]>) -> Params {
        if !params.discounts.is_empty() {
            return params.clone();
        }
        let discounts = (0..=self.levels.levels().len())
            .map(|i| {
                let n = [1, 2, 3, 4].map(|k| {
                    let stored = kv.get(&counts_of_counts_key(i, k)).copied().unwrap_or(0.0);
                    stored + delta.and_then(|d| d.get(i)).map_or(0.0, |d| d[k - 1] as f64)
                });
                Discount::estimate(n).unwrap_or(Discount::DEFAULT)
            })
            .collect();
        Params {
            discounts,
            ..params.clone()
        }
    }

    /// Record `params` (checked) as the parameters in use.
    pub fn set_params(&self, store: &Store, params: &Params) -> Result<()> {
        params.checked(self.levels.levels().len())?;
        let schema = store.schema(self.kv)?;
        let mut b = WriteBatch::new();
        for (k, v) in encode_params(params) {
            let row = Row::new(&schema).with(self.kv_name, k).with(self.kv_number, v);
            b.upsert(self.kv, row, vec![self.kv_number.set(v)]);
        }
        store.write(b)?;
        Ok(())
    }

    /// Order 0 as of `snap`, read once per version of the store.
    pub(crate) fn base(&self, snap: &Snapshot) -> Result<Arc<Base>> {
        let mut cached = self.base.lock();
        if let Some((v, b)) = cached.as_ref() {
            if *v == snap.version() {
                return Ok(b.clone());
            }
        }
        let b = Arc::new(Base::read(snap, &self.vocab)?);
        *cached = Some((snap.version(), b.clone()));
        Ok(b)
    }

    /// Continue `prompt` with the parameters in use.
    pub fn generate(&self, snap: &Snapshot, prompt: &str, req: &Request) -> Result<Vec<GeneratedToken>> {
        self.generate_with(snap, &self.params(snap)?, prompt, req)
    }

    /// Continue `prompt` under `params`.
    pub fn generate_with(
        &self,
        snap: &Snapshot,
        params: &Params,
        prompt: &str,
        req: &Request,
    ) -> Result<Vec<GeneratedToken>> {
        params.checked(self.levels.levels().len())?;
        let params = &self.in_use(snap, params)?;
        let d = params.discounts_for(self.levels.levels().len())[0];
        let order0 = {
            let mut cached = self.order0.lock();
            match cached.as_ref() {
                Some((v, cd, o)) if *v == snap.version() && *cd == d => o.clone(),
                _ => {
                    let o = Arc::new(Order0::new(&*self.base(snap)?, d));
                    *cached = Some((snap.version(), d, o.clone()));
                    o
                }
            }
        };
        self.levels
            .generate_from(snap, &self.vocab, &order0, &*self.embedder, params, prompt, req)
    }

    /// Score `text` with the parameters in use (see [`Levels::score`]).
    pub fn score(
        &self,
        snap: &Snapshot,
        text: &str,
        mode: ScoreMode,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Score> {
        self.score_with(snap, &self.params(snap)?, text, mode, progress)
    }

    /// Score `text` under `params`.
    pub fn score_with(
        &self,
        snap: &Snapshot,
        params: &Params,
        text: &str,
        mode: ScoreMode,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Score> {
        params.checked(self.levels.levels().len())?;
        let params = &self.in_use(snap, params)?;
        let base = self.base(snap)?;
        self.levels
            .score_from(snap, &self.vocab, &base, &*self.embedder, params, text, mode, progress)
    }

    /// Each level's size and graph state.
    pub fn levels_info(&self, store: &Store) -> Result<Vec<LevelInfo>> {
        let snap = store.snapshot()?;
        let stats = store.stats()?;
        let mut out = Vec::new();
        for l in self.levels.levels() {
            let t = snap.table(l.table)?;
            let mut patterns = 0u64;
            for row in t.rows() {
                let p = self.levels.pattern_of(l, &row)?;
                patterns += p.next.iter().map(|x| u64::from(x.1)).sum::<u64>();
            }
            let st = stats.tables.iter().find(|s| s.info.id == l.table);
            out.push(LevelInfo {
                r: l.r,
                patterns,
                contexts: t.len() as u64,
                bytes: st.map_or(0, |s| s.segment_bytes),
                indexed_rows: st.map_or(0, |s| s.indexed_rows),
                unsealed_rows: st.map_or(0, |s| s.memtable_rows),
            });
        }
        Ok(out)
    }

    /// Whether document `id` is learned.
    pub fn has_document(&self, snap: &Snapshot, id: u64) -> Result<bool> {
        Ok(snap.table(self.docs)?.find(&Value::UInt(id))?.is_some())
    }

    /// The id of a learned token, if any.
    pub fn token_id(&self, snap: &Snapshot, text: &str) -> Result<Option<TokenId>> {
        self.vocab.id(snap, text)
    }
}

/// A generator as a derived copy of its documents ([`crate::derived`]):
/// the copy's table is `docs` ([`docs_schema`]), and learning them is what
/// derives the rest.
pub struct GeneratorCopy {
    settings: Settings,
}

impl GeneratorCopy {
    /// Copies made with `settings`.
    pub fn new(settings: Settings) -> Result<GeneratorCopy> {
        Ok(GeneratorCopy {
            settings: settings.checked()?,
        })
    }
}

/// Bytes of document text learned per write by a derived copy.
const COPY_BYTES: usize = 4 << 20;

impl Deriver for GeneratorCopy {
    fn create(&self, store: &Store) -> Result<()> {
        Generator::create(store, self.settings.clone()).map(|_| ())
    }

    fn insert(&self, store: &Store, rows: Vec<(u64, Row)>, watermark: u64, cancelled: &dyn Fn() -> bool) -> Result<()> {
        let g = Generator::open(store)?;
        if g.settings != self.settings {
            return Err(Error::InvalidArgument(
                "the copy was made with other generator settings".into(),
            ));
        }
        let body = docs_schema()?.text("body")?;
        let mut docs: Vec<(u64, String)> = Vec::with_capacity(rows.len());
        for (id, row) in rows {
            let text = match row.get(body.0) {
                Value::Str(s) => s.clone(),
                _ => String::new(),
            };
            docs.push((id, text));
        }
        // Whole documents per write, about COPY_BYTES of text each; the last
        // write (an empty one when there are no documents) sets the watermark.
        let mut chunks: Vec<Vec<(u64, &str)>> = vec![Vec::new()];
        let mut bytes = 0;
        for (id, text) in &docs {
            let last = chunks.last_mut().expect("never empty");
            if !last.is_empty() && bytes + text.len() > COPY_BYTES {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += text.len();
            chunks.last_mut().expect("never empty").push((*id, text.as_str()));
        }
        let n = chunks.len();
        for (i, chunk) in chunks.iter().enumerate() {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            g.learn_at(store, chunk, (i + 1 == n).then_some(watermark))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    const DOCS: [&str; 3] = [
        "the cat sat on the mat. the dog sat on the log.",
        "a cat and a dog ran to the mat, and the cat sat.",
        "the dog ran. the cat ran. the end.",
    ];

    fn bits(g: &Generator, store: &Store, text: &str) -> f64 {
        g.score(&store.snapshot().unwrap(), text, ScoreMode::default(), &mut |_, _| {
            Ok(())
        })
        .unwrap()
        .bits
    }

    /// Counts of counts by brute force over everything stored: the
    /// vocabulary's continuation counts, each lower level's continuation
    /// counts, the longest level's raw counts.
    fn counts_of_counts_scanned(g: &Generator, snap: &Snapshot) -> Vec<[f64; 4]> {
        let mut out = vec![[0.0; 4]; g.levels.levels().len() + 1];
        let mut bump = |i: usize, c: u64| {
            if (1..=4).contains(&c) {
                out[i][c as usize - 1] += 1.0;
            }
        };
        for (_, _, c) in g.vocab.tokens(snap).unwrap() {
            bump(0, c);
        }
        let top = g.levels.levels().len() - 1;
        for (j, l) in g.levels.levels().iter().enumerate() {
            for row in snap.table(l.table).unwrap().rows() {
                let p = g.levels.pattern_of(l, &row).unwrap();
                for (_, c) in if j == top { p.next } else { p.cont } {
                    bump(j + 1, u64::from(c));
                }
            }
        }
        out
    }

    #[test]
    fn counts_of_counts_follow_learning_and_set_the_default_discounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("g"), StoreOptions::default()).unwrap();
        let g = Generator::create(
            &store,
            Settings {
                lengths: vec![1, 2, 3],
                embedder: EmbedderSpec::Hashed { dim: 16 },
                ..Settings::default()
            },
        )
        .unwrap();
        let corpus = crate::generate::testing::corpus(400, 7);
        // Batches of different sizes: the counts of counts are a function
        // of the final counts, however they were reached.
        let mut id = 0;
        for chunk in [&corpus[..40], &corpus[40..41], &corpus[41..]] {
            let docs: Vec<(u64, &str)> = chunk
                .iter()
                .map(|t| {
                    id += 1;
                    (id, t.as_str())
                })
                .collect();
            g.learn(&store, &docs).unwrap();
            let snap = store.snapshot().unwrap();
            let kv = g.read_numbers(&snap).unwrap();
            let want = counts_of_counts_scanned(&g, &snap);
            for (i, n) in want.iter().enumerate() {
                for k in 1..=4 {
                    let got = kv.get(&counts_of_counts_key(i, k)).copied().unwrap_or(0.0);
                    assert_eq!(got, n[k - 1], "order {i}, n{k}, after {id} documents");
                }
            }
            let d = g.params(&snap).unwrap().discounts;
            for (i, n) in want.iter().enumerate() {
                assert_eq!(d[i], Discount::estimate(*n).unwrap_or(Discount::DEFAULT), "order {i}");
            }
        }
        let d = g.params(&store.snapshot().unwrap()).unwrap().discounts;
        // (24 words, each following many contexts: order 0 has no small
        // counts to estimate from.)
        assert!(
            d[1..].iter().all(|x| *x != Discount::DEFAULT),
            "enough counts to estimate: {d:?}"
        );
    }

    #[test]
    fn a_model2vec_generator_records_its_model_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        for f in ["tokenizer.json", "config.json", "model.safetensors"] {
            std::fs::copy(crate::text::model2vec::default_model_dir().join(f), model.join(f)).unwrap();
        }
        let settings = Settings {
            lengths: vec![1, 2],
            embedder: EmbedderSpec::Model2Vec { dir: model.clone() },
            ..Settings::default()
        };
        let path = dir.path().join("g");
        let probe = "the dog sat on the log.";
        let before = {
            let store = Store::create(&path, StoreOptions::default()).unwrap();
            let g = Generator::create(&store, settings.clone()).unwrap();
            assert_eq!(g.embedder().dim(), 128);
            g.learn(&store, &[(1, DOCS[0]), (2, DOCS[1])]).unwrap();
            bits(&g, &store, probe)
        };
        assert!(before.is_finite() && before > 0.0);
        {
            let store = Store::open(&path, StoreOptions::default()).unwrap();
            let g = Generator::open(&store).unwrap();
            assert_eq!(g.settings(), &settings);
            assert_eq!(bits(&g, &store, probe), before);
        }
        // The same directory holding other rows is another embedder.
        let m = Model2Vec::load(&model).unwrap();
        let mut st = std::fs::read(model.join("model.safetensors")).unwrap();
        let last = st.len() - 1;
        st[last] ^= 0x01;
        std::fs::write(model.join("model.safetensors"), st).unwrap();
        assert_ne!(Model2Vec::load(&model).unwrap().id(), m.id());
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let Err(e) = Generator::open(&store) else {
            panic!("opened with another model")
        };
        assert!(e.to_string().contains("embedder"), "{e}");
        // A missing model is the model's error, not a panic.
        std::fs::remove_dir_all(&model).unwrap();
        assert!(matches!(Generator::open(&store), Err(Error::Io { .. })));
    }

    #[test]
    fn a_generator_keeps_its_settings_documents_and_parameters_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        let settings = Settings {
            lengths: vec![1, 2, 4],
            embedder: EmbedderSpec::Hashed { dim: 48 },
            seed: 3,
            ..Settings::default()
        };
        let probe = "the cat ran on the log, and the zebra sat.";
        let (before, params) = {
            let store = Store::create(&path, StoreOptions::default()).unwrap();
            let g = Generator::create(&store, settings.clone()).unwrap();
            assert!(Generator::create(&store, Settings::default()).is_err());
            let l = g.learn(&store, &[(10, DOCS[0]), (11, DOCS[1])]).unwrap();
            let n = |t: &str| tokenize(t).count() as u64;
            assert_eq!((l.documents, l.tokens), (2, n(DOCS[0]) + n(DOCS[1])));
            g.learn(&store, &[(12, DOCS[2])]).unwrap();
            assert!(g.learn(&store, &[(11, "again")]).is_err(), "a document is learned once");
            assert!(g.learn(&store, &[(20, "x"), (20, "y")]).is_err());
            let snap = store.snapshot().unwrap();
            let in_use = g.params(&snap).unwrap();
            assert_eq!(in_use.discounts.len(), 4, "estimated, one per order");
            assert_eq!(
                Params {
                    discounts: vec![],
                    ..in_use
                },
                Params::default()
            );
            let mut p = Params {
                discounts: vec![Discount([0.5, 0.9, 1.2]); 4],
                ..Params::default()
            };
            p.pi = vec![0.5, 1.0, 2.0];
            p.strategies.params[1].alpha = 0.35;
            p.strategies.bins[3] = Strategy::Broad;
            g.set_params(&store, &p).unwrap();
            assert_eq!(g.params(&store.snapshot().unwrap()).unwrap(), p);
            p.beta = -1.0;
            assert!(g.set_params(&store, &p).is_err());
            (bits(&g, &store, probe), g.params(&store.snapshot().unwrap()).unwrap())
        };
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let g = Generator::open(&store).unwrap();
        assert_eq!(g.settings(), &settings);
        let snap = store.snapshot().unwrap();
        assert_eq!(g.params(&snap).unwrap(), params);
        assert_eq!(bits(&g, &store, probe), before, "the same store scores the same");
        let docs = g.documents(&snap).unwrap();
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![10, 11, 12]);
        assert_eq!(docs[2].1, DOCS[2]);
        // Learning the documents one by one counts the same as in one batch.
        let other = Store::create(dir.path().join("h"), StoreOptions::default()).unwrap();
        let h = Generator::create(&other, settings).unwrap();
        for (i, d) in DOCS.iter().enumerate() {
            h.learn(&other, &[(10 + i as u64, d)]).unwrap();
        }
        h.set_params(&other, &params).unwrap();
        assert!((bits(&h, &other, probe) - before).abs() < 1e-9);
        let info = g.levels_info(&store).unwrap();
        assert_eq!(info.iter().map(|l| l.r).collect::<Vec<_>>(), vec![1, 2, 4]);
        // Level r counts every position past r of each document.
        let tokens: Vec<u64> = DOCS.iter().map(|t| tokenize(t).count() as u64).collect();
        for l in &info {
            assert_eq!(l.patterns, tokens.iter().map(|t| t - l.r as u64).sum::<u64>());
            assert!(l.contexts > 0 && l.contexts <= l.patterns);
        }
        let empty = Store::create(dir.path().join("e"), StoreOptions::default()).unwrap();
        assert!(Generator::open(&empty).is_err());
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;
    use crate::derived::{Change, CopySpec, DerivedCopy, RoleWait, RowSource, Step, Turn};
    use crate::storage::StoreOptions;
    use std::collections::BTreeMap;

    struct Docs(BTreeMap<u64, String>);

    fn doc_row(text: &str) -> Row {
        let s = docs_schema().unwrap();
        Row::new(&s).with(s.text("body").unwrap(), text)
    }

    impl RowSource for Docs {
        fn ids(&mut self) -> Result<Vec<u64>> {
            Ok(self.0.keys().copied().collect())
        }
        fn rows(&mut self, only: Option<&[u64]>, each: &mut dyn FnMut(u64, Row) -> Result<()>) -> Result<()> {
            let ids: Vec<u64> = only.map_or_else(|| self.0.keys().copied().collect(), <[u64]>::to_vec);
            for id in ids {
                each(id, doc_row(&self.0[&id]))?;
            }
            Ok(())
        }
    }

    const WAIT: RoleWait<'static> = RoleWait {
        timeout: std::time::Duration::from_secs(5),
        cancelled: &|| false,
    };
    const NOW: Turn = Turn {
        waits: 0,
        pause: std::time::Duration::from_millis(1),
    };

    fn bits(store: &Store, text: &str) -> f64 {
        let g = Generator::open(store).unwrap();
        g.score(&store.snapshot().unwrap(), text, ScoreMode::default(), &mut |_, _| {
            Ok(())
        })
        .unwrap()
        .bits
    }

    #[test]
    fn a_generator_is_a_derived_copy_of_its_documents() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            lengths: vec![1, 2, 3],
            ..Settings::default()
        };
        let spec = CopySpec {
            tag: "gen-1".into(),
            table: "docs".into(),
            schema: docs_schema().unwrap(),
            source_id: DOC_ID.into(),
            deriver: Some(Arc::new(GeneratorCopy::new(settings.clone()).unwrap())),
        };
        let texts = ["the cat sat on the mat.", "the dog sat on the log.", "a cat ran."];
        let mut src = Docs(
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| (i as u64 + 1, t.to_string()))
                .collect(),
        );
        let path = dir.path().join("copy");
        let (copy, done) = DerivedCopy::rebuild(&path, StoreOptions::reader(), &spec, 3, &mut src, WAIT).unwrap();
        assert_eq!((done.rows, copy.watermark().unwrap()), (3, 3));
        // The same as learning the documents directly.
        let direct = Store::create(dir.path().join("direct"), StoreOptions::default()).unwrap();
        let g = Generator::create(&direct, settings).unwrap();
        g.learn(&direct, &[(1, texts[0]), (2, texts[1]), (3, texts[2])])
            .unwrap();
        let probe = "the cat sat on the log.";
        assert!((bits(copy.store(), probe) - bits(&direct, probe)).abs() < 1e-9);

        // A published change set is learned, at its watermark.
        let mut changes = vec![Change::Insert(4, doc_row("the dog ran to the mat."))];
        assert_eq!(copy.publish(3, 4, &mut changes, WAIT, NOW).unwrap(), Step::Applied);
        assert_eq!(copy.watermark().unwrap(), 4);
        let gen = Generator::open(copy.store()).unwrap();
        assert!(gen.has_document(&copy.store().snapshot().unwrap(), 4).unwrap());
        // A delete cannot be derived: refused, nothing changed.
        let mut delete = vec![Change::Delete(1)];
        assert!(copy.publish(4, 5, &mut delete, WAIT, NOW).is_err());
        assert_eq!(copy.watermark().unwrap(), 4);
        // Catch-up learns what the copy lacks.
        src.0.insert(4, "the dog ran to the mat.".into());
        src.0.insert(7, "the end.".into());
        assert_eq!(copy.catch_up(6, &mut src, WAIT).unwrap(), Step::Applied);
        assert_eq!(copy.watermark().unwrap(), 6);
        let docs = gen.documents(&copy.store().snapshot().unwrap()).unwrap();
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 7]);
        // A source row gone cannot be caught up: the copy must be rebuilt.
        src.0.remove(&2);
        assert!(copy.catch_up(7, &mut src, WAIT).is_err());
        let (copy, _) = DerivedCopy::rebuild(&path, StoreOptions::reader(), &spec, 7, &mut src, WAIT).unwrap();
        let docs = Generator::open(copy.store())
            .unwrap()
            .documents(&copy.store().snapshot().unwrap())
            .unwrap();
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 3, 4, 7]);
    }
}
