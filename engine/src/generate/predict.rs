//! One prediction step: the exact statistics (interpolated Kneser-Ney,
//! [`Levels::smoothed`]) and what retrieval adds.
//!
//! Gathering ([`Levels::gather`]) reads what a step needs: the history's
//! exact contexts, and each level's nearest stored contexts — probed with
//! the balanced strategy's `ef` (for as many neighbours as any strategy
//! within that `ef` keeps), whose flatness gives the step's energy and so
//! its strategy, searched again only when that strategy needs a larger `k`
//! or `ef`. Predicting ([`Evidence::predict`]) mixes it under a [`Params`]:
//! each level's retrieval ([`mix`]) is weighted by `pi_r exp(-H_r / beta)`
//! (a sure level — low entropy — counts more) and the mixture is
//! interpolated with the exact statistics,
//!
//! `P(w) = (1 - alpha) P_KN(w) + alpha P_retrieval(w)`,
//!
//! `alpha` being the strategy's. Retrieval adds to the exact counts instead
//! of replacing them, and every string keeps a positive probability.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::decode::{Powers, Split};
use super::levels::Levels;
use super::overlay::Overlay;
use super::retrieve::{mix, Hit, Retrieved};
use super::smooth::{Base, Discount, Exact};
use super::strategy::{energy, flatness, Strategies, Strategy};
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::vocab::TokenId;

/// Everything a prediction is computed with (what fitting tunes).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The modified Kneser-Ney discounts of order 0 and then of each level
    /// (empty: [`Discount::DEFAULT`] for all).
    pub discounts: Vec<Discount>,
    /// Temperature of the level weights `exp(-H_r / beta)` (> 0).
    pub beta: f64,
    /// Prior weight of each level, shortest first (empty: all 1).
    pub pi: Vec<f64>,
    /// The strategies and the strategy of each energy bin.
    pub strategies: Strategies,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            discounts: Vec::new(),
            beta: 1.0,
            pi: Vec::new(),
            strategies: Strategies::default(),
        }
    }
}

impl Params {
    /// The discounts of order 0 and each of `levels` levels.
    pub fn discounts_for(&self, levels: usize) -> Vec<Discount> {
        if self.discounts.is_empty() {
            vec![Discount::DEFAULT; levels + 1]
        } else {
            self.discounts.clone()
        }
    }

    /// Check every parameter, for `levels` levels.
    pub fn checked(&self, levels: usize) -> Result<&Params> {
        if !(self.discounts.is_empty() || self.discounts.len() == levels + 1) {
            return Err(Error::InvalidArgument(format!(
                "{} discounts: one for order 0 and one per level ({levels}) are required",
                self.discounts.len()
            )));
        }
        for d in &self.discounts {
            d.checked()?;
        }
        let pis_ok =
            self.pi.is_empty() || (self.pi.len() == levels && self.pi.iter().all(|p| p.is_finite() && *p >= 0.0));
        if !(self.beta.is_finite() && self.beta > 0.0 && pis_ok) {
            return Err(Error::InvalidArgument(format!(
                "beta {} must be positive and pi hold one non-negative weight per level ({levels}), not {:?}",
                self.beta, self.pi
            )));
        }
        self.strategies.checked()?;
        Ok(self)
    }
}

/// What a step predicts from: the tokens before the predicted one, the
/// embeddings of (at least) the last `max_r` of them, and the predicted
/// token's position.
#[derive(Copy, Clone, Debug)]
pub(crate) struct History<'a> {
    pub tokens: &'a [TokenId],
    pub embeddings: &'a [&'a [f32]],
    pub pos: u64,
}

/// What one step gathered (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct Evidence {
    pub exact: Exact,
    /// Per level that could retrieve: its index and what its search found.
    pub hits: Vec<(usize, Vec<Hit>)>,
    /// The step's energy.
    pub energy: f64,
    /// Token position of the predicted token.
    pub pos: u64,
}

/// One step's prediction: its strategy, energy and confidence, each
/// level's retrieval and weight, and the exact statistics.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// The strategy the energy chose.
    pub strategy: Strategy,
    /// The step's energy (flatness of the probed similarities, in [0, 1]).
    pub energy: f64,
    /// `exp(-energy)`.
    pub confidence: f64,
    /// Retrieval's share beside the exact statistics.
    pub alpha: f64,
    /// Each level that retrieved: its weight in the retrieval mixture and
    /// what it retrieved.
    pub levels: Vec<(f64, Retrieved)>,
    exact: Exact,
    discounts: Vec<Discount>,
}

