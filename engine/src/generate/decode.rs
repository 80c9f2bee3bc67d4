//! Decoding: choosing the next token from a predicted distribution —
//! greedy, or sampled at a temperature within the top k and the top-p
//! nucleus, with a repetition penalty — reproducibly from a seed (the same
//! seed, store and prompt give the same text).

use super::rng::SplitMix;
use crate::error::{Error, Result};
use crate::text::vocab::TokenId;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// 0 is greedy (the most probable token, ties to the lowest id); above
    /// 0, probabilities are raised to `1 / temperature` (below 1 sharpens,
    /// above flattens).
    pub temperature: f64,
    /// Keep only the `top_k` most probable tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most probable tokens whose probability
    /// reaches `top_p` (1: all).
    pub top_p: f64,
    /// Divide the probability of each recently generated token by this
    /// (1: no penalty).
    pub repetition_penalty: f64,
    /// The seed of the draws.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

/// Draws tokens under a [`Sampling`].
///
/// ```
/// use engram::generate::decode::{Sampler, Sampling};
/// use engram::text::TokenId;
/// let dist = [(TokenId(1), 0.7), (TokenId(2), 0.3)];
/// let mut greedy = Sampler::new(Sampling::default()).unwrap();
/// assert_eq!(greedy.pick(&dist, &[]), Some(TokenId(1)));
/// let hot = Sampling { temperature: 1.0, seed: 9, ..Sampling::default() };
/// let (mut a, mut b) = (Sampler::new(hot.clone()).unwrap(), Sampler::new(hot).unwrap());
/// let draws = |s: &mut Sampler| (0..20).map(|_| s.pick(&dist, &[]).unwrap()).collect::<Vec<_>>();
/// assert_eq!(draws(&mut a), draws(&mut b), "same seed, same draws");
/// ```
pub struct Sampler {
    params: Sampling,
    rng: SplitMix,
}

