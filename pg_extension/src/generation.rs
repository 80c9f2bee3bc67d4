//! The SQL functions of generator stores: create, learn, fit, generate (as
//! text and traced), score, and the levels' sizes.
//!
//! The store model holds here too: learned documents are rows of
//! `engram.documents` (the truth), the engine copy learns them at commit
//! (`engram::generate::model::GeneratorCopy`), and everything else —
//! vocabulary, patterns, graphs — is derived and can be rebuilt from them.
//! Fitted parameters are truth as well: `engram.fit` records them in the
//! store's settings (`params`), so a rebuilt copy scores exactly as before.

use std::collections::HashMap;

use engram::generate::{EmbedderSpec, GeneratedToken, Params, Request, Sampling, ScoreMode, Settings};
use engram::storage::{Row, Schema};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode as Code};
use serde_json::{json, Value as J};

use crate::api::{check_name, owner_run};
use crate::backend::{caller, interrupt_pending};
use crate::catalog::{self, Need, GENERATOR};
use crate::engine_copy;
use crate::errors::{user_error, OrRaise};
use crate::handles::Handle;
use crate::txn;

/// The model a generator created with `"embedder": "model2vec"` uses, in
/// the extension's share directory (scripts/install-extension.sh puts it
/// there).
const DEFAULT_MODEL: &str = "models/minilm-m2v-128";

/// Settings `create_generator` takes, besides `params` (written by `fit`).
const KEYS: [&str; 12] = [
    "levels",
    "embedder",
    "dim",
    "key_decay",
    "seed",
    "heldout_fraction",
    "heldout_tokens",
    "k",
    "tau",
    "ef",
    "alpha",
    "beta",
];

/// A generator's settings and parameters from its settings object (see
/// `COMMENT ON FUNCTION engram.create_generator`); a message for anything
/// unknown or out of range.
pub fn settings_of(j: &J) -> Result<(Settings, Params), String> {
    let o = j.as_object().ok_or("settings must be a JSON object")?;
    for k in o.keys() {
        if !KEYS.contains(&k.as_str()) && k != "params" {
            return Err(format!("unknown generator setting {k:?}: use {}", KEYS.join(", ")));
        }
    }
    let num = |k: &str| -> Result<Option<f64>, String> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| format!("setting {k} must be a number")),
        }
    };
    let whole = |k: &str| -> Result<Option<u64>, String> {
        match num(k)? {
            Some(x) if x >= 0.0 && x.fract() == 0.0 => Ok(Some(x as u64)),
            Some(_) => Err(format!("setting {k} must be a non-negative integer")),
            None => Ok(None),
        }
    };
    let mut s = Settings::default();
    if let Some(v) = o.get("levels") {
        s.lengths = v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().map(|r| r as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or("setting levels must be an array of context lengths, e.g. [1, 2, 3, 4, 6, 8]")?;
    }
    match o.get("embedder").map(|e| e.as_str().ok_or("setting embedder must be a string")) {
        None | Some(Ok("hashed")) => {
            if let Some(d) = whole("dim")? {
                s.embedder = EmbedderSpec::Hashed { dim: d as usize };
            }
        }
        Some(Ok(m)) if m == "model2vec" || m.starts_with("model2vec:") => {
            if o.contains_key("dim") {
                return Err("setting dim is the hashed embedder's: a Model2Vec model has its own".into());
            }
            let dir = match m.strip_prefix("model2vec:") {
                Some(dir) if std::path::Path::new(dir).is_absolute() => std::path::PathBuf::from(dir),
                Some(dir) => return Err(format!("model directory {dir:?} must be an absolute path")),
                None => crate::backend::extension_share_dir().join(DEFAULT_MODEL),
            };
            s.embedder = EmbedderSpec::Model2Vec { dir };
        }
        Some(Ok(other)) => {
            return Err(format!(
                "embedder {other:?}: use \"hashed\" (with dim), \"model2vec\" (the installed model) or \"model2vec:/its/directory\""
            ))
        }
        Some(Err(why)) => return Err(why.into()),
    }
    if let Some(x) = num("key_decay")? {
        s.key_decay = x as f32;
    }
    if let Some(x) = whole("seed")? {
        s.seed = x;
    }
    if let Some(x) = num("heldout_fraction")? {
        s.heldout_fraction = x;
    }
    if let Some(x) = whole("heldout_tokens")? {
        s.heldout_tokens = x as usize;
    }
    let s = s.checked().map_err(|e| e.to_string())?;
    if let EmbedderSpec::Hashed { .. } = s.embedder {
        // Cheap to check on every read of the settings; a model is loaded
        // (and checked) once, when the store is created or attached.
        s.embedder.build().map_err(|e| e.to_string())?;
    }
    let levels = s.lengths.len();
    let mut p = match o.get("params") {
        Some(J::Object(m)) => {
            let pairs: HashMap<String, f64> = m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect();
            Params::from_pairs(&pairs, levels).map_err(|e| e.to_string())?
        }
        Some(_) => return Err("setting params must be an object".into()),
        None => Params::default(),
    };
    if o.get("params").is_none() {
        let b = &mut p.strategies.params[engram::generate::Strategy::Balanced.index()];
        if let Some(k) = whole("k")? {
            b.k = k as usize;
        }
        if let Some(x) = num("tau")? {
            b.tau = x;
        }
        if let Some(x) = whole("ef")? {
            b.ef = x as usize;
        }
        if let Some(x) = num("alpha")? {
            b.alpha = x;
        }
        if let Some(x) = num("beta")? {
            p.beta = x;
        }
    }
    p.checked(levels).map_err(|e| e.to_string())?;
    Ok((s, p))
}

