//! Token estimates and budget packing (memory-scoring-math.md §3).
//!
//! A prompt budget is counted in the model's tokens, which a memory store
//! does not have: the estimate is `ceil(characters / chi)` with `chi` the
//! characters per token of the text's script — 1.6 for CJK, 2.5 for
//! Cyrillic, Arabic and Hebrew, 4 otherwise. Each character counts at its
//! own script's rate (`ceil(sum 1 / chi(c))`), which is the seed's formula
//! for text in one script and stays sensible for mixed text. Characters
//! are Unicode code points, not bytes.
//!
//! Packing keeps rank order: the longest prefix of the ranked candidates
//! whose estimates fit the budget ([`fit_budget`]).

/// What `c` costs, in fortieths of a token: `40 / chi` for its script's
/// characters per token `chi` (25 for CJK at 1.6, 16 for Cyrillic, Arabic
/// and Hebrew at 2.5, 10 otherwise at 4), so that sums and the ceiling are
/// exact integers.
fn units(c: char) -> u64 {
    let u = c as u32;
    let cjk = matches!(u,
        0x1100..=0x11FF     // Hangul Jamo
        | 0x2E80..=0x2FDF   // CJK radicals, Kangxi
        | 0x3000..=0x303F   // CJK symbols and punctuation
        | 0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3100..=0x31FF   // Bopomofo, Hangul compatibility, Katakana extension
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0xFF00..=0xFFEF   // half- and full-width forms
        | 0x20000..=0x3FFFF // CJK extensions B and beyond
    );
    let rtl_or_cyrillic = matches!(u,
        0x0400..=0x052F     // Cyrillic and its supplement
        | 0x1C80..=0x1C8F   // Cyrillic extension C
        | 0x2DE0..=0x2DFF   // Cyrillic extension A
        | 0xA640..=0xA69F   // Cyrillic extension B
        | 0x0590..=0x05FF   // Hebrew
        | 0xFB1D..=0xFB4F   // Hebrew presentation forms
        | 0x0600..=0x06FF   // Arabic
        | 0x0750..=0x077F   // Arabic supplement
        | 0x08A0..=0x08FF   // Arabic extension A
        | 0xFB50..=0xFDFF   // Arabic presentation forms A
        | 0xFE70..=0xFEFF   // Arabic presentation forms B
    );
    if cjk {
        25
    } else if rtl_or_cyrillic {
        16
    } else {
        10
    }
}

/// The estimated model tokens of `text` (0 for the empty string).
///
/// ```
/// use engram::memory::estimate_tokens;
/// assert_eq!(estimate_tokens(""), 0);
/// assert_eq!(estimate_tokens("hello world"), 3); // ceil(11 / 4)
/// assert_eq!(estimate_tokens("привет"), 3);      // ceil(6 / 2.5)
/// assert_eq!(estimate_tokens("記憶"), 2);        // ceil(2 / 1.6)
/// ```
pub fn estimate_tokens(text: &str) -> u64 {
    text.chars().map(units).sum::<u64>().div_ceil(40)
}

/// How many leading items of `costs` (estimated tokens, in rank order) fit
/// in `budget`: the largest `m` with `costs[0] + ... + costs[m - 1] <=
/// budget`. Rank order is kept, so an item that does not fit ends the
/// prefix even if a later, smaller one would.
///
/// ```
/// use engram::memory::fit_budget;
/// assert_eq!(fit_budget([3, 4, 1], 7), 2);
/// assert_eq!(fit_budget([3, 5, 1], 7), 1);
/// assert_eq!(fit_budget([8], 7), 0);
/// ```
pub fn fit_budget(costs: impl IntoIterator<Item = u64>, budget: u64) -> usize {
    let mut used = 0u64;
    costs
        .into_iter()
        .take_while(|&c| match used.checked_add(c) {
            Some(u) if u <= budget => {
                used = u;
                true
            }
            _ => false,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_script_at_its_rate() {
        // ceil(n / chi) for text in one script.
        for n in 0..50usize {
            let latin = "a".repeat(n);
            let cyr = "д".repeat(n);
            let heb = "ש".repeat(n);
            let ara = "ع".repeat(n);
            let han = "字".repeat(n);
            let kana = "か".repeat(n);
            let hangul = "한".repeat(n);
            assert_eq!(estimate_tokens(&latin), (n as f64 / 4.0).ceil() as u64);
            for t in [&cyr, &heb, &ara] {
                assert_eq!(estimate_tokens(t), (n as f64 / 2.5).ceil() as u64, "{t}");
            }
            for t in [&han, &kana, &hangul] {
                assert_eq!(estimate_tokens(t), (n as f64 / 1.6).ceil() as u64, "{t}");
            }
        }
        // Code points, not bytes: "é" is one character of two bytes.
        assert_eq!(estimate_tokens("éééé"), 1);
        // Mixed: 4 Latin (1 token) + 2 Han (1.25 tokens) -> ceil(2.25) = 3.
        assert_eq!(estimate_tokens("abcd字字"), 3);
    }

    proptest! {
        /// The prefix fits, and one more item would not.
        #[test]
        fn the_longest_prefix_that_fits(costs in proptest::collection::vec(0u64..50, 0..30), budget in 0u64..400) {
            let m = fit_budget(costs.iter().copied(), budget);
            prop_assert!(costs[..m].iter().sum::<u64>() <= budget);
            if m < costs.len() {
                prop_assert!(costs[..=m].iter().sum::<u64>() > budget);
            }
        }

        /// Concatenation never saves more than one token per piece (each
        /// estimate rounds up once), and never costs more.
        #[test]
        fn estimates_are_subadditive(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            let (ea, eb, eab) = (estimate_tokens(&a), estimate_tokens(&b), estimate_tokens(&(a.clone() + &b)));
            prop_assert!(eab <= ea + eb);
            prop_assert!(eab + 1 >= ea + eb);
        }
    }

    #[test]
    fn huge_costs_do_not_overflow() {
        assert_eq!(fit_budget([u64::MAX, 1], u64::MAX), 1);
        assert_eq!(fit_budget([u64::MAX, u64::MAX], u64::MAX), 1);
    }
}
