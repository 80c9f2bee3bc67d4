//! Writes one segment: fixed-width columns streamed to their final offsets,
//! variable-width columns buffered and appended, then header and directory.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zerocopy::IntoBytes;

use super::blob::BlobWriter;
use super::{align_up, segment_path, Section, BLOCK_SIZE, DIR_ENTRY_LEN, HEADER_LEN};
use crate::error::{Error, IoContext, Result};
use crate::storage::format::{FormatVersion, SEGMENT_MAGIC};
use crate::storage::types::{MetaRecord, Position};

/// One row as a segment stores it (borrowed from a memtable or another segment).
pub(crate) struct SegmentRow<'a> {
    pub id: u64,
    pub key: &'a [f32],
    pub norm: f32,
    pub code: &'a [i8],
    pub scale: f32,
    pub position: &'a Position,
    pub meta: &'a MetaRecord,
    /// The value, already encoded (see `types::encode_value`).
    pub value: &'a [u8],
    pub text: &'a [u8],
    pub edges: &'a [u64],
}

const SINK_FLUSH: usize = 1 << 20;

/// A fixed-width column written at its final offset through a small buffer.
struct Sink {
    offset: u64,
    written: u64,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Sink {
    fn push(&mut self, file: &File, path: &Path, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= SINK_FLUSH {
            self.flush(file, path)?;
        }
        Ok(())
    }

    fn flush(&mut self, file: &File, path: &Path) -> Result<()> {
        file.write_all_at(&self.buf, self.offset + self.written).at(path)?;
        self.crc.update(&self.buf);
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// The fixed-width sections: the first seven, in file order.
const FIXED: &[Section] = Section::ALL.split_at(7).0;

/// Streams rows into a new segment file under a temporary name.
pub(crate) struct SegmentWriter {
    id: u64,
    tmp: PathBuf,
    file: File,
    table: u32,
    dim: usize,
    expected_rows: u64,
    rows: u64,
    min_id: u64,
    max_id: u64,
    sinks: Vec<Sink>,
    fixed_end: u64,
    values: BlobWriter,
    texts: BlobWriter,
    edge_offsets: Vec<u64>,
    edges: Vec<u64>,
}

fn fixed_len(s: Section, rows: u64, dim: u64) -> Option<u64> {
    let per_row = match s {
        Section::Ids => 8,
        Section::Keys => dim.checked_mul(4)?,
        Section::Norms | Section::Scales => 4,
        Section::Codes => dim,
        Section::Positions => std::mem::size_of::<Position>() as u64,
        Section::Metas => std::mem::size_of::<MetaRecord>() as u64,
        _ => return None,
    };
    rows.checked_mul(per_row)
}

pub(crate) fn directory_end(sections: usize) -> u64 {
    align_up((HEADER_LEN + sections * DIR_ENTRY_LEN + 4) as u64)
}

impl SegmentWriter {
    /// Start segment `id` of `table` that will hold exactly `rows` rows.
    pub fn create(dir: &Path, id: u64, table: u32, dim: usize, rows: u64) -> Result<SegmentWriter> {
        let tmp = segment_path(dir, id).with_extension("tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        let mut offset = directory_end(Section::ALL.len());
        let mut sinks = Vec::with_capacity(FIXED.len());
        for &s in FIXED {
            let len = fixed_len(s, rows, dim as u64)
                .ok_or_else(|| Error::InvalidArgument(format!("segment of {rows} rows x {dim} dims is too large")))?;
            sinks.push(Sink {
                offset,
                written: 0,
                buf: Vec::new(),
                crc: crc32fast::Hasher::new(),
            });
            offset = align_up(offset + len);
        }
        Ok(SegmentWriter {
            id,
            tmp,
            file,
            table,
            dim,
            expected_rows: rows,
            rows: 0,
            min_id: u64::MAX,
            max_id: 0,
            sinks,
            fixed_end: offset,
            values: BlobWriter::new(),
            texts: BlobWriter::new(),
            edge_offsets: vec![0],
            edges: Vec::new(),
        })
    }

    /// Append a row; rows must come in increasing id order.
    pub fn push(&mut self, r: SegmentRow<'_>) -> Result<()> {
        if self.rows == self.expected_rows || r.key.len() != self.dim || r.code.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "segment {}: row {} does not fit (rows {}/{}, dim {} vs {})",
                self.id,
                r.id,
                self.rows,
                self.expected_rows,
                r.key.len(),
                self.dim
            )));
        }
        if self.rows > 0 && r.id <= self.max_id {
            return Err(Error::InvalidArgument(format!(
                "segment {}: row ids must increase ({} after {})",
                self.id, r.id, self.max_id
            )));
        }
        let cols: [&[u8]; 7] = [
            r.id.as_bytes(),
            r.key.as_bytes(),
            r.norm.as_bytes(),
            r.code.as_bytes(),
            r.scale.as_bytes(),
            r.position.as_bytes(),
            r.meta.as_bytes(),
        ];
        for (sink, bytes) in self.sinks.iter_mut().zip(cols) {
            sink.push(&self.file, &self.tmp, bytes)?;
        }
        self.values.push(r.value);
        self.texts.push(r.text);
        self.edges.extend_from_slice(r.edges);
        self.edge_offsets.push(self.edges.len() as u64);
        self.min_id = self.min_id.min(r.id);
        self.max_id = r.id;
        self.rows += 1;
        Ok(())
    }

