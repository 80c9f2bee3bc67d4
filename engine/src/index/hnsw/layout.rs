//! The graph's bytes inside a segment's index section, and a zero-copy view
//! of them over the segment's mmap.
//!
//! ```text
//! 0   header (64 bytes)
//!       0 magic "ENGRHNSW"  8 version u32   12 metric u32 (0 cosine, 1 dot, 2 L2)
//!      16 nodes u32        20 M u32         24 M0 u32     28 entry u32
//!      32 top level u32    36 ef_construction u32         40 upper lists u32
//!      44 reserved u32[4]  60 crc32 of bytes 0..60
//! 64  factors       nodes x f32           scale / norm of each row
//!     level 0       nodes x (1 + M0) u32  count, then neighbours (unused: u32::MAX)
//!     upper index   (nodes + 1) x u32     node i's lists at levels 1.. are
//!                                         upper[index[i] .. index[i+1]]
//!     upper lists   lists x (1 + M) u32   count, then neighbours
//!     sq norms      nodes x f32           (L2 only) squared norm of each row
//! ```
//!
//! Opening reads the header only. Every neighbour id and list bound is
//! checked when it is read, so a damaged graph degrades search (the
//! section's checksum, checked by `Store::verify`, reports it) but never
//! reads out of bounds.

use zerocopy::{FromBytes, IntoBytes};

use super::build::{BuildGraph, MAX_LEVEL};
use super::layer::Links;
use crate::kernels::distance::Metric;

const MAGIC: [u8; 8] = *b"ENGRHNSW";
const VERSION: u32 = 1;
const HEADER: usize = 64;

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::L2 => 2,
    }
}

fn metric_of(code: u32) -> Option<Metric> {
    match code {
        0 => Some(Metric::Cosine),
        1 => Some(Metric::Dot),
        2 => Some(Metric::L2),
        _ => None,
    }
}

