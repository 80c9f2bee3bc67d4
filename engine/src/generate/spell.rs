//! The spelling model: the probability of a token's exact characters, so
//! that a token never learned — a new name, a typo, a word of another
//! script — still has a probability, and every string can be scored.
//!
//! It is a character n-gram model within one token, smoothed as
//! Kneser-Ney smooths words: each character (and the end of the token) is
//! predicted from up to `ORDER - 1` characters before it (a start mark
//! stands before the first), by interpolated modified absolute
//! discounting, down to a uniform distribution over every Unicode scalar
//! value and the end mark:
//!
//! `P_j(c | h) = max(n(h, c) - D(n(h, c)), 0) / n(h) + g(h) P_(j-1)(c | h')`
//!
//! with `h'` the context one character shorter, `D` the modified discounts
//! (one for counts of 1, one for 2, one for more), `g(h)` the mass they
//! took, and an unseen context passing the lower order on. The counts are
//! learned from the spellings of the vocabulary's tokens, each distinct
//! token once (the words a text has never seen resemble its rare words more
//! than its frequent ones). `n(h, c)` is the raw count where `h` is the
//! longest context the model uses — `ORDER - 1` characters, or the whole
//! token so far from its start mark — and below that the continuation
//! count: the distinct characters that stood before `h` when `c` followed
//! it. A lower order then says how likely `c` is after `h` in a context
//! the longer orders have not seen, which is what it is asked for. Under
//! this model ([`Chars`]) a token's probability is the product over its
//! characters and its end mark, and over all finite strings these sum to 1.
//!
//! Letter case is then factored out, because a text's new words are so
//! often names — the speaker labels of a new play's characters are
//! upper-case words seen nowhere else — and the few capitalized spellings
//! learned say little about how the letters of a new one follow each
//! other. A token whose case is one of lower, title (the first cased
//! letter upper) or capitals ([`Case`]) is also its lower-cased letters
//! under a second character model learned from every spelling folded to
//! lower case, times the probability of that case among the learned
//! spellings that do or do not start with a space (add-one). The
//! spelling model is the even mixture of the two:
//!
//! `P(s) = 1/2 P_chars(s) + 1/2 P(case(s) | space) P_folded(lower(s))`
//!
//! (a token of mixed case, or with a letter whose case does not map one
//! to one, takes `P_chars(s)` in the second term). Both terms sum to at
//! most 1 over all strings, so the mixture does: every string has a
//! positive probability and scoring stays honest.

use std::collections::HashMap;

use super::smooth::{Classes, Discount};

/// Context length plus one: characters are predicted from up to five before.
pub const ORDER: usize = 6;

/// Symbols the uniform base spreads over: every Unicode scalar value (the
/// code points without the 2,048 surrogates) and the end mark.
pub const SYMBOLS: f64 = (0x11_0000 - 0x800 + 1) as f64;

/// The end of a token, after every scalar value.
const END: u32 = 0x11_0000;
/// Before the first character of a token.
const START: u32 = 0x11_0001;

/// A context: how many symbols (0 to `ORDER - 1`) and which, nearest last.
type Context = (u8, [u32; ORDER - 1]);

/// One context's counts (raw or continuation, see the module
/// documentation), and their sum and classes as the word-level smoothing
/// keeps them.
#[derive(Clone, Debug, Default)]
struct Counts {
    next: HashMap<u32, u32>,
    classes: Classes,
}

impl Counts {
    /// Count one more `sym`; whether it is the first.
    fn add(&mut self, sym: u32) -> bool {
        let c = self.next.entry(sym).or_default();
        self.classes.add(f64::from(*c), -1.0);
        *c += 1;
        self.classes.add(f64::from(*c), 1.0);
        *c == 1
    }
}

/// A character n-gram model within one token (see the module
/// documentation): the first of the spelling model's two terms, and over
/// folded spellings the second's.
#[derive(Clone, Debug)]
struct Chars {
    discount: Discount,
    counts: HashMap<Context, Counts>,
}

