//! How a tensor is quantized: bit width, symmetric or affine, granularity, rounding.

use crate::error::{QuantError, Result};
use serde::Serialize;

/// Which values share one scale (and zero point). The tensor is viewed as a matrix
/// `[shape[0], rest]` (`[out, in]` for a Linear, `[out, in*kh*kw]` for a convolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Granularity {
    /// One scale for the whole tensor.
    PerTensor,
    /// One scale per output channel (row).
    PerChannel,
    /// One scale per `rows x cols` rectangle (blocks at the edges may be smaller); GPTQ
    /// and burn use groups of one row by 32 to 128 columns.
    PerGroup {
        /// Rows per group.
        rows: usize,
        /// Columns per group.
        cols: usize,
    },
}

/// `v.round() as i32` (ties away from zero) for `|v| < 2^31`, without the `roundf` call,
/// so that loops over it vectorise: the truncation is exact and so is the fraction
/// `v - t` (for `|v| >= 2^23` every float is an integer and the fraction is 0). NaN gives
/// 0, as `f32::round(NaN) as i32` does.
pub(crate) fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    let f = v - t as f32;
    t + (f >= 0.5) as i32 - (f <= -0.5) as i32
}

/// How a scaled value becomes an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Rounding {
    /// Round to nearest (ties away from zero): error at most half a step.
    Nearest,
    /// Round up with probability equal to the fractional part (Gupta et al. 2015,
    /// arXiv 1502.02551): unbiased, error below one step; seeded.
    Stochastic {
        /// Seed of the rounding noise.
        seed: u64,
    },
}

/// A uniform quantization scheme.
///
/// * `bits`: 2 to 8, or 16.
/// * `symmetric`: codes `-(2^(b-1) - 1) ..= 2^(b-1) - 1` times a scale (zero exact, no zero
///   point); otherwise affine: codes `0 ..= 2^b - 1` with a zero point, so the range
///   `[min(x, 0), max(x, 0)]` is covered without wasting levels.
///
/// ```
/// use deepcompress_quant::{Granularity, QuantScheme};
/// let s = QuantScheme::new(4).asymmetric().granularity(Granularity::PerGroup { rows: 1, cols: 32 });
/// assert!(s.check().is_ok());
/// assert!(QuantScheme::new(0).check().is_err());
/// assert!(QuantScheme::new(17).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuantScheme {
    /// Bits per value.
    pub bits: u8,
    /// Symmetric (no zero point) or affine.
    pub symmetric: bool,
    /// Which values share a scale.
    pub granularity: Granularity,
    /// Rounding mode.
    pub rounding: Rounding,
}

impl QuantScheme {
    /// `bits`-bit symmetric, per-channel, round-to-nearest.
    pub fn new(bits: u8) -> Self {
        Self {
            bits,
            symmetric: true,
            granularity: Granularity::PerChannel,
            rounding: Rounding::Nearest,
        }
    }

    /// Affine (asymmetric) codes with a zero point.
    pub fn asymmetric(mut self) -> Self {
        self.symmetric = false;
        self
    }

    /// Sets the granularity.
    pub fn granularity(mut self, g: Granularity) -> Self {
        self.granularity = g;
        self
    }

    /// Sets the rounding.
    pub fn rounding(mut self, r: Rounding) -> Self {
        self.rounding = r;
        self
    }

    /// Checks the bit width and group sizes.
    pub fn check(&self) -> Result<()> {
        if !((2..=8).contains(&self.bits) || self.bits == 16) {
            return Err(QuantError::param(
                "bits",
                self.bits,
                "must be 2 to 8 or 16 (binary and ternary weights have their own encodings)",
            ));
        }
        if let Granularity::PerGroup { rows, cols } = self.granularity
            && (rows == 0 || cols == 0)
        {
            return Err(QuantError::param(
                "group size",
                format!("{rows}x{cols}"),
                "rows and columns must be positive",
            ));
        }
        Ok(())
    }

    /// Largest code magnitude of a symmetric scheme, `2^(b-1) - 1`.
    pub(crate) fn qmax_symmetric(&self) -> i32 {
        (1i32 << (self.bits - 1)) - 1
    }

    /// Largest code of an affine scheme, `2^b - 1`.
    pub(crate) fn levels(&self) -> i32 {
        ((1u32 << self.bits) - 1) as i32
    }
}
