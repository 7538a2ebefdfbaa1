//! Affine activation quantization parameters: a scale and a zero point on signed codes.

use crate::error::{QuantError, Result};
use crate::scheme::round_half_away;
use serde::Serialize;

/// How activations become `bits`-bit signed codes `-2^(b-1) ..= 2^(b-1) - 1`:
/// `q = clamp(round(x / scale) + zero_point)`, `x ≈ (q - zero_point) * scale`.
///
/// The range always contains 0, so zero (ReLU outputs, padding) is represented exactly.
///
/// ```
/// use deepcompress_quant::ActQuant;
/// let q = ActQuant::from_range(0.0, 2.55, 8)?;
/// assert_eq!(q.zero_point, -128);
/// assert_eq!(q.quantize(0.0), -128);
/// assert_eq!(q.quantize(2.55), 127);
/// assert!((q.fake(1.0) - 1.0).abs() <= q.scale / 2.0);
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ActQuant {
    /// Step between codes.
    pub scale: f32,
    /// Code of the value 0.
    pub zero_point: i32,
    /// Bits per code (2 to 8).
    pub bits: u8,
}

impl ActQuant {
    /// Parameters covering `[lo, hi]` widened to include 0. A zero-width range (all
    /// activations 0) gets scale 1, which represents 0 exactly.
    pub fn from_range(lo: f32, hi: f32, bits: u8) -> Result<Self> {
        if !(2..=8).contains(&bits) {
            return Err(QuantError::param("activation bits", bits, "must be 2 to 8"));
        }
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(QuantError::param(
                "activation range",
                format!("[{lo}, {hi}]"),
                "must be finite with lo <= hi",
            ));
        }
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let levels = ((1u32 << bits) - 1) as f32;
        let qmin = -(1i32 << (bits - 1));
        let mut scale = (hi - lo) / levels;
        if scale == 0.0 || !scale.is_normal() {
            scale = if hi - lo > 0.0 { f32::MIN_POSITIVE } else { 1.0 };
        }
        let zero_point = (qmin as f32 - lo / scale).round() as i32;
        let zero_point = zero_point.clamp(qmin, qmin + levels as i32);
        Ok(Self { scale, zero_point, bits })
    }

    /// Smallest code.
    pub fn qmin(&self) -> i32 {
        -(1i32 << (self.bits - 1))
    }

    /// Largest code.
    pub fn qmax(&self) -> i32 {
        (1i32 << (self.bits - 1)) - 1
    }

    /// The code of `x` (round to nearest, clamped).
    pub fn quantize(&self, x: f32) -> i32 {
        // Clamping before rounding is the same for integer bounds, and lets the rounding
        // skip `roundf` (see `round_half_away`), so loops over this vectorise.
        let lo = (self.qmin() - self.zero_point) as f32;
        let hi = (self.qmax() - self.zero_point) as f32;
        round_half_away((x / self.scale).clamp(lo, hi)) + self.zero_point
    }

    /// The value a code stands for.
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }

    /// Quantize then dequantize: what a simulated (fake-quantized) model computes.
    pub fn fake(&self, x: f32) -> f32 {
        self.dequantize(self.quantize(x))
    }

    /// The representable range `[min, max]`.
    pub fn range(&self) -> (f32, f32) {
        (self.dequantize(self.qmin()), self.dequantize(self.qmax()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_and_saturates_like_the_plain_formula() {
        let plain = |q: &ActQuant, x: f32| {
            ((x / q.scale).round() as i32).saturating_add(q.zero_point).clamp(q.qmin(), q.qmax())
        };
        for (lo, hi, bits) in
            [(-1.0f32, 1.0f32, 8u8), (0.0, 6.0, 8), (-0.3, 2.7, 4), (-5.0, 0.5, 2)]
        {
            let q = ActQuant::from_range(lo, hi, bits).expect("valid range");
            let mut x = 2.0 * lo - 1.0;
            while x <= 2.0 * hi + 1.0 {
                for v in [x, x + q.scale / 2.0, f32::from_bits(x.to_bits() + 1)] {
                    assert_eq!(q.quantize(v), plain(&q, v), "[{lo}, {hi}] {bits} bits at {v}");
                }
                x += q.scale / 4.0;
            }
            for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0] {
                assert_eq!(q.quantize(v), plain(&q, v), "[{lo}, {hi}] {bits} bits at {v}");
            }
        }
    }
}
