//! One level's prediction by retrieval: the stored contexts nearest to the
//! current one (the exact context, if stored, is among them with
//! similarity 1), each weighted by `softmax(sim / tau)`, and the average of
//! their normalized next-token distributions. Its entropy tells how sure
//! the level is (what mixing levels weighs by, l2s-transformer §11).
//!
//! Searching ([`Levels::search_level`]) and mixing ([`mix`]) are apart, so
//! that one search serves every strategy whose `k` and `ef` it covers.

use std::collections::BTreeMap;

use super::levels::{Levels, Pattern};
use super::overlay::Overlay;
use super::strategy::{StrategyParams, POSITION_SCALE};
use crate::error::{Error, Result};
use crate::index::SearchParams;
use crate::storage::Snapshot;
use crate::text::vocab::TokenId;

/// A stored context found by a search: its pattern (next-token counts with
/// what an overlay adds, the [`MAX_FOLLOWERS`] most frequent; continuation
/// counts not read) and its cosine similarity to the query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The stored context.
    pub pattern: Pattern,
    /// Cosine similarity of its key to the query's.
    pub sim: f32,
}

/// A retrieved neighbour and its softmax weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    /// The stored context.
    pub pattern: Pattern,
    /// Cosine similarity of its key to the query's.
    pub sim: f32,
    /// `softmax(score / tau)` over the neighbours, the score being the
    /// similarity plus the strategy's position term.
    pub weight: f64,
}

/// What one level predicts.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieved {
    /// Its context length.
    pub r: usize,
    /// The neighbours, best first.
    pub neighbours: Vec<Neighbour>,
    /// Next-token probabilities (summing to 1; empty if nothing was found),
    /// most probable first (ties by token id).
    pub dist: Vec<(TokenId, f64)>,
    /// Entropy of `dist`, in nats.
    pub entropy: f64,
}

impl Retrieved {
    /// The probability this level gives `w`.
    pub fn prob(&self, w: TokenId) -> f64 {
        self.dist.iter().find(|x| x.0 == w).map_or(0.0, |x| x.1)
    }
}

/// Followers of a neighbour that retrieval weighs: its most frequent ones.
/// A short, common context (a space, "the") is followed by thousands of
/// tokens; their tail is the exact statistics' business, and bounding it
/// bounds the cost of a step.
pub const MAX_FOLLOWERS: usize = 64;

/// The cosine of two keys, summed in f64 (exactly the same for the same
/// keys, wherever they are stored).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 {
        (ab / (aa.sqrt() * bb.sqrt())) as f32
    } else {
        0.0
    }
}

/// Neighbours searched beyond `k`, so that ties at the k-th are broken by
/// content, not by layout.
const TIE_SLACK: usize = 4;

/// Keep the `n` largest counts of `next` (ties to the lower id), in id order.
fn keep_most_frequent(next: &mut Vec<(TokenId, u32)>, n: usize) {
    if next.len() <= n {
        return;
    }
    next.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    next.truncate(n);
    next.sort_by_key(|x| x.0);
}

