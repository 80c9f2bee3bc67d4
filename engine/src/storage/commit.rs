//! Group commit.
//!
//! A caller validates its change, queues it, then takes the I/O lock.
//! Whoever holds the I/O lock is the group leader: it drains the whole
//! queue, resolves every change against the current state (assigning row
//! ids, finding upserts' rows by their unique value, dropping deletes and
//! updates of rows that do not exist), appends the records in one write,
//! syncs per policy, and only then applies them to the state that readers
//! see. Callers whose change a previous leader already handled find their
//! result waiting. So concurrent writers share one fsync, and no reader
//! ever sees a change that is not in the log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::batch::WriteBatch;
use super::flush;
use super::inner::Inner;
use super::row::{Row, Value};
use super::schema::{ColumnKind, Schema};
use super::state::State;
use super::types::{RowId, TableId};
use super::view::unique_value_bytes;
use super::wal::{RowUpdates, TableIds, TableRows, WalOp, WalRecord, WalWriter, WriteOp};
use crate::error::{Error, Result};

/// A change waiting to be logged.
pub(crate) enum Pending {
    CreateTable { name: String, schema: Schema },
    Write(WriteBatch),
}

/// What [`Store::write`](super::Store::write) (and the calls built on it) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows inserted (at given ids, appended, or by upserts).
    pub inserted: usize,
    /// Rows deleted (ids that named no live row are not counted).
    pub deleted: usize,
    /// Rows updated (by updates, and by upserts that found their row).
    pub updated: usize,
    /// The ids of appended rows, in order.
    pub appended: Vec<RowId>,
    /// For each upsert, in order: the row's id, and whether it was inserted.
    pub upserted: Vec<(RowId, bool)>,
}

/// What a logged change did.
pub(crate) enum Outcome {
    Table(u32),
    Write(WriteReport),
}

#[derive(Default)]
pub(crate) struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Pending)>,
    done: HashMap<u64, Result<Outcome>>,
}

/// Give every member of a failed group its own copy of the group's error.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::WriterFailed(why) => Error::WriterFailed(why.clone()),
        other => Error::WriterFailed(other.to_string()),
    }
}

/// What earlier changes of the group being resolved did, so later changes
/// of the same group see it.
#[derive(Clone, Default)]
struct Overlay {
    next_ids: HashMap<u32, u64>,
    new_tables: Vec<(u32, String)>,
    inserted: HashSet<(u32, u64)>,
    deleted: HashSet<(u32, u64)>,
    /// Unique values of rows inserted by the group.
    uniques: HashMap<(u32, Vec<u8>), u64>,
}

impl Overlay {
    fn live(&self, st: &State, table: u32, id: u64) -> bool {
        if self.deleted.contains(&(table, id)) {
            return false;
        }
        self.inserted.contains(&(table, id)) || st.table(TableId(table)).is_ok_and(|t| t.is_live(id))
    }

    fn next_id(&mut self, st: &State, table: u32) -> Result<&mut u64> {
        let next = st.table(TableId(table))?.next_row_id;
        Ok(self.next_ids.entry(table).or_insert(next))
    }

    /// The live row of `table` with unique value `bytes`.
    fn find_unique(&self, st: &State, table: u32, bytes: &[u8]) -> Result<Option<u64>> {
        if let Some(&id) = self.uniques.get(&(table, bytes.to_vec())) {
            if !self.deleted.contains(&(table, id)) {
                return Ok(Some(id));
            }
        }
        match st.table(TableId(table))?.find_unique(bytes)? {
            Some(id) if !self.deleted.contains(&(table, id)) => Ok(Some(id)),
            _ => Ok(None),
        }
    }
}

