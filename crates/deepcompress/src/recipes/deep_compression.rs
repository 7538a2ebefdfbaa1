//! Deep Compression (Han, Mao and Dally 2015, arXiv 1510.00149): prune, share, Huffman.

use deepcompress_core::data::Dataset;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress_core::{CoreError, Result};
use deepcompress_prune::coding::{Container, EncodeOptions, EntropyCode, encode_model};
use deepcompress_prune::schedule::IterativePrune;
use deepcompress_prune::sensitivity::{
    Allocation, Budget, DEFAULT_SPARSITIES, Sensitivity, SensitivityAnalysis, allocate,
};
use deepcompress_prune::sharing::WeightSharing;
use deepcompress_prune::unstructured::Sparsity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// How the pruning stage picks its per-layer sparsities.
///
/// ```
/// use deepcompress::recipes::PruneTarget;
/// use deepcompress::prune::sensitivity::Budget;
/// let auto = PruneTarget::Auto(Budget::KeepFraction(0.06));
/// assert!(matches!(auto, PruneTarget::Auto(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum PruneTarget {
    /// Sparsities given by hand (the paper's per-layer fractions).
    Fixed(Sparsity),
    /// Sensitivity analysis on the validation set and the allocator, for one global
    /// budget: no per-layer number is set by hand.
    Auto(Budget),
}

/// The three stages of Deep Compression with their settings.
///
/// Pruning is iterative (prune, retrain, `rounds` times); weight sharing clusters each
/// layer's remaining weights by k-means with linear initialisation (`conv_bits` and
/// `fc_bits` bits per index, 8 and 5 in the paper) and fine-tunes the centroids; the
/// result is Huffman-coded into the container file, and the model is replaced by the
/// one decoded from the file.
///
/// ```
/// use deepcompress::recipes::DeepCompression;
/// let dc = DeepCompression::paper_lenet_300_100();
/// assert_eq!((dc.fc_bits, dc.conv_bits), (5, 8));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeepCompression {
    /// Per-layer sparsities, fixed or allocated.
    pub target: PruneTarget,
    /// Prune-retrain rounds.
    pub rounds: usize,
    /// Fine-tuning after each pruning round.
    pub prune_fine_tune: TrainConfig,
    /// Fine-tuning of the shared centroids.
    pub share_fine_tune: TrainConfig,
    /// Codebook index bits for fully connected layers.
    pub fc_bits: u32,
    /// Codebook index bits for convolutions.
    pub conv_bits: u32,
    /// File encoding (index widths, Huffman).
    pub encode: EncodeOptions,
}

impl DeepCompression {
    /// A recipe with the paper's bits and this library's fine-tuning defaults: Adam,
    /// 5 rounds of 8 epochs at 1e-3 with a cosine decay, then 4 epochs of centroid
    /// fine-tuning at 1e-4, batch size `batch`.
    pub fn new(target: PruneTarget, batch: usize) -> Self {
        let tune = |epochs, lr| TrainConfig {
            epochs,
            batch_size: batch,
            lr,
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            seed: 2,
            ..TrainConfig::default()
        };
        Self {
            target,
            rounds: 5,
            prune_fine_tune: tune(8, 1e-3),
            share_fine_tune: tune(4, 1e-4),
            fc_bits: 5,
            conv_bits: 8,
            encode: EncodeOptions::default(),
        }
    }

    /// The paper's LeNet-300-100 fractions: 8 %, 9 % and 26 % of the weights kept.
    pub fn paper_lenet_300_100() -> Self {
        Self::new(
            PruneTarget::Fixed(Sparsity::per_layer([("fc1", 0.92), ("fc2", 0.91), ("fc3", 0.74)])),
            32,
        )
    }

    /// The paper's LeNet-5 fractions: 66 %, 12 %, 8 % and 19 % kept.
    pub fn paper_lenet5() -> Self {
        Self::new(
            PruneTarget::Fixed(Sparsity::per_layer([
                ("conv1", 0.34),
                ("conv2", 0.88),
                ("fc1", 0.92),
                ("fc2", 0.81),
            ])),
            128,
        )
    }

