//! Publishing a change set at its base watermark, and catching a copy up
//! with its source by the difference of source ids.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Change, DerivedCopy, Role, RoleWait, RowSource, Step, LOG_BYTES};
use crate::error::{Error, Result};
use crate::storage::{RowId, WriteBatch};

/// A change set, replayable: held in memory, or spilled and read back.
pub trait ChangeSet {
    /// About how many bytes its rows take (it picks the write path).
    fn bytes(&self) -> usize;
    /// Hand every change to `each`, in order. Each source id appears at
    /// most once (a change set is a net change).
    fn replay(&mut self, each: &mut dyn FnMut(Change) -> Result<()>) -> Result<()>;
}

impl ChangeSet for Vec<Change> {
    fn bytes(&self) -> usize {
        self.iter()
            .map(|c| match c {
                Change::Insert(_, r) => r.log_bytes(),
                Change::Delete(_) => 16,
            })
            .sum()
    }

    fn replay(&mut self, each: &mut dyn FnMut(Change) -> Result<()>) -> Result<()> {
        std::mem::take(self).into_iter().try_for_each(each)
    }
}

/// How a publish waits for an earlier change set still on its way.
#[derive(Copy, Clone, Debug)]
pub struct Turn {
    /// Times to look again when the copy is behind the base.
    pub waits: u32,
    /// Pause between looks (with the role given back).
    pub pause: Duration,
}

impl DerivedCopy {
    /// Apply `changes` (written at source watermarks `base + 1 ..=
    /// watermark`) if the copy is at `base`. While it is behind, give the
    /// role back and look again (`turn`): an earlier change set may be on
    /// its way. Otherwise nothing changes and the step says where the copy
    /// stands.
    pub fn publish(
        &self,
        base: u64,
        watermark: u64,
        changes: &mut dyn ChangeSet,
        wait: RoleWait<'_>,
        turn: Turn,
    ) -> Result<Step> {
        for attempt in 0..=turn.waits {
            let role = Role::take(self.store(), wait)?;
            let w = self.watermark()?;
            if w == base {
                self.apply(changes, watermark)?;
                role.release()?;
                return Ok(Step::Applied);
            }
            role.release()?;
            if w > base {
                return Ok(Step::Ahead(w));
            }
            if attempt == turn.waits {
                return Ok(Step::Behind(w));
            }
            std::thread::sleep(turn.pause);
        }
        unreachable!("the last attempt returns")
    }

    /// Apply `changes` and set `watermark`, whole: one log record when
    /// small, a bulk ingest otherwise. The caller holds the role.
    fn apply(&self, changes: &mut dyn ChangeSet, watermark: u64) -> Result<()> {
        if let Some(d) = &self.deriver {
            let mut rows = Vec::new();
            changes.replay(&mut |c| match c {
                Change::Insert(id, row) => {
                    rows.push((id, row));
                    Ok(())
                }
                Change::Delete(id) => Err(no_deletes(id)),
            })?;
            return d.insert(self.store(), rows, watermark, &|| false);
        }
        let snap = self.store().snapshot()?;
        let (table, source) = (self.table(), self.source_column());
        if changes.bytes() <= LOG_BYTES {
            let mut b = WriteBatch::new();
            changes.replay(&mut |c| {
                match c {
                    Change::Delete(id) => {
                        if let Some(r) = self.find(&snap, id)? {
                            b.delete(table, r);
                        }
                    }
                    Change::Insert(id, row) => {
                        b.append(table, row.with(source, id));
                    }
                }
                Ok(())
            })?;
            b.set_watermark(watermark);
            self.store().write(b)?;
            return Ok(());
        }
        self.store().ingest_with(table, Some(watermark), |sink| {
            changes.replay(&mut |c| {
                match c {
                    Change::Delete(id) => {
                        if let Some(r) = self.find(&snap, id)? {
                            sink.delete(r);
                        }
                    }
                    Change::Insert(id, row) => {
                        sink.insert(row.with(source, id))?;
                    }
                }
                Ok(())
            })
        })?;
        Ok(())
    }

    /// Make the copy's rows those of `source` at watermark `latest`: rows
    /// whose source ids the source lacks are deleted, missing ones inserted
    /// (read from the source under the role, so a publish on its way cannot
    /// be loaded twice). A few rows are one log record; more are streamed
    /// through a bulk ingest. A copy past `latest` is left alone
    /// ([`Step::Ahead`]: rows may differ under the same ids; rebuild it).
    pub fn catch_up(&self, latest: u64, source: &mut dyn RowSource, wait: RoleWait<'_>) -> Result<Step> {
        let role = Role::take(self.store(), wait)?;
        let w = self.watermark()?;
        if w > latest {
            role.release()?;
            return Ok(Step::Ahead(w));
        }
        if w < latest {
            let snap = self.store().snapshot()?;
            let t = snap.table(self.table())?;
            let held: HashMap<u64, RowId> = t.rows().map(|r| (r.get(self.source_column()), r.id())).collect();
            let truth: HashSet<u64> = source.ids()?.into_iter().collect();
            let mut missing: Vec<u64> = truth.iter().filter(|id| !held.contains_key(id)).copied().collect();
            missing.sort_unstable();
            let gone: Vec<RowId> = held
                .iter()
                .filter(|(id, _)| !truth.contains(id))
                .map(|(_, r)| *r)
                .collect();
            let (table, col) = (self.table(), self.source_column());
            if let Some(d) = &self.deriver {
                if let Some(r) = gone.first() {
                    return Err(no_deletes(t.get(*r).map_or(0, |row| row.get(col))));
                }
                let mut rows = Vec::with_capacity(missing.len());
                source.rows(Some(&missing), &mut |id, row| {
                    rows.push((id, row));
                    Ok(())
                })?;
                d.insert(self.store(), rows, latest, wait.cancelled)?;
                role.release()?;
                return Ok(Step::Applied);
            }
            let check = |n: usize| {
                if n.is_multiple_of(1024) && (wait.cancelled)() {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            };
            if missing.len() <= SMALL_CATCH_UP {
                let mut b = WriteBatch::new();
                gone.iter().for_each(|r| {
                    b.delete(table, *r);
                });
                source.rows(Some(&missing), &mut |id, row| {
                    b.append(table, row.with(col, id));
                    Ok(())
                })?;
                b.set_watermark(latest);
                self.store().write(b)?;
            } else {
                self.store().ingest_with(table, Some(latest), |sink| {
                    gone.iter().for_each(|r| sink.delete(*r));
                    let mut n = 0;
                    source.rows(Some(&missing), &mut |id, row| {
                        n += 1;
                        check(n)?;
                        sink.insert(row.with(col, id)).map(|_| ())
                    })
                })?;
            }
        }
        role.release()?;
        Ok(Step::Applied)
    }
}

/// What a copy with a deriver answers to a delete.
fn no_deletes(id: u64) -> Error {
    Error::InvalidArgument(format!(
        "source row {id} was deleted, and a derived copy takes no deletes: rebuild it"
    ))
}

/// Rows a catch-up inserts in one log record at most; more go through a
/// bulk ingest.
const SMALL_CATCH_UP: usize = 1024;
