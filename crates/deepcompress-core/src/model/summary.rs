//! A per-layer table of shapes, parameters, storage and MACs.

use crate::layer::{LayerCost, LayerSummary};
use serde::Serialize;
use std::fmt;

/// What [`Model::summary`](super::Model::summary) returns: one row per leaf layer and totals.
///
/// ```
/// use deepcompress_core::models::lenet_300_100;
/// let s = lenet_300_100(0).summary(&[1, 1, 28, 28]).unwrap();
/// assert_eq!(s.total().params, 266_610);
/// assert!(s.to_string().contains("Linear"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Input shape, batch first.
    pub input: Vec<usize>,
    /// Output shape, batch first.
    pub output: Vec<usize>,
    /// Leaf layers in execution order.
    pub rows: Vec<LayerSummary>,
}

impl ModelSummary {
    /// Builds a summary from rows.
    pub fn new(input: Vec<usize>, output: Vec<usize>, rows: Vec<LayerSummary>) -> Self {
        Self { input, output, rows }
    }

    /// Sum of the rows' costs.
    pub fn total(&self) -> LayerCost {
        self.rows.iter().fold(LayerCost::default(), |acc, r| acc + r.cost)
    }
}

/// Bytes for a bit count, rounded up.
pub(crate) fn bytes(bits: u64) -> u64 {
    bits.div_ceil(8)
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| layer | kind | output | params | bytes | MACs |")?;
        writeln!(f, "|---|---|---|---:|---:|---:|")?;
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {:?} | {} | {} | {} |",
                r.path,
                r.kind,
                r.output,
                r.cost.params,
                bytes(r.cost.storage_bits),
                r.cost.macs
            )?;
        }
        let t = self.total();
        write!(
            f,
            "| **total** | | {:?} | {} | {} | {} |",
            self.output,
            t.params,
            bytes(t.storage_bits),
            t.macs
        )
    }
}
