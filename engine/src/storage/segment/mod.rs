//! Immutable columnar segments: one file per flush or merge.
//!
//! ```text
//! 0    header (64 bytes)
//!        0  magic "ENGRMSEG"        8
//!        8  format version   u32    12 section count  u32
//!        16 table id         u32    20 dim            u32
//!        24 row count        u64    32 min row id     u64
//!        40 max row id       u64    48 blob block size u32
//!        52 reserved         u32[2] 60 crc32 of bytes 0..60
//! 64   section directory: section count x 32 bytes
//!        kind u32 | pad u32 | offset u64 | length u64 | crc32 u32 | pad u32
//!      then crc32 of the directory (u32), zero-padded to a 64-byte boundary
//! ...  sections, each starting on a 64-byte boundary
//! ```
//!
//! Fixed-width sections (ids, keys, norms, codes, scales, positions, metas,
//! offsets, edges) are read in place through zero-copy views; text and values
//! are lz4-compressed in blocks of [`BLOCK_SIZE`] uncompressed bytes. The last
//! section (format 2 on) holds the segment's search index — bytes that the
//! index layer writes and reads and storage only carries (empty when the
//! segment has none). A segment never changes once renamed into place, which
//! is what makes its mmap sound.

pub(crate) mod blob;
pub(crate) mod reader;
pub(crate) mod writer;

pub(crate) use reader::Segment;
pub(crate) use writer::SegmentWriter;

use std::path::{Path, PathBuf};

use crate::storage::format::FormatVersion;

/// Uncompressed bytes per lz4 block of a blob column.
pub(crate) const BLOCK_SIZE: usize = 16 << 10;
pub(crate) const HEADER_LEN: usize = 64;
pub(crate) const DIR_ENTRY_LEN: usize = 32;
pub(crate) const ALIGN: u64 = 64;

/// The sections of a segment, by on-disk kind number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Section {
    Ids = 1,
    Keys = 2,
    Norms = 3,
    Codes = 4,
    Scales = 5,
    Positions = 6,
    Metas = 7,
    ValueOffsets = 8,
    ValueBlocks = 9,
    ValueData = 10,
    TextOffsets = 11,
    TextBlocks = 12,
    TextData = 13,
    EdgeOffsets = 14,
    Edges = 15,
    Index = 16,
}

impl Section {
    pub(crate) const ALL: [Section; 16] = [
        Section::Ids,
        Section::Keys,
        Section::Norms,
        Section::Codes,
        Section::Scales,
        Section::Positions,
        Section::Metas,
        Section::ValueOffsets,
        Section::ValueBlocks,
        Section::ValueData,
        Section::TextOffsets,
        Section::TextBlocks,
        Section::TextData,
        Section::EdgeOffsets,
        Section::Edges,
        Section::Index,
    ];

    /// The sections a segment of `version` has: format 1 had no index.
    pub(crate) fn of(version: FormatVersion) -> &'static [Section] {
        match version {
            FormatVersion::V1 => &Section::ALL[..15],
            FormatVersion::V2 => &Section::ALL,
        }
    }
}

/// Path of segment `id` in store directory `dir`.
pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:08}.seg"))
}

pub(crate) fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}
