//! The spelling model: the probability of a token's exact characters, so
//! that a token never learned — a new name, a typo, a word of another
//! script — still has a probability, and every string can be scored.
//!
//! It is a character n-gram model within one token: each character (and
//! the end of the token) is predicted from up to `ORDER - 1` characters
//! before it (a start mark stands before the first), by interpolated
//! absolute discounting, down to a uniform distribution over every Unicode
//! scalar value and the end mark:
//!
//! `P_j(c | h) = max(n(h, c) - D, 0) / n(h) + D T(h) / n(h) * P_(j-1)(c | h')`
//!
//! with `h'` the context one character shorter, `n` the counts learned from
//! the spellings of the vocabulary's tokens (each distinct token once: the
//! words a text has never seen resemble its rare words more than its
//! frequent ones), `T(h)` the distinct characters seen after `h`, and an
//! unseen context passing the lower order on. A token's probability is the
//! product over its characters and its end mark; over all finite strings
//! these sum to 1, so the model is a proper distribution.

use std::collections::HashMap;

/// Context length plus one: characters are predicted from up to three before.
pub const ORDER: usize = 4;

/// Symbols the uniform base spreads over: every Unicode scalar value (the
/// code points without the 2,048 surrogates) and the end mark.
pub const SYMBOLS: f64 = (0x11_0000 - 0x800 + 1) as f64;

/// The end of a token, after every scalar value.
const END: u32 = 0x11_0000;
/// Before the first character of a token.
const START: u32 = 0x11_0001;

/// A context: how many symbols (0 to `ORDER - 1`) and which, nearest last.
type Context = (u8, [u32; ORDER - 1]);

#[derive(Clone, Debug, Default)]
struct Counts {
    next: HashMap<u32, u32>,
    total: u32,
}

/// The spelling model (see the module documentation).
///
/// ```
/// use engram::generate::spell::Speller;
/// let mut s = Speller::new(0.75);
/// for w in ["walk", "walked", "talk", "talked", "jump"] {
///     s.add(w);
/// }
/// // A new word built like the learned ones is far likelier than noise.
/// assert!(s.log2_prob("jumped") > s.log2_prob("xqzvj") + 10.0);
/// ```
#[derive(Clone, Debug)]
pub struct Speller {
    discount: f64,
    counts: HashMap<Context, Counts>,
}

impl Speller {
    /// An empty model with absolute discount `discount` (in (0, 1)): every
    /// string has the uniform model's probability until tokens are added.
    pub fn new(discount: f64) -> Speller {
        Speller {
            discount: discount.clamp(1e-6, 1.0 - 1e-6),
            counts: HashMap::new(),
        }
    }

    fn symbols(token: &str) -> impl Iterator<Item = u32> + '_ {
        token.chars().map(u32::from).chain(std::iter::once(END))
    }

    fn context(history: &[u32], len: usize) -> Context {
        let mut c = [0u32; ORDER - 1];
        c[..len].copy_from_slice(&history[history.len() - len..]);
        (len as u8, c)
    }

    /// Learn one token's spelling.
    pub fn add(&mut self, token: &str) {
        let mut history = vec![START];
        for sym in Self::symbols(token) {
            for len in 0..=history.len().min(ORDER - 1) {
                let c = self.counts.entry(Self::context(&history, len)).or_default();
                *c.next.entry(sym).or_default() += 1;
                c.total += 1;
            }
            history.push(sym);
        }
    }

    /// The probability of symbol `sym` after `history` (start mark first).
    fn prob(&self, history: &[u32], sym: u32) -> f64 {
        let mut p = 1.0 / SYMBOLS;
        for len in 0..=history.len().min(ORDER - 1) {
            let Some(c) = self.counts.get(&Self::context(history, len)) else {
                // A longer context extends this one: it is unseen too.
                break;
            };
            let n = f64::from(c.total);
            let seen = c.next.get(&sym).map_or(0.0, |&k| f64::from(k));
            p = (seen - self.discount).max(0.0) / n + self.discount * c.next.len() as f64 / n * p;
        }
        p
    }

    /// log2 of the probability of exactly `token` (its characters, then
    /// its end). The empty string is the end mark alone.
    pub fn log2_prob(&self, token: &str) -> f64 {
        let mut history = vec![START];
        let mut bits = 0.0;
        for sym in Self::symbols(token) {
            bits += self.prob(&history, sym).log2();
            history.push(sym);
        }
        bits
    }

    /// The probability of exactly `token`.
    pub fn prob_of(&self, token: &str) -> f64 {
        self.log2_prob(token).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned() -> Speller {
        let mut s = Speller::new(0.75);
        for w in ["the", "then", "they", "cat", "hat", "日本", "é"] {
            s.add(w);
        }
        s
    }

    #[test]
    fn every_context_is_a_distribution_over_all_symbols() {
        let s = learned();
        for history in [
            vec![START],
            vec![START, 't' as u32, 'h' as u32],
            vec![START, 'z' as u32],
            vec![START, '日' as u32],
        ] {
            // Seen symbols exactly; every other symbol has the same
            // probability, that of one never seen in any context.
            let mut seen: Vec<u32> = s.counts.values().flat_map(|c| c.next.keys().copied()).collect();
            seen.sort_unstable();
            seen.dedup();
            let unseen = s.prob(&history, 0x1F600);
            let total: f64 =
                seen.iter().map(|&c| s.prob(&history, c)).sum::<f64>() + (SYMBOLS - seen.len() as f64) * unseen;
            assert!((total - 1.0).abs() < 1e-9, "{history:?}: {total}");
        }
    }

    #[test]
    fn matches_the_formula_by_hand() {
        let mut s = Speller::new(0.5);
        s.add("ab");
        s.add("a");
        // Unigram counts: a 2, b 1, END 2 (total 5, 3 types).
        // After START (len 1): a 2 (total 2, 1 type).
        let u = 1.0 / SYMBOLS;
        let p0_a = (2.0 - 0.5) / 5.0 + 0.5 * 3.0 / 5.0 * u;
        let p1_a = (2.0 - 0.5) / 2.0 + 0.5 * 1.0 / 2.0 * p0_a;
        // "a" then END: after (START, a) END 1 and b 1; after (a) END 1, b 1.
        let p0_end = (2.0 - 0.5) / 5.0 + 0.5 * 3.0 / 5.0 * u;
        let p1_end = (1.0 - 0.5) / 2.0 + 0.5 * 2.0 / 2.0 * p0_end;
        let p2_end = (1.0 - 0.5) / 2.0 + 0.5 * 2.0 / 2.0 * p1_end;
        let want = (p1_a * p2_end).log2();
        assert!(
            (s.log2_prob("a") - want).abs() < 1e-12,
            "{} vs {want}",
            s.log2_prob("a")
        );
        // An empty model is uniform over symbols.
        let e = Speller::new(0.5);
        assert!((e.log2_prob("xy") - 3.0 * u.log2()).abs() < 1e-9);
    }

    #[test]
    fn learned_spellings_are_likelier() {
        let s = learned();
        assert!(s.log2_prob("that") > s.log2_prob("tqqt"));
        assert!(s.log2_prob("日本") > s.log2_prob("本日"));
        assert!(s.prob_of("then") < 1.0 && s.prob_of("then") > 0.0);
    }
}
