//! Exact statistics, smoothed the way that makes Kneser-Ney strong:
//! interpolated absolute discounting over the pattern levels, with
//! continuation counts for every order below the longest, down to a
//! spelling model, so that every string — learned or not — has a
//! probability.
//!
//! For the levels `r_1 < ... < r_m` and the current history, the
//! probability of the next token `w` is built from the bottom up:
//!
//! - order 0: `P_0(w) = max(N(. w) - D(N(. w)), 0) / N(. .) + g_0 P_spell(w)`,
//!   with `N(. w)` the token's continuation count (the distinct shortest
//!   contexts it followed), `g_0` the mass the discounts took, and `P_spell` the
//!   character model of [`Speller`]: a token never learned has `N(. w) = 0`
//!   and lives on the spelling term alone;
//! - order j, if the history's last `r_j` tokens are a stored context `h`:
//!   `P_j(w) = max(c(h, w) - D(c(h, w)), 0) / c(h) + g(h) P_(j-1)(w)`,
//!   where `c` are the raw counts at the longest level and the continuation
//!   counts below it, `c(h)` their sum, `D` the level's modified discounts
//!   ([`Discount`]: one for counts of 1, one for 2, one for more) and
//!   `g(h) = (D1 n1(h) + D2 n2(h) + D3 n3+(h)) / c(h)` what they took; an
//!   unstored context passes `P_(j-1)` on.
//!
//! Summed over every string, these are at most 1: the learned tokens take
//! what [`Levels::smoothed`] lists, and the strings never learned share at
//! most the rest ([`Smoothed::unknown`]; exactly the rest but for the little
//! the spelling model gives spellings its case factoring never uses, see
//! [`Speller`]).

use std::collections::HashMap;

use super::context::context_hash;
use super::levels::Levels;
use super::overlay::Overlay;
use super::spell::Speller;
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::vocab::{TokenId, Vocabulary};

/// Modified Kneser-Ney discounts (Chen & Goodman): `D1` is taken from a
/// count of 1, `D2` from a count of 2, `D3` from larger counts. A context
/// with `n_k` tokens in each class gives the lower order
/// `(D1 n1 + D2 n2 + D3 n3+) / c(h)`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Discount(pub [f64; 3]);

impl Discount {
    /// Typical values for word-level text.
    pub const DEFAULT: Discount = Discount([0.6, 1.0, 1.3]);

    /// The discount of a count `c` (0 for 0).
    pub fn of(&self, c: f64) -> f64 {
        if c <= 0.0 {
            0.0
        } else if c < 2.0 {
            self.0[0]
        } else if c < 3.0 {
            self.0[1]
        } else {
            self.0[2]
        }
    }

    /// Chen & Goodman's estimate from a level's counts of counts (`n[k-1]`
    /// pairs counted exactly `k` times, k = 1..4): with
    /// `Y = n1 / (n1 + 2 n2)`, `D_k = k - (k + 1) Y n_(k+1) / n_k`. What
    /// the estimate gives outside `0 < D_k < k` (too few counts to say) is
    /// `None`, and the caller keeps its default.
    ///
    /// ```
    /// use engram::generate::Discount;
    /// let d = Discount::estimate([1000.0, 300.0, 150.0, 90.0]).unwrap();
    /// let y = 1000.0 / 1600.0;
    /// assert!((d.0[0] - (1.0 - 2.0 * y * 0.3)).abs() < 1e-12);
    /// assert!(Discount::estimate([0.0, 0.0, 0.0, 0.0]).is_none());
    /// ```
    pub fn estimate(n: [f64; 4]) -> Option<Discount> {
        if n.iter().any(|&x| x.is_nan() || x <= 0.0) {
            return None;
        }
        let y = n[0] / (n[0] + 2.0 * n[1]);
        let d = |k: usize| k as f64 - (k + 1) as f64 * y * n[k] / n[k - 1];
        Discount([d(1), d(2), d(3)]).checked().ok()
    }

