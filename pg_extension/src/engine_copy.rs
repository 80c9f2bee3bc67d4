//! Each backend's handles on the engine copies of stores, and how a copy is
//! brought back in step with the truth tables.
//!
//! A copy is in step when its watermark equals the catalog's. It falls
//! behind when a commit's publish did not happen (crash between commit and
//! publish, or the directory was restored from an older copy); it is ahead
//! when it reflects commits the database no longer has (restore of the
//! database alone). Behind is repaired incrementally from the difference of
//! row ids; ahead, missing, corrupt or foreign copies are rebuilt.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use engram::storage::{Mode, RowId, Schema, Store, StoreOptions, SyncPolicy, TableId, WriteBatch, WriterLock};
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::backend::{data_dir, database_oid, interrupt_pending, uses_transaction_snapshot};
use crate::catalog::{self, Need, StoreRow};
use crate::convert;
use crate::errors::OrRaise;

/// The engine table that holds a generic store's rows.
pub const TABLE: &str = "rows";
/// Rows fetched per cursor step when reading `engram.rows`.
const FETCH_ROWS: i64 = 2000;

/// An open engine copy of one store.
pub struct Handle {
    pub store: Store,
    pub table: TableId,
    /// Key dimension of the store.
    pub dim: u32,
    /// The engine table's schema (`convert::rows_schema`).
    pub schema: Arc<Schema>,
    uid: String,
}

thread_local! {
    static HANDLES: RefCell<HashMap<String, Rc<Handle>>> = RefCell::new(HashMap::new());
}

/// `$PGDATA/pg_engram/<database oid>/<name>`: store names are unique per
/// database, not per cluster. Names are validated at creation (letters,
/// digits, `_`, `-`), so they cannot leave that directory.
pub fn dir_of(name: &str) -> PathBuf {
    data_dir().join("pg_engram").join(database_oid().to_string()).join(name)
}

/// Forget this backend's handle on `name`.
pub fn forget(name: &str) {
    HANDLES.with(|h| h.borrow_mut().remove(name));
}

/// This backend's cached handle on `name`, if any.
pub fn cached(name: &str) -> Option<Rc<Handle>> {
    HANDLES.with(|h| h.borrow().get(name).cloned())
}

fn options(cat: &StoreRow) -> StoreOptions {
    StoreOptions {
        mode: Mode::Reader,
        tag: cat.uid.clone(),
        indexer: Some(Arc::new(crate::catalog::indexer())),
        memtable_bytes: crate::gucs::MEMTABLE_SIZE.get().max(64) as usize * 1024,
        ..StoreOptions::default()
    }
}

/// Flush and merge the copy under the writer role: afterwards every row is
/// in one segment with a graph.
pub fn optimize(h: &Handle) -> engram::Result<engram::storage::MergeReport> {
    let mut report = None;
    write_locked(&h.store, |s| {
        report = Some(s.optimize()?);
        Ok(())
    })?;
    Ok(report.unwrap_or_default())
}

fn open(name: &str, cat: &StoreRow) -> Option<Rc<Handle>> {
    let dir = dir_of(name);
    if !dir.exists() {
        return None;
    }
    let store = match Store::open(&dir, options(cat)) {
        Ok(s) => s,
        Err(e) => {
            tell(&format!(
                "engram: engine copy of store {name:?} is unusable ({e}); rebuilding it from engram.rows"
            ));
            return None;
        }
    };
    let table = store.table(TABLE).ok()?;
    let schema = store.schema(table).ok()?;
    // Another tag is a foreign copy; another schema, one of another format
    // or dimension: both are rebuilt.
    let fits = store.tag().ok()? == cat.uid && *schema == cat.schema();
    fits.then(|| {
        Rc::new(Handle {
            store,
            table,
            dim: cat.dim,
            schema,
            uid: cat.uid.clone(),
        })
    })
}

/// Open store `name` for a caller that needs `need`, bringing its engine copy
/// in step with the tables first if it is not.
///
/// Within a transaction that already changed the store, the copy is used as
/// it is: it cannot reflect those changes before commit, and repairing it
/// now would publish them early.
pub fn attach(name: &str, need: Need) -> Rc<Handle> {
    let cat = catalog::get_for(name, need);
    let cached = cached(name).filter(|h| h.uid == cat.uid);
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
    let absent = cached.is_none() && !dir_of(name).exists();
    let handle = cached.or_else(|| open(name, &cat));
    if let Some(h) = &handle {
        match wait_in_step(h, cat.watermark) {
            Step::Level => {
                remember(name, h);
                return h.clone();
            }
            // A snapshot taken at transaction start may predate commits the
            // copy already holds: "ahead" is only judged from a fresh read.
            Step::Ahead if uses_transaction_snapshot() => {
                remember(name, h);
                return h.clone();
            }
            _ => {}
        }
    }
    // Out of step: hold the store's row lock so no writer commits meanwhile.
    let latest = catalog::lock(name);
    let handle = match handle {
        None if absent => open(name, &cat),
        handle => handle,
    };
    let h = match handle {
        Some(h) => {
            // An unreadable copy (its files removed or damaged under us) is
            // rebuilt like a missing one.
            let repaired = match h.store.watermark() {
                Ok(w) if w == latest => Ok(()),
                Ok(w) if w < latest => match catch_up(name, &h, latest) {
                    Ok(()) => Ok(()),
                    // Another backend holds the copy's writer role (an
                    // `engram.optimize`, most likely): rebuilding would swap
                    // the directory under its feet. Wait for it instead.
                    Err(e @ engram::Error::WriterLocked { .. }) => busy(name, &e),
                    Err(e) => Err(format!("catching up failed: {e}")),
                },
                Ok(w) => Err(format!("the copy is at watermark {w}, ahead of the tables' {latest}")),
                Err(e) => Err(format!("the copy is unreadable: {e}")),
            };
            match repaired {
                Ok(()) => h,
                Err(why) => {
                    log!("engram: store {name:?}: {why}; rebuilding its engine copy");
                    rebuild(name, &cat, latest)
                }
            }
        }
        None => rebuild(name, &cat, latest),
    };
    remember(name, &h);
    h
}

