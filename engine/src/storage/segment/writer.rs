//! Writes one segment: fixed-width parts streamed to their final offsets,
//! the rest buffered and appended, then the header and directory; fsync;
//! rename into place.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use zerocopy::IntoBytes;

use super::blob::BlobWriter;
use super::dict::DictWriter;
use super::{
    align_up, directory_end, entry, header, part, segment_path, unique_hash, BLOCK_SIZE, DIR_ENTRY_LEN, HEADER_LEN, ROW,
};
use crate::error::{Error, IoContext, Result};
use crate::storage::format::{SegmentVersion, MAGIC, SEGMENT_MAGIC, VERSION};
use crate::storage::fs::{Fs, FsFile};
use crate::storage::indexer::{IndexInput, SegmentIndexer};
use crate::storage::row::{SparseRef, WeightsRef};
use crate::storage::schema::{ColumnKind, Compression, FixedType, KeySpec, Schema};

/// One column's value of a row being written, borrowed from a memtable row
/// or a segment, with its updates already applied.
#[derive(Clone, Debug)]
pub(crate) enum Cell<'a> {
    Key {
        f32: &'a [f32],
        norm: f32,
        code: &'a [i8],
        scale: f32,
        prefix_norms: &'a [f32],
    },
    /// Carried bits (see `schema::Scalar`).
    Fixed(u64),
    Symbol(&'a str),
    Blob(Cow<'a, [u8]>),
    Sparse(SparseRef<'a>),
    Edges(&'a [u64]),
}

const SINK_FLUSH: usize = 1 << 20;

/// A part written at its final offset through a small buffer.
struct Sink {
    col: u16,
    part: u16,
    offset: u64,
    written: u64,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Sink {
    fn push(&mut self, file: &dyn FsFile, path: &Path, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= SINK_FLUSH {
            self.flush(file, path)?;
        }
        Ok(())
    }

    fn flush(&mut self, file: &dyn FsFile, path: &Path) -> Result<()> {
        file.write_at(&self.buf, self.offset + self.written).at(path)?;
        self.crc.update(&self.buf);
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// The buffered state of one column.
enum ColBuf {
    Key {
        /// First sink of this key's streamed parts.
        sinks: usize,
        /// Codes, scales and norms kept for the graph build.
        graph: Option<(Vec<i8>, Vec<f32>, Vec<f32>)>,
    },
    Fixed {
        sink: usize,
        width: usize,
    },
    Symbol(DictWriter),
    Blob(BlobWriter),
    RawBlob {
        offsets: Vec<u64>,
        data: Vec<u8>,
    },
    Sparse {
        offsets: Vec<u64>,
        ids: Vec<u32>,
        weights: Vec<u32>,
    },
    Edges {
        offsets: Vec<u64>,
        targets: Vec<u64>,
    },
}

/// Streams rows of one table into a new segment file under a temporary name.
pub(crate) struct SegmentWriter<'i> {
    id: u64,
    tmp: PathBuf,
    fs: &'i dyn Fs,
    file: Box<dyn FsFile>,
    table: u32,
    schema: Schema,
    expected_rows: u64,
    rows: u64,
    min_id: u64,
    max_id: u64,
    ids: Sink,
    sinks: Vec<Sink>,
    cols: Vec<ColBuf>,
    unique: Option<(usize, Vec<(u64, u32)>)>,
    streamed_end: u64,
    sections: usize,
    indexer: Option<&'i dyn SegmentIndexer>,
    /// Graphs given rather than built, by key column.
    graphs: Vec<(usize, Vec<u8>)>,
}

fn key_parts(k: &KeySpec) -> Vec<(u16, u64)> {
    let dim = u64::from(k.dim);
    let mut p = vec![(part::KEY_F32, dim * 4), (part::KEY_NORMS, 4)];
    if k.codes {
        p.push((part::KEY_CODES, dim));
        p.push((part::KEY_SCALES, 4));
    }
    if !k.prefixes.is_empty() {
        p.push((part::KEY_PREFIX_NORMS, 4 * k.prefixes.len() as u64));
    }
    p
}

fn too_large(rows: u64) -> Error {
    Error::InvalidArgument(format!("a segment of {rows} rows is too large"))
}

impl<'i> SegmentWriter<'i> {
    /// Start segment `id` of `table` (schema `schema`) that will hold exactly
    /// `rows` rows. With `indexer`, key columns that ask for a graph get one.
    pub fn create(
        fs: &'i dyn Fs,
        dir: &Path,
        id: u64,
        table: u32,
        schema: &Schema,
        rows: u64,
        indexer: Option<&'i dyn SegmentIndexer>,
    ) -> Result<SegmentWriter<'i>> {
        if rows > u64::from(u32::MAX) {
            return Err(too_large(rows));
        }
        let tmp = segment_path(dir, id).with_extension("tmp");
        let file = fs.create(&tmp).at(&tmp)?;
        // The directory's size depends on the parts, which the schema fixes.
        let sections = 1 + schema
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| super::parts_of(&c.kind, schema.unique().map(|u| u.0 as usize) == Some(i)).len())
            .sum::<usize>();
        let mut offset = directory_end(sections);
        let sink = |col: u16, part: u16, offset: u64| Sink {
            col,
            part,
            offset,
            written: 0,
            buf: Vec::new(),
            crc: crc32fast::Hasher::new(),
        };
        let ids = sink(ROW, part::IDS, offset);
        offset = align_up(offset + rows.checked_mul(8).ok_or_else(|| too_large(rows))?);
        let mut sinks = Vec::new();
        let mut cols = Vec::with_capacity(schema.columns().len());
        for (i, c) in schema.columns().iter().enumerate() {
            let col = i as u16;
            let mut stream = |sinks: &mut Vec<Sink>, part: u16, per_row: u64| -> Result<usize> {
                sinks.push(sink(col, part, offset));
                offset = align_up(offset + rows.checked_mul(per_row).ok_or_else(|| too_large(rows))?);
                Ok(sinks.len() - 1)
            };
            cols.push(match &c.kind {
                ColumnKind::Key(k) => {
                    let first = sinks.len();
                    for (p, per_row) in key_parts(k) {
                        stream(&mut sinks, p, per_row)?;
                    }
                    let graph = (k.index.is_some() && indexer.is_some()).then(|| {
                        let n = rows as usize;
                        (
                            Vec::with_capacity(n * k.dim as usize),
                            Vec::with_capacity(n),
                            Vec::with_capacity(n),
                        )
                    });
                    ColBuf::Key { sinks: first, graph }
                }
                ColumnKind::Fixed(FixedType::Symbol) => ColBuf::Symbol(DictWriter::default()),
                ColumnKind::Fixed(t) => ColBuf::Fixed {
                    sink: stream(&mut sinks, part::DATA, t.width() as u64)?,
                    width: t.width(),
                },
                ColumnKind::Blob(b) if b.compression == Compression::Lz4 => ColBuf::Blob(BlobWriter::new()),
                ColumnKind::Blob(_) => ColBuf::RawBlob {
                    offsets: vec![0],
                    data: Vec::new(),
                },
                ColumnKind::Sparse(_) => ColBuf::Sparse {
                    offsets: vec![0],
                    ids: Vec::new(),
                    weights: Vec::new(),
                },
                ColumnKind::Edges(_) => ColBuf::Edges {
                    offsets: vec![0],
                    targets: Vec::new(),
                },
            });
        }
        Ok(SegmentWriter {
            id,
            tmp,
            fs,
            file,
            table,
            schema: schema.clone(),
            expected_rows: rows,
            rows: 0,
            min_id: u64::MAX,
            max_id: 0,
            ids,
            sinks,
            cols,
            unique: schema
                .unique()
                .map(|u| (u.0 as usize, Vec::with_capacity(rows as usize))),
            streamed_end: offset,
            sections,
            indexer,
            graphs: Vec::new(),
        })
    }

    /// Store `graph` as key column `col`'s graph instead of building one
    /// (a segment rewritten row for row keeps its graph).
    pub fn with_graph(mut self, col: usize, graph: Vec<u8>) -> Self {
        self.graphs.push((col, graph));
        self
    }

    /// Append a row; rows must come in increasing id order, with one cell
    /// per column of the schema, of the column's kind.
    pub fn push(&mut self, id: u64, cells: &[Cell<'_>]) -> Result<()> {
        let misfit = |why: String| Error::Internal(format!("segment row {id} does not fit: {why}"));
        if self.rows == self.expected_rows {
            return Err(misfit(format!("more than {} rows", self.expected_rows)));
        }
        if cells.len() != self.cols.len() {
            return Err(misfit(format!("{} cells for {} columns", cells.len(), self.cols.len())));
        }
        if self.rows > 0 && id <= self.max_id {
            return Err(misfit(format!("ids must increase ({id} after {})", self.max_id)));
        }
        self.ids.push(&*self.file, &self.tmp, &id.to_le_bytes())?;
        if let Some((u, pairs)) = &mut self.unique {
            let bytes = unique_bytes(&cells[*u]);
            pairs.push((unique_hash(&bytes), self.rows as u32));
        }
        let row = self.rows;
        for (c, (buf, cell)) in self.cols.iter_mut().zip(cells).enumerate() {
            let kind = &self.schema.columns()[c].kind;
            match (buf, cell, kind) {
                (
                    ColBuf::Key { sinks, graph },
                    Cell::Key {
                        f32,
                        norm,
                        code,
                        scale,
                        prefix_norms,
                    },
                    ColumnKind::Key(k),
                ) => {
                    if f32.len() != k.dim as usize
                        || (k.codes && code.len() != k.dim as usize)
                        || prefix_norms.len() != k.prefixes.len()
                    {
                        return Err(misfit(format!("key of column {c} has the wrong shape")));
                    }
                    let mut parts: Vec<&[u8]> = vec![f32.as_bytes(), norm.as_bytes()];
                    if k.codes {
                        parts.push(code.as_bytes());
                        parts.push(scale.as_bytes());
                    }
                    if !k.prefixes.is_empty() {
                        parts.push(prefix_norms.as_bytes());
                    }
                    for (k, bytes) in parts.into_iter().enumerate() {
                        self.sinks[*sinks + k].push(&*self.file, &self.tmp, bytes)?;
                    }
                    if let Some((codes, scales, norms)) = graph {
                        codes.extend_from_slice(code);
                        scales.push(*scale);
                        norms.push(*norm);
                    }
                }
                (ColBuf::Fixed { sink, width }, Cell::Fixed(bits), _) => {
                    let bytes = bits.to_le_bytes();
                    self.sinks[*sink].push(&*self.file, &self.tmp, &bytes[..*width])?;
                }
                (ColBuf::Symbol(d), Cell::Symbol(s), _) => d.push(s),
                (ColBuf::Blob(b), Cell::Blob(bytes), _) => b.push(bytes),
                (ColBuf::RawBlob { offsets, data }, Cell::Blob(bytes), _) => {
                    data.extend_from_slice(bytes);
                    offsets.push(data.len() as u64);
                }
                (ColBuf::Sparse { offsets, ids, weights }, Cell::Sparse(s), ColumnKind::Sparse(_)) => {
                    ids.extend_from_slice(s.ids);
                    match s.weights {
                        WeightsRef::Counts(c) => weights.extend_from_slice(c),
                        WeightsRef::F32(w) => weights.extend(w.iter().map(|x| x.to_bits())),
                    }
                    offsets.push(ids.len() as u64);
                }
                (ColBuf::Edges { offsets, targets }, Cell::Edges(e), _) => {
                    targets.extend_from_slice(e);
                    offsets.push(targets.len() as u64);
                }
                _ => return Err(misfit(format!("cell {c} is not of its column's kind"))),
            }
        }
        self.min_id = self.min_id.min(id);
        self.max_id = id;
        self.rows = row + 1;
        Ok(())
    }

    /// Write the remaining parts (building graphs), header and directory;
    /// fsync; rename into place. The caller fsyncs the directory before
    /// publishing a manifest.
    pub fn finish(mut self) -> Result<()> {
        if self.rows != self.expected_rows {
            return Err(Error::Internal(format!(
                "segment {} expected {} rows, got {}",
                self.id, self.expected_rows, self.rows
            )));
        }
        let mut entries: Vec<(u16, u16, u64, u64, u32)> = Vec::new();
        self.ids.flush(&*self.file, &self.tmp)?;
        let ids = &self.ids;
        entries.push((ids.col, ids.part, ids.offset, ids.written, ids.crc.clone().finalize()));
        for s in self.sinks.iter_mut() {
            s.flush(&*self.file, &self.tmp)?;
            entries.push((s.col, s.part, s.offset, s.written, s.crc.clone().finalize()));
        }
        let mut offset = self.streamed_end;
        let mut put = |col: u16, part: u16, bytes: &[u8], file: &dyn FsFile, tmp: &Path| -> Result<()> {
            file.write_at(bytes, offset).at(tmp)?;
            entries.push((col, part, offset, bytes.len() as u64, crc32fast::hash(bytes)));
            offset = align_up(offset + bytes.len() as u64);
            Ok(())
        };
        let cols = std::mem::take(&mut self.cols);
        for (c, buf) in cols.into_iter().enumerate() {
            let col = c as u16;
            let (file, tmp) = (&*self.file, self.tmp.as_path());
            match buf {
                ColBuf::Key { graph, .. } => {
                    let spec = match &self.schema.columns()[c].kind {
                        ColumnKind::Key(k) => k.clone(),
                        _ => unreachable!(),
                    };
                    if spec.codes {
                        let given = self
                            .graphs
                            .iter()
                            .position(|g| g.0 == c)
                            .map(|i| self.graphs.swap_remove(i).1);
                        let bytes = match (graph, self.indexer, spec.index) {
                            _ if given.is_some() => given.unwrap_or_default(),
                            (Some((codes, scales, norms)), Some(ix), Some(index)) if self.rows > 0 => {
                                ix.build(&IndexInput {
                                    dim: spec.dim as usize,
                                    metric: spec.metric.into(),
                                    spec: index,
                                    codes: &codes,
                                    scales: &scales,
                                    norms: &norms,
                                })?
                            }
                            _ => Vec::new(),
                        };
                        put(col, part::KEY_GRAPH, &bytes, file, tmp)?;
                    }
                }
                ColBuf::Fixed { .. } => {}
                ColBuf::Symbol(d) => {
                    let p = d.finish();
                    put(col, part::DATA, p.data.as_bytes(), file, tmp)?;
                    put(col, part::DICT_OFFSETS, p.offsets.as_bytes(), file, tmp)?;
                    put(col, part::DICT_BYTES, &p.bytes, file, tmp)?;
                    put(col, part::POSTING_OFFSETS, p.posting_offsets.as_bytes(), file, tmp)?;
                    put(col, part::POSTING_ROWS, p.posting_rows.as_bytes(), file, tmp)?;
                }
                ColBuf::Blob(mut b) => {
                    b.finish();
                    put(col, part::OFFSETS, b.offsets.as_bytes(), file, tmp)?;
                    put(col, part::BLOCKS, b.blocks.as_bytes(), file, tmp)?;
                    put(col, part::BLOB_DATA, &b.data, file, tmp)?;
                }
                ColBuf::RawBlob { offsets, data } => {
                    put(col, part::OFFSETS, offsets.as_bytes(), file, tmp)?;
                    put(col, part::BLOB_DATA, &data, file, tmp)?;
                }
                ColBuf::Sparse { offsets, ids, weights } => {
                    put(col, part::OFFSETS, offsets.as_bytes(), file, tmp)?;
                    put(col, part::SPARSE_IDS, ids.as_bytes(), file, tmp)?;
                    put(col, part::SPARSE_WEIGHTS, weights.as_bytes(), file, tmp)?;
                }
                ColBuf::Edges { offsets, targets } => {
                    put(col, part::OFFSETS, offsets.as_bytes(), file, tmp)?;
                    put(col, part::TARGETS, targets.as_bytes(), file, tmp)?;
                }
            }
            if self.unique.as_ref().is_some_and(|(u, _)| *u == c) {
                let (_, mut pairs) = self.unique.take().unwrap_or_default();
                pairs.sort_unstable();
                let hashes: Vec<u64> = pairs.iter().map(|p| p.0).collect();
                let rows: Vec<u32> = pairs.iter().map(|p| p.1).collect();
                put(col, part::UNIQUE_HASHES, hashes.as_bytes(), file, tmp)?;
                put(col, part::UNIQUE_ROWS, rows.as_bytes(), file, tmp)?;
            }
        }
        let total = offset;
        if entries.len() != self.sections {
            return Err(Error::Internal(format!(
                "segment {}: {} sections written, {} planned",
                self.id,
                entries.len(),
                self.sections
            )));
        }
        entries.sort_unstable_by_key(|e| (e.0, e.1));

        let mut head = vec![0u8; directory_end(entries.len()) as usize];
        let u32b = |v: u32| v.to_le_bytes();
        MAGIC.put(&mut head, &SEGMENT_MAGIC);
        VERSION.put(&mut head, &u32b(SegmentVersion::CURRENT as u32));
        header::COUNT.put(&mut head, &u32b(entries.len() as u32));
        header::TABLE.put(&mut head, &u32b(self.table));
        header::COLUMNS.put(&mut head, &u32b(self.schema.columns().len() as u32));
        header::ROWS.put(&mut head, &self.rows.to_le_bytes());
        let min_id = if self.rows == 0 { 0 } else { self.min_id };
        header::FIRST_ID.put(&mut head, &min_id.to_le_bytes());
        header::LAST_ID.put(&mut head, &self.max_id.to_le_bytes());
        header::FINGERPRINT.put(&mut head, &self.schema.fingerprint().to_le_bytes());
        header::BLOCK.put(&mut head, &u32b(BLOCK_SIZE as u32));
        let crc = crc32fast::hash(&head[..header::CRC.at]);
        header::CRC.put(&mut head, &crc.to_le_bytes());
        let mut p = HEADER_LEN;
        for (col, part, off, len, crc) in &entries {
            let e = &mut head[p..p + DIR_ENTRY_LEN];
            entry::COL.put(e, &col.to_le_bytes());
            entry::PART.put(e, &part.to_le_bytes());
            entry::OFFSET.put(e, &off.to_le_bytes());
            entry::LEN.put(e, &len.to_le_bytes());
            entry::CRC.put(e, &crc.to_le_bytes());
            p += DIR_ENTRY_LEN;
        }
        let dir_crc = crc32fast::hash(&head[HEADER_LEN..p]);
        head[p..p + 4].copy_from_slice(&dir_crc.to_le_bytes());
        self.file.write_at(&head, 0).at(&self.tmp)?;
        self.file.set_len(total).at(&self.tmp)?;
        self.file.sync().at(&self.tmp)?;
        let dir = self.tmp.parent().unwrap_or(Path::new("."));
        let path = segment_path(dir, self.id);
        self.fs.rename(&self.tmp, &path).at(&path)
    }
}

/// The canonical bytes of a unique column's value: what its hash covers.
pub(crate) fn unique_bytes<'a>(c: &'a Cell<'a>) -> Cow<'a, [u8]> {
    match c {
        Cell::Fixed(bits) => Cow::Owned(bits.to_le_bytes().to_vec()),
        Cell::Symbol(s) => Cow::Borrowed(s.as_bytes()),
        Cell::Blob(b) => Cow::Borrowed(b.as_ref()),
        _ => Cow::Borrowed(&[]),
    }
}

impl Drop for SegmentWriter<'_> {
    /// A writer dropped before `finish` (an error, a cancelled merge) leaves
    /// no temp file behind; after `finish` the temp name no longer exists.
    fn drop(&mut self) {
        let _ = self.fs.remove(&self.tmp);
    }
}
