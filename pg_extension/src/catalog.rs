//! Reads and writes of the catalog (`engram.stores`, `engram.grants`).

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgBuiltInOids, PgOid, PgSqlErrorCode as Code};

use crate::backend::{as_owner, caller};
use crate::errors::user_error;

/// A store's catalog row, as far as the engine copy depends on it.
#[derive(Clone, Debug)]
pub struct StoreRow {
    /// `rows` or `generator`.
    pub kind: String,
    /// The store's settings object.
    pub settings: serde_json::Value,
    pub dim: u32,
    pub uid: String,
    pub watermark: u64,
    /// Graph parameters from the store's settings (`m`, `ef_construction`).
    pub index: engram::storage::IndexSpec,
}

impl StoreRow {
    /// The schema of the store's engine table.
    pub fn schema(&self) -> engram::storage::Schema {
        if self.is_generator() {
            return engram::generate::model::docs_schema().unwrap_or_else(|e| crate::errors::raise(e));
        }
        crate::convert::rows_schema(self.dim, self.index).unwrap_or_else(|e| crate::errors::raise(e))
    }

    /// Whether the store is a generator (its truth is `engram.documents`).
    pub fn is_generator(&self) -> bool {
        self.kind == GENERATOR
    }
}

/// Graph parameters from a store's settings object; an error for a setting
/// that is unknown or out of range (`create_store` refuses those).
pub fn hnsw_settings(settings: &serde_json::Value) -> Result<engram::storage::IndexSpec, String> {
    let mut h = engram::storage::IndexSpec::default();
    let obj = settings.as_object().ok_or("settings must be a jsonb object")?;
    for (k, v) in obj {
        let n = v.as_u64().map(|n| n as usize);
        match (k.as_str(), n) {
            ("m", Some(m @ 2..=128)) => h.m = m as u32,
            ("ef_construction", Some(e @ 1..=4096)) => h.ef_construction = e as u32,
            ("m" | "ef_construction", _) => {
                return Err(format!(
                    "setting {k} = {v} is invalid: m must be an integer from 2 to 128, ef_construction from 1 to 4096"
                ))
            }
            _ => return Err(format!("unknown setting {k:?}: use m, ef_construction")),
        }
    }
    Ok(h)
}

