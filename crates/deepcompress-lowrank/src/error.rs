//! The error type of the low-rank crate.

use deepcompress_core::CoreError;

/// Everything that can go wrong while factorising a model.
///
/// Every variant names the layer, the parameter or the value at fault. A pass that returns
/// one of these leaves the model as it was.
///
/// ```
/// use deepcompress_lowrank::LowRankError;
/// let e = LowRankError::param("rank", 0, "must be in 1..=300 for a 300x784 weight");
/// assert_eq!(e.to_string(), "invalid parameter `rank` = 0: must be in 1..=300 for a 300x784 weight");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LowRankError {
    /// A hyper-parameter was out of range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: String,
        /// The value given, formatted.
        value: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// The selector matched no layer the pass can work on.
    #[error("selector matched no {what} layer{hint}")]
    NothingSelected {
        /// Which kind of layer the pass needs (`Linear or Conv2d`, ...).
        what: String,
        /// Extra help, may be empty.
        hint: String,
    },
    /// A layer cannot be handled by this method.
    #[error("layer `{path}` ({kind}): {reason}")]
    Unsupported {
        /// Layer path.
        path: String,
        /// Layer kind.
        kind: String,
        /// Why it is refused.
        reason: String,
    },
    /// A weight or an activation held NaN or infinity.
    #[error("non-finite {what} in `{path}`")]
    NonFinite {
        /// Layer path, or the function name for a bare matrix.
        path: String,
        /// `weight`, `calibration input`, ...
        what: &'static str,
    },
    /// An iterative decomposition did not converge.
    #[error(
        "{method} did not converge in {iterations} iterations (last relative change {change:e})"
    )]
    NotConverged {
        /// `CP-ALS`, `HOOI`, ...
        method: &'static str,
        /// Iterations run.
        iterations: usize,
        /// Relative change of the fit at the last iteration.
        change: f64,
    },
    /// A budget that no choice of ranks can meet.
    #[error("budget cannot be met: {reason}")]
    Budget {
        /// What the budget asked and what the smallest factorisation gives.
        reason: String,
    },
    /// An error from the core crate (shapes, linear algebra, training).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl LowRankError {
    /// Shorthand for [`LowRankError::InvalidParam`].
    pub fn param(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        LowRankError::InvalidParam {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// [`LowRankError::NothingSelected`] for layers of kind `what`, listing what the
    /// selector did match (`selected`), if anything.
    pub fn nothing_selected(what: &str, selected: &[String]) -> Self {
        let hint = if selected.is_empty() {
            String::new()
        } else {
            format!(" (it matched {})", selected.join(", "))
        };
        LowRankError::NothingSelected { what: what.to_string(), hint }
    }

    /// Wraps this error for the core [`Pass`](deepcompress_core::pass::Pass) interface;
    /// core errors pass through unchanged.
    pub fn into_core(self, pass: &str) -> CoreError {
        match self {
            LowRankError::Core(e) => e,
            other => CoreError::Pass { pass: pass.to_string(), source: Box::new(other) },
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = LowRankError> = std::result::Result<T, E>;

/// Checks that `values` are finite, naming `path` and `what`.
pub(crate) fn check_finite<'a>(
    values: impl IntoIterator<Item = &'a f32>,
    path: &str,
    what: &'static str,
) -> Result<()> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(LowRankError::NonFinite { path: path.to_string(), what })
    }
}
