//! Symmetric per-row int8 quantization: `scale = max|x| / 127`,
//! `code = round(x / scale)`, so `x ≈ code * scale`.

/// Quantize `x` into `out`, returning the row's scale.
///
/// A zero vector gets scale 0 and all-zero codes.
///
/// ```
/// let mut codes = [0i8; 3];
/// let scale = engram::kernels::quant::quantize(&[1.0, -0.5, 0.0], &mut codes);
/// assert_eq!(codes, [127, -64, 0]);
/// assert!((scale - 1.0 / 127.0).abs() < 1e-9);
/// ```
pub fn quantize(x: &[f32], out: &mut [i8]) -> f32 {
    debug_assert_eq!(x.len(), out.len());
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    let inv = 127.0 / max;
    for (o, v) in out.iter_mut().zip(x) {
        // Clamp guards against rounding just past 127 for the max element.
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Reconstruct an approximation of the original row.
///
/// ```
/// let x = engram::kernels::quant::dequantize(&[127, -127], 0.5);
/// assert_eq!(x, vec![63.5, -63.5]);
/// ```
pub fn dequantize(codes: &[i8], scale: f32) -> Vec<f32> {
    codes.iter().map(|c| f32::from(*c) * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip_error_is_within_half_a_step(x in proptest::collection::vec(-1e6f32..1e6, 1..300)) {
            let mut codes = vec![0i8; x.len()];
            let scale = quantize(&x, &mut codes);
            let back = dequantize(&codes, scale);
            for (a, b) in x.iter().zip(&back) {
                prop_assert!((a - b).abs() <= scale * 0.5 + scale * 1e-3, "{a} vs {b} at scale {scale}");
            }
        }
    }

    #[test]
    fn zero_vector_has_zero_scale() {
        let mut c = [5i8; 4];
        assert_eq!(quantize(&[0.0; 4], &mut c), 0.0);
        assert_eq!(c, [0; 4]);
    }
}
