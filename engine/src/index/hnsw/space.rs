//! Distances the graph is built and searched with: cosine over int8 codes.
//!
//! For rows `a ≈ ca·sa` and `b ≈ cb·sb` with f32 norms `na`, `nb`,
//! `cos(a, b) ≈ (ca·cb) · (sa/na) · (sb/nb)`. The per-row factor `s/n` is
//! computed once (and stored in the index), so one distance is one int8 dot
//! product — a quarter of the bytes of an f32 one.

use crate::kernels::distance::dot_i8;
use crate::kernels::{quant, scalar};

/// `scale / norm`, or 0 for a zero row (whose cosine distance is 1 to all).
pub(crate) fn factor(scale: f32, norm: f32) -> f32 {
    if norm > 0.0 && norm.is_finite() {
        scale / norm
    } else {
        0.0
    }
}

/// Codes of a segment's rows with their factors.
#[derive(Clone, Copy)]
pub(crate) struct Codes<'a> {
    pub dim: usize,
    pub codes: &'a [i8],
    pub factors: &'a [f32],
}

impl<'a> Codes<'a> {
    pub fn code(&self, i: u32) -> &'a [i8] {
        let i = i as usize;
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    /// Cosine distance between rows `a` and `b`.
    pub fn between(&self, a: u32, b: u32) -> f32 {
        let f = self.factors[a as usize] * self.factors[b as usize];
        1.0 - dot_i8(self.code(a), self.code(b)) as f32 * f
    }
}

/// A query, quantized once.
pub(crate) struct QueryCode {
    code: Vec<i8>,
    factor: f32,
}

impl QueryCode {
    pub fn new(query: &[f32]) -> QueryCode {
        let mut code = vec![0i8; query.len()];
        let scale = quant::quantize(query, &mut code);
        QueryCode {
            code,
            factor: factor(scale, scalar::norm(query)),
        }
    }

    /// Cosine distance from the query to row `i` of `codes`.
    pub fn to(&self, codes: &Codes<'_>, i: u32) -> f32 {
        1.0 - dot_i8(&self.code, codes.code(i)) as f32 * self.factor * codes.factors[i as usize]
    }
}