    /// Check `0 < D_k < k` (so that a counted token keeps some probability).
    pub fn checked(self) -> Result<Discount> {
        let ok = self
            .0
            .iter()
            .enumerate()
            .all(|(k, &d)| d.is_finite() && d > 0.0 && d < (k + 1) as f64);
        if ok {
            Ok(self)
        } else {
            Err(Error::InvalidArgument(format!(
                "discounts {:?}: D1 in (0, 1), D2 in (0, 2) and D3 in (0, 3) are required",
                self.0
            )))
        }
    }
}

/// Counts of one distribution by class: their sum and how many tokens have
/// a count of 1, of 2, and of 3 or more.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub(crate) struct Classes {
    pub sum: f64,
    n: [f64; 3],
}

impl Classes {
    fn class(c: f64) -> Option<usize> {
        (c > 0.0).then(|| (c.min(3.0) as usize).max(1) - 1)
    }

    /// Count `c` in (`sign` 1) or out (-1).
    pub fn add(&mut self, c: f64, sign: f64) {
        self.sum += sign * c;
        if let Some(k) = Classes::class(c) {
            self.n[k] += sign;
        }
    }

    /// The share the lower order gets, `(D1 n1 + D2 n2 + D3 n3+) / sum`
    /// (1 when nothing is counted).
    pub fn gamma(&self, d: Discount) -> f64 {
        if self.sum > 0.0 {
            (d.0[0] * self.n[0] + d.0[1] * self.n[1] + d.0[2] * self.n[2]) / self.sum
        } else {
            1.0
        }
    }

    /// `max(c - D(c), 0) / sum` (0 when nothing is counted).
    pub fn kept(&self, c: f64, d: Discount) -> f64 {
        if self.sum > 0.0 {
            (c - d.of(c)).max(0.0) / self.sum
        } else {
            0.0
        }
    }
}

/// `P_0` of a token of continuation count `c` and spelling probability
/// `spelled`, the continuation counts being `classes`.
pub(crate) fn order0(c: f64, spelled: f64, classes: &Classes, d: Discount) -> f64 {
    classes.kept(c, d) + classes.gamma(d) * spelled
}

/// Order 0 of the smoothing: continuation counts and the spelling model.
#[derive(Clone, Debug)]
pub(crate) struct Base {
    cont: HashMap<TokenId, u64>,
    texts: Vec<(TokenId, String)>,
    classes: Classes,
    pub(crate) speller: Speller,
}

impl Base {
    /// Read from the vocabulary in `snap`: continuation counts, and the
    /// spelling of every token (each once) for the spelling model.
    pub fn read(snap: &Snapshot, vocab: &Vocabulary) -> Result<Base> {
        let mut b = Base {
            cont: HashMap::new(),
            texts: Vec::new(),
            classes: Classes::default(),
            speller: Speller::default(),
        };
        for (id, text, c) in vocab.tokens(snap)? {
            b.speller.add(&text);
            b.cont.insert(id, c);
            b.texts.push((id, text));
            b.classes.add(c as f64, 1.0);
        }
        Ok(b)
    }

    /// `P_0` of token `w` (if it has an id) spelled `text`.
    pub fn p0(&self, w: Option<TokenId>, text: &str, d: Discount) -> f64 {
        let (c, spelled) = self.parts(w.unwrap_or(TokenId(u64::MAX)), text);
        order0(c, spelled, &self.classes, d)
    }

    /// What `P_0` of `w` spelled `text` is made of, for any discount: its
    /// continuation count and its spelling probability.
    pub fn parts(&self, w: TokenId, text: &str) -> (f64, f64) {
        let c = self.cont.get(&w).copied().unwrap_or(0) as f64;
        (c, self.speller.prob_of(text))
    }

    /// The continuation counts by class.
    pub fn classes(&self) -> Classes {
        self.classes
    }

