//! Integer kernels: the arithmetic that makes quantized weights faster, not only smaller.
//!
//! x86-64 CPUs with AVX2 get a SIMD path chosen at run time; every other CPU runs a
//! portable loop with the same results (integer arithmetic is exact either way).

mod gemm_i8;
mod int4;
mod int8;

use crate::error::{QuantError, Result};
use ndarray::ArrayView2;

pub use int4::{GROUP as INT4_GROUP, Int4Matrix};
pub use int8::{Int8Matrix, quantize_activations};

/// Refuses NaN or infinite weights before they are quantized.
fn check_weights(w: ArrayView2<f32>) -> Result<()> {
    if w.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "the weight matrix".into() });
    }
    Ok(())
}

/// Refuses an input whose length is not the matrix's column count.
fn check_input(x: &[f32], cols: usize) -> Result<()> {
    if x.len() != cols {
        return Err(QuantError::param(
            "input length",
            x.len(),
            format!("must equal the {cols} columns"),
        ));
    }
    Ok(())
}

/// 32 signed-byte products summed in pairs of pairs into 8 i32 lanes: `|a| * (b * sign a)`
/// with `maddubs` (unsigned x signed bytes to i16 pairs), then `madd` with ones. `|a|`
/// read as unsigned is right even for -128; `b` must stay within ±127, and then a pair of
/// products (at most 2 · 128 · 127) cannot saturate i16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn madd_i8(
    a: std::arch::x86_64::__m256i,
    b: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}
