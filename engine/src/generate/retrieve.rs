//! One level's prediction by retrieval: the stored contexts nearest to the
//! current one (the exact context, if stored, is among them with
//! similarity 1), each weighted by `softmax(sim / tau)`, and the average of
//! their normalized next-token distributions. Its entropy tells how sure
//! the level is (what mixing levels weighs by, l2s-transformer §11).

use std::collections::BTreeMap;

use super::levels::{Level, Levels, Pattern};
use crate::error::{Error, Result};
use crate::index::SearchParams;
use crate::storage::Snapshot;
use crate::text::vocab::TokenId;

/// A retrieved neighbour: the stored pattern, its cosine similarity to the
/// current context's key, and its softmax weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    /// The stored context.
    pub pattern: Pattern,
    /// Cosine similarity of its key to the query's.
    pub sim: f32,
    /// `softmax(sim / tau)` over the neighbours.
    pub weight: f64,
}

/// What one level predicts.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieved {
    /// The neighbours, nearest first.
    pub neighbours: Vec<Neighbour>,
    /// Next-token probabilities (summing to 1; empty if nothing was found),
    /// most probable first (ties by token id).
    pub dist: Vec<(TokenId, f64)>,
    /// Entropy of `dist`, in nats.
    pub entropy: f64,
}

impl Levels {
    /// The `k` stored contexts of `level` nearest to the context keyed
    /// `key`, and their mixed next-token distribution at temperature `tau`
    /// (> 0; smaller trusts the nearest more). `ef` is the graph search's
    /// candidate list.
    pub fn retrieve(
        &self,
        snap: &Snapshot,
        level: &Level,
        key: &[f32],
        k: usize,
        tau: f32,
        ef: usize,
    ) -> Result<Retrieved> {
        if !(tau.is_finite() && tau > 0.0) || k == 0 {
            return Err(Error::InvalidArgument(format!(
                "retrieve: tau {tau} must be positive and k {k} at least 1"
            )));
        }
        let t = snap.table(level.table)?;
        let hits = t.search(
            key,
            k,
            &SearchParams {
                ef: ef.max(k),
                ..SearchParams::default()
            },
        )?;
        let mut neighbours = Vec::with_capacity(hits.len());
        for h in &hits {
            let pattern = self.pattern_of(level, &h.row)?;
            // Cosine distance is 1 - cosine.
            neighbours.push(Neighbour {
                pattern,
                sim: 1.0 - h.distance,
                weight: 0.0,
            });
        }
        let top = neighbours
            .iter()
            .map(|n| f64::from(n.sim))
            .fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = neighbours
            .iter()
            .map(|n| ((f64::from(n.sim) - top) / f64::from(tau)).exp())
            .collect();
        let z: f64 = exps.iter().sum();
        // Ordered, so that sums (and so seeded draws) are the same on every run.
        let mut mass: BTreeMap<TokenId, f64> = BTreeMap::new();
        for (n, e) in neighbours.iter_mut().zip(&exps) {
            n.weight = e / z;
            let total: f64 = n.pattern.next.iter().map(|&(_, c)| f64::from(c)).sum();
            if total > 0.0 {
                for &(tok, c) in &n.pattern.next {
                    *mass.entry(tok).or_default() += n.weight * f64::from(c) / total;
                }
            }
        }
        let sum: f64 = mass.values().sum();
        let mut dist: Vec<(TokenId, f64)> = mass.into_iter().map(|(t, m)| (t, m / sum)).collect();
        dist.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let entropy = -dist
            .iter()
            .map(|&(_, p)| if p > 0.0 { p * p.ln() } else { 0.0 })
            .sum::<f64>();
        Ok(Retrieved {
            neighbours,
            dist,
            entropy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;
    use crate::generate::ContextKeyer;

    #[test]
    fn the_exact_context_leads_and_similar_ones_fill_in() {
        let mut c = Corpus::new(64, &[2], 5);
        let words = ["a", "b", "c", "a", "b", "d", "x", "y", "z"];
        let ids = c.learn(&words);
        let embs = c.embeddings(&words);
        let (embed, levels) = (&c.embed, &c.levels);
        let snap = c.store.snapshot().unwrap();
        let level = &levels.levels()[0];
        let keyer = ContextKeyer::new(64, 8, 0.8, 5).unwrap();
        let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[5]);

        // The stored context (a, b): found with similarity 1, and with a
        // cold temperature it alone decides: c and d, half each.
        let key = keyer.key(&[&embs[0], &embs[1]]);
        let r = levels.retrieve(&snap, level, &key, 3, 0.01, 64).unwrap();
        assert!((r.neighbours[0].sim - 1.0).abs() < 1e-4);
        assert_eq!(
            levels.exact(&snap, &[a, b]).unwrap().unwrap().id,
            r.neighbours[0].pattern.id
        );
        assert!((r.neighbours[0].weight - 1.0).abs() < 1e-6);
        let p = |t: TokenId| r.dist.iter().find(|x| x.0 == t).map_or(0.0, |x| x.1);
        assert!((p(c) - 0.5).abs() < 1e-6 && (p(d) - 0.5).abs() < 1e-6, "{:?}", r.dist);
        assert!((r.entropy - 2f64.ln()).abs() < 1e-4);

        // An unseen context (z, b) shares b at offset 1 with (a, b): that is
        // the nearest stored context, and it leads the mixture.
        let key = keyer.key(&[&embed.embed("z"), &embs[1]]);
        let r = levels.retrieve(&snap, level, &key, 4, 0.05, 64).unwrap();
        assert_eq!(
            r.neighbours[0].pattern.id,
            levels.exact(&snap, &[a, b]).unwrap().unwrap().id
        );
        assert!((r.dist.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(r.dist[0].0 == c || r.dist[0].0 == d, "{:?}", r.dist);
        let w: f64 = r.neighbours.iter().map(|n| n.weight).sum();
        assert!((w - 1.0).abs() < 1e-9);
        assert!(levels.retrieve(&snap, level, &key, 0, 1.0, 64).is_err());
        assert!(levels.retrieve(&snap, level, &key, 3, 0.0, 64).is_err());
    }
}
