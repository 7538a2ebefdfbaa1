//! Compression passes: the [`Pass`] trait, its context and report.
//!
//! A pass validates its parameters and selection before it touches the model, and leaves
//! the model unchanged when it fails (the facade's `Compressor` also restores a snapshot).

mod cast_f16;

pub use cast_f16::CastF16;

use crate::Result;
use crate::data::Dataset;
use crate::model::Model;
use serde::Serialize;
use std::fmt::Debug;

/// A fine-tuning routine a pass may call (iterative pruning retrains between steps).
pub type FineTune<'a> = dyn FnMut(&mut Model) -> Result<()> + 'a;

/// What a pass may use besides the model.
///
/// ```
/// use deepcompress_core::pass::PassContext;
/// let mut ctx = PassContext::new(42);
/// ctx.report_progress("starting");
/// assert_eq!(ctx.seed, 42);
/// assert!(ctx.calibration.is_none());
/// ```
#[derive(Default)]
pub struct PassContext<'a> {
    /// Calibration or validation data (activation statistics, sensitivity curves).
    pub calibration: Option<&'a Dataset>,
    /// Seed for every random choice the pass makes.
    pub seed: u64,
    /// Optional fine-tuning routine.
    pub fine_tune: Option<&'a mut FineTune<'a>>,
    /// Optional progress callback.
    pub progress: Option<&'a mut dyn FnMut(&str)>,
}

impl<'a> PassContext<'a> {
    /// A context with a seed and nothing else.
    pub fn new(seed: u64) -> Self {
        Self { seed, ..Self::default() }
    }

    /// Sets the calibration data.
    pub fn with_calibration(mut self, data: &'a Dataset) -> Self {
        self.calibration = Some(data);
        self
    }

    /// Sends a progress message to the callback, if there is one.
    pub fn report_progress(&mut self, msg: &str) {
        if let Some(p) = self.progress.as_mut() {
            p(msg);
        }
    }
}

impl Debug for PassContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassContext")
            .field("calibration", &self.calibration.map(|d| d.len()))
            .field("seed", &self.seed)
            .field("fine_tune", &self.fine_tune.is_some())
            .finish()
    }
}

/// What a pass did: the layers it changed and free-form notes.
///
/// ```
/// use deepcompress_core::pass::PassReport;
/// let r = PassReport { pass: "cast-f16".into(), layers: vec!["fc1".into()], notes: vec![] };
/// assert_eq!(serde_json::to_value(&r).unwrap()["layers"][0], "fc1");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassReport {
    /// Pass name.
    pub pass: String,
    /// Paths of the layers changed.
    pub layers: Vec<String>,
    /// Observations worth reporting (skipped layers, chosen parameters).
    pub notes: Vec<String>,
}

/// One compression step.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{CastF16, Pass, PassContext};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let pass = CastF16::new(Selector::kinds(&["Linear"]));
/// pass.validate(&model).unwrap();
/// let report = pass.apply(&mut model, &mut PassContext::new(0)).unwrap();
/// assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
/// ```
pub trait Pass: Debug + Send + Sync {
    /// Short name for reports.
    fn name(&self) -> String;
    /// Checks parameters and selection against the model without changing it.
    fn validate(&self, model: &Model) -> Result<()>;
    /// Compresses the model; on error the model must be as it was.
    fn apply(&self, model: &mut Model, ctx: &mut PassContext<'_>) -> Result<PassReport>;
    /// True for passes that call [`PassContext::fine_tune`] themselves (iterative pruning
    /// retrains between rounds); a pipeline then hands its fine-tuning to the pass
    /// instead of running it after.
    fn uses_fine_tune(&self) -> bool {
        false
    }
}
