//! Fitting (l2s-transformer §12, made practical): the parameters of the
//! mixture — the discounts of every order, `beta`, each level's `pi`, each strategy's
//! `alpha` and `tau` — and the strategy of each energy bin are chosen to
//! minimize the negative log-likelihood (the energy) of a held-out slice
//! of the training text.
//!
//! The slice is the documents whose seeded hash of their id falls below
//! `heldout_fraction` (at least one; with a single document, its last
//! part), up to `heldout_tokens` tokens: reproducible from the settings,
//! so the store determines it. Those tokens are scored as if never learned
//! — their occurrences are taken back in an [`Overlay`] (counts and
//! continuation counts), and retrieval skips contexts left with no count —
//! so fitting sees what held-out text would, not its own counts.
//!
//! Each held-out token is searched once, as wide as any strategy searches;
//! every candidate parameter set is then evaluated on what was found, by
//! coordinate descent over small grids (two sweeps). The spelling model
//! still knows the held-out tokens' spellings: their unknown-word cost is
//! a little optimistic, which touches no fitted parameter but the discount.

use super::model::Generator;
use super::overlay::Overlay;
use super::predict::{level_weights, Evidence, History, Params};
use super::retrieve::mix;
use super::smooth::{order0, Base, Classes, Discount};
use super::strategy::Strategy;
use crate::error::{Error, Result};
use crate::storage::{Snapshot, Store};
use crate::text::tokenize;
use crate::text::vocab::TokenId;

/// What a fit did.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Documents the held-out slice came from, by id.
    pub heldout_documents: Vec<u64>,
    /// Its tokens and characters.
    pub heldout_tokens: u64,
    /// See `heldout_tokens`.
    pub heldout_chars: u64,
    /// Bits per character of the slice under the parameters before the fit.
    pub bpc_before: f64,
    /// ... and under the fitted ones.
    pub bpc_after: f64,
    /// The parameters now in use.
    pub params: Params,
    /// Parameter sets evaluated.
    pub evaluations: u64,
}

/// One held-out token and what scoring it needs under any parameters.
struct Case {
    w: TokenId,
    /// Its continuation count (after taking the slice back) and spelling
    /// probability: `P_0` for any discount.
    cont: f64,
    spelled: f64,
    ev: Evidence,
    /// Per strategy: each retrieving level's (index, entropy, probability of `w`).
    per_strategy: [Vec<(usize, f64, f64)>; 4],
}

/// The slice's tokens of one document: its token ids and the held-out range.
struct Slice {
    doc: u64,
    ids: Vec<TokenId>,
    words: Vec<String>,
    range: std::ops::Range<usize>,
}

