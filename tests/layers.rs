//! Single Keras layers against real Keras, where TensorFlow's semantics and torch's differ:
//! asymmetric `same` padding, dilation, `same` pooling, channels-last Flatten, the rest of the
//! layer set in one branching graph, BatchNorm in training mode, seeded initialisation, and
//! loading that leaves the seeded generator alone.

mod common;

use common::parity::{assert_close, assert_same_outputs, assert_same_table, load_keras_weights, read_tensor, tensor};
use common::{keras_fixture, read_f32};
use keras_tch::graph::{GraphBuilder, NodeId};
use keras_tch::layers::activation::Activation;
use keras_tch::layers::batch_norm::batch_norm;
use keras_tch::layers::conv::conv2d;
use keras_tch::layers::dense::dense;
use keras_tch::layers::init;
use keras_tch::layers::merge::Concatenate;
use keras_tch::layers::padding::ZeroPadding2D;
use keras_tch::layers::pooling::{avg_pool, max_pool, GlobalPool2D, PoolKind};
use keras_tch::layers::reshape::{Dropout, Flatten};
use keras_tch::models::course;
use tch::Device;

/// libtorch's generator is global: tests of this file that create weights take turns, so the
/// seeded-initialisation test sees no other test draw from it between seed and build.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn generator() -> std::sync::MutexGuard<'static, ()> {
    GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Single layers where TensorFlow and torch differ: asymmetric `same` padding at stride 2,
/// dilation, `same` pooling, and the channels-last Flatten before a Dense.
#[test]
fn same_padding_pooling_and_flatten_give_keras_outputs() {
    let _turn = generator();
    type Build = fn(&mut GraphBuilder, NodeId) -> NodeId;
    let cases: [(&str, [i64; 3], Build); 5] = [
        ("conv_same_stride2", [7, 8, 3], |g, x| g.conv2d(Some("conv"), conv2d(4, 3).strides(2).same(), x).unwrap()),
        ("conv_same_dilated", [9, 9, 2], |g, x| g.conv2d(Some("conv"), conv2d(3, 3).dilation(2).same(), x).unwrap()),
        ("maxpool_same", [7, 8, 3], |g, x| g.add(Some("pool"), max_pool(3).strides(2).same(), &[x]).unwrap()),
        ("avgpool_same", [7, 8, 3], |g, x| g.add(Some("pool"), avg_pool(3).strides(2).same(), &[x]).unwrap()),
        ("flatten_dense", [3, 4, 5], |g, x| {
            let x = g.conv2d(Some("conv"), conv2d(2, 1), x).unwrap();
            let x = g.add(Some("flatten"), Flatten, &[x]).unwrap();
            g.dense(Some("fc"), dense(3).activation(Activation::Softmax), x).unwrap()
        }),
    ];
    for (fixture, shape, build) in cases {
        let mut g = GraphBuilder::new(fixture, Device::Cpu);
        let input = g.input(None, &shape).unwrap();
        let out = build(&mut g, input);
        let model = g.finish(&[out]).unwrap();
        if model.layers().iter().any(|n| !n.layer.weights().is_empty()) {
            assert_same_outputs(fixture, &model);
        } else {
            let Some(dir) = keras_fixture(fixture) else { return };
            let io = dir.join("io.h5");
            let (x, x_shape) = read_f32(&io, "x");
            let (y, y_shape) = read_f32(&io, "y");
            let ours = model.predict(&tensor(x, &x_shape)).unwrap();
            assert_close(fixture, &ours, &tensor(y, &y_shape));
        }
    }
}

