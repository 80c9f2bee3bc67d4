//! Counts learned on top of a snapshot: the one place where an occurrence
//! of a token becomes counts.
//!
//! [`Overlay::observe`] takes the token at position `i` of a sequence: at
//! every level `r <= i` the context `tokens[i-r..i]` gains a count of the
//! token, and when the (context, token) pair is new — its count in the
//! snapshot plus the overlay was 0 — the token's continuation count rises
//! at the context's suffix one level down (in the vocabulary, below the
//! shortest level). Observing with sign −1 takes an occurrence back (a pair
//! whose count returns to 0 lowers the continuation count again), which is
//! how fitting scores text as if it had not been learned.
//!
//! Learning a document ([`Levels::learn`]) observes every position and
//! writes the overlay to the store as upserts; adaptive scoring observes
//! each token after scoring it and never writes. Both count alike because
//! both go through `observe`.

use std::collections::{BTreeMap, HashMap};

use super::context::context_hash;
use super::levels::Levels;
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::vocab::TokenId;

/// Token ids the overlay gives to tokens the store has never learned: far
/// above any row id, so never confused with one.
pub const OVERLAY_IDS: u64 = 1 << 62;

/// One context of one level: what the snapshot holds of it and what the
/// overlay adds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    /// Sequence (see [`Overlay::begin`]) and position in it of the first
    /// occurrence.
    pub seq: usize,
    /// See `seq`.
    pub first: usize,
    /// Row id in the snapshot, if stored there.
    pub row: Option<u64>,
    /// The snapshot's next-token and continuation counts.
    stored_next: Vec<(TokenId, u32)>,
    stored_cont: Vec<(TokenId, u32)>,
    /// What the overlay adds (may be negative).
    pub next: BTreeMap<TokenId, i64>,
    pub cont: BTreeMap<TokenId, i64>,
}

fn get(v: &[(TokenId, u32)], t: TokenId) -> i64 {
    v.binary_search_by_key(&t, |x| x.0).map_or(0, |i| i64::from(v[i].1))
}

/// `stored` (by id) plus `delta`, positive counts only, by id: one linear
/// merge (a common context holds thousands of counts).
fn merged(stored: &[(TokenId, u32)], delta: &BTreeMap<TokenId, i64>) -> Vec<(TokenId, u32)> {
    let mut out = Vec::with_capacity(stored.len() + delta.len());
    let mut push = |t: TokenId, c: i64| {
        if c > 0 {
            out.push((t, u32::try_from(c).unwrap_or(u32::MAX)));
        }
    };
    let mut d = delta.iter().peekable();
    for &(t, c) in stored {
        while let Some((&dt, &dc)) = d.peek() {
            if dt >= t {
                break;
            }
            push(dt, dc);
            d.next();
        }
        let extra = match d.peek() {
            Some((&dt, &dc)) if dt == t => {
                d.next();
                dc
            }
            _ => 0,
        };
        push(t, i64::from(c) + extra);
    }
    for (&dt, &dc) in d {
        push(dt, dc);
    }
    out
}

impl Entry {
    /// Next-token counts, snapshot and overlay together (positive only, by id).
    pub fn next(&self) -> Vec<(TokenId, u32)> {
        merged(&self.stored_next, &self.next)
    }

    /// Continuation counts, snapshot and overlay together.
    pub fn cont(&self) -> Vec<(TokenId, u32)> {
        merged(&self.stored_cont, &self.cont)
    }
}

/// Counts on top of a snapshot (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct Overlay {
    /// Per level (shortest first): context hash to entry, and the hashes in
    /// the order first seen (so that writes are deterministic).
    levels: Vec<(HashMap<u64, Entry>, Vec<u64>)>,
    /// Continuation counts added to vocabulary tokens.
    vocab_cont: BTreeMap<TokenId, i64>,
    /// Tokens the snapshot's vocabulary lacks, by text, and their texts.
    new_ids: HashMap<String, TokenId>,
    new_texts: Vec<String>,
    /// The sequence being observed.
    seq: usize,
}

impl Overlay {
    /// An empty overlay for `levels`.
    pub fn new(levels: &Levels) -> Overlay {
        Overlay {
            levels: vec![(HashMap::new(), Vec::new()); levels.levels().len()],
            vocab_cont: BTreeMap::new(),
            new_ids: HashMap::new(),
            new_texts: Vec::new(),
            seq: 0,
        }
    }

    /// Positions observed from now on are of sequence `seq` (a document of
    /// a batch learned together): entries first seen there record it.
    pub fn begin(&mut self, seq: usize) {
        self.seq = seq;
    }

    /// The id of a token the vocabulary lacks, given on first use.
    pub fn new_token(&mut self, text: &str) -> TokenId {
        if let Some(&id) = self.new_ids.get(text) {
            return id;
        }
        let id = TokenId(OVERLAY_IDS + self.new_texts.len() as u64);
        self.new_ids.insert(text.to_string(), id);
        self.new_texts.push(text.to_string());
        id
    }

