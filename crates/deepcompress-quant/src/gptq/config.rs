//! [`GptqConfig`]: the solver's hyper-parameters.

use crate::error::{QuantError, Result};
use serde::Serialize;

/// GPTQ's hyper-parameters (Frantar et al. 2022, arXiv 2210.17323).
///
/// * `percdamp` (default 0.01): `percdamp · mean(diag H)` is added to the Hessian's
///   diagonal before it is inverted; raise it when a layer's Hessian is reported not
///   positive definite.
/// * `block_size` (default 128): columns quantized before the remaining columns receive
///   their accumulated ("lazy batch") update. It changes speed, not the result (up to
///   floating-point rounding).
/// * `act_order` (default off): quantize the inputs with the largest Hessian diagonal
///   first, so the most active inputs are rounded while the most columns remain to absorb
///   the error; it helps most on weights with outlier input channels.
///
/// ```
/// use deepcompress_quant::gptq::GptqConfig;
/// let c = GptqConfig::default().act_order(true).block_size(64).percdamp(0.05);
/// assert!(c.check().is_ok());
/// assert!(GptqConfig::default().block_size(0).check().is_err());
/// assert!(GptqConfig::default().percdamp(f64::NAN).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GptqConfig {
    /// Relative damping of the Hessian's diagonal, in `[0, 1]`.
    pub percdamp: f64,
    /// Columns per lazy batch, at least 1.
    pub block_size: usize,
    /// Quantize inputs in order of decreasing Hessian diagonal.
    pub act_order: bool,
}

impl Default for GptqConfig {
    fn default() -> Self {
        Self { percdamp: 0.01, block_size: 128, act_order: false }
    }
}

impl GptqConfig {
    /// Sets the relative damping.
    pub fn percdamp(mut self, p: f64) -> Self {
        self.percdamp = p;
        self
    }

    /// Sets the lazy-batch block size.
    pub fn block_size(mut self, b: usize) -> Self {
        self.block_size = b;
        self
    }

    /// Turns act-order on or off.
    pub fn act_order(mut self, on: bool) -> Self {
        self.act_order = on;
        self
    }

    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        if !(self.percdamp.is_finite() && (0.0..=1.0).contains(&self.percdamp)) {
            return Err(QuantError::param("percdamp", self.percdamp, "must be in [0, 1]"));
        }
        if self.block_size == 0 {
            return Err(QuantError::param("block_size", 0, "must be at least 1"));
        }
        Ok(())
    }
}
