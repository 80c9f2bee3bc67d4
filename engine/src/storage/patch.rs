//! Updated values of rows, applied when a row is read.
//!
//! A table keeps, for every row an update touched, the latest value of each
//! updated column (values are absolute: an `Add` is resolved when it is
//! applied, against the value the row had then). Two layers: `current`
//! (everything applied, WAL included) and `flushed` (as of the manifest's
//! `flushed_lsn`, persisted in the table's patch file). A flush folds the
//! memtable's patches into the segment it writes and persists the rest; a
//! merge folds the *flushed* layer only, so that replaying the WAL after a
//! crash never applies an `Add` twice (`docs/design.md` §6.3).
//!
//! ```text
//! pat-NNNNNNNN.pat
//! 0  magic "ENGRMPAT" | 8 version u32 | 12 reserved u32 | 16 table u32 | 20 reserved u32
//! 24 payload length u64 | 32 crc32 of payload u32 | 36 crc32 of bytes 0..36 u32
//! 40 payload: rkyv Vec<PatchEntry>, sorted by row id
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use super::codec;
use super::format::{Field, PatchVersion, MAGIC, PATCH_MAGIC, VERSION};
use super::fs::Fs;
use super::row::Sparse;
use crate::error::{corrupt, Error, IoContext, Result};

// Header fields after the magic and version (pads are zero).
const PAD: Field = VERSION.then(4);
/// The table whose rows the patches update.
const TABLE: Field = PAD.then(4);
const PAD2: Field = TABLE.then(4);
/// Length of the payload that follows the header.
const PAYLOAD_LEN: Field = PAD2.then(8);
/// crc32 of the payload.
const PAYLOAD_CRC: Field = PAYLOAD_LEN.then(4);
/// crc32 of the header up to here.
const HEADER_CRC: Field = PAYLOAD_CRC.then(4);
const HEADER_LEN: usize = HEADER_CRC.end();
const _: () = assert!(HEADER_LEN == 40, "the patch header layout is part of the format");
const MAX_PAYLOAD: u64 = 1 << 34;

/// The updated columns of one row, each sorted by column.
#[derive(Clone, Debug, Default, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct RowPatch {
    /// Carried bits of updated fixed columns.
    pub fixed: Vec<(u16, u64)>,
    /// Updated sparse columns, whole.
    pub sparse: Vec<(u16, Sparse)>,
}

impl RowPatch {
    pub fn fixed(&self, col: u16) -> Option<u64> {
        self.fixed.iter().find(|(c, _)| *c == col).map(|(_, v)| *v)
    }

    pub fn sparse(&self, col: u16) -> Option<&Sparse> {
        self.sparse.iter().find(|(c, _)| *c == col).map(|(_, v)| v)
    }

    pub fn set_fixed(&mut self, col: u16, bits: u64) {
        match self.fixed.binary_search_by_key(&col, |p| p.0) {
            Ok(i) => self.fixed[i].1 = bits,
            Err(i) => self.fixed.insert(i, (col, bits)),
        }
    }

    pub fn set_sparse(&mut self, col: u16, s: Sparse) {
        match self.sparse.binary_search_by_key(&col, |p| p.0) {
            Ok(i) => self.sparse[i].1 = s,
            Err(i) => self.sparse.insert(i, (col, s)),
        }
    }
}

/// One row's patch in a patch file.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct PatchEntry {
    pub id: u64,
    pub patch: RowPatch,
}

/// Patches of one table, shared cheaply by snapshots (a persistent map).
#[derive(Clone, Debug, Default)]
pub(crate) struct Patches {
    pub rows: imbl::HashMap<u64, Arc<RowPatch>>,
    /// Columns that any patch has touched (a column never patched is read
    /// without a lookup).
    touched: [u64; 4],
}

impl Patches {
    #[inline]
    pub fn touches(&self, col: u16) -> bool {
        self.touched[(col / 64) as usize % 4] & (1 << (col % 64)) != 0
    }

    /// The patch of row `id`, if column `col` might be in it.
    #[inline]
    pub fn get(&self, id: u64, col: u16) -> Option<&RowPatch> {
        if !self.touches(col) {
            return None;
        }
        self.rows.get(&id).map(|p| &**p)
    }

    /// The patch of row `id`.
    pub fn row(&self, id: u64) -> Option<&Arc<RowPatch>> {
        if self.rows.is_empty() {
            return None;
        }
        self.rows.get(&id)
    }

