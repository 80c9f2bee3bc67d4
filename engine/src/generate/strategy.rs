//! Search strategies and the energy that picks them (l2s-transformer §11,
//! §13.2).
//!
//! Every step first probes each level with the balanced strategy's search.
//! The **energy** of the step is how flat the probed similarities are: per
//! level, the entropy of `softmax(sim / ENERGY_TAU)` over its neighbours,
//! divided by `ln n` (so 0 when one neighbour stands out, 1 when all are
//! alike); the step's energy is the mean over the levels that found
//! anything, and 1 when none did. Its **confidence** is `exp(-energy)`.
//!
//! The energy falls in one of four bins (edges [`ENERGY_EDGES`]); each bin
//! names the strategy to use — by default precise, balanced, broad and
//! fallback from the lowest energy up — and fitting may choose another per
//! bin. A strategy sets the retrieval's `k`, softmax temperature `tau`,
//! graph search `ef`, the weight of position agreement, the share `alpha`
//! retrieval gets beside the exact statistics, and the longest context it
//! retrieves at (fallback keeps to short, general contexts).

use crate::error::{Error, Result};

/// The temperature the energy is measured at (fixed, so that the bins of
/// a step never depend on what fitting changes).
pub const ENERGY_TAU: f64 = 0.05;

/// Upper edges of the first three energy bins; the fourth is the rest.
pub const ENERGY_EDGES: [f64; 3] = [0.25, 0.5, 0.75];

/// The four strategies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Few, sharply weighted neighbours: the context is well known.
    Precise,
    /// The default.
    Balanced,
    /// More neighbours, searched wider, weighted more evenly.
    Broad,
    /// Short contexts only, little weight: nothing near was found.
    Fallback,
}

impl Strategy {
    /// All four, in bin order of the defaults.
    pub const ALL: [Strategy; 4] = [
        Strategy::Precise,
        Strategy::Balanced,
        Strategy::Broad,
        Strategy::Fallback,
    ];

    /// Its name, as SQL and traces show it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Precise => "precise",
            Strategy::Balanced => "balanced",
            Strategy::Broad => "broad",
            Strategy::Fallback => "fallback",
        }
    }

    /// The strategy of name `name`.
    pub fn from_name(name: &str) -> Result<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            Error::InvalidArgument(format!("no strategy {name:?}: precise, balanced, broad or fallback"))
        })
    }

    /// Its index in [`Strategy::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a strategy sets.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StrategyParams {
    /// Neighbours per level.
    pub k: usize,
    /// Softmax temperature over their similarities (> 0).
    pub tau: f64,
    /// The graph search's candidate list.
    pub ef: usize,
    /// Added to a neighbour's similarity times its position agreement
    /// (`exp(-|q - p| / POSITION_SCALE)`), before the top `k` are kept.
    pub position_weight: f64,
    /// Retrieval's share beside the exact statistics, in [0, 1].
    pub alpha: f64,
    /// Longest context length retrieved at (0: every level).
    pub max_r: usize,
}

/// Positions (in tokens) over which position agreement halves about 1.4 times.
pub const POSITION_SCALE: f64 = 256.0;

/// The strategies' parameters and the strategy of each energy bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategies {
    /// By [`Strategy::index`].
    pub params: [StrategyParams; 4],
    /// The strategy of each energy bin, lowest energy first.
    pub bins: [Strategy; 4],
}

impl Default for Strategies {
    fn default() -> Self {
        let p = |k, tau, ef, position_weight, alpha, max_r| StrategyParams {
            k,
            tau,
            ef,
            position_weight,
            alpha,
            max_r,
        };
        Strategies {
            params: [
                p(4, 0.12, 32, 0.0, 0.1, 0),
                p(8, 0.2, 64, 0.02, 0.05, 0),
                p(16, 0.2, 64, 0.0, 0.05, 0),
                p(8, 0.1, 64, 0.0, 0.05, 2),
            ],
            bins: Strategy::ALL,
        }
    }
}

impl Strategies {
    /// Check every parameter.
    pub fn checked(&self) -> Result<&Strategies> {
        for (s, p) in Strategy::ALL.iter().zip(&self.params) {
            let ok = (1..=1024).contains(&p.k)
                && p.tau.is_finite()
                && p.tau > 0.0
                && (1..=4096).contains(&p.ef)
                && p.position_weight.is_finite()
                && p.position_weight >= 0.0
                && (0.0..=1.0).contains(&p.alpha);
            if !ok {
                return Err(Error::InvalidArgument(format!(
                    "strategy {}: k 1..=1024, tau > 0, ef 1..=4096, position_weight >= 0 and alpha in [0, 1] are required, not {p:?}",
                    s.name()
                )));
            }
        }
        Ok(self)
    }

    /// The parameters of `s`.
    pub fn of(&self, s: Strategy) -> &StrategyParams {
        &self.params[s.index()]
    }

    /// The strategy for a step of energy `energy`.
    pub fn pick(&self, energy: f64) -> Strategy {
        self.bins[bin(energy)]
    }

    /// The probe every step starts with: the balanced strategy's search.
    pub fn probe(&self) -> &StrategyParams {
        self.of(Strategy::Balanced)
    }
}

/// The energy bin of `energy` (0 to 3).
pub fn bin(energy: f64) -> usize {
    ENERGY_EDGES.iter().take_while(|&&e| energy >= e).count()
}

/// The flatness of one level's neighbour similarities, in [0, 1] (see the
/// module documentation).
pub fn flatness(sims: &[f32]) -> f64 {
    if sims.len() < 2 {
        return 0.0;
    }
    let top = sims.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = sims.iter().map(|&s| (f64::from(s - top) / ENERGY_TAU).exp()).collect();
    let z: f64 = e.iter().sum();
    let h: f64 = -e
        .iter()
        .map(|x| x / z)
        .filter(|&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>();
    (h / (sims.len() as f64).ln()).clamp(0.0, 1.0)
}

/// The energy of a step from the flatness of each level that found
/// neighbours (1 when none did).
pub fn energy(flatnesses: &[f64]) -> f64 {
    if flatnesses.is_empty() {
        1.0
    } else {
        flatnesses.iter().sum::<f64>() / flatnesses.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_measures_flatness_and_bins_pick_strategies() {
        assert_eq!(flatness(&[0.9]), 0.0);
        assert!((flatness(&[0.5, 0.5, 0.5, 0.5]) - 1.0).abs() < 1e-12, "all alike");
        assert!(flatness(&[1.0, 0.5, 0.4, 0.3]) < 0.01, "one stands out");
        // By hand: two neighbours 0.05 apart at tau 0.05 have weights
        // 1/(1+e^-1) and e^-1/(1+e^-1).
        let p = 1.0 / (1.0 + (-1f64).exp());
        let h = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((flatness(&[0.8, 0.75]) - h / 2f64.ln()).abs() < 1e-6);
        assert_eq!(energy(&[]), 1.0);
        assert!((energy(&[0.2, 0.4]) - 0.3).abs() < 1e-12);
        let s = Strategies::default();
        assert_eq!(s.pick(0.1), Strategy::Precise);
        assert_eq!(s.pick(0.25), Strategy::Balanced);
        assert_eq!(s.pick(0.6), Strategy::Broad);
        assert_eq!(s.pick(1.0), Strategy::Fallback);
        assert!(s.checked().is_ok());
        let mut bad = s.clone();
        bad.params[2].tau = 0.0;
        assert!(bad.checked().is_err());
        assert_eq!(Strategy::from_name("broad").unwrap(), Strategy::Broad);
        assert!(Strategy::from_name("wide").is_err());
    }
}
