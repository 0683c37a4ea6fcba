//! The functional graph, as Keras's `Model(inputs, outputs)`: named layers with their inbound
//! connections (branches and merges), a forward pass with a training flag, per-layer
//! `trainable`, and a walk over the layers for summary, plotting, import/export and freezing.
//!
//! Inputs and outputs are NHWC like Keras; image tensors run as NCHW inside (the NHWC input
//! viewed through a permutation, i.e. torch's channels-last memory format).

mod builder;
pub mod fused_conv;
pub mod inference;
pub mod matmul_conv;
pub mod naming;
pub mod nesting;
pub mod optimizer_state;
pub mod padded_max_pool;
pub mod plot;
pub mod summary;
pub mod toom_cook;
pub mod winograd_conv;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tch::{nn, no_grad, Device, Tensor};

use crate::layers::input::InputLayer;
use crate::layers::synchronized_batch_norm::ReplicaSum;
use crate::layers::{Layer, Shape, Weight};

pub use builder::GraphBuilder;
pub use naming::{snake_case, KerasVersion};

/// Index of a layer in its graph (layers are stored in an order where inputs come first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub(crate) usize);

/// One layer of the graph.
pub struct Node {
    pub name: String,
    pub layer: Box<dyn Layer>,
    pub inbound: Vec<NodeId>,
    /// Keras output shape without the batch axis.
    pub output_shape: Shape,
    /// Keras's `layer.trainable`: a frozen layer's weights get no gradient and its BatchNorm
    /// runs in inference mode.
    pub trainable: bool,
    /// The `training=` keyword the layer is called with (`base(x, training=False)`; a layer
    /// inside a nested model inherits its call's): `None` follows the model's mode.
    pub call_training: Option<bool>,
}

impl Node {
    /// Number of weights (Keras's `count_params`).
    pub fn param_count(&self) -> i64 {
        self.layer.weights().iter().map(|w| w.tensor.numel() as i64).sum()
    }

    /// Number of weights that training would update.
    pub fn trainable_param_count(&self) -> i64 {
        if !self.trainable {
            return 0;
        }
        self.layer.weights().iter().filter(|w| w.trainable).map(|w| w.tensor.numel() as i64).sum()
    }

    /// Whether the layer runs in training mode when the model does (`train`): its call's
    /// `training=` keyword decides if given, and a frozen layer always runs in inference mode
    /// (Keras >= 2.1.3 for BatchNorm).
    pub fn runs_in_training_mode(&self, train: bool) -> bool {
        self.call_training.unwrap_or(train) && self.trainable
    }
}

/// A built model: the layers, their variables, and which layers are the inputs and outputs.
pub struct Model {
    pub name: String,
    pub vs: nn::VarStore,
    nodes: Vec<Node>,
    inputs: Vec<NodeId>,
    outputs: Vec<NodeId>,
    /// For each node, the last node that reads its output (to free activations early).
    last_use: Vec<usize>,
    /// Keras's `training_config` (optimizer, loss, metrics) of a loaded or compiled model.
    pub training_config: Option<serde_json::Value>,
    /// The optimizer's state the loaded file saved, for training to continue from.
    pub optimizer_state: optimizer_state::SavedOptimizerState,
    /// The models nested in this one as layers, outermost first (their layers are inlined).
    nested: Vec<nesting::NestedModel>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (total, _, _) = self.param_counts();
        write!(f, "Model {{ name: {:?}, layers: {}, params: {total} }}", self.name, self.nodes.len())
    }
}

impl Model {
    pub fn layers(&self) -> &[Node] {
        &self.nodes
    }

    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Whether the model scales its own pixels: a `Rescaling` layer reads an input directly (as
    /// in Keras's transfer-learning guide), so images go in as they are, 0-255.
    pub fn rescales_its_input(&self) -> bool {
        self.nodes.iter().any(|node| node.layer.class_name() == "Rescaling" && node.inbound.iter().any(|id| self.inputs.contains(id)))
    }

    /// The models nested in this one as layers (see [`nesting`]), outermost first.
    pub fn nested_models(&self) -> &[nesting::NestedModel] {
        &self.nested
    }

    /// The layer called `name`, or an error listing similar names.
    pub fn layer_id(&self, name: &str) -> Result<NodeId> {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            return Ok(NodeId(i));
        }
        let similar: Vec<&str> =
            self.nodes.iter().map(|n| n.name.as_str()).filter(|n| n.contains(name) || name.contains(*n)).take(5).collect();
        bail!("model '{}' has no layer named '{name}'{}", self.name, did_you_mean(&similar))
    }

