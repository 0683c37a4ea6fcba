//! The lecture's case studies (fourth seed), on the same layers and graph: LeNet-5, AlexNet,
//! VGG-16 (Keras's `VGG16` with its names), the Inception module of the lecture's example, and a
//! GoogLeNet built from such modules — plus the multiply counts the lecture works out.

use anyhow::Result;
use tch::Device;

use crate::graph::{GraphBuilder, Model, NodeId};
use crate::layers::activation::Activation;
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::merge::Concatenate;
use crate::layers::pooling::{avg_pool, max_pool, GlobalPool2D, PoolKind};
use crate::layers::reshape::{Dropout, Flatten};

/// LeNet-5 (LeCun et al. 1998) as the lecture draws it: 32×32×1, 5×5 convolutions with tanh,
/// 2×2 average pooling, 120 → 84 → 10. (1998's output was RBF units; softmax here, as the
/// lecture's "modern version"; C3 is fully connected, not 1998's partial connection table.)
pub fn lenet5(device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("lenet5", device);
    let x = g.input(None, &[32, 32, 1])?;
    let x = g.conv2d(Some("c1"), conv2d(6, 5).activation(Activation::Tanh), x)?;
    let x = g.add(Some("s2"), avg_pool(2), &[x])?;
    let x = g.conv2d(Some("c3"), conv2d(16, 5).activation(Activation::Tanh), x)?;
    let x = g.add(Some("s4"), avg_pool(2), &[x])?;
    let x = g.add(Some("flatten"), Flatten, &[x])?;
    let x = g.dense(Some("c5"), dense(120).activation(Activation::Tanh), x)?;
    let x = g.dense(Some("f6"), dense(84).activation(Activation::Tanh), x)?;
    let out = g.dense(Some("output"), dense(10).activation(Activation::Softmax), x)?;
    g.finish(&[out])
}

/// AlexNet (Krizhevsky et al. 2012) as the lecture draws it, on one device: 227×227×3,
/// 11×11/4 → 3×3/2 max pool → 5×5 same → pool → 3×3 ×3 → pool → 9216 → 4096 → 4096 → 1000.
pub fn alexnet(device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("alexnet", device);
    let relu = Activation::Relu;
    let x = g.input(None, &[227, 227, 3])?;
    let x = g.conv2d(Some("conv1"), conv2d(96, 11).strides(4).activation(relu), x)?;
    let x = g.add(Some("pool1"), max_pool(3).strides(2), &[x])?;
    let x = g.conv2d(Some("conv2"), conv2d(256, 5).same().activation(relu), x)?;
    let x = g.add(Some("pool2"), max_pool(3).strides(2), &[x])?;
    let x = g.conv2d(Some("conv3"), conv2d(384, 3).same().activation(relu), x)?;
    let x = g.conv2d(Some("conv4"), conv2d(384, 3).same().activation(relu), x)?;
    let x = g.conv2d(Some("conv5"), conv2d(256, 3).same().activation(relu), x)?;
    let x = g.add(Some("pool5"), max_pool(3).strides(2), &[x])?;
    let x = g.add(Some("flatten"), Flatten, &[x])?;
    let x = g.dense(Some("fc6"), dense(4096).activation(relu), x)?;
    let x = g.add(Some("drop6"), Dropout { rate: 0.5 }, &[x])?;
    let x = g.dense(Some("fc7"), dense(4096).activation(relu), x)?;
    let x = g.add(Some("drop7"), Dropout { rate: 0.5 }, &[x])?;
    let out = g.dense(Some("predictions"), dense(1000).activation(Activation::Softmax), x)?;
    g.finish(&[out])
}

/// Keras's `VGG16(include_top=True, weights=None)`: `block1_conv1` … `block5_pool`, `flatten`,
/// `fc1`, `fc2`, `predictions` (138,357,544 parameters).
pub fn vgg16(device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("vgg16", device);
    let mut x = g.input(Some("input_1"), &[224, 224, 3])?;
    for (block, (filters, convs)) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)].into_iter().enumerate() {
        for conv in 1..=convs {
            let name = format!("block{}_conv{conv}", block + 1);
            x = g.conv2d(Some(&name), conv2d(filters, 3).same().activation(Activation::Relu), x)?;
        }
        x = g.add(Some(&format!("block{}_pool", block + 1)), max_pool(2), &[x])?;
    }
    let x = g.add(Some("flatten"), Flatten, &[x])?;
    let x = g.dense(Some("fc1"), dense(4096).activation(Activation::Relu), x)?;
    let x = g.dense(Some("fc2"), dense(4096).activation(Activation::Relu), x)?;
    let out = g.dense(Some("predictions"), dense(1000).activation(Activation::Softmax), x)?;
    g.finish(&[out])
}

/// Filters of one Inception module: 1×1; 1×1 reduce → 3×3; 1×1 reduce → 5×5; pool → 1×1.
#[derive(Debug, Clone, Copy)]
pub struct InceptionFilters {
    pub conv1: i64,
    pub reduce3: i64,
    pub conv3: i64,
    pub reduce5: i64,
    pub conv5: i64,
    pub pool_proj: i64,
}