impl Levels {
    /// Gather a step (see the module documentation) after `history`. With
    /// `wide`, each level is
    /// searched once with the largest `k` and `ef` of any strategy, so that
    /// any parameters can be evaluated on the result (fitting).
    pub(crate) fn gather(
        &self,
        snap: &Snapshot,
        overlay: Option<&Overlay>,
        params: &Params,
        history: History<'_>,
        wide: bool,
    ) -> Result<Evidence> {
        let History {
            tokens: history,
            embeddings,
            pos,
        } = history;
        if embeddings.len() > history.len() {
            return Err(Error::InvalidArgument("more embeddings than history tokens".into()));
        }
        let exact = self.exact_counts(snap, overlay, history)?;
        let st = &params.strategies;
        let probe = *st.probe();
        let (k, ef) = if wide {
            (
                st.params.iter().map(|p| p.k).max().unwrap_or(probe.k),
                st.params.iter().map(|p| p.ef).max().unwrap_or(probe.ef),
            )
        } else {
            // Searching for a few more neighbours costs little beside the
            // walk that `ef` sets, so the probe finds as many as any
            // strategy within its `ef` keeps: those need no second search.
            let k = st
                .params
                .iter()
                .filter(|p| p.ef <= probe.ef)
                .map(|p| p.k)
                .fold(probe.k, usize::max);
            (k, probe.ef)
        };
        let mut keys = Vec::new();
        let mut hits = Vec::new();
        let mut flat = Vec::new();
        for (j, l) in self.levels().iter().enumerate() {
            if embeddings.len() < l.r {
                break;
            }
            let key = self.keyer().key(&embeddings[embeddings.len() - l.r..]);
            let h = self.search_level(snap, overlay, j, &key, k, ef)?;
            if !h.is_empty() {
                let sims: Vec<f32> = h.iter().take(probe.k).map(|x| x.sim).collect();
                flat.push(flatness(&sims));
            }
            keys.push(key);
            hits.push((j, h));
        }
        let energy = energy(&flat);
        let chosen = st.of(st.pick(energy));
        // A strategy that gives retrieval no weight keeps the probe's hits
        // (for the trace) rather than searching wider for nothing.
        if !wide && chosen.alpha > 0.0 && (chosen.k > k || chosen.ef > ef) {
            for ((j, h), key) in hits.iter_mut().zip(&keys) {
                let r = self.levels()[*j].r;
                *h = if chosen.max_r == 0 || r <= chosen.max_r {
                    self.search_level(snap, overlay, *j, key, chosen.k, chosen.ef)?
                } else {
                    Vec::new()
                };
            }
        }
        Ok(Evidence {
            exact,
            hits,
            energy,
            pos,
        })
    }
}

impl Evidence {
    /// The prediction under `params` for `levels` (the evidence's exact
    /// counts move into it: a common context holds thousands).
    pub(crate) fn predict(self, levels: &Levels, params: &Params) -> Prediction {
        let strategy = params.strategies.pick(self.energy);
        let sp = params.strategies.of(strategy);
        let mut got = Vec::new();
        for (j, hits) in &self.hits {
            let r = levels.levels()[*j].r;
            if hits.is_empty() || (sp.max_r > 0 && r > sp.max_r) {
                continue;
            }
            got.push((*j, mix(r, hits, sp, self.pos)));
        }
        let weights = level_weights(params, got.iter().map(|(j, g)| (*j, g.entropy)));
        let alpha = if weights.is_empty() { 0.0 } else { sp.alpha };
        let out: Vec<(f64, Retrieved)> = weights.into_iter().zip(got.into_iter().map(|x| x.1)).collect();
        Prediction {
            strategy,
            energy: self.energy,
            confidence: (-self.energy).exp(),
            alpha,
            levels: out,
            exact: self.exact,
            discounts: params.discounts_for(levels.levels().len()),
        }
    }
}

/// The weights of the retrieving levels `(index, entropy)` in the
/// retrieval mixture: `pi_j exp(-H_j / beta)`, normalized. Empty when no
/// level retrieved (or every weight is 0): retrieval then has no share.
pub(crate) fn level_weights(params: &Params, levels: impl Iterator<Item = (usize, f64)>) -> Vec<f64> {
    let raw: Vec<f64> = levels
        .map(|(j, h)| params.pi.get(j).copied().unwrap_or(1.0) * (-h / params.beta).exp())
        .collect();
    let z: f64 = raw.iter().sum();
    if z > 0.0 {
        raw.into_iter().map(|w| w / z).collect()
    } else {
        Vec::new()
    }
}

/// Order 0 read once for many steps over one snapshot: every learned
/// token's `P_0`, most probable first, and the mass left to strings never
/// learned; with the powers of the last temperature sampled at.
pub(crate) struct Order0 {
    sorted: Vec<(TokenId, f64)>,
    p0: FxHashMap<TokenId, f64>,
    #[cfg_attr(not(test), allow(dead_code))]
    unknown: f64,
    powers: Mutex<Option<Arc<Powers>>>,
}

