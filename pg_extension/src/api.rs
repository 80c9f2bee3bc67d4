//! The SQL functions of stores: lifecycle, rows, statistics, rebuild and
//! rights. Each checks the caller's right before it touches a store, converts
//! its arguments, and calls the engine; none holds an algorithm.

use engram::storage::{Dim, RowId};

use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode as Code};
use serde_json::json;

use crate::backend::caller;
use crate::catalog::{self, Need};
use crate::convert;
use crate::engine_copy::{self, TABLE};
use crate::errors::{user_error, OrRaise};
use crate::txn::{self, Change};

fn check_name(name: &str) {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        user_error(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid store name {name:?}: use 1 to 63 letters, digits, '_' or '-'"),
        );
    }
}

fn check_privilege_word(p: &str) {
    if p != "read" && p != "write" {
        user_error(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid privilege {p:?}: use 'read' or 'write'"),
        );
    }
}

/// Create a store of `dim`-dimensional keys owned by the calling role.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn create_store(name: &str, dim: i32, kind: default!(&str, "'rows'"), settings: default!(JsonB, "'{}'")) {
    crate::backend::as_owner(|| {
        check_name(name);
        if !(1..=Dim::MAX as i32).contains(&dim) {
            user_error(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid dimension {dim}: use 1 to {}", Dim::MAX),
            );
        }
        if kind != "rows" {
            user_error(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid kind {kind:?}: use 'rows'"),
            );
        }
        if let Err(why) = catalog::hnsw_settings(&settings.0) {
            user_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, why);
        }
        if catalog::find(name).is_some() {
            user_error(Code::ERRCODE_DUPLICATE_OBJECT, format!("store {name:?} already exists"));
        }
        Spi::run_with_args(
            "INSERT INTO engram.stores (name, owner, kind, dim, settings, uid) \
         VALUES ($1, $2::regrole, $3, $4, $5, pg_catalog.gen_random_uuid()::text)",
            &[name.into(), caller().into(), kind.into(), dim.into(), settings.into()],
        )
        .unwrap_or_else(|e| user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: create failed: {e}")));
    })
}

/// Drop a store, its rows and grants; its engine copy is removed at commit.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn drop_store(name: &str) {
    crate::backend::as_owner(|| {
        catalog::get(name);
        catalog::require_owner(name);
        Spi::run_with_args("DELETE FROM engram.stores WHERE name = $1", &[name.into()])
            .unwrap_or_else(|e| user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: drop failed: {e}")));
        txn::drop_at_commit(name);
    })
}

/// Insert a row; returns its id. The engine copy receives it at commit.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn insert(store: &str, key: Vec<Option<f32>>, body: default!(&str, "''"), meta: default!(JsonB, "'{}'")) -> i64 {
    crate::backend::as_owner(|| {
        let h = engine_copy::attach(store, Need::Write);
        let key: Vec<f32> = key
            .into_iter()
            .map(|x| x.unwrap_or_else(|| user_error(Code::ERRCODE_NULL_VALUE_NOT_ALLOWED, "key must not contain NULL")))
            .collect();
        let meta = convert::normalize_meta(&h.schema, &meta.0);
        let row = convert::row(&h.schema, key.clone(), body.to_string(), &meta)
            .normalize(store, &h.schema)
            .or_raise();
        let (watermark, id) = catalog::bump(store, 1);
        Spi::run_with_args(
            "INSERT INTO engram.rows (store, id, key, body, meta) VALUES ($1, $2, $3, $4, $5)",
            &[
                store.into(),
                (id as i64).into(),
                key.into(),
                body.into(),
                JsonB(meta).into(),
            ],
        )
        .unwrap_or_else(|e| user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: insert failed: {e}")));
        txn::record(store, watermark, Change::Insert(id, Box::new(row)));
        id as i64
    })
}

/// Delete a row; returns whether it existed.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn delete(store: &str, id: i64) -> bool {
    crate::backend::as_owner(|| {
        engine_copy::attach(store, Need::Write);
        let (watermark, _) = catalog::bump(store, 0);
        let existed = Spi::get_one_with_args::<bool>(
            "DELETE FROM engram.rows WHERE store = $1 AND id = $2 RETURNING true",
            &[store.into(), id.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        let change = if existed {
            Change::Delete(id as u64)
        } else {
            Change::Nothing
        };
        txn::record(store, watermark, change);
        existed
    })
}

/// A row as the SQL functions return it (spelled out in each signature, as
/// pgrx requires): id, key, body, meta.
type RowOut = (i64, Vec<f32>, String, JsonB);

fn out(schema: &engram::storage::Schema, row: &engram::storage::RowView<'_>) -> RowOut {
    let meta = convert::meta_to_json(schema, row);
    let key = row.key(engram::storage::KeyCol(convert::KEY)).to_vec();
    let body = row
        .text(engram::storage::TextCol(convert::BODY))
        .or_raise()
        .into_owned();
    (row.id().0 as i64, key, body, JsonB(meta))
}

/// Read one row from the engine copy.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn get(
    store: &str,
    id: i64,
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(key, Vec<f32>),
        name!(body, String),
        name!(meta, JsonB),
    ),
