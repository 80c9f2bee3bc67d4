//! Deleted rows of one segment (or of the memtable), by row position: a
//! bitmap in copy-on-write chunks, so a snapshot shares it and a delete
//! copies at most one 8 KiB chunk, and a search tests a row in O(1).

use std::sync::Arc;

const WORDS: usize = 1024;
const BITS: usize = WORDS * 64;

/// A set of row positions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deletes {
    chunks: Vec<Option<Arc<[u64; WORDS]>>>,
    count: usize,
}

impl Deletes {
    /// Whether position `i` is in the set.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        match self.chunks.get(i / BITS) {
            Some(Some(c)) => c[(i % BITS) / 64] & (1 << (i % 64)) != 0,
            _ => false,
        }
    }

    /// Add position `i`; whether it was new.
    pub fn insert(&mut self, i: usize) -> bool {
        let c = i / BITS;
        if self.chunks.len() <= c {
            self.chunks.resize(c + 1, None);
        }
        let chunk = Arc::make_mut(self.chunks[c].get_or_insert_with(|| Arc::new([0; WORDS])));
        let (w, bit) = ((i % BITS) / 64, 1u64 << (i % 64));
        if chunk[w] & bit != 0 {
            return false;
        }
        chunk[w] |= bit;
        self.count += 1;
        true
    }

    /// Positions in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Positions in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk.iter().flat_map(move |words| {
                words.iter().enumerate().flat_map(move |(w, &word)| {
                    (0..64)
                        .filter(move |b| word & (1 << b) != 0)
                        .map(move |b| c * BITS + w * 64 + b)
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_isolated_and_iteration_is_ordered() {
        let mut d = Deletes::default();
        for i in [5, 70_000, 3, 65_535, 5] {
            d.insert(i);
        }
        let snap = d.clone();
        assert!(d.insert(200_000));
        assert!(!snap.contains(200_000) && d.contains(200_000));
        assert_eq!(snap.iter().collect::<Vec<_>>(), vec![3, 5, 65_535, 70_000]);
        assert_eq!((snap.len(), d.len()), (4, 5));
        assert!(!d.contains(4) && !d.contains(10_000_000));
    }
}
