//! Changes made by the current transaction, and their publish at commit.
//!
//! Each insert and delete is recorded with its (sub)transaction level; the
//! rows themselves go to a spool — memory, then an unlinked temporary file
//! past [`SPOOL_MEMORY`] — so a transaction of any size is never held whole
//! in the backend's heap. ROLLBACK and ROLLBACK TO SAVEPOINT forget what
//! they undo.
//!
//! At `PRE_COMMIT` (errors are still possible, and SQL still runs) each
//! store with a net change takes its watermark: `UPDATE engram.stores SET
//! watermark = watermark + 1`. The row lock this takes is held only from
//! there to the end of the commit, so writers of a store do not queue
//! behind each other's open transactions. At `COMMIT` (no error is possible
//! any more) the net change is published to the engine copy at that
//! watermark through `engram::derived` (the writer role released on every
//! path, panics included); a copy that is out of turn, or a publish that
//! fails, is repaired from the tables on the copy's next use.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use engram::derived::{Change, ChangeSet, RoleWait, Step, Turn};
use engram::storage::Row;
use pgrx::prelude::*;
use pgrx::{register_subxact_callback, register_xact_callback, PgSubXactCallbackEvent, PgXactCallbackEvent};

use crate::backend::nest_level;
use crate::handles;

/// Row bytes kept in memory before the spool moves to a temporary file.
const SPOOL_MEMORY: usize = 16 << 20;

/// One recorded change: a row inserted (its bytes at `at` in the spool) or
/// deleted, by its SQL id.
struct Op {
    level: i32,
    store: String,
    id: u64,
    /// Offset and length of the inserted row's bytes; `None` for a delete.
    row: Option<(u64, u32)>,
}

/// Row bytes of the transaction: memory, then a file (written through a
/// buffer: rows are appended one by one and read back only at commit).
#[derive(Default)]
struct Spool {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    len: u64,
    /// A read moved the file's position away from its end.
    moved: bool,
}

impl Spool {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<(u64, u32)> {
        let at = self.len;
        if self.file.is_none() && self.mem.len() + bytes.len() > SPOOL_MEMORY {
            let mut f = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(handles::spool_dir()?)?);
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => {
                if std::mem::take(&mut self.moved) {
                    f.get_mut().seek(SeekFrom::End(0))?;
                }
                f.write_all(bytes)?
            }
            None => self.mem.extend_from_slice(bytes),
        }
        self.len += bytes.len() as u64;
        Ok((at, bytes.len() as u32))
    }

    fn get(&mut self, (at, len): (u64, u32)) -> std::io::Result<Vec<u8>> {
        match &mut self.file {
            Some(f) => {
                // Whatever is still buffered must be in the file before it
                // is read back (a no-op after the first read).
                f.flush()?;
                self.moved = true;
                let f = f.get_mut();
                let mut b = vec![0u8; len as usize];
                f.seek(SeekFrom::Start(at))?;
                f.read_exact(&mut b)?;
                Ok(b)
            }
            None => Ok(self.mem[at as usize..at as usize + len as usize].to_vec()),
        }
    }
}

#[derive(Default)]
struct Txn {
    ops: Vec<Op>,
    /// Recorded changes per store (of `ops`), so that asking whether the
    /// transaction changed a store — every call does — costs O(1), not a
    /// walk of all its changes.
    per_store: std::collections::HashMap<String, usize>,
    drops: Vec<(i32, String)>,
    spool: Spool,
    /// Set at pre-commit: each store's net change and the watermark it took.
    publishes: Vec<Publish>,
    hooked: bool,
}

/// A store's net change and its place in the store's history.
struct Publish {
    store: String,
    watermark: u64,
    inserts: Vec<(u64, (u64, u32))>,
    deletes: Vec<u64>,
}

thread_local! {
    static TXN: RefCell<Txn> = RefCell::new(Txn::default());
}

