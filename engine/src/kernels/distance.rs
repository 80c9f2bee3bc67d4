//! Distance kernels over f32 keys and int8 codes, through `simsimd` (which
//! picks AVX2 / AVX-512 / NEON at run time). Smaller is closer for every
//! metric, so search code never needs to know which one it ranks by.
//!
//! The scalar functions in [`super::scalar`] are the reference these are
//! tested against (relative error <= 1e-4 for f32, exact for int8 dot).

use simsimd::SpatialSimilarity;

use super::scalar;

/// How two vectors are compared.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Metric {
    /// `1 - cos(a, b)`, in [0, 2]; a zero vector is at distance 1 from all.
    #[default]
    Cosine,
    /// `-a·b`: the negated inner product.
    Dot,
    /// Squared Euclidean distance.
    L2,
}

/// Distance between two f32 vectors of equal length.
///
/// ```
/// use engram::kernels::distance::{distance, Metric};
/// assert!((distance(Metric::Cosine, &[1.0, 0.0], &[0.0, 2.0]) - 1.0).abs() < 1e-6);
/// assert_eq!(distance(Metric::Dot, &[1.0, 2.0], &[3.0, 4.0]), -11.0);
/// assert_eq!(distance(Metric::L2, &[1.0, 2.0], &[3.0, 4.0]), 8.0);
/// ```
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match metric {
        Metric::Cosine => {
            let d = <f32 as SpatialSimilarity>::cos(a, b).map_or_else(|| scalar::cosine_distance(a, b), |d| d as f32);
            // simsimd's answer for a zero vector differs by backend (0, 1 or
            // NaN); ours is 1. Only an answer near 0 or NaN can be a wrong
            // one, so only those pay for the scan (on every call it cost as
            // much as the kernel).
            if (d.is_nan() || d <= 1e-3) && (a.iter().all(|x| *x == 0.0) || b.iter().all(|x| *x == 0.0)) {
                return 1.0;
            }
            d
        }
        Metric::Dot => <f32 as SpatialSimilarity>::dot(a, b).map_or_else(|| -scalar::dot(a, b), |d| -(d as f32)),
        Metric::L2 => <f32 as SpatialSimilarity>::l2sq(a, b).map_or_else(|| scalar::l2sq(a, b), |d| d as f32),
    }
}

/// Exact inner product of two int8 codes.
///
/// ```
/// assert_eq!(engram::kernels::distance::dot_i8(&[1, -2, 127], &[3, 4, -127]), 3 - 8 - 16129);
/// ```
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    // simsimd accumulates int8 products exactly in 32-bit integers and returns
    // them as f64, which holds every i32 exactly.
    <i8 as SpatialSimilarity>::dot(a, b).map_or_else(|| scalar::dot_i8(a, b), |d| d as i32)
}

/// Approximate distance between two rows from their int8 codes and scales
/// (`x ≈ code * scale`), with the rows' f32 norms for cosine.
///
/// ```
/// use engram::kernels::{distance::{code_distance, Metric}, quant::quantize};
/// let (a, b) = ([0.5f32, -1.0, 0.25], [0.4f32, -0.9, 0.3]);
/// let (mut ca, mut cb) = ([0i8; 3], [0i8; 3]);
/// let (sa, sb) = (quantize(&a, &mut ca), quantize(&b, &mut cb));
/// let exact = engram::kernels::scalar::dot(&a, &b);
/// let approx = -code_distance(Metric::Dot, &ca, sa, 0.0, &cb, sb, 0.0);
/// assert!((exact - approx).abs() < 0.02);
/// ```
pub fn code_distance(metric: Metric, a: &[i8], scale_a: f32, norm_a: f32, b: &[i8], scale_b: f32, norm_b: f32) -> f32 {
    let dot = dot_i8(a, b) as f32 * scale_a * scale_b;
    match metric {
        Metric::Dot => -dot,
        Metric::Cosine => {
            if norm_a == 0.0 || norm_b == 0.0 {
                1.0
            } else {
                1.0 - dot / (norm_a * norm_b)
            }
        }
        Metric::L2 => (norm_a * norm_a + norm_b * norm_b - 2.0 * dot).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(fast: f32, reference: f32, scale: f32) -> bool {
        if fast == reference {
            return true;
        }
        // Relative to the magnitudes involved, so cancellation near zero is
        // judged against the size of the terms, not of the difference.
        (fast - reference).abs() <= 1e-4 * scale.max(reference.abs()).max(f32::MIN_POSITIVE)
    }

    fn check(a: &[f32], b: &[f32]) -> Result<(), TestCaseError> {
        let na = scalar::norm(a);
        let nb = scalar::norm(b);
        let terms = na * nb;
        let got = distance(Metric::Dot, a, b);
        prop_assert!(
            close(got, -scalar::dot(a, b), terms),
            "dot {got} vs {}",
            -scalar::dot(a, b)
        );
        let got = distance(Metric::L2, a, b);
        let want = scalar::l2sq(a, b);
        prop_assert!(close(got, want, na * na + nb * nb), "l2 {got} vs {want}");
        let got = distance(Metric::Cosine, a, b);
        let want = scalar::cosine_distance(a, b);
        prop_assert!(close(got, want, 1.0), "cos {got} vs {want}");
        Ok(())
    }

    fn pair(max: f32) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (1usize..2049).prop_flat_map(move |n| {
            (
                proptest::collection::vec(-max..max, n),
                proptest::collection::vec(-max..max, n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn f32_kernels_agree_with_the_scalar_reference((a, b) in pair(1.0)) {
            check(&a, &b)?;
        }

        #[test]
        fn f32_kernels_agree_on_large_values((a, b) in pair(1e15)) {
            check(&a, &b)?;
        }

        #[test]
        fn int8_dot_is_exact(n in 1usize..2049, seed in any::<u64>()) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let a: Vec<i8> = (0..n).map(|_| rng.gen()).collect();
            let b: Vec<i8> = (0..n).map(|_| rng.gen()).collect();
            prop_assert_eq!(dot_i8(&a, &b), scalar::dot_i8(&a, &b));
        }
    }

    #[test]
    fn adversarial_inputs() {
        for n in [
            1usize, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 65, 127, 129, 255, 257, 1023, 2047, 2048,
        ] {
            let zeros = vec![0.0f32; n];
            let ones = vec![1.0f32; n];
            assert_eq!(distance(Metric::Cosine, &zeros, &ones), 1.0);
            assert_eq!(distance(Metric::Cosine, &zeros, &zeros), 1.0);
            assert_eq!(distance(Metric::Dot, &zeros, &ones), 0.0);
            assert_eq!(distance(Metric::L2, &ones, &ones), 0.0);
            assert!(distance(Metric::Cosine, &ones, &ones).abs() < 1e-5);
            let neg: Vec<f32> = ones.iter().map(|x| -x).collect();
            assert!((distance(Metric::Cosine, &ones, &neg) - 2.0).abs() < 1e-5);
            let extreme_a = vec![127i8; n];
            let extreme_b = vec![-128i8; n];
            assert_eq!(dot_i8(&extreme_a, &extreme_b), scalar::dot_i8(&extreme_a, &extreme_b));
            assert_eq!(dot_i8(&extreme_b, &extreme_b), 16384 * n as i32);
        }
    }
}
