//! Exact statistics, smoothed the way that makes Kneser-Ney strong:
//! interpolated absolute discounting over the pattern levels, with
//! continuation counts for every order below the longest, down to a
//! spelling model, so that every string — learned or not — has a
//! probability.
//!
//! For the levels `r_1 < ... < r_m` and the current history, the
//! probability of the next token `w` is built from the bottom up:
//!
//! - order 0: `P_0(w) = max(N(. w) - D, 0) / N(. .) + D T / N(. .) * P_spell(w)`,
//!   with `N(. w)` the token's continuation count (the distinct shortest
//!   contexts it followed), `T` the tokens with one, and `P_spell` the
//!   character model of [`Speller`]: a token never learned has `N(. w) = 0`
//!   and lives on the spelling term alone;
//! - order j, if the history's last `r_j` tokens are a stored context `h`:
//!   `P_j(w) = max(c(h, w) - D, 0) / c(h) + D T(h) / c(h) * P_(j-1)(w)`,
//!   where `c` are the raw counts at the longest level and the continuation
//!   counts below it, `c(h)` their sum and `T(h)` the number of tokens with
//!   a positive count; an unstored context passes `P_(j-1)` on.
//!
//! Summed over every string, these are exactly 1: the learned tokens take
//! what [`Levels::smoothed`] lists, and the strings never learned share the
//! rest ([`Smoothed::unknown`]).

use std::collections::HashMap;

use super::context::context_hash;
use super::levels::Levels;
use super::overlay::Overlay;
use super::spell::Speller;
use crate::error::{Error, Result};
use crate::storage::{Snapshot, Value};
use crate::text::vocab::{TokenId, Vocabulary};

/// The default absolute discount of the token levels.
pub const DISCOUNT: f64 = 0.75;
/// The spelling model's discount.
pub const SPELL_DISCOUNT: f64 = 0.75;

/// Check an absolute discount.
pub(crate) fn check_discount(d: f64) -> Result<f64> {
    if d > 0.0 && d < 1.0 {
        Ok(d)
    } else {
        Err(Error::InvalidArgument(format!("discount {d} must lie in (0, 1)")))
    }
}

fn escape(total: f64, types: f64, d: f64) -> f64 {
    if total > 0.0 {
        d * types / total
    } else {
        1.0
    }
}

/// `P_0` of a token of continuation count `c` and spelling probability
/// `spelled`, the counts summing to `total` over `types` tokens.
pub(crate) fn order0(c: f64, spelled: f64, total: f64, types: f64, d: f64) -> f64 {
    let counted = if total > 0.0 { (c - d).max(0.0) / total } else { 0.0 };
    counted + escape(total, types, d) * spelled
}

/// Order 0 of the smoothing: continuation counts and the spelling model.
#[derive(Clone, Debug)]
pub(crate) struct Base {
    cont: HashMap<TokenId, u64>,
    texts: Vec<(TokenId, String)>,
    total: f64,
    types: f64,
    pub(crate) speller: Speller,
}

impl Base {
    /// Read from the vocabulary in `snap`: continuation counts, and the
    /// spelling of every token (each once) for the spelling model.
    pub fn read(snap: &Snapshot, vocab: &Vocabulary) -> Result<Base> {
        let mut b = Base {
            cont: HashMap::new(),
            texts: Vec::new(),
            total: 0.0,
            types: 0.0,
            speller: Speller::new(SPELL_DISCOUNT),
        };
        for (id, text, c) in vocab.tokens(snap)? {
            b.speller.add(&text);
            b.cont.insert(id, c);
            b.texts.push((id, text));
            b.total += c as f64;
            b.types += f64::from(u8::from(c > 0));
        }
        Ok(b)
    }

    /// The share of order 0 that goes to the spelling model.
    pub fn escape(&self, d: f64) -> f64 {
        escape(self.total, self.types, d)
    }

    /// `P_0` of token `w` (if it has an id) spelled `text`.
    pub fn p0(&self, w: Option<TokenId>, text: &str, d: f64) -> f64 {
        let (c, spelled) = self.parts(w.unwrap_or(TokenId(u64::MAX)), text);
        order0(c, spelled, self.total, self.types, d)
    }

    /// What `P_0` of `w` spelled `text` is made of, for any discount: its
    /// continuation count and its spelling probability.
    pub fn parts(&self, w: TokenId, text: &str) -> (f64, f64) {
        let c = self.cont.get(&w).copied().unwrap_or(0) as f64;
        (c, self.speller.prob_of(text))
    }

