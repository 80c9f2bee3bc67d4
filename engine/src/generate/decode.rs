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
        let p = &self.params;
        let mut v: Vec<(TokenId, f64)> = dist
            .iter()
            .filter(|&&(_, q)| q.is_finite() && q > 0.0)
            .map(|&(t, q)| {
                (
                    t,
                    if recent.contains(&t) {
                        q / p.repetition_penalty
                    } else {
                        q
                    },
                )
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
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
        let first = v.first()?.0;
        if v.len() == 1 {
            return Some(first);
        }
        let u = self.rng.unit();
        let mut acc = 0.0;
        for &(t, q) in &v {
            acc += q;
            if u < acc {
                return Some(t);
            }
        }
        v.last().map(|x| x.0)
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
}