impl Sampler {
    /// A sampler; parameters out of range are an error.
    pub fn new(params: Sampling) -> Result<Sampler> {
        let p = &params;
        let ok = p.temperature.is_finite()
            && p.temperature >= 0.0
            && p.top_p > 0.0
            && p.top_p <= 1.0
            && p.repetition_penalty.is_finite()
            && p.repetition_penalty >= 1.0;
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "sampling: temperature >= 0, 0 < top_p <= 1 and repetition_penalty >= 1 (finite) are required, not {p:?}"
            )));
        }
        Ok(Sampler {
            rng: SplitMix(params.seed),
            params,
        })
    }

    /// The probabilities the next draw would use: `dist` after the
    /// penalty, temperature, top-k and top-p, renormalized, most probable
    /// first (ties by id). Empty if `dist` has no positive probability.
    pub fn shape(&self, dist: &[(TokenId, f64)], recent: &[TokenId]) -> Vec<(TokenId, f64)> {
        let mut v: Vec<(TokenId, f64)> = dist
            .iter()
            .filter(|&&(_, q)| q.is_finite() && q > 0.0)
            .map(|&(t, q)| (t, self.penalized(t, q, recent)))
            .collect();
        v.sort_by(ranked_order);
        self.shaped(v)
    }

    /// `q`, divided by the penalty if `t` is recent.
    fn penalized(&self, t: TokenId, q: f64, recent: &[TokenId]) -> f64 {
        if recent.contains(&t) {
            q / self.params.repetition_penalty
        } else {
            q
        }
    }

    /// [`Sampler::shape`] of `v`, already penalized and ranked (its top-k
    /// may already be all it holds).
    fn shaped(&self, mut v: Vec<(TokenId, f64)>) -> Vec<(TokenId, f64)> {
        let p = &self.params;
        if v.is_empty() {
            return v;
        }
        if p.temperature == 0.0 {
            v.truncate(1);
            v[0].1 = 1.0;
            return v;
        }
        // Powers taken relative to the largest, so no underflow to all-zero.
        let top = v[0].1;
        for x in v.iter_mut() {
            x.1 = (x.1 / top).powf(1.0 / p.temperature);
        }
        if p.top_k > 0 {
            v.truncate(p.top_k);
        }
        let z: f64 = v.iter().map(|x| x.1).sum();
        v.iter_mut().for_each(|x| x.1 /= z);
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = v
                .iter()
                .position(|x| {
                    acc += x.1;
                    acc >= p.top_p
                })
                .map_or(v.len(), |i| i + 1);
            v.truncate(keep);
            let z: f64 = v.iter().map(|x| x.1).sum();
            v.iter_mut().for_each(|x| x.1 /= z);
        }
        v
    }

    /// Choose the next token from `dist` (recently generated tokens in
    /// `recent`); `None` if `dist` has no positive probability.
    pub fn pick(&mut self, dist: &[(TokenId, f64)], recent: &[TokenId]) -> Option<TokenId> {
        let v = self.shape(dist, recent);
        self.draw(&v)
    }

    /// A draw from `v` (shaped: summing to 1), the first if it is alone.
    fn draw(&mut self, v: &[(TokenId, f64)]) -> Option<TokenId> {
        let first = v.first()?.0;
        if v.len() == 1 {
            return Some(first);
        }
        let u = self.rng.unit();
        let mut acc = 0.0;
        for &(t, q) in v {
            acc += q;
            if u < acc {
                return Some(t);
            }
        }
        v.last().map(|x| x.0)
    }

    /// [`Sampler::pick`] from a [`Split`] distribution, every token in
    /// `recent` being in its head: the same law, but at a temperature with
    /// neither top-k nor top-p (and the split's [`Powers`] at that
    /// temperature) the tail is read only as far as the draw lands in it —
    /// not shaped token by token — and with top-k only its first `k`
    /// tokens are ranked.
    pub fn pick_split(&mut self, s: &Split<'_>, recent: &[TokenId]) -> Option<TokenId> {
        let p = self.params.clone();
        let powers = s
            .powers
            .filter(|w| w.temperature == p.temperature && w.of.len() == s.tail.len());
        if let (Some(w), true) = (powers, p.top_k == 0 && p.top_p >= 1.0 && p.temperature > 0.0) {
            // A draw needs no ranking: the head in id order is as good an
            // order (and as reproducible) as any.
            let head = s.weighed_head(|t, q| self.penalized(t, q, recent));
            if let Some(t) = self.draw_split(s, &head, w) {
                return t;
            }
        }
        let head = s.ranked_head(|t, q| self.penalized(t, q, recent));
        let take = if p.top_k > 0 { p.top_k } else { usize::MAX };
        let v: Vec<(TokenId, f64)> = merge(head, s.tail_probs()).take(take).collect();
        let v = self.shaped(v);
        self.draw(&v)
    }

    /// The draw of [`Sampler::pick_split`] through the tail's powers:
    /// `None` when they cannot represent it (a temperature so low that
    /// the tail's scale overflows), `Some(None)` when nothing has a
    /// positive probability.
    fn draw_split(&mut self, s: &Split<'_>, head: &[(TokenId, f64)], w: &Powers) -> Option<Option<TokenId>> {
        let inv = 1.0 / self.params.temperature;
        let w0 = s.tail.first().map_or(0.0, |x| x.1);
        let tail_top = s.tail_probs().next().map(|x| x.1);
        let top = head.iter().map(|x| x.1).chain(tail_top).fold(0.0, f64::max);
        if top <= 0.0 {
            return Some(None);
        }
        // A tail token's shaped weight is (factor w_i / top)^(1/T) =
        // scale (w_i / w_0)^(1/T): one product per token, its powers taken
        // once per tail and temperature.
        let scale = (s.factor * w0 / top).powf(inv);
        if !scale.is_finite() {
            return None;
        }
        let hq: Vec<f64> = head.iter().map(|x| (x.1 / top).powf(inv)).collect();
        let skipped: f64 = if w0 > 0.0 {
            s.head.iter().map(|x| (x.2 / w0).powf(inv)).sum()
        } else {
            0.0
        };
        let tail_mass = if s.factor > 0.0 {
            scale * (w.sum - skipped).max(0.0)
        } else {
            0.0
        };
        let mut x = self.rng.unit() * (hq.iter().sum::<f64>() + tail_mass);
        for (h, q) in head.iter().zip(&hq) {
            if x < *q {
                return Some(Some(h.0));
            }
            x -= q;
        }
        let mut last = head.last().map(|h| h.0);
        if tail_mass > 0.0 {
            for ((t, weight), pw) in s.tail.iter().zip(&w.of) {
                if *weight > 0.0 && !s.in_head(*t) {
                    last = Some(*t);
                    let q = scale * pw;
                    if x < q {
                        break;
                    }
                    x -= q;
                }
            }
        }
        // Rounding may leave the draw just past the end: the last token.
        Some(last)
    }
}

