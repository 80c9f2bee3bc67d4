//! The tokenizer: words, numbers, punctuation and whitespace runs, over any
//! text, **lossless** — the tokens, concatenated, are the input byte for
//! byte, so generated text is detokenized by concatenation and every token
//! can point back to the bytes it came from.
//!
//! Boundaries are Unicode's word boundaries (UAX #29, through
//! `unicode-segmentation`): a contraction ("can't"), a decimal number
//! ("3.14", "1,000"), an emoji sequence joined by ZWJ, or a letter with its
//! combining marks stays whole; CJK ideographs are one token each; CRLF is
//! never split. On top of that, adjacent whitespace segments are merged
//! into one run ("\n\n" is one token: a paragraph break), and a single
//! space before a word or a number belongs to it (" dog"), as in the
//! vocabularies of language models: a context of r tokens then spans about
//! r words, not r / 2, and the space a text almost always has between two
//! words is not a choice the model must make again each time.

use unicode_segmentation::UnicodeSegmentation;

/// What a token is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Letters (any script), with the marks, digits and inner punctuation
    /// that Unicode keeps inside a word ("can't", "x2", "naïve").
    Word,
    /// A number: starts with a digit and holds no letter ("42", "3.14").
    Number,
    /// A run of whitespace, line breaks included.
    Space,
    /// One punctuation mark or symbol (emoji and other pictographs too).
    Punct,
}

/// One token: a slice of the input, where it starts, and its kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// The token's bytes, borrowed from the input.
    pub text: &'a str,
    /// Its byte offset in the input.
    pub start: usize,
    /// What it is.
    pub kind: TokenKind,
}

fn kind_of(segment: &str) -> TokenKind {
    if segment.chars().all(char::is_whitespace) {
        TokenKind::Space
    } else if segment.chars().any(char::is_alphabetic) {
        TokenKind::Word
    } else if segment.chars().next().is_some_and(char::is_numeric) {
        TokenKind::Number
    } else {
        TokenKind::Punct
    }
}

