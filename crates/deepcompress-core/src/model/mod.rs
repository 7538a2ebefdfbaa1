//! The model tree: layers addressed by PyTorch-style dotted paths.

mod capture;
mod selector;
mod state;
mod summary;
mod tree;

pub use selector::Selector;
pub use summary::ModelSummary;
pub use tree::Model;
