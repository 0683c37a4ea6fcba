//! Keras-faithful layers on libtorch. Each file is one primitive and names the Keras source it
//! mirrors. Public shapes are Keras's (channels-last, no batch axis); inside the graph, image
//! tensors run as NCHW, which the graph converts at its inputs and outputs.

pub mod activation;
pub mod affine_augmentation;
pub mod augmentation;
pub mod autocast;
pub mod batch_norm;
pub mod conv;
pub mod dense;
pub mod init;
pub mod input;
pub mod keras_config;
pub mod keras_layout;
pub mod merge;
pub mod normalization;
pub mod padding;
pub mod pooling;
pub mod registry;
pub mod relu;
pub mod rescaling;
pub mod reshape;
pub mod resizing;
pub mod softmax;
pub mod synchronized_batch_norm;

use anyhow::Result;
use tch::Tensor;

pub use keras_layout::Layout;

/// A layer's output shape as Keras prints it, without the batch axis: `[64, 64, 3]` is
/// `(None, 64, 64, 3)`.
pub type Shape = Vec<i64>;

/// One weight of a layer under its Keras short name (`kernel`, `bias`, `gamma`, `beta`,
/// `moving_mean`, `moving_variance`). The tensor is in torch layout; `layout` says how to
/// convert it to and from Keras's (see `keras_layout`).
pub struct Weight<'a> {
    pub name: &'static str,
    pub tensor: &'a Tensor,
    pub trainable: bool,
    pub layout: Layout,
}

/// What every layer does: say its Keras class, infer its output shape, run forward.
pub trait Layer: Send {
    /// Keras's class name, as `summary()` prints it (`Conv2D`, `BatchNormalization`, ...).
    fn class_name(&self) -> &'static str;
    /// The layer-specific part of Keras's `get_config()` (without name, trainable and dtype),
    /// in tf.keras 2.x's format — what `model_config` holds and the exporter writes.
    fn keras_config(&self) -> serde_json::Value;
    /// The same in Keras 3's format, where it differs (only `InputLayer`'s does).
    fn keras3_config(&self) -> serde_json::Value {
        self.keras_config()
    }
    /// Keras output shape (no batch axis) for these input shapes, or an error naming both.
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape>;
    /// Forward on internal-layout tensors (NCHW for images); `train` switches BatchNorm to batch
    /// statistics and Dropout on.
    fn forward(&self, inputs: &[&Tensor], train: bool) -> Tensor;
    /// When the layer ends in a softmax or sigmoid: its output *before* it (the logits), which
    /// tf.keras's cross-entropies use instead of the probabilities. `None` otherwise.
    fn forward_logits(&self, _inputs: &[&Tensor], _train: bool) -> Option<Tensor> {
        None
    }
    /// The layer's weights in Keras's order (the order of Keras's `weight_names`).
    fn weights(&self) -> Vec<Weight<'_>> {
        Vec::new()
    }
    /// The layer as a BatchNorm to change (the importer sets the epsilon a checkpoint was
    /// trained with; data-parallel training hands synchronized ones the replicas).
    fn as_batch_norm_mut(&mut self) -> Option<&mut batch_norm::BatchNorm> {
        None
    }
    /// The layer as a `Conv2D`, `BatchNormalization` or `Dense`, for the inference rewrites
    /// (BatchNorm folding, bfloat16 weights) that need their weights.
    fn as_conv2d(&self) -> Option<&conv::Conv2D> {
        None
    }
    fn as_batch_norm(&self) -> Option<&batch_norm::BatchNorm> {
        None
    }
    fn as_dense(&self) -> Option<&dense::Dense> {
        None
    }
}

/// Check a single-input layer got exactly one input and return its shape.
pub fn single_input<'a>(class: &str, inputs: &'a [Shape]) -> Result<&'a Shape> {
    match inputs {
        [shape] => Ok(shape),
        _ => anyhow::bail!("{class} takes one input, got {}", inputs.len()),
    }
}

/// A Keras axis (counting the batch axis; negative from the end) as an index into the shape
/// without the batch axis, for inputs of `rank` dimensions besides the batch.
pub fn shape_axis(class: &str, axis: i64, rank: usize) -> Result<usize> {
    let index = if axis < 0 { axis + rank as i64 + 1 } else { axis };
    if index < 1 || index > rank as i64 {
        anyhow::bail!("{class} axis {axis} is out of range for inputs of rank {}", rank + 1);
    }
    Ok(index as usize - 1)
}

/// The dimension of a graph tensor of `tensor_rank` dimensions holding Keras shape axis
/// `shape_axis`: images run NCHW inside, so Keras's (H, W, C) are dims 2, 3, 1.
pub fn graph_dim(shape_axis: usize, tensor_rank: usize) -> i64 {
    if tensor_rank == 4 {
        [2, 3, 1][shape_axis]
    } else {
        shape_axis as i64 + 1
    }
}

/// Check a layer needs an image input (H, W, C) and return it.
pub fn image_input(class: &str, inputs: &[Shape]) -> Result<[i64; 3]> {
    match single_input(class, inputs)?.as_slice() {
        &[h, w, c] => Ok([h, w, c]),
        other => anyhow::bail!("{class} expects an image input (H, W, C), got shape {other:?}"),
    }
}
