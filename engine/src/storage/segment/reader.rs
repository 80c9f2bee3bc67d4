//! Opens a sealed segment by mmap and serves zero-copy views of its parts.
//!
//! Opening reads only the header and directory (plus the first and last
//! entry of each offsets part), so it costs the same for a segment of any
//! size; every header field and directory entry is checked against the
//! table's schema (checked arithmetic, bounds, alignment, exact lengths)
//! before anything else reads the file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::dict::Dict;
use super::{
    blob, directory_end, entry, header, part, parts_of, segment_path, ALIGN, BLOCK_SIZE, DIR_ENTRY_LEN, HEADER_LEN, ROW,
};
use crate::error::{corrupt, Error, IoContext, Result};
use crate::storage::format::{le_u32, SegmentVersion, MAGIC, SEGMENT_MAGIC, VERSION};
use crate::storage::row::{SparseRef, WeightsRef};
use crate::storage::schema::{ColumnKind, Compression, FixedType, Schema, SparseKind};

/// Most parts any column has (part numbers are below this).
pub(crate) const MAX_PARTS: usize = 10;
const ABSENT: u32 = u32::MAX;

#[derive(Copy, Clone, Debug)]
pub(crate) enum Region {
    /// Bytes of the mapped file.
    Map { offset: u64, len: u64 },
    /// A buffer built at open (format 1 and 2 segments only): `len` bytes of
    /// `owned[i]`.
    Owned { index: usize, len: usize },
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Entry {
    pub col: u16,
    pub part: u16,
    pub region: Region,
    /// CRC32 of the bytes, checked by [`Segment::verify`] (`None` for a
    /// buffer built at open).
    pub crc: Option<u32>,
}

/// A sealed segment. Immutable for its whole life.
pub(crate) struct Segment {
    pub id: u64,
    pub table: u32,
    pub rows: usize,
    pub min_id: u64,
    pub max_id: u64,
    pub version: SegmentVersion,
    path: PathBuf,
    map: Mmap,
    owned: Vec<Vec<u64>>,
    entries: Vec<Entry>,
    /// Per column, the entry of each part.
    by_col: Vec<[u32; MAX_PARTS]>,
    ids: u32,
    /// Per column, the kept decompressed blocks of an lz4 blob column.
    block_caches: Vec<Option<blob::BlockCache>>,
}

/// A key column of a segment.
#[derive(Copy, Clone)]
pub(crate) struct KeyData<'a> {
    pub dim: usize,
    pub f32: &'a [f32],
    pub norms: &'a [f32],
    /// Empty without codes.
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    /// The index layer's bytes; empty without a graph.
    pub graph: &'a [u8],
    pub prefix_norms: &'a [f32],
    pub prefixes: usize,
}

impl<'a> KeyData<'a> {
    pub fn key(&self, i: usize) -> &'a [f32] {
        &self.f32[i * self.dim..(i + 1) * self.dim]
    }

    pub fn code(&self, i: usize) -> &'a [i8] {
        self.codes.get(i * self.dim..(i + 1) * self.dim).unwrap_or(&[])
    }

    pub fn prefix_norms(&self, i: usize) -> &'a [f32] {
        self.prefix_norms
            .get(i * self.prefixes..(i + 1) * self.prefixes)
            .unwrap_or(&[])
    }
}