    /// Every continuation count the overlay changes.
    pub fn vocab_conts(&self) -> impl Iterator<Item = (TokenId, i64)> + '_ {
        self.vocab_cont.iter().map(|(&t, &d)| (t, d))
    }

    /// What the overlay changes in the counts of counts of each order (the
    /// vocabulary's continuation counts first, then each level's: its
    /// continuation counts, the longest level's raw counts — the counts
    /// each order discounts): `[n1, n2, n3, n4]` deltas, `n_k` being the
    /// (context, token) pairs counted exactly `k` times. `vocab_cont` gives
    /// a token's continuation count in the snapshot.
    pub fn counts_of_counts(&self, vocab_cont: impl Fn(TokenId) -> Result<u64>) -> Result<Vec<[i64; 4]>> {
        fn bump(n: &mut [i64; 4], before: i64, after: i64) {
            if before == after {
                return;
            }
            if (1..=4).contains(&before) {
                n[before as usize - 1] -= 1;
            }
            if (1..=4).contains(&after) {
                n[after as usize - 1] += 1;
            }
        }
        let top = self.levels.len().saturating_sub(1);
        let mut out = vec![[0i64; 4]; self.levels.len() + 1];
        for (&w, &d) in &self.vocab_cont {
            let before = i64::try_from(vocab_cont(w)?).unwrap_or(i64::MAX);
            bump(&mut out[0], before, before + d);
        }
        for (j, (map, _)) in self.levels.iter().enumerate() {
            for e in map.values() {
                let (stored, delta) = if j == top {
                    (&e.stored_next, &e.next)
                } else {
                    (&e.stored_cont, &e.cont)
                };
                for (&w, &d) in delta {
                    let before = get(stored, w);
                    bump(&mut out[j + 1], before, before + d);
                }
            }
        }
        Ok(out)
    }

    /// The entry of context `hash` at level `j`, if the overlay has it.
    pub fn entry(&self, j: usize, hash: u64) -> Option<&Entry> {
        self.levels[j].0.get(&hash)
    }

    /// The entries of level `j` in the order first seen.
    pub fn entries(&self, j: usize) -> impl Iterator<Item = (u64, &Entry)> + '_ {
        let (map, order) = &self.levels[j];
        order.iter().map(move |h| (*h, &map[h]))
    }

    /// The entry of context `hash` (first seen at `first`) at level `j`,
    /// reading what the snapshot holds of it on first use.
    fn entry_mut(&mut self, levels: &Levels, snap: &Snapshot, j: usize, hash: u64, first: usize) -> Result<&mut Entry> {
        let seq = self.seq;
        let (map, order) = &mut self.levels[j];
        match map.entry(hash) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut e = Entry {
                    seq,
                    first,
                    ..Entry::default()
                };
                if let Some(p) = levels.stored(snap, &levels.levels()[j], hash)? {
                    (e.row, e.stored_next, e.stored_cont) = (Some(p.id), p.next, p.cont);
                }
                order.push(hash);
                Ok(v.insert(e))
            }
        }
    }

    /// Count (`sign` +1) or take back (−1) the token at position `i` of
    /// `tokens` (see the module documentation). Returns the change it made
    /// to a vocabulary continuation count, if any.
    pub fn observe(
        &mut self,
        levels: &Levels,
        snap: &Snapshot,
        tokens: &[TokenId],
        i: usize,
        sign: i64,
    ) -> Result<Option<(TokenId, i64)>> {
        let w = tokens[i];
        let mut changed = None;
        for (j, l) in levels.levels().iter().enumerate() {
            if i < l.r {
                break;
            }
            let hash = context_hash(&tokens[i - l.r..i]);
            let e = self.entry_mut(levels, snap, j, hash, i)?;
            let before = get(&e.stored_next, w) + e.next.get(&w).copied().unwrap_or(0);
            let after = before + sign;
            if after < 0 {
                return Err(Error::InvalidArgument(format!(
                    "taking back token {} at position {i}: it was never counted there",
                    w.0
                )));
            }
            *e.next.entry(w).or_default() += sign;
            if (before == 0) == (after == 0) {
                continue;
            }
            let delta = if after > 0 { 1 } else { -1 };
            match j.checked_sub(1) {
                None => {
                    *self.vocab_cont.entry(w).or_default() += delta;
                    changed = Some((w, delta));
                }
                Some(down) => {
                    let r = levels.levels()[down].r;
                    let suffix = context_hash(&tokens[i - r..i]);
                    let d = self.entry_mut(levels, snap, down, suffix, i)?;
                    *d.cont.entry(w).or_default() += delta;
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn merging_matches_a_map(stored in prop::collection::btree_map(0u64..50, 1u32..9, 0..20),
                                 delta in prop::collection::btree_map(0u64..50, -9i64..9, 0..20)) {
            let s: Vec<(TokenId, u32)> = stored.iter().map(|(&t, &c)| (TokenId(t), c)).collect();
            let d: BTreeMap<TokenId, i64> = delta.iter().map(|(&t, &c)| (TokenId(t), c)).collect();
            let mut want: BTreeMap<TokenId, i64> = s.iter().map(|&(t, c)| (t, i64::from(c))).collect();
            for (&t, &c) in &d {
                *want.entry(t).or_default() += c;
            }
            let want: Vec<(TokenId, u32)> = want.into_iter().filter(|x| x.1 > 0).map(|(t, c)| (t, c as u32)).collect();
            prop_assert_eq!(merged(&s, &d), want);
        }
    }
}