/// The tokens of `text`, in order: non-empty, contiguous, and concatenating
/// back to `text`.
///
/// ```
/// use engram::text::{tokenize, TokenKind};
/// let text = "The dog didn't bite 2.5 men!\r\n\n🐕‍🦺";
/// let tokens: Vec<_> = tokenize(text).collect();
/// let words: Vec<&str> = tokens.iter().map(|t| t.text).collect();
/// assert_eq!(words, ["The", " dog", " didn't", " bite", " 2.5", " men", "!", "\r\n\n", "🐕‍🦺"]);
/// assert_eq!(tokens[4].kind, TokenKind::Number);
/// assert_eq!(tokens[7].kind, TokenKind::Space);
/// assert_eq!(words.concat(), text);
/// ```
pub fn tokenize(text: &str) -> impl Iterator<Item = Token<'_>> {
    let mut segments = text.split_word_bound_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = segments.next()?;
        let kind = kind_of(first);
        let mut end = start + first.len();
        if first == " " {
            // One space, then a word or a number: one token.
            if let Some(&(at, next)) = segments.peek() {
                let k = kind_of(next);
                if at == end && matches!(k, TokenKind::Word | TokenKind::Number) {
                    end += next.len();
                    segments.next();
                    return Some(Token {
                        text: &text[start..end],
                        start,
                        kind: k,
                    });
                }
            }
        }
        if kind == TokenKind::Space {
            while let Some(&(at, next)) = segments.peek() {
                if at != end || kind_of(next) != TokenKind::Space {
                    break;
                }
                end += next.len();
                segments.next();
            }
        }
        Some(Token {
            text: &text[start..end],
            start,
            kind,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(s: &str) -> Vec<&str> {
        tokenize(s).map(|t| t.text).collect()
    }

    #[test]
    fn word_order_and_kinds() {
        assert_eq!(texts("dog bites man"), ["dog", " bites", " man"]);
        assert_eq!(texts("man bites dog"), ["man", " bites", " dog"]);
        let kinds: Vec<TokenKind> = tokenize("Hi, 1,000 ok?").map(|t| t.kind).collect();
        use TokenKind::*;
        assert_eq!(kinds, [Word, Punct, Number, Word, Punct]);
        assert_eq!(texts("Hi, 1,000 ok?"), ["Hi", ",", " 1,000", " ok", "?"]);
        // Only one plain space joins: not two, not a tab or a line break,
        // not before punctuation.
        assert_eq!(texts("a  b\tc\nd ."), ["a", "  ", "b", "\t", "c", "\n", "d", " ", "."]);
        assert_eq!(texts("日本語"), ["日", "本", "語"]);
        assert_eq!(texts("e\u{301}te\u{301}"), ["e\u{301}te\u{301}"]);
        assert_eq!(texts("a  \t b"), ["a", "  \t ", "b"]);
        assert_eq!(texts("a \t b"), ["a", " \t ", "b"]);
        assert_eq!(texts(""), Vec::<&str>::new());
    }

    /// Characters a generator of hostile text draws from: letters of several
    /// scripts, combining marks, digits and separators, emoji with ZWJ and
    /// skin tones, CJK, every kind of line break, controls (no NUL).
    fn hostile() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "Z",
            "é",
            "e\u{301}",
            "ß",
            "Ω",
            "ж",
            "ا",
            "ע",
            "क",
            "ि",
            "日",
            "本",
            "한",
            "ー",
            "0",
            "9",
            "٣",
            ".",
            ",",
            "'",
            "’",
            "-",
            "_",
            "!",
            "?",
            "(",
            ")",
            "«",
            "»",
            "…",
            "🙂",
            "👍🏽",
            "👩‍👩‍👧",
            "🐕‍🦺",
            "\u{200d}",
            "\u{fe0f}",
            " ",
            "  ",
            "\t",
            "\n",
            "\r",
            "\r\n",
            "\u{a0}",
            "\u{2028}",
            "\u{3000}",
            "\u{1}",
            "\u{7f}",
            "\u{85}",
            "\u{feff}",
            "\u{10ffff}",
            "$",
            "€",
            "+",
            "=",
            "#",
        ]);
        (prop::collection::vec(pieces, 0..40), any::<String>()).prop_map(|(p, tail)| {
            let tail: String = tail.chars().filter(|&c| c != '\0').collect();
            p.concat() + &tail
        })
    }

    proptest! {
        #[test]
        fn tokens_are_lossless_contiguous_and_well_kinded(s in hostile()) {
            let tokens: Vec<Token<'_>> = tokenize(&s).collect();
            let mut at = 0;
            for (i, t) in tokens.iter().enumerate() {
                prop_assert!(!t.text.is_empty());
                prop_assert_eq!(t.start, at);
                prop_assert_eq!(&s[t.start..t.start + t.text.len()], t.text);
                at += t.text.len();
                match t.kind {
                    TokenKind::Space => {
                        prop_assert!(t.text.chars().all(char::is_whitespace));
                        // Whitespace runs are whole: no two in a row.
                        prop_assert!(i == 0 || tokens[i - 1].kind != TokenKind::Space);
                    }
                    // A word or a number may carry one leading space.
                    TokenKind::Word => prop_assert!(t.text.chars().any(char::is_alphabetic)),
                    TokenKind::Number => {
                        let n = t.text.strip_prefix(' ').unwrap_or(t.text);
                        prop_assert!(n.chars().next().is_some_and(char::is_numeric));
                        prop_assert!(!t.text.chars().any(char::is_alphabetic));
                    }
                    TokenKind::Punct => prop_assert!(!t.text.chars().any(char::is_alphabetic)),
                }
            }
            prop_assert_eq!(at, s.len());
            prop_assert_eq!(tokens.iter().map(|t| t.text).collect::<String>(), s);
        }
    }
}
