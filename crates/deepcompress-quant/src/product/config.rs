//! [`ProductConfig`]: sub-vector dimension, codebook size and k-means iterations.

use crate::error::{QuantError, Result};
use serde::Serialize;

/// Product-quantization hyper-parameters (Gong et al., 2014, arXiv 1412.6115).
///
/// * `dim` (`d`): sub-vector length, a divisor of the layer's input dimension;
/// * `centroids` (`k`): codebook size per subspace, 2 to 256 (codes of `ceil(log2 k)` bits);
/// * `iterations`: at most this many Lloyd iterations after k-means++ seeding (default 30;
///   k-means stops earlier when no assignment changes).
///
/// Bits per weight are about `ceil(log2 k) / d` plus the codebooks' `32 · k · d` bits
/// per subspace, spread over the layer's rows.
///
/// ```
/// use deepcompress_quant::product::ProductConfig;
/// assert!(ProductConfig::new(4, 256).check().is_ok());
/// assert!(ProductConfig::new(4, 1).check().is_err());
/// assert!(ProductConfig::new(4, 257).check().is_err());
/// assert!(ProductConfig::new(0, 16).check().is_err());
/// assert!(ProductConfig::new(4, 16).iterations(0).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProductConfig {
    /// Sub-vector dimension `d`.
    pub dim: usize,
    /// Centroids per subspace `k`.
    pub centroids: usize,
    /// Maximum Lloyd iterations.
    pub iterations: usize,
}

impl ProductConfig {
    /// Sub-vectors of `dim` weights, `centroids` per codebook, 30 iterations.
    pub fn new(dim: usize, centroids: usize) -> Self {
        Self { dim, centroids, iterations: 30 }
    }

    /// Sets the maximum number of Lloyd iterations.
    pub fn iterations(mut self, n: usize) -> Self {
        self.iterations = n;
        self
    }

    /// Checks the ranges (the divisibility of the input dimension is checked per layer).
    pub fn check(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(QuantError::param("sub-vector dimension d", 0, "must be at least 1"));
        }
        if !(2..=256).contains(&self.centroids) {
            return Err(QuantError::param(
                "centroids k",
                self.centroids,
                "must be 2 to 256 (codes of at most 8 bits)",
            ));
        }
        if self.iterations == 0 {
            return Err(QuantError::param("iterations", 0, "must be at least 1"));
        }
        Ok(())
    }
}
