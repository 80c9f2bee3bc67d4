//! Honest scoring: the log2-probability of exactly a given string.
//!
//! The text is cut by the lossless tokenizer, and each token is predicted
//! from the tokens before it alone: a learned token by the full prediction
//! ([`Prediction::prob`]), a string never learned through the spelling
//! model at the bottom of the smoothing, whitespace and punctuation like
//! any token. Every string has a positive probability and the
//! probabilities of all strings sum to at most 1 (a string has one
//! tokenization; the model also gives some mass to token sequences that
//! would spell the same text otherwise, which can only make its bits
//! higher), so `bits / chars` compares with any character- or byte-level
//! model.
//!
//! - **static**: the store as learned; nothing of the scored text is learned.
//! - **adaptive**: online learning — each token, once scored, is counted for
//!   the rest of the call (exact statistics, continuation counts and the
//!   spelling of new tokens) in an [`Overlay`]; the store is left unchanged.
//!   What is learned in the call is not in the graphs, so retrieval sees the
//!   store only.

use std::collections::HashMap;
use std::rc::Rc;

use super::levels::Levels;
use super::overlay::{Overlay, OVERLAY_IDS};
use super::predict::{History, Params};
use super::smooth::Base;
use crate::error::Result;
use crate::storage::Snapshot;
use crate::text::embed::Embedder;
use crate::text::tokenize;
use crate::text::vocab::{TokenId, Vocabulary};

/// Tokens between two calls of the progress callback.
pub const PROGRESS_EVERY: usize = 4096;

/// How a text scored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// Unicode characters (scalar values) of the text.
    pub chars: u64,
    /// Its tokens.
    pub tokens: u64,
    /// Tokens the store had never learned (spelled).
    pub unknown: u64,
    /// The bits of those tokens: what the spelling model and the mass left
    /// for new strings cost, within [`Score::bits`].
    pub unknown_bits: f64,
    /// `-log2 P(text)`.
    pub bits: f64,
    /// Each token's bits, if asked for.
    pub per_token: Vec<f64>,
}

impl Score {
    /// Bits per character (0 for the empty text).
    pub fn bits_per_char(&self) -> f64 {
        if self.chars == 0 {
            0.0
        } else {
            self.bits / self.chars as f64
        }
    }

    /// Per-token perplexity, `2^(bits / tokens)` (1 for the empty text).
    pub fn perplexity(&self) -> f64 {
        if self.tokens == 0 {
            1.0
        } else {
            (self.bits / self.tokens as f64).exp2()
        }
    }
}

/// How to score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScoreMode {
    /// Learn each token once scored (see the module documentation).
    pub adaptive: bool,
    /// Keep each token's bits in [`Score::per_token`].
    pub per_token: bool,
}

impl Levels {
    /// Score `text` (see the module documentation) under `params`, on the
    /// order-0 `base` read from `vocab` in `snap`. `progress(tokens done,
    /// tokens in all)` is called every [`PROGRESS_EVERY`] tokens; an error
    /// it returns (a cancel) ends the call with that error.
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        embedder: &dyn Embedder,
        params: &Params,
        text: &str,
        mode: ScoreMode,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Score> {
        params.checked(self.levels().len())?;
        let base = Base::read(snap, vocab)?;
        self.score_from(snap, vocab, &base, embedder, params, text, mode, progress)
    }

