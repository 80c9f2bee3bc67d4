//! Opens a sealed segment by mmap and serves zero-copy views of its columns.
//!
//! Opening reads only the header and directory, so it costs the same for a
//! segment of any size; every header field is validated (checked arithmetic,
//! bounds, alignment) before it is used.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use zerocopy::{FromBytes, Immutable, KnownLayout};

use super::blob;
use super::writer::directory_end;
use super::{segment_path, Section, ALIGN, BLOCK_SIZE, DIR_ENTRY_LEN, HEADER_LEN};
use crate::error::{corrupt, Error, IoContext, Result};
use crate::storage::format::{le_u32, le_u64, FormatVersion, SEGMENT_MAGIC};
use crate::storage::mmap::map_sealed;
use crate::storage::types::{decode_value, MetaRecord, Position, Value};

#[derive(Copy, Clone, Default)]
struct Extent {
    offset: u64,
    len: u64,
    crc: u32,
}

/// A sealed, memory-mapped segment. Immutable for its whole life.
pub(crate) struct Segment {
    pub id: u64,
    pub table: u32,
    pub dim: usize,
    pub rows: usize,
    pub min_id: u64,
    pub max_id: u64,
    path: PathBuf,
    map: Mmap,
    sections: [Extent; Section::ALL.len() + 1],
    version: FormatVersion,
}

impl Segment {
    /// Open segment `id` in `dir`. With `verify`, every section's checksum is
    /// checked too (reads the whole file).
    pub fn open(dir: &Path, id: u64, verify: bool) -> Result<Arc<Segment>> {
        let path = segment_path(dir, id);
        let file = File::open(&path).at(&path)?;
        let map = map_sealed(&file).at(&path)?;
        let seg = Self::parse(path, id, map)?;
        if verify {
            seg.verify()?;
        }
        Ok(Arc::new(seg))
    }