    /// Whether `w` has a place in order 0.
    pub fn knows(&self, w: TokenId) -> bool {
        self.cont.contains_key(&w)
    }

    /// Learn a new token's spelling (adaptive learning).
    pub fn learn_spelling(&mut self, w: TokenId, text: &str) {
        self.speller.add(text);
        self.cont.insert(w, 0);
        self.texts.push((w, text.to_string()));
    }

    /// Add `delta` to the continuation count of `w` (adaptive learning).
    pub fn add_cont(&mut self, w: TokenId, delta: i64) {
        let c = self.cont.entry(w).or_insert(0);
        let before = *c;
        *c = c.saturating_add_signed(delta);
        self.classes.add(before as f64, -1.0);
        self.classes.add(*c as f64, 1.0);
    }

    /// `P_0` of every learned token, most probable first (ties by id), and
    /// the mass order 0 leaves to strings never learned.
    pub fn all(&self, d: Discount) -> (Vec<(TokenId, f64)>, f64) {
        let mut spelled = 0.0;
        let mut v: Vec<(TokenId, f64)> = self
            .texts
            .iter()
            .map(|(id, text)| {
                spelled += self.speller.prob_of(text);
                (*id, self.p0(Some(*id), text, d))
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (v, self.classes.gamma(d) * (1.0 - spelled).max(0.0))
    }
}

/// The counts of one exact context (positive only, by id) and of which
/// level (its index).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Counts {
    level: usize,
    pairs: Vec<(TokenId, u32)>,
    classes: Classes,
}

impl Counts {
    /// `None` when nothing was counted.
    pub fn new(level: usize, pairs: Vec<(TokenId, u32)>) -> Option<Counts> {
        let mut classes = Classes::default();
        pairs.iter().for_each(|&(_, c)| classes.add(f64::from(c), 1.0));
        (classes.sum > 0.0).then_some(Counts { level, pairs, classes })
    }

    fn get(&self, w: TokenId) -> f64 {
        self.pairs
            .binary_search_by_key(&w, |x| x.0)
            .map_or(0.0, |i| f64::from(self.pairs[i].1))
    }
}

/// The stored exact contexts of one history: one [`Counts`] per level
/// that holds the history's context, shortest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Exact(Vec<Counts>);

impl Exact {
    /// The smoothed probability of `w`, whose order-0 probability is `p0`,
    /// with `d[j + 1]` the discounts of level `j`.
    pub fn prob(&self, p0: f64, w: TokenId, d: &[Discount]) -> f64 {
        self.0.iter().fold(p0, |p, c| {
            let dj = d[c.level + 1];
            c.classes.kept(c.get(w), dj) + c.classes.gamma(dj) * p
        })
    }

    /// Every token counted at some level, by id, with its smoothed
    /// probability ([`Exact::prob`], the same values: the same operations
    /// in the same order) and its order-0 probability, which `p0` gives.
    /// One pass over the levels' counts, where asking `prob` token by
    /// token searches each level.
    pub fn counted_probs(&self, d: &[Discount], p0: impl Fn(TokenId) -> f64) -> Vec<(TokenId, f64, f64)> {
        let gammas: Vec<f64> = self.0.iter().map(|c| c.classes.gamma(d[c.level + 1])).collect();
        let mut at = vec![0usize; self.0.len()];
        let mut out = Vec::with_capacity(self.0.iter().map(|c| c.pairs.len()).max().unwrap_or(0));
        while let Some(w) = self
            .0
            .iter()
            .zip(&at)
            .filter_map(|(c, &i)| c.pairs.get(i).map(|x| x.0))
            .min()
        {
            let base = p0(w);
            let mut p = base;
            for ((c, i), g) in self.0.iter().zip(at.iter_mut()).zip(&gammas) {
                p = match c.pairs.get(*i) {
                    Some(&(t, n)) if t == w => {
                        *i += 1;
                        c.classes.kept(f64::from(n), d[c.level + 1]) + g * p
                    }
                    // What `prob` adds for a count of 0 is 0.
                    _ => g * p,
                };
            }
            out.push((w, p, base));
        }
        out
    }

