//! `engram.search`: nearest rows of a store as a set-returning function, so
//! it joins with relational tables (`JOIN LATERAL`).

use std::collections::HashSet;
use std::sync::Arc;

use engram::index::{Filter, Hit, Search, SearchParams};
use engram::kernels::distance::Metric;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode as Code};
use serde_json::Value;

use crate::catalog::Need;
use crate::convert;
use crate::engine_copy;
use crate::errors::{user_error, OrRaise};
use crate::gucs;

fn bad(msg: String) -> ! {
    user_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

/// Parse a filter object: namespace, session, scope, kind, tier (as in meta),
/// time_from / time_to (microseconds, half-open), ids (array of row ids).
fn filter_from_json(v: &Value) -> Filter {
    let obj = v
        .as_object()
        .unwrap_or_else(|| bad("filter must be a jsonb object".into()));
    let mut meta = serde_json::Map::new();
    let mut f = Filter::default();
    let (mut from, mut to) = (None, None);
    for (k, v) in obj {
        match k.as_str() {
            "namespace" | "session" | "scope" | "kind" | "tier" => {
                meta.insert(k.clone(), v.clone());
            }
            "time_from" => {
                from = Some(
                    v.as_i64()
                        .unwrap_or_else(|| bad("filter time_from must be an integer".into())),
                )
            }
            "time_to" => {
                to = Some(
                    v.as_i64()
                        .unwrap_or_else(|| bad("filter time_to must be an integer".into())),
                )
            }
            "ids" => {
                let ids: HashSet<u64> = v
                    .as_array()
                    .unwrap_or_else(|| bad("filter ids must be an array of row ids".into()))
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .unwrap_or_else(|| bad("filter ids must be non-negative integers".into()))
                    })
                    .collect();
                f.ids = Some(Arc::new(ids));
            }
            other => bad(format!(
                "unknown filter key {other:?}; allowed: namespace, session, scope, kind, tier, time_from, time_to, ids"
            )),
        }
    }
    let has = |k: &str| meta.contains_key(k);
    let m = convert::meta_from_json(&Value::Object(meta.clone()));
    f.namespace = has("namespace").then_some(m.namespace);
    f.session = has("session").then_some(m.session);
    f.scope = has("scope").then_some(m.scope);
    f.kind = has("kind").then_some(m.kind);
    f.tier = has("tier").then_some(m.tier);
    if from.is_some() || to.is_some() {
        f.time = Some(from.unwrap_or(i64::MIN)..to.unwrap_or(i64::MAX));
    }
    f
}

fn metric_of(name: &str) -> Metric {
    match name {
        "cosine" => Metric::Cosine,
        "dot" => Metric::Dot,
        "l2" => Metric::L2,
        other => bad(format!("unknown metric {other:?}; use 'cosine', 'dot' or 'l2'")),
    }
}

/// Check the arguments, bring the copy in step and search it.
fn nearest(
    store: &str,
    query: Vec<Option<f32>>,
    k: i32,
    filter: &Value,
    metric: &str,
    ef: Option<i32>,
) -> (std::rc::Rc<engine_copy::Handle>, Vec<Hit>) {
    if k <= 0 {
        bad(format!("k must be positive, got {k}"));
    }
    if let Some(ef) = ef {
        if ef <= 0 {
            bad(format!("ef must be positive, got {ef}"));
        }
    }
    let query: Vec<f32> = query
        .into_iter()
        .map(|x| x.unwrap_or_else(|| user_error(Code::ERRCODE_NULL_VALUE_NOT_ALLOWED, "query must not contain NULL")))
        .collect();
    let params = SearchParams {
        metric: metric_of(metric),
        ef: ef.unwrap_or_else(|| gucs::EF_SEARCH.get()) as usize,
        rescore: gucs::RESCORE.get() as usize,
        filter: filter_from_json(filter),
    };
    let h = engine_copy::attach(store, Need::Read);
    if query.len() != h.dim as usize {
        bad(format!(
            "query has dimension {}, but store {store:?} stores dimension {}",
            query.len(),
            h.dim
        ));
    }
    let hits = h.store.search(h.table, &query, k as usize, &params).or_raise();
    (h, hits)
}

/// The k rows of `store` nearest to `query` that pass `filter`, nearest
/// first, with their body and metadata.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn search(
    store: &str,
    query: Vec<Option<f32>>,
    k: default!(i32, 10),
    filter: default!(JsonB, "'{}'"),
    metric: default!(&str, "'cosine'"),
    ef: default!(Option<i32>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(distance, f32),
        name!(body, String),
        name!(meta, JsonB),
    ),
> {
    crate::backend::as_owner(|| {
        let (h, hits) = nearest(store, query, k, &filter.0, metric, ef);
        let rows: Vec<_> = hits
            .into_iter()
            .filter_map(|hit| {
                let row = h.store.get(h.table, hit.id).or_raise()?;
                Some((
                    hit.id.0 as i64,
                    hit.distance,
                    row.text,
                    JsonB(convert::meta_to_json(&row.meta)),
                ))
            })
            .collect();
        TableIterator::new(rows)
    })
}

/// Like `search`, returning only ids and distances: no row is decoded, so
/// it is the fast path when the caller joins `engram.rows` (or its own
/// tables) for the rest.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn search_ids(
    store: &str,
    query: Vec<Option<f32>>,
    k: default!(i32, 10),
    filter: default!(JsonB, "'{}'"),
    metric: default!(&str, "'cosine'"),
    ef: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(id, i64), name!(distance, f32))> {
    crate::backend::as_owner(|| {
        let (_, hits) = nearest(store, query, k, &filter.0, metric, ef);
        TableIterator::new(hits.into_iter().map(|h| (h.id.0 as i64, h.distance)))
    })
}
