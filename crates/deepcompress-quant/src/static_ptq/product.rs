//! The integer core shared by [`super::QLinear`] and [`super::QConv2d`]: int8 inputs times
//! int8 weights into i32, corrected for the input zero point, plus an i32 bias, then
//! requantized to int8 outputs.

use super::requant::Requant;
use crate::calibrate::ActQuant;
use crate::error::{QuantError, Result};
use crate::kernels::Int8Matrix;
use deepcompress_core::ops::worth_parallel;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Weights `[out, k]` as per-row symmetric int8, with everything the integer path needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Int8Product {
    pub(crate) weight: Int8Matrix,
    /// Sum of each row's codes, for the input zero-point correction.
    row_sums: Vec<i64>,
    /// The bias in units of `s_in · s_w[o]`.
    bias: Option<Vec<i64>>,
    requant: Vec<Requant>,
    pub(crate) input: ActQuant,
    pub(crate) output: ActQuant,
    /// Weight codes within ±63 (7 bits).
    reduced: bool,
}

impl Int8Product {
    /// `reduced`: 7-bit weight codes (`Int8Matrix::from_f32_reduced_range`).
    pub(crate) fn new(
        w: ArrayView2<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
        reduced: bool,
    ) -> Result<Self> {
        if input.bits != 8 || output.bits != 8 {
            return Err(QuantError::param(
                "activation bits",
                input.bits.min(output.bits),
                "the integer layers use 8-bit activations",
            ));
        }
        if let Some(b) = bias
            && b.iter().any(|v| !v.is_finite())
        {
            return Err(QuantError::NonFinite { what: "the bias".into() });
        }
        let weight =
            if reduced { Int8Matrix::from_f32_reduced_range(w)? } else { Int8Matrix::from_f32(w)? };
        let k = w.ncols();
        let row_sums =
            weight.codes().chunks(k.max(1)).map(|r| r.iter().map(|&c| c as i64).sum()).collect();
        let step = |o: usize| input.scale as f64 * weight.scales()[o] as f64;
        let bias = bias.map(|b| {
            b.iter().enumerate().map(|(o, &v)| (v as f64 / step(o)).round() as i64).collect()
        });
        let requant = (0..w.nrows())
            .map(|o| Requant::new(step(o) / output.scale as f64))
            .collect::<Result<_>>()?;
        Ok(Self { weight, row_sums, bias, requant, input, output, reduced })
    }

    /// Rows of `x` (`[n, k]`) through the integer path: `[n, out]`, each value an int8
    /// output code decoded with the output scale.
    pub(crate) fn forward(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        let (n, cols) = (x.nrows(), self.weight.dim().1);
        if x.ncols() != cols {
            return Err(QuantError::param(
                "input columns",
                x.ncols(),
                format!("must equal the {cols} weight columns"),
            ));
        }
        let quantize = |&v: &f32| self.input.quantize(v) as i8;
        let xq: Vec<i8> = match x.as_slice() {
            Some(s) if worth_parallel(s.len()) => {
                s.par_iter().with_min_len(1 << 14).map(quantize).collect()
            }
            Some(s) => s.iter().map(quantize).collect(),
            None => x.iter().map(quantize).collect(),
        };
        let rows = self.requant.len();
        let zp_in = self.input.zero_point as i64;
        let (qmin, qmax) = (self.output.qmin() as i64, self.output.qmax() as i64);
        let zp_out = self.output.zero_point as i64;
        // Each exact sum as the GEMM writes it: correct for the input zero point, add the
        // bias, requantize, decode.
        let requantize = |o: usize, v: i32| {
            let mut v = v as i64 - zp_in * self.row_sums[o];
            if let Some(b) = &self.bias {
                v += b[o];
            }
            let q = (zp_out + self.requant[o].apply(v)).clamp(qmin, qmax);
            self.output.dequantize(q as i32)
        };
        let out = self.weight.matmul_map(&xq, n, requantize);
        Ok(Array2::from_shape_vec((n, rows), out).expect("n x rows values"))
    }

    /// The float simulation of [`Int8Product::forward`]: fake-quantized inputs times the
    /// decoded weights plus the f32 bias, fake-quantized at the output.
    pub(crate) fn simulate(&self, x: ArrayView2<f32>, bias: Option<&[f32]>) -> Array2<f32> {
        let xf = x.mapv(|v| self.input.fake(v));
        let mut y = xf.dot(&self.weight.to_f32().t());
        if let Some(b) = bias {
            for mut row in y.rows_mut() {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        y.mapv(|v| self.output.fake(v))
    }

    /// `"int8 (w8a8)"`, or `"int8 (w7a8)"` for 7-bit weight codes.
    pub(crate) fn encoding(&self) -> String {
        format!("int8 (w{}a8)", if self.reduced { 7 } else { 8 })
    }

    /// Exact bits: int8 codes, an f32 scale and an i32 bias per row, and the input and
    /// output parameters (an f32 scale and an 8-bit zero point each).
    pub(crate) fn storage_bits(&self) -> u64 {
        let rows = self.requant.len() as u64;
        8 * self.weight.codes().len() as u64
            + 32 * rows
            + self.bias.as_ref().map_or(0, |_| 32 * rows)
            + 2 * (32 + 8)
    }
}