    fn fine_tune<'a>(
        cfg: &'a TrainConfig,
        train: &'a Dataset,
    ) -> impl FnMut(&mut Model) -> Result<()> + 'a {
        move |m: &mut Model| {
            Trainer::new(cfg.clone()).fit(m, &mut Adam::default(), train, None, |_| {})?;
            Ok(())
        }
    }

    /// The per-layer sparsities: fixed, or from sensitivity curves on `val`.
    fn sparsity(&self, model: &Model, val: &Dataset) -> Result<(Sparsity, Option<Auto>)> {
        match &self.target {
            PruneTarget::Fixed(s) => Ok((s.clone(), None)),
            PruneTarget::Auto(budget) => {
                let sens = SensitivityAnalysis::new(Selector::all())
                    .sparsities(DEFAULT_SPARSITIES.to_vec())
                    .run(model, val)
                    .map_err(|e| e.into_core("sensitivity"))?;
                // a kept weight costs its codebook index and its relative index
                let mut cost = BTreeMap::new();
                model.visit(|p, l| {
                    let bits = match l.kind() {
                        "Conv2d" => self.conv_bits + self.encode.conv_index_bits,
                        _ => self.fc_bits + self.encode.fc_index_bits,
                    };
                    cost.insert(p.to_string(), bits as f64);
                });
                let alloc = allocate(&sens, *budget, &cost).map_err(|e| e.into_core("allocate"))?;
                Ok((alloc.to_sparsity(), Some(Auto { sensitivity: sens, allocation: alloc })))
            }
        }
    }

    /// Runs the recipe on `model`: `train` for fine-tuning, `val` for the sensitivity
    /// analysis (automatic target only; keep it apart from `test`), `test` for the
    /// accuracies in the report. On error the model is as it was.
    pub fn run(
        &self,
        model: &mut Model,
        train: &Dataset,
        val: &Dataset,
        test: &Dataset,
    ) -> Result<DeepCompressionReport> {
        let snapshot = model.clone();
        let result = self.run_stages(model, train, val, test);
        if result.is_err() {
            *model = snapshot;
        }
        result
    }

    fn run_stages(
        &self,
        model: &mut Model,
        train: &Dataset,
        val: &Dataset,
        test: &Dataset,
    ) -> Result<DeepCompressionReport> {
        if self.rounds == 0 {
            return Err(CoreError::param("rounds", 0, "at least one prune-retrain round"));
        }
        let acc = |m: &mut Model| evaluate(m, test, 500).map(|e| e.accuracy);
        let dense_bytes = 4 * model.num_params() as u64;
        let baseline = acc(model)?;
        let (sparsity, auto) = self.sparsity(model, val)?;
        let fixed = |huffman| EncodeOptions { huffman, ..self.encode };

        let mut tune = Self::fine_tune(&self.prune_fine_tune, train);
        let mut ctx = PassContext::new(0);
        ctx.fine_tune = Some(&mut tune);
        IterativePrune::new(Selector::all(), sparsity, self.rounds).apply(model, &mut ctx)?;
        let pruned_acc = acc(model)?;
        let pruned = encode_model(model, &fixed(false)).map_err(|e| e.into_core("encode"))?;

        WeightSharing::new(Selector::all())
            .fc_bits(self.fc_bits)
            .conv_bits(self.conv_bits)
            .apply(model, &mut PassContext::new(0))?;
        Self::fine_tune(&self.share_fine_tune, train)(model)?;
        let shared_acc = acc(model)?;
        let shared = encode_model(model, &fixed(false)).map_err(|e| e.into_core("encode"))?;

        let huffman = EntropyCode::new(fixed(true));
        let container = huffman.container(model).map_err(|e| e.into_core("encode"))?;
        huffman.apply(model, &mut PassContext::new(0))?;
        let final_acc = acc(model)?;
        Ok(DeepCompressionReport {
            auto_sensitivity: auto.as_ref().map(|a| a.sensitivity.clone()),
            allocation: auto.map(|a| a.allocation),
            stages: vec![
                stage_table("pruning", &pruned, pruned_acc),
                stage_table("+ sharing", &shared, shared_acc),
                stage_table("+ Huffman", &container, final_acc),
            ],
            baseline_accuracy: baseline,
            dense_bytes,
            file_bytes: container.encoded_bytes(),
            container,
        })
    }
}

struct Auto {
    sensitivity: Sensitivity,
    allocation: Allocation,
}

/// One row of Deep Compression's per-layer table.
///
/// ```
/// use deepcompress::recipes::StageRow;
/// let r = StageRow { layer: "fc1".into(), weights: 100, kept: 0.08, weight_bits: 5.0, index_bits: 5.0, bytes: 10, compression: 40.0 };
/// assert_eq!(r.weights, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRow {
    /// Layer path (`total` for the whole file).
    pub layer: String,
    /// Weights of the layer (every parameter for the total).
    pub weights: u64,
    /// Fraction of the weights stored.
    pub kept: f64,
    /// Bits per stored weight (codebook index or f32, after Huffman when coded).
    pub weight_bits: f64,
    /// Bits per relative index (fillers included), 0 when stored dense.
    pub index_bits: f64,
    /// Bytes of the layer's records in the file (bias included).
    pub bytes: u64,
    /// f32 size of the layer's parameters over `bytes`.
    pub compression: f64,
}

