//! Binary and ternary weights: BinaryConnect (Courbariaux et al. 2015, arXiv 1511.00363)
//! with XNOR-Net scaling (Rastegari et al. 2016, arXiv 1603.05279), Ternary Weight
//! Networks (Li et al. 2016, arXiv 1605.04711), their bit-packed storage
//! ([`BinaryTensor`], [`TernaryTensor`]) and the passes [`PrepareBinary`] /
//! [`ConvertBinary`].

mod binary_connect;
mod pass;
mod tensor;
mod ternary;

pub use binary_connect::{BinaryConnect, BinaryScale};
pub use pass::{BinaryMethod, ConvertBinary, PrepareBinary};
pub use tensor::{BinaryTensor, TernaryTensor};
pub use ternary::TernaryWeights;