    pub fn insert(&mut self, id: u64, p: Arc<RowPatch>) {
        for c in p.fixed.iter().map(|x| x.0).chain(p.sparse.iter().map(|x| x.0)) {
            self.touched[(c / 64) as usize % 4] |= 1 << (c % 64);
        }
        self.rows.insert(id, p);
    }

    pub fn remove(&mut self, id: u64) {
        self.rows.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Path of patch file `id` in `dir` (ids come from the segment counter).
pub(crate) fn patch_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("pat-{id:08}.pat"))
}

/// Write `patches` of table `table` as patch file `id`.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, id: u64, table: u32, patches: &Patches) -> Result<()> {
    let mut entries: Vec<PatchEntry> = patches
        .rows
        .iter()
        .map(|(id, p)| PatchEntry {
            id: *id,
            patch: (**p).clone(),
        })
        .collect();
    entries.sort_unstable_by_key(|e| e.id);
    let payload = codec::encode(&entries).map_err(|e| Error::Internal(format!("cannot encode patches: {e}")))?;
    let mut bytes = vec![0u8; HEADER_LEN];
    MAGIC.put(&mut bytes, &PATCH_MAGIC);
    VERSION.put(&mut bytes, &(PatchVersion::CURRENT as u32).to_le_bytes());
    TABLE.put(&mut bytes, &table.to_le_bytes());
    PAYLOAD_LEN.put(&mut bytes, &(payload.len() as u64).to_le_bytes());
    PAYLOAD_CRC.put(&mut bytes, &crc32fast::hash(&payload).to_le_bytes());
    let crc = crc32fast::hash(&bytes[..HEADER_CRC.at]);
    HEADER_CRC.put(&mut bytes, &crc.to_le_bytes());
    bytes.extend_from_slice(&payload);
    // A new name every time, so the rename cannot replace a file a
    // published manifest still names; the fsync of the directory is the
    // caller's (before its manifest publish).
    let path = patch_path(dir, id);
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs.create(&tmp).at(&tmp)?;
        f.append(&bytes).at(&tmp)?;
        f.sync().at(&tmp)?;
    }
    fs.rename(&tmp, &path).at(&path)
}

/// Read patch file `id` of table `table`.
pub(crate) fn read(fs: &dyn Fs, dir: &Path, id: u64, table: u32) -> Result<Patches> {
    let path = patch_path(dir, id);
    let b = fs.read(&path).at(&path)?;
    if b.len() < HEADER_LEN || MAGIC.of(&b) != PATCH_MAGIC {
        return Err(Error::BadMagic {
            path,
            expected: "patch",
        });
    }
    if crc32fast::hash(&b[..HEADER_CRC.at]) != HEADER_CRC.u32(&b) {
        return Err(corrupt(&path, 0, "patch header checksum mismatch"));
    }
    PatchVersion::check(&path, VERSION.u32(&b))?;
    let len = PAYLOAD_LEN.u64(&b);
    if TABLE.u32(&b) != table || len > MAX_PAYLOAD || len != (b.len() - HEADER_LEN) as u64 {
        return Err(corrupt(
            &path,
            TABLE.at as u64,
            "patch file does not match its table or its length",
        ));
    }
    let payload = &b[HEADER_LEN..];
    if crc32fast::hash(payload) != PAYLOAD_CRC.u32(&b) {
        return Err(corrupt(&path, HEADER_LEN as u64, "patch payload checksum mismatch"));
    }
    let entries: Vec<PatchEntry> = codec::decode(payload).map_err(|e| corrupt(&path, HEADER_LEN as u64, e))?;
    let mut p = Patches::default();
    for e in entries {
        p.insert(e.id, Arc::new(e.patch));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::RealFs;

    #[test]
    fn patch_files_round_trip_and_flipped_bytes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Patches::default();
        let mut r = RowPatch::default();
        r.set_fixed(3, 7);
        r.set_fixed(1, 9);
        r.set_sparse(2, Sparse::counts([(4, 1)]));
        p.insert(10, Arc::new(r.clone()));
        write(&RealFs, dir.path(), 5, 1, &p).unwrap();
        let back = read(&RealFs, dir.path(), 5, 1).unwrap();
        assert_eq!(back.row(10).map(|x| (**x).clone()), Some(r));
        assert!(back.touches(3) && back.touches(2) && !back.touches(0));
        assert!(read(&RealFs, dir.path(), 5, 2).is_err());
        let path = patch_path(dir.path(), 5);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x40;
            std::fs::write(&path, &b).unwrap();
            assert!(read(&RealFs, dir.path(), 5, 1).is_err(), "flip at {i}");
        }
    }
}
