//! Building a graph the way Keras's functional API does: each call adds one named layer on top
//! of existing ones and infers its output shape; names are unique (Keras refuses duplicates, and
//! tch's `VarStore` would silently rename a second `conv1` to `conv1__1`); unnamed layers get
//! tf.keras's automatic names (`activation`, `activation_1`, ...; inputs `input_1`, ...).

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use tch::{nn, Device};

use super::naming::{AutoNamer, KerasVersion};
use super::nesting::{inherited_training, path_name, NestedModel, PATH_SEPARATOR};
use super::{keras_shape, InputLayer, Model, Node, NodeId};
use crate::layers::batch_norm::BatchNormConfig;
use crate::layers::conv::Conv2DConfig;
use crate::layers::dense::DenseConfig;
use crate::layers::init::InitialWeights;
use crate::layers::registry::FromConfig;
use crate::layers::{Layer, Shape};

pub struct GraphBuilder {
    name: String,
    vs: nn::VarStore,
    nodes: Vec<Node>,
    names: HashSet<String>,
    auto_names: AutoNamer,
    initial_weights: InitialWeights,
    nested: Vec<NestedModel>,
    /// The nested models being built, innermost last (indices into `nested`).
    open_nested: Vec<usize>,
}

impl GraphBuilder {
    /// Start a model called `name` whose variables live on `device`.
    pub fn new(name: &str, device: Device) -> Self {
        Self {
            name: name.to_string(),
            vs: nn::VarStore::new(device),
            nodes: Vec::new(),
            names: HashSet::new(),
            auto_names: AutoNamer::new(KerasVersion::Keras2),
            initial_weights: InitialWeights::KerasDefaults,
            nested: Vec::new(),
            open_nested: Vec::new(),
        }
    }

    /// What the weights of layers added from now on start as (Keras's initializers by
    /// default; [`InitialWeights::ToBeLoaded`] when a file's weights will replace them all).
    pub fn with_initial_weights(mut self, initial_weights: InitialWeights) -> Self {
        self.initial_weights = initial_weights;
        self
    }

    /// Keras's `Model(base.input, base.get_layer(output).output)` as a builder to add a new head
    /// on: keeps `output` and the layers it depends on (with their weights, names and
    /// `trainable` flags), drops the rest. Returns the builder, `output`'s id in it, and the
    /// names of the dropped layers.
    pub fn from_model(model: Model, output: &str) -> Result<(Self, NodeId, Vec<String>)> {
        let output = model.layer_id(output)?;
        let keep = model.feeds(output);
        let mut new_index = vec![usize::MAX; model.nodes.len()];
        let (mut nodes, mut dropped) = (Vec::new(), Vec::new());
        for (i, mut node) in model.nodes.into_iter().enumerate() {
            if keep[i] {
                new_index[i] = nodes.len();
                node.inbound = node.inbound.iter().map(|id| NodeId(new_index[id.0])).collect();
                nodes.push(node);
            } else {
                dropped.push(node.name);
            }
        }
        let names: HashSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
        // A nested model stays while any of its layers does.
        let nested = model.nested.into_iter().filter(|nested| names.iter().any(|name| nested.contains(name))).collect();
        let builder = Self {
            name: model.name,
            vs: model.vs,
            nodes,
            names,
            auto_names: AutoNamer::new(KerasVersion::Keras2),
            initial_weights: InitialWeights::KerasDefaults,
            nested,
            open_nested: Vec::new(),
        };
        Ok((builder, NodeId(new_index[output.0]), dropped))
    }

    /// Start adding the layers of a model nested as a layer (`name`, of Keras class
    /// `class_name`, called with `training=call_training`, its own inputs called
    /// `input_names`): until [`Self::leave_nested_model`], layers are named `name/<layer>` and
    /// inherit the call's `training=`.
    pub fn enter_nested_model(
        &mut self,
        name: &str,
        class_name: &str,
        call_training: Option<bool>,
        input_names: Vec<String>,
    ) -> Result<()> {
        check_layer_name(name)?;
        let path = path_name(self.open_path(), name);
        if self.names.contains(&path) || self.nested.iter().any(|nested| nested.path == path) {
            bail!("model '{}' already has a layer named '{path}': all layer names in a model must be unique", self.name);
        }
        self.nested.push(NestedModel { path, class_name: class_name.to_string(), call_training, input_names });
        self.open_nested.push(self.nested.len() - 1);
        Ok(())
    }

    /// The path of the innermost nested model being built (`""`: none).
    fn open_path(&self) -> &str {
        self.open_nested.last().map_or("", |&index| &self.nested[index].path)
    }

    /// Done with the innermost nested model being built.
    pub fn leave_nested_model(&mut self) {
        self.open_nested.pop();
    }

