//! Writing: the prompt is tokenized, each step predicts the next token
//! ([`Levels::predict`]) and draws it ([`Sampler`]), until `max_tokens`
//! or a stop string. Every generated token carries its probability and its
//! trace: the stored patterns that retrieval weighed for it (level,
//! document, position, similarity, and the share of the token's
//! probability that pattern gave).

use super::decode::{Sampler, Sampling};
use super::levels::Levels;
use super::predict::{History, Order0, Params, Prediction};
use super::smooth::Base;
use super::strategy::Strategy;
use crate::error::{Error, Result};
use crate::storage::Snapshot;
use crate::text::embed::Embedder;
use crate::text::tokenize;
use crate::text::vocab::{TokenId, Vocabulary};

/// One stored pattern's part in a generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntry {
    /// Context length of its level.
    pub level: usize,
    /// Where the pattern was first seen.
    pub doc: u64,
    /// See `doc`.
    pub pos: u64,
    /// Similarity of its context to the current one.
    pub sim: f32,
    /// The probability of the token that came through this pattern
    /// (`alpha x level weight x neighbour weight x its share of the token`).
    pub share: f64,
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedToken {
    /// Its id and text.
    pub id: TokenId,
    /// See `id`.
    pub text: String,
    /// Its probability under the prediction it was drawn from.
    pub prob: f64,
    /// The strategy of its step.
    pub strategy: Strategy,
    /// The step's confidence, `exp(-energy)`.
    pub confidence: f64,
    /// The patterns that retrieval weighed for it, largest share first.
    pub trace: Vec<TraceEntry>,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Request {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Stop (before emitting it) once the output contains one of these.
    pub stop: Vec<String>,
    /// How each token is drawn.
    pub sampling: Sampling,
    /// Tokens generated recently that the repetition penalty looks at.
    pub penalty_window: usize,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            max_tokens: 32,
            stop: Vec::new(),
            sampling: Sampling::default(),
            penalty_window: 16,
        }
    }
}

/// The trace of `token` in `p`: each retrieved pattern's share of its
/// probability, largest first.
pub fn trace(p: &Prediction, token: TokenId) -> Vec<TraceEntry> {
    let mut out = Vec::new();
    for (w, got) in &p.levels {
        for n in &got.neighbours {
            let total: f64 = n.pattern.next.iter().map(|&(_, c)| f64::from(c)).sum();
            let c = n
                .pattern
                .next
                .iter()
                .find(|x| x.0 == token)
                .map_or(0.0, |x| f64::from(x.1));
            if total > 0.0 && c > 0.0 {
                out.push(TraceEntry {
                    level: got.r,
                    doc: n.pattern.doc,
                    pos: n.pattern.pos,
                    sim: n.sim,
                    share: p.alpha * w * n.weight * c / total,
                });
            }
        }
    }
    out.sort_by(|a, b| b.share.total_cmp(&a.share));
    out
}

impl Levels {
    /// Continue `prompt` under `params`: tokens learned before (in
    /// `vocab`) extend the history; a prompt token never learned has no id,
    /// so the history restarts after it. Only learned tokens are generated.
    /// Returns the generated tokens.
    pub fn generate(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        embedder: &dyn Embedder,
        params: &Params,
        prompt: &str,
        req: &Request,
    ) -> Result<Vec<GeneratedToken>> {
        params.checked(self.levels().len())?;
        let base = Base::read(snap, vocab)?;
        let order0 = Order0::new(&base, params.discounts_for(self.levels().len())[0]);
        self.generate_from(snap, vocab, &order0, embedder, params, prompt, req)
    }

