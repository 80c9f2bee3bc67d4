//! The Kneser-Ney baseline of `bench_generate`: interpolated modified
//! Kneser-Ney (Chen & Goodman's three discounts per order, estimated from
//! count-of-counts) over the same lossless tokens engram uses, written here
//! from the textbook definition, independent of engram's own smoothing.
//!
//! The highest order counts raw occurrences; every lower order counts, for
//! a context `h` and token `w`, the distinct tokens seen before `h w`. The
//! lowest order interpolates with a spelling model over all strings (the
//! same character model engram uses, so unknown words cost both alike and
//! both are lossless).

use std::collections::HashMap;

use engram::generate::Speller;
use engram::text::tokenize;

fn hash(ids: &[u32]) -> u64 {
    let mut b = Vec::with_capacity(4 * ids.len() + 8);
    b.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for i in ids {
        b.extend_from_slice(&i.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&b)
}

#[derive(Default, Clone, Copy)]
struct Totals {
    sum: f64,
    n1: f64,
    n2: f64,
    n3: f64,
}

/// One order: counts of (context, token), and per context its totals.
#[derive(Default)]
struct Order {
    counts: HashMap<(u64, u32), u32>,
    totals: HashMap<u64, Totals>,
    /// D1, D2, D3+.
    d: [f64; 3],
}

/// An interpolated modified Kneser-Ney model of order `n` (contexts of up
/// to `n - 1` tokens).
pub struct Kn {
    n: usize,
    ids: HashMap<String, u32>,
    /// By context length 0 ..= n - 1.
    orders: Vec<Order>,
    speller: Speller,
}

impl Kn {
    /// Train on `docs` (each tokenized; contexts never cross documents).
    pub fn train(docs: &[String], n: usize) -> Kn {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let seqs: Vec<Vec<u32>> = docs
            .iter()
            .map(|d| {
                tokenize(d)
                    .map(|t| {
                        let next = ids.len() as u32;
                        *ids.entry(t.text.to_string()).or_insert(next)
                    })
                    .collect()
            })
            .collect();
        let mut speller = Speller::default();
        ids.keys().for_each(|t| speller.add(t));
        // Raw counts at the top order; (context, token) -> (count, suffix context hash).
        let top = n - 1;
        let mut raw: Vec<HashMap<(u64, u32), (u32, u64)>> = (0..n).map(|_| HashMap::new()).collect();
        for s in &seqs {
            for i in 0..s.len() {
                for m in 0..=top.min(i) {
                    let ctx = hash(&s[i - m..i]);
                    let suffix = if m > 0 { hash(&s[i - m + 1..i]) } else { 0 };
                    raw[m].entry((ctx, s[i])).or_insert((0, suffix)).0 += 1;
                }
            }
        }
        // Order m < top counts distinct left extensions seen at m + 1.
        let mut orders: Vec<Order> = (0..n).map(|_| Order::default()).collect();
        orders[top].counts = raw[top].iter().map(|(&k, &(c, _))| (k, c)).collect();
        for m in (0..top).rev() {
            let mut c: HashMap<(u64, u32), u32> = HashMap::new();
            for (&(_, w), &(_, suffix)) in &raw[m + 1] {
                *c.entry((suffix, w)).or_default() += 1;
            }
            // Contexts only ever seen at the start of a document have no
            // left extension: they keep their raw counts.
            for (&k, &(cnt, _)) in &raw[m] {
                let ctx_extended = c.contains_key(&k);
                if !ctx_extended {
                    c.entry(k).or_insert(cnt.min(1));
                }
            }
            orders[m].counts = c;
        }
        for o in orders.iter_mut() {
            let mut coc = [0f64; 5];
            for (&(ctx, _), &c) in &o.counts {
                let t = o.totals.entry(ctx).or_default();
                t.sum += f64::from(c);
                match c {
                    1 => t.n1 += 1.0,
                    2 => t.n2 += 1.0,
                    _ => t.n3 += 1.0,
                }
                if (c as usize) < 5 {
                    coc[c as usize] += 1.0;
                }
            }
            let y = coc[1] / (coc[1] + 2.0 * coc[2]).max(1.0);
            let safe = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            o.d = [
                (1.0 - 2.0 * y * safe(coc[2], coc[1])).clamp(0.05, 0.95),
                (2.0 - 3.0 * y * safe(coc[3], coc[2])).clamp(0.05, 1.95),
                (3.0 - 4.0 * y * safe(coc[4], coc[3])).clamp(0.05, 2.95),
            ];
        }
        Kn {
            n,
            ids,
            orders,
            speller,
        }
    }

    /// The discounts of each order, lowest first.
    pub fn discounts(&self) -> Vec<[f64; 3]> {
        self.orders.iter().map(|o| o.d).collect()
    }

    /// `P(w | hist)` for token `w` spelled `text` (`known`: learned).
    fn prob(&self, hist: &[u32], w: u32, known: bool, text: &str) -> f64 {
        // Bottom up: order 0 over the spelling model, then each longer context.
        let mut p = self.speller.prob_of(text);
        for m in 0..self.n.min(hist.len() + 1) {
            let ctx = hash(&hist[hist.len() - m..]);
            let o = &self.orders[m];
            let Some(tot) = o.totals.get(&ctx) else { continue };
            let c = if known {
                o.counts.get(&(ctx, w)).copied().unwrap_or(0)
            } else {
                0
            };
            let d = match c {
                0 => 0.0,
                1 => o.d[0],
                2 => o.d[1],
                _ => o.d[2],
            };
            let gamma = (o.d[0] * tot.n1 + o.d[1] * tot.n2 + o.d[2] * tot.n3) / tot.sum;
            p = (f64::from(c) - d).max(0.0) / tot.sum + gamma * p;
        }
        p
    }

    /// `-log2 P(text)`, each token from the tokens before it, and the
    /// number of Unicode characters.
    pub fn bits(&self, text: &str) -> (f64, u64) {
        let mut hist: Vec<u32> = Vec::new();
        let mut bits = 0.0;
        // Tokens never learned get ids past the vocabulary (so contexts
        // holding them are never found).
        let mut unknown: HashMap<&str, u32> = HashMap::new();
        for t in tokenize(text) {
            let id = self.ids.get(t.text).copied();
            let w = id.unwrap_or_else(|| {
                let next = self.ids.len() as u32 + unknown.len() as u32;
                *unknown.entry(t.text).or_insert(next)
            });
            bits -= self.prob(&hist, w, id.is_some(), t.text).log2();
            hist.push(w);
            if hist.len() > self.n {
                hist.remove(0);
            }
        }
        (bits, text.chars().count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kneser_ney_is_a_distribution_and_learns() {
        let docs = vec!["the cat sat on the mat. the cat ran.".to_string()];
        let kn = Kn::train(&docs, 3);
        // Seen text is cheaper than shuffled text; unknown words cost but are finite.
        let (a, _) = kn.bits(" the cat sat on the mat.");
        let (b, _) = kn.bits(" mat the on sat cat the.");
        assert!(a < b);
        let (u, chars) = kn.bits("zebra!");
        assert!(u.is_finite() && u > 0.0 && chars == 6);
        // At any context the learned tokens and the strings never learned
        // (the spelled rest) share exactly 1.
        for hist in [
            vec![],
            vec![kn.ids["the"]],
            vec![kn.ids["the"], kn.ids[" cat"]],
            vec![9999],
        ] {
            let known: f64 = kn.ids.iter().map(|(t, &w)| kn.prob(&hist, w, true, t)).sum();
            let spelled: f64 = kn.ids.keys().map(|t| kn.speller.prob_of(t)).sum();
            let gamma = kn.prob(&hist, 12345, false, "zzz") / kn.speller.prob_of("zzz");
            let total = known + gamma * (1.0 - spelled);
            assert!((total - 1.0).abs() < 1e-9, "{hist:?}: {total}");
        }
    }
}