    /// Write the remaining sections, header and directory; fsync; rename into
    /// place. The caller fsyncs the directory before publishing a manifest.
    pub fn finish(self) -> Result<()> {
        self.finish_with_index(&[])
    }

    /// [`finish`](Self::finish), storing `index` (built by the index layer
    /// over this segment's rows, in row order) as the segment's index.
    pub fn finish_with_index(mut self, index: &[u8]) -> Result<()> {
        if self.rows != self.expected_rows {
            return Err(Error::InvalidArgument(format!(
                "segment {} expected {} rows, got {}",
                self.id, self.expected_rows, self.rows
            )));
        }
        let mut entries: Vec<(Section, u64, u64, u32)> = Vec::with_capacity(Section::ALL.len());
        for (s, sink) in FIXED.iter().zip(self.sinks.iter_mut()) {
            sink.flush(&self.file, &self.tmp)?;
            entries.push((*s, sink.offset, sink.written, sink.crc.clone().finalize()));
        }
        self.values.finish();
        self.texts.finish();
        let var: [(Section, &[u8]); 9] = [
            (Section::ValueOffsets, self.values.offsets.as_bytes()),
            (Section::ValueBlocks, self.values.blocks.as_bytes()),
            (Section::ValueData, &self.values.data),
            (Section::TextOffsets, self.texts.offsets.as_bytes()),
            (Section::TextBlocks, self.texts.blocks.as_bytes()),
            (Section::TextData, &self.texts.data),
            (Section::EdgeOffsets, self.edge_offsets.as_bytes()),
            (Section::Edges, self.edges.as_bytes()),
            (Section::Index, index),
        ];
        let mut offset = self.fixed_end;
        for (s, bytes) in var {
            self.file.write_all_at(bytes, offset).at(&self.tmp)?;
            entries.push((s, offset, bytes.len() as u64, crc32fast::hash(bytes)));
            offset = align_up(offset + bytes.len() as u64);
        }
        let total = offset;

        let mut head = vec![0u8; directory_end(entries.len()) as usize];
        head[0..8].copy_from_slice(&SEGMENT_MAGIC);
        head[8..12].copy_from_slice(&(FormatVersion::CURRENT as u32).to_le_bytes());
        head[12..16].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        head[16..20].copy_from_slice(&self.table.to_le_bytes());
        head[20..24].copy_from_slice(&(self.dim as u32).to_le_bytes());
        head[24..32].copy_from_slice(&self.rows.to_le_bytes());
        let min_id = if self.rows == 0 { 0 } else { self.min_id };
        head[32..40].copy_from_slice(&min_id.to_le_bytes());
        head[40..48].copy_from_slice(&self.max_id.to_le_bytes());
        head[48..52].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        let crc = crc32fast::hash(&head[0..60]);
        head[60..64].copy_from_slice(&crc.to_le_bytes());
        let mut p = HEADER_LEN;
        for (s, off, len, crc) in &entries {
            head[p..p + 4].copy_from_slice(&(*s as u32).to_le_bytes());
            head[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            head[p + 16..p + 24].copy_from_slice(&len.to_le_bytes());
            head[p + 24..p + 28].copy_from_slice(&crc.to_le_bytes());
            p += DIR_ENTRY_LEN;
        }
        let dir_crc = crc32fast::hash(&head[HEADER_LEN..p]);
        head[p..p + 4].copy_from_slice(&dir_crc.to_le_bytes());
        self.file.write_all_at(&head, 0).at(&self.tmp)?;
        self.file.set_len(total).at(&self.tmp)?;
        self.file.sync_all().at(&self.tmp)?;
        let dir = self.tmp.parent().unwrap_or(Path::new("."));
        let path = segment_path(dir, self.id);
        std::fs::rename(&self.tmp, &path).at(&path)
    }
}

impl Drop for SegmentWriter {
    /// A writer dropped before `finish` (an error, a cancelled merge) leaves
    /// no temp file behind; after `finish` the temp name no longer exists.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}
