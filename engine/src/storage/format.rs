//! Magic numbers and format versions of every file in a store, and the
//! file-system primitives the commit protocol relies on.
//!
//! The format version is separate from the crate version: it changes only
//! when bytes on disk change meaning.

use std::path::Path;

use super::fs::Fs;

use crate::error::{Error, IoContext, Result};

/// Magic number of WAL files.
pub const WAL_MAGIC: [u8; 8] = *b"ENGRMWAL";
/// Magic number of segment files.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ENGRMSEG";
/// Magic number of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"ENGRMMAN";
/// Magic number of patch files.
pub const PATCH_MAGIC: [u8; 8] = *b"ENGRMPAT";

macro_rules! versions {
    ($(#[$m:meta])* $name:ident, $what:expr, current $cur:ident, oldest $old:ident, { $($(#[$vm:meta])* $v:ident = $n:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum $name { $($(#[$vm])* $v = $n),+ }

        impl $name {
            /// The version this build writes.
            pub const CURRENT: $name = $name::$cur;
            /// The oldest version this build reads.
            pub const OLDEST_SUPPORTED: $name = $name::$old;
            /// Every version, oldest first.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// Decode a stored version number.
            pub fn from_u32(v: u32) -> Option<$name> {
                match v { $($n => Some($name::$v),)+ _ => None }
            }

            /// Check a version read from `path`.
            pub fn check(path: &Path, found: u32) -> Result<$name> {
                match Self::from_u32(found) {
                    Some(v) if v >= Self::OLDEST_SUPPORTED => Ok(v),
                    _ => Err(Error::UnsupportedVersion {
                        path: path.to_path_buf(),
                        what: $what,
                        found,
                        oldest: Self::OLDEST_SUPPORTED as u32,
                        current: Self::CURRENT as u32,
                    }),
                }
            }
        }
    };
}

versions!(
    /// Format versions of WAL files (`wal-N.log`), oldest first. Versions 1
    /// and 2 were one number stamped on every file of a store; their WAL
    /// records are the same.
    WalVersion, "WAL", current V3, oldest V1, {
        /// Records of the one fixed row shape.
        V1 = 1,
        /// As V1 (the store's segments gained graphs).
        V2 = 2,
        /// Records of rows with a schema; updates.
        V3 = 3,
    }
);

versions!(
    /// Format versions of the manifest (`MANIFEST`), oldest first. Versions
    /// 1 and 2 were one number stamped on every file of a store; their
    /// manifests are the same.
    ManifestVersion, "manifest", current V3, oldest V1, {
        /// Tables of one fixed row shape, one store-wide symbol list.
        V1 = 1,
        /// As V1 (the store's segments gained graphs).
        V2 = 2,
        /// Tables with schemas; deletes per segment; patch files.
        V3 = 3,
    }
);

versions!(
    /// Format versions of segment files (`seg-N.seg`), oldest first.
    SegmentVersion, "segment", current V3, oldest V1, {
        /// 15 fixed sections of the one row shape.
        V1 = 1,
        /// V1 plus a 16th section holding the HNSW graph.
        V2 = 2,
        /// A directory of (column, part) sections described by the table's schema.
        V3 = 3,
    }
);

versions!(
    /// Format versions of patch files (`pat-N.pat`), oldest first.
    PatchVersion, "patch", current V1, oldest V1, {
        /// Updated values of segment rows, as an rkyv list.
        V1 = 1,
    }
);

/// A fixed-width field of a file header. Headers are declared field after
/// field with [`Field::then`], so every offset is derived from the one
/// before it and a layout cannot overlap or leave a gap unnamed.
///
/// ```ignore
/// const MAGIC: Field = Field::first(8);
/// const VERSION: Field = MAGIC.then(4);
/// assert_eq!((VERSION.at, VERSION.end()), (8, 12));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// Offset from the start of the header.
    pub at: usize,
    /// Width in bytes.
    pub len: usize,
}

impl Field {
    /// The first field of a header.
    pub const fn first(len: usize) -> Field {
        Field { at: 0, len }
    }

    /// The field right after this one.
    pub const fn then(self, len: usize) -> Field {
        Field {
            at: self.at + self.len,
            len,
        }
    }

    /// The offset just past this field.
    pub const fn end(self) -> usize {
        self.at + self.len
    }

    /// Its bytes of `b`.
    pub fn of(self, b: &[u8]) -> &[u8] {
        &b[self.at..self.end()]
    }

    /// Read it as a little-endian u32 (a 4-byte field).
    pub fn u32(self, b: &[u8]) -> u32 {
        debug_assert_eq!(self.len, 4);
        le_u32(b, self.at)
    }

    /// Read it as a little-endian u64 (an 8-byte field).
    pub fn u64(self, b: &[u8]) -> u64 {
        debug_assert_eq!(self.len, 8);
        le_u64(b, self.at)
    }

    /// Write `bytes` (exactly its width) into it.
    pub fn put(self, b: &mut [u8], bytes: &[u8]) {
        b[self.at..self.end()].copy_from_slice(bytes);
    }
}

/// Every file header starts with its magic ...
pub(crate) const MAGIC: Field = Field::first(8);
/// ... and its format version (u32).
pub(crate) const VERSION: Field = MAGIC.then(4);

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
pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).at(dir)
}

/// Replace `path` atomically with `bytes`: write a temp file, fsync it,
/// rename it over `path`, fsync the directory. A crash leaves either the old
/// or the new file, never a mix.
pub(crate) fn write_atomic(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs.create(&tmp).at(&tmp)?;
        f.append(bytes).at(&tmp)?;
        f.sync().at(&tmp)?;
    }
    fs.rename(&tmp, path).at(path)?;
    sync_dir(fs, path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_unknown_is_a_typed_error() {
        fn all<V: Copy + PartialOrd + std::fmt::Debug>(
            vs: &[V],
            from: impl Fn(u32) -> Option<V>,
            n: impl Fn(V) -> u32,
            old: V,
            cur: V,
        ) {
            for v in vs {
                assert_eq!(from(n(*v)).map(&n), Some(n(*v)));
            }
            assert!(old <= cur);
        }
        all(
            WalVersion::ALL,
            WalVersion::from_u32,
            |v| v as u32,
            WalVersion::OLDEST_SUPPORTED,
            WalVersion::CURRENT,
        );
        all(
            ManifestVersion::ALL,
            ManifestVersion::from_u32,
            |v| v as u32,
            ManifestVersion::OLDEST_SUPPORTED,
            ManifestVersion::CURRENT,
        );
        all(
            SegmentVersion::ALL,
            SegmentVersion::from_u32,
            |v| v as u32,
            SegmentVersion::OLDEST_SUPPORTED,
            SegmentVersion::CURRENT,
        );
        all(
            PatchVersion::ALL,
            PatchVersion::from_u32,
            |v| v as u32,
            PatchVersion::OLDEST_SUPPORTED,
            PatchVersion::CURRENT,
        );
        let e = SegmentVersion::check(Path::new("x"), 99).unwrap_err();
        assert!(matches!(
            e,
            Error::UnsupportedVersion {
                found: 99,
                what: "segment",
                ..
            }
        ));
        assert!(e.to_string().contains("segment format version 99"), "{e}");
        assert!(e.to_string().contains("versions 1 to 3"), "{e}");
    }
}
