//! Per-layer rank rules.

use crate::error::{LowRankError, Result};
use serde::Serialize;

/// How to pick one layer's rank from its singular values.
///
/// ```
/// use deepcompress_lowrank::rank::Rank;
/// let s = [4.0_f32, 2.0, 1.0, 0.5];
/// assert_eq!(Rank::Fixed(2).choose(&s, (4, 4))?, 2);
/// // 16 + 4 = 20 of 21.25 = 94 % of the energy in two components.
/// assert_eq!(Rank::Energy(0.9).choose(&s, (4, 4))?, 2);
/// // r (m + n) <= 0.5 m n  ->  r <= 1
/// assert_eq!(Rank::ParamFraction(0.5).choose(&s, (4, 4))?, 1);
/// assert!(Rank::Energy(1.5).check().is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Rank {
    /// Exactly this rank (an error when above `min(m, n)`).
    Fixed(usize),
    /// The smallest rank keeping this fraction, in `(0, 1]`, of `Σσ²` (of the whitened
    /// spectrum when the factorisation is data-aware).
    Energy(f64),
    /// The largest rank whose factors hold at most this fraction, in `(0, 1]`, of the
    /// layer's weights (`r (m + n) <= f m n`), at least 1.
    ParamFraction(f64),
}

impl Rank {
    /// Checks the rule's own parameter.
    pub fn check(&self) -> Result<()> {
        match *self {
            Rank::Fixed(0) => Err(LowRankError::param("rank", 0, "must be at least 1")),
            Rank::Energy(f) if !(f > 0.0 && f <= 1.0) => {
                Err(LowRankError::param("energy", f, "must be in (0, 1]"))
            }
            Rank::ParamFraction(f) if !(f > 0.0 && f <= 1.0) => {
                Err(LowRankError::param("parameter fraction", f, "must be in (0, 1]"))
            }
            _ => Ok(()),
        }
    }

    /// The rank for singular values `s` (descending) of an `m x n` matrix.
    pub fn choose(&self, s: &[f32], (m, n): (usize, usize)) -> Result<usize> {
        self.check()?;
        let full = m.min(n);
        Ok(match *self {
            Rank::Fixed(r) => {
                crate::svd::check_rank(r, (m, n))?;
                r
            }
            Rank::Energy(f) => {
                let total: f64 = s.iter().map(|&v| (v as f64).powi(2)).sum();
                let mut acc = 0.0;
                let mut r = 0;
                for &v in s {
                    r += 1;
                    acc += (v as f64).powi(2);
                    if acc >= f * total * (1.0 - 1e-12) {
                        break;
                    }
                }
                r.clamp(1, full)
            }
            Rank::ParamFraction(f) => {
                (((f * (m * n) as f64) / (m + n) as f64).floor() as usize).clamp(1, full)
            }
        })
    }
}