#[test]
fn the_rest_of_the_layer_set_gives_keras_outputs() {
    let _turn = generator();
    let mut g = GraphBuilder::new("misc_layers", Device::Cpu);
    let input = g.input(None, &[6, 7, 4]).unwrap();
    let pad = g.add(Some("pad"), ZeroPadding2D { padding: [[1, 1], [0, 2]] }, &[input]).unwrap();
    let a = g.conv2d(Some("branch_a"), conv2d(3, 1).activation(Activation::Tanh), input).unwrap();
    let b = g.conv2d(Some("branch_b"), conv2d(2, 3).activation(Activation::Sigmoid), pad).unwrap();
    let x = g.add(Some("concat"), Concatenate { axis: -1 }, &[a, b]).unwrap();
    let x = g.add(Some("avg"), avg_pool(2), &[x]).unwrap();
    let x = g.add(Some("drop"), Dropout { rate: 0.3 }, &[x]).unwrap();
    let x = g.add(Some("gmax"), GlobalPool2D { kind: PoolKind::Max }, &[x]).unwrap();
    let x = g.dense(Some("fc"), dense(4).activation(Activation::Relu), x).unwrap();
    let out = g.add(Some("probs"), Activation::Softmax, &[x]).unwrap();
    let model = g.finish(&[out]).unwrap();
    assert_same_table("misc_layers", &model);
    assert_same_outputs("misc_layers", &model);
}

/// Training mode: BatchNorm normalises with the batch's statistics and moves its moving
/// statistics with Keras's momentum (torch's momentum is 1 − Keras's).
#[test]
fn batch_norm_in_training_mode_matches_keras() {
    let _turn = generator();
    let Some(fixture) = keras_fixture("bn_training") else { return };
    let mut g = GraphBuilder::new("bn_training", Device::Cpu);
    let input = g.input(None, &[5, 5, 3]).unwrap();
    let x = g.conv2d(Some("conv"), conv2d(4, 3), input).unwrap();
    let out = g.batch_norm(Some("bn"), batch_norm().momentum(0.9), x).unwrap();
    let model = g.finish(&[out]).unwrap();
    load_keras_weights(&model, &fixture.join("weights.h5"));
    let io = fixture.join("io.h5");
    let read = |name: &str| read_tensor(&io, name);
    let x = read("x");
    let y_train = tch::no_grad(|| model.forward_t(&[&x], true)).unwrap().remove(0);
    assert_close("output in training mode", &y_train, &read("y_train"));
    assert_close("moving_mean after one step", &model.keras_weight("bn", "moving_mean").unwrap(), &read("moving_mean_after"));
    assert_close("moving_variance after one step", &model.keras_weight("bn", "moving_variance").unwrap(), &read("moving_variance_after"));
}

/// The same seed gives the same weights; glorot_uniform stays within its limit.
#[test]
fn initialisation_is_seeded_and_glorot_bounded() {
    let _turn = generator();
    let build = || {
        init::seed(7);
        course::block_model([4, 4, 6], true, Device::Cpu).unwrap()
    };
    let (first, second) = (build(), build());
    let kernel = first.keras_weight("res1a_branch2b", "kernel").unwrap();
    assert!(kernel.equal(&second.keras_weight("res1a_branch2b", "kernel").unwrap()));
    // 2×2 kernel, 2 -> 4 channels: limit sqrt(6 / (2·2·2 + 2·2·4)).
    let limit = (6.0f64 / 24.0).sqrt();
    assert!(kernel.abs().max().double_value(&[]) <= limit);
    assert_eq!(first.keras_weight("bn1a_branch2a", "gamma").unwrap().sum(tch::Kind::Float).double_value(&[]), 2.0);
    assert_eq!(first.keras_weight("res1a_branch2a", "bias").unwrap().abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
}

/// Loading a Keras file draws nothing from libtorch's generator (its weights are not first
/// initialised at random, then overwritten): a seeded run goes on as if the load had not
/// happened.
#[test]
fn loading_a_file_leaves_the_seeded_generator_alone() {
    let _turn = generator();
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    init::seed(7);
    let expected = tch::Tensor::rand([8], tch::kind::FLOAT_CPU);
    init::seed(7);
    keras_tch::io::load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let after_load = tch::Tensor::rand([8], tch::kind::FLOAT_CPU);
    assert!(after_load.equal(&expected), "loading drew from the generator");
}