/// Remember that row `id` of `store` was inserted as `row`.
pub fn record_insert(store: &str, id: u64, row: &Row) {
    hook();
    let bytes = row.to_bytes().unwrap_or_else(|e| crate::errors::raise(e));
    TXN.with(|t| {
        let mut t = t.borrow_mut();
        let at = t.spool.put(&bytes).unwrap_or_else(|e| {
            crate::errors::user_error(
                pgrx::PgSqlErrorCode::ERRCODE_IO_ERROR,
                format!("engram: cannot spool the transaction's rows: {e}"),
            )
        });
        t.push(Op {
            level: nest_level(),
            store: store.to_string(),
            id,
            row: Some(at),
        });
    });
}

/// Remember that row `id` of `store` was deleted.
pub fn record_delete(store: &str, id: u64) {
    hook();
    TXN.with(|t| {
        t.borrow_mut().push(Op {
            level: nest_level(),
            store: store.to_string(),
            id,
            row: None,
        })
    });
}

/// Remove the engine copy of `store` once the transaction commits.
pub fn drop_at_commit(store: &str) {
    hook();
    TXN.with(|t| t.borrow_mut().drops.push((nest_level(), store.to_string())));
}

/// Whether this transaction changed `store`.
pub fn has_pending(store: &str) -> bool {
    TXN.with(|t| t.borrow().per_store.get(store).is_some_and(|&n| n > 0))
}

impl Txn {
    fn push(&mut self, op: Op) {
        *self.per_store.entry(op.store.clone()).or_default() += 1;
        self.ops.push(op);
    }
}

fn hook() {
    let first = TXN.with(|t| !std::mem::replace(&mut t.borrow_mut().hooked, true));
    if !first {
        return;
    }
    register_xact_callback(PgXactCallbackEvent::PreCommit, pre_commit);
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        let txn = TXN.with(|t| std::mem::take(&mut *t.borrow_mut()));
        // Nothing may unwind out of a commit callback.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| publish(txn))).is_err() {
            warning!("engram: publishing at commit failed; engine copies will be caught up on next use");
        }
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        TXN.with(|t| *t.borrow_mut() = Txn::default());
    });
    register_xact_callback(PgXactCallbackEvent::PrePrepare, || {
        crate::errors::user_error(
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "engram: PREPARE TRANSACTION is not supported for transactions that change engram stores",
        );
    });
    register_subxact_callback(PgSubXactCallbackEvent::AbortSub, |_, _| {
        let level = nest_level();
        TXN.with(|t| {
            let mut t = t.borrow_mut();
            t.ops.retain(|o| o.level < level);
            t.drops.retain(|d| d.0 < level);
            let mut per_store = std::collections::HashMap::new();
            for o in &t.ops {
                *per_store.entry(o.store.clone()).or_default() += 1;
            }
            t.per_store = per_store;
        });
    });
    register_subxact_callback(PgSubXactCallbackEvent::CommitSub, |_, _| {
        let level = nest_level();
        TXN.with(|t| {
            let mut t = t.borrow_mut();
            for o in t.ops.iter_mut().filter(|o| o.level == level) {
                o.level = level - 1;
            }
            for d in t.drops.iter_mut().filter(|d| d.0 == level) {
                d.0 = level - 1;
            }
        });
    });
}

/// A store's net change: inserted rows (id -> spool place) and deletes.
type Net = (BTreeMap<u64, (u64, u32)>, Vec<u64>);

/// Net changes per store: rows inserted and not deleted again, and deletes
/// of rows that existed before the transaction.
fn net(ops: &[Op]) -> BTreeMap<&str, Net> {
    let mut by: BTreeMap<&str, Net> = BTreeMap::new();
    for o in ops {
        let (ins, del) = by.entry(o.store.as_str()).or_default();
        match o.row {
            Some(at) => {
                ins.insert(o.id, at);
            }
            None => {
                if ins.remove(&o.id).is_none() {
                    del.push(o.id);
                }
            }
        }
    }
    by
}

