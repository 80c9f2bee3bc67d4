//! When an engine copy is repaired, and the SPI row source copies are
//! derived from (the handles themselves are kept by `handles`).
//!
//! A copy is in step when its watermark equals the catalog's. It falls
//! behind when a commit's publish did not happen (crash between commit and
//! publish, or the directory was restored from an older copy); it is ahead
//! when it reflects commits the database no longer has (restore of the
//! database alone). The protocol itself — publish at a base, catch up by
//! the difference of ids, rebuild aside and swap, all under the copy's
//! writer role — is `engram::derived`; this module decides when to use it.

use std::rc::Rc;
use std::time::Duration;

use engram::derived::{CopySpec, DerivedCopy, Opened, RoleWait, RowSource, Step};
use engram::storage::{Row, Schema};
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::backend::{as_owner, interrupt_pending, uses_transaction_snapshot};
use crate::catalog::{self, Need, StoreRow};
use crate::convert;
use crate::errors::OrRaise;
use crate::handles::{self, Handle};

/// The engine table that holds a generic store's rows.
pub const TABLE: &str = "rows";
/// Rows fetched per cursor step when reading `engram.rows`.
const FETCH_ROWS: i64 = 2000;

/// What a store's copy is: table `rows` of the store's schema, its source
/// ids in column `id`, tagged with the store's `uid`; for a generator,
/// table `docs` and everything learned from it.
fn spec(cat: &StoreRow) -> CopySpec {
    if cat.is_generator() {
        let (settings, _) = crate::generation::settings_of(&cat.settings)
            .unwrap_or_else(|why| crate::errors::user_error(pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, why));
        let copy = engram::generate::model::GeneratorCopy::new(settings).or_raise();
        return CopySpec {
            tag: cat.uid.clone(),
            table: "docs".into(),
            schema: cat.schema(),
            source_id: engram::generate::model::DOC_ID.into(),
            deriver: Some(std::sync::Arc::new(copy)),
        };
    }
    CopySpec {
        tag: cat.uid.clone(),
        table: TABLE.into(),
        schema: cat.schema(),
        source_id: convert::SOURCE_ID.into(),
        deriver: None,
    }
}

/// The handle on an opened copy: with its generator, for a generator store.
fn handle(copy: DerivedCopy, cat: &StoreRow) -> Rc<Handle> {
    let generator = cat
        .is_generator()
        .then(|| engram::generate::Generator::open(copy.store()).or_raise());
    Rc::new(Handle {
        copy,
        generator,
        dim: cat.dim,
        uid: cat.uid.clone(),
    })
}

/// The writer role of a copy: up to 30 s, stopping early on a query cancel.
fn wait() -> RoleWait<'static> {
    RoleWait {
        timeout: Duration::from_secs(30),
        cancelled: &interrupt_pending,
    }
}

/// Flush and merge the copy under the writer role: afterwards every row is
/// in one segment with a graph.
pub fn optimize(h: &Handle) -> engram::Result<engram::storage::MergeReport> {
    h.copy.optimize(wait())
}

fn open(name: &str, cat: &StoreRow) -> Option<Rc<Handle>> {
    match DerivedCopy::open(&handles::dir_of(name), handles::options(), &spec(cat)).or_raise() {
        Opened::Usable(copy) => Some(handle(*copy, cat)),
        Opened::Missing => None,
        Opened::Unusable(why) => {
            tell(&format!(
                "engram: engine copy of store {name:?} is unusable ({}); rebuilding it from engram.rows",
                crate::errors::scrub(&why)
            ));
            None
        }
    }
}

/// Open store `name` for a caller that needs `need`, bringing its engine copy
/// in step with the tables first if it is not.
///
/// Within a transaction that already changed the store, the copy is used as
/// it is: it cannot reflect those changes before commit, and repairing it
/// now would publish them early.
pub fn attach(name: &str, need: Need) -> Rc<Handle> {
    attach_with(name, need).0
}

/// [`attach`], with the catalog row it read (one catalog read for both).
pub fn attach_with(name: &str, need: Need) -> (Rc<Handle>, StoreRow) {
    let cat = catalog::get_for(name, need);
    (attach_to(name, &cat), cat)
}