impl Levels {
    /// The `k` stored contexts of level `j` nearest to the context keyed
    /// `key` (graph search with candidate list `ef`), with what `overlay`
    /// adds to their counts; contexts left with no count are dropped.
    pub(crate) fn search_level(
        &self,
        snap: &Snapshot,
        overlay: Option<&Overlay>,
        j: usize,
        key: &[f32],
        k: usize,
        ef: usize,
    ) -> Result<Vec<Hit>> {
        if k == 0 {
            return Err(Error::InvalidArgument("retrieve: k must be at least 1".into()));
        }
        let level = &self.levels()[j];
        let t = snap.table(level.table)?;
        // A few more than k, ranked by similarity and then by context hash:
        // contexts with equal keys (tokens the embedder cannot tell apart)
        // tie, and which of them make the top k must not depend on how the
        // rows happen to lie in segments and graphs (a rebuilt copy must
        // score the same).
        let wanted = k + TIE_SLACK;
        let found = t.search(
            key,
            wanted,
            &SearchParams {
                ef: ef.max(wanted),
                // A level learned in bulk or over time lies in several
                // segments: walking each at the full ef would make a step
                // cost as many graph searches.
                ef_by_size: true,
                // The similarities are computed again below; the int8
                // ranking only has to bring the top `wanted` (a softmax's
                // neighbours, not a recall@k), and each key read is a
                // cache miss.
                rescore: 1,
                rescore_walk: false,
                ..SearchParams::default()
            },
        )?;
        // Ranked before any pattern is read: each read is a few cache
        // misses, and only the best `k` with a count left are kept.
        let mut ranked: Vec<(f32, u64, &crate::index::HitRef<'_>)> = found
            .iter()
            .map(|h| {
                // The similarity from the stored key itself: a graph walk's
                // distances may come from int8 codes, and a score must not
                // depend on which segment or code a row is in.
                (cosine(key, h.row.key(level.key_col())), level.hash_of(&h.row), h)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut hits = Vec::with_capacity(k);
        for (sim, _, h) in ranked {
            if hits.len() == k {
                break;
            }
            let mut pattern = self.followers_of(level, &h.row)?;
            if let Some(e) = overlay.and_then(|o| o.entry(j, pattern.hash)) {
                pattern.next = e.next();
            }
            keep_most_frequent(&mut pattern.next, MAX_FOLLOWERS);
            if !pattern.next.is_empty() {
                hits.push(Hit { pattern, sim });
            }
        }
        Ok(hits)
    }
}

/// The mixture of level `r`'s `hits` under strategy `s`, for a query at
/// token position `pos`: scores are similarities plus
/// `position_weight * exp(-|pos - p| / POSITION_SCALE)`, the best `k` kept,
/// weighted by `softmax(score / tau)`.
pub fn mix(r: usize, hits: &[Hit], s: &StrategyParams, pos: u64) -> Retrieved {
    let score = |h: &Hit| {
        let apart = (pos as f64 - h.pattern.pos as f64).abs();
        f64::from(h.sim) + s.position_weight * (-apart / POSITION_SCALE).exp()
    };
    let mut scored: Vec<(f64, &Hit)> = hits.iter().map(|h| (score(h), h)).collect();
    if s.position_weight > 0.0 {
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.pattern.id.cmp(&b.1.pattern.id)));
    }
    scored.truncate(s.k);
    let top = scored.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scored.iter().map(|x| ((x.0 - top) / s.tau).exp()).collect();
    let z: f64 = exps.iter().sum();
    // Ordered, so that sums (and so seeded draws) are the same on every run.
    let mut mass: BTreeMap<TokenId, f64> = BTreeMap::new();
    let mut neighbours = Vec::with_capacity(scored.len());
    for ((_, h), e) in scored.iter().zip(&exps) {
        let weight = e / z;
        let total: f64 = h.pattern.next.iter().map(|&(_, c)| f64::from(c)).sum();
        for &(tok, c) in &h.pattern.next {
            *mass.entry(tok).or_default() += weight * f64::from(c) / total;
        }
        neighbours.push(Neighbour {
            pattern: h.pattern.clone(),
            sim: h.sim,
            weight,
        });
    }
    let sum: f64 = mass.values().sum();
    let mut dist: Vec<(TokenId, f64)> = mass.into_iter().map(|(t, m)| (t, m / sum)).collect();
    dist.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let entropy = -dist
        .iter()
        .map(|&(_, p)| if p > 0.0 { p * p.ln() } else { 0.0 })
        .sum::<f64>();
    Retrieved {
        r,
        neighbours,
        dist,
        entropy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;
    use crate::generate::ContextKeyer;

    fn params(k: usize, tau: f64) -> StrategyParams {
        StrategyParams {
            k,
            tau,
            ef: 64,
            position_weight: 0.0,
            alpha: 0.5,
            max_r: 0,
        }
    }

    #[test]
    fn the_exact_context_leads_and_similar_ones_fill_in() {
        let mut c = Corpus::new(64, &[2], 5);
        let words = ["a", "b", "c", "a", "b", "d", "x", "y", "z"];
        let ids = c.learn(&words);
        let embs = c.embeddings(&words);
        let (embed, levels) = (&c.embed, &c.levels);
        let snap = c.store.snapshot().unwrap();
        let keyer = ContextKeyer::new(64, 8, 0.8, 5).unwrap();
        let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[5]);

        // The stored context (a, b): found with similarity 1, and with a
        // cold temperature it alone decides: c and d, half each.
        let key = keyer.key(&[&embs[0], &embs[1]]);
        let hits = levels.search_level(&snap, None, 0, &key, 3, 64).unwrap();
        let r = mix(2, &hits, &params(3, 0.01), 0);
        assert!((r.neighbours[0].sim - 1.0).abs() < 1e-4);
        assert_eq!(
            levels.exact(&snap, &[a, b]).unwrap().unwrap().id,
            r.neighbours[0].pattern.id
        );
        assert!((r.neighbours[0].weight - 1.0).abs() < 1e-6);
        assert!(
            (r.prob(c) - 0.5).abs() < 1e-6 && (r.prob(d) - 0.5).abs() < 1e-6,
            "{:?}",
            r.dist
        );
        assert!((r.entropy - 2f64.ln()).abs() < 1e-4);

        // An unseen context (z, b) shares b at offset 1 with (a, b): that is
        // the nearest stored context, and it leads the mixture.
        let key = keyer.key(&[&embed.embed("z"), &embs[1]]);
        let hits = levels.search_level(&snap, None, 0, &key, 4, 64).unwrap();
        let r = mix(2, &hits, &params(4, 0.05), 0);
        assert_eq!(
            r.neighbours[0].pattern.id,
            levels.exact(&snap, &[a, b]).unwrap().unwrap().id
        );
        assert!((r.dist.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(r.dist[0].0 == c || r.dist[0].0 == d, "{:?}", r.dist);
        let w: f64 = r.neighbours.iter().map(|n| n.weight).sum();
        assert!((w - 1.0).abs() < 1e-9);
        // The weights are the softmax of the similarities, by hand.
        let z: f64 = r.neighbours.iter().map(|n| (f64::from(n.sim) / 0.05).exp()).sum();
        for n in &r.neighbours {
            assert!((n.weight - (f64::from(n.sim) / 0.05).exp() / z).abs() < 1e-9);
        }
        // k keeps a prefix.
        assert_eq!(mix(2, &hits, &params(1, 0.05), 0).neighbours.len(), 1);
        assert!(levels.search_level(&snap, None, 0, &key, 0, 64).is_err());
    }

    #[test]
    fn only_the_most_frequent_followers_are_kept() {
        let mut v: Vec<(TokenId, u32)> = (0..100).map(|i| (TokenId(i), (i % 7) as u32 + 1)).collect();
        keep_most_frequent(&mut v, 20);
        assert_eq!(v.len(), 20);
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0), "id order");
        // Counts 7 (14 of them: 6, 13, ..., 97) and the 6 lowest ids of count 6.
        assert_eq!(v.iter().filter(|x| x.1 == 7).count(), 14);
        let sixes: Vec<u64> = v.iter().filter(|x| x.1 == 6).map(|x| x.0 .0).collect();
        assert_eq!(sixes, vec![5, 12, 19, 26, 33, 40]);
        let mut short = vec![(TokenId(3), 1)];
        keep_most_frequent(&mut short, 20);
        assert_eq!(short, vec![(TokenId(3), 1)]);
    }

    #[test]
    fn position_weight_reorders_by_position_agreement() {
        let mk = |id, pos, sim| Hit {
            pattern: Pattern {
                id,
                hash: id,
                doc: 0,
                pos,
                next: vec![(TokenId(id), 1)],
                cont: vec![],
            },
            sim,
        };
        let hits = [mk(1, 1000, 0.80), mk(2, 10, 0.78)];
        let mut s = params(1, 0.1);
        assert_eq!(mix(1, &hits, &s, 12).neighbours[0].pattern.id, 1);
        s.position_weight = 0.1;
        // 0.78 + 0.1 e^(-2/256) beats 0.80 + 0.1 e^(-988/256).
        assert_eq!(mix(1, &hits, &s, 12).neighbours[0].pattern.id, 2);
    }
}
