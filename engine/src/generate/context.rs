//! Context keys. A pattern level stores, for every position of the learned
//! text, the `r` tokens before it under a key. Averaging their embeddings
//! would make "dog bites man" and "man bites dog" one key; instead each
//! offset (1 = the token just before) has its own fixed signed permutation
//! of the coordinates, and a weight that falls with distance:
//!
//! `key = normalize( sum over i of decay^(i-1) * S_i(e_(t-i)) )`
//!
//! where `S_i` permutes the coordinates and flips their signs by a pattern
//! drawn once from the keyer's seed. `S_i(e)` and `S_j(e)` are nearly
//! orthogonal for `i != j`, so a token counts only where it stands, and
//! the nearest token counts most. The key's norm is ε-guarded (a context of
//! zero embeddings keys to the zero vector).
//!
//! The permutations come from [`SplitMix`](super::rng::SplitMix): stored
//! keys must be reproducible by every later build.

use super::rng::SplitMix;
use crate::error::{Error, Result};
use crate::text::position::PREFIX_EPSILON;
use crate::text::vocab::TokenId;

/// One offset's signed permutation: coordinate `c` of the input goes to
/// `to[c]`, times `sign[c]`.
struct Signed {
    to: Vec<u32>,
    sign: Vec<f32>,
}

/// Order-aware keys of contexts of up to `max_r` tokens of `dim`-dimensional
/// embeddings (see the module documentation).
///
/// ```
/// use engram::generate::ContextKeyer;
/// let k = ContextKeyer::new(8, 3, 0.8, 7).unwrap();
/// let (dog, bites, man) = ([1.0f32, 0., 0., 0., 0., 0., 0., 0.], [0., 1., 0., 0., 0., 0., 0., 0.], [0., 0., 1., 0., 0., 0., 0., 0.]);
/// let a = k.key(&[&dog, &bites, &man]);
/// let b = k.key(&[&man, &bites, &dog]);
/// let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
/// assert!(cos < 0.9, "word order changes the key");
/// ```
pub struct ContextKeyer {
    dim: usize,
    decay: f32,
    seed: u64,
    offsets: Vec<Signed>,
}

impl ContextKeyer {
    /// Keys over `dim` dimensions for contexts of 1 to `max_r` tokens
    /// (1 to 64), the weight of offset `i` being `decay^(i-1)` (0 < decay
    /// <= 1), permutations drawn from `seed`.
    pub fn new(dim: usize, max_r: usize, decay: f32, seed: u64) -> Result<ContextKeyer> {
        if dim == 0 || dim > u32::MAX as usize || !(1..=64).contains(&max_r) || !(decay > 0.0 && decay <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "context keyer: dim {dim} must be positive, max_r {max_r} 1 to 64, decay {decay} in (0, 1]"
            )));
        }
        let mut rng = SplitMix(seed);
        let offsets = (0..max_r)
            .map(|_| {
                // Fisher-Yates over the coordinates, then a sign per coordinate.
                let mut to: Vec<u32> = (0..dim as u32).collect();
                for i in (1..dim).rev() {
                    let j = (rng.next() % (i as u64 + 1)) as usize;
                    to.swap(i, j);
                }
                let sign = (0..dim)
                    .map(|_| if rng.next() >> 63 == 0 { 1.0 } else { -1.0 })
                    .collect();
                Signed { to, sign }
            })
            .collect();
        Ok(ContextKeyer {
            dim,
            decay,
            seed,
            offsets,
        })
    }

    /// The longest context it keys.
    pub fn max_r(&self) -> usize {
        self.offsets.len()
    }

    /// What a store records of this keyer: every parameter that changes keys.
    pub fn id(&self) -> String {
        format!(
            "context-v1:{}:{}:{}:{}",
            self.dim,
            self.offsets.len(),
            self.decay,
            self.seed
        )
    }

    /// The key of the context whose token embeddings are `context`, oldest
    /// first (the last one is offset 1). Panics if the context is longer
    /// than `max_r` or an embedding is not `dim` long: callers build them.
    pub fn key(&self, context: &[&[f32]]) -> Vec<f32> {
        assert!(
            context.len() <= self.offsets.len(),
            "context longer than the keyer's max_r"
        );
        let mut key = vec![0.0f64; self.dim];
        let mut w = 1.0f64;
        for (i, e) in context.iter().rev().enumerate() {
            assert_eq!(e.len(), self.dim, "embedding of the wrong dimension");
            let s = &self.offsets[i];
            for (c, &x) in e.iter().enumerate() {
                key[s.to[c] as usize] += w * f64::from(s.sign[c]) * f64::from(x);
            }
            w *= f64::from(self.decay);
        }
        let sq: f64 = key.iter().map(|x| x * x).sum();
        let denom = (sq + f64::from(PREFIX_EPSILON).powi(2)).sqrt();
        key.iter().map(|&x| (x / denom) as f32).collect()
    }
}