/// The engine row of a learned document.
pub fn document_row(schema: &Schema, body: &str) -> Row {
    let col = schema.text("body").or_raise();
    Row::new(schema).with(col, body)
}

fn bad(msg: impl Into<String>) -> ! {
    user_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

/// The handle on generator `store` for a caller that needs `need`, with its
/// catalog row (one read); ERROR 42809 for a store of another kind.
fn generator_handle(store: &str, need: Need) -> (std::rc::Rc<Handle>, catalog::StoreRow) {
    let (h, cat) = engine_copy::attach_with(store, need);
    if h.generator.is_none() {
        user_error(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!("store {store:?} is not a generator: create one with engram.create_generator"),
        );
    }
    (h, cat)
}

/// [`generator_handle`], with the parameters in use (the catalog's).
fn generator(store: &str, need: Need) -> (std::rc::Rc<Handle>, Params) {
    let (h, cat) = generator_handle(store, need);
    let (_, params) = settings_of(&cat.settings).unwrap_or_else(|why| user_error(Code::ERRCODE_DATA_CORRUPTED, why));
    (h, params)
}

/// Create a generator store owned by the calling role.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn create_generator(name: &str, settings: default!(JsonB, "'{}'")) {
    check_name(name);
    let (s, _) = settings_of(&settings.0).unwrap_or_else(|why| bad(why));
    if catalog::find(name).is_some() {
        user_error(Code::ERRCODE_DUPLICATE_OBJECT, format!("store {name:?} already exists"));
    }
    // The embedder, built once: a model that cannot be loaded is refused here.
    let dim = s.embedder.build().or_raise().dim();
    owner_run(
        "create",
        "INSERT INTO engram.stores (name, owner, kind, dim, settings, uid) \
         VALUES ($1, $2::regrole, $3, $4, $5, pg_catalog.gen_random_uuid()::text)",
        &[
            name.into(),
            caller().into(),
            GENERATOR.into(),
            (dim as i32).into(),
            settings.into(),
        ],
    );
}

const INSERT_DOCUMENT: &str = "INSERT INTO engram.documents (store, id, body, meta) VALUES ($1, $2, $3, $4)";

