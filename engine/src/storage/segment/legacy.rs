//! Reading format 1 and 2 segments: one fixed row shape in 15 sections (16
//! with the graph), presented as a segment of the legacy schema
//! (`storage::legacy::schema`).
//!
//! Columns whose bytes are laid out as format 3 lays them out (ids, keys,
//! codes, value and text blobs, edges, the graph) are served from the map;
//! the 32-byte position and 48-byte metadata records, stored row by row,
//! are split into one buffer per column at open, and namespace and session
//! get a segment dictionary and posting lists built from the store-wide
//! symbol list. So opening costs O(rows) here, once: a writer that opens a
//! format 2 store rewrites its segments in format 3 (`legacy::upgrade`).
//!
//! ```text
//! 0  magic "ENGRMSEG" | 8 version u32 (1 or 2) | 12 section count u32 (15 or 16)
//! 16 table u32 | 20 dim u32 | 24 rows u64 | 32 min id u64 | 40 max id u64
//! 48 block size u32 (16384) | 52 reserved | 60 crc32 of 0..60
//! 64 directory: count x (kind u32, pad u32, offset u64, length u64, crc32 u32, pad u32), then its crc32
//! sections 1..=15 (16): ids, keys, norms, codes, scales, positions (32 B), metas (48 B),
//!   value offsets/blocks/data, text offsets/blocks/data, edge offsets, edges, (graph)
//! ```

use std::path::PathBuf;

use memmap2::Mmap;
use zerocopy::IntoBytes;

use super::dict::DictWriter;
use super::reader::{Entry, Region, Segment};
use super::{directory_end, entry, part, BLOCK_SIZE, DIR_ENTRY_LEN, HEADER_LEN, ROW};
use crate::error::{corrupt, Result};
use crate::storage::format::{le_u32, SegmentVersion};
use crate::storage::legacy::col;
use crate::storage::schema::Schema;

const POSITION: usize = 32;
const META: usize = 48;

/// Header fields of format 1 and 2 segments, after the magic and version
/// (the checksum is where format 3 keeps it: `header::CRC`).
mod v2 {
    use crate::storage::format::{Field, VERSION};
    pub const COUNT: Field = VERSION.then(4);
    pub const TABLE: Field = COUNT.then(4);
    /// The key dimension (one key column per row).
    pub const DIM: Field = TABLE.then(4);
    pub const ROWS: Field = DIM.then(8);
    pub const FIRST_ID: Field = ROWS.then(8);
    pub const LAST_ID: Field = FIRST_ID.then(8);
    pub const BLOCK: Field = LAST_ID.then(4);
    pub const PAD: Field = BLOCK.then(8);
    const _: () = assert!(PAD.end() == super::super::header::CRC.at);
    /// A directory entry: section kind (u32), then the format 3 entry's
    /// offset, length and checksum fields.
    pub const KIND: Field = Field::first(4);
}

