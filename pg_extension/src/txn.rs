//! Commit-time publish: changes are prepared when a function is called and
//! handed to the engine only once the transaction has committed. ROLLBACK and
//! ROLLBACK TO SAVEPOINT drop what they undo; other backends see a change in
//! the engine only after its commit.
//!
//! Publishing runs in the COMMIT callback, after the commit record is written
//! and before the transaction's locks are released. The store's catalog row
//! lock, taken by every write, is therefore still held: publishes happen in
//! commit order. A publish that cannot happen (I/O error, or an engine copy
//! not at the watermark this transaction started from) is reported as a
//! WARNING — an error is impossible after commit — and the copy is brought
//! back in step from the tables on its next use.

use std::cell::RefCell;
use std::collections::BTreeMap;

use engram::storage::{Row, RowId, WriteBatch};
use pgrx::prelude::*;
use pgrx::{register_subxact_callback, register_xact_callback, PgSubXactCallbackEvent, PgXactCallbackEvent};

use crate::backend::nest_level;
use crate::engine_copy;

/// One prepared change.
pub enum Change {
    /// A row inserted at an id.
    Insert(u64, Box<Row>),
    /// A row id deleted.
    Delete(u64),
    /// Nothing changed but the catalog watermark (a delete of a missing id);
    /// publishing it keeps the copy's watermark equal to the catalog's.
    Nothing,
}

struct Op {
    level: i32,
    store: String,
    watermark: u64,
    change: Change,
}

#[derive(Default)]
struct Txn {
    ops: Vec<Op>,
    drops: Vec<(i32, String)>,
    hooked: bool,
}

thread_local! {
    static TXN: RefCell<Txn> = RefCell::new(Txn::default());
}

/// Remember a change made to `store` at catalog watermark `watermark`.
pub fn record(store: &str, watermark: u64, change: Change) {
    hook();
    TXN.with(|t| {
        t.borrow_mut().ops.push(Op {
            level: nest_level(),
            store: store.to_string(),
            watermark,
            change,
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
    TXN.with(|t| t.borrow().ops.iter().any(|o| o.store == store))
}

fn hook() {
    let first = TXN.with(|t| !std::mem::replace(&mut t.borrow_mut().hooked, true));
    if !first {
        return;
    }
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
        error!("engram: PREPARE TRANSACTION is not supported for transactions that change engram stores");
    });
    register_subxact_callback(PgSubXactCallbackEvent::AbortSub, |_, _| {
        let level = nest_level();
        TXN.with(|t| {
            let mut t = t.borrow_mut();
            t.ops.retain(|o| o.level < level);
            t.drops.retain(|d| d.0 < level);
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

fn publish(txn: Txn) {
    for (_, name) in &txn.drops {
        engine_copy::forget(name);
        let _ = std::fs::remove_dir_all(engine_copy::dir_of(name));
    }
    let mut by_store: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for op in txn.ops {
        by_store.entry(op.store.clone()).or_default().push(op);
    }
    for (name, ops) in by_store {
        if txn.drops.iter().any(|(_, d)| *d == name) {
            continue;
        }
        match publish_store(&name, ops) {
            Ok(()) => {}
            // Commits publish in the order they reach the writer role, not
            // always in commit order: the copy stays behind, or another
            // backend already caught it up with this transaction's rows.
            // Either way the next use brings it in step; nothing is wrong.
            Err(Unpublished::OutOfTurn(why)) => {
                debug1!("engram: store {name:?}: engine copy not updated at commit ({why})");
            }
            Err(Unpublished::Failed(why)) => {
                // A handle whose write failed refuses every later write: drop
                // it, so the next use opens the copy afresh and repairs it.
                engine_copy::forget(&name);
                warning!("engram: store {name:?}: engine copy not updated at commit ({why}); it will be brought back in step from engram.rows on its next use");
            }
        }
    }
}

/// How many times (2 ms apart) a commit waits for earlier commits to publish.
const PUBLISH_WAITS: u32 = 50;

/// Why a transaction's changes did not reach the engine copy at commit.
enum Unpublished {
    /// The copy is not at the watermark this transaction started from.
    OutOfTurn(String),
    /// The write failed.
    Failed(String),
}

/// Net effect of a transaction's changes to one store, published as one batch.
fn publish_store(name: &str, ops: Vec<Op>) -> Result<(), Unpublished> {
    let h = engine_copy::cached(name).ok_or_else(|| Unpublished::Failed("no engine handle".into()))?;
    let base = ops[0].watermark - 1;
    let last = ops[ops.len() - 1].watermark;
    let mut inserts: BTreeMap<u64, Box<Row>> = BTreeMap::new();
    let mut batch = WriteBatch::new();
    for op in ops {
        match op.change {
            Change::Insert(id, row) => {
                inserts.insert(id, row);
            }
            Change::Delete(id) => {
                if inserts.remove(&id).is_none() {
                    batch.delete(h.table, RowId(id));
                }
            }
            Change::Nothing => {}
        }
    }
    for (id, row) in inserts {
        batch.insert(h.table, RowId(id), *row);
    }
    batch.set_watermark(last);
    let store = &h.store;
    let failed = |e: engram::Error| Unpublished::Failed(e.to_string());
    // A commit just before ours may not have published yet (commits reach
    // the writer role in any order): give it a moment, with the role given
    // back meanwhile, rather than leave our changes to a catch-up.
    // The role is given back whatever the outcome.
    let finish = |r: Result<(), Unpublished>| r.and(store.end_write().map_err(failed));
    for attempt in 0..=PUBLISH_WAITS {
        store
            .begin_write(std::time::Duration::from_secs(30), &|| false)
            .map_err(failed)?;
        match store.watermark() {
            Ok(w) if w == base => return finish(store.write(batch).map(|_| ()).map_err(failed)),
            // Not our turn yet.
            Ok(w) if w < base && attempt < PUBLISH_WAITS => {
                store.end_write().map_err(failed)?;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Ok(w) => {
                return finish(Err(Unpublished::OutOfTurn(format!(
                    "engine copy is at watermark {w}, this transaction started from {base}"
                ))))
            }
            Err(e) => return finish(Err(failed(e))),
        }
    }
    unreachable!("the last attempt does not wait")
}