    pub fn layer(&self, name: &str) -> Result<&Node> {
        Ok(self.node(self.layer_id(name)?))
    }

    /// For each layer, whether `output` is computed from it (`output` itself included): the
    /// layers of Keras's `Model(inputs, output)`.
    pub fn feeds(&self, output: NodeId) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack = vec![output.0];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut needed[i], true) {
                stack.extend(self.nodes[i].inbound.iter().map(|id| id.0));
            }
        }
        needed
    }

    /// Give every BatchNormalization layer this epsilon (the importer sets the one a
    /// checkpoint's architecture was trained with). Layers and connections stay as they are.
    pub fn set_batch_norm_epsilon(&mut self, epsilon: f64) {
        for node in &mut self.nodes {
            if let Some(layer) = node.layer.as_batch_norm_mut() {
                layer.config.epsilon = epsilon;
            }
        }
    }

    /// Mark every BatchNormalization layer `synchronized` (Keras's argument): in data-parallel
    /// training they then normalise with the global batch's statistics.
    pub fn set_batch_norm_synchronized(&mut self, synchronized: bool) {
        for node in &mut self.nodes {
            if let Some(layer) = node.layer.as_batch_norm_mut() {
                layer.config.synchronized = synchronized;
            }
        }
    }

    /// Whether a BatchNormalization layer is `synchronized`.
    pub fn has_synchronized_batch_norm(&self) -> bool {
        self.nodes.iter().any(|node| node.layer.as_batch_norm().is_some_and(|layer| layer.config.synchronized))
    }

    /// Hand the synchronized BatchNormalization layers a data-parallel job's replicas (`None`:
    /// take them back, when the job's training ends).
    pub fn set_batch_norm_replicas(&mut self, replicas: Option<Arc<dyn ReplicaSum>>) {
        for node in &mut self.nodes {
            if let Some(layer) = node.layer.as_batch_norm_mut() {
                layer.set_replicas(replicas.clone());
            }
        }
    }

    /// Set `layer.trainable` (Keras semantics: a frozen BatchNorm also runs in inference mode).
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let id = self.layer_id(name)?;
        let node = &mut self.nodes[id.0];
        node.trainable = trainable;
        for weight in node.layer.weights() {
            if weight.trainable {
                // A variable's requires_grad is the freeze switch for the optimizer.
                let _ = weight.tensor.shallow_clone().set_requires_grad(trainable);
            }
        }
        Ok(())
    }

    /// Total, trainable and non-trainable parameter counts, as Keras's `summary()` reports them.
    pub fn param_counts(&self) -> (i64, i64, i64) {
        let total: i64 = self.nodes.iter().map(Node::param_count).sum();
        let trainable: i64 = self.nodes.iter().map(Node::trainable_param_count).sum();
        (total, trainable, total - trainable)
    }

    /// Forward pass on NHWC inputs; `train` = Keras's `training=True`. Returns the outputs.
    pub fn forward_t(&self, inputs: &[&Tensor], train: bool) -> Result<Vec<Tensor>> {
        self.run(inputs, train, &self.outputs)
    }

    /// Keras's `predict` for a single-input, single-output model: inference mode, no gradients.
    pub fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        let mut outputs = no_grad(|| self.forward_t(&[xs], false))?;
        if outputs.len() != 1 {
            bail!("predict: model '{}' has {} outputs; use forward_t", self.name, outputs.len());
        }
        Ok(outputs.remove(0))
    }

    /// One forward pass of a single-output model giving its output and, when it ends in a
    /// softmax or sigmoid, the logits before it (what tf.keras's cross-entropies read) — from
    /// the same pass, so BatchNorm's moving statistics move once per training step.
    pub fn forward_with_logits(&self, inputs: &[&Tensor], train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let [output] = self.outputs[..] else {
            bail!("model '{}' has {} outputs; training and evaluation need one", self.name, self.outputs.len());
        };
        let node = &self.nodes[output.0];
        let args = self.run(inputs, train, &node.inbound)?;
        // Back to the internal layout for the last layer.
        let args: Vec<Tensor> = args.iter().map(|t| if t.dim() == 4 { t.permute([0, 3, 1, 2]) } else { t.shallow_clone() }).collect();
        let args: Vec<&Tensor> = args.iter().collect();
        let train = node.runs_in_training_mode(train);
        let probs = crate::layers::autocast::to_float(node.layer.forward(&args, train));
        let probs = if probs.dim() == 4 { probs.permute([0, 2, 3, 1]).contiguous() } else { probs };
        Ok((probs, node.layer.forward_logits(&args, train)))
    }

    /// The variables training updates, under their Keras names (`conv1/kernel`): the trainable
    /// weights of trainable layers.
    pub fn trainable_variables(&self) -> Vec<(String, Tensor)> {
        self.nodes
            .iter()
            .filter(|n| n.trainable)
            .flat_map(|n| {
                n.layer
                    .weights()
                    .into_iter()
                    .filter(|w| w.trainable)
                    .map(|w| (format!("{}/{}", n.name, w.name), w.tensor.shallow_clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The outputs of the named layers for these inputs (inference mode), NHWC like Keras —
    /// to compare intermediate activations with Keras's.
    pub fn activations(&self, inputs: &[&Tensor], names: &[&str]) -> Result<Vec<Tensor>> {
        let wanted = names.iter().map(|n| self.layer_id(n)).collect::<Result<Vec<_>>>()?;
        no_grad(|| self.run(inputs, false, &wanted))
    }

    fn run(&self, inputs: &[&Tensor], train: bool, wanted: &[NodeId]) -> Result<Vec<Tensor>> {
        self.run_with(inputs, train, wanted, &[])
    }

    /// `run`, with some layers replaced by index (the inference rewrites of `inference`).
    fn run_with(
        &self,
        inputs: &[&Tensor],
        train: bool,
        wanted: &[NodeId],
        replaced: &[&std::collections::HashMap<usize, Box<dyn Layer>>],
    ) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            bail!("model '{}' takes {} input(s), got {}", self.name, self.inputs.len(), inputs.len());
        }
        let mut values: Vec<Option<Tensor>> = (0..self.nodes.len()).map(|_| None).collect();
        for (xs, id) in inputs.iter().zip(&self.inputs) {
            let node = &self.nodes[id.0];
            let size = xs.size();
            if size.len() != node.output_shape.len() + 1 || size[1..] != node.output_shape[..] {
                bail!(
                    "input '{}' of model '{}' expects shape {} but got {}",
                    node.name,
                    self.name,
                    keras_shape(&node.output_shape),
                    tuple(&size)
                );
            }
            let xs = xs.to_device(self.device()).to_kind(tch::Kind::Float);
            values[id.0] = Some(if xs.dim() == 4 { internal_layout(&xs, train) } else { xs });
        }
        let keep: Vec<bool> = (0..self.nodes.len()).map(|i| wanted.iter().any(|w| w.0 == i)).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            if values[i].is_some() {
                continue;
            }
            let args: Vec<&Tensor> = node.inbound.iter().map(|id| values[id.0].as_ref().expect("inputs come before their users")).collect();
            // The first rewrite that replaces this layer.
            let layer = replaced.iter().find_map(|r| r.get(&i)).unwrap_or(&node.layer);
            let out = layer.forward(&args, node.runs_in_training_mode(train));
            values[i] = Some(out);
            // Free what no later layer reads.
            for id in &node.inbound {
                if self.last_use[id.0] == i && !keep[id.0] {
                    values[id.0] = None;
                }
            }
        }
        wanted
            .iter()
            .map(|id| {
                let value = values[id.0].as_ref().context("value was freed")?;
                let value = crate::layers::autocast::to_float(value.shallow_clone());
                Ok(if value.dim() == 4 { value.permute([0, 2, 3, 1]).contiguous() } else { value })
            })
            .collect()
    }

    /// Keras's `get_weights()`: a copy of every weight, trainable or not, in layer order (in
    /// this port's own layout: for [`Model::set_weights`], not for files).
    pub fn get_weights(&self) -> Vec<Tensor> {
        no_grad(|| self.layers().iter().flat_map(|n| n.layer.weights().into_iter().map(|w| w.tensor.copy())).collect())
    }

    /// Keras's `set_weights(values)` with what [`Model::get_weights`] returned: every weight
    /// overwritten in place; the count and every shape must match.
    pub fn set_weights(&self, values: &[Tensor]) -> Result<()> {
        let weights: Vec<(String, Tensor)> = self
            .layers()
            .iter()
            .flat_map(|n| n.layer.weights().into_iter().map(move |w| (format!("{}/{}", n.name, w.name), w.tensor.shallow_clone())))
            .collect();
        if weights.len() != values.len() {
            bail!("set_weights: model '{}' has {} weights, {} values were given", self.name, weights.len(), values.len());
        }
        for ((name, weight), value) in weights.iter().zip(values) {
            if weight.size() != value.size() {
                bail!("set_weights: weight '{name}' has shape {} but the value has {}", tuple(&weight.size()), tuple(&value.size()));
            }
        }
        no_grad(|| {
            for ((_, weight), value) in weights.iter().zip(values) {
                weight.shallow_clone().copy_(value);
            }
        });
        Ok(())
    }

    /// A weight of a layer in Keras's layout (HWIO conv kernels, (in, out) dense kernels).
    pub fn keras_weight(&self, layer: &str, weight: &str) -> Result<Tensor> {
        let node = self.layer(layer)?;
        let weights = node.layer.weights();
        let found = find_weight(&weights, layer, weight)?;
        Ok(found.layout.to_keras(found.tensor))
    }

    /// Overwrite a layer's weight with a Keras-layout value; the shape must match exactly.
    pub fn set_keras_weight(&self, layer: &str, weight: &str, value: &Tensor) -> Result<()> {
        let node = self.layer(layer)?;
        let weights = node.layer.weights();
        let found = find_weight(&weights, layer, weight)?;
        let expected = keras_shape_of(found);
        if value.size() != expected {
            bail!(
                "shape mismatch in layer '{layer}' ({}) for weight '{weight}': the layer expects {} but the value has {}",
                node.layer.class_name(),
                tuple(&expected),
                tuple(&value.size())
            );
        }
        let converted = found.layout.from_keras(&value.to_device(self.device()).to_kind(tch::Kind::Float));
        no_grad(|| found.tensor.shallow_clone().copy_(&converted));
        Ok(())
    }
}

/// A weight's shape in Keras's layout.
pub fn keras_shape_of(weight: &Weight) -> Vec<i64> {
    weight.layout.keras_shape(&weight.tensor.size())
}

fn find_weight<'a>(weights: &'a [Weight<'a>], layer: &str, weight: &str) -> Result<&'a Weight<'a>> {
    weights.iter().find(|w| w.name == weight).with_context(|| {
        let names: Vec<&str> = weights.iter().map(|w| w.name).collect();
        format!("layer '{layer}' has no weight '{weight}' (it has: {})", if names.is_empty() { "none".into() } else { names.join(", ") })
    })
}

/// An NHWC image batch in the graph's NCHW order. Viewed through a permutation its memory stays
/// channels-last, which libtorch's oneDNN kernels ran fastest on here for training, for bfloat16
/// and for all but the smallest float32 inference batches; those ran faster contiguous. Measured
/// with `keras-tch bench` (two runs each, after `runtime::keep_freed_memory`), channels-last vs
/// contiguous: float32 course predict batch 32 at 64×64 0.122 vs 0.127–0.140 s, ImageNet batch 8
/// 22.5–23.3 vs 20.6–20.7 img/s, but ImageNet batch 1 16.0–16.5 vs 17.1–18.5 img/s; bfloat16
/// ImageNet batch 1 31.5–32.5 vs 26.3–29.4 img/s and batch 8 45.4–46.0 vs 35.4–37.4 img/s.
/// Hence contiguous NCHW only for float32 inference on fewer than 2^16 batch × pixels.
fn internal_layout(nhwc: &Tensor, train: bool) -> Tensor {
    const CONTIGUOUS_BELOW: i64 = 1 << 16;
    let nchw = nhwc.permute([0, 3, 1, 2]);
    let size = nhwc.size();
    let float32 = crate::layers::autocast::compute_kind() == tch::Kind::Float;
    if !train && float32 && size[0] * size[1] * size[2] < CONTIGUOUS_BELOW {
        nchw.contiguous()
    } else {
        nchw
    }
}

fn did_you_mean(similar: &[&str]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", similar.join(", "))
    }
}

/// Python tuple formatting: `(2, 64, 64, 3)`, `(6,)`.
pub fn tuple(dims: &[i64]) -> String {
    match dims {
        [single] => format!("({single},)"),
        _ => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// A Keras shape with its batch axis: `(None, 64, 64, 3)`.
pub fn keras_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = std::iter::once("None".to_string()).chain(shape.iter().map(|d| d.to_string())).collect();
    format!("({})", dims.join(", "))
}
