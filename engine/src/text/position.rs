//! Positions: the sinusoidal encoding of a position, the kernels that
//! rescore a retrieved pattern by how far its position lies from the
//! query's (l2s-transformer §8.2–8.3), and the ε-guarded normalization of a
//! Matryoshka prefix (memory-scoring-math §4).

use crate::error::{Error, Result};

/// The sinusoidal encoding of position `p` in `dim` dimensions: for each
/// pair `j`, `sin(p / 10000^(2j/dim))` then `cos(...)` (an odd `dim` ends
/// with a last sine).
///
/// ```
/// let pe = engram::text::position::sinusoidal(3.0, 4);
/// assert!((pe[0] - 3f32.sin()).abs() < 1e-6 && (pe[1] - 3f32.cos()).abs() < 1e-6);
/// assert!((pe[2] - (3.0f32 / 100.0).sin()).abs() < 1e-6);
/// ```
pub fn sinusoidal(p: f64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| {
            let j = (i / 2) as f64;
            let angle = p / 10_000f64.powf(2.0 * j / dim as f64);
            (if i % 2 == 0 { angle.sin() } else { angle.cos() }) as f32
        })
        .collect()
}

/// How a retrieved pattern's position is weighed against the query's.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum PositionKernel {
    /// `exp(-lambda |q - k| / len)`: nearer is better, on the scale of the
    /// sequence length `len`.
    Exponential {
        /// Decay rate (at least 0).
        lambda: f64,
        /// The length positions are measured against (above 0).
        len: f64,
    },
    /// `exp(-(q - k)^2 / (2 sigma^2))`.
    Gaussian {
        /// Width (above 0).
        sigma: f64,
    },
    /// `cos(2 pi (q - k) / period)`: the same phase of a cycle (in [-1, 1]).
    Periodic {
        /// Cycle length (above 0).
        period: f64,
    },
    /// 1 if the pattern lies at or before the query, else 0.
    Causal,
}

impl PositionKernel {
    /// Check the parameters (finite, and in the ranges above).
    pub fn checked(self) -> Result<PositionKernel> {
        let pos = |x: f64| x.is_finite() && x > 0.0;
        let ok = match self {
            PositionKernel::Exponential { lambda, len } => lambda.is_finite() && lambda >= 0.0 && pos(len),
            PositionKernel::Gaussian { sigma } => pos(sigma),
            PositionKernel::Periodic { period } => pos(period),
            PositionKernel::Causal => true,
        };
        if ok {
            Ok(self)
        } else {
            Err(Error::InvalidArgument(format!(
                "bad position kernel parameters: {self:?}"
            )))
        }
    }

    /// The kernel's weight of a pattern at position `k` for a query at `q`.
    ///
    /// ```
    /// use engram::text::position::PositionKernel;
    /// let k = PositionKernel::Exponential { lambda: 1.0, len: 10.0 };
    /// assert!((k.weight(5.0, 0.0) - (-0.5f64).exp()).abs() < 1e-12);
    /// assert_eq!(PositionKernel::Causal.weight(5.0, 6.0), 0.0);
    /// ```
    pub fn weight(&self, q: f64, k: f64) -> f64 {
        let d = q - k;
        match *self {
            PositionKernel::Exponential { lambda, len } => (-lambda * d.abs() / len).exp(),
            PositionKernel::Gaussian { sigma } => (-(d * d) / (2.0 * sigma * sigma)).exp(),
            PositionKernel::Periodic { period } => (2.0 * std::f64::consts::PI * d / period).cos(),
            PositionKernel::Causal => f64::from(u8::from(k <= q)),
        }
    }
}

/// The ε of the Matryoshka prefix normalization.
pub const PREFIX_EPSILON: f32 = 1e-8;

/// The first `k` coordinates of `v`, divided by `sqrt(|v[..k]|^2 + eps^2)`:
/// unit length for an ordinary prefix, and a prefix of zeros (not NaN) for
/// a zero one. `k` past the end takes the whole vector.
///
/// ```
/// let u = engram::text::position::prefix_normalized(&[3.0, 4.0, 12.0], 2);
/// assert!((u[0] - 0.6).abs() < 1e-6 && (u[1] - 0.8).abs() < 1e-6);
/// assert_eq!(engram::text::position::prefix_normalized(&[0.0; 4], 2), vec![0.0, 0.0]);
/// ```
pub fn prefix_normalized(v: &[f32], k: usize) -> Vec<f32> {
    let p = &v[..k.min(v.len())];
    let sq: f64 = p.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let denom = (sq + f64::from(PREFIX_EPSILON) * f64::from(PREFIX_EPSILON)).sqrt();
    p.iter().map(|&x| (f64::from(x) / denom) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kernels_match_their_formulas() {
        let g = PositionKernel::Gaussian { sigma: 2.0 };
        assert!((g.weight(3.0, 1.0) - (-4.0f64 / 8.0).exp()).abs() < 1e-12);
        let p = PositionKernel::Periodic { period: 4.0 };
        assert!((p.weight(0.0, 4.0) - 1.0).abs() < 1e-12 && (p.weight(0.0, 2.0) + 1.0).abs() < 1e-12);
        assert_eq!(PositionKernel::Causal.weight(5.0, 5.0), 1.0);
        let e = PositionKernel::Exponential { lambda: 0.0, len: 1.0 };
        assert_eq!(e.weight(0.0, 1e9), 1.0);
        assert!(PositionKernel::Gaussian { sigma: 0.0 }.checked().is_err());
        assert!(PositionKernel::Exponential { lambda: -1.0, len: 1.0 }
            .checked()
            .is_err());
        assert!(PositionKernel::Periodic { period: f64::NAN }.checked().is_err());
        assert!(PositionKernel::Causal.checked().is_ok());
    }

    #[test]
    fn sinusoidal_pairs_lie_on_the_unit_circle_and_zero_is_sin0_cos0() {
        let pe = sinusoidal(0.0, 6);
        assert_eq!(pe, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let pe = sinusoidal(1234.5, 64);
        for pair in pe.chunks(2) {
            assert!((pair[0] * pair[0] + pair[1] * pair[1] - 1.0).abs() < 1e-5);
        }
        assert_eq!(sinusoidal(7.0, 5).len(), 5);
    }

    proptest! {
        #[test]
        fn kernels_stay_in_range_and_prefixes_never_blow_up(
            q in -1e6f64..1e6, k in -1e6f64..1e6, lambda in 0.0f64..10.0, width in 1e-3f64..1e4,
            v in prop::collection::vec(-1e3f32..1e3, 0..64), n in 0usize..80,
        ) {
            for kern in [
                PositionKernel::Exponential { lambda, len: width },
                PositionKernel::Gaussian { sigma: width },
                PositionKernel::Causal,
            ] {
                let w = kern.weight(q, k);
                prop_assert!((0.0..=1.0).contains(&w), "{kern:?}: {w}");
            }
            let w = PositionKernel::Periodic { period: width }.weight(q, k);
            prop_assert!((-1.0..=1.0).contains(&w));
            let u = prefix_normalized(&v, n);
            prop_assert_eq!(u.len(), n.min(v.len()));
            let norm: f32 = u.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assert!(norm.is_finite() && norm <= 1.0 + 1e-5, "norm {}", norm);
        }
    }
}
