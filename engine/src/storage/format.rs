//! Magic numbers and format versions of every file in a store, and the
//! file-system primitives the commit protocol relies on.
//!
//! The format version is separate from the crate version: it changes only
//! when bytes on disk change meaning.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Magic number of WAL files.
pub const WAL_MAGIC: [u8; 8] = *b"ENGRMWAL";
/// Magic number of segment files.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ENGRMSEG";
/// Magic number of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"ENGRMMAN";

/// On-disk format versions, oldest first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum FormatVersion {
    /// The first format: WAL, columnar segments, rkyv manifest.
    V1 = 1,
    /// Segments gain a last section holding their search index.
    V2 = 2,
}

impl FormatVersion {
    /// The version this build writes.
    pub const CURRENT: FormatVersion = FormatVersion::V2;
    /// The oldest version this build reads.
    pub const OLDEST_SUPPORTED: FormatVersion = FormatVersion::V1;

    /// Decode a stored version number.
    pub fn from_u32(v: u32) -> Option<FormatVersion> {
        match v {
            1 => Some(FormatVersion::V1),
            2 => Some(FormatVersion::V2),
            _ => None,
        }
    }

    /// Check a version read from `path`.
    pub fn check(path: &Path, found: u32) -> Result<FormatVersion> {
        match Self::from_u32(found) {
            Some(v) if v >= Self::OLDEST_SUPPORTED => Ok(v),
            _ => Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                oldest: Self::OLDEST_SUPPORTED as u32,
                current: Self::CURRENT as u32,
            }),
        }
    }
}

/// Read a little-endian u32 at `off` of a buffer already known to be long enough.
pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Read a little-endian u64 at `off` of a buffer already known to be long enough.
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// fsync a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replace `path` atomically with `bytes`: write a temp file, fsync it,
/// rename it over `path`, fsync the directory. A crash leaves either the old
/// or the new file, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trips_and_unknown_is_typed_error() {
        for v in [FormatVersion::V1, FormatVersion::V2] {
            assert_eq!(FormatVersion::from_u32(v as u32), Some(v));
        }
        assert!(FormatVersion::OLDEST_SUPPORTED <= FormatVersion::CURRENT);
        let e = FormatVersion::check(Path::new("x"), 99).unwrap_err();
        assert!(matches!(e, Error::UnsupportedVersion { found: 99, .. }));
        assert!(e.to_string().contains("reads versions 1 to 2"));
    }
}