fn attach_to(name: &str, cat: &StoreRow) -> Rc<Handle> {
    let cached = handles::cached(name).filter(|h| h.uid == cat.uid);
    if crate::txn::has_pending(name) {
        // Repairing now would read this transaction's own uncommitted rows
        // and publish them before commit.
        return cached.unwrap_or_else(|| {
            crate::errors::user_error(
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("store {name:?} was dropped and recreated in this transaction; commit before using it again"),
            )
        });
    }
    // Whether a copy was there to open: if not, another backend may make it
    // while we wait for the row lock below.
    let absent = cached.is_none() && !handles::dir_of(name).exists();
    let handle = cached.or_else(|| open(name, cat));
    if let Some(h) = &handle {
        match wait_in_step(h, cat.watermark) {
            InStep::Level => {
                handles::remember(name, h);
                return h.clone();
            }
            // A snapshot taken at transaction start may predate commits the
            // copy already holds: "ahead" is only judged from a fresh read.
            InStep::Ahead if uses_transaction_snapshot() => {
                handles::remember(name, h);
                return h.clone();
            }
            _ => {}
        }
    }
    // Out of step: hold the store's row lock so no writer commits meanwhile.
    let latest = catalog::lock(name);
    // Every commit up to `latest` is now either publishing (its backend is in
    // its commit callback) or lost (its backend died, or its publish failed).
    // Give the publishing ones time: repairing ahead of them would make them
    // find the copy past their base.
    if let Some(h) = &handle {
        if let InStep::Level = settle(h, latest) {
            handles::remember(name, h);
            return h.clone();
        }
    }
    let handle = match handle {
        None if absent => open(name, cat),
        handle => handle,
    };
    let h = match handle {
        Some(h) => {
            // An unreadable copy (its files removed or damaged under us) is
            // rebuilt like a missing one.
            let repaired = match h.copy.watermark() {
                Ok(w) if w == latest => Ok(()),
                Ok(w) if w < latest => match h
                    .copy
                    .catch_up(latest, &mut SpiSource::new(name, h.schema(), cat), wait())
                {
                    Ok(Step::Applied) => {
                        tell(&format!(
                            "engram: caught up the engine copy of store {name:?} to watermark {latest}"
                        ));
                        Ok(())
                    }
                    Ok(step) => Err(format!("catching up found the copy {step:?}")),
                    // Another backend holds the copy's writer role (an
                    // `engram.optimize`, most likely): rebuilding would swap
                    // the directory under its feet. Wait for it instead.
                    Err(e @ engram::Error::WriterLocked { .. }) => busy(name, &e),
                    Err(engram::Error::Cancelled) => cancelled(),
                    Err(e) => Err(format!("catching up failed: {e}")),
                },
                Ok(w) => Err(format!("the copy is at watermark {w}, ahead of the tables' {latest}")),
                Err(e) => Err(format!("the copy is unreadable: {e}")),
            };
            match repaired {
                Ok(()) => h,
                Err(why) => {
                    log!("engram: store {name:?}: {why}; rebuilding its engine copy");
                    rebuild(name, cat, latest)
                }
            }
        }
        None => rebuild(name, cat, latest),
    };
    handles::remember(name, &h);
    h
}

/// [`attach`] for the functions of stores of kind `rows`: a generator is
/// ERROR 42809 (wrong object type).
pub fn attach_rows(name: &str, need: Need) -> Rc<Handle> {
    let h = attach(name, need);
    if h.generator.is_some() {
        crate::errors::user_error(
            pgrx::PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("store {name:?} is a generator: use engram.learn, engram.generate and engram.score"),
        );
    }
    h
}

/// Another backend holds the copy's writer role (an `engram.optimize`, most
/// likely): ERROR 55P03 rather than touch the copy under its feet.
fn busy(name: &str, e: &engram::Error) -> ! {
    crate::errors::user_error(
        pgrx::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!(
            "engram: the engine copy of store {name:?} is busy ({}); try again when engram.optimize has finished",
            crate::errors::scrub(&e.to_string())
        ),
    )
}

/// A wait for the writer role ended by a query cancel.
fn cancelled() -> ! {
    pgrx::check_for_interrupts!();
    crate::errors::raise(engram::Error::Cancelled)
}

/// A repair the caller should hear of (NOTICE) and the server log keep (LOG).
fn tell(msg: &str) {
    notice!("{msg}");
    log!("{msg}");
}

/// Where an engine copy stands against the catalog watermark.
enum InStep {
    Level,
    Behind,
    Ahead,
    Unreadable,
}

/// With the row lock held: wait up to 2 s for publishes on their way to
/// bring the copy to `latest`.
fn settle(h: &Handle, latest: u64) -> InStep {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match h.copy.watermark() {
            Ok(w) if w == latest => return InStep::Level,
            Ok(w) if w > latest => return InStep::Ahead,
            Ok(_) if interrupt_pending() || std::time::Instant::now() > deadline => return InStep::Behind,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return InStep::Unreadable,
        }
    }
}

