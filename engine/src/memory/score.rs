//! The hybrid score of a memory (memory-scoring-math.md §1–2):
//!
//! `base = alpha cos + beta R + gamma S`, `score = base Q`, with
//!
//! - `cos` the similarity to the query, clamped to `[0, 1]`;
//! - `R = exp(-lambda_scope age)`, the recency, `age` in seconds (a record
//!   from the future counts as new), `lambda` per scope ([`RecencyRates`]);
//! - `S` the scope's weight: 1 for the active session, 0.6 for the durable
//!   namespace, 0.3 for global memory;
//! - `Q = 1 - delta decay_rate` for a summary (its decay rate being
//!   1 - its preservation confidence, clamped to `[0, 1]`), 1 otherwise.
//!
//! The weights are clamped to `[0, 1]` and renormalized to sum to 1
//! ([`Weights::normalized`]), so that `base` is a convex combination of
//! values in `[0, 1]`; `delta` is clamped to `[0, 1]`, so `Q` is in
//! `[1 - delta, 1]`. Every output is in `[0, 1]`, never NaN: non-finite
//! inputs are refused.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where a memory lives, which sets its scope weight and recency rate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The active session's memory.
    Session,
    /// Durable memory of a namespace (a user, an agent).
    Namespace,
    /// Memory shared by every namespace.
    Global,
}

impl Scope {
    /// All scopes, most local first.
    pub const ALL: [Scope; 3] = [Scope::Session, Scope::Namespace, Scope::Global];

    /// `S(d)`: 1, 0.6 or 0.3 (§1.3: tuned constants whose effect is
    /// bounded by `gamma`).
    ///
    /// ```
    /// use engram::memory::Scope;
    /// assert_eq!(Scope::Namespace.weight(), 0.6);
    /// ```
    pub fn weight(self) -> f64 {
        match self {
            Scope::Session => 1.0,
            Scope::Namespace => 0.6,
            Scope::Global => 0.3,
        }
    }

    /// Its name in settings, metadata and SQL.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Namespace => "namespace",
            Scope::Global => "global",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = Error;

    /// `session`, `namespace` or `global`.
    ///
    /// ```
    /// use engram::memory::Scope;
    /// assert_eq!("global".parse::<Scope>().unwrap(), Scope::Global);
    /// assert!("user".parse::<Scope>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Scope> {
        Scope::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("scope {s:?}: use session, namespace or global")))
    }
}

/// What a memory is: a conversation turn, a summary of turns (whose
/// quality scales its score), or a rule an author wrote.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A conversation turn.
    Turn,
    /// A summary of turns, made by compaction.
    Summary,
    /// An authored rule or fact.
    Authored,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 3] = [Kind::Turn, Kind::Summary, Kind::Authored];

    /// Its name in metadata and SQL.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Turn => "turn",
            Kind::Summary => "summary",
            Kind::Authored => "authored",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    /// `turn`, `summary` or `authored`.
    ///
    /// ```
    /// use engram::memory::Kind;
    /// assert_eq!("summary".parse::<Kind>().unwrap(), Kind::Summary);
    /// ```
    fn from_str(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("kind {s:?}: use turn, summary or authored")))
    }
}

/// Per-second recency decay rates by scope (§2): the defaults halve a
/// session memory's recency in about 1.9 hours, a namespace's in 19 hours
/// and a global one's in 4 days. Tune these, not the formula.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RecencyRates {
    /// Rate of the active session's memories (1/s).
    pub session: f64,
    /// Rate of durable namespace memories (1/s).
    pub namespace: f64,
    /// Rate of global memories (1/s).
    pub global: f64,
}

impl Default for RecencyRates {
    fn default() -> Self {
        RecencyRates {
            session: 1e-4,
            namespace: 1e-5,
            global: 2e-6,
        }
    }
}

impl RecencyRates {
    /// The rate of `scope`.
    pub fn of(&self, scope: Scope) -> f64 {
        match scope {
            Scope::Session => self.session,
            Scope::Namespace => self.namespace,
            Scope::Global => self.global,
        }
    }

    /// `R = exp(-lambda_scope age)`, in `(0, 1]`; an age below zero (a
    /// timestamp ahead of the clock) counts as zero.
    ///
    /// ```
    /// use engram::memory::{RecencyRates, Scope};
    /// let r = RecencyRates::default();
    /// // One session half-life: ln 2 / 1e-4 seconds.
    /// assert!((r.recency(2f64.ln() / 1e-4, Scope::Session).unwrap() - 0.5).abs() < 1e-12);
    /// assert_eq!(r.recency(-5.0, Scope::Global).unwrap(), 1.0);
    /// ```
    pub fn recency(&self, age_seconds: f64, scope: Scope) -> Result<f64> {
        finite("age_seconds", age_seconds)?;
        self.checked()?;
        Ok((-self.of(scope) * age_seconds.max(0.0)).exp())
    }

