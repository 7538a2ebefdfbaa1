//! Choosing ranks: per layer from its spectrum ([`Rank`], [`vbmf`]), or for the whole
//! model from one budget ([`Budget`], [`allocate`]).

mod global;
mod rule;
mod vbmf;

pub use global::{Budget, Candidate, Choice, Form, allocate};
pub use rule::Rank;
pub use vbmf::{Vbmf, vbmf, vbmf_from_spectrum, vbmf_tucker_ranks};