    /// The sum of the continuation counts and the tokens with one.
    pub fn totals(&self) -> (f64, f64) {
        (self.total, self.types)
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
        self.total += *c as f64 - before as f64;
        self.types += f64::from(u8::from(*c > 0)) - f64::from(u8::from(before > 0));
    }

    /// `P_0` of every learned token, most probable first (ties by id), and
    /// the mass order 0 leaves to strings never learned.
    pub fn all(&self, d: f64) -> (Vec<(TokenId, f64)>, f64) {
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
        (v, self.escape(d) * (1.0 - spelled).max(0.0))
    }
}

/// The counts of one exact context (positive only, by id).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Counts {
    pairs: Vec<(TokenId, u32)>,
    sum: f64,
    types: f64,
}

impl Counts {
    /// `None` when nothing was counted.
    pub fn new(pairs: Vec<(TokenId, u32)>) -> Option<Counts> {
        let sum: f64 = pairs.iter().map(|&(_, c)| f64::from(c)).sum();
        (sum > 0.0).then_some(Counts {
            types: pairs.len() as f64,
            pairs,
            sum,
        })
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
    /// The smoothed probability of `w`, whose order-0 probability is `p0`.
    pub fn prob(&self, p0: f64, w: TokenId, d: f64) -> f64 {
        self.0
            .iter()
            .fold(p0, |p, c| (c.get(w) - d).max(0.0) / c.sum + d * c.types / c.sum * p)
    }

    /// The share of `P_0` that reaches the top: what a token counted at no
    /// level gets, times its `P_0`.
    pub fn backoff(&self, d: f64) -> f64 {
        self.0.iter().map(|c| d * c.types / c.sum).product()
    }

    /// Every token counted at some level.
    pub fn tokens(&self) -> impl Iterator<Item = TokenId> + '_ {
        self.0.iter().flat_map(|c| c.pairs.iter().map(|x| x.0))
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
                    let t = snap.table(l.table)?;
                    let Some(row) = t.find(&Value::UInt(hash))?.and_then(|id| t.get(id)) else {
                        continue;
                    };
                    let p = self.pattern_of(l, &row)?;
                    if j + 1 == top {
                        p.next
                    } else {
                        p.cont
                    }
                }
            };
            out.extend(Counts::new(pairs));
        }
        Ok(Exact(out))
    }

    /// The smoothed next-token distribution after `history` (see the module
    /// documentation) with absolute discount `discount`: every learned
    /// token, most probable first (ties by id), and the mass of the strings
    /// never learned.
    pub fn smoothed(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        history: &[TokenId],
        discount: f64,
    ) -> Result<Smoothed> {
        let d = check_discount(discount)?;
        let (all, unknown) = Base::read(snap, vocab)?.all(d);
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
        d: f64,
    ) -> HashMap<u64, f64> {
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
        let types = n.values().filter(|&&c| c > 0.0).count() as f64;
        let mut p: HashMap<u64, f64> = vocab
            .iter()
            .map(|(w, text)| {
                let spelled = speller.prob_of(text);
                (*w, (n[w] - d).max(0.0) / total + d * types / total * spelled)
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
            let types = c.values().filter(|&&x| x > 0.0).count() as f64;
            p = vocab
                .iter()
                .map(|&(w, _)| {
                    let cw = c.get(&w).copied().unwrap_or(0.0);
                    (w, (cw - d).max(0.0) / sum + d * types / sum * p[&w])
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
        let mut speller = Speller::new(SPELL_DISCOUNT);
        all.iter().for_each(|(_, t)| speller.add(t));
        let d = DISCOUNT;
        let histories: Vec<Vec<u64>> = vec![
            vec![],
            docs[0][..1].to_vec(),
            docs[0][..3].to_vec(),
            docs[1][..5].to_vec(),
            vec![docs[0][3], docs[0][3], docs[0][3]], // "c c c": never seen at the longer levels
        ];
        for h in &histories {
            let hist: Vec<TokenId> = h.iter().map(|&x| TokenId(x)).collect();
            let got = levels.smoothed(&snap, vocab, &hist, d).unwrap();
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
        assert!(levels.smoothed(&snap, vocab, &[], 1.0).is_err());
    }
}