    /// The share of `P_0` that reaches the top: what a token counted at no
    /// level gets, times its `P_0`.
    pub fn backoff(&self, d: &[Discount]) -> f64 {
        self.0.iter().map(|c| c.classes.gamma(d[c.level + 1])).product()
    }
}

impl Levels {
    /// The exact contexts of `history` in `snap`, with what `overlay` adds.
    pub(crate) fn exact_counts(
        &self,
        snap: &Snapshot,
        overlay: Option<&Overlay>,
        history: &[TokenId],
    ) -> Result<Exact> {
        let top = self.levels().len();
        let mut out = Vec::new();
        for (j, l) in self.levels().iter().enumerate() {
            if history.len() < l.r {
                break;
            }
            let hash = context_hash(&history[history.len() - l.r..]);
            let pairs = match overlay.and_then(|o| o.entry(j, hash)) {
                Some(e) if j + 1 == top => e.next(),
                Some(e) => e.cont(),
                None => {
                    let Some(p) = self.stored_counts(snap, l, hash, j + 1 != top)? else {
                        continue;
                    };
                    p
                }
            };
            out.extend(Counts::new(j, pairs));
        }
        Ok(Exact(out))
    }

    /// The smoothed next-token distribution after `history` (see the module
    /// documentation) with discounts `d` (order 0 first, then each level):
    /// every learned token, most probable first (ties by id), and the mass
    /// of the strings never learned.
    pub fn smoothed(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        history: &[TokenId],
        d: &[Discount],
    ) -> Result<Smoothed> {
        if d.len() != self.levels().len() + 1 {
            return Err(Error::InvalidArgument(format!(
                "{} discounts for {} levels and order 0",
                d.len(),
                self.levels().len()
            )));
        }
        for x in d {
            x.checked()?;
        }
        let (all, unknown) = Base::read(snap, vocab)?.all(d[0]);
        let exact = self.exact_counts(snap, None, history)?;
        let mut dist: Vec<(TokenId, f64)> = all.into_iter().map(|(t, p0)| (t, exact.prob(p0, t, d))).collect();
        dist.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Smoothed {
            dist,
            unknown: unknown * exact.backoff(d),
        })
    }
}

