//! Choosing ranks: per layer from its spectrum ([`Rank`]), or for the whole model from
//! one budget ([`Budget`], [`allocate`]).

mod global;
mod rule;

pub use global::{Budget, Candidate, allocate};
pub use rule::Rank;
