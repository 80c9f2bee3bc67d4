//! Rebuilding a copy from its source: written aside (`<dir>.rebuild`), then
//! swapped in by two renames, while the old copy's writer role is held so
//! that no handle writes into a directory being replaced.
//!
//! A failure before the swap leaves the old copy in place (and the aside
//! directory, which the next rebuild removes). A waiter for the old
//! directory's role finds, once granted, that its `LOCK` is no longer the
//! one at the path, and waits for the new one's (`storage::lock`).

use std::path::{Path, PathBuf};

use super::{CopySpec, DerivedCopy, Opened, RoleWait, RowSource};
use crate::error::{Error, IoContext, Result};
use crate::storage::{Mode, Store, StoreOptions, SyncPolicy, WriterLock};

/// Bytes of source rows handed to a deriver at a time while rebuilding.
const DERIVE_BYTES: usize = 8 << 20;

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// Rows written.
    pub rows: u64,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

impl DerivedCopy {
    /// Rebuild the copy at `dir` from `source` (at source watermark
    /// `latest`) and open it with `opts` as a reader. `opts.indexer` builds
    /// its graphs: one over every row, at the end.
    pub fn rebuild(
        dir: &Path,
        opts: StoreOptions,
        spec: &CopySpec,
        latest: u64,
        source: &mut dyn RowSource,
        wait: RoleWait<'_>,
    ) -> Result<(DerivedCopy, Rebuilt)> {
        let col = spec.source_column()?;
        // Hold the old copy's writer role across the swap. A copy too damaged
        // to lock has no writer to wait for.
        let _role = if dir.exists() {
            match WriterLock::acquire(dir, wait.timeout, wait.cancelled) {
                Ok(l) => Some(l),
                Err(e @ (Error::WriterLocked { .. } | Error::Cancelled)) => return Err(e),
                Err(_) => None,
            }
        } else {
            None
        };
        let (fresh, old) = (sibling(dir, ".rebuild"), sibling(dir, ".old"));
        let _ = std::fs::remove_dir_all(&fresh);
        let _ = std::fs::remove_dir_all(&old);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let rows = {
            let writer = StoreOptions {
                mode: Mode::Writer,
                sync: SyncPolicy::Off,
                tag: spec.tag.clone(),
                // One graph over every row, built at the end.
                index_on_flush: false,
                merge_policy: None,
                ..opts.clone()
            };
            let store = Store::create(&fresh, writer)?;
            let t = store.create_table(&spec.table, spec.schema.clone())?;
            let mut n = 0u64;
            if let Some(d) = &spec.deriver {
                d.create(&store)?;
                // In batches of about DERIVE_BYTES of rows, in source order.
                let mut batch = Vec::new();
                let mut bytes = 0;
                source.rows(None, &mut |id, row| {
                    n += 1;
                    bytes += row.log_bytes();
                    batch.push((id, row));
                    if bytes >= DERIVE_BYTES {
                        bytes = 0;
                        d.insert(&store, std::mem::take(&mut batch), latest, wait.cancelled)?;
                    }
                    Ok(())
                })?;
                d.insert(&store, batch, latest, wait.cancelled)?;
            } else {
                store.ingest_with(t, Some(latest), |sink| {
                    source.rows(None, &mut |id, row| {
                        n += 1;
                        if n.is_multiple_of(1024) && (wait.cancelled)() {
                            return Err(Error::Cancelled);
                        }
                        sink.insert(row.with(col, id)).map(|_| ())
                    })
                })?;
            }
            store.optimize()?;
            store.sync()?;
            n
        };
        if dir.exists() {
            std::fs::rename(dir, &old).at(dir)?;
        }
        std::fs::rename(&fresh, dir).at(dir)?;
        if let Some(parent) = dir.parent() {
            crate::storage::format::sync_dir(&*opts.fs, parent)?;
        }
        let _ = std::fs::remove_dir_all(&old);
        match DerivedCopy::open(dir, opts, spec)? {
            Opened::Usable(c) => Ok((*c, Rebuilt { rows })),
            Opened::Missing => Err(Error::Internal("a rebuilt copy vanished".into())),
            Opened::Unusable(why) => Err(Error::Internal(format!("a rebuilt copy does not open: {why}"))),
        }
    }
}
