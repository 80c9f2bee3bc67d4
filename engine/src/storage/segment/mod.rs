//! Immutable columnar segments: one file per flush or merge, holding rows of
//! one table in increasing id order.
//!
//! ```text
//! 0    header (64 bytes)
//!        0  magic "ENGRMSEG"         8
//!        8  format version   u32     12 section count u32
//!        16 table id         u32     20 column count  u32
//!        24 row count        u64     32 min row id    u64
//!        40 max row id       u64     48 schema fingerprint u64
//!        56 blob block size  u32     60 crc32 of bytes 0..60
//! 64   directory: section count x 32 bytes, sorted by (column, part)
//!        column u16 | part u16 | reserved u32 | offset u64 | length u64 | crc32 u32 | reserved u32
//!      then crc32 of the directory (u32), zero-padded to a 64-byte boundary
//! ...  sections, each starting on a 64-byte boundary
//! ```
//!
//! Each column of the table's schema owns a few sections ("parts", below);
//! column [`ROW`] holds what belongs to the row as a whole (its id). Opening
//! a segment checks that every part its schema needs is there, with the
//! exact length the schema and the row count imply, so later reads index in
//! bounds. Fixed-width parts are read in place through zero-copy views; a
//! segment never changes once renamed into place, which is what makes its
//! mmap sound. Format 1 and 2 segments (one fixed row shape) are read by
//! `legacy.rs`.

pub(crate) mod blob;
pub(crate) mod dict;
pub(crate) mod legacy;
pub(crate) mod reader;
pub(crate) mod writer;

pub(crate) use reader::Segment;
pub(crate) use writer::SegmentWriter;

use std::path::{Path, PathBuf};

use crate::storage::schema::{ColumnKind, Compression, FixedType};

/// Uncompressed bytes per lz4 block of a blob column.
pub(crate) const BLOCK_SIZE: usize = 16 << 10;
pub(crate) const HEADER_LEN: usize = header::CRC.end();
pub(crate) const DIR_ENTRY_LEN: usize = entry::PAD2.end();
const _: () = assert!(
    HEADER_LEN == 64 && DIR_ENTRY_LEN == 32,
    "the segment layout is part of the format"
);

/// Header fields (format 3), after the magic and version.
pub(crate) mod header {
    use crate::storage::format::{Field, VERSION};
    /// Directory entries that follow the header.
    pub const COUNT: Field = VERSION.then(4);
    /// The table the segment belongs to.
    pub const TABLE: Field = COUNT.then(4);
    /// Columns of the schema it was written with.
    pub const COLUMNS: Field = TABLE.then(4);
    /// Rows written to it.
    pub const ROWS: Field = COLUMNS.then(8);
    /// Its first and last row ids.
    pub const FIRST_ID: Field = ROWS.then(8);
    pub const LAST_ID: Field = FIRST_ID.then(8);
    /// The schema's fingerprint.
    pub const FINGERPRINT: Field = LAST_ID.then(8);
    /// Uncompressed bytes per blob block ([`super::BLOCK_SIZE`]).
    pub const BLOCK: Field = FINGERPRINT.then(4);
    /// crc32 of the header before it (the offset is the same in every format).
    pub const CRC: Field = BLOCK.then(4);
}

/// Fields of a directory entry, from its start.
pub(crate) mod entry {
    use crate::storage::format::Field;
    /// Column number ([`super::ROW`] for row-level sections).
    pub const COL: Field = Field::first(2);
    /// Part number ([`super::part`]).
    pub const PART: Field = COL.then(2);
    pub const PAD: Field = PART.then(4);
    /// Offset and length of the section in the file.
    pub const OFFSET: Field = PAD.then(8);
    pub const LEN: Field = OFFSET.then(8);
    /// crc32 of the section.
    pub const CRC: Field = LEN.then(4);
    pub const PAD2: Field = CRC.then(4);
}
pub(crate) const ALIGN: u64 = 64;

/// The column number of row-level sections.
pub(crate) const ROW: u16 = u16::MAX;

