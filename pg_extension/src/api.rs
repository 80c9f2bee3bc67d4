//! The SQL functions of stores: lifecycle, rows, statistics, rebuild and
//! rights. Each checks the caller's right before it touches a store, converts
//! its arguments, and calls the engine; none holds an algorithm. Only the
//! statements on engram's own tables run as the extension's owner
//! (`backend::as_owner`); everything else runs as the caller.

use engram::storage::{Dim, RowView, Value};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode as Code};
use serde_json::json;

use crate::backend::{as_owner, caller};
use crate::catalog::{self, Need};
use crate::convert;
use crate::engine_copy::{self, TABLE};
use crate::errors::{user_error, OrRaise};
use crate::handles::Handle;
use crate::txn;

pub(crate) fn check_name(name: &str) {
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

/// Run one statement on engram's tables as the extension's owner; an SPI
/// failure is an internal error (XX000) naming what failed.
pub(crate) fn owner_run(what: &str, sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) {
    as_owner(|| Spi::run_with_args(sql, args))
        .unwrap_or_else(|e| user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: {what} failed: {e}")))
}

/// Create a store of `dim`-dimensional keys owned by the calling role.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn create_store(name: &str, dim: i32, kind: default!(&str, "'rows'"), settings: default!(JsonB, "'{}'")) {
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
    owner_run(
        "create",
        "INSERT INTO engram.stores (name, owner, kind, dim, settings, uid) \
         VALUES ($1, $2::regrole, $3, $4, $5, pg_catalog.gen_random_uuid()::text)",
        &[name.into(), caller().into(), kind.into(), dim.into(), settings.into()],
    );
}

/// Drop a store, its rows and grants; its engine copy is removed at commit.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn drop_store(name: &str) {
    catalog::get(name);
    catalog::require_owner(name);
    owner_run("drop", "DELETE FROM engram.stores WHERE name = $1", &[name.into()]);
    txn::drop_at_commit(name);
}

/// A key from SQL: NULL elements are refused (22004).
fn key_of(key: impl IntoIterator<Item = Option<f32>>, what: &str) -> Vec<f32> {
    key.into_iter()
        .map(|x| {
            x.unwrap_or_else(|| {
                user_error(
                    Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("{what} must not contain NULL"),
                )
            })
        })
        .collect()
}

const INSERT_ROW: &str = "INSERT INTO engram.rows (store, id, key, body, meta) VALUES ($1, $2, $3, $4, $5)";

/// Check a row, write it to `engram.rows` under a new id, and record it for
/// the engine copy at commit; returns the id.
fn insert_one(store: &str, h: &Handle, id: u64, key: Vec<f32>, body: &str, meta: &serde_json::Value) -> i64 {
    let schema = h.schema();
    let meta = convert::normalize_meta(schema, meta);
    let row = convert::row(schema, key.clone(), body.to_string(), &meta)
        .normalize(store, schema)
        .or_raise();
    use pgrx::PgBuiltInOids as T;
    catalog::write_kept(
        "insert",
        INSERT_ROW,
        &[T::TEXTOID, T::INT8OID, T::FLOAT4ARRAYOID, T::TEXTOID, T::JSONBOID],
        &[
            store.into(),
            (id as i64).into(),
            key.into(),
            body.into(),
            JsonB(meta).into(),
        ],
    );
    txn::record_insert(store, id, &row);
    id as i64
}

/// Insert a row; returns its id. The engine copy receives it at commit.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn insert(store: &str, key: Vec<Option<f32>>, body: default!(&str, "''"), meta: default!(JsonB, "'{}'")) -> i64 {
    let h = engine_copy::attach_rows(store, Need::Write);
    let key = key_of(key, "key");
    let id = catalog::new_ids(1)[0];
    insert_one(store, &h, id, key, body, &meta.0)
}

/// Insert many rows in one call: `keys` holds them one after another (a
/// two-dimensional array, as `array_agg` of keys makes, or a flat one of
/// `n * dim` values); `bodies` and `metas`, if given, one per row (NULL
/// elements are defaults). Returns the rows' ids, in order.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn insert_many(
    store: &str,
    keys: pgrx::Array<f32>,
    bodies: default!(Option<Vec<Option<String>>>, "NULL"),
    metas: default!(Option<Vec<Option<JsonB>>>, "NULL"),
) -> SetOfIterator<'static, i64> {
    let h = engine_copy::attach_rows(store, Need::Write);
    let flat = key_of(keys.iter(), "keys");
    let dim = h.dim as usize;
    if !flat.len().is_multiple_of(dim) {
        user_error(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "keys hold {} values, not a whole number of keys of dimension {dim}",
                flat.len()
            ),
        );
    }
    let n = flat.len() / dim;
    let len_ok = |l: Option<usize>| l.is_none_or(|l| l == n);
    if !len_ok(bodies.as_ref().map(Vec::len)) || !len_ok(metas.as_ref().map(Vec::len)) {
        user_error(
            Code::ERRCODE_ARRAY_ELEMENT_ERROR,
            format!("{n} keys, but bodies or metas do not hold one element per key"),
        );
    }
    let ids = if n == 0 { Vec::new() } else { catalog::new_ids(n as i64) };
    let empty = serde_json::Value::Object(Default::default());
    let out: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            pgrx::check_for_interrupts!();
            let body = bodies.as_ref().and_then(|b| b[i].clone()).unwrap_or_default();
            let meta = metas.as_ref().and_then(|m| m[i].as_ref().map(|j| j.0.clone()));
            insert_one(
                store,
                &h,
                id,
                flat[i * dim..(i + 1) * dim].to_vec(),
                &body,
                meta.as_ref().unwrap_or(&empty),
            )
        })
        .collect();
    SetOfIterator::new(out)
}