/// A fixed column's values, at their width.
#[derive(Copy, Clone)]
pub(crate) enum Fixed<'a> {
    U8(&'a [u8]),
    U32(&'a [u32]),
    I32(&'a [i32]),
    U64(&'a [u64]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Fixed<'_> {
    /// Carried bits of row `i` (see `schema::Scalar`); 0 past the end.
    #[inline]
    pub fn bits(&self, i: usize) -> u64 {
        match self {
            Fixed::U8(v) => v.get(i).map_or(0, |&x| u64::from(x)),
            Fixed::U32(v) => v.get(i).map_or(0, |&x| u64::from(x)),
            Fixed::I32(v) => v.get(i).map_or(0, |&x| i64::from(x) as u64),
            Fixed::U64(v) => v.get(i).copied().unwrap_or(0),
            Fixed::I64(v) => v.get(i).map_or(0, |&x| x as u64),
            Fixed::F32(v) => v.get(i).map_or(0, |&x| u64::from(x.to_bits())),
            Fixed::F64(v) => v.get(i).map_or(0, |&x| x.to_bits()),
        }
    }
}

/// A blob column of a segment.
#[derive(Copy, Clone)]
pub(crate) struct BlobData<'a> {
    offsets: &'a [u64],
    /// `None` for a raw column.
    blocks: Option<&'a [u64]>,
    data: &'a [u8],
    /// The segment's kept blocks of this column.
    cache: Option<&'a blob::BlockCache>,
}

/// Why a part read failed; the segment turns it into [`Error::Corrupt`].
pub(crate) struct Damaged(pub String);

impl<'a> BlobData<'a> {
    /// Row `i`'s bytes: borrowed from the map for a raw column; for an lz4
    /// one, borrowed from the segment's kept block or decompressed.
    pub fn read(&self, i: usize) -> Result<Cow<'a, [u8]>, Damaged> {
        match self.blocks {
            Some(blocks) => {
                blob::read_row(self.offsets, blocks, self.data, i, self.cache).map_err(|e| Damaged(e.reason))
            }
            None => match (self.offsets.get(i), self.offsets.get(i + 1)) {
                (Some(&s), Some(&e)) if s <= e => self
                    .data
                    .get(s as usize..e as usize)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| Damaged(format!("row {i}: blob range {s}..{e} outside the data"))),
                _ => Err(Damaged(format!("row {i}: bad blob offsets"))),
            },
        }
    }
}

/// A sparse column of a segment.
#[derive(Copy, Clone)]
pub(crate) struct SparseData<'a> {
    offsets: &'a [u64],
    ids: &'a [u32],
    counts: &'a [u32],
    floats: &'a [f32],
    kind: SparseKind,
}

impl<'a> SparseData<'a> {
    pub fn read(&self, i: usize) -> Result<SparseRef<'a>, Damaged> {
        let (s, e) = match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) if s <= e && e as usize <= self.ids.len() => (s as usize, e as usize),
            _ => return Err(Damaged(format!("row {i}: bad sparse offsets"))),
        };
        let weights = match self.kind {
            SparseKind::Counts => WeightsRef::Counts(self.counts.get(s..e).unwrap_or(&[])),
            SparseKind::Weights => WeightsRef::F32(self.floats.get(s..e).unwrap_or(&[])),
        };
        Ok(SparseRef {
            ids: &self.ids[s..e],
            weights,
        })
    }
}

/// An edge column of a segment.
#[derive(Copy, Clone)]
pub(crate) struct EdgeData<'a> {
    offsets: &'a [u64],
    targets: &'a [u64],
}

impl<'a> EdgeData<'a> {
    pub fn read(&self, i: usize) -> Result<&'a [u64], Damaged> {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) if s <= e && e as usize <= self.targets.len() => {
                Ok(&self.targets[s as usize..e as usize])
            }
            _ => Err(Damaged(format!("row {i}: bad edge offsets"))),
        }
    }
}

fn bad_section(path: &Path, at: u64, why: String) -> Error {
    corrupt(path, at, why)
}

impl Segment {
    /// Open segment `id` of table `table` (schema `schema`) in `dir`: a
    /// format 3 segment, or (with the store-wide `legacy_symbols` of a
    /// format 1 manifest) a format 1 or 2 one. With `verify`, every part's
    /// checksum is checked too (reads the whole file).
    pub fn open(
        fs: &dyn crate::storage::fs::Fs,
        dir: &Path,
        id: u64,
        table: u32,
        schema: &Schema,
        legacy_symbols: Option<&[String]>,
        verify: bool,
    ) -> Result<Arc<Segment>> {
        let path = segment_path(dir, id);
        let map = fs.map(&path).at(&path)?;
        let b = &map[..];
        if b.len() < HEADER_LEN || MAGIC.of(b) != SEGMENT_MAGIC {
            return Err(Error::BadMagic {
                path,
                expected: "segment",
            });
        }
        if crc32fast::hash(&b[..header::CRC.at]) != header::CRC.u32(b) {
            return Err(corrupt(&path, 0, "segment header checksum mismatch"));
        }
        let version = SegmentVersion::check(&path, VERSION.u32(b))?;
        let seg = match (version, legacy_symbols) {
            (SegmentVersion::V3, None) => Self::parse(path, id, map, schema)?,
            (SegmentVersion::V1 | SegmentVersion::V2, Some(symbols)) => {
                super::legacy::parse(path, id, map, version, schema, symbols)?
            }
            _ => {
                return Err(corrupt(
                    &path,
                    VERSION.at as u64,
                    format!("a format {} segment in a store of another format", version as u32),
                ))
            }
        };
        if seg.table != table {
            return Err(corrupt(
                &seg.path,
                header::TABLE.at as u64,
                format!("segment belongs to table {}, expected {table}", seg.table),
            ));
        }
        if verify {
            seg.verify()?;
        }
        Ok(Arc::new(seg))
    }

