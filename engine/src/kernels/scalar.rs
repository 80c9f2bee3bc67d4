//! Scalar reference kernels: plain loops, accumulated in f64 where it costs
//! nothing, so that they can judge the fast paths.

/// Dot product of two equal-length vectors.
///
/// ```
/// assert_eq!(engram::kernels::scalar::dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
/// ```
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>() as f32
}

/// Euclidean norm.
///
/// ```
/// assert_eq!(engram::kernels::scalar::norm(&[3.0, 4.0]), 5.0);
/// ```
pub fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_norm_match_hand_values() {
        assert_eq!(dot(&[1.0, -2.0, 0.5], &[4.0, 1.0, 2.0]), 3.0);
        assert_eq!(norm(&[0.0; 7]), 0.0);
        assert!((norm(&[1.0, 1.0]) - std::f32::consts::SQRT_2).abs() < 1e-7);
    }
}