    /// The `training=` keyword layer `id` is called with (Keras's call arguments); `None` keeps
    /// what it inherits from the nested model it is in.
    pub fn set_call_training(&mut self, id: NodeId, call_training: Option<bool>) {
        if call_training.is_some() {
            self.nodes[id.0].call_training = call_training;
        }
    }

    /// `Input(shape)`: shape without the batch axis, e.g. `[64, 64, 3]`.
    pub fn input(&mut self, name: Option<&str>, shape: &[i64]) -> Result<NodeId> {
        if shape.iter().any(|&d| d <= 0) {
            bail!("Input shape must be positive, got {shape:?}");
        }
        let name = self.claim_name(name, "InputLayer")?;
        Ok(self.push(name, Box::new(InputLayer { shape: shape.to_vec() }), Vec::new(), shape.to_vec()))
    }

    /// A layer without weights (activation, padding, pooling, flatten, dropout, merges).
    pub fn add(&mut self, name: Option<&str>, layer: impl Layer + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        self.add_boxed(name, Box::new(layer), inputs)
    }

    /// A layer rebuilt from its Keras configuration (see `layers::registry`).
    pub fn add_from_config(&mut self, name: Option<&str>, layer: FromConfig, inputs: &[NodeId]) -> Result<NodeId> {
        match layer {
            FromConfig::Input(shape) if inputs.is_empty() => self.input(name, &shape),
            FromConfig::Input(_) => bail!("an InputLayer reads no other layer, the config gives it {} input(s)", inputs.len()),
            FromConfig::Layer(layer) => self.add_boxed(name, layer, inputs),
            FromConfig::WithWeights(config) => {
                self.add_built(name, config.class_name(), inputs, |path, shapes, initial| config.build_layer(path, shapes, initial))
            }
        }
    }

    fn add_boxed(&mut self, name: Option<&str>, layer: Box<dyn Layer>, inputs: &[NodeId]) -> Result<NodeId> {
        let name = self.claim_name(name, layer.class_name())?;
        let shapes = self.input_shapes(inputs);
        let shape = layer.output_shape(&shapes).with_context(|| self.context(&name, &shapes))?;
        Ok(self.push(name, layer, inputs.to_vec(), shape))
    }

    pub fn conv2d(&mut self, name: Option<&str>, config: Conv2DConfig, input: NodeId) -> Result<NodeId> {
        self.add_built(name, "Conv2D", &[input], |path, shapes, initial| Ok(Box::new(config.build(path, shapes, initial)?)))
    }

    pub fn batch_norm(&mut self, name: Option<&str>, config: BatchNormConfig, input: NodeId) -> Result<NodeId> {
        self.add_built(name, "BatchNormalization", &[input], |path, shapes, _| Ok(Box::new(config.build(path, shapes)?)))
    }

    pub fn dense(&mut self, name: Option<&str>, config: DenseConfig, input: NodeId) -> Result<NodeId> {
        self.add_built(name, "Dense", &[input], |path, shapes, initial| Ok(Box::new(config.build(path, shapes, initial)?)))
    }