/// Another backend holds the copy's writer role (an `engram.optimize`, most
/// likely): ERROR 55P03 rather than touch the copy under its feet.
fn busy(name: &str, e: &engram::Error) -> ! {
    crate::errors::user_error(
        pgrx::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!("engram: the engine copy of store {name:?} is busy ({e}); try again when engram.optimize has finished"),
    )
}

/// A repair the caller should hear of (NOTICE) and the server log keep (LOG).
fn tell(msg: &str) {
    notice!("{msg}");
    log!("{msg}");
}

fn remember(name: &str, h: &Rc<Handle>) {
    HANDLES.with(|m| m.borrow_mut().insert(name.to_string(), h.clone()));
}

/// Where an engine copy stands against the catalog watermark.
enum Step {
    Level,
    Behind,
    Ahead,
    Unreadable,
}

/// A writer that committed moments ago publishes right after its commit
/// becomes visible: give it a brief moment before treating the copy as behind.
fn wait_in_step(h: &Handle, watermark: u64) -> Step {
    for _ in 0..100 {
        match h.store.watermark() {
            Ok(w) if w == watermark => return Step::Level,
            Ok(w) if w > watermark => return Step::Ahead,
            Ok(_) if interrupt_pending() => return Step::Behind,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return Step::Unreadable,
        }
    }
    Step::Behind
}

/// Run `f` with the copy's writer role, which is given back on return and
/// also if `f` raises an ERROR (unwinding through here).
fn write_locked<T>(store: &Store, f: impl FnOnce(&Store) -> engram::Result<T>) -> engram::Result<T> {
    store.begin_write(Duration::from_secs(30), &interrupt_pending)?;
    struct GiveBack<'a>(&'a Store);
    impl Drop for GiveBack<'_> {
        fn drop(&mut self) {
            let _ = self.0.end_write();
        }
    }
    let guard = GiveBack(store);
    let r = f(store);
    std::mem::forget(guard);
    let end = store.end_write();
    r.and_then(|v| end.map(|()| v))
}

/// Bytes of changes per write while catching up or rebuilding: far below
/// one log record's limit whatever the rows (each is at most
/// `MAX_ROW_BYTES`), and small enough to bound memory.
const CHUNK_BYTES: usize = 32 << 20;

/// Changes streamed into a copy in writes of about `CHUNK_BYTES`; only the
/// last write carries the new watermark, so a copy interrupted half-way is
/// still "behind" and is repaired again on its next use.
struct Chunks<'a> {
    store: &'a Store,
    table: TableId,
    batch: WriteBatch,
    bytes: usize,
    error: Option<engram::Error>,
}

impl<'a> Chunks<'a> {
    fn new(store: &'a Store, table: TableId) -> Self {
        Chunks {
            store,
            table,
            batch: WriteBatch::new(),
            bytes: 0,
            error: None,
        }
    }

    fn delete(&mut self, id: u64) {
        self.batch.delete(self.table, RowId(id));
        self.grew(16);
    }

    fn insert(&mut self, id: u64, row: engram::storage::Row) {
        let bytes = row.log_bytes();
        self.batch.insert(self.table, RowId(id), row);
        self.grew(bytes);
    }

    fn grew(&mut self, bytes: usize) {
        self.bytes += bytes;
        if self.bytes >= CHUNK_BYTES && self.error.is_none() {
            if let Err(e) = self.store.write(std::mem::take(&mut self.batch)) {
                self.error = Some(e);
            }
            self.bytes = 0;
        }
    }

    fn finish(mut self, watermark: u64) -> engram::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.batch.set_watermark(watermark);
        self.store.write(std::mem::take(&mut self.batch)).map(|_| ())
    }
}

