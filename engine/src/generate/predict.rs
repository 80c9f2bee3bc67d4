//! One prediction step: the exact statistics (interpolated Kneser-Ney,
//! [`Levels::smoothed`]) and what retrieval adds. Each level retrieves the
//! stored contexts nearest to the history's ([`Levels::retrieve`]); the
//! levels' distributions are mixed with weights proportional to
//! `pi_r exp(-H_r / beta)` (a sure level — low entropy — counts more), and
//! the mixture is interpolated with the exact statistics:
//!
//! `P(w) = (1 - alpha) P_KN(w) + alpha P_retrieval(w)`,
//!
//! so retrieval adds to the exact counts instead of replacing them, and
//! every learned token keeps a positive probability.

use std::collections::HashMap;

use super::levels::Levels;
use super::retrieve::Retrieved;
use super::smooth::{Order0, Smoothing};
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::vocab::{TokenId, Vocabulary};

/// How retrieval is mixed in.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixing {
    /// Prior weight per level (`pi_r`, in the levels' order); empty: equal.
    pub pi: Vec<f64>,
    /// Entropy temperature `beta` (> 0).
    pub beta: f64,
    /// Weight of retrieval against the exact statistics, in [0, 1].
    pub alpha: f64,
    /// Neighbours per level.
    pub k: usize,
    /// Softmax temperature of the neighbours' similarities.
    pub tau: f32,
    /// Graph search candidate list.
    pub ef: usize,
}

impl Default for Mixing {
    fn default() -> Self {
        Mixing {
            pi: Vec::new(),
            beta: 1.0,
            alpha: 0.3,
            k: 8,
            tau: 0.1,
            ef: 64,
        }
    }
}

/// A prediction, with what produced it.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// Next-token probabilities, most probable first (ties by id).
    pub dist: Vec<(TokenId, f64)>,
    /// Per level that could retrieve (the history is long enough): its
    /// context length, its weight in the retrieval mixture, and what it
    /// retrieved.
    pub levels: Vec<(usize, f64, Retrieved)>,
}

impl Levels {
    /// Predict the token after `history` (token ids, with the embedding of
    /// each for the context keys).
    pub fn predict(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        history: &[TokenId],
        embeddings: &[&[f32]],
        smoothing: Smoothing,
        mixing: &Mixing,
    ) -> Result<Prediction> {
        let base = Order0::read(snap, vocab, smoothing)?;
        self.predict_from(snap, &base, history, embeddings, smoothing, mixing)
    }

    /// [`Levels::predict`] on an order-0 distribution already read.
    pub(crate) fn predict_from(
        &self,
        snap: &Snapshot,
        base: &Order0,
        history: &[TokenId],
        embeddings: &[&[f32]],
        smoothing: Smoothing,
        mixing: &Mixing,
    ) -> Result<Prediction> {
        let m = mixing;
        let pis_ok =
            m.pi.is_empty() || (m.pi.len() == self.levels().len() && m.pi.iter().all(|p| p.is_finite() && *p >= 0.0));
        if !(m.beta.is_finite() && m.beta > 0.0 && (0.0..=1.0).contains(&m.alpha) && pis_ok) {
            return Err(Error::InvalidArgument(format!(
                "mixing: beta > 0, 0 <= alpha <= 1 and one non-negative pi per level are required, not {m:?}"
            )));
        }
        if history.len() != embeddings.len() {
            return Err(Error::InvalidArgument("one embedding per history token".into()));
        }
        let exact = self.smoothed_from(snap, base, history, smoothing)?;
        let mut levels = Vec::new();
        for (j, l) in self.levels().iter().enumerate() {
            if history.len() < l.r {
                continue;
            }
            let key = self.keyer().key(&embeddings[embeddings.len() - l.r..]);
            let r = self.retrieve(snap, l, &key, m.k, m.tau, m.ef)?;
            if r.dist.is_empty() {
                continue;
            }
            let pi = m.pi.get(j).copied().unwrap_or(1.0);
            levels.push((l.r, pi * (-r.entropy / m.beta).exp(), r));
        }
        let z: f64 = levels.iter().map(|x| x.1).sum();
        let alpha = if z > 0.0 { m.alpha } else { 0.0 };
        let mut p: HashMap<TokenId, f64> = exact.into_iter().map(|(t, q)| (t, (1.0 - alpha) * q)).collect();
        for (_, w, r) in levels.iter_mut() {
            *w /= if z > 0.0 { z } else { 1.0 };
            for &(t, q) in &r.dist {
                *p.entry(t).or_insert(0.0) += alpha * *w * q;
            }
        }
        let mut dist: Vec<(TokenId, f64)> = p.into_iter().collect();
        dist.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Prediction { dist, levels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;

    #[test]
    fn retrieval_adds_to_the_exact_statistics_by_the_formula() {
        let mut c = Corpus::new(32, &[1, 2], 2);
        let words: Vec<&str> = "the cat sat on the mat and the cat ran to the hat".split(' ').collect();
        let ids = c.learn(&words);
        let embs = c.embeddings(&words);
        let refs: Vec<&[f32]> = embs.iter().map(|e| e.as_slice()).collect();
        let (vocab, levels) = (&c.vocab, &c.levels);
        let snap = c.store.snapshot().unwrap();
        let (hist, hemb) = (&ids[..5], &refs[..5]); // "the cat sat on the"
        let s = Smoothing::default();
        let exact = levels.smoothed(&snap, vocab, hist, s).unwrap();
        let get = |d: &[(TokenId, f64)], t: TokenId| d.iter().find(|x| x.0 == t).map_or(0.0, |x| x.1);

        // alpha 0: the exact statistics, unchanged.
        let none = Mixing {
            alpha: 0.0,
            ..Mixing::default()
        };
        let p0 = levels.predict(&snap, vocab, hist, hemb, s, &none).unwrap();
        for &(t, q) in &exact {
            assert!((get(&p0.dist, t) - q).abs() < 1e-12);
        }
        // alpha 0.4: each token's probability is the formula's.
        let mix = Mixing {
            alpha: 0.4,
            pi: vec![1.0, 3.0],
            beta: 0.5,
            ..Mixing::default()
        };
        let p = levels.predict(&snap, vocab, hist, hemb, s, &mix).unwrap();
        let raw: Vec<f64> = p
            .levels
            .iter()
            .map(|(r, _, got)| [1.0, 3.0][*r - 1] * (-got.entropy / 0.5).exp())
            .collect();
        let z: f64 = raw.iter().sum();
        for ((_, w, _), want) in p.levels.iter().zip(&raw) {
            assert!((w - want / z).abs() < 1e-12);
        }
        for &(t, q) in &p.dist {
            let retrieval: f64 = p.levels.iter().map(|(_, w, got)| w * get(&got.dist, t)).sum();
            assert!((q - (0.6 * get(&exact, t) + 0.4 * retrieval)).abs() < 1e-12);
            assert!(q > 0.0);
        }
        assert!((p.dist.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
        // After "on the": "mat" (seen) is the most probable.
        let mat = ids[5];
        assert_eq!(p.dist[0].0, mat, "{:?}", &p.dist[..3]);
        assert!(levels
            .predict(
                &snap,
                vocab,
                hist,
                hemb,
                s,
                &Mixing {
                    beta: 0.0,
                    ..Mixing::default()
                }
            )
            .is_err());
    }
}
