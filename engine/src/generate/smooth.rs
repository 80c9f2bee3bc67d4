//! Exact statistics, smoothed the way that makes Kneser-Ney strong:
//! interpolated absolute discounting over the pattern levels, with
//! continuation counts for every order below the longest.
//!
//! For the levels `r_1 < ... < r_m` and the current history, the
//! distribution of the next token is built from the bottom up:
//!
//! - order 0: `P_0(w) = (1 - g) N(. w) / N(. .) + g / V`, with `N(. w)` the
//!   token's continuation count (distinct shortest contexts it followed),
//!   `V` the vocabulary size and `g` a small floor so no learned token has
//!   probability 0 (a spelling model for unseen strings comes later);
//! - order j, if the history's last `r_j` tokens are a stored context `h`:
//!   `P_j(w) = max(c(h, w) - D, 0) / c(h) + D T(h) / c(h) * P_(j-1)(w)`,
//!   where `c` are the raw counts at the longest level and the continuation
//!   counts below it, `c(h)` their sum and `T(h)` the number of tokens with
//!   a positive count; an unstored context passes `P_(j-1)` on.

use std::collections::HashMap;

use super::levels::Levels;
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::vocab::{TokenId, Vocabulary};

/// Parameters of the smoothing.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Smoothing {
    /// The absolute discount `D`, in (0, 1).
    pub discount: f64,
    /// The uniform floor `g` of order 0, in [0, 1).
    pub floor: f64,
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing {
            discount: 0.75,
            floor: 1e-4,
        }
    }
}

/// Order 0 of the smoothing: every token's `(1 - g) N(. w) / N(. .) + g / V`.
pub(crate) struct Order0(HashMap<TokenId, f64>);

impl Order0 {
    /// Read from the vocabulary's continuation counts in `snap` (checking `s`).
    pub(crate) fn read(snap: &Snapshot, vocab: &Vocabulary, s: Smoothing) -> Result<Order0> {
        if !(s.discount > 0.0 && s.discount < 1.0 && (0.0..1.0).contains(&s.floor)) {
            return Err(Error::InvalidArgument(format!(
                "smoothing: discount {} must lie in (0, 1) and floor {} in [0, 1)",
                s.discount, s.floor
            )));
        }
        let base = vocab.continuations(snap)?;
        let v = base.len() as f64;
        let total: f64 = base.iter().map(|&(_, c)| c as f64).sum();
        Ok(Order0(
            base.iter()
                .map(|&(t, c)| {
                    let cont = if total > 0.0 { c as f64 / total } else { 1.0 / v };
                    (t, (1.0 - s.floor) * cont + s.floor / v)
                })
                .collect(),
        ))
    }
}

impl Levels {
    /// The smoothed next-token distribution after `history` (see the module
    /// documentation), over every token of `vocab`, most probable first
    /// (ties by id). It sums to 1 for a non-empty vocabulary.
    pub fn smoothed(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        history: &[TokenId],
        s: Smoothing,
    ) -> Result<Vec<(TokenId, f64)>> {
        self.smoothed_from(snap, &Order0::read(snap, vocab, s)?, history, s)
    }