/// A smoothed distribution: the learned tokens', and what is left.
#[derive(Clone, Debug, PartialEq)]
pub struct Smoothed {
    /// Every learned token's probability, most probable first.
    pub dist: Vec<(TokenId, f64)>,
    /// The probability that the next token is a string never learned.
    pub unknown: f64,
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
        vocab: &[(u64, String)],
        speller: &Speller,
        d: Discount,
    ) -> HashMap<u64, f64> {
        // The discount of a count, and the mass all discounts take.
        let disc = |c: f64| {
            if c <= 0.0 {
                0.0
            } else if c == 1.0 {
                d.0[0]
            } else if c == 2.0 {
                d.0[1]
            } else {
                d.0[2]
            }
        };
        // Raw (context, next) occurrences per level.
        let mut pairs: Vec<HashMap<Vec<u64>, HashMap<u64, u32>>> = vec![HashMap::new(); lengths.len()];
        for doc in docs {
            for (j, &r) in lengths.iter().enumerate() {
                for i in r..doc.len() {
                    *pairs[j]
                        .entry(doc[i - r..i].to_vec())
                        .or_default()
                        .entry(doc[i])
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
        // Order 0: discounted continuation counts, the rest spelled.
        let n: HashMap<u64, f64> = vocab
            .iter()
            .map(|&(w, _)| (w, pairs[0].values().filter(|n| n.contains_key(&w)).count() as f64))
            .collect();
        let total: f64 = n.values().sum();
        let taken: f64 = n.values().map(|&c| disc(c)).sum();
        let mut p: HashMap<u64, f64> = vocab
            .iter()
            .map(|(w, text)| {
                let spelled = speller.prob_of(text);
                (*w, (n[w] - disc(n[w])).max(0.0) / total + taken / total * spelled)
            })
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
            let taken: f64 = c.values().map(|&x| disc(x)).sum();
            p = vocab
                .iter()
                .map(|&(w, _)| {
                    let cw = c.get(&w).copied().unwrap_or(0.0);
                    (w, (cw - disc(cw)).max(0.0) / sum + taken / sum * p[&w])
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
        let all: Vec<(u64, String)> = vocab
            .tokens(&snap)
            .unwrap()
            .into_iter()
            .map(|(t, text, _)| (t.0, text))
            .collect();
        let mut speller = Speller::default();
        all.iter().for_each(|(_, t)| speller.add(t));
        // Distinct discounts per class, so that each class is exercised.
        let d = Discount([0.5, 0.9, 1.4]);
        let ds = vec![d; lengths.len() + 1];
        let histories: Vec<Vec<u64>> = vec![
            vec![],
            docs[0][..1].to_vec(),
            docs[0][..3].to_vec(),
            docs[1][..5].to_vec(),
            vec![docs[0][3], docs[0][3], docs[0][3]], // "c c c": never seen at the longer levels
        ];
        for h in &histories {
            let hist: Vec<TokenId> = h.iter().map(|&x| TokenId(x)).collect();
            let got = levels.smoothed(&snap, vocab, &hist, &ds).unwrap();
            let want = reference(&docs, &lengths, h, &all, &speller, d);
            assert_eq!(got.dist.len(), all.len());
            for (t, p) in &got.dist {
                assert!(
                    (p - want[&t.0]).abs() < 1e-12,
                    "history {h:?}, token {}: {p} vs {}",
                    t.0,
                    want[&t.0]
                );
                assert!(*p > 0.0);
            }
            // The learned tokens and the strings never learned share 1.
            let sum = got.dist.iter().map(|x| x.1).sum::<f64>() + got.unknown;
            assert!((sum - 1.0).abs() < 1e-9, "{sum}");
            assert!(got.unknown > 0.0);
        }
        assert!(levels
            .smoothed(&snap, vocab, &[], &[Discount([1.0, 1.0, 1.0]); 4])
            .is_err());
        assert!(levels.smoothed(&snap, vocab, &[], &ds[..2]).is_err());
    }

    #[test]
    fn counted_probs_are_prob_token_by_token() {
        let mut rng = crate::generate::rng::SplitMix(7);
        for case in 0..20 {
            let levels = 1 + (rng.next() % 5) as usize;
            let exact = Exact(
                (0..levels)
                    .filter_map(|j| {
                        let mut pairs: Vec<(TokenId, u32)> = (0..40u64)
                            .filter_map(|t| {
                                let x = rng.next();
                                x.is_multiple_of(3).then(|| (TokenId(t), 1 + ((x >> 8) % 6) as u32))
                            })
                            .collect();
                        pairs.sort_by_key(|x| x.0);
                        Counts::new(j, pairs)
                    })
                    .collect(),
            );
            let d: Vec<Discount> = (0..=levels)
                .map(|j| Discount([0.5 + 0.01 * j as f64, 0.9, 1.3]))
                .collect();
            let p0 = |t: TokenId| 1.0 / (3.0 + t.0 as f64);
            let got = exact.counted_probs(&d, p0);
            let mut want: Vec<TokenId> = exact.0.iter().flat_map(|c| c.pairs.iter().map(|x| x.0)).collect();
            want.sort();
            want.dedup();
            assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), want, "case {case}");
            for (t, p, base) in got {
                assert_eq!(base, p0(t));
                assert_eq!(
                    p.to_bits(),
                    exact.prob(p0(t), t, &d).to_bits(),
                    "case {case}, token {t:?}"
                );
            }
        }
    }
}
