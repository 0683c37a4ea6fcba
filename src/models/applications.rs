//! `keras.applications` ResNet50 in the two naming schemes ImageNet checkpoints use:
//! - keras-applications ≤ 1.0.8 (`resnet50.py`): `conv1_pad`, `conv1`, `bn_conv1` (epsilon 1e-3),
//!   `pool1_pad`, the course's `res2a_branch2a` blocks, `avg_pool`, `fc1000`;
//! - Keras ≥ 2.2.5 and Keras 3 (`applications/resnet.py`): `conv1_conv`, `conv1_bn` (epsilon
//!   1.001e-5), `conv2_block1_0_conv` … `conv5_block3_out`, `avg_pool`, `predictions`.

use anyhow::{bail, Result};
use tch::Device;

use super::course::{resnet50_stages, RESNET50_STAGES};
use super::names::keras_block;
use crate::graph::{GraphBuilder, Model, NodeId};
use crate::layers::activation::Activation;
use crate::layers::batch_norm::{batch_norm, BatchNormConfig};
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::init::InitialWeights;
use crate::layers::merge::Add;
use crate::layers::padding::ZeroPadding2D;
use crate::layers::pooling::{max_pool, GlobalPool2D, PoolKind};

/// Which checkpoint naming scheme to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Naming {
    /// keras-applications ≤ 1.0.8: `res2a_branch2a`, `bn_conv1`, `fc1000`
    #[value(name = "keras-applications")]
    KerasApplications,
    /// Keras ≥ 2.2.5 and Keras 3: `conv2_block1_1_conv`, `conv1_bn`, `predictions`
    #[value(name = "keras")]
    Keras,
}

/// A naming scheme, or `None` for "the file's own" (`auto`), as `--naming` takes it.
pub type NamingOrAuto = Option<Naming>;

/// `auto`, `keras` or `keras-applications`: the one parser of a naming choice.
pub fn parse_naming_or_auto(text: &str) -> Result<NamingOrAuto, String> {
    match text {
        "auto" => Ok(None),
        other => clap::ValueEnum::from_str(other, false)
            .map(Some)
            .map_err(|_| format!("'{other}' is not a naming: auto, keras or keras-applications")),
    }
}

/// Keras's `pooling` argument when `include_top=False`: `None` keeps the last block's feature
/// map, `Some` adds global average or max pooling.
pub type Pooling = Option<PoolKind>;

#[derive(Debug, Clone)]
pub struct Config {
    pub naming: Naming,
    pub include_top: bool,
    pub pooling: Pooling,
    pub classes: i64,
    pub input_shape: [i64; 3],
}

/// `ResNet50(include_top, weights=None, input_shape, pooling, classes)`.
pub fn resnet50(config: &Config, device: Device) -> Result<Model> {
    resnet50_starting_as(config, InitialWeights::KerasDefaults, device)
}

/// [`resnet50`] with its weights starting as `initial` ([`InitialWeights::ToBeLoaded`] when a
/// file's weights replace them all: nothing is drawn, which was a tenth of classifying one photo).
pub fn resnet50_starting_as(config: &Config, initial: InitialWeights, device: Device) -> Result<Model> {
    let [h, w, c] = config.input_shape;
    if h < 32 || w < 32 || c != 3 {
        bail!("ResNet50 needs an input of at least 32×32×3 (Keras's minimum), got {:?}", config.input_shape);
    }
    let mut g = GraphBuilder::new("resnet50", device).with_initial_weights(initial);
    let input = g.input(None, &config.input_shape)?;
    let x = match config.naming {
        Naming::KerasApplications => legacy_body(&mut g, input)?,
        Naming::Keras => keras_body(&mut g, input)?,
    };
    let out = if config.include_top {
        let x = g.add(Some("avg_pool"), GlobalPool2D { kind: PoolKind::Average }, &[x])?;
        let top = if config.naming == Naming::Keras { "predictions" } else { "fc1000" };
        g.dense(Some(top), dense(config.classes).activation(Activation::Softmax), x)?
    } else {
        // keras-applications leaves the pooling layers unnamed; Keras ≥ 2.2.5 names them.
        let named = |name| (config.naming == Naming::Keras).then_some(name);
        match config.pooling {
            None => x,
            Some(kind @ PoolKind::Average) => g.add(named("avg_pool"), GlobalPool2D { kind }, &[x])?,
            Some(kind @ PoolKind::Max) => g.add(named("max_pool"), GlobalPool2D { kind }, &[x])?,
        }
    };
    g.finish(&[out])
}