thread_local! {
    /// Plans of the catalog reads every call makes, prepared once per
    /// backend (PostgreSQL re-plans them if the tables change).
    static KEPT: RefCell<HashMap<&'static str, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// The kept plan of `sql`, taken out of the cache (prepared with argument
/// types `types` on first use; `mutating` for a write). Put it back after use.
fn take_kept(
    c: &pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[PgBuiltInOids],
    mutating: bool,
) -> Result<OwnedPreparedStatement, pgrx::spi::Error> {
    if let Some(s) = KEPT.with(|k| k.borrow_mut().remove(sql)) {
        return Ok(s);
    }
    let oids: Vec<PgOid> = types.iter().map(|t| PgOid::BuiltIn(*t)).collect();
    Ok(if mutating {
        c.prepare_mut(sql, &oids)?.keep()
    } else {
        c.prepare(sql, &oids)?.keep()
    })
}

/// Run the kept plan of `sql` with `args`, handing its rows to `f`.
fn with_kept<R>(
    sql: &'static str,
    types: &[PgBuiltInOids],
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(pgrx::spi::SpiTupleTable<'_>) -> Result<R, pgrx::spi::Error>,
) -> R {
    as_owner(|| {
        Spi::connect(|c| {
            let stmt = take_kept(c, sql, types, false)?;
            let result = c.select(&stmt, None, args).and_then(f);
            KEPT.with(|k| k.borrow_mut().insert(sql, stmt));
            result
        })
    })
    .unwrap_or_else(|e| {
        user_error(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("engram: catalog read failed: {e}"),
        )
    })
}

/// Run the kept plan of the write `sql` with `args`, as the extension's
/// owner: a statement run once per row (an insert of `insert_many`) is
/// parsed and planned once per backend, not once per row.
pub fn write_kept(what: &str, sql: &'static str, types: &[PgBuiltInOids], args: &[pgrx::datum::DatumWithOid<'_>]) {
    as_owner(|| {
        Spi::connect_mut(|c| {
            let stmt = take_kept(c, sql, types, true)?;
            let result = c.update(&stmt, None, args).map(|_| ());
            KEPT.with(|k| k.borrow_mut().insert(sql, stmt));
            result
        })
    })
    .unwrap_or_else(|e| user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: {what} failed: {e}")))
}

/// The kind of a generator store.
pub const GENERATOR: &str = "generator";

const FIND: &str = "SELECT dim, uid, watermark, settings, engram.privilege_of(name, $2, $3::regrole), kind \
                    FROM engram.stores WHERE name = $1";

/// The catalog row of `name` and whether the caller has `need` on it, if
/// the store exists.
fn find_with(name: &str, need: Need) -> Option<(StoreRow, bool)> {
    with_kept(
        FIND,
        &[PgBuiltInOids::TEXTOID, PgBuiltInOids::TEXTOID, PgBuiltInOids::OIDOID],
        &[name.into(), need.word().into(), caller().into()],
        |t| {
            if t.is_empty() {
                return Ok(None);
            }
            let r = t.first();
            let settings = r.get::<pgrx::JsonB>(4)?.map(|j| j.0).unwrap_or_default();
            let kind = r.get::<String>(6)?.unwrap_or_default();
            let row = StoreRow {
                dim: r.get::<i32>(1)?.unwrap_or(0) as u32,
                uid: r.get::<String>(2)?.unwrap_or_default(),
                watermark: r.get::<i64>(3)?.unwrap_or(0) as u64,
                // Validated at creation; a hand-edited catalog falls back to defaults.
                index: if kind == GENERATOR {
                    Default::default()
                } else {
                    hnsw_settings(&settings).unwrap_or_default()
                },
                kind,
                settings,
            };
            Ok(Some((row, r.get::<bool>(5)?.unwrap_or(false))))
        },
    )
}

const PRIVILEGE: &str = "SELECT engram.privilege_of($1, $2, $3::regrole)";

/// Whether `role` may use `store` for `privilege` (the rule of
/// `engram.privilege_of`, read as the extension's owner).
pub fn privilege(store: &str, privilege: &str, role: pgrx::pg_sys::Oid) -> bool {
    with_kept(
        PRIVILEGE,
        &[PgBuiltInOids::TEXTOID, PgBuiltInOids::TEXTOID, PgBuiltInOids::OIDOID],
        &[store.into(), privilege.into(), role.into()],
        |t| Ok(!t.is_empty() && t.first().get::<bool>(1)?.unwrap_or(false)),
    )
}

/// The catalog row of `name`, if the store exists.
pub fn find(name: &str) -> Option<StoreRow> {
    find_with(name, Need::Read).map(|(row, _)| row)
}

/// The catalog row of `name` once the caller is known to have `need` on it:
/// ERROR 42704 if there is no such store, 42501 without the right. One
/// catalog read, with a plan kept across calls.
pub fn get_for(name: &str, need: Need) -> StoreRow {
    match find_with(name, need) {
        None => user_error(Code::ERRCODE_UNDEFINED_OBJECT, format!("store {name:?} does not exist")),
        Some((_, false)) => user_error(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to {} store {name:?}: ask its owner for engram.grant()",
                need.word()
            ),
        ),
        Some((row, true)) => row,
    }
}

/// The catalog row of `name`, or ERROR 42704.
pub fn get(name: &str) -> StoreRow {
    find(name).unwrap_or_else(|| user_error(Code::ERRCODE_UNDEFINED_OBJECT, format!("store {name:?} does not exist")))
}

/// What a caller needs on a store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Read rows.
    Read,
    /// Write rows (implies read).
    Write,
}

impl Need {
    fn word(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
        }
    }
}