    /// [`Levels::smoothed`] on an order-0 distribution already read (it is
    /// the same for every step of one generation over one snapshot).
    pub(crate) fn smoothed_from(
        &self,
        snap: &Snapshot,
        base: &Order0,
        history: &[TokenId],
        s: Smoothing,
    ) -> Result<Vec<(TokenId, f64)>> {
        if base.0.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = base.0.clone();
        let top = self.levels().len();
        for (j, l) in self.levels().iter().enumerate() {
            if history.len() < l.r {
                break;
            }
            let Some(pat) = self.exact(snap, &history[history.len() - l.r..])? else {
                continue;
            };
            let counts = if j + 1 == top { &pat.next } else { &pat.cont };
            let sum: f64 = counts.iter().map(|&(_, c)| f64::from(c)).sum();
            if sum == 0.0 {
                continue;
            }
            let types = counts.iter().filter(|&&(_, c)| c > 0).count() as f64;
            let lower = s.discount * types / sum;
            for q in p.values_mut() {
                *q *= lower;
            }
            for &(t, c) in counts {
                *p.entry(t).or_insert(0.0) += (f64::from(c) - s.discount).max(0.0) / sum;
            }
        }
        let mut out: Vec<(TokenId, f64)> = p.into_iter().collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;
    use std::collections::HashSet;

    /// Interpolated Kneser-Ney computed from the token lists alone, as the
    /// textbook defines it: an independent reference.
    fn reference(
        docs: &[Vec<u64>],
        lengths: &[usize],
        history: &[u64],
        vocab: &[u64],
        s: Smoothing,
    ) -> HashMap<u64, f64> {
        // Raw (context, next) occurrences per level.
        let mut pairs: Vec<HashMap<Vec<u64>, HashMap<u64, u32>>> = vec![HashMap::new(); lengths.len()];
        for d in docs {
            for (j, &r) in lengths.iter().enumerate() {
                for i in r..d.len() {
                    *pairs[j]
                        .entry(d[i - r..i].to_vec())
                        .or_default()
                        .entry(d[i])
                        .or_default() += 1;
                }
            }
        }
        // Continuation counts of level j: distinct level-(j+1) contexts
        // ending with h followed by w; order 0: distinct level-0 contexts.
        let cont = |j: usize, h: &[u64], w: u64| -> u32 {
            pairs[j + 1]
                .iter()
                .filter(|(ctx, next)| ctx.ends_with(h) && next.contains_key(&w))
                .count() as u32
        };
        let v = vocab.len() as f64;
        let base: HashMap<u64, f64> = vocab
            .iter()
            .map(|&w| (w, pairs[0].values().filter(|n| n.contains_key(&w)).count() as f64))
            .collect();
        let total: f64 = base.values().sum();
        let mut p: HashMap<u64, f64> = vocab
            .iter()
            .map(|&w| (w, (1.0 - s.floor) * base[&w] / total + s.floor / v))
            .collect();
        for (j, &r) in lengths.iter().enumerate() {
            if history.len() < r {
                break;
            }
            let h = &history[history.len() - r..];
            let Some(seen) = pairs[j].get(h) else { continue };
            let c: HashMap<u64, f64> = if j + 1 == lengths.len() {
                seen.iter().map(|(&w, &n)| (w, f64::from(n))).collect()
            } else {
                let followers: HashSet<u64> = pairs[j + 1]
                    .iter()
                    .filter(|(ctx, _)| ctx.ends_with(h))
                    .flat_map(|(_, n)| n.keys().copied())
                    .collect();
                followers.into_iter().map(|w| (w, f64::from(cont(j, h, w)))).collect()
            };
            let sum: f64 = c.values().sum();
            if sum == 0.0 {
                continue;
            }
            let types = c.values().filter(|&&x| x > 0.0).count() as f64;
            p = vocab
                .iter()
                .map(|&w| {
                    let cw = c.get(&w).copied().unwrap_or(0.0);
                    (w, (cw - s.discount).max(0.0) / sum + s.discount * types / sum * p[&w])
                })
                .collect();
        }
        p
    }

    #[test]
    fn matches_textbook_kneser_ney_and_sums_to_one() {
        let lengths = [1, 2, 3];
        let mut c = Corpus::new(16, &lengths, 1);
        let texts = ["a b a c a b d a b a c", "b a c a b b a c d d a", "c a b a"];
        let docs: Vec<Vec<u64>> = texts
            .iter()
            .map(|t| c.learn(&t.split(' ').collect::<Vec<_>>()).iter().map(|i| i.0).collect())
            .collect();
        let (vocab, levels) = (&c.vocab, &c.levels);
        let snap = c.store.snapshot().unwrap();
        let all: Vec<u64> = vocab.continuations(&snap).unwrap().iter().map(|x| x.0 .0).collect();
        let s = Smoothing::default();
        let histories: Vec<Vec<u64>> = vec![
            vec![],
            docs[0][..1].to_vec(),
            docs[0][..3].to_vec(),
            docs[1][..5].to_vec(),
            vec![docs[0][3], docs[0][3], docs[0][3]], // "c c c": never seen at the longer levels
        ];
        for h in &histories {
            let hist: Vec<TokenId> = h.iter().map(|&x| TokenId(x)).collect();
            let got = levels.smoothed(&snap, vocab, &hist, s).unwrap();
            let want = reference(&docs, &lengths, h, &all, s);
            assert_eq!(got.len(), all.len());
            for (t, p) in &got {
                assert!(
                    (p - want[&t.0]).abs() < 1e-12,
                    "history {h:?}, token {}: {p} vs {}",
                    t.0,
                    want[&t.0]
                );
                assert!(*p > 0.0);
            }
            assert!((got.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(levels
            .smoothed(
                &snap,
                vocab,
                &[],
                Smoothing {
                    discount: 1.0,
                    floor: 0.0
                }
            )
            .is_err());
    }
}