impl Generator {
    /// Fit the parameters on the held-out slice (see the module
    /// documentation) and record them if they score it better than those in
    /// use. `progress(done, all)` follows the searches (the long part); an
    /// error it returns cancels the fit, which then changes nothing.
    pub fn fit(&self, store: &Store, progress: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<FitReport> {
        let snap = store.snapshot()?;
        let report = self.fit_with(&snap, &self.recorded_params(&snap)?, progress)?;
        if report.bpc_after < report.bpc_before {
            self.set_params(store, &report.params)?;
        }
        Ok(report)
    }

    /// Fit on `snap` starting from `start`, writing nothing: the report's
    /// parameters are the fitted ones if they score the slice better, else
    /// `start` (for a caller that records parameters elsewhere, as the
    /// PostgreSQL extension does in its catalog).
    pub fn fit_with(
        &self,
        snap: &Snapshot,
        start: &Params,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<FitReport> {
        let snap = snap.clone();
        let slices = self.heldout(&snap)?;
        if slices.is_empty() {
            return Err(Error::InvalidArgument("fitting needs a learned document".into()));
        }
        let levels = self.levels();
        start.checked(levels.levels().len())?;
        // Take the slice back.
        let mut overlay = Overlay::new(levels);
        let mut base: Base = (*self.base(&snap)?).clone();
        for (seq, s) in slices.iter().enumerate() {
            overlay.begin(seq);
            for i in s.range.clone() {
                if let Some((t, d)) = overlay.observe(levels, &snap, &s.ids, i, -1)? {
                    base.add_cont(t, d);
                }
            }
        }
        // Unfitted discounts are estimated as the store would without the
        // slice.
        let taken = overlay.counts_of_counts(|w| Ok(self.vocab().get(&snap, w)?.map_or(0, |i| i.cont)))?;
        let start = self.in_use_less(&snap, start, Some(&taken))?;
        let total: usize = slices.iter().map(|s| s.range.len()).sum();
        let longest = levels.levels().last().map_or(0, |l| l.r);
        let mut cases = Vec::with_capacity(total);
        let mut chars = 0u64;
        for s in &slices {
            let embs: Vec<Vec<f32>> = s.words.iter().map(|w| self.embedder().embed(w)).collect();
            for i in s.range.clone() {
                if cases.len() % 256 == 0 {
                    progress(cases.len(), total)?;
                }
                chars += s.words[i].chars().count() as u64;
                let from = i.saturating_sub(longest);
                let refs: Vec<&[f32]> = embs[from..i].iter().map(|e| e.as_slice()).collect();
                let history = History {
                    tokens: &s.ids[from..i],
                    embeddings: &refs,
                    pos: i as u64,
                };
                let ev = levels.gather(&snap, Some(&overlay), &start, history, true)?;
                let (cont, spelled) = base.parts(s.ids[i], &s.words[i]);
                let mut c = Case {
                    w: s.ids[i],
                    cont,
                    spelled,
                    ev,
                    per_strategy: Default::default(),
                };
                for st in Strategy::ALL {
                    c.per_strategy[st.index()] = retrieval_of(&c, levels, &start, st);
                }
                cases.push(c);
            }
        }
        progress(total, total)?;
        let classes = base.classes();
        let nlevels = levels.levels().len();
        let mut evaluations = 0u64;
        let mut eval = |p: &Params, cases: &[Case]| -> f64 {
            evaluations += 1;
            let d = p.discounts_for(nlevels);
            cases.iter().map(|c| -prob(c, p, &d, &classes).log2()).sum::<f64>()
        };
        let before = eval(&start, &cases);
        let mut best = start.clone();
        if best.pi.is_empty() {
            best.pi = vec![1.0; levels.levels().len()];
        }
        best.discounts = best.discounts_for(levels.levels().len());
        let mut best_bits = eval(&best, &cases);
        for _sweep in 0..2 {
            // Each move: a candidate value for one parameter; kept if better.
            let mut try_set = |best: &mut Params, best_bits: &mut f64, cand: Params, cases: &[Case]| {
                if cand.checked(levels.levels().len()).is_ok() {
                    let b = eval(&cand, cases);
                    if b < *best_bits - 1e-9 {
                        *best = cand;
                        *best_bits = b;
                    }
                }
            };
            // Each discount of each order, one at a time.
            for i in 0..best.discounts.len() {
                for k in 0..3 {
                    let now = best.discounts[i].0[k];
                    for f in [0.6, 0.8, 0.9, 1.1, 1.25, 1.5] {
                        let mut c = best.clone();
                        c.discounts[i].0[k] = (now * f).min(k as f64 + 0.99);
                        try_set(&mut best, &mut best_bits, c, &cases);
                    }
                }
            }
            for b in [0.1, 0.25, 0.5, 1.0, 2.0, 4.0] {
                let mut c = best.clone();
                c.beta = b;
                try_set(&mut best, &mut best_bits, c, &cases);
            }
            for j in 0..best.pi.len() {
                for pi in [0.25, 0.5, 1.0, 2.0, 4.0] {
                    let mut c = best.clone();
                    c.pi[j] = pi;
                    try_set(&mut best, &mut best_bits, c, &cases);
                }
            }
            for st in Strategy::ALL {
                for a in [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6] {
                    let mut c = best.clone();
                    c.strategies.params[st.index()].alpha = a;
                    try_set(&mut best, &mut best_bits, c, &cases);
                }
                let tau = best.strategies.of(st).tau;
                for t in [tau * 0.5, tau * 2.0] {
                    let mut c = best.clone();
                    c.strategies.params[st.index()].tau = t;
                    let retrieve = |cases: &mut [Case], p: &Params| {
                        for case in cases.iter_mut() {
                            case.per_strategy[st.index()] = retrieval_of(case, levels, p, st);
                        }
                    };
                    retrieve(&mut cases, &c);
                    try_set(&mut best, &mut best_bits, c, &cases);
                    retrieve(&mut cases, &best);
                }
            }
            for bin in 0..4 {
                for st in Strategy::ALL {
                    let mut c = best.clone();
                    c.strategies.bins[bin] = st;
                    try_set(&mut best, &mut best_bits, c, &cases);
                }
            }
        }
        let chars_f = chars.max(1) as f64;
        let params = if best_bits < before { best } else { start };
        Ok(FitReport {
            heldout_documents: slices.iter().map(|s| s.doc).collect(),
            heldout_tokens: total as u64,
            heldout_chars: chars,
            bpc_before: before / chars_f,
            bpc_after: best_bits.min(before) / chars_f,
            params,
            evaluations,
        })
    }

    /// The held-out slice (see the module documentation).
    fn heldout(&self, snap: &crate::storage::Snapshot) -> Result<Vec<Slice>> {
        let s = self.settings();
        let docs = self.documents(snap)?;
        let unit = |id: u64| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(&id.to_le_bytes(), s.seed);
            h as f64 / u64::MAX as f64
        };
        let mut chosen: Vec<&(u64, String)> = docs.iter().filter(|d| unit(d.0) < s.heldout_fraction).collect();
        if chosen.is_empty() || chosen.len() == docs.len() {
            // Too few documents for the fraction: the one of lowest hash.
            chosen = docs
                .iter()
                .min_by(|a, b| unit(a.0).total_cmp(&unit(b.0)))
                .into_iter()
                .collect();
        }
        let whole = docs.len() > 1;
        let mut out = Vec::new();
        let mut budget = s.heldout_tokens;
        for (doc, body) in chosen {
            if budget == 0 {
                break;
            }
            let words: Vec<String> = tokenize(body).map(|t| t.text.to_string()).collect();
            let mut ids = Vec::with_capacity(words.len());
            for w in &words {
                ids.push(
                    self.token_id(snap, w)?
                        .ok_or_else(|| Error::Internal(format!("learned token {w:?} has no id")))?,
                );
            }
            let from = if whole {
                0
            } else {
                // A single document: its last part.
                words.len() - ((words.len() as f64 * s.heldout_fraction).ceil() as usize).min(words.len())
            };
            let to = words.len().min(from + budget);
            budget -= to - from;
            if to > from {
                out.push(Slice {
                    doc: *doc,
                    ids,
                    words,
                    range: from..to,
                });
            }
        }
        Ok(out)
    }
}

/// Each retrieving level of `c` under strategy `st` of `p`: (level index,
/// entropy, probability of the token).
fn retrieval_of(c: &Case, levels: &super::levels::Levels, p: &Params, st: Strategy) -> Vec<(usize, f64, f64)> {
    let sp = p.strategies.of(st);
    c.ev.hits
        .iter()
        .filter(|(j, hits)| {
            let r = levels.levels()[*j].r;
            !hits.is_empty() && (sp.max_r == 0 || r <= sp.max_r)
        })
        .map(|(j, hits)| {
            let got = mix(levels.levels()[*j].r, hits, sp, c.ev.pos);
            (*j, got.entropy, got.prob(c.w))
        })
        .collect()
}

/// The probability of a case's token under `p` (the formula of
/// [`Prediction::prob`](super::predict::Prediction::prob), on cached parts).
fn prob(c: &Case, p: &Params, d: &[Discount], classes: &Classes) -> f64 {
    let kn = c.ev.exact.prob(order0(c.cont, c.spelled, classes, d[0]), c.w, d);
    let st = p.strategies.pick(c.ev.energy);
    let levels = &c.per_strategy[st.index()];
    let weights = level_weights(p, levels.iter().map(|&(j, h, _)| (j, h)));
    let retrieval: f64 = levels.iter().zip(&weights).map(|(&(_, _, q), v)| v * q).sum();
    let alpha = if weights.is_empty() {
        0.0
    } else {
        p.strategies.of(st).alpha
    };
    (1.0 - alpha) * kn + alpha * retrieval
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::model::Settings;
    use crate::generate::rng::SplitMix;
    use crate::generate::ScoreMode;
    use crate::storage::StoreOptions;

    /// Documents over one small vocabulary, so that every word of any
    /// document is also in the others.
    fn docs() -> Vec<(u64, String)> {
        let words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "log", "and", "a"];
        let mut rng = SplitMix(5);
        (0..24)
            .map(|d| {
                let mut s = String::from("the cat sat on a mat and a dog ran");
                for _ in 0..30 {
                    s.push(' ');
                    s.push_str(words[(rng.next() % words.len() as u64) as usize]);
                }
                (d, s)
            })
            .collect()
    }

