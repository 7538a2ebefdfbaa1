//! The Compressor pipeline: exact size accounting with a real pass, fine-tuning between
//! stages, and a model left unchanged when any stage fails.

use deepcompress::data::Mnist;
use deepcompress::layer::Mode;
use deepcompress::pass::{CastF16, Pass, PassContext, PassReport};
use deepcompress::train::{Adam, TrainConfig, Trainer, evaluate};
use deepcompress::{Compressor, CoreError, Model, Selector};
use ndarray::ArrayD;

#[test]
fn f16_pass_halves_weight_storage_exactly() {
    let mut model = deepcompress::models::lenet5(0);
    let report = Compressor::new(&[1, 1, 28, 28])
        .stage(CastF16::new(Selector::kinds(&["Linear"])))
        .run(&mut model)
        .unwrap();
    let fc1 = report.rows.iter().find(|r| r.path == "fc1").unwrap();
    assert_eq!(fc1.before.storage_bits, 400_500 * 32);
    assert_eq!(fc1.after.storage_bits, 400_000 * 16 + 500 * 32);
    assert_eq!(fc1.encoding, "f16");
    let conv1 = report.rows.iter().find(|r| r.path == "conv1").unwrap();
    assert_eq!(conv1.before, conv1.after, "unselected layers are unchanged");
    assert_eq!(report.total_after.params, 431_080);
    let saved = (400_000 + 5_000) * 16;
    assert_eq!(report.total_before.storage_bits - report.total_after.storage_bits, saved);
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
}

#[test]
fn outputs_after_f16_stay_close() {
    let mnist = Mnist::embedded().unwrap();
    let (x, _) = mnist.test.batch(&(0..64).collect::<Vec<_>>());
    let mut model = deepcompress::models::lenet_300_100(1);
    let before = model.forward(x.clone(), Mode::Eval).unwrap();
    Compressor::new(&[1, 784]).stage(CastF16::new(Selector::all())).run(&mut model).unwrap();
    let after = model.forward(x, Mode::Eval).unwrap();
    let err = (&before - &after).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(err < 1e-2, "max output change {err}");
}

/// A pass that always fails after changing nothing.
#[derive(Debug)]
struct Fails;
impl Pass for Fails {
    fn name(&self) -> String {
        "fails".into()
    }
    fn validate(&self, _: &Model) -> deepcompress::Result<()> {
        Ok(())
    }
    fn apply(&self, _: &mut Model, _: &mut PassContext<'_>) -> deepcompress::Result<PassReport> {
        Err(CoreError::param("fails", 1, "always fails"))
    }
}

fn fingerprint(m: &Model) -> Vec<u32> {
    let mut v = Vec::new();
    m.for_each_param(|_, p| v.extend(p.value().iter().map(|x| x.to_bits())));
    v.push(m.summary(&[1, 784]).unwrap().total().storage_bits as u32);
    v
}

#[test]
fn failure_in_a_later_stage_restores_the_original_model() {
    let mut model = deepcompress::models::lenet_300_100(2);
    let original = fingerprint(&model);
    let err = Compressor::new(&[1, 784])
        .stage(CastF16::new(Selector::all()))
        .stage(Fails)
        .run(&mut model)
        .unwrap_err();
    assert!(err.to_string().contains("always fails"));
    assert_eq!(fingerprint(&model), original);
}

#[test]
fn failing_fine_tune_restores_the_original_model() {
    let mut model = deepcompress::models::lenet_300_100(3);
    let original = fingerprint(&model);
    let result = Compressor::new(&[1, 784])
        .stage_with_fine_tune(CastF16::new(Selector::path("fc2")), |m| {
            m.forward(ArrayD::zeros(vec![1, 5]), Mode::Eval).map(|_| ())
        })
        .run(&mut model);
    assert!(matches!(result, Err(CoreError::Shape { .. })));
    assert_eq!(fingerprint(&model), original);
}

#[test]
fn fine_tuning_between_stages_and_accuracy_before_after() {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(1000);
    let test = mnist.test.take(400);
    let mut model = deepcompress::models::lenet_300_100(4);
    let cfg = TrainConfig { epochs: 3, batch_size: 50, ..TrainConfig::default() };
    Trainer::new(cfg.clone()).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
    let t2 = test.clone();
    let report = Compressor::new(&[1, 784])
        // fc1 to f16, then fine-tune the remaining f32 layers (fc1 is frozen).
        .stage_with_fine_tune(CastF16::new(Selector::path("fc1")), move |m| {
            Trainer::new(TrainConfig { epochs: 1, ..cfg.clone() })
                .fit(m, &mut Adam::default(), &train, None, |_| {})
                .map(|_| ())
        })
        .evaluator(move |m| Ok(evaluate(m, &t2, 200)?.accuracy))
        .run(&mut model)
        .unwrap();
    let (before, after) = (report.accuracy_before.unwrap(), report.accuracy_after.unwrap());
    assert!(before > 0.8 && after > 0.8, "{before} {after}");
    assert!(report.to_markdown().contains("accuracy:"));
}

#[test]
fn f16_pass_covers_convolutions_too() {
    let mnist = Mnist::embedded().unwrap();
    let (x, _) = mnist.test.batch(&(0..32).collect::<Vec<_>>());
    let mut model = deepcompress::models::lenet5(5);
    let before = model.forward(x.clone(), Mode::Eval).unwrap();
    let report = Compressor::new(&[1, 1, 28, 28])
        .stage(CastF16::new(Selector::all()))
        .run(&mut model)
        .unwrap();
    let conv2 = report.rows.iter().find(|r| r.path == "conv2").unwrap();
    assert_eq!((conv2.encoding.as_str(), conv2.after.storage_bits), ("f16", 25_000 * 16 + 50 * 32));
    assert_eq!(report.total_after.storage_bits, 430_500 * 16 + 580 * 32);
    assert_eq!(report.total_after.macs, report.total_before.macs);
    let after = model.forward(x, Mode::Eval).unwrap();
    assert!((&before - &after).iter().all(|d| d.abs() < 1e-2));
}
