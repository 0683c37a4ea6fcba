//! The lecture's case studies: VGG-16 is Keras's `VGG16` layer for layer (138,357,544
//! parameters); LeNet-5, AlexNet and GoogLeNet match the same definitions built in tf.keras
//! (layers, shapes, parameter counts); the Inception module matches a Keras-built one in layers
//! and outputs; and the lecture's multiply counts come out as it works them out.

mod common;

use common::parity::{assert_same_outputs, assert_same_table};
use keras_tch::models::classic::{alexnet, conv_multiplies, googlenet, inception_module_model, lenet5, vgg16, LECTURE_MODULE};
use tch::Device;

#[test]
fn vgg16_is_keras_vgg16() {
    assert_same_table("vgg16", &vgg16(Device::Cpu).unwrap());
}

#[test]
fn lenet5_alexnet_and_googlenet_are_their_keras_definitions() {
    assert_same_table("lenet5", &lenet5(Device::Cpu).unwrap());
    assert_same_table("alexnet", &alexnet(Device::Cpu).unwrap());
    assert_same_table("googlenet", &googlenet(Device::Cpu).unwrap());
}

#[test]
fn the_inception_module_matches_keras() {
    let model = inception_module_model(Device::Cpu).unwrap();
    assert_same_table("inception_module", &model);
    assert_same_outputs("inception_module", &model);
}

/// "5×5 same convolution, 28×28×192 → 28×28×32: about 120 million multiplications; with a
/// 16-channel 1×1 bottleneck first: about 12.4 million."
#[test]
fn bottleneck_multiply_counts() {
    let direct = conv_multiplies(28, 28, 32, 5, 192);
    let bottleneck = conv_multiplies(28, 28, LECTURE_MODULE.reduce5, 1, 192) + conv_multiplies(28, 28, 32, 5, LECTURE_MODULE.reduce5);
    assert_eq!(direct, 120_422_400);
    assert_eq!(bottleneck, 12_443_648);
}