    fn parse(path: PathBuf, id: u64, map: Mmap) -> Result<Segment> {
        let b = &map[..];
        if b.len() < HEADER_LEN || b[0..8] != SEGMENT_MAGIC {
            return Err(Error::BadMagic {
                path,
                expected: "segment",
            });
        }
        if crc32fast::hash(&b[0..60]) != le_u32(b, 60) {
            return Err(corrupt(&path, 0, "segment header checksum mismatch"));
        }
        let version = FormatVersion::check(&path, le_u32(b, 8))?;
        let present = Section::of(version);
        let count = le_u32(b, 12) as usize;
        if count != present.len() {
            return Err(corrupt(
                &path,
                12,
                format!("segment has {count} sections, expected {}", present.len()),
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
        if le_u32(b, 48) as usize != BLOCK_SIZE {
            return Err(corrupt(&path, 48, "unsupported blob block size"));
        }
        let table = le_u32(b, 16);
        let dim = le_u32(b, 20) as u64;
        let rows = le_u64(b, 24);
        let mut sections = [Extent::default(); Section::ALL.len() + 1];
        for (i, want) in present.iter().enumerate() {
            let p = HEADER_LEN + i * DIR_ENTRY_LEN;
            let kind = le_u32(b, p);
            let ext = Extent {
                offset: le_u64(b, p + 8),
                len: le_u64(b, p + 16),
                crc: le_u32(b, p + 24),
            };
            let at = p as u64;
            if kind != *want as u32 {
                return Err(corrupt(
                    &path,
                    at,
                    format!("section {i} has kind {kind}, expected {}", *want as u32),
                ));
            }
            if !ext.offset.is_multiple_of(ALIGN) || ext.offset.checked_add(ext.len).is_none_or(|e| e > b.len() as u64) {
                return Err(corrupt(&path, at, format!("section {want:?} lies outside the file")));
            }
            let expect = match want {
                Section::Ids => rows.checked_mul(8),
                Section::Keys => rows.checked_mul(dim).and_then(|x| x.checked_mul(4)),
                Section::Norms | Section::Scales => rows.checked_mul(4),
                Section::Codes => rows.checked_mul(dim),
                Section::Positions => rows.checked_mul(std::mem::size_of::<Position>() as u64),
                Section::Metas => rows.checked_mul(std::mem::size_of::<MetaRecord>() as u64),
                Section::ValueOffsets | Section::TextOffsets | Section::EdgeOffsets => {
                    rows.checked_add(1).and_then(|x| x.checked_mul(8))
                }
                _ if !ext.len.is_multiple_of(8)
                    && matches!(want, Section::ValueBlocks | Section::TextBlocks | Section::Edges) =>
                {
                    None
                }
                _ => Some(ext.len),
            };
            if expect != Some(ext.len) {
                return Err(corrupt(
                    &path,
                    at,
                    format!("section {want:?} has {} bytes, expected {expect:?}", ext.len),
                ));
            }
            sections[*want as usize] = ext;
        }
        let seg = Segment {
            id,
            table,
            dim: dim as usize,
            rows: rows as usize,
            min_id: le_u64(b, 32),
            max_id: le_u64(b, 40),
            path,
            map,
            sections,
            version,
        };
        // Cheap structural checks that keep later arithmetic in bounds.
        for offs in [Section::ValueOffsets, Section::TextOffsets, Section::EdgeOffsets] {
            if seg.u64s(offs).first() != Some(&0) {
                return Err(corrupt(
                    &seg.path,
                    seg.sections[offs as usize].offset,
                    "offsets do not start at 0",
                ));
            }
        }
        if seg.u64s(Section::EdgeOffsets).last().copied() != Some(seg.u64s(Section::Edges).len() as u64) {
            return Err(corrupt(
                &seg.path,
                seg.sections[Section::EdgeOffsets as usize].offset,
                "edge offsets do not match the edge count",
            ));
        }
        Ok(seg)
    }

    /// Check every section's checksum.
    pub fn verify(&self) -> Result<()> {
        for &s in Section::of(self.version) {
            let e = self.sections[s as usize];
            if crc32fast::hash(self.raw(s)) != e.crc {
                return Err(corrupt(
                    &self.path,
                    e.offset,
                    format!("section {s:?} checksum mismatch"),
                ));
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

    fn raw(&self, s: Section) -> &[u8] {
        let e = self.sections[s as usize];
        // In bounds: checked in `parse`.
        &self.map[e.offset as usize..(e.offset + e.len) as usize]
    }

    fn view<T: FromBytes + Immutable + KnownLayout>(&self, s: Section) -> &[T] {
        // Length and 64-byte alignment were validated in `parse`, and the map
        // itself is page-aligned, so the cast cannot fail.
        <[T]>::ref_from_bytes(self.raw(s)).expect("section layout validated at open")
    }

    fn u64s(&self, s: Section) -> &[u64] {
        self.view(s)
    }

    /// Row ids, increasing.
    pub fn ids(&self) -> &[u64] {
        self.view(Section::Ids)
    }

    /// Index of row `id`, if this segment holds it.
    pub fn find(&self, id: u64) -> Option<usize> {
        if self.rows == 0 || id < self.min_id || id > self.max_id {
            return None;
        }
        self.ids().binary_search(&id).ok()
    }

    /// Key of row `i`.
    pub fn key(&self, i: usize) -> &[f32] {
        &self.view::<f32>(Section::Keys)[i * self.dim..(i + 1) * self.dim]
    }

    /// Norms of every row's key.
    pub fn norms(&self) -> &[f32] {
        self.view(Section::Norms)
    }

    /// Quantization scales of every row.
    pub fn scales(&self) -> &[f32] {
        self.view(Section::Scales)
    }

    /// Stored metadata of every row.
    pub fn metas(&self) -> &[MetaRecord] {
        self.view(Section::Metas)
    }

    /// Norm of row `i`'s key.
    pub fn norm(&self, i: usize) -> f32 {
        self.view::<f32>(Section::Norms)[i]
    }

    /// The codes of every row, row-major.
    pub fn codes(&self) -> &[i8] {
        self.view::<i8>(Section::Codes)
    }

    /// int8 code of row `i`.
    pub fn code(&self, i: usize) -> &[i8] {
        &self.view::<i8>(Section::Codes)[i * self.dim..(i + 1) * self.dim]
    }

    /// Quantization scale of row `i`.
    pub fn scale(&self, i: usize) -> f32 {
        self.view::<f32>(Section::Scales)[i]
    }

    /// Position of row `i`.
    pub fn position(&self, i: usize) -> &Position {
        &self.view::<Position>(Section::Positions)[i]
    }

    /// Stored metadata of row `i`.
    pub fn meta(&self, i: usize) -> &MetaRecord {
        &self.view::<MetaRecord>(Section::Metas)[i]
    }

    fn blob(&self, offs: Section, blocks: Section, data: Section, i: usize) -> Result<Vec<u8>> {
        blob::read_row(self.u64s(offs), self.u64s(blocks), self.raw(data), i)
            .map_err(|e| corrupt(&self.path, self.sections[data as usize].offset, e.reason))
    }

    /// Encoded value bytes of row `i`.
    pub fn value_bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.blob(Section::ValueOffsets, Section::ValueBlocks, Section::ValueData, i)
    }

    /// Value of row `i`.
    pub fn value(&self, i: usize) -> Result<Value> {
        let b = self.value_bytes(i)?;
        decode_value(&b).ok_or_else(|| {
            corrupt(
                &self.path,
                self.sections[Section::ValueData as usize].offset,
                format!("row {i}: malformed value"),
            )
        })
    }

    /// Text bytes of row `i`.
    pub fn text_bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.blob(Section::TextOffsets, Section::TextBlocks, Section::TextData, i)
    }

    /// Text of row `i`.
    pub fn text(&self, i: usize) -> Result<String> {
        String::from_utf8(self.text_bytes(i)?).map_err(|_| {
            corrupt(
                &self.path,
                self.sections[Section::TextData as usize].offset,
                format!("row {i}: text is not UTF-8"),
            )
        })
    }

    /// The segment's search index as the index layer wrote it; empty when
    /// the segment has none (every format-1 segment, and segments written by
    /// a flush). 64-byte aligned in the map.
    pub fn index_bytes(&self) -> &[u8] {
        self.raw(Section::Index)
    }

    /// Edges of row `i`.
    pub fn edges(&self, i: usize) -> Result<&[u64]> {
        let offs = self.u64s(Section::EdgeOffsets);
        let edges = self.u64s(Section::Edges);
        match (offs.get(i), offs.get(i + 1)) {
            (Some(&s), Some(&e)) if s <= e && e as usize <= edges.len() => Ok(&edges[s as usize..e as usize]),
            _ => Err(corrupt(
                &self.path,
                self.sections[Section::EdgeOffsets as usize].offset,
                format!("row {i}: bad edge offsets"),
            )),
        }
    }
}