impl Order0 {
    /// From `base`, at discount `d`.
    pub fn new(base: &Base, d: Discount) -> Order0 {
        let (sorted, unknown) = base.all(d);
        Order0 {
            p0: sorted.iter().copied().collect(),
            sorted,
            unknown,
            powers: Mutex::new(None),
        }
    }

    /// `P_0(t)` (0 for a token never learned).
    pub fn p0(&self, t: TokenId) -> f64 {
        self.p0.get(&t).copied().unwrap_or(0.0)
    }

    /// The [`Powers`] of order 0 at `temperature` (> 0): taken once and
    /// kept until another temperature is asked for, so that steps (and
    /// calls) sampling at one temperature share them.
    pub fn powers(&self, temperature: f64) -> Arc<Powers> {
        let mut cached = self.powers.lock();
        match &*cached {
            Some(w) if w.temperature == temperature => w.clone(),
            _ => {
                let w = Arc::new(Powers::new(&self.sorted, temperature));
                *cached = Some(w.clone());
                w
            }
        }
    }
}

impl Prediction {
    /// What retrieval gives `w` (before `alpha`).
    pub fn retrieval(&self, w: TokenId) -> f64 {
        self.levels.iter().map(|(v, got)| v * got.prob(w)).sum()
    }

    /// The probability of `w`, whose order-0 probability is `p0`.
    pub fn prob(&self, p0: f64, w: TokenId) -> f64 {
        self.mixed(p0, w, self.retrieval(w))
    }

    /// The probability of `w` (order-0 probability `p0`) to which
    /// retrieval gives `retrieved`.
    fn mixed(&self, p0: f64, w: TokenId, retrieved: f64) -> f64 {
        (1.0 - self.alpha) * self.exact.prob(p0, w, &self.discounts) + self.alpha * retrieved
    }

    /// The step's distribution over learned tokens as a [`Split`]: the
    /// tokens some level counted or some neighbour followed (and `also`),
    /// each with its probability, and every other learned token sharing
    /// one factor of its `P_0` (the back-off mass) — a merge of few with
    /// `order0`'s order, not a sort of the vocabulary.
    pub(crate) fn split<'a>(&self, order0: &'a Order0, also: &[TokenId], powers: Option<&'a Powers>) -> Split<'a> {
        // What retrieval gives each token it reached, summed level by level
        // in the order `retrieval` sums them (so the same values), once:
        // asking each level's list per token costs a scan per token.
        let mut retrieved: FxHashMap<TokenId, f64> = FxHashMap::default();
        for (v, got) in &self.levels {
            for &(t, p) in &got.dist {
                *retrieved.entry(t).or_insert(0.0) += v * p;
            }
        }
        let r = |t: &TokenId| retrieved.get(t).copied().unwrap_or(0.0);
        let counted = self.exact.counted_probs(&self.discounts, |t| order0.p0(t));
        let is_counted = |t: &TokenId| counted.binary_search_by_key(t, |x| x.0).is_ok();
        let mut others: Vec<TokenId> = retrieved
            .keys()
            .copied()
            .chain(also.iter().copied().filter(|t| order0.p0.contains_key(t)))
            .filter(|t| !is_counted(t))
            .collect();
        others.sort_unstable();
        others.dedup();
        let a = self.alpha;
        let mut head: Vec<(TokenId, f64, f64)> = counted
            .iter()
            .map(|&(t, p, p0)| (t, (1.0 - a) * p + a * r(&t), p0))
            .chain(others.iter().map(|&t| {
                let p0 = order0.p0(t);
                (t, self.mixed(p0, t, r(&t)), p0)
            }))
            .collect();
        // Two runs already in id order: a stable sort merges them in one pass.
        head.sort_by_key(|x| x.0);
        Split {
            head,
            factor: self.tail(),
            tail: &order0.sorted,
            powers,
        }
    }

    /// The probability of a learned token per unit of its `P_0` when no
    /// level counted it and no neighbour followed it.
    fn tail(&self) -> f64 {
        (1.0 - self.alpha) * self.exact.backoff(&self.discounts)
    }