/// keras-applications ≤ 1.0.8: stem with Keras's default BatchNorm, then the course's blocks.
fn legacy_body(g: &mut GraphBuilder, input: NodeId) -> Result<NodeId> {
    let x = g.add(Some("conv1_pad"), ZeroPadding2D::symmetric(3), &[input])?;
    let x = g.conv2d(Some("conv1"), conv2d(64, 7).strides(2), x)?;
    let x = g.batch_norm(Some("bn_conv1"), batch_norm().axis(3), x)?;
    let x = g.add(None, Activation::Relu, &[x])?;
    let x = g.add(Some("pool1_pad"), ZeroPadding2D::symmetric(1), &[x])?;
    let x = g.add(None, max_pool(3).strides(2), &[x])?;
    resnet50_stages(g, x)
}

/// Keras ≥ 2.2.5's BatchNorm: epsilon 1.001e-5.
fn keras_bn() -> BatchNormConfig {
    batch_norm().axis(3).epsilon(1.001e-5)
}

/// Keras ≥ 2.2.5 (`ResNet(stack_fn)` with `stack1` × 4): every layer named.
fn keras_body(g: &mut GraphBuilder, input: NodeId) -> Result<NodeId> {
    let x = g.add(Some("conv1_pad"), ZeroPadding2D::symmetric(3), &[input])?;
    let x = g.conv2d(Some("conv1_conv"), conv2d(64, 7).strides(2), x)?;
    let x = g.batch_norm(Some("conv1_bn"), keras_bn(), x)?;
    let x = g.add(Some("conv1_relu"), Activation::Relu, &[x])?;
    let x = g.add(Some("pool1_pad"), ZeroPadding2D::symmetric(1), &[x])?;
    let mut x = g.add(Some("pool1_pool"), max_pool(3).strides(2), &[x])?;
    for spec in RESNET50_STAGES {
        for block in 1..=spec.blocks {
            let stride = if block == 1 { spec.stride } else { 1 };
            x = keras_block1(g, x, spec.filters[0], stride, block == 1, spec.stage, block)?;
        }
    }
    Ok(x)
}

/// `block1(x, filters, stride, conv_shortcut, name)` of Keras's `resnet.py`.
fn keras_block1(
    g: &mut GraphBuilder,
    x: NodeId,
    filters: i64,
    stride: i64,
    conv_shortcut: bool,
    stage: usize,
    block: usize,
) -> Result<NodeId> {
    let name = |part: &str| keras_block(stage, block, part);
    let shortcut = if conv_shortcut {
        let s = g.conv2d(Some(&name("0_conv")), conv2d(4 * filters, 1).strides(stride), x)?;
        g.batch_norm(Some(&name("0_bn")), keras_bn(), s)?
    } else {
        x
    };
    let y = g.conv2d(Some(&name("1_conv")), conv2d(filters, 1).strides(stride), x)?;
    let y = g.batch_norm(Some(&name("1_bn")), keras_bn(), y)?;
    let y = g.add(Some(&name("1_relu")), Activation::Relu, &[y])?;
    let y = g.conv2d(Some(&name("2_conv")), conv2d(filters, 3).same(), y)?;
    let y = g.batch_norm(Some(&name("2_bn")), keras_bn(), y)?;
    let y = g.add(Some(&name("2_relu")), Activation::Relu, &[y])?;
    let y = g.conv2d(Some(&name("3_conv")), conv2d(4 * filters, 1), y)?;
    let y = g.batch_norm(Some(&name("3_bn")), keras_bn(), y)?;
    let sum = g.add(Some(&name("add")), Add, &[shortcut, y])?;
    g.add(Some(&name("out")), Activation::Relu, &[sum])
}
