//! `evaluate` in Keras's learning phase 1 (the course notebook's `K.set_learning_phase(1)`):
//! BatchNorm normalises by each batch's statistics — so the result differs from inference — and
//! the moving statistics are left exactly as they were.

mod common;

use common::keras_fixture;
use common::parity::read_tensor;
use keras_tch::io::load_model;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::evaluate::{evaluate, evaluate_learning_phase_1};
use tch::{Device, Kind, Tensor};

#[test]
fn learning_phase_1_uses_batch_statistics_and_changes_nothing() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let compile = CompileConfig::from_keras(model.training_config.as_ref().unwrap()).unwrap();
    let x = read_tensor(&fixture.join("io.h5"), "x");
    let n = x.size()[0];
    let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(6).one_hot(6).to_kind(Kind::Float);
    let before = model.keras_weight("bn_conv1", "moving_mean").unwrap();

    let inference = evaluate(&model, &compile, &x, &y, 32).unwrap();
    let phase_1 = evaluate_learning_phase_1(&model, &compile, &x, &y, 32).unwrap();
    assert_ne!(inference.loss, phase_1.loss, "batch statistics give another loss");
    assert!(before.equal(&model.keras_weight("bn_conv1", "moving_mean").unwrap()), "moving statistics restored");
    assert_eq!(evaluate(&model, &compile, &x, &y, 32).unwrap().loss, inference.loss, "inference unchanged afterwards");

    // Keras's loss for the training-mode forward pass (scripts/keras_fixtures.py).
    let keras: f64 = hdf5::File::open(fixture.join("io.h5")).unwrap().dataset("loss_learning_phase_1").unwrap().read_scalar().unwrap();
    assert!((phase_1.loss - keras).abs() <= 1e-4 * keras.abs().max(1.0), "keras-tch {} vs Keras {keras}", phase_1.loss);
}