/// An SPI failure inside a catalog statement: an internal error (XX000),
/// never swallowed.
fn spi_failed(what: &str, e: pgrx::spi::Error) -> ! {
    user_error(Code::ERRCODE_INTERNAL_ERROR, format!("engram: {what} failed: {e}"))
}

/// ERROR 42501 with `denied` unless `sql`, given the store name and the
/// calling role, answers true.
fn check(name: &str, sql: &str, extra: Option<&str>, denied: String) {
    let role = caller();
    let ok = as_owner(|| match extra {
        Some(x) => Spi::get_one_with_args::<bool>(sql, &[name.into(), role.into(), x.into()]),
        None => Spi::get_one_with_args::<bool>(sql, &[name.into(), role.into()]),
    });
    match ok {
        Ok(Some(true)) => {}
        // No row: the store is gone (checked before), so no right either.
        Ok(_) | Err(pgrx::spi::Error::InvalidPosition) => user_error(Code::ERRCODE_INSUFFICIENT_PRIVILEGE, denied),
        Err(e) => spi_failed("a privilege check", e),
    }
}

/// ERROR 42501 unless the calling role has `need` on store `name`.
pub fn require(name: &str, need: Need) {
    check(
        name,
        "SELECT engram.privilege_of($1, $3, $2::regrole)",
        Some(need.word()),
        format!(
            "permission denied to {} store {name:?}: ask its owner for engram.grant()",
            need.word()
        ),
    );
}

/// ERROR 42501 unless the calling role owns store `name` (or is superuser).
pub fn require_owner(name: &str) {
    check(
        name,
        "SELECT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = $2) \
                OR pg_catalog.pg_has_role($2, s.owner, 'MEMBER') \
         FROM engram.stores s WHERE s.name = $1",
        None,
        format!("must be the owner of store {name:?}"),
    );
}

/// Lock the store's catalog row until the transaction ends and return its
/// latest committed watermark. While the lock is held no writer of the store
/// can commit (each takes the row at commit), and a writer that committed
/// before it has published.
pub fn lock(name: &str) -> u64 {
    let w = as_owner(|| {
        Spi::get_one_with_args::<i64>(
            // NO KEY UPDATE: the lock writers take at pre-commit (their
            // watermark UPDATE), so none commits meanwhile; but not one
            // that conflicts with the KEY SHARE lock the foreign key of
            // engram.rows takes on every insert. (FOR UPDATE did: a repair
            // queued behind an insert's KEY SHARE, and that insert's commit
            // then queued behind the repair — a deadlock.)
            "SELECT watermark FROM engram.stores WHERE name = $1 FOR NO KEY UPDATE",
            &[name.into()],
        )
    });
    match w {
        Ok(Some(w)) => w as u64,
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => {
            user_error(Code::ERRCODE_UNDEFINED_OBJECT, format!("store {name:?} does not exist"))
        }
        Err(e) => spi_failed("locking the store's catalog row", e),
    }
}

/// At commit: count one change of `name` and return its watermark (`None`
/// if the store was dropped meanwhile). The row lock this takes is held to
/// the end of the commit, so watermarks follow commit order.
pub fn take_watermark(name: &str) -> Option<u64> {
    let w = as_owner(|| {
        Spi::get_one_with_args::<i64>(
            "UPDATE engram.stores SET watermark = watermark + 1 WHERE name = $1 RETURNING watermark",
            &[name.into()],
        )
    });
    match w {
        Ok(w) => w.map(|w| w as u64),
        Err(pgrx::spi::Error::InvalidPosition) => None,
        Err(e) => spi_failed("counting a change of the store", e),
    }
}

/// `n` new row ids: increasing, never given out again (a sequence, so no
/// lock is held until commit).
pub fn new_ids(n: i64) -> Vec<u64> {
    let ids = as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT pg_catalog.nextval('engram.row_id') FROM pg_catalog.generate_series(1, $1)",
                None,
                &[n.into()],
            )?;
            t.map(|r| r.get::<i64>(1).map(|v| v.unwrap_or(0) as u64))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    ids.unwrap_or_else(|e| spi_failed("taking row ids", e))
}
