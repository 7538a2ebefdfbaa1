//! Integer kernels: the arithmetic that makes quantized weights faster, not only smaller.
//!
//! On x86-64 the int8 kernels pick their instructions at run time: `vpdpbusd` where the
//! CPU has AVX-512 VNNI (with VL) or AVX-VNNI, AVX2 multiplies otherwise; every other CPU
//! runs a portable loop with the same results (integer arithmetic is exact either way).
//! The VNNI paths could not run on the machine this was developed on (an AMD Zen 3); their
//! data layout and offset correction are tested there with `vpdpbusd` emulated in AVX2.

mod gemm_i8;
mod int4;
mod int8;
mod isa;

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
