//! The error type of the pruning and sharing crate.

use deepcompress_core::CoreError;

/// Everything that can go wrong while pruning, sharing or encoding a model.
///
/// Every variant names the layer, the parameter or the file offset at fault. A pass that
/// returns one of these leaves the model as it was.
///
/// ```
/// use deepcompress_prune::PruneError;
/// let e = PruneError::param("sparsity", 1.5, "must be in [0, 1)");
/// assert_eq!(e.to_string(), "invalid parameter `sparsity` = 1.5: must be in [0, 1)");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
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
        /// Extra help (the layers the selector did match, ...), may be empty.
        hint: String,
    },
    /// A layer cannot be handled by this pass.
    #[error("layer `{path}` ({kind}): {reason}")]
    Unsupported {
        /// Layer path.
        path: String,
        /// Layer kind.
        kind: String,
        /// Why it is refused.
        reason: String,
    },
    /// A weight held NaN or infinity.
    #[error("non-finite weight in `{path}`")]
    NonFinite {
        /// Layer or parameter path.
        path: String,
    },
    /// A compressed file or bit stream was corrupt or truncated.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being decoded (`container`, `Huffman stream`, ...).
        what: &'static str,
        /// What is wrong, with the offset when known.
        reason: String,
    },
    /// An error from the core crate (shapes, training, I/O).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl PruneError {
    /// Shorthand for [`PruneError::InvalidParam`].
    pub fn param(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        PruneError::InvalidParam {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`PruneError::Corrupt`].
    pub fn corrupt(what: &'static str, reason: impl Into<String>) -> Self {
        PruneError::Corrupt { what, reason: reason.into() }
    }

    /// Wraps this error for the core [`Pass`](deepcompress_core::pass::Pass) interface;
    /// core errors pass through unchanged.
    pub fn into_core(self, pass: &str) -> CoreError {
        match self {
            PruneError::Core(e) => e,
            other => CoreError::Pass { pass: pass.to_string(), source: Box::new(other) },
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = PruneError> = std::result::Result<T, E>;

/// Checks a sparsity in `[0, 1)`.
pub(crate) fn check_sparsity(name: &str, s: f64) -> Result<()> {
    if s.is_finite() && (0.0..1.0).contains(&s) {
        Ok(())
    } else {
        Err(PruneError::param(name, s, "a sparsity must be in [0, 1)"))
    }
}

/// Checks that `values` are finite, naming `path`.
pub(crate) fn check_finite(values: &[f32], path: &str) -> Result<()> {
    deepcompress_core::error::ensure_finite_slice(values, path, "weight")
        .map_err(|_| PruneError::NonFinite { path: path.to_string() })
}
