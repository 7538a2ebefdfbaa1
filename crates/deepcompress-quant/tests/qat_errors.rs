//! Bad input to the QAT and binary passes: typed errors naming the layer, model unchanged.

use deepcompress_core::layer::Linear;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_quant::{
    ActQat, BinaryMethod, BinaryScale, ConvertBinary, ConvertQat, PrepareBinary, PrepareQat,
    QuantScheme, WeightQat,
};

fn refuse(pass: &dyn Pass, model: &Model, needle: &str) {
    let mut m = model.clone();
    let before = format!("{m:?}");
    let err = pass.apply(&mut m, &mut PassContext::new(0)).unwrap_err();
    assert!(err.to_string().contains(needle), "{pass:?}: `{err}` should mention `{needle}`");
    assert_eq!(format!("{m:?}"), before, "{pass:?} changed the model");
    assert!(pass.validate(model).is_err());
}

#[test]
fn bad_parameters_and_selectors_are_refused() {
    let m = deepcompress_core::models::lenet_300_100(0);
    let lsq = |bits| WeightQat::Lsq { bits, per_channel: true };
    refuse(&PrepareQat::new(Selector::all(), lsq(0)), &m, "bits");
    refuse(&PrepareQat::new(Selector::all(), lsq(17)), &m, "bits");
    refuse(
        &PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(1))),
        &m,
        "bits",
    );
    refuse(&PrepareQat::new(Selector::kinds(&["ReLU"]), lsq(4)), &m, "matched no Linear");
    refuse(&PrepareQat::new(Selector::path("fc9"), lsq(4)), &m, "fc9");
    let pact = |alpha| ActQat::Pact { bits: 4, alpha, l2: 0.0 };
    refuse(&PrepareQat::new(Selector::all(), lsq(4)).activations(pact(f32::NAN)), &m, "relu1");
    refuse(
        &PrepareQat::new(Selector::all(), lsq(4)).activations(ActQat::Lsq { bits: 9 }),
        &m,
        "relu1",
    );
    refuse(
        &PrepareQat::new(Selector::all(), lsq(4))
            .activations(pact(6.0))
            .activation_selector(Selector::path("fc*")),
        &m,
        "no ReLU",
    );
    refuse(&ConvertQat::new(Selector::all()), &m, "matched no layer");
    let twn = |factor| BinaryMethod::Ternary { factor, per_channel: false };
    refuse(&PrepareBinary::new(Selector::all(), twn(f32::NAN)), &m, "factor");
    refuse(&PrepareBinary::new(Selector::kinds(&["ReLU"]), twn(0.7)), &m, "matched no Linear");
    refuse(&ConvertBinary::new(Selector::all()), &m, "matched no layer");
}

#[test]
fn non_finite_weights_are_named_by_layer() {
    let mut m = deepcompress_core::models::lenet_300_100(0);
    let fc2 = m.layer_mut("fc2").unwrap().as_any_mut().downcast_mut::<Linear>().unwrap();
    fc2.weight.value_mut()[[3, 4]] = f32::NAN;
    let m = m;
    refuse(
        &PrepareQat::new(Selector::all(), WeightQat::Lsq { bits: 4, per_channel: false }),
        &m,
        "fc2",
    );
    refuse(&PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(4))), &m, "fc2");
    let bc = BinaryMethod::BinaryConnect(BinaryScale::PerChannel);
    refuse(&PrepareBinary::new(Selector::all(), bc), &m, "fc2");
    // Selecting around the bad layer works.
    let mut ok = m.clone();
    PrepareBinary::new(Selector::all().exclude("fc2"), bc)
        .apply(&mut ok, &mut PassContext::new(0))
        .unwrap();
}

#[test]
fn conversion_refuses_weights_that_became_non_finite_in_training() {
    let mut m = deepcompress_core::models::lenet_300_100(0);
    PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(4)))
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap();
    let fc3 = m.layer_mut("fc3").unwrap().as_any_mut().downcast_mut::<Linear>().unwrap();
    fc3.weight.value_mut()[[0, 0]] = f32::INFINITY;
    let m = m;
    refuse(&ConvertQat::new(Selector::all()), &m, "fc3");
}

#[test]
fn learned_steps_survive_a_state_round_trip() {
    let prepare = || {
        let mut m = deepcompress_core::models::lenet_300_100(0);
        PrepareQat::new(Selector::all(), WeightQat::Lsq { bits: 4, per_channel: true })
            .activations(ActQat::Lsq { bits: 4 })
            .apply(&mut m, &mut PassContext::new(0))
            .unwrap();
        m
    };
    let mut trained = prepare();
    let x = ndarray::ArrayD::from_shape_fn(vec![4, 784], |i| ((i[0] + i[1]) % 7) as f32 * 0.3);
    let y = trained.predict(&x, 4).unwrap(); // initialises the activation steps from x
    let sd = trained.state_dict();
    assert!(sd.get_f32("relu1.step").is_ok() && sd.get_f32("fc1.weight_step").is_ok());
    let mut fresh = prepare();
    fresh.load_state_dict(&sd).unwrap();
    // Another batch must not re-initialise the loaded steps.
    let other = x.mapv(|v| v * 5.0);
    fresh.predict(&other, 4).unwrap();
    assert_eq!(
        fresh.state_dict().get_f32("relu1.step").unwrap(),
        sd.get_f32("relu1.step").unwrap()
    );
    assert_eq!(fresh.predict(&x, 4).unwrap(), y);
}