    /// [`Levels::score`] on an order-0 base already read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn score_from(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        base: &Base,
        embedder: &dyn Embedder,
        params: &Params,
        text: &str,
        mode: ScoreMode,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Score> {
        let words: Vec<&str> = tokenize(text).map(|t| t.text).collect();
        let longest = self.levels().last().map_or(0, |l| l.r);
        let mut overlay = Overlay::new(self);
        // Only adaptive scoring changes order 0; static borrows it.
        let mut learned: Option<Base> = mode.adaptive.then(|| base.clone());
        let mut embedded: HashMap<&str, Rc<Vec<f32>>> = HashMap::new();
        let d0 = params.discounts_for(self.levels().len())[0];
        let mut ids: Vec<TokenId> = Vec::with_capacity(words.len());
        let mut embs: Vec<Rc<Vec<f32>>> = Vec::with_capacity(words.len());
        let mut out = Score {
            chars: text.chars().count() as u64,
            tokens: words.len() as u64,
            ..Score::default()
        };
        for (i, &w) in words.iter().enumerate() {
            if i % PROGRESS_EVERY == 0 && i > 0 {
                progress(i, words.len())?;
            }
            let id = match vocab.id(snap, w)? {
                Some(id) => id,
                None => overlay.new_token(w),
            };
            let from = i.saturating_sub(longest);
            let refs: Vec<&[f32]> = embs[from..].iter().map(|e| e.as_slice()).collect();
            let pred = self
                .gather(
                    snap,
                    Some(&overlay),
                    params,
                    History {
                        tokens: &ids[from..],
                        embeddings: &refs,
                        pos: i as u64,
                    },
                    false,
                )?
                .predict(self, params);
            let order0 = learned.as_ref().unwrap_or(base);
            let p = pred.prob(order0.p0(Some(id), w, d0), id);
            let bits = -p.log2();
            out.bits += bits;
            if mode.per_token {
                out.per_token.push(bits);
            }
            let new = id.0 >= OVERLAY_IDS;
            if new {
                out.unknown += 1;
                out.unknown_bits += bits;
            }
            ids.push(id);
            let e = embedded.entry(w).or_insert_with(|| Rc::new(embedder.embed(w))).clone();
            embs.push(e);
            if let Some(b) = learned.as_mut() {
                if new && !b.knows(id) {
                    b.learn_spelling(id, w);
                }
                if let Some((t, delta)) = overlay.observe(self, snap, &ids, i, 1)? {
                    b.add_cont(t, delta);
                }
            }
        }
        progress(words.len(), words.len())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;

    const TRAIN: [&str; 2] = [
        "the cat sat on the mat. the dog sat on the log.",
        "a cat and a dog ran to the mat, and the cat sat.",
    ];

    fn corpus(extra: Option<&[&str]>) -> Corpus {
        let mut c = Corpus::new(32, &[1, 2, 3], 4);
        for t in TRAIN {
            c.learn(&tokenize(t).map(|t| t.text).collect::<Vec<_>>());
        }
        if let Some(words) = extra {
            c.learn(words);
        }
        c
    }

    fn score(c: &Corpus, params: &Params, text: &str, adaptive: bool) -> Score {
        let snap = c.store.snapshot().unwrap();
        let mode = ScoreMode {
            adaptive,
            per_token: true,
        };
        c.levels
            .score(&snap, &c.vocab, &*c.embed, params, text, mode, &mut |_, _| Ok(()))
            .unwrap()
    }

    fn no_retrieval() -> Params {
        let mut p = Params::default();
        for s in p.strategies.params.iter_mut() {
            s.alpha = 0.0;
        }
        p
    }

    #[test]
    fn static_scores_every_character_and_change_nothing() {
        let c = corpus(None);
        let before = c.store.snapshot().unwrap().version();
        let text = "the cat sat on the zebra 🦓,\r\n日本 — naïve!";
        let s = score(&c, &Params::default(), text, false);
        assert_eq!(s.chars, text.chars().count() as u64);
        assert_eq!(s.tokens as usize, s.per_token.len());
        assert!((s.bits - s.per_token.iter().sum::<f64>()).abs() < 1e-9);
        assert!(s.bits.is_finite() && s.per_token.iter().all(|b| b.is_finite() && *b > 0.0));
        assert!(
            s.unknown >= 5,
            "zebra, the emoji, CRLF, CJK and the accented word are new: {}",
            s.unknown
        );
        assert_eq!(c.store.snapshot().unwrap().version(), before, "scoring writes nothing");
        // Learned text is likelier than the same words shuffled.
        let seen = score(&c, &Params::default(), "the dog sat on the mat.", false);
        let shuffled = score(&c, &Params::default(), "mat the on sat dog the.", false);
        assert!(seen.bits < shuffled.bits, "{} vs {}", seen.bits, shuffled.bits);
        assert!((seen.bits_per_char() - seen.bits / 23.0).abs() < 1e-12);
        assert!((seen.perplexity() - (seen.bits / seen.tokens as f64).exp2()).abs() < 1e-9);
        assert_eq!(score(&c, &Params::default(), "", false).bits, 0.0);
    }

    #[test]
    fn adaptive_scoring_learns_each_token_only_after_scoring_it() {
        let text = "the yak sat. the yak sat. the yak ran";
        let words: Vec<&str> = tokenize(text).map(|t| t.text).collect();
        let params = no_retrieval();
        let c = corpus(None);
        let adaptive = score(&c, &params, text, true);
        // Reference: token i scored statically by a store that learned the
        // text's first i tokens as a document. Equal bits mean the adaptive
        // score used exactly those tokens — none after — and counted them
        // as learning does.
        for i in [0, 1, 3, 6, 9, words.len() - 1] {
            let r = corpus(Some(&words[..i]).filter(|w| !w.is_empty()));
            let prefix: String = words[..=i].concat();
            let s = score(&r, &params, &prefix, false);
            let want = *s.per_token.last().unwrap();
            assert!(
                (adaptive.per_token[i] - want).abs() < 1e-9,
                "token {i} {:?}: adaptive {} vs reference {want}",
                words[i],
                adaptive.per_token[i]
            );
        }
        // With retrieval on, a token's bits never depend on what follows it.
        let full = score(&c, &Params::default(), text, true);
        let cut = score(&c, &Params::default(), &words[..7].concat(), true);
        for i in 0..7 {
            assert!((full.per_token[i] - cut.per_token[i]).abs() < 1e-12);
        }
        // Repetition is learned: the second "yak" costs far less than the first.
        assert_eq!((words[1], words[5]), (" yak", " yak"));
        assert!(adaptive.per_token[5] < adaptive.per_token[1] - 5.0);
        let stat = score(&c, &params, text, false);
        assert!(adaptive.bits < stat.bits);
    }

    #[test]
    fn progress_is_reported_and_an_error_cancels() {
        let c = corpus(None);
        let snap = c.store.snapshot().unwrap();
        let text = "the cat sat. ".repeat(PROGRESS_EVERY / 3);
        let mut seen = Vec::new();
        let s = c
            .levels
            .score(
                &snap,
                &c.vocab,
                &*c.embed,
                &no_retrieval(),
                &text,
                ScoreMode::default(),
                &mut |done, all| {
                    seen.push((done, all));
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(seen.last(), Some(&(s.tokens as usize, s.tokens as usize)));
        assert!(seen.len() >= 2);
        let r = c.levels.score(
            &snap,
            &c.vocab,
            &*c.embed,
            &no_retrieval(),
            &text,
            ScoreMode::default(),
            &mut |_, _| Err(crate::error::Error::Cancelled),
        );
        assert!(matches!(r, Err(crate::error::Error::Cancelled)));
    }
}
