//! A small learned store for the generation tests.

use std::sync::Arc;

use super::{ContextKeyer, Levels};
use crate::storage::{Store, StoreOptions};
use crate::text::embed::{Embedder, HashedNgrams};
use crate::text::{TokenId, Vocabulary};

/// A store with a vocabulary and pattern levels, in a temporary directory.
pub(crate) struct Corpus {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub embed: Arc<dyn Embedder>,
    pub vocab: Vocabulary,
    pub levels: Levels,
    next_doc: u64,
}

impl Corpus {
    /// Embeddings of dimension `dim`, levels of context lengths `lengths`,
    /// context keys drawn from `seed`.
    pub fn new(dim: usize, lengths: &[usize], seed: u64) -> Corpus {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
        let embed: Arc<dyn Embedder> = Arc::new(HashedNgrams::new(dim).unwrap());
        let vocab = Vocabulary::open_or_create(&store, embed.clone()).unwrap();
        let levels =
            Levels::open_or_create(&store, ContextKeyer::new(dim, 8, 0.8, seed).unwrap(), dim, lengths).unwrap();
        Corpus {
            _dir: dir,
            store,
            embed,
            vocab,
            levels,
            next_doc: 0,
        }
    }

    /// The embeddings of `words`.
    pub fn embeddings(&self, words: &[&str]) -> Vec<Vec<f32>> {
        words.iter().map(|w| self.embed.embed(w)).collect()
    }

    /// Learn `words` as the next document; their ids.
    pub fn learn(&mut self, words: &[&str]) -> Vec<TokenId> {
        let ids = self.vocab.learn(&self.store, words).unwrap();
        let embs = self.embeddings(words);
        let refs: Vec<&[f32]> = embs.iter().map(|e| e.as_slice()).collect();
        self.levels
            .learn(&self.store, &self.vocab, self.next_doc, &ids, &refs)
            .unwrap();
        self.next_doc += 1;
        ids
    }
}

/// `n` short documents of Zipf-distributed words (seeded): text with the
/// long tail of counts that real text has, without a file.
pub(crate) fn corpus(n: usize, seed: u64) -> Vec<String> {
    const WORDS: [&str; 24] = [
        "the", "cat", "dog", "sat", "on", "mat", "and", "ran", "to", "a", "log", "of", "king", "queen", "said", "with",
        "her", "his", "in", "house", "old", "new", "day", "night",
    ];
    let mut rng = super::rng::SplitMix(seed);
    let weights: Vec<f64> = (1..=WORDS.len()).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    (0..n)
        .map(|_| {
            let len = 4 + (rng.next() % 12) as usize;
            let mut words = Vec::with_capacity(len);
            for _ in 0..len {
                let mut u = rng.unit() * total;
                let i = weights.iter().position(|w| {
                    u -= w;
                    u < 0.0
                });
                words.push(WORDS[i.unwrap_or(WORDS.len() - 1)]);
            }
            words.join(" ") + "."
        })
        .collect()
}
