//! Model weights on disk: a format-neutral [`StateDict`] and safetensors reading and
//! writing, compatible with PyTorch state dicts saved by the Python `safetensors` package.
//!
//! ```
//! use deepcompress_core::io::{read_safetensors_bytes, to_safetensors_bytes, StateDict};
//! use ndarray::{ArrayD, IxDyn};
//! let mut sd = StateDict::new();
//! sd.insert_f32("features.0.weight", ArrayD::zeros(IxDyn(&[4, 1, 3, 3])));
//! let bytes = to_safetensors_bytes(&sd)?;
//! let back = read_safetensors_bytes(&bytes)?;
//! assert_eq!(back.get_f32("features.0.weight")?.shape(), &[4, 1, 3, 3]);
//! # Ok::<(), deepcompress_core::CoreError>(())
//! ```

mod safetensors;
mod state_dict;

pub use self::safetensors::{
    read_safetensors, read_safetensors_bytes, to_safetensors_bytes, write_safetensors,
};
pub use state_dict::{StateDict, StateTensor};

#[cfg(test)]
mod tests;