    /// [`Levels::generate`] on order 0 already read (at `params`' order-0
    /// discount).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn generate_from(
        &self,
        snap: &Snapshot,
        vocab: &Vocabulary,
        order0: &Order0,
        embedder: &dyn Embedder,
        params: &Params,
        prompt: &str,
        req: &Request,
    ) -> Result<Vec<GeneratedToken>> {
        if req.max_tokens > 100_000 {
            return Err(Error::InvalidArgument(format!(
                "max_tokens {} is above 100000",
                req.max_tokens
            )));
        }
        let longest = self.levels().last().map_or(0, |l| l.r);
        // Only the prompt's tail is read: a step sees its last `longest`
        // tokens (their embeddings) and the penalty its last
        // `penalty_window`, and a token never learned cuts the history, so
        // the lookup walks back from the end and stops at whichever comes
        // first. A long prompt costs its tokenization, not an embedding and
        // a vocabulary lookup per token.
        let words: Vec<&str> = tokenize(prompt).map(|t| t.text).collect();
        let mut pos = words.len() as u64;
        let keep = longest.max(req.penalty_window);
        let mut ids: Vec<TokenId> = Vec::new();
        for w in words.iter().rev() {
            if ids.len() == keep {
                break;
            }
            match vocab.id(snap, w)? {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        ids.reverse();
        let mut embs: Vec<Vec<f32>> = words[words.len() - ids.len().min(longest)..]
            .iter()
            .map(|w| embedder.embed(w))
            .collect();
        let mut sampler = Sampler::new(req.sampling.clone())?;
        let t = req.sampling.temperature;
        let powers = (t > 0.0).then(|| order0.powers(t));
        let (mut out, mut text): (Vec<GeneratedToken>, String) = (Vec::new(), String::new());
        for _ in 0..req.max_tokens {
            let from = ids.len().saturating_sub(longest);
            let refs: Vec<&[f32]> = embs[embs.len() - (ids.len() - from)..]
                .iter()
                .map(|e| e.as_slice())
                .collect();
            let p = self
                .gather(
                    snap,
                    None,
                    params,
                    History {
                        tokens: &ids[from..],
                        embeddings: &refs,
                        pos,
                    },
                    false,
                )?
                .predict(self, params);
            let recent = &ids[ids.len().saturating_sub(req.penalty_window)..];
            let split = p.split(order0, recent, powers.as_deref());
            let Some(id) = sampler.pick_split(&split, recent) else {
                break;
            };
            let Some(info) = vocab.get(snap, id)? else { break };
            let prob = split.head_prob(id).unwrap_or_else(|| split.factor * order0.p0(id));
            text.push_str(&info.text);
            if req.stop.iter().any(|s| !s.is_empty() && text.contains(s.as_str())) {
                break;
            }
            out.push(GeneratedToken {
                id,
                trace: trace(&p, id),
                prob,
                strategy: p.strategy,
                confidence: p.confidence,
                text: info.text.clone(),
            });
            embs.push(embedder.embed(&info.text));
            ids.push(id);
            pos += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::Corpus;

    fn words(s: &str) -> Vec<&str> {
        tokenize(s).map(|t| t.text).collect()
    }

    #[test]
    fn greedy_generation_continues_the_learned_text_and_traces_it() {
        let mut c = Corpus::new(64, &[1, 2, 3, 4], 9);
        c.learn(&words("the quick brown fox jumps over the lazy dog."));
        c.learn(&words("a slow green turtle walks under the tall tree."));
        let snap = c.store.snapshot().unwrap();
        // 7 tokens: " fox", " jumps", ..., " dog", ".".
        let req = Request {
            max_tokens: 7,
            ..Request::default()
        };
        let got = c
            .levels
            .generate(&snap, &c.vocab, &*c.embed, &Params::default(), "the quick brown", &req)
            .unwrap();
        let text: String = got.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            text, " fox jumps over the lazy dog.",
            "greedy follows the only continuation"
        );
        // " fox" came from document 0, through the longest level that held
        // the context, at the position the learned text has it.
        let fox = &got[0];
        assert_eq!(fox.text, " fox");
        let top = &fox.trace[0];
        assert_eq!((top.doc, top.pos), (0, 3), "{:?}", fox.trace);
        assert!(fox.prob > 0.5 && fox.prob <= 1.0);
        // The same seed gives the same sampled text; a stop string ends it.
        let hot = Request {
            max_tokens: 8,
            sampling: Sampling {
                temperature: 1.5,
                seed: 4,
                ..Sampling::default()
            },
            ..Request::default()
        };
        let a = c
            .levels
            .generate(&snap, &c.vocab, &*c.embed, &Params::default(), "the", &hot)
            .unwrap();
        let b = c
            .levels
            .generate(&snap, &c.vocab, &*c.embed, &Params::default(), "the", &hot)
            .unwrap();
        assert_eq!(a, b);
        let stop = Request {
            stop: vec!["lazy".into()],
            ..req.clone()
        };
        let s: String = c
            .levels
            .generate(&snap, &c.vocab, &*c.embed, &Params::default(), "the quick brown", &stop)
            .unwrap()
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(s, " fox jumps over the");
        assert!(c
            .levels
            .generate(
                &snap,
                &c.vocab,
                &*c.embed,
                &Params::default(),
                "x",
                &Request {
                    max_tokens: 1 << 20,
                    ..req
                }
            )
            .is_err());
    }
}