    fn no_retrieval() -> Params {
        let mut p = Params::default();
        for s in p.strategies.params.iter_mut() {
            s.alpha = 0.0;
        }
        p
    }

    #[test]
    fn fitting_scores_the_slice_as_if_unlearned_and_never_worsens_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            lengths: vec![1, 2, 3],
            heldout_fraction: 0.2,
            ..Settings::default()
        };
        let docs = docs();
        let store = Store::create(dir.path().join("all"), StoreOptions::default()).unwrap();
        let g = Generator::create(&store, settings.clone()).unwrap();
        let refs: Vec<(u64, &str)> = docs.iter().map(|(d, s)| (*d, s.as_str())).collect();
        g.learn(&store, &refs).unwrap();
        g.set_params(&store, &no_retrieval()).unwrap();
        let report = g.fit(&store, &mut |_, _| Ok(())).unwrap();
        let held = &report.heldout_documents;
        assert!(!held.is_empty() && held.len() < docs.len(), "{held:?}");

        // Reference: a generator that never learned the held-out documents
        // scores them, statically, with the parameters before the fit.
        let other = Store::create(dir.path().join("rest"), StoreOptions::default()).unwrap();
        let r = Generator::create(&other, settings).unwrap();
        let rest: Vec<(u64, &str)> = refs.iter().filter(|d| !held.contains(&d.0)).copied().collect();
        r.learn(&other, &rest).unwrap();
        let snap = other.snapshot().unwrap();
        let (mut bits, mut chars) = (0.0, 0u64);
        for (d, text) in &refs {
            if held.contains(d) {
                let s = r
                    .score_with(&snap, &no_retrieval(), text, ScoreMode::default(), &mut |_, _| Ok(()))
                    .unwrap();
                bits += s.bits;
                chars += s.chars;
            }
        }
        assert_eq!(report.heldout_chars, chars);
        assert!(
            (report.bpc_before - bits / chars as f64).abs() < 1e-9,
            "{} vs {}",
            report.bpc_before,
            bits / chars as f64
        );
        assert!(report.bpc_after <= report.bpc_before);
        assert_eq!(g.params(&store.snapshot().unwrap()).unwrap(), report.params);
        // The same store fits to the same parameters.
        let again = g.fit(&store, &mut |_, _| Ok(())).unwrap();
        assert_eq!(again.heldout_documents, report.heldout_documents);
        assert!(again.bpc_before <= report.bpc_before + 1e-12);
        // A cancel changes nothing.
        let before = store.snapshot().unwrap().version();
        assert!(g.fit(&store, &mut |_, _| Err(Error::Cancelled)).is_err());
        assert_eq!(store.snapshot().unwrap().version(), before);
    }
}