/// Delete a row; returns whether it existed.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn delete(store: &str, id: i64) -> bool {
    engine_copy::attach_rows(store, Need::Write);
    let existed = as_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH d AS (DELETE FROM engram.rows WHERE store = $1 AND id = $2 RETURNING 1) SELECT count(*) > 0 FROM d",
            &[store.into(), id.into()],
        )
    });
    let existed = match existed {
        Ok(v) => v.unwrap_or(false),
        Err(e) => user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: delete failed: {e}")),
    };
    if existed {
        txn::record_delete(store, id as u64);
    }
    existed
}

/// A row as the SQL functions return it (spelled out in each signature, as
/// pgrx requires): id, key, body, meta.
type RowOut = (i64, Vec<f32>, String, JsonB);

fn out(h: &Handle, row: &RowView<'_>) -> RowOut {
    let meta = convert::meta_to_json(h.schema(), row);
    let key = row.key(engram::storage::KeyCol(convert::KEY)).to_vec();
    let body = row
        .text(engram::storage::TextCol(convert::BODY))
        .or_raise()
        .into_owned();
    (row.get(h.copy.source_column()) as i64, key, body, JsonB(meta))
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
    let h = engine_copy::attach_rows(store, Need::Read);
    let snap = h.copy.store().snapshot().or_raise();
    let t = snap.table(h.copy.table()).or_raise();
    let row = if id < 0 {
        None
    } else {
        t.find(&Value::UInt(id as u64)).or_raise().and_then(|r| t.get(r))
    };
    TableIterator::new(row.map(|r| out(&h, &r)))
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
    let h = engine_copy::attach_rows(store, Need::Read);
    let snap = h.copy.store().snapshot().or_raise();
    let mut rows: Vec<RowOut> = snap
        .table(h.copy.table())
        .or_raise()
        .rows()
        .map(|r| out(&h, &r))
        .collect();
    // The copy holds rows in the order they were published.
    rows.sort_unstable_by_key(|r| r.0);
    TableIterator::new(rows)
}

/// Counts of a store: catalog watermark, engine watermark, rows, segments.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn stats(store: &str) -> JsonB {
    let h = engine_copy::attach(store, Need::Read);
    let cat = catalog::get(store);
    let s = h.copy.store();
    let st = s.stats().or_raise();
    let t = st.tables.iter().find(|t| t.info.name == TABLE);
    JsonB(json!({
        "store": store,
        "dim": cat.dim,
        "watermark": cat.watermark,
        "engine_watermark": s.watermark().or_raise(),
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
}

/// Rebuild the engine copy from `engram.rows`; returns the number of rows.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn rebuild(store: &str) -> i64 {
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
    h.copy.store().live_ids(h.copy.table()).or_raise().len() as i64
}

/// Flush the engine copy's memtable and merge its segments into one with
/// an HNSW graph (built with the store's `m` and `ef_construction`), so that
/// searches walk one graph instead of several (or a scan). Returns what was
/// done. Needs write. Other transactions' commits to the store go on
/// meanwhile: the merge takes the copy's writer role only to flush and plan
/// and to publish, and waits (up to 30 s) for a background merge of the
/// store that is running.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn optimize(store: &str) -> JsonB {
    let h = engine_copy::attach(store, Need::Write);
    let start = std::time::Instant::now();
    let s = h.copy.store();
    let rows = s.stats().or_raise().tables.iter().map(|t| t.live_rows).sum::<u64>();
    notice!("engram: optimizing store {store:?}: indexing {rows} rows");
    let report = engine_copy::optimize(&h).or_raise();
    let st = s.stats().or_raise();
    let t = st.tables.iter().find(|t| t.info.name == TABLE);
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
        "seconds": start.elapsed().as_secs_f64(),
    }))
}

/// Change a grant of store `store` (owner only), running `sql` with
/// `(store, role, privilege)`.
fn change_grant(store: &str, role: &str, privilege: &str, sql: &str) {
    check_privilege_word(privilege);
    catalog::get(store);
    catalog::require_owner(store);
    owner_run("changing a grant", sql, &[store.into(), role.into(), privilege.into()]);
}

/// Give `role` the right to read or write a store (owner only).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn grant(store: &str, role: &str, privilege: &str) {
    change_grant(
        store,
        role,
        privilege,
        "INSERT INTO engram.grants (store, grantee, privilege) VALUES ($1, $2::regrole, $3) ON CONFLICT DO NOTHING",
    );
}

/// Take back a right given by [`grant`] (owner only).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn revoke(store: &str, role: &str, privilege: &str) {
    change_grant(
        store,
        role,
        privilege,
        "DELETE FROM engram.grants WHERE store = $1 AND grantee = $2::regrole AND privilege = $3",
    );
}

/// Whether `role` may use `store` for `privilege`: answered only when `role`
/// is the calling role or one it is a member of (42501 otherwise). The
/// check behind `engram.has_privilege` and the row-level security of the
/// truth tables: it sees its caller (`GetUserId`), which a SECURITY DEFINER
/// function could not.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn privilege_check(store: &str, privilege: &str, role: pg_sys::Oid) -> bool {
    let me = caller();
    if role != me {
        let member = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_has_role($1, $2, 'MEMBER')",
            &[me.into(), role.into()],
        )
        .unwrap_or_else(|e| {
            user_error(
                Code::ERRCODE_INTERNAL_ERROR,
                format!("engram: a membership check failed: {e}"),
            )
        });
        if member != Some(true) {
            user_error(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "engram.has_privilege answers for the calling role and the roles it is a member of only",
            );
        }
    }
    catalog::privilege(store, privilege, role)
}