/// Log and apply one change, possibly as part of a group, through the
/// writer's commit `queue` and its I/O mutex (taken by `io`, whatever the
/// handle's state: the leader checks the failure itself, per change).
/// Returns the outcome and whether the memtable was flushed afterwards.
pub(crate) fn commit<'w>(
    queue: &Mutex<Queue>,
    io: impl FnOnce() -> MutexGuard<'w, WalWriter>,
    inner: &Inner,
    change: Pending,
) -> Result<(Outcome, bool)> {
    inner.check_not_failed()?;
    let ticket = {
        let mut q = queue.lock();
        let t = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((t, change));
        t
    };
    let mut wal = io();
    if let Some(r) = queue.lock().done.remove(&ticket) {
        return r.map(|o| (o, false));
    }
    let batch = std::mem::take(&mut queue.lock().pending);
    let mut mine = None;
    let results = run_group(inner, &mut wal, batch);
    {
        let mut q = queue.lock();
        for (t, r) in results {
            if t == ticket {
                mine = Some(r);
            } else {
                q.done.insert(t, r);
            }
        }
    }
    let mut flushed = false;
    if inner.check_not_failed().is_ok() && inner.current().memtable_bytes() >= inner.opts.memtable_bytes {
        // The group is durable; a failed flush must not turn its success
        // into an error. The next explicit flush reports it.
        let outcome = flush::flush_locked(inner, &mut wal);
        flushed = matches!(outcome, Ok(true));
        *inner.flush_error.lock() = outcome.err().map(|e| e.to_string());
    }
    drop(wal);
    mine.unwrap_or_else(|| Err(Error::Internal("commit lost its own change".into())))
        .map(|o| (o, flushed))
}

fn run_group(inner: &Inner, wal: &mut WalWriter, batch: Vec<(u64, Pending)>) -> Vec<(u64, Result<Outcome>)> {
    let mut results = Vec::with_capacity(batch.len());
    let mut records = Vec::new();
    {
        let st = inner.current();
        let mut lsn = st.next_lsn;
        let mut ov = Overlay::default();
        for (ticket, change) in batch {
            // A change that fails must leave no trace in the group's overlay.
            let saved = ov.clone();
            let resolved = resolve(&st, &mut ov, change);
            if resolved.is_err() {
                ov = saved;
            }
            match resolved {
                Ok((Some(op), outcome)) => {
                    records.push(WalRecord { lsn, op });
                    lsn += 1;
                    results.push((ticket, Ok(outcome)));
                }
                Ok((None, outcome)) => results.push((ticket, Ok(outcome))),
                Err(e) => results.push((ticket, Err(e))),
            }
        }
    }
    if records.is_empty() {
        return results;
    }
    let fail_all = |results: &mut Vec<(u64, Result<Outcome>)>, e: &Error| {
        for (_, r) in results.iter_mut() {
            if r.is_ok() {
                *r = Err(copy_error(e));
            }
        }
    };
    // A change queued before an earlier group failed the handle must not be
    // acknowledged: nothing of it is logged.
    if let Err(e) = inner.check_not_failed() {
        fail_all(&mut results, &e);
        return results;
    }
    // A failed append may still have put whole records on disk, which a
    // reader may already have applied and a reopen will replay: the outcome
    // is unknown, so the handle stops writing (no lsn is ever reused).
    match wal.append(&records).map_err(|e| inner.fail(e)) {
        Ok(()) => {
            let mut guard = inner.state.write();
            let st = Arc::make_mut(&mut guard);
            for r in &records {
                st.apply(r);
            }
            st.wal_end = wal.len();
        }
        Err(e) => fail_all(&mut results, &e),
    }
    results
}

fn resolve(st: &State, ov: &mut Overlay, change: Pending) -> Result<(Option<WalOp>, Outcome)> {
    match change {
        Pending::CreateTable { name, schema } => {
            if st.table_by_name(&name).is_some() || ov.new_tables.iter().any(|(_, n)| *n == name) {
                return Err(Error::TableExists(name));
            }
            let id = st
                .tables
                .iter()
                .map(|t| t.id)
                .chain(ov.new_tables.iter().map(|(i, _)| *i))
                .max()
                .map_or(1, |m| m + 1);
            ov.new_tables.push((id, name.clone()));
            Ok((
                Some(WalOp::CreateTable {
                    table: id,
                    name,
                    schema,
                }),
                Outcome::Table(id),
            ))
        }
        Pending::Write(b) => resolve_write(st, ov, b),
    }
}