/// Apply the difference between the engine's live ids and the table's ids.
fn catch_up(name: &str, h: &Handle, latest: u64) -> engram::Result<()> {
    write_locked(&h.store, |s| {
        // Read the copy only under its writer role: a commit's publish that
        // was still on its way when we looked (its transaction committed
        // before we locked the store's row) has landed by now, and any later
        // one finds the copy moved on and leaves it alone.
        if s.watermark()? == latest {
            return Ok(());
        }
        let engine: BTreeSet<u64> = s.live_ids(h.table)?.into_iter().map(|r| r.0).collect();
        let truth: BTreeSet<u64> = Spi::connect(|c| {
            let t = c.select("SELECT id FROM engram.rows WHERE store = $1", None, &[name.into()])?;
            t.map(|r| r.get::<i64>(1).map(|v| v.unwrap_or(0) as u64))
                .collect::<Result<_, _>>()
        })
        .map_err(|e| engram::Error::InvalidArgument(e.to_string()))?;
        let missing: Vec<i64> = truth.difference(&engine).map(|i| *i as i64).collect();
        let mut chunks = Chunks::new(s, h.table);
        for id in engine.difference(&truth) {
            chunks.delete(*id);
        }
        let schema = h.schema.clone();
        load_rows(name, &schema, Some(missing), |id, row| chunks.insert(id, row));
        chunks.finish(latest)
    })?;
    notice!("engram: caught up the engine copy of store {name:?} to watermark {latest}");
    Ok(())
}

/// Stream rows of store `name` (all, or those with the given ids) in id order.
fn load_rows(name: &str, schema: &Schema, only: Option<Vec<i64>>, mut each: impl FnMut(u64, engram::storage::Row)) {
    let (sql, args): (&str, Vec<pgrx::datum::DatumWithOid>) = match &only {
        None => (
            "SELECT id, key, body, meta FROM engram.rows WHERE store = $1 ORDER BY id",
            vec![name.into()],
        ),
        Some(ids) => (
            "SELECT id, key, body, meta FROM engram.rows WHERE store = $1 AND id = ANY($2) ORDER BY id",
            vec![name.into(), ids.clone().into()],
        ),
    };
    Spi::connect(|c| {
        let mut cursor = c.open_cursor(sql, &args);
        loop {
            let t = cursor.fetch(FETCH_ROWS)?;
            if t.is_empty() {
                break;
            }
            for r in t {
                let id = r.get::<i64>(1)?.unwrap_or(0) as u64;
                let key = r.get::<Vec<f32>>(2)?.unwrap_or_default();
                let body = r.get::<String>(3)?.unwrap_or_default();
                let meta = r.get::<JsonB>(4)?.map(|j| j.0).unwrap_or_default();
                each(id, convert::row(schema, key, body, &meta));
            }
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| {
        crate::errors::user_error(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("engram: reading engram.rows failed: {e}"),
        )
    });
}

/// Rebuild the engine copy of `name` from the tables, at watermark `latest`.
/// Built aside and swapped in, so a failure leaves the old copy in place.
/// Caller holds the store's row lock.
pub fn rebuild(name: &str, cat: &StoreRow, latest: u64) -> Rc<Handle> {
    forget(name);
    let dir = dir_of(name);
    // Hold the old copy's writer role across the swap, so that no backend
    // (an `engram.optimize`, a publish at commit) writes into the directory
    // being replaced. A copy too damaged to lock has no writer to wait for.
    let _role = match WriterLock::acquire(&dir, Duration::from_secs(30), &interrupt_pending) {
        Ok(role) => Some(role),
        Err(e @ engram::Error::WriterLocked { .. }) => busy(name, &e),
        Err(engram::Error::Cancelled) => {
            pgrx::check_for_interrupts!();
            crate::errors::raise(engram::Error::Cancelled)
        }
        Err(_) => None,
    };
    let parent = dir.parent().map(PathBuf::from).unwrap_or_default();
    let fresh = parent.join(format!("{name}.rebuild"));
    let old = parent.join(format!("{name}.old"));
    let io = |p: &std::path::Path, e: std::io::Error| engram::Error::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&old);
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e)).or_raise();
    let opts = StoreOptions {
        mode: Mode::Writer,
        sync: SyncPolicy::Off,
        // One graph over every row, built at the end.
        index_on_flush: false,
        ..options(cat)
    };
    let rows = {
        let store = Store::create(&fresh, opts).or_raise();
        let schema = cat.schema();
        let table = store.create_table(TABLE, schema.clone()).or_raise();
        let mut chunks = Chunks::new(&store, table);
        let mut total = 0u64;
        load_rows(name, &schema, None, |id, row| {
            chunks.insert(id, row);
            total += 1;
        });
        chunks.finish(latest).or_raise();
        store.flush().or_raise();
        // A rebuilt copy is searched through a graph from the start.
        store.merge().or_raise();
        store.sync().or_raise();
        total
    };
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(|e| io(&dir, e)).or_raise();
    }
    std::fs::rename(&fresh, &dir).map_err(|e| io(&dir, e)).or_raise();
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    let _ = std::fs::remove_dir_all(&old);
    if rows > 0 || latest > 0 {
        tell(&format!(
            "engram: rebuilt the engine copy of store {name:?} from engram.rows ({rows} rows, watermark {latest})"
        ));
    }
    let h = open(name, cat).unwrap_or_else(|| {
        crate::errors::user_error(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("engram: rebuilt copy of store {name:?} does not open"),
        )
    });
    remember(name, &h);
    h
}