/// A writer that committed moments ago publishes right after its commit
/// becomes visible: give it a brief moment before treating the copy as behind.
fn wait_in_step(h: &Handle, watermark: u64) -> InStep {
    for _ in 0..100 {
        match h.copy.watermark() {
            Ok(w) if w == watermark => return InStep::Level,
            Ok(w) if w > watermark => return InStep::Ahead,
            Ok(_) if interrupt_pending() => return InStep::Behind,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return InStep::Unreadable,
        }
    }
    InStep::Behind
}

/// The rows of one store in `engram.rows` (`engram.documents` for a
/// generator), through SPI (as the extension's
/// owner: the truth table is not the caller's to read).
struct SpiSource<'a> {
    name: &'a str,
    schema: &'a Schema,
    /// Rows of `engram.documents` (a generator's), not of `engram.rows`.
    documents: bool,
}

impl<'a> SpiSource<'a> {
    fn new(name: &'a str, schema: &'a Schema, cat: &StoreRow) -> SpiSource<'a> {
        SpiSource {
            name,
            schema,
            documents: cat.is_generator(),
        }
    }
}

fn spi_failed(e: pgrx::spi::Error) -> engram::Error {
    engram::Error::Internal(format!("reading engram.rows failed: {e}"))
}

impl RowSource for SpiSource<'_> {
    fn ids(&mut self) -> engram::Result<Vec<u64>> {
        as_owner(|| {
            Spi::connect(|c| {
                let sql = if self.documents {
                    "SELECT id FROM engram.documents WHERE store = $1"
                } else {
                    "SELECT id FROM engram.rows WHERE store = $1"
                };
                let t = c.select(sql, None, &[self.name.into()])?;
                t.map(|r| r.get::<i64>(1).map(|v| v.unwrap_or(0) as u64))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .map_err(spi_failed)
    }

    fn rows(
        &mut self,
        only: Option<&[u64]>,
        each: &mut dyn FnMut(u64, Row) -> engram::Result<()>,
    ) -> engram::Result<()> {
        let (all, some) = if self.documents {
            (
                "SELECT id, NULL::real[], body, meta FROM engram.documents WHERE store = $1 ORDER BY id",
                "SELECT id, NULL::real[], body, meta FROM engram.documents WHERE store = $1 AND id = ANY($2) ORDER BY id",
            )
        } else {
            (
                "SELECT id, key, body, meta FROM engram.rows WHERE store = $1 ORDER BY id",
                "SELECT id, key, body, meta FROM engram.rows WHERE store = $1 AND id = ANY($2) ORDER BY id",
            )
        };
        let (sql, args): (&str, Vec<pgrx::datum::DatumWithOid>) = match only {
            None => (all, vec![self.name.into()]),
            Some(ids) => (
                some,
                vec![
                    self.name.into(),
                    ids.iter().map(|i| *i as i64).collect::<Vec<i64>>().into(),
                ],
            ),
        };
        as_owner(|| {
            Spi::connect(|c| {
                let mut cursor = c.open_cursor(sql, &args);
                loop {
                    let t = cursor.fetch(FETCH_ROWS).map_err(spi_failed)?;
                    if t.is_empty() {
                        return Ok(());
                    }
                    for r in t {
                        let id = r.get::<i64>(1).map_err(spi_failed)?.unwrap_or(0) as u64;
                        let key = r.get::<Vec<f32>>(2).map_err(spi_failed)?.unwrap_or_default();
                        let body = r.get::<String>(3).map_err(spi_failed)?.unwrap_or_default();
                        let meta = r.get::<JsonB>(4).map_err(spi_failed)?.map(|j| j.0).unwrap_or_default();
                        let row = if self.documents {
                            crate::generation::document_row(self.schema, &body)
                        } else {
                            convert::row(self.schema, key, body, &meta)
                        };
                        each(id, row)?;
                    }
                }
            })
        })
    }
}

/// Rebuild the engine copy of `name` from the tables, at watermark `latest`.
/// Built aside and swapped in, so a failure leaves the old copy in place.
/// Caller holds the store's row lock.
pub fn rebuild(name: &str, cat: &StoreRow, latest: u64) -> Rc<Handle> {
    handles::forget(name);
    let spec = spec(cat);
    let (copy, done) = match DerivedCopy::rebuild(
        &handles::dir_of(name),
        handles::options(),
        &spec,
        latest,
        &mut SpiSource::new(name, &spec.schema, cat),
        wait(),
    ) {
        Ok(r) => r,
        Err(e @ engram::Error::WriterLocked { .. }) => busy(name, &e),
        Err(engram::Error::Cancelled) => cancelled(),
        Err(e) => crate::errors::raise(e),
    };
    if done.rows > 0 || latest > 0 {
        tell(&format!(
            "engram: rebuilt the engine copy of store {name:?} from engram.rows ({} rows, watermark {latest})",
            done.rows
        ));
    }
    let h = handle(copy, cat);
    handles::remember(name, &h);
    h
}
