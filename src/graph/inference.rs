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
                let scale = bn.gamma.to_kind(Kind::Double) / (bn.moving_variance.to_kind(Kind::Double) + bn.config.epsilon).sqrt();
                let kernel = conv.kernel.to_kind(Kind::Double) * scale.view([-1, 1, 1, 1]);
                let bias = match &conv.bias {
                    Some(bias) => bias.to_kind(Kind::Double),
                    None => scale.zeros_like(),
                };
                let bias = (bias - bn.moving_mean.to_kind(Kind::Double)) * &scale + bn.beta.to_kind(Kind::Double);
                let config = conv.config.clone().use_bias(true);
                replaced.insert(conv_id.0, Box::new(Conv2D { config, kernel: kernel.to_kind(Kind::Float), bias: Some(bias.to_kind(Kind::Float)) }));
                replaced.insert(i, Box::new(FoldedBatchNorm));
                folded_batch_norms += 1;
            }
            if precision == Precision::Bf16 {
                for (i, node) in self.nodes.iter().enumerate() {
                    let layer = replaced.get(&i).map_or(&node.layer, |l| l);
                    let bf16 = |t: &Tensor| t.to_kind(Kind::BFloat16);
                    let cast: Option<Box<dyn Layer>> = if let Some(conv) = layer.as_conv2d() {
                        Some(Box::new(Conv2D { config: conv.config.clone(), kernel: bf16(&conv.kernel), bias: conv.bias.as_ref().map(bf16) }))
                    } else {
                        layer.as_dense().map(|dense| {
                            Box::new(Dense { config: dense.config.clone(), kernel: bf16(&dense.kernel), bias: dense.bias.as_ref().map(bf16) }) as Box<dyn Layer>
                        })
                    };
                    if let Some(cast) = cast {
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

    /// The model this rewrite runs.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// How many BatchNormalization layers were folded into their convolutions.
    pub fn folded_batch_norms(&self) -> usize {
        self.folded_batch_norms
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }
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
