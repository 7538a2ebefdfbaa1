//! The error type of the quantization crate.

use deepcompress_core::CoreError;

/// Everything that can go wrong while quantizing.
///
/// ```
/// use deepcompress_quant::QuantError;
/// let e = QuantError::param("bits", 0, "must be 2 to 8 or 16");
/// assert_eq!(e.to_string(), "invalid parameter `bits` = 0: must be 2 to 8 or 16");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
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
    /// A weight or activation held NaN or infinity.
    #[error("non-finite value in {what}")]
    NonFinite {
        /// What held it (`weight of fc1`, ...).
        what: String,
    },
    /// An error from the core crate (shapes, I/O).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl QuantError {
    /// Shorthand for [`QuantError::InvalidParam`].
    pub fn param(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        QuantError::InvalidParam {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Wraps this error for the core [`Pass`](deepcompress_core::pass::Pass) interface;
    /// core errors pass through unchanged.
    pub fn into_core(self, pass: &str) -> CoreError {
        match self {
            QuantError::Core(e) => e,
            other => CoreError::Pass { pass: pass.to_string(), source: Box::new(other) },
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
