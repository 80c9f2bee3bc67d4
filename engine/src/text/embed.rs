//! Embedders: text to a unit vector, behind one trait, so that a store can
//! record which one (and which dimension) its keys come from.
//!
//! [`HashedNgrams`] is the built-in one: it needs no download and no model
//! file. Each character n-gram of the lowercased text (with `<` and `>`
//! marking its ends) and each of its words is hashed (xxh3, seeded) to one
//! coordinate and a sign — the hashing trick — and the sum is normalized.
//! Texts that share spelling share coordinates, so "running" lies nearer
//! "runner" than "banana"; what it cannot know is meaning ("car" and
//! "automobile" share nothing), which a trained model brings.

use crate::error::{Error, Result};
use crate::text::tokenizer::{tokenize, TokenKind};

/// Text to a unit vector of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// What a store records: the embedder's kind and every parameter that
    /// changes its vectors. Two embedders with the same id embed alike.
    fn id(&self) -> String;
    /// The dimension of its vectors.
    fn dim(&self) -> usize;
    /// Embed `text` into `out` (of length [`Embedder::dim`]): unit length,
    /// or all zeros for a text with nothing to embed (never NaN).
    fn embed_into(&self, text: &str, out: &mut [f32]);
    /// [`Embedder::embed_into`] into a new vector.
    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0; self.dim()];
        self.embed_into(text, &mut v);
        v
    }
}

/// The built-in embedder: hashed character n-grams and words (see the
/// module documentation).
///
/// ```
/// use engram::text::embed::{Embedder, HashedNgrams};
/// let e = HashedNgrams::new(256).unwrap();
/// let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
/// let (run, runner, banana) = (e.embed("running"), e.embed("runner"), e.embed("banana"));
/// assert!(cos(&run, &runner) > cos(&run, &banana));
/// assert_eq!(e.id(), "hashed-ngrams-v1:256:3-5:0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedNgrams {
    dim: usize,
    /// Shortest and longest character n-gram.
    min_n: usize,
    max_n: usize,
    seed: u64,
}

impl HashedNgrams {
    /// Dimension `dim` (8 to 65 536), n-grams of 3 to 5 characters, seed 0.
    pub fn new(dim: usize) -> Result<HashedNgrams> {
        HashedNgrams::with(dim, 3, 5, 0)
    }

    /// Every parameter: dimension, n-gram lengths `min_n..=max_n` (1 to 16),
    /// hash seed.
    pub fn with(dim: usize, min_n: usize, max_n: usize, seed: u64) -> Result<HashedNgrams> {
        if !(8..=65_536).contains(&dim) {
            return Err(Error::InvalidArgument(format!(
                "embedder dimension {dim} must be 8 to 65536"
            )));
        }
        if min_n == 0 || min_n > max_n || max_n > 16 {
            return Err(Error::InvalidArgument(format!(
                "n-gram lengths {min_n}..={max_n} must lie within 1..=16, shortest first"
            )));
        }
        Ok(HashedNgrams {
            dim,
            min_n,
            max_n,
            seed,
        })
    }

    fn add(&self, bytes: &[u8], weight: f32, out: &mut [f32]) {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.seed);
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        out[(h % self.dim as u64) as usize] += sign * weight;
    }
}

impl Embedder for HashedNgrams {
    fn id(&self) -> String {
        format!(
            "hashed-ngrams-v1:{}:{}-{}:{}",
            self.dim, self.min_n, self.max_n, self.seed
        )
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_into(&self, text: &str, out: &mut [f32]) {
        assert_eq!(out.len(), self.dim, "embedding buffer of the wrong length");
        out.fill(0.0);
        let lower = text.to_lowercase();
        let mut buf = String::new();
        for t in tokenize(&lower).filter(|t| matches!(t.kind, TokenKind::Word | TokenKind::Number)) {
            // The whole word, marked apart from its n-grams.
            buf.clear();
            buf.push('\u{1}');
            buf.push_str(t.text);
            self.add(buf.as_bytes(), 1.0, out);
            let chars: Vec<char> = std::iter::once('<')
                .chain(t.text.chars())
                .chain(std::iter::once('>'))
                .collect();
            for n in self.min_n..=self.max_n {
                for w in chars.windows(n) {
                    buf.clear();
                    buf.extend(w);
                    self.add(buf.as_bytes(), 1.0, out);
                }
            }
        }
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        // A text without words (or whose hashes cancelled out) stays zero.
        if norm > f32::EPSILON {
            out.iter_mut().for_each(|x| *x /= norm);
        } else {
            out.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn spelling_neighbours_are_near_and_ids_name_the_parameters() {
        let e = HashedNgrams::new(512).unwrap();
        let v = |s: &str| e.embed(s);
        // A third of their n-grams are shared ("<ru", "run", "unn", "<run", ...).
        assert!(
            cos(&v("running"), &v("runner")) > 0.2,
            "{}",
            cos(&v("running"), &v("runner"))
        );
        assert!(cos(&v("running"), &v("banana")) < 0.15);
        assert!(
            cos(&v("The dog bit the man"), &v("the man bit the dog")) > 0.99,
            "bag of words and n-grams"
        );
        assert_eq!(v("Dog"), v("dog"), "case is folded");
        assert_eq!(e.embed("!!! ..."), vec![0.0; 512], "no words: the zero vector");
        assert_ne!(
            HashedNgrams::with(512, 3, 5, 1).unwrap().embed("dog"),
            v("dog"),
            "the seed changes vectors"
        );
        assert_ne!(HashedNgrams::with(512, 3, 5, 1).unwrap().id(), e.id());
        assert!(HashedNgrams::new(4).is_err() && HashedNgrams::with(64, 4, 3, 0).is_err());
    }

    proptest! {
        #[test]
        fn vectors_are_unit_or_zero_and_deterministic(s in any::<String>(), dim in 8usize..300) {
            let e = HashedNgrams::new(dim).unwrap();
            let v = e.embed(&s);
            prop_assert_eq!(v.len(), dim);
            prop_assert!(v.iter().all(|x| x.is_finite()));
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assert!(n == 0.0 || (n - 1.0).abs() < 1e-4, "norm {}", n);
            prop_assert_eq!(e.embed(&s), v);
        }
    }
}
