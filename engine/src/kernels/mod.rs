//! Distance kernels and quantization.
//!
//! The scalar functions here are the reference that every accelerated path is
//! tested against.

pub mod distance;
pub mod prefetch;
pub mod quant;
pub mod scalar;