/// Serialize a built graph with its rows' factors (and, for L2, squared
/// norms).
pub(crate) fn encode(
    g: BuildGraph,
    metric: Metric,
    factors: &[f32],
    sqnorms: &[f32],
    ef_construction: usize,
) -> Vec<u8> {
    let n = g.levels.len();
    let (entry, top) = g.entry.read().unwrap_or((0, 0));
    let (m, m0) = (g.m, g.m0);
    let mut level0 = vec![u32::MAX; n * (1 + m0)];
    let mut index = Vec::with_capacity(n + 1);
    let mut upper: Vec<u32> = Vec::new();
    index.push(0u32);
    for (i, lists) in g.links.into_iter().enumerate() {
        let lists = lists.into_inner();
        let row = &mut level0[i * (1 + m0)..(i + 1) * (1 + m0)];
        row[0] = lists[0].len() as u32;
        row[1..=lists[0].len()].copy_from_slice(&lists[0]);
        for list in &lists[1..] {
            let mut slot = vec![u32::MAX; 1 + m];
            slot[0] = list.len() as u32;
            slot[1..=list.len()].copy_from_slice(list);
            upper.extend_from_slice(&slot);
        }
        index.push((upper.len() / (1 + m)) as u32);
    }
    let mut out = Vec::with_capacity(HEADER + 4 * (factors.len() + level0.len() + index.len() + upper.len()));
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(&MAGIC);
    let fields = [
        VERSION,
        metric_code(metric),
        n as u32,
        m as u32,
        m0 as u32,
        entry,
        top as u32,
        ef_construction as u32,
        (upper.len() / (1 + m)) as u32,
    ];
    for (k, f) in fields.iter().enumerate() {
        h[8 + 4 * k..12 + 4 * k].copy_from_slice(&f.to_le_bytes());
    }
    let crc = crc32fast::hash(&h[0..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(factors.as_bytes());
    out.extend_from_slice(level0.as_bytes());
    out.extend_from_slice(index.as_bytes());
    out.extend_from_slice(upper.as_bytes());
    if metric == Metric::L2 {
        out.extend_from_slice(sqnorms.as_bytes());
    }
    out
}

/// A mapped graph.
pub(crate) struct GraphRef<'a> {
    pub metric: Metric,
    pub nodes: usize,
    pub m: usize,
    pub m0: usize,
    pub entry: u32,
    pub top: usize,
    pub factors: &'a [f32],
    /// L2 only.
    pub sqnorms: &'a [f32],
    level0: &'a [u32],
    index: &'a [u32],
    upper: &'a [u32],
}

fn field(b: &[u8], k: usize) -> u32 {
    u32::from_le_bytes([b[8 + 4 * k], b[9 + 4 * k], b[10 + 4 * k], b[11 + 4 * k]])
}

impl<'a> GraphRef<'a> {
    /// View `bytes` as a graph over `rows` rows; `None` if they are not one
    /// this build can use (empty, another version or metric, or a header
    /// that does not fit). Search then scans the segment exactly.
    pub fn parse(bytes: &'a [u8], rows: usize) -> Option<GraphRef<'a>> {
        if bytes.len() < HEADER || bytes[0..8] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        if crc32fast::hash(&bytes[0..60]) != crc || field(bytes, 0) != VERSION {
            return None;
        }
        let metric = metric_of(field(bytes, 1))?;
        let n = field(bytes, 2) as usize;
        let (m, m0) = (field(bytes, 3) as usize, field(bytes, 4) as usize);
        let (entry, top) = (field(bytes, 5), field(bytes, 6) as usize);
        let lists = field(bytes, 8) as usize;
        if n != rows || n == 0 || entry as usize >= n || top > MAX_LEVEL || m == 0 || m0 == 0 {
            return None;
        }
        let sq = if metric == Metric::L2 { n } else { 0 };
        let sizes = [n, n.checked_mul(1 + m0)?, n + 1, lists.checked_mul(1 + m)?, sq];
        let total = sizes
            .iter()
            .try_fold(HEADER, |acc, s| acc.checked_add(s.checked_mul(4)?))?;
        if total != bytes.len() {
            return None;
        }
        let mut at = HEADER;
        let mut next = |len: usize| {
            let s = &bytes[at..at + 4 * len];
            at += 4 * len;
            s
        };
        let factors = <[f32]>::ref_from_bytes(next(sizes[0])).ok()?;
        let level0 = <[u32]>::ref_from_bytes(next(sizes[1])).ok()?;
        let index = <[u32]>::ref_from_bytes(next(sizes[2])).ok()?;
        let upper = <[u32]>::ref_from_bytes(next(sizes[3])).ok()?;
        let sqnorms = <[f32]>::ref_from_bytes(next(sizes[4])).ok()?;
        Some(GraphRef {
            metric,
            sqnorms,
            nodes: n,
            m,
            m0,
            entry,
            top,
            factors,
            level0,
            index,
            upper,
        })
    }

    /// The stored list of `node` at `level`, unchecked count included.
    fn list(&self, node: usize, level: usize) -> &'a [u32] {
        if level == 0 {
            let w = 1 + self.m0;
            return &self.level0[node * w..(node + 1) * w];
        }
        let (Some(&lo), Some(&hi)) = (self.index.get(node), self.index.get(node + 1)) else {
            return &[];
        };
        let slot = lo as usize + level - 1;
        let w = 1 + self.m;
        if slot >= hi as usize || (slot + 1) * w > self.upper.len() {
            return &[];
        }
        &self.upper[slot * w..(slot + 1) * w]
    }
}

impl Links for GraphRef<'_> {
    fn nodes(&self) -> usize {
        self.nodes
    }

    fn neighbours(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if node as usize >= self.nodes {
            return;
        }
        let list = self.list(node as usize, level);
        let Some((&count, rest)) = list.split_first() else {
            return;
        };
        let count = (count as usize).min(rest.len());
        out.extend(rest[..count].iter().copied().filter(|&n| (n as usize) < self.nodes));
    }
}