    /// Finish with the given outputs; every layer must feed into one of them. The layers are put
    /// in Keras's `model.layers` order (see [`keras_order`]), which `summary()`, the layer
    /// table and Keras files all use.
    pub fn finish(self, outputs: &[NodeId]) -> Result<Model> {
        if outputs.is_empty() {
            bail!("model '{}' needs at least one output", self.name);
        }
        let order = keras_order(&self.nodes, outputs);
        if order.len() != self.nodes.len() {
            let reached: HashSet<usize> = order.iter().copied().collect();
            let unused: Vec<&str> = (0..self.nodes.len()).filter(|i| !reached.contains(i)).map(|i| self.nodes[i].name.as_str()).collect();
            bail!("model '{}': layer(s) {} do not lead to any output", self.name, unused.join(", "));
        }
        let mut new_index = vec![0; self.nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut slots: Vec<Option<Node>> = self.nodes.into_iter().map(Some).collect();
        let nodes: Vec<Node> = order
            .iter()
            .map(|&old| {
                let mut node = slots[old].take().expect("each node once");
                node.inbound = node.inbound.iter().map(|id| NodeId(new_index[id.0])).collect();
                node
            })
            .collect();
        let outputs: Vec<NodeId> = outputs.iter().map(|id| NodeId(new_index[id.0])).collect();
        let inputs: Vec<NodeId> = (0..nodes.len()).filter(|&i| nodes[i].layer.class_name() == "InputLayer").map(NodeId).collect();
        let mut last_use: Vec<usize> = (0..nodes.len()).collect();
        for (i, node) in nodes.iter().enumerate() {
            for id in &node.inbound {
                last_use[id.0] = last_use[id.0].max(i);
            }
        }
        Ok(Model {
            name: self.name,
            vs: self.vs,
            nodes,
            inputs,
            outputs,
            last_use,
            training_config: None,
            optimizer_state: Default::default(),
            nested: self.nested,
        })
    }

    /// How many layers have been added so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn name_of(&self, id: NodeId) -> &str {
        &self.nodes[id.0].name
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.0].output_shape
    }

    fn add_built(
        &mut self,
        name: Option<&str>,
        class: &str,
        inputs: &[NodeId],
        build: impl FnOnce(&nn::Path, &[Shape], InitialWeights) -> Result<Box<dyn Layer>>,
    ) -> Result<NodeId> {
        let name = self.claim_name(name, class)?;
        let shapes = self.input_shapes(inputs);
        // tch's VarStore panics on '.' in a path, which Keras names may hold (`conv1.1`); the
        // store's names are internal (weights are reached through the layers), so escape it.
        let store_name = name.replace('.', "_dot_");
        let layer =
            build(&(self.vs.root() / store_name.as_str()), &shapes, self.initial_weights).with_context(|| self.context(&name, &shapes))?;
        let shape = layer.output_shape(&shapes).with_context(|| self.context(&name, &shapes))?;
        Ok(self.push(name, layer, inputs.to_vec(), shape))
    }

    fn input_shapes(&self, inputs: &[NodeId]) -> Vec<Shape> {
        inputs.iter().map(|id| self.nodes[id.0].output_shape.clone()).collect()
    }

    fn context(&self, name: &str, shapes: &[Shape]) -> String {
        let shapes: Vec<String> = shapes.iter().map(|s| keras_shape(s)).collect();
        format!("building layer '{name}' of model '{}' on input shape(s) {}", self.name, shapes.join(", "))
    }

    fn push(&mut self, name: String, layer: Box<dyn Layer>, inbound: Vec<NodeId>, output_shape: Shape) -> NodeId {
        let call_training = inherited_training(&self.nested, self.open_path());
        self.nodes.push(Node { name, layer, inbound, output_shape, trainable: true, call_training });
        NodeId(self.nodes.len() - 1)
    }

    /// Reserve `name`, or make tf.keras's automatic one from the class name.
    fn claim_name(&mut self, name: Option<&str>, class: &str) -> Result<String> {
        let name = match name {
            Some(name) => name.to_string(),
            None => loop {
                let candidate = self.auto_names.next(class);
                if !self.names.contains(&candidate) {
                    break candidate;
                }
            },
        };
        check_layer_name(&name)?;
        let name = path_name(self.open_path(), &name);
        if self.nested.iter().any(|nested| nested.path == name) || !self.names.insert(name.clone()) {
            bail!("model '{}' already has a layer named '{name}': all layer names in a model must be unique", self.name);
        }
        Ok(name)
    }
}

/// A layer's own name: non-empty, without the separator of nested paths.
fn check_layer_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(PATH_SEPARATOR) {
        bail!("layer name '{name}' must be non-empty and contain no '{PATH_SEPARATOR}'");
    }
    Ok(())
}

/// Keras's `model.layers` order (tf.keras `functional._map_graph_network`): a depth-first walk
/// from the outputs numbers the layers in the order it first meets them (inputs of a layer in
/// their order); a layer's depth is its longest distance to an output; layers are listed by
/// decreasing depth, ties by that number. The order is also a valid execution order, since every
/// layer is deeper than the layers that read it. Returns indices of the reachable nodes.
fn keras_order(nodes: &[Node], outputs: &[NodeId]) -> Vec<usize> {
    let mut first_seen: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut post_order = Vec::new();
    let mut finished = vec![false; nodes.len()];
    // Iterative DFS: (node, next inbound to visit).
    for output in outputs {
        let mut stack = vec![(output.0, 0usize)];
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next == 0 {
                if finished[node] {
                    stack.pop();
                    continue;
                }
                if first_seen[node].is_none() {
                    first_seen[node] = Some(first_seen.iter().flatten().count());
                }
            }
            if let Some(input) = nodes[node].inbound.get(*next) {
                *next += 1;
                let input = input.0;
                if !finished[input] {
                    stack.push((input, 0));
                }
            } else {
                finished[node] = true;
                post_order.push(node);
                stack.pop();
            }
        }
    }
    let mut depth = vec![0usize; nodes.len()];
    for &node in post_order.iter().rev() {
        for input in &nodes[node].inbound {
            depth[input.0] = depth[input.0].max(depth[node] + 1);
        }
    }
    let mut order = post_order;
    order.sort_by_key(|&n| (std::cmp::Reverse(depth[n]), first_seen[n]));
    order
}