/// Learn a document; returns its id. The engine copy learns it at commit.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn learn(store: &str, body: &str, meta: default!(JsonB, "'{}'")) -> i64 {
    let (h, _) = generator_handle(store, Need::Write);
    if !meta.0.is_object() {
        bad("meta must be a JSON object");
    }
    let id = catalog::new_ids(1)[0];
    use pgrx::PgBuiltInOids as T;
    catalog::write_kept(
        "learn",
        INSERT_DOCUMENT,
        &[T::TEXTOID, T::INT8OID, T::TEXTOID, T::JSONBOID],
        &[store.into(), (id as i64).into(), body.into(), meta.into()],
    );
    txn::record_insert(store, id, &document_row(h.schema(), body));
    id as i64
}

/// A progress callback for long calls: a NOTICE at each tenth, and the
/// query's cancel honoured (interrupts are served here: a cancel or a
/// statement timeout raises its ERROR; nothing is held that it could leave
/// behind).
fn progress(what: &'static str) -> impl FnMut(usize, usize) -> engram::Result<()> {
    let mut shown = 0;
    move |done, all| {
        if interrupt_pending() {
            pgrx::check_for_interrupts!();
        }
        let tenth = (done * 10).checked_div(all).unwrap_or(10);
        if tenth > shown && done < all {
            shown = tenth;
            notice!("engram: {what}: {done} of {all} tokens");
        }
        Ok(())
    }
}

/// Raise an engine error, a cancel as a query cancel.
fn raise(e: engram::Error) -> ! {
    if matches!(e, engram::Error::Cancelled) {
        pgrx::check_for_interrupts!();
    }
    crate::errors::raise(e)
}

/// Fit the store's parameters on a held-out slice of its documents and
/// record them in its settings; returns what fitting gained.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn fit(store: &str) -> JsonB {
    let (h, start) = generator(store, Need::Write);
    let g = h.generator.as_ref().expect("checked by generator()");
    let snap = h.copy.store().snapshot().or_raise();
    let r = g
        .fit_with(&snap, &start, &mut progress("fit"))
        .unwrap_or_else(|e| raise(e));
    let params: serde_json::Map<String, J> = r.params.to_pairs().into_iter().map(|(k, v)| (k, json!(v))).collect();
    owner_run(
        "fit",
        "UPDATE engram.stores SET settings = jsonb_set(settings, '{params}', $2) WHERE name = $1",
        &[store.into(), JsonB(J::Object(params)).into()],
    );
    JsonB(json!({
        "heldout_documents": r.heldout_documents,
        "heldout_tokens": r.heldout_tokens,
        "heldout_chars": r.heldout_chars,
        "bits_per_char_before": r.bpc_before,
        "bits_per_char_after": r.bpc_after,
        "evaluations": r.evaluations,
    }))
}

/// The request of `generate` and `generate_trace`, checked.
#[allow(clippy::too_many_arguments)]
fn request(
    max_tokens: i32,
    temperature: f64,
    top_k: i32,
    top_p: f64,
    repetition_penalty: f64,
    seed: Option<i64>,
    stop: Option<Vec<Option<String>>>,
) -> Request {
    if !(0..=100_000).contains(&max_tokens) {
        bad(format!("max_tokens {max_tokens} must lie in 0 to 100000"));
    }
    if top_k < 0 {
        bad(format!("top_k {top_k} must not be negative"));
    }
    let seed = seed.map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        },
        |s| s as u64,
    );
    let sampling = Sampling {
        temperature,
        top_k: top_k as usize,
        top_p,
        repetition_penalty,
        seed,
    };
    engram::generate::Sampler::new(sampling.clone()).unwrap_or_else(|e| raise(e));
    Request {
        max_tokens: max_tokens as usize,
        stop: stop.unwrap_or_default().into_iter().flatten().collect(),
        sampling,
        ..Request::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    store: &str,
    prompt: &str,
    max_tokens: i32,
    temperature: f64,
    top_k: i32,
    top_p: f64,
    repetition_penalty: f64,
    seed: Option<i64>,
    stop: Option<Vec<Option<String>>>,
) -> Vec<GeneratedToken> {
    let req = request(max_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop);
    let (h, params) = generator(store, Need::Read);
    let g = h.generator.as_ref().expect("checked by generator()");
    let snap = h.copy.store().snapshot().or_raise();
    g.generate_with(&snap, &params, prompt, &req)
        .unwrap_or_else(|e| raise(e))
}

