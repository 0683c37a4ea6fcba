//! The course's ResNet50 ("Residual Networks" assignment, Keras 2): `identity_block`,
//! `convolutional_block` and `ResNet50(input_shape=(64, 64, 3), classes=6)`, plus the second
//! seed's `use_dropout` variant. keras-applications ≤ 1.0.8 uses the same blocks and names.

use anyhow::Result;
use tch::Device;

use super::names::{block_letter, course_bn, course_conv};
use crate::graph::{GraphBuilder, Model, NodeId};
use crate::layers::activation::Activation;
use crate::layers::batch_norm::batch_norm;
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::merge::Add;
use crate::layers::padding::ZeroPadding2D;
use crate::layers::pooling::{avg_pool, max_pool};
use crate::layers::reshape::{Dropout, Flatten};

/// One stage of bottleneck blocks: a convolutional block then `blocks - 1` identity blocks.
#[derive(Debug, Clone, Copy)]
pub struct StageSpec {
    pub stage: usize,
    pub filters: [i64; 3],
    pub blocks: usize,
    pub stride: i64,
}

/// ResNet50's four stages (He et al. 2015, table 1), as the course and keras-applications name them.
pub const RESNET50_STAGES: [StageSpec; 4] = [
    StageSpec { stage: 2, filters: [64, 64, 256], blocks: 3, stride: 1 },
    StageSpec { stage: 3, filters: [128, 128, 512], blocks: 4, stride: 2 },
    StageSpec { stage: 4, filters: [256, 256, 1024], blocks: 6, stride: 2 },
    StageSpec { stage: 5, filters: [512, 512, 2048], blocks: 3, stride: 2 },
];

/// The course's `identity_block(X, f, filters, stage, block)`: 1×1 → f×f `same` → 1×1, each
/// with BatchNorm, added to the input, then relu.
pub fn identity_block(g: &mut GraphBuilder, x: NodeId, f: i64, filters: [i64; 3], stage: usize, block: char) -> Result<NodeId> {
    let shortcut = x;
    let main = bottleneck_path(g, x, f, filters, stage, block, 1)?;
    let sum = g.add(None, Add, &[main, shortcut])?;
    g.add(None, Activation::Relu, &[sum])
}

/// The course's `convolutional_block(X, f, filters, stage, block, s=2)`: the identity block's
/// path with stride `s` on its first 1×1 convolution, and a 1×1 stride-`s` convolution + BN
/// (`branch1`) on the shortcut.
pub fn convolutional_block(
    g: &mut GraphBuilder,
    x: NodeId,
    f: i64,
    filters: [i64; 3],
    stage: usize,
    block: char,
    s: i64,
) -> Result<NodeId> {
    let main = bottleneck_path(g, x, f, filters, stage, block, s)?;
    let shortcut = g.conv2d(Some(&course_conv(stage, block, "1")), conv2d(filters[2], 1).strides(s), x)?;
    let shortcut = g.batch_norm(Some(&course_bn(stage, block, "1")), batch_norm().axis(3), shortcut)?;
    let sum = g.add(None, Add, &[main, shortcut])?;
    g.add(None, Activation::Relu, &[sum])
}

/// branch2a (1×1, stride s) → branch2b (f×f, same) → branch2c (1×1), each with BN, relu between.
fn bottleneck_path(g: &mut GraphBuilder, x: NodeId, f: i64, filters: [i64; 3], stage: usize, block: char, s: i64) -> Result<NodeId> {
    let [f1, f2, f3] = filters;
    let x = g.conv2d(Some(&course_conv(stage, block, "2a")), conv2d(f1, 1).strides(s), x)?;
    let x = g.batch_norm(Some(&course_bn(stage, block, "2a")), batch_norm().axis(3), x)?;
    let x = g.add(None, Activation::Relu, &[x])?;
    let x = g.conv2d(Some(&course_conv(stage, block, "2b")), conv2d(f2, f).same(), x)?;
    let x = g.batch_norm(Some(&course_bn(stage, block, "2b")), batch_norm().axis(3), x)?;
    let x = g.add(None, Activation::Relu, &[x])?;
    let x = g.conv2d(Some(&course_conv(stage, block, "2c")), conv2d(f3, 1), x)?;
    g.batch_norm(Some(&course_bn(stage, block, "2c")), batch_norm().axis(3), x)
}

/// Stages 2–5 from [`RESNET50_STAGES`] with the course's block names.
pub fn resnet50_stages(g: &mut GraphBuilder, mut x: NodeId) -> Result<NodeId> {
    for spec in RESNET50_STAGES {
        x = convolutional_block(g, x, 3, spec.filters, spec.stage, 'a', spec.stride)?;
        for index in 1..spec.blocks {
            x = identity_block(g, x, 3, spec.filters, spec.stage, block_letter(index))?;
        }
    }
    Ok(x)
}

/// The course's `ResNet50(input_shape, classes)`: ZeroPadding2D(3) → conv1 7×7/2 → bn_conv1 →
/// relu → MaxPooling 3×3/2 → stages 2–5 → AveragePooling2D 2×2 `avg_pool` → Flatten →
/// (Dropout, the second seed's `use_dropout`) → Dense softmax `fc{classes}`.
pub fn resnet50(input_shape: [i64; 3], classes: i64, dropout: Option<f64>, device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("ResNet50", device);
    let input = g.input(None, &input_shape)?;
    let x = g.add(None, ZeroPadding2D::symmetric(3), &[input])?;
    let x = g.conv2d(Some("conv1"), conv2d(64, 7).strides(2), x)?;
    let x = g.batch_norm(Some("bn_conv1"), batch_norm().axis(3), x)?;
    let x = g.add(None, Activation::Relu, &[x])?;
    let x = g.add(None, max_pool(3).strides(2), &[x])?;
    let x = resnet50_stages(&mut g, x)?;
    let x = g.add(Some("avg_pool"), avg_pool(2), &[x])?;
    let mut x = g.add(None, Flatten, &[x])?;
    if let Some(rate) = dropout {
        x = g.add(None, Dropout { rate }, &[x])?;
    }
    let out = g.dense(Some(&format!("fc{classes}")), dense(classes).activation(Activation::Softmax), x)?;
    g.finish(&[out])
}

/// The notebook's block tests: an `Input` of `input_shape` followed by one block, as a model.
pub fn block_model(input_shape: [i64; 3], convolutional: bool, device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new(if convolutional { "convolutional_block" } else { "identity_block" }, device);
    let input = g.input(None, &input_shape)?;
    let out = if convolutional {
        convolutional_block(&mut g, input, 2, [2, 4, 6], 1, 'a', 2)?
    } else {
        identity_block(&mut g, input, 2, [2, 4, 6], 1, 'a')?
    };
    g.finish(&[out])
}
