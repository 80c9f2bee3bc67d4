//! Distances a graph is built and searched with, over int8 codes, for each
//! metric.
//!
//! For rows `a ≈ ca·sa` and `b ≈ cb·sb` (codes `c`, scales `s`, f32 norms
//! `n`), with one int8 dot product `d = ca·cb`:
//!
//! - cosine: `1 - d · (sa/na) · (sb/nb)`;
//! - dot: `-d · sa · sb`;
//! - L2: `na² + nb² - 2 · d · sa · sb`.
//!
//! The per-row factor (`s/n` for cosine, `s` otherwise) is computed once and
//! stored in the graph, with the squared norms for L2, so one distance is
//! one int8 dot product — a quarter of the bytes of an f32 one.

use super::layer::Space;
use crate::kernels::distance::{dot_i8, Metric};
use crate::kernels::{quant, scalar};

/// The stored per-row factor of a row for `metric`: `scale / norm` for
/// cosine (0 for a zero row, whose cosine distance is 1 to all), `scale`
/// otherwise.
pub(crate) fn factor(metric: Metric, scale: f32, norm: f32) -> f32 {
    match metric {
        Metric::Cosine if norm > 0.0 && norm.is_finite() => scale / norm,
        Metric::Cosine => 0.0,
        Metric::Dot | Metric::L2 => scale,
    }
}

/// Codes of a segment's rows with their factors.
#[derive(Clone, Copy)]
pub(crate) struct Codes<'a> {
    pub metric: Metric,
    pub dim: usize,
    pub codes: &'a [i8],
    pub factors: &'a [f32],
    /// Squared norms (L2 only; empty otherwise).
    pub sqnorms: &'a [f32],
}

impl<'a> Codes<'a> {
    pub fn code(&self, i: u32) -> &'a [i8] {
        let i = i as usize;
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    /// Start loading row `i`'s code.
    pub fn prefetch(&self, i: u32) {
        let i = i as usize;
        if let Some(c) = self.codes.get(i * self.dim..(i + 1) * self.dim) {
            crate::kernels::prefetch::read_soon(c);
        }
        // The factor lives in another array: unfetched, its miss is what a
        // distance waits on once the code has arrived.
        if let Some(f) = self.factors.get(i..i + 1) {
            crate::kernels::prefetch::read_soon(f);
        }
    }

    fn sq(&self, i: u32) -> f32 {
        self.sqnorms.get(i as usize).copied().unwrap_or(0.0)
    }

    /// Distance between rows `a` and `b`.
    pub fn between(&self, a: u32, b: u32) -> f32 {
        let p = dot_i8(self.code(a), self.code(b)) as f32 * self.factors[a as usize] * self.factors[b as usize];
        match self.metric {
            Metric::Cosine => 1.0 - p,
            Metric::Dot => -p,
            Metric::L2 => self.sq(a) + self.sq(b) - 2.0 * p,
        }
    }
}

/// Distances from one row of `codes` to the others: what an insert walks.
pub(crate) struct FromRow<'a> {
    pub codes: &'a Codes<'a>,
    pub row: u32,
}

impl Space for FromRow<'_> {
    fn dist(&self, n: u32) -> f32 {
        self.codes.between(self.row, n)
    }
    fn prefetch(&self, n: u32) {
        self.codes.prefetch(n)
    }
}

/// Distances from a query to the rows of `codes`: what a search walks.
pub(crate) struct FromQuery<'a> {
    pub codes: Codes<'a>,
    pub query: &'a QueryCode,
}

impl Space for FromQuery<'_> {
    fn dist(&self, n: u32) -> f32 {
        self.query.to(&self.codes, n)
    }
    fn prefetch(&self, n: u32) {
        self.codes.prefetch(n)
    }
}

/// A query, quantized once.
pub(crate) struct QueryCode {
    code: Vec<i8>,
    factor: f32,
    sq: f32,
}

impl QueryCode {
    pub fn new(metric: Metric, query: &[f32]) -> QueryCode {
        let mut code = vec![0i8; query.len()];
        let scale = quant::quantize(query, &mut code);
        let norm = scalar::norm(query);
        QueryCode {
            code,
            factor: factor(metric, scale, norm),
            sq: norm * norm,
        }
    }

    /// Distance from the query to row `i` of `codes`.
    pub fn to(&self, codes: &Codes<'_>, i: u32) -> f32 {
        let p = dot_i8(&self.code, codes.code(i)) as f32 * self.factor * codes.factors[i as usize];
        match codes.metric {
            Metric::Cosine => 1.0 - p,
            Metric::Dot => -p,
            Metric::L2 => self.sq + codes.sq(i) - 2.0 * p,
        }
    }
}