/// Part numbers. A part's meaning depends on its column's kind.
pub(crate) mod part {
    /// Row ids (column [`super::ROW`]).
    pub const IDS: u16 = 0;
    /// Key: f32 vectors, row-major.
    pub const KEY_F32: u16 = 0;
    /// Key: f32 L2 norm of each vector.
    pub const KEY_NORMS: u16 = 1;
    /// Key: int8 codes, row-major.
    pub const KEY_CODES: u16 = 2;
    /// Key: quantization scale of each row.
    pub const KEY_SCALES: u16 = 3;
    /// Key: the index layer's graph (empty when none was built).
    pub const KEY_GRAPH: u16 = 4;
    /// Key: the norm of each Matryoshka prefix, row-major.
    pub const KEY_PREFIX_NORMS: u16 = 5;
    /// Fixed: the values, native width.
    pub const DATA: u16 = 0;
    /// Symbol: byte offsets of each dictionary string (n + 1 u64).
    pub const DICT_OFFSETS: u16 = 1;
    /// Symbol: the dictionary's strings, sorted, concatenated.
    pub const DICT_BYTES: u16 = 2;
    /// Symbol: start of each value's rows in `POSTING_ROWS` (n + 1 u32).
    pub const POSTING_OFFSETS: u16 = 3;
    /// Symbol: row indexes grouped by value, increasing within a value.
    pub const POSTING_ROWS: u16 = 4;
    /// Blob / sparse / edges: per-row offsets (rows + 1 u64).
    pub const OFFSETS: u16 = 0;
    /// Blob (lz4): compressed block bounds (blocks + 1 u64).
    pub const BLOCKS: u16 = 1;
    /// Blob: the (compressed or raw) bytes.
    pub const BLOB_DATA: u16 = 2;
    /// Sparse: ids (u32).
    pub const SPARSE_IDS: u16 = 1;
    /// Sparse: weights (u32 counts or f32).
    pub const SPARSE_WEIGHTS: u16 = 2;
    /// Edges: target row ids (u64).
    pub const TARGETS: u16 = 1;
    /// Unique column: 64-bit hash of each row's value, sorted.
    pub const UNIQUE_HASHES: u16 = 8;
    /// Unique column: the row of each hash.
    pub const UNIQUE_ROWS: u16 = 9;
}

/// The length a part must have, given the segment's row count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Len {
    /// Exactly `rows * n` bytes.
    PerRow(u64),
    /// `(rows + 1) * 8` bytes of u64 offsets.
    Offsets,
    /// A multiple of `n` bytes.
    Multiple(u64),
}

impl Len {
    /// Whether `len` bytes fit the rule for `rows` rows.
    pub(crate) fn fits(self, rows: u64, len: u64) -> bool {
        match self {
            Len::PerRow(n) => rows.checked_mul(n) == Some(len),
            Len::Offsets => rows.checked_add(1).and_then(|r| r.checked_mul(8)) == Some(len),
            Len::Multiple(n) => len.is_multiple_of(n),
        }
    }
}

/// The parts a column of `kind` has, in part order; `unique` adds the
/// unique index.
pub(crate) fn parts_of(kind: &ColumnKind, unique: bool) -> Vec<(u16, Len)> {
    let mut v = match kind {
        ColumnKind::Key(k) => {
            let dim = u64::from(k.dim);
            let mut p = vec![(part::KEY_F32, Len::PerRow(dim * 4)), (part::KEY_NORMS, Len::PerRow(4))];
            if k.codes {
                p.push((part::KEY_CODES, Len::PerRow(dim)));
                p.push((part::KEY_SCALES, Len::PerRow(4)));
                p.push((part::KEY_GRAPH, Len::Multiple(1)));
            }
            if !k.prefixes.is_empty() {
                p.push((part::KEY_PREFIX_NORMS, Len::PerRow(4 * k.prefixes.len() as u64)));
            }
            p
        }
        ColumnKind::Fixed(FixedType::Symbol) => vec![
            (part::DATA, Len::PerRow(4)),
            (part::DICT_OFFSETS, Len::Multiple(8)),
            (part::DICT_BYTES, Len::Multiple(1)),
            (part::POSTING_OFFSETS, Len::Multiple(4)),
            (part::POSTING_ROWS, Len::PerRow(4)),
        ],
        ColumnKind::Fixed(t) => vec![(part::DATA, Len::PerRow(t.width() as u64))],
        ColumnKind::Blob(b) => match b.compression {
            Compression::Lz4 => vec![
                (part::OFFSETS, Len::Offsets),
                (part::BLOCKS, Len::Multiple(8)),
                (part::BLOB_DATA, Len::Multiple(1)),
            ],
            Compression::Raw => vec![(part::OFFSETS, Len::Offsets), (part::BLOB_DATA, Len::Multiple(1))],
        },
        ColumnKind::Sparse(_) => vec![
            (part::OFFSETS, Len::Offsets),
            (part::SPARSE_IDS, Len::Multiple(4)),
            (part::SPARSE_WEIGHTS, Len::Multiple(4)),
        ],
        ColumnKind::Edges(_) => vec![(part::OFFSETS, Len::Offsets), (part::TARGETS, Len::Multiple(8))],
    };
    if unique {
        v.push((part::UNIQUE_HASHES, Len::PerRow(8)));
        v.push((part::UNIQUE_ROWS, Len::PerRow(4)));
    }
    v
}

/// Path of segment `id` in store directory `dir`.
pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:08}.seg"))
}

pub(crate) fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Where the directory of `sections` entries ends and the first section may
/// begin.
pub(crate) fn directory_end(sections: usize) -> u64 {
    align_up((HEADER_LEN + sections * DIR_ENTRY_LEN + 4) as u64)
}

/// The 64-bit hash under which a unique value is indexed: its canonical
/// bytes (`view::unique_bytes`) through xxh3.
pub(crate) fn unique_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
