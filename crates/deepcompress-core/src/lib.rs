//! Core of deepcompress.
pub mod error;
pub use error::{CoreError, Result};
