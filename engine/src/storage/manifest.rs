//! The manifest: which segments, WAL and tables make up the store.
//!
//! ```text
//! 0  magic "ENGRMMAN"       8
//! 8  format version   u32   12 reserved u32
//! 16 generation       u64   24 payload length u64
//! 32 crc32 of payload u32   36 crc32 of bytes 0..36 u32
//! 40 incarnation      u64   48 reserved u32
//! 52 crc32 of bytes 40..52 u32
//! 56 payload (rkyv Manifest)
//! ```
//!
//! The incarnation is random per store creation: a store rebuilt into the
//! same path (generation numbers restart) is still told apart by readers.
//!
//! Published by [`write`]: temp file, fsync, rename over `MANIFEST`, fsync
//! the directory. Readers detect a new version by its generation, which they
//! read with the incarnation from the 56-byte header alone.

use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use super::codec;
use super::format::{write_atomic, Field, ManifestVersion, MAGIC, MANIFEST_MAGIC, VERSION};
use super::fs::Fs;
use super::legacy;
use super::schema::Schema;
use crate::error::{corrupt, Error, Result};

// Header fields after the magic and version (pads are zero).
const PAD: Field = VERSION.then(4);
/// Generation: raised by every publish.
const GENERATION: Field = PAD.then(8);
/// Length of the payload that follows the header.
const PAYLOAD_LEN: Field = GENERATION.then(8);
/// crc32 of the payload.
const PAYLOAD_CRC: Field = PAYLOAD_LEN.then(4);
/// crc32 of the header up to here.
const HEADER_CRC: Field = PAYLOAD_CRC.then(4);
/// The store's incarnation (a rebuild swaps in a new one), with a checksum
/// of its own, so a reader can check it without reading the payload.
const INCARNATION: Field = HEADER_CRC.then(8);
const PAD2: Field = INCARNATION.then(4);
/// crc32 of `INCARNATION` and `PAD2`.
const INCARNATION_CRC: Field = PAD2.then(4);
const HEADER_LEN: usize = INCARNATION_CRC.end();
const _: () = assert!(HEADER_LEN == 56, "the manifest header layout is part of the format");
/// A manifest larger than this is treated as corrupt rather than allocated.
const MAX_PAYLOAD: u64 = 1 << 30;

/// A segment as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
    pub min_id: u64,
    pub max_id: u64,
    pub bytes: u64,
    /// Positions of its deleted rows, increasing.
    pub deleted: Vec<u32>,
}

/// A table as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct TableEntry {
    pub id: u32,
    pub name: String,
    pub schema: Schema,
    pub next_row_id: u64,
    /// In row-id order.
    pub segments: Vec<SegmentEntry>,
    /// The patch file holding updates of segment rows, if any.
    pub patch_file: Option<u64>,
}

/// The durable description of a store.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub generation: u64,
    /// Random id of this store's creation; repeated in the header.
    pub incarnation: u64,
    /// An application's label for the store, set at creation.
    pub tag: String,
    /// The application's watermark: how far the store reflects its source.
    pub watermark: u64,
    /// The WAL holding every change after `flushed_lsn`.
    pub wal_id: u64,
    pub flushed_lsn: u64,
    /// Next id for a segment or patch file.
    pub next_segment_id: u64,
    pub tables: Vec<TableEntry>,
}

/// A manifest as read: today's, or a format 1 one (legacy tables).
pub(crate) enum Loaded {
    Current(Manifest),
    Legacy(legacy::Manifest),
}

/// Path of the manifest of store directory `dir`.
pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

fn check_header(path: &Path, h: &[u8]) -> Result<(u64, u64, u32, ManifestVersion)> {
    if h.len() < HEADER_LEN || MAGIC.of(h) != MANIFEST_MAGIC {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            expected: "manifest",
        });
    }
    if crc32fast::hash(&h[..HEADER_CRC.at]) != HEADER_CRC.u32(h) {
        return Err(corrupt(path, 0, "manifest header checksum mismatch"));
    }
    let version = ManifestVersion::check(path, VERSION.u32(h))?;
    let len = PAYLOAD_LEN.u64(h);
    if len > MAX_PAYLOAD {
        return Err(corrupt(
            path,
            PAYLOAD_LEN.at as u64,
            format!("manifest payload length {len} is implausible"),
        ));
    }
    Ok((GENERATION.u64(h), len, PAYLOAD_CRC.u32(h), version))
}

/// Which manifest is current: `(incarnation, generation)`.
pub(crate) type Stamp = (u64, u64);

/// Read only the stamp: the cheap check readers make on every call.
pub(crate) fn read_stamp(fs: &dyn Fs, dir: &Path) -> Result<Stamp> {
    let path = manifest_path(dir);
    let h = fs
        .read_prefix(&path, HEADER_LEN)
        .map_err(|e| not_found_or_io(dir, &path, e))?;
    if h.len() < HEADER_LEN {
        return Err(corrupt(&path, 0, "manifest header is truncated"));
    }
    let (generation, ..) = check_header(&path, &h)?;
    Ok((check_incarnation(&path, &h)?, generation))
}