/// Most probable first, ties to the lower id.
fn ranked_order(a: &(TokenId, f64), b: &(TokenId, f64)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Two ranked lists merged into one ranked list.
fn merge<'a>(
    first: Vec<(TokenId, f64)>,
    rest: impl Iterator<Item = (TokenId, f64)> + 'a,
) -> impl Iterator<Item = (TokenId, f64)> + 'a {
    let mut first = first.into_iter().peekable();
    let mut rest = rest.peekable();
    std::iter::from_fn(move || {
        let take_first = match (first.peek(), rest.peek()) {
            (Some(a), Some(b)) => ranked_order(a, b).is_le(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_first {
            first.next()
        } else {
            rest.next()
        }
    })
}

/// A distribution over tokens in two parts, as a prediction step gives it
/// (`Prediction::split`): a few tokens with their own probabilities (those
/// some level counted or some neighbour followed), and a long tail whose
/// probabilities are one factor times a fixed weight per token (the back
/// off to order 0). Sampling from it reads the tail only as far as a draw
/// lands ([`Sampler::pick_split`]) instead of shaping every token of the
/// vocabulary each step.
///
/// ```
/// use engram::generate::decode::{Powers, Sampler, Sampling, Split};
/// use engram::text::TokenId;
/// let tail = [(TokenId(1), 0.5), (TokenId(2), 0.3), (TokenId(3), 0.2)];
/// // Token 2 is predicted on its own; 1 and 3 get 0.5 x their weight.
/// let s = Split { head: vec![(TokenId(2), 0.5, 0.3)], factor: 0.5, tail: &tail, powers: None };
/// let ranked: Vec<_> = s.ranked().collect();
/// assert_eq!(ranked, [(TokenId(2), 0.5), (TokenId(1), 0.25), (TokenId(3), 0.1)]);
/// let hot = Sampling { temperature: 0.7, seed: 1, ..Sampling::default() };
/// let w = Powers::new(&tail, 0.7);
/// let fast = Split { powers: Some(&w), ..s };
/// assert!(Sampler::new(hot).unwrap().pick_split(&fast, &[]).is_some());
/// ```
pub struct Split<'a> {
    /// `(token, probability, its weight in the tail or 0)`, by token id,
    /// each token once (the tail skips them); every recently generated
    /// token (what the penalty applies to) must be among them.
    pub head: Vec<(TokenId, f64, f64)>,
    /// Probability of a tail token per unit of weight.
    pub factor: f64,
    /// `(token, weight)`, the largest first (ties by id).
    pub tail: &'a [(TokenId, f64)],
    /// The tail's powers at the temperature of the draw, if taken.
    pub powers: Option<&'a Powers>,
}

impl Split<'_> {
    /// Whether `t` is in the head.
    fn in_head(&self, t: TokenId) -> bool {
        self.head_prob(t).is_some()
    }

    /// The probability of `t` if it is in the head.
    pub fn head_prob(&self, t: TokenId) -> Option<f64> {
        let i = self.head.binary_search_by_key(&t, |x| x.0).ok()?;
        Some(self.head[i].1)
    }

    /// The tail's tokens not in the head, with positive probability, most
    /// probable first.
    fn tail_probs(&self) -> impl Iterator<Item = (TokenId, f64)> + '_ {
        self.tail
            .iter()
            .filter(|x| !self.in_head(x.0))
            .map(|&(t, w)| (t, self.factor * w))
            .filter(|x| x.1.is_finite() && x.1 > 0.0)
    }

    /// Every token with a positive probability, most probable first (ties
    /// by id).
    pub fn ranked(&self) -> impl Iterator<Item = (TokenId, f64)> + '_ {
        merge(self.ranked_head(|_, q| q), self.tail_probs())
    }

    /// The head's tokens with a positive probability, each as `weigh`
    /// makes it, most probable first (ties by id).
    fn ranked_head(&self, weigh: impl Fn(TokenId, f64) -> f64) -> Vec<(TokenId, f64)> {
        let mut head = self.weighed_head(weigh);
        head.sort_by(ranked_order);
        head
    }

    /// The head's tokens with a positive probability, each as `weigh`
    /// makes it, by id.
    fn weighed_head(&self, weigh: impl Fn(TokenId, f64) -> f64) -> Vec<(TokenId, f64)> {
        self.head
            .iter()
            .filter(|x| x.1.is_finite() && x.1 > 0.0)
            .map(|&(t, q, _)| (t, weigh(t, q)))
            .collect()
    }
}

/// `(w_i / w_0)^(1 / temperature)` for each weight `w_i` of a tail (`w_0`
/// its largest), and their sum: what sampling from a [`Split`] at that
/// temperature reads of the tail, computed once per tail and temperature.
#[derive(Clone, Debug, PartialEq)]
pub struct Powers {
    /// The temperature they are taken at (> 0).
    pub temperature: f64,
    /// One per tail entry.
    pub of: Vec<f64>,
    /// Their sum.
    pub sum: f64,
}

