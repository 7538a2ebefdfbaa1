//! The [`Compressor`]: an ordered pipeline of compression passes with optional
//! fine-tuning, which leaves the model untouched when any stage fails.

use crate::report::CompressionReport;
use deepcompress_core::data::Dataset;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::{Model, Result};

type FineTuneFn = Box<dyn FnMut(&mut Model) -> Result<()>>;
type EvalFn = Box<dyn FnMut(&mut Model) -> Result<f32>>;
type ProgressFn = Box<dyn FnMut(&str)>;

/// One pass and the fine-tuning that follows it.
struct Stage {
    pass: Box<dyn Pass>,
    fine_tune: Option<FineTuneFn>,
}

/// An ordered list of compression stages.
///
/// Each stage is validated before it touches the model; if a stage (or its
/// fine-tuning) fails, the model is restored to its state before the run and the error
/// is returned.
///
/// ```
/// use deepcompress::{Compressor, Selector};
/// use deepcompress::pass::CastF16;
/// use deepcompress::train::evaluate;
/// use deepcompress::data::Mnist;
///
/// let test = Mnist::embedded()?.test.take(200);
/// let mut model = deepcompress::models::lenet_300_100(0);
/// let report = Compressor::new(&[1, 1, 28, 28])
///     .stage(CastF16::new(Selector::path("fc1")))
///     .evaluator(move |m| Ok(evaluate(m, &test, 100)?.accuracy))
///     .run(&mut model)?;
/// assert_eq!(report.rows[0].after.storage_bits, 784 * 300 * 16 + 300 * 32);
/// assert!(report.accuracy_delta().unwrap().abs() < 1.0);
///
/// // A failing stage leaves the model as it was.
/// let before = model.summary(&[1, 784])?;
/// let err = Compressor::new(&[1, 784]).stage(CastF16::new(Selector::path("fc7"))).run(&mut model);
/// assert!(err.is_err());
/// assert_eq!(model.summary(&[1, 784])?, before);
/// # Ok::<(), deepcompress::CoreError>(())
/// ```
pub struct Compressor {
    input_shape: Vec<usize>,
    stages: Vec<Stage>,
    evaluator: Option<EvalFn>,
    calibration: Option<Dataset>,
    seed: u64,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("input_shape", &self.input_shape)
            .field("stages", &self.stages.iter().map(|s| s.pass.name()).collect::<Vec<_>>())
            .field("seed", &self.seed)
            .finish()
    }
}

impl Compressor {
    /// A pipeline whose report costs are computed for `input_shape` (batch first; use a
    /// batch of 1 for per-sample MACs).
    pub fn new(input_shape: &[usize]) -> Self {
        Self {
            input_shape: input_shape.to_vec(),
            stages: Vec::new(),
            evaluator: None,
            calibration: None,
            seed: 0,
            progress: None,
        }
    }

    /// Appends a pass without fine-tuning.
    pub fn stage(mut self, pass: impl Pass + 'static) -> Self {
        self.stages.push(Stage { pass: Box::new(pass), fine_tune: None });
        self
    }

    /// Appends a pass followed by a fine-tuning routine (for example a
    /// [`Trainer`](deepcompress_core::train::Trainer) run).
    pub fn stage_with_fine_tune(
        mut self,
        pass: impl Pass + 'static,
        fine_tune: impl FnMut(&mut Model) -> Result<()> + 'static,
    ) -> Self {
        self.stages.push(Stage { pass: Box::new(pass), fine_tune: Some(Box::new(fine_tune)) });
        self
    }

    /// Measures accuracy before and after the run (a fraction in `[0, 1]`).
    pub fn evaluator(mut self, eval: impl FnMut(&mut Model) -> Result<f32> + 'static) -> Self {
        self.evaluator = Some(Box::new(eval));
        self
    }

    /// Calibration data handed to every pass.
    pub fn calibration(mut self, data: Dataset) -> Self {
        self.calibration = Some(data);
        self
    }

    /// Seed handed to every pass.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Progress messages from the pipeline and its passes.
    pub fn progress(mut self, f: impl FnMut(&str) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Runs every stage in order and reports. On error the model is restored.
    pub fn run(&mut self, model: &mut Model) -> Result<CompressionReport> {
        let snapshot = model.clone();
        let result = self.run_stages(model);
        if result.is_err() {
            *model = snapshot;
        }
        result
    }

    fn run_stages(&mut self, model: &mut Model) -> Result<CompressionReport> {
        let before = model.summary(&self.input_shape)?;
        let acc_before = self.evaluator.as_mut().map(|e| e(model)).transpose()?;
        let mut reports = Vec::new();
        for stage in &mut self.stages {
            stage.pass.validate(model)?;
            let mut ctx = PassContext::new(self.seed);
            ctx.calibration = self.calibration.as_ref();
            if let Some(p) = self.progress.as_mut() {
                p(&format!("stage {}: {}", reports.len() + 1, stage.pass.name()));
                ctx.progress = Some(p.as_mut());
            }
            if stage.pass.uses_fine_tune() {
                if let Some(ft) = stage.fine_tune.as_mut() {
                    ctx.fine_tune = Some(ft.as_mut());
                }
                reports.push(stage.pass.apply(model, &mut ctx)?);
            } else {
                reports.push(stage.pass.apply(model, &mut ctx)?);
                if let Some(ft) = stage.fine_tune.as_mut() {
                    ft(model)?;
                }
            }
        }
        let after = model.summary(&self.input_shape)?;
        let acc_after = self.evaluator.as_mut().map(|e| e(model)).transpose()?;
        Ok(CompressionReport::new(
            self.input_shape.clone(),
            &before.rows,
            &after.rows,
            (acc_before, acc_after),
            reports,
        ))
    }
}