    /// Check that every rate is finite and non-negative.
    pub fn checked(&self) -> Result<&RecencyRates> {
        for (name, r) in [
            ("session", self.session),
            ("namespace", self.namespace),
            ("global", self.global),
        ] {
            if !(r.is_finite() && r >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "recency rate of {name} memories must be finite and non-negative, not {r}"
                )));
            }
        }
        Ok(self)
    }
}

/// The hybrid score's weights: `alpha` (cosine), `beta` (recency),
/// `gamma` (scope) and `delta` (the summary quality penalty).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Weights {
    /// Weight of the cosine similarity.
    pub alpha: f64,
    /// Weight of the recency.
    pub beta: f64,
    /// Weight of the scope.
    pub gamma: f64,
    /// How much a summary's decay rate takes off its score.
    pub delta: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            alpha: 0.7,
            beta: 0.2,
            gamma: 0.1,
            delta: 0.5,
        }
    }
}

impl Weights {
    /// Each weight clamped to `[0, 1]`, then `alpha`, `beta` and `gamma`
    /// divided by their sum (so that raising one means lowering the
    /// others). An error if a weight is not finite or all three clamp to 0.
    ///
    /// ```
    /// use engram::memory::Weights;
    /// let w = Weights { alpha: 2.0, beta: 1.0, gamma: -1.0, delta: 3.0 }.normalized().unwrap();
    /// assert_eq!((w.alpha, w.beta, w.gamma, w.delta), (0.5, 0.5, 0.0, 1.0));
    /// ```
    pub fn normalized(&self) -> Result<Weights> {
        for (name, w) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
            ("delta", self.delta),
        ] {
            finite(name, w)?;
        }
        let (a, b, g) = (
            self.alpha.clamp(0.0, 1.0),
            self.beta.clamp(0.0, 1.0),
            self.gamma.clamp(0.0, 1.0),
        );
        let sum = a + b + g;
        if sum <= 0.0 {
            return Err(Error::InvalidArgument(
                "alpha, beta and gamma are all 0 (after clamping to [0, 1]): nothing to score by".into(),
            ));
        }
        Ok(Weights {
            alpha: a / sum,
            beta: b / sum,
            gamma: g / sum,
            delta: self.delta.clamp(0.0, 1.0),
        })
    }
}

/// A memory's hybrid score and what it is made of, each in `[0, 1]`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Components {
    /// The similarity, clamped to `[0, 1]`.
    pub cosine: f64,
    /// `R`, the recency.
    pub recency: f64,
    /// `S`, the scope's weight.
    pub scope: f64,
    /// `Q`, the quality multiplier (1 unless a summary).
    pub quality: f64,
    /// `(alpha cos + beta R + gamma S) Q`, the weights normalized.
    pub score: f64,
}

/// The hybrid score of a memory of `kind` in `scope`, `age_seconds` old,
/// at similarity `cosine` to the query; `decay_rate` (clamped to
/// `[0, 1]`) counts for summaries only.
///
/// ```
/// use engram::memory::{hybrid, Kind, RecencyRates, Scope, Weights};
/// let c = hybrid(0.8, 0.0, Scope::Session, Kind::Turn, 0.0, &Weights::default(), &RecencyRates::default()).unwrap();
/// // 0.7 x 0.8 + 0.2 x 1 + 0.1 x 1
/// assert!((c.score - 0.86).abs() < 1e-12);
/// let s = hybrid(0.8, 0.0, Scope::Session, Kind::Summary, 0.4, &Weights::default(), &RecencyRates::default()).unwrap();
/// assert!((s.score - 0.86 * 0.8).abs() < 1e-12);
/// ```
pub fn hybrid(
    cosine: f64,
    age_seconds: f64,
    scope: Scope,
    kind: Kind,
    decay_rate: f64,
    weights: &Weights,
    rates: &RecencyRates,
) -> Result<Components> {
    finite("cosine", cosine)?;
    finite("decay_rate", decay_rate)?;
    let w = weights.normalized()?;
    let cosine = cosine.clamp(0.0, 1.0);
    let recency = rates.recency(age_seconds, scope)?;
    let s = scope.weight();
    let quality = match kind {
        Kind::Summary => 1.0 - w.delta * decay_rate.clamp(0.0, 1.0),
        Kind::Turn | Kind::Authored => 1.0,
    };
    // Rounding can take a convex combination of ones a hair past 1.
    let base = (w.alpha * cosine + w.beta * recency + w.gamma * s).min(1.0);
    Ok(Components {
        cosine,
        recency,
        scope: s,
        quality,
        score: base * quality,
    })
}

