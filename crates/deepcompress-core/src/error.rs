//! The error type shared by every part of the core crate.

use std::path::PathBuf;

/// Everything that can go wrong in `deepcompress-core`.
///
/// Messages name the layer path, the shape or the value at fault so that a user can
/// find the problem without a debugger.
///
/// ```
/// use deepcompress_core::CoreError;
/// let e = CoreError::shape("fc1", "[batch, 784]", &[32, 100]);
/// assert_eq!(e.to_string(), "shape mismatch in `fc1`: expected [batch, 784], got [32, 100]");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An array had the wrong shape for the layer or operation named in `context`.
    #[error("shape mismatch in `{context}`: expected {expected}, got {got:?}")]
    Shape {
        /// Layer path or operation.
        context: String,
        /// What was expected, in words or as a shape pattern.
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// An input or parameter held NaN or infinity.
    #[error("non-finite value in `{context}`: {what}")]
    NonFinite {
        /// Layer path or operation.
        context: String,
        /// Which array held the value.
        what: String,
    },
    /// A hyper-parameter or argument was out of range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: String,
        /// The value given, formatted.
        value: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// No layer or parameter lives at this dotted path.
    #[error("no layer or parameter at path `{path}`{hint}")]
    UnknownPath {
        /// The path that was looked up.
        path: String,
        /// Extra help, for example the nearest existing paths (may be empty).
        hint: String,
    },
    /// `backward` was called without a preceding training-mode `forward`.
    #[error("`{layer}`: backward called before a training-mode forward pass")]
    NoForwardCache {
        /// Layer path or kind.
        layer: String,
    },
    /// A file or byte buffer was not in the expected format.
    #[error("malformed {format} data{}: {reason}", source_hint(path))]
    Format {
        /// The format being read (`IDX`, `safetensors`, ...).
        format: &'static str,
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor in a state dict had a type that cannot be used where it was asked for.
    #[error("tensor `{name}` has dtype {dtype}, which {reason}")]
    Dtype {
        /// Tensor name.
        name: String,
        /// Its dtype as written in the file.
        dtype: String,
        /// Why it is refused.
        reason: String,
    },
    /// A linear-algebra routine failed (not positive definite, no convergence, ...).
    #[error("linear algebra `{op}` failed: {reason}")]
    Linalg {
        /// Routine name.
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An I/O error while reading or writing `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A compression pass from a technique crate failed with its own error type.
    #[error("pass `{pass}` failed: {source}")]
    Pass {
        /// Pass name.
        pass: String,
        /// The technique crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// JSON (de)serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

fn source_hint(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" in {}", p.display()),
        None => String::new(),
    }
}

impl CoreError {
    /// Shorthand for a [`CoreError::Shape`].
    pub fn shape(context: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        CoreError::Shape { context: context.into(), expected: expected.into(), got: got.to_vec() }
    }

    /// Shorthand for a [`CoreError::InvalidParam`].
    pub fn param(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        CoreError::InvalidParam {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`CoreError::Format`] without a file.
    pub fn format(format: &'static str, reason: impl Into<String>) -> Self {
        CoreError::Format { format, path: None, reason: reason.into() }
    }

    /// Prefixes the layer path `path` to the context of a shape, non-finite or
    /// missing-cache error, so that nested containers report `features.0 (Conv2d)`.
    pub fn at(self, path: &str) -> Self {
        let join = |context: String| match context.split_once(" (") {
            Some((inner, rest)) => format!("{path}.{inner} ({rest}"),
            None => format!("{path} ({context})"),
        };
        match self {
            CoreError::Shape { context, expected, got } => {
                CoreError::Shape { context: join(context), expected, got }
            }
            CoreError::NonFinite { context, what } => {
                CoreError::NonFinite { context: join(context), what }
            }
            CoreError::NoForwardCache { layer } => CoreError::NoForwardCache { layer: join(layer) },
            other => other,
        }
    }

    /// Attach a file path to a [`CoreError::Format`] error; other errors pass through.
    pub fn in_file(self, file: impl Into<PathBuf>) -> Self {
        match self {
            CoreError::Format { format, path: None, reason } => {
                CoreError::Format { format, path: Some(file.into()), reason }
            }
            other => other,
        }
    }
}

/// Result alias of the core crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Returns an error naming `context` and `what` when `values` holds NaN or infinity.
///
/// ```
/// use deepcompress_core::ensure_finite;
/// assert!(ensure_finite(&[1.0f32, 2.0], "fc1", "weight").is_ok());
/// assert!(ensure_finite(&[f32::NAN], "fc1", "weight").unwrap_err().to_string().contains("fc1"));
/// ```
pub fn ensure_finite<'a>(
    values: impl IntoIterator<Item = &'a f32>,
    context: &str,
    what: &str,
) -> Result<()> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(CoreError::NonFinite { context: context.to_string(), what: what.to_string() })
    }
}

/// [`ensure_finite`] for a contiguous slice, vectorised: the hot-path check on every
/// model input.
///
/// ```
/// use deepcompress_core::error::ensure_finite_slice;
/// assert!(ensure_finite_slice(&[1.0f32; 100], "x", "input").is_ok());
/// assert!(ensure_finite_slice(&[0.0, f32::INFINITY], "x", "input").is_err());
/// ```
pub fn ensure_finite_slice(values: &[f32], context: &str, what: &str) -> Result<()> {
    // `v * 0` is 0 for finite values and NaN otherwise; eight independent lanes let the
    // compiler use SIMD without reordering a single sum.
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * 0.0;
        }
    }
    let tail: f32 = rest.iter().map(|v| v * 0.0).sum();
    if lanes.iter().sum::<f32>() + tail == 0.0 {
        Ok(())
    } else {
        Err(CoreError::NonFinite { context: context.to_string(), what: what.to_string() })
    }
}