fn resolve_write(st: &State, ov: &mut Overlay, b: WriteBatch) -> Result<(Option<WalOp>, Outcome)> {
    let mut report = WriteReport::default();
    let mut op = WriteOp {
        watermark: b.watermark,
        ..WriteOp::default()
    };
    for (table, ids) in b.deletes {
        st.table(TableId(table))?;
        let mut live = Vec::new();
        for id in ids {
            if ov.live(st, table, id) {
                ov.deleted.insert((table, id));
                live.push(id);
            }
        }
        report.deleted += live.len();
        if !live.is_empty() {
            op.deletes.push(TableIds { table, ids: live });
        }
    }
    let mut inserts: BTreeMap<u32, (Vec<u64>, Vec<Row>)> = BTreeMap::new();
    let mut add = |ov: &mut Overlay, table: u32, id: u64, row: Row, schema: &Schema| -> Result<()> {
        if let Some(u) = schema.unique() {
            let bytes = unique_value_bytes(schema, u, row.get(u));
            if let Some(existing) = ov.find_unique(st, table, &bytes)? {
                return Err(Error::Duplicate {
                    table: st.table(TableId(table))?.name.clone(),
                    column: schema.columns()[u.0 as usize].name.clone(),
                    existing,
                });
            }
            ov.uniques.insert((table, bytes), id);
        }
        ov.inserted.insert((table, id));
        let e = inserts.entry(table).or_default();
        e.0.push(id);
        e.1.push(row);
        Ok(())
    };
    for (table, rows) in b.inserts {
        let t = st.table(TableId(table))?;
        let schema = t.schema.clone();
        let next = *ov.next_id(st, table)?;
        if let Some((&first, _)) = rows.first_key_value() {
            if first < next {
                return Err(Error::InvalidArgument(format!(
                    "row id {first} of table {:?} is not above its highest id so far ({}); ids are never reused",
                    t.name,
                    next.saturating_sub(1)
                )));
            }
        }
        if let Some((&last, _)) = rows.last_key_value() {
            *ov.next_id(st, table)? = last + 1;
        }
        for (id, row) in rows {
            add(ov, table, id, row, &schema)?;
            report.inserted += 1;
        }
    }
    for (table, row) in b.appends {
        let schema = st.table(TableId(table))?.schema.clone();
        let next = ov.next_id(st, table)?;
        let id = *next;
        *next += 1;
        add(ov, table, id, row, &schema)?;
        report.inserted += 1;
        report.appended.push(RowId(id));
    }
    for (table, row, on_conflict) in b.upserts {
        let t = st.table(TableId(table))?;
        let schema = t.schema.clone();
        let u = schema.unique().ok_or_else(|| {
            Error::InvalidArgument(format!("table {:?} declares no unique column to upsert by", t.name))
        })?;
        let bytes = unique_value_bytes(&schema, u, row.get(u));
        match ov.find_unique(st, table, &bytes)? {
            Some(id) => {
                if !on_conflict.is_empty() {
                    op.updates.push(RowUpdates {
                        table,
                        id,
                        updates: on_conflict,
                    });
                }
                report.updated += 1;
                report.upserted.push((RowId(id), false));
            }
            None => {
                let next = ov.next_id(st, table)?;
                let id = *next;
                *next += 1;
                add(ov, table, id, row, &schema)?;
                report.inserted += 1;
                report.upserted.push((RowId(id), true));
            }
        }
    }
    for (table, id, updates) in b.updates {
        st.table(TableId(table))?;
        if ov.live(st, table, id) {
            report.updated += 1;
            if !updates.is_empty() {
                op.updates.push(RowUpdates { table, id, updates });
            }
        }
    }
    for (table, (ids, rows)) in inserts {
        check_edges(st, ov, table, &rows)?;
        op.inserts.push(TableRows { table, ids, rows });
    }
    if op.deletes.is_empty() && op.inserts.is_empty() && op.updates.is_empty() && op.watermark.is_none() {
        return Ok((None, Outcome::Write(report)));
    }
    Ok((Some(WalOp::Write(op)), Outcome::Write(report)))
}

/// Every edge of inserted rows names a row id its target table has given
/// out (by now, this group included).
fn check_edges(st: &State, ov: &mut Overlay, table: u32, rows: &[Row]) -> Result<()> {
    let schema = st.table(TableId(table))?.schema.clone();
    for (c, col) in schema.columns().iter().enumerate() {
        let ColumnKind::Edges(spec) = &col.kind else { continue };
        let target = match &spec.target {
            None => table,
            Some(name) => {
                st.table_by_name(name)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "edges {:?} point into table {name:?}, which does not exist",
                            col.name
                        ))
                    })?
                    .id
            }
        };
        let limit = *ov.next_id(st, target)?;
        for r in rows {
            if let Value::Edges(e) = &r.values()[c] {
                if let Some(bad) = e.iter().find(|&&id| id >= limit) {
                    return Err(Error::InvalidArgument(format!(
                        "edge {:?} names row {bad} of its target table, which has no such row",
                        col.name
                    )));
                }
            }
        }
    }
    Ok(())
}