impl Powers {
    /// The powers of `tail`'s weights at `temperature`.
    pub fn new(tail: &[(TokenId, f64)], temperature: f64) -> Powers {
        let w0 = tail.first().map_or(0.0, |x| x.1);
        let of: Vec<f64> = tail
            .iter()
            .map(|x| {
                if w0 > 0.0 && x.1 > 0.0 {
                    (x.1 / w0).powf(1.0 / temperature)
                } else {
                    0.0
                }
            })
            .collect();
        Powers {
            temperature,
            sum: of.iter().sum(),
            of,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist() -> Vec<(TokenId, f64)> {
        vec![
            (TokenId(3), 0.1),
            (TokenId(1), 0.5),
            (TokenId(2), 0.3),
            (TokenId(4), 0.1),
        ]
    }

    fn freq(s: &mut Sampler, recent: &[TokenId], n: usize) -> [f64; 5] {
        let mut f = [0.0; 5];
        for _ in 0..n {
            f[s.pick(&dist(), recent).unwrap().0 as usize] += 1.0 / n as f64;
        }
        f
    }

    #[test]
    fn each_rule_matches_its_formula() {
        let s = |p: Sampling| Sampler::new(p).unwrap();
        // Greedy; ties to the lowest id.
        assert_eq!(s(Sampling::default()).pick(&dist(), &[]), Some(TokenId(1)));
        let tie = [(TokenId(9), 0.5), (TokenId(8), 0.5)];
        assert_eq!(s(Sampling::default()).pick(&tie, &[]), Some(TokenId(8)));
        // A penalty of 6 takes token 1 from 0.5 to 0.5/6 < 0.1 + 0.3: greedy moves to 2.
        let pen = Sampling {
            repetition_penalty: 6.0,
            ..Sampling::default()
        };
        assert_eq!(s(pen).pick(&dist(), &[TokenId(1)]), Some(TokenId(2)));
        // Temperature 0.5 squares and renormalizes.
        let t = s(Sampling {
            temperature: 0.5,
            ..Sampling::default()
        })
        .shape(&dist(), &[]);
        let z = 0.25 + 0.09 + 0.01 + 0.01;
        assert!((t[0].1 - 0.25 / z).abs() < 1e-12 && (t[1].1 - 0.09 / z).abs() < 1e-12);
        // Top-k 2 and top-p 0.75 both keep {1, 2}, renormalized.
        for p in [
            Sampling {
                temperature: 1.0,
                top_k: 2,
                ..Sampling::default()
            },
            Sampling {
                temperature: 1.0,
                top_p: 0.75,
                ..Sampling::default()
            },
        ] {
            let v = s(p).shape(&dist(), &[]);
            assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), [TokenId(1), TokenId(2)]);
            assert!((v[0].1 - 0.625).abs() < 1e-12);
        }
        assert!(s(Sampling::default()).pick(&[(TokenId(1), 0.0)], &[]).is_none());
        for bad in [
            Sampling {
                temperature: -1.0,
                ..Sampling::default()
            },
            Sampling {
                top_p: 0.0,
                ..Sampling::default()
            },
            Sampling {
                repetition_penalty: 0.5,
                ..Sampling::default()
            },
        ] {
            assert!(Sampler::new(bad).is_err());
        }
    }