impl Chars {
    fn new(discount: Discount) -> Chars {
        Chars {
            discount,
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
    fn add(&mut self, token: &str) {
        let mut history = vec![START];
        for sym in Self::symbols(token) {
            // The longest context counts raw; each shorter one counts `sym`
            // once more only if the context one longer saw it first now.
            let longest = history.len().min(ORDER - 1);
            for len in (0..=longest).rev() {
                let first = self.counts.entry(Self::context(&history, len)).or_default().add(sym);
                if !first {
                    break;
                }
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
            let seen = c.next.get(&sym).map_or(0.0, |&k| f64::from(k));
            p = c.classes.kept(seen, self.discount) + c.classes.gamma(self.discount) * p;
        }
        p
    }

    /// log2 of the probability of exactly `token` (its characters, then
    /// its end). The empty string is the end mark alone.
    fn log2_prob(&self, token: &str) -> f64 {
        let mut history = vec![START];
        let mut bits = 0.0;
        for sym in Self::symbols(token) {
            bits += self.prob(&history, sym).log2();
            history.push(sym);
        }
        bits
    }
}

/// The letter case of a spelling, as the spelling model factors it out.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Case {
    /// No upper-case letter (also: no letter at all).
    Lower,
    /// The first cased letter upper, the rest lower ("Macbeth", " Ariel").
    Title,
    /// Every cased letter upper, at least two of them ("BIRON").
    Caps,
    /// Anything else, or a letter whose case does not map one to one.
    Mixed,
}

impl Case {
    const ALL: [Case; 4] = [Case::Lower, Case::Title, Case::Caps, Case::Mixed];

    /// `c` in lower case, if that is one character that maps back.
    fn lower(c: char) -> Option<char> {
        let mut l = c.to_lowercase();
        let (Some(low), None) = (l.next(), l.next()) else {
            return None;
        };
        (low == c || Case::upper(low) == Some(c)).then_some(low)
    }

    /// `c` in upper case, if that is one character.
    fn upper(c: char) -> Option<char> {
        let mut u = c.to_uppercase();
        match (u.next(), u.next()) {
            (Some(up), None) => Some(up),
            _ => None,
        }
    }

    /// `base` (lower case) written in this case.
    fn apply(self, base: &str) -> String {
        let mut first = true;
        base.chars()
            .map(|c| {
                let up = Case::upper(c).filter(|&u| u != c);
                match (self, up) {
                    (Case::Caps, Some(u)) => u,
                    (Case::Title, Some(u)) if first => {
                        first = false;
                        u
                    }
                    _ => c,
                }
            })
            .collect()
    }

    /// The case of `token` and its letters in lower case; `Mixed` (no
    /// folded form) unless writing those letters in that case gives
    /// `token` back exactly.
    pub fn of(token: &str) -> (Case, Option<String>) {
        let Some(base) = token.chars().map(Case::lower).collect::<Option<String>>() else {
            return (Case::Mixed, None);
        };
        let cased = base.chars().filter(|&c| Case::upper(c).is_some_and(|u| u != c)).count();
        let case = [Case::Lower, Case::Title, Case::Caps]
            .into_iter()
            .filter(|&k| k != Case::Caps || cased >= 2)
            .find(|k| k.apply(&base) == token);
        match case {
            Some(k) => (k, Some(base)),
            None => (Case::Mixed, None),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The spelling model (see the module documentation).
///
/// ```
/// use engram::generate::Speller;
/// let mut s = Speller::default();
/// for w in ["walk", "walked", "talk", "talked", "jump", "Romeo", "ROMEO"] {
///     s.add(w);
/// }
/// // A new word built like the learned ones is far likelier than noise,
/// assert!(s.log2_prob("jumped") > s.log2_prob("xqzvj") + 10.0);
/// // and a new name in capitals spells with what lower case taught.
/// assert!(s.log2_prob("TALKED") > s.log2_prob("TQLKXD") + 10.0);
/// ```
#[derive(Clone, Debug)]
pub struct Speller {
    chars: Chars,
    folded: Chars,
    /// Folded spellings learned so far (each once).
    bases: std::collections::HashSet<String>,
    /// Spellings learned, by whether they start with a space and by case.
    cases: [[u32; 4]; 2],
}

impl Default for Speller {
    /// An empty model with [`Speller::DISCOUNT`].
    fn default() -> Speller {
        Speller::new(Speller::DISCOUNT)
    }
}

impl Speller {
    /// The discounts a spelling model uses unless told otherwise: the
    /// usual Kneser-Ney magnitudes. Chen and Goodman's estimate from the
    /// vocabulary's counts of counts gives smaller ones, which spell words
    /// never seen worse: the estimate describes the spellings learned, and
    /// a new word is rarer than those.
    pub const DISCOUNT: Discount = Discount([0.7, 1.1, 1.4]);

    /// An empty model with modified discounts `discount` (checked by
    /// [`Discount::checked`] by the caller): every string has the uniform
    /// model's probability until tokens are added.
    pub fn new(discount: Discount) -> Speller {
        Speller {
            chars: Chars::new(discount),
            folded: Chars::new(discount),
            bases: Default::default(),
            cases: [[0; 4]; 2],
        }
    }

    /// Learn one token's spelling (each distinct token once).
    pub fn add(&mut self, token: &str) {
        self.chars.add(token);
        let (case, base) = Case::of(token);
        self.cases[usize::from(token.starts_with(' '))][case.index()] += 1;
        if let Some(base) = base {
            if !self.bases.contains(&base) {
                self.folded.add(&base);
                self.bases.insert(base);
            }
        }
    }

    /// log2 of the probability of `case` among the learned spellings that
    /// (do not) start with a space.
    fn log2_case(&self, space: bool, case: Case) -> f64 {
        let n = &self.cases[usize::from(space)];
        let all: u32 = n.iter().sum::<u32>() + Case::ALL.len() as u32;
        (f64::from(n[case.index()] + 1) / f64::from(all)).log2()
    }

    /// log2 of the probability of exactly `token` (its characters, then
    /// its end). The empty string is the end mark alone.
    pub fn log2_prob(&self, token: &str) -> f64 {
        let chars = self.chars.log2_prob(token);
        let (case, base) = Case::of(token);
        let folded = match &base {
            Some(b) => self.folded.log2_prob(b),
            None => chars,
        } + self.log2_case(token.starts_with(' '), case);
        // log2(2^a / 2 + 2^b / 2), without underflow for long tokens.
        let (hi, lo) = if chars > folded {
            (chars, folded)
        } else {
            (folded, chars)
        };
        hi + (1.0 + (lo - hi).exp2()).log2() - 1.0
    }

    /// The probability of exactly `token`.
    pub fn prob_of(&self, token: &str) -> f64 {
        self.log2_prob(token).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: [&str; 9] = ["the", "then", "they", "cat", "hat", "chatter", "hatters", "日本", "é"];

    fn learned() -> Chars {
        let mut s = Chars::new(Discount([0.5, 0.9, 1.4]));
        for w in WORDS {
            s.add(w);
        }
        s
    }

    fn seq(w: &str) -> Vec<u32> {
        std::iter::once(START).chain(Chars::symbols(w)).collect()
    }

    /// The model's formula by brute force over the words: raw counts of
    /// `h x` in the longest context, the distinct symbols seen before `h x`
    /// below it.
    fn reference(words: &[&str], d: Discount, history: &[u32], sym: u32) -> f64 {
        let seqs: Vec<Vec<u32>> = words.iter().map(|w| seq(w)).collect();
        let longest = history.len().min(ORDER - 1);
        let mut p = 1.0 / SYMBOLS;
        for len in 0..=longest {
            let h = &history[history.len() - len..];
            let mut counts: HashMap<u32, f64> = HashMap::new();
            let mut before: HashMap<u32, std::collections::HashSet<u32>> = HashMap::new();
            for s in &seqs {
                for i in len..s.len() {
                    if &s[i - len..i] == h {
                        *counts.entry(s[i]).or_default() += 1.0;
                        if i > len {
                            before.entry(s[i]).or_default().insert(s[i - len - 1]);
                        }
                    }
                }
            }
            if len < longest {
                counts = before.into_iter().map(|(x, ys)| (x, ys.len() as f64)).collect();
            }
            let n: f64 = counts.values().sum();
            if n == 0.0 {
                break;
            }
            let taken: f64 = counts.values().map(|&c| d.of(c)).sum();
            let c = counts.get(&sym).copied().unwrap_or(0.0);
            p = (c - d.of(c)).max(0.0) / n + taken / n * p;
        }
        p
    }

    #[test]
    fn every_context_is_a_distribution_over_all_symbols() {
        let s = learned();
        for history in [
            vec![START],
            vec![START, 't' as u32, 'h' as u32],
            seq("chatte"),
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
        let d = Discount([0.5, 0.9, 1.4]);
        let mut s = Chars::new(d);
        s.add("ab");
        s.add("a");
        // After START (the longest context, raw): a 2.
        // Below it, continuation counts: a after START only (1), b after a
        // (1), END after b and after a (2): total 4, two 1s and one 2.
        let u = 1.0 / SYMBOLS;
        let p0_a = (1.0 - 0.5) / 4.0 + (0.5 * 2.0 + 0.9) / 4.0 * u;
        let p1_a = (2.0 - 0.9) / 2.0 + 0.9 / 2.0 * p0_a;
        assert!((s.prob(&[START], 'a' as u32) - p1_a).abs() < 1e-15);
        // An empty model is uniform over symbols, in both terms; the
        // second also pays for the case (add-one over four: 1/4).
        let e = Speller::default();
        let want = (0.5 * u.powi(3) + 0.5 * 0.25 * u.powi(3)).log2();
        assert!((e.log2_prob("xy") - want).abs() < 1e-9, "{}", e.log2_prob("xy"));
        assert!((Chars::new(d).log2_prob("xy") - 3.0 * u.log2()).abs() < 1e-9);
    }

    #[test]
    fn matches_a_brute_force_count_of_the_words() {
        let s = learned();
        let d = Discount([0.5, 0.9, 1.4]);
        let mut probes: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
        probes.extend(["hatter", "chat", "thetas", "本", "ét", "xyz", ""].map(String::from));
        for w in &probes {
            let sy = seq(w);
            for i in 1..sy.len() {
                let (got, want) = (s.prob(&sy[..i], sy[i]), reference(&WORDS, d, &sy[..i], sy[i]));
                assert!((got - want).abs() < 1e-14, "{w:?} at {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn learned_spellings_are_likelier() {
        let mut s = Speller::default();
        for w in WORDS {
            s.add(w);
        }
        assert!(s.log2_prob("that") > s.log2_prob("tqqt"));
        assert!(s.log2_prob("日本") > s.log2_prob("本日"));
        assert!(s.prob_of("then") < 1.0 && s.prob_of("then") > 0.0);
        // Capitals learn from lower case: a name never seen in capitals.
        assert!(s.log2_prob("CHATTERS") > s.log2_prob("CHQTTXRS") + 10.0);
    }

    #[test]
    fn the_two_terms_follow_the_formula() {
        let mut s = Speller::default();
        for w in ["the", " The", " THE", "cat", " hat", "McDuff"] {
            s.add(w);
        }
        let mut chars = Chars::new(Speller::DISCOUNT);
        let mut folded = Chars::new(Speller::DISCOUNT);
        for w in ["the", " The", " THE", "cat", " hat", "McDuff"] {
            chars.add(w);
        }
        for b in ["the", " the", "cat", " hat"] {
            folded.add(b);
        }
        // Cases learned: no space: the (lower), cat (lower), McDuff
        // (mixed); with a space: The (title), THE (caps), hat (lower).
        let mix = |a: f64, b: f64| (0.5 * a.exp2() + 0.5 * b.exp2()).log2();
        let cases = [
            ("CAT", folded.log2_prob("cat") + (1.0f64 / 7.0).log2()),
            (" Hat", folded.log2_prob(" hat") + (2.0f64 / 7.0).log2()),
            ("tha", folded.log2_prob("tha") + (3.0f64 / 7.0).log2()),
            ("DuMc", chars.log2_prob("DuMc") + (2.0f64 / 7.0).log2()),
        ];
        for (w, second) in cases {
            let want = mix(chars.log2_prob(w), second);
            assert!(
                (s.log2_prob(w) - want).abs() < 1e-12,
                "{w}: {} vs {want}",
                s.log2_prob(w)
            );
        }
        // The case term is a distribution for either start.
        for space in [false, true] {
            let total: f64 = Case::ALL.iter().map(|&k| s.log2_case(space, k).exp2()).sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn case_is_factored_out_only_where_it_maps_back() {
        let of = |w: &str| Case::of(w);
        assert_eq!(of("macbeth"), (Case::Lower, Some("macbeth".into())));
        assert_eq!(of(" Ariel"), (Case::Title, Some(" ariel".into())));
        assert_eq!(of("BIRON"), (Case::Caps, Some("biron".into())));
        assert_eq!(of("A"), (Case::Title, Some("a".into())));
        assert_eq!(of("O'ER"), (Case::Caps, Some("o'er".into())));
        assert_eq!(of(" 42"), (Case::Lower, Some(" 42".into())));
        assert_eq!(of("ÉTÉ"), (Case::Caps, Some("été".into())));
        for w in ["McDuff", "aB", "İstanbul", "ǅ", "Aẞ"] {
            assert_eq!(of(w).0, Case::Mixed, "{w}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_folded_spelling_writes_the_token_back(token in "\\PC{0,12}") {
            if let (case, Some(base)) = Case::of(&token) {
                proptest::prop_assert_eq!(case.apply(&base), token);
                proptest::prop_assert_eq!(Case::of(&base), (Case::Lower, Some(base.clone())));
            }
        }
    }
}