/// Take a watermark for each store with a net change (errors abort the
/// commit, as they should).
fn pre_commit() {
    let publishes: Vec<Publish> = TXN.with(|t| {
        let t = t.borrow();
        net(&t.ops)
            .into_iter()
            .filter(|(store, (ins, del))| {
                let empty = ins.is_empty() && del.is_empty();
                !empty && !t.drops.iter().any(|d| d.1 == *store)
            })
            .map(|(store, (ins, del))| Publish {
                store: store.to_string(),
                watermark: 0,
                inserts: ins.into_iter().collect(),
                deletes: del,
            })
            .collect()
    });
    let publishes = crate::backend::with_snapshot(|| {
        publishes
            .into_iter()
            .filter_map(|mut p| {
                p.watermark = crate::catalog::take_watermark(&p.store)?;
                Some(p)
            })
            .collect()
    });
    TXN.with(|t| t.borrow_mut().publishes = publishes);
}

/// A store's net change, read back from the spool.
struct Spooled<'a> {
    spool: &'a mut Spool,
    publish: &'a Publish,
    schema: &'a engram::storage::Schema,
}

impl ChangeSet for Spooled<'_> {
    fn bytes(&self) -> usize {
        self.publish
            .inserts
            .iter()
            .map(|(_, (_, len))| *len as usize)
            .sum::<usize>()
            + 16 * self.publish.deletes.len()
    }

    fn replay(&mut self, each: &mut dyn FnMut(Change) -> engram::Result<()>) -> engram::Result<()> {
        // The writer role is held here: the tests inject faults where they hurt.
        match crate::gucs::fault().as_deref() {
            Some("publish_panic") => panic!("engram: injected fault publish_panic"),
            Some("publish_stall") => std::thread::sleep(Duration::from_secs(5)),
            _ => {}
        }
        for id in &self.publish.deletes {
            each(Change::Delete(*id))?;
        }
        for (id, at) in &self.publish.inserts {
            let bytes = self
                .spool
                .get(*at)
                .map_err(|e| engram::Error::Internal(format!("reading the spool: {e}")))?;
            let row = Row::from_bytes(&bytes)?.normalize("spool", self.schema)?;
            each(Change::Insert(*id, row))?;
        }
        Ok(())
    }
}

/// How many times (2 ms apart) a commit waits for earlier commits to publish
/// (they are in their own commit callbacks, a role away).
const PUBLISH_WAITS: u32 = 1000;

fn publish(mut txn: Txn) {
    for (_, name) in &txn.drops {
        handles::forget(name);
        let _ = std::fs::remove_dir_all(handles::dir_of(name));
    }
    let publishes = std::mem::take(&mut txn.publishes);
    for p in &publishes {
        let Some(h) = handles::cached(&p.store) else {
            warning!(
                "engram: store {:?}: no engine handle at commit; it will be caught up on its next use",
                p.store
            );
            continue;
        };
        let mut set = Spooled {
            spool: &mut txn.spool,
            publish: p,
            schema: h.copy.schema(),
        };
        let wait = RoleWait::patient(Duration::from_secs(30));
        let turn = Turn {
            waits: PUBLISH_WAITS,
            pause: Duration::from_millis(2),
        };
        match h.copy.publish(p.watermark - 1, p.watermark, &mut set, wait, turn) {
            Ok(Step::Applied) => crate::merges::after_publish(&p.store, h.copy.store()),
            // Commits publish in the order they reach the writer role, not
            // always in commit order: the copy stays behind, or another
            // backend already caught it up with this transaction's rows.
            // Either way the next use brings it in step; nothing is wrong.
            Ok(step) => debug1!(
                "engram: store {:?}: engine copy not updated at commit ({step:?} of base {})",
                p.store,
                p.watermark - 1
            ),
            Err(e) => {
                // A handle whose write failed refuses every later write: drop
                // it, so the next use opens the copy afresh and repairs it.
                handles::forget(&p.store);
                warning!(
                    "engram: store {:?}: engine copy not updated at commit ({}); it will be brought back in step from engram.rows on its next use",
                    p.store,
                    crate::errors::scrub(&e.to_string())
                );
            }
        }
    }
}