    fn parse(path: PathBuf, id: u64, map: Mmap, schema: &Schema) -> Result<Segment> {
        let b = &map[..];
        let at = |f: crate::storage::format::Field| f.at as u64;
        let count = header::COUNT.u32(b) as usize;
        let columns = header::COLUMNS.u32(b) as usize;
        let rows = header::ROWS.u64(b);
        if columns != schema.columns().len() || header::FINGERPRINT.u64(b) != schema.fingerprint() {
            return Err(corrupt(
                &path,
                at(header::COLUMNS),
                "segment was written for another schema",
            ));
        }
        if header::BLOCK.u32(b) as usize != BLOCK_SIZE {
            return Err(corrupt(&path, at(header::BLOCK), "unsupported blob block size"));
        }
        if rows > u64::from(u32::MAX) {
            return Err(corrupt(
                &path,
                at(header::ROWS),
                format!("implausible row count {rows}"),
            ));
        }
        let dir_end = directory_end(count);
        if count > 1 + columns * MAX_PARTS || (b.len() as u64) < dir_end {
            return Err(corrupt(
                &path,
                at(header::COUNT),
                "segment is shorter than its directory",
            ));
        }
        let dir_bytes = HEADER_LEN + count * DIR_ENTRY_LEN;
        if crc32fast::hash(&b[HEADER_LEN..dir_bytes]) != le_u32(b, dir_bytes) {
            return Err(corrupt(&path, HEADER_LEN as u64, "segment directory checksum mismatch"));
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let p = HEADER_LEN + i * DIR_ENTRY_LEN;
            let e = &b[p..p + DIR_ENTRY_LEN];
            let u16_of = |f: crate::storage::format::Field| u16::from_le_bytes([e[f.at], e[f.at + 1]]);
            let (col, part) = (u16_of(entry::COL), u16_of(entry::PART));
            let (offset, len) = (entry::OFFSET.u64(e), entry::LEN.u64(e));
            if !offset.is_multiple_of(ALIGN) || offset.checked_add(len).is_none_or(|e| e > b.len() as u64) {
                return Err(bad_section(
                    &path,
                    p as u64,
                    format!("section ({col}, {part}) lies outside the file"),
                ));
            }
            entries.push(Entry {
                col,
                part,
                region: Region::Map { offset, len },
                crc: Some(entry::CRC.u32(e)),
            });
        }
        let (table, ids) = (header::TABLE.u32(b), (header::FIRST_ID.u64(b), header::LAST_ID.u64(b)));
        Segment::assemble(
            path,
            id,
            map,
            Vec::new(),
            entries,
            SegmentVersion::V3,
            table,
            rows,
            ids,
            schema,
        )
    }

