//! Creating and opening a store, taking the writer role on a reader handle,
//! a reader's refresh, removing what a crashed writer left, and upgrading a
//! store of the first format. `docs/design.md` §6.4 and §7 give the steps.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::flush::flush_state;
use super::format::{sync_dir, SegmentVersion};
use super::inner::Inner;
use super::legacy;
use super::lock;
use super::manifest::{self, Manifest};
use super::options::StoreOptions;
use super::patch::Patches;
use super::publish::publish;
use super::role::Writer;
use super::segment::{part, Segment, SegmentWriter};
use super::state::State;
use super::view::{At, RowView};
use super::wal::{self, WalWriter};
use crate::error::{Error, IoContext, Result};

/// A random id for a new store: time, process and a per-process random hash
/// key, so stores recreated at one path are told apart.
fn new_incarnation(dir: &Path) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    dir.hash(&mut h);
    h.finish()
}

/// Create an empty store in `dir` (created if missing): its first WAL and
/// manifest, under the writer lock, which is returned.
pub(crate) fn create(dir: &Path, opts: &StoreOptions) -> Result<File> {
    let fs = &*opts.fs;
    fs.create_dir_all(dir).at(dir)?;
    let lock = lock::acquire(dir, opts.lock_timeout, &|| false)?;
    if manifest::manifest_path(dir).exists() {
        return Err(Error::AlreadyExists(dir.to_path_buf()));
    }
    WalWriter::create(fs, dir, 1, opts.sync)?;
    manifest::write(
        fs,
        dir,
        &Manifest {
            generation: 1,
            incarnation: new_incarnation(dir),
            tag: opts.tag.clone(),
            watermark: 0,
            wal_id: 1,
            flushed_lsn: 0,
            next_segment_id: 1,
            tables: Vec::new(),
        },
    )?;
    if let Some(parent) = dir.parent() {
        let _ = sync_dir(fs, parent);
    }
    Ok(lock)
}

/// Open the store in `dir` as the writer, holding `lock`: recovery (load
/// and replay), tail truncation, orphan cleanup, and the upgrade of a
/// format 1 store.
pub(crate) fn open_writer(dir: &Path, opts: StoreOptions, lock: File) -> Result<(Inner, Writer)> {
    let st = State::load(&opts.fs, dir, opts.verify_checksums, &HashMap::new())?;
    let inner = Inner::new(dir.to_path_buf(), opts, st);
    let wal = writable_wal(&inner)?;
    remove_orphans(dir, &inner.current())?;
    Ok((inner, Writer::new(lock, wal)))
}

/// Take the writer role on a reader handle: the lock (waiting up to
/// `timeout`, polling `cancelled`), then everything the previous writer
/// logged, then the WAL reopened at its valid end (cutting a torn tail).
pub(crate) fn take_role(inner: &Inner, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<Writer> {
    let lock = lock::acquire(&inner.dir, timeout, cancelled)?;
    refresh(inner)?;
    let wal = writable_wal(inner)?;
    Ok(Writer::new(lock, wal))
}

/// The WAL to append to: the current one reopened at its valid end, or,
/// for a format 1 store, a fresh one after the store is upgraded.
fn writable_wal(inner: &Inner) -> Result<WalWriter> {
    let st = inner.current();
    if st.legacy_symbols.is_some() {
        return upgrade(inner);
    }
    WalWriter::reopen(&*inner.opts.fs, &inner.dir, st.wal_id, st.wal_end, inner.opts.sync)
}

/// Rewrite a store of the old shared format (versions 1–2) in today's: every segment row for row
/// (deleted rows included, so positions and graphs stay valid), the
/// memtable flushed, a manifest of today's format (version 3) with a fresh WAL published. A
/// crash before the publish leaves the old store intact (the new files are
/// orphans); after it, the old files are orphans.
fn upgrade(inner: &Inner) -> Result<WalWriter> {
    let base = inner.current();
    let mut next = (*base).clone();
    let none = Patches::default();
    for (ti, t) in base.tables.iter().enumerate() {
        for (si, s) in t.segments.iter().enumerate() {
            if s.seg.version == SegmentVersion::V3 {
                continue;
            }
            let id = next.next_segment_id;
            next.next_segment_id += 1;
            let graph = s.seg.raw(legacy::col::KEY as usize, part::KEY_GRAPH).to_vec();
            let fs = &*inner.opts.fs;
            let mut w = SegmentWriter::create(fs, &inner.dir, id, t.id, &t.schema, s.seg.rows as u64, None)?
                .with_graph(legacy::col::KEY as usize, graph);
            for r in 0..s.seg.rows {
                let v = RowView::with_patches(t, &none, At::Seg(&s.seg, r as u32));
                w.push(v.id().0, &v.cells()?)?;
            }
            w.finish()?;
            next.tables[ti].segments[si].seg = Segment::open(fs, &inner.dir, id, t.id, &t.schema, None, false)?;
        }
    }
    let (next, wal) = flush_state(inner, next)?;
    publish(inner, next)?;
    Ok(wal)
}

/// Bring a reader up to date with the writer: a new manifest means a reload
/// (sharing already-mapped segments), a longer WAL means replaying its new
/// records. Cheap when nothing changed (one header read and one `stat`).
pub(crate) fn refresh(inner: &Inner) -> Result<()> {
    let dir = &inner.dir;
    let fs = &*inner.opts.fs;
    let stamp = manifest::read_stamp(fs, dir)?;
    let st = inner.current();
    if (st.incarnation, st.generation) == stamp {
        match fs.len(&wal::wal_path(dir, st.wal_id)) {
            Ok(len) if len == st.wal_end => return Ok(()),
            _ => {}
        }
        let mut next = (*st).clone();
        match next.catch_up(dir) {
            Ok(_) => {
                *inner.state.write() = Arc::new(next);
                return Ok(());
            }
            // The WAL was rotated away: a newer manifest exists.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let reuse: HashMap<u64, Arc<Segment>> = if st.incarnation == stamp.0 {
        st.tables
            .iter()
            .flat_map(|t| t.segments.iter().map(|s| (s.seg.id, s.seg.clone())))
            .filter(|(_, s)| s.version == SegmentVersion::V3)
            .collect()
    } else {
        HashMap::new()
    };
    let next = State::load(&inner.opts.fs, dir, inner.opts.verify_checksums, &reuse)?;
    *inner.state.write() = Arc::new(next);
    Ok(())
}

/// Remove files a crashed writer may have left: temp files, segments and
/// patch files no manifest names, WALs other than the current one.
pub(crate) fn remove_orphans(dir: &Path, st: &State) -> Result<()> {
    let fs = &*st.fs;
    let live: std::collections::HashSet<String> = st
        .live_files(dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for name in fs.list(dir).at(dir)? {
        let ours = name.ends_with(".tmp")
            || (name.starts_with("seg-") && name.ends_with(".seg"))
            || (name.starts_with("pat-") && name.ends_with(".pat"))
            || (name.starts_with("wal-") && name.ends_with(".log"));
        if ours && !live.contains(&name) {
            let _ = fs.remove(&dir.join(&name));
        }
    }
    Ok(())
}