/// Parse a format 1 or 2 segment whose `MetaRecord`s name strings of the
/// store-wide `symbols` list.
pub(crate) fn parse(
    path: PathBuf,
    id: u64,
    map: Mmap,
    version: SegmentVersion,
    schema: &Schema,
    symbols: &[String],
) -> Result<Segment> {
    let b = &map[..];
    let count = v2::COUNT.u32(b) as usize;
    let want = if version == SegmentVersion::V1 { 15 } else { 16 };
    if count != want {
        return Err(corrupt(
            &path,
            v2::COUNT.at as u64,
            format!("segment has {count} sections, expected {want}"),
        ));
    }
    let dir_end = directory_end(count) as usize;
    if b.len() < dir_end {
        return Err(corrupt(&path, b.len() as u64, "segment is shorter than its directory"));
    }
    let dir_bytes = HEADER_LEN + count * DIR_ENTRY_LEN;
    if crc32fast::hash(&b[HEADER_LEN..dir_bytes]) != le_u32(b, dir_bytes) {
        return Err(corrupt(&path, HEADER_LEN as u64, "segment directory checksum mismatch"));
    }
    if v2::BLOCK.u32(b) as usize != BLOCK_SIZE {
        return Err(corrupt(&path, v2::BLOCK.at as u64, "unsupported blob block size"));
    }
    let (table, dim, rows) = (v2::TABLE.u32(b), u64::from(v2::DIM.u32(b)), v2::ROWS.u64(b));
    let key_dim = match schema.columns().first().map(|c| &c.kind) {
        Some(crate::storage::schema::ColumnKind::Key(k)) => u64::from(k.dim),
        _ => 0,
    };
    if dim != key_dim || rows > u64::from(u32::MAX) {
        return Err(corrupt(
            &path,
            v2::DIM.at as u64,
            format!("segment has dimension {dim}, its table {key_dim}"),
        ));
    }
    let mut sections = Vec::with_capacity(count);
    for i in 0..count {
        let p = HEADER_LEN + i * DIR_ENTRY_LEN;
        let e = &b[p..p + DIR_ENTRY_LEN];
        let (kind, offset, len) = (v2::KIND.u32(e), entry::OFFSET.u64(e), entry::LEN.u64(e));
        if kind != i as u32 + 1 {
            return Err(corrupt(
                &path,
                p as u64,
                format!("section {i} has kind {kind}, expected {}", i + 1),
            ));
        }
        if !offset.is_multiple_of(super::ALIGN) || offset.checked_add(len).is_none_or(|e| e > b.len() as u64) {
            return Err(corrupt(
                &path,
                p as u64,
                format!("section {kind} lies outside the file"),
            ));
        }
        sections.push((offset, len, entry::CRC.u32(e)));
    }
    let mapped = |k: usize, col: u16, part: u16| Entry {
        col,
        part,
        region: Region::Map {
            offset: sections[k - 1].0,
            len: sections[k - 1].1,
        },
        crc: Some(sections[k - 1].2),
    };
    let mut entries = vec![
        mapped(1, ROW, part::IDS),
        mapped(2, col::KEY, part::KEY_F32),
        mapped(3, col::KEY, part::KEY_NORMS),
        mapped(4, col::KEY, part::KEY_CODES),
        mapped(5, col::KEY, part::KEY_SCALES),
        mapped(8, col::VALUE, part::OFFSETS),
        mapped(9, col::VALUE, part::BLOCKS),
        mapped(10, col::VALUE, part::BLOB_DATA),
        mapped(11, col::TEXT, part::OFFSETS),
        mapped(12, col::TEXT, part::BLOCKS),
        mapped(13, col::TEXT, part::BLOB_DATA),
        mapped(14, col::EDGES, part::OFFSETS),
        mapped(15, col::EDGES, part::TARGETS),
    ];
    let mut owned: Vec<Vec<u64>> = Vec::new();
    let mut own = |entries: &mut Vec<Entry>, col: u16, part: u16, bytes: &[u8]| {
        let mut buf = vec![0u64; bytes.len().div_ceil(8)];
        buf.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        owned.push(buf);
        entries.push(Entry {
            col,
            part,
            region: Region::Owned {
                index: owned.len() - 1,
                len: bytes.len(),
            },
            crc: None,
        });
    };
    if count == 16 {
        entries.push(mapped(16, col::KEY, part::KEY_GRAPH));
    } else {
        own(&mut entries, col::KEY, part::KEY_GRAPH, &[]);
    }
    let n = rows as usize;
    let slice = |k: usize, record: usize| -> Result<&[u8]> {
        let (offset, len, _) = sections[k - 1];
        if Some(len) != (n as u64).checked_mul(record as u64) {
            return Err(corrupt(
                &path,
                offset,
                format!("section {k} has {len} bytes for {n} rows"),
            ));
        }
        Ok(&b[offset as usize..(offset + len) as usize])
    };
    let (positions, metas) = (slice(6, POSITION)?, slice(7, META)?);
    // Fields of the fixed records: (column, record, byte offset, width).
    let fields: [(u16, &[u8], usize, usize); 17] = [
        (col::POS_ABSOLUTE, positions, 0, 8),
        (col::POS_DOCUMENT, positions, 8, 8),
        (col::POS_RELATIVE, positions, 16, 4),
        (col::POS_LENGTH, positions, 20, 4),
        (col::POS_SENTENCE, positions, 24, 4),
        (col::POS_PARAGRAPH, positions, 28, 4),
        (col::TIMESTAMP, metas, 0, 8),
        (col::ORDER, metas, 16, 4),
        (col::ACCESS_COUNT, metas, 20, 4),
        (col::TOKEN_COUNT, metas, 24, 4),
        (col::AUTHORITY, metas, 28, 4),
        (col::CONFIDENCE, metas, 32, 4),
        (col::DECAY_RATE, metas, 36, 4),
        (col::ANCHOR_DENSITY, metas, 40, 4),
        (col::SCOPE, metas, 44, 1),
        (col::KIND, metas, 45, 1),
        (col::TIER, metas, 46, 1),
    ];
    for (column, records, at, width) in fields {
        let size = if records.len() == n * POSITION { POSITION } else { META };
        let mut bytes = Vec::with_capacity(n * width);
        for r in 0..n {
            bytes.extend_from_slice(&records[r * size + at..r * size + at + width]);
        }
        own(&mut entries, column, part::DATA, &bytes);
    }
    for (column, at) in [(col::NAMESPACE, 8usize), (col::SESSION, 12)] {
        let mut d = DictWriter::default();
        for r in 0..n {
            let sym = le_u32(metas, r * META + at) as usize;
            let name = symbols.get(sym).ok_or_else(|| {
                corrupt(
                    &path,
                    sections[6].0,
                    format!("row {r}: symbol id {sym} is not in the manifest"),
                )
            })?;
            d.push(name);
        }
        let p = d.finish();
        own(&mut entries, column, part::DATA, p.data.as_bytes());
        own(&mut entries, column, part::DICT_OFFSETS, p.offsets.as_bytes());
        own(&mut entries, column, part::DICT_BYTES, &p.bytes);
        own(
            &mut entries,
            column,
            part::POSTING_OFFSETS,
            p.posting_offsets.as_bytes(),
        );
        own(&mut entries, column, part::POSTING_ROWS, p.posting_rows.as_bytes());
    }
    let ids = (v2::FIRST_ID.u64(b), v2::LAST_ID.u64(b));
    Segment::assemble(path, id, map, owned, entries, version, table, rows, ids, schema)
}
