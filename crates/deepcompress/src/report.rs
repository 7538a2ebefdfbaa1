//! The result of a [`Compressor`](crate::Compressor) run: a per-layer table of sizes and
//! costs before and after, plus accuracy, as Markdown or JSON.

use deepcompress_core::layer::{LayerCost, LayerSummary};
use deepcompress_core::pass::PassReport;
use serde::Serialize;
use std::fmt::{self, Write as _};

/// One layer of the original model: its cost before compression and the summed cost of
/// whatever replaced it (a factored Linear's two halves count together).
///
/// ```
/// use deepcompress::{Compressor, Selector, pass::CastF16};
/// let mut m = deepcompress::models::lenet_300_100(0);
/// let r = Compressor::new(&[1, 784]).stage(CastF16::new(Selector::path("fc3"))).run(&mut m).unwrap();
/// let fc3 = r.rows.iter().find(|row| row.path == "fc3").unwrap();
/// assert_eq!(fc3.after.storage_bits, 1000 * 16 + 10 * 32);
/// assert!(fc3.bits_per_weight() < 17.0 && fc3.compression() > 1.9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    /// Path in the original model.
    pub path: String,
    /// Kind in the original model.
    pub kind: String,
    /// Weight encoding after compression (`f32`, `f16`, `csr`, ...; several joined by `+`).
    pub encoding: String,
    /// Cost before.
    pub before: LayerCost,
    /// Cost after.
    pub after: LayerCost,
}

impl LayerRow {
    /// Storage bits per logical parameter after compression.
    pub fn bits_per_weight(&self) -> f64 {
        ratio(self.after.storage_bits, self.after.params.max(1))
    }

    /// Storage compression ratio (before / after).
    pub fn compression(&self) -> f64 {
        ratio(self.before.storage_bits, self.after.storage_bits)
    }
}

/// What a compression pipeline did to a model.
///
/// ```
/// use deepcompress::{Compressor, Selector};
/// use deepcompress::pass::CastF16;
/// let mut model = deepcompress::models::lenet_300_100(0);
/// let report = Compressor::new(&[1, 784]).stage(CastF16::new(Selector::all())).run(&mut model).unwrap();
/// assert_eq!(report.rows.len(), 3);
/// assert!((report.compression() - 2.0).abs() < 0.01);
/// assert!(report.to_markdown().contains("| fc1 |"));
/// assert!(report.to_json().unwrap().contains("\"storage_bits\""));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressionReport {
    /// Input shape the costs were computed for (batch first).
    pub input_shape: Vec<usize>,
    /// Layers with parameters, in model order.
    pub rows: Vec<LayerRow>,
    /// Totals over the whole model before.
    pub total_before: LayerCost,
    /// Totals over the whole model after.
    pub total_after: LayerCost,
    /// Evaluator's accuracy before, when an evaluator was given.
    pub accuracy_before: Option<f32>,
    /// Evaluator's accuracy after.
    pub accuracy_after: Option<f32>,
    /// What each stage reported.
    pub stages: Vec<PassReport>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { f64::INFINITY } else { a as f64 / b as f64 }
}

impl CompressionReport {
    /// Builds the table from the leaf summaries before and after.
    pub fn new(
        input_shape: Vec<usize>,
        before: &[LayerSummary],
        after: &[LayerSummary],
        accuracy: (Option<f32>, Option<f32>),
        stages: Vec<PassReport>,
    ) -> Self {
        let sum = |rows: &[LayerSummary]| rows.iter().fold(LayerCost::default(), |a, r| a + r.cost);
        let rows = before
            .iter()
            .filter(|r| r.cost.params > 0)
            .map(|b| {
                let prefix = format!("{}.", b.path);
                let now: Vec<&LayerSummary> = after
                    .iter()
                    .filter(|a| a.path == b.path || a.path.starts_with(&prefix))
                    .collect();
                let mut enc: Vec<&str> =
                    now.iter().filter(|a| a.cost.params > 0).map(|a| a.encoding.as_str()).collect();
                enc.dedup();
                LayerRow {
                    path: b.path.clone(),
                    kind: b.kind.clone(),
                    encoding: if enc.is_empty() { "-".into() } else { enc.join("+") },
                    before: b.cost,
                    after: now.iter().fold(LayerCost::default(), |a, r| a + r.cost),
                }
            })
            .collect();
        Self {
            input_shape,
            rows,
            total_before: sum(before),
            total_after: sum(after),
            accuracy_before: accuracy.0,
            accuracy_after: accuracy.1,
            stages,
        }
    }

    /// Whole-model storage compression ratio (before / after).
    pub fn compression(&self) -> f64 {
        ratio(self.total_before.storage_bits, self.total_after.storage_bits)
    }

    /// Whole-model MAC reduction (before / after).
    pub fn speedup_in_macs(&self) -> f64 {
        ratio(self.total_before.macs, self.total_after.macs)
    }

    /// Accuracy change in percentage points (after - before), when known.
    pub fn accuracy_delta(&self) -> Option<f32> {
        Some(100.0 * (self.accuracy_after? - self.accuracy_before?))
    }

    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| layer | kind | encoding | params | non-zeros before → after | bits/weight | bytes before → after | ratio | MACs before → after |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} → {} | {:.2} | {} → {} | {:.2}x | {} → {} |",
                r.path,
                r.kind,
                r.encoding,
                r.before.params,
                r.before.nonzeros,
                r.after.nonzeros,
                r.bits_per_weight(),
                r.before.storage_bits.div_ceil(8),
                r.after.storage_bits.div_ceil(8),
                r.compression(),
                r.before.macs,
                r.after.macs
            );
        }
        let (b, a) = (self.total_before, self.total_after);
        let _ = writeln!(
            s,
            "| **total** | | | {} | {} → {} | {:.2} | {} → {} | {:.2}x | {} → {} |",
            b.params,
            b.nonzeros,
            a.nonzeros,
            ratio(a.storage_bits, a.params.max(1)),
            b.storage_bits.div_ceil(8),
            a.storage_bits.div_ceil(8),
            self.compression(),
            b.macs,
            a.macs
        );
        if let (Some(x), Some(y)) = (self.accuracy_before, self.accuracy_after) {
            let _ = writeln!(
                s,
                "\naccuracy: {:.2} % → {:.2} % ({:+.2} points)",
                100.0 * x,
                100.0 * y,
                100.0 * (y - x)
            );
        }
        s
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for CompressionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_markdown())
    }
}