/// Continue `prompt`: the generated text.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn generate(
    store: &str,
    prompt: &str,
    max_tokens: default!(i32, 64),
    temperature: default!(f64, 0),
    top_k: default!(i32, 0),
    top_p: default!(f64, 1),
    repetition_penalty: default!(f64, 1),
    seed: default!(Option<i64>, "NULL"),
    stop: default!(Option<Vec<Option<String>>>, "NULL"),
) -> String {
    run(
        store,
        prompt,
        max_tokens,
        temperature,
        top_k,
        top_p,
        repetition_penalty,
        seed,
        stop,
    )
    .iter()
    .map(|t| t.text.as_str())
    .collect()
}

/// Continue `prompt`, one row per generated token with its probability,
/// confidence, strategy and the patterns it came from.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn generate_trace(
    store: &str,
    prompt: &str,
    max_tokens: default!(i32, 64),
    temperature: default!(f64, 0),
    top_k: default!(i32, 0),
    top_p: default!(f64, 1),
    repetition_penalty: default!(f64, 1),
    seed: default!(Option<i64>, "NULL"),
    stop: default!(Option<Vec<Option<String>>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(token, String),
        name!(probability, f64),
        name!(confidence, f64),
        name!(strategy, String),
        name!(sources, JsonB),
    ),
> {
    let out = run(
        store,
        prompt,
        max_tokens,
        temperature,
        top_k,
        top_p,
        repetition_penalty,
        seed,
        stop,
    );
    TableIterator::new(out.into_iter().enumerate().map(|(i, t)| {
        let sources: Vec<J> = t
            .trace
            .iter()
            .map(|e| {
                json!({
                    "level": e.level,
                    "document": e.doc,
                    "position": e.pos,
                    "similarity": e.sim,
                    "share": e.share,
                })
            })
            .collect();
        (
            i as i32 + 1,
            t.text,
            t.prob,
            t.confidence,
            t.strategy.name().to_string(),
            JsonB(J::Array(sources)),
        )
    }))
}

/// The log2-probability of exactly `body` (every character), static or
/// adaptive.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn score(
    store: &str,
    body: &str,
    adaptive: default!(bool, false),
) -> TableIterator<
    'static,
    (
        name!(chars, i64),
        name!(tokens, i64),
        name!(bits, f64),
        name!(bits_per_char, f64),
        name!(perplexity, f64),
    ),
> {
    let (h, params) = generator(store, Need::Read);
    let g = h.generator.as_ref().expect("checked by generator()");
    let snap = h.copy.store().snapshot().or_raise();
    let mode = ScoreMode {
        adaptive,
        per_token: false,
    };
    let s = g
        .score_with(&snap, &params, body, mode, &mut progress("score"))
        .unwrap_or_else(|e| raise(e));
    TableIterator::once((
        s.chars as i64,
        s.tokens as i64,
        s.bits,
        s.bits_per_char(),
        s.perplexity(),
    ))
}

/// One row per pattern level: its size and graph state.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn levels(
    store: &str,
) -> TableIterator<
    'static,
    (
        name!(level, i32),
        name!(patterns, i64),
        name!(contexts, i64),
        name!(bytes, i64),
        name!(graph, String),
    ),
> {
    let (h, _) = generator_handle(store, Need::Read);
    let g = h.generator.as_ref().expect("checked by generator_handle()");
    let info = g.levels_info(h.copy.store()).or_raise();
    TableIterator::new(info.into_iter().map(|l| {
        let graph = if l.contexts == 0 {
            "empty"
        } else if l.indexed_rows >= l.contexts {
            "built"
        } else if l.indexed_rows > 0 {
            "partial"
        } else {
            "none"
        };
        (
            l.r as i32,
            l.patterns as i64,
            l.contexts as i64,
            l.bytes as i64,
            graph.to_string(),
        )
    }))
}
