//! Integer kernels: the arithmetic that makes quantized weights faster, not only smaller.
//!
//! x86-64 CPUs with AVX2 get a SIMD path chosen at run time; every other CPU runs a
//! portable loop with the same results (integer arithmetic is exact either way).

mod int4;
mod int8;

pub use int4::{GROUP as INT4_GROUP, Int4Matrix};
pub use int8::{Int8Matrix, quantize_activations};
