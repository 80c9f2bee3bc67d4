//! `engram.search`: nearest rows of a store as a set-returning function, so
//! it joins with relational tables (`JOIN LATERAL`).

use std::collections::BTreeSet;

use engram::index::{Filter, HitRef, SearchParams};
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

/// Parse a filter object: metadata keys (as in meta) for equality;
/// `time_from` / `time_to` (microseconds, half-open) on the timestamp;
/// `ids` (an array of row ids).
fn filter_from_json(schema: &engram::storage::Schema, v: &Value) -> Filter {
    let obj = v
        .as_object()
        .unwrap_or_else(|| bad("filter must be a jsonb object".into()));
    let mut f = Filter::All;
    let (mut from, mut to) = (None, None);
    let mut meta = serde_json::Map::new();
    for (k, v) in obj {
        match k.as_str() {
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
                let ids: BTreeSet<u64> = v
                    .as_array()
                    .unwrap_or_else(|| bad("filter ids must be an array of row ids".into()))
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .unwrap_or_else(|| bad("filter ids must be non-negative integers".into()))
                    })
                    .collect();
                // SQL ids are the copy's `id` column, not its row ids.
                f = f.and(Filter::In(
                    convert::SOURCE_ID.into(),
                    ids.into_iter().map(engram::storage::Value::UInt).collect(),
                ));
            }
            other if convert::meta_columns(schema).any(|(_, c)| c.name == other) => {
                meta.insert(k.clone(), v.clone());
            }
            other => bad(format!(
                "unknown filter key {other:?}; allowed: {}, time_from, time_to, ids",
                convert::meta_columns(schema)
                    .map(|(_, c)| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    // Metadata keys are checked and typed as in meta (unknown keys: 22023).
    for (id, value) in convert::meta_from_json(schema, &Value::Object(meta)) {
        let name = &schema.columns()[id.0 as usize].name;
        f = f.and(Filter::Eq(name.clone(), value));
    }
    if from.is_some() || to.is_some() {
        f = f.and(Filter::Range {
            column: "timestamp".into(),
            low: from.map(engram::storage::Value::Int),
            high: to.map(engram::storage::Value::Int),
        });
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

/// Check the arguments, bring the copy in step and search one snapshot of
/// it; `each` turns every hit (its row read from that snapshot) into output.
fn nearest<T>(
    store: &str,
    query: Vec<Option<f32>>,
    k: i32,
    filter: &Value,
    metric: &str,
    ef: Option<i32>,
    each: impl Fn(&crate::handles::Handle, &HitRef<'_>) -> T,
) -> Vec<T> {
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
    let metric = metric_of(metric);
    let h = engine_copy::attach_rows(store, Need::Read);
    let params = SearchParams {
        metric: Some(metric),
        ef: ef.unwrap_or_else(|| gucs::EF_SEARCH.get()) as usize,
        rescore: gucs::RESCORE.get() as usize,
        filter: filter_from_json(h.schema(), filter),
        ..SearchParams::default()
    };
    if query.len() != h.dim as usize {
        bad(format!(
            "query has dimension {}, but store {store:?} stores dimension {}",
            query.len(),
            h.dim
        ));
    }
    let snap = h.copy.store().snapshot().or_raise();
    let hits = snap
        .table(h.copy.table())
        .or_raise()
        .search(&query, k as usize, &params)
        .or_raise();
    hits.iter().map(|hit| each(&h, hit)).collect()
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
    // Each hit's body and meta come from the snapshot the search ran on:
    // k hits always carry their rows.
    let rows = nearest(store, query, k, &filter.0, metric, ef, |h, hit| {
        let body = hit
            .row
            .text(engram::storage::TextCol(convert::BODY))
            .or_raise()
            .into_owned();
        (
            hit.row.get(h.copy.source_column()) as i64,
            hit.distance,
            body,
            JsonB(convert::meta_to_json(h.schema(), &hit.row)),
        )
    });
    TableIterator::new(rows)
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
    let hits = nearest(store, query, k, &filter.0, metric, ef, |h, hit| {
        (hit.row.get(h.copy.source_column()) as i64, hit.distance)
    });
    TableIterator::new(hits)
}
