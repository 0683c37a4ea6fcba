//! The third seed's TF2 ResNet18/34 (a subclassed `keras.Model` of `BasicBlock`s), built as a
//! functional graph. As in the seed, every `BasicBlock` has a 1×1 `downsample` convolution (also
//! at stride 1), all 3×3 convolutions are `same` (stride 2 included), the stem is 7×7/2 `same`
//! + BN + relu + 3×3/2 `same` max pooling, then global average pooling and Dense logits.
//!
//! Naming: the seed's layers are nested objects (`self.layer2` → `BasicBlock` → `conv1`) whose
//! Keras names are auto-generated per session; we flatten them to stable, documented names:
//! `stem_conv`, `stem_bn`, `stem_relu`, `stem_pool`, `layer2_block1_conv1` … `layer2_block1_out`,
//! `avgpool`, `fc` (see `names::basic_block`).

use anyhow::Result;
use tch::Device;

use super::names::basic_block;
use crate::graph::{GraphBuilder, Model, NodeId};
use crate::layers::activation::Activation;
use crate::layers::batch_norm::batch_norm;
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::merge::Add;
use crate::layers::pooling::{max_pool, GlobalPool2D, PoolKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Resnet18,
    Resnet34,
}

impl Depth {
    /// Blocks per stage (`layer_dims` in the seed).
    pub fn layer_dims(self) -> [usize; 4] {
        match self {
            Depth::Resnet18 => [2, 2, 2, 2],
            Depth::Resnet34 => [3, 4, 6, 3],
        }
    }
}

/// Filters and first-block stride of `layer1` … `layer4`.
const STAGES: [(i64, i64); 4] = [(64, 1), (128, 2), (256, 2), (512, 2)];

pub fn resnet(depth: Depth, input_shape: [i64; 3], classes: i64, device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("res_net", device);
    let input = g.input(None, &input_shape)?;
    let x = g.conv2d(Some("stem_conv"), conv2d(64, 7).strides(2).same(), input)?;
    let x = g.batch_norm(Some("stem_bn"), batch_norm(), x)?;
    let x = g.add(Some("stem_relu"), Activation::Relu, &[x])?;
    let mut x = g.add(Some("stem_pool"), max_pool(3).strides(2).same(), &[x])?;
    for ((filters, stride), (stage, blocks)) in STAGES.into_iter().zip(depth.layer_dims().into_iter().enumerate()) {
        for block in 1..=blocks {
            x = basic_block_layers(&mut g, x, filters, if block == 1 { stride } else { 1 }, stage + 1, block)?;
        }
    }
    let x = g.add(Some("avgpool"), GlobalPool2D { kind: PoolKind::Average }, &[x])?;
    let out = g.dense(Some("fc"), dense(classes), x)?;
    g.finish(&[out])
}

/// The seed's `BasicBlock(filter_num, stride)`.
fn basic_block_layers(g: &mut GraphBuilder, x: NodeId, filters: i64, stride: i64, stage: usize, block: usize) -> Result<NodeId> {
    let name = |part: &str| basic_block(stage, block, part);
    let y = g.conv2d(Some(&name("conv1")), conv2d(filters, 3).strides(stride).same(), x)?;
    let y = g.batch_norm(Some(&name("bn1")), batch_norm(), y)?;
    let y = g.add(Some(&name("relu1")), Activation::Relu, &[y])?;
    let y = g.conv2d(Some(&name("conv2")), conv2d(filters, 3).same(), y)?;
    let y = g.batch_norm(Some(&name("bn2")), batch_norm(), y)?;
    let identity = g.conv2d(Some(&name("downsample")), conv2d(filters, 1).strides(stride), x)?;
    let sum = g.add(Some(&name("add")), Add, &[y, identity])?;
    g.add(Some(&name("out")), Activation::Relu, &[sum])
}
