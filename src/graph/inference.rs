//! A model rewritten for inference, as `predict`, `classify` and `features` run it: every
//! BatchNormalization that directly follows a linear Conv2D (the conv's only reader) is folded
//! into that convolution's kernel and bias, and with `--precision bf16` the convolution and
//! Dense weights are cast to bfloat16 once instead of on every call.
//!
//! Folding, with s = γ / sqrt(moving_variance + ε) per output channel:
//! `kernel' = kernel · s` and `bias' = (bias − moving_mean) · s + β` — the same function as
//! conv then BatchNorm in inference mode, in one pass over the activations instead of two. It is
//! computed in float64 and rounded once, so the outputs stay within float32 rounding of the
//! unfolded model's. The model itself is untouched (its summary, saving and training see the
//! original layers); the rewrite borrows it, so the weights cannot change under it.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde_json::Value;
use tch::{no_grad, Kind, Tensor};

use super::Model;
use crate::layers::activation::Activation;
use crate::layers::autocast::{autocast, Precision};
use crate::layers::batch_norm::BatchNorm;
use crate::layers::conv::Conv2D;
use crate::layers::dense::Dense;
use crate::layers::{Layer, Shape};

/// A borrowed model with its inference rewrites (see the module docs).
pub struct InferenceModel<'a> {
    model: &'a Model,
    precision: Precision,
    /// Replacement layers by node index.
    replaced: HashMap<usize, Box<dyn Layer>>,
    folded_batch_norms: usize,
}

impl Model {
    /// This model rewritten for inference in `precision`.
    pub fn for_inference(&self, precision: Precision) -> InferenceModel<'_> {
        let mut replaced: HashMap<usize, Box<dyn Layer>> = HashMap::new();
        let mut readers = vec![0usize; self.nodes.len()];
        for node in &self.nodes {
            for input in &node.inbound {
                readers[input.0] += 1;
            }
        }
        let mut folded_batch_norms = 0;
        no_grad(|| {
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(bn) = node.layer.as_batch_norm() else { continue };
                let [conv_id] = node.inbound[..] else { continue };
                let Some(conv) = self.nodes[conv_id.0].layer.as_conv2d() else { continue };
                if conv.config.activation != Activation::Linear || readers[conv_id.0] != 1 || self.outputs.contains(&conv_id) {
                    continue;
                }
                replaced.insert(conv_id.0, Box::new(fold_batch_norm(conv, bn)));
                replaced.insert(i, Box::new(FoldedBatchNorm));
                folded_batch_norms += 1;
            }
            if precision == Precision::Bf16 {
                for (i, node) in self.nodes.iter().enumerate() {
                    let layer = replaced.get(&i).map_or(&node.layer, |l| l);
                    if let Some(cast) = with_bf16_weights(layer.as_ref()) {
                        replaced.insert(i, cast);
                    }
                }
            }
        });
        InferenceModel { model: self, precision, replaced, folded_batch_norms }
    }
}

impl InferenceModel<'_> {
    /// Keras's `predict` for a single-input, single-output model (float32 NHWC in and out).
    pub fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        let model = self.model;
        let mut outputs = no_grad(|| autocast(self.precision, || model.run_with(&[xs], false, &model.outputs, Some(&self.replaced))))?;
        if outputs.len() != 1 {
            bail!("predict: model '{}' has {} outputs; use forward_t", model.name, outputs.len());
        }
        Ok(outputs.remove(0))
    }

    /// The outputs of the layers `names` (inference mode), as [`Model::activations`] gives
    /// them, computed through the rewrites (what feature extraction runs).
    pub fn activations(&self, inputs: &[&Tensor], names: &[&str]) -> Result<Vec<Tensor>> {
        let model = self.model;
        let wanted = names.iter().map(|name| model.layer_id(name)).collect::<Result<Vec<_>>>()?;
        no_grad(|| autocast(self.precision, || model.run_with(inputs, false, &wanted, Some(&self.replaced))))
    }

    /// The model this rewrite runs.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// How many BatchNormalization layers were folded into their convolutions.
    pub fn folded_batch_norms(&self) -> usize {
        self.folded_batch_norms
    }
}

/// The convolution that computes `conv` then `bn` (inference mode), in float64 rounded once.
fn fold_batch_norm(conv: &Conv2D, bn: &BatchNorm) -> Conv2D {
    let double = |t: &Tensor| t.to_kind(Kind::Double);
    let scale = double(&bn.gamma) / (double(&bn.moving_variance) + bn.config.epsilon).sqrt();
    let kernel = double(&conv.kernel) * scale.view([-1, 1, 1, 1]);
    let bias = conv.bias.as_ref().map_or_else(|| scale.zeros_like(), double);
    let bias = (bias - double(&bn.moving_mean)) * &scale + double(&bn.beta);
    // Contiguous: the input's layout, not the kernel's, should pick the convolution's (see
    // `internal_layout`).
    Conv2D {
        config: conv.config.clone().use_bias(true),
        kernel: kernel.to_kind(Kind::Float).contiguous(),
        bias: Some(bias.to_kind(Kind::Float)),
    }
}

/// A `Conv2D` or `Dense` with its weights in bfloat16 (cast once here instead of on every call).
fn with_bf16_weights(layer: &dyn Layer) -> Option<Box<dyn Layer>> {
    let bf16 = |t: &Tensor| t.to_kind(Kind::BFloat16);
    if let Some(conv) = layer.as_conv2d() {
        return Some(Box::new(Conv2D {
            config: conv.config.clone(),
            kernel: bf16(&conv.kernel).contiguous(),
            bias: conv.bias.as_ref().map(bf16),
        }));
    }
    let dense = layer.as_dense()?;
    Some(Box::new(Dense { config: dense.config.clone(), kernel: bf16(&dense.kernel), bias: dense.bias.as_ref().map(bf16) }))
}

/// What a folded BatchNormalization leaves behind: its input, unchanged.
struct FoldedBatchNorm;

impl Layer for FoldedBatchNorm {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn keras_config(&self) -> Value {
        Value::Null
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(crate::layers::single_input(self.class_name(), inputs)?.clone())
    }
    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        inputs[0].shallow_clone()
    }
}