fn finite(what: &str, x: f64) -> Result<()> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} must be a finite number, not {x}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_formula_by_hand() {
        let rates = RecencyRates::default();
        // A namespace memory one day old, cosine 0.5, default weights.
        let c = hybrid(
            0.5,
            86_400.0,
            Scope::Namespace,
            Kind::Turn,
            0.9,
            &Weights::default(),
            &rates,
        )
        .unwrap();
        let r = (-1e-5f64 * 86_400.0).exp();
        assert!((c.recency - r).abs() < 1e-15);
        assert_eq!((c.scope, c.quality), (0.6, 1.0));
        assert!((c.score - (0.35 + 0.2 * r + 0.06)).abs() < 1e-12);
        // Negative similarities count as 0; summaries lose delta x decay.
        let s = hybrid(
            -0.3,
            0.0,
            Scope::Global,
            Kind::Summary,
            0.5,
            &Weights::default(),
            &rates,
        )
        .unwrap();
        assert_eq!(s.cosine, 0.0);
        assert!((s.quality - 0.75).abs() < 1e-15);
        assert!((s.score - (0.2 + 0.03) * 0.75).abs() < 1e-12);
        // Weights that do not sum to 1 are rescaled: (1, 1, 0) is (0.5, 0.5, 0).
        let w = Weights {
            alpha: 1.0,
            beta: 1.0,
            gamma: 0.0,
            delta: 0.0,
        };
        let h = hybrid(0.2, 0.0, Scope::Session, Kind::Summary, 1.0, &w, &rates).unwrap();
        assert!((h.score - 0.6).abs() < 1e-12);
    }

    #[test]
    fn boundary_weights_collapse_to_one_signal() {
        let rates = RecencyRates::default();
        let only = |alpha, beta, gamma| Weights {
            alpha,
            beta,
            gamma,
            delta: 0.5,
        };
        let at = |w: Weights| {
            hybrid(0.37, 3600.0, Scope::Global, Kind::Turn, 0.0, &w, &rates)
                .unwrap()
                .score
        };
        assert!((at(only(1.0, 0.0, 0.0)) - 0.37).abs() < 1e-15);
        assert!((at(only(0.0, 1.0, 0.0)) - (-2e-6f64 * 3600.0).exp()).abs() < 1e-15);
        assert!((at(only(0.0, 0.0, 1.0)) - 0.3).abs() < 1e-15);
        assert!(hybrid(0.5, 0.0, Scope::Session, Kind::Turn, 0.0, &only(0.0, -1.0, 0.0), &rates).is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_nan() {
        let (w, r) = (Weights::default(), RecencyRates::default());
        assert!(hybrid(f64::NAN, 0.0, Scope::Session, Kind::Turn, 0.0, &w, &r).is_err());
        assert!(hybrid(0.5, f64::INFINITY, Scope::Session, Kind::Turn, 0.0, &w, &r).is_err());
        assert!(hybrid(0.5, 0.0, Scope::Session, Kind::Summary, f64::NAN, &w, &r).is_err());
        let bad_rate = RecencyRates {
            session: -1.0,
            ..RecencyRates::default()
        };
        assert!(hybrid(0.5, 0.0, Scope::Global, Kind::Turn, 0.0, &w, &bad_rate).is_err());
        let bad_w = Weights {
            delta: f64::NAN,
            ..Weights::default()
        };
        assert!(hybrid(0.5, 0.0, Scope::Session, Kind::Turn, 0.0, &bad_w, &r).is_err());
        for s in Scope::ALL {
            assert_eq!(s.name().parse::<Scope>().unwrap(), s);
        }
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>().unwrap(), k);
        }
    }

    proptest! {
        /// §1.1: every output in [0, 1] for any finite input, and
        /// Q in [1 - delta, 1].
        #[test]
        fn every_output_is_bounded(
            cosine in -2.0f64..2.0,
            age in -1e9f64..1e12,
            scope in 0usize..3,
            kind in 0usize..3,
            decay in -1.0f64..2.0,
            alpha in -1.0f64..2.0,
            beta in -1.0f64..2.0,
            gamma in 0.001f64..2.0,
            delta in -1.0f64..2.0,
        ) {
            let w = Weights { alpha, beta, gamma, delta };
            let c = hybrid(cosine, age, Scope::ALL[scope], Kind::ALL[kind], decay, &w, &RecencyRates::default()).unwrap();
            for x in [c.cosine, c.recency, c.scope, c.quality, c.score] {
                prop_assert!((0.0..=1.0).contains(&x), "{c:?}");
            }
            let n = w.normalized().unwrap();
            prop_assert!((n.alpha + n.beta + n.gamma - 1.0).abs() < 1e-12);
            prop_assert!(c.quality >= 1.0 - n.delta - 1e-15);
            prop_assert!(c.score <= c.quality + 1e-15);
        }

        /// Older is never more recent; a more local scope never scores less.
        #[test]
        fn recency_falls_with_age(a in 0.0f64..1e9, b in 0.0f64..1e9, scope in 0usize..3) {
            let r = RecencyRates::default();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(r.recency(lo, Scope::ALL[scope]).unwrap() >= r.recency(hi, Scope::ALL[scope]).unwrap());
        }
    }
}