fn check_incarnation(path: &Path, h: &[u8]) -> Result<u64> {
    if crc32fast::hash(&h[INCARNATION.at..INCARNATION_CRC.at]) != INCARNATION_CRC.u32(h) {
        return Err(corrupt(
            path,
            INCARNATION.at as u64,
            "manifest incarnation checksum mismatch",
        ));
    }
    Ok(INCARNATION.u64(h))
}

fn not_found_or_io(dir: &Path, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound(dir.to_path_buf())
    } else {
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Read and validate the manifest of `dir`.
pub(crate) fn read(fs: &dyn Fs, dir: &Path) -> Result<Loaded> {
    let path = manifest_path(dir);
    let bytes = fs.read(&path).map_err(|e| not_found_or_io(dir, &path, e))?;
    let (generation, len, crc, version) = check_header(&path, &bytes)?;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(corrupt(
            &path,
            HEADER_LEN as u64,
            format!("payload is {} bytes, header says {len}", payload.len()),
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt(&path, HEADER_LEN as u64, "manifest payload checksum mismatch"));
    }
    let incarnation = check_incarnation(&path, &bytes)?;
    let bad = |e: String| corrupt(&path, HEADER_LEN as u64, e);
    let (m, stamp) = match version {
        ManifestVersion::V1 | ManifestVersion::V2 => {
            let m: legacy::Manifest = codec::decode(payload).map_err(bad)?;
            let stamp = (m.generation, m.incarnation);
            (Loaded::Legacy(m), stamp)
        }
        ManifestVersion::V3 => {
            let m: Manifest = codec::decode(payload).map_err(bad)?;
            let stamp = (m.generation, m.incarnation);
            (Loaded::Current(m), stamp)
        }
    };
    if stamp != (generation, incarnation) {
        return Err(corrupt(&path, 16, "manifest header disagrees with its payload"));
    }
    Ok(m)
}

/// Publish `m` atomically as the manifest of `dir`.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, m: &Manifest) -> Result<()> {
    let path = manifest_path(dir);
    let payload = codec::encode(m).map_err(|e| Error::Internal(format!("cannot encode manifest: {e}")))?;
    let mut bytes = vec![0u8; HEADER_LEN];
    MAGIC.put(&mut bytes, &MANIFEST_MAGIC);
    VERSION.put(&mut bytes, &(ManifestVersion::CURRENT as u32).to_le_bytes());
    GENERATION.put(&mut bytes, &m.generation.to_le_bytes());
    PAYLOAD_LEN.put(&mut bytes, &(payload.len() as u64).to_le_bytes());
    PAYLOAD_CRC.put(&mut bytes, &crc32fast::hash(&payload).to_le_bytes());
    let hcrc = crc32fast::hash(&bytes[..HEADER_CRC.at]);
    HEADER_CRC.put(&mut bytes, &hcrc.to_le_bytes());
    INCARNATION.put(&mut bytes, &m.incarnation.to_le_bytes());
    let icrc = crc32fast::hash(&bytes[INCARNATION.at..INCARNATION_CRC.at]);
    INCARNATION_CRC.put(&mut bytes, &icrc.to_le_bytes());
    bytes.extend_from_slice(&payload);
    write_atomic(fs, &path, &bytes).map_err(|e| match e {
        Error::Io { source, .. } => Error::Io { path, source },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::RealFs;

    fn sample() -> Manifest {
        Manifest {
            generation: 3,
            incarnation: 0xdead_beef,
            tag: "tag".into(),
            watermark: 12,
            wal_id: 2,
            flushed_lsn: 10,
            next_segment_id: 4,
            tables: vec![TableEntry {
                id: 1,
                name: "t".into(),
                schema: Schema::builder().symbol("ns").build().unwrap(),
                next_row_id: 9,
                segments: vec![SegmentEntry {
                    id: 3,
                    rows: 9,
                    min_id: 0,
                    max_id: 8,
                    bytes: 100,
                    deleted: vec![2],
                }],
                patch_file: Some(2),
            }],
        }
    }

    #[test]
    fn round_trips_and_every_flipped_byte_is_a_clean_error() {
        let dir = tempfile::tempdir().unwrap();
        write(&RealFs, dir.path(), &sample()).unwrap();
        assert!(matches!(read(&RealFs, dir.path()).unwrap(), Loaded::Current(m) if m == sample()));
        assert_eq!(read_stamp(&RealFs, dir.path()).unwrap(), (0xdead_beef, 3));
        let path = manifest_path(dir.path());
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            std::fs::write(&path, &b).unwrap();
            assert!(read(&RealFs, dir.path()).is_err(), "flip at {i} went unnoticed");
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(read(&RealFs, dir.path()).is_err());
        }
    }
}
