//! A symbol column inside one segment: a sorted dictionary of the strings
//! its rows use, each row's local id into it, and a posting list per value
//! (the rows holding it), so a filter on a value reads those rows only and
//! a value the segment lacks rules the whole segment out.

use std::collections::HashMap;
use std::sync::Arc;

/// Builds one segment's symbol column while rows are pushed.
#[derive(Default)]
pub(crate) struct DictWriter {
    first_seen: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    rows: Vec<u32>,
}

/// The finished parts of a symbol column.
pub(crate) struct DictParts {
    pub data: Vec<u32>,
    pub offsets: Vec<u64>,
    pub bytes: Vec<u8>,
    pub posting_offsets: Vec<u32>,
    pub posting_rows: Vec<u32>,
}

impl DictWriter {
    pub fn push(&mut self, s: &str) {
        let id = match self.first_seen.get(s) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                let name: Arc<str> = Arc::from(s);
                self.names.push(name.clone());
                self.first_seen.insert(name, id);
                id
            }
        };
        self.rows.push(id);
    }

    pub fn finish(self) -> DictParts {
        // Local ids follow sorted order, so lookups binary-search.
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.names[*a as usize].cmp(&self.names[*b as usize]));
        let mut local = vec![0u32; self.names.len()];
        for (new, old) in order.iter().enumerate() {
            local[*old as usize] = new as u32;
        }
        let data: Vec<u32> = self.rows.iter().map(|r| local[*r as usize]).collect();
        let mut offsets = Vec::with_capacity(order.len() + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for old in &order {
            bytes.extend_from_slice(self.names[*old as usize].as_bytes());
            offsets.push(bytes.len() as u64);
        }
        let mut counts = vec![0u32; order.len() + 1];
        for &d in &data {
            counts[d as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let posting_offsets = counts.clone();
        let mut next = counts;
        let mut posting_rows = vec![0u32; data.len()];
        for (row, &d) in data.iter().enumerate() {
            posting_rows[next[d as usize] as usize] = row as u32;
            next[d as usize] += 1;
        }
        DictParts {
            data,
            offsets,
            bytes,
            posting_offsets,
            posting_rows,
        }
    }
}

/// A symbol column of a mapped segment.
#[derive(Copy, Clone)]
pub(crate) struct Dict<'a> {
    pub data: &'a [u32],
    pub offsets: &'a [u64],
    pub bytes: &'a [u8],
    pub posting_offsets: &'a [u32],
    pub posting_rows: &'a [u32],
}

impl<'a> Dict<'a> {
    /// Values in the dictionary.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The string of local id `id` (`None` if out of range or damaged).
    pub fn name(&self, id: u32) -> Option<&'a str> {
        let (s, e) = (*self.offsets.get(id as usize)?, *self.offsets.get(id as usize + 1)?);
        if s > e {
            return None;
        }
        std::str::from_utf8(self.bytes.get(s as usize..e as usize)?).ok()
    }

    /// The local id of `s`, if any row of the segment holds it.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid as u32)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// The value of row `i`.
    pub fn row(&self, i: usize) -> Option<&'a str> {
        self.name(*self.data.get(i)?)
    }

    /// Rows holding local id `id`, increasing.
    pub fn postings(&self, id: u32) -> &'a [u32] {
        match (
            self.posting_offsets.get(id as usize),
            self.posting_offsets.get(id as usize + 1),
        ) {
            (Some(&s), Some(&e)) if s <= e => self.posting_rows.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_sorted_and_postings_list_each_row_once() {
        let mut w = DictWriter::default();
        let vals = ["b", "a", "", "b", "c", "a", "b"];
        for v in vals {
            w.push(v);
        }
        let p = w.finish();
        let d = Dict {
            data: &p.data,
            offsets: &p.offsets,
            bytes: &p.bytes,
            posting_offsets: &p.posting_offsets,
            posting_rows: &p.posting_rows,
        };
        assert_eq!(d.len(), 4);
        assert_eq!(
            (0..4).map(|i| d.name(i).unwrap()).collect::<Vec<_>>(),
            vec!["", "a", "b", "c"]
        );
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(d.row(i), Some(*v));
        }
        assert_eq!(d.postings(d.lookup("b").unwrap()), &[0, 3, 6]);
        assert_eq!(d.postings(d.lookup("").unwrap()), &[2]);
        assert_eq!(d.lookup("zz"), None);
        assert_eq!(d.postings(99), &[] as &[u32]);
    }
}