    #[test]
    fn draws_follow_the_shaped_distribution() {
        let n = 40_000;
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            seed: 3,
            ..Sampling::default()
        })
        .unwrap();
        let f = freq(&mut s, &[], n);
        for (t, p) in dist() {
            assert!(
                (f[t.0 as usize] - p).abs() < 0.01,
                "token {}: {} vs {p}",
                t.0,
                f[t.0 as usize]
            );
        }
        // Penalty 2 on token 1: 0.25 / (0.25 + 0.5) = 1/3.
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            repetition_penalty: 2.0,
            seed: 4,
            ..Sampling::default()
        })
        .unwrap();
        let f = freq(&mut s, &[TokenId(1)], n);
        assert!((f[1] - 1.0 / 3.0).abs() < 0.01, "{}", f[1]);
        // The nucleus is never left.
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 0.75,
            seed: 5,
            ..Sampling::default()
        })
        .unwrap();
        let f = freq(&mut s, &[], 5_000);
        assert_eq!(f[3] + f[4], 0.0);
    }

    /// A split over tokens 0..n: head tokens `head` (some outside the
    /// tail), the rest of the tail at `factor` times a weight.
    type Case = (Vec<(TokenId, f64)>, Vec<(TokenId, f64, f64)>, f64);

    fn split_case(seed: u64) -> Case {
        let mut rng = SplitMix(seed);
        let n = 3 + rng.next() % 8;
        let mut tail: Vec<(TokenId, f64)> = (0..n).map(|i| (TokenId(i), 0.05 + rng.unit())).collect();
        let z: f64 = tail.iter().map(|x| x.1).sum();
        tail.iter_mut().for_each(|x| x.1 /= z);
        tail.sort_by(ranked_order);
        let mut head = Vec::new();
        for &(t, w) in &tail {
            if rng.next().is_multiple_of(3) {
                head.push((t, 0.3 * rng.unit(), w));
            }
        }
        head.push((TokenId(100), 0.2 * rng.unit(), 0.0));
        head.sort_by_key(|x| x.0);
        (tail, head, 0.2 + 0.5 * rng.unit())
    }

    #[test]
    fn a_split_samples_as_its_merged_distribution_does() {
        for case in 0..24u64 {
            let (tail, head, factor) = split_case(case);
            let in_head: std::collections::HashSet<TokenId> = head.iter().map(|x| x.0).collect();
            let split = |powers| Split {
                head: head.clone(),
                factor,
                tail: &tail,
                powers,
            };
            // The merged list is every token once: the head's own
            // probabilities, the others factor x weight, ranked.
            let mut want: Vec<(TokenId, f64)> = head.iter().map(|x| (x.0, x.1)).collect();
            want.extend(
                tail.iter()
                    .filter(|x| !in_head.contains(&x.0))
                    .map(|x| (x.0, factor * x.1)),
            );
            want.sort_by(ranked_order);
            let got: Vec<(TokenId, f64)> = split(None).ranked().collect();
            assert_eq!(got, want, "case {case}");
            let recent: Vec<TokenId> = head.iter().step_by(2).map(|x| x.0).collect();
            // Greedy, top-k and top-p rank what they keep: the same draws as
            // from the merged list, seed for seed.
            for sampling in [
                Sampling::default(),
                Sampling {
                    repetition_penalty: 3.0,
                    ..Sampling::default()
                },
                Sampling {
                    temperature: 0.8,
                    top_k: 3,
                    repetition_penalty: 1.5,
                    seed: case,
                    ..Sampling::default()
                },
                Sampling {
                    temperature: 1.3,
                    top_p: 0.6,
                    seed: case,
                    ..Sampling::default()
                },
            ] {
                let (mut a, mut b) = (Sampler::new(sampling.clone()).unwrap(), Sampler::new(sampling).unwrap());
                for _ in 0..20 {
                    assert_eq!(
                        a.pick_split(&split(None), &recent),
                        b.pick(&want, &recent),
                        "case {case}"
                    );
                }
            }
        }
        // Temperature alone reads the tail through its powers: the draws
        // follow the shaped merged list.
        let (tail, head, factor) = split_case(99);
        let recent = [head[0].0];
        let sampling = Sampling {
            temperature: 0.7,
            repetition_penalty: 2.0,
            seed: 11,
            ..Sampling::default()
        };
        let w = Powers::new(&tail, 0.7);
        let s = Split {
            head: head.clone(),
            factor,
            tail: &tail,
            powers: Some(&w),
        };
        let merged: Vec<(TokenId, f64)> = s.ranked().collect();
        let shaped = Sampler::new(sampling.clone()).unwrap().shape(&merged, &recent);
        let mut sampler = Sampler::new(sampling).unwrap();
        let n = 60_000;
        let mut freq: std::collections::HashMap<TokenId, f64> = std::collections::HashMap::new();
        for _ in 0..n {
            *freq.entry(sampler.pick_split(&s, &recent).unwrap()).or_default() += 1.0 / n as f64;
        }
        for (t, q) in shaped {
            let f = freq.get(&t).copied().unwrap_or(0.0);
            assert!((f - q).abs() < 0.01, "token {t:?}: {f} vs {q}");
        }
        // A temperature whose tail scale overflows falls back to ranking.
        let cold = Sampling {
            temperature: 1e-3,
            seed: 2,
            ..Sampling::default()
        };
        let w = Powers::new(&tail, 1e-3);
        let s = Split { powers: Some(&w), ..s };
        let merged: Vec<(TokenId, f64)> = s.ranked().collect();
        let (mut a, mut b) = (Sampler::new(cold.clone()).unwrap(), Sampler::new(cold).unwrap());
        // So cold that it is greedy, whichever path it takes.
        for _ in 0..5 {
            assert_eq!(a.pick_split(&s, &[]), Some(merged[0].0));
            assert_eq!(b.pick(&merged, &[]), Some(merged[0].0));
        }
    }
}