/// The hash that finds an exact context: xxh3 of its length and token ids.
///
/// ```
/// use engram::generate::context_hash;
/// use engram::text::TokenId;
/// assert_ne!(context_hash(&[TokenId(1), TokenId(2)]), context_hash(&[TokenId(2), TokenId(1)]));
/// ```
pub fn context_hash(ids: &[TokenId]) -> u64 {
    let mut bytes = Vec::with_capacity(8 * (ids.len() + 1));
    bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        bytes.extend_from_slice(&id.0.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::embed::{Embedder, HashedNgrams};
    use proptest::prelude::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn order_and_distance_shape_the_key() {
        let e = HashedNgrams::new(256).unwrap();
        let k = ContextKeyer::new(256, 8, 0.7, 1).unwrap();
        let v = |s: &str| e.embed(s);
        let (dog, bites, man, cat) = (v("dog"), v("bites"), v("man"), v("cat"));
        let key = |ws: &[&Vec<f32>]| k.key(&ws.iter().map(|w| w.as_slice()).collect::<Vec<_>>());
        let dbm = key(&[&dog, &bites, &man]);
        assert_eq!(dbm, key(&[&dog, &bites, &man]), "deterministic");
        assert!(cos(&dbm, &key(&[&man, &bites, &dog])) < 0.8, "order matters");
        // Sharing the nearest tokens counts more than sharing the farthest.
        let near = cos(&dbm, &key(&[&cat, &bites, &man]));
        let far = cos(&dbm, &key(&[&dog, &bites, &cat]));
        assert!(near > far, "near {near} far {far}");
        assert!((cos(&dbm, &dbm) - 1.0).abs() < 1e-5);
        assert_eq!(k.key(&[&[0.0; 256]]), vec![0.0; 256], "zero context, zero key");
        // Another seed, other keys; the id names it.
        let k2 = ContextKeyer::new(256, 8, 0.7, 2).unwrap();
        assert_ne!(k2.key(&[&dog]), k.key(&[&dog]));
        assert_ne!(k2.id(), k.id());
        assert!(ContextKeyer::new(8, 0, 0.5, 0).is_err() && ContextKeyer::new(8, 3, 1.5, 0).is_err());
    }

    #[test]
    fn the_permutations_are_fixed_by_the_seed() {
        // A stored key must be reproducible by every later build: pin a few
        // coordinates of one key.
        let k = ContextKeyer::new(4, 2, 0.5, 42).unwrap();
        let key = k.key(&[&[1.0, 0.0, 0.0, 0.0], &[0.0, 1.0, 0.0, 0.0]]);
        let nonzero: Vec<usize> = (0..4).filter(|&i| key[i] != 0.0).collect();
        assert_eq!(nonzero.len(), 2, "{key:?}");
        let mags: Vec<f32> = nonzero.iter().map(|&i| key[i].abs()).collect();
        // Weights 1 (offset 1) and 0.5 (offset 2), normalized.
        let (a, b) = (1.0 / 1.25f32.sqrt(), 0.5 / 1.25f32.sqrt());
        assert!(mags.iter().any(|&m| (m - a).abs() < 1e-6) && mags.iter().any(|&m| (m - b).abs() < 1e-6));
        assert_eq!(
            key,
            ContextKeyer::new(4, 2, 0.5, 42)
                .unwrap()
                .key(&[&[1.0, 0.0, 0.0, 0.0], &[0.0, 1.0, 0.0, 0.0]])
        );
    }

    proptest! {
        #[test]
        fn keys_are_unit_or_zero(ctx in prop::collection::vec(prop::collection::vec(-10f32..10.0, 16), 0..6)) {
            let k = ContextKeyer::new(16, 6, 0.8, 3).unwrap();
            let refs: Vec<&[f32]> = ctx.iter().map(|v| v.as_slice()).collect();
            let key = k.key(&refs);
            let n: f32 = key.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assert!(n < 1e-6 || (n - 1.0).abs() < 1e-4, "norm {}", n);
        }
    }
}