> {
    crate::backend::as_owner(|| {
        let h = engine_copy::attach(store, Need::Read);
        let snap = h.store.snapshot().or_raise();
        let t = snap.table(h.table).or_raise();
        let row = if id < 0 { None } else { t.get(RowId(id as u64)) };
        TableIterator::new(row.map(|r| out(&h.schema, &r)))
    })
}

/// Every live row of the engine copy, in id order.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn scan(
    store: &str,
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(key, Vec<f32>),
        name!(body, String),
        name!(meta, JsonB),
    ),
> {
    crate::backend::as_owner(|| {
        let h = engine_copy::attach(store, Need::Read);
        let snap = h.store.snapshot().or_raise();
        let rows: Vec<RowOut> = snap
            .table(h.table)
            .or_raise()
            .rows()
            .map(|r| out(&h.schema, &r))
            .collect();
        TableIterator::new(rows)
    })
}

/// Counts of a store: catalog watermark, engine watermark, rows, segments.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn stats(store: &str) -> JsonB {
    crate::backend::as_owner(|| {
        let h = engine_copy::attach(store, Need::Read);
        let cat = catalog::get(store);
        let st = h.store.stats().or_raise();
        let t = st.tables.iter().find(|t| t.info.name == TABLE);
        JsonB(json!({
            "store": store,
            "dim": cat.dim,
            "watermark": cat.watermark,
            "engine_watermark": h.store.watermark().or_raise(),
            "rows": t.map_or(0, |t| t.live_rows),
            "segments": t.map_or(0, |t| t.segments),
            "segment_rows": t.map_or(0, |t| t.segment_rows),
            "memtable_rows": t.map_or(0, |t| t.memtable_rows),
            "deleted_rows": t.map_or(0, |t| t.deleted_rows),
            "segment_bytes": t.map_or(0, |t| t.segment_bytes),
            "indexed_rows": t.map_or(0, |t| t.indexed_rows),
            "index_bytes": t.map_or(0, |t| t.index_bytes),
            "wal_bytes": st.wal_bytes,
            "generation": st.generation,
        }))
    })
}

/// Rebuild the engine copy from `engram.rows`; returns the number of rows.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn rebuild(store: &str) -> i64 {
    crate::backend::as_owner(|| {
        let cat = catalog::get(store);
        catalog::require(store, Need::Write);
        if txn::has_pending(store) {
            user_error(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot rebuild store {store:?} in a transaction that changed it; commit first"),
            );
        }
        let latest = catalog::lock(store);
        let h = engine_copy::rebuild(store, &cat, latest);
        h.store.live_ids(h.table).or_raise().len() as i64
    })
}

/// Flush the engine copy's memtable and merge its segments into one with
/// an HNSW graph (built with the store's `m` and `ef_construction`), so that
/// searches walk a graph instead of scanning. Returns what was done.
/// Needs write; commits to the store wait for it (up to 30 s, after which
/// their publish is deferred to the next use of the store).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn optimize(store: &str) -> JsonB {
    crate::backend::as_owner(|| {
        let h = engine_copy::attach(store, Need::Write);
        let start = std::time::Instant::now();
        let before = h.store.stats().or_raise();
        let rows = before.tables.iter().map(|t| t.live_rows).sum::<u64>();
        notice!("engram: optimizing store {store:?}: indexing {rows} rows");
        let report = engine_copy::optimize(&h).or_raise();
        let st = h.store.stats().or_raise();
        let t = st.tables.iter().find(|t| t.info.name == TABLE);
        let secs = start.elapsed().as_secs_f64();
        notice!(
            "engram: optimized store {store:?}: {} rows in a graph",
            t.map_or(0, |t| t.indexed_rows)
        );
        JsonB(json!({
            "store": store,
            "segments_in": report.segments_in,
            "segments_out": report.segments_out,
            "rows_dropped": report.rows_dropped,
            "indexed_rows": t.map_or(0, |t| t.indexed_rows),
            "index_bytes": t.map_or(0, |t| t.index_bytes),
            "seconds": secs,
        }))
    })
}

/// Change a grant of store `store` (owner only), running `sql` with
/// `(store, role, privilege)`.
fn change_grant(store: &str, role: &str, privilege: &str, sql: &str) {
    check_privilege_word(privilege);
    catalog::get(store);
    catalog::require_owner(store);
    Spi::run_with_args(sql, &[store.into(), role.into(), privilege.into()]).unwrap_or_else(|e| {
        user_error(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("engram: changing a grant failed: {e}"),
        )
    });
}

/// Give `role` the right to read or write a store (owner only).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn grant(store: &str, role: &str, privilege: &str) {
    crate::backend::as_owner(|| {
        change_grant(
            store,
            role,
            privilege,
            "INSERT INTO engram.grants (store, grantee, privilege) VALUES ($1, $2::regrole, $3) ON CONFLICT DO NOTHING",
        );
    })
}

/// Take back a right given by [`grant`] (owner only).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn revoke(store: &str, role: &str, privilege: &str) {
    crate::backend::as_owner(|| {
        change_grant(
            store,
            role,
            privilege,
            "DELETE FROM engram.grants WHERE store = $1 AND grantee = $2::regrole AND privilege = $3",
        );
    })
}