    /// Check the directory `entries` against `schema` and build the segment.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        path: PathBuf,
        id: u64,
        map: Mmap,
        owned: Vec<Vec<u64>>,
        mut entries: Vec<Entry>,
        version: SegmentVersion,
        table: u32,
        rows: u64,
        (min_id, max_id): (u64, u64),
        schema: &Schema,
    ) -> Result<Segment> {
        entries.sort_by_key(|e| (e.col, e.part));
        if entries
            .windows(2)
            .any(|w| (w[0].col, w[0].part) == (w[1].col, w[1].part))
        {
            return Err(corrupt(
                &path,
                HEADER_LEN as u64,
                "a section appears twice in the directory",
            ));
        }
        let mut seg = Segment {
            id,
            table,
            rows: rows as usize,
            min_id,
            max_id,
            version,
            path,
            map,
            owned,
            by_col: vec![[ABSENT; MAX_PARTS]; schema.columns().len()],
            ids: ABSENT,
            entries: Vec::new(),
            block_caches: Vec::new(),
        };
        for (i, e) in entries.iter().enumerate() {
            let slot = if e.col == ROW {
                (e.part == part::IDS).then_some(&mut seg.ids)
            } else {
                seg.by_col
                    .get_mut(e.col as usize)
                    .and_then(|parts| parts.get_mut(e.part as usize))
            };
            match slot {
                Some(s) => *s = i as u32,
                None => {
                    return Err(corrupt(
                        &seg.path,
                        HEADER_LEN as u64,
                        format!("unexpected section ({}, {})", e.col, e.part),
                    ))
                }
            }
        }
        seg.entries = entries;
        if seg.ids == ABSENT || seg.len_of(seg.ids) != rows * 8 {
            return Err(corrupt(
                &seg.path,
                HEADER_LEN as u64,
                "row ids section missing or of the wrong length",
            ));
        }
        // O(1) at open (opening must not cost more with more rows): the ids
        // end where the header says; `verify` checks every step between.
        let ids = seg.ids();
        if rows > 0 && (ids.first() != Some(&min_id) || ids.last() != Some(&max_id)) {
            return Err(corrupt(
                &seg.path,
                seg.offset_of(seg.ids),
                "row ids do not run from the header's first id to its last",
            ));
        }
        let mut want = 1;
        for (c, col) in schema.columns().iter().enumerate() {
            let expected = parts_of(&col.kind, schema.unique().map(|u| u.0 as usize) == Some(c));
            want += expected.len();
            for (p, rule) in expected {
                let e = seg.by_col[c][p as usize];
                if e == ABSENT || !rule.fits(rows, seg.len_of(e)) {
                    return Err(corrupt(
                        &seg.path,
                        HEADER_LEN as u64,
                        format!(
                            "column {:?} part {p}: missing or {} bytes ({rule:?}, {rows} rows)",
                            col.name,
                            if e == ABSENT { 0 } else { seg.len_of(e) }
                        ),
                    ));
                }
            }
        }
        if want != seg.entries.len() {
            return Err(corrupt(
                &seg.path,
                header::COUNT.at as u64,
                "the directory holds sections the schema does not",
            ));
        }
        seg.check_structure(schema)?;
        seg.block_caches = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(c, col)| match &col.kind {
                ColumnKind::Blob(b) if b.compression == Compression::Lz4 => {
                    Some(blob::BlockCache::new(seg.u64s(c, part::BLOCKS).len().saturating_sub(1)))
                }
                _ => None,
            })
            .collect();
        Ok(seg)
    }

    /// Cheap checks that keep every later read in bounds: offsets start at
    /// 0 and end at their data's length.
    fn check_structure(&self, schema: &Schema) -> Result<()> {
        for (c, col) in schema.columns().iter().enumerate() {
            let at = |p: u16| self.offset_of(self.by_col[c][p as usize]);
            let bad = |p: u16, why: &str| Err(corrupt(&self.path, at(p), format!("column {:?}: {why}", col.name)));
            let offs = || self.u64s(c, part::OFFSETS);
            match &col.kind {
                ColumnKind::Blob(b) => {
                    let o = offs();
                    let limit = match b.compression {
                        Compression::Raw => self.raw(c, part::BLOB_DATA).len() as u64,
                        Compression::Lz4 => {
                            let blocks = self.u64s(c, part::BLOCKS);
                            if blocks.first() != Some(&0)
                                || blocks
                                    .last()
                                    .is_none_or(|&l| l as usize > self.raw(c, part::BLOB_DATA).len())
                            {
                                return bad(part::BLOCKS, "block bounds do not fit the data");
                            }
                            (blocks.len() as u64 - 1).saturating_mul(BLOCK_SIZE as u64)
                        }
                    };
                    if o.first() != Some(&0) || o.last().is_none_or(|&l| l > limit) {
                        return bad(part::OFFSETS, "offsets do not fit the data");
                    }
                }
                ColumnKind::Sparse(_) => {
                    let n = self.raw(c, part::SPARSE_IDS).len();
                    if self.raw(c, part::SPARSE_WEIGHTS).len() != n {
                        return bad(part::SPARSE_WEIGHTS, "one weight per id");
                    }
                    if offs().first() != Some(&0) || offs().last() != Some(&(n as u64 / 4)) {
                        return bad(part::OFFSETS, "offsets do not end at the id count");
                    }
                }
                ColumnKind::Edges(_) => {
                    let n = self.raw(c, part::TARGETS).len() as u64 / 8;
                    if offs().first() != Some(&0) || offs().last() != Some(&n) {
                        return bad(part::OFFSETS, "offsets do not end at the target count");
                    }
                }
                ColumnKind::Fixed(FixedType::Symbol) => {
                    let d = self.dict(c);
                    let values = d.offsets.len();
                    if values == 0
                        || d.offsets[0] != 0
                        || d.offsets[values - 1] as usize != d.bytes.len()
                        || d.posting_offsets.len() != values
                        || d.posting_offsets[0] != 0
                        || d.posting_offsets[values - 1] as usize != self.rows
                    {
                        return bad(part::DICT_OFFSETS, "dictionary or postings do not fit");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn len_of(&self, e: u32) -> u64 {
        match self.entries[e as usize].region {
            Region::Map { len, .. } => len,
            Region::Owned { len, .. } => len as u64,
        }
    }

    fn offset_of(&self, e: u32) -> u64 {
        match self.entries.get(e as usize).map(|e| e.region) {
            Some(Region::Map { offset, .. }) => offset,
            _ => 0,
        }
    }

    fn bytes_of(&self, e: u32) -> &[u8] {
        match self.entries.get(e as usize).map(|e| e.region) {
            // In bounds: checked when the directory was read.
            Some(Region::Map { offset, len }) => &self.map[offset as usize..(offset + len) as usize],
            Some(Region::Owned { index, len }) => &self.owned[index].as_bytes()[..len],
            None => &[],
        }
    }

    /// The bytes of part `part` of column `col` (empty if absent).
    pub(crate) fn raw(&self, col: usize, part: u16) -> &[u8] {
        match self.by_col.get(col).and_then(|p| p.get(part as usize)) {
            Some(&e) if e != ABSENT => self.bytes_of(e),
            _ => &[],
        }
    }

    fn typed<'a, T: FromBytes + Immutable + KnownLayout>(&self, bytes: &'a [u8]) -> &'a [T] {
        // Lengths were validated at open; sections are 64-byte aligned in a
        // page-aligned map, and owned buffers are u64-aligned. (An absent
        // part is an unaligned empty slice.)
        if bytes.is_empty() {
            return &[];
        }
        <[T]>::ref_from_bytes(bytes).expect("segment part layout validated at open")
    }

    fn u64s(&self, col: usize, part: u16) -> &[u64] {
        self.typed(self.raw(col, part))
    }

    /// Check every part's checksum.
    pub fn verify(&self) -> Result<()> {
        if self.ids().windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt(&self.path, self.offset_of(self.ids), "row ids do not increase"));
        }
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(crc) = e.crc {
                if crc32fast::hash(self.bytes_of(i as u32)) != crc {
                    return Err(corrupt(
                        &self.path,
                        self.offset_of(i as u32),
                        format!("section ({}, {}) checksum mismatch", e.col, e.part),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the segment file.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// A read error of this segment's column `col`.
    pub fn damaged(&self, col: usize, d: Damaged) -> Error {
        corrupt(
            &self.path,
            self.offset_of(self.by_col.get(col).map_or(ABSENT, |p| p[0])),
            d.0,
        )
    }

    /// Row ids, increasing.
    pub fn ids(&self) -> &[u64] {
        self.typed(self.bytes_of(self.ids))
    }

    /// Index of row `id`, if this segment holds it.
    pub fn find(&self, id: u64) -> Option<usize> {
        if self.rows == 0 || id < self.min_id || id > self.max_id {
            return None;
        }
        self.ids().binary_search(&id).ok()
    }

    /// Key column `col` (of spec `dim`, `codes`, `prefixes` as validated).
    pub fn key(&self, col: usize, schema: &Schema) -> KeyData<'_> {
        let (dim, prefixes) = match schema.columns().get(col).map(|c| &c.kind) {
            Some(ColumnKind::Key(k)) => (k.dim as usize, k.prefixes.len()),
            _ => (0, 0),
        };
        KeyData {
            dim,
            f32: self.typed(self.raw(col, part::KEY_F32)),
            norms: self.typed(self.raw(col, part::KEY_NORMS)),
            codes: self.typed(self.raw(col, part::KEY_CODES)),
            scales: self.typed(self.raw(col, part::KEY_SCALES)),
            graph: self.raw(col, part::KEY_GRAPH),
            prefix_norms: self.typed(self.raw(col, part::KEY_PREFIX_NORMS)),
            prefixes,
        }
    }

    /// Fixed column `col` of type `t`.
    pub fn fixed(&self, col: usize, t: &FixedType) -> Fixed<'_> {
        let b = self.raw(col, part::DATA);
        match t {
            FixedType::U8 | FixedType::Enum(_) => Fixed::U8(b),
            FixedType::U32 | FixedType::Symbol => Fixed::U32(self.typed(b)),
            FixedType::I32 => Fixed::I32(self.typed(b)),
            FixedType::U64 => Fixed::U64(self.typed(b)),
            FixedType::I64 | FixedType::Timestamp => Fixed::I64(self.typed(b)),
            FixedType::F32 => Fixed::F32(self.typed(b)),
            FixedType::F64 => Fixed::F64(self.typed(b)),
        }
    }

    /// Symbol column `col`.
    pub fn dict(&self, col: usize) -> Dict<'_> {
        Dict {
            data: self.typed(self.raw(col, part::DATA)),
            offsets: self.typed(self.raw(col, part::DICT_OFFSETS)),
            bytes: self.raw(col, part::DICT_BYTES),
            posting_offsets: self.typed(self.raw(col, part::POSTING_OFFSETS)),
            posting_rows: self.typed(self.raw(col, part::POSTING_ROWS)),
        }
    }

    /// Blob column `col`.
    pub fn blob(&self, col: usize, compression: Compression) -> BlobData<'_> {
        BlobData {
            offsets: self.u64s(col, part::OFFSETS),
            blocks: (compression == Compression::Lz4).then(|| self.u64s(col, part::BLOCKS)),
            data: self.raw(col, part::BLOB_DATA),
            cache: self.block_caches.get(col).and_then(Option::as_ref),
        }
    }

    /// Sparse column `col` of `kind`.
    pub fn sparse(&self, col: usize, kind: SparseKind) -> SparseData<'_> {
        let w = self.raw(col, part::SPARSE_WEIGHTS);
        SparseData {
            offsets: self.u64s(col, part::OFFSETS),
            ids: self.typed(self.raw(col, part::SPARSE_IDS)),
            counts: self.typed(w),
            floats: self.typed(w),
            kind,
        }
    }

    /// Edge column `col`.
    pub fn edges(&self, col: usize) -> EdgeData<'_> {
        EdgeData {
            offsets: self.u64s(col, part::OFFSETS),
            targets: self.typed(self.raw(col, part::TARGETS)),
        }
    }

    /// Rows whose unique value (column `col`) hashes to `hash`.
    pub fn unique_candidates(&self, col: usize, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let hashes: &[u64] = self.typed(self.raw(col, part::UNIQUE_HASHES));
        let rows: &[u32] = self.typed(self.raw(col, part::UNIQUE_ROWS));
        let start = hashes.partition_point(|&h| h < hash);
        hashes[start..]
            .iter()
            .take_while(move |&&h| h == hash)
            .enumerate()
            .filter_map(move |(k, _)| rows.get(start + k).map(|&r| r as usize))
            .filter(move |&r| r < self.rows)
    }

    /// Bytes of the graphs of every key column.
    pub fn index_bytes(&self, schema: &Schema) -> usize {
        schema
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.kind, ColumnKind::Key(_)))
            .map(|(i, _)| self.raw(i, part::KEY_GRAPH).len())
            .sum()
    }

    /// Whether every key column that asks for a graph has one.
    pub fn indexed(&self, schema: &Schema) -> bool {
        schema.columns().iter().enumerate().all(|(i, c)| match &c.kind {
            ColumnKind::Key(k) if k.index.is_some() => self.rows == 0 || !self.raw(i, part::KEY_GRAPH).is_empty(),
            _ => true,
        })
    }
}
