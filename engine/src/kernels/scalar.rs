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

/// Squared Euclidean distance.
///
/// ```
/// assert_eq!(engram::kernels::scalar::l2sq(&[1.0, 2.0], &[3.0, 4.0]), 8.0);
/// ```
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum::<f64>() as f32
}

/// `1 - cos(a, b)`; 1 when either vector is zero.
///
/// ```
/// assert_eq!(engram::kernels::scalar::cosine_distance(&[1.0, 0.0], &[0.0, 0.0]), 1.0);
/// ```
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 1.0;
    }
    (1.0 - ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// Exact inner product of int8 codes.
///
/// ```
/// assert_eq!(engram::kernels::scalar::dot_i8(&[-128, 127], &[-128, 127]), 16384 + 16129);
/// ```
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum()
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
