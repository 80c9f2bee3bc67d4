//! A bounded set of the best candidates seen so far.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::storage::At;

/// A stored row with a distance; ordered by distance, then id, so the worst
/// is on top of a max-heap and ties break the same way every time.
pub(crate) struct Scored<'s> {
    pub distance: f32,
    pub id: u64,
    pub at: At<'s>,
}

impl PartialEq for Scored<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored<'_> {}
impl PartialOrd for Scored<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored<'_> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.distance.total_cmp(&o.distance).then(self.id.cmp(&o.id))
    }
}

/// The `cap` smallest [`Scored`] pushed.
pub(crate) struct Pool<'s> {
    cap: usize,
    heap: BinaryHeap<Scored<'s>>,
}

impl<'s> Pool<'s> {
    /// `cap` must already be bounded by the rows that exist: it sizes the heap.
    pub fn new(cap: usize) -> Pool<'s> {
        Pool {
            cap,
            heap: BinaryHeap::with_capacity(cap + 1),
        }
    }

    /// Whether a candidate at `distance` would be kept (ties by id aside).
    #[inline]
    pub fn admits(&self, distance: f32) -> bool {
        self.heap.len() < self.cap || self.heap.peek().is_some_and(|w| distance <= w.distance)
    }

    pub fn push(&mut self, distance: f32, id: u64, at: At<'s>) {
        let s = Scored { distance, id, at };
        if self.heap.len() < self.cap {
            self.heap.push(s);
        } else if self.heap.peek().is_some_and(|worst| s < *worst) {
            self.heap.pop();
            self.heap.push(s);
        }
    }

    /// Nearest first.
    pub fn into_sorted(self) -> Vec<Scored<'s>> {
        let mut v = self.heap.into_vec();
        v.sort_unstable();
        v
    }
}
