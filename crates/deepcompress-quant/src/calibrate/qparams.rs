//! Affine activation quantization parameters: a scale and a zero point on signed codes.

use crate::error::{QuantError, Result};
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
        ((x / self.scale).round() as i32)
            .saturating_add(self.zero_point)
            .clamp(self.qmin(), self.qmax())
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