/// One Inception module: four branches with ReLU, concatenated on the channel axis.
pub fn inception_module(g: &mut GraphBuilder, x: NodeId, f: InceptionFilters, name: &str) -> Result<NodeId> {
    let relu = Activation::Relu;
    let part = |p: &str| format!("{name}_{p}");
    let b1 = g.conv2d(Some(&part("1x1")), conv2d(f.conv1, 1).activation(relu), x)?;
    let b3 = g.conv2d(Some(&part("3x3_reduce")), conv2d(f.reduce3, 1).activation(relu), x)?;
    let b3 = g.conv2d(Some(&part("3x3")), conv2d(f.conv3, 3).same().activation(relu), b3)?;
    let b5 = g.conv2d(Some(&part("5x5_reduce")), conv2d(f.reduce5, 1).activation(relu), x)?;
    let b5 = g.conv2d(Some(&part("5x5")), conv2d(f.conv5, 5).same().activation(relu), b5)?;
    let bp = g.add(Some(&part("pool")), max_pool(3).strides(1).same(), &[x])?;
    let bp = g.conv2d(Some(&part("pool_proj")), conv2d(f.pool_proj, 1).activation(relu), bp)?;
    g.add(Some(&part("output")), Concatenate { axis: -1 }, &[b1, b3, b5, bp])
}

/// The lecture's example module: 28×28×192 in, 64 + 128 + 32 + 32 = 256 channels out.
pub const LECTURE_MODULE: InceptionFilters = InceptionFilters { conv1: 64, reduce3: 96, conv3: 128, reduce5: 16, conv5: 32, pool_proj: 32 };

/// The lecture's Inception module on its own, as a model on 28×28×192.
pub fn inception_module_model(device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("inception_module", device);
    let x = g.input(None, &[28, 28, 192])?;
    let out = inception_module(&mut g, x, LECTURE_MODULE, "inception")?;
    g.finish(&[out])
}

/// GoogLeNet (Szegedy et al. 2014, Table 1) built from Inception modules, without the two
/// auxiliary classifiers (used only in training) and without local response normalisation.
pub fn googlenet(device: Device) -> Result<Model> {
    let relu = Activation::Relu;
    let mut g = GraphBuilder::new("googlenet", device);
    let x = g.input(None, &[224, 224, 3])?;
    let x = g.conv2d(Some("conv1_7x7"), conv2d(64, 7).strides(2).same().activation(relu), x)?;
    let x = g.add(Some("pool1"), max_pool(3).strides(2).same(), &[x])?;
    let x = g.conv2d(Some("conv2_3x3_reduce"), conv2d(64, 1).activation(relu), x)?;
    let x = g.conv2d(Some("conv2_3x3"), conv2d(192, 3).same().activation(relu), x)?;
    let mut x = g.add(Some("pool2"), max_pool(3).strides(2).same(), &[x])?;
    let f = |conv1, reduce3, conv3, reduce5, conv5, pool_proj| InceptionFilters { conv1, reduce3, conv3, reduce5, conv5, pool_proj };
    let stages: [(&str, &[(&str, InceptionFilters)]); 3] = [
        ("3", &[("3a", f(64, 96, 128, 16, 32, 32)), ("3b", f(128, 128, 192, 32, 96, 64))]),
        (
            "4",
            &[
                ("4a", f(192, 96, 208, 16, 48, 64)),
                ("4b", f(160, 112, 224, 24, 64, 64)),
                ("4c", f(128, 128, 256, 24, 64, 64)),
                ("4d", f(112, 144, 288, 32, 64, 64)),
                ("4e", f(256, 160, 320, 32, 128, 128)),
            ],
        ),
        ("5", &[("5a", f(256, 160, 320, 32, 128, 128)), ("5b", f(384, 192, 384, 48, 128, 128))]),
    ];
    for (stage, modules) in stages {
        for (name, filters) in modules {
            x = inception_module(&mut g, x, *filters, &format!("inception_{name}"))?;
        }
        if stage != "5" {
            x = g.add(Some(&format!("pool{}", stage.parse::<u32>().unwrap_or(0))), max_pool(3).strides(2).same(), &[x])?;
        }
    }
    let x = g.add(Some("avg_pool"), GlobalPool2D { kind: PoolKind::Average }, &[x])?;
    let x = g.add(Some("dropout"), Dropout { rate: 0.4 }, &[x])?;
    let out = g.dense(Some("predictions"), dense(1000).activation(Activation::Softmax), x)?;
    g.finish(&[out])
}

/// Multiplications of a `k`×`k` convolution from `in_channels` to an `h`×`w`×`out_channels`
/// output (the lecture's count: output values × filter size).
pub fn conv_multiplies(h: i64, w: i64, out_channels: i64, k: i64, in_channels: i64) -> i64 {
    h * w * out_channels * k * k * in_channels
}