    /// Every learned token's probability, most probable first (ties by
    /// id), and the probability of a string never learned (what the
    /// normalization tests sum; generation samples from [`Prediction::split`]).
    #[cfg(test)]
    pub(crate) fn dist(&self, order0: &Order0) -> (Vec<(TokenId, f64)>, f64) {
        let s = self.split(order0, &[], None);
        (s.ranked().collect(), self.tail() * order0.unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::SplitMix;
    use crate::generate::testing::Corpus;
    use crate::text::tokenize;

    fn words(s: &str) -> Vec<&str> {
        tokenize(s).map(|t| t.text).collect()
    }

    #[test]
    fn the_mixture_follows_the_formula_and_sums_to_one_with_the_unknown_mass() {
        let mut c = Corpus::new(32, &[1, 2, 3], 2);
        let text = "the cat sat on the mat. the cat ran to the hat, and the dog sat on the cat.";
        let ids = c.learn(&words(text));
        c.learn(&words("a dog and a cat ran on."));
        let snap = c.store.snapshot().unwrap();
        let base = Base::read(&snap, &c.vocab).unwrap();
        let mut params = Params {
            pi: vec![1.0, 2.0, 3.0],
            beta: 0.7,
            ..Params::default()
        };
        for s in params.strategies.params.iter_mut() {
            s.alpha = 0.4;
        }
        let ds = params.discounts_for(3);
        let order0 = Order0::new(&base, ds[0]);
        let embs = c.embeddings(&words(text));
        let mut rng = SplitMix(17);
        for trial in 0..12 {
            // A random history: learned tokens, and (every third trial) one
            // never learned.
            let n = (rng.next() % 4) as usize;
            let mut hist: Vec<TokenId> = (0..n).map(|_| ids[(rng.next() % ids.len() as u64) as usize]).collect();
            let mut he: Vec<Vec<f32>> = hist
                .iter()
                .map(|t| embs[ids.iter().position(|x| x == t).unwrap()].clone())
                .collect();
            if trial % 3 == 0 {
                hist.push(TokenId(super::super::overlay::OVERLAY_IDS));
                he.push(c.embed.embed("zebra"));
            }
            let refs: Vec<&[f32]> = he.iter().map(|e| e.as_slice()).collect();
            let ev = c
                .levels
                .gather(
                    &snap,
                    None,
                    &params,
                    History {
                        tokens: &hist,
                        embeddings: &refs,
                        pos: hist.len() as u64,
                    },
                    false,
                )
                .unwrap();
            let p = ev.predict(&c.levels, &params);
            let (dist, unknown) = p.dist(&order0);
            let total: f64 = dist.iter().map(|x| x.1).sum::<f64>() + unknown;
            assert!((total - 1.0).abs() < 1e-9, "trial {trial}: {total}");
            assert!(unknown > 0.0 && dist.iter().all(|x| x.1 > 0.0));
            assert!(dist.windows(2).all(|w| w[0].1 >= w[1].1), "most probable first");
            // The level weights are pi exp(-H / beta), normalized.
            let raw: Vec<f64> = p
                .levels
                .iter()
                .map(|(_, got)| params.pi[got.r - 1] * (-got.entropy / 0.7).exp())
                .collect();
            let z: f64 = raw.iter().sum();
            for ((v, _), want) in p.levels.iter().zip(&raw) {
                assert!((v - want / z).abs() < 1e-12);
            }
            // Each token: (1 - alpha) KN + alpha retrieval, with alpha the strategy's.
            let kn = c.levels.smoothed(&snap, &c.vocab, &hist, &ds).unwrap();
            let alpha = if p.levels.is_empty() { 0.0 } else { 0.4 };
            assert_eq!(p.alpha, alpha);
            for &(t, q) in &kn.dist {
                let want = (1.0 - alpha) * q + alpha * p.retrieval(t);
                let got = dist.iter().find(|x| x.0 == t).unwrap().1;
                assert!((got - want).abs() < 1e-12, "{got} vs {want}");
            }
            assert!((unknown - (1.0 - alpha) * kn.unknown).abs() < 1e-15);
            assert!((p.confidence - (-p.energy).exp()).abs() < 1e-15);
        }
        // Without retrieval, the exact statistics alone.
        for s in params.strategies.params.iter_mut() {
            s.alpha = 0.0;
        }
        let hist = &ids[..5];
        let refs: Vec<&[f32]> = embs[..5].iter().map(|e| e.as_slice()).collect();
        let p = c
            .levels
            .gather(
                &snap,
                None,
                &params,
                History {
                    tokens: hist,
                    embeddings: &refs,
                    pos: 5,
                },
                false,
            )
            .unwrap()
            .predict(&c.levels, &params);
        let kn = c.levels.smoothed(&snap, &c.vocab, hist, &ds).unwrap();
        let (dist, _) = p.dist(&order0);
        assert_eq!(dist.len(), kn.dist.len());
        for &(t, q) in &kn.dist {
            assert!((dist.iter().find(|x| x.0 == t).unwrap().1 - q).abs() < 1e-15);
        }
        assert!(Params {
            beta: 0.0,
            ..Params::default()
        }
        .checked(3)
        .is_err());
        assert!(Params {
            pi: vec![1.0],
            ..Params::default()
        }
        .checked(3)
        .is_err());
    }
}