/// Deep Compression's table for one stage, with the test accuracy at that point.
///
/// ```
/// use deepcompress::recipes::stage_table;
/// use deepcompress::prune::coding::{encode_model, EncodeOptions};
/// let m = deepcompress::models::lenet_300_100(0);
/// let t = stage_table("dense", &encode_model(&m, &EncodeOptions::default()).unwrap(), 0.1);
/// assert_eq!(t.rows.len(), 3);
/// assert!((t.total.compression - 1.0).abs() < 0.01);
/// assert!(t.to_markdown().contains("| fc1 | 235200 |"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTable {
    /// Stage name.
    pub stage: String,
    /// Test accuracy after the stage.
    pub accuracy: f32,
    /// One row per weight layer.
    pub rows: Vec<StageRow>,
    /// The whole file.
    pub total: StageRow,
}

/// Builds a [`StageTable`] from the container a stage would write.
pub fn stage_table(stage: &str, container: &Container, accuracy: f32) -> StageTable {
    let mut rows: Vec<StageRow> = Vec::new();
    let mut total_params = 0u64;
    for r in &container.records {
        let n: u64 = r.shape.iter().product::<usize>() as u64;
        total_params += n;
        let s = r.size();
        let layer = r.path.rsplit_once('.').map_or(r.path.as_str(), |(l, _)| l).to_string();
        if r.path.ends_with(".weight") {
            rows.push(StageRow {
                layer,
                weights: n,
                kept: s.stored_values as f64 / n.max(1) as f64,
                weight_bits: s.bits_per_value(),
                index_bits: s.bits_per_position(),
                bytes: s.total_bytes,
                compression: 0.0,
            });
        } else if let Some(row) = rows.iter_mut().find(|row| row.layer == layer) {
            row.bytes += s.total_bytes;
        }
    }
    for row in &mut rows {
        row.compression = 4.0 * row.weights as f64 / row.bytes.max(1) as f64;
    }
    let file = container.encoded_bytes();
    let stored: u64 = container.records.iter().map(|r| r.size().stored_values).sum();
    let total = StageRow {
        layer: "total".into(),
        weights: total_params,
        kept: stored as f64 / total_params.max(1) as f64,
        weight_bits: 0.0,
        index_bits: 0.0,
        bytes: file,
        compression: 4.0 * total_params as f64 / file.max(1) as f64,
    };
    StageTable { stage: stage.to_string(), accuracy, rows, total }
}

impl StageTable {
    /// The table in Markdown, in the paper's columns.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "{} (test accuracy {:.2} %)\n\n| layer | weights | kept | weight bits | index bits | bytes | compression |\n|---|---:|---:|---:|---:|---:|---:|\n",
            self.stage,
            100.0 * self.accuracy
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} % | {:.2} | {:.2} | {} | {:.1}x |",
                r.layer,
                r.weights,
                100.0 * r.kept,
                r.weight_bits,
                r.index_bits,
                r.bytes,
                r.compression
            );
        }
        let t = &self.total;
        let _ = writeln!(
            out,
            "| **total (file)** | {} | {:.1} % | | | {} | **{:.1}x** |",
            t.weights,
            100.0 * t.kept,
            t.bytes,
            t.compression
        );
        out
    }
}

/// What [`DeepCompression::run`] did.
#[derive(Debug, Clone)]
pub struct DeepCompressionReport {
    /// Test accuracy of the model given.
    pub baseline_accuracy: f32,
    /// The sensitivity curves (automatic target).
    pub auto_sensitivity: Option<Sensitivity>,
    /// The per-layer sparsities the allocator chose (automatic target).
    pub allocation: Option<Allocation>,
    /// Pruning, + sharing, + Huffman.
    pub stages: Vec<StageTable>,
    /// f32 size of every parameter of the model given.
    pub dense_bytes: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// The file.
    pub container: Container,
}

impl DeepCompressionReport {
    /// Dense bytes over file bytes.
    pub fn compression(&self) -> f64 {
        self.dense_bytes as f64 / self.file_bytes.max(1) as f64
    }

    /// Accuracy drop of the decoded model in points (positive = worse).
    pub fn accuracy_drop_points(&self) -> f32 {
        100.0 * (self.baseline_accuracy - self.stages.last().map_or(0.0, |s| s.accuracy))
    }

    /// The three stage tables and the summary, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let (Some(s), Some(a)) = (&self.auto_sensitivity, &self.allocation) {
            let _ = writeln!(
                out,
                "Sensitivity (validation accuracy %, one layer pruned at a time; baseline {:.2} %)\n\n{}",
                100.0 * s.baseline,
                s.to_markdown()
            );
            let _ = writeln!(
                out,
                "Allocated sparsities: {}\n",
                a.sparsity
                    .iter()
                    .map(|(k, v)| format!("{k} {:.1} %", 100.0 * v))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for t in &self.stages {
            out.push_str(&t.to_markdown());
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "file {} bytes vs {} bytes of f32 parameters: {:.1}x smaller; test accuracy {:.2} % -> {:.2} % (drop {:.2} points)",
            self.file_bytes,
            self.dense_bytes,
            self.compression(),
            100.0 * self.baseline_accuracy,
            100.0 * self.stages.last().map_or(0.0, |s| s.accuracy),
            self.accuracy_drop_points()
        );
        out
    }
}
